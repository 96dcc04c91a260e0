//! The API over real HTTP on a random port, served as the binary serves it: a client's whole
//! conversation (commands, read-your-writes, ETag/304), and what only a real connection shows
//! (request ids in headers and problems, a body over the limit refused with 413).

use axum::body::Bytes;
use axum::http::{Method, StatusCode, header};
use serde_json::json;

use super::TestApi;
use super::support::{run_path, runs_path};
use crate::helpers::verbs::tenant;

#[tokio::test]
async fn a_client_records_a_run_and_reads_it_back_over_http() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    let served = api.serve().await;
    let live = api.project_live();
    let writer = format!("Bearer {}", tokens.writer);
    let reader = format!("Bearer {}", tokens.reader);
    let json_body = |value: serde_json::Value| Bytes::from(value.to_string());
    let as_writer = [
        ("authorization", writer.as_str()),
        ("content-type", "application/json"),
    ];

    let queue = async || {
        served
            .send(
                Method::POST,
                &runs_path(t),
                &[as_writer[0], as_writer[1], ("idempotency-key", "nightly-1")],
                json_body(json!({"type": "inventory.sync", "identity": {"night": 1}})),
            )
            .await
    };
    let queued = queue().await;
    assert_eq!(queued.status, StatusCode::CREATED, "{:#}", queued.body);
    let id = queued.body["run"]["id"].as_str().unwrap().to_owned();
    for (rest, body) in [
        ("/start", json!({})),
        ("/progress", json!({"success": 9, "failed": 1, "total": 10})),
        ("/complete", json!({})),
    ] {
        let answer = served
            .send(
                Method::POST,
                &run_path(t, &id, rest),
                &as_writer,
                json_body(body),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{rest}: {:#}", answer.body);
    }
    let retried = queue().await;
    assert_eq!(retried.status, StatusCode::CREATED);
    assert_eq!(retried.body, queued.body, "a retry gets the first answer");

    // The completion's position, then the run as of it.
    let events = api
        .store
        .reader
        .read_stream(t, id.parse().unwrap())
        .await
        .unwrap();
    let position = events.last().unwrap().position;
    let path = format!("{}?min_position={position}", run_path(t, &id, ""));
    let shown = served
        .send(
            Method::GET,
            &path,
            &[("authorization", &reader)],
            Bytes::new(),
        )
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{:#}", shown.body);
    assert_eq!(shown.body["outcome"], "partially_succeeded");
    assert_eq!(
        shown.body["summary_counts"],
        json!({"total": 10, "success": 9, "failed": 1, "skipped": 0})
    );
    // The version, and the last heartbeat (the progress report counted as one).
    let etag = shown.headers[header::ETAG].to_str().unwrap().to_owned();
    assert!(etag.starts_with("\"4-"), "{etag}");
    let unchanged = served
        .send(
            Method::GET,
            &path,
            &[("authorization", &reader), ("if-none-match", &etag)],
            Bytes::new(),
        )
        .await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    live.stop().await;
}

#[tokio::test]
async fn request_ids_reach_problems_and_a_body_over_the_limit_is_413() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let writer = format!("Bearer {}", api.tokens(t).await.writer);
    let served = api.serve().await;

    // A client's request id comes back in the header and in the problem.
    let refused = served
        .send(
            Method::POST,
            &runs_path(t),
            &[
                ("authorization", &writer),
                ("x-request-id", "req-42"),
                ("content-type", "application/json"),
            ],
            Bytes::from_static(b"{"),
        )
        .await;
    let problem = refused.assert_problem(StatusCode::BAD_REQUEST, None);
    assert_eq!(problem["request_id"], "req-42");
    assert_eq!(problem["instance"], runs_path(t));
    assert_eq!(refused.headers["x-request-id"], "req-42");
    // Without one, the server makes one, and shows it in both places too.
    let unauthorized = served
        .send(Method::GET, &runs_path(t), &[], Bytes::new())
        .await;
    let problem = unauthorized.assert_problem(StatusCode::UNAUTHORIZED, None);
    let made = problem["request_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(made).is_ok(), "{made}");
    assert_eq!(unauthorized.headers["x-request-id"], made);

    let oversized = format!(
        r#"{{"type": "inventory.sync", "context": {{"blob": "{}"}}}}"#,
        "x".repeat(200_000)
    );
    let answer = served
        .send(
            Method::POST,
            &runs_path(t),
            &[
                ("authorization", &writer),
                ("content-type", "application/json"),
            ],
            Bytes::from(oversized),
        )
        .await;
    let problem = answer.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, None);
    assert_eq!(problem["type"], "urn:runledger:problem:payload-too-large");
    assert_eq!(api.event_count().await, 0);
}
