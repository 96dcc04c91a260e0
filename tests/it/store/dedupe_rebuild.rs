//! The inline dedupe index (`active_runs`) rebuilt from the log: a damaged index is repaired,
//! and rebuilding while writers queue and complete runs of shared identities never lets two
//! active runs share one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use runledger_store::{CommandOutcome, rebuild_dedupe_index};
use serde_json::json;

use crate::helpers::TestStore;
use crate::helpers::verbs::{complete, new_run_id, request, start, tenant};

#[tokio::test]
async fn a_damaged_dedupe_index_is_rebuilt_from_the_log() {
    let store = TestStore::new().await;
    let (active, done) = (new_run_id(), new_run_id());
    store.queue_run(tenant(1), active, json!({"a": 1})).await;
    store.queue_run(tenant(2), done, json!({"a": 1})).await;
    store
        .commands
        .execute(&request(tenant(2), done, start()))
        .await
        .unwrap();
    store
        .commands
        .execute(&request(tenant(2), done, complete()))
        .await
        .unwrap();
    let healthy = store.active_runs().await;
    assert_eq!(rebuild_dedupe_index(&store.pool).await.unwrap().added, 0);

    sqlx::query("DELETE FROM active_runs")
        .execute(&store.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO active_runs VALUES (2, repeat('a', 64), $1)")
        .bind(done.as_uuid())
        .execute(&store.pool)
        .await
        .unwrap();
    let rebuilt = rebuild_dedupe_index(&store.pool).await.unwrap();
    assert_eq!((rebuilt.active, rebuilt.added, rebuilt.removed), (1, 1, 1));
    assert_eq!(store.active_runs().await, healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilding_while_appends_go_on_never_admits_two_active_runs_per_identity() {
    let store = Arc::new(TestStore::new().await);
    let stop = Arc::new(AtomicBool::new(false));
    // Writers race to queue runs of four shared identities, and complete the ones they get.
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut created = 0;
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let run = new_run_id();
                    let identity = json!({"shared": (w + i) % 4});
                    if let CommandOutcome::Applied { .. } =
                        store.queue_run(tenant(1), run, identity).await
                    {
                        created += 1;
                        store
                            .commands
                            .execute(&request(tenant(1), run, start()))
                            .await
                            .unwrap();
                        store
                            .commands
                            .execute(&request(tenant(1), run, complete()))
                            .await
                            .unwrap();
                    }
                }
                created
            })
        })
        .collect();
    let mut rebuilds = 0;
    while rebuilds < 20 {
        let rebuilt = rebuild_dedupe_index(&store.pool).await.unwrap();
        assert_eq!(
            (rebuilt.added, rebuilt.removed),
            (0, 0),
            "the index matched the log"
        );
        rebuilds += 1;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut created = 0;
    for writer in writers {
        created += writer.await.unwrap();
    }
    assert!(created > 4, "the writers made runs ({created})");

    // In log order, each identity alternates Queued and Completed: never two active at once.
    let log: Vec<(String, String)> = sqlx::query_as(
        "SELECT e.event_type, q.payload->>'run_identity_hash' FROM events e \
         JOIN events q ON q.run_id = e.run_id AND q.event_type = 'Queued' \
         WHERE e.event_type IN ('Queued', 'Completed') ORDER BY e.tx_id, e.position",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    let mut active: HashMap<String, bool> = HashMap::new();
    for (event_type, identity) in log {
        let was_active = active
            .insert(identity.clone(), event_type == "Queued")
            .unwrap_or(false);
        assert_eq!(
            was_active,
            event_type == "Completed",
            "{event_type} of {identity}"
        );
    }
    assert_eq!(store.active_runs().await, vec![]);
}
