//! Re-delivery: a queue delivers a job more than once, so a start may name its worker; and a
//! worker may finish with its final counts and failures in the one `Completed`.

use super::*;

fn start_by(id: &str, minute: i64) -> RunCommand {
    RunCommand::Start(Start {
        worker: Some(worker(id)),
        at: at(minute),
    })
}

fn started_by(id: &str) -> RunEvent {
    RunEvent::Started(RunStarted {
        started_at: at(1),
        worker: Some(worker(id)),
    })
}

fn counts(total: Option<u64>, success: u64, failed: u64, skipped: u64) -> SummaryCounts {
    SummaryCounts {
        total,
        success,
        failed,
        skipped,
    }
}

fn complete_with(
    outcome: Option<Outcome>,
    final_counts: Option<SummaryCounts>,
    failures: Vec<FailureReport>,
) -> RunCommand {
    RunCommand::Complete(Complete {
        outcome,
        final_counts,
        failures,
        at: at(3),
    })
}

fn completed_with(
    outcome: Outcome,
    final_counts: Option<SummaryCounts>,
    failures: Vec<FailureEntry>,
) -> RunEvent {
    RunEvent::Completed(RunCompleted {
        outcome,
        reason: CompletionReason::Finished,
        failures,
        final_counts,
        completed_at: at(3),
    })
}

#[test]
fn a_start_names_its_worker() {
    check(&[queued()], start_by("w1", 1), Ok(vec![started_by("w1")]));
    let run = snapshot(&[queued(), started_by("w1")]);
    assert_eq!(run.worker, Some(worker("w1")));
    assert_eq!(run.to_operation_run_json()["worker"], "w1");
    assert_eq!(
        snapshot(&[queued(), started()]).to_operation_run_json()["worker"],
        serde_json::Value::Null
    );
}

#[test]
fn the_same_worker_starting_again_changes_nothing() {
    let histories = [
        vec![queued(), started_by("w1")],
        vec![queued(), started_by("w1"), progressed_success(3)],
        vec![
            queued(),
            started_by("w1"),
            RunEvent::CancelRequested(crate::event::RunCancelRequested {
                reason: None,
                requested_at: at(2),
            }),
        ],
    ];
    for given in &histories {
        // Whenever the re-delivery comes, and whatever time it carries.
        check(given, start_by("w1", 1), Ok(Vec::new()));
        check(given, start_by("w1", 9), Ok(Vec::new()));
    }
}

#[test]
fn another_worker_is_refused_with_the_holder() {
    check(
        &[queued(), started_by("w1")],
        start_by("w2", 2),
        Err(RunRejection::HeldByAnotherWorker {
            holder: Some(worker("w1")),
        }),
    );
    // A run started without a worker id is held by someone this worker cannot be.
    check(
        &[queued(), started()],
        start_by("w2", 2),
        Err(RunRejection::HeldByAnotherWorker { holder: None }),
    );
}

#[test]
fn a_start_without_a_worker_of_a_running_run_is_still_invalid() {
    for given in [vec![queued(), started_by("w1")], vec![queued(), started()]] {
        check(
            &given,
            start(),
            invalid(CommandKind::Start, RunStatus::Running),
        );
    }
}

#[test]
fn a_completed_run_refuses_even_its_own_worker() {
    check(
        &[queued(), started_by("w1"), completed(Outcome::Succeeded)],
        start_by("w1", 4),
        invalid(CommandKind::Start, RunStatus::Completed),
    );
}

#[test]
fn complete_with_final_counts_records_them_in_the_one_event() {
    let given = &[
        queued(),
        started(),
        progressed(delta(2, 1, 0), Some(10), Vec::new()),
    ];
    let expected = completed_with(
        Outcome::PartiallySucceeded,
        Some(counts(Some(10), 8, 2, 0)),
        Vec::new(),
    );
    check(
        given,
        complete_with(None, Some(counts(None, 8, 2, 0)), Vec::new()),
        Ok(vec![expected.clone()]),
    );
    let mut history = given.to_vec();
    history.push(expected);
    assert_eq!(snapshot(&history).summary_counts, counts(Some(10), 8, 2, 0));
    // The same counts again, a raised total, and an explicit outcome are fine.
    check(
        given,
        complete_with(
            Some(Outcome::Failed),
            Some(counts(Some(12), 2, 1, 0)),
            Vec::new(),
        ),
        Ok(vec![completed_with(
            Outcome::Failed,
            Some(counts(Some(12), 2, 1, 0)),
            Vec::new(),
        )]),
    );
}

#[test]
fn final_counts_follow_the_rules_of_progress() {
    let given = &[
        queued(),
        started(),
        progressed(delta(2, 1, 1), Some(10), Vec::new()),
    ];
    let finish = |finals| complete_with(None, Some(finals), Vec::new());
    check(
        given,
        finish(counts(None, 1, 1, 1)),
        Err(RunRejection::CountDecreased {
            count: "success",
            known: 2,
            given: 1,
        }),
    );
    check(
        given,
        finish(counts(None, 2, 0, 1)),
        Err(RunRejection::CountDecreased {
            count: "failed",
            known: 1,
            given: 0,
        }),
    );
    check(
        given,
        finish(counts(None, 2, 1, 0)),
        Err(RunRejection::CountDecreased {
            count: "skipped",
            known: 1,
            given: 0,
        }),
    );
    check(
        given,
        finish(counts(Some(9), 2, 1, 1)),
        Err(RunRejection::TotalDecreased {
            known: 10,
            given: 9,
        }),
    );
    check(
        given,
        finish(counts(None, 9, 1, 1)),
        Err(RunRejection::CountsExceedTotal {
            total: 10,
            processed: 11,
        }),
    );
    check(
        &[queued(), started()],
        finish(counts(Some(u64::MAX), u64::MAX, 1, 0)),
        Err(RunRejection::CountOverflow),
    );
}

#[test]
fn complete_with_failures_merges_them_and_derives_the_outcome_with_them() {
    let given = &[queued(), started()];
    check(
        given,
        complete_with(
            None,
            None,
            vec![report_failure(
                "graph.throttled",
                "Throttled: token=abc123",
                0,
            )],
        ),
        Ok(vec![completed_with(
            Outcome::Failed,
            None,
            vec![entry("graph.throttled", "Throttled: token=[redacted]", 1)],
        )]),
    );
    // Final counts and failures together: one event, both folded.
    let event = completed_with(
        Outcome::PartiallySucceeded,
        Some(counts(Some(5), 4, 1, 0)),
        vec![entry("graph.not_found", "Policy not found", 1)],
    );
    check(
        given,
        complete_with(
            None,
            Some(counts(Some(5), 4, 1, 0)),
            vec![report_failure("graph.not_found", "Policy not found", 1)],
        ),
        Ok(vec![event.clone()]),
    );
    let run = snapshot(&[queued(), started(), event]);
    assert_eq!(run.summary_counts, counts(Some(5), 4, 1, 0));
    assert_eq!(
        run.failure_summary,
        vec![entry("graph.not_found", "Policy not found", 1)]
    );
    assert_eq!(run.outcome, Outcome::PartiallySucceeded);
}
