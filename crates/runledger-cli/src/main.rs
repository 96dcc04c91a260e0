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
//! - `rate_limit_args`: `serve`'s rate limits.
//! - `projections`: `runledger projections`, `rebuild`, `project`: operating the read models.
//! - `serve`: the HTTP API, the projectors and the sweeper, until SIGINT/SIGTERM.
//! - `token`: API tokens.
//! - `audit`: `verify`, `export`, `replay`, `anchors`: the auditor's commands.

// A command-line tool's results go to stdout.
#![allow(clippy::print_stdout)]

mod audit;
mod lifecycle_args;
mod projections;
mod rate_limit_args;
mod replica_args;
mod run_commands;
mod serve;
mod token;

use clap::{Parser, Subcommand};
// At the crate root, so that every module reaches it as `crate::database`.
use runledger_cli::database;

use runledger_cli::local_server::LocalServer;

use crate::database::{Database, DatabaseArgs};

/// runledger: an event-sourced ledger of long-running operations ("runs") on PostgreSQL.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Command,
}

/// The server the run, query and token subcommands talk to.
#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// A runledger server's URL, e.g. http://127.0.0.1:8080: run, show and token subcommands go
    /// over its HTTP API. Without it they use the `serve` running on --data-dir, if one does.
    #[arg(long, env = "RUNLEDGER_SERVER", global = true)]
    server: Option<String>,
    /// The bearer token for --server (the `serve` on --data-dir gives its own to local users).
    #[arg(long, env = "RUNLEDGER_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
}

impl ServerArgs {
    /// The client of the server to use, if there is one: `--server`, else the `serve` running
    /// on the embedded data directory.
    fn client(&self, database: &DatabaseArgs) -> anyhow::Result<Option<runledger_client::Client>> {
        let (url, token) = match (&self.server, database.embedded_dir()) {
            (Some(url), _) => {
                let token = self.token.clone().ok_or_else(|| {
                    anyhow::anyhow!("--server needs a token: give --token or set RUNLEDGER_TOKEN")
                })?;
                (url.clone(), token)
            }
            (None, Some(dir)) => match LocalServer::running(dir) {
                Some((server, secret)) => (server.url, self.token.clone().unwrap_or(secret)),
                None => return Ok(None),
            },
            (None, None) => return Ok(None),
        };
        Ok(Some(runledger_client::Client::new(&url, &token)?))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves the HTTP API (and runs the projectors and the sweeper) until SIGINT/SIGTERM.
    Serve(serve::ServeArgs),
    /// Creates, lists or revokes API tokens.
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
        command
            if command.goes_over_http()
                && let Some(client) = cli.server.client(&cli.database)? =>
        {
            runtime.block_on(over_http(&client, command))
        }
        // `serve` owns the embedded server it runs on: it never attaches to another's.
        command @ Command::Serve(_) => Database::open(&cli.database)?
            .run_then_close(runtime, async |database| run(database, command).await),
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

impl Command {
    /// Whether the subcommand talks to a server when one is at hand (the others need the
    /// database itself, and use the running `serve`'s over its socket: docs/adr/0018).
    fn goes_over_http(&self) -> bool {
        matches!(
            self,
            Command::Token(_)
                | Command::Queue(_)
                | Command::Start(_)
                | Command::Progress(_)
                | Command::Complete(_)
                | Command::DispatchFailed(_)
                | Command::Cancel(_)
                | Command::Heartbeat(_)
                | Command::Show(_)
        )
    }
}

async fn over_http(client: &runledger_client::Client, command: Command) -> anyhow::Result<()> {
    use run_commands::over_http as http;
    match command {
        Command::Token(command) => token::over_http(client, command).await,
        Command::Queue(args) => http::queue(client, args).await,
        Command::Start(args) => http::start(client, args).await,
        Command::Progress(args) => http::progress(client, args).await,
        Command::Complete(args) => http::complete(client, args).await,
        Command::DispatchFailed(args) => http::dispatch_failed(client, args).await,
        Command::Cancel(args) => http::cancel(client, args).await,
        Command::Heartbeat(args) => http::heartbeat(client, args).await,
        Command::Show(args) => http::show(client, args).await,
        other => unreachable!("{other:?} does not go over HTTP"),
    }
}

async fn run(database: &Database, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Migrate => {
            let reader = runledger_store::EventReader::new(database.migrate().await?);
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
        Command::Token(command) => token::in_database(database, command).await,
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
