//! Tests of the run core: given a history, when a command arrives, then exactly these events or this rejection.
//!
//! Everything is fixed: times are minutes past a fixed instant and ids are `Uuid::from_u128`, so no
//! test reads the clock or makes an id. The only randomness is proptest's choice of inputs in
//! [`props`], which shrinks and keeps any failing case.
//!
//! This file holds the `check` helper, the builders and the lifecycle and counting rules; the
//! submodules hold the rest:

/// Cancellation: a queued run at once, a running run by request and acknowledgement.
mod cancel;
/// Stored payloads: round trip of every variant, `cancelled` decoding, the event catalog examples.
mod events;
/// Failure summaries: merging by code, the `other` bucket, sanitizing messages.
mod failures;
/// Fixed, independently computed vectors of the run identity hash.
mod identity_vectors;
/// Property tests over random command sequences.
mod props;
/// Re-delivery: a start naming a worker, and a completion with final counts and failures.
mod redelivery;
/// Lifecycle limits: each fires at its bound and not before; heartbeats and progress.
mod time_outs;
/// The value newtypes: run type, ids, initiator, failure code, identity hash, status names.
mod values;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{Run, RunSnapshot, decide, derive_outcome, evolve, replay};
use crate::command::{
    Cancel, CommandKind, Complete, DispatchFailed, QueueRun, ReportProgress, RunCommand, Start,
    TimeOut,
};
use crate::counts::{ProgressDelta, SummaryCounts};
use crate::error::RunRejection;
use crate::event::{
    CompletionReason, LimitPassed, RunCancelRequested, RunCompleted, RunEvent, RunProgressed,
    RunQueued, RunStarted,
};
use crate::failure::{FailureCode, FailureEntry, FailureReport};
use crate::identity::{RunIdentity, RunIdentityHash};
use crate::ids::{RunId, TenantId, UserId};
use crate::initiator::Initiator;
use crate::limits::{Limit, LimitSeconds, RunLimits};
use crate::run_type::RunType;
use crate::status::{Outcome, RunStatus};
use crate::worker::WorkerId;

// ---------------------------------------------------------------------------------------------
// The helper.

/// Given `given` as the run's history, `when` decides to exactly `expected`.
#[track_caller]
fn check(given: &[RunEvent], when: RunCommand, expected: Result<Vec<RunEvent>, RunRejection>) {
    let state = replay(given);
    assert_eq!(decide(&state, when), expected);
}

