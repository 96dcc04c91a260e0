//! The process leading both projections paused with `SIGSTOP` under load, its connections
//! still open: with the default lease, another process takes over and the lag is back to 0
//! within 15 s; resumed (`SIGCONT`), the old leader commits nothing stale; the read models then
//! equal a rebuild of them, and no notice is doubled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use runledger_projections::{
    NOTIFICATIONS, Notifications, OPERATION_RUNS, OperationRuns, Projection, Projector, rebuild,
    status,
};

use super::support::{
    Node, database_url, finished_runs, leader_pids, notices_per_run, wait_for_notices,
    wait_until_caught_up, wait_until_led_by,
};
use crate::helpers::{LOG_WAIT, TestStore};
use crate::projections::support::{drain, options, view_rows};

/// The bound the issue sets on a paused leader's replacement, lag included.
const RECOVERED_WITHIN: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_replaced_and_commits_nothing_stale_when_it_wakes() {
    let store = Arc::new(TestStore::new().await);
    let url = database_url(&store.pool.connect_options());
    // The leader starts first, alone, so that it leads both projections; default lease.
    let mut leader = Node::serve("serve-a", &url, "http://a.example", &[]);
    leader.wait_until_serving().await;
    let mut runs = finished_runs(&store, 3).await;
    wait_for_notices(&store.pool, &runs, LOG_WAIT).await;
    let paused_pid = leader.pid().unwrap();
    for projection in [OPERATION_RUNS, NOTIFICATIONS] {
        wait_until_led_by(&store.pool, projection, paused_pid, LOG_WAIT).await;
    }
    let mut standby = Node::serve("serve-b", &url, "http://b.example", &[]);
    let mut projector = Node::project("project", &url, &[]);
    standby.wait_until_serving().await;

    // Load: runs queued and completed one after another until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut runs = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                runs.extend(finished_runs(&store, 2).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            runs
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    leader.pause();
    let paused_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    runs.extend(load.await.unwrap());

    // Another process leads both, and has applied everything, within the bound.
    loop {
        let mut recovered = true;
        let mut seen = Vec::new();
        for projection in [OPERATION_RUNS, NOTIFICATIONS] {
            let leaders = leader_pids(&store.pool, projection).await;
            let lag = status(&store.pool, projection)
                .await
                .unwrap()
                .map_or(i64::MAX, |s| s.active.lag_events);
            recovered &= lag == 0 && !leaders.is_empty() && !leaders.contains(&paused_pid);
            seen.push((projection, leaders, lag));
        }
        if recovered {
            break;
        }
        assert!(
            paused_at.elapsed() < RECOVERED_WITHIN,
            "no other process caught up within {RECOVERED_WITHIN:?} of pausing {paused_pid}: \
             (projection, leaders, lag): {seen:?}\nstandby: {}\nproject: {}",
            standby.log(),
            projector.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_notices(&store.pool, &runs, Duration::from_secs(1)).await;

    // The old leader wakes: whatever it was doing, it commits nothing stale, and stands by.
    leader.resume();
    let more = finished_runs(&store, 10).await;
    runs.extend(more);
    wait_for_notices(&store.pool, &runs, LOG_WAIT).await;
    wait_until_caught_up(&store.pool, LOG_WAIT).await;
    for node in [&mut leader, &mut standby, &mut projector] {
        node.stop();
    }
    wait_until_caught_up(&store.pool, Duration::ZERO).await;
    let counts = notices_per_run(&store.pool, &runs).await;
    assert!(
        runs.iter().all(|run| counts.get(run) == Some(&2)),
        "no notice lost or doubled"
    );

    // The read models equal a rebuild of them from the log.
    let before = (
        view_rows(&store.pool, "operation_runs").await,
        view_rows(&store.pool, "notifications").await,
    );
    let mut operation_runs = Projector::new(store.pool.clone(), OperationRuns::new(), options());
    rebuild(&store.pool, &OperationRuns::new().definition())
        .await
        .unwrap();
    drain(&mut operation_runs).await;
    let feed = Notifications::new(store.pool.clone());
    rebuild(&store.pool, &feed.definition()).await.unwrap();
    let mut notifications = Projector::new(store.pool.clone(), feed, options());
    drain(&mut notifications).await;
    let after = (
        view_rows(&store.pool, "operation_runs").await,
        view_rows(&store.pool, "notifications").await,
    );
    assert_eq!(before.0.len(), runs.len());
    assert_eq!(after, before, "the read models equal a rebuild");
    let generations: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM projection_versions WHERE status = 'active' AND generation = 2",
    )
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert_eq!(generations, 2, "both were really rebuilt");
}
