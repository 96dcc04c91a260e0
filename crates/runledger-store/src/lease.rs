//! Leases: one leader per named leadership across processes, that lapses when the leader stops
//! renewing it (docs/adr/0024).
//!
//! A lease is a row of `leases`: its holder, an epoch, and an expiry, all taken and compared with
//! the database's clock (`clock_timestamp()`), never a process's, so processes whose clocks
//! disagree still agree on who leads. A holder renews it well before it lapses; one that stops
//! renewing (killed, paused by `SIGSTOP`, hung in a step while its connection stays open) loses
//! it when it lapses, and the next contender takes it with the epoch one higher.
//!
//! Leadership alone only keeps the others idle. What makes a stale leader harmless is the
//! [`Fence`]: work that must not be done by two leaders checks, inside its own transaction, that
//! the lease still has the epoch it was taken with and has not lapsed, and holds the lease's row
//! (`FOR SHARE`) until it commits, so no contender can take the lease between the check and the
//! commit. A leader that wakes after losing its lease fails that check and commits nothing.

use std::time::{Duration, Instant};

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The default duration of a lease: a leader that stops renewing loses it within this long, and
/// a standby takes over within its next poll after that.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(8);

/// The shortest lease accepted: renewals every third of it must stay well apart.
pub const MIN_LEASE_DURATION: Duration = Duration::from_millis(300);

/// What a bid for the lease came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseBid {
    /// It held the lease already and still does, with the same epoch.
    Kept,
    /// It holds the lease from now on, with a new epoch (work it prepared as a former holder
    /// must be prepared afresh).
    Taken,
    /// Another holder has it and it has not lapsed.
    Refused,
}

/// Proof of holding a lease at one epoch, to be checked where the work commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    name: String,
    holder: String,
    epoch: i64,
}

impl Fence {
    /// The epoch the lease was taken with.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Whether the lease is still held at this epoch and has not lapsed, checked on `tx` (the
    /// transaction of the work it fences): when true, the lease's row stays locked (`FOR SHARE`)
    /// until `tx` ends, so no contender takes the lease before the work commits.
    ///
    /// # Errors
    /// The database's.
    pub async fn check(&self, tx: &mut PgConnection) -> Result<bool, sqlx::Error> {
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT epoch FROM public.leases \
             WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp() \
             FOR SHARE",
        )
        .bind(&self.name)
        .bind(&self.holder)
        .bind(self.epoch)
        .fetch_optional(tx)
        .await?;
        Ok(held.is_some())
    }
}

/// One contender's bid for a named leadership: held (at an epoch) or not.
#[derive(Debug)]
pub struct Lease {
    pool: PgPool,
    name: String,
    holder: String,
    duration: Duration,
    held: Option<Held>,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: i64,
    /// When the last successful renewal was sent: the lease lasts at least `duration` from then.
    renewed: Instant,
}

impl Lease {
    /// A bid for the leadership `name` on the database of `pool`, for leases of `duration`
    /// (at least [`MIN_LEASE_DURATION`]); not held yet.
    pub fn new(pool: PgPool, name: impl Into<String>, duration: Duration) -> Self {
        Self {
            pool,
            name: name.into(),
            // The process id tells an operator which process leads; the random part tells two
            // contenders of one process apart.
            holder: format!("pid {} ({})", std::process::id(), Uuid::new_v4().simple()),
            duration: duration.max(MIN_LEASE_DURATION),
            held: None,
        }
    }

    /// The leadership's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long the lease lasts after each renewal.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Whether this contender holds the lease: it took or renewed it less than its duration ago
    /// (by this process's monotonic clock, from before the renewal was sent, so never longer
    /// than the database grants it). A leader checks this before each piece of work it does on
    /// its own authority.
    pub fn is_held(&self) -> bool {
        self.held
            .is_some_and(|held| held.renewed.elapsed() < self.duration)
    }

    /// The fence of the epoch held, if the lease is held.
    pub fn fence(&self) -> Option<Fence> {
        self.is_held().then(|| Fence {
            name: self.name.clone(),
            holder: self.holder.clone(),
            epoch: self.held.map_or(0, |held| held.epoch),
        })
    }

