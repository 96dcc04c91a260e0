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
    responses((status = 200, body = Object, description = "Ready: the database answers, no projection is halted or far behind"), (status = 503, body = Object, description = "Not ready, with the failing check")))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let projections = match runledger_projections::statuses(&state.pool).await {
        Ok(projections) => projections,
        Err(error) => {
            tracing::warn!(%error, "readiness: database unreachable");
            let body = json!({ "status": "not ready", "checks": { "database": "unreachable" } });
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
    };
    let mut ready = true;
    let mut checks = serde_json::Map::new();
    checks.insert("database".to_owned(), json!("ok"));
    for projection in &projections {
        let lag = &projection.active;
        let verdict = if projection.state == ProjectionState::Halted {
            "halted"
        } else if lag.lag_events > MAX_READY_LAG_EVENTS || lag.lag_seconds > MAX_READY_LAG_SECONDS {
            "lagging"
        } else {
            "ok"
        };
        ready &= verdict == "ok";
        checks.insert(format!("projection:{}", projection.name), json!(verdict));
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if ready { "ready" } else { "not ready" }, "checks": checks });
    (status, Json(body)).into_response()
}

/// A projection further behind than this makes the process not ready.
const MAX_READY_LAG_EVENTS: i64 = 10_000;
/// A projection whose oldest unapplied event is older than this makes the process not ready.
const MAX_READY_LAG_SECONDS: f64 = 30.0;

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
    let projections = runledger_projections::statuses(&state.pool)
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
