//! Safe log order under stress: a live tail sees every committed event exactly once, in order,
//! while many writers race, pause inside open transactions, commit late and roll back.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use runledger_core::{Run, RunId, TenantId, decide};
use runledger_store::chain::{GENESIS, verify_chain};
use runledger_store::tail::tail;
use runledger_store::{CommandOutcome, LogCursor, RecordedEvent};
use serde_json::json;
use tokio::sync::mpsc;

use crate::helpers::verbs::{new_run_id, progress_delta, queue, request, start, tenant};
use crate::helpers::{LOG_WAIT, TestStore, insert_raw_event};

const WRITERS: u64 = 8;
const OPS: u64 = 40;
const SHARED_RUNS: usize = 4;

/// A small deterministic generator (xorshift64), seeded per writer.
struct Jitter(u64);

impl Jitter {
    fn new(seed: u64) -> Self {
        Self(0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(seed + 1))
    }

    fn below(&mut self, bound: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % bound
    }

    async fn pause(&mut self, max_micros: u64) {
        tokio::time::sleep(Duration::from_micros(self.below(max_micros))).await;
    }
}

/// What one writer did.
#[derive(Debug, Default)]
struct Tally {
    rolled_back: u64,
}

/// A raw insert of a new run's `Queued` in an explicit transaction that pauses before it
/// commits late or rolls back (leaving a gap in the positions).
async fn raw_insert(store: &TestStore, t: TenantId, jitter: &mut Jitter, commit: bool) {
    let run = new_run_id();
    let queued = decide(&Run::Unqueued, queue(t, run, json!({"raw": run.as_uuid()})))
        .unwrap()
        .remove(0);
    let mut tx = store.pool.begin().await.unwrap();
    insert_raw_event(&mut tx, t, run, 1, GENESIS, &queued).await;
    jitter.pause(3_000).await;
    if commit {
        tx.commit().await.unwrap();
    } else {
        tx.rollback().await.unwrap();
    }
}

async fn writer(store: Arc<TestStore>, w: u64, runs: Arc<Vec<RunId>>) -> Tally {
    let store = &*store;
    let t = tenant(1);
    let mut jitter = Jitter::new(w);
    let mut tally = Tally::default();
    for op in 0..OPS {
        jitter.pause(2_000).await;
        match jitter.below(100) {
            0..10 => {
                raw_insert(store, t, &mut jitter, false).await;
                tally.rolled_back += 1;
            }
            10..20 => raw_insert(store, t, &mut jitter, true).await,
            20..30 => {
                let run = new_run_id();
                let identity = json!({"writer": w, "op": op});
                let outcome = store.queue_run(t, run, identity).await;
                assert!(matches!(outcome, CommandOutcome::Applied { .. }));
            }
            _ => {
                let run = runs[usize::try_from(jitter.below(SHARED_RUNS as u64)).unwrap()];
                let command = progress_delta(1 + jitter.below(3), jitter.below(2), jitter.below(2));
                store
                    .commands
                    .execute(&request(t, run, command))
                    .await
                    .unwrap_or_else(|e| panic!("writer {w} op {op}: {e:?}"));
            }
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_tail_reads_every_committed_event_exactly_once_in_safe_order() {
    let store = Arc::new(TestStore::new().await);
    let t = tenant(1);

    // The tail starts before any event, and follows the log while the writers race.
    let (sender, mut received) = mpsc::unbounded_channel::<RecordedEvent>();
    let follower = tokio::spawn({
        let reader = store.reader.clone();
        async move {
            let mut stream = std::pin::pin!(tail(
                reader,
                LogCursor::START,
                None,
                Duration::from_millis(50)
            ));
            while let Some(event) = stream.next().await {
                if sender.send(event.expect("the tail reads")).is_err() {
                    break;
                }
            }
        }
    });

    let mut runs = Vec::new();
    for i in 0..SHARED_RUNS {
        let run = new_run_id();
        store.queue_run(t, run, json!({"shared": i})).await;
        store
            .commands
            .execute(&request(t, run, start()))
            .await
            .unwrap();
        runs.push(run);
    }
    let runs = Arc::new(runs);
    let writers = (0..WRITERS).map(|w| tokio::spawn(writer(store.clone(), w, runs.clone())));
    let tallies: Vec<Tally> = join_all(writers)
        .await
        .into_iter()
        .map(|j| j.unwrap())
        .collect();
    let rolled_back: u64 = tallies.iter().map(|t| t.rolled_back).sum();

    // Every committed event, in the order the log promises.
    let committed: Vec<(uuid::Uuid, i64)> =
        sqlx::query_as("SELECT event_id, position FROM events ORDER BY tx_id, position")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    let mut seen = Vec::with_capacity(committed.len());
    tokio::time::timeout(LOG_WAIT, async {
        while seen.len() < committed.len() {
            seen.push(received.recv().await.expect("the tail keeps running"));
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the tail saw {} of {} committed events",
            seen.len(),
            committed.len()
        )
    });
    follower.abort();

    let seen_ids: Vec<(uuid::Uuid, i64)> = seen
        .iter()
        .map(|e| (e.event_id.as_uuid(), e.position))
        .collect();
    assert_eq!(
        seen_ids.iter().collect::<HashSet<_>>().len(),
        seen_ids.len(),
        "no event twice"
    );
    assert_eq!(seen_ids, committed, "every committed event, in safe order");
    let last = LogCursor::after(seen.last().unwrap());
    assert_eq!(
        store.reader.read_log(last, 100, None).await.unwrap(),
        vec![]
    );
    // The scenario really had gaps: rolled-back inserts used up positions.
    let positions_used: i64 = sqlx::query_scalar(
        "SELECT last_value FROM pg_sequences \
         WHERE schemaname || '.' || sequencename = pg_get_serial_sequence('events', 'position')",
    )
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert!(rolled_back > 0);
    assert!(positions_used >= i64::try_from(committed.len() as u64 + rolled_back).unwrap());

    // Every run's versions are 1..=n and its chain verifies.
    let run_ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT DISTINCT run_id FROM events")
        .fetch_all(&store.pool)
        .await
        .unwrap();
    for run in run_ids {
        let stream = store.reader.read_stream(t, run.into()).await.unwrap();
        let n = stream.len() as u64;
        assert_eq!(
            stream.iter().map(|e| e.version).collect::<Vec<_>>(),
            (1..=n).collect::<Vec<_>>()
        );
        assert_eq!(verify_chain(&stream), Ok(n));
    }
    let shared = store.reader.read_stream(t, runs[0]).await.unwrap();
    assert!(shared.len() > 2, "the shared runs were raced on");
}
