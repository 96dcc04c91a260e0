//! `runledger bench http`: the HTTP API under load, served in process on a random local port.
//!
//! Two measurements, in a database of its own (dropped at the end):
//! - the command path: 16 clients, each on one keep-alive connection, record runs (queue, start,
//!   progress reports, complete) over HTTP; then the same commands go through the store directly
//!   (the `CommandHandler` the API calls, and bare `EventWriter` appends of the same events), at
//!   16 concurrent tasks; the figure is events per second and the ratio HTTP / direct;
//! - query latency: `--runs` runs are appended whole and projected into the OperationRun read
//!   model, then one client measures GET run and list pages (first and second page) one request
//!   at a time, p50 and p99.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, header};
use chrono::Utc;
use clap::Args;
use futures_util::future::try_join_all;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use runledger_api::auth::Role;
use runledger_api::tokens::{NewToken, create_token};
use runledger_api::{ApiConfig, AppState};
use runledger_core::{
    Complete, EventId, Initiator, ProgressDelta, QueueRun, ReportProgress, Run, RunCommand,
    RunIdentity, RunType, Start, TenantId, decide, evolve,
};
use runledger_store::{
    CommandHandler, CommandRequest, EventMetadata, EventReader, EventWriter, ExpectedVersion,
    NewEvent,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::bench_projections::{catch_up, generate};
use crate::bench_support::{bench_event, drop_database, fresh_database};
use crate::database::Database;

/// `runledger bench http`.
#[derive(Debug, Args)]
pub(crate) struct HttpBenchArgs {
    /// Runs in the read model the query latencies are measured over (the targets are stated
    /// for 1,000,000).
    #[arg(long, default_value_t = 100_000)]
    runs: u64,
    /// Commands each of the 16 clients sends (runs of queue, start, 8 progress reports,
    /// complete).
    #[arg(long, default_value_t = 550)]
    commands_per_client: u64,
    /// Requests measured per query shape.
    #[arg(long, default_value_t = 2_000)]
    samples: usize,
    /// Seconds the server reuses a token's lookup, as `serve --token-staleness-seconds`
    /// (docs/adr/0010); 0: a lookup on every request.
    #[arg(long, default_value_t = 5)]
    token_staleness_seconds: u64,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    json: bool,
}

const BENCH_DATABASE: &str = "runledger_bench_http";
/// Concurrent clients (and direct tasks) of the command path.
const CLIENTS: u64 = 16;
/// Progress reports per run of the command load.
const REPORTS_PER_RUN: u64 = 8;
/// Rounds of the command load.
const ROUNDS: u64 = 5;
/// Concurrent writers seeding the read model.
const SEEDERS: u64 = 8;
/// Requests sent before each latency measurement, to warm connections, plans and caches.
const WARM_UP: usize = 200;

pub(crate) async fn run(database: &Database, args: HttpBenchArgs) -> anyhow::Result<()> {
    let pool = fresh_database(database, BENCH_DATABASE).await?;
    let token = create_token(
        &pool,
        &NewToken {
            tenant_id: TenantId::new(1)?,
            role: Role::Admin,
            user_id: None,
            name: "bench".to_owned(),
        },
    )
    .await?
    .secret;
    let address = serve(&pool, Duration::from_secs(args.token_staleness_seconds)).await?;
    let say = |line: String| {
        if !args.json {
            println!("{line}");
        }
    };

    // (a) The command path. The three ways take turns, round after round, so that a change in
    // the machine's load during the bench weighs on each of them alike.
    let per_round = args.commands_per_client.div_ceil(ROUNDS);
    let commands = CLIENTS * per_round * ROUNDS;
    let handler = CommandHandler::new(
        EventReader::new(pool.clone()),
        EventWriter::new(pool.clone()),
    );
    let mut seconds = [0.0; 3];
    for round in 0..ROUNDS {
        let lanes = (round * CLIENTS)..((round + 1) * CLIENTS);
        seconds[0] += timed(
            CLIENTS * per_round,
            lanes.clone().map(|lane| {
                let token = token.clone();
                tokio::spawn(async move { http_commands(address, &token, lane, per_round).await })
            }),
        )
        .await?;
        seconds[1] += timed(
            CLIENTS * per_round,
            lanes.clone().map(|lane| {
                let handler = handler.clone();
                tokio::spawn(async move { handled_commands(&handler, lane, per_round).await })
            }),
        )
        .await?;
        seconds[2] += timed(
            CLIENTS * per_round,
            lanes.map(|lane| {
                let writer = EventWriter::new(pool.clone());
                tokio::spawn(async move { appended_commands(&writer, lane, per_round).await })
            }),
        )
        .await?;
    }
    let [http, direct, appended] = seconds.map(|seconds| commands as f64 / seconds);
    say(format!(
        "commands at {CLIENTS} clients ({commands} each way): HTTP {http:.0} events/s, \
         CommandHandler {direct:.0} events/s (ratio {:.2}), EventWriter {appended:.0} events/s \
         (ratio {:.2})",
        http / direct,
        http / appended
    ));

    // (b) Query latency over a large read model.
    // The seed is set-up, not a measurement: its commits need not wait for the disk.
    let seed_pool = database
        .pool(
            database
                .options()
                .clone()
                .database(BENCH_DATABASE)
                .options([("synchronous_commit", "off")]),
            SEEDERS as u32,
        )
        .await?;
    let seeding = Instant::now();
    try_join_all((0..SEEDERS).map(|seeder| {
        let writer = EventWriter::new(seed_pool.clone());
        let share = args.runs / SEEDERS + u64::from(seeder < args.runs % SEEDERS);
        // Queued, Started, Completed: the smallest whole run.
        tokio::spawn(async move { generate(writer, seeder, share, 3).await })
    }))
    .await?
    .into_iter()
    .collect::<anyhow::Result<()>>()?;
    let appended_in = seeding.elapsed().as_secs_f64();
    seed_pool.close().await;
    let (projected_in, _) = catch_up(&pool, 500).await?;
    let in_model: i64 = sqlx::query_scalar("SELECT count(*) FROM public.operation_runs")
        .fetch_one(&pool)
        .await?;
    say(format!(
        "read model: {in_model} runs (appended in {appended_in:.0}s, projected in {projected_in:.0}s)"
    ));
    sqlx::raw_sql("ANALYZE").execute(&pool).await?;

    let samples: Vec<(i64, Uuid)> = sqlx::query_as(
        "SELECT tenant_id, id FROM public.operation_runs ORDER BY random() LIMIT $1",
    )
    .bind(i64::try_from(args.samples)?)
    .fetch_all(&pool)
    .await?;
    let mut client = Client::connect(address, &token).await?;
    let get_run = latencies(&mut client, &samples, |(tenant, run)| {
        format!("/v1/tenants/{tenant}/runs/{run}")
    })
    .await?;
    let tenants: Vec<i64> = samples.iter().map(|(tenant, _)| *tenant).collect();
    let first_page = latencies(&mut client, &tenants, |tenant| {
        format!("/v1/tenants/{tenant}/runs")
    })
    .await?;
    // Second pages, through the first page's keyset token (tenants with one page have none).
    let mut second_pages = Vec::with_capacity(tenants.len());
    for tenant in &tenants {
        let (_, body) = client
            .send(Method::GET, &format!("/v1/tenants/{tenant}/runs"), None)
            .await?;
        let page: Value = serde_json::from_slice(&body)?;
        if let Some(token) = page["next_page_token"].as_str() {
            second_pages.push(format!("/v1/tenants/{tenant}/runs?page_token={token}"));
        }
    }
    let second_page = latencies(&mut client, &second_pages, Clone::clone).await?;
    for (name, latency) in [
        ("GET run", &get_run),
        ("list, first page", &first_page),
        ("list, second page", &second_page),
    ] {
        say(format!(
            "{name:<18} p50 {:.2} ms, p99 {:.2} ms ({} requests)",
            latency.p50, latency.p99, latency.count
        ));
    }
    if args.json {
        println!(
            "{}",
            json!({
                "clients": CLIENTS,
                "token_staleness_seconds": args.token_staleness_seconds,
                "commands": commands,
                "http_events_per_second": http.round(),
                "command_handler_events_per_second": direct.round(),
                "event_writer_events_per_second": appended.round(),
                "ratio_http_to_command_handler": (http / direct * 100.0).round() / 100.0,
                "ratio_http_to_event_writer": (http / appended * 100.0).round() / 100.0,
                "runs": in_model,
                "seed_append_seconds": appended_in.round(),
                "seed_projection_seconds": projected_in.round(),
                "get_run_ms": get_run.to_json(),
                "list_first_page_ms": first_page.to_json(),
                "list_second_page_ms": second_page.to_json(),
            })
        );
    }
    pool.close().await;
    drop_database(database, BENCH_DATABASE).await
}

/// Serves the real app on a random local port, in this process.
async fn serve(pool: &PgPool, token_staleness: Duration) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let config = ApiConfig {
        token_staleness,
        ..ApiConfig::new(&format!("http://{address}"))
    };
    let state = AppState::new(
        pool.clone(),
        config,
        std::sync::Arc::new(crate::clock::SystemClock),
    );
    let app = runledger_api::app(state);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the bench server stopped");
        }
    });
    Ok(address)
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
        1 => Some(RunCommand::Start(Start { at })),
        n if n <= REPORTS_PER_RUN + 1 => Some(RunCommand::ReportProgress(ReportProgress {
            delta: ProgressDelta {
                success: 1,
                ..ProgressDelta::default()
            },
            total: None,
            failures: Vec::new(),
            at,
        })),
        _ => Some(RunCommand::Complete(Complete { outcome: None, at })),
    }
}

