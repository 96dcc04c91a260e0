//! A row of the OperationRun read model (`public.operation_runs`), and the run it holds as the
//! domain knows it.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use runledger_core::{
    Initiator, Outcome, RunCancelRequested, RunIdentityHash, RunLimits, RunSnapshot, RunStatus,
    RunType, TenantId, UserId, WorkerId,
};
use serde_json::Value;
use uuid::Uuid;

/// A row of the read model (`public.operation_runs`).
///
/// The lifecycle columns (new in the apply code's version 2) are `#[sqlx(default)]`: see
/// [`Self::COLUMNS`].
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OperationRunRow {
    /// The run id.
    pub id: Uuid,
    /// The owning tenant.
    pub tenant_id: i64,
    /// The initiating user; none for system runs.
    pub user_id: Option<i64>,
    /// The initiator's name at queue time, or `System`.
    pub initiator_name: String,
    /// The run type, e.g. `inventory.sync`.
    #[sqlx(rename = "type")]
    pub run_type: String,
    /// `queued`, `running` or `completed`.
    pub status: String,
    /// `pending`, `succeeded`, `partially_succeeded`, `failed` or `cancelled`.
    pub outcome: String,
    /// The dedupe key (64 hex digits).
    pub run_identity_hash: String,
    /// `{total?, success, failed, skipped}`.
    pub summary_counts: Value,
    /// `[{code, message, count}]`.
    pub failure_summary: Value,
    /// Run-specific metadata.
    pub context: Value,
    /// When execution began.
    pub started_at: Option<DateTime<Utc>>,
    /// When execution finished.
    pub completed_at: Option<DateTime<Utc>>,
    /// When the run was queued.
    pub created_at: DateTime<Utc>,
    /// When its latest event happened.
    pub updated_at: DateTime<Utc>,
    /// The identity inputs.
    pub identity: Value,
    /// The stream version folded so far.
    pub version: i64,
    /// The log position of the last event folded.
    pub last_position: i64,
    /// The transaction id of the last event folded.
    pub last_tx_id: i64,
    /// When the last event folded was recorded (database clock).
    pub last_event_at: DateTime<Utc>,
    /// How long it may stay queued, in seconds.
    #[sqlx(default)]
    pub start_deadline_seconds: Option<i32>,
    /// How long it may run once started, in seconds.
    #[sqlx(default)]
    pub run_deadline_seconds: Option<i32>,
    /// How long it may run without a heartbeat, in seconds.
    #[sqlx(default)]
    pub heartbeat_timeout_seconds: Option<i32>,
    /// When its start deadline passes.
    #[sqlx(default)]
    pub start_deadline_at: Option<DateTime<Utc>>,
    /// When its run deadline passes (once started).
    #[sqlx(default)]
    pub run_deadline_at: Option<DateTime<Utc>>,
    /// When its heartbeat timeout passes as the log alone tells it (from the start or the
    /// latest progress report); the stored heartbeat ([`Self::heartbeat_at`]) may push it later.
    #[sqlx(default)]
    pub log_heartbeat_deadline_at: Option<DateTime<Utc>>,
    /// The worker that started it, when the start named one.
    #[sqlx(default)]
    pub worker: Option<String>,
    /// When a worker last reported progress.
    #[sqlx(default)]
    pub last_progress_at: Option<DateTime<Utc>>,
    /// When someone asked it to cancel.
    #[sqlx(default)]
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// Why, in the requester's words (sanitized).
    #[sqlx(default)]
    pub cancel_reason: Option<String>,
    /// Why it completed: the `Completed` event's reason with what it records.
    #[sqlx(default)]
    pub completion: Option<Value>,
    /// The last heartbeat stored outside the log (`public.run_heartbeats`), which the public
    /// view joins in; not a projected column (heartbeats are not events), so it is absent,
    /// and `None`, where a row is read from the projection's own table.
    #[sqlx(default)]
    pub heartbeat_at: Option<DateTime<Utc>>,
}

impl OperationRunRow {
    /// The columns of a row for `SELECT`s of `public.operation_runs`: all the view has. While
    /// an upgrade rebuilds the read model the view still shows the version built before it,
    /// whose columns may be fewer: a row of it reads the columns it lacks (all `#[sqlx(default)]`)
    /// as none, and the query does not fail (design brief §5: no error during a rebuild).
    pub const COLUMNS: &'static str = "*";

    /// The run's state as the domain knows it.
    ///
    /// # Errors
    /// A description of the first column that does not hold a valid domain value.
    pub fn to_snapshot(&self) -> Result<RunSnapshot, String> {
        let invalid = |column: &str, error: &dyn std::fmt::Display| {
            format!(
                "read model row {} has an invalid {column}: {error}",
                self.id
            )
        };
        let user_id = self
            .user_id
            .map(UserId::new)
            .transpose()
            .map_err(|e| invalid("user_id", &e))?;
        Ok(RunSnapshot {
            id: self.id.into(),
            tenant_id: TenantId::new(self.tenant_id).map_err(|e| invalid("tenant_id", &e))?,
            initiator: Initiator {
                user_id,
                name: self.initiator_name.clone(),
            },
            run_type: RunType::parse(&self.run_type).map_err(|e| invalid("type", &e))?,
            status: RunStatus::from_str(&self.status).map_err(|e| invalid("status", &e))?,
            outcome: Outcome::from_str(&self.outcome).map_err(|e| invalid("outcome", &e))?,
            run_identity_hash: RunIdentityHash::from_str(&self.run_identity_hash)
                .map_err(|e| invalid("run_identity_hash", &e))?,
            identity: self.identity.clone(),
            summary_counts: serde_json::from_value(self.summary_counts.clone())
                .map_err(|e| invalid("summary_counts", &e))?,
            failure_summary: serde_json::from_value(self.failure_summary.clone())
                .map_err(|e| invalid("failure_summary", &e))?,
            context: self.context.clone(),
            started_at: self.started_at,
            completed_at: self.completed_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version.unsigned_abs(),
            limits: RunLimits::from_seconds(
                self.start_deadline_seconds.map(i64::from),
                self.run_deadline_seconds.map(i64::from),
                self.heartbeat_timeout_seconds.map(i64::from),
            )
            .map_err(|e| invalid(e.field, &e.reason))?,
            worker: self
                .worker
                .as_deref()
                .map(WorkerId::parse)
                .transpose()
                .map_err(|e| invalid("worker", &e))?,
            last_progress_at: self.last_progress_at,
            cancel_requested: self
                .cancel_requested_at
                .map(|requested_at| RunCancelRequested {
                    reason: self.cancel_reason.clone(),
                    requested_at,
                }),
            completion: self
                .completion
                .clone()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| invalid("completion", &e))?,
        })
    }
}
