//! The state of a run, and the two functions that define its lifecycle.
//!
//! [`decide`] holds every rule; [`evolve`] holds none and never fails, so any stored history
//! folds. Both the command path (to decide) and every projection (to fold read models) use these
//! same functions: there is one definition of a run's state.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::command::{
    Cancel, Complete, DispatchFailed, QueueRun, ReportProgress, RunCommand, Start, TimeOut,
};
use crate::counts::SummaryCounts;
use crate::error::RunRejection;
use crate::event::{
    CompletionReason, LimitPassed, RunCancelRequested, RunCompleted, RunEvent, RunProgressed,
    RunQueued, RunStarted,
};
use crate::failure::{FailureCode, FailureEntry, FailureReport, merge_failures, sanitize_message};
use crate::identity::RunIdentityHash;
use crate::ids::{RunId, TenantId};
use crate::initiator::Initiator;
use crate::limits::{Deadline, Limit, RunLimits};
use crate::run_type::RunType;
use crate::status::{Outcome, RunStatus};
use crate::worker::WorkerId;

mod deadlines;
#[cfg(test)]
mod tests;

/// A run's state: nothing yet, or the snapshot its events fold to.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Run {
    /// No event yet: only `Queue` is accepted.
    #[default]
    Unqueued,
    /// Queued, running or completed.
    Exists(Box<RunSnapshot>),
}

/// Every field of the seed's OperationRun, as folded from the run's events.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSnapshot {
    /// The run id.
    pub id: RunId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The initiator (user id and name snapshot, or System).
    pub initiator: Initiator,
    /// The run type.
    pub run_type: RunType,
    /// Lifecycle state.
    pub status: RunStatus,
    /// Result bucket.
    pub outcome: Outcome,
    /// The dedupe key.
    pub run_identity_hash: RunIdentityHash,
    /// The identity inputs.
    pub identity: Value,
    /// Summary counts.
    pub summary_counts: SummaryCounts,
    /// Sanitized failures, merged by code.
    pub failure_summary: Vec<FailureEntry>,
    /// Run-specific metadata.
    pub context: Value,
    /// When execution began.
    pub started_at: Option<DateTime<Utc>>,
    /// When execution finished.
    pub completed_at: Option<DateTime<Utc>>,
    /// When the run was queued.
    pub created_at: DateTime<Utc>,
    /// When the latest event happened.
    pub updated_at: DateTime<Utc>,
    /// How many events have been folded: the stream version.
    pub version: u64,
    /// The lifecycle limits it was queued with.
    pub limits: RunLimits,
    /// The worker that started it, when the start named one.
    pub worker: Option<WorkerId>,
    /// When a worker last reported progress: a heartbeat the log records.
    pub last_progress_at: Option<DateTime<Utc>>,
    /// The cancel request, once someone asked (a queued run's cancel completes it at once).
    pub cancel_requested: Option<RunCancelRequested>,
    /// Why it completed; `None` until it has.
    pub completion: Option<CompletionReason>,
}

impl Run {
    /// The stream version: the number of events folded so far.
    pub fn version(&self) -> u64 {
        match self {
            Run::Unqueued => 0,
            Run::Exists(run) => run.version,
        }
    }

    /// The snapshot, when the run exists.
    pub fn snapshot(&self) -> Option<&RunSnapshot> {
        match self {
            Run::Unqueued => None,
            Run::Exists(run) => Some(run),
        }
    }
}

/// Folds a whole stream, oldest event first.
pub fn replay<'a>(events: impl IntoIterator<Item = &'a RunEvent>) -> Run {
    events.into_iter().fold(Run::Unqueued, evolve)
}

/// Applies one event. Holds no rules and never fails: an event that cannot apply to the state
/// (which `decide` never produces) leaves the state unchanged rather than panic.
pub fn evolve(state: Run, event: &RunEvent) -> Run {
    match (state, event) {
        (Run::Unqueued, RunEvent::Queued(queued)) => Run::Exists(Box::new(RunSnapshot {
            id: queued.run_id,
            tenant_id: queued.tenant_id,
            initiator: queued.initiator.clone(),
            run_type: queued.run_type.clone(),
            status: RunStatus::Queued,
            outcome: Outcome::Pending,
            run_identity_hash: queued.run_identity_hash,
            identity: queued.identity.clone(),
            summary_counts: SummaryCounts::default(),
            failure_summary: Vec::new(),
            context: queued.context.clone(),
            started_at: None,
            completed_at: None,
            created_at: queued.queued_at,
            updated_at: queued.queued_at,
            version: 1,
            limits: queued.limits,
            worker: None,
            last_progress_at: None,
            cancel_requested: None,
            completion: None,
        })),
        (Run::Exists(mut run), event) => {
            match event {
                RunEvent::Queued(_) => return Run::Exists(run),
                RunEvent::Started(started) => {
                    run.status = RunStatus::Running;
                    run.started_at = Some(started.started_at);
                    run.worker.clone_from(&started.worker);
                }
                RunEvent::Progressed(progress) => {
                    run.summary_counts = run.summary_counts.apply(&progress.delta, progress.total);
                    merge_failures(&mut run.failure_summary, &progress.failures);
                    // Workers' clocks differ: the latest report is the latest sign of life.
                    run.last_progress_at = run.last_progress_at.max(Some(progress.reported_at));
                }
                RunEvent::CancelRequested(request) => {
                    run.cancel_requested = Some(request.clone());
                }
                RunEvent::Completed(completed) => {
                    run.status = RunStatus::Completed;
                    run.outcome = completed.outcome;
                    run.completed_at = Some(completed.completed_at);
                    merge_failures(&mut run.failure_summary, &completed.failures);
                    if let Some(counts) = completed.final_counts {
                        run.summary_counts = counts;
                    }
                    // A queued run's cancel is recorded by its Completed alone.
                    if let CompletionReason::Cancelled { cancellation } = &completed.reason {
                        run.cancel_requested
                            .get_or_insert_with(|| cancellation.clone());
                    }
                    run.completion = Some(completed.reason.clone());
                }
            }
            run.updated_at = event.occurred_at();
            run.version += 1;
            Run::Exists(run)
        }
        (Run::Unqueued, _) => Run::Unqueued,
    }
}

