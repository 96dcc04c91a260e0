//! `ApiError`: every failure a route can answer, rendered as RFC 9457 `application/problem+json`.
//!
//! A handler returns an `ApiError`; its `IntoResponse` puts a [`Problem`] into the response's
//! extensions, and [`render_problems`] (a middleware) writes the body with the request's id and
//! path, and logs the cause of server errors once. Internal error text never reaches a client.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use runledger_core::{Outcome, ParseError, RunRejection, RunStatus};
use runledger_store::{CommandError, HeartbeatError, StoreError};
use serde_json::{Map, Value, json};

/// The media type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A failed request, by what the client can do about it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or an unknown bearer token (401).
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The token's role may not do this (403).
    #[error("the token's role does not allow this")]
    Forbidden,
    /// No such resource for this caller; also what another tenant's resources answer (404).
    #[error("not found")]
    NotFound,
    /// The path exists, but not with this method (405; the router adds `Allow`).
    #[error("the method is not allowed on this path")]
    MethodNotAllowed,
    /// A malformed request: the field (when known) and what is wrong (400).
    #[error("{detail}")]
    BadRequest {
        /// The offending input.
        field: Option<String>,
        /// What is wrong with it.
        detail: String,
    },
    /// The body is larger than the limit (413).
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// A command body that is not labelled `application/json` (415).
    #[error("a command body must be JSON: send it with Content-Type: application/json")]
    UnsupportedMediaType,
    /// The command breaks a rule of the run's lifecycle (409).
    #[error("{detail}")]
    InvalidTransition {
        /// The rule.
        detail: String,
        /// Where the run is.
        current_status: Option<RunStatus>,
    },
    /// A start naming a worker, of a run another worker holds (409): the holder is named.
    #[error("{detail}")]
    HeldByAnotherWorker {
        /// The rule.
        detail: String,
        /// The worker that started the run; `None` when its start named none.
        holder: Option<String>,
    },
    /// A heartbeat of a run that has completed (409): how it ended, so its worker stops.
    #[error("{detail}")]
    RunCompleted {
        /// What happened.
        detail: String,
        /// Its outcome.
        outcome: Outcome,
        /// Why it completed (`finished`, `dispatch_failed`, `timed_out`, `cancelled`).
        completion_reason: Option<&'static str>,
    },
    /// `If-Match` named another version than the run's (412).
    #[error("the run is at version {current_version}")]
    VersionMismatch {
        /// The run's version.
        current_version: u64,
    },
    /// A well-formed request that cannot be processed: counts past the total, a reused
    /// idempotency key with another body (422).
    #[error("{detail}")]
    Unprocessable {
        /// The problem type slug.
        kind: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A read-your-writes wait ran out (503).
    #[error("the projection has not reached position {wanted} yet")]
    ProjectionBehind {
        /// The position the query asked for.
        wanted: i64,
        /// Where the projection is.
        checkpoint: String,
    },
    /// The read models do not exist yet: no projector has built them since the database was
    /// created (503; `serve` builds them at start).
    #[error(
        "the read models have not been built yet; a projector builds them at start, retry shortly"
    )]
    ReadModelNotBuilt,
    /// The database cannot be reached (down, unreachable, or no connection free within the
    /// pool's acquire timeout): nothing was done, and the same request may be retried (503 with
    /// `Retry-After`).
    #[error("the database cannot be reached: nothing was done; retry shortly")]
    DatabaseUnavailable,
    /// The connection to the database was lost while a command committed, and could not be
    /// re-established to learn whether it did (503 with `Retry-After`): retrying with the same
    /// `Idempotency-Key` applies it exactly once.
    #[error(
        "the connection to the database was lost while the command committed: it may or may not have been applied; retry it with the same Idempotency-Key, which applies it once"
    )]
    OutcomeUnknown,
    /// Too many requests from one token, tenant or client address (429 with `Retry-After`).
    #[error("too many requests: {limit}; retry after {retry_after_seconds} s")]
    TooManyRequests {
        /// Which limit was reached, for people (`the token's limit`, …).
        limit: &'static str,
        /// Whole seconds until a request will be accepted again.
        retry_after_seconds: u64,
    },
    /// Anything unexpected (500); the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The parts of a problem body a route decides; the middleware adds `instance` and `request_id`.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    extensions: Map<String, Value>,
    /// The logged cause of a 500.
    cause: Option<String>,
}

impl ApiError {
    /// A 400 naming the field.
    pub fn bad_field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    /// What a page shows of the error: its status, title and detail (never the cause of a 500,
    /// which [`Problem`]'s middleware or the page logs).
    pub(crate) fn for_people(&self) -> (StatusCode, &'static str, String) {
        let problem = self.problem();
        let detail = match problem.extensions.get("field").and_then(Value::as_str) {
            Some(field) => format!("{field}: {}", problem.detail),
            None => problem.detail,
        };
        (problem.status, problem.title, detail)
    }

