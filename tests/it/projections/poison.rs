//! A poison event (here, a payload of a schema version this code does not know) is recorded
//! with its position and error and halts the projection, visibly; the events before it in its
//! batch are applied; an operator's skip moves the projection past it, and nothing is dropped
//! silently.

use runledger_projections::{OPERATION_RUNS, ProjectionError, StepOutcome, skip, status};
use serde_json::json;

use super::support::{drain, events_applied, run_projector};
use crate::helpers::TestStore;
use crate::helpers::verbs::{new_run_id, tenant};

#[tokio::test]
async fn a_poison_event_halts_the_projection_until_it_is_skipped() {
    let store = TestStore::new().await;
    let before = new_run_id();
    store.queue_run(tenant(1), before, json!({"n": 1})).await;
    // A row no version of this code can decode: schema version 99 of Queued.
    let poison: i64 = sqlx::query_scalar(
        "INSERT INTO events (event_id, tenant_id, run_id, version, event_type, schema_version, \
                             payload, metadata, recorded_at, prev_hash, hash) \
         VALUES (gen_random_uuid(), 1, gen_random_uuid(), 1, 'Queued', 99, '{}', '{}', now(), \
                 decode(repeat('00', 32), 'hex'), decode(repeat('11', 32), 'hex')) \
         RETURNING position",
    )
    .fetch_one(&store.pool)
    .await
    .unwrap();
    let after = new_run_id();
    store.queue_run(tenant(1), after, json!({"n": 2})).await;

    let mut projector = run_projector(&store.pool);
    assert_eq!(
        drain(&mut projector).await,
        StepOutcome::Halted { position: poison }
    );
    assert_eq!(
        projector.step().await.unwrap(),
        StepOutcome::Halted { position: poison }
    );
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM public.operation_runs")
        .fetch_all(&store.pool)
        .await
        .unwrap();
    assert_eq!(
        ids,
        vec![before.as_uuid()],
        "the event before it applied, none after"
    );

    let halted = status(&store.pool, OPERATION_RUNS).await.unwrap().unwrap();
    assert_eq!(halted.state.as_str(), "halted");
    assert_eq!(halted.active.version.halted_position, Some(poison));
    let error = halted.last_error.expect("the error is shown");
    assert!(error.contains("schema version 99"), "{error}");
    assert_eq!(halted.active.lag_events, 2);
    let recorded: (String, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "SELECT error, skipped_at FROM projection_poison WHERE projection = $1 AND position = $2",
    )
    .bind(OPERATION_RUNS)
    .bind(poison)
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert_eq!(recorded.0, error);
    assert!(recorded.1.is_none());

    assert!(matches!(
        skip(&store.pool, OPERATION_RUNS, poison + 100).await,
        Err(ProjectionError::NoPoisonEvent { .. })
    ));
    assert_eq!(skip(&store.pool, OPERATION_RUNS, poison).await.unwrap(), 1);
    assert_eq!(
        projector.step().await.unwrap(),
        StepOutcome::Skipped { position: poison }
    );
    assert_eq!(drain(&mut projector).await, StepOutcome::CaughtUp);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM public.operation_runs")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(count, 2);
    let skipped = status(&store.pool, OPERATION_RUNS).await.unwrap().unwrap();
    assert_eq!(skipped.active.version.events_skipped, 1);
    assert_eq!(skipped.active.lag_events, 0);
    assert_eq!(events_applied(&store.pool, OPERATION_RUNS).await, 2);
    let skipped_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT skipped_at FROM projection_poison WHERE position = $1")
            .bind(poison)
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert!(skipped_at.is_some(), "the skip stays on record");
}

#[tokio::test]
async fn an_event_that_breaks_a_read_model_constraint_is_poison_too() {
    let store = TestStore::new().await;
    let (first, second) = (new_run_id(), new_run_id());
    store
        .queue_run(tenant(1), first, json!({"same": true}))
        .await;
    // The store refuses a second active run with one identity; a damaged dedupe index would not.
    sqlx::query("DELETE FROM active_runs")
        .execute(&store.pool)
        .await
        .unwrap();
    store
        .queue_run(tenant(1), second, json!({"same": true}))
        .await;
    let position: i64 = sqlx::query_scalar("SELECT position FROM events WHERE run_id = $1")
        .bind(second.as_uuid())
        .fetch_one(&store.pool)
        .await
        .unwrap();

    let mut projector = run_projector(&store.pool);
    assert_eq!(
        drain(&mut projector).await,
        StepOutcome::Halted { position }
    );
    let halted = status(&store.pool, OPERATION_RUNS).await.unwrap().unwrap();
    let error = halted.last_error.unwrap();
    assert!(
        error.contains("operation_runs_active_identity_idx"),
        "{error}"
    );
    assert_eq!(
        events_applied(&store.pool, OPERATION_RUNS).await,
        1,
        "the first run applied"
    );
}
