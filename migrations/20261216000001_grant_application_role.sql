-- Least privilege (docs/adr/0023): `serve` and `project` log in as a member of runledger_app,
-- which does not own the event store's tables. Earlier migrations granted what the command path,
-- the token API, the pages' sessions, anchoring and heartbeats need; this one adds what the
-- projectors need, and hands the read models' objects to runledger_app.
--
-- The projectors build each read model version in a schema of its own and point a view in
-- `public` at the active one: runledger_app creates schemas in this database and views in
-- `public`, and owns them, so that any of its members (any process) can replace or drop them.
-- A member logs in with `ALTER ROLE … SET role = runledger_app` (docs/deployment.md), so what it
-- creates belongs to runledger_app rather than to the login role.
DO $$
BEGIN
    EXECUTE format('GRANT CREATE ON DATABASE %I TO runledger_app', current_database());
END
$$;
GRANT CREATE ON SCHEMA public TO runledger_app;

-- The registry of versions: a projector registers versions, advances checkpoints, halts,
-- switches and retires; an operator's skip marks a poison event.
GRANT SELECT, INSERT, UPDATE ON projection_versions TO runledger_app;
GRANT SELECT, INSERT, UPDATE ON projection_poison TO runledger_app;

-- A process that does not own the schema checks that it is migrated before it serves.
GRANT SELECT ON _sqlx_migrations TO runledger_app;

-- Read models built before this migration (by the owner) become runledger_app's: their
-- schemas, every relation in them, and the public views over the active versions.
DO $$
DECLARE
    version record;
    relation record;
BEGIN
    -- Handing an object to a role takes being a member of it; an owner with CREATEROLE (the
    -- first migration made runledger_app with it) may make itself one.
    IF EXISTS (SELECT 1 FROM projection_versions)
        AND NOT pg_has_role(current_user, 'runledger_app', 'MEMBER') THEN
        EXECUTE format('GRANT runledger_app TO %I', current_user);
    END IF;
    FOR version IN
        SELECT v.schema_name FROM projection_versions v
        WHERE EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = v.schema_name)
    LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO runledger_app', version.schema_name);
        FOR relation IN
            SELECT c.relname, c.relkind FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = version.schema_name AND c.relkind IN ('r', 'p', 'v', 'm')
        LOOP
            -- A table's indexes and identity sequences follow it.
            EXECUTE format(
                CASE relation.relkind
                    WHEN 'v' THEN 'ALTER VIEW %I.%I OWNER TO runledger_app'
                    WHEN 'm' THEN 'ALTER MATERIALIZED VIEW %I.%I OWNER TO runledger_app'
                    ELSE 'ALTER TABLE %I.%I OWNER TO runledger_app'
                END,
                version.schema_name, relation.relname);
        END LOOP;
    END LOOP;
    FOR relation IN
        SELECT DISTINCT v.projection FROM projection_versions v
        WHERE to_regclass(format('public.%I', v.projection)) IS NOT NULL
    LOOP
        EXECUTE format('ALTER VIEW public.%I OWNER TO runledger_app', relation.projection);
    END LOOP;
END
$$;
