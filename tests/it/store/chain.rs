//! The per-run hash chain: stored runs verify, tampering is found at the first broken event,
//! and the hash of a fixed event is a fixed vector, forever.

use chrono::{TimeZone, Utc};
use runledger_core::{ProgressDelta, RunEvent, RunId, RunProgressed};
use runledger_store::EventMetadata;
use runledger_store::chain::{
    ChainBreak, ChainFailure, GENESIS, HashedFields, event_hash, verify_chain,
};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::TestStore;
use crate::helpers::verbs::{complete, new_run_id, progress, request, start, tenant};

/// A completed run of five events: queued, started, two progress reports, completed.
async fn run_of_five(store: &TestStore) -> RunId {
    let (t, run) = (tenant(1), new_run_id());
    store.queue_run(t, run, json!({"run": run.as_uuid()})).await;
    for command in [start(), progress(2, 1), progress(4, 0), complete()] {
        store
            .commands
            .execute(&request(t, run, command))
            .await
            .unwrap();
    }
    run
}

/// Reads `run` (of tenant 1) and walks its chain.
async fn verify(store: &TestStore, run: RunId) -> Result<u64, ChainFailure> {
    let stream = store.reader.read_stream(tenant(1), run).await.unwrap();
    verify_chain(&stream)
}

#[track_caller]
fn assert_broken_at(result: Result<u64, ChainFailure>, version: u64, reason: ChainBreak) {
    match result {
        Err(failure) => {
            assert_eq!(failure.version, version, "{failure:?}");
            assert_eq!(failure.reason, reason, "{failure:?}");
        }
        Ok(n) => panic!("the tampered chain of {n} events verifies"),
    }
}

#[tokio::test]
async fn stored_runs_verify() {
    let store = TestStore::new().await;
    let run = run_of_five(&store).await;
    assert_eq!(verify(&store, run).await, Ok(5));
    let stream = store.reader.read_stream(tenant(1), run).await.unwrap();
    assert_eq!(stream[0].prev_hash, GENESIS);
    for pair in stream.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
}

#[tokio::test]
async fn changing_a_stored_field_breaks_the_hash_of_that_event() {
    let store = TestStore::new().await;
    let cases: [(&str, u64); 6] = [
        (
            "UPDATE events SET payload = jsonb_set(payload, '{delta,success}', '3') \
             WHERE run_id = $1 AND version = 3",
            3,
        ),
        (
            "UPDATE events SET metadata = jsonb_set(metadata, '{actor}', '\"mallory\"') \
             WHERE run_id = $1 AND version = 2",
            2,
        ),
        (
            "UPDATE events SET recorded_at = recorded_at + interval '1 microsecond' \
             WHERE run_id = $1 AND version = 4",
            4,
        ),
        (
            "UPDATE events SET event_type = 'Started' WHERE run_id = $1 AND version = 4",
            4,
        ),
        (
            "UPDATE events SET tenant_id = 2 WHERE run_id = $1 AND version = 5",
            5,
        ),
        (
            "UPDATE events SET hash = set_byte(hash, 0, get_byte(hash, 0) # 1) \
             WHERE run_id = $1 AND version = 1",
            1,
        ),
    ];
    for (statement, version) in cases {
        let run = run_of_five(&store).await;
        store.tamper(run, statement).await;
        // A changed tenant hides the event from its tenant's reads: read the run's rows as stored.
        let stream = if statement.contains("tenant_id") {
            let mut all = store.reader.read_stream(tenant(1), run).await.unwrap();
            all.extend(store.reader.read_stream(tenant(2), run).await.unwrap());
            all
        } else {
            store.reader.read_stream(tenant(1), run).await.unwrap()
        };
        assert_broken_at(verify_chain(&stream), version, ChainBreak::HashMismatch);
    }
}

#[tokio::test]
async fn a_rewritten_event_with_a_recomputed_hash_breaks_the_next_link() {
    let store = TestStore::new().await;
    let run = run_of_five(&store).await;
    let stream = store.reader.read_stream(tenant(1), run).await.unwrap();
    let mut forged = stream[2].clone();
    forged.payload = json!({"delta": {"success": 1000, "failed": 0, "skipped": 0},
                            "reported_at": forged.payload["reported_at"]});
    let forged_hash = event_hash(&forged.prev_hash, &forged.hashed_fields());
    let mut tx = store.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE events SET payload = $1, hash = $2 WHERE position = $3")
        .bind(&forged.payload)
        .bind(forged_hash.to_vec())
        .bind(forged.position)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_broken_at(verify(&store, run).await, 4, ChainBreak::BrokenLink);
}

