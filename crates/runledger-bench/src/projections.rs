//! `runledger-bench projections`: the OperationRun read model's catch-up throughput over a
//! large log (events/s and peak RSS), and the latency from a committed append to the change
//! being visible in `public.operation_runs` under a steady write load.
//!
//! The bench works in a database of its own, dropped at the end. The log is generated with
//! whole-run appends (one `Queued`, one `Started`, `Progressed` events, one `Completed`) by
//! concurrent writers through the store's `EventWriter`. With `--seeded NAME` it measures over
//! the log `runledger-bench seed` left there instead: the catch-up is a rebuild of the read model
//! from the start of that log (`registry::rebuild`), and the database is kept.

use std::time::{Duration, Instant};

use clap::Args;
use futures_util::future::try_join_all;
use runledger_cli::database::Database;
use runledger_core::TenantId;
use runledger_projections::{
    OperationRuns, Projection, Projector, ProjectorOptions, StepOutcome, registry,
};
use runledger_store::EventWriter;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::database::{BenchDatabase, SeededArgs};
use crate::log::{generate_log, progressed, started, system_run};
use crate::memory::{peak_rss_kib, reset_peak_rss};
use crate::percentile::percentile_ms;
use crate::seed::{log_disk, log_events};

/// `runledger-bench projections`.
#[derive(Debug, Args)]
pub struct ProjectionsBenchArgs {
    /// Events in the log the read model catches up over.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events per run (Queued, Started, Progressed…, Completed); at least 3.
    #[arg(long, default_value_t = 20)]
    events_per_run: u64,
    /// Events per projector transaction.
    #[arg(long, default_value_t = 1000)]
    batch_size: u32,
    /// Seconds of steady write load for the latency measurement.
    #[arg(long, default_value_t = 20)]
    latency_seconds: u64,
    /// Events per second of the steady write load.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    log: SeededArgs,
}

const BENCH_DATABASE: &str = "runledger_bench_projections";
/// Concurrent writers generating the log.
const GENERATORS: u64 = 8;
/// Concurrent writers of the steady load.
const LOAD_WRITERS: u64 = 4;

