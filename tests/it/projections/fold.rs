//! For random histories across many runs and tenants, the OperationRun read model equals the
//! fold of the log, row for row, and counts every event exactly once.

use runledger_projections::{OPERATION_RUNS, StepOutcome};

use super::support::{
    assert_same_runs, drain, event_count, events_applied, folded_runs, random_histories,
    read_model, run_projector,
};
use crate::helpers::TestStore;

#[tokio::test]
async fn the_read_model_equals_the_fold_of_random_histories() {
    let store = TestStore::new().await;
    let mut projector = run_projector(&store.pool);
    for seed in 0..3 {
        // Histories arrive in rounds, so batches meet rows that earlier batches wrote.
        random_histories(&store, seed, 60, 5).await;
        assert_eq!(drain(&mut projector).await, StepOutcome::CaughtUp);
        assert_same_runs(&read_model(&store.pool).await, &folded_runs(&store).await);
    }
    assert_eq!(
        events_applied(&store.pool, OPERATION_RUNS).await,
        event_count(&store.pool).await,
        "every event applied exactly once"
    );
    assert_eq!(
        projector.stats().events_applied,
        event_count(&store.pool).await as u64
    );
}
