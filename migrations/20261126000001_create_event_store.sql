-- The event store: one append-only table of events, the stream heads that serialize appends to a
-- run, and the inline dedupe index of active runs. Read models live in projections/, not here.

-- Every fact of every run, forever. Ordered for readers by (tx_id, position): see docs/adr/0002.
CREATE TABLE events (
    -- Global position, assigned at insert (visible at commit, so not a safe cursor on its own).
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction: readers only read below the oldest running transaction.
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL,
    tenant_id       bigint      NOT NULL CHECK (tenant_id > 0),
    run_id          uuid        NOT NULL,
    -- The run's stream version: 1, 2, 3… with no gaps.
    version         bigint      NOT NULL CHECK (version > 0),
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version > 0),
    payload         jsonb       NOT NULL,
    -- actor, correlation_id, causation_id, request_id.
    metadata        jsonb       NOT NULL,
    -- The database clock at append; never used for ordering.
    recorded_at     timestamptz NOT NULL,
    -- The hash chain: hash = SHA-256(prev_hash || canonical(event)); the first prev_hash is zeros.
    prev_hash       bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash            bytea       NOT NULL CHECK (length(hash) = 32),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_run_version_key UNIQUE (run_id, version)
);

CREATE INDEX events_safe_order_idx ON events (tx_id, position);

-- The database refuses to change history, whoever asks: corrections are new events.
CREATE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % on events is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_refuse_update_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER events_refuse_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- The head of each run's stream. Appends move it with a compare-and-set on `version`, which
-- serializes appends to one run (so its hash chain cannot fork) without blocking other runs.
CREATE TABLE streams (
    run_id      uuid   PRIMARY KEY,
    tenant_id   bigint NOT NULL,
    version     bigint NOT NULL CHECK (version > 0),
    last_hash   bytea  NOT NULL CHECK (length(last_hash) = 32)
);

-- The dedupe index, an inline projection written in the append statement: at most one active
-- (queued or running) run per tenant and identity hash. `Completed` frees the slot.
CREATE TABLE active_runs (
    tenant_id         bigint NOT NULL,
    run_identity_hash text   NOT NULL CHECK (run_identity_hash ~ '^[0-9a-f]{64}$'),
    run_id            uuid   NOT NULL,
    CONSTRAINT active_runs_pkey PRIMARY KEY (tenant_id, run_identity_hash),
    CONSTRAINT active_runs_run_id_key UNIQUE (run_id)
);

-- The application role may read and append events, never change them. Deployments log in as a
-- member of runledger_app; the embedded database uses its owner, which the trigger still binds.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'runledger_app') THEN
        CREATE ROLE runledger_app NOLOGIN;
    END IF;
END
$$;
REVOKE ALL ON events FROM PUBLIC;
GRANT SELECT, INSERT ON events TO runledger_app;
GRANT SELECT, INSERT, UPDATE ON streams TO runledger_app;
GRANT SELECT, INSERT, DELETE ON active_runs TO runledger_app;
