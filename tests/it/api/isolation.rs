//! Tenant isolation on every route: a token of tenant A on tenant B's runs, notices, log (paged
//! or live) or other routes gets the same 404 as for something missing (only `instance` and
//! `request_id` differ), and nothing is written; an admin token acts on every tenant.

use axum::http::{Method, StatusCode};
use runledger_api::auth::Role;
use serde_json::json;

use super::TestApi;
use super::support::{Call, run_routes, runs_path, without_request_details};
use crate::helpers::verbs::{new_run_id, tenant};

#[tokio::test]
async fn another_tenants_run_answers_every_run_route_exactly_like_a_missing_run() {
    let api = TestApi::new().await;
    let (a, b) = (tenant(1), tenant(2));
    let (of_a, of_b) = (api.tokens(a).await, api.tokens(b).await);
    let run_of_b = api
        .queue(b, &of_b.writer, "inventory.sync", json!({}))
        .await;
    api.post(
        &format!("{}/{run_of_b}/start", runs_path(b)),
        &of_b.writer,
        &json!({}),
    )
    .await;
    api.project().await;
    let missing = new_run_id().to_string();
    let events = api.event_count().await;

    for route in run_routes() {
        let token = of_a.of(route.role);
        let absent = api.send(route.call(a, &missing, token)).await;
        let absent = without_request_details(absent.assert_problem(StatusCode::NOT_FOUND, None));
        // B's run under A's tenant, and under B's tenant with A's token.
        for foreign in [
            route.call(a, &run_of_b, token),
            route.call(b, &run_of_b, token),
        ] {
            let answer = api.send(foreign).await;
            let problem = answer.assert_problem(StatusCode::NOT_FOUND, None);
            assert_eq!(
                without_request_details(problem),
                absent,
                "{} {}",
                route.method,
                route.rest
            );
        }
        // B's own token of that role sees it (the commands may refuse, but not with 404).
        let own = api
            .send(route.call(b, &run_of_b, of_b.of(route.role)))
            .await;
        assert_ne!(
            own.status,
            StatusCode::NOT_FOUND,
            "{} {}",
            route.method,
            route.rest
        );
    }
    assert_eq!(
        api.event_count().await,
        events + 2,
        "only B's own progress report and completion were written"
    );
}

#[tokio::test]
async fn another_tenants_lists_counts_log_and_queue_answer_404_and_write_nothing() {
    let api = TestApi::new().await;
    let (a, b) = (tenant(1), tenant(2));
    let of_a = api.tokens(a).await;
    let events = api.event_count().await;
    let nowhere = tenant(999);

    let requests = |t| {
        vec![
            (Role::Reader, Call::new(Method::GET, &runs_path(t), None)),
            (
                Role::Reader,
                Call::new(Method::GET, &format!("/v1/tenants/{t}/runs:count"), None),
            ),
            (
                Role::Auditor,
                Call::new(Method::GET, &format!("/v1/tenants/{t}/events"), None),
            ),
            (
                Role::Auditor,
                Call::new(Method::GET, &format!("/v1/tenants/{t}/events"), None)
                    .header("accept", "text/event-stream"),
            ),
            (
                Role::Auditor,
                Call::new(Method::GET, &format!("/v1/tenants/{t}/export"), None),
            ),
            (
                Role::Writer,
                Call::new(Method::POST, &runs_path(t), None)
                    .json(&json!({"type": "inventory.sync"})),
            ),
        ]
    };
    for ((role, foreign), (_, unknown)) in requests(b).into_iter().zip(requests(nowhere)) {
        let token = format!("Bearer {}", of_a.of(role));
        let foreign = api
            .send(foreign.header("authorization", &token).build())
            .await;
        let unknown = api
            .send(unknown.header("authorization", &token).build())
            .await;
        assert_eq!(
            without_request_details(foreign.assert_problem(StatusCode::NOT_FOUND, None)),
            without_request_details(unknown.assert_problem(StatusCode::NOT_FOUND, None)),
        );
    }
    assert_eq!(api.event_count().await, events, "nothing was queued in B");
}

