//! A projection whose active version this code cannot lead (another code's deploy made a
//! version of a fingerprint this code does not know active) is an error wherever its status
//! shows: `GET /v1/projections`, `/metrics`, the projections page, and `runledger projections`,
//! which fails. A projection this code leads shows none.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use runledger_api::auth::Role;

use super::support::database_url;
use crate::api::TestApi;
use crate::client::cli::runledger_binary;
use crate::helpers::verbs::tenant;
use crate::ui::support::Browser;

#[tokio::test]
async fn a_projection_this_code_cannot_lead_is_an_error_wherever_it_shows() {
    let api = TestApi::new().await;
    api.project().await;
    // What a deploy of other code leaves: the feed's active version is not this code's.
    sqlx::query(
        "UPDATE projection_versions SET fingerprint = repeat('f', 64) \
         WHERE projection = 'notifications' AND status = 'active'",
    )
    .execute(&api.store.pool)
    .await
    .unwrap();
    let admin = api.token(tenant(1), Role::Admin).await;

    let listed = api.get("/v1/projections", &admin).await;
    assert_eq!(listed.status, StatusCode::OK);
    let code = |name: &str| {
        listed.body["projections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} is listed: {:#}", listed.body))["this_code"]
            .clone()
    };
    let feed = code("notifications");
    assert_eq!(feed["standing"], "unknown");
    assert_eq!(feed["can_lead"], false);
    assert!(
        feed["error"]
            .as_str()
            .is_some_and(|e| e.contains("is not this code's")),
        "{feed:#}"
    );
    let runs = code("operation_runs");
    assert_eq!(runs["standing"], "active");
    assert!(runs["error"].is_null());

    let (status, _, metrics) = api
        .send_raw(
            Request::get("/metrics")
                .header(header::AUTHORIZATION, format!("Bearer {admin}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("runledger_projection_this_code_can_lead{projection=\"notifications\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("runledger_projection_this_code_can_lead{projection=\"operation_runs\"} 1"),
        "{metrics}"
    );

    let mut browser = Browser::signed_in(&api, &admin).await;
    let page = browser.get("/ui/projections").await;
    let html = page.assert_html(StatusCode::OK);
    assert!(
        html.contains(r#"id="code-problem-notifications""#),
        "{html}"
    );
    assert!(!html.contains(r#"id="code-problem-operation_runs""#));

    let cli = tokio::process::Command::new(runledger_binary())
        .arg("projections")
        .env(
            "DATABASE_URL",
            database_url(&api.store.pool.connect_options()),
        )
        .output()
        .await
        .expect("run runledger projections");
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(!cli.status.success(), "it fails: {stderr}");
    assert!(
        stderr.contains("this code cannot lead 1 projection"),
        "{stderr}"
    );
    assert!(
        stderr.contains("notifications: the active version ffffffffffff"),
        "{stderr}"
    );
}
