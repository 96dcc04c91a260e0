//! A run's whole lifecycle through the command path, end to end.

use runledger_core::{Outcome, RunStatus};
use runledger_store::CommandOutcome;
use serde_json::json;

use crate::helpers::TestStore;
use crate::helpers::verbs::{complete, new_run_id, progress, queue, request, start, tenant};

#[tokio::test]
async fn a_run_goes_from_queued_to_completed() {
    let store = TestStore::new().await;
    let (t, run) = (tenant(1), new_run_id());
    for command in [
        queue(t, run, json!({"k": 1})),
        start(),
        progress(8, 2),
        complete(),
    ] {
        let outcome = store
            .commands
            .execute(&request(t, run, command))
            .await
            .unwrap();
        assert!(
            matches!(
                outcome,
                CommandOutcome::Applied {
                    replayed: false,
                    ..
                }
            ),
            "{outcome:?}"
        );
    }
    let snapshot = store.commands.load(t, run).await.unwrap().unwrap();
    assert_eq!(snapshot.status, RunStatus::Completed);
    assert_eq!(snapshot.outcome, Outcome::PartiallySucceeded);
    assert_eq!(snapshot.version, 4);
    let stored = store.reader.read_stream(t, run).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(runledger_store::chain::verify_chain(&stored), Ok(4));
    // Readers only read below the oldest running transaction of the whole cluster (a test running
    // in parallel may hold one for a moment), so wait for the log rather than read it once.
    let log = store
        .wait_for_log(runledger_store::LogCursor::START, 4)
        .await;
    assert_eq!(log, stored);
}
