//! `runledger-bench append`: durable appends through the store against the same rows inserted
//! raw into a plain table (and, when installed, Message DB's `write_message`), in one run
//! against the same PostgreSQL.
//!
//! Each scenario runs every way with N concurrent writers, each writing its own run; the ways
//! take turns in short slices, round after round, so that they see the same server state and
//! the same load of the machine. The bench works in a database of its own, dropped at the end.
//!
//! What each side does:
//! - store: one `EventWriter`, shared by the N writers as the server shares one, on the bench
//!   pool; `EventWriter::append` does what it does for the server (its connections, statements
//!   and wake-ups are the store's).
//! - raw: each writer holds one connection of the same pool for the whole measurement (no
//!   acquire, so no ping) and sends one prepared, autocommitted `INSERT` per append
//!   (`baseline`).
//! - Message DB: the same, with `SELECT message_store.write_message(…)`.
//!
//! # Layout
//! - `harness`: N writers appending at once until a deadline, each recording its window.
//! - `store`: the store's writer.
//! - `baseline`: the raw-SQL writers (plain table, Message DB).

mod baseline;
mod harness;
mod store;

use std::time::Duration;

use clap::Args;
use futures_util::future::try_join_all;
use runledger_cli::database::Database;
use runledger_store::{EventWriter, WriterConfig};
use serde_json::{Map, Value, json};
use sqlx::PgPool;

use baseline::{MessageDbAppender, RawAppender};
pub use baseline::{create_raw_table, message_db};
use harness::Appender;
pub use harness::{Measurement, WriterWindow};
use store::StoreAppender;

use crate::database::{BenchDatabase, SeededArgs};

/// `runledger-bench append`.
#[derive(Debug, Args)]
pub struct AppendArgs {
    /// Seconds each way of each scenario runs, in all.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Slices each way's seconds are cut into: the ways of a scenario take turns slice by slice,
    /// so that a change of the machine's load weighs on each of them alike.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// The database of the ledger's server where Message DB is installed, to compare with; it is
    /// skipped when that database or its `message_store` schema is missing.
    #[arg(long, default_value = "message_store")]
    message_db_database: String,
    /// The store writer's lanes (groups committing at once); the server's default unless given.
    #[arg(long, default_value_t = WriterConfig::default().lanes)]
    writer_lanes: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// With `--seeded NAME`, the store appends into that seeded log (and the raw inserts go to
    /// a `raw_events` table beside it, dropped at the end).
    #[command(flatten)]
    log: SeededArgs,
}

/// Who appends: the store, or a baseline.
#[derive(Debug, Clone)]
pub enum Way {
    /// `EventWriter::append`, every writer through this one writer.
    Store(EventWriter),
    /// Raw `INSERT`s into `raw_events` ([`create_raw_table`]) in this pool's database.
    Raw(PgPool),
    /// Message DB's `write_message` in this pool's database ([`message_db`]); one event per
    /// append only.
    MessageDb(PgPool),
}

/// How many writers append at once, and how many events each append carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Concurrent writers, each with a run (stream) of its own.
    pub writers: usize,
    /// Events per append (per transaction).
    pub batch: usize,
}

/// Runs `load` `way` for `duration`: every writer is set up first (its connection, its run),
/// then all append at once until the deadline.
///
/// # Errors
/// When the database fails, or Message DB is asked for batches.
pub async fn measure(way: &Way, load: Load, duration: Duration) -> anyhow::Result<Measurement> {
    let writers = 0..load.writers;
    match way {
        Way::Store(writer) => {
            let ready = writers.map(|_| StoreAppender::ready(writer.clone(), load.batch));
            run_ready(try_join_all(ready).await?, duration).await
        }
        Way::Raw(pool) => {
            let ready = writers.map(|_| RawAppender::ready(pool, load.batch));
            run_ready(try_join_all(ready).await?, duration).await
        }
        Way::MessageDb(pool) => {
            anyhow::ensure!(load.batch == 1, "Message DB writes one message per call");
            let ready = writers.map(|index| MessageDbAppender::ready(pool, index));
            run_ready(try_join_all(ready).await?, duration).await
        }
    }
}

