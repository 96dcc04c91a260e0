//! Extractors whose rejections are problems: command bodies, query strings and path ids.
//!
//! axum's own rejections answer `text/plain`; these wrap them so every bad input gets a
//! `application/problem+json` 4xx that names what is wrong.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use runledger_core::{RunId, TenantId};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A query string; repeated keys fill `Vec` fields (`?outcome=failed&outcome=succeeded`).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_html_form::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|error| {
                // An unknown parameter is a mistake in the query as a whole (the detail names
                // it); a malformed value names its parameter.
                let field = failed_field(&error)
                    .filter(|_| !is_unknown_field(&error))
                    .unwrap_or_else(|| "query".to_owned());
                ApiError::bad_field(field, format!("invalid query string: {}", error.inner()))
            })
    }
}

/// The input a deserialization error is about: the path of the value that failed, or for a
/// missing field (which serde reports at its parent) the field itself; `None` when the input
/// is not even well-formed.
fn failed_field<E: std::fmt::Display>(error: &serde_path_to_error::Error<E>) -> Option<String> {
    let path = error.path().to_string();
    // serde's own wording, `missing field `name``: the one place the name is given.
    let message = error.inner().to_string();
    if let Some(missing) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        return Some(if path == "." {
            missing.to_owned()
        } else {
            format!("{path}.{missing}")
        });
    }
    (path != "." && path != "?").then_some(path)
}

/// Whether serde refused a field `deny_unknown_fields` does not know (serde's own wording).
fn is_unknown_field<E: std::fmt::Display>(error: &serde_path_to_error::Error<E>) -> bool {
    error.inner().to_string().starts_with("unknown field `")
}

/// `/v1/tenants/{tenant_id}/…` path parameters, parsed into domain ids.
#[derive(Debug, Clone, Copy)]
pub struct TenantPath {
    /// The tenant the route names.
    pub tenant_id: TenantId,
}

/// `/v1/tenants/{tenant_id}/runs/{run_id}/…` path parameters, parsed into domain ids.
#[derive(Debug, Clone, Copy)]
pub struct RunPath {
    /// The tenant the route names.
    pub tenant_id: TenantId,
    /// The run the route names.
    pub run_id: RunId,
}

/// Path parameters that name a tenant: what a command is authorized against.
pub trait TenantScoped {
    /// The tenant the route names.
    fn tenant_id(&self) -> TenantId;
}

impl TenantScoped for TenantPath {
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
}

impl TenantScoped for RunPath {
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
}

async fn path_params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<Vec<(String, String)>, ApiError> {
    axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
        .await
        .map(|axum::extract::Path(params)| params)
        .map_err(|rejection: PathRejection| ApiError::bad_field("path", rejection.body_text()))
}

fn param<T: std::str::FromStr<Err = runledger_core::ParseError>>(
    params: &[(String, String)],
    name: &'static str,
) -> Result<T, ApiError> {
    let value = params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
        .ok_or_else(|| ApiError::bad_field(name, "missing path parameter"))?;
    value.parse().map_err(ApiError::from)
}

impl<S: Send + Sync> FromRequestParts<S> for TenantPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        Ok(TenantPath {
            tenant_id: param(&params, "tenant_id")?,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RunPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        Ok(RunPath {
            tenant_id: param(&params, "tenant_id")?,
            run_id: param(&params, "run_id")?,
        })
    }
}

/// A JSON command body, kept with its raw bytes (for idempotency hashing); an empty body reads
/// as `{}`. A body that is not labelled JSON (`application/json`, or an `application/*+json`
/// type) is refused with 415, a missing `Content-Type` included: only an empty body may go
/// without one.
#[derive(Debug)]
pub struct CommandBody<T> {
    /// The parsed body.
    pub value: T,
    /// The raw bytes.
    pub bytes: axum::body::Bytes,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for CommandBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let labelled_json = is_json_media_type(request.headers().get(header::CONTENT_TYPE));
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest {
                        field: None,
                        detail: rejection.body_text(),
                    }
                }
            })?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else if !labelled_json {
            return Err(ApiError::UnsupportedMediaType);
        } else {
            &bytes
        };
        let mut deserializer = serde_json::Deserializer::from_slice(text);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            ApiError::BadRequest {
                field: failed_field(&error),
                detail: format!("invalid JSON body: {}", error.inner()),
            }
        })?;
        // Trailing bytes after the value (`{} {}`) are as malformed as a missing brace.
        deserializer.end().map_err(|error| ApiError::BadRequest {
            field: None,
            detail: format!("invalid JSON body: {error}"),
        })?;
        Ok(CommandBody { value, bytes })
    }
}

/// Whether a `Content-Type` names JSON: `application/json` or a structured `application/*+json`
/// type (parameters such as `charset` allowed), in any letter case.
fn is_json_media_type(content_type: Option<&HeaderValue>) -> bool {
    let Some(essence) = content_type
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
    else {
        return false;
    };
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}
