-- The first send of each Idempotency-Key claims it before its command runs: the request it
-- stands for, and the time its command is stamped with. Every later or concurrent send of the
-- key reads the claim, so concurrent sends decide the same events (the store then appends them
-- once) and a send with another request is refused at once. A send whose command is refused
-- releases its claim, so that a retry is a new attempt, as before any send (docs/adr/0012).

CREATE TABLE idempotency_claims (
    tenant_id     bigint      NOT NULL,
    key           text        NOT NULL,
    -- SHA-256 of method, path and body, as in idempotency_keys.
    request_hash  bytea       NOT NULL CHECK (length(request_hash) = 32),
    -- The time of the key's command (the server's clock at the first send).
    command_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

GRANT SELECT, INSERT, DELETE ON idempotency_claims TO runledger_app;