    fn problem(&self) -> Problem {
        let mut extensions = Map::new();
        let (status, slug, title) = match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::BadRequest { field, .. } => {
                if let Some(field) = field {
                    extensions.insert("field".to_owned(), json!(field));
                }
                (
                    StatusCode::BAD_REQUEST,
                    "invalid-request",
                    "Invalid request",
                )
            }
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::InvalidTransition { current_status, .. } => {
                if let Some(status) = current_status {
                    extensions.insert("current_status".to_owned(), json!(status.as_str()));
                }
                (
                    StatusCode::CONFLICT,
                    "invalid-transition",
                    "Invalid transition",
                )
            }
            ApiError::HeldByAnotherWorker { holder, .. } => {
                extensions.insert("holder".to_owned(), json!(holder));
                (
                    StatusCode::CONFLICT,
                    "held-by-another-worker",
                    "Held by another worker",
                )
            }
            ApiError::RunCompleted {
                outcome,
                completion_reason,
                ..
            } => {
                extensions.insert("current_status".to_owned(), json!("completed"));
                extensions.insert("outcome".to_owned(), json!(outcome.as_str()));
                extensions.insert("completion_reason".to_owned(), json!(completion_reason));
                (StatusCode::CONFLICT, "run-completed", "Run completed")
            }
            ApiError::VersionMismatch { current_version } => {
                extensions.insert("current_version".to_owned(), json!(current_version));
                (
                    StatusCode::PRECONDITION_FAILED,
                    "version-mismatch",
                    "Version mismatch",
                )
            }
            ApiError::Unprocessable { kind, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                *kind,
                "Unprocessable request",
            ),
            ApiError::ProjectionBehind { checkpoint, .. } => {
                extensions.insert("checkpoint".to_owned(), json!(checkpoint));
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "projection-behind",
                    "Projection behind",
                )
            }
            ApiError::ReadModelNotBuilt => (
                StatusCode::SERVICE_UNAVAILABLE,
                "read-model-not-built",
                "Read model not built",
            ),
            ApiError::DatabaseUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "database-unavailable",
                "Database unavailable",
            ),
            ApiError::OutcomeUnknown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "outcome-unknown",
                "Outcome unknown",
            ),
            ApiError::TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many requests",
            ),
            // Whatever wrapped it, a database that cannot be reached is not an internal error.
            ApiError::Internal(error) if caused_by_unavailable_database(error) => {
                return ApiError::DatabaseUnavailable.problem();
            }
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        };
        let cause = match self {
            ApiError::Internal(error) => Some(format!("{error:#}")),
            _ => None,
        };
        Problem {
            status,
            slug,
            title,
            detail: self.to_string(),
            extensions,
            cause,
        }
    }
}

impl ApiError {
    /// Seconds a client should wait before sending the request again, for the answers that say
    /// "later" (429 and 503).
    pub(crate) fn retry_after_seconds(&self, status: StatusCode) -> Option<u64> {
        match self {
            ApiError::TooManyRequests {
                retry_after_seconds,
                ..
            } => Some(*retry_after_seconds),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(RETRY_UNAVAILABLE_SECONDS),
            _ => None,
        }
    }
}

/// What a 503 asks a client to wait: the database's or a projection's outage is expected to be
/// short, and the client's own backoff grows from there.
const RETRY_UNAVAILABLE_SECONDS: u64 = 1;

/// Whether an opaque error was caused by a database that cannot be reached (a pool time-out, a
/// refused or lost connection), wherever in its chain the store's or sqlx's error sits.
fn caused_by_unavailable_database(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(runledger_store::connection_lost)
            || cause
                .downcast_ref::<StoreError>()
                .is_some_and(StoreError::is_unavailable)
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let mut response = problem.status.into_response();
        if let Some(seconds) = self.retry_after_seconds(problem.status) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(problem);
        response
    }
}

impl From<ParseError> for ApiError {
    fn from(error: ParseError) -> Self {
        ApiError::bad_field(error.field, error.reason)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        // Every table but the read models' views is made by the migrations, which run before the
        // server starts: an undefined table is a read model no projector has built yet.
        match &error {
            sqlx::Error::Database(db) if db.code().as_deref() == Some(UNDEFINED_TABLE) => {
                ApiError::ReadModelNotBuilt
            }
            error if runledger_store::connection_lost(error) => ApiError::DatabaseUnavailable,
            _ => ApiError::Internal(error.into()),
        }
    }
}

/// PostgreSQL's SQLSTATE for a relation that does not exist.
const UNDEFINED_TABLE: &str = "42P01";

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::IdempotencyMismatch { .. } => ApiError::Unprocessable {
                kind: "idempotency-key-reused",
                detail: "the idempotency key was used for a different request".to_owned(),
            },
            StoreError::Conflict { actual, .. } => ApiError::VersionMismatch {
                current_version: actual,
            },
            StoreError::OutcomeUnknown => ApiError::OutcomeUnknown,
            error if error.is_unavailable() => ApiError::DatabaseUnavailable,
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Rejected(rejection) => rejection.into(),
            CommandError::Conflict { actual, .. } => ApiError::VersionMismatch {
                current_version: actual,
            },
            CommandError::Store(store) => store.into(),
        }
    }
}

