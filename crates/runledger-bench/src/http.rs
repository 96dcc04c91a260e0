//! `runledger-bench http`: the HTTP API under load, served in process on a random local port.
//!
//! Two measurements, in a database of its own (dropped at the end):
//! - the command path (`commands`): 16 clients, each on one keep-alive connection, record runs
//!   (queue, start, progress reports, complete) over HTTP; then the same commands go through the
//!   store directly (the `CommandHandler` the API calls, and bare `EventWriter` appends of the
//!   same events), at 16 concurrent tasks; the figure is events per second and the ratio
//!   HTTP / direct;
//! - query latency (`queries`): `--runs` runs are appended whole and projected into the
//!   OperationRun read model, then one client measures GET run and list pages (first and second
//!   page) one request at a time, p50 and p99.

pub(crate) mod client;
mod commands;
mod queries;

use std::time::Duration;

use clap::Args;
use runledger_cli::database::Database;
use runledger_core::TenantId;
use serde_json::{Value, json};

use crate::database::{BenchDatabase, SeededArgs};
use crate::server::{Projectors, admin_token, serve};
use commands::CommandRates;
use queries::{QueryLatencies, ReadModel};

/// `runledger-bench http`.
#[derive(Debug, Args)]
pub struct HttpBenchArgs {
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
    /// With `--seeded NAME`, the queries run over the read model of that seeded log (`--runs`
    /// is not used); the command load is appended to it.
    #[command(flatten)]
    log: SeededArgs,
}

const BENCH_DATABASE: &str = "runledger_bench_http";

/// Runs the bench and prints its figures: lines as each measurement ends, or one JSON object.
///
/// # Errors
/// When the database fails, or a request answers with an error.
pub async fn run(database: &Database, args: HttpBenchArgs) -> anyhow::Result<()> {
    let bench = BenchDatabase::open(database, &args.log, BENCH_DATABASE).await?;
    let pool = bench.pool.clone();
    let token = admin_token(&pool, TenantId::new(1)?).await?;
    let served = serve(
        &pool,
        Duration::from_secs(args.token_staleness_seconds),
        Projectors::Off,
    )
    .await?;
    let address = served.address;
    let say = |lines: Vec<String>| {
        if !args.json {
            for line in lines {
                println!("{line}");
            }
        }
    };

    let commands = commands::measure(&pool, address, &token, args.commands_per_client).await?;
    say(vec![commands.line()]);
    let read_model = if bench.is_seeded() {
        queries::project(&pool, 0.0).await?
    } else {
        queries::seed(database, &pool, BENCH_DATABASE, args.runs).await?
    };
    say(vec![read_model.line()]);
    let latencies = queries::measure(&pool, address, &token, args.samples).await?;
    say(latencies.lines());

    if args.json {
        println!("{}", figures(&args, &commands, &read_model, &latencies));
    }
    drop(served);
    bench.close(database).await
}

/// The bench's figures as one JSON object (`--json`).
fn figures(
    args: &HttpBenchArgs,
    commands: &CommandRates,
    read_model: &ReadModel,
    latencies: &QueryLatencies,
) -> Value {
    json!({
        "seeded": args.log.seeded,
        "clients": commands::CLIENTS,
        "token_staleness_seconds": args.token_staleness_seconds,
        "commands": commands.commands,
        "http_events_per_second": commands.http.round(),
        "command_handler_events_per_second": commands.handler.round(),
        "event_writer_events_per_second": commands.writer.round(),
        "ratio_http_to_command_handler": (commands.http / commands.handler * 100.0).round() / 100.0,
        "ratio_http_to_event_writer": (commands.http / commands.writer * 100.0).round() / 100.0,
        "runs": read_model.runs,
        "seed_append_seconds": read_model.appended_in.round(),
        "seed_projection_seconds": read_model.projected_in.round(),
        "get_run_ms": latencies.get_run.to_json(),
        "list_first_page_ms": latencies.first_page.to_json(),
        "list_second_page_ms": latencies.second_page.to_json(),
    })
}
