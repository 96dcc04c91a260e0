-- Evidence for auditors (docs/adr/0009): anchors, digests of the whole log up to a cursor that
-- are hash-chained to each other, and the record of verifications. Both are append-only.

-- One anchor per row: per tenant, the events and runs up to the cursor and a rolling SHA-256
-- of their hashes in safe log order (`tenants`, JSON), chained by `prev_hash` to the anchor
-- before it. `hash` covers every other column (see runledger_audit::anchor).
CREATE TABLE anchors (
    sequence        bigint      PRIMARY KEY CHECK (sequence > 0),
    -- The last event covered, in safe log order (`tx_id.position`).
    cursor_tx_id    bigint      NOT NULL,
    cursor_position bigint      NOT NULL,
    event_count     bigint      NOT NULL CHECK (event_count > 0),
    run_count       bigint      NOT NULL CHECK (run_count >= 0),
    -- [{tenant_id, events, runs, digest}], in tenant order.
    tenants         jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL,
    prev_hash       bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash            bytea       NOT NULL CHECK (length(hash) = 32)
);

-- Each `runledger verify` against the database: when, what, and what it found.
CREATE TABLE verifications (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    scope           text        NOT NULL,
    runs            bigint      NOT NULL,
    events          bigint      NOT NULL,
    anchors_checked bigint      NOT NULL,
    failures        bigint      NOT NULL,
    valid           boolean     NOT NULL,
    first_failure   text
);

-- Evidence is never changed, whoever asks: like events, both tables refuse UPDATE, DELETE and
-- TRUNCATE for every role, owner included.
CREATE FUNCTION evidence_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % on % is refused', TG_TABLE_NAME, TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER anchors_refuse_update_delete
    BEFORE UPDATE OR DELETE ON anchors
    FOR EACH ROW EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER anchors_refuse_truncate
    BEFORE TRUNCATE ON anchors
    FOR EACH STATEMENT EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER verifications_refuse_update_delete
    BEFORE UPDATE OR DELETE ON verifications
    FOR EACH ROW EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER verifications_refuse_truncate
    BEFORE TRUNCATE ON verifications
    FOR EACH STATEMENT EXECUTE FUNCTION evidence_refuse_change();

REVOKE ALL ON anchors, verifications FROM PUBLIC;
GRANT SELECT, INSERT ON anchors, verifications TO runledger_app;
