//! Command routes: the whole lifecycle, dedupe by identity (201 vs 200), invalid transitions
//! (409 with the current status), stale `If-Match` (412), and `Idempotency-Key` replays.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::TestApi;
use super::support::{Call, run_path, runs_path};
use crate::helpers::verbs::tenant;

/// The stable `type` of a problem of kind `slug`.
fn problem_type(slug: &str) -> String {
    format!("urn:runledger:problem:{slug}")
}

#[tokio::test]
async fn a_run_goes_from_queued_through_progress_to_completed() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let writer = api.tokens(t).await.writer;

    let queued = api
        .post(
            &runs_path(t),
            &writer,
            &json!({
                "type": "inventory.sync",
                "identity": {"mailbox": "ada@example.com"},
                "context": {"source": "nightly"},
                "initiator": {"user_id": 42, "name": "Ada Lovelace"},
            }),
        )
        .await;
    assert_eq!(queued.status, StatusCode::CREATED, "{:#}", queued.body);
    assert_eq!(queued.body["created"], true);
    let run = queued.body["run"].clone();
    let id = run["id"].as_str().unwrap().to_owned();
    assert_eq!(run["status"], "queued");
    assert_eq!(run["outcome"], "pending");
    assert_eq!(run["tenant_id"], 1);
    assert_eq!(run["user_id"], 42);
    assert_eq!(run["initiator_name"], "Ada Lovelace");
    assert_eq!(run["identity"], json!({"mailbox": "ada@example.com"}));
    assert_eq!(run["context"], json!({"source": "nightly"}));
    assert_eq!(run["version"], 1);
    assert_eq!(run["done"], false);
    assert_eq!(
        run["view_url"],
        format!("{}/ui/tenants/1/runs/{id}", super::PUBLIC_URL)
    );
    let mut last_position = queued.body["position"].as_i64().expect("a log position");

    let mut step = |answer: &super::Answer, version: u64| {
        assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
        assert_eq!(answer.body["run"]["version"], version);
        assert!(
            answer.body.get("created").is_none(),
            "only queueing says created"
        );
        let position = answer.body["position"].as_i64().expect("a log position");
        assert!(position > last_position, "each command is later in the log");
        last_position = position;
    };
    let started = api
        .post(&run_path(t, &id, "/start"), &writer, &json!({}))
        .await;
    step(&started, 2);
    assert_eq!(started.body["run"]["status"], "running");
    assert!(started.body["run"]["started_at"].is_string());

    let first = api
        .post(
            &run_path(t, &id, "/progress"),
            &writer,
            &json!({"success": 5, "total": 10}),
        )
        .await;
    step(&first, 3);
    let second = api
        .post(
            &run_path(t, &id, "/progress"),
            &writer,
            &json!({"success": 3, "failed": 1, "skipped": 1,
                    "failures": [{"code": "graph.throttled", "message": "429 from Graph", "count": 1}]}),
        )
        .await;
    step(&second, 4);
    assert_eq!(
        second.body["run"]["summary_counts"],
        json!({"total": 10, "success": 8, "failed": 1, "skipped": 1})
    );

    let completed = api
        .post(&run_path(t, &id, "/complete"), &writer, &json!({}))
        .await;
    step(&completed, 5);
    let run = &completed.body["run"];
    assert_eq!(run["status"], "completed");
    assert_eq!(
        run["outcome"], "partially_succeeded",
        "derived from the counts"
    );
    assert_eq!(run["done"], true);
    assert_eq!(run["failure_summary"][0]["code"], "graph.throttled");
    assert_eq!(run["failure_summary"][0]["count"], 1);
    assert_eq!(api.event_count().await, 5);

    // What the command answered is what the read model shows once projected.
    api.project().await;
    let reader = api.tokens(t).await.reader;
    let shown = api.get(&run_path(t, &id, ""), &reader).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(&shown.body, run);
}

