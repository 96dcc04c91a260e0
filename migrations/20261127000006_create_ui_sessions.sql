-- Sessions of the monitoring pages: a browser signs in with an API token once and then carries
-- a random session id in an HttpOnly cookie instead of the token.

CREATE TABLE ui_sessions (
    -- SHA-256 of the cookie's secret; the secret itself is only in the browser.
    session_hash  bytea       PRIMARY KEY CHECK (length(session_hash) = 32),
    -- The session acts as this token: revoking the token ends its sessions at once.
    token_id      uuid        NOT NULL REFERENCES api_tokens (id),
    -- Sent back in every state-changing form of the session (cross-site request forgery).
    csrf_token    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);

CREATE INDEX ui_sessions_expires_at ON ui_sessions (expires_at);

GRANT SELECT, INSERT, DELETE ON ui_sessions TO runledger_app;
