//! Audit routes (auditor role): a run's stored events with their hashes, a run's state as of a
//! version or a time, and the tenant's log in safe order, paged or live as server-sent events.
//!
//! These routes read the event log itself, not a projection, and the state route folds events
//! at request time on purpose, with the store's own fold (the domain's `evolve`), so an auditor
//! sees what the command path and the projections would have seen.

use std::convert::Infallible;
use std::future;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
pub use runledger_audit::AuditEvent;
use runledger_audit::format::rfc3339;
use runledger_audit::replay::{PointInTime, ReplayError, state_at};
use runledger_core::TenantId;
use runledger_store::tail::tail;
use runledger_store::{EventReader, LogCursor, RecordedEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Authorized, needs};
use crate::error::ApiError;
use crate::extract::{Query, RunPath, TenantPath};
use crate::run_json::run_json;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run_events))
        .routes(routes!(run_state))
        .routes(routes!(tenant_events))
}

/// How often a live tail looks at the log when no `NOTIFY` woke it (notifications can be lost).
const LIVE_POLL: Duration = Duration::from_secs(1);

/// Page size of the tenant log when `limit` is not given, and the largest one allowed.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// A run's events, in stream order.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunEvents {
    /// Every event of the run, version 1 first.
    pub events: Vec<AuditEvent>,
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/runs/{run_id}/events", tag = "audit",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path)),
    responses((status = 200, body = RunEvents), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
async fn run_events(
    State(state): State<AppState>,
    Authorized { path, .. }: Authorized<RunPath, needs::Auditor>,
) -> Result<Json<RunEvents>, ApiError> {
    let stored = state
        .reader
        .read_stream(path.tenant_id, path.run_id)
        .await?;
    if stored.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(RunEvents {
        events: stored.iter().map(AuditEvent::from).collect(),
    }))
}

/// `GET …/runs/{run_id}/state` parameters: at most one of them; neither means the latest state.
///
/// Both are read as text and parsed here, so that a malformed value is a 400 naming its field.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StateParams {
    /// Fold the run's events 1 to N (1 ≤ N ≤ the run's version).
    #[param(value_type = Option<u64>)]
    pub at_version: Option<String>,
    /// Fold the run's events recorded at or before this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub at: Option<String>,
}

/// The point in a run's history a state was folded to.
#[derive(Debug, Serialize, ToSchema)]
pub struct AsOf {
    /// The version of the last event folded.
    pub version: u64,
    /// When that event was recorded (RFC 3339).
    pub recorded_at: String,
}

/// A run as it was at some point of its history.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunStateAt {
    /// The run, in the shape `GET /v1/tenants/{tenant_id}/runs/{run_id}` answers.
    #[schema(value_type = Object)]
    pub run: Value,
    /// The last event folded into it.
    pub as_of: AsOf,
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/runs/{run_id}/state", tag = "audit",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), StateParams),
    responses((status = 200, body = RunStateAt), (status = 400, description = "Both at_version and at, a malformed value, or at_version outside 1..=version"),
        (status = 401), (status = 403), (status = 404, description = "No such run, or none yet at `at`")),
    security(("bearer" = [])))]
async fn run_state(
    State(state): State<AppState>,
    Authorized { path, .. }: Authorized<RunPath, needs::Auditor>,
    Query(params): Query<StateParams>,
) -> Result<Json<RunStateAt>, ApiError> {
    let at_version = params
        .at_version
        .as_deref()
        .map(|text| {
            text.parse::<u64>()
                .map_err(|_| ApiError::bad_field("at_version", "must be a positive integer"))
        })
        .transpose()?;
    let at = params
        .at
        .as_deref()
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::bad_field("at", "must be an RFC 3339 time, e.g. 2026-11-26T12:00:00Z")
                })
        })
        .transpose()?;
    if at_version.is_some() && at.is_some() {
        return Err(ApiError::bad_field(
            "at_version",
            "give at_version or at, not both",
        ));
    }
    let point = match (at_version, at) {
        (Some(version), _) => PointInTime::Version(version),
        (None, Some(at)) => PointInTime::Time(at),
        (None, None) => PointInTime::Latest,
    };
    let stored = state
        .reader
        .read_stream(path.tenant_id, path.run_id)
        .await?;
    let folded = state_at(&stored, point).map_err(|error| match error {
        ReplayError::NoSuchRun | ReplayError::NothingYet => ApiError::NotFound,
        ReplayError::VersionOutOfRange { .. } => {
            ApiError::bad_field("at_version", error.to_string())
        }
        // Only a missing or edited row (which the chain verifier reports) gets here.
        ReplayError::IncompleteHistory { .. }
        | ReplayError::DoesNotFold
        | ReplayError::Store(_) => ApiError::Internal(
            anyhow::Error::new(error).context(format!("replaying run {}", path.run_id)),
        ),
    })?;
    Ok(Json(RunStateAt {
        // A past state: the heartbeat table holds only the latest heartbeat, so none is shown.
        run: run_json(&state.config, &folded.run, None),
        as_of: AsOf {
            version: folded.version,
            recorded_at: rfc3339(folded.recorded_at),
        },
    }))
}

