//! The JSON of a run in API answers: the seed's OperationRun (one representation, from the
//! domain) plus the `view_url` of its page.

use runledger_core::RunSnapshot;
use serde_json::{Value, json};

use crate::ApiConfig;

/// The run as the API shows it.
pub fn run_json(config: &ApiConfig, run: &RunSnapshot) -> Value {
    let mut value = run.to_operation_run_json();
    // The read model does not hold the lifecycle fields yet (issue 13): until it does, answers
    // leave them out rather than show them empty, so that a command's answer and a query agree.
    if let Some(fields) = value.as_object_mut() {
        for key in runledger_core::operation_run::LIFECYCLE_FIELDS {
            fields.remove(key);
        }
    }
    value["view_url"] = json!(config.view_url(run.tenant_id, run.id));
    value
}
