//! Safe log order, deterministically: a reader never passes a writer that is still open.
//!
//! Transaction A inserts an event and stays open; B appends and commits after it. B's position is
//! larger than A's, so a reader paging by position alone would read B, move past A's position,
//! and never see A once it commits. The store's reader must hold back at A instead.

use runledger_core::{Run, RunId, RunStatus, TenantId, decide};
use runledger_store::chain::GENESIS;
use runledger_store::{CommandOutcome, LogCursor, RecordedEvent};
use serde_json::json;

use crate::helpers::verbs::{new_run_id, queue, request, start, tenant};
use crate::helpers::{RawEvent, TestStore, insert_raw_event};

/// A committed first event `E0`, already readable, and the cursor just after it.
async fn committed_first_event(store: &TestStore, t: TenantId, run: RunId) -> LogCursor {
    store.queue_run(t, run, json!({"k": "e0"})).await;
    let first = store.wait_for_log(LogCursor::START, 1).await;
    assert_eq!(first[0].run_id, run);
    LogCursor::after(&first[0])
}

/// Appends B (a `Start` of `run`) through the command path; it commits.
async fn append_b(store: &TestStore, t: TenantId, run: RunId) -> i64 {
    let CommandOutcome::Applied { position, run, .. } = store
        .commands
        .execute(&request(t, run, start()))
        .await
        .unwrap()
    else {
        panic!("start applies")
    };
    assert_eq!(run.status, RunStatus::Running);
    position
}

/// A's event: a well-formed `Queued` of a run of its own.
async fn insert_a(conn: &mut sqlx::PgConnection, t: TenantId) -> RawEvent {
    let run = new_run_id();
    let queued = decide(&Run::Unqueued, queue(t, run, json!({"k": "a"})))
        .unwrap()
        .remove(0);
    insert_raw_event(conn, t, run, 1, GENESIS, &queued).await
}

/// While A is open: the reader returns nothing past E0, and B counts as blocked.
async fn assert_held_back_at_a(store: &TestStore, after_e0: LogCursor) {
    assert_eq!(
        store.reader.read_log(after_e0, 100, None).await.unwrap(),
        vec![]
    );
    let from_start = store
        .reader
        .read_log(LogCursor::START, 100, None)
        .await
        .unwrap();
    assert_eq!(from_start.len(), 1, "only E0: {from_start:?}");
    assert_eq!(store.reader.blocked_events(after_e0).await.unwrap(), 1);
}

#[track_caller]
fn ids(events: &[RecordedEvent]) -> Vec<uuid::Uuid> {
    events.iter().map(|e| e.event_id.as_uuid()).collect()
}

#[tokio::test]
async fn a_reader_waits_for_an_open_writer_then_reads_it_before_later_commits() {
    let store = TestStore::new().await;
    let (t, run) = (tenant(1), new_run_id());
    let after_e0 = committed_first_event(&store, t, run).await;

    let mut a = store.pool.begin().await.unwrap();
    let event_a = insert_a(&mut a, t).await;
    let position_b = append_b(&store, t, run).await;
    // The case that loses events when paging by position: B is above A and commits first.
    assert!(event_a.position < position_b);
    assert_held_back_at_a(&store, after_e0).await;

    a.commit().await.unwrap();
    let log = store.wait_for_log(after_e0, 2).await;
    assert_eq!(log[0].event_id, event_a.event_id);
    assert_eq!(log[0].tx_id, event_a.tx_id);
    assert_eq!(log[1].position, position_b);
    assert!(log[0].tx_id < log[1].tx_id);
    // Nothing after B, and the whole log holds each event exactly once.
    assert_eq!(
        store
            .reader
            .read_log(LogCursor::after(&log[1]), 100, None)
            .await
            .unwrap(),
        vec![]
    );
    let all = store
        .reader
        .read_log(LogCursor::START, 100, None)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(ids(&all[1..]), ids(&log));
    assert_eq!(
        store
            .reader
            .blocked_events(LogCursor::after(&log[1]))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_reader_is_not_stalled_by_a_writer_that_rolls_back() {
    let store = TestStore::new().await;
    let (t, run) = (tenant(1), new_run_id());
    let after_e0 = committed_first_event(&store, t, run).await;

    let mut a = store.pool.begin().await.unwrap();
    let event_a = insert_a(&mut a, t).await;
    let position_b = append_b(&store, t, run).await;
    assert_held_back_at_a(&store, after_e0).await;

    a.rollback().await.unwrap();
    let log = store.wait_for_log(after_e0, 1).await;
    assert_eq!(log[0].position, position_b);
    assert_eq!(
        store
            .reader
            .read_log(LogCursor::after(&log[0]), 100, None)
            .await
            .unwrap(),
        vec![]
    );
    let stored_a: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_id = $1")
        .bind(event_a.event_id.as_uuid())
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(stored_a, 0);
}

#[tokio::test]
async fn the_log_follows_transaction_order_even_when_positions_disagree() {
    let store = TestStore::new().await;
    let (t, run) = (tenant(1), new_run_id());
    let after_e0 = committed_first_event(&store, t, run).await;

    // A takes its transaction id first, but inserts only after B has committed.
    let mut a = store.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *a)
        .await
        .unwrap();
    let position_b = append_b(&store, t, run).await;
    assert_eq!(
        store.reader.read_log(after_e0, 100, None).await.unwrap(),
        vec![]
    );
    let event_a = insert_a(&mut a, t).await;
    assert!(event_a.position > position_b);
    assert_held_back_at_a(&store, after_e0).await;

    a.commit().await.unwrap();
    let log = store.wait_for_log(after_e0, 2).await;
    assert_eq!(log[0].event_id, event_a.event_id);
    assert_eq!(log[1].position, position_b);
    assert_eq!(
        store
            .reader
            .read_log(LogCursor::after(&log[1]), 100, None)
            .await
            .unwrap(),
        vec![]
    );
}
