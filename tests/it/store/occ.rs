//! Optimistic concurrency: of many appends racing at one expected version, exactly one wins.

use std::sync::Arc;

use futures_util::future::join_all;
use runledger_store::chain::verify_chain;
use runledger_store::error::StoreError;
use runledger_store::read::LogCursor;
use runledger_store::{AppendOutcome, append::Appended};
use serde_json::json;
use tokio::sync::Barrier;

use crate::helpers::TestStore;
use crate::helpers::verbs::{new_event, new_run_id, queue, request, started_event, tenant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_racing_appends_at_one_version_give_one_success_and_typed_conflicts() {
    let store = TestStore::new().await;
    let (t, run) = (tenant(1), new_run_id());
    store
        .commands
        .execute(&request(t, run, queue(t, run, json!({"k": "occ"}))))
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(50));
    let tasks = (0..50).map(|i| {
        let writer = store.writer.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            let event = new_event(started_event(i));
            barrier.wait().await;
            writer.append(t, run, 1, &[event]).await
        })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect();

    let appended: Vec<&Appended> = results
        .iter()
        .filter_map(|r| match r {
            Ok(AppendOutcome::Appended(a)) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(appended.len(), 1, "{results:?}");
    assert_eq!(appended[0].version, 2);
    assert!(!appended[0].replayed);
    let conflicts = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(StoreError::Conflict { run: r, expected: 1, actual: 2 }) if *r == run
            )
        })
        .count();
    assert_eq!(conflicts, 49, "{results:?}");

    let stored = store.reader.read_stream(t, run).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].position, appended[0].positions[0]);
    assert_eq!(verify_chain(&stored), Ok(2));
    assert_eq!(store.count("events").await, 2);
    let log = store.wait_for_log(LogCursor::START, 2).await;
    assert_eq!(log, stored);
}

#[tokio::test]
async fn an_append_at_a_stale_version_is_a_typed_conflict_and_writes_nothing() {
    let store = TestStore::new().await;
    let (t, run) = (tenant(1), new_run_id());
    store
        .commands
        .execute(&request(t, run, queue(t, run, json!({"k": "stale"}))))
        .await
        .unwrap();
    for expected in [0, 2, 7] {
        let outcome = store
            .writer
            .append(t, run, expected, &[new_event(started_event(1))])
            .await;
        assert!(
            matches!(outcome, Err(StoreError::Conflict { expected: e, actual: 1, .. }) if e == expected),
            "{outcome:?}"
        );
    }
    assert_eq!(store.count("events").await, 1);
}

#[tokio::test]
async fn another_tenant_cannot_append_to_a_run() {
    let store = TestStore::new().await;
    let run = new_run_id();
    store
        .commands
        .execute(&request(
            tenant(1),
            run,
            queue(tenant(1), run, json!({"k": "owned"})),
        ))
        .await
        .unwrap();
    let outcome = store
        .writer
        .append(tenant(2), run, 1, &[new_event(started_event(1))])
        .await;
    assert!(
        matches!(outcome, Err(StoreError::Conflict { .. })),
        "{outcome:?}"
    );
    assert_eq!(store.count("events").await, 1);
}
