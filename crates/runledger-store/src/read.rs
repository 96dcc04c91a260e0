//! The read side: one run's stream, and the whole log in safe order.
//!
//! A `position` is assigned at insert but becomes visible at commit, so paging by position alone
//! can skip an event whose transaction commits late. The log is therefore read in
//! `(tx_id, position)` order and only below `pg_snapshot_xmin(pg_current_snapshot())`: every
//! transaction below that horizon has finished, and every later one gets a larger id, so nothing
//! can appear behind a reader's cursor. A long-open writer delays readers; it never loses events
//! (docs/adr/0002-safe-log-order.md).

use std::fmt;
use std::str::FromStr;

use runledger_core::{RunId, TenantId};
use sqlx::PgPool;

use crate::error::StoreError;
use crate::schema::RecordedEvent;

/// The columns of a [`RecordedEvent`], in the order [`EventRow`] reads them.
macro_rules! event_columns {
    () => {
        "position, tx_id::text::bigint AS tx_id, event_id, tenant_id, run_id, version, \
         event_type, schema_version, payload, metadata, recorded_at, prev_hash, hash"
    };
}
pub(crate) use event_columns;

/// A row of `events` as sqlx decodes it.
#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    position: i64,
    tx_id: i64,
    event_id: uuid::Uuid,
    tenant_id: i64,
    run_id: uuid::Uuid,
    version: i64,
    event_type: String,
    schema_version: i32,
    payload: serde_json::Value,
    metadata: serde_json::Value,
    recorded_at: chrono::DateTime<chrono::Utc>,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl TryFrom<EventRow> for RecordedEvent {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        let corrupt = |reason: &str| StoreError::Decode {
            position: row.position,
            event_type: row.event_type.clone(),
            schema_version: row.schema_version,
            reason: reason.to_owned(),
        };
        Ok(RecordedEvent {
            position: row.position,
            tx_id: u64::try_from(row.tx_id).map_err(|_| corrupt("negative tx_id"))?,
            event_id: row.event_id.into(),
            tenant_id: TenantId::new(row.tenant_id).map_err(|_| corrupt("invalid tenant_id"))?,
            run_id: row.run_id.into(),
            version: u64::try_from(row.version).map_err(|_| corrupt("negative version"))?,
            prev_hash: row
                .prev_hash
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("prev_hash is not 32 bytes"))?,
            hash: row
                .hash
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("hash is not 32 bytes"))?,
            event_type: row.event_type,
            schema_version: row.schema_version,
            payload: row.payload,
            metadata: row.metadata,
            recorded_at: row.recorded_at,
        })
    }
}

pub(crate) fn into_events(rows: Vec<EventRow>) -> Result<Vec<RecordedEvent>, StoreError> {
    rows.into_iter().map(RecordedEvent::try_from).collect()
}

/// A reader's place in the log: the `(tx_id, position)` of the last event it has read.
///
/// Written as `tx_id.position` (e.g. `7341.1022`) when it leaves the process (checkpoints,
/// API cursors); [`LogCursor::START`] is before the first event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogCursor {
    /// The writing transaction of the last event read.
    pub tx_id: u64,
    /// The position of the last event read.
    pub position: i64,
}

impl LogCursor {
    /// Before the first event.
    pub const START: LogCursor = LogCursor {
        tx_id: 0,
        position: 0,
    };

    /// The cursor just after `event`.
    pub fn after(event: &RecordedEvent) -> Self {
        Self {
            tx_id: event.tx_id,
            position: event.position,
        }
    }
}

impl fmt::Display for LogCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.tx_id, self.position)
    }
}

/// A log cursor that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a log cursor is `tx_id.position`, two non-negative integers")]
pub struct InvalidCursor;

impl FromStr for LogCursor {
    type Err = InvalidCursor;
    fn from_str(s: &str) -> Result<Self, InvalidCursor> {
        let (tx_id, position) = s.split_once('.').ok_or(InvalidCursor)?;
        let cursor = LogCursor {
            tx_id: tx_id.parse().map_err(|_| InvalidCursor)?,
            position: position.parse().map_err(|_| InvalidCursor)?,
        };
        if cursor.position < 0 {
            Err(InvalidCursor)
        } else {
            Ok(cursor)
        }
    }
}

/// Reads events; cannot append. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventReader {
    pool: PgPool,
}

impl EventReader {
    /// A reader over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool, for callers that compose reads in their own transactions.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// One run's events in stream order, if the run belongs to `tenant` (else none).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure; [`StoreError::Decode`] on a corrupt row.
    pub async fn read_stream(
        &self,
        tenant: TenantId,
        run: RunId,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_after(tenant, run, 0).await
    }

    /// One run's events after `version`, in stream order, if the run belongs to `tenant`:
    /// what a reader that has folded the first `version` events still needs.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure; [`StoreError::Decode`] on a corrupt row.
    pub async fn read_stream_after(
        &self,
        tenant: TenantId,
        run: RunId,
        version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE run_id = $1 AND tenant_id = $2 AND version > $3 ORDER BY version"
        ))
        .bind(run.as_uuid())
        .bind(tenant.get())
        .bind(i64::try_from(version).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        into_events(rows)
    }

    /// Up to `limit` events after `cursor`, in safe order; optionally only one tenant's.
    ///
    /// Never returns an event twice across successive calls that pass the last event's cursor,
    /// and never skips one, whatever the interleaving of concurrent writers.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure; [`StoreError::Decode`] on a corrupt row.
    pub async fn read_log(
        &self,
        after: LogCursor,
        limit: u32,
        tenant: Option<TenantId>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // `ORDER BY events.tx_id`, not `tx_id`: a bare name would mean the selected
        // `tx_id::text::bigint` alias, and sorting by that expression cannot use the
        // `(tx_id, position)` indexes, so every read would scan and sort the rest of the log.
        let rows: Vec<EventRow> = sqlx::query_as(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events \
             WHERE (tx_id, position) > ($1::text::xid8, $2) \
               AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
               AND ($4::bigint IS NULL OR tenant_id = $4) \
             ORDER BY events.tx_id, events.position LIMIT $3"
        ))
        .bind(after.tx_id.to_string())
        .bind(after.position)
        .bind(i64::from(limit))
        .bind(tenant.map(TenantId::get))
        .fetch_all(&self.pool)
        .await?;
        into_events(rows)
    }

    /// Whether any committed event (of `tenant`, if given) lies after `cursor`, readable yet or
    /// not: after a read that was caught up, such events are held back by an open transaction
    /// (or were released just after that read).
    pub(crate) async fn has_events_after(
        &self,
        after: LogCursor,
        tenant: Option<TenantId>,
    ) -> Result<bool, StoreError> {
        let pending: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events \
             WHERE (tx_id, position) > ($1::text::xid8, $2) \
               AND ($3::bigint IS NULL OR tenant_id = $3))",
        )
        .bind(after.tx_id.to_string())
        .bind(after.position)
        .bind(tenant.map(TenantId::get))
        .fetch_one(&self.pool)
        .await?;
        Ok(pending)
    }

    /// How many committed events lie after `cursor` but behind the oldest running transaction:
    /// the events a reader is kept from by a long-open writer (a lag metric).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn blocked_events(&self, after: LogCursor) -> Result<i64, StoreError> {
        let blocked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events \
             WHERE (tx_id, position) > ($1::text::xid8, $2) \
               AND tx_id >= pg_snapshot_xmin(pg_current_snapshot())",
        )
        .bind(after.tx_id.to_string())
        .bind(after.position)
        .fetch_one(&self.pool)
        .await?;
        Ok(blocked)
    }
}
