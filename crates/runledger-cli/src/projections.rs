//! `runledger projections` (status, skip, cancel), `runledger rebuild` and `runledger project`:
//! operating the read models (and, in `project`, the sweeper beside them).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use runledger_projections::{
    NOTIFICATIONS, OPERATION_RUNS, Projection, ProjectionStatus, ProjectionsConfig, Projector,
    ProjectorOptions, StepOutcome, VersionStatus,
};
use runledger_store::{CommandHandler, EventReader, EventWriter};
use runledger_sweeper::Sweeper;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::database::Database;
use crate::lifecycle_args::SweeperArgs;
use runledger_cli::clock::SystemClock;

/// How the projectors of this process run, shared by every command that runs them (`serve`,
/// `project`, `rebuild`). None of it shapes what they store: every process of the same code,
/// whatever its flags, applies the same versions (docs/adr/0025).
#[derive(Debug, Clone, Args)]
pub(crate) struct ProjectionConfigArgs {
    /// Seconds a projector waits without a notification before it looks again.
    #[arg(long, env = "RUNLEDGER_PROJECTOR_POLL_SECONDS", default_value_t = 1.0)]
    poll_seconds: f64,
    /// Seconds a leader's lease lasts (of each projection and of the sweeper, docs/adr/0024): a
    /// leader that stops renewing it (dead, paused, hung in a step) loses it within this long,
    /// and another process takes over.
    #[arg(long, env = "RUNLEDGER_LEASE_SECONDS", default_value_t = runledger_store::DEFAULT_LEASE_DURATION.as_secs_f64())]
    lease_seconds: f64,
}

impl ProjectionConfigArgs {
    /// The leaders' lease.
    pub(crate) fn lease(&self) -> anyhow::Result<Duration> {
        let lease = Duration::try_from_secs_f64(self.lease_seconds)
            .map_err(|_| anyhow::anyhow!("--lease-seconds must be a positive number"))?;
        anyhow::ensure!(
            lease >= runledger_store::lease::MIN_LEASE_DURATION,
            "--lease-seconds must be at least {} s",
            runledger_store::lease::MIN_LEASE_DURATION.as_secs_f64()
        );
        Ok(lease)
    }

    /// The projections' configuration.
    pub(crate) fn config(&self) -> anyhow::Result<ProjectionsConfig> {
        Ok(ProjectionsConfig {
            options: ProjectorOptions {
                poll: Duration::from_secs_f64(self.poll_seconds.max(0.01)),
                lease: self.lease()?,
                ..ProjectorOptions::default()
            },
            live: None,
        })
    }
}

/// `runledger projections`.
#[derive(Debug, Args)]
pub(crate) struct ProjectionsArgs {
    #[command(subcommand)]
    command: Option<ProjectionsCommand>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Skips the poison event at POSITION: the projection moves past it without applying it.
    Skip {
        /// The projection, e.g. operation_runs.
        name: String,
        /// The poison event's log position.
        position: i64,
    },
    /// Cancels the rebuild under way; the active version keeps serving.
    Cancel {
        /// The projection.
        name: String,
    },
}

/// `runledger rebuild`.
#[derive(Debug, Args)]
pub(crate) struct RebuildArgs {
    /// The projection to rebuild (operation_runs, notifications), or dedupe_index for the inline
    /// dedupe index.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    name: Option<String>,
    /// Rebuild every projection.
    #[arg(long)]
    all: bool,
    /// Start the rebuild and return; a running projector builds it.
    #[arg(long)]
    detach: bool,
    #[command(flatten)]
    config: ProjectionConfigArgs,
}

/// `runledger project`.
#[derive(Debug, Args)]
pub(crate) struct ProjectArgs {
    /// Stop once every projection has caught up, instead of running until Ctrl-C (and run no
    /// sweeper).
    #[arg(long)]
    until_caught_up: bool,
    #[command(flatten)]
    config: ProjectionConfigArgs,
    /// The sweeper runs beside the projectors (one leads across every process), so that a
    /// deployment whose API processes run none still ends overdue runs.
    #[command(flatten)]
    sweeper: SweeperArgs,
}

/// The name `rebuild` takes for the inline dedupe index.
const DEDUPE_INDEX: &str = "dedupe_index";

