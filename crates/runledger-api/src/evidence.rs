//! Evidence routes (auditor role): a run's hash chain verified by the server, and the tenant's
//! log exported as NDJSON (the format of `runledger export`, which verifies offline).
//!
//! Both read the event log itself through `runledger_audit`, the code the CLI runs, so an
//! auditor gets the same answer over HTTP as from `runledger verify` and `runledger export`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use runledger_audit::export::export;
use runledger_audit::format::NDJSON;
use runledger_audit::verify::{RunFailure, verify_run};
use runledger_audit::{AuditError, LogBound, Scope};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Authorized, needs};
use crate::error::ApiError;
use crate::extract::{Query, RunPath, TenantPath};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify_run_chain))
        .routes(routes!(export_tenant))
}

/// A run's chain, verified.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunVerificationBody {
    /// Whether every event of the run verifies.
    pub valid: bool,
    /// How many events were checked.
    pub events_checked: u64,
    /// The first event that does not verify, in log order.
    pub first_invalid: Option<InvalidEvent>,
}

/// An event whose stored hash chain does not verify.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvalidEvent {
    /// Its version.
    pub version: u64,
    /// Its position.
    pub position: i64,
    /// Its place in the log (`tx_id.position`).
    pub cursor: String,
    /// Its id.
    pub event_id: Uuid,
    /// `hash_mismatch` (a stored field changed), `broken_link` (an event before it was
    /// replaced), `version_gap` (an event is missing) or `order_changed`.
    pub reason: String,
    /// The reason, for people.
    pub detail: String,
}

impl From<&RunFailure> for InvalidEvent {
    fn from(failure: &RunFailure) -> Self {
        InvalidEvent {
            version: failure.version,
            position: failure.position,
            cursor: failure.cursor.to_string(),
            event_id: failure.event_id.as_uuid(),
            reason: failure.reason_code().to_owned(),
            detail: failure.explanation(),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(error: AuditError) -> Self {
        match error {
            AuditError::Store(error) => error.into(),
            other => ApiError::Internal(other.into()),
        }
    }
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/runs/{run_id}/verify", tag = "audit",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path)),
    responses((status = 200, body = RunVerificationBody, description = "The run's hash chain, recomputed from its stored events; a broken chain is still a 200, with `valid: false`"),
        (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
async fn verify_run_chain(
    State(state): State<AppState>,
    Authorized { path, .. }: Authorized<RunPath, needs::Auditor>,
) -> Result<Json<RunVerificationBody>, ApiError> {
    let verification = verify_run(&state.reader, path.tenant_id, path.run_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(RunVerificationBody {
        valid: verification.first_invalid.is_none(),
        events_checked: verification.events_checked,
        first_invalid: verification.first_invalid.as_ref().map(InvalidEvent::from),
    }))
}

/// `GET /v1/tenants/{tenant_id}/export` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Only events after this log cursor (`tx_id.position`), or recorded at or after this time
    /// (RFC 3339). Runs then start mid-chain; anchors cannot be checked against the export.
    pub since: Option<String>,
    /// Only events up to this log cursor, or recorded at or before this time.
    pub until: Option<String>,
}

fn parse_bound(field: &'static str, text: Option<&str>) -> Result<Option<LogBound>, ApiError> {
    text.map(|text| {
        text.parse()
            .map_err(|error: runledger_audit::format::InvalidBound| {
                ApiError::bad_field(field, error.to_string())
            })
    })
    .transpose()
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/export", tag = "audit",
    params(("tenant_id" = i64, Path), ExportParams),
    responses((status = 200, description = "The tenant's events in safe log order as NDJSON (docs/export-format.md): a header line, one event per line (the `AuditEvent` shape), an end line. A response cut short lacks the end line and does not verify.",
            content_type = "application/x-ndjson", body = String),
        (status = 400, description = "A malformed since or until"), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
async fn export_tenant(
    State(state): State<AppState>,
    Authorized {
        path: TenantPath { tenant_id },
        ..
    }: Authorized<TenantPath, needs::Auditor>,
    Query(params): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let scope = Scope {
        tenant_id: Some(tenant_id),
        run_id: None,
        since: parse_bound("since", params.since.as_deref())?,
        until: parse_bound("until", params.until.as_deref())?,
    };
    let chunks = export(state.reader.clone(), scope).await?;
    let body = chunks.map(|chunk| {
        chunk.map(|chunk| chunk.text).inspect_err(|error| {
            // The response is already under way: it ends without its end line, so the client's
            // verification fails rather than trusting a partial export.
            tracing::error!(error.cause_chain = ?error, error.message = %error, "export failed");
        })
    });
    Ok(([(header::CONTENT_TYPE, NDJSON)], Body::from_stream(body)).into_response())
}
