//! The sweeper: rounds that find the runs whose limit has passed and time them out.
//!
//! A round reads the time once from the process's clock, asks the read model for overdue runs
//! (`runledger_projections::operation_runs::overdue_runs`, bounded per round) and sends each a
//! `TimeOut { at, last_heartbeat_at }` through the command path. It only finds candidates: the
//! decision is the core's, against the run's events, so a stale candidate (a heartbeat, a
//! progress report or a completion came in between, or the read model lags) is refused there
//! and changes nothing, and a time-out racing a completion ends with exactly one `Completed`
//! (docs/adr/0013, docs/adr/0021).
//!
//! One sweeper leads across processes, by the store's lease [`SWEEPER_LEASE`]
//! (docs/adr/0024). Its time-outs need no fence: two leaders at once are harmless, since each
//! time-out is decided against the run's events and stored once (its event id is the run's).
//! Still, a leader sends nothing once its lease has lapsed by its own monotonic clock, even in
//! the middle of a round, so a sweeper that wakes from a pause stops acting before it bids again.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use runledger_core::{Clock, EventId, RunCommand, RunRejection, TimeOut};
use runledger_projections::operation_runs::{OverdueRun, overdue_runs};
use runledger_store::{
    CommandError, CommandHandler, CommandOutcome, CommandRequest, EventMetadata, ExpectedVersion,
    Lease, LeaseBid,
};
use sqlx::PgPool;
use uuid::Uuid;

/// The name of the sweeper's lease: one sweeper leads per database.
pub const SWEEPER_LEASE: &str = "sweeper";

/// How the sweeper runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweeperConfig {
    /// The pause between rounds: a limit is acted on within about this long of passing (plus
    /// the read model's lag and the round itself).
    pub interval: Duration,
    /// The most candidates one round takes; a full round is followed by another at once.
    pub batch: u32,
    /// How many time-outs of a round are in flight at once.
    pub concurrency: usize,
    /// The leader's lease: a leader that stops renewing it loses it within this long, and a
    /// standby takes over within an interval after that.
    pub lease: Duration,
}

impl Default for SweeperConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            batch: 200,
            concurrency: 8,
            lease: runledger_store::DEFAULT_LEASE_DURATION,
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Overdue runs the read model showed.
    pub candidates: usize,
    /// Runs this round completed as timed out.
    pub timed_out: usize,
    /// Candidates the command path refused: not overdue after all, completed meanwhile, or
    /// timed out already.
    pub stale: usize,
    /// Time-outs that failed (the store could not be reached); the next round tries again.
    pub failed: usize,
    /// Candidates left alone because the lease lapsed during the round; the next leader's
    /// rounds find them again.
    pub abandoned: usize,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepOutcome {
    /// Another process leads the sweeper.
    NotLeader,
    /// This process leads, and swept.
    Swept(SweepReport),
}

/// A round that could not look for candidates.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The database failed, or could not be reached.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// The sweeper of one process: steppable for tests, or as a loop with [`Sweeper::run`].
#[derive(Debug)]
pub struct Sweeper {
    pool: PgPool,
    commands: CommandHandler,
    clock: Arc<dyn Clock>,
    config: SweeperConfig,
    lease: Lease,
}

impl Sweeper {
    /// A sweeper over the ledger database `pool`, sending time-outs through `commands`, at the
    /// time of `clock`.
    pub fn new(
        pool: PgPool,
        commands: CommandHandler,
        clock: Arc<dyn Clock>,
        config: SweeperConfig,
    ) -> Self {
        Self {
            lease: Lease::new(pool.clone(), SWEEPER_LEASE, config.lease),
            pool,
            commands,
            clock,
            config,
        }
    }

    /// Whether this sweeper leads (its lease renewed less than its duration ago).
    pub fn is_leader(&self) -> bool {
        self.lease.is_held()
    }

