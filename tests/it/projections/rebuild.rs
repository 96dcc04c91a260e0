//! A rebuild produces exactly the incrementally built rows; a rebuild under way can be resumed
//! by another projector, or cancelled while the active version keeps serving.

use runledger_projections::{
    OPERATION_RUNS, OperationRuns, Projection, StepOutcome, VersionStatus, cancel_rebuild, rebuild,
    status,
};

use super::support::{drain, random_histories, run_projector, view_rows};
use crate::helpers::TestStore;

#[tokio::test]
async fn a_rebuild_equals_the_incremental_build_and_replaces_it() {
    let store = TestStore::new().await;
    let mut projector = run_projector(&store.pool);
    random_histories(&store, 10, 50, 4).await;
    drain(&mut projector).await;
    random_histories(&store, 11, 50, 4).await;
    drain(&mut projector).await;
    let incremental = view_rows(&store.pool, "operation_runs").await;
    let before = status(&store.pool, OPERATION_RUNS).await.unwrap().unwrap();

    let started = rebuild(&store.pool, &OperationRuns::new().definition())
        .await
        .unwrap();
    assert!(started.created);
    assert_eq!(started.version.status, VersionStatus::Building);
    assert_eq!(
        started.version.generation, 2,
        "same fingerprint, next generation"
    );
    // Asking again returns the rebuild under way.
    let again = rebuild(&store.pool, &OperationRuns::new().definition())
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.version.id, started.version.id);

    // One step applies a first batch only: the old version still serves, and status shows it.
    assert!(matches!(
        projector.step().await.unwrap(),
        StepOutcome::Applied { .. }
    ));
    let during = status(&store.pool, OPERATION_RUNS).await.unwrap().unwrap();
    assert_eq!(during.state.as_str(), "rebuilding");
    assert_eq!(during.active.version.id, before.active.version.id);
    let progress = during.rebuild.expect("rebuild progress");
    assert!(progress.percent > 0.0 && progress.percent < 100.0);
    assert!(progress.progress.lag_events > 0);
    assert_eq!(view_rows(&store.pool, "operation_runs").await, incremental);

    // A crash: another projector resumes the rebuild from its own checkpoint.
    drop(projector);
    let mut successor = run_projector(&store.pool);
    drain(&mut successor).await;
    let after = status(&store.pool, OPERATION_RUNS).await.unwrap().unwrap();
    assert_eq!(after.active.version.id, started.version.id, "switched");
    assert!(after.rebuild.is_none());
    assert_eq!(after.active.lag_events, 0);
    assert_eq!(view_rows(&store.pool, "operation_runs").await, incremental);

    // The retired version's schema is dropped once its grace period (zero here) is over.
    assert_eq!(successor.drop_retired().await.unwrap(), 1);
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'proj_operation_runs_%'",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    assert_eq!(schemas, vec![started.version.schema_name]);
}

#[tokio::test]
async fn a_cancelled_rebuild_leaves_the_active_version_serving() {
    let store = TestStore::new().await;
    let mut projector = run_projector(&store.pool);
    random_histories(&store, 12, 30, 2).await;
    drain(&mut projector).await;
    let rows = view_rows(&store.pool, "operation_runs").await;
    let active = status(&store.pool, OPERATION_RUNS)
        .await
        .unwrap()
        .unwrap()
        .active;

    let started = rebuild(&store.pool, &OperationRuns::new().definition())
        .await
        .unwrap();
    assert!(matches!(
        projector.step().await.unwrap(),
        StepOutcome::Applied { .. }
    ));
    let cancelled = cancel_rebuild(&store.pool, OPERATION_RUNS).await.unwrap();
    assert_eq!(cancelled.map(|v| v.id), Some(started.version.id));
    assert_eq!(
        cancel_rebuild(&store.pool, OPERATION_RUNS).await.unwrap(),
        None
    );

    assert_eq!(drain(&mut projector).await, StepOutcome::CaughtUp);
    let after = status(&store.pool, OPERATION_RUNS).await.unwrap().unwrap();
    assert_eq!(after.active.version.id, active.version.id);
    assert!(after.rebuild.is_none());
    assert_eq!(view_rows(&store.pool, "operation_runs").await, rows);
    assert_eq!(
        projector.drop_retired().await.unwrap(),
        1,
        "the cancelled schema is dropped"
    );
}
