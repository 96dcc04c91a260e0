//! The JSON of a run in API answers: the seed's OperationRun (one representation, from the
//! domain) plus the `view_url` of its page, as the wire crate's [`OperationRun`].

use runledger_core::RunSnapshot;
use runledger_wire::OperationRun;
use serde_json::json;

use crate::ApiConfig;
use crate::error::ApiError;

/// The run as the API shows it.
///
/// The domain's OperationRun JSON is the one producer of the fields' values (the CLI and the
/// audit replay print it too); the wire type is its typed form, which the answers serialize,
/// so the OpenAPI schema describes exactly what is sent.
///
/// # Errors
/// A server fault when the domain's JSON does not read as the wire type (a field added to one
/// and not the other; `tests/it/client` checks every route's runs round-trip).
pub fn run_json(config: &ApiConfig, run: &RunSnapshot) -> Result<OperationRun, ApiError> {
    let mut value = run.to_operation_run_json();
    // The read model does not hold the lifecycle fields yet (issue 13): until it does, answers
    // leave them out rather than show them empty, so that a command's answer and a query agree.
    if let Some(fields) = value.as_object_mut() {
        for key in runledger_core::operation_run::LIFECYCLE_FIELDS {
            fields.remove(key);
        }
    }
    value["view_url"] = json!(config.view_url(run.tenant_id, run.id));
    serde_json::from_value(value).map_err(|error| {
        ApiError::Internal(anyhow::Error::new(error).context("the OperationRun JSON of a run"))
    })
}
