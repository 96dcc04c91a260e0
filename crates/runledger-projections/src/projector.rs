//! The projector runtime: one projection's events, applied exactly once, in batches.
//!
//! A step reads a batch from a version's checkpoint in safe log order, and applies it and
//! advances the checkpoint in one transaction, so a crash at any point neither loses nor doubles
//! an effect. The transaction first checks the leader's lease (its fence), then locks the
//! version's registry row and checks the checkpoint is still the one the batch was read from:
//! a leader that lost its lease commits nothing, and even two projectors that both believe they
//! lead can never apply a batch twice.
//!
//! One projector leads each projection (per code fingerprint) across processes, by a lease in
//! the store that lapses when it stops renewing (`projector/leadership.rs`); each live version
//! reads the log through a walk of its own from its checkpoint, which reads the next batch while this one applies
//! ([`runledger_store::LogWalk`]); a batch applies exactly once (`projector/batch.rs`), up to a
//! poison event, which halts its version (`projector/poison.rs`).
//!
//! While a rebuild is under way, the leader keeps the active version up to date and builds the
//! new one side by side; once the new one has caught up, it switches the public views to it.

mod batch;
pub(crate) mod leadership;
mod poison;

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::time::{Duration, Instant};

use runledger_store::{EventReader, HubConfig, LeaseBid, LogHub, LogWalk};
use sqlx::PgPool;

use crate::error::Result;
use crate::projection::{Definition, FailPoint, Projection};
use crate::published::{LiveLog, Published};
use crate::registry::{self, Prepared, ProjectionVersion, VersionStatus};
use batch::BatchResult;
use leadership::Leadership;

/// How a projector runs.
#[derive(Clone)]
pub struct ProjectorOptions {
    /// The most events one transaction applies.
    pub batch_size: u32,
    /// The longest the run loop sleeps without a notification; also how soon after a leader's
    /// lease lapses a standby projector takes over.
    pub poll: Duration,
    /// The leader's lease (docs/adr/0024): a leader that stops renewing it (dead, paused, hung
    /// in a step) loses it within this long; its batch transaction idle for half of it is ended
    /// by the server, so it holds no lock past it.
    pub lease: Duration,
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
            lease: runledger_store::DEFAULT_LEASE_DURATION,
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
            .field("lease", &self.lease)
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
    /// This code's version of the projection was replaced or cancelled; it applies nothing (the
    /// projections' status says so: [`crate::CodeStanding`]).
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

/// The first pause before looking again at committed events held back by a transaction still
/// running; it doubles up to [`HELD_BACK_MAX_PAUSE`]. (An append that commits also notifies,
/// which ends the pause at once; the pause is for transactions that do not.)
const HELD_BACK_PAUSE: Duration = Duration::from_millis(2);
/// The longest pause while committed events are held back, so that they show within a few tens
/// of milliseconds of the transaction that held them back ending.
const HELD_BACK_MAX_PAUSE: Duration = Duration::from_millis(50);
/// How often the leader drops the schemas of versions retired longer than the grace period.
const HOUSEKEEPING: Duration = Duration::from_secs(30);

/// Runs one projection: steppable for tests, or as a loop with [`Projector::run`].
pub struct Projector<P> {
    pool: PgPool,
    reader: EventReader,
    projection: P,
    definition: Definition,
    options: ProjectorOptions,
    leadership: Leadership,
    prepared: bool,
    /// Whether it has said that this code's version was replaced (once, not at every step).
    told_superseded: bool,
    housekeeping_at: Option<Instant>,
    /// Each live version's walk of the log, by version id; it is where the version's
    /// checkpoint is, unless another projector moved the checkpoint (then it starts afresh).
    walks: HashMap<i64, LogWalk>,
    /// Where committed batches of the active version are published.
    published: Published,
    /// The process's hub, whose wakes the run loop waits on (else it starts one of its own).
    hub: Option<LogHub>,
    stats: ProjectorStats,
}

impl<P: Projection> Projector<P> {
    /// A projector of `projection` on `pool`; it does nothing until stepped or run.
    pub fn new(pool: PgPool, projection: P, options: ProjectorOptions) -> Self {
        let definition = projection.definition();
        let reader_pool = pool.clone();
        let leadership = Leadership::new(pool.clone(), &definition, options.lease);
        Self {
            leadership,
            reader: EventReader::new(pool.clone()),
            pool,
            projection,
            definition,
            options,
            prepared: false,
            told_superseded: false,
            housekeeping_at: None,
            walks: HashMap::new(),
            published: Published::new(reader_pool),
            hub: None,
            stats: ProjectorStats::default(),
        }
    }

