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
    last_event_at     timestamptz NOT NULL,
    -- The lifecycle limits it was queued with, in seconds (NULL: no such limit), and the
    -- instants they pass (docs/adr/0013).
    start_deadline_seconds    integer,
    run_deadline_seconds      integer,
    heartbeat_timeout_seconds integer,
    start_deadline_at         timestamptz,
    run_deadline_at           timestamptz,
    -- When the heartbeat timeout passes as the log alone tells it: from the start or the latest
    -- progress report. Heartbeats are not events: the view adds the last one stored
    -- (public.run_heartbeats), and a run's deadline is the later of the two.
    log_heartbeat_deadline_at timestamptz,
    -- The worker that started it, when the start named one.
    worker                    text,
    -- The latest progress report: a heartbeat the log records.
    last_progress_at          timestamptz,
    -- The cancel request, once someone asked.
    cancel_requested_at       timestamptz,
    cancel_reason             text,
    -- Why it completed, as its Completed event says: {"reason": …} with the time-out or the
    -- cancellation it records; NULL until completed.
    completion                jsonb
);

-- The seed's indexes: filtering by type, the default sort, and one active run per identity.
-- The id as last key makes each a keyset-pagination index for (tenant_id, created_at, id).
CREATE INDEX operation_runs_tenant_type_created_idx
    ON operation_runs (tenant_id, type, created_at, id);
CREATE INDEX operation_runs_tenant_created_idx
    ON operation_runs (tenant_id, created_at, id);
CREATE UNIQUE INDEX operation_runs_active_identity_idx
    ON operation_runs (tenant_id, run_identity_hash) WHERE status IN ('queued', 'running');

-- The sweeper's candidates (docs/adr/0017): the runs whose limit, as the log tells it, has
-- passed. Each index holds only the runs its limit binds in their status, so a round reads the
-- overdue ones and none of the others.
CREATE INDEX operation_runs_start_deadline_idx
    ON operation_runs (start_deadline_at) WHERE status = 'queued' AND start_deadline_at IS NOT NULL;
CREATE INDEX operation_runs_run_deadline_idx
    ON operation_runs (run_deadline_at) WHERE status = 'running' AND run_deadline_at IS NOT NULL;
CREATE INDEX operation_runs_heartbeat_deadline_idx
    ON operation_runs (log_heartbeat_deadline_at)
    WHERE status = 'running' AND log_heartbeat_deadline_at IS NOT NULL;

-- The runs list's search (docs/adr/0019): an initiator's name, case-insensitive; a key=value
-- of the context or the identity, as a path match (`@?`) of the array [context, identity] that
-- this GIN index answers in one scan (jsonb_path_ops: smaller than the default operator class,
-- and it indexes `@?`); and the run page's related runs, the other runs of one identity. A run
-- id prefix is a range of the primary key and needs no index of its own.
CREATE INDEX operation_runs_tenant_initiator_name_idx
    ON operation_runs (tenant_id, lower(initiator_name));
CREATE INDEX operation_runs_attributes_idx
    ON operation_runs USING gin (('[]'::jsonb || context || identity) jsonb_path_ops);
CREATE INDEX operation_runs_tenant_identity_created_idx
    ON operation_runs (tenant_id, run_identity_hash, created_at);
