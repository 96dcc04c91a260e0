//! Re-delivery over HTTP: a start by the worker that holds the run answers the run and records
//! nothing; another worker's is refused naming the holder; a completion may carry the final
//! counts and the last failures in one event.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::support::{Lab, types};

#[tokio::test]
async fn a_start_redelivered_to_the_same_worker_is_idempotent_and_another_worker_gets_409() {
    let lab = Lab::new().await;
    let id = lab.queue(json!({}), json!({})).await;
    let first = lab.start(&id, "sync-7d9f8/pid-42").await;
    assert_eq!(first.body["run"]["worker"], "sync-7d9f8/pid-42");
    assert_eq!(first.body["run"]["status"], "running");
    let stored = lab.events(&id).await;

    // The queue delivers the job again to the same worker.
    lab.at(30);
    let again = lab.start(&id, "sync-7d9f8/pid-42").await;
    assert_eq!(again.body["run"], first.body["run"], "the run as it stands");
    assert_eq!(again.body["position"], first.body["position"]);
    assert_eq!(lab.events(&id).await, stored, "nothing was appended");

    // Another worker got the same job.
    let other = lab.command(&id, "/start", &json!({"worker": "w2"})).await;
    let problem = other.assert_problem(StatusCode::CONFLICT, None);
    assert_eq!(
        problem["type"],
        "urn:runledger:problem:held-by-another-worker"
    );
    assert_eq!(problem["holder"], "sync-7d9f8/pid-42");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("sync-7d9f8/pid-42"),
        "{problem:#}"
    );
    // A start that names no worker cannot be recognised as the holder's.
    let anonymous = lab.command(&id, "/start", &json!({})).await;
    let problem = anonymous.assert_problem(StatusCode::CONFLICT, None);
    assert_eq!(problem["type"], "urn:runledger:problem:invalid-transition");
    assert_eq!(lab.events(&id).await, stored);

    // Once completed, no start is accepted, its own worker's neither.
    lab.command(&id, "/complete", &json!({})).await;
    let late = lab
        .command(&id, "/start", &json!({"worker": "sync-7d9f8/pid-42"}))
        .await;
    late.assert_problem(StatusCode::CONFLICT, None);
}

#[tokio::test]
async fn a_run_started_without_a_worker_is_held_by_no_one_who_can_prove_it() {
    let lab = Lab::new().await;
    let id = lab.queue(json!({}), json!({})).await;
    let started = lab.command(&id, "/start", &json!({})).await;
    assert_eq!(started.status, StatusCode::OK, "{:#}", started.body);
    assert_eq!(started.body["run"]["worker"], Value::Null);
    let named = lab.command(&id, "/start", &json!({"worker": "w1"})).await;
    let problem = named.assert_problem(StatusCode::CONFLICT, None);
    assert_eq!(problem["holder"], Value::Null);
}

#[tokio::test]
async fn a_malformed_worker_id_is_refused_naming_the_field() {
    let lab = Lab::new().await;
    let id = lab.queue(json!({}), json!({})).await;
    for worker in [json!(""), json!("w 1"), json!("x".repeat(129)), json!(7)] {
        let answer = lab.command(&id, "/start", &json!({"worker": worker})).await;
        answer.assert_problem(StatusCode::BAD_REQUEST, Some("worker"));
    }
    assert_eq!(types(&lab.events(&id).await), ["Queued"]);
}

#[tokio::test]
async fn a_completion_carries_the_final_counts_and_the_last_failures_in_one_event() {
    let lab = Lab::new().await;
    let id = lab.queue(json!({}), json!({})).await;
    lab.start(&id, "w1").await;
    lab.command(&id, "/progress", &json!({"success": 3, "total": 10}))
        .await;
    let done = lab
        .command(
            &id,
            "/complete",
            &json!({
                "final_counts": {"success": 9, "failed": 1, "skipped": 0},
                "failures": [{"code": "graph.not_found", "message": "Policy not found"}],
            }),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.body);
    let run = &done.body["run"];
    assert_eq!(run["outcome"], "partially_succeeded");
    assert_eq!(
        run["summary_counts"],
        json!({"total": 10, "success": 9, "failed": 1, "skipped": 0})
    );
    assert_eq!(run["failure_summary"][0]["code"], "graph.not_found");
    let stored = lab.events(&id).await;
    assert_eq!(
        types(&stored),
        ["Queued", "Started", "Progressed", "Completed"]
    );
    let completed = &stored[3].payload;
    assert_eq!(completed["final_counts"]["total"], 10, "the known total");
    assert_eq!(completed["failures"][0]["count"], 1);
    assert_eq!(
        lab.shown(&id).await["summary_counts"],
        run["summary_counts"]
    );
}

#[tokio::test]
async fn final_counts_below_what_was_reported_are_refused_and_nothing_is_stored() {
    let lab = Lab::new().await;
    let id = lab.queue(json!({}), json!({})).await;
    lab.start(&id, "w1").await;
    lab.command(&id, "/progress", &json!({"success": 5})).await;
    let below = lab
        .command(
            &id,
            "/complete",
            &json!({"final_counts": {"success": 4, "failed": 0, "skipped": 0}}),
        )
        .await;
    below.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, None);
    let bad_failure = lab
        .command(
            &id,
            "/complete",
            &json!({"failures": [{"code": "not a code", "message": "x"}]}),
        )
        .await;
    bad_failure.assert_problem(StatusCode::BAD_REQUEST, Some("failures[0].code"));
    assert_eq!(
        types(&lab.events(&id).await),
        ["Queued", "Started", "Progressed"]
    );
}
