//! Reading the log up to a fixed horizon, in batches, the next batch on its way while the caller
//! works on the current one.
//!
//! A walk stops at the horizon it started with: every transaction below it had finished when
//! the walk began, so what the walk reads is a consistent cut of the log (docs/adr/0002) that
//! concurrent writers cannot extend while it runs, however fast they append.

use chrono::{DateTime, Utc};
use runledger_core::TenantId;
use runledger_store::{EventReader, LogCursor, RecordedEvent, StoreError};
use sqlx::PgPool;
use tokio::task::JoinHandle;

/// How many events one read of the log fetches.
pub(crate) const BATCH: u32 = 2000;

/// A cut of the log: every transaction below `tx_id` had finished at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    /// The oldest transaction still running at `at` (`pg_snapshot_xmin`).
    pub tx_id: u64,
    /// The database clock then.
    pub at: DateTime<Utc>,
}

impl Horizon {
    /// The horizon now.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn now(pool: &PgPool) -> Result<Horizon, sqlx::Error> {
        let (tx_id, at): (i64, DateTime<Utc>) = sqlx::query_as(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, clock_timestamp()",
        )
        .fetch_one(pool)
        .await?;
        Ok(Horizon {
            tx_id: tx_id.unsigned_abs(),
            at,
        })
    }

    /// Whether every event up to `cursor` lies below the horizon.
    pub fn covers(&self, cursor: LogCursor) -> bool {
        cursor.tx_id < self.tx_id
    }
}

type PendingRead = JoinHandle<Result<Vec<RecordedEvent>, StoreError>>;

/// The log (of one tenant, or all) after a cursor and below a horizon, in safe order.
#[derive(Debug)]
pub struct LogWalk {
    reader: EventReader,
    tenant: Option<TenantId>,
    horizon: u64,
    pending: Option<PendingRead>,
}

impl LogWalk {
    /// A walk of the events after `after` (of `tenant`, if given) below `horizon`; the first
    /// read starts at once.
    pub fn new(
        reader: EventReader,
        after: LogCursor,
        tenant: Option<TenantId>,
        horizon: Horizon,
    ) -> Self {
        let mut walk = LogWalk {
            reader,
            tenant,
            horizon: horizon.tx_id,
            pending: None,
        };
        walk.read_after(after);
        walk
    }

    fn read_after(&mut self, after: LogCursor) {
        let (reader, tenant) = (self.reader.clone(), self.tenant);
        self.pending = Some(tokio::spawn(async move {
            reader.read_log(after, BATCH, tenant).await
        }));
    }

    /// The next batch, or `None` at the horizon. The read of the batch after it is started
    /// before this returns.
    ///
    /// # Errors
    /// [`StoreError`] when a read fails.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        let Some(pending) = self.pending.take() else {
            return Ok(None);
        };
        let mut batch = pending
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))?;
        let full = batch.len() == BATCH as usize;
        // Transactions at or above the horizon had not finished when the walk began: their
        // events belong to a later walk.
        let below = batch.partition_point(|event| event.tx_id < self.horizon);
        let reached_horizon = below < batch.len();
        batch.truncate(below);
        if let Some(last) = batch.last()
            && full
            && !reached_horizon
        {
            self.read_after(LogCursor::after(last));
        }
        Ok((!batch.is_empty()).then_some(batch))
    }
}