/// The snapshot a history folds to; the history must contain a `Queued`.
#[track_caller]
fn snapshot(given: &[RunEvent]) -> RunSnapshot {
    match replay(given) {
        Run::Exists(run) => *run,
        Run::Unqueued => panic!("the history has no Queued event"),
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed values.

/// `minute` minutes after 2026-01-17 22:25:00 UTC (the seed's merge time).
fn at(minute: i64) -> DateTime<Utc> {
    let epoch = DateTime::from_timestamp(1_768_688_700, 0).expect("a valid instant");
    epoch + TimeDelta::minutes(minute)
}

fn run_id() -> RunId {
    RunId::from_uuid(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0054))
}

fn tenant() -> TenantId {
    TenantId::new(42).expect("positive")
}

fn restore_execute() -> RunType {
    RunType::parse("restore.execute").expect("a valid type")
}

fn initiator() -> Initiator {
    Initiator::user(UserId::new(7).expect("positive"), "Ahmed Darrazi").expect("a valid name")
}

/// The hash of tenant 42, `restore.execute`, `{"restore_run_id":123}`: the second fixed vector
/// of `tests-vectors/identity-hash.json` (computed with Python, not with this crate).
fn identity_hash() -> RunIdentityHash {
    "e51b876fc8aa4f8084e71e479f745509cc846de29c430dd5c56505aeeadf9c91"
        .parse()
        .expect("64 hex digits")
}

fn code(text: &str) -> FailureCode {
    FailureCode::parse(text).expect("a valid failure code")
}

fn report_failure(code_text: &str, message: &str, count: u64) -> FailureReport {
    FailureReport {
        code: code(code_text),
        message: message.to_owned(),
        count,
    }
}

fn entry(code_text: &str, message: &str, count: u64) -> FailureEntry {
    FailureEntry {
        code: code(code_text),
        message: message.to_owned(),
        count,
    }
}

fn delta(success: u64, failed: u64, skipped: u64) -> ProgressDelta {
    ProgressDelta {
        success,
        failed,
        skipped,
    }
}

// ---------------------------------------------------------------------------------------------
// Commands (verbs) and the events they produce (past tense).

fn queue() -> RunCommand {
    RunCommand::Queue(QueueRun {
        run_id: run_id(),
        tenant_id: tenant(),
        run_type: restore_execute(),
        identity: RunIdentity::new(json!({"restore_run_id": 123})).expect("a small identity"),
        initiator: initiator(),
        context: json!({"restore_run_id": 123, "selection": ["policy-1", "policy-2"]}),
        limits: RunLimits::default(),
        at: at(0),
    })
}

fn queued() -> RunEvent {
    RunEvent::Queued(queued_payload())
}

fn queued_payload() -> RunQueued {
    RunQueued {
        run_id: run_id(),
        tenant_id: tenant(),
        run_type: restore_execute(),
        run_identity_hash: identity_hash(),
        identity: json!({"restore_run_id": 123}),
        initiator: initiator(),
        context: json!({"restore_run_id": 123, "selection": ["policy-1", "policy-2"]}),
        queued_at: at(0),
        limits: RunLimits::default(),
    }
}

fn start() -> RunCommand {
    RunCommand::Start(Start {
        worker: None,
        at: at(1),
    })
}

fn started() -> RunEvent {
    RunEvent::Started(RunStarted {
        started_at: at(1),
        worker: None,
    })
}

fn worker(id: &str) -> WorkerId {
    WorkerId::parse(id).expect("a valid worker id")
}

fn report(delta: ProgressDelta, total: Option<u64>, failures: Vec<FailureReport>) -> RunCommand {
    RunCommand::ReportProgress(ReportProgress {
        delta,
        total,
        failures,
        at: at(2),
    })
}

fn progressed(delta: ProgressDelta, total: Option<u64>, failures: Vec<FailureEntry>) -> RunEvent {
    RunEvent::Progressed(RunProgressed {
        delta,
        total,
        failures,
        reported_at: at(2),
    })
}

/// A report of `n` successes.
fn report_success(n: u64) -> RunCommand {
    report(delta(n, 0, 0), None, Vec::new())
}

/// The progress event of `n` successes.
fn progressed_success(n: u64) -> RunEvent {
    progressed(delta(n, 0, 0), None, Vec::new())
}

fn complete(outcome: Option<Outcome>) -> RunCommand {
    RunCommand::Complete(Complete {
        outcome,
        final_counts: None,
        failures: Vec::new(),
        at: at(3),
    })
}

fn completed(outcome: Outcome) -> RunEvent {
    RunEvent::Completed(RunCompleted {
        outcome,
        reason: CompletionReason::Finished,
        failures: Vec::new(),
        final_counts: None,
        completed_at: at(3),
    })
}

fn cancel(reason: Option<&str>, minute: i64) -> RunCommand {
    RunCommand::Cancel(Cancel {
        reason: reason.map(str::to_owned),
        at: at(minute),
    })
}

/// A sweeper's time-out at `when`, knowing the stored heartbeat `last_heartbeat_at`.
fn time_out(when: DateTime<Utc>, last_heartbeat_at: Option<DateTime<Utc>>) -> RunCommand {
    RunCommand::TimeOut(TimeOut {
        at: when,
        last_heartbeat_at,
    })
}

/// Limits in whole seconds, as a caller gives them.
fn limits(start: Option<i64>, run: Option<i64>, heartbeat: Option<i64>) -> RunLimits {
    RunLimits::from_seconds(start, run, heartbeat).expect("limits within bounds")
}

/// The `Completed` a time-out at `when` writes when `limit` of `seconds` passed at `passed_at`.
fn timed_out(
    limit: Limit,
    seconds: i64,
    passed_at: DateTime<Utc>,
    last_heartbeat_at: Option<DateTime<Utc>>,
    when: DateTime<Utc>,
    message: &str,
) -> RunEvent {
    RunEvent::Completed(RunCompleted {
        outcome: Outcome::Failed,
        reason: CompletionReason::TimedOut {
            time_out: LimitPassed {
                limit,
                limit_seconds: LimitSeconds::parse("limit", seconds).expect("in bounds"),
                passed_at,
                last_heartbeat_at,
            },
        },
        failures: vec![entry(limit.failure_code(), message, 1)],
        final_counts: None,
        completed_at: when,
    })
}

fn cancel_request(reason: Option<&str>, minute: i64) -> RunCancelRequested {
    RunCancelRequested {
        reason: reason.map(str::to_owned),
        requested_at: at(minute),
    }
}

fn cancel_requested(reason: Option<&str>, minute: i64) -> RunEvent {
    RunEvent::CancelRequested(cancel_request(reason, minute))
}

/// The `Completed` of a cancellation answering `cancellation`, at `minute`.
fn cancelled(cancellation: RunCancelRequested, minute: i64) -> RunEvent {
    RunEvent::Completed(RunCompleted {
        outcome: Outcome::Cancelled,
        reason: CompletionReason::Cancelled { cancellation },
        failures: Vec::new(),
        final_counts: None,
        completed_at: at(minute),
    })
}

/// A dispatch failure whose raw message carries credentials in a URL.
fn fail_dispatch() -> RunCommand {
    RunCommand::DispatchFailed(DispatchFailed {
        failure: report_failure(
            "queue.unavailable",
            "connect to amqp://worker:hunter2@mq.internal:5672 refused\n(retry later)",
            1,
        ),
        at: at(1),
    })
}

/// What [`fail_dispatch`] records: the failure sanitized, the run failed at once.
fn dispatch_failed() -> RunEvent {
    RunEvent::Completed(RunCompleted {
        outcome: Outcome::Failed,
        reason: CompletionReason::DispatchFailed,
        failures: vec![entry(
            "queue.unavailable",
            "connect to amqp://[redacted]@mq.internal:5672 refused (retry later)",
            1,
        )],
        final_counts: None,
        completed_at: at(1),
    })
}

fn invalid(command: CommandKind, status: RunStatus) -> Result<Vec<RunEvent>, RunRejection> {
    Err(RunRejection::InvalidTransition { command, status })
}

// ---------------------------------------------------------------------------------------------
// The state × command matrix: five states, the five original commands, every cell asserted
// (cancel and time-out have their own matrices in `cancel` and `time_outs`).

#[test]
fn unqueued_run_accepts_only_queue() {
    let given = &[];
    check(given, queue(), Ok(vec![queued()]));
    check(given, start(), Err(RunRejection::NotFound));
    check(given, report_success(1), Err(RunRejection::NotFound));
    check(given, complete(None), Err(RunRejection::NotFound));
    check(given, fail_dispatch(), Err(RunRejection::NotFound));
}

#[test]
fn queued_run_accepts_start_and_dispatch_failure() {
    let given = &[queued()];
    check(
        given,
        queue(),
        Err(RunRejection::AlreadyExists { run_id: run_id() }),
    );
    check(given, start(), Ok(vec![started()]));
    check(
        given,
        report_success(1),
        invalid(CommandKind::ReportProgress, RunStatus::Queued),
    );
    check(
        given,
        complete(None),
        invalid(CommandKind::Complete, RunStatus::Queued),
    );
    check(given, fail_dispatch(), Ok(vec![dispatch_failed()]));
}

#[test]
fn running_run_accepts_progress_and_complete() {
    let given = &[queued(), started()];
    check(
        given,
        queue(),
        Err(RunRejection::AlreadyExists { run_id: run_id() }),
    );
    check(
        given,
        start(),
        invalid(CommandKind::Start, RunStatus::Running),
    );
    check(given, report_success(1), Ok(vec![progressed_success(1)]));
    check(
        given,
        complete(None),
        Ok(vec![completed(Outcome::Succeeded)]),
    );
    check(
        given,
        fail_dispatch(),
        invalid(CommandKind::DispatchFailed, RunStatus::Running),
    );
}

#[test]
fn succeeded_run_rejects_every_command() {
    let given = &[queued(), started(), completed(Outcome::Succeeded)];
    check(
        given,
        queue(),
        Err(RunRejection::AlreadyExists { run_id: run_id() }),
    );
    check(
        given,
        start(),
        invalid(CommandKind::Start, RunStatus::Completed),
    );
    check(
        given,
        report_success(1),
        invalid(CommandKind::ReportProgress, RunStatus::Completed),
    );
    check(
        given,
        complete(None),
        invalid(CommandKind::Complete, RunStatus::Completed),
    );
    check(
        given,
        fail_dispatch(),
        invalid(CommandKind::DispatchFailed, RunStatus::Completed),
    );
}

#[test]
fn dispatch_failed_run_rejects_every_command() {
    let given = &[queued(), dispatch_failed()];
    check(
        given,
        queue(),
        Err(RunRejection::AlreadyExists { run_id: run_id() }),
    );
    check(
        given,
        start(),
        invalid(CommandKind::Start, RunStatus::Completed),
    );
    check(
        given,
        report_success(1),
        invalid(CommandKind::ReportProgress, RunStatus::Completed),
    );
    check(
        given,
        complete(None),
        invalid(CommandKind::Complete, RunStatus::Completed),
    );
    check(
        given,
        fail_dispatch(),
        invalid(CommandKind::DispatchFailed, RunStatus::Completed),
    );
}

// ---------------------------------------------------------------------------------------------
// Lifecycle.

#[test]
fn outcome_is_pending_until_completed() {
    let history = [queued(), started(), progressed_success(2)];
    for len in 1..=history.len() {
        let run = snapshot(&history[..len]);
        assert_ne!(run.status, RunStatus::Completed);
        assert_eq!(run.outcome, Outcome::Pending);
        assert_eq!(run.completed_at, None);
    }
    let run = snapshot(&[queued(), started(), completed(Outcome::PartiallySucceeded)]);
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.outcome, Outcome::PartiallySucceeded);
}

