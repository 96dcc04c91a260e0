//! Run commands for scripting: over a server's HTTP API when one is at hand (`--server`, or the
//! `serve` running on the data directory), through the client; else each builds a domain
//! command, runs it through the store's command path directly; both print the answer as JSON.
//! `heartbeat` records a heartbeat beside the log.

use anyhow::Context;
use clap::Args;
use runledger_core::{
    Cancel, Clock, Complete, DispatchFailed, EventId, FailureCode, FailureReport, Initiator,
    Outcome, ProgressDelta, QueueRun, ReportProgress, RunCommand, RunId, RunIdentity, RunLimits,
    RunType, Start, SummaryCounts, TenantId, UserId, WorkerId,
};
use runledger_store::{
    CommandHandler, CommandOutcome, CommandRequest, EventMetadata, EventReader, EventWriter,
    ExpectedVersion,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::Database;
use crate::lifecycle_args::LimitArgs;
use runledger_cli::clock::SystemClock;

/// Names one run of one tenant.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The tenant (a positive integer).
    #[arg(long)]
    pub(crate) tenant: TenantId,
    /// The run id (a UUID).
    #[arg(long)]
    pub(crate) run: RunId,
}

/// `runledger queue`.
#[derive(Debug, Args)]
pub(crate) struct QueueArgs {
    /// The tenant (a positive integer).
    #[arg(long)]
    pub(crate) tenant: TenantId,
    /// The run type, e.g. inventory.sync.
    #[arg(long = "type")]
    pub(crate) run_type: RunType,
    /// Identity inputs as JSON; runs with the same tenant, type and identity are deduplicated.
    #[arg(long, default_value = "{}")]
    pub(crate) identity: String,
    /// Run-specific metadata as a JSON object.
    #[arg(long, default_value = "{}")]
    pub(crate) context: String,
    /// The initiating user's id; without it the initiator is "System".
    #[arg(long, requires = "user_name")]
    pub(crate) user_id: Option<UserId>,
    /// The initiating user's name, as it should be remembered.
    #[arg(long, requires = "user_id")]
    user_name: Option<String>,
    /// The run's id (a UUID); default: a new one.
    #[arg(long)]
    pub(crate) run_id: Option<RunId>,
    /// Seconds the run may stay queued; default: the run type's, else the server's (below).
    #[arg(long)]
    pub(crate) start_deadline_seconds: Option<i64>,
    /// Seconds the run may run once started.
    #[arg(long)]
    pub(crate) run_deadline_seconds: Option<i64>,
    /// Seconds the running run may go without a heartbeat or progress report.
    #[arg(long)]
    pub(crate) heartbeat_timeout_seconds: Option<i64>,
    #[command(flatten)]
    pub(crate) defaults: LimitArgs,
}

/// `runledger start`.
#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// The worker's id: starting again a run the same worker started changes nothing, and a
    /// run another worker started is refused.
    #[arg(long)]
    pub(crate) worker: Option<WorkerId>,
}

/// `runledger cancel`.
#[derive(Debug, Args)]
pub(crate) struct CancelArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Why (secrets are stripped before it is stored).
    #[arg(long)]
    pub(crate) reason: Option<String>,
}

/// `runledger progress`.
#[derive(Debug, Args)]
pub(crate) struct ProgressArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Items that succeeded since the last report.
    #[arg(long, default_value_t = 0)]
    pub(crate) success: u64,
    /// Items that failed since the last report.
    #[arg(long, default_value_t = 0)]
    pub(crate) failed: u64,
    /// Items skipped since the last report.
    #[arg(long, default_value_t = 0)]
    pub(crate) skipped: u64,
    /// Sets or raises the total.
    #[arg(long)]
    pub(crate) total: Option<u64>,
}

/// `runledger complete`.
#[derive(Debug, Args)]
pub(crate) struct CompleteArgs {
    #[command(flatten)]
    run: RunArgs,
    /// succeeded, partially_succeeded or failed (cancelled after a cancel request); derived
    /// from the counts when absent.
    #[arg(long)]
    pub(crate) outcome: Option<Outcome>,
    /// Final count of items that succeeded (with --failed and --skipped: the run's absolute
    /// counts, replacing the summed progress).
    #[arg(long, requires_all = ["failed", "skipped"])]
    pub(crate) success: Option<u64>,
    /// Final count of items that failed.
    #[arg(long, requires_all = ["success", "skipped"])]
    pub(crate) failed: Option<u64>,
    /// Final count of items skipped.
    #[arg(long, requires_all = ["success", "failed"])]
    pub(crate) skipped: Option<u64>,
    /// The final total (default: the known total).
    #[arg(long, requires = "success")]
    pub(crate) total: Option<u64>,
}

/// `runledger dispatch-failed`.
#[derive(Debug, Args)]
pub(crate) struct DispatchFailedArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// A stable failure code, e.g. queue.unavailable.
    #[arg(long)]
    pub(crate) code: String,
    /// What went wrong (secrets are stripped before it is stored).
    #[arg(long)]
    pub(crate) message: String,
}

