//! The JSON of a run in API answers: the seed's OperationRun with its lifecycle fields (one
//! representation, from the domain), the last heartbeat kept outside the log, and the
//! `view_url` of its page.

use chrono::{DateTime, SecondsFormat, Utc};
use runledger_core::RunSnapshot;
use runledger_wire::OperationRun;
use serde_json::json;

use crate::ApiConfig;
use crate::error::ApiError;

/// The run as the API shows it, with `stored_heartbeat`, its last heartbeat as stored outside
/// the log (none: it never sent one, or the answer is of a past state).
///
/// `last_heartbeat_at` is the later of that and the last progress report, and
/// `heartbeat_deadline_at` when the heartbeat timeout passes from it (or from the start): the
/// instants the sweeper's time-out is decided by. The domain's OperationRun JSON is the one
/// producer of the fields' values; the wire type is its typed form, which the answers
/// serialize, so the OpenAPI schema describes exactly what is sent.
///
/// # Errors
/// A server fault when the domain's JSON does not read as the wire type (a field added to one
/// and not the other; `tests/it/client` checks every route's runs round-trip).
pub fn run_json(
    config: &ApiConfig,
    run: &RunSnapshot,
    stored_heartbeat: Option<DateTime<Utc>>,
) -> Result<OperationRun, ApiError> {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut value = run.to_operation_run_json();
    value["last_heartbeat_at"] = json!(run.last_heartbeat_at(stored_heartbeat).map(time));
    value["heartbeat_deadline_at"] = json!(run.heartbeat_deadline_at(stored_heartbeat).map(time));
    value["view_url"] = json!(config.view_url(run.tenant_id, run.id));
    serde_json::from_value(value).map_err(|error| {
        ApiError::Internal(anyhow::Error::new(error).context("the OperationRun JSON of a run"))
    })
}
