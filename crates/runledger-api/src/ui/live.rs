//! The live side of the pages: a tenant's new events, each handed on once the OperationRun read
//! model has applied it, so a page re-rendered for an event shows that event's effect.
//!
//! A page starts its stream at the read model's checkpoint as of its rendering (read before its
//! rows), so nothing applied after the rendering is missed; an event already shown is simply
//! shown again. A reconnecting browser sends `Last-Event-ID` (each event's cursor) and resumes
//! after it.

use std::time::Duration;

use axum::http::HeaderMap;
use futures_util::{Stream, StreamExt};
use runledger_core::TenantId;
use runledger_projections::{
    OPERATION_RUNS, ProjectionState, ProjectionStatus, status, wait_until_passed,
};
use runledger_store::tail::tail;
use runledger_store::{LogCursor, RecordedEvent};

use crate::AppState;
use crate::error::ApiError;

/// How often a live page's tail looks at the log when no `NOTIFY` woke it.
const LIVE_POLL: Duration = Duration::from_secs(1);

/// Where a live stream starts: after the browser's `Last-Event-ID` when it reconnects, else
/// after the `after` cursor its page was rendered with.
///
/// # Errors
/// A 400 naming the malformed cursor.
pub fn start_cursor(headers: &HeaderMap, after: Option<&str>) -> Result<LogCursor, ApiError> {
    let (field, text) = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(last) => ("Last-Event-ID", last),
        None => (
            "after",
            after.ok_or_else(|| {
                ApiError::bad_field("after", "is required: the cursor the page was rendered at")
            })?,
        ),
    };
    text.parse()
        .map_err(|error: runledger_store::read::InvalidCursor| {
            ApiError::bad_field(field, error.to_string())
        })
}

/// The cursor a page's live stream starts from: the read model's checkpoint, when it is known
/// (a page without it simply does not update by itself).
pub fn page_cursor(read_model: &ReadModel) -> Option<String> {
    match read_model {
        ReadModel::Built(status) => Some(status.checkpoint().to_string()),
        ReadModel::NotBuilt | ReadModel::Unknown => None,
    }
}

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

/// The tenant's events after `from`, forever, each once the read model has applied it (or the
/// read wait ran out: the page then shows what the read model has, and catches up on the next
/// event). A failed read ends the stream; the browser reconnects.
pub fn projected_events(
    state: AppState,
    tenant: TenantId,
    from: LogCursor,
) -> impl Stream<Item = RecordedEvent> {
    let pool = state.pool.clone();
    let wait = state.config.max_read_wait;
    tail(state.reader, from, Some(tenant), LIVE_POLL)
        .take_while(|next| {
            if let Err(error) = next {
                tracing::error!(error.cause_chain = ?error, error.message = %error, "live page tail failed");
            }
            std::future::ready(next.is_ok())
        })
        .filter_map(|next| std::future::ready(next.ok()))
        .then(move |event| {
            let pool = pool.clone();
            async move {
                if let Err(error) = wait_until_passed(&pool, OPERATION_RUNS, event.position, wait).await {
                    tracing::warn!(%error, "live page could not wait for the read model");
                }
                event
            }
        })
}