#[tokio::test]
async fn deleting_a_middle_event_is_a_version_gap() {
    let store = TestStore::new().await;
    let run = run_of_five(&store).await;
    store
        .tamper(run, "DELETE FROM events WHERE run_id = $1 AND version = 3")
        .await;
    assert_broken_at(
        verify(&store, run).await,
        4,
        ChainBreak::VersionGap { expected: 3 },
    );
}

#[tokio::test]
async fn swapping_two_events_is_detected() {
    let store = TestStore::new().await;
    let run = run_of_five(&store).await;
    store
        .tamper(
            run,
            "UPDATE events SET version = CASE version WHEN 2 THEN 1002 ELSE 1003 END \
             WHERE run_id = $1 AND version IN (2, 3)",
        )
        .await;
    store
        .tamper(
            run,
            "UPDATE events SET version = CASE version WHEN 1002 THEN 3 ELSE 2 END \
             WHERE run_id = $1 AND version IN (1002, 1003)",
        )
        .await;
    assert_broken_at(verify(&store, run).await, 2, ChainBreak::BrokenLink);
}

#[tokio::test]
async fn tampering_with_one_run_leaves_the_others_verified() {
    let store = TestStore::new().await;
    let (tampered, intact) = (run_of_five(&store).await, run_of_five(&store).await);
    store
        .tamper(
            tampered,
            "UPDATE events SET payload = payload || '{\"x\": 1}' WHERE run_id = $1 AND version = 2",
        )
        .await;
    assert_broken_at(verify(&store, tampered).await, 2, ChainBreak::HashMismatch);
    assert_eq!(verify(&store, intact).await, Ok(5));
}

/// The hash of fixed events, against constants derived independently of this code:
/// `sha256(prev_hash || JCS(document))` computed with Python's `hashlib` over
/// `json.dumps(document, sort_keys=True, separators=(',', ':'), ensure_ascii=False)`, which is
/// JCS for these values. The stored format must never change, so neither may these.
#[test]
fn the_hash_of_a_fixed_event_is_a_fixed_vector() {
    let run_id = Uuid::parse_str("0a0b0c0d-0e0f-4a1b-8c2d-3e4f5a6b7c8d").unwrap();
    // A stored `Started` of schema version 1 (version 2 adds `worker`): the hash of a stored row
    // never changes, whatever version the code writes today.
    let payload = json!({"started_at": "2026-11-26T12:00:00Z"});
    let metadata = EventMetadata {
        request_id: Some("req-7".to_owned()),
        ..EventMetadata::actor("user:Zoë")
    }
    .to_json();
    let first = event_hash(
        &GENESIS,
        &HashedFields {
            event_id: Uuid::parse_str("6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5e").unwrap(),
            run_id,
            tenant_id: 42,
            version: 1,
            event_type: "Started",
            schema_version: 1,
            payload: &payload,
            metadata: &metadata,
            recorded_at: Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 1).unwrap()
                + chrono::Duration::microseconds(250),
        },
    );
    assert_eq!(
        hex(&first),
        "d32fc17253b75349706e686ef49611ec6d9595337b0a3e1ee4bcd9a9710054cf"
    );

    let progressed = RunEvent::Progressed(RunProgressed {
        delta: ProgressDelta {
            success: 3,
            failed: 1,
            skipped: 0,
        },
        total: Some(10),
        failures: Vec::new(),
        reported_at: Utc.with_ymd_and_hms(2026, 11, 26, 12, 5, 0).unwrap(),
    });
    let payload = progressed.payload();
    let metadata = EventMetadata {
        correlation_id: Some(Uuid::parse_str("11111111-2222-4333-8444-555555555555").unwrap()),
        ..EventMetadata::actor("system")
    }
    .to_json();
    let second = event_hash(
        &first,
        &HashedFields {
            event_id: Uuid::parse_str("6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5f").unwrap(),
            run_id,
            tenant_id: 42,
            version: 2,
            event_type: progressed.event_type(),
            schema_version: progressed.schema_version(),
            payload: &payload,
            metadata: &metadata,
            recorded_at: Utc.with_ymd_and_hms(2026, 11, 26, 12, 5, 0).unwrap()
                + chrono::Duration::milliseconds(500),
        },
    );
    assert_eq!(
        hex(&second),
        "6539c988455a17a519017c6e856dca12e1d7df19cb4f99fc956a47f582cb870d"
    );
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
