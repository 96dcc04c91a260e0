//! Projection operations: `GET /v1/projections` (any token: it shows no tenant's data) and
//! `POST /v1/projections/{name}/rebuild` (admin).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use runledger_projections::{
    ProjectionError, ProjectionStatus, ProjectionsConfig, RebuildStarted, VersionProgress, rebuild,
    statuses_of_code,
};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::openapi::ADMIN_ROLE;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_projections))
        .routes(routes!(rebuild_projection))
}

fn internal(error: ProjectionError) -> ApiError {
    ApiError::Internal(error.into())
}

fn version_json(progress: &VersionProgress) -> Value {
    let version = &progress.version;
    json!({
        "fingerprint": version.fingerprint,
        "generation": version.generation,
        "schema": version.schema_name,
        "status": version.status.as_str(),
        "checkpoint": version.checkpoint.to_string(),
        "events_applied": version.events_applied,
        "events_skipped": version.events_skipped,
        "halted_position": version.halted_position,
        "lag_events": progress.lag_events,
        "lag_seconds": progress.lag_seconds,
        "led": progress.led,
    })
}

/// The JSON of a projection's status: the route's and `runledger projections --json`'s.
pub fn status_json(status: &ProjectionStatus) -> Value {
    json!({
        "name": status.name,
        "state": status.state.as_str(),
        "active": version_json(&status.active),
        "rebuild": status.rebuild.as_ref().map(|r| json!({
            "version": version_json(&r.progress),
            "percent": r.percent,
            "events_per_second": r.events_per_second,
            "eta_seconds": r.eta_seconds,
        })),
        "last_error": status.last_error,
        // Where this process's code stands: an error when it cannot lead the projection.
        "this_code": status.this_code.as_ref().map(|standing| json!({
            "standing": standing.as_str(),
            "fingerprint": status.this_code_fingerprint,
            "can_lead": standing.can_lead(),
            "error": status.code_problem(),
        })),
    })
}

/// Every installed projection's status, with where this process's code stands with each: the
/// route's, the page's and the metrics' one source.
pub(crate) async fn statuses_here(
    state: &AppState,
) -> Result<Vec<ProjectionStatus>, ProjectionError> {
    let code = ProjectionsConfig::default().definitions(&state.pool);
    statuses_of_code(&state.pool, &code).await
}

/// The projections' status.
#[utoipa::path(get, path = "/v1/projections", tag = "operations",
    responses((status = 200, body = Object, description = "`{projections: [...]}`: state, active version, checkpoint, lag, rebuild progress, last error, and `this_code`: whether this server's code can lead it (`error` when it cannot)")),
    security(("bearer" = [])))]
pub(crate) async fn list_projections(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let all = statuses_here(&state).await.map_err(internal)?;
    Ok(Json(
        json!({ "projections": all.iter().map(status_json).collect::<Vec<_>>() }),
    ))
}

/// Rebuild a projection beside the active version.
#[utoipa::path(post, path = "/v1/projections/{name}/rebuild", tag = "operations",
    params(("name" = String, Path, description = "operation_runs or notifications")),
    responses((status = 202, body = Object, description = "The rebuild (new, or the one already under way)"), (status = 403, description = ADMIN_ROLE)),
    security(("bearer" = [])))]
pub(crate) async fn rebuild_projection(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if caller.role != Role::Admin {
        return Err(ApiError::Forbidden);
    }
    let started = start_rebuild(&state, &name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "name": name,
            "created": started.created,
            "fingerprint": started.version.fingerprint,
            "generation": started.version.generation,
        })),
    ))
}

/// Starts a rebuild of the projection `name` (or finds the one under way): the route's work,
/// which the projections page shares. The caller has checked the admin role.
pub(crate) async fn start_rebuild(
    state: &AppState,
    name: &str,
) -> Result<RebuildStarted, ApiError> {
    let definition = match ProjectionsConfig::default().definition(&state.pool, name) {
        Ok(definition) => definition,
        Err(ProjectionError::UnknownProjection(_)) => return Err(ApiError::NotFound),
        Err(other) => return Err(internal(other)),
    };
    rebuild(&state.pool, &definition).await.map_err(internal)
}
