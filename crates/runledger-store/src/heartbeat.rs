//! Heartbeats: each run's last sign of life, kept in `run_heartbeats`, outside the log.
//!
//! A heartbeat is a liveness signal, not a fact anyone audits, so it is upserted, never appended
//! (docs/adr/0013). The log records one only where it decides something: a time-out's
//! `Completed` carries the last heartbeat the sweeper measured it from. Progress reports are
//! events and count as heartbeats too; the API records them here as well, so that the sweeper's
//! candidates and the read model's view see them before the projector has applied them.

use chrono::{DateTime, Utc};
use runledger_core::{RunId, RunSnapshot, RunStatus, TenantId};

use crate::command::CommandHandler;
use crate::error::StoreError;

/// A heartbeat the store recorded, and the run it was recorded for.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    /// The run as it stands (a worker reads `cancel_requested` from it).
    pub run: Box<RunSnapshot>,
    /// The heartbeat as now stored: this one, or a later one already stored.
    pub last_heartbeat_at: DateTime<Utc>,
    /// The global position of the run's latest event.
    pub position: i64,
}

/// A heartbeat that was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    /// The tenant has no such run.
    #[error("run not found")]
    NotFound,
    /// The run is queued: a worker starts it before it heartbeats.
    #[error("cannot heartbeat a run that is queued: start it first")]
    NotStarted,
    /// The run has completed: its worker should stop.
    #[error("{}", completed_detail(run))]
    Completed {
        /// The run, completed.
        run: Box<RunSnapshot>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `the run completed (failed, timed_out): stop working on it`.
fn completed_detail(run: &RunSnapshot) -> String {
    let reason = run
        .completion
        .as_ref()
        .map_or("finished", |reason| reason.as_str());
    format!(
        "the run has completed ({}, {reason}): stop working on it",
        run.outcome.as_str()
    )
}

impl CommandHandler {
    /// Records a heartbeat of a running run at `at`, and answers the run as it stands, so that
    /// its worker learns of a cancel request.
    ///
    /// # Errors
    /// [`HeartbeatError::NotFound`] when the tenant has no such run (another tenant's run
    /// included); [`HeartbeatError::NotStarted`] for a queued run;
    /// [`HeartbeatError::Completed`] for a completed one; [`HeartbeatError::Store`] when the
    /// store fails.
    #[tracing::instrument(skip_all, fields(%tenant, %run))]
    pub async fn heartbeat(
        &self,
        tenant: TenantId,
        run: RunId,
        at: DateTime<Utc>,
    ) -> Result<Heartbeat, HeartbeatError> {
        let (snapshot, position) = self
            .load_with_position(tenant, run)
            .await?
            .ok_or(HeartbeatError::NotFound)?;
        match snapshot.status {
            RunStatus::Queued => return Err(HeartbeatError::NotStarted),
            RunStatus::Completed => {
                return Err(HeartbeatError::Completed {
                    run: Box::new(snapshot),
                });
            }
            RunStatus::Running => {}
        }
        let last_heartbeat_at = self.record_heartbeat(tenant, run, at).await?;
        Ok(Heartbeat {
            run: Box::new(snapshot),
            last_heartbeat_at,
            position,
        })
    }

    /// Stores `at` as the run's last heartbeat unless a later one is stored (the clocks of
    /// several servers differ a little: the stored heartbeat never moves back); returns the
    /// heartbeat stored. It does not check the run: callers record heartbeats of runs they
    /// have just seen running (a heartbeat, a progress report). The row is the heartbeat's
    /// only record, so its commit waits for the WAL flush like an append's.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the database fails.
    pub async fn record_heartbeat(
        &self,
        tenant: TenantId,
        run: RunId,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        self.upsert_heartbeat(tenant, run, at, Flush::Wait).await
    }

    /// [`Self::record_heartbeat`] for a progress report that has just been appended: the
    /// report's event already records its time durably (the domain counts a run's last progress
    /// as a heartbeat), so the row is only a copy the sweeper and the read model's view see
    /// before the projector applies the event, and its commit does not wait for the WAL flush.
    /// A crash that loses the copy loses no heartbeat (docs/adr/0013).
    ///
    /// # Errors
    /// [`StoreError::Database`] when the database fails.
    pub async fn record_progress_heartbeat(
        &self,
        tenant: TenantId,
        run: RunId,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        self.upsert_heartbeat(tenant, run, at, Flush::Skip).await
    }

    async fn upsert_heartbeat(
        &self,
        tenant: TenantId,
        run: RunId,
        at: DateTime<Utc>,
        flush: Flush,
    ) -> Result<DateTime<Utc>, StoreError> {
        // One statement either way: `set_config(…, true)` lasts to the end of the statement's
        // own transaction, its commit included; waiting keeps the session's setting.
        let stored = sqlx::query_scalar(
            "INSERT INTO run_heartbeats (tenant_id, run_id, last_heartbeat_at) \
             SELECT $1, $2, $3 FROM (SELECT set_config('synchronous_commit', \
                 coalesce($4, current_setting('synchronous_commit')), true)) AS commit_mode \
             ON CONFLICT (tenant_id, run_id) DO UPDATE \
                 SET last_heartbeat_at = GREATEST(run_heartbeats.last_heartbeat_at, EXCLUDED.last_heartbeat_at) \
             RETURNING last_heartbeat_at",
        )
        .bind(tenant.get())
        .bind(run.as_uuid())
        .bind(at)
        .bind(match flush {
            Flush::Wait => None,
            Flush::Skip => Some("off"),
        })
        .fetch_one(self.pool())
        .await?;
        Ok(stored)
    }

    /// The run's last heartbeat as stored, if it ever sent one (progress reports in the log
    /// count too: see `RunSnapshot::last_heartbeat_at`).
    ///
    /// # Errors
    /// [`StoreError::Database`] when the database fails.
    pub async fn stored_heartbeat(
        &self,
        tenant: TenantId,
        run: RunId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let stored = sqlx::query_scalar(
            "SELECT last_heartbeat_at FROM run_heartbeats WHERE tenant_id = $1 AND run_id = $2",
        )
        .bind(tenant.get())
        .bind(run.as_uuid())
        .fetch_optional(self.pool())
        .await?;
        Ok(stored)
    }
}

/// Whether a heartbeat's commit waits for the WAL flush.
#[derive(Debug, Clone, Copy)]
enum Flush {
    Wait,
    Skip,
}
