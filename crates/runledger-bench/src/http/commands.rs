//! The command path under load: the same runs recorded over HTTP, through the `CommandHandler`
//! the API calls, and as bare `EventWriter` appends, at [`CLIENTS`] concurrent lanes each.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context;
use axum::http::Method;
use chrono::Utc;
use futures_util::future::try_join_all;
use runledger_core::{
    Complete, EventId, Initiator, ProgressDelta, QueueRun, ReportProgress, Run, RunCommand, RunId,
    RunIdentity, RunType, Start, TenantId, decide, evolve,
};
use runledger_store::{
    CommandHandler, CommandRequest, EventMetadata, EventReader, EventWriter, ExpectedVersion,
    NewEvent,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::client::Client;
use crate::log::bench_event;

/// Concurrent clients (and direct tasks) of the command path.
pub(super) const CLIENTS: u64 = 16;
/// Progress reports per run of the command load.
const REPORTS_PER_RUN: u64 = 8;
/// Rounds of the command load.
const ROUNDS: u64 = 5;

/// Events per second of each way, over the same number of commands (one event each).
pub(super) struct CommandRates {
    pub(super) commands: u64,
    pub(super) http: f64,
    pub(super) handler: f64,
    pub(super) writer: f64,
}

impl CommandRates {
    /// The figures as the bench prints them.
    pub(super) fn line(&self) -> String {
        let Self {
            commands,
            http,
            handler,
            writer,
        } = self;
        format!(
            "commands at {CLIENTS} clients ({commands} each way): HTTP {http:.0} events/s, \
             CommandHandler {handler:.0} events/s (ratio {:.2}), EventWriter {writer:.0} events/s \
             (ratio {:.2})",
            http / handler,
            http / writer
        )
    }
}

/// One way of sending a lane's commands; cheap to clone into each lane's task.
#[derive(Clone)]
enum Way {
    /// `POST /v1/tenants/1/runs…` over one keep-alive connection per lane.
    Http { address: SocketAddr, token: String },
    /// `CommandHandler::execute`, as the API calls it (read the run, decide, append).
    Handler(CommandHandler),
    /// `EventWriter::append` of the events decided against the run's state kept in memory: no
    /// read before each append. One writer for every lane, as the server shares one.
    Writer(EventWriter),
}

impl Way {
    /// Lane `lane` sends `count` commands this way; returns how many events it appended.
    async fn send(self, lane: u64, count: u64) -> anyhow::Result<u64> {
        match self {
            Way::Http { address, token } => http_commands(address, &token, lane, count).await,
            Way::Handler(handler) => handled_commands(&handler, lane, count).await,
            Way::Writer(writer) => appended_commands(&writer, lane, count).await,
        }
    }
}

/// Sends `commands_per_client` commands per lane each way. The three ways take turns, round
/// after round, so that a change in the machine's load during the bench weighs on each alike.
pub(super) async fn measure(
    pool: &PgPool,
    address: SocketAddr,
    token: &str,
    commands_per_client: u64,
) -> anyhow::Result<CommandRates> {
    let per_round = commands_per_client.div_ceil(ROUNDS);
    let commands = CLIENTS * per_round * ROUNDS;
    let writer = EventWriter::new(pool.clone());
    let ways = [
        Way::Http {
            address,
            token: token.to_owned(),
        },
        Way::Handler(CommandHandler::new(
            EventReader::new(pool.clone()),
            writer.clone(),
        )),
        Way::Writer(writer),
    ];
    let mut seconds = [0.0; 3];
    for round in 0..ROUNDS {
        for (way, seconds) in ways.iter().zip(&mut seconds) {
            let lanes = (round * CLIENTS)..((round + 1) * CLIENTS);
            *seconds += timed(
                CLIENTS * per_round,
                lanes.map(|lane| tokio::spawn(way.clone().send(lane, per_round))),
            )
            .await?;
        }
    }
    let [http, handler, writer] = seconds.map(|seconds| commands as f64 / seconds);
    Ok(CommandRates {
        commands,
        http,
        handler,
        writer,
    })
}

/// Runs `tasks`, each returning how many events it appended, and checks they appended
/// `expected` in all; returns the seconds they took.
async fn timed(
    expected: u64,
    tasks: impl IntoIterator<Item = tokio::task::JoinHandle<anyhow::Result<u64>>>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let appended = try_join_all(tasks)
        .await?
        .into_iter()
        .sum::<anyhow::Result<u64>>()?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        appended == expected,
        "appended {appended} events, not {expected}"
    );
    Ok(seconds)
}

