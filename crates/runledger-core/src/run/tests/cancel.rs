//! Cancellation: a queued run completes `cancelled` at once; a running run records the request,
//! and only its worker's acknowledgement completes it `cancelled`.

use serde_json::Value;

use super::*;
use crate::limits::Limit;

#[test]
fn cancel_of_a_queued_run_completes_it_cancelled_at_once() {
    let given = &[queued()];
    let expected = cancelled(cancel_request(Some("Wrong tenant selected"), 2), 2);
    check(
        given,
        cancel(Some("Wrong tenant selected"), 2),
        Ok(vec![expected.clone()]),
    );
    let run = snapshot(&[queued(), expected]);
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.outcome, Outcome::Cancelled);
    assert_eq!(run.completed_at, Some(at(2)));
    assert_eq!(run.started_at, None);
    // Like every completion, it frees the identity's dedupe slot.
    assert!(!run.status.is_active());
    assert_eq!(
        run.cancel_requested,
        Some(cancel_request(Some("Wrong tenant selected"), 2))
    );
    let json = run.to_operation_run_json();
    assert_eq!(json["cancel_requested"], true);
    assert_eq!(json["cancel_requested_at"], "2026-01-17T22:27:00.000000Z");
    assert_eq!(json["cancel_reason"], "Wrong tenant selected");
    assert_eq!(json["completion_reason"], "cancelled");
    assert_eq!(json["outcome"], "cancelled");
}

#[test]
fn cancel_of_a_running_run_records_a_request_and_keeps_it_running() {
    let given = &[queued(), started()];
    check(given, cancel(None, 2), Ok(vec![cancel_requested(None, 2)]));
    let run = snapshot(&[queued(), started(), cancel_requested(None, 2)]);
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.outcome, Outcome::Pending);
    assert_eq!(run.cancel_requested, Some(cancel_request(None, 2)));
    assert_eq!(run.updated_at, at(2));
    assert_eq!(run.version, 3);
    let json = run.to_operation_run_json();
    assert_eq!(json["cancel_requested"], true);
    assert_eq!(json["cancel_reason"], Value::Null);
    assert_eq!(json["completion_reason"], Value::Null);
}

#[test]
fn a_second_cancel_of_a_run_asked_to_cancel_changes_nothing() {
    let given = &[queued(), started(), cancel_requested(Some("first"), 2)];
    check(given, cancel(Some("second"), 3), Ok(Vec::new()));
    check(given, cancel(None, 3), Ok(Vec::new()));
}

#[test]
fn cancel_of_a_completed_run_is_refused() {
    let finished = [
        vec![queued(), started(), completed(Outcome::Succeeded)],
        vec![queued(), dispatch_failed()],
        vec![queued(), cancelled(cancel_request(None, 2), 2)],
        vec![
            queued(),
            started(),
            cancel_requested(None, 2),
            cancelled(cancel_request(None, 2), 3),
        ],
    ];
    for given in &finished {
        check(
            given,
            cancel(Some("again"), 4),
            invalid(CommandKind::Cancel, RunStatus::Completed),
        );
    }
    check(&[], cancel(None, 4), Err(RunRejection::NotFound));
}

#[test]
fn a_worker_completes_cancelled_only_after_a_request() {
    check(
        &[queued(), started()],
        complete(Some(Outcome::Cancelled)),
        Err(RunRejection::CancelNotRequested),
    );
    let given = &[queued(), started(), cancel_requested(Some("Stop"), 2)];
    check(
        given,
        complete(Some(Outcome::Cancelled)),
        Ok(vec![cancelled(cancel_request(Some("Stop"), 2), 3)]),
    );
    // With its final counts and failures in the same event.
    let finals = SummaryCounts {
        total: Some(10),
        success: 4,
        failed: 0,
        skipped: 0,
    };
    let acknowledged = RunCommand::Complete(Complete {
        outcome: Some(Outcome::Cancelled),
        final_counts: Some(finals),
        failures: vec![report_failure("run.cancelled", "Stopped after 4 of 10", 1)],
        at: at(3),
    });
    check(
        given,
        acknowledged,
        Ok(vec![RunEvent::Completed(RunCompleted {
            outcome: Outcome::Cancelled,
            reason: CompletionReason::Cancelled {
                cancellation: cancel_request(Some("Stop"), 2),
            },
            failures: vec![entry("run.cancelled", "Stopped after 4 of 10", 1)],
            final_counts: Some(finals),
            completed_at: at(3),
        })]),
    );
}

#[test]
fn a_worker_asked_to_cancel_may_still_finish_or_report() {
    let given = &[queued(), started(), cancel_requested(None, 2)];
    check(
        given,
        complete(Some(Outcome::Succeeded)),
        Ok(vec![completed(Outcome::Succeeded)]),
    );
    // Without an outcome it is derived from the counts: never `cancelled`.
    check(
        given,
        complete(None),
        Ok(vec![completed(Outcome::Succeeded)]),
    );
    check(given, report_success(1), Ok(vec![progressed_success(1)]));
    // The request stays on record after the run finished otherwise.
    let run = snapshot(&[
        queued(),
        started(),
        cancel_requested(None, 2),
        completed(Outcome::Succeeded),
    ]);
    assert_eq!(run.cancel_requested, Some(cancel_request(None, 2)));
    assert_eq!(run.completion, Some(CompletionReason::Finished));
}

#[test]
fn a_worker_that_ignores_a_request_is_ended_by_its_deadline() {
    let limits = RunLimits::from_seconds(None, Some(600), None).expect("in bounds");
    let given = &[
        RunEvent::Queued(RunQueued {
            limits,
            ..queued_payload()
        }),
        started(),
        cancel_requested(None, 2),
    ];
    let decided = decide(&replay(given), time_out(at(11), None)).expect("timed out");
    let [RunEvent::Completed(completed)] = decided.as_slice() else {
        panic!("one Completed: {decided:?}")
    };
    assert_eq!(completed.outcome, Outcome::Failed);
    assert!(matches!(
        completed.reason,
        CompletionReason::TimedOut { time_out } if time_out.limit == Limit::RunDeadline
    ));
}

#[test]
fn cancel_reasons_are_sanitized_and_bounded() {
    let cases = [
        (
            Some("  Stop\tnow:\npassword=hunter2  "),
            Some("Stop now: password=[redacted]".to_owned()),
        ),
        (Some(" \n\t "), None),
        (Some(""), None),
        (None, None),
    ];
    for (raw, expected) in cases {
        check(
            &[queued(), started()],
            cancel(raw, 2),
            Ok(vec![RunEvent::CancelRequested(RunCancelRequested {
                reason: expected,
                requested_at: at(2),
            })]),
        );
    }
    let long = "x ".repeat(2_000);
    let Ok(events) = decide(&replay(&[queued()]), cancel(Some(&long), 2)) else {
        panic!("a queued run cancels")
    };
    let [
        RunEvent::Completed(RunCompleted {
            reason: CompletionReason::Cancelled { cancellation },
            ..
        }),
    ] = events.as_slice()
    else {
        panic!("one cancellation: {events:?}")
    };
    let reason = cancellation.reason.as_deref().expect("a reason");
    assert_eq!(reason.chars().count(), FailureEntry::MAX_MESSAGE_CHARS);
    assert!(reason.ends_with('…'));
}
