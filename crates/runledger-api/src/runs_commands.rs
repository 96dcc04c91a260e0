//! Command routes (writer role): queue, start, progress, complete, dispatch-failed.
//!
//! Each route parses its body into a domain command (parse, don't validate), runs it through
//! the store's command path, and answers the run as it stands after the command. Conditional
//! requests (`If-Match`) pin the version; `Idempotency-Key` makes retries safe.

use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use runledger_core::{
    Complete, DispatchFailed, FailureCode, FailureReport, Initiator, Outcome, ProgressDelta,
    QueueRun, ReportProgress, RunCommand, RunId, RunIdentity, RunType, Start, TenantId, UserId,
};
use runledger_store::{
    CommandError, CommandOutcome, CommandRequest, EventMetadata, ExpectedVersion, StoreError,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{CommandBody, RunPath, TenantPath, TenantScoped};
use crate::idempotency::Idempotency;
use crate::run_json::run_json;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant_id}/runs", post(queue_run))
        .route(
            "/v1/tenants/{tenant_id}/runs/{run_id}/start",
            post(start_run),
        )
        .route(
            "/v1/tenants/{tenant_id}/runs/{run_id}/progress",
            post(report_progress),
        )
        .route(
            "/v1/tenants/{tenant_id}/runs/{run_id}/complete",
            post(complete_run),
        )
        .route(
            "/v1/tenants/{tenant_id}/runs/{run_id}/dispatch-failed",
            post(dispatch_failed),
        )
}

/// The longest failure message accepted before sanitizing (it is stored at most 500 characters).
const MAX_RAW_MESSAGE: usize = 4096;
/// The largest accepted `context`, in bytes of JSON.
const MAX_CONTEXT_BYTES: usize = 32 * 1024;
/// How long a send that lost a race to a concurrent send of its idempotency key waits for the
/// first answer to be remembered.
const FIRST_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `POST /v1/tenants/{tenant_id}/runs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueRunBody {
    /// The run type, e.g. `inventory.sync`.
    #[serde(rename = "type")]
    pub run_type: String,
    /// Identity inputs (any JSON); default `{}`: one active run per tenant and type.
    #[serde(default)]
    pub identity: Option<Value>,
    /// Run-specific metadata (a JSON object).
    #[serde(default)]
    pub context: Option<Value>,
    /// Who starts it; default "System".
    #[serde(default)]
    pub initiator: Option<InitiatorBody>,
}

/// The initiator of a queued run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitiatorBody {
    /// The user's id.
    pub user_id: Option<i64>,
    /// The user's name, as it should be remembered.
    pub name: Option<String>,
}

/// `POST …/progress`: increments since the reporter's last report.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressBody {
    /// Items that succeeded.
    #[serde(default)]
    pub success: u64,
    /// Items that failed.
    #[serde(default)]
    pub failed: u64,
    /// Items skipped.
    #[serde(default)]
    pub skipped: u64,
    /// Sets or raises the total.
    pub total: Option<u64>,
    /// Failures to merge into the summary.
    #[serde(default)]
    pub failures: Vec<FailureBody>,
}

/// One failure entry of a progress report.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailureBody {
    /// A stable code, e.g. `graph.throttled`.
    pub code: String,
    /// What went wrong (secrets are stripped before it is stored).
    pub message: String,
    /// How many items failed this way (default 1).
    pub count: Option<u64>,
}

/// `POST …/complete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// `succeeded`, `partially_succeeded` or `failed`; derived from the counts when absent.
    pub outcome: Option<String>,
}

/// `POST …/dispatch-failed`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchFailedBody {
    /// A stable failure code.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// `POST …/start` takes no fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {}

/// What every command route receives, read in one extractor so each handler states only what
/// is its own: the route's ids (`P`: [`TenantPath`] or [`RunPath`]), its parsed body (`B`), and
/// the context every command shares.
pub(crate) struct CommandRoute<P, B> {
    /// The ids the route names.
    path: P,
    /// The parsed JSON body.
    body: B,
    /// Who asks, how to answer retries, the expected version and the event metadata.
    context: CommandContext,
}

