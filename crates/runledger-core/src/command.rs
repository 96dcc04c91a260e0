//! The commands a run accepts. They carry their time and ids: the core never makes either.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::counts::{ProgressDelta, SummaryCounts};
use crate::failure::FailureReport;
use crate::identity::RunIdentity;
use crate::ids::{RunId, TenantId};
use crate::initiator::Initiator;
use crate::limits::RunLimits;
use crate::run_type::RunType;
use crate::status::Outcome;
use crate::worker::WorkerId;

/// A request to change a run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunCommand {
    /// Queue a new run.
    Queue(QueueRun),
    /// Mark a queued run as running.
    Start(Start),
    /// Add a worker's progress to a running run.
    ReportProgress(ReportProgress),
    /// Complete a running run.
    Complete(Complete),
    /// Complete a queued run as failed because it could not be dispatched.
    DispatchFailed(DispatchFailed),
    /// Cancel a queued run at once, or ask a running run's worker to stop.
    Cancel(Cancel),
    /// Complete a run as failed because one of its limits has passed (the sweeper's command).
    TimeOut(TimeOut),
}

/// Queue a new run.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRun {
    /// The id the caller chose for the new run.
    pub run_id: RunId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The run type.
    pub run_type: RunType,
    /// The identity inputs (deduplication key material).
    pub identity: RunIdentity,
    /// Who starts it.
    pub initiator: Initiator,
    /// Run-specific metadata (a JSON object).
    pub context: Value,
    /// The lifecycle limits, already resolved with the server's and the run type's defaults:
    /// the core records them as given.
    pub limits: RunLimits,
    /// Now, as the caller's clock says.
    pub at: DateTime<Utc>,
}

/// Mark a queued run as running.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    /// The worker starting it. Queues deliver jobs more than once: the same worker starting a
    /// run it already started changes nothing, another worker is refused with the holder's id.
    pub worker: Option<WorkerId>,
    /// Now, as the caller's clock says.
    pub at: DateTime<Utc>,
}

/// Add a worker's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportProgress {
    /// Increments since this worker's previous report.
    pub delta: ProgressDelta,
    /// Sets or raises the total.
    pub total: Option<u64>,
    /// Failures to merge into the summary (messages are sanitized by `decide`).
    pub failures: Vec<FailureReport>,
    /// Now, as the caller's clock says.
    pub at: DateTime<Utc>,
}

/// Complete a running run.
#[derive(Debug, Clone, PartialEq)]
pub struct Complete {
    /// The outcome; derived from the counts (final ones included) when absent. `cancelled` only
    /// after a cancel request.
    pub outcome: Option<Outcome>,
    /// The absolute counts the run finished with, checked like progress: no count goes
    /// backwards, the total is not lowered, and the processed items do not exceed it.
    pub final_counts: Option<SummaryCounts>,
    /// Failures to merge into the summary in the same event (messages are sanitized by `decide`).
    pub failures: Vec<FailureReport>,
    /// Now, as the caller's clock says.
    pub at: DateTime<Utc>,
}

/// Complete a queued run as failed: dispatching it to a worker failed.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchFailed {
    /// Why dispatch failed (the message is sanitized by `decide`).
    pub failure: FailureReport,
    /// Now, as the caller's clock says.
    pub at: DateTime<Utc>,
}

/// Cancel a run: a queued run completes `cancelled` at once; a running run records the request,
/// which its worker learns and acknowledges by completing `cancelled`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancel {
    /// Why, in the requester's words (raw: `decide` sanitizes and bounds it).
    pub reason: Option<String>,
    /// Now, as the caller's clock says.
    pub at: DateTime<Utc>,
}

/// Complete a run whose limit has passed as `failed`: the sweeper's command.
///
/// The sweeper only finds candidates; `decide` checks again, against the state the command path
/// loaded, that a limit has passed at `at`, and refuses with `NotOverdue` when none has.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeOut {
    /// Now, as the sweeper's clock says.
    pub at: DateTime<Utc>,
    /// The run's last heartbeat as stored outside the log, if it ever sent one; progress reports
    /// in the log count as heartbeats too.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
}

/// The kind of a command, for rejections and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// [`RunCommand::Queue`].
    Queue,
    /// [`RunCommand::Start`].
    Start,
    /// [`RunCommand::ReportProgress`].
    ReportProgress,
    /// [`RunCommand::Complete`].
    Complete,
    /// [`RunCommand::DispatchFailed`].
    DispatchFailed,
    /// [`RunCommand::Cancel`].
    Cancel,
    /// [`RunCommand::TimeOut`].
    TimeOut,
}

impl CommandKind {
    /// The verb, as in API paths and messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            CommandKind::Queue => "queue",
            CommandKind::Start => "start",
            CommandKind::ReportProgress => "progress",
            CommandKind::Complete => "complete",
            CommandKind::DispatchFailed => "dispatch-failed",
            CommandKind::Cancel => "cancel",
            CommandKind::TimeOut => "time-out",
        }
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RunCommand {
    /// The kind of this command.
    pub const fn kind(&self) -> CommandKind {
        match self {
            RunCommand::Queue(_) => CommandKind::Queue,
            RunCommand::Start(_) => CommandKind::Start,
            RunCommand::ReportProgress(_) => CommandKind::ReportProgress,
            RunCommand::Complete(_) => CommandKind::Complete,
            RunCommand::DispatchFailed(_) => CommandKind::DispatchFailed,
            RunCommand::Cancel(_) => CommandKind::Cancel,
            RunCommand::TimeOut(_) => CommandKind::TimeOut,
        }
    }
}
