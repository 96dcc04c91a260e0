//! A rebuild under live writes: while writers append and a projector runs live, an operator
//! rebuilds the read model; readers of the public view never fail and never see fewer rows than
//! before (no half-built table), and after the switch the new version equals a clean fold.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use runledger_projections::{
    OPERATION_RUNS, OperationRuns, Projection, Projector, ProjectorOptions, VersionStatus, rebuild,
    version,
};
use serde_json::json;
use tokio::sync::watch;

use super::support::{assert_same_runs, drain, folded_runs, options, random_histories, read_model};
use crate::helpers::TestStore;
use crate::helpers::verbs::{complete, new_run_id, progress, request, start, tenant};

/// Appends whole run lifecycles until told to stop.
async fn writer(store: Arc<TestStore>, w: i64, stop: Arc<AtomicBool>) -> usize {
    let mut runs = 0;
    while !stop.load(Ordering::Relaxed) {
        let (t, run) = (tenant(1 + w % 3), new_run_id());
        store
            .queue_run(t, run, json!({"writer": w, "run": runs}))
            .await;
        for command in [start(), progress(2, 1), complete()] {
            store
                .commands
                .execute(&request(t, run, command))
                .await
                .unwrap();
        }
        runs += 1;
        // Live traffic, not a flood: a few runs a second per writer.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    runs
}

/// Reads the view until told to stop; returns how many reads it made. Panics if a read fails
/// or the row count ever goes down.
async fn reader(store: Arc<TestStore>, stop: Arc<AtomicBool>) -> usize {
    let mut reads = 0;
    let mut seen = 0;
    while !stop.load(Ordering::Relaxed) {
        let (rows, completed): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE status = 'completed') FROM public.operation_runs",
        )
        .fetch_one(&store.pool)
        .await
        .expect("a read of the view never fails");
        assert!(
            rows >= seen,
            "rows went from {seen} to {rows}: a half-built table was shown"
        );
        assert!(completed <= rows);
        seen = rows;
        let _: Vec<(uuid::Uuid,)> = sqlx::query_as(
            "SELECT id FROM public.operation_runs WHERE tenant_id = 1 \
             ORDER BY created_at DESC, id DESC LIMIT 20",
        )
        .fetch_all(&store.pool)
        .await
        .expect("a page of the view never fails");
        reads += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    reads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_under_live_writes_never_shows_a_half_built_table() {
    let store = Arc::new(TestStore::new().await);
    random_histories(&store, 30, 80, 3).await;
    // Batches larger than the other tests', so the rebuild outpaces the live writers even on a
    // loaded machine (it must catch up with them to switch).
    let mut projector = Projector::new(
        store.pool.clone(),
        OperationRuns::new(),
        ProjectorOptions {
            batch_size: 200,
            ..options()
        },
    );
    drain(&mut projector).await;

    let (stop_projector, stopped) = watch::channel(false);
    let live = tokio::spawn(async move {
        let mut stopped = stopped;
        projector
            .run(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
            .unwrap();
        projector
    });
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| tokio::spawn(writer(store.clone(), w, stop.clone())))
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(reader(store.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = rebuild(&store.pool, &OperationRuns::new().definition())
        .await
        .unwrap();
    // Generous: on a 2-core machine shared with parallel builds, catching up under three live
    // writers once took longer than 30 s; what matters is that the switch happens at all.
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let v = version(&store.pool, started.version.id)
                .await
                .unwrap()
                .unwrap();
            if v.status == VersionStatus::Active {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the rebuilt version replaced the old one under live writes");
    tokio::time::sleep(Duration::from_millis(200)).await;

    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    for r in readers {
        assert!(r.await.unwrap() > 10, "the readers read throughout");
    }
    assert!(written > 0);
    stop_projector.send(true).unwrap();
    let mut projector = live.await.unwrap();
    drain(&mut projector).await;
    let active: String = sqlx::query_scalar(
        "SELECT schema_name FROM projection_versions WHERE projection = $1 AND status = 'active'",
    )
    .bind(OPERATION_RUNS)
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert_eq!(active, started.version.schema_name);
    assert_same_runs(&read_model(&store.pool).await, &folded_runs(&store).await);
}
