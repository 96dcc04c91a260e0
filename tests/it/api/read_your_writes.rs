//! Read-your-writes: a query with `min_position` (the `position` a command answered) waits until
//! the projector has passed it, and answers 503 `projection-behind` when no projector gets there;
//! before any projector has built the read models, queries answer 503 `read-model-not-built`.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;

use super::TestApi;
use super::support::{run_path, runs_path};
use crate::helpers::verbs::tenant;

#[tokio::test]
async fn a_query_with_min_position_sees_the_write_once_the_projector_passes_it() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    let live = api.project_live();

    for i in 0..3 {
        let queued = api
            .post(
                &runs_path(t),
                &tokens.writer,
                &json!({"type": "inventory.sync", "identity": {"i": i}}),
            )
            .await;
        let id = queued.body["run"]["id"].as_str().unwrap().to_owned();
        let position = &queued.body["position"];
        let shown = api
            .get(
                &format!("{}?min_position={position}", run_path(t, &id, "")),
                &tokens.reader,
            )
            .await;
        assert_eq!(shown.status, StatusCode::OK, "{:#}", shown.body);
        assert_eq!(shown.body["id"], id.as_str());

        let started = api
            .post(&run_path(t, &id, "/start"), &tokens.writer, &json!({}))
            .await;
        let position = &started.body["position"];
        let listed = api
            .get(
                &format!("{}?min_position={position}", runs_path(t)),
                &tokens.reader,
            )
            .await;
        assert_eq!(listed.body["runs"][0]["id"], id.as_str());
        assert_eq!(listed.body["runs"][0]["status"], "running");
        let counted = api
            .get(
                &format!("/v1/tenants/{t}/runs:count?group_by=status&min_position={position}"),
                &tokens.reader,
            )
            .await;
        assert_eq!(
            counted.body["groups"],
            json!([{"status": "running", "count": i + 1}])
        );
    }
    live.stop().await;
}

#[tokio::test]
async fn without_a_projector_min_position_is_503_projection_behind_with_the_checkpoint() {
    let mut api = TestApi::new().await;
    let wait = Duration::from_millis(300);
    api.reconfigure(|config| config.max_read_wait = wait);
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    let id = api
        .queue(t, &tokens.writer, "inventory.sync", json!({}))
        .await;
    api.project().await;
    let checkpoint: String = sqlx::query_scalar(
        "SELECT checkpoint_tx_id || '.' || checkpoint_position FROM projection_versions \
         WHERE projection = 'operation_runs' AND status = 'active'",
    )
    .fetch_one(&api.store.pool)
    .await
    .unwrap();

    // Written after the projector stopped: no one will project it.
    let started = api
        .post(&run_path(t, &id, "/start"), &tokens.writer, &json!({}))
        .await;
    let position = started.body["position"].as_i64().unwrap();
    for path in [
        run_path(t, &id, ""),
        runs_path(t),
        format!("/v1/tenants/{t}/runs:count"),
    ] {
        let asked = Instant::now();
        let answer = api
            .get(&format!("{path}?min_position={position}"), &tokens.reader)
            .await;
        assert!(asked.elapsed() >= wait, "it waited before giving up");
        let problem = answer.assert_problem(StatusCode::SERVICE_UNAVAILABLE, None);
        assert_eq!(problem["type"], "urn:runledger:problem:projection-behind");
        assert_eq!(problem["checkpoint"], checkpoint);
    }
    // Positions the projector has passed answer at once.
    let queued_at = api
        .get(
            &format!("{}?min_position=1", run_path(t, &id, "")),
            &tokens.reader,
        )
        .await;
    assert_eq!(queued_at.status, StatusCode::OK);
    assert_eq!(
        queued_at.body["status"], "queued",
        "the read model as it stands"
    );
}

#[tokio::test]
async fn before_any_projector_has_run_queries_are_503_read_model_not_built() {
    let (api, tokens, id) = TestApi::with_queued_run().await;
    let t = tenant(1);
    for path in [
        run_path(t, &id, ""),
        runs_path(t),
        format!("/v1/tenants/{t}/runs:count"),
        "/v1/notifications".to_owned(),
    ] {
        let token = if path.starts_with("/v1/notifications") {
            api.user_token(t, runledger_api::auth::Role::Reader, 7)
                .await
        } else {
            tokens.reader.clone()
        };
        let answer = api.get(&path, &token).await;
        let problem = answer.assert_problem(StatusCode::SERVICE_UNAVAILABLE, None);
        assert_eq!(
            problem["type"], "urn:runledger:problem:read-model-not-built",
            "{path}"
        );
    }
    api.project().await;
    assert_eq!(
        api.get(&run_path(t, &id, ""), &tokens.reader).await.status,
        StatusCode::OK
    );
}
