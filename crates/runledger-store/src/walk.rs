//! The log walk: the log in safe order, batch by batch, the next batch on its way while the
//! caller works on the current one; up to a fixed horizon, or following the log as it grows.
//!
//! Every reader of the whole log walks it this way: projectors (from their checkpoints, on and
//! on), the live tail, and the auditor's verifications, exports and anchors (up to the horizon
//! they started with, so that what they read is a consistent cut of the log that concurrent
//! writers cannot extend while it runs, however fast they append; docs/adr/0002).
//!
//! Reading ahead is sound because a read is a correct prefix of the log after its cursor
//! whenever it is done: nothing can commit behind a cursor that stays below the horizon.

use chrono::{DateTime, Utc};
use runledger_core::TenantId;
use tokio::task::JoinHandle;

use crate::error::StoreError;
use crate::read::{EventReader, LogCursor};
use crate::schema::RecordedEvent;

/// A cut of the log: every transaction below `tx_id` had finished at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    /// The oldest transaction still running at `at` (`pg_snapshot_xmin`).
    pub tx_id: u64,
    /// The database clock then.
    pub at: DateTime<Utc>,
}

impl Horizon {
    /// Whether every event up to `cursor` lies below the horizon.
    pub fn covers(&self, cursor: LogCursor) -> bool {
        cursor.tx_id < self.tx_id
    }
}

impl EventReader {
    /// The horizon now: a walk up to it reads every event committed by now and no later one.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn horizon(&self) -> Result<Horizon, StoreError> {
        let (tx_id, at): (i64, DateTime<Utc>) = sqlx::query_as(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, clock_timestamp()",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Horizon {
            tx_id: tx_id.unsigned_abs(),
            at,
        })
    }

    /// A walk of the events after `after` (of `tenant`, if given) that follows the log as it
    /// grows: a batch shorter than `batch` means it is caught up for now, and the next one is
    /// read when asked for. The first read starts at once.
    pub fn walk(&self, after: LogCursor, tenant: Option<TenantId>, batch: u32) -> LogWalk {
        LogWalk::new(self.clone(), after, tenant, batch, None)
    }

    /// A walk of the events after `after` (of `tenant`, if given) below `horizon`: it ends
    /// there. The first read starts at once.
    pub fn walk_to(
        &self,
        horizon: Horizon,
        after: LogCursor,
        tenant: Option<TenantId>,
        batch: u32,
    ) -> LogWalk {
        LogWalk::new(self.clone(), after, tenant, batch, Some(horizon))
    }
}

type PendingRead = JoinHandle<Result<Vec<RecordedEvent>, StoreError>>;

/// The log (of one tenant, or all) after a cursor, in safe order, batch by batch; made by
/// [`EventReader::walk`] or [`EventReader::walk_to`]. Dropping it cancels a read ahead.
#[derive(Debug)]
pub struct LogWalk {
    reader: EventReader,
    tenant: Option<TenantId>,
    batch: u32,
    horizon: Option<Horizon>,
    /// After the last event handed out: where the next batch starts.
    cursor: LogCursor,
    /// The read of the batch after `cursor`, started ahead.
    pending: Option<PendingRead>,
    /// A walk to a horizon has reached it.
    ended: bool,
}

impl LogWalk {
    fn new(
        reader: EventReader,
        after: LogCursor,
        tenant: Option<TenantId>,
        batch: u32,
        horizon: Option<Horizon>,
    ) -> Self {
        let mut walk = LogWalk {
            reader,
            tenant,
            batch: batch.max(1),
            horizon,
            cursor: after,
            pending: None,
            ended: false,
        };
        walk.read_ahead();
        walk
    }

    /// Where the next batch starts: after the last event handed out (or where the walk began).
    pub fn cursor(&self) -> LogCursor {
        self.cursor
    }

    /// Whether the walk has nothing more to read right now: a walk to a horizon has reached
    /// it; a walk that follows the log has read all there was (its next batch is read afresh).
    pub fn is_caught_up(&self) -> bool {
        self.pending.is_none()
    }

    /// Whether committed events (in the walk's scope) lie after its cursor that it could not
    /// read yet: after a walk that follows the log caught up, they are held back by a
    /// transaction still running. One index entry answers it.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn has_held_back_events(&self) -> Result<bool, StoreError> {
        self.reader.has_events_after(self.cursor, self.tenant).await
    }

    /// The next batch in safe order, or `None`: at the horizon (for good), or (for a walk that
    /// follows the log) when nothing is readable yet. When the batch is full, the read of the
    /// one after it is started before this returns.
    ///
    /// # Errors
    /// [`StoreError`] when a read fails; the walk stays where it was, and the next call reads
    /// the same batch again.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        if self.ended {
            return Ok(None);
        }
        let read = match self.pending.take() {
            Some(pending) => match pending.await {
                Ok(read) => read,
                Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                // Cancelled with its runtime: read again.
                Err(_) => self.read().await,
            },
            None => self.read().await,
        };
        let mut batch = read?;
        let full = batch.len() >= self.batch as usize;
        if let Some(horizon) = self.horizon {
            // Transactions at or above the horizon had not finished when the walk began: their
            // events belong to a later walk.
            let below = batch.partition_point(|event| event.tx_id < horizon.tx_id);
            let reached_horizon = below < batch.len() || !full;
            batch.truncate(below);
            self.ended = reached_horizon;
        }
        if let Some(last) = batch.last() {
            self.cursor = LogCursor::after(last);
        }
        if full && !self.ended {
            self.read_ahead();
        }
        Ok((!batch.is_empty()).then_some(batch))
    }

    /// Starts reading the batch after the cursor, on a task of its own.
    fn read_ahead(&mut self) {
        let (reader, after, tenant, batch) =
            (self.reader.clone(), self.cursor, self.tenant, self.batch);
        self.pending = Some(tokio::spawn(async move {
            reader.read_log(after, batch, tenant).await
        }));
    }

    async fn read(&self) -> Result<Vec<RecordedEvent>, StoreError> {
        self.reader
            .read_log(self.cursor, self.batch, self.tenant)
            .await
    }
}

impl Drop for LogWalk {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.abort();
        }
    }
}
