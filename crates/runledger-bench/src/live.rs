//! `runledger-bench live`: many live streams on one server, and what they cost everyone else.
//!
//! The real app and its projectors are served in process on the pool size `serve` uses by
//! default. Three periods of the same paced load (command lanes recording whole runs, and a
//! reader of runs and list pages) run one after the other: without streams, with `--streams`
//! streams open (log tails and watched run lists, half each, over `--tenants` tenants, each on a
//! connection of its own), and without streams again. The figures are the commands' and GETs'
//! p50 and p99 in each period and the ratio of the period with streams to the mean of the two
//! without; and whether every stream received every event meant for it (each is checked
//! against what the server acknowledged once the load stops: a log tail every event of its
//! tenant in order, a watched list every run of its tenant that completed while it was open).
//! The stream readers and the load's clients run on runtimes of their own (one thread each),
//! so that the server's scheduler carries only the server's work.

mod load;
mod streams;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::Method;
use clap::Args;
use runledger_cli::database::{DEFAULT_MAX_CONNECTIONS, Database};
use runledger_core::TenantId;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::database::{drop_database, fresh_database_with_pool};
use crate::http::client::Client;
use crate::server::{Projectors, admin_token, serve};
use load::{Acknowledged, LoadShape, round};
use streams::{Check, Kind, Stream};

/// `runledger-bench live`.
#[derive(Debug, Args)]
pub struct LiveBenchArgs {
    /// Streams held open in the middle period (log tails and watched lists, half each).
    #[arg(long, default_value_t = 500)]
    pub streams: usize,
    /// Seconds of each of the three periods.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Tenants the streams and the command lanes are spread over.
    #[arg(long, default_value_t = 10)]
    pub tenants: i64,
    /// Command lanes (each records whole runs on one keep-alive connection).
    #[arg(long, default_value_t = 8)]
    pub command_lanes: usize,
    /// Commands per second of all lanes together (each appends one event).
    #[arg(long, default_value_t = 100.0)]
    pub commands_per_second: f64,
    /// GETs per second of the reader.
    #[arg(long, default_value_t = 20.0)]
    pub gets_per_second: f64,
    /// Connections of the server's pool (`serve`'s default).
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub pool_connections: u32,
    /// Seconds to wait, once the load stops, for every stream to have received everything.
    #[arg(long, default_value_t = 30)]
    pub drain_seconds: u64,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    pub json: bool,
}

const BENCH_DATABASE: &str = "runledger_bench_live";

/// Runs the bench in a database of its own and prints its figures.
///
/// # Errors
/// When the database fails, a stream cannot be opened, or a client's connection fails.
pub async fn run(database: &Database, args: LiveBenchArgs) -> anyhow::Result<()> {
    let pool = fresh_database_with_pool(database, BENCH_DATABASE, args.pool_connections).await?;
    let figures = measure(&pool, &args).await?;
    if args.json {
        println!("{figures}");
    } else {
        println!(
            "p99 with streams / without: commands {}, GETs {}",
            figures["command_p99_ratio"], figures["get_p99_ratio"]
        );
    }
    pool.close().await;
    drop_database(database, BENCH_DATABASE).await
}

