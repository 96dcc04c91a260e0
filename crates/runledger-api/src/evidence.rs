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
use runledger_wire::audit::{ExportParams, InvalidEvent, RunVerificationBody};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Authorized, needs};
use crate::error::ApiError;
use crate::extract::{Query, RunPath, TenantPath};
use crate::openapi::AUDITOR_ROLE;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify_run_chain))
        .routes(routes!(export_tenant))
}

/// The wire form of an event whose chain does not verify.
fn invalid_event(failure: &RunFailure) -> InvalidEvent {
    InvalidEvent {
        version: failure.version,
        position: failure.position,
        cursor: failure.cursor.to_string(),
        event_id: failure.event_id.as_uuid(),
        reason: failure.reason_code().to_owned(),
        detail: failure.explanation(),
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

/// Verify a run's hash chain.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/runs/{run_id}/verify", tag = "audit",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path)),
    responses((status = 200, body = RunVerificationBody, description = "The run's hash chain, recomputed from its stored events; a broken chain is still a 200, with `valid: false`"),
        (status = 403, description = AUDITOR_ROLE)),
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
        first_invalid: verification.first_invalid.as_ref().map(invalid_event),
    }))
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

/// Export the tenant's log as NDJSON.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/export", tag = "audit",
    params(("tenant_id" = i64, Path), ExportParams),
    responses((status = 200, description = "The tenant's events in safe log order as NDJSON (docs/export-format.md): a header line, one event per line (the `AuditEvent` shape), an end line. A response cut short lacks the end line and does not verify.",
            content_type = "application/x-ndjson", body = String),
        (status = 400, description = "A malformed since or until"), (status = 403, description = AUDITOR_ROLE)),
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
