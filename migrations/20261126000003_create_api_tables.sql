-- The HTTP API's own state: bearer tokens (stored only as hashes) and idempotency keys.

CREATE TABLE api_tokens (
    id          uuid        PRIMARY KEY,
    -- SHA-256 of the secret; the secret itself is shown once, at creation, and never stored.
    token_hash  bytea       NOT NULL CHECK (length(token_hash) = 32),
    tenant_id   bigint      NOT NULL CHECK (tenant_id > 0),
    role        text        NOT NULL CHECK (role IN ('reader', 'writer', 'auditor', 'admin')),
    -- Set for a user's own token: the notification feed reads it.
    user_id     bigint      CHECK (user_id > 0),
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash)
);

-- The first answer to each command sent with an Idempotency-Key, per tenant.
CREATE TABLE idempotency_keys (
    tenant_id     bigint      NOT NULL,
    key           text        NOT NULL,
    -- SHA-256 of method, path and body: the same key with another request is refused.
    request_hash  bytea       NOT NULL,
    status        smallint    NOT NULL,
    body          jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

GRANT SELECT ON api_tokens TO runledger_app;
GRANT SELECT, INSERT ON idempotency_keys TO runledger_app;
