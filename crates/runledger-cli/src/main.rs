//! The `runledger` binary: parses the command line, opens the database and runs one subcommand.
//!
//! This is the composition root: the only crate that knows about flags, environment variables
//! and the embedded database. Everything it does is a call into the library crates.
//!
//! # Layout
//! - `database` (in the crate's library, shared with `runledger-bench`): `DATABASE_URL`, or the
//!   embedded PostgreSQL in `--data-dir`.
//! - `clock` (in the crate's library, shared with `runledger-bench`): the system clock, where
//!   the time of commands enters.
//! - `run_commands`: `queue`, `start`, `progress`, `complete`, `dispatch-failed`, `cancel`,
//!   `heartbeat`, `show`.
//! - `lifecycle_args`: the default limits (`serve`, `queue`) and the sweeper's settings
//!   (`serve`, `project`).
//! - `projections`: `runledger projections`, `rebuild`, `project`: operating the read models.
//! - `serve`: the HTTP API, the projectors and the sweeper, until SIGINT/SIGTERM.
//! - `token`: API tokens.
//! - `audit`: `verify`, `export`, `replay`, `anchors`: the auditor's commands.

// A command-line tool's results go to stdout.
#![allow(clippy::print_stdout)]

mod audit;
mod lifecycle_args;
mod projections;
mod run_commands;
mod serve;
mod token;

use clap::{Parser, Subcommand};
// At the crate root, so that every module reaches it as `crate::database`.
use runledger_cli::database;

use crate::database::{Database, DatabaseArgs};

/// runledger: an event-sourced ledger of long-running operations ("runs") on PostgreSQL.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves the HTTP API (and runs the projectors and the sweeper) until SIGINT/SIGTERM.
    Serve(serve::ServeArgs),
    /// Creates or revokes API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Applies the event store's migrations (idempotent) and prints the ledger's size.
    Migrate,
    /// Queues a run (or reports the active run with the same identity).
    Queue(run_commands::QueueArgs),
    /// Marks a queued run as running (by a worker, when it names itself).
    Start(run_commands::StartArgs),
    /// Adds progress counts (increments) to a running run.
    Progress(run_commands::ProgressArgs),
    /// Completes a running run; the outcome is derived from the counts when not given.
    Complete(run_commands::CompleteArgs),
    /// Completes a queued run as failed because it could not be dispatched.
    DispatchFailed(run_commands::DispatchFailedArgs),
    /// Cancels a queued run at once, or asks a running run's worker to stop.
    Cancel(run_commands::CancelArgs),
    /// Records a heartbeat of a running run; prints whether it was asked to cancel.
    Heartbeat(run_commands::RunArgs),
    /// Prints a run's current state, folded from its events.
    Show(run_commands::RunArgs),
    /// Shows the read models' status, or skips a poison event or cancels a rebuild.
    Projections(projections::ProjectionsArgs),
    /// Rebuilds a read model side by side, then switches reads to it.
    Rebuild(projections::RebuildArgs),
    /// Runs the projectors and the sweeper until Ctrl-C (or the projectors until caught up).
    Project(projections::ProjectArgs),
    /// Verifies the hash chains and anchors, of the database or (--file) of an export, offline.
    Verify(audit::VerifyArgs),
    /// Writes the log (or a tenant's, a run's, a range) to stdout as NDJSON, in safe log order.
    Export(audit::ExportArgs),
    /// Prints a run's state as of a version or a time, from the database or (--file) an export.
    Replay(audit::ReplayArgs),
    /// Records, exports and reports anchors: digests of the log that catch deleted events.
    #[command(subcommand)]
    Anchors(audit::AnchorsCommand),
}

fn main() -> anyhow::Result<()> {
    runledger_cli::logging::init();
    let cli = Cli::parse();
    let runtime = runledger_cli::runtime()?;
    let result = match cli.command {
        // An export is audited offline: no database is opened, nor started, for it.
        Command::Verify(args) if args.is_offline() => runtime.block_on(audit::verify_offline(args)),
        Command::Replay(args) if args.is_offline() => runtime.block_on(audit::replay_offline(args)),
        command => Database::run(&cli.database, runtime, async |database| {
            run(database, command).await
        }),
    };
    if let Err(error) = &result
        && error.is::<audit::VerificationFailed>()
    {
        std::process::exit(audit::VERIFICATION_FAILED);
    }
    result
}

async fn run(database: &Database, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Migrate => {
            let reader = runledger_store::EventReader::new(database.migrated_pool().await?);
            let events = reader
                .count_events(runledger_store::LogCursor::START, None, u64::MAX)
                .await?;
            let runs = reader.count_runs().await?;
            println!(
                "migrated: the ledger holds {events} events of {runs} runs ({})",
                database.describe()
            );
            Ok(())
        }
        Command::Serve(args) => serve::serve(database, args).await,
        Command::Token(command) => token::run(database, command).await,
        Command::Queue(args) => run_commands::queue(database, args).await,
        Command::Start(args) => run_commands::start(database, args).await,
        Command::Progress(args) => run_commands::progress(database, args).await,
        Command::Complete(args) => run_commands::complete(database, args).await,
        Command::DispatchFailed(args) => run_commands::dispatch_failed(database, args).await,
        Command::Cancel(args) => run_commands::cancel(database, args).await,
        Command::Heartbeat(args) => run_commands::heartbeat(database, args).await,
        Command::Show(args) => run_commands::show(database, args).await,
        Command::Projections(args) => projections::projections(database, args).await,
        Command::Rebuild(args) => projections::rebuild(database, args).await,
        Command::Project(args) => projections::project(database, args).await,
        Command::Verify(args) => audit::verify(database, args).await,
        Command::Export(args) => audit::export(database, args).await,
        Command::Replay(args) => audit::replay(database, args).await,
        Command::Anchors(command) => audit::anchors(database, command).await,
    }
}
