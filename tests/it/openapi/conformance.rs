//! Every route of the document through the real router, with good and bad input (unknown
//! runs, bad JSON, bad fields, wrong roles, other tenants, bad queries and headers, missing
//! tokens): each answer has the status the case expects, that status is declared for the
//! operation, its content type is the declared one, and its body validates against the
//! declared schema. Every operation of the document is among the cases.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use runledger_api::auth::Role;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::contract::{Contract, Observed};
use crate::api::TestApi;
use crate::api::support::{Call, run_path, runs_path};
use crate::helpers::verbs::tenant;

/// One request and the status it must get.
struct Case {
    method: Method,
    /// The operation's path template in the document.
    template: &'static str,
    request: Request<Body>,
    expected: StatusCode,
    what: String,
}

/// What the cases share: the API, tokens, and runs in each state.
struct Fixture {
    api: TestApi,
    reader: String,
    writer: String,
    auditor: String,
    admin: String,
    user: String,
}

const RUN: &str = "/v1/tenants/{tenant_id}/runs/{run_id}";
const RUNS: &str = "/v1/tenants/{tenant_id}/runs";

fn template(rest: &'static str) -> &'static str {
    match rest {
        "" => RUN,
        "/start" => "/v1/tenants/{tenant_id}/runs/{run_id}/start",
        "/progress" => "/v1/tenants/{tenant_id}/runs/{run_id}/progress",
        "/complete" => "/v1/tenants/{tenant_id}/runs/{run_id}/complete",
        "/dispatch-failed" => "/v1/tenants/{tenant_id}/runs/{run_id}/dispatch-failed",
        "/cancel" => "/v1/tenants/{tenant_id}/runs/{run_id}/cancel",
        "/heartbeat" => "/v1/tenants/{tenant_id}/runs/{run_id}/heartbeat",
        "/events" => "/v1/tenants/{tenant_id}/runs/{run_id}/events",
        "/state" => "/v1/tenants/{tenant_id}/runs/{run_id}/state",
        "/verify" => "/v1/tenants/{tenant_id}/runs/{run_id}/verify",
        other => panic!("no template for {other}"),
    }
}

impl Fixture {
    fn case(
        &self,
        method: Method,
        template: &'static str,
        call: Call,
        expected: StatusCode,
        what: &str,
    ) -> Case {
        Case {
            method,
            template,
            request: call.build(),
            expected,
            what: what.to_owned(),
        }
    }

    /// A command of run `run` (`rest` after its path) as `token` with `body`.
    fn command(
        &self,
        rest: &'static str,
        run: &str,
        token: &str,
        body: &Value,
        expected: StatusCode,
        what: &str,
    ) -> Case {
        let call = Call::new(Method::POST, &run_path(tenant(1), run, rest), Some(token)).json(body);
        self.case(Method::POST, template(rest), call, expected, what)
    }

    /// A `GET` of run `run` (`rest` after its path, then `query`) as `token`.
    fn read(
        &self,
        rest: &'static str,
        run: &str,
        query: &str,
        token: &str,
        expected: StatusCode,
        what: &str,
    ) -> Case {
        let path = format!("{}{query}", run_path(tenant(1), run, rest));
        self.case(
            Method::GET,
            template(rest),
            Call::new(Method::GET, &path, Some(token)),
            expected,
            what,
        )
    }

    fn get(
        &self,
        template: &'static str,
        path: &str,
        token: Option<&str>,
        expected: StatusCode,
        what: &str,
    ) -> Case {
        self.case(
            Method::GET,
            template,
            Call::new(Method::GET, path, token),
            expected,
            what,
        )
    }
}

/// Sends `request` through the router; a stream's body is left unread.
async fn respond(
    api: &TestApi,
    request: Request<Body>,
) -> (StatusCode, HeaderMap, Option<Vec<u8>>) {
    let response = api
        .app
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    let (parts, body) = response.into_parts();
    let streaming = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
    let bytes = if streaming {
        None
    } else {
        Some(
            body.collect()
                .await
                .expect("read the body")
                .to_bytes()
                .to_vec(),
        )
    };
    (parts.status, parts.headers, bytes)
}

#[tokio::test]
async fn every_answer_of_every_route_is_declared_with_its_content_type_and_schema() {
    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(1)).await;
    let user = api.user_token(tenant(1), Role::Reader, 42).await;
    let f = Fixture {
        reader: tokens.reader.clone(),
        writer: tokens.writer.clone(),
        auditor: tokens.auditor.clone(),
        admin: tokens.admin.clone(),
        user,
        api,
    };
    let document = f
        .api
        .send(Call::new(Method::GET, "/openapi.json", None).build())
        .await
        .body;
    let contract = Contract::new(document);

    // Runs in each state; the completed one queued by a user, whose feed then holds a notice.
    let queue = |n: u32| {
        json!({
            "type": "inventory.sync",
            "identity": { "n": n },
            "initiator": { "user_id": 42, "name": "Ada" },
            "heartbeat_timeout_seconds": 300,
        })
    };
    let queued = f
        .api
        .queue(tenant(1), &f.writer, "backup.nightly", json!({"n": 0}))
        .await;
    let to_cancel = f
        .api
        .queue(tenant(1), &f.writer, "backup.nightly", json!({"n": 1}))
        .await;
    let to_fail = f
        .api
        .queue(tenant(1), &f.writer, "backup.nightly", json!({"n": 2}))
        .await;
    let running = f
        .api
        .running_run(tenant(1), &f.writer, json!({"n": 3}))
        .await;
    let answer = f
        .api
        .post(&runs_path(tenant(1)), &f.writer, &queue(4))
        .await;
    let completed = answer.body["run"]["id"]
        .as_str()
        .expect("a run id")
        .to_owned();
    for rest in ["/start", "/complete"] {
        let answer = f
            .api
            .post(
                &run_path(tenant(1), &completed, rest),
                &f.writer,
                &json!({}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
    }
    let _to_revoke = f.api.user_token(tenant(1), Role::Reader, 99).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let key_body = json!({ "type": "keyed.job" });

    let ok = StatusCode::OK;
    let mut cases = vec![
        // Queue.
        f.case(
            Method::POST,
            RUNS,
            Call::new(Method::POST, &runs_path(tenant(1)), Some(&f.writer)).json(&queue(10)),
            StatusCode::CREATED,
            "queue",
        ),
        f.case(
            Method::POST,
            RUNS,
            Call::new(Method::POST, &runs_path(tenant(1)), Some(&f.writer)).json(&queue(10)),
            ok,
            "queue an active identity again",
        ),
        f.case(
            Method::POST,
            RUNS,
            Call::new(Method::POST, &runs_path(tenant(1)), Some(&f.writer)).raw("{\"type\": "),
            StatusCode::BAD_REQUEST,
            "queue: bad JSON",
        ),
        f.case(
            Method::POST,
            RUNS,
            Call::new(Method::POST, &runs_path(tenant(1)), Some(&f.writer))
                .json(&json!({"type": "x", "heartbeat_timeout_seconds": 0})),
            StatusCode::BAD_REQUEST,
            "queue: a limit out of bounds",
        ),
        f.case(
            Method::POST,
            RUNS,
            Call::new(Method::POST, &runs_path(tenant(1)), Some(&f.writer))
                .json(&json!({"type": "x", "colour": "red"})),
            StatusCode::BAD_REQUEST,
            "queue: an unknown field",
        ),
        f.case(
            Method::POST,
            RUNS,
            Call::new(Method::POST, &runs_path(tenant(1)), Some(&f.reader)).json(&queue(11)),
            StatusCode::FORBIDDEN,
            "queue: a reader",
        ),
        f.case(
            Method::POST,
            RUNS,
            Call::new(Method::POST, &runs_path(tenant(2)), Some(&f.writer)).json(&queue(11)),
            StatusCode::NOT_FOUND,
            "queue: another tenant",
        ),
        f.case(
            Method::POST,
            RUNS,
            Call::new(Method::POST, &runs_path(tenant(1)), None).json(&queue(11)),
            StatusCode::UNAUTHORIZED,
            "queue: no token",
        ),
        f.case(
            Method::POST,
            RUNS,
            Call::new(Method::POST, &runs_path(tenant(1)), Some(&f.writer))
                .header("Idempotency-Key", "conformance-1")
                .json(&key_body),
            StatusCode::CREATED,
            "queue with a key",
        ),
        f.case(
            Method::POST,
            RUNS,
            Call::new(Method::POST, &runs_path(tenant(1)), Some(&f.writer))
                .header("Idempotency-Key", "conformance-1")
                .json(&json!({"type": "other.job"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "queue: a key reused for another body",
        ),
        f.case(
            Method::POST,
            RUNS,
            Call::new(Method::POST, &runs_path(tenant(1)), Some(&f.writer))
                .raw(vec![b' '; 128 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "queue: a body past the limit",
        ),
        // Start.
        f.command(
            "/start",
            &running,
            &f.writer,
            &json!({"worker": "w2"}),
            StatusCode::CONFLICT,
            "start: not queued",
        ),
        f.command(
            "/start",
            &unknown,
            &f.writer,
            &json!({}),
            StatusCode::NOT_FOUND,
            "start: an unknown run",
        ),
        f.case(
            Method::POST,
            template("/start"),
            Call::new(
                Method::POST,
                &run_path(tenant(1), "not-a-uuid", "/start"),
                Some(&f.writer),
            )
            .json(&json!({})),
            StatusCode::BAD_REQUEST,
            "start: a malformed run id",
        ),
        f.case(
            Method::POST,
            template("/start"),
            Call::new(
                Method::POST,
                &run_path(tenant(1), &queued, "/start"),
                Some(&f.writer),
            )
            .header("If-Match", "\"7\"")
            .json(&json!({})),
            StatusCode::PRECONDITION_FAILED,
            "start: If-Match of another version",
        ),
        f.command(
            "/start",
            &queued,
            &f.writer,
            &json!({"worker": "w1"}),
            ok,
            "start",
        ),
        // Progress.
        f.command(
            "/progress",
            &running,
            &f.writer,
            &json!({"success": 2, "total": 5}),
            ok,
            "progress",
        ),
        f.command(
            "/progress",
            &running,
            &f.writer,
            &json!({"success": 9}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "progress: past the total",
        ),
        f.command(
            "/progress",
            &running,
            &f.writer,
            &json!({"success": "two"}),
            StatusCode::BAD_REQUEST,
            "progress: a count of the wrong type",
        ),
        f.command(
            "/progress",
            &to_cancel,
            &f.writer,
            &json!({"success": 1}),
            StatusCode::CONFLICT,
            "progress: a queued run",
        ),
        f.command(
            "/progress",
            &running,
            &f.reader,
            &json!({"success": 1}),
            StatusCode::FORBIDDEN,
            "progress: a reader",
        ),
        // Heartbeat.
        f.command(
            "/heartbeat",
            &running,
            &f.writer,
            &json!({}),
            ok,
            "heartbeat",
        ),
        f.command(
            "/heartbeat",
            &to_cancel,
            &f.writer,
            &json!({}),
            StatusCode::CONFLICT,
            "heartbeat: a queued run",
        ),
        f.command(
            "/heartbeat",
            &completed,
            &f.writer,
            &json!({}),
            StatusCode::CONFLICT,
            "heartbeat: a completed run",
        ),
        f.command(
            "/heartbeat",
            &unknown,
            &f.writer,
            &json!({}),
            StatusCode::NOT_FOUND,
            "heartbeat: an unknown run",
        ),
        // Complete.
        f.command(
            "/complete",
            &completed,
            &f.writer,
            &json!({}),
            StatusCode::CONFLICT,
            "complete: completed already",
        ),
        f.command(
            "/complete",
            &running,
            &f.writer,
            &json!({"outcome": "cancelled"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "complete: cancelled without a request",
        ),
        f.command(
            "/complete",
            &running,
            &f.writer,
            &json!({"outcome": "maybe"}),
            StatusCode::BAD_REQUEST,
            "complete: an unknown outcome",
        ),
        // Dispatch failed.
        f.command(
            "/dispatch-failed",
            &to_fail,
            &f.writer,
            &json!({"code": "queue.down", "message": "refused"}),
            ok,
            "dispatch-failed",
        ),
        f.command(
            "/dispatch-failed",
            &running,
            &f.writer,
            &json!({"code": "queue.down", "message": "refused"}),
            StatusCode::CONFLICT,
            "dispatch-failed: a running run",
        ),
        f.command(
            "/dispatch-failed",
            &running,
            &f.writer,
            &json!({"code": "queue.down"}),
            StatusCode::BAD_REQUEST,
            "dispatch-failed: no message",
        ),
        // Cancel.
        f.command(
            "/cancel",
            &to_cancel,
            &f.writer,
            &json!({"reason": "not needed"}),
            ok,
            "cancel a queued run",
        ),
        f.command(
            "/cancel",
            &running,
            &f.writer,
            &json!({}),
            ok,
            "cancel a running run",
        ),
        f.command(
            "/cancel",
            &completed,
            &f.writer,
            &json!({}),
            StatusCode::CONFLICT,
            "cancel: completed already",
        ),
        // Get, list, count.
        f.read("", &completed, "", &f.reader, ok, "get"),
        f.read(
            "",
            &unknown,
            "",
            &f.reader,
            StatusCode::NOT_FOUND,
            "get: an unknown run",
        ),
        f.read(
            "",
            "not-a-uuid",
            "",
            &f.reader,
            StatusCode::BAD_REQUEST,
            "get: a malformed run id",
        ),
        f.read(
            "",
            &completed,
            "?min_position=abc",
            &f.reader,
            StatusCode::BAD_REQUEST,
            "get: a malformed min_position",
        ),
        f.read("", &running, "?watch=true", &f.reader, ok, "get: watch"),
        f.get(
            RUNS,
            &format!("{}?page_size=2&sort=-completed_at", runs_path(tenant(1))),
            Some(&f.reader),
            ok,
            "list",
        ),
        f.get(
            RUNS,
            &format!("{}?page_size=many", runs_path(tenant(1))),
            Some(&f.reader),
            StatusCode::BAD_REQUEST,
            "list: a malformed page_size",
        ),
        f.get(
            RUNS,
            &format!("{}?colour=red", runs_path(tenant(1))),
            Some(&f.reader),
            StatusCode::BAD_REQUEST,
            "list: an unknown parameter",
        ),
        f.get(
            RUNS,
            &runs_path(tenant(2)),
            Some(&f.reader),
            StatusCode::NOT_FOUND,
            "list: another tenant",
        ),
        f.get(
            RUNS,
            &runs_path(tenant(1)),
            Some("not-a-token"),
            StatusCode::UNAUTHORIZED,
            "list: an unknown token",
        ),
        f.get(
            RUNS,
            &format!("{}?watch=true", runs_path(tenant(1))),
            Some(&f.reader),
            ok,
            "list: watch",
        ),
        f.get(
            "/v1/tenants/{tenant_id}/runs:count",
            "/v1/tenants/1/runs:count?group_by=status",
            Some(&f.reader),
            ok,
            "count",
        ),
        f.get(
            "/v1/tenants/{tenant_id}/runs:count",
            "/v1/tenants/1/runs:count?sort=created_at",
            Some(&f.reader),
            StatusCode::BAD_REQUEST,
            "count: a sort",
        ),
        f.get(
            "/v1/tenants/{tenant_id}/runs:count",
            "/v1/tenants/1/runs:count",
            None,
            StatusCode::UNAUTHORIZED,
            "count: no token",
        ),
        // Audit and evidence.
        f.read("/events", &completed, "", &f.auditor, ok, "events"),
        f.read(
            "/events",
            &completed,
            "",
            &f.reader,
            StatusCode::FORBIDDEN,
            "events: a reader",
        ),
        f.read(
            "/events",
            &unknown,
            "",
            &f.auditor,
            StatusCode::NOT_FOUND,
            "events: an unknown run",
        ),
        f.read(
            "/state",
            &completed,
            "?at_version=2",
            &f.auditor,
            ok,
            "state",
        ),
        f.read(
            "/state",
            &completed,
            "?at_version=1&at=2026-01-01T00:00:00Z",
            &f.auditor,
            StatusCode::BAD_REQUEST,
            "state: both at_version and at",
        ),
        f.read("/verify", &completed, "", &f.auditor, ok, "verify"),
        f.read(
            "/verify",
            &unknown,
            "",
            &f.auditor,
            StatusCode::NOT_FOUND,
            "verify: an unknown run",
        ),
        f.get(
            "/v1/tenants/{tenant_id}/events",
            "/v1/tenants/1/events?limit=3",
            Some(&f.auditor),
            ok,
            "the log",
        ),
        f.get(
            "/v1/tenants/{tenant_id}/events",
            "/v1/tenants/1/events?after=garbage",
            Some(&f.auditor),
            StatusCode::BAD_REQUEST,
            "the log: a malformed cursor",
        ),
        f.case(
            Method::GET,
            "/v1/tenants/{tenant_id}/events",
            Call::new(Method::GET, "/v1/tenants/1/events", Some(&f.auditor))
                .header("Accept", "text/event-stream"),
            ok,
            "the log: live",
        ),
        f.get(
            "/v1/tenants/{tenant_id}/export",
            "/v1/tenants/1/export",
            Some(&f.auditor),
            ok,
            "export",
        ),
        f.get(
            "/v1/tenants/{tenant_id}/export",
            "/v1/tenants/1/export?since=yesterday",
            Some(&f.auditor),
            StatusCode::BAD_REQUEST,
            "export: a malformed since",
        ),
        f.get(
            "/v1/tenants/{tenant_id}/export",
            "/v1/tenants/1/export",
            Some(&f.writer),
            StatusCode::FORBIDDEN,
            "export: a writer",
        ),
        // Notices.
        f.get(
            "/v1/notifications",
            "/v1/notifications",
            Some(&f.user),
            ok,
            "notices",
        ),
        f.get(
            "/v1/notifications",
            "/v1/notifications",
            Some(&f.reader),
            StatusCode::FORBIDDEN,
            "notices: a token of no user",
        ),
        f.get(
            "/v1/notifications",
            "/v1/notifications?page_size=lots",
            Some(&f.user),
            StatusCode::BAD_REQUEST,
            "notices: a malformed page_size",
        ),
        f.case(
            Method::POST,
            "/v1/notifications/{id}/read",
            Call::new(
                Method::POST,
                &format!("/v1/notifications/{unknown}/read"),
                Some(&f.user),
            ),
            StatusCode::NOT_FOUND,
            "mark read: an unknown notice",
        ),
        f.case(
            Method::POST,
            "/v1/notifications/{id}/read",
            Call::new(Method::POST, "/v1/notifications/nope/read", Some(&f.user)),
            StatusCode::BAD_REQUEST,
            "mark read: a malformed id",
        ),
        // Projections.
        f.get(
            "/v1/projections",
            "/v1/projections",
            Some(&f.reader),
            ok,
            "projections",
        ),
        f.case(
            Method::POST,
            "/v1/projections/{name}/rebuild",
            Call::new(
                Method::POST,
                "/v1/projections/operation_runs/rebuild",
                Some(&f.reader),
            ),
            StatusCode::FORBIDDEN,
            "rebuild: a reader",
        ),
        f.case(
            Method::POST,
            "/v1/projections/{name}/rebuild",
            Call::new(
                Method::POST,
                "/v1/projections/nothing/rebuild",
                Some(&f.admin),
            ),
            StatusCode::NOT_FOUND,
            "rebuild: an unknown projection",
        ),
        // Tokens.
        f.case(
            Method::POST,
            "/v1/tokens",
            Call::new(Method::POST, "/v1/tokens", Some(&f.admin))
                .json(&json!({"name": "ci", "role": "writer", "tenant_ids": [1]})),
            StatusCode::CREATED,
            "create a token",
        ),
        f.case(
            Method::POST,
            "/v1/tokens",
            Call::new(Method::POST, "/v1/tokens", Some(&f.admin))
                .json(&json!({"name": "ci", "role": "emperor"})),
            StatusCode::BAD_REQUEST,
            "create a token: an unknown role",
        ),
        f.case(
            Method::POST,
            "/v1/tokens",
            Call::new(Method::POST, "/v1/tokens", Some(&f.writer))
                .json(&json!({"name": "ci", "role": "writer"})),
            StatusCode::FORBIDDEN,
            "create a token: not an admin",
        ),
        f.get(
            "/v1/tokens",
            "/v1/tokens",
            Some(&f.admin),
            ok,
            "list tokens",
        ),
        f.get(
            "/v1/tokens",
            "/v1/tokens",
            Some(&f.reader),
            StatusCode::FORBIDDEN,
            "list tokens: not an admin",
        ),
        f.case(
            Method::DELETE,
            "/v1/tokens/{token_id}",
            Call::new(
                Method::DELETE,
                &format!("/v1/tokens/{unknown}"),
                Some(&f.admin),
            ),
            StatusCode::NOT_FOUND,
            "revoke: an unknown token",
        ),
        f.case(
            Method::DELETE,
            "/v1/tokens/{token_id}",
            Call::new(Method::DELETE, "/v1/tokens/x", Some(&f.admin)),
            StatusCode::BAD_REQUEST,
            "revoke: a malformed id",
        ),
        // Operations.
        f.get("/healthz", "/healthz", None, ok, "healthz"),
        f.get("/metrics", "/metrics", None, ok, "metrics"),
        f.get("/openapi.json", "/openapi.json", None, ok, "the document"),
    ];

    // What needs an earlier answer: a revocation of a listed token, a notice to mark read, a
    // rebuild, readiness once the read models are built, a 304 for the run's entity tag.
    f.api.project().await;
    let listed = f.api.get("/v1/tokens", &f.admin).await;
    let token_id = listed.body["tokens"]
        .as_array()
        .expect("the tokens")
        .iter()
        .find(|token| token["name"] == "user-99")
        .and_then(|token| token["id"].as_str())
        .expect("the token to revoke")
        .to_owned();
    cases.push(f.case(
        Method::DELETE,
        "/v1/tokens/{token_id}",
        Call::new(
            Method::DELETE,
            &format!("/v1/tokens/{token_id}"),
            Some(&f.admin),
        ),
        ok,
        "revoke",
    ));
    let notices = f.api.get("/v1/notifications", &f.user).await;
    let notice = notices.body["notifications"][0]["id"]
        .as_str()
        .expect("a notice of the completed run")
        .to_owned();
    cases.push(f.case(
        Method::POST,
        "/v1/notifications/{id}/read",
        Call::new(
            Method::POST,
            &format!("/v1/notifications/{notice}/read"),
            Some(&f.user),
        ),
        ok,
        "mark read",
    ));
    cases.push(f.case(
        Method::POST,
        "/v1/projections/{name}/rebuild",
        Call::new(
            Method::POST,
            "/v1/projections/notifications/rebuild",
            Some(&f.admin),
        ),
        StatusCode::ACCEPTED,
        "rebuild",
    ));
    cases.push(f.get("/readyz", "/readyz", None, ok, "readyz"));
    let shown = f
        .api
        .get(&run_path(tenant(1), &completed, ""), &f.reader)
        .await;
    let etag = shown
        .headers
        .get(header::ETAG)
        .expect("an ETag")
        .to_str()
        .expect("ASCII")
        .to_owned();
    cases.push(
        f.case(
            Method::GET,
            RUN,
            Call::new(
                Method::GET,
                &run_path(tenant(1), &completed, ""),
                Some(&f.reader),
            )
            .header("If-None-Match", &etag),
            StatusCode::NOT_MODIFIED,
            "get: unchanged",
        ),
    );

    let mut covered = BTreeSet::new();
    let mut failures = Vec::new();
    for case in cases {
        let method = case.method.as_str().to_ascii_lowercase();
        covered.insert((method.clone(), case.template.to_owned()));
        let (status, headers, body) = respond(&f.api, case.request).await;
        let label = format!("{} ({} {})", case.what, case.method, case.template);
        if status != case.expected {
            failures.push(format!(
                "{label}: expected {}, got {status}: {}",
                case.expected,
                String::from_utf8_lossy(body.as_deref().unwrap_or_default())
            ));
            continue;
        }
        let observed = Observed {
            status,
            headers: &headers,
            body: body.as_deref(),
        };
        if let Some(violation) = contract.violation(&method, case.template, &observed) {
            failures.push(format!("{label}: {violation}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} answers do not conform:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let missing: Vec<_> = contract
        .operations()
        .difference(&covered)
        .cloned()
        .collect();
    assert!(missing.is_empty(), "operations no case calls: {missing:?}");
}
