//! Read-your-writes: a query with `min_position` waits (bounded) until the OperationRun read
//! model has applied that log position, else answers 503 `projection-behind`. The wait costs no
//! query while it waits: it wakes on the read model's published position (docs/adr/0017).
//!
//! With read replicas (docs/adr/0027), [`read_pool`] then picks where the query reads: a
//! replica that has replayed the position, waited for at most the replicas' bound from the
//! query's start, else the primary (whose read model has passed it).

use runledger_projections::{OPERATION_RUNS, status, wait_until_passed};
use sqlx::PgPool;
use tokio::time::Instant;

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

/// Where a query of the OperationRun read model reads, once it has waited for `position` as
/// [`wait_for`] does: a usable replica (one that has replayed `position`, when given), else the
/// primary.
///
/// # Errors
/// What [`wait_for`] returns.
pub async fn read_pool(state: &AppState, position: Option<i64>) -> Result<PgPool, ApiError> {
    let started = Instant::now();
    wait_for(state, position).await?;
    let replica = match position {
        None => state.replicas.choose().await,
        Some(position) => {
            let deadline = started + state.replicas.config().wait;
            state.replicas.caught_up(position, deadline).await
        }
    };
    Ok(replica.unwrap_or_else(|| state.pool.clone()))
}
