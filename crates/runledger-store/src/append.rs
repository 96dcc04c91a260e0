//! The write side: [`EventWriter::append`], the only code that inserts into `events`.
//!
//! An append is two statements and no explicit transaction:
//! 1. a read of the stream head, the database clock and any already-stored event ids;
//! 2. one atomic statement that moves the head with a compare-and-set on its version, writes the
//!    inline dedupe index and inserts every event (one multi-row insert).
//!
//! After the commit, the writer signals `NOTIFY` in a transaction of its own (see
//! [`EventWriter::notify_committed`]): a `NOTIFY` inside the append would hold PostgreSQL's
//! global notification lock through the commit's WAL flush and serialize every append.
//!
//! The compare-and-set makes the second statement a no-op when another append won the race, so
//! conflicts are detected by the row lock and the version check, never by parsing error text.
//! Hashes are computed here from the head read in step 1; the compare-and-set also guarantees
//! that head is still current, so a run's chain cannot fork.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use runledger_core::identity::canonical_json;
use runledger_core::{EventId, RunEvent, RunId, TenantId};
use sqlx::PgPool;
use uuid::Uuid;

use crate::EVENTS_CHANNEL;
use crate::chain::{GENESIS, HashedFields, event_hash};
use crate::error::StoreError;
use crate::read::{EventRow, event_columns, into_events};
use crate::schema::EventMetadata;

/// An event to append, with the id that makes re-sending it idempotent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Client- or server-generated; the same id re-sent returns the original append.
    pub event_id: EventId,
    /// The domain event.
    pub event: RunEvent,
    /// Who and what caused it.
    pub metadata: EventMetadata,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The events are stored (now, or by an earlier send of the same event ids).
    Appended(Appended),
    /// The events queue a run whose tenant and identity already have an active run: nothing was
    /// written, and this is that run.
    Deduplicated {
        /// The active run with the same identity.
        existing: RunId,
    },
}

/// Where appended events landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The global positions written, one per event, in stream order.
    pub positions: Vec<i64>,
    /// The stream version after the last event.
    pub version: u64,
    /// True when an earlier send had already stored these events and nothing was written now.
    pub replayed: bool,
}

impl Appended {
    /// The position of the last event written: what read-your-writes queries wait for.
    pub fn last_position(&self) -> i64 {
        self.positions.last().copied().unwrap_or_default()
    }
}

/// Appends events; the only handle that can. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventWriter {
    pool: PgPool,
    /// Set while a wake-up `NOTIFY` is scheduled but not yet sent, so that appends committing in
    /// the meantime share it instead of each sending their own.
    notify_pending: Arc<AtomicBool>,
}

/// What step 1 of an append reads.
#[derive(sqlx::FromRow)]
struct Head {
    now: DateTime<Utc>,
    tenant_id: Option<i64>,
    version: Option<i64>,
    last_hash: Option<Vec<u8>>,
    stored_ids: i64,
}

/// The columns of the events to insert, as Postgres arrays for one `unnest`.
#[derive(Default)]
struct EventColumns {
    event_ids: Vec<Uuid>,
    versions: Vec<i64>,
    event_types: Vec<&'static str>,
    schema_versions: Vec<i32>,
    payloads: Vec<serde_json::Value>,
    metadata: Vec<serde_json::Value>,
    prev_hashes: Vec<Vec<u8>>,
    hashes: Vec<Vec<u8>>,
}