impl From<RunRejection> for ApiError {
    fn from(rejection: RunRejection) -> Self {
        let detail = rejection.to_string();
        match rejection {
            RunRejection::NotFound => ApiError::NotFound,
            RunRejection::InvalidTransition { status, .. } => ApiError::InvalidTransition {
                detail,
                current_status: Some(status),
            },
            RunRejection::HeldByAnotherWorker { holder } => ApiError::HeldByAnotherWorker {
                detail,
                holder: holder.map(String::from),
            },
            RunRejection::AlreadyExists { .. } | RunRejection::NotOverdue { .. } => {
                ApiError::InvalidTransition {
                    detail,
                    current_status: None,
                }
            }
            RunRejection::EmptyProgress
            | RunRejection::TotalDecreased { .. }
            | RunRejection::CountsExceedTotal { .. }
            | RunRejection::CountOverflow
            | RunRejection::CountDecreased { .. }
            | RunRejection::CancelNotRequested
            | RunRejection::OutcomeNotAllowed { .. } => ApiError::Unprocessable {
                kind: "rule-violated",
                detail,
            },
        }
    }
}

impl From<HeartbeatError> for ApiError {
    fn from(error: HeartbeatError) -> Self {
        let detail = error.to_string();
        match error {
            HeartbeatError::NotFound => ApiError::NotFound,
            HeartbeatError::NotStarted => ApiError::InvalidTransition {
                detail,
                current_status: Some(RunStatus::Queued),
            },
            HeartbeatError::Completed { run } => ApiError::RunCompleted {
                detail,
                outcome: run.outcome,
                completion_reason: run.completion.as_ref().map(|reason| reason.as_str()),
            },
            HeartbeatError::Store(store) => store.into(),
        }
    }
}

/// The answer to a path no route serves: the same problem as a missing resource.
pub async fn no_route() -> ApiError {
    ApiError::NotFound
}

/// The answer to a method a path's route does not serve.
pub async fn no_method() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Writes the body of every problem response: the route's [`Problem`] plus the request's path
/// (`instance`) and id; logs the cause of a 500 once, with the request id.
pub async fn render_problems(request: Request, next: Next) -> Response {
    let instance = request.uri().path().to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_default();
    let mut response = next.run(request).await;
    let Some(problem) = response.extensions_mut().remove::<Problem>() else {
        return response;
    };
    if let Some(cause) = &problem.cause {
        tracing::error!(%request_id, %instance, error.cause_chain = %cause, "request failed");
    }
    let mut body = Map::new();
    body.insert(
        "type".to_owned(),
        json!(format!("urn:runledger:problem:{}", problem.slug)),
    );
    body.insert("title".to_owned(), json!(problem.title));
    body.insert("status".to_owned(), json!(problem.status.as_u16()));
    body.insert("detail".to_owned(), json!(problem.detail));
    body.insert("instance".to_owned(), json!(instance));
    body.insert("request_id".to_owned(), json!(request_id));
    body.extend(problem.extensions);
    let mut rendered = (problem.status, axum::Json(Value::Object(body))).into_response();
    rendered
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status, problem slug and `Retry-After` an error answers with.
    fn answer(error: ApiError) -> (StatusCode, &'static str, Option<String>) {
        let response = error.into_response();
        let slug = response
            .extensions()
            .get::<Problem>()
            .map(|problem| problem.slug)
            .unwrap_or_default();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        (response.status(), slug, retry_after)
    }

    fn io_error() -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    }

    #[test]
    fn an_unreachable_database_is_a_503_to_retry_wherever_it_surfaces() {
        let unavailable = (
            StatusCode::SERVICE_UNAVAILABLE,
            "database-unavailable",
            Some("1".to_owned()),
        );
        assert_eq!(answer(sqlx::Error::PoolTimedOut.into()), unavailable);
        assert_eq!(answer(io_error().into()), unavailable);
        assert_eq!(answer(StoreError::Database(io_error()).into()), unavailable);
        assert_eq!(
            answer(CommandError::Store(StoreError::Database(sqlx::Error::PoolClosed)).into()),
            unavailable
        );
        // Wrapped in an opaque error (a projection's, a page's), it is still not a 500.
        let wrapped = anyhow::Error::new(io_error()).context("reading the projections");
        assert_eq!(answer(ApiError::Internal(wrapped)), unavailable);
    }

    #[test]
    fn a_commit_cut_off_is_an_unknown_outcome_to_retry_with_the_same_key() {
        let (status, slug, retry_after) = answer(StoreError::OutcomeUnknown.into());
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(slug, "outcome-unknown");
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert!(
            ApiError::OutcomeUnknown
                .to_string()
                .contains("same Idempotency-Key")
        );
    }

    #[test]
    fn other_failures_stay_internal_and_429_carries_its_own_wait() {
        let other = ApiError::Internal(anyhow::anyhow!("a bug"));
        assert_eq!(
            answer(other),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal", None)
        );
        let limited = ApiError::TooManyRequests {
            limit: "the token's request limit",
            retry_after_seconds: 7,
        };
        assert_eq!(
            answer(limited),
            (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                Some("7".to_owned())
            )
        );
    }
}
