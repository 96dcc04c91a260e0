//! The command path decides from its memory of a run when it has one: a memory that another
//! process made stale, a re-sent command and a pinned version are all answered as the stream
//! alone would answer them.

use runledger_core::{RunId, TenantId};
use runledger_store::chain::verify_chain;
use runledger_store::{CommandError, CommandHandler, CommandOutcome, ExpectedVersion};
use serde_json::json;

use crate::helpers::TestStore;
use crate::helpers::verbs::{complete, new_run_id, progress, request, start, tenant};

/// A second process's command handler on the same database: a memory of its own.
fn other_process(store: &TestStore) -> CommandHandler {
    CommandHandler::new(store.reader.clone(), store.writer.clone())
}

/// A run queued and started through `store.commands`, which now remembers it at version 2.
async fn started_run(store: &TestStore) -> (TenantId, RunId) {
    let (t, run) = (tenant(1), new_run_id());
    store.queue_run(t, run, json!({"k": "memory"})).await;
    store
        .commands
        .execute(&request(t, run, start()))
        .await
        .unwrap();
    (t, run)
}

fn applied(outcome: Result<CommandOutcome, CommandError>) -> (u64, i64, bool, u64) {
    match outcome {
        Ok(CommandOutcome::Applied {
            run,
            position,
            replayed,
        }) => (run.version, position, replayed, run.summary_counts.success),
        other => panic!("expected an applied command: {other:?}"),
    }
}

#[tokio::test]
async fn a_memory_made_stale_by_another_process_is_decided_again_from_the_stream() {
    let store = TestStore::new().await;
    let (t, run) = started_run(&store).await;
    let other = other_process(&store);
    for _ in 0..3 {
        other
            .execute(&request(t, run, progress(10, 0)))
            .await
            .unwrap();
    }
    // Remembered at version 2, the run is at 5: the compare-and-set refuses the memory.
    let (version, _, replayed, success) = applied(
        store
            .commands
            .execute(&request(t, run, progress(1, 0)))
            .await,
    );
    assert_eq!((version, replayed, success), (6, false, 31));
    // Remembered afresh: the next one lands from memory, on top of everything.
    let (version, _, _, success) = applied(
        store
            .commands
            .execute(&request(t, run, progress(1, 0)))
            .await,
    );
    assert_eq!((version, success), (7, 32));

    let stream = store.reader.read_stream(t, run).await.unwrap();
    assert_eq!(stream.len(), 7);
    assert_eq!(verify_chain(&stream).unwrap(), 7);
    let folded = store.commands.load(t, run).await.unwrap().unwrap();
    assert_eq!(folded.summary_counts.success, 32);
}

#[tokio::test]
async fn a_re_sent_report_returns_its_first_result_after_the_run_moved_on() {
    let store = TestStore::new().await;
    let (t, run) = started_run(&store).await;
    let first = request(t, run, progress(5, 0));
    let (version, position, replayed, _) = applied(store.commands.execute(&first).await);
    assert_eq!((version, replayed), (3, false));
    store
        .commands
        .execute(&request(t, run, progress(7, 0)))
        .await
        .unwrap();

    // Decided from the remembered version 4, the re-send's id is found stored: the stream
    // answers with the first result, as of version 3.
    let (again_version, again_position, again_replayed, success) =
        applied(store.commands.execute(&first).await);
    assert_eq!(
        (again_version, again_position, again_replayed, success),
        (3, position, true, 5)
    );
    assert_eq!(store.reader.read_stream(t, run).await.unwrap().len(), 4);
}

#[tokio::test]
async fn a_re_sent_completion_is_its_first_result_not_a_refusal() {
    let store = TestStore::new().await;
    let (t, run) = started_run(&store).await;
    let completion = request(t, run, complete());
    let (_, position, replayed, _) = applied(store.commands.execute(&completion).await);
    assert!(!replayed);
    // The remembered run is completed, so deciding the completion again from memory would be
    // refused; the re-send is recognised instead.
    let (version, again_position, replayed, _) = applied(store.commands.execute(&completion).await);
    assert_eq!((version, again_position, replayed), (3, position, true));
}

#[tokio::test]
async fn a_pin_is_checked_against_the_stream_not_the_memory() {
    let store = TestStore::new().await;
    let (t, run) = started_run(&store).await;
    other_process(&store)
        .execute(&request(t, run, progress(1, 0)))
        .await
        .unwrap();
    let pinned = |version| {
        let mut request = request(t, run, progress(1, 0));
        request.expected = ExpectedVersion::Exact(version);
        request
    };
    // The memory (version 2) agrees with the pin, the run does not (version 3).
    let outcome = store.commands.execute(&pinned(2)).await;
    assert!(
        matches!(
            outcome,
            Err(CommandError::Conflict {
                expected: 2,
                actual: 3,
                ..
            })
        ),
        "{outcome:?}"
    );
    // The pin is right and the memory was stale: it lands.
    let (version, _, _, success) = applied(store.commands.execute(&pinned(3)).await);
    assert_eq!((version, success), (4, 2));
}
