//! Crash safety: a projector fails at every statement boundary of every batch (a test fail
//! point, as a crash would), is dropped and restarted; the result equals a clean build, every
//! event is counted once, and no notice exists twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use runledger_projections::{
    FailPoint, Injected, NOTIFICATIONS, Notifications, OPERATION_RUNS, OperationRuns, Projection,
    ProjectionError, Projector, StepOutcome, rebuild,
};

use super::support::{
    assert_same_runs, drain, event_count, events_applied, folded_runs, options, random_histories,
    read_model, view_rows,
};
use crate::helpers::TestStore;

/// A fail point that fails once, at the first pass over `boundary`.
fn fail_once_at(boundary: &'static str) -> FailPoint {
    let fired = AtomicBool::new(false);
    Arc::new(move |at| {
        if at == boundary && !fired.swap(true, Ordering::SeqCst) {
            Err(Injected)
        } else {
            Ok(())
        }
    })
}

/// Builds `projection` by crashing at each of `boundaries` in turn, batch after batch: each
/// crash drops the projector (its leader connection closes) and a fresh one carries on, until
/// a clean step finds nothing more to do.
async fn build_with_crashes<P: Projection + Clone>(
    store: &TestStore,
    projection: P,
    boundaries: &[&'static str],
) -> usize {
    let mut crashes = 0;
    loop {
        for &boundary in boundaries {
            let mut crashing = Projector::new(
                store.pool.clone(),
                projection.clone(),
                runledger_projections::ProjectorOptions {
                    fail_point: Some(fail_once_at(boundary)),
                    ..options()
                },
            );
            loop {
                match crashing.step().await {
                    Err(ProjectionError::Injected(at)) => {
                        assert_eq!(at, boundary);
                        crashes += 1;
                        break;
                    }
                    // The previous leader's session is still ending.
                    Ok(StepOutcome::NotLeader) => tokio::task::yield_now().await,
                    // Nothing left to apply: the boundary is not reached any more.
                    Ok(StepOutcome::CaughtUp) => break,
                    // A batch that did not pass this boundary (one without notices).
                    Ok(StepOutcome::Applied { .. }) => {}
                    Ok(other) => panic!("a crashing step at {boundary} gave {other:?}"),
                    Err(error) => panic!("a crashing step at {boundary} failed: {error}"),
                }
            }
            drop(crashing);
        }
        let mut clean = Projector::new(store.pool.clone(), projection.clone(), options());
        let outcome = drain_one(&mut clean).await;
        if outcome == StepOutcome::CaughtUp && !clean.has_unread_events().await.unwrap() {
            return crashes;
        }
    }
}

/// One step that leads (waiting for a previous leader's session to end).
async fn drain_one<P: Projection>(projector: &mut Projector<P>) -> StepOutcome {
    loop {
        match projector.step().await.expect("a clean step") {
            StepOutcome::NotLeader => tokio::task::yield_now().await,
            outcome => return outcome,
        }
    }
}

const COMMON: [&str; 4] = ["begin", "claim", "checkpoint", "committed"];

#[tokio::test]
async fn crashes_at_every_statement_boundary_change_nothing() {
    let store = TestStore::new().await;
    random_histories(&store, 20, 40, 3).await;

    let mut boundaries = COMMON.to_vec();
    boundaries.extend(["operation_runs.loaded", "operation_runs.upserted"]);
    let crashes = build_with_crashes(&store, OperationRuns::new(), &boundaries).await;
    assert!(
        crashes >= boundaries.len() * 5,
        "crashed in many batches ({crashes})"
    );
    assert_same_runs(&read_model(&store.pool).await, &folded_runs(&store).await);
    assert_eq!(
        events_applied(&store.pool, OPERATION_RUNS).await,
        event_count(&store.pool).await,
        "each event applied exactly once"
    );

    let notifications = Notifications::new(store.pool.clone());
    let mut boundaries = COMMON.to_vec();
    boundaries.extend(["notifications.built", "notifications.inserted"]);
    build_with_crashes(&store, notifications.clone(), &boundaries).await;
    assert_eq!(
        events_applied(&store.pool, NOTIFICATIONS).await,
        event_count(&store.pool).await
    );
    let crashed_notices = view_rows(&store.pool, "notifications").await;
    let expected: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM public.operation_runs WHERE user_id IS NOT NULL) \
              + (SELECT count(*) FROM public.operation_runs \
                 WHERE user_id IS NOT NULL AND status = 'completed')",
    )
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert_eq!(
        crashed_notices.len() as i64,
        expected,
        "one notice per run and kind, none twice"
    );

    // A clean build of both, side by side, equals the crashed builds.
    let crashed_runs = view_rows(&store.pool, "operation_runs").await;
    for definition in [
        OperationRuns::new().definition(),
        notifications.definition(),
    ] {
        rebuild(&store.pool, &definition).await.unwrap();
    }
    drain(&mut Projector::new(
        store.pool.clone(),
        OperationRuns::new(),
        options(),
    ))
    .await;
    drain(&mut Projector::new(
        store.pool.clone(),
        notifications,
        options(),
    ))
    .await;
    assert_eq!(view_rows(&store.pool, "operation_runs").await, crashed_runs);
    assert_eq!(
        view_rows(&store.pool, "notifications").await,
        crashed_notices
    );
}
