//! A changed projection DDL (a fixture) is noticed at start: the new version is built from the
//! start of the log beside the old one, which serves until the switch; then the new one serves,
//! and a projector still running the old code stands by instead of building its version again.

use runledger_projections::{
    OPERATION_RUNS, OperationRuns, Projection, Projector, StepOutcome, status,
};

use super::support::{
    assert_same_runs, drain, folded_runs, options, random_histories, read_model, run_projector,
    view_rows,
};
use crate::helpers::TestStore;

/// The shipped DDL with the fixture's change appended.
const CHANGED_DDL: &str = concat!(
    include_str!("../../../projections/operation_runs/schema.sql"),
    include_str!("../fixtures/operation_runs_v2.sql")
);

#[tokio::test]
async fn a_changed_ddl_is_rebuilt_side_by_side_and_then_serves() {
    let store = TestStore::new().await;
    random_histories(&store, 50, 40, 3).await;
    let mut old = run_projector(&store.pool);
    drain(&mut old).await;
    old.release().await;
    let rows = view_rows(&store.pool, "operation_runs").await;
    let old_status = status(&store.pool, OPERATION_RUNS).await.unwrap().unwrap();

    let changed = OperationRuns::with_ddl(CHANGED_DDL);
    assert_ne!(
        changed.definition().fingerprint,
        OperationRuns::new().definition().fingerprint
    );
    let mut new = Projector::new(store.pool.clone(), changed, options());
    // Start-up notices the change and builds beside the old version, which still serves.
    assert!(matches!(
        new.step().await.unwrap(),
        StepOutcome::Applied { .. }
    ));
    let during = status(&store.pool, OPERATION_RUNS).await.unwrap().unwrap();
    assert_eq!(during.active.version.id, old_status.active.version.id);
    let building = during
        .rebuild
        .expect("a rebuild under way")
        .progress
        .version;
    assert_ne!(building.fingerprint, old_status.active.version.fingerprint);
    assert_eq!(view_rows(&store.pool, "operation_runs").await, rows);

    assert_eq!(drain(&mut new).await, StepOutcome::CaughtUp);
    let after = status(&store.pool, OPERATION_RUNS).await.unwrap().unwrap();
    assert_eq!(
        after.active.version.id, building.id,
        "the new version serves"
    );
    let view: String =
        sqlx::query_scalar("SELECT pg_get_viewdef('public.operation_runs'::regclass)")
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert!(
        view.contains(&building.schema_name),
        "the view reads the new schema: {view}"
    );
    let has_note: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = 'operation_runs' AND column_name = 'note')",
    )
    .bind(&building.schema_name)
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert!(has_note, "the new version has the changed DDL");
    assert_eq!(view_rows(&store.pool, "operation_runs").await, rows);

    // New events go to the new version.
    random_histories(&store, 51, 10, 3).await;
    drain(&mut new).await;
    assert_same_runs(&read_model(&store.pool).await, &folded_runs(&store).await);

    // The old code, started again, does not build its version back.
    new.release().await;
    let mut old_again = run_projector(&store.pool);
    let outcome = loop {
        match old_again.step().await.unwrap() {
            StepOutcome::NotLeader => tokio::task::yield_now().await,
            outcome => break outcome,
        }
    };
    assert_eq!(outcome, StepOutcome::Superseded);
}
