//! Writing without a read: a lane that knows a run's head (it wrote it) and the database clock
//! writes the next group at once, and what it knew wrongly costs a read, never a wrong answer.
//!
//! Two writers stand for two processes: each lane knows only what it read or wrote itself.

use runledger_core::RunId;
use runledger_store::chain::verify_chain;
use runledger_store::{AppendOutcome, EventWriter, StoreError, append::Appended};
use serde_json::json;

use crate::helpers::TestStore;
use crate::helpers::verbs::{
    new_event, new_run_id, progressed_event, queue_events, started_event, tenant,
};

#[track_caller]
fn appended(outcome: &Result<AppendOutcome, StoreError>) -> &Appended {
    match outcome {
        Ok(AppendOutcome::Appended(appended)) => appended,
        other => panic!("expected an append: {other:?}"),
    }
}

async fn database_now(store: &TestStore) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(&store.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_lane_wrote_is_appended_to_without_a_read_at_the_database_clock() {
    let store = TestStore::new().await;
    let t = tenant(1);
    let writer = EventWriter::new(store.pool.clone());
    let run = new_run_id();
    writer
        .append(t, run, 0, &queue_events(t, run, json!({"k": "known"})))
        .await
        .unwrap();

    let before = writer.stats();
    let earliest = database_now(&store).await;
    let started = writer
        .append(t, run, 1, &[new_event(started_event(1))])
        .await;
    let progressed = writer
        .append(
            t,
            run,
            2,
            &[
                new_event(progressed_event(1)),
                new_event(progressed_event(2)),
            ],
        )
        .await;
    let latest = database_now(&store).await;
    let after = writer.stats();

    assert_eq!(
        (appended(&started).version, appended(&progressed).version),
        (2, 4)
    );
    assert_eq!(after.unread_groups - before.unread_groups, 2, "{after:?}");
    assert_eq!(after.groups - before.groups, 2, "{after:?}");
    let stream = store.reader.read_stream(t, run).await.unwrap();
    assert_eq!(verify_chain(&stream), Ok(4));
    for event in &stream[1..] {
        // The estimate lags the database clock by about a round trip, never leads it.
        assert!(
            event.recorded_at >= earliest - chrono::Duration::milliseconds(250)
                && event.recorded_at <= latest,
            "{} not within {earliest} and {latest}",
            event.recorded_at
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_another_process_moved_is_a_conflict_decided_after_a_read() {
    let store = TestStore::new().await;
    let t = tenant(1);
    let ours = EventWriter::new(store.pool.clone());
    let theirs = EventWriter::new(store.pool.clone());
    let run = new_run_id();
    ours.append(t, run, 0, &queue_events(t, run, json!({"k": "moved"})))
        .await
        .unwrap();
    theirs
        .append(t, run, 1, &[new_event(started_event(1))])
        .await
        .unwrap();

    // Our lane still knows version 1: the write finds the head moved, and the read tells why.
    let stale = ours.append(t, run, 1, &[new_event(started_event(2))]).await;
    assert!(
        matches!(
            stale,
            Err(StoreError::Conflict {
                expected: 1,
                actual: 2,
                ..
            })
        ),
        "{stale:?}"
    );
    // And our lane knows the head it read: the next append is written without one.
    let before = ours.stats();
    let next = ours
        .append(t, run, 2, &[new_event(progressed_event(1))])
        .await;
    assert_eq!(appended(&next).version, 3);
    assert_eq!(ours.stats().unread_groups - before.unread_groups, 1);
    let stream = store.reader.read_stream(t, run).await.unwrap();
    assert_eq!(verify_chain(&stream), Ok(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_run_that_exists_or_whose_slot_is_taken_answers_as_after_a_read() {
    let store = TestStore::new().await;
    let t = tenant(1);
    let ours = EventWriter::new(store.pool.clone());
    let theirs = EventWriter::new(store.pool.clone());
    // Warm our lane's clock, so that new runs are written without a read.
    let warm = new_run_id();
    ours.append(t, warm, 0, &queue_events(t, warm, json!({"k": "warm"})))
        .await
        .unwrap();

    // A queue that the other process stored, re-sent to our lane: its first result.
    let resent_run = new_run_id();
    let resent = queue_events(t, resent_run, json!({"k": "resent"}));
    let original = appended(&theirs.append(t, resent_run, 0, &resent).await).clone();
    let again = ours.append(t, resent_run, 0, &resent).await;
    assert_eq!(
        appended(&again),
        &Appended {
            replayed: true,
            ..original
        }
    );

    // A new run whose identity the other process's active run holds: that run.
    let active: RunId = new_run_id();
    theirs
        .append(
            t,
            active,
            0,
            &queue_events(t, active, json!({"k": "taken"})),
        )
        .await
        .unwrap();
    let duplicate = new_run_id();
    let deduplicated = ours
        .append(
            t,
            duplicate,
            0,
            &queue_events(t, duplicate, json!({"k": "taken"})),
        )
        .await;
    assert_eq!(
        deduplicated.ok(),
        Some(AppendOutcome::Deduplicated { existing: active })
    );

    // A run the other process created, queued again at version 0 with other events: a conflict.
    let taken = new_run_id();
    theirs
        .append(t, taken, 0, &queue_events(t, taken, json!({"k": "first"})))
        .await
        .unwrap();
    let recreated = ours
        .append(t, taken, 0, &queue_events(t, taken, json!({"k": "second"})))
        .await;
    assert!(
        matches!(
            recreated,
            Err(StoreError::Conflict {
                expected: 0,
                actual: 1,
                ..
            })
        ),
        "{recreated:?}"
    );

    assert!(ours.stats().unread_groups >= 3, "{:?}", ours.stats());
    assert!(
        store
            .reader
            .read_stream(t, duplicate)
            .await
            .unwrap()
            .is_empty()
    );
    for run in [warm, resent_run, active, taken] {
        let stream = store.reader.read_stream(t, run).await.unwrap();
        assert_eq!(verify_chain(&stream), Ok(1), "{run}");
    }
}
