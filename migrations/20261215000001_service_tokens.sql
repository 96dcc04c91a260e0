-- Service tokens (docs/adr/0018): a token acts for a list of tenants, or for all of them, so
-- one product service serving many tenants holds one token. `tenant_id` stays the token's home
-- (where its pages open, whose feed a user's token reads) and is always in the list.
-- `last_used_at` is written at most once a minute per token, from the lookup that authenticates
-- it, which the server's caller cache already makes rare.
ALTER TABLE api_tokens
    ADD COLUMN tenant_ids   bigint[]    NOT NULL DEFAULT '{}',
    ADD COLUMN all_tenants  boolean     NOT NULL DEFAULT false,
    ADD COLUMN last_used_at timestamptz;

-- Until now a token acted for its tenant, and an admin for every tenant.
UPDATE api_tokens SET tenant_ids = ARRAY[tenant_id], all_tenants = (role = 'admin');

ALTER TABLE api_tokens
    ADD CONSTRAINT api_tokens_home_is_listed CHECK (all_tenants OR tenant_id = ANY (tenant_ids)),
    ADD CONSTRAINT api_tokens_admin_acts_for_all CHECK (role <> 'admin' OR all_tenants);

-- The token API creates and revokes tokens as the server's role.
GRANT INSERT ON api_tokens TO runledger_app;
GRANT UPDATE (revoked_at, last_used_at) ON api_tokens TO runledger_app;
