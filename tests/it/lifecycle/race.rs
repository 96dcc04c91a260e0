//! A time-out racing completions and cancellations: every run ends with exactly one
//! `Completed`, whoever wins, and every loser gets a typed refusal, never an overwrite.

use axum::http::StatusCode;
use futures_util::future::join_all;
use serde_json::json;

use super::support::{Lab, completions};

/// How many runs race at once, each against all of its requests and the one sweeper round.
const RUNS: usize = 3;
/// Completes and cancels of each run (half each), sent at once with the sweeper's round.
const REQUESTS: usize = 20;

/// The problem types a loser may get: the run completed before its command was decided.
const REFUSALS: [&str; 2] = [
    "urn:runledger:problem:run-completed",
    "urn:runledger:problem:invalid-transition",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_completes_and_cancels_against_a_sweeper_end_each_run_with_exactly_one_completed() {
    let lab = Lab::new().await;
    let mut sweeper = lab.sweeper();
    let mut ids = Vec::new();
    for n in 0..RUNS {
        let id = lab
            .queue(json!({ "n": n }), json!({"heartbeat_timeout_seconds": 60}))
            .await;
        lab.start(&id, "w1").await;
        ids.push(id);
    }
    // Every run is overdue now, and the read model shows it, so the sweeper's round sends each
    // a time-out while its worker completes it and operators cancel it.
    lab.at(60);
    lab.api.project().await;

    let lab = &lab;
    let requests = ids.iter().flat_map(|id| {
        (0..REQUESTS).map(move |i| async move {
            let (route, body) = if i % 2 == 0 {
                ("/complete", json!({"outcome": "succeeded"}))
            } else {
                ("/cancel", json!({"reason": format!("operator {i}")}))
            };
            (id.clone(), route, lab.command(id, route, &body).await)
        })
    });
    let (answers, swept) = tokio::join!(join_all(requests), sweeper.step());
    let report = match swept.expect("a sweeper round") {
        runledger_sweeper::SweepOutcome::Swept(report) => report,
        other => panic!("the lab's sweeper leads: {other:?}"),
    };
    assert_eq!(report.candidates, RUNS, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.timed_out + report.stale, RUNS, "{report:?}");

    let mut timed_out = 0;
    for id in &ids {
        let events = lab.events(id).await;
        assert_eq!(completions(&events), 1, "run {id}: {events:#?}");
        assert_eq!(events.last().unwrap().event_type, "Completed", "run {id}");
        let completed = &events.last().unwrap().payload;

        let mine: Vec<_> = answers.iter().filter(|(run, ..)| run == id).collect();
        let completes_won = mine
            .iter()
            .filter(|(_, route, answer)| *route == "/complete" && answer.status == StatusCode::OK)
            .count();
        for (_, route, answer) in &mine {
            match answer.status {
                StatusCode::OK if *route == "/cancel" => {
                    // Recorded (or already recorded) before the run completed.
                    assert_eq!(
                        answer.body["run"]["cancel_requested"], true,
                        "{:#}",
                        answer.body
                    );
                    assert_eq!(answer.body["run"]["status"], "running", "{:#}", answer.body);
                }
                StatusCode::OK => {
                    assert_eq!(
                        answer.body["run"]["outcome"], "succeeded",
                        "{:#}",
                        answer.body
                    );
                }
                StatusCode::CONFLICT => {
                    let problem = answer.assert_problem(StatusCode::CONFLICT, None);
                    let kind = problem["type"].as_str().unwrap();
                    assert!(REFUSALS.contains(&kind), "{route}: {problem:#}");
                    assert_eq!(problem["current_status"], "completed", "{problem:#}");
                }
                other => panic!("{route} answered {other}: {:#}", answer.body),
            }
        }
        // The one Completed is the winner's: the worker's or the sweeper's, never both.
        if completed["reason"] == "timed_out" {
            timed_out += 1;
            assert_eq!(completes_won, 0, "run {id}");
            assert_eq!(completed["outcome"], "failed");
        } else {
            assert_eq!(completes_won, 1, "run {id}");
            assert_eq!(completed["outcome"], "succeeded");
        }
        // Whatever the interleaving, the read model agrees with the log.
        let shown = lab.shown(id).await;
        assert_eq!(shown["status"], "completed");
        assert_eq!(shown["outcome"], completed["outcome"]);
    }
    assert_eq!(timed_out, report.timed_out, "{report:?}");
}
