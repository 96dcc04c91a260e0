//! The write side: [`EventWriter::append`], the only code that inserts into `events`.
//!
//! Appends are group-committed: every append of a writer (and of its clones) goes to the writer
//! task of its run's lane ([`WriterConfig::lanes`]; a run always takes the same lane), which
//! commits the appends that queued while it was busy as one group, in one read and one atomic
//! statement on a connection of its own (docs/adr/0016-group-commit.md):
//! 1. one read of the database clock (every event of the group is recorded at it), the heads of
//!    the group's runs, which of its event ids are stored, and who holds the dedupe slots it asks
//!    for ([`statement::READ_GROUP`]);
//! 2. the plan: each append, in arrival order, is answered now (a re-send returns its stored
//!    positions, a stale version is a `Conflict`, a taken slot returns the active run) or
//!    accepted, its hashes chained from its run's head (as read, or as an earlier append of the
//!    same group leaves it);
//! 3. one statement that compare-and-sets every accepted run's head from the version read (or
//!    creates it with its dedupe slot), inserts the events of the runs that moved, and sends one
//!    `NOTIFY` at its commit ([`statement::WRITE_GROUP`]).
//!
//! A lane that knows every run of a group (it read or wrote their heads lately) and the database
//! clock skips step 1: the plan decides against what it knows, and what it knew wrongly fails
//! the write's compare-and-sets, constraints or clock check and is decided again after a read
//! (`known`, docs/adr/0016 "Writing without a read").
//!
//! A run whose compare-and-set fails writes nothing and does not hold the others back: its
//! appends go back to the queue and the next read tells them what happened. Conflicts are thus
//! detected by the version check and the constraints, never by parsing error text. Hashes are
//! computed from the head the group read; the compare-and-set guarantees that head is still
//! current when they are stored, so a run's chain cannot fork.

mod group;
mod known;
mod plan;
pub mod statement;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use runledger_core::{RunEvent, RunId, TenantId};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::error::StoreError;
use crate::schema::EventMetadata;
use group::{Counters, Request};
use plan::Pending;

/// An event to append, with the id that makes re-sending it idempotent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Client- or server-generated; the same id re-sent returns the original append.
    pub event_id: runledger_core::EventId,
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

/// The writer's lanes unless configured: one. More lanes commit more groups at once, but
/// smaller ones; on a database whose cores are busy that costs more than it gains
/// (docs/adr/0016, docs/performance.md).
pub const DEFAULT_LANES: usize = 1;

/// How the writer groups appends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterConfig {
    /// How long the writer, once an append arrives while it is idle, waits for more to join
    /// before it commits them (unless the group fills first). Zero, the default: it commits at
    /// once, and appends group only when they arrive while a commit is in progress.
    pub linger: Duration,
    /// The most appends in one group.
    pub max_group_appends: usize,
    /// The most events in one group (a larger single append forms a group of its own).
    pub max_group_events: usize,
    /// How long one round trip may take before the writer gives its connection up as hung.
    pub statement_timeout: Duration,
    /// How long the writer tries to (re)connect before it answers that the database is
    /// unreachable.
    pub connect_timeout: Duration,
    /// How many groups may commit at once: the writer runs this many lanes, each a writer task
    /// with a connection of its own, and a run's appends always take the same lane (so they keep
    /// their order and chain). One lane leaves the database's other cores idle while it waits
    /// for a commit; lanes race only on dedupe slots, which the constraints settle.
    pub lanes: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            linger: Duration::ZERO,
            max_group_appends: 256,
            max_group_events: 4096,
            statement_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            lanes: DEFAULT_LANES,
        }
    }
}

/// What a writer has done since it was made: counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Groups read and decided.
    pub groups: u64,
    /// Appends answered (written, replayed, refused or failed).
    pub appends: u64,
    /// Events written.
    pub events: u64,
    /// The most appends one group held.
    pub largest_group: u64,
    /// Connections the writer opened: the first, and one after each it lost.
    pub connections: u64,
    /// Groups written without a read first, from the heads and clock their lane knew.
    pub unread_groups: u64,
}