/// Runs the ready writers and refuses a measurement in which they did not all append at once:
/// its figure would not be the figure of N writers.
async fn run_ready<A: Appender>(
    appenders: Vec<A>,
    duration: Duration,
) -> anyhow::Result<Measurement> {
    let writers = appenders.len();
    let measurement = harness::measure(appenders, duration).await?;
    anyhow::ensure!(
        measurement.writers_overlapped(),
        "the {writers} writers did not all append at once: {:?}",
        measurement.writers
    );
    Ok(measurement)
}

/// One shape of load, and the ways measured in it besides the store and raw inserts.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    load: Load,
    /// Raw inserts of the scenario's events coalesced: one writer, `writers` rows per
    /// transaction, the ceiling of group commit.
    coalesced: bool,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "single_1",
        load: Load {
            writers: 1,
            batch: 1,
        },
        coalesced: false,
    },
    Scenario {
        name: "single_4",
        load: Load {
            writers: 4,
            batch: 1,
        },
        coalesced: false,
    },
    Scenario {
        name: "single_16",
        load: Load {
            writers: 16,
            batch: 1,
        },
        coalesced: true,
    },
    Scenario {
        name: "batch100_16",
        load: Load {
            writers: 16,
            batch: 100,
        },
        coalesced: false,
    },
];

const BENCH_DATABASE: &str = "runledger_bench";

/// Runs the bench and prints its figures.
///
/// # Errors
/// When the database fails, or a measurement's writers did not append at once.
pub async fn run(database: &Database, args: AppendArgs) -> anyhow::Result<()> {
    let bench = BenchDatabase::open(database, &args.log, BENCH_DATABASE).await?;
    let pool = bench.pool.clone();
    if bench.is_seeded() {
        // Left by an earlier run that failed half-way.
        sqlx::raw_sql("DROP TABLE IF EXISTS raw_events")
            .execute(&pool)
            .await?;
    }
    create_raw_table(&pool).await?;
    let message_db = message_db(database, &args.message_db_database).await?;
    if message_db.is_none() && !args.json {
        println!(
            "(no Message DB in database {:?}: not compared; docs/performance.md says how to install it)",
            args.message_db_database
        );
    }
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    let slice = Duration::from_secs(args.seconds) / args.rounds;
    anyhow::ensure!(args.writer_lanes > 0, "--writer-lanes must be at least 1");
    let writer = WriterConfig {
        lanes: args.writer_lanes,
        ..WriterConfig::default()
    };
    let mut results = Map::new();
    for scenario in SCENARIOS {
        let ways = Ways {
            pool: &pool,
            message_db: message_db.as_ref(),
            writer: &writer,
        };
        let figures = measure_scenario(ways, scenario, slice, args.rounds).await?;
        if !args.json {
            println!("{}", figures.line(scenario));
        }
        results.insert(scenario.name.to_owned(), figures.json(scenario));
    }
    if args.json {
        println!("{}", Value::Object(results));
    }
    if let Some(message_db) = message_db {
        message_db.close().await;
    }
    if bench.is_seeded() {
        sqlx::raw_sql("DROP TABLE raw_events")
            .execute(&pool)
            .await?;
    }
    bench.close(database).await
}

/// The events per second of each way in one scenario.
struct Figures {
    store: f64,
    raw: f64,
    coalesced: Option<f64>,
    message_db: Option<f64>,
}

/// Events and seconds of one way, summed over the rounds of a scenario.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    events: u64,
    seconds: f64,
}

impl Tally {
    fn add(&mut self, measurement: &Measurement) {
        self.events += measurement.events();
        self.seconds += measurement.seconds;
    }

    fn events_per_second(&self) -> f64 {
        self.events as f64 / self.seconds
    }
}

