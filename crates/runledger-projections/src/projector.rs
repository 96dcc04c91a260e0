//! The projector runtime: one projection's events, applied exactly once, in batches.
//!
//! A step reads a batch from a version's checkpoint in safe log order, and applies it and
//! advances the checkpoint in one transaction, so a crash at any point neither loses nor doubles
//! an effect. The transaction first locks the version's registry row and checks the checkpoint
//! is still the one the batch was read from: even two projectors that both believe they lead
//! can never apply a batch twice.
//!
//! One projector leads each projection (per code fingerprint) across processes: it holds a
//! session-level advisory lock on a connection of its own. When its process dies the connection
//! closes, the lock is released, and another projector takes over on its next step.
//!
//! While a rebuild is under way, the leader keeps the active version up to date and builds the
//! new one side by side; once the new one has caught up, it switches the public views to it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::time::{Duration, Instant};

use runledger_store::{EVENTS_CHANNEL, EventReader, LogCursor, RecordedEvent, StoreError};
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::task::JoinHandle;

use crate::error::{ApplyError, ProjectionError, Result};
use crate::projection::{ApplyTx, Definition, FailPoint, ProjectedEvent, Projection, fail_at};
use crate::registry::{self, Prepared, ProjectionVersion, VersionStatus, stored_tx_id};

/// How a projector runs.
#[derive(Clone)]
pub struct ProjectorOptions {
    /// The most events one transaction applies.
    pub batch_size: u32,
    /// The longest the run loop sleeps without a notification; also how soon a standby
    /// projector takes over from a leader that died.
    pub poll: Duration,
    /// How long the schema of a retired version is kept after a switch, for queries that
    /// resolved the old view before it.
    pub retired_grace: Duration,
    /// Test-only: fails a batch at a named statement boundary, as a crash would.
    pub fail_point: Option<FailPoint>,
}

impl Default for ProjectorOptions {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            poll: Duration::from_secs(1),
            retired_grace: Duration::from_secs(600),
            fail_point: None,
        }
    }
}

impl std::fmt::Debug for ProjectorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectorOptions")
            .field("batch_size", &self.batch_size)
            .field("poll", &self.poll)
            .field("retired_grace", &self.retired_grace)
            .field("fail_point", &self.fail_point.is_some())
            .finish()
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// Applied this many events (over the active and the building version).
    Applied {
        /// Events applied.
        events: usize,
    },
    /// A poison event an operator skipped was passed over.
    Skipped {
        /// Its position.
        position: i64,
    },
    /// A rebuilt version caught up and now serves reads.
    Switched {
        /// The registry id of the version now active.
        version: i64,
    },
    /// Nothing to read (events held back by a transaction still running are not readable yet).
    CaughtUp,
    /// A version is stopped at a poison event until an operator skips it.
    Halted {
        /// The poison event's position.
        position: i64,
    },
    /// Another projector leads this projection.
    NotLeader,
    /// This code's version of the projection was replaced or cancelled; it applies nothing.
    Superseded,
}

impl StepOutcome {
    /// Whether another step right away may do more.
    pub fn made_progress(self) -> bool {
        matches!(
            self,
            StepOutcome::Applied { .. }
                | StepOutcome::Skipped { .. }
                | StepOutcome::Switched { .. }
        )
    }
}

/// Counters of one projector, for tests and the bench.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectorStats {
    /// Events this projector applied (over all versions).
    pub events_applied: u64,
    /// Transactions it committed that applied events.
    pub batches: u64,
}

/// The connection that holds the leader lock.
struct Leader {
    conn: PgConnection,
    checked: Instant,
}

/// How often a leader makes sure its lock connection is still alive.
const LEADER_CHECK: Duration = Duration::from_secs(1);
/// The first pause before looking again at committed events held back by a transaction still
/// running; it doubles up to [`HELD_BACK_MAX_PAUSE`]. (An append that commits also notifies,
/// which ends the pause at once; the pause is for transactions that do not.)
const HELD_BACK_PAUSE: Duration = Duration::from_millis(2);
/// The longest pause while committed events are held back, so that they show within a few tens
/// of milliseconds of the transaction that held them back ending.
const HELD_BACK_MAX_PAUSE: Duration = Duration::from_millis(50);
/// How often the leader drops the schemas of versions retired longer than the grace period.
const HOUSEKEEPING: Duration = Duration::from_secs(30);

/// A version's batch being read ahead, on its own task, while the previous one applies.
struct Prefetched {
    from: LogCursor,
    events: JoinHandle<Result<Vec<RecordedEvent>, StoreError>>,
}

