-- The OperationRun read model: one row per run, every field of the seed's OperationRun table
-- (spec 054) folded from the run's events with the domain's `evolve`, plus what auditors and
-- pollers need. Table names are unqualified: the projector runs this in the version's own
-- schema, and the view public.operation_runs shows the active version.

CREATE TABLE operation_runs (
    -- Run ids are UUIDs (the seed's BigInt key is replaced: docs/adr/0007).
    id                uuid        PRIMARY KEY,
    tenant_id         bigint      NOT NULL,
    -- The initiating user; NULL for system and scheduler runs.
    user_id           bigint,
    initiator_name    text        NOT NULL,
    type              text        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('queued', 'running', 'completed')),
    outcome           text        NOT NULL CHECK (outcome IN ('pending', 'succeeded',
                                      'partially_succeeded', 'failed', 'cancelled')),
    run_identity_hash text        NOT NULL,
    summary_counts    jsonb       NOT NULL,
    failure_summary   jsonb       NOT NULL,
    context           jsonb       NOT NULL,
    started_at        timestamptz,
    completed_at      timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    -- The identity inputs the hash was computed from.
    identity          jsonb       NOT NULL,
    -- The stream version folded so far, and the last event's place in the log and record time.
    version           bigint      NOT NULL,
    last_position     bigint      NOT NULL,
    last_tx_id        bigint      NOT NULL,
    last_event_at     timestamptz NOT NULL
);

-- The seed's indexes: filtering by type, the default sort, and one active run per identity.
-- The id as last key makes each a keyset-pagination index for (tenant_id, created_at, id).
CREATE INDEX operation_runs_tenant_type_created_idx
    ON operation_runs (tenant_id, type, created_at, id);
CREATE INDEX operation_runs_tenant_created_idx
    ON operation_runs (tenant_id, created_at, id);
CREATE UNIQUE INDEX operation_runs_active_identity_idx
    ON operation_runs (tenant_id, run_identity_hash) WHERE status IN ('queued', 'running');
