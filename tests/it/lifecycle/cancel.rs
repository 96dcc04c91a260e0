//! Cancellation over HTTP: a queued run completes `cancelled` at once and frees its identity; a
//! running run records the request, its worker sees it in its next heartbeat and progress
//! answers and acknowledges it by completing `cancelled`, the only `Completed` of the run.

use axum::http::StatusCode;
use runledger_api::auth::Role;
use serde_json::{Value, json};

use super::support::{Lab, USER, completions, micros, types};
use crate::helpers::verbs::at;

#[tokio::test]
async fn cancelling_a_queued_run_completes_it_at_once_and_frees_its_identity() {
    let lab = Lab::new().await;
    let id = lab.queue(json!({"tenant_scope": 3}), json!({})).await;
    lab.at(5);
    let cancelled = lab
        .command(&id, "/cancel", &json!({"reason": "Wrong tenant selected"}))
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:#}", cancelled.body);
    let run = &cancelled.body["run"];
    assert_eq!(run["status"], "completed");
    assert_eq!(run["outcome"], "cancelled");
    assert_eq!(run["completion_reason"], "cancelled");
    assert_eq!(run["cancel_requested"], true);
    assert_eq!(run["cancel_requested_at"], micros(at(5)));
    assert_eq!(run["cancel_reason"], "Wrong tenant selected");
    assert_eq!(types(&lab.events(&id).await), ["Queued", "Completed"]);

    // A new queue of the same identity creates a new run.
    let again = lab.queue(json!({"tenant_scope": 3}), json!({})).await;
    assert_ne!(again, id);
    // The query side agrees with the command's answer.
    let shown = lab.shown(&id).await;
    assert_eq!(shown["outcome"], "cancelled");
    assert_eq!(shown["cancel_reason"], "Wrong tenant selected");

    // The initiator's terminal notice says it was cancelled, and why.
    let user = lab.api.user_token(lab.t, Role::Reader, USER).await;
    let feed = lab.api.get("/v1/notifications", &user).await;
    let notices = feed.body["notifications"].as_array().expect("notices");
    let terminal = notices
        .iter()
        .find(|n| n["run_id"] == id.as_str() && n["kind"] == "completed")
        .expect("a completed notice");
    assert_eq!(terminal["title"], "Inventory sync cancelled");
    assert_eq!(
        terminal["body"],
        "Inventory sync was cancelled: Wrong tenant selected"
    );
    assert_eq!(terminal["outcome"], "cancelled");
}

