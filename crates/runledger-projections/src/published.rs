//! How far each projection has applied, published after every committed batch: in process at
//! once (a `watch` of each projection's position, a `broadcast` of the batches with the runs
//! they changed), and to other processes by a `NOTIFY` on [`POSITIONS_CHANNEL`], which their
//! [`LogHub`] passes on (docs/adr/0017).
//!
//! Read-your-writes waits and live pages wait on these positions instead of asking the
//! database: a wait costs no query while it waits. Notifications can be lost (a listener that
//! reconnects), so a process that has waiters also re-reads the active checkpoints once per
//! poll interval: one query per projection and process, whatever the number of waiters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use runledger_core::{RunId, TenantId};
use runledger_store::{EventReader, HubConfig, LogCursor, LogHub};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::Result;
use crate::registry;

/// The `NOTIFY` channel projectors publish their positions on.
pub const POSITIONS_CHANNEL: &str = "runledger_projections";

/// The largest payload a notice carries: `NOTIFY` refuses 8000 bytes and more.
const MAX_PAYLOAD: usize = 7900;

/// Where a projection's active version is: its registry id and checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The version's registry id (a switch moves to a newer one).
    pub version: i64,
    /// Everything up to it is applied.
    pub checkpoint: LogCursor,
}

impl Position {
    /// Whether this position is news after `known`: further on in the same version, or in a
    /// newer version (after a switch, whose checkpoint may lie before the retired one's).
    fn supersedes(&self, known: Option<Position>) -> bool {
        known.is_none_or(|known| {
            self.version > known.version
                || (self.version == known.version && self.checkpoint > known.checkpoint)
        })
    }
}

/// One committed batch of a projection's active version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The projection.
    pub projection: String,
    /// Where it is now.
    pub position: Position,
    /// The runs the batch changed, or `None` when a notice from another process could not carry
    /// them all (too many for `NOTIFY`): then re-derive them from the log up to the position.
    pub runs: Option<Vec<(TenantId, RunId)>>,
}

/// The published positions of this process (see the module documentation). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Published {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    pool: PgPool,
    positions: Mutex<HashMap<String, watch::Sender<Option<Position>>>>,
    applied: broadcast::Sender<Arc<Applied>>,
    /// The hub other processes' notices come through (kept alive with the positions), and the
    /// task that takes them.
    listening: Mutex<Option<(LogHub, JoinHandle<()>)>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some((_, task)) = self.listening.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

impl Published {
    /// Positions published by this process's projectors only.
    pub fn new(pool: PgPool) -> Self {
        Self {
            shared: Arc::new(Shared {
                pool,
                positions: Mutex::default(),
                applied: broadcast::channel(256).0,
                listening: Mutex::new(None),
            }),
        }
    }

    /// Positions published by this process and, through `hub` (which must listen on
    /// [`POSITIONS_CHANNEL`]), by every other; re-read every `poll` while anyone waits.
    pub fn listen(pool: PgPool, hub: &LogHub, poll: Duration) -> Self {
        let published = Self::new(pool);
        let task = tokio::spawn(follow_notices(
            Arc::downgrade(&published.shared),
            hub.notices(),
            poll,
        ));
        *lock(&published.shared.listening) = Some((hub.clone(), task));
        published
    }

    /// Every batch committed from now on.
    pub fn applied(&self) -> broadcast::Receiver<Arc<Applied>> {
        self.shared.applied.subscribe()
    }

    /// Waits, at most `timeout`, until `projection`'s active version has applied the event at
    /// `event`; returns whether it has. Reads the active checkpoint once when this process knows
    /// no position of the projection yet; otherwise it waits without a query.
    ///
    /// # Errors
    /// [`crate::ProjectionError::Database`] when that read fails.
    pub async fn wait_for(
        &self,
        projection: &str,
        event: LogCursor,
        timeout: Duration,
    ) -> Result<bool> {
        let mut position = self.subscribe(projection);
        if position.borrow().is_none() {
            self.refresh(projection).await?;
        }
        let passed = tokio::time::timeout(
            timeout,
            position.wait_for(|known| known.is_some_and(|known| event <= known.checkpoint)),
        )
        .await;
        Ok(matches!(passed, Ok(Ok(_))))
    }

    /// The checkpoint of `projection`'s active version as this process knows it (read once when
    /// it knows none yet); it may be a little behind, never ahead.
    ///
    /// # Errors
    /// [`crate::ProjectionError::Database`] when that read fails.
    pub async fn checkpoint(&self, projection: &str) -> Result<Option<LogCursor>> {
        let known = *self.subscribe(projection).borrow();
        if known.is_none() {
            self.refresh(projection).await?;
        }
        Ok((*self.subscribe(projection).borrow()).map(|known| known.checkpoint))
    }

    /// Publishes a committed batch in process: to the position's waiters and the batches'
    /// subscribers.
    pub(crate) fn publish(&self, applied: Applied) {
        if self.record(&applied.projection, applied.position) {
            let _ = self.shared.applied.send(Arc::new(applied));
        }
    }

