//! The commands a run accepts. They carry their time and ids: the core never makes either.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::counts::ProgressDelta;
use crate::failure::FailureReport;
use crate::identity::RunIdentity;
use crate::ids::{RunId, TenantId};
use crate::initiator::Initiator;
use crate::run_type::RunType;
use crate::status::Outcome;

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
    /// Now, as the caller's clock says.
    pub at: DateTime<Utc>,
}

/// Mark a queued run as running.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
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
    /// The outcome; derived from the counts when absent.
    pub outcome: Option<Outcome>,
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
        }
    }
}
