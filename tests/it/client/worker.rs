//! Worker handles and the dispatch helper over real HTTP: increments from 16 concurrent handles
//! on one run add up exactly; a handle dropped mid-run, or by a panic, completes its run failed
//! with its code; a handle's heartbeats keep a run without progress alive past its heartbeat
//! timeout and bring it a cancel request; a refused hand-over marks the run dispatch-failed.

use std::time::Duration;

use runledger_client::wire::audit::StateParams;
use runledger_client::wire::{CancelBody, Outcome, QueueRunBody, RunStateAt, RunStatus};
use runledger_client::{
    Client, DISPATCH_FAILED, DispatchError, Dispatched, RunWorker, WORKER_DROPPED, WORKER_PANICKED,
    WorkerOptions, dispatch,
};
use uuid::Uuid;

use super::support::{ServedApp, client, serve};
use crate::api::TestApi;
use crate::helpers::verbs::{at, tenant};
use crate::lifecycle::support::Lab;

fn body(run_type: &str) -> QueueRunBody {
    QueueRunBody {
        run_type: run_type.to_owned(),
        ..QueueRunBody::default()
    }
}

/// The run's state folded from its events, once `done` holds (bounded).
async fn state_when(auditor: &Client, run: Uuid, done: impl Fn(&RunStateAt) -> bool) -> RunStateAt {
    for _ in 0..400 {
        let state = auditor
            .run_state(1, run, &StateParams::default())
            .await
            .expect("the run's state");
        if done(&state) {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the run did not get there within 10 seconds");
}

/// A served test API, an auditor's client, and a run of tenant 1 started by a worker handle.
async fn a_started_worker() -> (ServedApp, Client, Uuid, RunWorker) {
    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(1)).await;
    let served = serve(&api).await;
    let writer = client(&served, &tokens.writer);
    let auditor = client(&served, &tokens.auditor);
    let run = writer
        .queue_run(1, &body("inventory.sync"))
        .await
        .expect("queue")
        .run
        .id;
    let worker = writer
        .start_worker(1, run, WorkerOptions::default())
        .await
        .expect("start a worker");
    (served, auditor, run, worker)
}

#[tokio::test]
async fn progress_from_16_concurrent_worker_handles_adds_up_exactly() {
    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(1)).await;
    let served = serve(&api).await;
    let writer = client(&served, &tokens.writer);
    let run = writer
        .queue_run(1, &body("inventory.sync"))
        .await
        .expect("queue")
        .run
        .id;
    writer.start_run(1, run).await.expect("start");

    let options = WorkerOptions {
        flush_every: Duration::from_millis(20),
        flush_at_items: 7,
        ..WorkerOptions::default()
    };
    let mut handles = Vec::new();
    for index in 0..16u64 {
        let worker = writer.worker(1, run, options.clone());
        handles.push(tokio::spawn(async move {
            for item in 0..50u64 {
                match (index + item) % 5 {
                    0 => worker.item_failed("graph.throttled", "Throttled (retrying)"),
                    1 => worker.skipped(1),
                    _ => worker.succeeded(1),
                }
                if item % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            if index == 0 {
                // Completion is one worker's, after the others are done.
                worker.flush().await.expect("the last flush");
                Some(worker)
            } else {
                worker.release().await.expect("the last flush");
                None
            }
        }));
    }
    let mut completer = None;
    for handle in handles {
        completer = completer.or(handle.await.expect("a worker"));
    }
    let answer = completer
        .expect("the first worker")
        .complete(None)
        .await
        .expect("complete");
    let counts = answer.run.summary_counts;
    assert_eq!(counts.success + counts.failed + counts.skipped, 16 * 50);
    assert_eq!(counts.failed, 16 * 10);
    assert_eq!(counts.skipped, 16 * 10);
    assert_eq!(answer.run.failure_summary[0].count, 16 * 10);
    assert_eq!(answer.run.outcome, Outcome::PartiallySucceeded);
}

#[tokio::test]
async fn a_worker_handle_dropped_mid_run_completes_the_run_failed() {
    let (_served, auditor, run, worker) = a_started_worker().await;
    worker.set_total(10);
    worker.succeeded(3);
    drop(worker);

    let state = state_when(&auditor, run, |s| s.run.status == RunStatus::Completed).await;
    assert_eq!(state.run.outcome, Outcome::Failed);
    assert_eq!(
        state.run.summary_counts.success, 3,
        "what it had gathered is sent first"
    );
    assert_eq!(state.run.failure_summary[0].code, WORKER_DROPPED);
}

#[tokio::test]
async fn a_worker_that_panics_completes_its_run_failed_as_panicked() {
    let (_served, auditor, run, worker) = a_started_worker().await;
    let job = tokio::spawn(async move {
        worker.succeeded(1);
        panic!("the job's bug");
    });
    assert!(job.await.expect_err("the job panicked").is_panic());

    let state = state_when(&auditor, run, |s| s.run.status == RunStatus::Completed).await;
    assert_eq!(state.run.outcome, Outcome::Failed);
    assert_eq!(state.run.failure_summary[0].code, WORKER_PANICKED);
}

/// Waits (bounded) until `ready` holds, asking `probe` every 20 ms of real time.
async fn eventually<T, F: Future<Output = T>>(
    what: &str,
    mut probe: impl FnMut() -> F,
    ready: impl Fn(&T) -> bool,
) -> T {
    for _ in 0..500 {
        let seen = probe().await;
        if ready(&seen) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not within 10 seconds");
}

#[tokio::test]
async fn a_worker_handle_heartbeats_keep_its_run_alive_without_progress_and_bring_a_cancel() {
    // The API and the sweeper read a clock the test moves; the handle's task runs in real time.
    let lab = Lab::new().await;
    let served = serve(&lab.api).await;
    let writer = client(&served, &lab.tokens.writer);
    let reader = client(&served, &lab.tokens.reader);
    let queue = |n: u32| QueueRunBody {
        identity: Some(serde_json::json!({ "n": n })),
        heartbeat_timeout_seconds: Some(3),
        ..body("inventory.sync")
    };
    let kept = writer.queue_run(1, &queue(1)).await.expect("queue").run.id;
    let unattended = writer.queue_run(1, &queue(2)).await.expect("queue").run.id;
    writer.start_run(1, unattended).await.expect("start");
    // The handle heartbeats a third of the run's 3-second timeout after it last sent anything,
    // however long `heartbeat_every` is.
    let worker = writer
        .start_worker(
            1,
            kept,
            WorkerOptions {
                flush_every: Duration::from_millis(50),
                heartbeat_every: Duration::from_secs(600),
                ..WorkerOptions::default()
            },
        )
        .await
        .expect("start a worker");
    lab.api.project().await;

    // Time passes on the server's clock while the worker reports no progress: its heartbeats,
    // stamped by that clock, show in the run.
    for second in [2, 4] {
        lab.at(second);
        let run = eventually(
            "a heartbeat at the clock's time",
            || reader.get_run(1, kept, None),
            |run| {
                run.as_ref()
                    .is_ok_and(|run| run.last_heartbeat_at == Some(at(second)))
            },
        )
        .await
        .expect("the run");
        assert_eq!(run.status, RunStatus::Running);
        assert_eq!(run.last_progress_at, None, "no progress was reported");
    }

    // At 4 s both runs are past 3 s from their start: the one without a handle times out, the
    // one whose handle heartbeated at 4 s does not.
    let mut sweeper = lab.sweeper();
    let report = lab.sweep(&mut sweeper).await;
    assert_eq!(report.timed_out, 1, "{report:?}");
    lab.api.project().await;
    let timed_out = reader.get_run(1, unattended, None).await.expect("the run");
    assert_eq!(timed_out.outcome, Outcome::Failed);
    assert_eq!(timed_out.failure_summary[0].code, "run.heartbeat_timeout");
    let alive = reader.get_run(1, kept, None).await.expect("the run");
    assert_eq!(alive.status, RunStatus::Running);

    // A cancel request reaches the handle through its next heartbeat's answer.
    assert!(!worker.cancel_requested());
    writer
        .cancel_run(
            1,
            kept,
            &CancelBody {
                reason: Some("the user stopped it".to_owned()),
            },
        )
        .await
        .expect("cancel");
    eventually(
        "the cancel request seen by the handle",
        || std::future::ready(()),
        |()| worker.cancel_requested(),
    )
    .await;
    let answer = worker
        .complete(Some(Outcome::Cancelled))
        .await
        .expect("complete as cancelled");
    assert_eq!(answer.run.outcome, Outcome::Cancelled);
}

#[tokio::test]
async fn a_refused_hand_over_marks_the_run_dispatch_failed_and_an_accepted_one_does_not() {
    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(1)).await;
    let served = serve(&api).await;
    let writer = client(&served, &tokens.writer);

    let refused = dispatch(&writer, 1, &body("backup.nightly"), |_run| async {
        Err::<(), _>("redis: connection refused")
    })
    .await
    .expect_err("the queue refused it");
    let DispatchError::Enqueue { run, marking, .. } = refused else {
        panic!("an enqueue failure, not {refused:?}");
    };
    assert!(marking.is_none());
    let run = run.expect("the run, marked");
    assert_eq!(
        (run.status, run.outcome),
        (RunStatus::Completed, Outcome::Failed)
    );
    assert_eq!(run.failure_summary[0].code, DISPATCH_FAILED);
    assert_eq!(run.failure_summary[0].message, "redis: connection refused");

    let (sent, received) = tokio::sync::oneshot::channel();
    let queued = dispatch(&writer, 1, &body("backup.nightly"), |run| async move {
        sent.send(run.id).map_err(|_| "the test's queue is gone")
    })
    .await
    .expect("handed over");
    let Dispatched::Queued(run) = queued else {
        panic!("a new run, not {queued:?}");
    };
    assert_eq!(received.await.expect("the job"), run.id);
    assert_eq!(run.status, RunStatus::Queued);

    let again = dispatch(&writer, 1, &body("backup.nightly"), |_run| async {
        Err::<(), _>("never called: the run is active")
    })
    .await
    .expect("the active run");
    assert_eq!(again, Dispatched::AlreadyActive(run));
}
