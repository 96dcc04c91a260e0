//! The store's lease on real concurrent connections: it lapses when its holder stops renewing
//! it and the next contender takes it with a higher epoch; a projector that lost it while paused
//! in a step commits nothing (its fence fails in the batch's transaction); and contenders bidding
//! at once never both lead. The sweeper's lease lapses the same way.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use runledger_projections::{
    Injected, OPERATION_RUNS, OperationRuns, Projector, ProjectorOptions, StepOutcome,
};
use runledger_store::{CommandHandler, EventReader, EventWriter, Lease, LeaseBid};
use runledger_sweeper::{SweepOutcome, Sweeper, SweeperConfig};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::helpers::{LOG_WAIT, TestStore, WallClock};
use crate::projections::support::{
    assert_same_runs, event_count, events_applied, folded_runs, random_histories, read_model,
};

/// A pool of its own on the test's database: another process's connections.
async fn other_pool(store: &TestStore, connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(connections)
        .connect_with((*store.pool.connect_options()).clone())
        .await
        .expect("another pool")
}

#[tokio::test]
async fn a_lease_lapses_when_its_holder_stops_renewing_it() {
    let store = TestStore::new().await;
    let duration = Duration::from_millis(600);
    let mut first = Lease::new(store.pool.clone(), "test", duration);
    let mut second = Lease::new(other_pool(&store, 2).await, "test", duration);

    assert_eq!(first.bid().await.unwrap(), LeaseBid::Taken);
    let taken = first.fence().expect("held").epoch();
    assert_eq!(second.bid().await.unwrap(), LeaseBid::Refused);
    // Renewed while it lasts, it stays with its holder at the same epoch.
    for _ in 0..3 {
        tokio::time::sleep(duration / 2).await;
        assert_eq!(first.bid().await.unwrap(), LeaseBid::Kept);
        assert_eq!(second.bid().await.unwrap(), LeaseBid::Refused);
    }
    assert_eq!(first.fence().expect("held").epoch(), taken);

    // Not renewed, it lapses: its holder knows by its own clock, the other takes it.
    tokio::time::sleep(duration + Duration::from_millis(100)).await;
    assert!(
        !first.is_held(),
        "a holder that did not renew knows it lost"
    );
    assert_eq!(second.bid().await.unwrap(), LeaseBid::Taken);
    assert_eq!(second.fence().expect("held").epoch(), taken + 1);
    assert_eq!(first.bid().await.unwrap(), LeaseBid::Refused);

    // Given up, it is taken at once.
    second.release().await;
    assert_eq!(first.bid().await.unwrap(), LeaseBid::Taken);
    assert_eq!(first.fence().expect("held").epoch(), taken + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_commits_no_batch() {
    let store = TestStore::new().await;
    random_histories(&store, 11, 20, 3).await;
    let lease = Duration::from_secs(2);
    let options = |fail_point| ProjectorOptions {
        batch_size: 16,
        poll: Duration::from_millis(50),
        lease,
        retired_grace: Duration::ZERO,
        fail_point,
    };
    // The stale leader's step stops right after its batch transaction began (as a process
    // paused there would), until the test lets it go on.
    let (armed, paused, released) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    // A failing assertion must end the test, not leave the paused step blocking a worker (the
    // runtime would wait for it forever): leaving this scope lets the step go on.
    let _release_on_exit = ReleaseOnDrop(released.clone());
    let pause = {
        let (armed, paused, released) = (armed.clone(), paused.clone(), released.clone());
        Arc::new(move |at: &'static str| {
            if at == "begin" && armed.swap(false, Ordering::SeqCst) {
                paused.store(true, Ordering::SeqCst);
                // Blocking a runtime worker in place would strand the tasks queued on it (the
                // successor's connections, timers): hand the worker's queue to another thread.
                tokio::task::block_in_place(|| {
                    while !released.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                });
            }
            Ok::<(), Injected>(())
        }) as runledger_projections::FailPoint
    };
    let mut stale = Projector::new(
        store.pool.clone(),
        OperationRuns::new(),
        options(Some(pause)),
    );
    // Its lease is renewed at the earliest from here on: no successor can lead before this
    // instant plus the lease.
    let first_step_started = Instant::now();
    tokio::time::timeout(LOG_WAIT, async {
        while !matches!(stale.step().await.unwrap(), StepOutcome::Applied { .. }) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the first projector leads and applies a batch");
    assert!(stale.is_leader());

    armed.store(true, Ordering::SeqCst);
    let stale_step = tokio::spawn(async move {
        let outcome = stale.step().await;
        (stale, outcome)
    });
    while !paused.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Another process's projector takes over once the lease lapses, and applies everything.
    let mut successor = Projector::new(
        other_pool(&store, 4).await,
        OperationRuns::new(),
        options(None),
    );
    tokio::time::timeout(LOG_WAIT, async {
        while successor.catch_up().await.unwrap() == StepOutcome::NotLeader {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the successor took over");
    assert!(
        first_step_started.elapsed() >= lease,
        "not before the lease lapsed"
    );
    assert!(successor.is_leader());
    assert_eq!(
        events_applied(&store.pool, OPERATION_RUNS).await,
        event_count(&store.pool).await
    );

    // The stale leader wakes in the middle of its step: its fence fails, it commits nothing.
    let applied_before = {
        released.store(true, Ordering::SeqCst);
        let (stale, outcome) = stale_step.await.unwrap();
        assert_eq!(outcome.unwrap(), StepOutcome::NotLeader);
        assert!(!stale.is_leader());
        stale.stats().events_applied
    };
    random_histories(&store, 12, 5, 2).await;
    tokio::time::timeout(LOG_WAIT, async {
        while events_applied(&store.pool, OPERATION_RUNS).await < event_count(&store.pool).await {
            successor.catch_up().await.unwrap();
        }
    })
    .await
    .expect("the successor applies what comes next");
    assert_eq!(
        applied_before + successor.stats().events_applied,
        event_count(&store.pool).await as u64,
        "each event applied once, by one of them"
    );
    assert_same_runs(&read_model(&store.pool).await, &folded_runs(&store).await);
}

#[tokio::test]
async fn contenders_bidding_at_once_never_both_lead() {
    let store = TestStore::new().await;
    let mut contenders = Vec::new();
    for _ in 0..8 {
        // A connection each, as separate processes have.
        let pool = other_pool(&store, 1).await;
        contenders.push(Lease::new(pool, "contended", Duration::from_secs(30)));
    }
    let mut epochs = HashSet::new();
    for round in 0..20 {
        let bids = futures_util::future::join_all(contenders.iter_mut().map(Lease::bid)).await;
        let winners: Vec<usize> = bids
            .iter()
            .enumerate()
            .filter(|(_, bid)| *bid.as_ref().expect("a bid") != LeaseBid::Refused)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one leads: {bids:?}"
        );
        let winner = &contenders[winners[0]];
        let epoch = winner.fence().expect("the winner holds it").epoch();
        assert!(epochs.insert(epoch), "a new epoch for every holder");
        assert!(
            contenders.iter().filter(|c| c.is_held()).count() == 1,
            "round {round}: one holder"
        );
        // The winner gives it up, so that the next round is contended again.
        contenders[winners[0]].release().await;
    }
}

#[tokio::test]
async fn a_sweeper_that_stops_renewing_its_lease_is_replaced() {
    let store = TestStore::new().await;
    let config = SweeperConfig {
        lease: Duration::from_millis(600),
        ..SweeperConfig::default()
    };
    let clock: Arc<dyn runledger_core::Clock> = Arc::new(WallClock);
    let mut first = Sweeper::new(
        store.pool.clone(),
        store.commands.clone(),
        Arc::clone(&clock),
        config.clone(),
    );
    let other = other_pool(&store, 4).await;
    let commands = CommandHandler::new(
        EventReader::new(other.clone()),
        EventWriter::new(other.clone()),
    );
    let mut second = Sweeper::new(other, commands, clock, config);

    assert!(matches!(
        first.step().await.unwrap(),
        SweepOutcome::Swept(_)
    ));
    assert_eq!(second.step().await.unwrap(), SweepOutcome::NotLeader);
    // The leader stops sweeping (as a paused process would): it knows it lost, the other leads.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!first.is_leader());
    assert!(matches!(
        second.step().await.unwrap(),
        SweepOutcome::Swept(_)
    ));
    assert!(second.is_leader());
    assert_eq!(first.step().await.unwrap(), SweepOutcome::NotLeader);
}

/// Sets its flag when dropped.
struct ReleaseOnDrop(Arc<AtomicBool>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
