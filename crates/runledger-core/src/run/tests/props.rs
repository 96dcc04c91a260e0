//! Property tests: random command sequences through `decide`, accepted events folded with `evolve`.
//!
//! Commands mix all seven kinds with small, edge (`u64::MAX`) and missing counts and totals,
//! failures drawn from more codes than a summary keeps, every outcome, including the ones a
//! command may not set, starts by no worker or one of two, cancels, and time-outs at any time
//! against random limits. proptest keeps failing seeds in `proptest-regressions/`.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::{option, sample};

use super::*;
use crate::event::RunCompleted;
use crate::failure::sanitize_message;
use crate::limits::Limit;

/// A count: mostly small, sometimes at the edge of `u64`.
fn arb_count() -> impl Strategy<Value = u64> {
    prop_oneof![
        24 => 0..4_u64,
        1 => u64::MAX - 2..=u64::MAX,
    ]
}

/// A total: small enough to be reached and exceeded, sometimes huge.
fn arb_total() -> impl Strategy<Value = u64> {
    prop_oneof![
        12 => 0..400_u64,
        1 => Just(u64::MAX),
    ]
}

/// A raw failure message: ordinary words, secrets, control characters or anything at all.
fn arb_message() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Throttled (retrying)".to_owned()),
        Just("Authorization: Bearer abc.def password=hunter2".to_owned()),
        "[a-z \t\n\u{0}=:@/.]{0,40}",
        any::<String>(),
    ]
}

/// A failure: the message is one of a few, since messages have their own property below.
fn arb_failure() -> impl Strategy<Value = FailureReport> {
    const MESSAGES: &[&str] = &["Throttled (retrying)", "Bearer abc", "line\nbreak", ""];
    (0..70_usize, sample::select(MESSAGES), 0..3_u64)
        .prop_map(|(i, message, count)| report_failure(&format!("code.{i}"), message, count))
}

/// Limits of a few minutes, or none, so that time-outs within two hours may or may not fire.
fn arb_limits() -> impl Strategy<Value = RunLimits> {
    let seconds = || option::of(60..=1_800_i64);
    (seconds(), seconds(), seconds()).prop_map(|(start, run, heartbeat)| {
        RunLimits::from_seconds(start, run, heartbeat).expect("in bounds")
    })
}

/// An instant within two hours of the queue time.
fn arb_instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0..7_200_i64).prop_map(|seconds| at(0) + TimeDelta::seconds(seconds))
}

fn arb_command() -> impl Strategy<Value = RunCommand> {
    prop_oneof![
        1 => arb_limits().prop_map(|limits| {
            let RunCommand::Queue(queue) = queue() else { unreachable!("queue() queues") };
            RunCommand::Queue(QueueRun { limits, ..queue })
        }),
        3 => option::of(sample::select(&["w1", "w2"][..])).prop_map(|id| {
            RunCommand::Start(Start { worker: id.map(worker), at: at(1) })
        }),
        30 => (
            (arb_count(), arb_count(), arb_count()),
            option::weighted(0.15, arb_total()),
            vec(arb_failure(), 0..8),
        )
            .prop_map(|((s, f, k), total, failures)| report(delta(s, f, k), total, failures)),
        2 => (
            option::of(sample::select(Outcome::ALL)),
            option::weighted(
                0.3,
                (option::of(arb_total()), arb_count(), arb_count(), arb_count()).prop_map(
                    |(total, success, failed, skipped)| SummaryCounts {
                        total,
                        success,
                        failed,
                        skipped,
                    },
                ),
            ),
            vec(arb_failure(), 0..3),
        )
            .prop_map(|(outcome, final_counts, failures)| {
                RunCommand::Complete(Complete { outcome, final_counts, failures, at: at(3) })
            }),
        1 => arb_failure().prop_map(|failure| RunCommand::DispatchFailed(DispatchFailed {
            failure,
            at: at(1),
        })),
        2 => (option::of(arb_message()), 0..120_i64)
            .prop_map(|(reason, minute)| RunCommand::Cancel(Cancel { reason, at: at(minute) })),
        3 => (arb_instant(), option::of(arb_instant())).prop_map(|(when, heartbeat)| {
            time_out(when, heartbeat)
        }),
    ]
}

