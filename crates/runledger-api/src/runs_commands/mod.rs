//! Command routes (writer role): queue, start, progress, complete, dispatch-failed, cancel, and
//! the heartbeat (not a command: it is kept beside the log).
//!
//! Each route parses its body into domain values (`bodies`), builds its command, and runs it
//! through the store's command path (`execution`), answering the run as it stands after the
//! command (or as it stood, when the command's effect was already recorded: a re-delivered
//! start, a second cancel). Conditional requests (`If-Match`) pin the version;
//! `Idempotency-Key` makes retries safe. `route` reads what every command route shares.
//!
//! # Layout
//! - `bodies`: the request bodies (`runledger_wire`'s) parsed into domain values.
//! - [`limits`]: the server's default limits, and how a queue request's are resolved with them.
//! - `route`: the `CommandRoute` extractor: caller, tenant check, body, shared headers.
//! - `execution`: the key, the command path, the answer.
//! - `heartbeat`: the heartbeat route.

pub(crate) mod bodies;
pub(crate) mod execution;
mod heartbeat;
pub mod limits;
pub(crate) mod route;

use axum::response::Response;
use runledger_core::{
    Cancel, Complete, DispatchFailed, QueueRun, ReportProgress, RunCommand, Start,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{RunPath, TenantPath};
use crate::openapi::{IDEMPOTENCY_KEY, IF_MATCH, WRITER_ROLE};
use bodies::{ParseBody, ParsedComplete, ParsedProgress, ParsedQueue};
use route::CommandRoute;
use runledger_wire::{
    CancelBody, CommandAnswer, CompleteBody, DispatchFailedBody, ProgressBody, QueueRunBody,
    StartBody,
};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(queue_run))
        .routes(routes!(start_run))
        .routes(routes!(report_progress))
        .routes(routes!(complete_run))
        .routes(routes!(dispatch_failed))
        .routes(routes!(cancel_run))
        .routes(routes!(heartbeat::heartbeat))
}

/// Queue a run.
///
/// The run is identified by its tenant, type and identity inputs: while one is active (queued
/// or running), queueing the same identity answers that run (200, `created: false`).
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs", tag = "commands",
    params(("tenant_id" = i64, Path, description = "Tenant id"), ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)),
    request_body = QueueRunBody,
    responses((status = 201, description = "Queued a new run, with the limits resolved with the run type's and the server's defaults", body = CommandAnswer),
              (status = 200, description = "An active run with the same identity exists: that run, with created = false", body = CommandAnswer),
              (status = 403, description = WRITER_ROLE),
              (status = 409, description = "The run_id is taken")),
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
        run_id,
        limits,
    } = body.parse()?;
    let run_id = run_id.unwrap_or_else(|| context.new_run_id());
    let limits = context.limit_defaults().resolve(&run_type, limits);
    context
        .execute(run_id, |at| {
            RunCommand::Queue(QueueRun {
                run_id,
                tenant_id,
                run_type,
                identity,
                initiator,
                context: run_context,
                limits,
                at,
            })
        })
        .await
}

/// Start a queued run.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs/{run_id}/start", tag = "commands",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = IF_MATCH), ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)),
    request_body(content = Option<StartBody>),
    responses((status = 200, description = "The run, running; also when the worker it names already started it (a re-delivered job: nothing is recorded again)", body = CommandAnswer),
              (status = 403, description = WRITER_ROLE),
              (status = 409, description = "Not queued; or started by another worker (`held-by-another-worker`, naming the `holder`)")),
    security(("bearer" = [])))]
pub(crate) async fn start_run(
    CommandRoute {
        path,
        body,
        context,
    }: CommandRoute<RunPath, StartBody>,
) -> Result<Response, ApiError> {
    let worker = body.parse()?;
    context
        .execute(path.run_id, |at| RunCommand::Start(Start { worker, at }))
        .await
}

/// Report progress: increments since the last report.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs/{run_id}/progress", tag = "commands",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = IF_MATCH), ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)),
    request_body = ProgressBody,
    responses((status = 200, description = "The run with the increments added, and whether it was asked to cancel; the report counts as a heartbeat", body = CommandAnswer),
              (status = 403, description = WRITER_ROLE), (status = 409, description = "Not running"),
              (status = 422, description = "Counts would exceed the total or go backwards (`rule-violated`), or the `Idempotency-Key` was used for another request (`idempotency-key-reused`)")),
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

/// Complete a running run.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs/{run_id}/complete", tag = "commands",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = IF_MATCH), ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)),
    request_body = CompleteBody,
    responses((status = 200, description = "The completed run", body = CommandAnswer), (status = 403, description = WRITER_ROLE), (status = 409, description = "Not running"),
              (status = 422, description = "Final counts below what was reported or past the total; `cancelled` without a cancel request (`rule-violated`); or the `Idempotency-Key` was used for another request (`idempotency-key-reused`)")),
    security(("bearer" = [])))]
pub(crate) async fn complete_run(
    CommandRoute {
        path,
        body,
        context,
    }: CommandRoute<RunPath, CompleteBody>,
) -> Result<Response, ApiError> {
    let ParsedComplete {
        outcome,
        final_counts,
        failures,
    } = body.parse()?;
    context
        .execute(path.run_id, |at| {
            RunCommand::Complete(Complete {
                outcome,
                final_counts,
                failures,
                at,
            })
        })
        .await
}

/// Mark a queued run whose job could not be handed to a queue as failed.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs/{run_id}/dispatch-failed", tag = "commands",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = IF_MATCH), ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)),
    request_body = DispatchFailedBody,
    responses((status = 200, description = "The run, completed as failed", body = CommandAnswer), (status = 403, description = WRITER_ROLE), (status = 409, description = "Not queued")),
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

/// Cancel a run.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs/{run_id}/cancel", tag = "commands",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = IF_MATCH), ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)),
    request_body(content = Option<CancelBody>),
    responses((status = 200, description = "A queued run, completed `cancelled` at once (its identity is free again); a running run, with `cancel_requested`: its worker sees it in its next heartbeat or progress answer and completes the run `cancelled`. A second cancel of a running run changes nothing and answers the same", body = CommandAnswer),
              (status = 403, description = WRITER_ROLE), (status = 409, description = "Already completed")),
    security(("bearer" = [])))]
pub(crate) async fn cancel_run(
    CommandRoute {
        path,
        body,
        context,
    }: CommandRoute<RunPath, CancelBody>,
) -> Result<Response, ApiError> {
    let reason = body.parse()?;
    context
        .execute(path.run_id, |at| RunCommand::Cancel(Cancel { reason, at }))
        .await
}

/// Cancels `run` for `caller` (a writer, checked by the caller's extractor), as
/// `POST …/cancel` without an `Idempotency-Key` does: the monitoring pages' Cancel button,
/// whose session form is its protection against a forged request (a second cancel changes
/// nothing anyway). Answers the same answer the route would.
pub(crate) async fn cancel_for_page(
    state: &AppState,
    caller: crate::auth::Caller,
    path: RunPath,
    body: CancelBody,
) -> Result<Response, ApiError> {
    let reason = body.parse()?;
    execution::CommandContext::for_page(state.clone(), caller, &path)?
        .execute(path.run_id, |at| RunCommand::Cancel(Cancel { reason, at }))
        .await
}