/// The identity of lane `lane`'s `index`th command of `way`: every run of the bench is distinct,
/// so none is deduplicated against another.
fn identity(way: &str, lane: u64, index: u64) -> Value {
    json!({ "way": way, "lane": lane, "command": index })
}

/// The queue command that is lane `lane`'s `index`th command of `way`.
fn queue(
    way: &str,
    lane: u64,
    index: u64,
    run: runledger_core::RunId,
) -> anyhow::Result<RunCommand> {
    Ok(RunCommand::Queue(QueueRun {
        run_id: run,
        tenant_id: TenantId::new(1)?,
        run_type: RunType::parse("bench.http")?,
        identity: RunIdentity::new(identity(way, lane, index))?,
        initiator: Initiator::system(),
        context: json!({}),
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
    let mut run = runledger_core::RunId::from_uuid(Uuid::now_v7());
    for index in 0..count {
        let command = match nth_command(index) {
            None => {
                run = runledger_core::RunId::from_uuid(Uuid::now_v7());
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
    let mut run = runledger_core::RunId::from_uuid(Uuid::now_v7());
    let mut state = Run::Unqueued;
    for index in 0..count {
        let command = match nth_command(index) {
            None => {
                run = runledger_core::RunId::from_uuid(Uuid::now_v7());
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

/// One HTTP/1.1 keep-alive connection to the API, with a bearer token.
struct Client {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    authorization: String,
}

impl Client {
    async fn connect(address: SocketAddr, token: &str) -> anyhow::Result<Self> {
        let tcp = tokio::net::TcpStream::connect(address).await?;
        tcp.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            // The connection ends when the client is dropped; how it ends does not matter.
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            host: address.to_string(),
            authorization: format!("Bearer {token}"),
        })
    }

    /// Sends one request and reads the whole answer.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::AUTHORIZATION, &self.authorization);
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        self.sender.ready().await?;
        let response = self
            .sender
            .send_request(request.body(Full::new(body))?)
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// Percentiles of one query shape, in milliseconds.
struct Latency {
    p50: f64,
    p99: f64,
    count: usize,
}

impl Latency {
    fn to_json(&self) -> Value {
        json!({ "p50": (self.p50 * 100.0).round() / 100.0, "p99": (self.p99 * 100.0).round() / 100.0, "requests": self.count })
    }
}

/// Sends `GET path(item)` for each item, one at a time after a warm-up, and measures each.
async fn latencies<T>(
    client: &mut Client,
    items: &[T],
    path: impl Fn(&T) -> String,
) -> anyhow::Result<Latency> {
    anyhow::ensure!(!items.is_empty(), "no samples to measure");
    for item in items.iter().cycle().take(WARM_UP) {
        client.send(Method::GET, &path(item), None).await?;
    }
    let mut measured = Vec::with_capacity(items.len());
    for item in items {
        let path = path(item);
        let started = Instant::now();
        let (status, body) = client.send(Method::GET, &path, None).await?;
        measured.push(started.elapsed());
        anyhow::ensure!(
            status == StatusCode::OK,
            "{path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    measured.sort_unstable();
    let at = |p: f64| {
        let index = ((measured.len() - 1) as f64 * p).round() as usize;
        measured[index].as_secs_f64() * 1000.0
    };
    Ok(Latency {
        p50: at(0.5),
        p99: at(0.99),
        count: measured.len(),
    })
}
