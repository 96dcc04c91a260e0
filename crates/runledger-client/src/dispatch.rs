//! [`dispatch`]: the seed's dispatch wrapper. A run is queued, then handed to the product's
//! queue; when that hand-over fails, the run is completed `failed` (dispatch-failed) at once,
//! so nobody watches a "queued" run that no worker will ever start.

use std::fmt::Display;
use std::future::Future;

use runledger_wire::{DispatchFailedBody, OperationRun, QueueRunBody};

use crate::client::Client;
use crate::error::ClientError;

/// The failure code recorded when the product's queue refused the run.
pub const DISPATCH_FAILED: &str = "dispatch.failed";

/// What [`dispatch`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Dispatched {
    /// A new run was queued and handed to the product's queue.
    Queued(OperationRun),
    /// A run with the same identity was already queued or running: that run, and nothing was
    /// handed over (its worker is on it).
    AlreadyActive(OperationRun),
}

/// Why [`dispatch`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError<E> {
    /// Queueing the run failed; nothing was handed over.
    #[error("queueing the run failed: {0}")]
    Queue(#[source] ClientError),
    /// The product's queue refused the run; the run is completed `failed` with
    /// `dispatch.failed` (`run` is it, once the ledger answered).
    #[error("handing the run to the queue failed: {error}")]
    Enqueue {
        /// The queue's error.
        error: E,
        /// The run, completed as failed (`None` when marking it failed failed too).
        run: Option<Box<OperationRun>>,
        /// Why marking it failed failed, if it did.
        marking: Option<ClientError>,
    },
}

/// Queues a run of `tenant` and hands it to `enqueue` (the product's queue: a job carrying the
/// run's id); when `enqueue` fails, marks the run dispatch-failed with the error's text (the
/// ledger strips secrets from it) and returns the error.
///
/// # Errors
/// [`DispatchError::Queue`] when the ledger did not queue the run, [`DispatchError::Enqueue`]
/// when the product's queue refused it.
pub async fn dispatch<F, Fut, E>(
    client: &Client,
    tenant: i64,
    run: &QueueRunBody,
    enqueue: F,
) -> Result<Dispatched, DispatchError<E>>
where
    F: FnOnce(OperationRun) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let answer = client
        .queue_run(tenant, run)
        .await
        .map_err(DispatchError::Queue)?;
    if answer.created == Some(false) {
        return Ok(Dispatched::AlreadyActive(answer.run));
    }
    let queued = answer.run;
    let run_id = queued.id;
    match enqueue(queued.clone()).await {
        Ok(()) => Ok(Dispatched::Queued(queued)),
        Err(error) => {
            let failure = DispatchFailedBody {
                code: DISPATCH_FAILED.to_owned(),
                message: error.to_string(),
            };
            let marked = client.dispatch_failed(tenant, run_id, &failure).await;
            let (run, marking) = match marked {
                Ok(answer) => (Some(Box::new(answer.run)), None),
                Err(marking) => (None, Some(marking)),
            };
            Err(DispatchError::Enqueue {
                error,
                run,
                marking,
            })
        }
    }
}
