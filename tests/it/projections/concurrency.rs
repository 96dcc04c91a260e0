//! Eight writers append, some in transactions that commit late or roll back, while projectors
//! of both read models run live; at the end every committed event is reflected exactly once.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use runledger_core::{Run, decide};
use runledger_projections::{
    LiveLog, NOTIFICATIONS, Notifications, OPERATION_RUNS, Projector, has_passed, wait_until_passed,
};
use runledger_store::chain::GENESIS;
use serde_json::json;
use tokio::sync::watch;

use super::support::{
    assert_same_runs, event_count, events_applied, folded_runs, options, read_model, run_projector,
};
use crate::helpers::verbs::{new_run_id, progress_delta, queue, request, start, tenant};
use crate::helpers::{LOG_WAIT, TestStore, insert_raw_event};

const WRITERS: u64 = 8;
const OPS: u64 = 30;

async fn writer(store: Arc<TestStore>, seed: u64, shared: Arc<Vec<runledger_core::RunId>>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let t = tenant(1 + rng.i64(0..3));
    for op in 0..OPS {
        tokio::time::sleep(Duration::from_micros(rng.u64(0..2_000))).await;
        match rng.u8(..10) {
            // A new run's Queued in a transaction that pauses, then commits late or rolls back.
            0..=2 => {
                let run = new_run_id();
                let queued = decide(&Run::Unqueued, queue(t, run, json!({"raw": run.as_uuid()})))
                    .unwrap()
                    .remove(0);
                let mut tx = store.pool.begin().await.unwrap();
                insert_raw_event(&mut tx, t, run, 1, GENESIS, &queued).await;
                tokio::time::sleep(Duration::from_micros(rng.u64(0..3_000))).await;
                if rng.bool() {
                    tx.commit().await.unwrap();
                } else {
                    tx.rollback().await.unwrap();
                }
            }
            3..=4 => {
                let run = new_run_id();
                store
                    .queue_run(t, run, json!({"writer": seed, "op": op}))
                    .await;
                store
                    .commands
                    .execute(&request(t, run, start()))
                    .await
                    .unwrap();
            }
            _ => {
                let run = shared[rng.usize(..shared.len())];
                let command = progress_delta(1 + rng.u64(0..3), rng.u64(0..2), 0);
                store
                    .commands
                    .execute(&request(tenant(1), run, command))
                    .await
                    .unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_event_is_projected_exactly_once_under_concurrent_writers() {
    let store = Arc::new(TestStore::new().await);
    let mut shared = Vec::new();
    for i in 0..4 {
        let run = new_run_id();
        store.queue_run(tenant(1), run, json!({"shared": i})).await;
        store
            .commands
            .execute(&request(tenant(1), run, start()))
            .await
            .unwrap();
        shared.push(run);
    }
    let shared = Arc::new(shared);

    let (stop, stopped) = watch::channel(false);
    let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let mut runs = run_projector(&store.pool);
    let mut notices = Projector::new(
        store.pool.clone(),
        Notifications::new(store.pool.clone()),
        options(),
    );
    let live = tokio::spawn({
        let (a, b) = (until_stopped(stopped.clone()), until_stopped(stopped));
        async move {
            let (first, second) = tokio::join!(runs.run(a), notices.run(b));
            first.unwrap();
            second.unwrap();
            (runs, notices)
        }
    });

    join_all((0..WRITERS).map(|w| tokio::spawn(writer(store.clone(), w, shared.clone())))).await;
    let last: i64 = sqlx::query_scalar("SELECT max(position) FROM events")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    // The projectors publish to positions of their own; these hear them by their notices.
    let published = LiveLog::start(&store.pool, Duration::from_secs(1)).published;
    for projection in [OPERATION_RUNS, NOTIFICATIONS] {
        assert!(
            wait_until_passed(&store.pool, &published, projection, last, LOG_WAIT)
                .await
                .unwrap(),
            "{projection} passed the last event"
        );
    }
    // Passing the highest position does not pass events of transactions that began earlier and
    // committed later: wait until every committed event is counted.
    tokio::time::timeout(LOG_WAIT, async {
        while events_applied(&store.pool, OPERATION_RUNS).await < event_count(&store.pool).await
            || events_applied(&store.pool, NOTIFICATIONS).await < event_count(&store.pool).await
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the projectors applied every committed event");
    stop.send(true).unwrap();
    let (runs, notices) = live.await.unwrap();

    let committed = event_count(&store.pool).await;
    assert_eq!(events_applied(&store.pool, OPERATION_RUNS).await, committed);
    assert_eq!(events_applied(&store.pool, NOTIFICATIONS).await, committed);
    assert_eq!(
        runs.stats().events_applied,
        committed as u64,
        "each event once"
    );
    assert_eq!(notices.stats().events_applied, committed as u64);
    assert!(has_passed(&store.pool, OPERATION_RUNS, last).await.unwrap());
    assert_same_runs(&read_model(&store.pool).await, &folded_runs(&store).await);
    let rolled_back: i64 = sqlx::query_scalar("SELECT max(position) - count(*) FROM events")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert!(rolled_back > 0, "the scenario had rolled-back positions");
}