    /// This projector, woken by the process's hub and publishing its batches to the process's
    /// positions (instead of a listener and positions of its own).
    #[must_use]
    pub fn live(mut self, live: &LiveLog) -> Self {
        self.published = live.published.clone();
        self.hub = Some(live.hub.clone());
        self
    }

    /// The projection's definition (name, fingerprint, views).
    pub fn definition(&self) -> &Definition {
        &self.definition
    }

    /// This projector's counters.
    pub fn stats(&self) -> ProjectorStats {
        self.stats
    }

    /// Whether this projector holds the lease (renewed less than its duration ago).
    pub fn is_leader(&self) -> bool {
        self.leadership.is_held()
    }

    /// Gives up the lease, so another projector can take over at once.
    pub async fn release(&mut self) {
        self.leadership.release().await;
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
    /// [`ProjectionError`](crate::ProjectionError) when the database fails or a fail point
    /// fires; nothing half-applied remains, and the next step retries.
    #[tracing::instrument(skip_all, fields(projection = self.definition.name))]
    pub async fn step(&mut self) -> Result<StepOutcome> {
        match self.leadership.lead().await? {
            LeaseBid::Kept => {}
            LeaseBid::Taken => self.prepared = false,
            LeaseBid::Refused => {
                self.prepared = false;
                return Ok(StepOutcome::NotLeader);
            }
        }
        if !self.prepared {
            if registry::prepare(&self.pool, &self.definition).await? == Prepared::Superseded {
                // Said once; the status (CLI, page, metrics) keeps saying it.
                if !self.told_superseded {
                    tracing::error!(
                        projection = self.definition.name,
                        fingerprint = self.definition.fingerprint,
                        "this code's version of the projection was replaced; this process \
                         applies nothing to it (see `runledger projections`)"
                    );
                    self.told_superseded = true;
                }
                return Ok(StepOutcome::Superseded);
            }
            self.told_superseded = false;
            self.prepared = true;
        }
        let live = self.live_versions().await?;
        if live.is_empty() {
            self.prepared = false;
            return Ok(StepOutcome::Superseded);
        }
        self.walks
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
            let (reader, batch_size) = (&self.reader, self.options.batch_size);
            let walk = self
                .walks
                .entry(version.id)
                .or_insert_with(|| reader.walk(version.checkpoint, None, batch_size));
            if walk.cursor() != version.checkpoint {
                // The checkpoint is not where the walk is: another projector moved it, an
                // operator's skip did, or the last batch was not (all) applied.
                *walk = reader.walk(version.checkpoint, None, batch_size);
            }
            // A full batch means more to read: the walk reads the next one, on another task,
            // while this one applies.
            let batch = walk.next_batch().await?.unwrap_or_default();
            let full = batch.len() >= batch_size as usize;
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
            // Waiters now wait on the new version's checkpoint.
            if let Err(error) = self.published.refresh(self.definition.name).await {
                tracing::warn!(projection = self.definition.name, %error, "could not publish a switch");
            }
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
    /// Each version's question is one index entry of the log (the store's
    /// [`EventReader::has_events_after`]), never a scan: a projector asks it every time it goes
    /// idle.
    ///
    /// # Errors
    /// [`ProjectionError::Database`](crate::ProjectionError::Database) or
    /// [`ProjectionError::Store`](crate::ProjectionError::Store) when the database fails.
    pub async fn has_unread_events(&self) -> Result<bool> {
        for version in self.live_versions().await? {
            if version.halted_position.is_none()
                && self
                    .reader
                    .has_events_after(version.checkpoint, None)
                    .await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Runs until `shutdown` completes: catches up, then waits for a wake of the process's hub
    /// (an append's notification, or its poll interval) or its own poll interval; a standby
    /// projector takes over within the poll interval after the leader's lease lapses (at once
    /// when it gives the lease up). A step under way when `shutdown` completes finishes
    /// (commits or rolls back) first. Gives up the lease before it returns.
    ///
    /// # Errors
    /// None so far: failures of steps are logged and retried.
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut shutdown = pin!(shutdown);
        let poll = self.options.poll;
        let hub = self.hub.clone().unwrap_or_else(|| {
            LogHub::start(
                self.reader.clone(),
                HubConfig {
                    poll,
                    ..HubConfig::default()
                },
            )
        });
        let mut wakes = hub.wakes();
        let mut held_back_pause = HELD_BACK_PAUSE;
        loop {
            // Seen before the step: a wake during it leads to another step at once.
            wakes.borrow_and_update();
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
                // A wake or the timeout: each leads to one more step.
                _ = tokio::time::timeout(wait, wakes.changed()) => {}
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
    /// [`ProjectionError::Database`](crate::ProjectionError::Database) when the database
    /// fails.
    pub async fn drop_retired(&self) -> Result<usize> {
        registry::drop_expired(&self.pool, self.definition.name, self.options.retired_grace).await
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
}
