//! Read replicas (docs/adr/0027): streaming standbys of the primary that the queries of the
//! OperationRun read model and the run pages read from. Commands, projectors, the sweeper,
//! anchoring, tokens, sessions, notices and the live hub stay on the primary.
//!
//! A task per replica probes it every [`ReplicaConfig::probe_every`]: its replay lag (measured
//! from write-ahead-log positions, never clocks: `replicas/lag.rs`) and that it is still a
//! standby. A replica is used only while its last probe
//! answered and its lag is within [`ReplicaConfig::max_lag`]; otherwise, or when it gives no
//! connection at once, the query reads the primary. The probes publish the lag and whether the
//! replica is in use as metrics.

mod lag;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use runledger_projections::{OPERATION_RUNS, has_passed};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use lag::LagMeter;

/// How replicas are used.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// A replica lagging more than this is skipped.
    pub max_lag: Duration,
    /// The longest a query with `min_position` waits for a replica to replay it before it
    /// reads the primary (read-your-writes), counted from the query's start.
    pub wait: Duration,
    /// How often each replica is probed (its lag, and whether it answers).
    pub probe_every: Duration,
    /// How long a query waits for a replica's connection before it reads the primary: short,
    /// so that a replica that just went down costs little until its probe notices.
    pub acquire_timeout: Duration,
    /// Most connections opened to each replica.
    pub max_connections: u32,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            max_lag: Duration::from_secs(10),
            wait: Duration::from_secs(5),
            probe_every: Duration::from_millis(500),
            acquire_timeout: Duration::from_millis(500),
            max_connections: 16,
        }
    }
}

/// A replica to read from: its connect options and a name that holds no secret.
#[derive(Debug, Clone)]
pub struct ReplicaTarget {
    /// `host:port/database`, never the password: what logs and metrics call it.
    pub name: String,
    /// How to connect (the same login role as the primary's: a physical copy has its roles).
    pub options: PgConnectOptions,
}

impl ReplicaTarget {
    /// The replica at `options`, named from its host, port and database.
    pub fn new(options: PgConnectOptions) -> Self {
        let name = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        Self { name, options }
    }
}

/// What the last probe of a replica found.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaState {
    /// The replica's name.
    pub name: String,
    /// Whether queries read it now.
    pub in_use: bool,
    /// Its replay lag at the last probe that reached it.
    pub lag: Option<Duration>,
}

/// The replicas of this process (none unless configured). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Replicas {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: ReplicaConfig,
    replicas: Vec<Arc<Replica>>,
    /// Where the next choice starts: queries take the usable replicas in turn.
    next: AtomicUsize,
    probes: Vec<JoinHandle<()>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for probe in &self.probes {
            probe.abort();
        }
    }
}

#[derive(Debug)]
struct Replica {
    name: String,
    pool: PgPool,
    state: Mutex<ReplicaState>,
}

impl Replicas {
    /// No replica: every query reads the primary.
    pub fn none() -> Self {
        Self {
            shared: Arc::new(Shared {
                config: ReplicaConfig::default(),
                replicas: Vec::new(),
                next: AtomicUsize::new(0),
                probes: Vec::new(),
            }),
        }
    }