/// The bench over `pool` (a migrated, empty database whose pool is the server's): the three
/// periods, and the figures as one JSON object.
///
/// # Errors
/// When the database fails, a stream cannot be opened, or a client's connection fails.
pub async fn measure(pool: &PgPool, args: &LiveBenchArgs) -> anyhow::Result<Value> {
    let mut tokens = Vec::new();
    for tenant in 1..=args.tenants {
        tokens.push((tenant, admin_token(pool, TenantId::new(tenant)?).await?));
    }
    let served = serve(pool, Duration::from_secs(5), Projectors::Live).await?;
    let address = served.address;
    ready(address, &tokens[0].1).await?;
    let shape = LoadShape {
        command_lanes: args.command_lanes,
        commands_per_second: args.commands_per_second,
        gets_per_second: args.gets_per_second,
        period: Duration::from_secs(args.seconds),
    };
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let clients = Clients::start()?;
    let send_load = || {
        let (tokens, acknowledged) = (tokens.clone(), Arc::clone(&acknowledged));
        let load = clients
            .load
            .spawn(async move { load::send(address, &tokens, shape, &acknowledged).await });
        async move { load.await? }
    };

    let mut before = send_load().await?;
    say(args, format!("without streams: {}", before.figures()));

    let opened = Instant::now();
    let mut open = Vec::with_capacity(args.streams);
    for index in 0..args.streams {
        let (tenant, token) = &tokens[index % tokens.len()];
        let kind = if index % 2 == 0 {
            Kind::LogTail
        } else {
            Kind::WatchedList
        };
        let (tenant, token) = (*tenant, token.clone());
        let stream = clients
            .streams
            .spawn(async move { Stream::open(address, tenant, &token, kind).await });
        open.push(stream.await??);
    }
    let completed_before: Vec<usize> = {
        let acknowledged = acknowledged.lock().expect("the acknowledgements");
        open.iter()
            .map(|stream| {
                acknowledged
                    .completed
                    .get(&stream.tenant())
                    .map_or(0, Vec::len)
            })
            .collect()
    };
    say(
        args,
        format!(
            "{} streams open in {:.1} s",
            open.len(),
            opened.elapsed().as_secs_f64()
        ),
    );
    let mut during = send_load().await?;
    say(args, format!("with streams: {}", during.figures()));
    let drained = Instant::now();
    let checks = loop {
        let checks: Vec<Check> = {
            let acknowledged = acknowledged.lock().expect("the acknowledgements");
            open.iter()
                .zip(&completed_before)
                .map(|(stream, since)| stream.check(&acknowledged, *since))
                .collect()
        };
        let settled = checks.iter().all(|check| *check != Check::Missing);
        if settled || drained.elapsed() > Duration::from_secs(args.drain_seconds) {
            break checks;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let drain_seconds = drained.elapsed().as_secs_f64();
    let complete = |kind: Kind| {
        open.iter()
            .zip(&checks)
            .filter(|(stream, check)| stream.kind() == kind && **check == Check::Complete)
            .count()
    };
    let streams = json!({
        "open": open.len(),
        "log_tails_complete": complete(Kind::LogTail),
        "watched_lists_complete": complete(Kind::WatchedList),
        "missing": checks.iter().filter(|check| **check == Check::Missing).count(),
        "out_of_order": checks.iter().filter(|check| **check == Check::OutOfOrder).count(),
        "ended_early": checks.iter().filter(|check| matches!(check, Check::Ended(_))).count(),
        "drain_seconds": round(drain_seconds),
    });
    if let Some(Check::Ended(why)) = checks.iter().find(|check| matches!(check, Check::Ended(_))) {
        say(args, format!("a stream ended early: {why}"));
    }
    drop(open);
    say(args, format!("streams: {streams}"));

    let mut after = send_load().await?;
    say(args, format!("without streams again: {}", after.figures()));

    let (before, during, after) = (before.figures(), during.figures(), after.figures());
    let ratio = |key: &str| {
        let quiet = (before[key].as_f64().unwrap_or(f64::NAN)
            + after[key].as_f64().unwrap_or(f64::NAN))
            / 2.0;
        round(during[key].as_f64().unwrap_or(f64::NAN) / quiet)
    };
    drop(served);
    drop(clients);
    let figures = json!({
        "streams": args.streams,
        "seconds": args.seconds,
        "tenants": args.tenants,
        "pool_connections": args.pool_connections,
        "commands_per_second": args.commands_per_second,
        "gets_per_second": args.gets_per_second,
        "without_streams": before,
        "with_streams": during,
        "without_streams_again": after,
        "command_p99_ratio": ratio("command_p99_ms"),
        "get_p99_ratio": ratio("get_p99_ms"),
        "stream_checks": streams,
    });
    Ok(figures)
}

/// Waits until the server lists runs (its projectors have built the read model), so that no
/// period measures a server still starting.
async fn ready(address: std::net::SocketAddr, token: &str) -> anyhow::Result<()> {
    let mut client = Client::connect(address, token).await?;
    let started = Instant::now();
    loop {
        let (status, _) = client
            .send(Method::GET, "/v1/tenants/1/runs?page_size=1", None)
            .await?;
        if status.is_success() {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the server is not ready after 30 s: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The bench's clients, each kind on a runtime of its own with one thread: the work of reading
/// 500 streams, and of timing requests, is not scheduled among the server's tasks (a real
/// server's clients are elsewhere), and the load's latencies do not wait behind stream reading.
struct Clients {
    streams: tokio::runtime::Handle,
    load: tokio::runtime::Handle,
    runtimes: Vec<tokio::runtime::Runtime>,
}

impl Clients {
    fn start() -> anyhow::Result<Self> {
        let runtime = || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
        };
        let (streams, load) = (runtime()?, runtime()?);
        Ok(Self {
            streams: streams.handle().clone(),
            load: load.handle().clone(),
            runtimes: vec![streams, load],
        })
    }
}

impl Drop for Clients {
    /// Stops the runtimes without blocking the caller's (a runtime may not be dropped inside
    /// another).
    fn drop(&mut self) {
        for runtime in self.runtimes.drain(..) {
            runtime.shutdown_background();
        }
    }
}

fn say(args: &LiveBenchArgs, line: String) {
    if !args.json {
        println!("{line}");
    }
}
