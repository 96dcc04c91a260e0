//! A row of the OperationRun read model (`public.operation_runs`), and the run it holds as the
//! domain knows it.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use runledger_core::{
    Initiator, Outcome, RunIdentityHash, RunLimits, RunSnapshot, RunStatus, RunType, TenantId,
    UserId,
};
use serde_json::Value;
use uuid::Uuid;

/// A row of the read model (`public.operation_runs`).
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
}

impl OperationRunRow {
    /// The columns of a row, in order, for `SELECT`s of `public.operation_runs`.
    pub const COLUMNS: &'static str = run_columns!();

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
            // Not yet in the read model (issue 13): shown empty until the columns exist.
            limits: RunLimits::default(),
            worker: None,
            last_progress_at: None,
            cancel_requested: None,
            completion: None,
        })
    }
}