impl<P, B> FromRequest<AppState> for CommandRoute<P, B>
where
    P: FromRequestParts<AppState, Rejection = ApiError> + TenantScoped + Send,
    B: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        // The checks run in the order the handlers' separate extractors ran them, so a request
        // with several faults gets the same problem as before: the token (401), the path (400),
        // the body (400, 413), then the tenant and role (404, 403) and the headers (400).
        let (mut parts, body) = request.into_parts();
        let caller = Caller::from_request_parts(&mut parts, state).await?;
        let path = P::from_request_parts(&mut parts, state).await?;
        let OriginalUri(uri) = OriginalUri::from_request_parts(&mut parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        let method = parts.method.clone();
        let headers = parts.headers.clone();
        let body = CommandBody::<B>::from_request(Request::from_parts(parts, body), state).await?;
        let context = CommandContext::new(
            state.clone(),
            caller,
            path.tenant_id(),
            (&method, uri.path(), &headers),
            &body,
        )?;
        Ok(Self {
            path,
            body: body.value,
            context,
        })
    }
}

/// Everything a command route shares: who asks, about what, and how to answer retries.
struct CommandContext {
    state: AppState,
    caller: Caller,
    tenant: TenantId,
    idempotency: Idempotency,
    expected: ExpectedVersion,
    metadata: EventMetadata,
}

impl CommandContext {
    fn new<T>(
        state: AppState,
        caller: Caller,
        tenant: TenantId,
        (method, uri, headers): (&Method, &str, &HeaderMap),
        body: &CommandBody<T>,
    ) -> Result<Self, ApiError> {
        caller.authorize(tenant, Role::Writer)?;
        let idempotency = Idempotency::from_request(tenant, headers, method, uri, &body.bytes)?;
        let expected = match headers.get("if-match") {
            None => ExpectedVersion::Any,
            Some(value) => ExpectedVersion::Exact(parse_etag(value.to_str().ok())?),
        };
        let metadata = EventMetadata {
            actor: caller.actor(),
            correlation_id: header_uuid(headers, "x-correlation-id")?,
            causation_id: None,
            request_id: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };
        Ok(Self {
            state,
            caller,
            tenant,
            idempotency,
            expected,
            metadata,
        })
    }

