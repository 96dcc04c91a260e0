//! The live tail: events appended after it opened arrive promptly (woken by `NOTIFY`), in order.

use std::pin::pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use runledger_store::error::StoreError;
use runledger_store::tail::tail;
use runledger_store::{CommandOutcome, LogCursor, RecordedEvent};
use serde_json::json;

use crate::helpers::verbs::{complete, new_run_id, progress, request, start, tenant};
use crate::helpers::{LOG_WAIT, TestStore};

/// Far longer than any wait below: an event that arrives in time was announced by `NOTIFY`,
/// not found by polling.
const POLL: Duration = Duration::from_secs(600);

async fn next_event(
    stream: &mut (impl Stream<Item = Result<RecordedEvent, StoreError>> + Unpin),
) -> RecordedEvent {
    tokio::time::timeout(LOG_WAIT, stream.next())
        .await
        .expect("the tail delivers within the wait")
        .expect("the tail goes on")
        .expect("the tail reads")
}

#[tokio::test]
async fn events_appended_after_the_tail_opened_arrive_promptly_and_in_order() {
    let store = TestStore::new().await;
    let (t, run) = (tenant(1), new_run_id());
    store.queue_run(t, run, json!({"k": 1})).await;
    let mut stream = pin!(tail(store.reader.clone(), LogCursor::START, None, POLL));
    // The tail listens before its first read, so once it has yielded it cannot miss a NOTIFY.
    let first = next_event(&mut stream).await;
    assert_eq!((first.run_id, first.version), (run, 1));

    // One at a time: each append wakes the waiting tail.
    for command in [start(), progress(1, 0)] {
        let CommandOutcome::Applied { position, .. } = store
            .commands
            .execute(&request(t, run, command))
            .await
            .unwrap()
        else {
            panic!("the command applies")
        };
        assert_eq!(next_event(&mut stream).await.position, position);
    }

    // Several at once: all of them, in order, each once.
    let mut positions = Vec::new();
    for command in (0..8).map(|i| progress(i + 1, 0)).chain([complete()]) {
        let CommandOutcome::Applied { position, .. } = store
            .commands
            .execute(&request(t, run, command))
            .await
            .unwrap()
        else {
            panic!("the command applies")
        };
        positions.push(position);
    }
    let mut delivered = Vec::new();
    for _ in &positions {
        delivered.push(next_event(&mut stream).await);
    }
    assert_eq!(
        delivered.iter().map(|e| e.position).collect::<Vec<_>>(),
        positions
    );
    assert_eq!(
        delivered.iter().map(|e| e.version).collect::<Vec<_>>(),
        (4..=12).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_tail_of_one_tenant_sees_only_that_tenant() {
    let store = TestStore::new().await;
    let mut stream = pin!(tail(
        store.reader.clone(),
        LogCursor::START,
        Some(tenant(2)),
        POLL
    ));
    let (mine, other) = (new_run_id(), new_run_id());
    store.queue_run(tenant(1), other, json!({"k": 1})).await;
    store.queue_run(tenant(2), mine, json!({"k": 1})).await;
    store
        .queue_run(tenant(1), new_run_id(), json!({"k": 2}))
        .await;
    store
        .commands
        .execute(&request(tenant(2), mine, start()))
        .await
        .unwrap();
    let first = next_event(&mut stream).await;
    let second = next_event(&mut stream).await;
    assert_eq!((first.run_id, first.version), (mine, 1));
    assert_eq!((second.run_id, second.version), (mine, 2));
}
