//! The notification feed over HTTP: a user-bound token sees only its own notices, newest first,
//! in cursor pages, optionally unread only; marking one read sticks, also across a rebuild of
//! the feed; a token bound to no user has no feed (403).

use axum::http::{Method, StatusCode};
use runledger_api::auth::Role;
use serde_json::json;

use super::TestApi;
use super::support::{Call, run_path, runs_path};
use crate::helpers::verbs::tenant;

/// The ids of a feed page, in order.
fn notice_ids(page: &super::Answer) -> Vec<String> {
    assert_eq!(page.status, StatusCode::OK, "{:#}", page.body);
    page.body["notifications"]
        .as_array()
        .expect("a notifications array")
        .iter()
        .map(|n| n["id"].as_str().expect("a notice id").to_owned())
        .collect()
}

#[tokio::test]
async fn a_user_sees_only_their_own_notices_and_read_state_survives_a_rebuild() {
    let api = TestApi::new().await;
    let t = tenant(7);
    let tokens = api.tokens(t).await;
    // Ada (42) queues two runs and completes one; Bob (43) queues one; one run is the system's.
    let queue = |user: Option<(i64, &str)>, i: i64| {
        let mut body = json!({"type": "inventory.sync", "identity": {"i": i}});
        if let Some((id, name)) = user {
            body["initiator"] = json!({"user_id": id, "name": name});
        }
        body
    };
    let mut ada_runs = Vec::new();
    for (user, i) in [
        (Some((42, "Ada")), 1),
        (Some((43, "Bob")), 2),
        (None, 3),
        (Some((42, "Ada")), 4),
    ] {
        let answer = api
            .post(&runs_path(t), &tokens.writer, &queue(user, i))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED);
        if user.is_some_and(|(id, _)| id == 42) {
            ada_runs.push(answer.body["run"]["id"].as_str().unwrap().to_owned());
        }
    }
    let first = &ada_runs[0];
    api.post(&run_path(t, first, "/start"), &tokens.writer, &json!({}))
        .await;
    api.post(&run_path(t, first, "/complete"), &tokens.writer, &json!({}))
        .await;
    api.project().await;
    let ada = api.user_token(t, Role::Reader, 42).await;
    let bob = api.user_token(t, Role::Writer, 43).await;

    let feed = api.get("/v1/notifications", &ada).await;
    let notices = feed.body["notifications"].as_array().unwrap().clone();
    assert_eq!(
        notices.len(),
        3,
        "two queued notices and one completed: {feed:#?}"
    );
    assert!(
        notices
            .iter()
            .all(|n| n["user_id"] == 42 && n["tenant_id"] == 7)
    );
    assert!(notices.iter().all(|n| n["read_at"].is_null()));
    let positions: Vec<i64> = notices
        .iter()
        .map(|n| n["position"].as_i64().unwrap())
        .collect();
    let mut sorted = positions.clone();
    sorted.sort_by_key(|p| std::cmp::Reverse(*p));
    assert_eq!(positions, sorted, "newest first");
    assert_eq!(notices[0]["kind"], "completed");
    assert_eq!(notices[0]["run_id"], first.as_str());
    assert_eq!(
        notices[0]["view_url"],
        format!("http://test/ui/tenants/7/runs/{first}")
    );
    assert_eq!(
        notice_ids(&api.get("/v1/notifications", &bob).await).len(),
        1
    );

    // Pages of one cover the feed once, in the same order.
    let mut paged = Vec::new();
    let mut path = "/v1/notifications?page_size=1".to_owned();
    loop {
        let page = api.get(&path, &ada).await;
        paged.extend(notice_ids(&page));
        match page.body["next_page_token"].as_str() {
            Some(token) => path = format!("/v1/notifications?page_size=1&page_token={token}"),
            None => break,
        }
    }
    assert_eq!(paged, notice_ids(&feed));

    // Ada reads the newest notice: it is marked, once, and unread_only leaves it out.
    let read_path = format!("/v1/notifications/{}/read", paged[0]);
    let read = api
        .send(Call::new(Method::POST, &read_path, Some(&ada)).build())
        .await;
    assert_eq!(read.status, StatusCode::OK, "{:#}", read.body);
    let read_at = read.body["read_at"].clone();
    assert!(read_at.is_string());
    let again = api
        .send(Call::new(Method::POST, &read_path, Some(&ada)).build())
        .await;
    assert_eq!(
        again.body["read_at"], read_at,
        "reading twice keeps the first time"
    );
    let unread = api.get("/v1/notifications?unread_only=true", &ada).await;
    assert_eq!(notice_ids(&unread), paged[1..].to_vec());
    // An unread_only page token is not a token of the whole feed.
    let page = api
        .get("/v1/notifications?unread_only=true&page_size=1", &ada)
        .await;
    let token = page.body["next_page_token"].as_str().unwrap();
    api.get(&format!("/v1/notifications?page_token={token}"), &ada)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, Some("page_token"));

    // The feed is rebuilt from the log; the notices come back the same, the read one still read.
    let before = api.get("/v1/notifications", &ada).await.body;
    let rebuild = api
        .post(
            "/v1/projections/notifications/rebuild",
            &tokens.admin,
            &json!({}),
        )
        .await;
    assert_eq!(rebuild.status, StatusCode::ACCEPTED, "{:#}", rebuild.body);
    assert_eq!(rebuild.body["created"], true);
    api.project().await;
    let status = api.get("/v1/projections", &tokens.reader).await;
    let feed_status = status.body["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "notifications")
        .expect("the feed's status")
        .clone();
    assert_eq!(
        feed_status["active"]["generation"], rebuild.body["generation"],
        "switched"
    );
    assert_eq!(api.get("/v1/notifications", &ada).await.body, before);
}

#[tokio::test]
async fn a_token_bound_to_no_user_has_no_feed() {
    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(1)).await;
    let any_notice = uuid::Uuid::new_v4();

    for role in [Role::Reader, Role::Writer, Role::Auditor, Role::Admin] {
        api.get("/v1/notifications", tokens.of(role))
            .await
            .assert_problem(StatusCode::FORBIDDEN, None);
        let read = Call::new(
            Method::POST,
            &format!("/v1/notifications/{any_notice}/read"),
            Some(tokens.of(role)),
        );
        api.send(read.build())
            .await
            .assert_problem(StatusCode::FORBIDDEN, None);
    }
}