/// Decides which events a command produces, or which rule it breaks.
///
/// No events is an answer too: a command whose effect is already recorded (a worker starting
/// again the run it started, a second cancel of a run asked to cancel) changes nothing, and the
/// command path must then answer with the current state without appending.
///
/// # Errors
/// A [`RunRejection`] naming the broken rule; the state is unchanged.
pub fn decide(state: &Run, command: RunCommand) -> Result<Vec<RunEvent>, RunRejection> {
    let kind = command.kind();
    let run = match (state, command) {
        (Run::Unqueued, RunCommand::Queue(queue)) => return Ok(vec![queued(queue)]),
        (Run::Exists(run), RunCommand::Queue(_)) => {
            return Err(RunRejection::AlreadyExists { run_id: run.id });
        }
        (Run::Unqueued, _) => return Err(RunRejection::NotFound),
        (Run::Exists(run), command) => (run, command),
    };
    let (run, command) = run;
    let invalid = || RunRejection::InvalidTransition {
        command: kind,
        status: run.status,
    };
    let event = match (run.status, command) {
        (RunStatus::Queued, RunCommand::Start(Start { worker, at })) => {
            RunEvent::Started(RunStarted {
                started_at: at,
                worker,
            })
        }
        (
            RunStatus::Running,
            RunCommand::Start(Start {
                worker: Some(worker),
                ..
            }),
        ) => {
            return match &run.worker {
                Some(holder) if *holder == worker => Ok(Vec::new()),
                holder => Err(RunRejection::HeldByAnotherWorker {
                    holder: holder.clone(),
                }),
            };
        }
        (RunStatus::Running, RunCommand::ReportProgress(report)) => progressed(run, report)?,
        (RunStatus::Running, RunCommand::Complete(complete)) => completed(run, complete)?,
        (RunStatus::Queued, RunCommand::DispatchFailed(DispatchFailed { failure, at })) => {
            RunEvent::Completed(RunCompleted {
                outcome: Outcome::Failed,
                reason: CompletionReason::DispatchFailed,
                failures: vec![FailureEntry::from_report(&failure)],
                final_counts: None,
                completed_at: at,
            })
        }
        (RunStatus::Queued, RunCommand::Cancel(cancel)) => {
            let cancellation = cancel_request(cancel);
            RunEvent::Completed(RunCompleted {
                outcome: Outcome::Cancelled,
                completed_at: cancellation.requested_at,
                reason: CompletionReason::Cancelled { cancellation },
                failures: Vec::new(),
                final_counts: None,
            })
        }
        (RunStatus::Running, RunCommand::Cancel(_)) if run.cancel_requested.is_some() => {
            return Ok(Vec::new());
        }
        (RunStatus::Running, RunCommand::Cancel(cancel)) => {
            RunEvent::CancelRequested(cancel_request(cancel))
        }
        (RunStatus::Queued | RunStatus::Running, RunCommand::TimeOut(time_out)) => {
            timed_out(run, time_out)?
        }
        _ => return Err(invalid()),
    };
    Ok(vec![event])
}

fn queued(queue: QueueRun) -> RunEvent {
    RunEvent::Queued(RunQueued {
        run_id: queue.run_id,
        tenant_id: queue.tenant_id,
        run_identity_hash: queue.identity.hash(queue.tenant_id, &queue.run_type),
        run_type: queue.run_type,
        identity: queue.identity.value().clone(),
        initiator: queue.initiator,
        context: queue.context,
        queued_at: queue.at,
        limits: queue.limits,
    })
}

