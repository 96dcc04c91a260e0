//! The heartbeat route: kept beside the log (never an event), refused for queued and completed
//! runs with a clear problem, scoped by tenant and role like every route, never moving back, and
//! shown by the read model's view (its ETag moves with it).

use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use super::support::{Lab, micros, types};
use crate::api::support::{Call, run_path, without_request_details};
use crate::helpers::verbs::{at, tenant};

#[tokio::test]
async fn a_heartbeat_is_recorded_beside_the_log_and_never_moves_back() {
    let lab = Lab::new().await;
    let id = lab
        .queue(json!({}), json!({"heartbeat_timeout_seconds": 60}))
        .await;
    lab.start(&id, "w1").await;
    let events = lab.events(&id).await;

    lab.at(20);
    let beat = lab.heartbeat(&id).await;
    assert_eq!(beat.status, StatusCode::OK, "{:#}", beat.body);
    assert_eq!(beat.body["cancel_requested"], false);
    assert_eq!(beat.body["position"], events.last().unwrap().position);
    assert_eq!(beat.body["run"]["last_heartbeat_at"], micros(at(20)));
    assert_eq!(lab.events(&id).await, events, "a heartbeat is not an event");

    // Another server whose clock is a little behind: the stored heartbeat keeps the later one.
    lab.at(15);
    let behind = lab.heartbeat(&id).await;
    assert_eq!(behind.body["run"]["last_heartbeat_at"], micros(at(20)));
    let stored: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT last_heartbeat_at FROM run_heartbeats WHERE run_id = $1")
            .bind(uuid::Uuid::parse_str(&id).unwrap())
            .fetch_one(&lab.api.store.pool)
            .await
            .unwrap();
    assert_eq!(stored, at(20));

    // A progress report counts as one, and is recorded as one too.
    lab.at(30);
    let progress = lab.command(&id, "/progress", &json!({"success": 1})).await;
    assert_eq!(progress.body["run"]["last_heartbeat_at"], micros(at(30)));
    assert_eq!(
        progress.body["run"]["heartbeat_deadline_at"],
        micros(at(90))
    );
    let shown = lab.shown(&id).await;
    assert_eq!(shown["last_heartbeat_at"], micros(at(30)));
    assert_eq!(shown["last_progress_at"], micros(at(30)));
}

#[tokio::test]
async fn a_heartbeat_moves_the_runs_etag_but_not_its_version() {
    let lab = Lab::new().await;
    let id = lab.queue(json!({}), json!({})).await;
    lab.start(&id, "w1").await;
    lab.api.project().await;
    let get = |etag: Option<String>| {
        let mut call = Call::new(
            Method::GET,
            &run_path(lab.t, &id, ""),
            Some(&lab.tokens.reader),
        );
        if let Some(etag) = etag {
            call = call.header("if-none-match", &etag);
        }
        lab.api.send(call.build())
    };
    let first = get(None).await;
    let etag = first.headers[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(etag, "\"2\"");
    assert_eq!(
        get(Some(etag.clone())).await.status,
        StatusCode::NOT_MODIFIED
    );

    lab.at(9);
    lab.heartbeat(&id).await;
    let moved = get(Some(etag)).await;
    assert_eq!(moved.status, StatusCode::OK, "a cached copy is stale");
    assert_eq!(moved.body["version"], 2);
    assert_eq!(moved.body["last_heartbeat_at"], micros(at(9)));
    let new_etag = moved.headers[header::ETAG].to_str().unwrap().to_owned();
    assert!(new_etag.starts_with("\"2-"), "{new_etag}");
    assert_eq!(
        get(Some(new_etag.clone())).await.status,
        StatusCode::NOT_MODIFIED
    );

    // If-Match takes the whole tag: the version is what a command expects.
    let pinned = lab
        .api
        .send(
            Call::new(
                Method::POST,
                &run_path(lab.t, &id, "/progress"),
                Some(&lab.tokens.writer),
            )
            .header("if-match", &new_etag)
            .json(&json!({"success": 1}))
            .build(),
        )
        .await;
    assert_eq!(pinned.status, StatusCode::OK, "{:#}", pinned.body);
}

#[tokio::test]
async fn a_heartbeat_of_a_queued_or_completed_run_is_refused_clearly() {
    let lab = Lab::new().await;
    let id = lab
        .queue(json!({}), json!({"start_deadline_seconds": 10}))
        .await;
    let queued = lab.heartbeat(&id).await;
    let problem = queued.assert_problem(StatusCode::CONFLICT, None);
    assert_eq!(problem["type"], "urn:runledger:problem:invalid-transition");
    assert_eq!(problem["current_status"], "queued");

    // Timed out while queued: the worker that picks it up late learns how it ended.
    lab.at(10);
    let mut sweeper = lab.sweeper();
    assert_eq!(lab.sweep(&mut sweeper).await.timed_out, 1);
    let late = lab.heartbeat(&id).await;
    let problem = late.assert_problem(StatusCode::CONFLICT, None);
    assert_eq!(problem["type"], "urn:runledger:problem:run-completed");
    assert_eq!(problem["title"], "Run completed");
    assert_eq!(problem["current_status"], "completed");
    assert_eq!(problem["outcome"], "failed");
    assert_eq!(problem["completion_reason"], "timed_out");
    assert!(
        problem["detail"].as_str().unwrap().contains("timed_out"),
        "{problem:#}"
    );
    assert_eq!(types(&lab.events(&id).await), ["Queued", "Completed"]);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM run_heartbeats")
        .fetch_one(&lab.api.store.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "a refused heartbeat records nothing");
}

#[tokio::test]
async fn another_tenants_run_answers_a_heartbeat_exactly_like_a_missing_one() {
    let lab = Lab::new().await;
    let id = lab.queue(json!({}), json!({})).await;
    lab.start(&id, "w1").await;
    let intruder = lab.api.tokens(tenant(2)).await;
    let foreign = lab
        .api
        .post(
            &run_path(tenant(2), &id, "/heartbeat"),
            &intruder.writer,
            &json!({}),
        )
        .await;
    let missing = lab
        .api
        .post(
            &run_path(tenant(2), &uuid::Uuid::now_v7().to_string(), "/heartbeat"),
            &intruder.writer,
            &json!({}),
        )
        .await;
    foreign.assert_problem(StatusCode::NOT_FOUND, None);
    assert_eq!(
        without_request_details(&foreign.body),
        without_request_details(&missing.body)
    );
    // A reader may not heartbeat; a bad body is refused; neither records anything.
    let reader = lab
        .api
        .post(
            &run_path(lab.t, &id, "/heartbeat"),
            &lab.tokens.reader,
            &json!({}),
        )
        .await;
    reader.assert_problem(StatusCode::FORBIDDEN, None);
    let odd = lab.command(&id, "/heartbeat", &json!({"at": "now"})).await;
    odd.assert_problem(StatusCode::BAD_REQUEST, None);
    assert_eq!(lab.shown(&id).await["last_heartbeat_at"], Value::Null);
}
