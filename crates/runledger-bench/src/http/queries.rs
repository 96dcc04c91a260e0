//! Query latency over a large read model: seeding it with whole runs, then GET run and the
//! first and second list pages, one request at a time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use runledger_cli::database::Database;
use runledger_store::EventWriter;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::client::Client;
use crate::database::seeding_pool;
use crate::log::generate_log;
use crate::percentile::percentile_ms;
use crate::projections::catch_up;

/// Concurrent writers seeding the read model.
const SEEDERS: u64 = 8;
/// Requests sent before each latency measurement, to warm connections, plans and caches.
const WARM_UP: usize = 200;

/// The seeded read model: its runs, and how long the seed took to append and to project.
pub(super) struct ReadModel {
    pub(super) runs: i64,
    pub(super) appended_in: f64,
    pub(super) projected_in: f64,
}

impl ReadModel {
    /// The figures as the bench prints them.
    pub(super) fn line(&self) -> String {
        let Self {
            runs,
            appended_in,
            projected_in,
        } = self;
        format!(
            "read model: {runs} runs (appended in {appended_in:.0}s, projected in {projected_in:.0}s)"
        )
    }
}

/// Appends `runs` whole runs (Queued, Started, Completed: the smallest whole run) to the bench
/// database `name` and projects them, with whatever the command load left, into the read model.
pub(super) async fn seed(
    database: &Database,
    pool: &PgPool,
    name: &str,
    runs: u64,
) -> anyhow::Result<ReadModel> {
    // The seed is set-up, not a measurement: its commits need not wait for the disk.
    let seed_pool = seeding_pool(database, name, SEEDERS as u32).await?;
    let seeding = Instant::now();
    generate_log(&EventWriter::new(seed_pool.clone()), SEEDERS, runs, 3).await?;
    let appended_in = seeding.elapsed().as_secs_f64();
    seed_pool.close().await;
    project(pool, appended_in).await
}

/// Brings the read model up to the end of the log of `pool` (a seeded log's is built already
/// when `runledger-bench projections --seeded` ran before), appended in `appended_in` seconds.
pub(super) async fn project(pool: &PgPool, appended_in: f64) -> anyhow::Result<ReadModel> {
    let projected_in = catch_up(pool, 500, false).await?.seconds;
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM public.operation_runs")
        .fetch_one(pool)
        .await?;
    sqlx::raw_sql("ANALYZE").execute(pool).await?;
    Ok(ReadModel {
        runs,
        appended_in,
        projected_in,
    })
}

/// Percentiles of one query shape, in milliseconds.
pub(super) struct Latency {
    p50: f64,
    p99: f64,
    count: usize,
}

impl Latency {
    pub(super) fn to_json(&self) -> Value {
        json!({ "p50": (self.p50 * 100.0).round() / 100.0, "p99": (self.p99 * 100.0).round() / 100.0, "requests": self.count })
    }
}

/// The latencies of the three query shapes.
pub(super) struct QueryLatencies {
    pub(super) get_run: Latency,
    pub(super) first_page: Latency,
    pub(super) second_page: Latency,
}

impl QueryLatencies {
    /// The figures as the bench prints them, one line per shape.
    pub(super) fn lines(&self) -> Vec<String> {
        [
            ("GET run", &self.get_run),
            ("list, first page", &self.first_page),
            ("list, second page", &self.second_page),
        ]
        .into_iter()
        .map(|(name, latency)| {
            format!(
                "{name:<18} p50 {:.2} ms, p99 {:.2} ms ({} requests)",
                latency.p50, latency.p99, latency.count
            )
        })
        .collect()
    }
}

/// Measures `samples` requests of each shape: GET of random runs, the first list page of their
/// tenants, and the second page through the first page's keyset token.
pub(super) async fn measure(
    pool: &PgPool,
    address: SocketAddr,
    token: &str,
    samples: usize,
) -> anyhow::Result<QueryLatencies> {
    let runs = random_runs(pool, samples).await?;
    let mut client = Client::connect(address, token).await?;
    let get_run = latencies(&mut client, &runs, |(tenant, run)| {
        format!("/v1/tenants/{tenant}/runs/{run}")
    })
    .await?;
    let tenants: Vec<i64> = runs.iter().map(|(tenant, _)| *tenant).collect();
    let first_page = latencies(&mut client, &tenants, |tenant| {
        format!("/v1/tenants/{tenant}/runs")
    })
    .await?;
    let second_pages = second_page_paths(&mut client, &tenants).await?;
    let second_page = latencies(&mut client, &second_pages, Clone::clone).await?;
    Ok(QueryLatencies {
        get_run,
        first_page,
        second_page,
    })
}

/// `count` runs of the read model, at random: (tenant, run id).
async fn random_runs(pool: &PgPool, count: usize) -> anyhow::Result<Vec<(i64, Uuid)>> {
    Ok(
        sqlx::query_as(
            "SELECT tenant_id, id FROM public.operation_runs ORDER BY random() LIMIT $1",
        )
        .bind(i64::try_from(count)?)
        .fetch_all(pool)
        .await?,
    )
}

/// The second list page of each of `tenants`, through its first page's keyset token (tenants
/// with one page have none).
async fn second_page_paths(client: &mut Client, tenants: &[i64]) -> anyhow::Result<Vec<String>> {
    let mut paths = Vec::with_capacity(tenants.len());
    for tenant in tenants {
        let (_, body) = client
            .send(Method::GET, &format!("/v1/tenants/{tenant}/runs"), None)
            .await?;
        let page: Value = serde_json::from_slice(&body)?;
        if let Some(token) = page["next_page_token"].as_str() {
            paths.push(format!("/v1/tenants/{tenant}/runs?page_token={token}"));
        }
    }
    Ok(paths)
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
    let mut measured: Vec<Duration> = Vec::with_capacity(items.len());
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
    Ok(Latency {
        p50: percentile_ms(&measured, 0.5),
        p99: percentile_ms(&measured, 0.99),
        count: measured.len(),
    })
}
