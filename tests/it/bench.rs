//! The benches measure what they say they measure: tests of the bench harnesses themselves, on
//! a real database, with short durations (correctness of the harness, not timings).
//!
//! Add a test here when a bench's figure depends on how the bench drives its load.

use std::time::{Duration, Instant};

use runledger_bench::append::{Load, Measurement, Way, create_raw_table, measure};
use runledger_bench::live::LiveBenchArgs;
use runledger_bench::projections::catch_up;
use runledger_bench::seed::{log_disk, seed_log};
use runledger_store::EventWriter;

use crate::helpers::fresh_pool;

/// Long enough for every writer to append many times on a loaded machine; the test asserts no
/// timing, only who appended and when.
const DURATION: Duration = Duration::from_secs(2);

/// Every writer of `measured` appended, and one instant lies inside every writer's window (from
/// its first append's start to its last append's return): they appended at once.
fn assert_appended_at_once(measured: &Measurement, writers: usize) {
    assert_eq!(measured.writers.len(), writers);
    for (index, writer) in measured.writers.iter().enumerate() {
        assert!(
            writer.events >= 1,
            "writer {index} appended nothing: {measured:?}"
        );
    }
    let latest_first: Instant = measured
        .writers
        .iter()
        .filter_map(|w| w.first_began)
        .max()
        .unwrap();
    let earliest_last: Instant = measured
        .writers
        .iter()
        .filter_map(|w| w.last_returned)
        .min()
        .unwrap();
    assert!(
        latest_first < earliest_last,
        "a writer began only after another had finished: {measured:?}"
    );
}

// Regression test for issue 12: `bench append` spawned its writers lazily and awaited them one
// at a time, so one writer ran the whole period and every "N writers" figure was one writer's.
#[tokio::test]
async fn append_bench_store_writers_append_at_once() {
    let pool = fresh_pool().await;
    let load = Load {
        writers: 4,
        batch: 1,
    };
    let way = Way::Store(EventWriter::new(pool.clone()));
    let measured = measure(&way, load, DURATION).await.unwrap();
    assert_appended_at_once(&measured, 4);
    // The figure counts appends that are in the log: each writer's `Progressed` events.
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'Progressed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let counted: u64 = measured.writers.iter().map(|w| w.events).sum();
    assert_eq!(stored, i64::try_from(counted).unwrap());
}

#[tokio::test]
async fn append_bench_raw_writers_append_at_once_in_batches() {
    let pool = fresh_pool().await;
    create_raw_table(&pool).await.unwrap();
    let load = Load {
        writers: 4,
        batch: 3,
    };
    let measured = measure(&Way::Raw(pool.clone()), load, DURATION)
        .await
        .unwrap();
    assert_appended_at_once(&measured, 4);
    assert!(measured.writers.iter().all(|w| w.events % 3 == 0));
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM raw_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    let counted: u64 = measured.writers.iter().map(|w| w.events).sum();
    assert_eq!(stored, i64::try_from(counted).unwrap());
    // Each writer wrote its own run, one transaction per batch of 3.
    let runs: i64 = sqlx::query_scalar("SELECT count(DISTINCT run_id) FROM raw_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(runs, 4);
    let transactions: i64 = sqlx::query_scalar("SELECT count(DISTINCT tx_id) FROM raw_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(transactions, stored / 3);
}

// The live bench's figures are worth something only if its streams were all open at once while
// the load ran, and each was checked for every event meant for it: on a pool of five
// connections, fewer than the streams, so that a stream holding a connection would starve.
#[tokio::test]
async fn live_bench_holds_every_stream_open_at_once_and_checks_each() {
    let options = crate::helpers::fresh_database().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .connect_with(options)
        .await
        .unwrap();
    let args = LiveBenchArgs {
        streams: 24,
        seconds: 2,
        tenants: 3,
        command_lanes: 3,
        commands_per_second: 30.0,
        gets_per_second: 10.0,
        pool_connections: 5,
        drain_seconds: 30,
        json: true,
    };
    let figures = runledger_bench::live::measure(&pool, &args).await.unwrap();
    let checks = &figures["stream_checks"];
    assert_eq!(checks["open"], 24, "{figures}");
    assert_eq!(checks["log_tails_complete"], 12, "{figures}");
    assert_eq!(checks["watched_lists_complete"], 12, "{figures}");
    assert_eq!(checks["ended_early"], 0, "{figures}");
    for period in ["without_streams", "with_streams", "without_streams_again"] {
        assert!(
            figures[period]["commands"].as_u64().unwrap() >= 10,
            "{period}: {figures}"
        );
        assert!(
            figures[period]["gets"].as_u64().unwrap() >= 5,
            "{period}: {figures}"
        );
        assert_eq!(figures[period]["errors"], 0, "{period}: {figures}");
    }
}

// A bench over a seeded log (`runledger-bench seed`, then `--seeded NAME`) is worth something
// only if the seed really holds the events it says, grows in place rather than starting over,
// and the catch-up measured over it rebuilds the read model from the whole log (a second run
// over the same log must not find the read model built and measure nothing).
#[tokio::test]
async fn seeded_log_holds_what_it_says_and_each_catch_up_reads_all_of_it() {
    let pool = fresh_pool().await;
    let seeded = seed_log(&pool, 600, 20, 4, &|_, _| {}).await.unwrap();
    assert_eq!((seeded.before, seeded.after), (0, 600));
    // Grown to 1,000: only the missing runs are appended, rounded up to whole runs.
    let grown = seed_log(&pool, 990, 20, 4, &|_, _| {}).await.unwrap();
    assert_eq!((grown.before, grown.after), (600, 1000));
    let disk = log_disk(&pool).await.unwrap();
    assert_eq!(disk.events, 1000);
    assert!(disk.table > 0 && disk.indexes > 0, "{disk:?}");
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM streams")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(runs, 50);
    let chains_intact = runledger_audit::verify_database(
        &pool,
        runledger_audit::verify::Target::Log,
        runledger_audit::verify::Anchors::Stored,
        &|_| {},
    )
    .await
    .unwrap();
    assert!(chains_intact.is_valid(), "{}", chains_intact.summary());
    assert_eq!(chains_intact.events, 1000);

    for round in 0..2 {
        let caught_up = catch_up(&pool, 100, true).await.unwrap();
        assert_eq!(caught_up.events, 1000, "round {round}");
        let projected: i64 = sqlx::query_scalar("SELECT count(*) FROM public.operation_runs")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(projected, 50, "round {round}");
    }
}
