//! A command's execution: its key looked at (the first answer, or the time to stamp the
//! command with), the command through the store's command path, the metrics, and the answer:
//! the run as it stands after the command.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use runledger_core::{RunCommand, RunId, TenantId};
use runledger_store::{
    CommandError, CommandOutcome, CommandRequest, EventMetadata, ExpectedVersion, StoreError,
};
use runledger_wire::CommandAnswer;
use serde_json::Value;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::{Begun, Idempotency};
use crate::run_json::run_json;

/// Everything a command route shares: who asks, about what, and how to answer retries.
pub(crate) struct CommandContext {
    pub(super) state: AppState,
    pub(super) caller: Caller,
    pub(super) tenant: TenantId,
    pub(super) idempotency: Idempotency,
    pub(super) expected: ExpectedVersion,
    pub(super) metadata: EventMetadata,
}

impl CommandContext {
    /// The context of a command a monitoring page sends for its signed-in `caller` about the
    /// run at `path`: no idempotency key, no expected version, the caller as the actor.
    ///
    /// # Errors
    /// Never in practice: an unkeyed request has nothing to refuse.
    pub(crate) fn for_page(
        state: AppState,
        caller: Caller,
        path: &crate::extract::RunPath,
    ) -> Result<Self, ApiError> {
        let tenant = path.tenant_id;
        let uri = format!("/v1/tenants/{}/runs/{}/cancel", tenant, path.run_id);
        let idempotency = Idempotency::from_request(
            tenant,
            &axum::http::HeaderMap::new(),
            &axum::http::Method::POST,
            &uri,
            &[],
        )?;
        let metadata = EventMetadata {
            actor: caller.actor(),
            correlation_id: None,
            causation_id: None,
            request_id: None,
        };
        Ok(Self {
            state,
            caller,
            tenant,
            idempotency,
            expected: ExpectedVersion::Any,
            metadata,
        })
    }

    /// The id of the run a queue request creates (derived from its idempotency key, if any).
    pub(crate) fn new_run_id(&self) -> RunId {
        self.idempotency.new_run_id()
    }

    /// The server's default limits, which a queue request's missing ones take.
    pub(crate) fn limit_defaults(&self) -> &super::limits::LimitDefaults {
        &self.state.config.limits
    }

    /// Runs the command `at_time` builds on `run` (or answers a retry from memory) and renders
    /// the answer. The command's time is the state's clock reading or, for a keyed request,
    /// its key's claim: this is where the time of every HTTP command enters.
    pub(crate) async fn execute(
        self,
        run: RunId,
        at_time: impl FnOnce(DateTime<Utc>) -> RunCommand,
    ) -> Result<Response, ApiError> {
        let at = match self
            .idempotency
            .begin(&self.state.pool, self.state.clock.as_ref())
            .await?
        {
            Begun::Answered(status, body) => return Ok((status, Json(body)).into_response()),
            Begun::Execute(at) => at,
        };
        let command = at_time(at);
        let request = CommandRequest {
            tenant_id: self.tenant,
            run_id: run,
            command,
            expected: self.expected,
            event_id: self.idempotency.event_id(),
            metadata: self.metadata.clone(),
        };
        let started = std::time::Instant::now();
        let mut executed = self.state.commands.execute(&request).await;
        if self.idempotency.is_keyed()
            && matches!(
                executed,
                Err(CommandError::Store(StoreError::IdempotencyMismatch { .. }))
            )
        {
            // A concurrent send of this key (with the same request and time: the claim ensures
            // both) appended first, but decided against another state of the run, so its event
            // differs where the state shows (an outcome derived from the counts). Its event is
            // stored: executing again finds it and answers from it, without appending.
            executed = self.state.commands.execute(&request).await;
        }
        let result = match &executed {
            Ok(CommandOutcome::Applied { .. }) => "applied",
            Ok(CommandOutcome::Deduplicated { .. }) => "deduplicated",
            Ok(CommandOutcome::Unchanged { .. }) => "unchanged",
            Err(CommandError::Conflict { .. }) => "conflict",
            Err(CommandError::Rejected(_)) => "rejected",
            Err(CommandError::Store(_)) => "error",
        };
        let kind = request.command.kind().as_str();
        metrics::counter!("runledger_commands_total", "command" => kind, "result" => result)
            .increment(1);
        metrics::histogram!("runledger_command_duration_seconds", "command" => kind)
            .record(started.elapsed().as_secs_f64());
        let outcome = match executed {
            Ok(outcome) => outcome,
            Err(error) => {
                self.idempotency.release(&self.state.pool, at).await;
                return Err(error.into());
            }
        };
        let heartbeat = self.heartbeat_after(&request, &outcome, at).await;
        let answer = answer(&self.state, &request.command, outcome, heartbeat)?;
        let (status, body) = self.idempotency.finish(&self.state.pool, answer).await?;
        tracing::info!(token = %self.caller.token_id, tenant = %self.tenant, run = %run, status = status.as_u16(), "command");
        Ok((status, Json(body)).into_response())
    }
}

