//! `POST …/heartbeat`: a worker's sign of life, kept beside the log (never an event), answered
//! with the run so that the worker learns of a cancel request.

use axum::Json;
use axum::response::{IntoResponse, Response};
use runledger_wire::{HeartbeatAnswer, HeartbeatBody};

use super::route::CommandRoute;
use crate::error::ApiError;
use crate::extract::RunPath;
use crate::openapi::WRITER_ROLE;
use crate::run_json::run_json;

/// Heartbeat: tell the ledger the run's worker is alive.
///
/// Not an event: the last heartbeat is kept beside the log. Progress reports count as
/// heartbeats too.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/runs/{run_id}/heartbeat", tag = "commands",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path)),
    request_body(content = Option<HeartbeatBody>),
    responses((status = 200, description = "Recorded (the server's clock; not an event): the run, and whether it was asked to cancel", body = HeartbeatAnswer),
              (status = 403, description = WRITER_ROLE),
              (status = 409, description = "The run is queued (`invalid-transition`: start it first) or completed (`run-completed`, with its `outcome` and `completion_reason`: stop working on it)")),
    security(("bearer" = [])))]
pub(crate) async fn heartbeat(
    CommandRoute { path, context, .. }: CommandRoute<RunPath, HeartbeatBody>,
) -> Result<Response, ApiError> {
    let state = &context.state;
    // A heartbeat is not a command: no event, no claim of its idempotency key (sending it again
    // only records a later heartbeat), and the time is the server's clock.
    let at = state.clock.now();
    let beat = state
        .commands
        .heartbeat(context.tenant, path.run_id, at)
        .await?;
    metrics::counter!("runledger_heartbeats_total").increment(1);
    let body = HeartbeatAnswer {
        cancel_requested: beat.run.cancel_requested.is_some(),
        position: beat.position,
        run: run_json(&state.config, &beat.run, Some(beat.last_heartbeat_at))?,
    };
    Ok(Json(body).into_response())
}
