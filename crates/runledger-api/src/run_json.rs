//! The JSON of a run in API answers: the seed's OperationRun with its lifecycle fields (one
//! representation, from the domain), the last heartbeat kept outside the log, and the
//! `view_url` of its page.

use chrono::{DateTime, SecondsFormat, Utc};
use runledger_core::RunSnapshot;
use serde_json::{Value, json};

use crate::ApiConfig;

/// The run as the API shows it, with `stored_heartbeat`, its last heartbeat as stored outside
/// the log (none: it never sent one, or the answer is of a past state).
///
/// `last_heartbeat_at` is the later of that and the last progress report, and
/// `heartbeat_deadline_at` when the heartbeat timeout passes from it (or from the start): the
/// instants the sweeper's time-out is decided by.
pub fn run_json(
    config: &ApiConfig,
    run: &RunSnapshot,
    stored_heartbeat: Option<DateTime<Utc>>,
) -> Value {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut value = run.to_operation_run_json();
    value["last_heartbeat_at"] = json!(run.last_heartbeat_at(stored_heartbeat).map(time));
    value["heartbeat_deadline_at"] = json!(run.heartbeat_deadline_at(stored_heartbeat).map(time));
    value["view_url"] = json!(config.view_url(run.tenant_id, run.id));
    value
}