#[test]
fn queued_event_folds_every_field_of_the_seed() {
    let run = snapshot(&[queued()]);
    assert_eq!(
        run,
        RunSnapshot {
            id: run_id(),
            tenant_id: tenant(),
            initiator: initiator(),
            run_type: restore_execute(),
            status: RunStatus::Queued,
            outcome: Outcome::Pending,
            run_identity_hash: identity_hash(),
            identity: json!({"restore_run_id": 123}),
            summary_counts: SummaryCounts::default(),
            failure_summary: Vec::new(),
            context: json!({"restore_run_id": 123, "selection": ["policy-1", "policy-2"]}),
            started_at: None,
            completed_at: None,
            created_at: at(0),
            updated_at: at(0),
            version: 1,
            limits: RunLimits::default(),
            worker: None,
            last_progress_at: None,
            cancel_requested: None,
            completion: None,
        }
    );
    assert!(run.status.is_active());
}

#[test]
fn the_operation_run_json_has_the_seeds_fields_then_the_lifecycle_fields() {
    let json = snapshot(&[queued()]).to_operation_run_json();
    let keys: Vec<&str> = json
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "id",
        "tenant_id",
        "user_id",
        "initiator_name",
        "type",
        "status",
        "outcome",
        "run_identity_hash",
        "identity",
        "summary_counts",
        "failure_summary",
        "context",
        "started_at",
        "completed_at",
        "created_at",
        "updated_at",
        "version",
        "done",
    ];
    expected.extend(crate::operation_run::LIFECYCLE_FIELDS);
    expected.sort_unstable();
    assert_eq!(keys, expected);
}