/// Where a status is in the lifecycle.
fn rank(status: RunStatus) -> u8 {
    match status {
        RunStatus::Queued => 0,
        RunStatus::Running => 1,
        RunStatus::Completed => 2,
    }
}

/// The invariants between one accepted step's state `before` and `after`.
fn step_invariants(before: &RunSnapshot, after: &RunSnapshot) -> Result<(), TestCaseError> {
    let (b, a) = (&before.summary_counts, &after.summary_counts);
    prop_assert!(a.success >= b.success && a.failed >= b.failed && a.skipped >= b.skipped);
    prop_assert!(a.processed() >= b.processed());
    if let Some(known) = b.total {
        prop_assert!(a.total.is_some_and(|total| total >= known));
    }
    prop_assert!(rank(after.status) >= rank(before.status));
    let count = |run: &RunSnapshot| run.failure_summary.iter().map(|e| e.count).sum::<u64>();
    prop_assert!(count(after) >= count(before));
    Ok(())
}

/// The invariants of any state a run can reach.
fn state_invariants(run: &RunSnapshot) -> Result<(), TestCaseError> {
    let counts = &run.summary_counts;
    if let Some(total) = counts.total {
        let processed = counts
            .success
            .checked_add(counts.failed)
            .and_then(|sum| sum.checked_add(counts.skipped));
        prop_assert!(processed.is_some_and(|processed| processed <= total));
    }
    prop_assert_eq!(
        run.outcome == Outcome::Pending,
        run.status != RunStatus::Completed
    );
    // `cancelled` only ever answers a cancel request.
    prop_assert!(run.outcome != Outcome::Cancelled || run.cancel_requested.is_some());
    prop_assert_eq!(
        run.completed_at.is_some(),
        run.status == RunStatus::Completed
    );
    prop_assert_eq!(run.completion.is_some(), run.status == RunStatus::Completed);
    prop_assert!(run.worker.is_none() || run.started_at.is_some());
    prop_assert!(run.failure_summary.len() <= FailureEntry::MAX_ENTRIES);
    for entry in &run.failure_summary {
        prop_assert!(entry.count >= 1);
        prop_assert!(entry.message.chars().count() <= FailureEntry::MAX_MESSAGE_CHARS);
        prop_assert!(!entry.message.chars().any(char::is_control));
    }
    Ok(())
}

