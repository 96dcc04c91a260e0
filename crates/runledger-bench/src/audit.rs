//! `runledger-bench audit`: how fast the auditor's tools go over a large log, and in how much
//! memory: recording an anchor, verifying the database (chains and anchors), exporting it, and
//! verifying the export offline.
//!
//! The bench works in a database of its own, dropped at the end. The log is generated with
//! whole-run appends of `--events-per-run` events by concurrent writers through the store's
//! `EventWriter`; peak RSS is the process's `VmHWM`, reset before each phase.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use futures_util::TryStreamExt;
use runledger_audit::verify::{Anchors, Target};
use runledger_audit::{Scope, record_anchor, verify_database, verify_export};
use runledger_cli::database::Database;
use runledger_store::{EventReader, EventWriter};
use serde_json::{Map, Value, json};

use crate::database::{BenchDatabase, SeededArgs};
use crate::log::generate_log;
use crate::memory::{peak_rss_kib, reset_peak_rss};
use crate::seed::log_events;

/// `runledger-bench audit`.
#[derive(Debug, Args)]
pub struct AuditBenchArgs {
    /// Events in the log.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events per run, appended in one batch (Queued, Started, Progressed…, Completed).
    #[arg(long, default_value_t = 100)]
    events_per_run: u64,
    /// Concurrent writers generating the log.
    #[arg(long, default_value_t = 4)]
    writers: u64,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    log: SeededArgs,
}

const BENCH_DATABASE: &str = "runledger_bench_audit";

/// One measured phase: how long, how many events, the peak RSS while it ran.
struct Phase {
    seconds: f64,
    events: u64,
    peak_rss_kib: u64,
}

impl Phase {
    fn events_per_second(&self) -> f64 {
        self.events as f64 / self.seconds
    }

    fn json(&self) -> Value {
        json!({
            "seconds": (self.seconds * 100.0).round() / 100.0,
            "events": self.events,
            "events_per_second": self.events_per_second().round(),
            "peak_rss_mib": (self.peak_rss_kib as f64 / 1024.0).round(),
        })
    }
}

/// Runs `phase` with the peak RSS reset before it; returns its events and measures.
async fn measure<F: Future<Output = anyhow::Result<u64>>>(phase: F) -> anyhow::Result<Phase> {
    reset_peak_rss();
    let started = Instant::now();
    let events = phase.await?;
    Ok(Phase {
        seconds: started.elapsed().as_secs_f64(),
        events,
        peak_rss_kib: peak_rss_kib()?,
    })
}

/// Runs the bench and prints its figures.
///
/// # Errors
/// When the database or the file system fails, or a verification finds a fault.
pub async fn run(database: &Database, args: AuditBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.events_per_run >= 3,
        "--events-per-run must be at least 3"
    );
    let bench = BenchDatabase::open(database, &args.log, BENCH_DATABASE).await?;
    let pool = bench.pool.clone();
    let runs = args.events.div_ceil(args.events_per_run);
    let generation = measure(async {
        if bench.is_seeded() {
            return log_events(&pool).await;
        }
        generate_log(
            &EventWriter::new(pool.clone()),
            args.writers,
            runs,
            args.events_per_run,
        )
        .await?;
        Ok(runs * args.events_per_run)
    })
    .await?;
    let mut results = Map::new();
    let mut report = |name: &str, phase: &Phase, note: String| {
        if !args.json {
            println!(
                "{name:<16} {:>9} events in {:>6.1}s = {:>7.0} events/s, peak RSS {:>4.0} MiB{note}",
                phase.events,
                phase.seconds,
                phase.events_per_second(),
                phase.peak_rss_kib as f64 / 1024.0
            );
        }
        results.insert(name.to_owned(), phase.json());
    };
    let generated = if bench.is_seeded() {
        format!(" (counted: the seeded log of {})", bench.name())
    } else {
        format!(
            " ({} writers, {}-event appends)",
            args.writers, args.events_per_run
        )
    };
    report("generate", &generation, generated);

    let anchoring = measure(async {
        let anchor = record_anchor(&pool).await?.context("the log moved")?;
        Ok(anchor.event_count)
    })
    .await?;
    report("record anchor", &anchoring, String::new());

    let reader = EventReader::new(pool.clone());
    let mut verified_runs = 0;
    let verification = measure(async {
        let verified = verify_database(&pool, Target::Log, Anchors::Stored, &|_| {}).await?;
        anyhow::ensure!(verified.is_valid(), "{}", verified.summary());
        verified_runs = verified.runs;
        Ok(verified.events)
    })
    .await?;
    report(
        "verify database",
        &verification,
        format!(" ({verified_runs} runs, 1 anchor)"),
    );

    let path = std::env::temp_dir().join(format!("{BENCH_DATABASE}_{}.ndjson", std::process::id()));
    let exporting = measure(async {
        let mut file = BufWriter::new(File::create(&path)?);
        let mut chunks = std::pin::pin!(
            runledger_audit::export::export(reader.clone(), Scope::default()).await?
        );
        let mut events = 0;
        while let Some(chunk) = chunks.try_next().await? {
            file.write_all(chunk.text.as_bytes())?;
            events += chunk.events;
        }
        file.flush()?;
        Ok(events)
    })
    .await?;
    let bytes = std::fs::metadata(&path)?.len();
    report(
        "export",
        &exporting,
        format!(" ({:.0} MiB of NDJSON)", bytes as f64 / 1048576.0),
    );

    let offline = measure(async {
        let input = BufReader::with_capacity(1 << 20, File::open(&path)?);
        let verified =
            tokio::task::spawn_blocking(move || verify_export(input, Target::Log, None)).await??;
        anyhow::ensure!(verified.report.is_valid(), "{}", verified.report.summary());
        Ok(verified.report.events)
    })
    .await?;
    report(
        "verify export",
        &offline,
        " (offline, from the file)".to_owned(),
    );
    std::fs::remove_file(&path)?;

    if args.json {
        results.insert("export_bytes".to_owned(), json!(bytes));
        println!("{}", Value::Object(results));
    }
    bench.close(database).await
}
