//! Plans that cannot go bad: no hot statement is planned as a sequential scan of the log.
//!
//! PostgreSQL caches a generic plan per prepared statement, and keeps it however the tables
//! grow: a plan chosen while `events` was small (where a sequential scan is cheapest) scans
//! the whole log at every call once it is large (issue 12). So each statement is EXPLAINed
//! with generic plans forced, in the session settings it runs with, on a small and on a large
//! log, and none may scan `events` (nor, for the writer, `streams` or `active_runs`).

use runledger_store::append::statement::{WRITER_SESSION, WRITER_STATEMENTS};
use runledger_store::read::READ_STATEMENTS;
use sqlx::PgConnection;
use sqlx::pool::PoolConnection;

use crate::helpers::TestStore;
use crate::helpers::verbs::{new_run_id, tenant};

/// The tables the writer's statements must reach through their indexes.
const WRITER_TABLES: [&str; 3] = ["events", "streams", "active_runs"];

/// A log of a few queued runs, analyzed: the planner knows it is tiny.
async fn small_log() -> TestStore {
    let store = TestStore::new().await;
    let t = tenant(1);
    for i in 0..3 {
        store
            .queue_run(t, new_run_id(), serde_json::json!({"small": i}))
            .await;
    }
    analyze(&store).await;
    store
}

/// A log of 200,000 events (and as many runs, a quarter of them active), analyzed.
async fn large_log() -> TestStore {
    let store = small_log().await;
    grow(&store).await;
    store
}

/// Adds 200,000 events (and as many runs, a quarter of them active) and analyzes the tables.
/// Inserted in bulk as the tables' owner: the append-only triggers allow inserts.
async fn grow(store: &TestStore) {
    sqlx::raw_sql(
        "INSERT INTO events (event_id, tenant_id, run_id, version, event_type, schema_version,
                             payload, metadata, recorded_at, prev_hash, hash)
         SELECT gen_random_uuid(), 1 + i % 7, gen_random_uuid(), 1, 'Queued', 1, '{}', '{}',
                now(), decode(repeat('00', 32), 'hex'), sha256(int8send(i))
         FROM generate_series(1, 200000) AS i;
         INSERT INTO streams (run_id, tenant_id, version, last_hash)
         SELECT run_id, tenant_id, version, hash FROM events WHERE event_type = 'Queued'
         ON CONFLICT DO NOTHING;
         INSERT INTO active_runs (tenant_id, run_identity_hash, run_id)
         SELECT tenant_id, encode(sha256(last_hash), 'hex'), run_id FROM streams
         WHERE get_byte(last_hash, 31) % 4 = 0
         ON CONFLICT DO NOTHING;",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    analyze(store).await;
}

async fn analyze(store: &TestStore) {
    sqlx::raw_sql("ANALYZE events; ANALYZE streams; ANALYZE active_runs;")
        .execute(&store.pool)
        .await
        .unwrap();
}

/// The generic plan of `sql` in a session set up by `session` (if any).
async fn generic_plan(store: &TestStore, session: Option<&str>, sql: &str) -> String {
    // A connection of its own, closed afterwards: session settings and prepared statements
    // must not leak into the pool.
    let mut pooled: PoolConnection<sqlx::Postgres> = store.pool.acquire().await.unwrap();
    let conn: &mut PgConnection = &mut pooled;
    if let Some(session) = session {
        sqlx::query(session).execute(&mut *conn).await.unwrap();
    }
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql(&format!("PREPARE hot AS {sql}"))
        .execute(&mut *conn)
        .await
        .unwrap();
    let parameters = vec!["NULL"; parameter_count(sql)].join(", ");
    let execute = if parameters.is_empty() {
        "EXECUTE hot".to_owned()
    } else {
        format!("EXECUTE hot({parameters})")
    };
    let lines: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {execute}"))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    // Not returned to the pool: its session was changed.
    pooled.close().await.unwrap();
    lines.join("\n")
}

/// The highest `$n` in `sql`.
fn parameter_count(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().ok()
        })
        .max()
        .unwrap_or(0)
}

#[track_caller]
fn assert_no_scan_of(tables: &[&str], name: &str, plan: &str) {
    for table in tables {
        assert!(
            !plan.contains(&format!("Seq Scan on {table}")),
            "{name} scans {table}:\n{plan}"
        );
    }
}

async fn writer_statements_use_indexes(store: &TestStore) {
    for (name, sql) in WRITER_STATEMENTS {
        let plan = generic_plan(store, Some(WRITER_SESSION), sql).await;
        assert_no_scan_of(&WRITER_TABLES, name, &plan);
    }
}

#[tokio::test]
async fn the_writers_statements_never_scan_a_small_log() {
    let store = small_log().await;
    writer_statements_use_indexes(&store).await;
    // The fixture is small enough to tempt the planner: without the writer's session settings,
    // the lookup of stored event ids would be cached as a sequential scan.
    let (_, read_stored) = WRITER_STATEMENTS[1];
    let plan = generic_plan(&store, None, read_stored).await;
    assert!(plan.contains("Seq Scan on events"), "{plan}");
}

#[tokio::test]
async fn the_writers_statements_never_scan_a_large_log() {
    let store = large_log().await;
    writer_statements_use_indexes(&store).await;
}

#[tokio::test]
async fn the_readers_statements_never_scan_a_large_log() {
    let store = large_log().await;
    for (name, sql) in READ_STATEMENTS {
        let plan = generic_plan(&store, None, sql).await;
        assert_no_scan_of(&["events"], name, &plan);
    }
}

/// The plan of each prepared statement, as `EXPLAIN EXECUTE` shows it on `conn` now.
async fn explain_each<'a>(
    conn: &mut PgConnection,
    prepared: &[(&'a str, String)],
) -> Vec<(&'a str, String)> {
    let mut plans = Vec::new();
    for (name, explain) in prepared {
        let lines: Vec<String> = sqlx::query_scalar(explain)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        plans.push((*name, lines.join("\n")));
    }
    plans
}

#[tokio::test]
async fn a_readers_plan_made_while_the_log_was_tiny_is_made_again_once_it_has_grown() {
    // On a log of one page every reader's statement reads the page (the planner's right
    // choice there, and the readers run on the caller's pool, without the writer's session
    // settings). A plan cached then is not kept: analyzing the grown log (autovacuum does it
    // as the log grows) makes PostgreSQL plan the statement again, on the index.
    let store = small_log().await;
    let mut conn = store.pool.acquire().await.unwrap();
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await
        .unwrap();
    let mut prepared = Vec::new();
    for (i, (name, sql)) in READ_STATEMENTS.iter().enumerate() {
        sqlx::raw_sql(&format!("PREPARE read_{i} AS {sql}"))
            .execute(&mut *conn)
            .await
            .unwrap();
        let parameters = vec!["NULL"; parameter_count(sql)].join(", ");
        prepared.push((*name, format!("EXPLAIN EXECUTE read_{i}({parameters})")));
    }
    let tiny = explain_each(&mut conn, &prepared).await;
    assert!(
        tiny.iter()
            .any(|(_, plan)| plan.contains("Seq Scan on events")),
        "the tiny log tempts the planner: {tiny:?}"
    );
    grow(&store).await;
    for (name, plan) in explain_each(&mut conn, &prepared).await {
        assert_no_scan_of(&["events"], name, &plan);
    }
    // Not returned to the pool: its session was changed.
    conn.close().await.unwrap();
}
