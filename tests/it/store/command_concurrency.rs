//! The command path under contention: unpinned commands retry until each lands exactly once.

use std::sync::Arc;

use futures_util::future::join_all;
use runledger_core::{ProgressDelta, RunId, RunStatus, SummaryCounts};
use runledger_store::chain::verify_chain;
use runledger_store::{CommandError, CommandOutcome, ExpectedVersion};
use serde_json::json;
use tokio::sync::Barrier;

use crate::helpers::TestStore;
use crate::helpers::verbs::{new_run_id, progress, progress_delta, request, start, tenant};

const WORKERS: u64 = 16;
const REPORTS: u64 = 25;

/// The delta worker `w` sends in its `i`th report: never empty, different across workers.
fn delta(w: u64, i: u64) -> ProgressDelta {
    ProgressDelta {
        success: 1 + (w + i) % 3,
        failed: (w * i) % 2,
        skipped: u64::from(i.is_multiple_of(5)),
    }
}

async fn running_run(store: &TestStore) -> RunId {
    let run = new_run_id();
    store.queue_run(tenant(1), run, json!({"k": "busy"})).await;
    store
        .commands
        .execute(&request(tenant(1), run, start()))
        .await
        .unwrap();
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_progress_reports_all_land_and_add_up_exactly() {
    let store = TestStore::new().await;
    let t = tenant(1);
    let run = running_run(&store).await;
    let barrier = Arc::new(Barrier::new(WORKERS as usize));
    let workers = (0..WORKERS).map(|w| {
        let (commands, barrier) = (store.commands.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            let mut positions = Vec::new();
            for i in 0..REPORTS {
                let d = delta(w, i);
                let outcome = commands
                    .execute(&request(
                        t,
                        run,
                        progress_delta(d.success, d.failed, d.skipped),
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("worker {w} report {i}: {e:?}"));
                let CommandOutcome::Applied {
                    position, replayed, ..
                } = outcome
                else {
                    panic!("worker {w} report {i}: {outcome:?}")
                };
                assert!(!replayed);
                positions.push(position);
            }
            positions
        })
    });
    let positions: Vec<i64> = join_all(workers)
        .await
        .into_iter()
        .flat_map(|j| j.unwrap())
        .collect();

    let expected = (0..WORKERS)
        .flat_map(|w| (0..REPORTS).map(move |i| delta(w, i)))
        .fold(SummaryCounts::default(), |sum, d| sum.apply(&d, None));
    let snapshot = store.commands.load(t, run).await.unwrap().unwrap();
    assert_eq!(snapshot.summary_counts, expected);
    assert_eq!(snapshot.status, RunStatus::Running);
    let n = 2 + WORKERS * REPORTS;
    assert_eq!(snapshot.version, n);

    let stored = store.reader.read_stream(t, run).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );
    assert_eq!(verify_chain(&stored), Ok(n));
    // Each command reported the position of its own event, and no two share one.
    let mut reported = positions.clone();
    reported.sort_unstable();
    reported.dedup();
    assert_eq!(reported.len(), positions.len());
    let mut progressed: Vec<i64> = stored[2..].iter().map(|e| e.position).collect();
    progressed.sort_unstable();
    assert_eq!(reported, progressed);
}

#[tokio::test]
async fn a_command_pinned_to_a_stale_version_is_a_conflict() {
    let store = TestStore::new().await;
    let t = tenant(1);
    let run = running_run(&store).await;
    let pinned = |version| {
        let mut request = request(t, run, progress(1, 0));
        request.expected = ExpectedVersion::Exact(version);
        request
    };
    let outcome = store.commands.execute(&pinned(1)).await;
    assert!(
        matches!(outcome, Err(CommandError::Conflict { run: r, expected: 1, actual: 2 }) if r == run),
        "{outcome:?}"
    );
    let outcome = store.commands.execute(&pinned(2)).await.unwrap();
    assert!(matches!(outcome, CommandOutcome::Applied { .. }));
    assert_eq!(store.count("events").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_racing_commands_pinned_to_one_version_exactly_one_lands() {
    let store = TestStore::new().await;
    let t = tenant(1);
    let run = running_run(&store).await;
    let barrier = Arc::new(Barrier::new(10));
    let tasks = (0..10).map(|_| {
        let (commands, barrier) = (store.commands.clone(), barrier.clone());
        tokio::spawn(async move {
            let mut request = request(t, run, progress(1, 0));
            request.expected = ExpectedVersion::Exact(2);
            barrier.wait().await;
            commands.execute(&request).await
        })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|j| j.unwrap())
        .collect();
    let applied = results
        .iter()
        .filter(|r| matches!(r, Ok(CommandOutcome::Applied { .. })))
        .count();
    let conflicts = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(CommandError::Conflict {
                    expected: 2,
                    actual: 3,
                    ..
                })
            )
        })
        .count();
    assert_eq!((applied, conflicts), (1, 9), "{results:?}");
    let snapshot = store.commands.load(t, run).await.unwrap().unwrap();
    assert_eq!(snapshot.summary_counts.success, 1);
}