#[tokio::test]
async fn a_running_runs_worker_sees_the_cancel_request_and_its_cancelled_completion_is_the_only_one()
 {
    let lab = Lab::new().await;
    let id = lab.queue(json!({}), json!({})).await;
    lab.at(1);
    lab.start(&id, "w1").await;
    let before = lab.heartbeat(&id).await;
    assert_eq!(before.status, StatusCode::OK, "{:#}", before.body);
    assert_eq!(before.body["cancel_requested"], false);

    lab.at(2);
    let asked = lab.command(&id, "/cancel", &json!({})).await;
    assert_eq!(asked.status, StatusCode::OK, "{:#}", asked.body);
    assert_eq!(asked.body["run"]["status"], "running");
    assert_eq!(asked.body["run"]["cancel_requested"], true);
    assert_eq!(asked.body["run"]["cancel_reason"], Value::Null);
    let version = asked.body["run"]["version"].clone();

    // The worker's next heartbeat tells it, and so does a progress report.
    lab.at(3);
    let seen = lab.heartbeat(&id).await;
    assert_eq!(seen.status, StatusCode::OK, "{:#}", seen.body);
    assert_eq!(seen.body["cancel_requested"], true);
    assert_eq!(seen.body["run"]["cancel_requested_at"], micros(at(2)));
    let progress = lab
        .command(&id, "/progress", &json!({"success": 4, "total": 10}))
        .await;
    assert_eq!(progress.status, StatusCode::OK, "{:#}", progress.body);
    assert_eq!(progress.body["cancel_requested"], true);

    // A second cancel changes nothing: the same run, no event.
    let events = lab.events(&id).await.len();
    let twice = lab
        .command(&id, "/cancel", &json!({"reason": "again"}))
        .await;
    assert_eq!(twice.status, StatusCode::OK, "{:#}", twice.body);
    assert_eq!(twice.body["run"]["cancel_reason"], Value::Null);
    assert_eq!(lab.events(&id).await.len(), events);
    assert_ne!(twice.body["run"]["version"], version, "progress came since");

    // The worker acknowledges.
    lab.at(4);
    let done = lab
        .command(&id, "/complete", &json!({"outcome": "cancelled"}))
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.body);
    assert_eq!(done.body["run"]["outcome"], "cancelled");
    assert_eq!(done.body["run"]["completion_reason"], "cancelled");
    assert_eq!(done.body["run"]["summary_counts"]["success"], 4);
    let stored = lab.events(&id).await;
    assert_eq!(
        types(&stored),
        [
            "Queued",
            "Started",
            "CancelRequested",
            "Progressed",
            "Completed"
        ]
    );
    assert_eq!(completions(&stored), 1);

    // Nothing follows: another cancel and a heartbeat are refused, saying how it ended.
    let late = lab.command(&id, "/cancel", &json!({})).await;
    late.assert_problem(StatusCode::CONFLICT, None);
    let after = lab.heartbeat(&id).await;
    let problem = after.assert_problem(StatusCode::CONFLICT, None);
    assert_eq!(problem["type"], "urn:runledger:problem:run-completed");
    assert_eq!(problem["outcome"], "cancelled");
    assert_eq!(problem["completion_reason"], "cancelled");
    assert_eq!(completions(&lab.events(&id).await), 1);

    let user = lab.api.user_token(lab.t, Role::Reader, USER).await;
    lab.api.project().await;
    let feed = lab.api.get("/v1/notifications", &user).await;
    assert_eq!(
        feed.body["notifications"][0]["body"],
        "Inventory sync was cancelled (4 succeeded, 0 failed before it stopped)"
    );
}

#[tokio::test]
async fn only_a_requested_cancel_completes_a_run_cancelled() {
    let lab = Lab::new().await;
    let id = lab.queue(json!({}), json!({})).await;
    lab.start(&id, "w1").await;
    let refused = lab
        .command(&id, "/complete", &json!({"outcome": "cancelled"}))
        .await;
    let problem = refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, None);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("cancel request"),
        "{problem:#}"
    );
    // A worker asked to cancel may still finish otherwise.
    lab.command(&id, "/cancel", &json!({})).await;
    let finished = lab
        .command(&id, "/complete", &json!({"outcome": "succeeded"}))
        .await;
    assert_eq!(finished.status, StatusCode::OK, "{:#}", finished.body);
    assert_eq!(finished.body["run"]["outcome"], "succeeded");
    assert_eq!(finished.body["run"]["completion_reason"], "finished");
    assert_eq!(finished.body["run"]["cancel_requested"], true);
}

#[tokio::test]
async fn a_cancel_reason_is_sanitized_and_bounded_and_a_bad_body_is_refused() {
    let lab = Lab::new().await;
    let id = lab.queue(json!({}), json!({})).await;
    lab.start(&id, "w1").await;
    let too_long = lab
        .command(&id, "/cancel", &json!({"reason": "x".repeat(4097)}))
        .await;
    too_long.assert_problem(StatusCode::BAD_REQUEST, Some("reason"));
    let unknown = lab.command(&id, "/cancel", &json!({"why": "no"})).await;
    unknown.assert_problem(StatusCode::BAD_REQUEST, None);
    assert_eq!(lab.events(&id).await.len(), 2, "nothing was stored");

    let asked = lab
        .command(
            &id,
            "/cancel",
            &json!({"reason": "stop\n now: password=hunter2 leaked"}),
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{:#}", asked.body);
    let reason = asked.body["run"]["cancel_reason"].as_str().unwrap();
    assert!(!reason.contains("hunter2"), "{reason}");
    assert!(!reason.contains('\n'), "{reason}");
}
