-- The projection registry: which versions of each read model exist, where their tables live,
-- how far each has read the log, and the events they could not apply. The read models' own
-- tables live in projections/ (one Postgres schema per version), not here: they are rebuilt,
-- never migrated. See docs/adr/0006-projection-versions-and-switch.md.

-- One row per version of a projection. A version is a fingerprint of the projection's DDL, code
-- version and configuration, plus a generation that an operator's rebuild of the same
-- fingerprint increments. Its tables live in the Postgres schema `schema_name`.
CREATE TABLE projection_versions (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection          text        NOT NULL,
    -- SHA-256 (hex) of the DDL, the code version and the configuration.
    fingerprint         text        NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    generation          integer     NOT NULL CHECK (generation > 0),
    schema_name         text        NOT NULL UNIQUE,
    -- building: filled side by side, not read; active: the one the public views show (at most
    -- one per projection); retired: replaced, its schema dropped after a grace period;
    -- cancelled: a rebuild given up.
    status              text        NOT NULL
                        CHECK (status IN ('building', 'active', 'retired', 'cancelled')),
    -- The last event applied (or skipped), as a log cursor; (0, 0) is before the first event.
    checkpoint_tx_id    bigint      NOT NULL DEFAULT 0,
    checkpoint_position bigint      NOT NULL DEFAULT 0,
    events_applied      bigint      NOT NULL DEFAULT 0,
    events_skipped      bigint      NOT NULL DEFAULT 0,
    -- Set while an event this version cannot apply stops it (see projection_poison).
    halted_position     bigint,
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    activated_at        timestamptz,
    retired_at          timestamptz,
    -- Set once the schema of a retired or cancelled version is dropped.
    dropped_at          timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projection_versions_generation_key UNIQUE (projection, fingerprint, generation)
);

-- At most one active and one building version per projection.
CREATE UNIQUE INDEX projection_versions_one_active_idx
    ON projection_versions (projection) WHERE status = 'active';
CREATE UNIQUE INDEX projection_versions_one_building_idx
    ON projection_versions (projection) WHERE status = 'building';

-- Events a projection version could not apply: recorded, never silently dropped. The version
-- halts at the first one until an operator skips it (`runledger projections skip`).
CREATE TABLE projection_poison (
    version_id  bigint      NOT NULL REFERENCES projection_versions (id) ON DELETE CASCADE,
    projection  text        NOT NULL,
    position    bigint      NOT NULL,
    tx_id       bigint      NOT NULL,
    error       text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    skipped_at  timestamptz,
    PRIMARY KEY (version_id, position)
);

-- Read/unread state of notices: user state, not derived from events, so it lives outside every
-- versioned schema and survives rebuilds of the feed (notice ids are deterministic).
CREATE TABLE notification_reads (
    notification_id uuid        PRIMARY KEY,
    user_id         bigint      NOT NULL,
    tenant_id       bigint      NOT NULL,
    read_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX notification_reads_user_idx ON notification_reads (tenant_id, user_id);

GRANT SELECT ON projection_versions, projection_poison TO runledger_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_reads TO runledger_app;