#[test]
fn each_event_advances_version_and_updated_at() {
    let history = [
        queued(),
        started(),
        progressed_success(1),
        completed(Outcome::Succeeded),
    ];
    assert_eq!(replay(&[]).version(), 0);
    assert_eq!(replay(&[]).snapshot(), None);
    for len in 1..=history.len() {
        let run = replay(&history[..len]);
        assert_eq!(run.version(), len as u64);
        let run = run.snapshot().cloned().expect("queued");
        assert_eq!(run.updated_at, history[len - 1].occurred_at());
    }
    let run = snapshot(&history);
    assert_eq!(run.started_at, Some(at(1)));
    assert_eq!(run.completed_at, Some(at(3)));
    assert_eq!(run.created_at, at(0));
}

#[test]
fn complete_keeps_an_explicit_outcome() {
    // Even against the counts: the worker knows best what it finished.
    let given = &[
        queued(),
        started(),
        progressed(delta(0, 3, 0), None, Vec::new()),
    ];
    for outcome in [
        Outcome::Succeeded,
        Outcome::PartiallySucceeded,
        Outcome::Failed,
    ] {
        check(given, complete(Some(outcome)), Ok(vec![completed(outcome)]));
    }
}

#[test]
fn complete_refuses_pending_and_cancelled_without_a_request() {
    let given = &[queued(), started()];
    check(
        given,
        complete(Some(Outcome::Pending)),
        Err(RunRejection::OutcomeNotAllowed {
            outcome: Outcome::Pending,
        }),
    );
    check(
        given,
        complete(Some(Outcome::Cancelled)),
        Err(RunRejection::CancelNotRequested),
    );
}

