//! A writer of several lanes: its lanes' groups commit at once on connections of their own,
//! and where they race (the dedupe slots) each append still gets the outcome it would have had
//! alone.

use futures_util::future::join_all;
use runledger_core::RunId;
use runledger_store::chain::verify_chain;
use runledger_store::{CommandHandler, CommandOutcome, EventWriter, NewEvent, WriterConfig};
use serde_json::json;

use crate::helpers::TestStore;
use crate::helpers::verbs::{
    new_event, new_run_id, progressed_event, queue, request, started_event, tenant,
};

const LANES: usize = 4;

fn writer_of_lanes(store: &TestStore) -> EventWriter {
    EventWriter::with_config(
        store.pool.clone(),
        WriterConfig {
            lanes: LANES,
            ..WriterConfig::default()
        },
    )
}

/// 64 queues of four identities (16 each, interleaved), sent at once through four lanes, five
/// times over: each time exactly one run per identity is made and the other 15 get it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queues_of_one_identity_racing_in_several_lanes_make_one_run() {
    let store = TestStore::new().await;
    let t = tenant(1);
    let writer = writer_of_lanes(&store);
    let commands = CommandHandler::new(store.reader.clone(), writer.clone());

    for round in 0..5 {
        let identities: Vec<serde_json::Value> = (0..4)
            .map(|i| json!({"round": round, "identity": i}))
            .collect();
        let runs: Vec<(RunId, usize)> = (0..64).map(|i| (new_run_id(), i % 4)).collect();
        let requests: Vec<_> = runs
            .iter()
            .map(|(run, identity)| request(t, *run, queue(t, *run, identities[*identity].clone())))
            .collect();

        let outcomes = join_all(requests.iter().map(|r| commands.execute(r))).await;

        for identity in 0..4 {
            let of_identity: Vec<_> = runs
                .iter()
                .zip(&outcomes)
                .filter(|((_, i), _)| *i == identity)
                .map(|(_, outcome)| outcome)
                .collect();
            let created: Vec<RunId> = of_identity
                .iter()
                .filter_map(|o| match o {
                    Ok(CommandOutcome::Applied { run, .. }) => Some(run.id),
                    _ => None,
                })
                .collect();
            assert_eq!(created.len(), 1, "round {round}: {of_identity:?}");
            let deduplicated = of_identity
                .iter()
                .filter(|o| {
                    matches!(o, Ok(CommandOutcome::Deduplicated { existing }) if existing.id == created[0])
                })
                .count();
            assert_eq!(deduplicated, 15, "round {round}: {of_identity:?}");
        }
    }
    // Every lane opened its connection: the appends really went through four lanes.
    assert_eq!(writer.stats().connections, LANES as u64);
    assert_eq!(store.count("events").await, 5 * 4);
    assert_eq!(store.active_runs().await.len(), 5 * 4);
}

/// Forty runs appended to at once, each run's appends one after another: every run's versions
/// are contiguous and its chain verifies, whichever lanes its neighbours took.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_runs_appends_keep_their_order_and_chain_across_lanes() {
    let store = TestStore::new().await;
    let t = tenant(1);
    let writer = writer_of_lanes(&store);
    let mut runs = Vec::new();
    for i in 0..40 {
        let run = new_run_id();
        store.queue_run(t, run, json!({"k": i})).await;
        runs.push(run);
    }

    join_all(runs.iter().map(|run| {
        let writer = writer.clone();
        async move {
            writer
                .append(t, *run, 1, &[new_event(started_event(1))])
                .await
                .expect("start");
            for version in 2..12_u64 {
                let batch: [NewEvent; 1] = [new_event(progressed_event(1))];
                writer
                    .append(t, *run, version, &batch)
                    .await
                    .expect("progress");
            }
        }
    }))
    .await;

    for run in &runs {
        let stream = store.reader.read_stream(t, *run).await.unwrap();
        let versions: Vec<u64> = stream.iter().map(|e| e.version).collect();
        assert_eq!(versions, (1..=12).collect::<Vec<u64>>(), "{run}");
        assert_eq!(verify_chain(&stream), Ok(12), "{run}");
    }
    assert!(writer.stats().largest_group > 1, "{:?}", writer.stats());
}
