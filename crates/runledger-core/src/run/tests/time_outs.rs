//! Lifecycle limits: each fires at its bound and not a nanosecond before, heartbeats and progress
//! reports push the heartbeat timeout back, and the first limit to pass is the one recorded.

use serde_json::Value;

use super::*;

/// `Queued` with `limits` (queued at minute 0; `started` is at minute 1).
fn queued_with(limits: RunLimits) -> RunEvent {
    RunEvent::Queued(RunQueued {
        limits,
        ..queued_payload()
    })
}

/// A progress report of one success at `minute`.
fn progressed_at(minute: i64) -> RunEvent {
    RunEvent::Progressed(RunProgressed {
        delta: delta(1, 0, 0),
        total: None,
        failures: Vec::new(),
        reported_at: at(minute),
    })
}

fn nanosecond() -> TimeDelta {
    TimeDelta::nanoseconds(1)
}

fn not_overdue(next: Option<DateTime<Utc>>) -> Result<Vec<RunEvent>, RunRejection> {
    Err(RunRejection::NotOverdue {
        next_deadline_at: next,
    })
}

/// Given `given` and the stored heartbeat `heartbeat`, the time-out `expected` (decided at the
/// instant its limit passed) is written at that instant, and refused a nanosecond before.
#[track_caller]
fn check_fires_at_its_bound(
    given: &[RunEvent],
    heartbeat: Option<DateTime<Utc>>,
    expected: RunEvent,
) {
    let RunEvent::Completed(RunCompleted {
        reason: CompletionReason::TimedOut { time_out: record },
        completed_at,
        ..
    }) = &expected
    else {
        panic!("not a time-out: {expected:?}")
    };
    let bound = record.passed_at;
    assert_eq!(*completed_at, bound);
    check(
        given,
        time_out(bound - nanosecond(), heartbeat),
        not_overdue(Some(bound)),
    );
    check(given, time_out(bound, heartbeat), Ok(vec![expected]));
}

#[test]
fn start_deadline_fires_at_its_bound_and_not_a_nanosecond_before() {
    let given = &[queued_with(limits(Some(600), None, None))];
    let message = "Not started within 600 s of being queued (deadline 2026-01-17T22:35:00Z)";
    check_fires_at_its_bound(
        given,
        None,
        timed_out(Limit::StartDeadline, 600, at(10), None, at(10), message),
    );
    // A sweeper that comes late records when the limit passed, and when it acted.
    check(
        given,
        time_out(at(12), None),
        Ok(vec![timed_out(
            Limit::StartDeadline,
            600,
            at(10),
            None,
            at(12),
            message,
        )]),
    );
}

#[test]
fn run_deadline_fires_at_its_bound_and_not_a_nanosecond_before() {
    check_fires_at_its_bound(
        &[queued_with(limits(None, Some(3600), None)), started()],
        Some(at(50)),
        timed_out(
            Limit::RunDeadline,
            3600,
            at(61),
            Some(at(50)),
            at(61),
            "Not completed within 3600 s of starting (deadline 2026-01-17T23:26:00Z)",
        ),
    );
}

#[test]
fn a_run_that_never_heartbeated_is_measured_from_its_start() {
    check_fires_at_its_bound(
        &[queued_with(limits(None, None, Some(300))), started()],
        None,
        timed_out(
            Limit::HeartbeatTimeout,
            300,
            at(6),
            None,
            at(6),
            "No heartbeat within 300 s of starting (deadline 2026-01-17T22:31:00Z)",
        ),
    );
}

#[test]
fn heartbeat_timeout_fires_at_its_bound_after_the_last_heartbeat() {
    check_fires_at_its_bound(
        &[queued_with(limits(None, None, Some(300))), started()],
        Some(at(20)),
        timed_out(
            Limit::HeartbeatTimeout,
            300,
            at(25),
            Some(at(20)),
            at(25),
            "No heartbeat for 300 s since the last one at 2026-01-17T22:45:00Z",
        ),
    );
}

#[test]
fn progress_reports_count_as_heartbeats() {
    let given = &[
        queued_with(limits(None, None, Some(300))),
        started(),
        progressed_at(30),
    ];
    assert_eq!(snapshot(given).last_progress_at, Some(at(30)));
    // With no stored heartbeat the report is the last one, and an older stored one changes nothing.
    let expected = timed_out(
        Limit::HeartbeatTimeout,
        300,
        at(35),
        Some(at(30)),
        at(35),
        "No heartbeat for 300 s since the last one at 2026-01-17T22:55:00Z",
    );
    for stored in [None, Some(at(20))] {
        check_fires_at_its_bound(given, stored, expected.clone());
    }
    // A stored heartbeat newer than the report pushes it back.
    check(
        given,
        time_out(at(39) - nanosecond(), Some(at(34))),
        not_overdue(Some(at(39))),
    );
}