pub(crate) async fn projections(database: &Database, args: ProjectionsArgs) -> anyhow::Result<()> {
    let pool = database.application_pool().await?;
    match args.command {
        None => {
            let code = ProjectionsConfig::default().definitions(&pool);
            let statuses = runledger_projections::statuses_of_code(&pool, &code).await?;
            if args.json {
                let rows: Vec<serde_json::Value> = statuses
                    .iter()
                    .map(runledger_api::projections::status_json)
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                print_table(&statuses);
            }
            // A projection this code cannot lead is an error, not a line among the others: it
            // does not catch up while only processes of this code run.
            let problems: Vec<String> = statuses.iter().filter_map(|s| s.code_problem()).collect();
            if !problems.is_empty() {
                anyhow::bail!(
                    "this code cannot lead {} projection(s):\n  {}",
                    problems.len(),
                    problems.join("\n  ")
                );
            }
        }
        Some(ProjectionsCommand::Skip { name, position }) => {
            let released = runledger_projections::skip(&pool, &name, position).await?;
            println!(
                "{name}: skipped the poison event at position {position} ({released} version(s) released)"
            );
        }
        Some(ProjectionsCommand::Cancel { name }) => {
            match runledger_projections::cancel_rebuild(&pool, &name).await? {
                Some(version) => {
                    println!("{name}: cancelled the rebuild into {}", version.schema_name)
                }
                None => println!("{name}: no rebuild under way"),
            }
        }
    }
    Ok(())
}

fn print_table(statuses: &[ProjectionStatus]) {
    println!(
        "{:<16} {:<11} {:<22} {:<16} {:>10} {:>10} {:>8}  ERROR",
        "PROJECTION", "STATE", "VERSION", "CHECKPOINT", "APPLIED", "LAG", "LAG(s)"
    );
    for status in statuses {
        let active = &status.active;
        println!(
            "{:<16} {:<11} {:<22} {:<16} {:>10} {:>10} {:>8.1}  {}",
            status.name,
            status.state.as_str(),
            format!(
                "{} g{}",
                &active.version.fingerprint[..12],
                active.version.generation
            ),
            active.version.checkpoint.to_string(),
            active.version.events_applied,
            active.lag_events,
            active.lag_seconds,
            status.last_error.as_deref().unwrap_or("")
        );
        if let Some(rebuild) = &status.rebuild {
            let version = &rebuild.progress.version;
            println!(
                "  rebuilding {} g{}: {:.1}% ({} applied, {} to go), {:.0} events/s, ETA {}",
                &version.fingerprint[..12],
                version.generation,
                rebuild.percent,
                version.events_applied,
                rebuild.progress.lag_events,
                rebuild.events_per_second,
                rebuild
                    .eta_seconds
                    .map_or_else(|| "unknown".to_owned(), |eta| format!("{eta:.0}s"))
            );
        }
    }
    if statuses.is_empty() {
        println!("(no projection installed yet: run `runledger project`)");
    }
}

pub(crate) async fn rebuild(database: &Database, args: RebuildArgs) -> anyhow::Result<()> {
    let pool = database.application_pool().await?;
    let config = args.config.config()?;
    let names: Vec<String> = match &args.name {
        Some(name) => vec![name.clone()],
        None => vec![OPERATION_RUNS.to_owned(), NOTIFICATIONS.to_owned()],
    };
    for name in names {
        match name.as_str() {
            DEDUPE_INDEX => {
                let rebuilt = runledger_store::rebuild_dedupe_index(&pool).await?;
                println!(
                    "{DEDUPE_INDEX}: {} active runs ({} added, {} removed)",
                    rebuilt.active, rebuilt.added, rebuilt.removed
                );
            }
            OPERATION_RUNS => {
                rebuild_one(&pool, config.operation_runs(), &config, args.detach).await?;
            }
            NOTIFICATIONS => {
                rebuild_one(&pool, config.notifications(&pool), &config, args.detach).await?;
            }
            other => anyhow::bail!(
                "unknown projection {other}: one of {OPERATION_RUNS}, {NOTIFICATIONS}, {DEDUPE_INDEX}"
            ),
        }
    }
    Ok(())
}

