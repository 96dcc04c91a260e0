//! Command routes (writer role): queue, start, progress, complete, dispatch-failed.
//!
//! Each route parses its body into domain values (`bodies`), builds its command, and runs it
//! through the store's command path (`execution`), answering the run as it stands after the
//! command. Conditional requests (`If-Match`) pin the version; `Idempotency-Key` makes retries
//! safe. `route` reads what every command route shares.
//!
//! # Layout
//! - `bodies`: the request bodies (`runledger_wire`'s) parsed into domain values.
//! - `route`: the `CommandRoute` extractor: caller, tenant check, body, shared headers.
//! - `execution`: the key, the command path, the answer.

pub(crate) mod bodies;
pub(crate) mod execution;
pub(crate) mod route;

use axum::response::Response;
use runledger_core::{Complete, DispatchFailed, QueueRun, ReportProgress, RunCommand, Start};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{RunPath, TenantPath};
use bodies::{ParseBody, ParsedProgress, ParsedQueue};
use route::CommandRoute;
use runledger_wire::{
    CommandAnswer, CompleteBody, DispatchFailedBody, ProgressBody, QueueRunBody, StartBody,
};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(queue_run))
        .routes(routes!(start_run))
        .routes(routes!(report_progress))
        .routes(routes!(complete_run))
        .routes(routes!(dispatch_failed))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs", tag = "commands",
    params(("tenant_id" = i64, Path, description = "Tenant id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a resend with the same key and body gets the first answer and appends nothing; the same key with another request is a 422 (docs/adr/0014)")),
    request_body = QueueRunBody,
    responses((status = 201, body = CommandAnswer, description = "Queued a new run"), (status = 200, body = CommandAnswer, description = "An active run with the same identity exists: that run, with created = false"),
              (status = 400, description = "Invalid request"), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn queue_run(
    CommandRoute {
        path: TenantPath { tenant_id },
        body,
        context,
    }: CommandRoute<TenantPath, QueueRunBody>,
) -> Result<Response, ApiError> {
    let ParsedQueue {
        run_type,
        identity,
        initiator,
        context: run_context,
    } = body.parse()?;
    let run_id = context.new_run_id();
    context
        .execute(run_id, |at| {
            RunCommand::Queue(QueueRun {
                run_id,
                tenant_id,
                run_type,
                identity,
                initiator,
                context: run_context,
                limits: runledger_core::RunLimits::default(),
                at,
            })
        })
        .await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs/{run_id}/start", tag = "commands",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "Expected version"), ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a resend with the same key and body gets the first answer and appends nothing; the same key with another request is a 422 (docs/adr/0014)")),
    request_body(content = Option<StartBody>),
    responses((status = 200, body = CommandAnswer, description = "The run, running"), (status = 404), (status = 409, description = "Not queued"), (status = 412)),
    security(("bearer" = [])))]
pub(crate) async fn start_run(
    CommandRoute { path, context, .. }: CommandRoute<RunPath, StartBody>,
) -> Result<Response, ApiError> {
    context
        .execute(path.run_id, |at| {
            RunCommand::Start(Start { worker: None, at })
        })
        .await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs/{run_id}/progress", tag = "commands",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "Expected version"), ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a resend with the same key and body gets the first answer and appends nothing; the same key with another request is a 422 (docs/adr/0014)")),
    request_body = ProgressBody,
    responses((status = 200, body = CommandAnswer, description = "The run with the increments added"), (status = 404), (status = 409, description = "Not running"), (status = 412), (status = 422, description = "Counts would exceed the total or go backwards")),
    security(("bearer" = [])))]
pub(crate) async fn report_progress(
    CommandRoute {
        path,
        body,
        context,
    }: CommandRoute<RunPath, ProgressBody>,
) -> Result<Response, ApiError> {
    let ParsedProgress {
        delta,
        total,
        failures,
    } = body.parse()?;
    context
        .execute(path.run_id, |at| {
            RunCommand::ReportProgress(ReportProgress {
                delta,
                total,
                failures,
                at,
            })
        })
        .await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs/{run_id}/complete", tag = "commands",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "Expected version"), ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a resend with the same key and body gets the first answer and appends nothing; the same key with another request is a 422 (docs/adr/0014)")),
    request_body = CompleteBody,
    responses((status = 200, body = CommandAnswer, description = "The completed run"), (status = 404), (status = 409, description = "Not running"), (status = 412), (status = 422)),
    security(("bearer" = [])))]
pub(crate) async fn complete_run(
    CommandRoute {
        path,
        body,
        context,
    }: CommandRoute<RunPath, CompleteBody>,
) -> Result<Response, ApiError> {
    let outcome = body.parse()?;
    context
        .execute(path.run_id, |at| {
            RunCommand::Complete(Complete {
                outcome,
                final_counts: None,
                failures: Vec::new(),
                at,
            })
        })
        .await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs/{run_id}/dispatch-failed", tag = "commands",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "Expected version"), ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a resend with the same key and body gets the first answer and appends nothing; the same key with another request is a 422 (docs/adr/0014)")),
    request_body = DispatchFailedBody,
    responses((status = 200, body = CommandAnswer, description = "The run, completed as failed"), (status = 404), (status = 409, description = "Not queued"), (status = 412)),
    security(("bearer" = [])))]
pub(crate) async fn dispatch_failed(
    CommandRoute {
        path,
        body,
        context,
    }: CommandRoute<RunPath, DispatchFailedBody>,
) -> Result<Response, ApiError> {
    let failure = body.parse()?;
    context
        .execute(path.run_id, |at| {
            RunCommand::DispatchFailed(DispatchFailed { failure, at })
        })
        .await
}