/// What applying one version's batch came to.
enum BatchResult {
    Applied(usize),
    Halted {
        applied: usize,
        position: i64,
    },
    /// The checkpoint moved under us: another projector applied it.
    Lost,
}

/// Runs one projection: steppable for tests, or as a loop with [`Projector::run`].
pub struct Projector<P> {
    pool: PgPool,
    reader: EventReader,
    projection: P,
    definition: Definition,
    options: ProjectorOptions,
    leader: Option<Leader>,
    prepared: bool,
    housekeeping_at: Option<Instant>,
    /// Batches read ahead, by version id.
    prefetched: HashMap<i64, Prefetched>,
    stats: ProjectorStats,
}

impl<P: Projection> Projector<P> {
    /// A projector of `projection` on `pool`; it does nothing until stepped or run.
    pub fn new(pool: PgPool, projection: P, options: ProjectorOptions) -> Self {
        let definition = projection.definition();
        Self {
            reader: EventReader::new(pool.clone()),
            pool,
            projection,
            definition,
            options,
            leader: None,
            prepared: false,
            housekeeping_at: None,
            prefetched: HashMap::new(),
            stats: ProjectorStats::default(),
        }
    }

    /// The projection's definition (name, fingerprint, views).
    pub fn definition(&self) -> &Definition {
        &self.definition
    }

    /// This projector's counters.
    pub fn stats(&self) -> ProjectorStats {
        self.stats
    }

    /// Whether this projector holds the leader lock (as of its last step).
    pub fn is_leader(&self) -> bool {
        self.leader.is_some()
    }

    /// Gives up the leader lock, so another projector can take over at once.
    pub async fn release(&mut self) {
        if let Some(mut leader) = self.leader.take() {
            // Unlocked explicitly: the session's end would release it too, but a moment later.
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(self.definition.leader_key())
                .execute(&mut leader.conn)
                .await;
            let _ = leader.conn.close().await;
        }
        self.prepared = false;
    }

    /// Steps until a step makes no more progress; returns that last outcome.
    ///
    /// # Errors
    /// As [`Projector::step`].
    pub async fn catch_up(&mut self) -> Result<StepOutcome> {
        loop {
            let outcome = self.step().await?;
            if !outcome.made_progress() {
                return Ok(outcome);
            }
        }
    }

    /// One step: lead (or report another leads), apply at most one batch to each live version
    /// of this code's fingerprint, pass over a skipped poison event, or switch a rebuilt version.
    ///
    /// # Errors
    /// [`ProjectionError`] when the database fails or a fail point fires; nothing half-applied
    /// remains, and the next step retries.
    #[tracing::instrument(skip_all, fields(projection = self.definition.name))]
    pub async fn step(&mut self) -> Result<StepOutcome> {
        if !self.lead().await? {
            return Ok(StepOutcome::NotLeader);
        }
        if !self.prepared {
            if registry::prepare(&self.pool, &self.definition).await? == Prepared::Superseded {
                tracing::warn!(
                    fingerprint = self.definition.fingerprint,
                    "this code's version of the projection was replaced; it applies nothing"
                );
                return Ok(StepOutcome::Superseded);
            }
            self.prepared = true;
        }
        let live = self.live_versions().await?;
        if live.is_empty() {
            self.prepared = false;
            return Ok(StepOutcome::Superseded);
        }
        self.prefetched
            .retain(|id, _| live.iter().any(|version| version.id == *id));
        let mut applied = 0;
        let mut halted = None;
        let mut caught_up_building = None;
        for version in &live {
            if let Some(position) = version.halted_position {
                if self.pass_skipped(version, position).await? {
                    return Ok(StepOutcome::Skipped { position });
                }
                halted.get_or_insert(position);
                continue;
            }
            let batch = match self.prefetched.remove(&version.id) {
                Some(prefetched) if prefetched.from == version.checkpoint => {
                    match prefetched.events.await {
                        Ok(read) => read?,
                        Err(_) => self.read(version.checkpoint).await?,
                    }
                }
                stale => {
                    if let Some(stale) = stale {
                        stale.events.abort();
                    }
                    self.read(version.checkpoint).await?
                }
            };
            let full = batch.len() >= self.options.batch_size as usize;
            // A full batch means more to read: read the next batch, on another task, while this
            // one applies. It starts after this batch's last event, where the checkpoint will
            // be; a read done early is still a correct prefix of the log after that cursor.
            if let Some(last) = batch.last().filter(|_| full) {
                let from = LogCursor::after(last);
                let (reader, batch_size) = (self.reader.clone(), self.options.batch_size);
                let prefetched = Prefetched {
                    from,
                    events: tokio::spawn(
                        async move { reader.read_log(from, batch_size, None).await },
                    ),
                };
                self.prefetched.insert(version.id, prefetched);
            }
            match self.apply_batch(version, batch).await? {
                BatchResult::Applied(events) => applied += events,
                BatchResult::Halted {
                    applied: events,
                    position,
                } => {
                    applied += events;
                    halted.get_or_insert(position);
                    continue;
                }
                BatchResult::Lost => {
                    self.release().await;
                    return Ok(StepOutcome::NotLeader);
                }
            }
            if version.status == VersionStatus::Building && !full {
                caught_up_building = Some(version.id);
            }
        }
        if let Some(building) = caught_up_building
            && registry::switch(&self.pool, &self.definition, building).await?
        {
            return Ok(StepOutcome::Switched { version: building });
        }
        Ok(match (applied, halted) {
            (0, Some(position)) => StepOutcome::Halted { position },
            (0, None) => StepOutcome::CaughtUp,
            (events, _) => StepOutcome::Applied { events },
        })
    }

