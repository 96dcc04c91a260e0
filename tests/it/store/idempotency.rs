//! Idempotency: re-sending an append or a command with the same event ids returns the first result.

use std::sync::Arc;

use futures_util::future::join_all;
use runledger_core::{RunRejection, RunStatus};
use runledger_store::append::Appended;
use runledger_store::{AppendOutcome, CommandError, CommandOutcome, NewEvent, StoreError};
use serde_json::json;
use tokio::sync::Barrier;

use crate::helpers::TestStore;
use crate::helpers::verbs::{
    new_event, new_run_id, progress, progressed_event, queue, request, start, started_event, tenant,
};

#[track_caller]
fn appended(outcome: Result<AppendOutcome, StoreError>) -> Appended {
    match outcome {
        Ok(AppendOutcome::Appended(appended)) => appended,
        other => panic!("expected an append: {other:?}"),
    }
}

#[tokio::test]
async fn re_sending_an_append_returns_the_original_positions_and_writes_nothing() {
    let store = TestStore::new().await;
    let (t, run) = (tenant(1), new_run_id());
    store.queue_run(t, run, json!({"k": 1})).await;
    let batch = [new_event(started_event(1)), new_event(progressed_event(2))];
    let first = appended(store.writer.append(t, run, 1, &batch).await);
    assert!(!first.replayed);
    assert_eq!(first.version, 3);
    let events = store.count("events").await;

    for expected in [1, 3, 0] {
        let again = appended(store.writer.append(t, run, expected, &batch).await);
        assert_eq!(
            again,
            Appended {
                replayed: true,
                ..first.clone()
            },
            "re-sent at expected version {expected}"
        );
    }
    // Also after the run has moved on.
    appended(
        store
            .writer
            .append(t, run, 3, &[new_event(started_event(10))])
            .await,
    );
    let again = appended(store.writer.append(t, run, 1, &batch).await);
    assert_eq!(again.positions, first.positions);
    assert_eq!(again.version, 3);
    assert!(again.replayed);
    assert_eq!(store.count("events").await, events + 1);
}

#[tokio::test]
async fn an_event_id_reused_for_other_content_is_refused() {
    let store = TestStore::new().await;
    let (t, run) = (tenant(1), new_run_id());
    store.queue_run(t, run, json!({"k": 1})).await;
    let original = new_event(started_event(1));
    appended(
        store
            .writer
            .append(t, run, 1, std::slice::from_ref(&original))
            .await,
    );
    let events = store.count("events").await;

    let other_payload = NewEvent {
        event: started_event(2),
        ..original.clone()
    };
    let outcome = store.writer.append(t, run, 2, &[other_payload]).await;
    assert!(
        matches!(outcome, Err(StoreError::IdempotencyMismatch { event_id }) if event_id == original.event_id.as_uuid()),
        "{outcome:?}"
    );

    let other_run = new_run_id();
    store.queue_run(t, other_run, json!({"k": 2})).await;
    let outcome = store
        .writer
        .append(t, other_run, 1, std::slice::from_ref(&original))
        .await;
    assert!(
        matches!(outcome, Err(StoreError::IdempotencyMismatch { .. })),
        "{outcome:?}"
    );
    assert_eq!(store.count("events").await, events + 1);
}

#[tokio::test]
async fn re_executing_a_command_returns_its_first_result_even_when_deciding_again_would_fail() {
    let store = TestStore::new().await;
    let (t, run) = (tenant(1), new_run_id());
    store.queue_run(t, run, json!({"k": 1})).await;
    let start_request = request(t, run, start());
    let CommandOutcome::Applied {
        position, replayed, ..
    } = store.commands.execute(&start_request).await.unwrap()
    else {
        panic!("start applies")
    };
    assert!(!replayed);
    store
        .commands
        .execute(&request(t, run, progress(3, 1)))
        .await
        .unwrap();
    let events = store.count("events").await;

    // A second, different Start is refused by the domain…
    let refused = store.commands.execute(&request(t, run, start())).await;
    assert!(
        matches!(
            refused,
            Err(CommandError::Rejected(
                RunRejection::InvalidTransition { .. }
            ))
        ),
        "{refused:?}"
    );
    // … but the same Start re-sent returns what it did the first time, as of its own version.
    let again = store.commands.execute(&start_request).await.unwrap();
    let CommandOutcome::Applied {
        run: snapshot,
        position: again_position,
        replayed: true,
    } = again
    else {
        panic!("expected a replay: {again:?}")
    };
    assert_eq!(again_position, position);
    assert_eq!(snapshot.version, 2);
    assert_eq!(snapshot.status, RunStatus::Running);
    assert_eq!(snapshot.summary_counts.success, 0);
    assert_eq!(store.count("events").await, events);
}

#[tokio::test]
async fn re_executing_a_queue_returns_the_run_not_a_dedupe() {
    let store = TestStore::new().await;
    let (t, run) = (tenant(1), new_run_id());
    let queue_request = request(t, run, queue(t, run, json!({"k": 1})));
    let first = store.commands.execute(&queue_request).await.unwrap();
    let again = store.commands.execute(&queue_request).await.unwrap();
    let (
        CommandOutcome::Applied {
            position: first_position,
            ..
        },
        CommandOutcome::Applied {
            position,
            replayed: true,
            run: snapshot,
        },
    ) = (&first, &again)
    else {
        panic!("expected the first result again: {first:?} then {again:?}")
    };
    assert_eq!(position, first_position);
    assert_eq!(snapshot.id, run);
    assert_eq!(store.count("events").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_re_sends_of_one_append_all_return_its_positions() {
    let store = TestStore::new().await;
    let (t, run) = (tenant(1), new_run_id());
    store.queue_run(t, run, json!({"k": 1})).await;
    let batch = Arc::new([new_event(started_event(1))]);
    let barrier = Arc::new(Barrier::new(20));
    let tasks = (0..20).map(|_| {
        let (writer, batch, barrier) = (store.writer.clone(), batch.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            writer.append(t, run, 1, &batch[..]).await
        })
    });
    let sends: Vec<Appended> = join_all(tasks)
        .await
        .into_iter()
        .map(|j| appended(j.unwrap()))
        .collect();
    assert_eq!(sends.iter().filter(|a| !a.replayed).count(), 1, "{sends:?}");
    for send in &sends {
        assert_eq!(send.positions, sends[0].positions);
        assert_eq!(send.version, 2);
    }
    assert_eq!(store.count("events").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_re_sends_of_one_queue_all_return_the_new_run() {
    let store = TestStore::new().await;
    let (t, run) = (tenant(1), new_run_id());
    let queue_request = Arc::new(request(t, run, queue(t, run, json!({"k": 1}))));
    let barrier = Arc::new(Barrier::new(20));
    let tasks = (0..20).map(|_| {
        let (commands, request, barrier) = (
            store.commands.clone(),
            queue_request.clone(),
            barrier.clone(),
        );
        tokio::spawn(async move {
            barrier.wait().await;
            commands.execute(&request).await
        })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|j| j.unwrap())
        .collect();
    let mut first_sends = 0;
    for result in &results {
        match result {
            Ok(CommandOutcome::Applied {
                run: snapshot,
                replayed,
                ..
            }) if snapshot.id == run => first_sends += usize::from(!replayed),
            other => panic!("expected the queued run: {other:?}"),
        }
    }
    assert_eq!(first_sends, 1, "{results:?}");
    assert_eq!(store.count("events").await, 1);
}
