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
use runledger_projections::{OPERATION_RUNS, wait_until_passed};
use runledger_store::tail::tail;
use runledger_store::{LogCursor, RecordedEvent};

use crate::AppState;
use crate::error::ApiError;

/// How often a live page's tail looks at the log when no `NOTIFY` woke it.
const LIVE_POLL: Duration = Duration::from_secs(1);

/// Where a live stream starts: after the browser's `Last-Event-ID` when it connections, else
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

/// The tenant's events after `from`, forever, each once the read model has applied it (or the
/// read wait ran out: the page then shows what the read model has, and catches up on the next
/// event). A failed read ends the stream; the browser connections.
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