#[test]
fn only_three_outcomes_are_settable() {
    let settable: Vec<Outcome> = Outcome::ALL
        .iter()
        .copied()
        .filter(|o| o.is_settable())
        .collect();
    assert_eq!(
        settable,
        [
            Outcome::Succeeded,
            Outcome::PartiallySucceeded,
            Outcome::Failed
        ]
    );
}

/// Completes a running run with `progress` folded in, without an outcome.
#[track_caller]
fn check_derived(progress: &[RunEvent], expected: Outcome) {
    let mut given = vec![queued(), started()];
    given.extend_from_slice(progress);
    check(&given, complete(None), Ok(vec![completed(expected)]));
}

#[test]
fn derived_outcome_is_succeeded_when_every_item_succeeded() {
    check_derived(
        &[progressed(delta(5, 0, 0), Some(5), Vec::new())],
        Outcome::Succeeded,
    );
    // Skipped items are not failures.
    check_derived(
        &[progressed(delta(3, 0, 2), None, Vec::new())],
        Outcome::Succeeded,
    );
    check_derived(
        &[progressed(delta(0, 0, 2), None, Vec::new())],
        Outcome::Succeeded,
    );
}

#[test]
fn derived_outcome_is_partially_succeeded_when_mixed() {
    check_derived(
        &[
            progressed(delta(8, 0, 0), Some(10), Vec::new()),
            progressed(delta(0, 2, 0), None, Vec::new()),
        ],
        Outcome::PartiallySucceeded,
    );
}

#[test]
fn derived_outcome_is_failed_when_only_failures() {
    check_derived(
        &[progressed(delta(0, 4, 1), None, Vec::new())],
        Outcome::Failed,
    );
}

#[test]
fn derived_outcome_of_nothing_counted_is_succeeded() {
    check_derived(&[], Outcome::Succeeded);
    check_derived(
        &[progressed(delta(0, 0, 0), Some(0), Vec::new())],
        Outcome::Succeeded,
    );
}

#[test]
fn derived_outcome_of_nothing_counted_but_failure_entries_is_failed() {
    check_derived(
        &[progressed(
            delta(0, 0, 0),
            None,
            vec![entry("graph.throttled", "Throttled (retrying)", 1)],
        )],
        Outcome::Failed,
    );
}

#[test]
fn derive_outcome_table() {
    let counts = |success, failed, skipped| SummaryCounts {
        total: None,
        success,
        failed,
        skipped,
    };
    let failures = [entry("graph.throttled", "Throttled (retrying)", 1)];
    let cases = [
        (counts(0, 0, 0), &[][..], Outcome::Succeeded),
        (counts(0, 0, 0), &failures[..], Outcome::Failed),
        (counts(1, 0, 0), &[][..], Outcome::Succeeded),
        (counts(1, 0, 0), &failures[..], Outcome::Succeeded),
        (counts(0, 0, 1), &failures[..], Outcome::Succeeded),
        (counts(0, 1, 0), &[][..], Outcome::Failed),
        (counts(0, 1, 9), &[][..], Outcome::Failed),
        (counts(1, 1, 0), &[][..], Outcome::PartiallySucceeded),
        (counts(9, 1, 9), &failures[..], Outcome::PartiallySucceeded),
    ];
    for (counts, failures, expected) in cases {
        assert_eq!(
            derive_outcome(&counts, failures),
            expected,
            "{counts:?} with {} failure entries",
            failures.len()
        );
    }
}

#[test]
fn dispatch_failure_completes_a_queued_run_as_failed() {
    let run = snapshot(&[queued(), dispatch_failed()]);
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.outcome, Outcome::Failed);
    assert_eq!(
        run.failure_summary,
        vec![entry(
            "queue.unavailable",
            "connect to amqp://[redacted]@mq.internal:5672 refused (retry later)",
            1,
        )]
    );
    assert_eq!(run.started_at, None);
    assert_eq!(run.completed_at, Some(at(1)));
    // It no longer holds its identity's dedupe slot.
    assert!(!run.status.is_active());
}

