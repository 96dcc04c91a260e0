//! Read-your-writes: a query with `min_position` waits (bounded) until the OperationRun read
//! model has applied that log position, else answers 503 `projection-behind`. The wait costs no
//! query while it waits: it wakes on the read model's published position (docs/adr/0017).

use runledger_projections::{OPERATION_RUNS, status, wait_until_passed};

use crate::AppState;
use crate::error::ApiError;

/// Waits until the OperationRun read model has passed `position`, if one is given.
///
/// # Errors
/// [`ApiError::ProjectionBehind`] with the read model's checkpoint when it has not within the
/// configured bound.
pub async fn wait_for(state: &AppState, position: Option<i64>) -> Result<(), ApiError> {
    let Some(position) = position else {
        return Ok(());
    };
    if position < 1 {
        return Err(ApiError::bad_field(
            "min_position",
            "must be a log position (1 or more)",
        ));
    }
    let passed = wait_until_passed(
        &state.pool,
        &state.live.published,
        OPERATION_RUNS,
        position,
        state.config.max_read_wait,
    )
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    if passed {
        return Ok(());
    }
    let checkpoint = status(&state.pool, OPERATION_RUNS)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map(|s| s.checkpoint().to_string())
        .unwrap_or_default();
    Err(ApiError::ProjectionBehind {
        wanted: position,
        checkpoint,
    })
}