pub(crate) async fn queue(database: &Database, args: QueueArgs) -> anyhow::Result<()> {
    let identity: Value = serde_json::from_str(&args.identity).context("--identity is not JSON")?;
    let context: Value = serde_json::from_str(&args.context).context("--context is not JSON")?;
    anyhow::ensure!(context.is_object(), "--context must be a JSON object");
    let initiator = match (args.user_id, args.user_name) {
        (Some(user), Some(name)) => Initiator::user(user, &name)?,
        _ => Initiator::system(),
    };
    let run_id = args
        .run_id
        .unwrap_or_else(|| RunId::from_uuid(Uuid::now_v7()));
    let given = RunLimits::from_seconds(
        args.start_deadline_seconds,
        args.run_deadline_seconds,
        args.heartbeat_timeout_seconds,
    )?;
    let limits = args.defaults.defaults()?.resolve(&args.run_type, given);
    let command = RunCommand::Queue(QueueRun {
        run_id,
        tenant_id: args.tenant,
        run_type: args.run_type,
        identity: RunIdentity::new(identity)?,
        initiator,
        context,
        limits,
        at: SystemClock.now(),
    });
    execute(database, args.tenant, run_id, command).await
}

pub(crate) async fn start(database: &Database, args: StartArgs) -> anyhow::Result<()> {
    execute(
        database,
        args.run.tenant,
        args.run.run,
        RunCommand::Start(Start {
            worker: args.worker,
            at: SystemClock.now(),
        }),
    )
    .await
}

pub(crate) async fn cancel(database: &Database, args: CancelArgs) -> anyhow::Result<()> {
    let command = RunCommand::Cancel(Cancel {
        reason: args.reason,
        at: SystemClock.now(),
    });
    execute(database, args.run.tenant, args.run.run, command).await
}

/// `runledger heartbeat`: records a heartbeat of a running run and prints it, with whether it
/// was asked to cancel.
pub(crate) async fn heartbeat(database: &Database, args: RunArgs) -> anyhow::Result<()> {
    let handler = handler(database).await?;
    let beat = handler
        .heartbeat(args.tenant, args.run, SystemClock.now())
        .await?;
    let output = json!({
        "cancel_requested": beat.run.cancel_requested.is_some(),
        "last_heartbeat_at": beat.last_heartbeat_at,
        "run": beat.run.to_operation_run_json(),
    });
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}

pub(crate) async fn progress(database: &Database, args: ProgressArgs) -> anyhow::Result<()> {
    let command = RunCommand::ReportProgress(ReportProgress {
        delta: ProgressDelta {
            success: args.success,
            failed: args.failed,
            skipped: args.skipped,
        },
        total: args.total,
        failures: Vec::new(),
        at: SystemClock.now(),
    });
    execute(database, args.run.tenant, args.run.run, command).await
}

pub(crate) async fn complete(database: &Database, args: CompleteArgs) -> anyhow::Result<()> {
    let final_counts = match (args.success, args.failed, args.skipped) {
        (Some(success), Some(failed), Some(skipped)) => Some(SummaryCounts {
            total: args.total,
            success,
            failed,
            skipped,
        }),
        _ => None,
    };
    let command = RunCommand::Complete(Complete {
        outcome: args.outcome,
        final_counts,
        failures: Vec::new(),
        at: SystemClock.now(),
    });
    execute(database, args.run.tenant, args.run.run, command).await
}

pub(crate) async fn dispatch_failed(
    database: &Database,
    args: DispatchFailedArgs,
) -> anyhow::Result<()> {
    let failure = FailureReport {
        code: FailureCode::parse(&args.code)?,
        message: args.message,
        count: 1,
    };
    let command = RunCommand::DispatchFailed(DispatchFailed {
        failure,
        at: SystemClock.now(),
    });
    execute(database, args.run.tenant, args.run.run, command).await
}

pub(crate) async fn show(database: &Database, args: RunArgs) -> anyhow::Result<()> {
    let handler = handler(database).await?;
    let run = handler
        .load(args.tenant, args.run)
        .await?
        .context("no such run for this tenant")?;
    println!(
        "{}",
        serde_json::to_string_pretty(&run.to_operation_run_json())?
    );
    Ok(())
}

async fn handler(database: &Database) -> anyhow::Result<CommandHandler> {
    let pool = database.migrated_pool().await?;
    Ok(CommandHandler::new(
        EventReader::new(pool.clone()),
        EventWriter::new(pool),
    ))
}