    /// Runs `command` on `run` (or answers a retry from memory) and renders the answer.
    async fn execute(self, run: RunId, command: RunCommand) -> Result<Response, ApiError> {
        if let Some((status, body)) = self.idempotency.recall(&self.state.pool).await? {
            return Ok((status, Json(body)).into_response());
        }
        let queues = matches!(command, RunCommand::Queue(_));
        let request = CommandRequest {
            tenant_id: self.tenant,
            run_id: run,
            command,
            expected: self.expected,
            event_id: self.idempotency.event_id(),
            metadata: self.metadata,
        };
        let started = std::time::Instant::now();
        let mut executed = self.state.commands.execute(&request).await;
        if self.idempotency.is_keyed()
            && matches!(
                executed,
                Err(CommandError::Store(StoreError::IdempotencyMismatch { .. }))
            )
        {
            // A concurrent send of this key appended first. Its event holds its own clock
            // reading, so the store saw other content under the key's event id. That send
            // remembers its answer a moment later: answer with it (or 422 if its body was
            // another). If it never does (it died after appending), executing again finds its
            // event and answers from it.
            if let Some((status, body)) = self
                .idempotency
                .recall_within(&self.state.pool, FIRST_ANSWER_WAIT)
                .await?
            {
                return Ok((status, Json(body)).into_response());
            }
            executed = self.state.commands.execute(&request).await;
        }
        let result = match &executed {
            Ok(CommandOutcome::Applied { .. }) => "applied",
            Ok(CommandOutcome::Deduplicated { .. }) => "deduplicated",
            Err(CommandError::Conflict { .. }) => "conflict",
            Err(CommandError::Rejected(_)) => "rejected",
            Err(CommandError::Store(_)) => "error",
        };
        let kind = request.command.kind().as_str();
        metrics::counter!("runledger_commands_total", "command" => kind, "result" => result)
            .increment(1);
        metrics::histogram!("runledger_command_duration_seconds", "command" => kind)
            .record(started.elapsed().as_secs_f64());
        let (status, body) = match executed? {
            CommandOutcome::Applied { run, position, .. } => {
                let status = if queues {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                let mut body =
                    json!({ "run": run_json(&self.state.config, &run), "position": position });
                if queues {
                    body["created"] = json!(true);
                }
                (status, body)
            }
            CommandOutcome::Deduplicated { existing } => {
                let body = json!({
                    "created": false,
                    "run": run_json(&self.state.config, &existing),
                    "position": null,
                });
                (StatusCode::OK, body)
            }
        };
        self.idempotency
            .remember(&self.state.pool, status, &body)
            .await?;
        tracing::info!(token = %self.caller.token_id, tenant = %self.tenant, run = %run, status = status.as_u16(), "command");
        Ok((status, Json(body)).into_response())
    }
}

/// Parses an `If-Match` value: a version as an entity tag, `"3"` (or `W/"3"`, or bare `3`).
fn parse_etag(value: Option<&str>) -> Result<u64, ApiError> {
    value
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
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

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs", tag = "commands",
    params(("tenant_id" = i64, Path, description = "Tenant id")),
    request_body = QueueRunBody,
    responses((status = 201, description = "Queued a new run"), (status = 200, description = "An active run with the same identity exists: that run, with created = false"),
              (status = 400, description = "Invalid request"), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn queue_run(
    CommandRoute {
        path: TenantPath { tenant_id },
        body,
        context,
    }: CommandRoute<TenantPath, QueueRunBody>,
) -> Result<Response, ApiError> {
    let run_type = RunType::parse(&body.run_type)?;
    let identity_inputs = body.identity.unwrap_or_else(|| json!({}));
    refuse_nul("identity", &identity_inputs)?;
    let identity = RunIdentity::new(identity_inputs)?;
    let run_context = body.context.unwrap_or_else(|| json!({}));
    refuse_nul("context", &run_context)?;
    if !run_context.is_object() {
        return Err(ApiError::bad_field("context", "must be a JSON object"));
    }
    if run_context.to_string().len() > MAX_CONTEXT_BYTES {
        return Err(ApiError::bad_field(
            "context",
            "must be at most 32 KiB of JSON",
        ));
    }
    let initiator = match body.initiator {
        None => Initiator::system(),
        Some(InitiatorBody {
            user_id: None,
            name: None,
        }) => Initiator::system(),
        Some(InitiatorBody {
            user_id: Some(user),
            name: Some(name),
        }) => Initiator::user(
            UserId::new(user).map_err(|e| ApiError::bad_field("initiator.user_id", e.reason))?,
            &name,
        )?,
        Some(InitiatorBody {
            user_id: Some(_),
            name: None,
        }) => {
            return Err(ApiError::bad_field(
                "initiator.name",
                "is required with initiator.user_id",
            ));
        }
        Some(InitiatorBody {
            user_id: None,
            name: Some(_),
        }) => {
            return Err(ApiError::bad_field(
                "initiator.user_id",
                "is required with initiator.name",
            ));
        }
    };
    let run_id = context.idempotency.new_run_id();
    let command = RunCommand::Queue(QueueRun {
        run_id,
        tenant_id,
        run_type,
        identity,
        initiator,
        context: run_context,
        limits: runledger_core::RunLimits::default(),
        at: Utc::now(),
    });
    context.execute(run_id, command).await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs/{run_id}/start", tag = "commands",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "Expected version")),
    request_body(content = Option<StartBody>),
    responses((status = 200, description = "The run, running"), (status = 404), (status = 409, description = "Not queued"), (status = 412)),
    security(("bearer" = [])))]
pub(crate) async fn start_run(
    CommandRoute { path, context, .. }: CommandRoute<RunPath, StartBody>,
) -> Result<Response, ApiError> {
    context
        .execute(
            path.run_id,
            RunCommand::Start(Start {
                worker: None,
                at: Utc::now(),
            }),
        )
        .await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs/{run_id}/progress", tag = "commands",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    request_body = ProgressBody,
    responses((status = 200, description = "The run with the increments added"), (status = 404), (status = 409, description = "Not running"), (status = 412), (status = 422, description = "Counts would exceed the total or go backwards")),
    security(("bearer" = [])))]
pub(crate) async fn report_progress(
    CommandRoute {
        path,
        body,
        context,
    }: CommandRoute<RunPath, ProgressBody>,
) -> Result<Response, ApiError> {
    let failures = body
        .failures
        .iter()
        .enumerate()
        .map(|(index, failure)| failure_report(failure, &format!("failures[{index}].")))
        .collect::<Result<Vec<_>, _>>()?;
    let command = RunCommand::ReportProgress(ReportProgress {
        delta: ProgressDelta {
            success: body.success,
            failed: body.failed,
            skipped: body.skipped,
        },
        total: body.total,
        failures,
        at: Utc::now(),
    });
    context.execute(path.run_id, command).await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs/{run_id}/complete", tag = "commands",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    request_body = CompleteBody,
    responses((status = 200, description = "The completed run"), (status = 404), (status = 409, description = "Not running"), (status = 412), (status = 422)),
    security(("bearer" = [])))]
