//! The `runledger-bench` binary: parses the command line, opens the ledger's database server
//! (`DATABASE_URL` or the embedded PostgreSQL, as `runledger` does) and runs one benchmark.

use clap::{Parser, Subcommand};
use runledger_bench::{append, audit, http, live, projections, seed};
use runledger_cli::database::{Database, DatabaseArgs};

/// runledger-bench: the runledger benchmarks, each in a database of its own on the ledger's
/// server, or over a log seeded once (`seed`, then `--seeded NAME`; figures and targets:
/// docs/performance.md).
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Store appends vs raw inserts: single events at 1, 4 and 16 writers, 100-event batches at 16.
    Append(append::AppendArgs),
    /// The OperationRun read model: catch-up throughput over a large log, and append-to-visible
    /// latency under a steady write load.
    Projections(projections::ProjectionsBenchArgs),
    /// The HTTP API: commands at 16 clients against direct store calls; GET run and list page
    /// latency over a large read model.
    Http(http::HttpBenchArgs),
    /// Live streams (log tails and watched lists) held open beside commands and GETs: whether
    /// each stream gets every event, and what the streams cost the others' p99.
    Live(live::LiveBenchArgs),
    /// The auditor's tools over a large log: anchor, verify, export, verify the export offline.
    Audit(audit::AuditBenchArgs),
    /// Seeds (or grows) a large log in a named database that is kept, for the other benches'
    /// `--seeded NAME`; prints the disk it takes per event.
    Seed(seed::SeedArgs),
}

fn main() -> anyhow::Result<()> {
    runledger_cli::logging::init();
    let cli = Cli::parse();
    let runtime = runledger_cli::runtime()?;
    Database::run(&cli.database, runtime, async |database| match cli.bench {
        Bench::Append(args) => append::run(database, args).await,
        Bench::Projections(args) => projections::run(database, args).await,
        Bench::Http(args) => http::run(database, args).await,
        Bench::Audit(args) => audit::run(database, args).await,
        Bench::Live(args) => live::run(database, args).await,
        Bench::Seed(args) => seed::run(database, args).await,
    })
}
