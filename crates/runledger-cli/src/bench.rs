//! `runledger bench append`: durable appends through the store against raw `INSERT`s of the same
//! columns into a plain table, in one run against the same PostgreSQL.
//!
//! Each scenario runs for a fixed time with N concurrent writers, each on its own connection and
//! its own run; the store and the raw shape of a scenario run back to back so they see the same
//! server state. The bench works in a database of its own, dropped at the end.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use clap::{Args, Subcommand};
use futures_util::future::try_join_all;
use runledger_core::{
    Initiator, QueueRun, RunCommand, RunId, RunIdentity, RunType, TenantId, decide,
};
use runledger_store::{AppendOutcome, EventMetadata, EventWriter, NewEvent};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::bench_support::{bench_event, drop_database, fresh_database, progressed};
use crate::database::Database;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Store appends vs raw inserts: single events at 1, 4 and 16 writers, 100-event batches at 16.
    Append(AppendArgs),
    /// The OperationRun read model: catch-up throughput over a large log, and append-to-visible
    /// latency under a steady write load.
    Projections(crate::bench_projections::ProjectionsBenchArgs),
    /// The HTTP API: commands at 16 clients against direct store calls; GET run and list page
    /// latency over a large read model.
    Http(crate::bench_http::HttpBenchArgs),
    /// The auditor's tools over a large log: anchor, verify, export, verify the export offline.
    Audit(crate::bench_audit::AuditBenchArgs),
}

/// `runledger bench append`.
#[derive(Debug, Args)]
pub(crate) struct AppendArgs {
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// One shape of load: how many writers, how many events per append.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    writers: usize,
    batch: usize,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "single_1",
        writers: 1,
        batch: 1,
    },
    Scenario {
        name: "single_4",
        writers: 4,
        batch: 1,
    },
    Scenario {
        name: "single_16",
        writers: 16,
        batch: 1,
    },
    Scenario {
        name: "batch100_16",
        writers: 16,
        batch: 100,
    },
];

const BENCH_DATABASE: &str = "runledger_bench";

/// A plain table with the columns of `events`: no triggers, no unique keys but the position.
const CREATE_RAW_TABLE: &str = "CREATE TABLE raw_events (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id uuid NOT NULL, tenant_id bigint NOT NULL, run_id uuid NOT NULL, version bigint NOT NULL,
    event_type text NOT NULL, schema_version integer NOT NULL, payload jsonb NOT NULL,
    metadata jsonb NOT NULL, recorded_at timestamptz NOT NULL, prev_hash bytea NOT NULL,
    hash bytea NOT NULL)";

const RAW_INSERT: &str = "INSERT INTO raw_events (event_id, tenant_id, run_id, version, event_type,
        schema_version, payload, metadata, recorded_at, prev_hash, hash)
    SELECT e.event_id, $1, $2, e.version, 'Progressed', 1, e.payload, e.metadata, now(), e.prev_hash, e.hash
    FROM unnest($3::uuid[], $4::bigint[], $5::jsonb[], $6::jsonb[], $7::bytea[], $8::bytea[])
         AS e(event_id, version, payload, metadata, prev_hash, hash)";

pub(crate) async fn run(database: &Database, command: BenchCommand) -> anyhow::Result<()> {
    let args = match command {
        BenchCommand::Append(args) => args,
        BenchCommand::Projections(args) => {
            return crate::bench_projections::run(database, args).await;
        }
        BenchCommand::Http(args) => return crate::bench_http::run(database, args).await,
        BenchCommand::Audit(args) => return crate::bench_audit::run(database, args).await,
    };
    let pool = bench_database(database).await?;
    let duration = Duration::from_secs(args.seconds);
    let mut results = serde_json::Map::new();
    for scenario in SCENARIOS {
        let raw = measure(scenario, duration, |writer| {
            raw_writer(pool.clone(), scenario, writer)
        })
        .await?;
        let store = measure(scenario, duration, |writer| {
            store_writer(pool.clone(), scenario, writer)
        })
        .await?;
        let ratio = store / raw;
        if !args.json {
            println!(
                "{:<12} writers={:<2} batch={:<3} store {:>9.0} events/s   raw {:>9.0} events/s   ratio {:.2}",
                scenario.name, scenario.writers, scenario.batch, store, raw, ratio
            );
        }
        results.insert(
            scenario.name.to_owned(),
            json!({ "store_events_per_sec": store.round(), "raw_events_per_sec": raw.round(), "ratio": (ratio * 100.0).round() / 100.0 }),
        );
    }
    if args.json {
        println!("{}", Value::Object(results));
    }
    pool.close().await;
    drop_bench_database(database).await
}

