-- The notification feed: a notice to the initiating user when a run is queued and when it
-- completes; system runs notify no one. Notice ids are deterministic (UUIDv5 of the run id and
-- the kind), so rebuilding the feed recreates the same notices and read state, kept in
-- public.notification_reads, still applies. Table names are unqualified: the projector runs
-- this in the version's own schema, and the view public.notifications shows the active version.
-- No link is stored: the "View run" link is built when a notice is read, from the tenant, the run
-- and the public URL of the process that serves it, so no per-process setting shapes the rows or
-- the fingerprint (docs/adr/0025).

CREATE TABLE notifications (
    id          uuid        PRIMARY KEY,
    tenant_id   bigint      NOT NULL,
    user_id     bigint      NOT NULL,
    run_id      uuid        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('queued', 'completed')),
    title       text        NOT NULL,
    body        text        NOT NULL,
    -- The run's outcome when the notice was made (pending for queued notices).
    outcome     text        NOT NULL,
    -- When the event happened, as its command said.
    created_at  timestamptz NOT NULL,
    -- The log position of the event the notice comes from.
    position    bigint      NOT NULL
);

-- A user's feed, newest first, with the id as keyset tie-breaker.
CREATE INDEX notifications_user_created_idx
    ON notifications (tenant_id, user_id, created_at DESC, id DESC);
