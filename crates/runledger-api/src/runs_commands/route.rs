//! What every command route receives, read from the request in one extractor: the caller,
//! authorized for the tenant the path names before anything else of the request is read, then
//! the parsed body and the headers every command shares (`Idempotency-Key`, `If-Match`,
//! correlation and request ids).

use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::HeaderMap;
use runledger_store::{EventMetadata, ExpectedVersion};
use serde::de::DeserializeOwned;

use super::execution::CommandContext;
use crate::AppState;
use crate::auth::{Authorized, needs};
use crate::error::ApiError;
use crate::extract::{CommandBody, TenantScoped};
use crate::idempotency::Idempotency;

/// A command route's request: the route's ids (`P`: [`TenantPath`] or [`RunPath`]), its parsed
/// body (`B`), and the context every command shares.
///
/// [`TenantPath`]: crate::extract::TenantPath
/// [`RunPath`]: crate::extract::RunPath
pub(crate) struct CommandRoute<P, B> {
    /// The ids the route names.
    pub(crate) path: P,
    /// The parsed JSON body.
    pub(crate) body: B,
    /// Who asks, how to answer retries, the expected version and the event metadata.
    pub(crate) context: CommandContext,
}

impl<P, B> FromRequest<AppState> for CommandRoute<P, B>
where
    P: FromRequestParts<AppState, Rejection = ApiError> + TenantScoped + Send,
    B: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        // The caller authorized first (401, 400 for the path's ids, 404, 403), and only then
        // the body (400, 413) and the headers (400).
        let (mut parts, body) = request.into_parts();
        let Authorized { caller, path, .. } =
            Authorized::<P, needs::Writer>::from_request_parts(&mut parts, state).await?;
        let tenant = path.tenant_id();
        let OriginalUri(uri) = OriginalUri::from_request_parts(&mut parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        let method = parts.method.clone();
        let headers = parts.headers.clone();
        let body = CommandBody::<B>::from_request(Request::from_parts(parts, body), state).await?;
        let idempotency =
            Idempotency::from_request(tenant, &headers, &method, uri.path(), &body.bytes)?;
        let expected = match headers.get("if-match") {
            None => ExpectedVersion::Any,
            Some(value) => ExpectedVersion::Exact(parse_etag(value.to_str().ok())?),
        };
        let metadata = EventMetadata {
            actor: caller.actor(),
            correlation_id: header_uuid(&headers, "x-correlation-id")?,
            causation_id: None,
            request_id: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };
        Ok(Self {
            path,
            body: body.value,
            context: CommandContext {
                state: state.clone(),
                caller,
                tenant,
                idempotency,
                expected,
                metadata,
            },
        })
    }
}

/// Parses an `If-Match` value: a version as an entity tag, `"3"` (or `W/"3"`, or bare `3`), or
/// a run's whole entity tag, `"3-1790000000123456"`, whose heartbeat part it ignores (the
/// version is what a command expects).
fn parse_etag(value: Option<&str>) -> Result<u64, ApiError> {
    value
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .map(|v| v.split_once('-').map_or(v, |(version, _heartbeat)| version))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::bad_field(
                "If-Match",
                "must be the run's version as an entity tag, e.g. \"3\"",
            )
        })
}

fn header_uuid(headers: &HeaderMap, name: &'static str) -> Result<Option<uuid::Uuid>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| ApiError::bad_field(name, "must be a UUID"))
        })
        .transpose()
}
