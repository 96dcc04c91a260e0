//! Concurrent requests through the router: 50 queues of one identity create exactly one run,
//! 16 progress reporters' counts add up exactly, and concurrent sends of one idempotency key
//! have one effect and one answer.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use futures_util::future::join_all;
use serde_json::json;

use chrono::{SubsecRound, Utc};
use runledger_core::ManualClock;

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

/// Regression test for issue 11 (item 5): sends of one key used to read the clock each, so
/// concurrent sends carried different content and fell into a mismatch-then-poll path. With a
/// clock that never reads the same time twice, every concurrent send of a key still has the
/// one effect and gets the one answer: the key's claim fixes the command's time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sends_of_one_key_share_its_time_and_answer_alike_on_every_route() {
    let clock = Arc::new(ManualClock::stepping(
        Utc::now(),
        chrono::Duration::milliseconds(1),
    ));
    let api = Arc::new(TestApi::with_clock(clock).await);
    let t = tenant(1);
    let writer = api.tokens(t).await.writer;

    let queued = send_concurrently(
        &api,
        "lifecycle-queue",
        &runs_path(t),
        &writer,
        &json!({"type": "inventory.sync", "identity": {"batch": 1}}),
        StatusCode::CREATED,
    )
    .await;
    let id = queued["run"]["id"].as_str().unwrap().to_owned();
    for (key, rest, body) in [
        ("lifecycle-start", "/start", json!({})),
        (
            "lifecycle-progress",
            "/progress",
            json!({"success": 3, "failed": 1}),
        ),
        ("lifecycle-complete", "/complete", json!({})),
    ] {
        let answer = send_concurrently(
            &api,
            key,
            &run_path(t, &id, rest),
            &writer,
            &body,
            StatusCode::OK,
        )
        .await;
        assert_eq!(answer["run"]["id"], id.as_str(), "{rest}");
    }
    assert_eq!(
        api.event_count().await,
        4,
        "each key's command appended once"
    );
    assert_eq!(api.store.count("idempotency_claims").await, 4);
    assert_eq!(api.store.count("idempotency_keys").await, 4);

    // A send of a claimed key with another request is refused at once, even before the first
    // send has an answer to remember; and a later retry gets the first answer from memory.
    let other = api
        .send(
            Call::new(Method::POST, &run_path(t, &id, "/progress"), Some(&writer))
                .header("idempotency-key", "lifecycle-progress")
                .json(&json!({"success": 4}))
                .build(),
        )
        .await;
    other.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, None);
    assert_eq!(api.event_count().await, 4);
}

/// Concurrent sends of one key with two different requests: one request wins the key, its
/// sends all get its one answer, and every send of the other request is refused (422).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sends_of_one_key_with_two_requests_let_one_win_and_refuse_the_other() {
    let api = Arc::new(TestApi::new().await);
    let t = tenant(1);
    let writer = api.tokens(t).await.writer;
    let bodies = [
        json!({"type": "inventory.sync", "identity": {"side": "a"}}),
        json!({"type": "inventory.sync", "identity": {"side": "b"}}),
    ];
    let answers = join_all((0..20).map(|n| {
        let (api, writer, body) = (Arc::clone(&api), writer.clone(), bodies[n % 2].clone());
        tokio::spawn(async move {
            let request = Call::new(Method::POST, &runs_path(t), Some(&writer))
                .header("idempotency-key", "contested")
                .json(&body)
                .build();
            (n % 2, api.send(request).await)
        })
    }))
    .await;
    let answers: Vec<_> = answers.into_iter().map(|a| a.expect("no panic")).collect();
    let winners: Vec<_> = answers
        .iter()
        .filter(|(_, a)| a.status == StatusCode::CREATED)
        .collect();
    let side = winners.first().expect("one request won").0;
    for (sent, answer) in &answers {
        if *sent == side {
            assert_eq!(answer.status, StatusCode::CREATED, "{:#}", answer.body);
            assert_eq!(answer.body, winners[0].1.body, "the winner's one answer");
        } else {
            answer.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, None);
        }
    }
    assert_eq!(api.event_count().await, 1);
}

/// A send whose command is refused releases its key: refusals are not remembered, so a retry
/// is a new attempt, stamped with the time of the retry.
#[tokio::test]
async fn a_retry_of_a_refused_send_is_a_new_attempt_at_its_own_time() {
    // Whole seconds: the answer shows times to the microsecond.
    let start = Utc::now().trunc_subsecs(0) - chrono::Duration::hours(1);
    let clock = Arc::new(ManualClock::new(start));
    let api = TestApi::with_clock(Arc::clone(&clock) as Arc<dyn runledger_core::Clock>).await;
    let t = tenant(1);
    let writer = api.tokens(t).await.writer;
    let id = api.queue(t, &writer, "inventory.sync", json!({})).await;
    let complete = |body: serde_json::Value| {
        Call::new(Method::POST, &run_path(t, &id, "/complete"), Some(&writer))
            .header("idempotency-key", "finish-1")
            .json(&body)
            .build()
    };

    // Not running yet: refused, nothing remembered.
    api.send(complete(json!({})))
        .await
        .assert_problem(StatusCode::CONFLICT, None);
    assert_eq!(api.store.count("idempotency_claims").await, 0);
    clock.advance(chrono::Duration::minutes(1));
    api.post(&run_path(t, &id, "/start"), &writer, &json!({}))
        .await;
    clock.advance(chrono::Duration::minutes(1));

    let retried = api.send(complete(json!({}))).await;
    assert_eq!(retried.status, StatusCode::OK, "{:#}", retried.body);
    let completed_at: chrono::DateTime<Utc> = retried.body["run"]["completed_at"]
        .as_str()
        .expect("completed_at")
        .parse()
        .unwrap();
    assert_eq!(completed_at, start + chrono::Duration::minutes(2));
    assert_eq!(api.event_count().await, 3);
}