    /// Whether committed events lie after a live version's checkpoint: after a step that found
    /// nothing to read, they are held back by a transaction still running.
    ///
    /// # Errors
    /// [`ProjectionError::Database`] when the database fails.
    pub async fn has_unread_events(&self) -> Result<bool> {
        let unread: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM projection_versions v JOIN events e \
                 ON (e.tx_id, e.position) > (v.checkpoint_tx_id::text::xid8, v.checkpoint_position) \
             WHERE v.projection = $1 AND v.fingerprint = $2 AND v.status IN ('active', 'building') \
               AND v.halted_position IS NULL)",
        )
        .bind(self.definition.name)
        .bind(&self.definition.fingerprint)
        .fetch_one(&self.pool)
        .await?;
        Ok(unread)
    }

    /// Runs until `shutdown` completes: catches up, then waits for the store's notification or
    /// the poll interval; a standby projector takes over within the poll interval when the
    /// leader goes away. A step under way when `shutdown` completes finishes (commits or rolls
    /// back) first. Gives up the leader lock before it returns.
    ///
    /// # Errors
    /// [`ProjectionError::Database`] when it cannot listen for notifications at the start;
    /// failures of steps are logged and retried.
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut shutdown = pin!(shutdown);
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(EVENTS_CHANNEL).await?;
        let poll = self.options.poll;
        let mut held_back_pause = HELD_BACK_PAUSE;
        loop {
            // Shutdown is checked between steps, never during one: a step cancelled while its
            // commit is in flight may have committed without this projector knowing it (its
            // stats would miss the batch); a step is one bounded batch, so it ends soon.
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = std::future::ready(()) => {}
            }
            let outcome = self.step().await;
            let wait = match outcome {
                Ok(outcome) if outcome.made_progress() => {
                    held_back_pause = HELD_BACK_PAUSE;
                    continue;
                }
                Ok(StepOutcome::CaughtUp) => {
                    self.housekeeping().await;
                    if self.has_unread_events().await.unwrap_or(false) {
                        let wait = held_back_pause.min(poll);
                        held_back_pause =
                            held_back_pause.saturating_mul(2).min(HELD_BACK_MAX_PAUSE);
                        wait
                    } else {
                        held_back_pause = HELD_BACK_PAUSE;
                        poll
                    }
                }
                Ok(_) => poll,
                Err(error) => {
                    tracing::warn!(projection = self.definition.name, %error, "projector step failed; retrying");
                    poll
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                // A notification, a listener error (it connections on the next call) or the
                // timeout: each leads to one more step.
                _ = tokio::time::timeout(wait, listener.try_recv()) => {}
            }
        }
        self.release().await;
        Ok(())
    }

    /// Drops expired retired schemas, at most every [`HOUSEKEEPING`].
    async fn housekeeping(&mut self) {
        if self
            .housekeeping_at
            .is_some_and(|at| at.elapsed() < HOUSEKEEPING)
        {
            return;
        }
        self.housekeeping_at = Some(Instant::now());
        if let Err(error) = self.drop_retired().await {
            tracing::warn!(projection = self.definition.name, %error, "could not drop retired schemas");
        }
    }

    /// Drops the schemas of this projection's versions retired longer than the grace period.
    ///
    /// # Errors
    /// [`ProjectionError::Database`] when the database fails.
    pub async fn drop_retired(&self) -> Result<usize> {
        registry::drop_expired(&self.pool, self.definition.name, self.options.retired_grace).await
    }

    /// Up to a batch of events after `from`.
    async fn read(&self, from: LogCursor) -> Result<Vec<RecordedEvent>> {
        Ok(self
            .reader
            .read_log(from, self.options.batch_size, None)
            .await?)
    }

    /// Holds or takes the leader lock; false when another projector holds it.
    async fn lead(&mut self) -> Result<bool> {
        if let Some(leader) = &mut self.leader {
            if leader.checked.elapsed() < LEADER_CHECK {
                return Ok(true);
            }
            match sqlx::query("SELECT 1").execute(&mut leader.conn).await {
                Ok(_) => {
                    leader.checked = Instant::now();
                    return Ok(true);
                }
                Err(error) => {
                    tracing::warn!(projection = self.definition.name, %error, "lost the leader connection");
                    self.leader = None;
                    self.prepared = false;
                }
            }
        }
        // A connection of its own, outside the pool: the lock lives as long as the session.
        let mut conn = PgConnection::connect_with(&self.pool.connect_options()).await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(self.definition.leader_key())
            .fetch_one(&mut conn)
            .await?;
        if locked {
            tracing::info!(projection = self.definition.name, "leading the projection");
            self.leader = Some(Leader {
                conn,
                checked: Instant::now(),
            });
            self.prepared = false;
        } else {
            let _ = conn.close().await;
        }
        Ok(locked)
    }

    /// This fingerprint's active and building versions, active first.
    async fn live_versions(&self) -> Result<Vec<ProjectionVersion>> {
        let mut conn = self.pool.acquire().await?;
        let mut live: Vec<ProjectionVersion> = registry::versions(&mut conn, self.definition.name)
            .await?
            .into_iter()
            .filter(|v| {
                v.fingerprint == self.definition.fingerprint
                    && matches!(v.status, VersionStatus::Active | VersionStatus::Building)
            })
            .collect();
        live.sort_by_key(|v| v.status != VersionStatus::Active);
        Ok(live)
    }

    /// Decodes and applies a batch read from `version`'s checkpoint. A poison event (one that
    /// does not decode, or fails to apply on its own) is recorded and halts the version; the
    /// events before it are applied.
    async fn apply_batch(
        &mut self,
        version: &ProjectionVersion,
        batch: Vec<RecordedEvent>,
    ) -> Result<BatchResult> {
        let mut events = Vec::with_capacity(batch.len());
        let mut undecodable = None;
        for recorded in batch {
            match recorded.decode() {
                Ok(event) => events.push(ProjectedEvent { recorded, event }),
                Err(error) => {
                    undecodable = Some((recorded, error.to_string()));
                    break;
                }
            }
        }
        let mut checkpoint = version.checkpoint;
        let mut applied = 0;
        if !events.is_empty() {
            match self.commit_batch(version, checkpoint, &events).await {
                Ok(true) => {
                    applied = events.len();
                    checkpoint = LogCursor::after(&events[events.len() - 1].recorded);
                }
                Ok(false) => return Ok(BatchResult::Lost),
                Err(ApplyError::Failed(error)) => return Err(error),
                // One event of the batch cannot be applied: apply them one at a time to find it,
                // so that every event before it is applied.
                Err(ApplyError::Poison(_)) => {
                    for event in &events {
                        match self
                            .commit_batch(version, checkpoint, std::slice::from_ref(event))
                            .await
                        {
                            Ok(true) => {
                                applied += 1;
                                checkpoint = LogCursor::after(&event.recorded);
                            }
                            Ok(false) => return Ok(BatchResult::Lost),
                            Err(ApplyError::Failed(error)) => return Err(error),
                            Err(ApplyError::Poison(reason)) => {
                                return self
                                    .halt(version, checkpoint, &event.recorded, &reason, applied)
                                    .await;
                            }
                        }
                    }
                }
            }
        }
        match undecodable {
            Some((recorded, reason)) => {
                self.halt(version, checkpoint, &recorded, &reason, applied)
                    .await
            }
            None => Ok(BatchResult::Applied(applied)),
        }
    }

    /// Applies `events` to `version` and advances its checkpoint from `from`, in one
    /// transaction. False when the checkpoint is no longer `from` (another projector moved it).
    async fn commit_batch(
        &mut self,
        version: &ProjectionVersion,
        from: LogCursor,
        events: &[ProjectedEvent],
    ) -> Result<bool, ApplyError> {
        let fail_point = self.options.fail_point.as_ref();
        let mut tx = self.pool.begin().await.map_err(ProjectionError::from)?;
        fail_at(fail_point, "begin")?;
        if !claim(&mut tx, version.id, from).await? {
            return Ok(false);
        }
        fail_at(fail_point, "claim")?;
        self.projection
            .apply(
                events,
                &mut ApplyTx {
                    conn: &mut tx,
                    fail_point,
                },
            )
            .await?;
        let last = LogCursor::after(&events[events.len() - 1].recorded);
        sqlx::query(
            // Qualified: `search_path` is the version's schema in this transaction.
            "UPDATE public.projection_versions SET checkpoint_tx_id = $2, checkpoint_position = $3, \
                    events_applied = events_applied + $4, updated_at = now() \
             WHERE id = $1",
        )
        .bind(version.id)
        .bind(stored_tx_id(last))
        .bind(last.position)
        .bind(events.len() as i64)
        .execute(&mut *tx)
        .await
        .map_err(ProjectionError::from)?;
        fail_at(fail_point, "checkpoint")?;
        tx.commit().await.map_err(ProjectionError::from)?;
        self.stats.events_applied += events.len() as u64;
        self.stats.batches += 1;
        // After the commit: a crash here must not apply the batch again.
        fail_at(fail_point, "committed")?;
        Ok(true)
    }

    /// Records the poison event `event` of `version` and halts the version at it.
    async fn halt(
        &self,
        version: &ProjectionVersion,
        checkpoint: LogCursor,
        event: &RecordedEvent,
        reason: &str,
        applied: usize,
    ) -> Result<BatchResult> {
        let mut tx = self.pool.begin().await?;
        if !claim(&mut tx, version.id, checkpoint).await? {
            return Ok(BatchResult::Lost);
        }
        sqlx::query(
            // Qualified, like every statement after `claim` (which sets `search_path`).
            "INSERT INTO public.projection_poison (version_id, projection, position, tx_id, error) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (version_id, position) DO UPDATE SET error = EXCLUDED.error",
        )
        .bind(version.id)
        .bind(self.definition.name)
        .bind(event.position)
        .bind(stored_tx_id(LogCursor::after(event)))
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE public.projection_versions SET halted_position = $2, last_error = $3, updated_at = now() \
             WHERE id = $1",
        )
        .bind(version.id)
        .bind(event.position)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::error!(
            projection = self.definition.name,
            schema = version.schema_name,
            position = event.position,
            reason,
            "a poison event halts the projection until an operator skips it"
        );
        Ok(BatchResult::Halted {
            applied,
            position: event.position,
        })
    }

    /// Moves `version` past the poison event at `position` if an operator skipped it.
    async fn pass_skipped(&self, version: &ProjectionVersion, position: i64) -> Result<bool> {
        let passed = sqlx::query(
            "UPDATE projection_versions v \
             SET checkpoint_tx_id = p.tx_id, checkpoint_position = p.position, \
                 events_skipped = v.events_skipped + 1, halted_position = NULL, updated_at = now() \
             FROM projection_poison p \
             WHERE v.id = $1 AND v.halted_position = $2 AND p.version_id = v.id \
               AND p.position = $2 AND p.skipped_at IS NOT NULL",
        )
        .bind(version.id)
        .bind(position)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if passed > 0 {
            tracing::warn!(
                projection = self.definition.name,
                position,
                "skipped a poison event"
            );
        }
        Ok(passed > 0)
    }
}

/// Locks `version`'s registry row, checks its checkpoint is still `from` (and that it is live
/// and not halted), and sets `search_path` to its schema for the rest of the transaction.
///
/// The transaction also commits without waiting for the WAL flush (`synchronous_commit` off):
/// a crash may lose the last few batches, but always their effects together with their
/// checkpoint, which are then applied again. Exactly-once holds; durability of a derived table
/// is not worth a disk flush per batch.
async fn claim(tx: &mut PgConnection, version: i64, from: LogCursor) -> Result<bool> {
    let claimed: Option<(i64, i64)> = sqlx::query_as(
        "SELECT checkpoint_tx_id, checkpoint_position \
         FROM (SELECT checkpoint_tx_id, checkpoint_position, \
                      set_config('search_path', schema_name, true), \
                      set_config('synchronous_commit', 'off', true) \
               FROM projection_versions \
               WHERE id = $1 AND status IN ('active', 'building') AND halted_position IS NULL \
               FOR UPDATE) AS claimed",
    )
    .bind(version)
    .fetch_optional(tx)
    .await?;
    Ok(claimed.is_some_and(|(tx_id, position)| registry::cursor(tx_id, position) == from))
}