pub(crate) async fn complete_run(
    CommandRoute {
        path,
        body,
        context,
    }: CommandRoute<RunPath, CompleteBody>,
) -> Result<Response, ApiError> {
    let outcome = body
        .outcome
        .as_deref()
        .map(str::parse::<Outcome>)
        .transpose()?;
    context
        .execute(
            path.run_id,
            RunCommand::Complete(Complete {
                outcome,
                final_counts: None,
                failures: Vec::new(),
                at: Utc::now(),
            }),
        )
        .await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs/{run_id}/dispatch-failed", tag = "commands",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    request_body = DispatchFailedBody,
    responses((status = 200, description = "The run, completed as failed"), (status = 404), (status = 409, description = "Not queued"), (status = 412)),
    security(("bearer" = [])))]
pub(crate) async fn dispatch_failed(
    CommandRoute {
        path,
        body,
        context,
    }: CommandRoute<RunPath, DispatchFailedBody>,
) -> Result<Response, ApiError> {
    let failure = failure_report(
        &FailureBody {
            code: body.code,
            message: body.message,
            count: Some(1),
        },
        "",
    )?;
    context
        .execute(
            path.run_id,
            RunCommand::DispatchFailed(DispatchFailed {
                failure,
                at: Utc::now(),
            }),
        )
        .await
}

/// PostgreSQL cannot store U+0000 in `jsonb`: refuse it at the edge rather than fail the append.
fn refuse_nul(field: &'static str, value: &Value) -> Result<(), ApiError> {
    fn has_nul(value: &Value) -> bool {
        match value {
            Value::String(text) => text.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map
                .iter()
                .any(|(key, item)| key.contains('\0') || has_nul(item)),
            _ => false,
        }
    }
    if has_nul(value) {
        return Err(ApiError::bad_field(
            field,
            "must not contain the NUL character (\\u0000)",
        ));
    }
    Ok(())
}

/// Parses one failure of a body; `field_prefix` locates its fields in the body (`failures[2].`
/// in a progress report, nothing in dispatch-failed), so a problem names the exact field.
fn failure_report(body: &FailureBody, field_prefix: &str) -> Result<FailureReport, ApiError> {
    let field = |name: &str| format!("{field_prefix}{name}");
    let code = FailureCode::parse(&body.code)
        .map_err(|error| ApiError::bad_field(field("code"), error.reason))?;
    if body.message.chars().count() > MAX_RAW_MESSAGE {
        return Err(ApiError::bad_field(
            field("message"),
            "must be at most 4096 characters",
        ));
    }
    if body.count == Some(0) {
        return Err(ApiError::bad_field(field("count"), "must be at least 1"));
    }
    Ok(FailureReport {
        code,
        message: body.message.clone(),
        count: body.count.unwrap_or(1),
    })
}
