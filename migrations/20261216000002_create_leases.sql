-- Leaderships held by lease (docs/adr/0024): one row per leadership (a projection's versions of
-- one code fingerprint, the sweeper), taken and renewed with the database's clock, so that a
-- leader that stops renewing (paused, hung in a step, its connection still open) loses it within
-- the lease's duration and another process takes over. The epoch grows by one at every change of
-- holder (or a lapse of the same holder's lease): a leader's batch commits only if the lease
-- still has the epoch it took, checked in the batch's transaction (the fence).
--
-- A lease is coordination state, not a fact: rows are updated in place, never audited.

CREATE TABLE leases (
    name        text        PRIMARY KEY,
    -- Who holds it: the process and a random id of the holder within it.
    holder      text        NOT NULL,
    epoch       bigint      NOT NULL CHECK (epoch > 0),
    -- The database's clock when this holder took it, last renewed it, and when it lapses.
    acquired_at timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

GRANT SELECT, INSERT, UPDATE ON leases TO runledger_app;
