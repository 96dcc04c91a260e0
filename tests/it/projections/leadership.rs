//! Two projectors of one projection on two pools (as two processes would): only one leads and
//! applies; when it stops, the other takes over within its poll interval.

use std::time::Duration;

use runledger_projections::{OPERATION_RUNS, Projector, StepOutcome, status};
use serde_json::json;
use tokio::sync::watch;

use super::support::{
    assert_same_runs, drain, event_count, events_applied, folded_runs, options, random_histories,
    read_model,
};
use crate::helpers::verbs::{new_run_id, tenant};
use crate::helpers::{LOG_WAIT, TestStore};

#[tokio::test]
async fn one_projector_leads_and_the_other_takes_over_when_it_stops() {
    let store = TestStore::new().await;
    let other_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_with((*store.pool.connect_options()).clone())
        .await
        .unwrap();
    random_histories(&store, 40, 30, 2).await;

    let mut first = Projector::new(
        store.pool.clone(),
        runledger_projections::OperationRuns::new(),
        options(),
    );
    let mut second = Projector::new(
        other_pool.clone(),
        runledger_projections::OperationRuns::new(),
        options(),
    );
    assert!(matches!(
        first.step().await.unwrap(),
        StepOutcome::Applied { .. }
    ));
    assert_eq!(second.step().await.unwrap(), StepOutcome::NotLeader);
    drain(&mut first).await;
    assert_eq!(second.catch_up().await.unwrap(), StepOutcome::NotLeader);
    assert_eq!(
        second.stats().events_applied,
        0,
        "the standby applied nothing"
    );
    assert!(first.is_leader() && !second.is_leader());
    let led = status(&store.pool, OPERATION_RUNS).await.unwrap().unwrap();
    assert_eq!(led.state.as_str(), "running");

    // Both run live; the first (already leading) applies what is appended.
    let (stop_first, first_stopped) = watch::channel(false);
    let (stop_second, second_stopped) = watch::channel(false);
    let until = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let first_task = tokio::spawn(async move {
        first.run(until(first_stopped)).await.unwrap();
        first
    });
    let second_task = tokio::spawn(async move {
        second.run(until(second_stopped)).await.unwrap();
        second
    });
    let caught_up = || async {
        tokio::time::timeout(LOG_WAIT, async {
            while events_applied(&store.pool, OPERATION_RUNS).await < event_count(&store.pool).await
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("a projector applied every event");
    };
    store
        .queue_run(tenant(1), new_run_id(), json!({"phase": 1}))
        .await;
    caught_up().await;

    // The leader stops (gives up its lock); the standby takes over within its poll interval.
    stop_first.send(true).unwrap();
    let first = first_task.await.unwrap();
    let stopped_at = std::time::Instant::now();
    store
        .queue_run(tenant(1), new_run_id(), json!({"phase": 2}))
        .await;
    caught_up().await;
    assert!(
        stopped_at.elapsed() < Duration::from_secs(5),
        "handed over within seconds"
    );
    stop_second.send(true).unwrap();
    let second = second_task.await.unwrap();

    assert!(second.stats().events_applied >= 1, "the standby took over");
    assert_eq!(
        first.stats().events_applied + second.stats().events_applied,
        event_count(&store.pool).await as u64,
        "between them, each event applied once"
    );
    assert_same_runs(&read_model(&store.pool).await, &folded_runs(&store).await);
    // The server ends the released lock's session a moment later.
    tokio::time::timeout(LOG_WAIT, async {
        while status(&store.pool, OPERATION_RUNS)
            .await
            .unwrap()
            .unwrap()
            .state
            .as_str()
            != "stopped"
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("no projector leads any more");
}
