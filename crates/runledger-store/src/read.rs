//! The read side: one run's stream, and the whole log in safe order.
//!
//! A `position` is assigned at insert but becomes visible at commit, so paging by position alone
//! can skip an event whose transaction commits late. The log is therefore read in
//! `(tx_id, position)` order and only below `pg_snapshot_xmin(pg_current_snapshot())`: every
//! transaction below that horizon has finished, and every later one gets a larger id, so nothing
//! can appear behind a reader's cursor. A long-open writer delays readers; it never loses events
//! (docs/adr/0002-safe-log-order.md).
//!
//! Every statement over the log is written so that its plan follows the `(tx_id, position)`
//! indexes whatever the cursor and however large the log, also as a generic plan (which knows
//! no parameter values): an `ORDER BY tx_id, position … LIMIT`, never a bare range `EXISTS` or
//! `count(*)`, whose generic plans are sequential scans of the whole log; and one statement per
//! scope (the whole log, one tenant's), never `$n IS NULL OR tenant_id = $n`, whose one generic
//! plan cannot use the tenant index.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
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

/// The predicate "after the cursor `($1, $2)`" in safe log order.
macro_rules! after_cursor {
    () => {
        "(tx_id, position) > ($1::text::xid8, $2)"
    };
}

/// The predicate "below the horizon": every transaction below the oldest one still running has
/// finished, so nothing can commit behind a reader that stays below it.
macro_rules! below_horizon {
    () => {
        "tx_id < pg_snapshot_xmin(pg_current_snapshot())"
    };
}

/// One statement over the log in its two scopes: the whole log, and one tenant's (whose
/// `tenant_id` is the statement's last parameter). Each has a plan of its own, on the index that
/// serves it (`(tx_id, position)`, or `(tenant_id, tx_id, position)`).
struct Scoped {
    all: &'static str,
    tenant: &'static str,
}

impl Scoped {
    /// The statement for `tenant`, if given, else for the whole log.
    fn sql(&self, tenant: Option<TenantId>) -> &'static str {
        if tenant.is_some() {
            self.tenant
        } else {
            self.all
        }
    }
}

/// Binds the tenant of a tenant-scoped statement (a `QueryAs` or a `QueryScalar`), as its last
/// parameter.
macro_rules! bind_tenant {
    ($query:expr, $tenant:expr) => {
        match $tenant {
            Some(tenant) => $query.bind(tenant.get()),
            None => $query,
        }
    };
}

/// Up to `$3` events after the cursor, in safe order, below the horizon.
///
/// `ORDER BY events.tx_id`, not `tx_id`: a bare name would mean the selected
/// `tx_id::text::bigint` alias, and sorting by that expression cannot use the indexes, so every
/// read would scan and sort the rest of the log.
const READ_LOG: Scoped = Scoped {
    all: concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE ",
        after_cursor!(),
        " AND ",
        below_horizon!(),
        " ORDER BY events.tx_id, events.position LIMIT $3"
    ),
    tenant: concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE tenant_id = $4 AND ",
        after_cursor!(),
        " AND ",
        below_horizon!(),
        " ORDER BY events.tx_id, events.position LIMIT $3"
    ),
};

/// The first committed event after the cursor, readable yet or not: one index entry.
const FIRST_AFTER: Scoped = Scoped {
    all: concat!(
        "SELECT position FROM events WHERE ",
        after_cursor!(),
        " ORDER BY tx_id, position LIMIT 1"
    ),
    tenant: concat!(
        "SELECT position FROM events WHERE tenant_id = $3 AND ",
        after_cursor!(),
        " ORDER BY tx_id, position LIMIT 1"
    ),
};

/// How many committed events lie after the cursor (of the scope the predicate prefix names),
/// counting no further than `$3`. The `ORDER BY … LIMIT` keeps the count on the index, reading
/// no rows, whatever the cursor.
macro_rules! count_after {
    ($scope:literal) => {
        concat!(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE ",
            $scope,
            after_cursor!(),
            " ORDER BY tx_id, position LIMIT $3) AS counted"
        )
    };
}

/// [`count_after!`] of the whole log and of one tenant.
const COUNT_AFTER: Scoped = Scoped {
    all: count_after!(""),
    tenant: count_after!("tenant_id = $4 AND "),
};

/// One run's events after version `$3`, if the run `$1` belongs to tenant `$2`.
const READ_STREAM: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE run_id = $1 AND tenant_id = $2 AND version > $3 ORDER BY version"
);

/// How many events lie after the cursor, and the first one's `recorded_at`. The count reads the
/// index only; the time is one index entry and its row (`min(recorded_at)` over all of them
/// would read every row of the lag).
const LAG: &str = concat!(
    "SELECT (",
    count_after!(""),
    "), (SELECT recorded_at FROM events WHERE ",
    after_cursor!(),
    " ORDER BY tx_id, position LIMIT 1)"
);

/// The transaction of the event at position `$1` (the primary key).
const CURSOR_OF: &str = "SELECT tx_id::text::bigint FROM events WHERE position = $1";

/// How many events after the cursor are at or above the horizon (held back by a transaction
/// still running), counted like [`count_after!`] (with `$3` no bound).
const BLOCKED: &str = count_after!("tx_id >= pg_snapshot_xmin(pg_current_snapshot()) AND ");