/// Shared tail of the append statement: insert the events if the head moved.
macro_rules! append_statement {
    ($head:literal) => {
        concat!(
            "WITH ",
            $head,
            ", appended AS (
                INSERT INTO events (event_id, tenant_id, run_id, version, event_type,
                                    schema_version, payload, metadata, recorded_at, prev_hash, hash)
                SELECT e.event_id, $1, $2, e.version, e.event_type, e.schema_version, e.payload,
                       e.metadata, $5, e.prev_hash, e.hash
                FROM unnest($6::uuid[], $7::bigint[], $8::text[], $9::int[], $10::jsonb[],
                            $11::jsonb[], $12::bytea[], $13::bytea[])
                     AS e(event_id, version, event_type, schema_version, payload, metadata,
                          prev_hash, hash)
                WHERE EXISTS (SELECT 1 FROM head)
                ORDER BY e.version
                RETURNING position
            )
            SELECT COALESCE((SELECT array_agg(position ORDER BY position) FROM appended), '{}')
                       AS positions"
        )
    };
}

/// Append that creates the stream: `$3` new version, `$4` new head hash, `$14` identity hash of a
/// `Queued` that takes a dedupe slot (NULL when the batch takes none).
const APPEND_NEW_STREAM: &str = append_statement!(
    "slot AS (
        INSERT INTO active_runs (tenant_id, run_identity_hash, run_id)
        SELECT $1, $14, $2 WHERE $14::text IS NOT NULL
        ON CONFLICT (tenant_id, run_identity_hash) DO NOTHING
        RETURNING run_id
    ), head AS (
        INSERT INTO streams (run_id, tenant_id, version, last_hash)
        SELECT $2, $1, $3, $4
        WHERE $14::text IS NULL OR EXISTS (SELECT 1 FROM slot)
        RETURNING version
    )"
);

/// Append to an existing stream: compare-and-set from `$14` to `$3`; `$15` frees the dedupe slot.
const APPEND_EXISTING_STREAM: &str = append_statement!(
    "head AS (
        UPDATE streams SET version = $3, last_hash = $4
        WHERE run_id = $2 AND tenant_id = $1 AND version = $14
        RETURNING version
    ), freed AS (
        DELETE FROM active_runs
        WHERE run_id = $2 AND $15 AND EXISTS (SELECT 1 FROM head)
    )"
);

/// How often an append re-reads after losing a race it can resolve by itself (a freed dedupe
/// slot, or a concurrent re-send of the same event ids).
const MAX_SELF_RETRIES: usize = 8;

impl EventWriter {
    /// A writer over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            notify_pending: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Wakes the log's listeners after an append committed.
    ///
    /// The `NOTIFY` runs in its own transaction with `synchronous_commit` off, off the append's
    /// path: a notification is only a hint (listeners also poll), so it need not wait for a
    /// WAL flush, and appends that commit before it is sent share it. It is sent after the
    /// flag is cleared, so every append that found the flag set committed before the send.
    fn notify_committed(&self) {
        if self.notify_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = self.pool.clone();
        let pending = Arc::clone(&self.notify_pending);
        tokio::spawn(async move {
            pending.store(false, Ordering::Release);
            let sent = sqlx::query(
                "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')",
            )
            .bind(EVENTS_CHANNEL)
            .execute(&pool)
            .await;
            if let Err(error) = sent {
                tracing::warn!(%error, "could not notify listeners of new events; they will poll");
            }
        });
    }

