//! Point-in-time replay: for random histories, the state at each version is the domain's fold
//! of the events up to it, from the database and from an export alike; the latest state equals
//! the OperationRun read model's row; a time selects the events recorded by then.

use runledger_audit::file::run_from_export;
use runledger_audit::{PointInTime, ReplayError, Scope, state_at};
use runledger_core::{RunEvent, replay};
use runledger_store::RecordedEvent;

use super::support::{export_text, settle};
use crate::helpers::TestStore;
use crate::projections::support::{
    drain, random_histories, read_model, run_projector, without_lifecycle_fields,
};

#[tokio::test]
async fn replay_at_each_version_is_the_fold_up_to_it_and_ends_at_the_read_model_row() {
    let store = TestStore::new().await;
    random_histories(&store, 7, 30, 3).await;
    settle(&store).await;
    let mut projector = run_projector(&store.pool);
    drain(&mut projector).await;
    let read_model = read_model(&store.pool).await;
    let export = export_text(&store, Scope::default()).await;
    let runs: Vec<(uuid::Uuid, i64)> =
        sqlx::query_as("SELECT run_id, tenant_id FROM streams ORDER BY run_id")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    assert_eq!(runs.len(), 30);

    for (run, t) in runs {
        let t = runledger_core::TenantId::new(t).unwrap();
        let stored = store.reader.read_stream(t, run.into()).await.unwrap();
        let from_file = run_from_export(export.as_bytes(), t, run.into()).unwrap();
        assert_eq!(from_file, stored);
        let decoded: Vec<RunEvent> = stored.iter().map(|e| e.decode().unwrap()).collect();
        for k in 1..=stored.len() {
            let version = k as u64;
            let state = state_at(&stored, PointInTime::Version(version)).unwrap();
            let folded = replay(&decoded[..k]);
            assert_eq!(
                Some(&*state.run),
                folded.snapshot(),
                "run {run} at {version}"
            );
            assert_eq!(
                (state.version, state.recorded_at),
                (version, stored[k - 1].recorded_at)
            );
            let offline = state_at(&from_file, PointInTime::Version(version)).unwrap();
            assert_eq!(offline, state);
        }
        let latest = state_at(&stored, PointInTime::Latest).unwrap();
        let mut row = read_model[&run].clone();
        for projection_only in ["last_position", "last_tx_id", "last_event_at"] {
            row.as_object_mut().unwrap().remove(projection_only);
        }
        let mut latest_json = latest.run.to_operation_run_json();
        without_lifecycle_fields(&mut latest_json);
        assert_eq!(latest_json, row, "run {run}");
    }
}

#[tokio::test]
async fn replay_at_a_time_folds_the_events_recorded_by_then() {
    let store = TestStore::new().await;
    let runs = super::support::runs_of_five(&store, crate::helpers::verbs::tenant(1), 1).await;
    let stored: Vec<RecordedEvent> = store
        .reader
        .read_stream(crate::helpers::verbs::tenant(1), runs[0])
        .await
        .unwrap();

    for (index, event) in stored.iter().enumerate() {
        let state = state_at(&stored, PointInTime::Time(event.recorded_at)).unwrap();
        assert_eq!(state.version, index as u64 + 1);
    }
    let before = stored[0].recorded_at - chrono::Duration::microseconds(1);
    assert!(matches!(
        state_at(&stored, PointInTime::Time(before)),
        Err(ReplayError::NothingYet)
    ));
    assert!(matches!(
        state_at(&stored, PointInTime::Version(6)),
        Err(ReplayError::VersionOutOfRange { latest: 5 })
    ));
    assert!(matches!(
        state_at(&[], PointInTime::Latest),
        Err(ReplayError::NoSuchRun)
    ));
    // A history that starts mid-chain (an export filtered by `since`) folds to no state.
    assert!(matches!(
        state_at(&stored[2..], PointInTime::Latest),
        Err(ReplayError::IncompleteHistory { first: 3 })
    ));
}