/// Every statement the store reads `events` with (reads of the log, its probes and counts),
/// by name: for the test that EXPLAINs them as generic plans (`tests/it/store/plans.rs`).
pub const READ_STATEMENTS: [(&str, &str); 10] = [
    ("read_stream", READ_STREAM),
    ("read_log", READ_LOG.all),
    ("read_log of a tenant", READ_LOG.tenant),
    ("has_events_after", FIRST_AFTER.all),
    ("has_events_after of a tenant", FIRST_AFTER.tenant),
    ("count_events", COUNT_AFTER.all),
    ("count_events of a tenant", COUNT_AFTER.tenant),
    ("lag", LAG),
    ("cursor_of", CURSOR_OF),
    ("blocked_events", BLOCKED),
];

/// A lag: the committed events after a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// How many.
    pub events: u64,
    /// When the first of them in log order was recorded (none when there is none).
    pub first_recorded_at: Option<DateTime<Utc>>,
}

/// A version or a bound as a `bigint`: beyond `i64::MAX` (`u64::MAX` meaning no bound) is
/// `i64::MAX`, more than any log holds.
fn as_bigint(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads events; cannot append. Cheap to clone.
///
/// It owns its pool: code outside the store reads the log only through these functions (and
/// [`crate::walk::LogWalk`], [`crate::tail`]), so every read keeps to safe order and to plans
/// the log's size cannot turn into scans.
#[derive(Debug, Clone)]
pub struct EventReader {
    pub(crate) pool: PgPool,
}

impl EventReader {
    /// A reader over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
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
        let rows: Vec<EventRow> = sqlx::query_as(READ_STREAM)
            .bind(run.as_uuid())
            .bind(tenant.get())
            .bind(as_bigint(version))
            .fetch_all(&self.pool)
            .await?;
        into_events(rows)
    }

    /// Up to `limit` events after `cursor`, in safe order; optionally only one tenant's.
    ///
    /// Never returns an event twice across successive calls that pass the last event's cursor,
    /// and never skips one, whatever the interleaving of concurrent writers. (To read the log
    /// batch after batch, [`EventReader::walk`] reads the next batch ahead.)
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure; [`StoreError::Decode`] on a corrupt row.
    pub async fn read_log(
        &self,
        after: LogCursor,
        limit: u32,
        tenant: Option<TenantId>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let query = sqlx::query_as(READ_LOG.sql(tenant))
            .bind(after.tx_id.to_string())
            .bind(after.position)
            .bind(i64::from(limit));
        let rows: Vec<EventRow> = bind_tenant!(query, tenant).fetch_all(&self.pool).await?;
        into_events(rows)
    }

    /// Whether any committed event (of `tenant`, if given) lies after `cursor`, readable yet or
    /// not: after a read that was caught up, such events are held back by a transaction still
    /// running (or were released just after that read). One index entry answers it.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn has_events_after(
        &self,
        after: LogCursor,
        tenant: Option<TenantId>,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query_scalar(FIRST_AFTER.sql(tenant))
            .bind(after.tx_id.to_string())
            .bind(after.position);
        let first: Option<i64> = bind_tenant!(query, tenant)
            .fetch_optional(&self.pool)
            .await?;
        Ok(first.is_some())
    }

    /// How many committed events (of `tenant`, if given) lie after `cursor`, counting no further
    /// than `bound` (`u64::MAX` counts them all).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn count_events(
        &self,
        after: LogCursor,
        tenant: Option<TenantId>,
        bound: u64,
    ) -> Result<u64, StoreError> {
        let query = sqlx::query_scalar(COUNT_AFTER.sql(tenant))
            .bind(after.tx_id.to_string())
            .bind(after.position)
            .bind(as_bigint(bound));
        let count: i64 = bind_tenant!(query, tenant).fetch_one(&self.pool).await?;
        Ok(count.unsigned_abs())
    }

    /// The committed events after `cursor`: how many, and since when (a projection's lag).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn lag(&self, after: LogCursor) -> Result<Lag, StoreError> {
        let (events, first_recorded_at): (i64, Option<DateTime<Utc>>) = sqlx::query_as(LAG)
            .bind(after.tx_id.to_string())
            .bind(after.position)
            .bind(i64::MAX)
            .fetch_one(&self.pool)
            .await?;
        Ok(Lag {
            events: events.unsigned_abs(),
            first_recorded_at,
        })
    }

    /// The place in the log of the committed event at `position`, if there is one: what a
    /// reader compares its cursor with to know whether it has passed that event.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn cursor_of(&self, position: i64) -> Result<Option<LogCursor>, StoreError> {
        let tx_id: Option<i64> = sqlx::query_scalar(CURSOR_OF)
            .bind(position)
            .fetch_optional(&self.pool)
            .await?;
        // Transaction ids are never negative (`xid8` values fit in 63 bits for ages to come).
        Ok(tx_id.map(|tx_id| LogCursor {
            tx_id: tx_id.unsigned_abs(),
            position,
        }))
    }

    /// How many runs the ledger holds.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn count_runs(&self) -> Result<u64, StoreError> {
        let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM streams")
            .fetch_one(&self.pool)
            .await?;
        Ok(runs.unsigned_abs())
    }

    /// How many committed events lie after `cursor` but behind the oldest running transaction:
    /// the events a reader is kept from by a long-open writer (a lag metric).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn blocked_events(&self, after: LogCursor) -> Result<i64, StoreError> {
        let blocked: i64 = sqlx::query_scalar(BLOCKED)
            .bind(after.tx_id.to_string())
            .bind(after.position)
            .bind(i64::MAX)
            .fetch_one(&self.pool)
            .await?;
        Ok(blocked)
    }
}
