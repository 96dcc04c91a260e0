//! The state of a run, and the two functions that define its lifecycle.
//!
//! [`decide`] holds every rule; [`evolve`] holds none and never fails, so any stored history
//! folds. Both the command path (to decide) and every projection (to fold read models) use these
//! same functions: there is one definition of a run's state.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::command::{Complete, DispatchFailed, QueueRun, ReportProgress, RunCommand, Start};
use crate::counts::SummaryCounts;
use crate::error::RunRejection;
use crate::event::{
    CompletionReason, RunCompleted, RunEvent, RunProgressed, RunQueued, RunStarted,
};
use crate::failure::{FailureEntry, merge_failures};
use crate::identity::RunIdentityHash;
use crate::ids::{RunId, TenantId};
use crate::initiator::Initiator;
use crate::run_type::RunType;
use crate::status::{Outcome, RunStatus};

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
        })),
        (Run::Exists(mut run), event) => {
            match event {
                RunEvent::Queued(_) => return Run::Exists(run),
                RunEvent::Started(started) => {
                    run.status = RunStatus::Running;
                    run.started_at = Some(started.started_at);
                }
                RunEvent::Progressed(progress) => {
                    run.summary_counts = run.summary_counts.apply(&progress.delta, progress.total);
                    merge_failures(&mut run.failure_summary, &progress.failures);
                }
                RunEvent::Completed(completed) => {
                    run.status = RunStatus::Completed;
                    run.outcome = completed.outcome;
                    run.completed_at = Some(completed.completed_at);
                    merge_failures(&mut run.failure_summary, &completed.failures);
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
        (RunStatus::Queued, RunCommand::Start(Start { at })) => {
            RunEvent::Started(RunStarted { started_at: at })
        }
        (RunStatus::Running, RunCommand::ReportProgress(report)) => progressed(run, report)?,
        (RunStatus::Running, RunCommand::Complete(complete)) => completed(run, complete)?,
        (RunStatus::Queued, RunCommand::DispatchFailed(DispatchFailed { failure, at })) => {
            RunEvent::Completed(RunCompleted {
                outcome: Outcome::Failed,
                reason: CompletionReason::DispatchFailed,
                failures: vec![FailureEntry::from_report(&failure)],
                completed_at: at,
            })
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
        failures: report
            .failures
            .iter()
            .map(FailureEntry::from_report)
            .collect(),
        reported_at: report.at,
    }))
}

fn completed(run: &RunSnapshot, complete: Complete) -> Result<RunEvent, RunRejection> {
    let outcome = match complete.outcome {
        Some(outcome) if outcome.is_settable() => outcome,
        Some(outcome) => return Err(RunRejection::OutcomeNotAllowed { outcome }),
        None => derive_outcome(&run.summary_counts, &run.failure_summary),
    };
    Ok(RunEvent::Completed(RunCompleted {
        outcome,
        reason: CompletionReason::Finished,
        failures: Vec::new(),
        completed_at: complete.at,
    }))
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
