//! The live streams of the bench: log tails and watched run lists, each on a connection of its
//! own, read as they come and checked against what the server acknowledged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use http_body_util::BodyExt;
use runledger_store::LogCursor;
use serde_json::Value;

use super::load::Acknowledged;
use crate::http::client::Client;

/// What a stream shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `GET /v1/tenants/{t}/events` as a live stream, from the start of the tenant's log.
    LogTail,
    /// `GET /v1/tenants/{t}/runs?watch=true`: the tenant's runs as they change, from now on.
    WatchedList,
}

/// What one stream has received so far.
#[derive(Debug, Default)]
struct Received {
    /// Events with data (a log event, or a run entering or changing).
    events: u64,
    /// The last status each run was shown with (watched lists).
    statuses: HashMap<String, String>,
    /// Events whose id did not follow the one before (a log cursor goes forward only).
    out_of_order: u64,
    last_id: Option<LogCursor>,
    /// Why the stream ended, if it did before the bench closed it.
    ended: Option<String>,
}

/// One open stream: its tenant, its kind and what its reader task has received.
pub(super) struct Stream {
    tenant: i64,
    kind: Kind,
    received: Arc<Mutex<Received>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Stream {
    /// Opens a stream of `kind` over tenant `tenant`; returns once the server answered 200, so
    /// that its starting point is fixed before any load is sent.
    pub(super) async fn open(
        address: SocketAddr,
        tenant: i64,
        token: &str,
        kind: Kind,
    ) -> anyhow::Result<Self> {
        let mut client = Client::connect(address, token).await?;
        let path = match kind {
            Kind::LogTail => format!("/v1/tenants/{tenant}/events"),
            Kind::WatchedList => format!("/v1/tenants/{tenant}/runs?watch=true"),
        };
        let (status, body) = client.open_stream(&path).await?;
        anyhow::ensure!(status.is_success(), "{path} answered {status}");
        let received = Arc::new(Mutex::new(Received::default()));
        let reader = tokio::spawn(read(client, body, Arc::clone(&received)));
        Ok(Self {
            tenant,
            kind,
            received,
            reader,
        })
    }

    pub(super) fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether the stream has received everything meant for it: for a log tail, every event
    /// the server acknowledged in its tenant, in order; for a watched list, every run that
    /// completed in its tenant while it was open, shown completed.
    pub(super) fn check(&self, acknowledged: &Acknowledged, completed_since: usize) -> Check {
        let received = self.received.lock().expect("a stream's record");
        if let Some(why) = &received.ended {
            return Check::Ended(why.clone());
        }
        if received.out_of_order > 0 {
            return Check::OutOfOrder;
        }
        let complete = match self.kind {
            Kind::LogTail => {
                received.events == acknowledged.events.get(&self.tenant).copied().unwrap_or(0)
            }
            Kind::WatchedList => acknowledged
                .completed
                .get(&self.tenant)
                .map_or(&[][..], |runs| &runs[completed_since.min(runs.len())..])
                .iter()
                .all(|run| received.statuses.get(run).map(String::as_str) == Some("completed")),
        };
        if complete {
            Check::Complete
        } else {
            Check::Missing
        }
    }

    pub(super) fn tenant(&self) -> i64 {
        self.tenant
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A stream's state against what it should have received.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Check {
    Complete,
    Missing,
    OutOfOrder,
    Ended(String),
}

/// Reads the body's server-sent events until it ends, recording each into `received`.
async fn read(client: Client, mut body: hyper::body::Incoming, received: Arc<Mutex<Received>>) {
    // The connection stays open for as long as the body is read.
    let _client = client;
    let mut buffer = String::new();
    let ended = loop {
        match body.frame().await {
            None => break "the server ended the stream".to_owned(),
            Some(Err(error)) => break format!("reading the stream: {error}"),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                buffer.push_str(&String::from_utf8_lossy(&data));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    if let Err(error) = record(&event, &received) {
                        break_with(&received, format!("a malformed event: {error:#}"));
                        return;
                    }
                }
            }
        }
    };
    break_with(&received, ended);
}

fn break_with(received: &Mutex<Received>, why: String) {
    received.lock().expect("a stream's record").ended = Some(why);
}

/// Records one server-sent event (keep-alives and comments have no data and count for nothing).
fn record(event: &str, received: &Mutex<Received>) -> anyhow::Result<()> {
    let mut id = None;
    let mut name = None;
    let mut data = None;
    for line in event.lines() {
        if let Some(value) = line.strip_prefix("id:") {
            id = Some(value.trim());
        } else if let Some(value) = line.strip_prefix("event:") {
            name = Some(value.trim());
        } else if let Some(value) = line.strip_prefix("data:") {
            data = Some(value.trim());
        }
    }
    let Some(data) = data else {
        return Ok(());
    };
    let mut received = received.lock().expect("a stream's record");
    if let Some(id) = id {
        let cursor: LogCursor = id.parse()?;
        if received.last_id.is_some_and(|last| cursor <= last) {
            received.out_of_order += 1;
        }
        received.last_id = Some(cursor);
    }
    received.events += 1;
    if matches!(name, Some("entered" | "changed")) {
        let value: Value = serde_json::from_str(data)?;
        let run = &value["run"];
        let id = run["id"].as_str().context("a watched run's id")?;
        let status = run["status"].as_str().context("a watched run's status")?;
        received.statuses.insert(id.to_owned(), status.to_owned());
    }
    Ok(())
}
