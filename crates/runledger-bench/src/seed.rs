//! `runledger-bench seed`: a large log generated once into a named database that is kept, so
//! that the other benches (`--seeded NAME`) measure over the same log without generating their
//! own; run again with a larger `--events`, it grows the same log.
//!
//! The log goes through the store's own append path (`EventWriter`, whole runs per append, many
//! concurrent writers): chains, stream heads and the dedupe index are the ones the server
//! writes. Only the durability wait is skipped (`synchronous_commit = off` on the seeding pool):
//! the seed is set-up, not a measurement (docs/adr/0029).

use std::time::Instant;

use clap::Args;
use runledger_cli::database::Database;
use runledger_store::{EventReader, EventWriter, LogCursor};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::database::{checked_name, kept_database, seeding_pool};
use crate::log::generate_log;

/// `runledger-bench seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The database the log is seeded into (created if missing, kept at the end).
    #[arg(long, value_name = "NAME")]
    database: String,
    /// Events the log holds at the end: runs are appended until it holds at least this many.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events per run, appended in one batch (Queued, Started, Progressed…, Completed).
    #[arg(long, default_value_t = 20)]
    events_per_run: u64,
    /// Concurrent writers sharing one `EventWriter`.
    #[arg(long, default_value_t = 16)]
    writers: u64,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    json: bool,
}

/// Events appended per round of the seed, between two progress lines.
const ROUND_EVENTS: u64 = 500_000;

/// What a seed did: the log's size before and after, and how long the appends took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seeded {
    /// Events in the log before the seed.
    pub before: u64,
    /// Events in the log after it.
    pub after: u64,
    /// Seconds the appends took.
    pub seconds: f64,
}

/// Appends whole runs of `events_per_run` events with `writers` concurrent writers until the
/// log of `pool` holds at least `events`; `progress` is told the log's size and the seed's rate
/// (events appended per second so far) after each round.
///
/// # Errors
/// When the database fails, or `events_per_run` is below 3.
pub async fn seed_log(
    pool: &PgPool,
    events: u64,
    events_per_run: u64,
    writers: u64,
    progress: &dyn Fn(u64, f64),
) -> anyhow::Result<Seeded> {
    anyhow::ensure!(events_per_run >= 3, "--events-per-run must be at least 3");
    let before = log_events(pool).await?;
    let writer = EventWriter::new(pool.clone());
    let started = Instant::now();
    let mut held = before;
    while held < events {
        let round = (events - held).min(ROUND_EVENTS);
        let runs = round.div_ceil(events_per_run);
        generate_log(&writer, writers.max(1), runs, events_per_run).await?;
        // Every append was acknowledged whole: the log grew by exactly this.
        held += runs * events_per_run;
        progress(
            held,
            (held - before) as f64 / started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE),
        );
    }
    Ok(Seeded {
        before,
        after: held,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// How many committed events the log of `pool` holds.
///
/// # Errors
/// When the database fails.
pub async fn log_events(pool: &PgPool) -> anyhow::Result<u64> {
    Ok(EventReader::new(pool.clone())
        .count_events(LogCursor::START, None, u64::MAX)
        .await?)
}

/// The disk the log takes: the `events` table's heap (with its TOAST), its indexes, and the
/// whole database, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct LogDisk {
    /// Events in the log.
    pub events: u64,
    /// `pg_table_size('events')`: heap, TOAST, free-space and visibility maps.
    pub table: i64,
    /// `pg_indexes_size('events')`.
    pub indexes: i64,
    /// `pg_database_size`: the log with streams, dedupe index, read models and anchors.
    pub database: i64,
}

impl LogDisk {
    /// Bytes of `events` and its indexes per event.
    pub fn bytes_per_event(&self) -> f64 {
        (self.table + self.indexes) as f64 / self.events.max(1) as f64
    }

    /// The figures as one JSON object.
    pub fn json(&self) -> Value {
        json!({
            "events": self.events,
            "events_table_bytes": self.table,
            "events_indexes_bytes": self.indexes,
            "database_bytes": self.database,
            "events_bytes_per_event": self.bytes_per_event().round(),
        })
    }

    /// The figures as the benches print them.
    pub fn line(&self) -> String {
        let mib = |bytes: i64| bytes as f64 / 1_048_576.0;
        format!(
            "disk: {} events, events table {:.0} MiB + indexes {:.0} MiB = {:.0} bytes/event; database {:.0} MiB",
            self.events,
            mib(self.table),
            mib(self.indexes),
            self.bytes_per_event(),
            mib(self.database)
        )
    }
}

/// Measures [`LogDisk`] for the log of `pool`.
///
/// # Errors
/// When the database fails.
pub async fn log_disk(pool: &PgPool) -> anyhow::Result<LogDisk> {
    let (table, indexes, database): (i64, i64, i64) = sqlx::query_as(
        "SELECT pg_table_size('events'), pg_indexes_size('events'), \
         pg_database_size(current_database())",
    )
    .fetch_one(pool)
    .await?;
    Ok(LogDisk {
        events: log_events(pool).await?,
        table,
        indexes,
        database,
    })
}

/// Runs the seed and prints what it did and the disk the log takes.
///
/// # Errors
/// When the database fails.
pub async fn run(database: &Database, args: SeedArgs) -> anyhow::Result<()> {
    let name = checked_name(&args.database)?;
    // The seeding pool skips only the wait for the disk; everything else is the store's path.
    let created = kept_database(database, name, 2).await?;
    created.close().await;
    let pool = seeding_pool(database, name, u32::try_from(args.writers)?.max(1) + 2).await?;
    let json = args.json;
    let seeded = seed_log(
        &pool,
        args.events,
        args.events_per_run,
        args.writers,
        &|held, rate| {
            if !json {
                println!("  {held} events in the log, seeding at {rate:.0} events/s");
            }
        },
    )
    .await?;
    sqlx::raw_sql("VACUUM ANALYZE").execute(&pool).await?;
    let disk = log_disk(&pool).await?;
    let appended = seeded.after - seeded.before;
    let rate = appended as f64 / seeded.seconds.max(f64::MIN_POSITIVE);
    if json {
        println!(
            "{}",
            json!({
                "database": name,
                "events_before": seeded.before,
                "events_appended": appended,
                "seconds": seeded.seconds.round(),
                "events_per_second": rate.round(),
                "writers": args.writers,
                "events_per_run": args.events_per_run,
                "disk": disk.json(),
            })
        );
    } else {
        println!(
            "seeded {name}: {} → {} events, {appended} appended in {:.0}s = {rate:.0} events/s \
             ({} writers, {}-event appends)",
            seeded.before, seeded.after, seeded.seconds, args.writers, args.events_per_run
        );
        println!("{}", disk.line());
    }
    pool.close().await;
    Ok(())
}
