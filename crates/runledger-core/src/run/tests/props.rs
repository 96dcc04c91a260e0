//! Property tests: random command sequences through `decide`, accepted events folded with `evolve`.
//!
//! Commands mix all five kinds with small, edge (`u64::MAX`) and missing counts and totals,
//! failures drawn from more codes than a summary keeps, and every outcome, including the
//! ones a command may not set. proptest keeps failing seeds in `proptest-regressions/`.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::{option, sample};

use super::*;
use crate::event::RunCompleted;
use crate::failure::sanitize_message;

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

fn arb_command() -> impl Strategy<Value = RunCommand> {
    prop_oneof![
        1 => Just(queue()),
        2 => Just(start()),
        30 => (
            (arb_count(), arb_count(), arb_count()),
            option::weighted(0.15, arb_total()),
            vec(arb_failure(), 0..8),
        )
            .prop_map(|((s, f, k), total, failures)| report(delta(s, f, k), total, failures)),
        1 => option::of(sample::select(Outcome::ALL)).prop_map(complete),
        1 => arb_failure().prop_map(|failure| RunCommand::DispatchFailed(DispatchFailed {
            failure,
            at: at(1),
        })),
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
    prop_assert_ne!(run.outcome, Outcome::Cancelled);
    prop_assert_eq!(
        run.completed_at.is_some(),
        run.status == RunStatus::Completed
    );
    prop_assert!(run.failure_summary.len() <= FailureEntry::MAX_ENTRIES);
    for entry in &run.failure_summary {
        prop_assert!(entry.count >= 1);
        prop_assert!(entry.message.chars().count() <= FailureEntry::MAX_MESSAGE_CHARS);
        prop_assert!(!entry.message.chars().any(char::is_control));
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
                // Nothing follows Completed.
                prop_assert!(decided.is_err(), "{kind} accepted after Completed");
            }
            if let Ok(events) = decided {
                prop_assert_eq!(events.len(), 1);
                for event in &events {
                    if let RunEvent::Completed(RunCompleted { outcome, .. }) = event {
                        prop_assert!(outcome.is_settable());
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
    fn sanitized_messages_are_bounded_clean_and_stable(raw in arb_message()) {
        let clean = sanitize_message(&raw);
        prop_assert!(clean.chars().count() <= FailureEntry::MAX_MESSAGE_CHARS);
        prop_assert!(!clean.chars().any(|c| c.is_control() || (c.is_whitespace() && c != ' ')));
        prop_assert!(!clean.starts_with(' ') && !clean.ends_with(' ') && !clean.contains("  "));
        prop_assert_eq!(sanitize_message(&clean), clean.clone());
    }
}