/// The `index`th command of a client's load: runs of queue, start, progress reports, complete.
/// `None` for the queue, whose run the caller creates.
fn nth_command(index: u64) -> Option<RunCommand> {
    let at = Utc::now();
    match index % (REPORTS_PER_RUN + 3) {
        0 => None,
        1 => Some(RunCommand::Start(Start { worker: None, at })),
        n if n <= REPORTS_PER_RUN + 1 => Some(RunCommand::ReportProgress(ReportProgress {
            delta: ProgressDelta {
                success: 1,
                ..ProgressDelta::default()
            },
            total: None,
            failures: Vec::new(),
            at,
        })),
        _ => Some(RunCommand::Complete(Complete {
            outcome: None,
            final_counts: None,
            failures: Vec::new(),
            at,
        })),
    }
}

/// The identity of lane `lane`'s `index`th command of `way`: every run of the bench is distinct,
/// so none is deduplicated against another.
fn identity(way: &str, lane: u64, index: u64) -> Value {
    json!({ "way": way, "lane": lane, "command": index })
}

/// The queue command that is lane `lane`'s `index`th command of `way`.
fn queue(way: &str, lane: u64, index: u64, run: RunId) -> anyhow::Result<RunCommand> {
    Ok(RunCommand::Queue(QueueRun {
        run_id: run,
        tenant_id: TenantId::new(1)?,
        run_type: RunType::parse("bench.http")?,
        identity: RunIdentity::new(identity(way, lane, index))?,
        initiator: Initiator::system(),
        context: json!({}),
        limits: runledger_core::RunLimits::default(),
        at: Utc::now(),
    }))
}

/// The JSON body of `command` as the API takes it (queue bodies are built by the caller).
fn body_of(command: &RunCommand) -> (&'static str, Value) {
    match command {
        RunCommand::Start(_) => ("start", json!({})),
        RunCommand::ReportProgress(report) => {
            ("progress", json!({ "success": report.delta.success }))
        }
        _ => ("complete", json!({})),
    }
}

/// Lane `lane` sends `count` commands over one keep-alive connection.
async fn http_commands(
    address: SocketAddr,
    token: &str,
    lane: u64,
    count: u64,
) -> anyhow::Result<u64> {
    let mut connection = Client::connect(address, token).await?;
    let mut run = String::new();
    for index in 0..count {
        let (path, body) = match nth_command(index) {
            None => (
                "/v1/tenants/1/runs".to_owned(),
                json!({ "type": "bench.http", "identity": identity("http", lane, index) }),
            ),
            Some(command) => {
                let (route, body) = body_of(&command);
                (format!("/v1/tenants/1/runs/{run}/{route}"), body)
            }
        };
        let (status, answer) = connection.send(Method::POST, &path, Some(&body)).await?;
        anyhow::ensure!(
            status.is_success(),
            "{path} answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
        if index % (REPORTS_PER_RUN + 3) == 0 {
            let answer: Value = serde_json::from_slice(&answer)?;
            run = answer["run"]["id"]
                .as_str()
                .context("a queued run's id")?
                .to_owned();
        }
    }
    Ok(count)
}

/// Lane `lane` runs `count` commands through the command handler, as the API does.
async fn handled_commands(handler: &CommandHandler, lane: u64, count: u64) -> anyhow::Result<u64> {
    let mut run = RunId::from_uuid(Uuid::now_v7());
    for index in 0..count {
        let command = match nth_command(index) {
            None => {
                run = RunId::from_uuid(Uuid::now_v7());
                queue("handler", lane, index, run)?
            }
            Some(command) => command,
        };
        handler
            .execute(&CommandRequest {
                tenant_id: TenantId::new(1)?,
                run_id: run,
                command,
                expected: ExpectedVersion::Any,
                event_id: EventId::from_uuid(Uuid::now_v7()),
                metadata: EventMetadata::actor("bench"),
            })
            .await?;
    }
    Ok(count)
}

/// Lane `lane` appends the events of `count` commands with bare appends: decided against the
/// run's state in memory, so no read before each append.
async fn appended_commands(writer: &EventWriter, lane: u64, count: u64) -> anyhow::Result<u64> {
    let tenant = TenantId::new(1)?;
    let mut run = RunId::from_uuid(Uuid::now_v7());
    let mut state = Run::Unqueued;
    for index in 0..count {
        let command = match nth_command(index) {
            None => {
                run = RunId::from_uuid(Uuid::now_v7());
                state = Run::Unqueued;
                queue("writer", lane, index, run)?
            }
            Some(command) => command,
        };
        let expected = state.version();
        let events: Vec<NewEvent> = decide(&state, command)?
            .into_iter()
            .map(bench_event)
            .collect();
        writer.append(tenant, run, expected, &events).await?;
        state = events
            .iter()
            .fold(state, |run, new| evolve(run, &new.event));
    }
    Ok(count)
}