/// Starts a rebuild and, unless detached, drives it to the switch (or watches the projector
/// that leads it), with a progress bar on stderr. Ctrl-C leaves the rebuild to resume later.
async fn rebuild_one<P: Projection>(
    pool: &PgPool,
    projection: P,
    config: &ProjectionsConfig,
    detach: bool,
) -> anyhow::Result<()> {
    let definition = projection.definition();
    let name = definition.name;
    let started = runledger_projections::rebuild(pool, &definition).await?;
    let target = started.version;
    println!(
        "{name}: {} rebuild into {}",
        if started.created {
            "started a"
        } else {
            "resuming the"
        },
        target.schema_name
    );
    if detach {
        return Ok(());
    }
    let bar = ProgressBar::new(1).with_style(
        ProgressStyle::with_template(
            "{prefix:>16} [{bar:40}] {percent:>3}% {pos}/{len} events, {msg}",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    bar.set_prefix(name);
    let mut projector = Projector::new(pool.clone(), projection, config.options.clone());
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let was_building = target.status == VersionStatus::Building;
    loop {
        let outcome = tokio::select! {
            _ = &mut interrupted => {
                bar.abandon_with_message("interrupted: the rebuild resumes when a projector runs");
                projector.release().await;
                return Ok(());
            }
            outcome = projector.step() => outcome?,
        };
        let Some(version) = runledger_projections::version(pool, target.id).await? else {
            anyhow::bail!("{name}: the rebuilt version disappeared");
        };
        let status = runledger_projections::status(pool, name).await?;
        let lag = status.as_ref().map_or(0, |s| {
            s.rebuild
                .as_ref()
                .filter(|r| r.progress.version.id == target.id)
                .map_or(s.active.lag_events, |r| r.progress.lag_events)
        });
        let applied = version.events_applied.unsigned_abs();
        bar.set_length(applied + lag.unsigned_abs());
        bar.set_position(applied);
        if let Some(rebuild) = status.as_ref().and_then(|s| s.rebuild.as_ref()) {
            bar.set_message(format!("{:.0} events/s", rebuild.events_per_second));
        }
        match version.status {
            VersionStatus::Active if was_building || lag == 0 => {
                bar.finish_with_message("switched: reads now use the rebuilt version");
                return Ok(());
            }
            VersionStatus::Retired | VersionStatus::Cancelled => {
                bar.abandon_with_message("cancelled");
                anyhow::bail!("{name}: the rebuild was cancelled");
            }
            _ => {}
        }
        if let Some(position) = version.halted_position {
            bar.abandon_with_message(format!("halted at the poison event at {position}"));
            anyhow::bail!(
                "{name}: halted at position {position}: {} (see `runledger projections skip`)",
                version.last_error.unwrap_or_default()
            );
        }
        if !outcome.made_progress() {
            // Another process leads this projection, or the log is momentarily held back.
            let pause = if outcome == StepOutcome::NotLeader {
                500
            } else {
                20
            };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
}

pub(crate) async fn project(database: &Database, args: ProjectArgs) -> anyhow::Result<()> {
    let pool = database.application_pool().await?;
    let config = args.config.config()?;
    if args.until_caught_up {
        catch_up(&pool, config.operation_runs(), &config).await?;
        catch_up(&pool, config.notifications(&pool), &config).await?;
        return Ok(());
    }
    let shutdown = CancellationToken::new();
    let sweeper = match args.sweeper.config(args.config.lease()?)? {
        Some(sweeper_config) => {
            let commands = CommandHandler::new(
                EventReader::new(pool.clone()),
                EventWriter::new(pool.clone()),
            );
            let mut sweeper = Sweeper::new(
                pool.clone(),
                commands,
                Arc::new(SystemClock),
                sweeper_config,
            );
            let stopped = shutdown.clone().cancelled_owned();
            Some(tokio::spawn(async move { sweeper.run(stopped).await }))
        }
        None => None,
    };
    eprintln!(
        "running the projectors{}; Ctrl-C stops them",
        if sweeper.is_some() {
            " and the sweeper"
        } else {
            ""
        }
    );
    let signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        signal.cancel();
    });
    let projected =
        runledger_projections::run_projectors(pool, config, shutdown.clone().cancelled_owned())
            .await;
    // The projectors stop on the signal or on an error; the sweeper stops with them.
    shutdown.cancel();
    if let Some(sweeper) = sweeper {
        sweeper.await.context("the sweeper task")?;
    }
    projected?;
    Ok(())
}

/// Steps one projector until it has read every committed event (or another process leads it).
async fn catch_up<P: Projection>(
    pool: &PgPool,
    projection: P,
    config: &ProjectionsConfig,
) -> anyhow::Result<()> {
    let mut projector = Projector::new(pool.clone(), projection, config.options.clone());
    let name = projector.definition().name;
    loop {
        let outcome = projector.catch_up().await?;
        match outcome {
            StepOutcome::CaughtUp if projector.has_unread_events().await? => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            outcome => {
                println!(
                    "{name}: {outcome:?} ({} events applied)",
                    projector.stats().events_applied
                );
                projector.release().await;
                return Ok(());
            }
        }
    }
}