async fn execute(
    database: &Database,
    tenant: TenantId,
    run: RunId,
    command: RunCommand,
) -> anyhow::Result<()> {
    let handler = handler(database).await?;
    let queues = matches!(command, RunCommand::Queue(_));
    let request = CommandRequest {
        tenant_id: tenant,
        run_id: run,
        command,
        expected: ExpectedVersion::Any,
        event_id: EventId::from_uuid(Uuid::now_v7()),
        metadata: EventMetadata::actor("cli"),
    };
    let output = match handler.execute(&request).await? {
        CommandOutcome::Applied { run, position, .. } if queues => {
            json!({ "created": true, "position": position, "run": run.to_operation_run_json() })
        }
        CommandOutcome::Applied { run, position, .. }
        | CommandOutcome::Unchanged { run, position } => {
            json!({ "position": position, "run": run.to_operation_run_json() })
        }
        CommandOutcome::Deduplicated { existing } => {
            json!({ "created": false, "run": existing.to_operation_run_json() })
        }
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}

/// The run commands over a server's HTTP API.
pub(crate) mod over_http {
    use runledger_client::Client;
    use runledger_wire::audit::StateParams;
    use runledger_wire::{
        CancelBody, CompleteBody, DispatchFailedBody, FinalCountsBody, InitiatorBody, ProgressBody,
        QueueRunBody, StartBody,
    };
    use serde::Serialize;

    use super::{
        CancelArgs, CompleteArgs, DispatchFailedArgs, ProgressArgs, QueueArgs, RunArgs, StartArgs,
    };

    fn print(answer: &impl Serialize) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(answer)?);
        Ok(())
    }

    pub(crate) async fn queue(client: &Client, args: QueueArgs) -> anyhow::Result<()> {
        let initiator = match (args.user_id, args.user_name) {
            (Some(user), Some(name)) => Some(InitiatorBody {
                user_id: Some(user.get()),
                name: Some(name),
            }),
            _ => None,
        };
        let body = QueueRunBody {
            run_type: args.run_type.as_str().to_owned(),
            identity: Some(serde_json::from_str(&args.identity)?),
            context: Some(serde_json::from_str(&args.context)?),
            initiator,
            run_id: args.run_id.map(|id| id.as_uuid()),
            start_deadline_seconds: args.start_deadline_seconds,
            run_deadline_seconds: args.run_deadline_seconds,
            heartbeat_timeout_seconds: args.heartbeat_timeout_seconds,
        };
        print(&client.queue_run(args.tenant.get(), &body).await?)
    }

    pub(crate) async fn start(client: &Client, args: StartArgs) -> anyhow::Result<()> {
        let body = StartBody {
            worker: args.worker.map(|worker| worker.as_str().to_owned()),
        };
        let run = &args.run;
        print(
            &client
                .start_run_as(run.tenant.get(), run.run.as_uuid(), &body)
                .await?,
        )
    }

    pub(crate) async fn cancel(client: &Client, args: CancelArgs) -> anyhow::Result<()> {
        let body = CancelBody {
            reason: args.reason,
        };
        let run = &args.run;
        print(
            &client
                .cancel_run(run.tenant.get(), run.run.as_uuid(), &body)
                .await?,
        )
    }

    pub(crate) async fn heartbeat(client: &Client, args: RunArgs) -> anyhow::Result<()> {
        print(
            &client
                .heartbeat(args.tenant.get(), args.run.as_uuid())
                .await?,
        )
    }

    pub(crate) async fn progress(client: &Client, args: ProgressArgs) -> anyhow::Result<()> {
        let body = ProgressBody {
            success: args.success,
            failed: args.failed,
            skipped: args.skipped,
            total: args.total,
            failures: Vec::new(),
        };
        let run = &args.run;
        print(
            &client
                .report_progress(run.tenant.get(), run.run.as_uuid(), &body)
                .await?,
        )
    }

    pub(crate) async fn complete(client: &Client, args: CompleteArgs) -> anyhow::Result<()> {
        let final_counts = match (args.success, args.failed, args.skipped) {
            (Some(success), Some(failed), Some(skipped)) => Some(FinalCountsBody {
                total: args.total,
                success,
                failed,
                skipped,
            }),
            _ => None,
        };
        let body = CompleteBody {
            outcome: args.outcome.map(|o| o.as_str().to_owned()),
            final_counts,
            failures: Vec::new(),
        };
        let run = &args.run;
        print(
            &client
                .complete_run(run.tenant.get(), run.run.as_uuid(), &body)
                .await?,
        )
    }

    pub(crate) async fn dispatch_failed(
        client: &Client,
        args: DispatchFailedArgs,
    ) -> anyhow::Result<()> {
        let body = DispatchFailedBody {
            code: args.code,
            message: args.message,
        };
        let run = &args.run;
        print(
            &client
                .dispatch_failed(run.tenant.get(), run.run.as_uuid(), &body)
                .await?,
        )
    }

    /// The run folded from its events (the audit state route), as `show` prints it offline.
    pub(crate) async fn show(client: &Client, args: RunArgs) -> anyhow::Result<()> {
        let state = client
            .run_state(
                args.tenant.get(),
                args.run.as_uuid(),
                &StateParams::default(),
            )
            .await?;
        print(&state.run)
    }
}
