//! The inline dedupe index: one active run per tenant and identity, freed on completion.

use std::sync::Arc;

use futures_util::future::join_all;
use runledger_core::{RunId, RunStatus};
use runledger_store::CommandOutcome;
use serde_json::json;
use tokio::sync::Barrier;

use crate::helpers::TestStore;
use crate::helpers::verbs::{complete, dispatch_failed, new_run_id, queue, request, start, tenant};

#[track_caller]
fn assert_applied(outcome: &CommandOutcome, run: RunId) {
    assert!(
        matches!(outcome, CommandOutcome::Applied { run: r, replayed: false, .. } if r.id == run),
        "{outcome:?}"
    );
}

#[track_caller]
fn assert_deduplicated_to(outcome: &CommandOutcome, run: RunId) {
    assert!(
        matches!(outcome, CommandOutcome::Deduplicated { existing } if existing.id == run),
        "expected a dedupe to {run}: {outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_queues_of_one_identity_make_one_run() {
    let store = TestStore::new().await;
    let t = tenant(1);
    let barrier = Arc::new(Barrier::new(50));
    let tasks = (0..50).map(|_| {
        let commands = store.commands.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            let run = new_run_id();
            let request = request(t, run, queue(t, run, json!({"site": "nyc", "full": true})));
            barrier.wait().await;
            (run, commands.execute(&request).await.unwrap())
        })
    });
    let results: Vec<(RunId, CommandOutcome)> = join_all(tasks)
        .await
        .into_iter()
        .map(|j| j.unwrap())
        .collect();

    let winners: Vec<RunId> = results
        .iter()
        .filter(|(_, o)| matches!(o, CommandOutcome::Applied { .. }))
        .map(|(run, _)| *run)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = winners[0];
    for (run, outcome) in &results {
        if *run != winner {
            assert_deduplicated_to(outcome, winner);
            let CommandOutcome::Deduplicated { existing } = outcome else {
                unreachable!()
            };
            assert_eq!(existing.status, RunStatus::Queued);
            assert_eq!(existing.version, 1);
        }
    }
    assert_eq!(store.active_runs().await, vec![(1, winner.as_uuid())]);
    assert_eq!(store.count("streams").await, 1);
    assert_eq!(store.count("events").await, 1);
}

#[tokio::test]
async fn a_running_run_still_holds_its_slot() {
    let store = TestStore::new().await;
    let (t, first) = (tenant(1), new_run_id());
    store.queue_run(t, first, json!({"k": 1})).await;
    store
        .commands
        .execute(&request(t, first, start()))
        .await
        .unwrap();
    let second = new_run_id();
    assert_deduplicated_to(&store.queue_run(t, second, json!({"k": 1})).await, first);
    assert!(store.commands.load(t, second).await.unwrap().is_none());
}

#[tokio::test]
async fn completing_a_run_frees_its_slot() {
    let store = TestStore::new().await;
    let (t, first) = (tenant(1), new_run_id());
    assert_applied(&store.queue_run(t, first, json!({"k": 1})).await, first);
    for command in [start(), complete()] {
        store
            .commands
            .execute(&request(t, first, command))
            .await
            .unwrap();
    }
    assert_eq!(store.active_runs().await, vec![]);

    let second = new_run_id();
    assert_applied(&store.queue_run(t, second, json!({"k": 1})).await, second);
    assert_eq!(store.active_runs().await, vec![(1, second.as_uuid())]);
    let third = new_run_id();
    assert_deduplicated_to(&store.queue_run(t, third, json!({"k": 1})).await, second);
}

#[tokio::test]
async fn a_dispatch_failed_run_frees_its_slot() {
    let store = TestStore::new().await;
    let (t, first) = (tenant(1), new_run_id());
    store.queue_run(t, first, json!({"k": 1})).await;
    store
        .commands
        .execute(&request(t, first, dispatch_failed()))
        .await
        .unwrap();
    assert_eq!(store.active_runs().await, vec![]);

    let second = new_run_id();
    assert_applied(&store.queue_run(t, second, json!({"k": 1})).await, second);
    assert_eq!(store.active_runs().await, vec![(1, second.as_uuid())]);
}

#[tokio::test]
async fn the_same_identity_in_another_tenant_is_another_run() {
    let store = TestStore::new().await;
    let (first, second) = (new_run_id(), new_run_id());
    assert_applied(
        &store.queue_run(tenant(1), first, json!({"k": 1})).await,
        first,
    );
    assert_applied(
        &store.queue_run(tenant(2), second, json!({"k": 1})).await,
        second,
    );
    assert_eq!(
        store.active_runs().await,
        vec![(1, first.as_uuid()), (2, second.as_uuid())]
    );
}

#[tokio::test]
async fn another_identity_in_the_same_tenant_is_another_run() {
    let store = TestStore::new().await;
    let t = tenant(1);
    let (first, second) = (new_run_id(), new_run_id());
    assert_applied(&store.queue_run(t, first, json!({"k": 1})).await, first);
    assert_applied(&store.queue_run(t, second, json!({"k": 2})).await, second);
    assert_eq!(store.count("active_runs").await, 2);
}