/// The invariants of an accepted `Completed`, decided by `kind` against `before`.
fn completion_invariants(
    before: &Run,
    kind: CommandKind,
    completed: &RunCompleted,
) -> Result<(), TestCaseError> {
    let run = before.snapshot().expect("a completion needs a run");
    prop_assert_ne!(completed.outcome, Outcome::Pending);
    match &completed.reason {
        CompletionReason::Cancelled { cancellation } => {
            // Cancelled at once while queued, or acknowledged after a request: never otherwise.
            prop_assert_eq!(completed.outcome, Outcome::Cancelled);
            match (kind, run.status) {
                (CommandKind::Cancel, RunStatus::Queued) => {}
                (CommandKind::Complete, RunStatus::Running) => {
                    prop_assert_eq!(Some(cancellation), run.cancel_requested.as_ref());
                }
                other => prop_assert!(false, "cancelled by {other:?}"),
            }
        }
        CompletionReason::TimedOut { time_out } => {
            prop_assert_eq!(kind, CommandKind::TimeOut);
            prop_assert_eq!(completed.outcome, Outcome::Failed);
            prop_assert!(time_out.passed_at <= completed.completed_at);
            let code = completed.failures.first().map(|f| f.code.as_str());
            prop_assert_eq!(code, Some(time_out.limit.failure_code()));
            let binding = match run.status {
                RunStatus::Queued => time_out.limit == Limit::StartDeadline,
                _ => time_out.limit != Limit::StartDeadline,
            };
            prop_assert!(
                binding,
                "{:?} timed out a {} run",
                time_out.limit,
                run.status
            );
        }
        CompletionReason::Finished | CompletionReason::DispatchFailed => {
            prop_assert_ne!(completed.outcome, Outcome::Cancelled);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_command_sequence_keeps_the_invariants(commands in vec(arb_command(), 0..150)) {
        let mut state = Run::Unqueued;
        let mut accepted: Vec<RunEvent> = Vec::new();
        for command in commands {
            let kind = command.kind();
            let before = state.clone();
            let decided = decide(&state, command);
            if let Some(run) = before.snapshot()
                && run.status == RunStatus::Completed
            {
                // Nothing follows Completed: not even a no-op is accepted.
                prop_assert!(decided.is_err(), "{kind} accepted after Completed");
            }
            if let Ok(events) = decided {
                prop_assert!(events.len() <= 1);
                if events.is_empty() {
                    // Only a re-delivered start or a repeated cancel changes nothing.
                    let run = before.snapshot().expect("a no-op needs a run");
                    prop_assert_eq!(run.status, RunStatus::Running);
                    prop_assert!(
                        (kind == CommandKind::Start && run.worker.is_some())
                            || (kind == CommandKind::Cancel && run.cancel_requested.is_some()),
                        "{kind} changed nothing"
                    );
                }
                for event in &events {
                    if let RunEvent::Completed(completed) = event {
                        completion_invariants(&before, kind, completed)?;
                    }
                    state = evolve(state, event);
                }
                accepted.extend(events);
            }
            prop_assert_eq!(state.version(), accepted.len() as u64);
            if let (Some(before), Some(after)) = (before.snapshot(), state.snapshot()) {
                step_invariants(before, after)?;
            }
            if let Some(run) = state.snapshot() {
                state_invariants(run)?;
            }
        }
        // Replaying the accepted history never panics and gives the incrementally folded state.
        prop_assert_eq!(replay(&accepted), state);
    }

    #[test]
    fn a_run_heartbeating_in_time_is_never_timed_out(
        timeout in 1..=600_i64,
        beats in vec((0.0..1.0_f64, any::<bool>(), 0.0..1.0_f64), 0..40),
    ) {
        let limits = RunLimits::from_seconds(None, None, Some(timeout)).expect("in bounds");
        let given = [RunEvent::Queued(RunQueued { limits, ..queued_payload() }), started()];
        let mut state = replay(&given);
        let mut last = at(1);
        let mut stored: Option<DateTime<Utc>> = None;
        // Each heartbeat comes less than `timeout` after the one before; the sweeper looks at
        // some instant in between, with what the store holds then.
        for (gap, as_progress, probe) in beats {
            let gap_ns = (gap * (timeout * 1_000_000_000 - 1) as f64) as i64;
            let next = last + TimeDelta::nanoseconds(gap_ns);
            let sweep = last + TimeDelta::nanoseconds((probe * gap_ns as f64) as i64);
            let decided = decide(&state, time_out(sweep, stored));
            prop_assert!(
                matches!(decided, Err(RunRejection::NotOverdue { .. })),
                "timed out at {} with the last heartbeat at {}: {:?}", sweep, last, decided
            );
            if as_progress {
                let events = decide(&state, RunCommand::ReportProgress(ReportProgress {
                    delta: delta(1, 0, 0),
                    total: None,
                    failures: Vec::new(),
                    at: next,
                }))
                .expect("progress is accepted");
                state = events.iter().fold(state, evolve);
            } else {
                stored = Some(next);
            }
            last = next;
        }
        let bound = last + TimeDelta::seconds(timeout);
        let decided = decide(&state, time_out(bound - TimeDelta::nanoseconds(1), stored));
        prop_assert_eq!(decided, Err(RunRejection::NotOverdue { next_deadline_at: Some(bound) }));
        let decided = decide(&state, time_out(bound, stored)).expect("timed out at the bound");
        let passed = match decided.as_slice() {
            [RunEvent::Completed(RunCompleted {
                reason: CompletionReason::TimedOut { time_out }, ..
            })] => time_out.passed_at,
            other => return Err(TestCaseError::fail(format!("not one time-out: {other:?}"))),
        };
        prop_assert_eq!(passed, bound);
    }

    #[test]
    fn sanitized_messages_are_bounded_clean_and_stable(raw in arb_message()) {
        let clean = sanitize_message(&raw);
        prop_assert!(clean.chars().count() <= FailureEntry::MAX_MESSAGE_CHARS);
        prop_assert!(!clean.chars().any(|c| c.is_control() || (c.is_whitespace() && c != ' ')));
        prop_assert!(!clean.starts_with(' ') && !clean.ends_with(' ') && !clean.contains("  "));
        prop_assert_eq!(sanitize_message(&clean), clean.clone());
    }
}
