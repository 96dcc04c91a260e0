//! Rejections of commands by the domain rules, and parse errors of values at the edge.

use crate::command::CommandKind;
use crate::ids::RunId;
use crate::status::{Outcome, RunStatus};

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
    /// A count would overflow 64 bits.
    #[error("count overflow")]
    CountOverflow,
    /// An outcome a command may not set: `pending` is not terminal, `cancelled` is reserved.
    #[error("outcome {outcome} cannot be set by a command")]
    OutcomeNotAllowed {
        /// The outcome asked for.
        outcome: Outcome,
    },
}
