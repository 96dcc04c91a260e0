//! Group commit: appends that meet in one group each keep their own outcome.
//!
//! A writer with a long linger and an exact group size holds a group open until every append of
//! the test has joined it, so the tests know which appends shared a group (the writer's counters
//! show it); the outcomes must be those each append would have had alone.

use std::time::Duration;

use futures_util::future::join_all;
use runledger_core::{RunId, TenantId};
use runledger_store::chain::verify_chain;
use runledger_store::{
    AppendOutcome, CommandHandler, CommandOutcome, EventWriter, NewEvent, StoreError, WriterConfig,
    WriterStats, append::Appended,
};
use serde_json::json;

use crate::helpers::TestStore;
use crate::helpers::verbs::{
    new_event, new_run_id, progressed_event, queue, queue_events, request, started_event, tenant,
};

/// A writer that commits only once `appends` appends have joined a group.
fn holding_writer(store: &TestStore, appends: usize) -> EventWriter {
    EventWriter::with_config(
        store.pool.clone(),
        WriterConfig {
            linger: Duration::from_secs(30),
            max_group_appends: appends,
            // One lane: every append of the test meets in its one queue.
            lanes: 1,
            ..WriterConfig::default()
        },
    )
}

/// A new run queued through `writer`, at version 1.
async fn queued_run(writer: &EventWriter, t: TenantId, identity: serde_json::Value) -> RunId {
    let run = new_run_id();
    writer
        .append(t, run, 0, &queue_events(t, run, identity))
        .await
        .expect("queue a run");
    run
}

#[track_caller]
fn appended(outcome: &Result<AppendOutcome, StoreError>) -> &Appended {
    match outcome {
        Ok(AppendOutcome::Appended(appended)) => appended,
        other => panic!("expected an append: {other:?}"),
    }
}