#[tokio::test]
async fn dispatch_failed_completes_a_queued_run_as_failed_at_once() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let writer = api.tokens(t).await.writer;
    let id = api.queue(t, &writer, "restore.execute", json!({})).await;

    let failed = api
        .post(
            &run_path(t, &id, "/dispatch-failed"),
            &writer,
            &json!({"code": "dispatch_error", "message": "no worker accepted the run"}),
        )
        .await;

    assert_eq!(failed.status, StatusCode::OK, "{:#}", failed.body);
    let run = &failed.body["run"];
    assert_eq!(run["status"], "completed");
    assert_eq!(run["outcome"], "failed");
    assert_eq!(run["started_at"], Value::Null);
    assert_eq!(
        run["failure_summary"],
        json!([{"code": "dispatch_error", "message": "no worker accepted the run", "count": 1}])
    );
    // The identity is free again: the next queue creates a new run.
    let next = api.queue(t, &writer, "restore.execute", json!({})).await;
    assert_ne!(next, id);
}

#[tokio::test]
async fn queueing_an_active_identity_again_answers_200_with_that_run() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let writer = api.tokens(t).await.writer;
    let body = json!({"type": "inventory.sync", "identity": {"mailbox": 7}});
    let first = api.post(&runs_path(t), &writer, &body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let id = first.body["run"]["id"].clone();

    let again = api.post(&runs_path(t), &writer, &body).await;

    assert_eq!(again.status, StatusCode::OK, "{:#}", again.body);
    assert_eq!(again.body["created"], false);
    assert_eq!(again.body["run"]["id"], id);
    assert_eq!(again.body["position"], Value::Null, "nothing was written");
    assert_eq!(api.event_count().await, 1);

    // Another identity, or the same identity of another type, is another run.
    let other = api
        .post(
            &runs_path(t),
            &writer,
            &json!({"type": "inventory.sync", "identity": {"mailbox": 8}}),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED);
    let other_type = api
        .post(
            &runs_path(t),
            &writer,
            &json!({"type": "inventory.export", "identity": {"mailbox": 7}}),
        )
        .await;
    assert_eq!(other_type.status, StatusCode::CREATED);

    // Once the run completes, the identity queues a new run.
    let id = id.as_str().unwrap();
    api.post(&run_path(t, id, "/start"), &writer, &json!({}))
        .await;
    api.post(&run_path(t, id, "/complete"), &writer, &json!({}))
        .await;
    let after = api.post(&runs_path(t), &writer, &body).await;
    assert_eq!(after.status, StatusCode::CREATED);
    assert_ne!(after.body["run"]["id"], id);
}

#[tokio::test]
async fn a_command_the_status_does_not_allow_is_409_with_the_current_status() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let writer = api.tokens(t).await.writer;
    let id = api.queue(t, &writer, "inventory.sync", json!({})).await;

    for (rest, body) in [
        ("/progress", json!({"success": 1})),
        ("/complete", json!({})),
    ] {
        let answer = api.post(&run_path(t, &id, rest), &writer, &body).await;
        let problem = answer.assert_problem(StatusCode::CONFLICT, None);
        assert_eq!(problem["type"], problem_type("invalid-transition"));
        assert_eq!(problem["current_status"], "queued", "{rest}");
    }
    api.post(&run_path(t, &id, "/start"), &writer, &json!({}))
        .await;
    for (rest, body) in [
        ("/start", json!({})),
        (
            "/dispatch-failed",
            json!({"code": "late", "message": "too late"}),
        ),
    ] {
        let answer = api.post(&run_path(t, &id, rest), &writer, &body).await;
        let problem = answer.assert_problem(StatusCode::CONFLICT, None);
        assert_eq!(problem["current_status"], "running", "{rest}");
    }
    api.post(&run_path(t, &id, "/complete"), &writer, &json!({}))
        .await;
    let answer = api
        .post(
            &run_path(t, &id, "/progress"),
            &writer,
            &json!({"success": 1}),
        )
        .await;
    answer.assert_problem(StatusCode::CONFLICT, None);
    assert_eq!(answer.body["current_status"], "completed");
    assert_eq!(api.event_count().await, 3, "refused commands wrote nothing");

    // A rule about counts is 422, not 409.
    let other = api.running_run(t, &writer, json!({"n": 2})).await;
    let past_total = api
        .post(
            &run_path(t, &other, "/progress"),
            &writer,
            &json!({"success": 3, "total": 2}),
        )
        .await;
    let problem = past_total.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, None);
    assert_eq!(problem["type"], problem_type("rule-violated"));
}