#[tokio::test]
async fn another_users_or_tenants_notice_answers_like_a_missing_one() {
    let api = TestApi::new().await;
    let (a, b) = (tenant(1), tenant(2));
    let writer_of_b = api.tokens(b).await.writer;
    let queued = api
        .post(
            &runs_path(b),
            &writer_of_b,
            &json!({"type": "inventory.sync", "initiator": {"user_id": 42, "name": "Bea"}}),
        )
        .await;
    assert_eq!(queued.status, StatusCode::CREATED);
    api.project().await;
    // User 42 of tenant B has a notice; user 42 of tenant A and user 43 of B do not.
    let owner = api.user_token(b, Role::Reader, 42).await;
    let feed = api.get("/v1/notifications", &owner).await;
    let notice = feed.body["notifications"][0]["id"]
        .as_str()
        .expect("the owner has a notice")
        .to_owned();
    let read = |id: &str, token: &str| {
        Call::new(
            Method::POST,
            &format!("/v1/notifications/{id}/read"),
            Some(token),
        )
        .build()
    };
    let missing = uuid::Uuid::new_v4().to_string();

    for stranger in [
        api.user_token(a, Role::Reader, 42).await,
        api.user_token(b, Role::Reader, 43).await,
        api.user_token(a, Role::Admin, 42).await,
    ] {
        let foreign = api.send(read(&notice, &stranger)).await;
        let absent = api.send(read(&missing, &stranger)).await;
        assert_eq!(
            without_request_details(foreign.assert_problem(StatusCode::NOT_FOUND, None)),
            without_request_details(absent.assert_problem(StatusCode::NOT_FOUND, None)),
        );
        let their_feed = api.get("/v1/notifications", &stranger).await;
        assert_eq!(their_feed.body["notifications"], json!([]));
    }
    let unread = api.get("/v1/notifications?unread_only=true", &owner).await;
    assert_eq!(
        unread.body["notifications"].as_array().unwrap().len(),
        1,
        "no stranger marked it read"
    );
}

#[tokio::test]
async fn an_admin_token_acts_on_every_tenant() {
    let api = TestApi::new().await;
    let (a, b) = (tenant(1), tenant(2));
    let admin_of_a = api.tokens(a).await.admin;

    let queued = api
        .post(
            &runs_path(b),
            &admin_of_a,
            &json!({"type": "inventory.sync"}),
        )
        .await;
    assert_eq!(queued.status, StatusCode::CREATED, "{:#}", queued.body);
    assert_eq!(queued.body["run"]["tenant_id"], 2);
    let run = queued.body["run"]["id"].as_str().unwrap().to_owned();
    api.project().await;
    for route in run_routes() {
        let answer = api.send(route.call(b, &run, &admin_of_a)).await;
        assert_ne!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{} {}",
            route.method,
            route.rest
        );
        assert_ne!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{} {}",
            route.method,
            route.rest
        );
    }
    let listed = api.get(&runs_path(b), &admin_of_a).await;
    assert_eq!(listed.body["runs"][0]["id"], run.as_str());
}

/// Regression test for issue 11 (the tenant is checked before anything else): a request to
/// another tenant's route answers 404 like one to a missing tenant even when its body, query
/// string or headers are malformed, so a caller learns nothing of another tenant's routes by
/// how they validate; and a role that may not use a route is refused before its input is read.
#[tokio::test]
async fn the_tenant_and_role_are_checked_before_the_body_query_and_headers_are_read() {
    let api = TestApi::new().await;
    let (a, b) = (tenant(1), tenant(2));
    let of_a = api.tokens(a).await;
    let run = new_run_id().to_string();
    let malformed = |t| {
        vec![
            (
                Role::Writer,
                Call::new(Method::POST, &runs_path(t), None).raw("{not json"),
            ),
            (
                Role::Writer,
                Call::new(
                    Method::POST,
                    &format!("{}/{run}/progress", runs_path(t)),
                    None,
                )
                .json(&json!({"success": -1}))
                .header("if-match", "not-a-version")
                .header("idempotency-key", ""),
            ),
            (
                Role::Reader,
                Call::new(
                    Method::GET,
                    &format!("{}?page_size=0&colour=red", runs_path(t)),
                    None,
                ),
            ),
            (
                Role::Reader,
                Call::new(
                    Method::GET,
                    &format!("/v1/tenants/{t}/runs:count?group_by=colour"),
                    None,
                ),
            ),
            (
                Role::Auditor,
                Call::new(
                    Method::GET,
                    &format!("/v1/tenants/{t}/events?after=nowhere"),
                    None,
                ),
            ),
            (
                Role::Auditor,
                Call::new(
                    Method::GET,
                    &format!("/v1/tenants/{t}/export?since=soon"),
                    None,
                ),
            ),
        ]
    };
    let cases = malformed(b)
        .into_iter()
        .zip(malformed(tenant(999)))
        .zip(malformed(a));
    for (((role, foreign), (_, missing)), (_, own)) in cases {
        let token = format!("Bearer {}", of_a.of(role));
        let foreign = api
            .send(foreign.header("authorization", &token).build())
            .await;
        let missing = api
            .send(missing.header("authorization", &token).build())
            .await;
        assert_eq!(
            without_request_details(foreign.assert_problem(StatusCode::NOT_FOUND, None)),
            without_request_details(missing.assert_problem(StatusCode::NOT_FOUND, None)),
        );
        // In its own tenant the same request is refused for what it holds.
        let own = api.send(own.header("authorization", &token).build()).await;
        own.assert_problem(StatusCode::BAD_REQUEST, None);
    }

    // A reader may not record commands: 403 before the malformed body is read.
    api.send(
        Call::new(Method::POST, &runs_path(a), Some(&of_a.reader))
            .raw("{not json")
            .build(),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, None);
    assert_eq!(api.event_count().await, 0);
}
