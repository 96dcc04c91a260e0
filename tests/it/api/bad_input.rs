//! Bad input of every class (malformed JSON, unknown fields, wrong types, oversized bodies,
//! overlong strings, invalid ids, bad cursors, unknown enum values): a 4xx problem+json with a
//! stable `type` that names the field, never a 500, and nothing written.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::TestApi;
use super::support::{Call, run_path, runs_path};
use crate::helpers::verbs::tenant;

/// One bad request and the problem it must get.
struct Case {
    what: &'static str,
    call: Call,
    status: StatusCode,
    slug: &'static str,
    field: Option<&'static str>,
}

fn case(what: &'static str, call: Call, field: Option<&'static str>) -> Case {
    Case {
        what,
        call,
        status: StatusCode::BAD_REQUEST,
        slug: "invalid-request",
        field,
    }
}

/// Asserts each case's problem, and that none of them wrote anything.
async fn check(api: &TestApi, cases: Vec<Case>) {
    let written = || async {
        (
            api.event_count().await,
            api.store.count("idempotency_keys").await,
        )
    };
    let before = written().await;
    for case in cases {
        let answer = api.send(case.call.build()).await;
        assert_ne!(
            answer.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{}",
            case.what
        );
        assert_eq!(
            answer.status, case.status,
            "{}: {:#}",
            case.what, answer.body
        );
        let problem = answer.assert_problem(case.status, None);
        assert_eq!(
            problem["type"],
            format!("urn:runledger:problem:{}", case.slug),
            "{}",
            case.what
        );
        assert_eq!(
            problem.get("field").and_then(Value::as_str),
            case.field,
            "{}: {problem:#}",
            case.what
        );
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    assert_eq!(written().await, before, "a refused request wrote nothing");
}

#[tokio::test]
async fn bad_command_bodies_are_problems_naming_the_field_and_write_nothing() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let writer = api.tokens(t).await.writer;
    let id = api.running_run(t, &writer, json!({})).await;
    let queue = || Call::new(Method::POST, &runs_path(t), Some(&writer));
    let on_run = |rest: &str| Call::new(Method::POST, &run_path(t, &id, rest), Some(&writer));
    let long = |n: usize| "x".repeat(n);

    check(
        &api,
        vec![
            case("malformed JSON", queue().raw(r#"{"type": "inventory.sync""#), None),
            case("not an object", queue().raw("[1, 2]"), Some("[0]")),
            case("missing type", queue().json(&json!({})), Some("type")),
            case(
                "unknown field",
                queue().json(&json!({"type": "inventory.sync", "priority": 1})),
                Some("priority"),
            ),
            case(
                "unknown nested field",
                queue().json(&json!({"type": "inventory.sync", "initiator": {"user_id": 1, "name": "A", "email": "a@b"}})),
                Some("initiator.email"),
            ),
            case("wrong type", queue().json(&json!({"type": 5})), Some("type")),
            case(
                "wrong nested type",
                queue().json(&json!({"type": "inventory.sync", "initiator": {"user_id": "ada", "name": "Ada"}})),
                Some("initiator.user_id"),
            ),
            case(
                "negative count",
                on_run("/progress").json(&json!({"success": -1})),
                Some("success"),
            ),
            case(
                "count in a string",
                on_run("/progress").json(&json!({"failed": "3"})),
                Some("failed"),
            ),
            case(
                "a failure's wrong type",
                on_run("/progress").json(&json!({"failed": 1, "failures": [{"code": "io", "message": "m", "count": "one"}]})),
                Some("failures[0].count"),
            ),
            case("start takes no fields", on_run("/start").json(&json!({"at": "now"})), Some("at")),
            case("invalid type", queue().json(&json!({"type": "Inventory Sync"})), Some("type")),
            case(
                "overlong type",
                queue().json(&json!({"type": format!("inventory.{}", "a".repeat(100))})),
                Some("type"),
            ),
            case(
                "overlong initiator name",
                queue().json(&json!({"type": "inventory.sync", "initiator": {"user_id": 1, "name": long(201)}})),
                Some("initiator.name"),
            ),
            case(
                "a name without a user",
                queue().json(&json!({"type": "inventory.sync", "initiator": {"name": "Ada"}})),
                Some("initiator.user_id"),
            ),
            case(
                "an invalid user id",
                queue().json(&json!({"type": "inventory.sync", "initiator": {"user_id": 0, "name": "Ada"}})),
                Some("initiator.user_id"),
            ),
            // PostgreSQL's jsonb cannot hold U+0000: refused at the edge, not a failed append.
            case(
                "NUL in the identity",
                queue().json(&json!({"type": "inventory.sync", "identity": {"mailbox": "a\u{0}b"}})),
                Some("identity"),
            ),
            case(
                "NUL in a context key",
                queue().json(&json!({"type": "inventory.sync", "context": {"a\u{0}": 1}})),
                Some("context"),
            ),
            case(
                "context not an object",
                queue().json(&json!({"type": "inventory.sync", "context": [1]})),
                Some("context"),
            ),
            case(
                "context over 32 KiB",
                queue().json(&json!({"type": "inventory.sync", "context": {"blob": long(40_000)}})),
                Some("context"),
            ),
            case(
                "identity over 4 KiB",
                queue().json(&json!({"type": "inventory.sync", "identity": {"blob": long(5_000)}})),
                Some("identity"),
            ),
            case(
                "overlong failure message",
                on_run("/progress").json(&json!({"failed": 1, "failures": [{"code": "io", "message": long(4097)}]})),
                Some("failures[0].message"),
            ),
            case(
                "overlong failure code",
                on_run("/progress").json(&json!({"failed": 1, "failures": [{"code": long(101), "message": "m"}]})),
                Some("failures[0].code"),
            ),
            case(
                "overlong dispatch failure code",
                on_run("/dispatch-failed").json(&json!({"code": long(101), "message": "m"})),
                Some("code"),
            ),
            case(
                "overlong dispatch failure message",
                on_run("/dispatch-failed").json(&json!({"code": "io", "message": long(4097)})),
                Some("message"),
            ),
            case(
                "unknown outcome",
                on_run("/complete").json(&json!({"outcome": "great"})),
                Some("outcome"),
            ),
            case(
                "overlong idempotency key",
                on_run("/progress")
                    .header("idempotency-key", &long(201))
                    .json(&json!({"success": 1})),
                Some("Idempotency-Key"),
            ),
            case(
                "a correlation id that is no UUID",
                on_run("/progress")
                    .header("x-correlation-id", "abc")
                    .json(&json!({"success": 1})),
                Some("x-correlation-id"),
            ),
            Case {
                what: "oversized body",
                call: queue().json(&json!({"type": "inventory.sync", "context": {"blob": long(70_000)}})),
                status: StatusCode::PAYLOAD_TOO_LARGE,
                slug: "payload-too-large",
                field: None,
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn bad_ids_cursors_and_query_parameters_are_problems_naming_the_field() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    let get = |path: &str| Call::new(Method::GET, path, Some(&tokens.reader));
    let post = |path: &str| {
        Call::new(Method::POST, path, Some(&tokens.writer)).json(&json!({"type": "inventory.sync"}))
    };
    let list = |query: &str| get(&format!("{}?{query}", runs_path(t)));
    let run = uuid::Uuid::new_v4().to_string();
    let feed = || api.user_token(t, runledger_api::auth::Role::Reader, 42);
    let user = feed().await;

    check(
        &api,
        vec![
            case(
                "tenant not a number",
                get("/v1/tenants/acme/runs"),
                Some("tenant_id"),
            ),
            case("tenant zero", get("/v1/tenants/0/runs"), Some("tenant_id")),
            case(
                "tenant negative",
                post("/v1/tenants/-3/runs"),
                Some("tenant_id"),
            ),
            case(
                "tenant past i64",
                get("/v1/tenants/99999999999999999999/runs:count"),
                Some("tenant_id"),
            ),
            case(
                "run not a UUID",
                get(&run_path(t, "run-7", "")),
                Some("run_id"),
            ),
            case(
                "run not a UUID on a command",
                Call::new(
                    Method::POST,
                    &run_path(t, "7", "/start"),
                    Some(&tokens.writer),
                ),
                Some("run_id"),
            ),
            case(
                "garbage page token",
                list("page_token=bm90LWEtdG9rZW4"),
                Some("page_token"),
            ),
            case(
                "page token not base64",
                list("page_token=%%%"),
                Some("page_token"),
            ),
            case("unknown status", list("status=done"), Some("status")),
            case("unknown outcome", list("outcome=great"), Some("outcome")),
            case("unknown sort", list("sort=name"), Some("sort")),
            case(
                "page size not a number",
                list("page_size=ten"),
                Some("page_size"),
            ),
            case("invalid type filter", list("type=Inventory"), Some("type")),
            case(
                "overlong type prefix",
                list(&format!("type_prefix={}", "a".repeat(101))),
                Some("type_prefix"),
            ),
            case(
                "invalid user filter",
                list("initiator_user_id=-1"),
                Some("initiator_user_id"),
            ),
            case(
                "created_after not a time",
                list("created_after=yesterday"),
                Some("created_after"),
            ),
            case(
                "min_position zero",
                list("min_position=0"),
                Some("min_position"),
            ),
            case(
                "group_by on the list",
                list("group_by=status"),
                Some("group_by"),
            ),
            case("unknown parameter", list("colour=red"), Some("query")),
            case(
                "a page size on runs:count",
                get(&format!("/v1/tenants/{t}/runs:count?page_size=5")),
                Some("page_size"),
            ),
            case(
                "unknown group",
                get(&format!("/v1/tenants/{t}/runs:count?group_by=type")),
                Some("group_by"),
            ),
            case(
                "unknown parameter on GET run",
                get(&format!("{}?expand=all", run_path(t, &run, ""))),
                Some("query"),
            ),
            case(
                "notice id not a UUID",
                Call::new(Method::POST, "/v1/notifications/7/read", Some(&user)),
                Some("id"),
            ),
            case(
                "garbage notice page token",
                Call::new(Method::GET, "/v1/notifications?page_token=x", Some(&user)),
                Some("page_token"),
            ),
            case(
                "notice page size out of range",
                Call::new(Method::GET, "/v1/notifications?page_size=201", Some(&user)),
                Some("page_size"),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let api = TestApi::new().await;
    let reader = api.tokens(tenant(1)).await.reader;

    let missing = api
        .send(Call::new(Method::GET, "/v1/tenants/1/jobs", Some(&reader)).build())
        .await;
    let problem = missing.assert_problem(StatusCode::NOT_FOUND, None);
    assert_eq!(problem["type"], "urn:runledger:problem:not-found");

    let wrong_method = api
        .send(Call::new(Method::DELETE, "/v1/tenants/1/runs", Some(&reader)).build())
        .await;
    let problem = wrong_method.assert_problem(StatusCode::METHOD_NOT_ALLOWED, None);
    assert_eq!(problem["type"], "urn:runledger:problem:method-not-allowed");
    assert!(wrong_method.headers.contains_key("allow"));
}