/// Runs `scenario.writers` writers for `duration`; returns events per second.
async fn measure<F, Fut>(scenario: Scenario, duration: Duration, writer: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<Writer>>,
{
    let writers = try_join_all((0..scenario.writers).map(&writer)).await?;
    let started = Instant::now();
    let deadline = started + duration;
    let tasks = writers
        .into_iter()
        .map(|w| tokio::spawn(w.run_until(deadline)));
    let mut events = 0u64;
    for task in tasks {
        events += task.await.context("bench writer panicked")??;
    }
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

/// One writer's loop: append batches until the deadline.
enum Writer {
    Store {
        writer: EventWriter,
        tenant: TenantId,
        run: RunId,
        version: u64,
        batch: usize,
    },
    Raw {
        pool: PgPool,
        tenant: TenantId,
        run: Uuid,
        version: i64,
        batch: usize,
    },
}

impl Writer {
    async fn run_until(mut self, deadline: Instant) -> anyhow::Result<u64> {
        let mut events = 0u64;
        while Instant::now() < deadline {
            match &mut self {
                Writer::Store {
                    writer,
                    tenant,
                    run,
                    version,
                    batch,
                } => {
                    let batch_events: Vec<NewEvent> = (0..*batch).map(|_| progressed()).collect();
                    match writer
                        .append(*tenant, *run, *version, &batch_events)
                        .await?
                    {
                        AppendOutcome::Appended(appended) => *version = appended.version,
                        AppendOutcome::Deduplicated { .. } => {
                            anyhow::bail!("a progress append cannot deduplicate")
                        }
                    }
                }
                Writer::Raw {
                    pool,
                    tenant,
                    run,
                    version,
                    batch,
                } => {
                    let payload = progressed().event.payload();
                    let metadata = EventMetadata::actor("bench").to_json();
                    let ids: Vec<Uuid> = (0..*batch).map(|_| Uuid::now_v7()).collect();
                    let versions: Vec<i64> = (1..=*batch as i64).map(|i| *version + i).collect();
                    sqlx::query(RAW_INSERT)
                        .bind(tenant.get())
                        .bind(*run)
                        .bind(&ids)
                        .bind(&versions)
                        .bind(vec![payload; *batch])
                        .bind(vec![metadata; *batch])
                        .bind(vec![vec![0u8; 32]; *batch])
                        .bind(vec![vec![1u8; 32]; *batch])
                        .execute(&*pool)
                        .await?;
                    *version += *batch as i64;
                }
            }
            events += match &self {
                Writer::Store { batch, .. } | Writer::Raw { batch, .. } => *batch as u64,
            };
        }
        Ok(events)
    }
}

async fn store_writer(pool: PgPool, scenario: Scenario, index: usize) -> anyhow::Result<Writer> {
    let tenant = TenantId::new(1)?;
    let run = RunId::from_uuid(Uuid::new_v4());
    let queue = RunCommand::Queue(QueueRun {
        run_id: run,
        tenant_id: tenant,
        run_type: RunType::parse("bench.append")?,
        identity: RunIdentity::new(json!({ "writer": index, "run": run.to_string() }))?,
        initiator: Initiator::system(),
        context: json!({}),
        limits: runledger_core::RunLimits::default(),
        at: Utc::now(),
    });
    let events: Vec<NewEvent> = decide(&runledger_core::Run::Unqueued, queue)?
        .into_iter()
        .map(bench_event)
        .collect();
    let writer = EventWriter::new(pool);
    writer.append(tenant, run, 0, &events).await?;
    Ok(Writer::Store {
        writer,
        tenant,
        run,
        version: 1,
        batch: scenario.batch,
    })
}

async fn raw_writer(pool: PgPool, scenario: Scenario, _index: usize) -> anyhow::Result<Writer> {
    Ok(Writer::Raw {
        pool,
        tenant: TenantId::new(1)?,
        run: Uuid::new_v4(),
        version: 0,
        batch: scenario.batch,
    })
}

/// A fresh, migrated bench database with the raw table.
async fn bench_database(database: &Database) -> anyhow::Result<PgPool> {
    let pool = fresh_database(database, BENCH_DATABASE).await?;
    sqlx::raw_sql(CREATE_RAW_TABLE).execute(&pool).await?;
    Ok(pool)
}

async fn drop_bench_database(database: &Database) -> anyhow::Result<()> {
    drop_database(database, BENCH_DATABASE).await
}
