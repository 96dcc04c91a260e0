//! The application role (a login role in `runledger_app`, as `serve` and `project` run): every
//! statement that would change, disable or drop the log is refused; and `serve` as that role on
//! a database that is not migrated does not migrate, it fails naming `runledger migrate`.

use std::time::Duration;

use serde_json::json;

use crate::helpers::verbs::{new_run_id, queue, request, tenant};
use crate::helpers::{TestStore, as_application_role, empty_database, test_pool};
use crate::projections::support::{drain, options};
use runledger_projections::{ProjectionsConfig, Projector};
use runledger_store::MIGRATOR;
use runledger_store::{CommandHandler, EventReader, EventWriter};
use sqlx::migrate::Migrator;

use runledger_cli::local_server::LocalServer;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use super::support::{Cluster, SpawnedServe};
use crate::client::cli::Serve;

/// PostgreSQL's SQLSTATE for a privilege the role lacks (or an object it does not own).
const INSUFFICIENT_PRIVILEGE: &str = "42501";

#[tokio::test]
async fn as_the_application_role_statements_that_change_or_drop_events_are_refused() {
    let store = TestStore::new().await;
    let t = tenant(1);
    store.queue_run(t, new_run_id(), json!({})).await;
    let statements = [
        "ALTER TABLE events DISABLE TRIGGER USER",
        "ALTER TABLE events DISABLE TRIGGER ALL",
        "DROP TABLE events",
        "UPDATE events SET payload = '{}'::jsonb",
        "DELETE FROM events",
        "TRUNCATE events",
        // What a superuser's tampering uses to skip the append-only triggers.
        "SET session_replication_role = replica",
    ];
    for statement in statements {
        let error = sqlx::raw_sql(statement)
            .execute(&store.app_pool)
            .await
            .expect_err(statement);
        let code = error
            .as_database_error()
            .and_then(|db| db.code())
            .map(|code| code.into_owned());
        assert_eq!(
            code.as_deref(),
            Some(INSUFFICIENT_PRIVILEGE),
            "{statement}: {error}"
        );
    }
    assert_eq!(store.count("events").await, 1, "nothing was changed");
    // It still does what the server needs: it reads the log and appends through the store.
    let reader = EventReader::new(store.app_pool.clone());
    let commands = CommandHandler::new(reader.clone(), EventWriter::new(store.app_pool.clone()));
    let run = new_run_id();
    commands
        .execute(&request(t, run, queue(t, run, json!({"as": "app"}))))
        .await
        .expect("the application role appends");
    assert_eq!(reader.count_runs().await.expect("it reads the log"), 2);
}

/// The migration that hands the read models to `runledger_app`.
const GRANTS_MIGRATION: i64 = 20_261_216_000_001;

/// The owner of the upgraded database: not a superuser, with `CREATEROLE` (which the first
/// migration needs for `runledger_app`), and not a member of `runledger_app`.
const OWNER_SQL: &str = "DO $$ BEGIN \
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'runledger_it_owner') THEN \
        CREATE ROLE runledger_it_owner LOGIN CREATEROLE PASSWORD 'runledger_it_owner'; \
    END IF; END $$; \
    REVOKE runledger_app FROM runledger_it_owner";