/// Measures every way of `scenario` for `rounds` slices of `slice` each, taking turns within
/// each round: raw, raw coalesced, Message DB, store.
/// Where a scenario's ways append: the bench database, Message DB's, and the store's writer
/// settings.
#[derive(Clone, Copy)]
struct Ways<'a> {
    pool: &'a PgPool,
    message_db: Option<&'a PgPool>,
    writer: &'a WriterConfig,
}

async fn measure_scenario(
    ways: Ways<'_>,
    scenario: Scenario,
    slice: Duration,
    rounds: u32,
) -> anyhow::Result<Figures> {
    let Ways {
        pool,
        message_db,
        writer,
    } = ways;
    let load = scenario.load;
    let raw_way = Way::Raw(pool.clone());
    let coalesced_load = scenario.coalesced.then_some(Load {
        writers: 1,
        batch: load.writers * load.batch,
    });
    let message_db_way = message_db
        .filter(|_| load.batch == 1)
        .map(|pool| Way::MessageDb(pool.clone()));
    let store_way = Way::Store(EventWriter::with_config(pool.clone(), writer.clone()));
    let (mut raw, mut store) = (Tally::default(), Tally::default());
    let (mut coalesced, mut message_db): (Option<Tally>, Option<Tally>) = (None, None);
    for _ in 0..rounds {
        raw.add(&measure(&raw_way, load, slice).await?);
        if let Some(coalesced_load) = coalesced_load {
            let measured = measure(&raw_way, coalesced_load, slice).await?;
            coalesced.get_or_insert_with(Tally::default).add(&measured);
        }
        if let Some(way) = &message_db_way {
            let measured = measure(way, load, slice).await?;
            message_db.get_or_insert_with(Tally::default).add(&measured);
        }
        store.add(&measure(&store_way, load, slice).await?);
    }
    Ok(Figures {
        store: store.events_per_second(),
        raw: raw.events_per_second(),
        coalesced: coalesced.map(|t| t.events_per_second()),
        message_db: message_db.map(|t| t.events_per_second()),
    })
}

/// A ratio as the bench reports it, to two decimals.
fn ratio(numerator: f64, denominator: f64) -> f64 {
    (numerator / denominator * 100.0).round() / 100.0
}

impl Figures {
    /// The scenario's line of the table.
    fn line(&self, scenario: Scenario) -> String {
        let Load { writers, batch } = scenario.load;
        let mut line = format!(
            "{:<12} writers={writers:<2} batch={batch:<3} store {:>9.0} events/s   raw {:>9.0} events/s   ratio {:.2}",
            scenario.name,
            self.store,
            self.raw,
            self.store / self.raw
        );
        if let Some(coalesced) = self.coalesced {
            line.push_str(&format!(
                "   raw {} rows/tx {coalesced:>9.0} events/s (store/that {:.2})",
                writers * batch,
                self.store / coalesced
            ));
        }
        if let Some(message_db) = self.message_db {
            line.push_str(&format!(
                "   Message DB {message_db:>9.0} events/s (store/Message DB {:.2})",
                self.store / message_db
            ));
        }
        line
    }

    /// The scenario's JSON object.
    fn json(&self, scenario: Scenario) -> Value {
        let mut figures = json!({
            "store_events_per_sec": self.store.round(),
            "raw_events_per_sec": self.raw.round(),
            "ratio": ratio(self.store, self.raw),
        });
        if let Some(coalesced) = self.coalesced {
            let rows = scenario.load.writers * scenario.load.batch;
            figures[format!("raw_{rows}_rows_per_tx_events_per_sec")] = json!(coalesced.round());
            figures[format!("ratio_to_raw_{rows}_rows_per_tx")] =
                json!(ratio(self.store, coalesced));
        }
        if let Some(message_db) = self.message_db {
            figures["message_db_events_per_sec"] = json!(message_db.round());
            figures["ratio_to_message_db"] = json!(ratio(self.store, message_db));
        }
        figures
    }
}