fn progressed(run: &RunSnapshot, report: ReportProgress) -> Result<RunEvent, RunRejection> {
    if report.delta.is_zero() && report.total.is_none() && report.failures.is_empty() {
        return Err(RunRejection::EmptyProgress);
    }
    run.summary_counts
        .checked_apply(&report.delta, report.total)?;
    Ok(RunEvent::Progressed(RunProgressed {
        delta: report.delta,
        total: report.total,
        failures: sanitized(&report.failures),
        reported_at: report.at,
    }))
}

fn completed(run: &RunSnapshot, complete: Complete) -> Result<RunEvent, RunRejection> {
    let final_counts = complete
        .final_counts
        .map(|finals| run.summary_counts.checked_finish(&finals))
        .transpose()?;
    let failures = sanitized(&complete.failures);
    let (outcome, reason) = match (complete.outcome, &run.cancel_requested) {
        (Some(Outcome::Cancelled), Some(request)) => (
            Outcome::Cancelled,
            CompletionReason::Cancelled {
                cancellation: request.clone(),
            },
        ),
        (Some(Outcome::Cancelled), None) => return Err(RunRejection::CancelNotRequested),
        (Some(outcome), _) if outcome.is_settable() => (outcome, CompletionReason::Finished),
        (Some(outcome), _) => return Err(RunRejection::OutcomeNotAllowed { outcome }),
        (None, _) => {
            // Derived from the counts and failures as they will be once this event is folded.
            let mut summary = run.failure_summary.clone();
            merge_failures(&mut summary, &failures);
            let counts = final_counts.unwrap_or(run.summary_counts);
            (
                derive_outcome(&counts, &summary),
                CompletionReason::Finished,
            )
        }
    };
    Ok(RunEvent::Completed(RunCompleted {
        outcome,
        reason,
        failures,
        final_counts,
        completed_at: complete.at,
    }))
}

fn cancel_request(cancel: Cancel) -> RunCancelRequested {
    RunCancelRequested {
        reason: cancel
            .reason
            .map(|raw| sanitize_message(&raw))
            .filter(|reason| !reason.is_empty()),
        requested_at: cancel.at,
    }
}

fn timed_out(run: &RunSnapshot, time_out: TimeOut) -> Result<RunEvent, RunRejection> {
    let next = run.next_deadline(time_out.last_heartbeat_at);
    let Some(deadline) = next.filter(|deadline| deadline.at <= time_out.at) else {
        return Err(RunRejection::NotOverdue {
            next_deadline_at: next.map(|deadline| deadline.at),
        });
    };
    let last_heartbeat_at = run.last_heartbeat_at(time_out.last_heartbeat_at);
    Ok(RunEvent::Completed(RunCompleted {
        outcome: Outcome::Failed,
        reason: CompletionReason::TimedOut {
            time_out: LimitPassed {
                limit: deadline.limit,
                limit_seconds: deadline.seconds,
                passed_at: deadline.at,
                last_heartbeat_at,
            },
        },
        failures: vec![FailureEntry::from_report(&time_out_failure(
            deadline,
            last_heartbeat_at,
        ))],
        final_counts: None,
        completed_at: time_out.at,
    }))
}

/// The failure summary entry of a time-out: its code names the limit, its message says why.
fn time_out_failure(deadline: Deadline, last_heartbeat_at: Option<DateTime<Utc>>) -> FailureReport {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let message = match (deadline.limit, last_heartbeat_at) {
        (Limit::StartDeadline, _) => format!(
            "Not started within {} of being queued (deadline {})",
            deadline.seconds,
            time(deadline.at)
        ),
        (Limit::RunDeadline, _) => format!(
            "Not completed within {} of starting (deadline {})",
            deadline.seconds,
            time(deadline.at)
        ),
        (Limit::HeartbeatTimeout, Some(last)) => format!(
            "No heartbeat for {} since the last one at {}",
            deadline.seconds,
            time(last)
        ),
        (Limit::HeartbeatTimeout, None) => format!(
            "No heartbeat within {} of starting (deadline {})",
            deadline.seconds,
            time(deadline.at)
        ),
    };
    FailureReport {
        code: FailureCode::parse(deadline.limit.failure_code())
            .unwrap_or_else(|e| unreachable!("limit failure codes are valid: {e}")),
        message,
        count: 1,
    }
}

fn sanitized(failures: &[FailureReport]) -> Vec<FailureEntry> {
    failures.iter().map(FailureEntry::from_report).collect()
}

/// The outcome of a run completed without one: from its counts.
///
/// No failures → `succeeded` (an empty run succeeded at doing nothing); failures and successes →
/// `partially_succeeded`; failures and no success → `failed`. When no item was counted at all,
/// failure summary entries alone make it `failed`.
pub fn derive_outcome(counts: &SummaryCounts, failures: &[FailureEntry]) -> Outcome {
    match (counts.success, counts.failed) {
        (_, 0) if counts.processed() == 0 && !failures.is_empty() => Outcome::Failed,
        (_, 0) => Outcome::Succeeded,
        (0, _) => Outcome::Failed,
        _ => Outcome::PartiallySucceeded,
    }
}