    /// Takes `position` if it is news; returns whether it was.
    fn record(&self, projection: &str, position: Position) -> bool {
        self.sender(projection).send_if_modified(|known| {
            let news = position.supersedes(*known);
            if news {
                *known = Some(position);
            }
            news
        })
    }

    fn sender(&self, projection: &str) -> watch::Sender<Option<Position>> {
        lock(&self.shared.positions)
            .entry(projection.to_owned())
            .or_insert_with(|| watch::channel(None).0)
            .clone()
    }

    fn subscribe(&self, projection: &str) -> watch::Receiver<Option<Position>> {
        self.sender(projection).subscribe()
    }

    /// Reads the active version's checkpoint of `projection`, and takes it if it is news.
    pub(crate) async fn refresh(&self, projection: &str) -> Result<()> {
        if let Some((version, checkpoint)) =
            registry::active_checkpoint(&self.shared.pool, projection).await?
        {
            self.record(
                projection,
                Position {
                    version,
                    checkpoint,
                },
            );
        }
        Ok(())
    }
}

/// Sends a committed batch's notice to other processes, in the batch's transaction (so it is
/// delivered at its commit, and only then).
pub(crate) async fn notify(conn: &mut PgConnection, applied: &Applied) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(POSITIONS_CHANNEL)
        .bind(encode(applied))
        .execute(conn)
        .await?;
    Ok(())
}

/// The notice's payload: compact JSON; without the runs when they do not fit.
fn encode(applied: &Applied) -> String {
    let notice = |runs: Value| {
        json!({
            "p": applied.projection,
            "v": applied.position.version,
            "c": applied.position.checkpoint.to_string(),
            "r": runs,
        })
        .to_string()
    };
    let runs = applied.runs.as_ref().map(|runs| {
        runs.iter()
            .map(|(tenant, run)| json!([tenant.get(), run.to_string()]))
            .collect::<Vec<_>>()
    });
    let full = notice(json!(runs));
    if full.len() <= MAX_PAYLOAD {
        full
    } else {
        notice(Value::Null)
    }
}

/// A notice's payload read back; `None` for one this code did not write.
fn decode(payload: &str) -> Option<Applied> {
    let notice: Value = serde_json::from_str(payload).ok()?;
    let runs = match &notice["r"] {
        Value::Array(runs) => Some(
            runs.iter()
                .map(|run| {
                    let tenant = TenantId::new(run[0].as_i64()?).ok()?;
                    let run = run[1].as_str()?.parse().ok().map(RunId::from_uuid)?;
                    Some((tenant, run))
                })
                .collect::<Option<Vec<_>>>()?,
        ),
        _ => None,
    };
    Some(Applied {
        projection: notice["p"].as_str()?.to_owned(),
        position: Position {
            version: notice["v"].as_i64()?,
            checkpoint: notice["c"].as_str()?.parse().ok()?,
        },
        runs,
    })
}

/// Takes other processes' notices as they come, and re-reads the checkpoints of waited-on
/// projections every `poll` (a notice can be lost). Ends when the positions are dropped.
async fn follow_notices(
    shared: Weak<Shared>,
    mut notices: broadcast::Receiver<runledger_store::Notice>,
    poll: Duration,
) {
    let mut refresh_at = Instant::now() + poll;
    loop {
        let next = tokio::time::timeout_at(refresh_at, notices.recv()).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let published = Published { shared };
        match next {
            Ok(Ok(notice)) if notice.channel == POSITIONS_CHANNEL => {
                if let Some(applied) = decode(&notice.payload) {
                    published.publish(applied);
                }
            }
            Ok(Ok(_)) => {}
            // Missed notices are made up for by the next refresh.
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => return,
            Err(_) => {
                refresh_at = Instant::now() + poll;
                let waited: Vec<String> = lock(&published.shared.positions)
                    .iter()
                    .filter(|(_, sender)| sender.receiver_count() > 0)
                    .map(|(name, _)| name.clone())
                    .collect();
                for projection in waited {
                    if let Err(error) = published.refresh(&projection).await {
                        tracing::warn!(projection, %error, "could not re-read a projection's position");
                    }
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves a consistent map (every update is one insert).
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The live side of one process: its one [`LogHub`] (listening for appends and for the
/// projections' notices) and the projections' [`Published`] positions.
#[derive(Debug, Clone)]
pub struct LiveLog {
    /// The listener and the log follower.
    pub hub: LogHub,
    /// The projections' positions.
    pub published: Published,
}

impl LiveLog {
    /// Starts the process's hub over `pool`, looking at the log at least every `poll`.
    pub fn start(pool: &PgPool, poll: Duration) -> Self {
        let hub = LogHub::start(
            EventReader::new(pool.clone()),
            HubConfig {
                poll,
                channels: vec![POSITIONS_CHANNEL.to_owned()],
                ..HubConfig::default()
            },
        );
        let published = Published::listen(pool.clone(), &hub, poll);
        Self { hub, published }
    }
}