/// Appends events; the only handle that can. Cheap to clone: clones share its lanes' writer
/// tasks, so their concurrent appends are committed together.
#[derive(Debug, Clone)]
pub struct EventWriter {
    inner: Arc<Writer>,
}

#[derive(Debug)]
struct Writer {
    pool: PgPool,
    config: WriterConfig,
    counters: Arc<Counters>,
    /// The queues of the writer's lanes, their tasks started by the first append (so that making
    /// a writer needs no runtime); the tasks end when the last clone is dropped.
    lanes: OnceLock<Vec<mpsc::UnboundedSender<Request>>>,
}

impl EventWriter {
    /// A writer over `pool`, with the default [`WriterConfig`].
    pub fn new(pool: PgPool) -> Self {
        Self::with_config(pool, WriterConfig::default())
    }

    /// A writer over `pool` that groups appends as `config` says.
    ///
    /// The writer takes one connection of `pool` per lane for its own (out of the pool's count)
    /// when it first appends, and keeps them.
    pub fn with_config(pool: PgPool, config: WriterConfig) -> Self {
        Self {
            inner: Arc::new(Writer {
                pool,
                config,
                counters: Arc::default(),
                lanes: OnceLock::new(),
            }),
        }
    }

    /// What this writer (and its clones) has done so far.
    pub fn stats(&self) -> WriterStats {
        self.inner.counters.snapshot()
    }

    /// Appends `events` to `run` of `tenant` if the run is at `expected` version (0: a new run).
    ///
    /// Idempotent: re-sending events whose ids are stored returns the original positions.
    /// A `Queued` event takes the run's dedupe slot or, when its tenant and identity already
    /// have an active run, writes nothing and returns that run; `Completed` frees the slot.
    /// Concurrent appends are committed together (see the module docs); each gets its own
    /// outcome, the same as if it had been alone.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the run is at another version;
    /// [`StoreError::IdempotencyMismatch`] when an event id is stored with other content;
    /// [`StoreError::InvalidAppend`] for an empty batch or a `Queued` of another tenant or run;
    /// [`StoreError::Database`] when the database fails and nothing was written;
    /// [`StoreError::OutcomeUnknown`] when the connection was lost while the events committed
    /// and the database could not be reached to check. Re-sending is safe after either.
    #[tracing::instrument(skip_all, fields(%tenant, %run, expected, events = events.len()))]
    pub async fn append(
        &self,
        tenant: TenantId,
        run: RunId,
        expected: u64,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, StoreError> {
        validate(tenant, run, expected, events)?;
        let (reply, answer) = oneshot::channel();
        let request = Request {
            pending: Pending::new(tenant, run, expected, events),
            reply,
        };
        // Sent before the first await, so appends polled in order join the queue in order.
        self.lane(run)
            .send(request)
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?;
        // The writer answers every request it takes; a dropped answer means the task died with
        // the append in hand.
        answer.await.unwrap_or(Err(StoreError::OutcomeUnknown))
    }

    /// The queue of `run`'s lane: always the same one for a run.
    fn lane(&self, run: RunId) -> &mpsc::UnboundedSender<Request> {
        let lanes = self.inner.lanes.get_or_init(|| {
            (0..self.inner.config.lanes.max(1))
                .map(|_| {
                    group::spawn(
                        self.inner.pool.clone(),
                        self.inner.config.clone(),
                        Arc::clone(&self.inner.counters),
                    )
                })
                .collect()
        });
        &lanes[lane_of(run, lanes.len())]
    }
}

/// Which of `lanes` lanes takes `run`'s appends: its id's bits folded, which are random below
/// a version 7 id's timestamp, so runs spread evenly.
fn lane_of(run: RunId, lanes: usize) -> usize {
    let bits = run.as_uuid().as_u128();
    let folded = (bits as u64) ^ ((bits >> 64) as u64);
    // The remainder is below `lanes`, a usize.
    (folded % lanes as u64) as usize
}

fn validate(
    tenant: TenantId,
    run: RunId,
    expected: u64,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(StoreError::InvalidAppend(
            "an append needs at least one event",
        ));
    }
    let last = expected.checked_add(events.len() as u64);
    if last.is_none_or(|last| i64::try_from(last).is_err()) {
        return Err(StoreError::InvalidAppend("version overflow"));
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
