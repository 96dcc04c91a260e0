//! What a page knows of the OperationRun read model when it renders: built or not, its status
//! (and so the checkpoint a live page starts from), and the banner that says it is behind.

use runledger_projections::{OPERATION_RUNS, ProjectionState, ProjectionStatus, status};

use crate::AppState;

/// What a page knows of the OperationRun read model when it renders.
#[derive(Debug)]
pub enum ReadModel {
    /// It has an active version, with this status.
    Built(Box<ProjectionStatus>),
    /// No projector has built it yet (a new installation): there is nothing to read.
    NotBuilt,
    /// Its status could not be read (logged): the page reads it anyway.
    Unknown,
}

impl ReadModel {
    /// The read model's status, read before a page's rows: a live stream starts at its
    /// checkpoint, so it misses nothing the rows do not show.
    pub async fn of(state: &AppState) -> Self {
        match status(&state.pool, OPERATION_RUNS).await {
            Ok(Some(status)) => ReadModel::Built(Box::new(status)),
            Ok(None) => ReadModel::NotBuilt,
            Err(error) => {
                tracing::warn!(%error, "the read model's status could not be read");
                ReadModel::Unknown
            }
        }
    }

    /// The cursor a page's live stream starts from: the read model's checkpoint, when it is
    /// known (a page without it simply does not update by itself).
    pub fn live_cursor(&self) -> Option<String> {
        match self {
            ReadModel::Built(status) => Some(status.checkpoint().to_string()),
            ReadModel::NotBuilt | ReadModel::Unknown => None,
        }
    }

    /// Whether there is a read model to query.
    pub fn is_built(&self) -> bool {
        !matches!(self, ReadModel::NotBuilt)
    }

    /// What the pages say about a read model that is not simply up to date.
    pub fn banner(&self) -> Option<Banner> {
        let status = match self {
            ReadModel::Built(status) => status,
            ReadModel::NotBuilt => {
                return Some(Banner::warning(
                    "The read model has not been built yet: runs appear here once a projector has run.".to_owned(),
                ));
            }
            ReadModel::Unknown => {
                return Some(Banner::warning(
                    "The read model's status could not be read: this page may be behind and does not update by itself.".to_owned(),
                ));
            }
        };
        let behind = status.active.lag_events;
        match status.state {
            ProjectionState::Running => None,
            ProjectionState::Rebuilding => Some(Banner {
                level: "info",
                text: format!(
                    "The read model is being rebuilt ({:.0}% done); this page shows the current version until the new one takes over.",
                    status.rebuild.as_ref().map_or(0.0, |r| r.percent)
                ),
            }),
            ProjectionState::Halted => Some(Banner::warning(format!(
                "The read model is halted at a poison event ({behind} events behind): this page shows runs as of its checkpoint {}.",
                status.checkpoint()
            ))),
            ProjectionState::Stopped => Some(Banner::warning(format!(
                "No projector is running ({behind} events behind): this page shows runs as of checkpoint {}.",
                status.checkpoint()
            ))),
        }
    }
}

/// A note over a page about the read model it comes from.
#[derive(Debug)]
pub struct Banner {
    /// `info` or `warning`.
    pub level: &'static str,
    pub text: String,
}

impl Banner {
    fn warning(text: String) -> Self {
        Self {
            level: "warning",
            text,
        }
    }
}
