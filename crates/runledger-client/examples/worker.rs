//! A product's background job recorded with the client, against a running `runledger serve`.
//!
//! The product side queues a run and hands it to its own job queue (here a channel) with
//! [`dispatch`]; the job side starts the run, counts items on a [`RunWorker`] (reported in
//! coalesced increments), stops early when someone asks to cancel, and completes the run.
//!
//! ```sh
//! runledger serve &                      # prints a first admin token, or make a writer one:
//! runledger token create --tenant 1 --role writer --name worker
//! RUNLEDGER_TOKEN=rl_… cargo run -p runledger-client --example worker
//! ```
//!
//! `RUNLEDGER_SERVER` is the server (default `http://127.0.0.1:8080`), `RUNLEDGER_TENANT` the
//! tenant (default 1). It prints the completed run's JSON.

// An example talks to the person who runs it.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use runledger_client::wire::{CommandAnswer, Outcome, QueueRunBody};
use runledger_client::{Client, Dispatched, WorkerOptions, dispatch};
use tokio::sync::mpsc;
use uuid::Uuid;

/// The items the job works through; every seventh fails, as a throttled API would.
const ITEMS: u64 = 40;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server =
        std::env::var("RUNLEDGER_SERVER").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let token = std::env::var("RUNLEDGER_TOKEN")
        .map_err(|_| anyhow::anyhow!("set RUNLEDGER_TOKEN to a writer token"))?;
    let tenant: i64 = std::env::var("RUNLEDGER_TENANT").map_or(Ok(1), |t| t.parse())?;
    let client = Client::new(&server, &token)?;

    // The product's queue: a job is the run's id.
    let (jobs, mut queue) = mpsc::channel::<Uuid>(8);
    let run = QueueRunBody {
        run_type: "inventory.sync".into(),
        // A fresh identity, so that each run of the example queues a run of its own.
        identity: Some(serde_json::json!({ "example": Uuid::new_v4() })),
        ..QueueRunBody::default()
    };
    let dispatched = dispatch(&client, tenant, &run, |queued| async move {
        jobs.send(queued.id)
            .await
            .map_err(|_| "the job queue is closed")
    })
    .await?;
    let run_id = match dispatched {
        Dispatched::Queued(run) => run.id,
        Dispatched::AlreadyActive(run) => anyhow::bail!("run {} is already active", run.id),
    };

    // The job, as a worker process would run it on receiving `run_id`.
    let job = queue.recv().await.expect("the dispatched job");
    assert_eq!(job, run_id);
    let completed = work(&client, tenant, job).await?;
    println!("{}", serde_json::to_string_pretty(&completed.run)?);
    Ok(())
}

/// Starts the run, works through its items, and completes it.
async fn work(client: &Client, tenant: i64, run_id: Uuid) -> anyhow::Result<CommandAnswer> {
    let options = WorkerOptions {
        flush_every: Duration::from_millis(200),
        ..WorkerOptions::default()
    };
    let worker = client.start_worker(tenant, run_id, options).await?;
    worker.set_total(ITEMS);
    for item in 1..=ITEMS {
        if worker.cancel_requested() {
            // Someone asked to stop: acknowledge with the counts so far.
            return Ok(worker.complete(Some(Outcome::Cancelled)).await?);
        }
        // The item's work.
        tokio::time::sleep(Duration::from_millis(10)).await;
        if item % 7 == 0 {
            worker.item_failed(
                "graph.throttled",
                "Throttled by the upstream API (retrying later)",
            );
        } else {
            worker.succeeded(1);
        }
    }
    // The outcome follows from the counts: partially_succeeded.
    Ok(worker.complete(None).await?)
}