#[test]
fn the_latest_progress_report_counts_whatever_order_the_clocks_gave() {
    let run = snapshot(&[
        queued_with(limits(None, None, Some(300))),
        started(),
        progressed_at(30),
        progressed_at(28),
    ]);
    assert_eq!(run.last_progress_at, Some(at(30)));
    assert_eq!(run.heartbeat_deadline_at(None), Some(at(35)));
}

#[test]
fn a_heartbeat_stamped_before_the_start_does_not_move_the_start_back() {
    let run = snapshot(&[queued_with(limits(None, None, Some(300))), started()]);
    assert_eq!(
        run.heartbeat_deadline_at(Some(at(0))),
        run.heartbeat_deadline_at(None)
    );
    assert_eq!(run.heartbeat_deadline_at(None), Some(at(6)));
}

#[test]
fn a_run_heartbeating_in_time_is_never_timed_out() {
    // Heartbeats every four minutes against a five-minute timeout, for two hours, with the
    // sweeper looking every ten seconds, including at each heartbeat's instant.
    let given = &[queued_with(limits(None, None, Some(300))), started()];
    let state = replay(given);
    for ten_seconds in 6..(2 * 60 * 6) {
        let now = at(0) + TimeDelta::seconds(ten_seconds * 10);
        let minutes_since_start = (now - at(1)).num_minutes();
        let last = (minutes_since_start >= 4).then(|| at(1 + minutes_since_start / 4 * 4));
        let decided = decide(&state, time_out(now, last));
        assert!(
            matches!(decided, Err(RunRejection::NotOverdue { .. })),
            "timed out at {now} with the last heartbeat at {last:?}: {decided:?}"
        );
    }
}

#[test]
fn the_first_limit_to_pass_is_recorded_when_several_have() {
    let given = &[queued_with(limits(None, Some(3600), Some(300))), started()];
    // The last heartbeat at minute 25: the timeout passed at 30, the run deadline at 61.
    check(
        given,
        time_out(at(70), Some(at(25))),
        Ok(vec![timed_out(
            Limit::HeartbeatTimeout,
            300,
            at(30),
            Some(at(25)),
            at(70),
            "No heartbeat for 300 s since the last one at 2026-01-17T22:50:00Z",
        )]),
    );
    // The last heartbeat at minute 60: the run deadline (61) passed before the timeout (65).
    check(
        given,
        time_out(at(70), Some(at(60))),
        Ok(vec![timed_out(
            Limit::RunDeadline,
            3600,
            at(61),
            Some(at(60)),
            at(70),
            "Not completed within 3600 s of starting (deadline 2026-01-17T23:26:00Z)",
        )]),
    );
}

#[test]
fn a_tie_goes_to_the_run_deadline() {
    // Heartbeat at minute 56 plus five minutes is the run deadline's minute 61.
    let given = &[queued_with(limits(None, Some(3600), Some(300))), started()];
    let decided = decide(&replay(given), time_out(at(61), Some(at(56))));
    let Ok(events) = decided else {
        panic!("timed out: {decided:?}")
    };
    let [RunEvent::Completed(completed)] = events.as_slice() else {
        panic!("one Completed: {events:?}")
    };
    let CompletionReason::TimedOut { time_out } = &completed.reason else {
        panic!("a time-out: {completed:?}")
    };
    assert_eq!(time_out.limit, Limit::RunDeadline);
    assert_eq!(Limit::ALL[1], Limit::RunDeadline);
}

#[test]
fn limits_bind_only_in_their_status() {
    let all = limits(Some(600), Some(3600), Some(300));
    // A queued run has no heartbeat timeout or run deadline yet, however late.
    let queued_only = &[queued_with(limits(None, Some(3600), Some(300)))];
    check(queued_only, time_out(at(10_000), None), not_overdue(None));
    // A started run has left its start deadline behind.
    let started_late = &[queued_with(limits(Some(600), None, None)), started()];
    check(started_late, time_out(at(10_000), None), not_overdue(None));
    // A run without limits is never overdue.
    check(
        &[queued(), started()],
        time_out(at(10_000), None),
        not_overdue(None),
    );
    // Nothing follows Completed: the time-out that lost a race to a completion is refused.
    check(
        &[queued_with(all), started(), completed(Outcome::Succeeded)],
        time_out(at(10_000), None),
        invalid(CommandKind::TimeOut, RunStatus::Completed),
    );
    check(
        &[queued_with(all), dispatch_failed()],
        time_out(at(10_000), None),
        invalid(CommandKind::TimeOut, RunStatus::Completed),
    );
    check(&[], time_out(at(10_000), None), Err(RunRejection::NotFound));
}

