//! The projections this code knows, and running all of them in one process.

use std::future::Future;

use sqlx::PgPool;
use tokio::sync::watch;

use crate::error::{ProjectionError, Result};
use crate::notifications::Notifications;
use crate::operation_runs::OperationRuns;
use crate::projection::{Definition, Projection};
use crate::projector::{Projector, ProjectorOptions};
use crate::published::LiveLog;

/// How the projections run in this process. None of it shapes what they store or their
/// fingerprints: every process of the same code applies the same versions (docs/adr/0025).
#[derive(Debug, Clone, Default)]
pub struct ProjectionsConfig {
    /// How each projector runs.
    pub options: ProjectorOptions,
    /// The process's hub and positions, when the process has one (`serve` shares its API's);
    /// else [`run_projectors`] starts one for its projectors.
    pub live: Option<LiveLog>,
}

impl ProjectionsConfig {
    /// The OperationRun read model.
    pub fn operation_runs(&self) -> OperationRuns {
        OperationRuns::new()
    }

    /// The notification feed, reading runs' streams through `pool`.
    pub fn notifications(&self, pool: &PgPool) -> Notifications {
        Notifications::new(pool.clone())
    }

    /// The definitions of every projection, in the order they run.
    pub fn definitions(&self, pool: &PgPool) -> Vec<Definition> {
        vec![
            self.operation_runs().definition(),
            self.notifications(pool).definition(),
        ]
    }

    /// The definition of the projection called `name`.
    ///
    /// # Errors
    /// [`ProjectionError::UnknownProjection`] when there is none.
    pub fn definition(&self, pool: &PgPool, name: &str) -> Result<Definition> {
        self.definitions(pool)
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| ProjectionError::UnknownProjection(name.to_owned()))
    }
}

/// Runs a projector for every projection until `shutdown` completes, then waits for each to stop
/// (each gives up its lease). Several processes may do this side by side: one leads each
/// projection, the others stand by.
///
/// # Errors
/// The first error a projector stopped with (it could not listen for notifications).
pub async fn run_projectors(
    pool: PgPool,
    config: ProjectionsConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let (stop, stopped) = watch::channel(false);
    // One listener for both projectors (and the API's live clients, when it is `serve`'s).
    let live = config
        .live
        .clone()
        .unwrap_or_else(|| LiveLog::start(&pool, config.options.poll));
    let tasks = [
        spawn(
            Projector::new(
                pool.clone(),
                config.operation_runs(),
                config.options.clone(),
            )
            .live(&live),
            stopped.clone(),
        ),
        spawn(
            Projector::new(
                pool.clone(),
                config.notifications(&pool),
                config.options.clone(),
            )
            .live(&live),
            stopped,
        ),
    ];
    shutdown.await;
    let _ = stop.send(true);
    let mut result = Ok(());
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => result = result.and(Err(error)),
            Err(join) => tracing::error!(%join, "a projector task panicked"),
        }
    }
    result
}

fn spawn<P: Projection>(
    mut projector: Projector<P>,
    mut stopped: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<()>> {
    tokio::spawn(async move {
        let name = projector.definition().name;
        let result = projector
            .run(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(error) = &result {
            tracing::error!(projection = name, %error, "the projector stopped");
        }
        result
    })
}