#[tokio::test]
async fn read_models_the_owner_built_before_the_grants_pass_to_runledger_app() {
    let options = empty_database().await;
    let database = options.get_database().expect("a database name").to_owned();
    let superuser = test_pool(options.clone()).await;
    sqlx::raw_sql(&format!(
        "{OWNER_SQL}; ALTER DATABASE {database} OWNER TO runledger_it_owner"
    ))
    .execute(&superuser)
    .await
    .expect("an owner that is not a superuser");
    superuser.close().await;
    let owner = test_pool(
        options
            .clone()
            .username("runledger_it_owner")
            .password("runledger_it_owner"),
    )
    .await;
    // The release before: every migration up to this one, and the read models built by the
    // owner, as servers ran then.
    let before = tempfile::tempdir().expect("a directory");
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    for migration in MIGRATOR.iter().filter(|m| m.version < GRANTS_MIGRATION) {
        let name = format!(
            "{}_{}.sql",
            migration.version,
            migration.description.replace(' ', "_")
        );
        std::fs::copy(migrations.join(&name), before.path().join(&name)).expect("copy a migration");
    }
    Migrator::new(before.path())
        .await
        .expect("the earlier migrations")
        .run(&owner)
        .await
        .expect("apply the earlier migrations");
    let t = tenant(1);
    let run = new_run_id();
    let owner_commands = CommandHandler::new(
        EventReader::new(owner.clone()),
        EventWriter::new(owner.clone()),
    );
    owner_commands
        .execute(&request(t, run, queue(t, run, json!({"before": true}))))
        .await
        .expect("queue a run");
    // This code's projectors lead by the lease table of a later migration, which the release
    // before did not have (it led by advisory locks): the table stands in while the owner builds
    // the read models, and goes before the upgrade creates it.
    sqlx::raw_sql(include_str!(
        "../../../migrations/20261216000002_create_leases.sql"
    ))
    .execute(&owner)
    .await
    .expect("a stand-in lease table");
    project_both(&owner).await;
    sqlx::raw_sql("DROP TABLE leases")
        .execute(&owner)
        .await
        .expect("drop the stand-in");

    // The upgrade, as the owner.
    MIGRATOR
        .run(&owner)
        .await
        .expect("apply this release's migrations");
    let owners: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.oid::regclass::text, pg_get_userbyid(c.relowner)::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'v') AND (n.nspname LIKE 'proj\\_%' \
            OR c.oid IN ('public.operation_runs'::regclass, 'public.notifications'::regclass)) \
         ORDER BY 1",
    )
    .fetch_all(&owner)
    .await
    .expect("read the read models' owners");
    assert!(owners.len() >= 4, "{owners:?}");
    assert!(
        owners.iter().all(|(_, role)| role == "runledger_app"),
        "{owners:?}"
    );

    // The application role carries on with them: it appends, projects, and reads the views.
    let app = test_pool(as_application_role(&options)).await;
    let commands =
        CommandHandler::new(EventReader::new(app.clone()), EventWriter::new(app.clone()));
    let after = new_run_id();
    commands
        .execute(&request(t, after, queue(t, after, json!({"after": true}))))
        .await
        .expect("queue a run as the application role");
    project_both(&app).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM public.operation_runs")
        .fetch_one(&app)
        .await
        .expect("read the view as the application role");
    assert_eq!(rows, 2);
}

/// Drives both projections to the end of the log on `pool`, then gives their leases up.
async fn project_both(pool: &sqlx::PgPool) {
    let config = ProjectionsConfig::default();
    let mut runs = Projector::new(pool.clone(), config.operation_runs(), options());
    drain(&mut runs).await;
    runs.release().await;
    let mut notices = Projector::new(pool.clone(), config.notifications(pool), options());
    drain(&mut notices).await;
    notices.release().await;
}

#[tokio::test]
async fn serve_as_the_application_role_on_an_unmigrated_database_fails_naming_migrate() {
    let cluster = Cluster::start().await;
    // The cluster has `runledger_app` and the login role, but the ledger's database has no
    // schema: the owner never ran `runledger migrate` on it.
    let mut admin = cluster.superuser("postgres").await;
    sqlx::raw_sql("CREATE ROLE runledger_app NOLOGIN")
        .execute(&mut admin)
        .await
        .expect("create runledger_app");
    cluster.create_application_role().await;

    let mut serve = SpawnedServe::spawn(&cluster.application_url(), &[]);
    let status = serve.exit_status(Duration::from_secs(60));
    assert!(!status.success(), "serve exited with {status}");
    let log = serve.log();
    assert!(log.contains("runledger migrate"), "{log}");
    assert!(log.contains("not migrated"), "{log}");
    assert!(
        log.contains("20261216000001"),
        "the missing migrations are named: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_serves_as_a_login_role_in_runledger_app() {
    let serve = tokio::task::spawn_blocking(Serve::start)
        .await
        .expect("start serve");
    let (record, _) = LocalServer::running(&serve.data_dir()).expect("serve recorded itself");
    let mut owner: PgConnection = record
        .database_url
        .parse::<PgConnectOptions>()
        .expect("the record's URL")
        .disable_statement_logging()
        .connect()
        .await
        .expect("connect as the embedded owner");
    let serving_roles: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT usename::text FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY 1",
    )
    .fetch_all(&mut owner)
    .await
    .expect("read the sessions");
    assert_eq!(serving_roles, ["runledger_server"], "serve's connections");
    // What its projectors built belongs to the group, not to the login role or the owner.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let view_owner = loop {
        let owner_name: Option<String> = sqlx::query_scalar(
            "SELECT pg_get_userbyid(relowner)::text FROM pg_class \
             WHERE oid = to_regclass('public.operation_runs')",
        )
        .fetch_optional(&mut owner)
        .await
        .expect("read the view's owner");
        if let Some(name) = owner_name {
            break name;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the read model was not built"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(view_owner, "runledger_app");
    owner.close().await.expect("close");
    let mut serve = serve;
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .expect("stop serve");
}
