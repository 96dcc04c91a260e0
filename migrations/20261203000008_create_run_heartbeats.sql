-- The last heartbeat of each run, kept outside the log (docs/adr/0013): a liveness signal sent
-- every few seconds is not a fact anyone audits, so it is upserted here instead of appended as an
-- event. The log records a heartbeat only where it decides something: the time-out's Completed
-- carries the last heartbeat it was measured from. Written by the heartbeat route and by every
-- progress report of the API; read by the sweeper and, through the view public.operation_runs,
-- by the queries and the pages. A lost row can only make a run look older than it is.

CREATE TABLE run_heartbeats (
    tenant_id         bigint      NOT NULL CHECK (tenant_id > 0),
    run_id            uuid        NOT NULL,
    -- The server's clock at the latest heartbeat; it never moves back.
    last_heartbeat_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, run_id)
);

GRANT SELECT, INSERT, UPDATE ON run_heartbeats TO runledger_app;