    /// Appends `events` to `run` of `tenant` if the run is at `expected` version (0: a new run).
    ///
    /// Idempotent: re-sending events whose ids are stored returns the original positions.
    /// A `Queued` event takes the run's dedupe slot or, when its tenant and identity already
    /// have an active run, writes nothing and returns that run; `Completed` frees the slot.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the run is at another version;
    /// [`StoreError::IdempotencyMismatch`] when an event id is stored with other content;
    /// [`StoreError::InvalidAppend`] for an empty batch or a `Queued` of another tenant or run;
    /// [`StoreError::Database`] when the database fails (re-sending is safe).
    #[tracing::instrument(skip_all, fields(%tenant, %run, expected, events = events.len()))]
    pub async fn append(
        &self,
        tenant: TenantId,
        run: RunId,
        expected: u64,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, StoreError> {
        validate(tenant, run, events)?;
        let event_ids: Vec<Uuid> = events.iter().map(|e| e.event_id.as_uuid()).collect();
        for _ in 0..MAX_SELF_RETRIES {
            let head: Head = sqlx::query_as(
                "SELECT now() AS now, s.tenant_id, s.version, s.last_hash,
                        (SELECT count(*) FROM events WHERE event_id = ANY($2)) AS stored_ids
                 FROM (SELECT 1) AS one LEFT JOIN streams s ON s.run_id = $1",
            )
            .bind(run.as_uuid())
            .bind(&event_ids)
            .fetch_one(&self.pool)
            .await?;
            if head.stored_ids > 0 {
                return self
                    .replay_stored(run, events)
                    .await
                    .map(AppendOutcome::Appended);
            }
            let actual = head.version.map_or(0, |v| v.unsigned_abs());
            if actual != expected || head.tenant_id.is_some_and(|t| t != tenant.get()) {
                return Err(StoreError::Conflict {
                    run,
                    expected,
                    actual,
                });
            }
            let prev_hash: [u8; 32] = match head.last_hash {
                Some(hash) => hash
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::InvalidAppend("stored stream head hash is corrupt"))?,
                None => GENESIS,
            };
            let (columns, head_hash) =
                event_columns(tenant, run, expected, prev_hash, head.now, events);
            let new_version = expected + events.len() as u64;
            let takes_slot = events.iter().find_map(|e| match &e.event {
                RunEvent::Queued(q) => Some(q.run_identity_hash.to_hex()),
                _ => None,
            });
            let frees_slot = events
                .iter()
                .any(|e| matches!(e.event, RunEvent::Completed(_)));
            // A batch that queues and completes a run never makes it active: it takes no slot.
            let takes_slot = takes_slot.filter(|_| !frees_slot);
            let statement = if expected == 0 {
                APPEND_NEW_STREAM
            } else {
                APPEND_EXISTING_STREAM
            };
            let query = sqlx::query_scalar::<_, Vec<i64>>(statement)
                .bind(tenant.get())
                .bind(run.as_uuid())
                .bind(
                    i64::try_from(new_version)
                        .map_err(|_| StoreError::InvalidAppend("version overflow"))?,
                )
                .bind(head_hash.to_vec())
                .bind(head.now)
                .bind(&columns.event_ids)
                .bind(&columns.versions)
                .bind(&columns.event_types)
                .bind(&columns.schema_versions)
                .bind(&columns.payloads)
                .bind(&columns.metadata)
                .bind(&columns.prev_hashes)
                .bind(&columns.hashes);
            let query = if expected == 0 {
                query.bind(takes_slot.as_deref())
            } else {
                query
                    .bind(i64::try_from(expected).unwrap_or(i64::MAX))
                    .bind(frees_slot)
            };
            let positions = match query.fetch_one(&self.pool).await {
                Ok(positions) => positions,
                Err(error) => match constraint_of(&error) {
                    // Another append won the race, or a concurrent send of these same event ids
                    // did: step 1, read again, tells which (a conflict, or the stored result).
                    Some(
                        "streams_pkey"
                        | "events_run_version_key"
                        | "active_runs_run_id_key"
                        | "events_event_id_key",
                    ) => continue,
                    _ => return Err(error.into()),
                },
            };
            if !positions.is_empty() {
                self.notify_committed();
                return Ok(AppendOutcome::Appended(Appended {
                    positions,
                    version: new_version,
                    replayed: false,
                }));
            }
            if let Some(identity_hash) = takes_slot {
                let existing: Option<Uuid> = sqlx::query_scalar(
                    "SELECT run_id FROM active_runs WHERE tenant_id = $1 AND run_identity_hash = $2",
                )
                .bind(tenant.get())
                .bind(&identity_hash)
                .fetch_optional(&self.pool)
                .await?;
                match existing {
                    Some(existing) if existing != run.as_uuid() => {
                        return Ok(AppendOutcome::Deduplicated {
                            existing: existing.into(),
                        });
                    }
                    // The slot is this run's own (a concurrent send of this same Queue, or another
                    // append that created the run, won), or the active run completed in between
                    // and freed it: try again from step 1.
                    _ => continue,
                }
            }
            // The compare-and-set found the head moved: another append won, or a concurrent send
            // of these same event ids did. Step 1, read again, tells which.
        }
        let actual = self.current_version(run).await?;
        Err(StoreError::Conflict {
            run,
            expected,
            actual,
        })
    }