impl CommandContext {
    /// The run's last heartbeat as stored, for the answer: a progress report is recorded as one
    /// at the command's time; a run just queued or just started has none yet.
    ///
    /// The command is stored by now, so a failure here must not fail the answer (a client would
    /// retry a command that was carried out): it is logged, and the answer goes without it.
    async fn heartbeat_after(
        &self,
        request: &CommandRequest,
        outcome: &CommandOutcome,
        at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let commands = &self.state.commands;
        let run = outcome.run().id;
        let heartbeat = match (&request.command, outcome) {
            (RunCommand::Queue(_), CommandOutcome::Applied { .. })
            | (
                RunCommand::Start(_),
                CommandOutcome::Applied {
                    replayed: false, ..
                },
            ) => {
                return None;
            }
            (RunCommand::ReportProgress(_), CommandOutcome::Applied { .. }) => commands
                .record_progress_heartbeat(self.tenant, run, at)
                .await
                .map(Some),
            _ => commands.stored_heartbeat(self.tenant, run).await,
        };
        heartbeat.unwrap_or_else(|error| {
            tracing::warn!(%error, tenant = %self.tenant, %run, "the run's heartbeat could not be recorded or read");
            None
        })
    }
}

/// The answer to a command that the store applied, deduplicated or found already recorded, as
/// the JSON an `Idempotency-Key`'s later sends are answered with too; a progress report's says
/// whether the run was asked to cancel, as a heartbeat's does.
fn answer(
    state: &AppState,
    command: &RunCommand,
    outcome: CommandOutcome,
    heartbeat: Option<DateTime<Utc>>,
) -> Result<(StatusCode, Value), ApiError> {
    let queues = matches!(command, RunCommand::Queue(_));
    let (status, mut answer) = match outcome {
        CommandOutcome::Applied { run, position, .. } => {
            let status = if queues {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let answer = CommandAnswer {
                cancel_requested: None,
                created: queues.then_some(true),
                position: Some(position),
                run: run_json(&state.config, &run, heartbeat)?,
            };
            (status, answer)
        }
        CommandOutcome::Unchanged { run, position } => (
            StatusCode::OK,
            CommandAnswer {
                cancel_requested: None,
                created: None,
                position: Some(position),
                run: run_json(&state.config, &run, heartbeat)?,
            },
        ),
        CommandOutcome::Deduplicated { existing } => {
            let answer = CommandAnswer {
                cancel_requested: None,
                created: Some(false),
                position: None,
                run: run_json(&state.config, &existing, heartbeat)?,
            };
            (StatusCode::OK, answer)
        }
    };
    if matches!(command, RunCommand::ReportProgress(_)) {
        answer.cancel_requested = Some(answer.run.is_cancel_requested());
    }
    let body = serde_json::to_value(answer).map_err(|error| ApiError::Internal(error.into()))?;
    Ok((status, body))
}