    /// One round, at the clock's time now: lead (or report another leads), find up to a batch
    /// of overdue runs, and send each a time-out.
    ///
    /// # Errors
    /// [`SweepError::Database`] when the lease or the candidates cannot be read; nothing was
    /// sent.
    #[tracing::instrument(skip_all)]
    pub async fn step(&mut self) -> Result<SweepOutcome, SweepError> {
        if self.lease.bid().await? == LeaseBid::Refused {
            return Ok(SweepOutcome::NotLeader);
        }
        let at = self.clock.now();
        let candidates = match overdue_runs(&self.pool, at, self.config.batch).await {
            Ok(candidates) => candidates,
            // No projector has built the read model yet, or the view still shows a version
            // built before its deadline columns (an upgrade is rebuilding it): no run of it can
            // be overdue, and the rounds after the switch find the ones queued meanwhile.
            Err(sqlx::Error::Database(error))
                if matches!(
                    error.code().as_deref(),
                    Some(UNDEFINED_TABLE | UNDEFINED_COLUMN)
                ) =>
            {
                tracing::debug!(%error, "the read model has no deadlines yet");
                Vec::new()
            }
            Err(error) => return Err(error.into()),
        };
        let mut report = SweepReport {
            candidates: candidates.len(),
            ..SweepReport::default()
        };
        let mut results = stream::iter(candidates)
            .map(|candidate| self.time_out(candidate, at))
            .buffer_unordered(self.config.concurrency.max(1));
        while let Some(result) = results.next().await {
            match result {
                Verdict::TimedOut => report.timed_out += 1,
                Verdict::Stale => report.stale += 1,
                Verdict::Failed => report.failed += 1,
                Verdict::Abandoned => report.abandoned += 1,
            }
        }
        metrics::counter!("runledger_sweeper_time_outs_total").increment(report.timed_out as u64);
        Ok(SweepOutcome::Swept(report))
    }

    /// Sends `candidate` a time-out at `at`.
    async fn time_out(&self, candidate: OverdueRun, at: chrono::DateTime<chrono::Utc>) -> Verdict {
        if !self.lease.is_held() {
            return Verdict::Abandoned;
        }
        let request = CommandRequest {
            tenant_id: candidate.tenant_id,
            run_id: candidate.run_id,
            command: RunCommand::TimeOut(TimeOut {
                at,
                last_heartbeat_at: candidate.heartbeat_at,
            }),
            // Decided against whatever the run is at when it is loaded: a completion that lands
            // first makes this a refusal, never an overwrite.
            expected: ExpectedVersion::Any,
            // A run times out once: every time-out of it has the same event id, so one sent
            // again (by a sweeper that lost its answer, or by two leaders) is stored once.
            event_id: time_out_event_id(&candidate),
            metadata: EventMetadata::actor("system:sweeper"),
        };
        match self.commands.execute(&request).await {
            // Stored by an earlier round whose answer was lost.
            Ok(CommandOutcome::Applied { replayed: true, .. }) => Verdict::Stale,
            Ok(CommandOutcome::Applied { run, .. }) => {
                let limit = match &run.completion {
                    Some(runledger_core::CompletionReason::TimedOut { time_out }) => {
                        time_out.limit.as_str()
                    }
                    _ => "unknown",
                };
                tracing::info!(tenant = %candidate.tenant_id, run = %candidate.run_id, limit, "timed out");
                Verdict::TimedOut
            }
            Ok(CommandOutcome::Unchanged { .. } | CommandOutcome::Deduplicated { .. }) => {
                Verdict::Stale
            }
            Err(CommandError::Rejected(
                RunRejection::NotOverdue { .. }
                | RunRejection::InvalidTransition { .. }
                | RunRejection::NotFound,
            )) => Verdict::Stale,
            Err(error) => {
                tracing::warn!(tenant = %candidate.tenant_id, run = %candidate.run_id, %error, "a time-out failed; the next round tries again");
                Verdict::Failed
            }
        }
    }

    /// Runs rounds until `shutdown` completes: one every interval, or at once after a full
    /// round; a standby takes over within an interval of the leader's lease lapsing (at once when
    /// it gives the lease up). A round under way when `shutdown` completes finishes first. Gives
    /// the lease up before it returns.
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        loop {
            let pause = match self.step().await {
                Ok(SweepOutcome::Swept(report))
                    if report.candidates >= self.config.batch as usize =>
                {
                    Duration::ZERO
                }
                Ok(_) => self.config.interval,
                Err(error) => {
                    tracing::warn!(%error, "a sweeper round failed; retrying");
                    self.config.interval
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        self.lease.release().await;
    }

    /// Gives the lease up, so that a standby takes over at once.
    pub async fn release(&mut self) {
        self.lease.release().await;
    }
}

/// What became of one candidate.
enum Verdict {
    TimedOut,
    Stale,
    Failed,
    /// Not sent: this sweeper no longer holds the lease.
    Abandoned,
}

/// PostgreSQL's SQLSTATE for a relation that does not exist.
const UNDEFINED_TABLE: &str = "42P01";
/// PostgreSQL's SQLSTATE for a column that does not exist.
const UNDEFINED_COLUMN: &str = "42703";

/// The event id of a run's time-out: the same for every time-out of the run.
fn time_out_event_id(candidate: &OverdueRun) -> EventId {
    EventId::from_uuid(Uuid::new_v5(
        &candidate.run_id.as_uuid(),
        b"runledger:time-out",
    ))
}
