//! A typed async client of runledger's HTTP API, for the products that start runs.
//!
//! [`Client`] calls every route with the request and answer types of [`runledger_wire`] (the
//! server's own). Commands carry an `Idempotency-Key` the client sets itself and are retried on
//! 503 and on connection errors with backoff (respecting `Retry-After`), so a retry never
//! records a command twice. [`RunWorker`] is the handle a background job holds for its run: it
//! coalesces progress increments, flushes them by time and size, heartbeats when quiet, surfaces
//! a cancel request, and completes the run; dropped without completing, or on a panic, it completes the run `failed`
//! (`worker.dropped`, `worker.panicked`). [`dispatch`] queues a run, hands it to the product's
//! queue, and marks it dispatch-failed when that fails.
//!
//! ```no_run
//! # async fn job() -> Result<(), runledger_client::ClientError> {
//! use runledger_client::{Client, WorkerOptions, wire::QueueRunBody};
//!
//! let client = Client::new("http://127.0.0.1:8080", "rl_…")?;
//! let queued = client
//!     .queue_run(1, &QueueRunBody { run_type: "inventory.sync".into(), ..Default::default() })
//!     .await?;
//! let mut worker = client.start_worker(1, queued.run.id, WorkerOptions::default()).await?;
//! worker.set_total(3);
//! for _item in 0..3 {
//!     worker.succeeded(1);
//! }
//! worker.complete(None).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - `client`: [`Client`], the one place requests are sent, answers read and retries made.
//! - `retry`: [`RetryPolicy`]: which failures are retried, and how long to wait.
//! - `error`: [`ClientError`].
//! - `routes`: one method per route, in the groups of the API (commands, queries, audit,
//!   notifications, tokens, operations).
//! - `worker`: [`RunWorker`], the handle of one run.
//! - `dispatch`: [`dispatch`], queue and hand over, or mark dispatch-failed.

mod client;
mod dispatch;
mod error;
mod retry;
mod routes;
mod worker;

pub use client::{Client, CommandRequest};
pub use dispatch::{DISPATCH_FAILED, DispatchError, Dispatched, dispatch};
pub use error::ClientError;
pub use retry::RetryPolicy;
pub use routes::Readiness;
pub use runledger_wire as wire;
pub use worker::{RunWorker, WORKER_DROPPED, WORKER_PANICKED, WorkerOptions};
