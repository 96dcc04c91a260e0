//! Read-your-writes: a command's position is "passed" once the active version has applied it,
//! and a bounded wait returns as soon as a live projector gets there.

use std::time::Duration;

use runledger_projections::{LiveLog, OPERATION_RUNS, has_passed, wait_until_passed};
use runledger_store::CommandOutcome;
use serde_json::json;
use tokio::sync::watch;

use super::support::{drain, run_projector};
use crate::helpers::TestStore;
use crate::helpers::verbs::{new_run_id, request, start, tenant};

#[tokio::test]
async fn a_query_can_wait_until_the_read_model_has_passed_a_write() {
    let store = TestStore::new().await;
    let run = new_run_id();
    let CommandOutcome::Applied { position, .. } = store.queue_run(tenant(1), run, json!({})).await
    else {
        panic!("queued");
    };
    assert!(
        !has_passed(&store.pool, OPERATION_RUNS, position)
            .await
            .unwrap(),
        "not installed yet"
    );
    let mut projector = run_projector(&store.pool);
    drain(&mut projector).await;
    assert!(
        has_passed(&store.pool, OPERATION_RUNS, position)
            .await
            .unwrap()
    );
    assert!(
        !has_passed(&store.pool, OPERATION_RUNS, position + 1000)
            .await
            .unwrap(),
        "no such event"
    );

    let CommandOutcome::Applied {
        position: started, ..
    } = store
        .commands
        .execute(&request(tenant(1), run, start()))
        .await
        .unwrap()
    else {
        panic!("started");
    };
    // The projector publishes to positions of its own; these hear it by its notices.
    let published = LiveLog::start(&store.pool, Duration::from_secs(1)).published;
    assert!(
        !has_passed(&store.pool, OPERATION_RUNS, started)
            .await
            .unwrap()
    );
    assert!(
        !wait_until_passed(
            &store.pool,
            &published,
            OPERATION_RUNS,
            started,
            Duration::from_millis(30)
        )
        .await
        .unwrap(),
        "the wait is bounded"
    );

    let (stop, mut stopped) = watch::channel(false);
    let live = tokio::spawn(async move {
        projector
            .run(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
            .unwrap();
    });
    assert!(
        wait_until_passed(
            &store.pool,
            &published,
            OPERATION_RUNS,
            started,
            Duration::from_secs(20)
        )
        .await
        .unwrap()
    );
    let status: String =
        sqlx::query_scalar("SELECT status FROM public.operation_runs WHERE id = $1")
            .bind(run.as_uuid())
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert_eq!(status, "running", "what has_passed promised is visible");
    stop.send(true).unwrap();
    live.await.unwrap();
}