/// The groups a writer formed between two snapshots of its counters.
fn groups_between(before: WriterStats, after: WriterStats) -> u64 {
    after.groups - before.groups
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_appenders_at_one_version_in_one_group_give_one_success_and_forty_nine_conflicts() {
    let store = TestStore::new().await;
    let (t, run) = (tenant(1), new_run_id());
    store.queue_run(t, run, json!({"k": "group-occ"})).await;
    let writer = holding_writer(&store, 50);

    let batches: Vec<[NewEvent; 1]> = (0..50).map(|i| [new_event(started_event(i))]).collect();
    let results = join_all(batches.iter().map(|batch| writer.append(t, run, 1, batch))).await;

    let successes: Vec<&Appended> = results
        .iter()
        .filter_map(|r| match r {
            Ok(AppendOutcome::Appended(a)) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(successes.len(), 1, "{results:?}");
    assert_eq!(successes[0].version, 2);
    let conflicts = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(StoreError::Conflict {
                    expected: 1,
                    actual: 2,
                    ..
                })
            )
        })
        .count();
    assert_eq!(conflicts, 49, "{results:?}");
    // All fifty met in the first group; the first was written, and the others, whose run its
    // uncommitted write moved, were answered by the next group's read.
    let stats = writer.stats();
    assert_eq!(stats.largest_group, 50);
    assert_eq!(stats.groups, 2);
    let stored = store.reader.read_stream(t, run).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].position, successes[0].positions[0]);
    assert_eq!(verify_chain(&stored), Ok(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_queues_of_one_identity_in_one_group_make_one_run() {
    let store = TestStore::new().await;
    let t = tenant(1);
    let writer = holding_writer(&store, 50);
    let commands = CommandHandler::new(store.reader.clone(), writer.clone());
    let runs: Vec<RunId> = (0..50).map(|_| new_run_id()).collect();
    let requests: Vec<_> = runs
        .iter()
        .map(|run| request(t, *run, queue(t, *run, json!({"k": "group-dedupe"}))))
        .collect();

    let outcomes = join_all(requests.iter().map(|r| commands.execute(r))).await;

    let created: Vec<RunId> = outcomes
        .iter()
        .filter_map(|o| match o {
            Ok(CommandOutcome::Applied { run, .. }) => Some(run.id),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 1, "{outcomes:?}");
    let deduplicated = outcomes
        .iter()
        .filter(|o| {
            matches!(o, Ok(CommandOutcome::Deduplicated { existing }) if existing.id == created[0])
        })
        .count();
    assert_eq!(deduplicated, 49, "{outcomes:?}");
    assert_eq!(writer.stats().largest_group, 50);
    assert_eq!(store.count("events").await, 1);
    assert_eq!(store.active_runs().await, vec![(1, created[0].as_uuid())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_group_gives_every_append_its_own_outcome() {
    let store = TestStore::new().await;
    let t = tenant(1);
    let setup = &store.writer;
    // A run at version 1, appended to at a stale version.
    let stale_run = queued_run(setup, t, json!({"k": "stale"})).await;
    // A run whose first append is re-sent.
    let resent_run = new_run_id();
    let resent = queue_events(t, resent_run, json!({"k": "resent"}));
    let original = setup.append(t, resent_run, 0, &resent).await;
    let original = appended(&original).clone();
    // A stored event id, re-used for other content.
    let reused_run = queued_run(setup, t, json!({"k": "reused"})).await;
    let stored_started = new_event(started_event(1));
    setup
        .append(t, reused_run, 1, std::slice::from_ref(&stored_started))
        .await
        .unwrap();
    let reused = NewEvent {
        event: progressed_event(3),
        ..stored_started.clone()
    };
    // An active run whose identity a new run asks for.
    let active_run = queued_run(setup, t, json!({"k": "taken"})).await;
    let duplicate_run = new_run_id();
    // Plain appends: a new run and, after it in the same group, its second event; and a
    // second event of an existing run.
    let new_run = new_run_id();
    let plain_run = queued_run(setup, t, json!({"k": "plain"})).await;
    let before = store.count("events").await;

    let writer = holding_writer(&store, 7);
    let stale_batch = [new_event(started_event(2))];
    let duplicate_batch = queue_events(t, duplicate_run, json!({"k": "taken"}));
    let new_batch = queue_events(t, new_run, json!({"k": "new"}));
    let chained_batch = [new_event(started_event(4)), new_event(progressed_event(1))];
    let plain_batch = [new_event(started_event(5))];
    let reused_batch = [reused];
    let stats_before = writer.stats();
    // `join_all` polls in order, and an append joins the queue on its first poll: these seven
    // join one group in this order.
    let results = join_all([
        writer.append(t, stale_run, 0, &stale_batch),
        writer.append(t, resent_run, 0, &resent),
        writer.append(t, reused_run, 2, &reused_batch),
        writer.append(t, duplicate_run, 0, &duplicate_batch),
        writer.append(t, new_run, 0, &new_batch),
        writer.append(t, new_run, 1, &chained_batch),
        writer.append(t, plain_run, 1, &plain_batch),
    ])
    .await;
    let stats = writer.stats();
    assert_eq!(groups_between(stats_before, stats), 1, "{results:?}");
    assert_eq!(stats.largest_group, 7);

    assert!(
        matches!(
            results[0],
            Err(StoreError::Conflict { run, expected: 0, actual: 1 }) if run == stale_run
        ),
        "{:?}",
        results[0]
    );
    assert_eq!(
        appended(&results[1]),
        &Appended {
            replayed: true,
            ..original
        }
    );
    assert!(
        matches!(
            results[2],
            Err(StoreError::IdempotencyMismatch { event_id }) if event_id == stored_started.event_id.as_uuid()
        ),
        "{:?}",
        results[2]
    );
    assert_eq!(
        results[3].as_ref().ok(),
        Some(&AppendOutcome::Deduplicated {
            existing: active_run
        })
    );
    let created = appended(&results[4]);
    assert_eq!((created.version, created.replayed), (1, false));
    let chained = appended(&results[5]);
    assert_eq!((chained.version, chained.positions.len()), (3, 2));
    assert!(chained.positions[0] > created.positions[0]);
    assert_eq!(appended(&results[6]).version, 2);

    // Exactly the accepted events were written, and every chain verifies.
    assert_eq!(store.count("events").await, before + 4);
    let new_stream = store.reader.read_stream(t, new_run).await.unwrap();
    assert_eq!(
        new_stream.iter().map(|e| e.position).collect::<Vec<_>>(),
        [created.positions.clone(), chained.positions.clone()].concat()
    );
    assert_eq!(new_stream[1].prev_hash, new_stream[0].hash);
    for run in [
        stale_run, resent_run, reused_run, active_run, new_run, plain_run,
    ] {
        let stream = store.reader.read_stream(t, run).await.unwrap();
        assert_eq!(verify_chain(&stream), Ok(stream.len() as u64), "{run}");
    }
    assert!(
        store
            .reader
            .read_stream(t, duplicate_run)
            .await
            .unwrap()
            .is_empty()
    );
    let active: Vec<uuid::Uuid> = store
        .active_runs()
        .await
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert!(active.contains(&new_run.as_uuid()) && !active.contains(&duplicate_run.as_uuid()));
}