    async fn current_version(&self, run: RunId) -> Result<u64, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM streams WHERE run_id = $1")
                .bind(run.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
        Ok(version.map_or(0, i64::unsigned_abs))
    }

    /// The original result of a re-sent append, if every event id is stored with the same content.
    async fn replay_stored(&self, run: RunId, events: &[NewEvent]) -> Result<Appended, StoreError> {
        let event_ids: Vec<Uuid> = events.iter().map(|e| e.event_id.as_uuid()).collect();
        let rows: Vec<EventRow> = sqlx::query_as(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE event_id = ANY($1)"
        ))
        .bind(&event_ids)
        .fetch_all(&self.pool)
        .await?;
        let stored = into_events(rows)?;
        let mut positions = Vec::with_capacity(events.len());
        let mut version = 0;
        for new in events {
            let id = new.event_id.as_uuid();
            let same = stored
                .iter()
                .find(|s| s.event_id == new.event_id)
                .filter(|s| {
                    s.run_id == run
                        && s.event_type == new.event.event_type()
                        && canonical_json(&s.payload) == canonical_json(&new.event.payload())
                });
            let Some(same) = same else {
                return Err(StoreError::IdempotencyMismatch { event_id: id });
            };
            positions.push(same.position);
            version = version.max(same.version);
        }
        Ok(Appended {
            positions,
            version,
            replayed: true,
        })
    }
}

fn validate(tenant: TenantId, run: RunId, events: &[NewEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(StoreError::InvalidAppend(
            "an append needs at least one event",
        ));
    }
    for new in events {
        if let RunEvent::Queued(queued) = &new.event
            && (queued.tenant_id != tenant || queued.run_id != run)
        {
            return Err(StoreError::InvalidAppend(
                "a Queued event must name the run and tenant it is appended to",
            ));
        }
    }
    Ok(())
}

/// The rows to insert and the new head hash: versions follow `expected`, hashes chain from
/// `prev_hash`, and every event is recorded at the database time `recorded_at`.
fn event_columns(
    tenant: TenantId,
    run: RunId,
    expected: u64,
    mut prev_hash: [u8; 32],
    recorded_at: DateTime<Utc>,
    events: &[NewEvent],
) -> (EventColumns, [u8; 32]) {
    let mut columns = EventColumns::default();
    for (offset, new) in (1u64..).zip(events) {
        let version = expected + offset;
        let payload = new.event.payload();
        let metadata = new.metadata.to_json();
        let hash = event_hash(
            &prev_hash,
            &HashedFields {
                event_id: new.event_id.as_uuid(),
                run_id: run.as_uuid(),
                tenant_id: tenant.get(),
                version,
                event_type: new.event.event_type(),
                schema_version: new.event.schema_version(),
                payload: &payload,
                metadata: &metadata,
                recorded_at,
            },
        );
        columns.event_ids.push(new.event_id.as_uuid());
        columns
            .versions
            .push(i64::try_from(version).unwrap_or(i64::MAX));
        columns.event_types.push(new.event.event_type());
        columns.schema_versions.push(new.event.schema_version());
        columns.payloads.push(payload);
        columns.metadata.push(metadata);
        columns.prev_hashes.push(prev_hash.to_vec());
        columns.hashes.push(hash.to_vec());
        prev_hash = hash;
    }
    (columns, prev_hash)
}

/// The name of the constraint a database error violated, if it is a unique violation.
fn constraint_of(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) if db.is_unique_violation() => db.constraint(),
        _ => None,
    }
}