/// `GET /v1/tenants/{tenant_id}/events` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Start after this cursor (an event's `cursor`, or a page's `next_cursor`); default: the
    /// start of the log. For the live stream, a `Last-Event-ID` header wins over it.
    pub after: Option<String>,
    /// Pages only: 1–1000 events, default 100.
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
}

/// A page of the tenant's log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// The tenant's events after `after`, in safe log order.
    pub events: Vec<AuditEvent>,
    /// Pass as `after` for the next page: the last event's cursor, or `after` itself when the
    /// page is empty (then ask again later: the log only grows).
    pub next_cursor: String,
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/events", tag = "audit",
    params(("tenant_id" = i64, Path), LogParams,
        ("Accept" = Option<String>, Header, description = "`text/event-stream` keeps the response open and streams events live (SSE: `id` = cursor, `event` = event_type, `data` = the event)"),
        ("Last-Event-ID" = Option<String>, Header, description = "Live stream only: resume after this cursor; wins over `after`, because a reconnecting EventSource sends it")),
    responses((status = 200, description = "A page of the log; or, with `Accept: text/event-stream`, the live stream",
            content((EventPage = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "A malformed cursor or limit"), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
async fn tenant_events(
    State(state): State<AppState>,
    Authorized {
        path: TenantPath { tenant_id },
        ..
    }: Authorized<TenantPath, needs::Auditor>,
    Query(params): Query<LogParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = params
        .after
        .as_deref()
        .map(|text| parse_cursor("after", text))
        .transpose()?
        .unwrap_or(LogCursor::START);
    if accepts_event_stream(&headers) {
        if params.limit.is_some() {
            return Err(ApiError::bad_field(
                "limit",
                "applies to pages, not to the live stream",
            ));
        }
        // A reconnecting EventSource repeats the URL it first opened (with its `after`) and adds
        // the id of the last event it received: that header is where it really is.
        let last_event_id = headers
            .get("last-event-id")
            .map(|value| {
                value
                    .to_str()
                    .map_err(|_| ApiError::bad_field("Last-Event-ID", "is not a log cursor"))
                    .and_then(|text| parse_cursor("Last-Event-ID", text))
            })
            .transpose()?;
        let from = last_event_id.unwrap_or(after);
        return Ok(live_events(state.reader.clone(), from, tenant_id).into_response());
    }
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                ApiError::bad_field("limit", format!("must be between 1 and {MAX_LIMIT}"))
            })?,
    };
    let stored = state.reader.read_log(after, limit, Some(tenant_id)).await?;
    let next_cursor = stored.last().map_or(after, LogCursor::after).to_string();
    Ok(Json(EventPage {
        events: stored.iter().map(AuditEvent::from).collect(),
        next_cursor,
    })
    .into_response())
}

fn parse_cursor(field: &'static str, text: &str) -> Result<LogCursor, ApiError> {
    text.parse()
        .map_err(|error: runledger_store::read::InvalidCursor| {
            ApiError::bad_field(field, error.to_string())
        })
}

/// Whether the client asked for `text/event-stream` (in any of its `Accept` values).
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            range
                .split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// The tenant's events after `from`, forever, as server-sent events.
///
/// Each event's SSE `id` is its cursor, so a client that connections with `Last-Event-ID`
/// resumes exactly after the last event it received: the safe log order guarantees that
/// nothing committed later can appear behind that cursor, so it misses and repeats nothing.
/// A failed read ends the response (logged); the client connections and resumes the same way.
fn live_events(
    reader: EventReader,
    from: LogCursor,
    tenant: TenantId,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = tail(reader, from, Some(tenant), LIVE_POLL).scan((), |(), next| {
        future::ready(match next {
            Ok(event) => Some(Ok(sse_event(&event))),
            Err(error) => {
                tracing::error!(error.cause_chain = ?error, error.message = %error, "live tail failed");
                None
            }
        })
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

fn sse_event(event: &RecordedEvent) -> Event {
    let audit = AuditEvent::from(event);
    let data = serde_json::to_string(&audit)
        .unwrap_or_else(|e| unreachable!("an audit event always serializes: {e}"));
    let sse = Event::default().id(&audit.cursor).data(data);
    // axum panics on a line break in an event name; stored names are literals without one, but
    // a tampered row must not take the auditor's stream down: such an event keeps the default
    // name (`message`), and its `event_type` is still in the data.
    if audit.event_type.contains(['\r', '\n']) {
        sse
    } else {
        sse.event(&audit.event_type)
    }
}