#[test]
fn dispatch_failure_with_zero_count_counts_one() {
    let mut command = fail_dispatch();
    if let RunCommand::DispatchFailed(failed) = &mut command {
        failed.failure.count = 0;
    }
    check(&[queued()], command, Ok(vec![dispatch_failed()]));
}

#[test]
fn nothing_follows_completed_whatever_the_command_carries() {
    let finished = [
        vec![queued(), started(), completed(Outcome::Failed)],
        vec![queued(), dispatch_failed()],
    ];
    for given in &finished {
        // Commands that would be refused for their content are refused for the status first.
        let commands = [
            start(),
            report(ProgressDelta::default(), None, Vec::new()),
            report(delta(u64::MAX, 0, 0), Some(0), Vec::new()),
            complete(Some(Outcome::Succeeded)),
            complete(Some(Outcome::Cancelled)),
            complete(Some(Outcome::Pending)),
            fail_dispatch(),
        ];
        for command in commands {
            let kind = command.kind();
            check(given, command, invalid(kind, RunStatus::Completed));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Counts.

#[test]
fn progress_increments_add_up() {
    let run = snapshot(&[
        queued(),
        started(),
        progressed(delta(2, 1, 0), None, Vec::new()),
        progressed(delta(3, 0, 1), Some(10), Vec::new()),
        progressed(delta(1, 1, 1), None, Vec::new()),
    ]);
    assert_eq!(
        run.summary_counts,
        SummaryCounts {
            total: Some(10),
            success: 6,
            failed: 2,
            skipped: 2,
        }
    );
    assert_eq!(run.summary_counts.processed(), 10);
}

#[test]
fn progress_records_the_delta_not_the_sum() {
    let given = &[queued(), started(), progressed_success(5)];
    check(given, report_success(2), Ok(vec![progressed_success(2)]));
}

#[test]
fn total_can_be_set_and_raised() {
    let running = vec![queued(), started()];
    check(
        &running,
        report(ProgressDelta::default(), Some(10), Vec::new()),
        Ok(vec![progressed(
            ProgressDelta::default(),
            Some(10),
            Vec::new(),
        )]),
    );
    let mut with_total = running;
    with_total.push(progressed(delta(4, 0, 0), Some(10), Vec::new()));
    check(
        &with_total,
        report(delta(1, 0, 0), Some(12), Vec::new()),
        Ok(vec![progressed(delta(1, 0, 0), Some(12), Vec::new())]),
    );
    // Restating the known total is allowed.
    check(
        &with_total,
        report(delta(1, 0, 0), Some(10), Vec::new()),
        Ok(vec![progressed(delta(1, 0, 0), Some(10), Vec::new())]),
    );
    let mut raised = with_total;
    raised.push(progressed(delta(0, 0, 0), Some(12), Vec::new()));
    assert_eq!(snapshot(&raised).summary_counts.total, Some(12));
    // A report without a total keeps the known one.
    raised.push(progressed_success(1));
    assert_eq!(snapshot(&raised).summary_counts.total, Some(12));
}

#[test]
fn total_cannot_be_lowered() {
    let given = &[
        queued(),
        started(),
        progressed(delta(0, 0, 0), Some(10), Vec::new()),
    ];
    check(
        given,
        report(delta(1, 0, 0), Some(9), Vec::new()),
        Err(RunRejection::TotalDecreased {
            known: 10,
            given: 9,
        }),
    );
}

#[test]
fn processed_never_exceeds_the_known_total() {
    let given = &[
        queued(),
        started(),
        progressed(delta(1, 1, 0), Some(3), Vec::new()),
    ];
    check(
        given,
        report(delta(1, 0, 0), None, Vec::new()),
        Ok(vec![progressed(delta(1, 0, 0), None, Vec::new())]),
    );
    check(
        given,
        report(delta(1, 0, 1), None, Vec::new()),
        Err(RunRejection::CountsExceedTotal {
            total: 3,
            processed: 4,
        }),
    );
    check(
        given,
        report(delta(0, 0, 2), None, Vec::new()),
        Err(RunRejection::CountsExceedTotal {
            total: 3,
            processed: 4,
        }),
    );
}

#[test]
fn a_total_arriving_after_counts_must_cover_them() {
    let given = &[
        queued(),
        started(),
        progressed(delta(3, 1, 1), None, Vec::new()),
    ];
    check(
        given,
        report(ProgressDelta::default(), Some(4), Vec::new()),
        Err(RunRejection::CountsExceedTotal {
            total: 4,
            processed: 5,
        }),
    );
    check(
        given,
        report(ProgressDelta::default(), Some(5), Vec::new()),
        Ok(vec![progressed(
            ProgressDelta::default(),
            Some(5),
            Vec::new(),
        )]),
    );
    // The total and the counts of one report are checked together.
    check(
        given,
        report(delta(1, 0, 0), Some(5), Vec::new()),
        Err(RunRejection::CountsExceedTotal {
            total: 5,
            processed: 6,
        }),
    );
}

#[test]
fn counts_that_would_overflow_are_refused() {
    let given = &[queued(), started(), progressed_success(u64::MAX)];
    check(given, report_success(1), Err(RunRejection::CountOverflow));
    // Each count fits, but their sum does not.
    check(
        given,
        report(delta(0, 1, 0), None, Vec::new()),
        Err(RunRejection::CountOverflow),
    );
    let given = &[queued(), started()];
    check(
        given,
        report(delta(u64::MAX, 0, 1), None, Vec::new()),
        Err(RunRejection::CountOverflow),
    );
    // The largest representable counts are fine.
    check(
        given,
        report(delta(u64::MAX, 0, 0), Some(u64::MAX), Vec::new()),
        Ok(vec![progressed(
            delta(u64::MAX, 0, 0),
            Some(u64::MAX),
            Vec::new(),
        )]),
    );
}

#[test]
fn an_empty_report_is_refused() {
    let given = &[queued(), started()];
    check(
        given,
        report(ProgressDelta::default(), None, Vec::new()),
        Err(RunRejection::EmptyProgress),
    );
    // A total alone or failures alone are not empty.
    check(
        given,
        report(ProgressDelta::default(), Some(0), Vec::new()),
        Ok(vec![progressed(
            ProgressDelta::default(),
            Some(0),
            Vec::new(),
        )]),
    );
    check(
        given,
        report(
            ProgressDelta::default(),
            None,
            vec![report_failure("graph.throttled", "Throttled (retrying)", 2)],
        ),
        Ok(vec![progressed(
            ProgressDelta::default(),
            None,
            vec![entry("graph.throttled", "Throttled (retrying)", 2)],
        )]),
    );
}

#[test]
fn rejections_read_well() {
    let cases = [
        (
            RunRejection::InvalidTransition {
                command: CommandKind::ReportProgress,
                status: RunStatus::Completed,
            },
            "cannot progress a run that is completed",
        ),
        (
            RunRejection::TotalDecreased {
                known: 10,
                given: 9,
            },
            "total 9 is below the known total 10",
        ),
        (
            RunRejection::OutcomeNotAllowed {
                outcome: Outcome::Pending,
            },
            "outcome pending cannot be set by a command",
        ),
        (
            RunRejection::CancelNotRequested,
            "outcome cancelled needs a cancel request first",
        ),
        (
            RunRejection::InvalidTransition {
                command: CommandKind::Cancel,
                status: RunStatus::Completed,
            },
            "cannot cancel a run that is completed",
        ),
        (
            RunRejection::HeldByAnotherWorker {
                holder: Some(worker("w2")),
            },
            "run was started by worker w2",
        ),
        (
            RunRejection::HeldByAnotherWorker { holder: None },
            "run was started without a worker id",
        ),
        (
            RunRejection::NotOverdue {
                next_deadline_at: Some(at(10)),
            },
            "no limit of the run has passed; the next passes at 2026-01-17T22:35:00Z",
        ),
        (
            RunRejection::NotOverdue {
                next_deadline_at: None,
            },
            "no limit binds the run",
        ),
        (
            RunRejection::CountDecreased {
                count: "success",
                known: 8,
                given: 7,
            },
            "final success count 7 is below the reported 8",
        ),
    ];
    for (rejection, message) in cases {
        assert_eq!(rejection.to_string(), message);
    }
}