#[tokio::test]
async fn a_stale_if_match_is_412_and_the_current_version_applies() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let writer = api.tokens(t).await.writer;
    let id = api.queue(t, &writer, "inventory.sync", json!({})).await;
    let with_if_match = |rest: &str, version: &str, body: Value| {
        Call::new(Method::POST, &run_path(t, &id, rest), Some(&writer))
            .header("if-match", version)
            .json(&body)
            .build()
    };

    let stale = api.send(with_if_match("/start", "\"2\"", json!({}))).await;
    let problem = stale.assert_problem(StatusCode::PRECONDITION_FAILED, None);
    assert_eq!(problem["type"], problem_type("version-mismatch"));
    assert_eq!(problem["current_version"], 1);

    let current = api.send(with_if_match("/start", "\"1\"", json!({}))).await;
    assert_eq!(current.status, StatusCode::OK, "{:#}", current.body);
    // The ETag of a GET is what If-Match takes back, weak or strong.
    let weak = api
        .send(with_if_match("/progress", "W/\"2\"", json!({"success": 1})))
        .await;
    assert_eq!(weak.status, StatusCode::OK, "{:#}", weak.body);
    let behind = api
        .send(with_if_match("/progress", "\"2\"", json!({"success": 1})))
        .await;
    behind.assert_problem(StatusCode::PRECONDITION_FAILED, None);
    assert_eq!(behind.body["current_version"], 3);

    let malformed = api
        .send(with_if_match("/complete", "soon", json!({})))
        .await;
    malformed.assert_problem(StatusCode::BAD_REQUEST, Some("If-Match"));
    assert_eq!(api.event_count().await, 3);
}

/// A command with an `Idempotency-Key`.
fn keyed(
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> axum::http::Request<axum::body::Body> {
    Call::new(Method::POST, path, Some(token))
        .header("idempotency-key", key)
        .json(body)
        .build()
}

#[tokio::test]
async fn a_retried_idempotency_key_returns_the_first_answer_without_appending() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let writer = api.tokens(t).await.writer;
    let queue = json!({"type": "inventory.sync", "identity": {"k": 1}});

    let first = api
        .send(keyed(&runs_path(t), &writer, "queue-1", &queue))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:#}", first.body);
    let retried = api
        .send(keyed(&runs_path(t), &writer, "queue-1", &queue))
        .await;
    assert_eq!(
        retried.status,
        StatusCode::CREATED,
        "the first answer, status included"
    );
    assert_eq!(retried.body, first.body);
    assert_eq!(api.event_count().await, 1);

    let id = first.body["run"]["id"].as_str().unwrap().to_owned();
    api.post(&run_path(t, &id, "/start"), &writer, &json!({}))
        .await;
    let progress = json!({"success": 2});
    let path = run_path(t, &id, "/progress");
    let reported = api.send(keyed(&path, &writer, "report-1", &progress)).await;
    assert_eq!(reported.status, StatusCode::OK);
    // Another report lands in between; the retry still answers as the first time.
    api.post(&path, &writer, &json!({"success": 1})).await;
    let again = api.send(keyed(&path, &writer, "report-1", &progress)).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, reported.body);
    assert_eq!(again.body["run"]["summary_counts"]["success"], 2);
    assert_eq!(api.event_count().await, 4, "queue, start and two reports");

    // Keys are per tenant: another tenant's writer may use the same key for its own request.
    let other = tenant(2);
    let other_writer = api.tokens(other).await.writer;
    let theirs = api
        .send(keyed(&runs_path(other), &other_writer, "queue-1", &queue))
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert_ne!(theirs.body["run"]["id"], first.body["run"]["id"]);
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_request_is_422_and_writes_nothing() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let writer = api.tokens(t).await.writer;
    let id = api.running_run(t, &writer, json!({})).await;
    let path = run_path(t, &id, "/progress");
    api.send(keyed(&path, &writer, "k", &json!({"success": 1})))
        .await;
    let before = api.event_count().await;

    for request in [
        keyed(&path, &writer, "k", &json!({"success": 2})),
        keyed(&run_path(t, &id, "/complete"), &writer, "k", &json!({})),
    ] {
        let answer = api.send(request).await;
        let problem = answer.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, None);
        assert_eq!(problem["type"], problem_type("idempotency-key-reused"));
    }
    assert_eq!(api.event_count().await, before);
}
