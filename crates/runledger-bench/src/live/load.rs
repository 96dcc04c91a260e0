//! The load sent beside the streams: paced command lanes recording whole runs, and one paced
//! reader of runs and list pages, each request's latency kept.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::http::Method;
use futures_util::future::try_join_all;
use serde_json::{Value, json};
use tokio::time::MissedTickBehavior;

use crate::http::client::Client;
use crate::percentile::percentile_ms;

/// Commands of one run of the load: queue, start, two progress reports, complete; each appends
/// one event.
const COMMANDS_PER_RUN: usize = 5;

/// What the load sends: how many lanes, at what rates, for how long.
#[derive(Debug, Clone, Copy)]
pub(super) struct LoadShape {
    pub(super) command_lanes: usize,
    /// Commands per second of all lanes together.
    pub(super) commands_per_second: f64,
    /// GETs per second of the one reader.
    pub(super) gets_per_second: f64,
    pub(super) period: Duration,
}

/// What the server acknowledged, per tenant: the events its 2xx commands appended and the runs
/// that completed. Every stream is checked against it.
#[derive(Debug, Default)]
pub(super) struct Acknowledged {
    pub(super) events: HashMap<i64, u64>,
    pub(super) completed: HashMap<i64, Vec<String>>,
}

/// The latencies of one period of load, and the answers that were not 2xx.
#[derive(Debug, Default)]
pub(super) struct Latencies {
    pub(super) commands: Vec<Duration>,
    pub(super) gets: Vec<Duration>,
    pub(super) errors: u64,
    /// The first answer that was not 2xx, to say what went wrong.
    pub(super) first_error: Option<String>,
}

impl Latencies {
    fn merge(&mut self, other: Latencies) {
        self.commands.extend(other.commands);
        self.gets.extend(other.gets);
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
    }

    fn failed(&mut self, path: &str, status: axum::http::StatusCode, answer: &[u8]) {
        self.errors += 1;
        self.first_error
            .get_or_insert_with(|| format!("{path}: {status} {}", String::from_utf8_lossy(answer)));
    }

    /// p50 and p99 of commands and GETs, in milliseconds.
    pub(super) fn figures(&mut self) -> Value {
        self.commands.sort_unstable();
        self.gets.sort_unstable();
        json!({
            "commands": self.commands.len(),
            "command_p50_ms": round(percentile_ms(&self.commands, 0.5)),
            "command_p99_ms": round(percentile_ms(&self.commands, 0.99)),
            "gets": self.gets.len(),
            "get_p50_ms": round(percentile_ms(&self.gets, 0.5)),
            "get_p99_ms": round(percentile_ms(&self.gets, 0.99)),
            "errors": self.errors,
            "first_error": self.first_error,
        })
    }
}

pub(super) fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Sends the load for `shape.period`: lane `n` records runs in tenant `tokens[n % len]`; the
/// reader reads tenant 1. Acknowledged events and completions are added to `acknowledged`.
pub(super) async fn send(
    address: SocketAddr,
    tokens: &[(i64, String)],
    shape: LoadShape,
    acknowledged: &Arc<Mutex<Acknowledged>>,
) -> anyhow::Result<Latencies> {
    let deadline = Instant::now() + shape.period;
    let lane_interval =
        Duration::from_secs_f64(shape.command_lanes as f64 / shape.commands_per_second);
    let lanes = (0..shape.command_lanes).map(|lane| {
        let (tenant, token) = tokens[lane % tokens.len()].clone();
        let acknowledged = Arc::clone(acknowledged);
        tokio::spawn(async move {
            command_lane(
                address,
                tenant,
                &token,
                lane_interval,
                deadline,
                &acknowledged,
            )
            .await
        })
    });
    // Collect the handles first, so that every lane runs during the same period.
    let lanes: Vec<_> = lanes.collect();
    let (tenant, token) = tokens[0].clone();
    let get_interval = Duration::from_secs_f64(1.0 / shape.gets_per_second);
    let reader =
        tokio::spawn(async move { reader(address, tenant, &token, get_interval, deadline).await });
    let mut latencies = reader.await??;
    for lane in try_join_all(lanes).await? {
        latencies.merge(lane?);
    }
    Ok(latencies)
}

/// One lane: whole runs, a command every `interval`, until `deadline`.
async fn command_lane(
    address: SocketAddr,
    tenant: i64,
    token: &str,
    interval: Duration,
    deadline: Instant,
    acknowledged: &Mutex<Acknowledged>,
) -> anyhow::Result<Latencies> {
    let mut client = Client::connect(address, token).await?;
    let mut latencies = Latencies::default();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let runs = format!("/v1/tenants/{tenant}/runs");
    let mut run: Option<String> = None;
    let mut step = 0;
    while Instant::now() < deadline {
        ticks.tick().await;
        let (path, body) = match (&run, step) {
            (None, _) => (
                runs.clone(),
                json!({ "type": "bench.live", "identity": { "run": uuid::Uuid::now_v7() } }),
            ),
            (Some(id), 1) => (format!("{runs}/{id}/start"), json!({})),
            (Some(id), 2 | 3) => (format!("{runs}/{id}/progress"), json!({ "success": 1 })),
            (Some(id), _) => (format!("{runs}/{id}/complete"), json!({})),
        };
        let sent = Instant::now();
        let (status, answer) = client.send(Method::POST, &path, Some(&body)).await?;
        latencies.commands.push(sent.elapsed());
        if !status.is_success() {
            latencies.failed(&path, status, &answer);
            continue;
        }
        let mut acknowledged = acknowledged.lock().expect("the ledger of acknowledgements");
        *acknowledged.events.entry(tenant).or_default() += 1;
        if step == 0 {
            let answer: Value = serde_json::from_slice(&answer)?;
            let id = answer["run"]["id"].as_str().context("a queued run's id")?;
            run = Some(id.to_owned());
        }
        step += 1;
        if step == COMMANDS_PER_RUN {
            if let Some(id) = run.take() {
                acknowledged.completed.entry(tenant).or_default().push(id);
            }
            step = 0;
        }
    }
    Ok(latencies)
}

/// The reader: a list page, then the first run of it, a GET every `interval`, until `deadline`.
async fn reader(
    address: SocketAddr,
    tenant: i64,
    token: &str,
    interval: Duration,
    deadline: Instant,
) -> anyhow::Result<Latencies> {
    let mut client = Client::connect(address, token).await?;
    let mut latencies = Latencies::default();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let list = format!("/v1/tenants/{tenant}/runs?page_size=20");
    let mut newest: Option<String> = None;
    while Instant::now() < deadline {
        ticks.tick().await;
        let path = match newest.take() {
            Some(id) => format!("/v1/tenants/{tenant}/runs/{id}"),
            None => list.clone(),
        };
        let sent = Instant::now();
        let (status, answer) = client.send(Method::GET, &path, None).await?;
        latencies.gets.push(sent.elapsed());
        if !status.is_success() {
            latencies.failed(&path, status, &answer);
            continue;
        }
        if path == list {
            let page: Value = serde_json::from_slice(&answer)?;
            newest = page["runs"][0]["id"].as_str().map(str::to_owned);
        }
    }
    Ok(latencies)
}