#[test]
fn the_state_shows_the_limits_and_the_instants_they_pass() {
    let all = limits(Some(600), Some(3600), Some(300));
    let queued_run = snapshot(&[queued_with(all)]);
    assert_eq!(queued_run.limits, all);
    assert_eq!(queued_run.start_deadline_at(), Some(at(10)));
    assert_eq!(queued_run.run_deadline_at(), None);
    assert_eq!(queued_run.heartbeat_deadline_at(Some(at(0))), None);
    assert_eq!(
        queued_run.deadlines(None),
        vec![crate::limits::Deadline {
            limit: Limit::StartDeadline,
            seconds: all.start_deadline_seconds.expect("set"),
            at: at(10),
        }]
    );
    let running = snapshot(&[queued_with(all), started(), progressed_at(3)]);
    assert_eq!(running.start_deadline_at(), Some(at(10)));
    assert_eq!(running.run_deadline_at(), Some(at(61)));
    assert_eq!(running.last_heartbeat_at(None), Some(at(3)));
    assert_eq!(running.last_heartbeat_at(Some(at(4))), Some(at(4)));
    assert_eq!(running.heartbeat_deadline_at(None), Some(at(8)));
    assert_eq!(
        running.next_deadline(Some(at(4))).map(|d| (d.limit, d.at)),
        Some((Limit::HeartbeatTimeout, at(9)))
    );
    let json = running.to_operation_run_json();
    assert_eq!(
        json["limits"],
        json!({"start_deadline_seconds": 600, "run_deadline_seconds": 3600, "heartbeat_timeout_seconds": 300})
    );
    assert_eq!(json["start_deadline_at"], "2026-01-17T22:35:00.000000Z");
    assert_eq!(json["run_deadline_at"], "2026-01-17T23:26:00.000000Z");
    assert_eq!(json["last_progress_at"], "2026-01-17T22:28:00.000000Z");
    assert_eq!(json["completion_reason"], Value::Null);
    assert_eq!(json["time_out"], Value::Null);
}

#[test]
fn a_timed_out_run_is_failed_with_the_limit_in_its_summary_and_frees_its_slot() {
    let all = limits(None, None, Some(300));
    let history = [
        queued_with(all),
        started(),
        timed_out(
            Limit::HeartbeatTimeout,
            300,
            at(6),
            None,
            at(7),
            "No heartbeat within 300 s of starting (deadline 2026-01-17T22:31:00Z)",
        ),
    ];
    let run = snapshot(&history);
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.outcome, Outcome::Failed);
    assert!(!run.status.is_active());
    assert_eq!(run.completed_at, Some(at(7)));
    assert_eq!(
        run.failure_summary,
        vec![entry(
            "run.heartbeat_timeout",
            "No heartbeat within 300 s of starting (deadline 2026-01-17T22:31:00Z)",
            1
        )]
    );
    assert_eq!(run.deadlines(None), Vec::new());
    let json = run.to_operation_run_json();
    assert_eq!(json["completion_reason"], "timed_out");
    assert_eq!(
        json["time_out"],
        json!({
            "limit": "heartbeat_timeout",
            "code": "run.heartbeat_timeout",
            "limit_seconds": 300,
            "passed_at": "2026-01-17T22:31:00.000000Z",
            "last_heartbeat_at": null,
        })
    );
    // And nothing follows it, not even a second time-out.
    check(
        &history,
        time_out(at(8), None),
        invalid(CommandKind::TimeOut, RunStatus::Completed),
    );
}

#[test]
fn each_limit_has_its_failure_code() {
    let codes: Vec<&str> = Limit::ALL.iter().map(|l| l.failure_code()).collect();
    assert_eq!(
        codes,
        [
            "run.start_deadline_exceeded",
            "run.deadline_exceeded",
            "run.heartbeat_timeout"
        ]
    );
    for limit in Limit::ALL {
        assert!(FailureCode::parse(limit.failure_code()).is_ok());
    }
}

#[test]
fn a_limit_past_the_end_of_time_never_passes() {
    let given = &[RunEvent::Queued(RunQueued {
        queued_at: DateTime::<Utc>::MAX_UTC - TimeDelta::seconds(5),
        limits: limits(Some(600), None, None),
        ..queued_payload()
    })];
    assert_eq!(snapshot(given).start_deadline_at(), None);
    check(
        given,
        time_out(DateTime::<Utc>::MAX_UTC, None),
        not_overdue(None),
    );
}
