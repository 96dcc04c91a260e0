//! The application role (a login role in `runledger_app`, as `serve` and `project` run): every
//! statement that would change, disable or drop the log is refused; and `serve` as that role on
//! a database that is not migrated does not migrate, it fails naming `runledger migrate`.

use std::time::Duration;

use serde_json::json;

use crate::helpers::TestStore;
use crate::helpers::verbs::{new_run_id, queue, request, tenant};
use runledger_store::{CommandHandler, EventReader, EventWriter};

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
