//! Rejections of commands by the domain rules, and parse errors of values at the edge.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::command::CommandKind;
use crate::ids::RunId;
use crate::status::{Outcome, RunStatus};
use crate::worker::WorkerId;

/// Why a value from the outside is not a valid domain value.
///
/// `field` names the offending input so the HTTP layer can say which field is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ParseError {
    /// The input field, e.g. `type` or `tenant_id`.
    pub field: &'static str,
    /// What is wrong with it, lowercase, no trailing period.
    pub reason: String,
}

impl ParseError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// A command the domain refuses: the rule it would break.
///
/// Rejections are final for the given state: retrying the same command against the same state
/// gives the same rejection. Callers report them (HTTP 409 or 422); they are never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunRejection {
    /// A `Queue` for a run id that already has a history.
    #[error("run {run_id} already exists")]
    AlreadyExists {
        /// The existing run.
        run_id: RunId,
    },
    /// Any command but `Queue` on a run with no history.
    #[error("run not found")]
    NotFound,
    /// The command is not allowed in the run's current status (nothing follows `completed`).
    #[error("cannot {command} a run that is {status}")]
    InvalidTransition {
        /// What was asked.
        command: CommandKind,
        /// Where the run is.
        status: RunStatus,
    },
    /// A progress report that changes nothing.
    #[error("progress report has no counts, no total and no failures")]
    EmptyProgress,
    /// A total lower than one already reported: counts never go backwards.
    #[error("total {given} is below the known total {known}")]
    TotalDecreased {
        /// The total the run already has.
        known: u64,
        /// The total in the report.
        given: u64,
    },
    /// Processed items (success + failed + skipped) would exceed the known total.
    #[error("processed count {processed} would exceed the total {total}")]
    CountsExceedTotal {
        /// The known total after the report.
        total: u64,
        /// success + failed + skipped after the report.
        processed: u64,
    },
    /// A final count below the one already reported: counts never go backwards.
    #[error("final {count} count {given} is below the reported {known}")]
    CountDecreased {
        /// Which count: `success`, `failed` or `skipped`.
        count: &'static str,
        /// The count the run already has.
        known: u64,
        /// The final count given.
        given: u64,
    },
    /// A count would overflow 64 bits.
    #[error("count overflow")]
    CountOverflow,
    /// An outcome no command may set: `pending` is not terminal.
    #[error("outcome {outcome} cannot be set by a command")]
    OutcomeNotAllowed {
        /// The outcome asked for.
        outcome: Outcome,
    },
    /// A completion as `cancelled` of a run nobody asked to cancel: only the cancel path
    /// produces `cancelled`.
    #[error("outcome cancelled needs a cancel request first")]
    CancelNotRequested,
    /// A start naming a worker, of a run another worker (or a start naming none) already began.
    #[error("{}", held_by(holder.as_ref()))]
    HeldByAnotherWorker {
        /// The worker that started the run; `None` when its start named no worker.
        holder: Option<WorkerId>,
    },
    /// A time-out of a run none of whose limits has passed at the command's time: the sweeper
    /// acted on a stale candidate (a heartbeat or a completion came in between).
    #[error("{}", not_overdue(*next_deadline_at))]
    NotOverdue {
        /// When the first of its limits will pass, as of the command; `None` when none binds.
        next_deadline_at: Option<DateTime<Utc>>,
    },
}

fn held_by(holder: Option<&WorkerId>) -> String {
    match holder {
        Some(worker) => format!("run was started by worker {worker}"),
        None => "run was started without a worker id".to_owned(),
    }
}

fn not_overdue(next: Option<DateTime<Utc>>) -> String {
    match next {
        Some(at) => format!(
            "no limit of the run has passed; the next passes at {}",
            at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ),
        None => "no limit binds the run".to_owned(),
    }
}