    /// Keeps, renews or takes the lease: a holder renews it once a third of its duration has
    /// passed since the last renewal; anyone takes it once it has lapsed.
    ///
    /// # Errors
    /// The database's; the lease then counts as not held here (it lapses by itself).
    pub async fn bid(&mut self) -> Result<LeaseBid, sqlx::Error> {
        if let Some(held) = self.held
            && held.renewed.elapsed() < self.duration / 3
        {
            return Ok(LeaseBid::Kept);
        }
        let sent = Instant::now();
        let epoch = match self.take_or_renew().await {
            Ok(epoch) => epoch,
            Err(error) => {
                self.held = None;
                return Err(error);
            }
        };
        let before = self.held.take();
        let Some(epoch) = epoch else {
            if before.is_some() {
                tracing::warn!(lease = self.name, "lost the lease to another holder");
            }
            return Ok(LeaseBid::Refused);
        };
        self.held = Some(Held {
            epoch,
            renewed: sent,
        });
        if before.is_some_and(|before| before.epoch == epoch) {
            Ok(LeaseBid::Kept)
        } else {
            tracing::info!(lease = self.name, epoch, "took the lease");
            Ok(LeaseBid::Taken)
        }
    }

    /// The one statement of a bid: the lease's epoch when this holder has it now.
    async fn take_or_renew(&self) -> Result<Option<i64>, sqlx::Error> {
        // The epoch stays only for a holder renewing a lease that has not lapsed; any other
        // change of hands (a lapse included, even back to the same holder) moves it on, so a
        // fence taken before the change fails.
        sqlx::query_scalar(
            "INSERT INTO leases AS l (name, holder, epoch, acquired_at, renewed_at, expires_at) \
             VALUES ($1, $2, 1, clock_timestamp(), clock_timestamp(), \
                     clock_timestamp() + make_interval(secs => $3)) \
             ON CONFLICT (name) DO UPDATE SET \
                 epoch = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp() \
                              THEN l.epoch ELSE l.epoch + 1 END, \
                 acquired_at = CASE WHEN l.holder = EXCLUDED.holder \
                                         AND l.expires_at > clock_timestamp() \
                                    THEN l.acquired_at ELSE clock_timestamp() END, \
                 holder = EXCLUDED.holder, \
                 renewed_at = clock_timestamp(), \
                 expires_at = EXCLUDED.expires_at \
             WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp() \
             RETURNING epoch",
        )
        .bind(&self.name)
        .bind(&self.holder)
        .bind(self.duration.as_secs_f64())
        .fetch_optional(&self.pool)
        .await
    }

    /// Gives the lease up, so that a standby takes it at its next bid instead of waiting for
    /// it to lapse.
    pub async fn release(&mut self) {
        if let Some(held) = self.held.take() {
            release(&self.pool, &self.name, &self.holder, held.epoch).await;
        }
    }
}

/// Ends the lease `name` of `holder` at `epoch` now (if it still is theirs).
async fn release(pool: &PgPool, name: &str, holder: &str, epoch: i64) {
    let released = sqlx::query(
        "UPDATE leases SET expires_at = clock_timestamp() \
         WHERE name = $1 AND holder = $2 AND epoch = $3",
    )
    .bind(name)
    .bind(holder)
    .bind(epoch)
    .execute(pool)
    .await;
    if let Err(error) = released {
        tracing::warn!(lease = name, %error, "could not release the lease; it lapses by itself");
    }
}

impl Drop for Lease {
    /// A lease dropped while held is given up in the background (on the runtime it is dropped
    /// on, if any), so that a standby need not wait for it to lapse; if that cannot happen, it
    /// lapses by itself.
    fn drop(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (pool, name, holder) = (
            self.pool.clone(),
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.holder),
        );
        runtime.spawn(async move { release(&pool, &name, &holder, held.epoch).await });
    }
}

/// The holder of the leadership `name`, when someone holds it and it has not lapsed.
///
/// # Errors
/// The database's.
pub async fn holder(pool: &PgPool, name: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT holder FROM leases WHERE name = $1 AND expires_at > clock_timestamp()",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
}
