//! Operational routes: liveness, readiness, Prometheus metrics and the OpenAPI document.
//! They need no token: they reveal no tenant's data.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use runledger_projections::ProjectionState;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Object, description = "The process is up: `{\"status\": \"ok\"}`")))]
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: whether this process can serve.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Object, description = "Ready: the database answers within the bound; each projection's state and lag are in the body (a lagging or halted read model does not make the node unready)"), (status = 503, body = Object, description = "Not ready: the database (and with it the command path) cannot be reached within the bound")))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    // Bounded: a load balancer asks often and must learn "not ready" quickly, not after the
    // pool's acquire timeout or a TCP time-out.
    let projections = match tokio::time::timeout(
        READINESS_BOUND,
        runledger_projections::statuses(&state.pool),
    )
    .await
    {
        Ok(Ok(projections)) => projections,
        Ok(Err(error)) => return not_ready(&error.to_string()),
        Err(_) => return not_ready("no answer within the readiness bound"),
    };
    let mut checks = serde_json::Map::new();
    let mut lags = serde_json::Map::new();
    checks.insert("database".to_owned(), json!("ok"));
    for projection in &projections {
        let lag = &projection.active;
        let verdict = if projection.state == ProjectionState::Halted {
            "halted"
        } else if lag.lag_events > MAX_CURRENT_LAG_EVENTS
            || lag.lag_seconds > MAX_CURRENT_LAG_SECONDS
        {
            "lagging"
        } else {
            "ok"
        };
        checks.insert(format!("projection:{}", projection.name), json!(verdict));
        lags.insert(
            projection.name.clone(),
            json!({ "lag_events": lag.lag_events, "lag_seconds": lag.lag_seconds }),
        );
    }
    // Commands and every read but the freshest still work while a read model lags or halts:
    // the node stays in rotation, and says so in the body (and `/metrics`, `runledger
    // projections`); taking every node out would turn one read model's lag into an outage.
    let body = json!({ "status": "ready", "checks": checks, "projections": lags });
    (StatusCode::OK, Json(body)).into_response()
}

/// The 503 of a node whose database (and so command path) cannot be reached.
fn not_ready(cause: &str) -> Response {
    tracing::warn!(cause, "readiness: database unreachable");
    let body = json!({ "status": "not ready", "checks": { "database": "unreachable" } });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(1u64));
    response
}

/// The longest `/readyz` waits for the database before it answers 503.
const READINESS_BOUND: std::time::Duration = std::time::Duration::from_millis(800);
/// A projection further behind than this is reported `lagging`.
const MAX_CURRENT_LAG_EVENTS: i64 = 10_000;
/// A projection whose oldest unapplied event is older than this is reported `lagging`.
const MAX_CURRENT_LAG_SECONDS: f64 = 30.0;

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String), (status = 500)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let oldest_writer: Option<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM now() - min(xact_start))::float8 FROM pg_stat_activity WHERE backend_xid IS NOT NULL",
    )
    .fetch_one(&state.pool)
    .await?;
    metrics::gauge!("runledger_oldest_writer_transaction_seconds")
        .set(oldest_writer.unwrap_or(0.0));
    let projections = crate::projections::statuses_here(&state)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    for projection in projections {
        let labels = [("projection", projection.name.clone())];
        metrics::gauge!("runledger_projection_lag_events", &labels)
            .set(projection.active.lag_events as f64);
        metrics::gauge!("runledger_projection_lag_seconds", &labels)
            .set(projection.active.lag_seconds);
        metrics::gauge!("runledger_projection_checkpoint_position", &labels)
            .set(projection.active.version.checkpoint.position as f64);
        metrics::gauge!("runledger_projection_halted", &labels).set(f64::from(u8::from(
            projection.state == ProjectionState::Halted,
        )));
        // 0 when this process's code cannot lead the projection (its version was replaced, or
        // the active one is not its own): the alert of a fork, beside the lag it causes.
        if let Some(standing) = &projection.this_code {
            metrics::gauge!("runledger_projection_this_code_can_lead", &labels)
                .set(f64::from(u8::from(standing.can_lead())));
        }
    }
    let body = crate::metrics::handle().map_or_else(
        || "# metrics recorder unavailable\n".to_owned(),
        |h| h.render(),
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, body = Object, description = "This document")))]
pub(crate) async fn openapi(
    Extension(document): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<Arc<utoipa::openapi::OpenApi>> {
    Json(document)
}