    /// Opens (lazily: a replica down at start is only skipped) a pool on each target, and
    /// starts probing each against the `primary`. A replica is not used before its first probe.
    pub fn start(primary: &PgPool, targets: Vec<ReplicaTarget>, config: ReplicaConfig) -> Self {
        let replicas: Vec<Arc<Replica>> = targets
            .into_iter()
            .map(|target| {
                let pool = PgPoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(config.acquire_timeout)
                    .connect_lazy_with(target.options);
                Arc::new(Replica {
                    state: Mutex::new(ReplicaState {
                        name: target.name.clone(),
                        in_use: false,
                        lag: None,
                    }),
                    name: target.name,
                    pool,
                })
            })
            .collect();
        let probes = replicas
            .iter()
            .map(|replica| {
                tokio::spawn(probe_forever(
                    primary.clone(),
                    Arc::downgrade(replica),
                    config.clone(),
                ))
            })
            .collect();
        Self {
            shared: Arc::new(Shared {
                config,
                replicas,
                next: AtomicUsize::new(0),
                probes,
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ReplicaConfig {
        &self.shared.config
    }

    /// What the last probe of each replica found.
    pub fn states(&self) -> Vec<ReplicaState> {
        self.shared
            .replicas
            .iter()
            .map(|replica| lock(&replica.state).clone())
            .collect()
    }

    /// A usable replica that gives a connection now (in turn), or `None`: read the primary.
    pub async fn choose(&self) -> Option<PgPool> {
        for replica in self.usable_in_turn() {
            match replica.pool.acquire().await {
                // Back to the pool at once: the query takes this tested connection again.
                Ok(_connection) => return Some(replica.pool.clone()),
                Err(error) => {
                    tracing::debug!(replica = %replica.name, %error, "replica gave no connection; trying the next or the primary");
                }
            }
        }
        None
    }

    /// A usable replica whose OperationRun read model has passed `position` (the log position
    /// a command answered), waiting for one until `deadline`; `None`: read the primary.
    ///
    /// The caller has already waited for the primary's read model to pass `position` (on the
    /// published positions, without a query), so what is left is the replica's replay, which
    /// normally takes milliseconds: it is polled, from 5 ms apart up to 100 ms apart.
    pub async fn caught_up(&self, position: i64, deadline: Instant) -> Option<PgPool> {
        let mut pause = Duration::from_millis(5);
        loop {
            let usable = self.usable_in_turn();
            if usable.is_empty() {
                return None;
            }
            for replica in usable {
                match has_passed(&replica.pool, OPERATION_RUNS, position).await {
                    Ok(true) => return Some(replica.pool.clone()),
                    Ok(false) => {}
                    Err(error) => {
                        tracing::debug!(replica = %replica.name, %error, "replica's checkpoint could not be read");
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// The replicas in use now, starting with the next one's turn.
    fn usable_in_turn(&self) -> Vec<Arc<Replica>> {
        let replicas = &self.shared.replicas;
        if replicas.is_empty() {
            return Vec::new();
        }
        let start = self.shared.next.fetch_add(1, Ordering::Relaxed);
        (0..replicas.len())
            .map(|i| &replicas[(start + i) % replicas.len()])
            .filter(|replica| lock(&replica.state).in_use)
            .cloned()
            .collect()
    }
}

/// Why a probe found a replica unusable.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("the replica did not answer: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the replica did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("the server is not a standby (promoted, or not a replica): its data may differ")]
    NotAStandby,
    #[error("it lags {lag:?}, more than {max:?}")]
    Lagging { lag: Duration, max: Duration },
}

/// Probes one replica until it is dropped.
async fn probe_forever(primary: PgPool, replica: Weak<Replica>, config: ReplicaConfig) {
    let mut meter = LagMeter::default();
    let mut interval = tokio::time::interval(config.probe_every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(replica) = replica.upgrade() else {
            return;
        };
        // Where the primary is: without it no lag can be measured, so the state stays.
        match primary_position(&primary).await {
            Ok(lsn) => meter.primary_at(lsn, std::time::Instant::now()),
            Err(error) => {
                tracing::debug!(%error, "the primary's position could not be read; replica state kept");
                continue;
            }
        }
        let bound = config.probe_every.max(config.acquire_timeout) * 2;
        let measured = match tokio::time::timeout(bound, replayed_position(&replica.pool)).await {
            Ok(Ok(replayed)) => Ok(meter.lag(replayed, std::time::Instant::now())),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ProbeError::TimedOut(bound)),
        };
        record(&replica, measured, config.max_lag);
    }
}

/// The primary's current write-ahead-log position, in bytes.
async fn primary_position(primary: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
        .fetch_one(primary)
        .await
}

/// How far a standby has replayed the primary's write-ahead log, in bytes.
async fn replayed_position(replica: &PgPool) -> Result<i64, ProbeError> {
    let (standby, replayed): (bool, Option<i64>) = sqlx::query_as(
        "SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint",
    )
    .fetch_one(replica)
    .await?;
    match (standby, replayed) {
        (true, Some(replayed)) => Ok(replayed),
        _ => Err(ProbeError::NotAStandby),
    }
}

/// Takes a probe's outcome: the replica's state, its metrics, and a log line when it changes.
fn record(replica: &Replica, measured: Result<Duration, ProbeError>, max_lag: Duration) {
    let verdict = measured.and_then(|lag| {
        if lag > max_lag {
            Err(ProbeError::Lagging { lag, max: max_lag })
        } else {
            Ok(lag)
        }
    });
    let mut state = lock(&replica.state);
    let was_in_use = state.in_use;
    state.in_use = verdict.is_ok();
    match &verdict {
        Ok(lag) | Err(ProbeError::Lagging { lag, .. }) => state.lag = Some(*lag),
        Err(_) => {}
    }
    let labels = [("replica", replica.name.clone())];
    if let Some(lag) = state.lag {
        metrics::gauge!("runledger_replica_replay_lag_seconds", &labels).set(lag.as_secs_f64());
    }
    metrics::gauge!("runledger_replica_in_use", &labels).set(f64::from(u8::from(state.in_use)));
    match verdict {
        Ok(_) if !was_in_use => tracing::info!(replica = %replica.name, "replica in use"),
        Err(error) if was_in_use => {
            tracing::warn!(replica = %replica.name, %error, "replica skipped: queries read another one or the primary");
        }
        _ => {}
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under the lock is a plain assignment: a panic leaves a consistent state.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