/// Runs the bench and prints its figures.
///
/// # Errors
/// When the database fails, or the read model does not catch up or show an append in time.
pub async fn run(database: &Database, args: ProjectionsBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.events_per_run >= 3,
        "--events-per-run must be at least 3"
    );
    let bench = BenchDatabase::open(database, &args.log, BENCH_DATABASE).await?;
    let pool = bench.pool.clone();
    let events = if bench.is_seeded() {
        log_events(&pool).await?
    } else {
        let started = Instant::now();
        let runs = args.events.div_ceil(args.events_per_run);
        generate_log(
            &EventWriter::new(pool.clone()),
            GENERATORS,
            runs,
            args.events_per_run,
        )
        .await?;
        // Every append of the generators was acknowledged whole: the log holds exactly this.
        let events = runs * args.events_per_run;
        if !args.json {
            println!(
                "generated {events} events of {runs} runs in {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
        events
    };
    if bench.is_seeded() && !args.json {
        println!("over the seeded log of {}: {events} events", bench.name());
    }

    let rebuild = bench.is_seeded();
    let caught_up = catch_up(&pool, args.batch_size, rebuild).await?;
    // A rebuild reads the whole log; a fresh read model reads what was generated.
    anyhow::ensure!(
        caught_up.events >= events,
        "the catch-up read {} of the log's {events} events",
        caught_up.events
    );
    let (catch_up_seconds, peak_rss_kib) = (caught_up.seconds, caught_up.peak_rss_kib);
    let events_per_second = caught_up.events as f64 / catch_up_seconds;
    if !args.json {
        println!(
            "catch-up: {} events in {catch_up_seconds:.1}s = {events_per_second:.0} events/s, \
             peak RSS {:.0} MiB (batch {})",
            caught_up.events,
            peak_rss_kib as f64 / 1024.0,
            args.batch_size
        );
    }

    // The latency is measured in a steady state, not in the aftermath of the bulk load: the
    // log is vacuumed and analyzed, and a checkpoint flushes what the load left dirty (it needs
    // a superuser; without one the measurement goes on regardless).
    sqlx::raw_sql("VACUUM ANALYZE events")
        .execute(&pool)
        .await?;
    if let Err(error) = sqlx::raw_sql("CHECKPOINT").execute(&pool).await {
        tracing::warn!(%error, "no checkpoint before the latency measurement");
    }
    let latencies = visibility(&pool, &args).await?;
    let (p50, p99, max) = (
        percentile_ms(&latencies, 0.5),
        percentile_ms(&latencies, 0.99),
        percentile_ms(&latencies, 1.0),
    );
    let disk = log_disk(&pool).await?;
    if args.json {
        println!(
            "{}",
            json!({
                "events": events,
                "seeded": bench.is_seeded(),
                "catch_up_events": caught_up.events,
                "disk": disk.json(),
                "catch_up_seconds": catch_up_seconds,
                "catch_up_events_per_second": events_per_second.round(),
                "peak_rss_mib": (peak_rss_kib as f64 / 1024.0).round(),
                "visibility_samples": latencies.len(),
                "visibility_p50_ms": p50,
                "visibility_p99_ms": p99,
                "visibility_max_ms": max,
                "write_rate_events_per_second": args.rate,
            })
        );
    } else {
        println!(
            "append -> visible at {} events/s: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({} samples)",
            args.rate,
            latencies.len()
        );
        println!("{}", disk.line());
    }
    bench.close(database).await
}

/// What a catch-up did.
#[derive(Debug, Clone, Copy)]
pub struct CaughtUp {
    /// How long it took.
    pub seconds: f64,
    /// Events the projector applied.
    pub events: u64,
    /// The process's peak RSS (KiB) meanwhile.
    pub peak_rss_kib: u64,
}

/// Brings the read model up to the end of the log: from where it is, or, with `rebuild`, from
/// the start of the log in a new version (as `runledger projections rebuild` does), which
/// replaces the old one when it has caught up.
///
/// # Errors
/// When the database fails, the catch-up stops (a poison event, another leader), or a rebuild
/// was already under way.
pub async fn catch_up(pool: &PgPool, batch_size: u32, rebuild: bool) -> anyhow::Result<CaughtUp> {
    let projection = OperationRuns::new();
    if rebuild {
        let started = registry::rebuild(pool, &projection.definition()).await?;
        anyhow::ensure!(
            started.created,
            "a rebuild of the read model was already under way (cancel it with \
             `runledger projections cancel operation_runs`)"
        );
    }
    // The peak is the catch-up's, not the generators'.
    reset_peak_rss();
    let mut projector = Projector::new(
        pool.clone(),
        projection,
        ProjectorOptions {
            batch_size,
            ..ProjectorOptions::default()
        },
    );
    let started = Instant::now();
    loop {
        match projector.catch_up().await? {
            StepOutcome::CaughtUp if !projector.has_unread_events().await? => break,
            StepOutcome::CaughtUp => tokio::time::sleep(Duration::from_millis(5)).await,
            other => anyhow::bail!("the catch-up stopped: {other:?}"),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    projector.release().await;
    Ok(CaughtUp {
        seconds,
        events: projector.stats().events_applied,
        peak_rss_kib: peak_rss_kib()?,
    })
}

/// One append to observe: the run, the version it reached, and when the append returned.
struct Probe {
    run: Uuid,
    version: i64,
    committed: Instant,
}

/// Runs the projector live while writers append at a steady rate; a prober takes one append at
/// a time and polls the public view until it shows it. Returns the sorted latencies.
async fn visibility(pool: &PgPool, args: &ProjectionsBenchArgs) -> anyhow::Result<Vec<Duration>> {
    let (stop, stopped) = watch::channel(false);
    let mut projector = Projector::new(
        pool.clone(),
        OperationRuns::new(),
        ProjectorOptions::default(),
    );
    // Lead before the load starts, so no sample waits for a takeover.
    while projector.step().await? == StepOutcome::NotLeader {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let live = tokio::spawn({
        let mut stopped = stopped.clone();
        async move {
            projector
                .run(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        }
    });
    let (probes, mut probed) = mpsc::channel::<Probe>(1);
    let deadline = Instant::now() + Duration::from_secs(args.latency_seconds);
    let interval = Duration::from_secs_f64(LOAD_WRITERS as f64 / args.rate.max(1) as f64);
    let writer = EventWriter::new(pool.clone());
    let writers = (0..LOAD_WRITERS).map(|w| {
        let writer = writer.clone();
        let probes = probes.clone();
        tokio::spawn(async move { steady_writer(writer, w, interval, deadline, probes).await })
    });
    let writers = tokio::spawn(try_join_all(writers));
    drop(probes);

    let pool = pool.clone();
    let mut latencies = Vec::new();
    while let Some(probe) = probed.recv().await {
        loop {
            let version: Option<i64> =
                sqlx::query_scalar("SELECT version FROM public.operation_runs WHERE id = $1")
                    .bind(probe.run)
                    .fetch_optional(&pool)
                    .await?;
            if version.is_some_and(|v| v >= probe.version) {
                latencies.push(probe.committed.elapsed());
                break;
            }
            if probe.committed.elapsed() > Duration::from_secs(30) {
                anyhow::bail!("an append was not visible after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    for writer in writers.await?? {
        writer?;
    }
    let _ = stop.send(true);
    live.await??;
    latencies.sort_unstable();
    Ok(latencies)
}

/// Queues and starts a run, then appends one progress event per `interval` until `deadline`,
/// offering each append to the prober (taken only when it is free).
async fn steady_writer(
    writer: EventWriter,
    w: u64,
    interval: Duration,
    deadline: Instant,
    probes: mpsc::Sender<Probe>,
) -> anyhow::Result<()> {
    let tenant = TenantId::new(1 + w as i64)?;
    let (run, queued) = system_run(tenant, "inventory.sync")?;
    writer.append(tenant, run, 0, &[queued, started()]).await?;
    let mut version = 2;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < deadline {
        ticks.tick().await;
        writer.append(tenant, run, version, &[progressed()]).await?;
        version += 1;
        let _ = probes.try_send(Probe {
            run: run.as_uuid(),
            version: i64::try_from(version)?,
            committed: Instant::now(),
        });
    }
    Ok(())
}
