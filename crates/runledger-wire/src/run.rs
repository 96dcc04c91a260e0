//! The OperationRun as the API shows it: the seed's fields, `version`, `done` and `view_url`,
//! and the lifecycle fields once the read model holds them.
//!
//! Fields are declared in the order the domain's OperationRun JSON lists them when serialized
//! (alphabetical: it is built as a JSON map), so the server's bytes are the same as before this
//! type existed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Where a run is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Recorded, not started by a worker yet.
    Queued,
    /// A worker is on it.
    Running,
    /// Finished; nothing follows.
    Completed,
}

/// How a run ended (`pending` until it has).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Not completed yet.
    Pending,
    /// Every item succeeded.
    Succeeded,
    /// Some items succeeded, some failed.
    PartiallySucceeded,
    /// Nothing succeeded, or dispatch failed, or a limit passed.
    Failed,
    /// Cancelled on request.
    Cancelled,
}

impl Outcome {
    /// The name on the wire, e.g. `partially_succeeded`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Succeeded => "succeeded",
            Outcome::PartiallySucceeded => "partially_succeeded",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// The run's counts: increments add up; `total` is absent until a worker reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SummaryCounts {
    /// Items that failed.
    pub failed: u64,
    /// Items that were skipped.
    pub skipped: u64,
    /// Items that succeeded.
    pub success: u64,
    /// How many items the run will process, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// One entry of the run's `failure_summary`: failures merged by code, sanitized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FailureEntry {
    /// The stable code, e.g. `graph.throttled`.
    pub code: String,
    /// How many items failed this way.
    pub count: u64,
    /// The most recent message reported for the code, secrets stripped, at most 500 characters.
    pub message: String,
}

/// The limits a run was queued with; an absent limit never ends the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunLimits {
    /// How long it may run without a heartbeat (or progress report), in seconds.
    pub heartbeat_timeout_seconds: Option<u32>,
    /// How long it may run once started, in seconds.
    pub run_deadline_seconds: Option<u32>,
    /// How long it may stay queued, in seconds.
    pub start_deadline_seconds: Option<u32>,
}

/// Which limit ended a timed-out run, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimeOut {
    /// The failure code recorded for it, e.g. `run.heartbeat_timeout`.
    pub code: String,
    /// The last heartbeat the sweeper knew of.
    #[serde(with = "crate::time::option")]
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// `start_deadline`, `run_deadline` or `heartbeat_timeout`.
    pub limit: String,
    /// The limit, in seconds.
    pub limit_seconds: u32,
    /// When it passed.
    #[serde(with = "crate::time")]
    pub passed_at: DateTime<Utc>,
}

/// A run, as every route that shows one answers it (the OperationRun read model's row, or a
/// command's result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OperationRun {
    /// Why cancellation was asked for, if a reason was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// Whether someone asked to cancel the run: its worker should stop and complete it
    /// `cancelled`. Absent until the read model holds the lifecycle fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_requested: Option<bool>,
    /// When cancellation was asked for.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// When it completed.
    #[serde(with = "crate::time::option")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Why it completed: `finished`, `dispatch_failed`, `cancelled` or `timed_out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_reason: Option<String>,
    /// Run-specific metadata, as queued.
    #[schema(value_type = Object)]
    pub context: Value,
    /// When it was queued.
    #[serde(with = "crate::time")]
    pub created_at: DateTime<Utc>,
    /// Whether it has completed (nothing more will change).
    pub done: bool,
    /// Failures merged by code.
    pub failure_summary: Vec<FailureEntry>,
    /// When its heartbeat timeout passes: from its last heartbeat, or from its start until the
    /// first.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub heartbeat_deadline_at: Option<DateTime<Utc>>,
    /// The run id.
    pub id: Uuid,
    /// The identity inputs it was queued with (runs of one tenant, type and identity are
    /// deduplicated while active).
    #[schema(value_type = Object)]
    pub identity: Value,
    /// Who started it: a user's name as remembered, or `System`.
    pub initiator_name: String,
    /// Its latest heartbeat: the later of the last heartbeat and the last progress report.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// When the last progress report arrived.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub last_progress_at: Option<DateTime<Utc>>,
    /// The limits it was queued with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<RunLimits>,
    /// How it ended, or `pending`.
    pub outcome: Outcome,
    /// When the run deadline passes, if it has one and has started.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub run_deadline_at: Option<DateTime<Utc>>,
    /// SHA-256 of the tenant, the type and the identity inputs, in hex.
    pub run_identity_hash: String,
    /// When the start deadline passes, if it has one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::option"
    )]
    pub start_deadline_at: Option<DateTime<Utc>>,
    /// When a worker started it.
    #[serde(with = "crate::time::option")]
    pub started_at: Option<DateTime<Utc>>,
    /// Where it is in its lifecycle.
    pub status: RunStatus,
    /// Its counts.
    pub summary_counts: SummaryCounts,
    /// The tenant.
    pub tenant_id: i64,
    /// Which limit ended it, for a timed-out run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_out: Option<TimeOut>,
    /// The run type, e.g. `inventory.sync`.
    #[serde(rename = "type")]
    pub run_type: String,
    /// When it last changed.
    #[serde(with = "crate::time")]
    pub updated_at: DateTime<Utc>,
    /// The initiating user, if a user started it.
    pub user_id: Option<i64>,
    /// The run's version: the number of its events (pass it as `If-Match` to pin it).
    pub version: u64,
    /// The run's monitoring page.
    pub view_url: String,
    /// The worker that started it, if its start named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

impl OperationRun {
    /// Whether someone asked to cancel the run (false while the read model does not say).
    pub fn is_cancel_requested(&self) -> bool {
        self.cancel_requested.unwrap_or(false)
    }
}
