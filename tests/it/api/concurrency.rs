//! Concurrent requests through the router: 50 queues of one identity create exactly one run,
//! and 16 progress reporters' counts add up exactly.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use futures_util::future::join_all;
use serde_json::json;

use super::TestApi;
use super::support::{Call, run_path, runs_path};
use crate::helpers::verbs::tenant;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_queues_of_one_identity_create_exactly_one_run() {
    let api = Arc::new(TestApi::new().await);
    let t = tenant(1);
    let writer = api.tokens(t).await.writer;
    let body = json!({"type": "inventory.sync", "identity": {"mailbox": "shared"}});

    let answers = join_all((0..50).map(|_| {
        let (api, writer, body) = (Arc::clone(&api), writer.clone(), body.clone());
        tokio::spawn(async move { api.post(&runs_path(t), &writer, &body).await })
    }))
    .await;

    let answers: Vec<_> = answers.into_iter().map(|a| a.expect("no panic")).collect();
    let created: Vec<_> = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .collect();
    assert_eq!(created.len(), 1, "exactly one 201");
    let run = &created[0].body["run"]["id"];
    for answer in answers.iter().filter(|a| a.status != StatusCode::CREATED) {
        assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
        assert_eq!(answer.body["created"], false);
        assert_eq!(&answer.body["run"]["id"], run, "each 200 names the one run");
    }
    assert_eq!(api.event_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_progress_reporters_add_up_exactly() {
    const REPORTERS: u64 = 16;
    const REPORTS: u64 = 5;
    let api = Arc::new(TestApi::new().await);
    let t = tenant(1);
    let writer = api.tokens(t).await.writer;
    let id = api.running_run(t, &writer, json!({})).await;

    let reporters = (0..REPORTERS).map(|reporter| {
        let (api, writer, path) = (
            Arc::clone(&api),
            writer.clone(),
            run_path(t, &id, "/progress"),
        );
        tokio::spawn(async move {
            for _ in 0..REPORTS {
                // Reporter r reports r+1 successes and one failure or skip, alternately.
                let body = if reporter % 2 == 0 {
                    json!({"success": reporter + 1, "failed": 1,
                           "failures": [{"code": "io", "message": "disk full", "count": 1}]})
                } else {
                    json!({"success": reporter + 1, "skipped": 1})
                };
                let answer = api.post(&path, &writer, &body).await;
                assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
            }
        })
    });
    for reporter in join_all(reporters).await {
        reporter.expect("a reporter finished");
    }

    let completed = api
        .post(&run_path(t, &id, "/complete"), &writer, &json!({}))
        .await;
    let run = &completed.body["run"];
    let success: u64 = (1..=REPORTERS).sum::<u64>() * REPORTS;
    let half = REPORTERS / 2 * REPORTS;
    assert_eq!(
        run["summary_counts"],
        json!({"success": success, "failed": half, "skipped": half})
    );
    assert_eq!(
        run["failure_summary"],
        json!([{"code": "io", "message": "disk full", "count": half}])
    );
    assert_eq!(run["version"], 3 + REPORTERS * REPORTS);
    assert_eq!(api.event_count().await as u64, 3 + REPORTERS * REPORTS);
}

/// Sends one request with the idempotency key `key` 20 times at once; asserts every send got
/// the same answer, with `status`, and returns it.
async fn send_concurrently(
    api: &Arc<TestApi>,
    key: &'static str,
    path: &str,
    writer: &str,
    body: &serde_json::Value,
    status: StatusCode,
) -> serde_json::Value {
    let answers = join_all((0..20).map(|_| {
        let (api, path, writer, body) = (
            Arc::clone(api),
            path.to_owned(),
            writer.to_owned(),
            body.clone(),
        );
        tokio::spawn(async move {
            let request = Call::new(Method::POST, &path, Some(&writer))
                .header("idempotency-key", key)
                .json(&body)
                .build();
            api.send(request).await
        })
    }))
    .await;
    let answers: Vec<_> = answers.into_iter().map(|a| a.expect("no panic")).collect();
    for answer in &answers {
        assert_eq!(answer.status, status, "{:#}", answer.body);
        assert_eq!(
            answer.body, answers[0].body,
            "each send gets the first answer"
        );
    }
    answers[0].body.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sends_of_one_idempotency_key_all_get_the_first_answer() {
    let api = Arc::new(TestApi::new().await);
    let t = tenant(1);
    let writer = api.tokens(t).await.writer;

    let queued = send_concurrently(
        &api,
        "queue-9",
        &runs_path(t),
        &writer,
        &json!({"type": "inventory.sync", "identity": {"batch": 9}}),
        StatusCode::CREATED,
    )
    .await;
    let id = queued["run"]["id"].as_str().unwrap();
    api.post(&run_path(t, id, "/start"), &writer, &json!({}))
        .await;
    let reported = send_concurrently(
        &api,
        "report-9",
        &run_path(t, id, "/progress"),
        &writer,
        &json!({"success": 5}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        reported["run"]["summary_counts"]["success"], 5,
        "counted once"
    );
    assert_eq!(api.event_count().await, 3);
}
