//! The database itself refuses to change or remove stored events, even for a superuser.

use runledger_store::{CommandHandler, EventReader, EventWriter, RecordedEvent};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

use crate::helpers::TestStore;
use crate::helpers::verbs::{complete, new_run_id, progress, queue, request, start, tenant};

/// A store holding one run of two events, and those events as read.
async fn store_with_events() -> (TestStore, Vec<RecordedEvent>) {
    let store = TestStore::new().await;
    let (t, run) = (tenant(1), new_run_id());
    store.queue_run(t, run, json!({"k": 1})).await;
    store
        .commands
        .execute(&request(t, run, start()))
        .await
        .unwrap();
    let events = store.reader.read_stream(t, run).await.unwrap();
    assert_eq!(events.len(), 2);
    (store, events)
}

/// Runs `statement` and expects the append-only trigger to refuse it.
#[track_caller]
fn assert_refused(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>, operation: &str) {
    let error = result.expect_err("the change is refused");
    let db = error.as_database_error().expect("a database error");
    assert_eq!(db.code().as_deref(), Some("42501"), "{db}");
    assert!(
        db.message()
            .contains(&format!("events are append-only: {operation}")),
        "{db}"
    );
}

#[tokio::test]
async fn update_delete_and_truncate_of_events_are_refused_even_for_a_superuser() {
    let (store, before) = store_with_events().await;
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert!(superuser, "the tests connect as a superuser");

    let statements = [
        ("UPDATE events SET payload = '{}'::jsonb", "UPDATE"),
        (
            "UPDATE events SET recorded_at = recorded_at WHERE version = 2",
            "UPDATE",
        ),
        ("DELETE FROM events", "DELETE"),
        ("DELETE FROM events WHERE version = 1", "DELETE"),
        ("TRUNCATE events", "TRUNCATE"),
        ("TRUNCATE events CASCADE", "TRUNCATE"),
        (
            "INSERT INTO events OVERRIDING SYSTEM VALUE SELECT * FROM events \
             ON CONFLICT (event_id) DO UPDATE SET version = 9",
            "UPDATE",
        ),
    ];
    for (statement, operation) in statements {
        assert_refused(sqlx::query(statement).execute(&store.pool).await, operation);
    }

    let after = store
        .reader
        .read_stream(before[0].tenant_id, before[0].run_id)
        .await
        .unwrap();
    assert_eq!(after, before);
    assert_eq!(store.count("events").await, 2);
}

#[tokio::test]
async fn the_application_role_may_read_and_append_but_not_change_events() {
    let (store, before) = store_with_events().await;
    // A pool whose every connection acts as the application role, as a deployment's would.
    let app_pool = PgPoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET ROLE runledger_app").execute(conn).await?;
                Ok(())
            })
        })
        .connect_with((*store.pool.connect_options()).clone())
        .await
        .unwrap();
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&app_pool)
        .await
        .unwrap();
    assert_eq!(role, "runledger_app");

    // The whole command path works with the role's grants: read, append, dedupe slot, free it.
    let reader = EventReader::new(app_pool.clone());
    let commands = CommandHandler::new(reader.clone(), EventWriter::new(app_pool.clone()));
    let (t, run) = (tenant(1), new_run_id());
    for command in [
        queue(t, run, json!({"k": "app"})),
        start(),
        progress(1, 0),
        complete(),
    ] {
        commands.execute(&request(t, run, command)).await.unwrap();
    }
    assert_eq!(reader.read_stream(t, run).await.unwrap().len(), 4);
    assert_eq!(
        store.active_runs().await.len(),
        1,
        "only the first store run"
    );

    for statement in [
        "UPDATE events SET payload = '{}'::jsonb",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let error = sqlx::query(statement)
            .execute(&app_pool)
            .await
            .expect_err("the application role may not change events");
        let db = error.as_database_error().expect("a database error");
        assert_eq!(db.code().as_deref(), Some("42501"), "{statement}: {db}");
        assert!(db.message().contains("permission denied"), "{db}");
    }
    let after = store
        .reader
        .read_stream(before[0].tenant_id, before[0].run_id)
        .await
        .unwrap();
    assert_eq!(after, before);
    assert_eq!(store.count("events").await, 6);
}
