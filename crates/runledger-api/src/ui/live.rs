//! The live side of the pages: where a page's stream starts. The stream itself is a subscriber
//! of the process's live hub ([`crate::live::projected_events`]): each of the tenant's events is
//! handed on once the OperationRun read model has applied it, so a page re-rendered for an
//! event shows that event's effect.
//!
//! A page starts its stream at the read model's checkpoint as of its rendering (read before its
//! rows), so nothing applied after the rendering is missed; an event already shown is simply
//! shown again. A reconnecting browser sends `Last-Event-ID` (each event's cursor) and resumes
//! after it.

use axum::http::HeaderMap;
use runledger_store::LogCursor;

use crate::error::ApiError;
use crate::live::resume_cursor;

/// Where a live stream starts: after the browser's `Last-Event-ID` when it reconnects, else
/// after the `after` cursor its page was rendered with.
///
/// # Errors
/// A 400 naming the malformed cursor, or `after` when neither is given.
pub fn start_cursor(headers: &HeaderMap, after: Option<&str>) -> Result<LogCursor, ApiError> {
    let after = after
        .map(|text| {
            text.parse()
                .map_err(|error: runledger_store::read::InvalidCursor| {
                    ApiError::bad_field("after", error.to_string())
                })
        })
        .transpose()?;
    resume_cursor(headers, after)?.ok_or_else(|| {
        ApiError::bad_field("after", "is required: the cursor the page was rendered at")
    })
}
