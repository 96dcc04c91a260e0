//! Operational routes: liveness, readiness, Prometheus metrics with request counters, the
//! projections' status, and rebuilds (admin only, 202).

use axum::http::{Method, StatusCode, header};
use serde_json::json;

use super::TestApi;
use super::support::{Call, runs_path};
use crate::helpers::verbs::tenant;

#[tokio::test]
async fn health_and_readiness_need_no_token() {
    let api = TestApi::new().await;

    let health = api
        .send(Call::new(Method::GET, "/healthz", None).build())
        .await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, json!({"status": "ok"}));

    api.project().await;
    let ready = api
        .send(Call::new(Method::GET, "/readyz", None).build())
        .await;
    assert_eq!(ready.status, StatusCode::OK, "{:#}", ready.body);
    assert_eq!(
        ready.body,
        json!({"status": "ready", "checks": {
            "database": "ok",
            "projection:notifications": "ok",
            "projection:operation_runs": "ok",
        }, "projections": {
            "notifications": {"lag_events": 0, "lag_seconds": 0.0},
            "operation_runs": {"lag_events": 0, "lag_seconds": 0.0},
        }})
    );

    // A projection halted at a poison event is reported, but the node still serves commands
    // and reads: it stays ready (docs/adr/0022).
    sqlx::query(
        "UPDATE projection_versions SET halted_position = 1 \
         WHERE projection = 'notifications' AND status = 'active'",
    )
    .execute(&api.store.pool)
    .await
    .unwrap();
    let halted = api
        .send(Call::new(Method::GET, "/readyz", None).build())
        .await;
    assert_eq!(halted.status, StatusCode::OK, "{:#}", halted.body);
    assert_eq!(halted.body["status"], "ready");
    assert_eq!(halted.body["checks"]["projection:notifications"], "halted");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_show_projection_checkpoints() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    api.queue(t, &tokens.writer, "inventory.sync", json!({}))
        .await;
    api.project().await;
    api.get(&runs_path(t), &tokens.reader).await;

    let (status, headers, body) = api
        .send_raw(Call::new(Method::GET, "/metrics", None).build())
        .await;

    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(body.to_vec()).unwrap();
    // Labels come in any order; each counted request shows its route template, never its ids.
    let counted = |method: &str, status: &str| {
        text.lines().any(|line| {
            line.starts_with("runledger_http_requests_total{")
                && line.contains(r#"route="/v1/tenants/{tenant_id}/runs""#)
                && line.contains(&format!(r#"method="{method}""#))
                && line.contains(&format!(r#"status="{status}""#))
        })
    };
    assert!(counted("POST", "201"), "{text}");
    assert!(counted("GET", "200"), "{text}");
    for name in [
        "runledger_http_request_duration_seconds",
        "runledger_commands_total",
        "runledger_projection_checkpoint_position",
        "runledger_projection_lag_events",
    ] {
        assert!(text.contains(name), "{name} in {text}");
    }
    assert!(!text.contains("/v1/tenants/1/"), "raw paths are no labels");
}

#[tokio::test]
async fn projections_show_their_status_and_only_an_admin_rebuilds_one() {
    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(1)).await;
    api.queue(tenant(1), &tokens.writer, "inventory.sync", json!({}))
        .await;
    api.project().await;

    let listed = api.get("/v1/projections", &tokens.reader).await;
    assert_eq!(listed.status, StatusCode::OK);
    let projections = listed.body["projections"].as_array().unwrap();
    let names: Vec<&str> = projections
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["notifications", "operation_runs"]);
    let runs = &projections[1];
    // No projector leads it between the test's catch-ups.
    assert_eq!(runs["state"], "stopped");
    assert_eq!(runs["active"]["events_applied"], 1);
    assert_eq!(runs["active"]["lag_events"], 0);
    assert_eq!(runs["rebuild"], serde_json::Value::Null);

    let rebuild = "/v1/projections/operation_runs/rebuild";
    api.post(rebuild, &tokens.writer, &json!({}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, None);
    let started = api.post(rebuild, &tokens.admin, &json!({})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{:#}", started.body);
    assert_eq!(started.body["created"], true);
    let again = api.post(rebuild, &tokens.admin, &json!({})).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.body["created"], false, "the rebuild under way");
    assert_eq!(again.body["generation"], started.body["generation"]);
    let rebuilding = api.get("/v1/projections", &tokens.reader).await;
    assert_eq!(rebuilding.body["projections"][1]["state"], "rebuilding");

    api.post(
        "/v1/projections/no_such_thing/rebuild",
        &tokens.admin,
        &json!({}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, None);
}
