//! The audit routes' JSON: stored events with their hashes (also the export's event lines), a
//! run's state as of a point of its history, pages of the tenant's log, a run's verified chain,
//! and the parameters of the state, log and export routes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::run::OperationRun;

/// One stored event, exactly as stored: with these fields an auditor can recompute `hash`
/// without trusting the server (`SHA-256(prev_hash ‖ JCS({event_id, run_id, tenant_id, version,
/// event_type, schema_version, payload, metadata, recorded_at}))`, docs/adr/0001).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// The event's place in the log (`tx_id.position`): pass it as `after` or `Last-Event-ID`
    /// to read on from just after it.
    pub cursor: String,
    /// Global position (unique; not the read order on its own, see `cursor`).
    pub position: i64,
    /// The id of the transaction that wrote the event.
    pub tx_id: u64,
    /// The tenant.
    pub tenant_id: i64,
    /// The run (the event's stream).
    pub run_id: Uuid,
    /// The run's version after this event: 1, 2, 3…
    pub version: u64,
    /// The event id.
    pub event_id: Uuid,
    /// Stored type name (`Queued`, `Started`, `Progressed`, `Completed`).
    pub event_type: String,
    /// Version of the payload's schema.
    pub schema_version: i32,
    /// The payload as stored.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Actor, correlation, causation and request ids, as stored.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// The database clock at append (RFC 3339, UTC, microseconds: the form the hash covers).
    pub recorded_at: String,
    /// The previous event's hash in this run, lowercase hex (zeros for version 1).
    pub prev_hash: String,
    /// This event's hash, lowercase hex.
    pub hash: String,
}

/// A run's events, in stream order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunEvents {
    /// Every event of the run, version 1 first.
    pub events: Vec<AuditEvent>,
}

/// `GET …/runs/{run_id}/state` parameters: at most one of them; neither means the latest state.
///
/// Both are read as text and parsed by the server, so that a malformed value is a 400 naming
/// its field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StateParams {
    /// Fold the run's events 1 to N (1 ≤ N ≤ the run's version).
    #[param(value_type = Option<u64>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_version: Option<String>,
    /// Fold the run's events recorded at or before this time (RFC 3339).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// The point in a run's history a state was folded to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AsOf {
    /// The version of the last event folded.
    pub version: u64,
    /// When that event was recorded (RFC 3339).
    pub recorded_at: String,
}

/// A run as it was at some point of its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunStateAt {
    /// The run, in the shape `GET /v1/tenants/{tenant_id}/runs/{run_id}` answers.
    pub run: OperationRun,
    /// The last event folded into it.
    pub as_of: AsOf,
}

/// `GET /v1/tenants/{tenant_id}/events` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Start after this cursor (an event's `cursor`, or a page's `next_cursor`); default: the
    /// start of the log. For the live stream, a `Last-Event-ID` header wins over it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Pages only: 1–1000 events, default 100.
    #[param(value_type = Option<u32>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// A page of the tenant's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    /// The tenant's events after `after`, in safe log order.
    pub events: Vec<AuditEvent>,
    /// Pass as `after` for the next page: the last event's cursor, or `after` itself when the
    /// page is empty (then ask again later: the log only grows).
    pub next_cursor: String,
}

/// A run's chain, verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunVerificationBody {
    /// Whether every event of the run verifies.
    pub valid: bool,
    /// How many events were checked.
    pub events_checked: u64,
    /// The first event that does not verify, in log order.
    pub first_invalid: Option<InvalidEvent>,
}

/// An event whose stored hash chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvalidEvent {
    /// Its version.
    pub version: u64,
    /// Its position.
    pub position: i64,
    /// Its place in the log (`tx_id.position`).
    pub cursor: String,
    /// Its id.
    pub event_id: Uuid,
    /// `hash_mismatch` (a stored field changed), `broken_link` (an event before it was
    /// replaced), `version_gap` (an event is missing) or `order_changed`.
    pub reason: String,
    /// The reason, for people.
    pub detail: String,
}

/// `GET /v1/tenants/{tenant_id}/export` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Only events after this log cursor (`tx_id.position`), or recorded at or after this time
    /// (RFC 3339). Runs then start mid-chain; anchors cannot be checked against the export.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only events up to this log cursor, or recorded at or before this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}
