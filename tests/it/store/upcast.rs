//! Rows of schema version 1, exactly as the version-1 code wrote them, read back through the
//! store's upcasters: they decode to today's events with the same meaning, fold to the state they
//! folded to then, and runs still active at the upgrade carry on under today's rules.
//!
//! The rows are the histories of `crates/runledger-core/tests-vectors/v1-histories.json`, whose
//! `folds_to` the version-1 code printed; the catalog's version-1 examples are among them.

use chrono::{DateTime, Utc};
use runledger_core::{
    Cancel, Complete, CompletionReason, Outcome, QueueRun, RunCommand, RunEvent, RunId,
    RunRejection, RunStatus, RunType, Start, TenantId, TimeOut, WorkerId,
};
use runledger_store::chain::{GENESIS, verify_chain};
use runledger_store::command::fold;
use runledger_store::{
    CommandError, CommandOutcome, LogCursor, RecordedEvent, rebuild_dedupe_index,
};
use serde_json::{Value, json};

use crate::helpers::verbs::{queue, request};
use crate::helpers::{StoredPayload, TestStore, insert_stored_row};
use crate::projections::support::{
    assert_same_runs, drain, folded_runs, read_model, run_projector,
};

const VECTORS: &str =
    include_str!("../../../crates/runledger-core/tests-vectors/v1-histories.json");

/// One history of the vectors, as stored.
struct StoredHistory {
    name: String,
    tenant: TenantId,
    run: RunId,
    /// `(event_type, payload)` of each row, all of schema version 1.
    rows: Vec<(String, Value)>,
    /// The OperationRun JSON the version-1 code folded the history to.
    folds_to: Value,
}

fn histories() -> Vec<StoredHistory> {
    let vectors: Value = serde_json::from_str(VECTORS).expect("valid JSON");
    let histories = vectors["histories"].as_array().expect("histories");
    histories
        .iter()
        .map(|history| {
            let rows: Vec<(String, Value)> = history["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|event| {
                    assert_eq!(event["schema_version"], 1);
                    let event_type = event["event_type"].as_str().expect("a type");
                    (event_type.to_owned(), event["payload"].clone())
                })
                .collect();
            let queued = &rows[0].1;
            StoredHistory {
                name: history["name"].as_str().expect("a name").to_owned(),
                tenant: TenantId::new(queued["tenant_id"].as_i64().expect("a tenant"))
                    .expect("positive"),
                run: queued["run_id"]
                    .as_str()
                    .expect("a run id")
                    .parse()
                    .expect("a UUID"),
                rows,
                folds_to: history["folds_to"].clone(),
            }
        })
        .collect()
}

/// Stores every history as the version-1 append statement did: the rows, chained, the stream
/// head, and the dedupe slot of a run that is still active.
async fn store_histories(store: &TestStore) -> Vec<StoredHistory> {
    let histories = histories();
    for history in &histories {
        let mut tx = store.pool.begin().await.expect("begin");
        let mut head = GENESIS;
        for (version, (event_type, payload)) in (1..).zip(&history.rows) {
            let stored = StoredPayload {
                event_type,
                schema_version: 1,
                payload,
            };
            let row =
                insert_stored_row(&mut tx, history.tenant, history.run, version, head, &stored)
                    .await;
            head = row.hash;
        }
        sqlx::query(
            "INSERT INTO streams (run_id, tenant_id, version, last_hash) VALUES ($1, $2, $3, $4)",
        )
        .bind(history.run.as_uuid())
        .bind(history.tenant.get())
        .bind(i64::try_from(history.rows.len()).expect("short"))
        .bind(head.to_vec())
        .execute(&mut *tx)
        .await
        .expect("insert the stream head");
        if history
            .rows
            .iter()
            .all(|(event_type, _)| event_type != "Completed")
        {
            sqlx::query("INSERT INTO active_runs (tenant_id, run_identity_hash, run_id) VALUES ($1, $2, $3)")
                .bind(history.tenant.get())
                .bind(history.rows[0].1["run_identity_hash"].as_str().expect("a hash"))
                .bind(history.run.as_uuid())
                .execute(&mut *tx)
                .await
                .expect("take the dedupe slot");
        }
        tx.commit().await.expect("commit");
    }
    histories
}

/// `payload` with `field` added as `value`.
fn with(payload: &Value, field: &str, value: Value) -> Value {
    let mut payload = payload.clone();
    payload[field] = value;
    payload
}

/// What today's code must read a version-1 payload as, written out by hand: `Queued` gains no
/// limits, `Started` no worker, and the others are unchanged.
fn as_version_2(event_type: &str, payload: &Value) -> Value {
    match event_type {
        "Queued" => with(
            payload,
            "limits",
            json!({"start_deadline_seconds": null, "run_deadline_seconds": null,
                   "heartbeat_timeout_seconds": null}),
        ),
        "Started" => with(payload, "worker", Value::Null),
        _ => payload.clone(),
    }
}

#[tokio::test]
async fn version_1_rows_decode_to_todays_events_with_the_same_meaning() {
    let store = TestStore::new().await;
    let histories = store_histories(&store).await;
    let mut rows = 0;
    for history in &histories {
        let stored = stream(&store, history).await;
        assert_eq!(
            verify_chain(&stored),
            Ok(history.rows.len() as u64),
            "{}",
            history.name
        );
        for (row, (event_type, payload)) in stored.iter().zip(&history.rows) {
            assert_eq!(row.schema_version, 1);
            let event = row
                .decode()
                .unwrap_or_else(|e| panic!("{}: {e}", history.name));
            let expected = RunEvent::from_payload(event_type, as_version_2(event_type, payload))
                .expect("the hand-written version 2 decodes");
            assert_eq!(event, expected, "{}", history.name);
        }
        rows += stored.len();
    }
    // The log reads them too, and decodes them the same way.
    let log = store.wait_for_log(LogCursor::START, rows).await;
    assert!(log.iter().all(|row| row.decode().is_ok()));
}

#[tokio::test]
async fn a_version_1_history_folds_to_the_state_it_folded_to_then() {
    let store = TestStore::new().await;
    let histories = store_histories(&store).await;
    // Today's fields of each history: what the log of version 1 says of them.
    let lifecycle = [
        (json!("2026-01-17T22:27:00.000000Z"), json!("finished")),
        (Value::Null, json!("dispatch_failed")),
        (json!("2026-01-17T22:27:00.000000Z"), json!("finished")),
        (Value::Null, Value::Null),
        (json!("2026-01-17T22:27:00.000000Z"), Value::Null),
    ];
    assert_eq!(histories.len(), lifecycle.len());
    for (history, (last_progress_at, completion_reason)) in histories.iter().zip(lifecycle) {
        let stored = stream(&store, history).await;
        let run = fold(&stored).expect("fold");
        let mut json = run.snapshot().expect("a run").to_operation_run_json();
        let fields = json.as_object_mut().expect("an object");
        // Every field the version-1 code printed is as it printed it.
        let then = history.folds_to.as_object().expect("an object");
        for (key, value) in then {
            assert_eq!(
                fields.remove(key).as_ref(),
                Some(value),
                "{}: {key}",
                history.name
            );
        }
        // And the fields that came later read as "none" where version 1 had no such fact.
        assert_eq!(
            Value::Object(fields.clone()),
            json!({
                "limits": {"start_deadline_seconds": null, "run_deadline_seconds": null,
                           "heartbeat_timeout_seconds": null},
                "start_deadline_at": null,
                "run_deadline_at": null,
                "worker": null,
                "last_progress_at": last_progress_at,
                "cancel_requested": false,
                "cancel_requested_at": null,
                "cancel_reason": null,
                "completion_reason": completion_reason,
                "time_out": null,
            }),
            "{}",
            history.name
        );
    }
    // The read model, built from the same rows, agrees.
    let mut projector = run_projector(&store.pool);
    drain(&mut projector).await;
    assert_same_runs(&read_model(&store.pool).await, &folded_runs(&store).await);
}

/// The stored history of the run named `name` in the vectors.
fn named<'a>(histories: &'a [StoredHistory], name: &str) -> &'a StoredHistory {
    histories
        .iter()
        .find(|history| history.name.starts_with(name))
        .unwrap_or_else(|| panic!("no history {name}"))
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("an RFC 3339 time")
}

async fn stream(store: &TestStore, history: &StoredHistory) -> Vec<RecordedEvent> {
    store
        .reader
        .read_stream(history.tenant, history.run)
        .await
        .expect("read the stream")
}

#[tokio::test]
async fn runs_active_at_the_upgrade_carry_on_under_todays_rules() {
    let store = TestStore::new().await;
    let histories = store_histories(&store).await;
    let queued = named(&histories, "still queued");
    let running = named(&histories, "still running");

    // The dedupe index rebuilt from version-1 rows is the one their appends wrote.
    let rebuilt = rebuild_dedupe_index(&store.pool).await.expect("rebuild");
    assert_eq!((rebuilt.active, rebuilt.added, rebuilt.removed), (2, 0, 0));
    // A queue of the same identity gets the version-1 run back.
    let identity = queued.rows[0].1["identity"].clone();
    let new_run = RunId::from_uuid(uuid::Uuid::new_v4());
    let RunCommand::Queue(command) = queue(queued.tenant, new_run, identity) else {
        unreachable!("queue() queues")
    };
    let command = RunCommand::Queue(QueueRun {
        run_type: RunType::parse("restore.execute").expect("a type"),
        ..command
    });
    let again = store
        .commands
        .execute(&request(queued.tenant, new_run, command))
        .await
        .expect("queue");
    assert!(
        matches!(again, CommandOutcome::Deduplicated { existing } if existing.id == queued.run)
    );

    // Runs queued before limits existed have none: a sweeper's time-out is refused.
    let time_out = RunCommand::TimeOut(TimeOut {
        at: at("2027-01-01T00:00:00Z"),
        last_heartbeat_at: None,
    });
    for history in [queued, running] {
        let refused = store
            .commands
            .execute(&request(history.tenant, history.run, time_out.clone()))
            .await;
        assert!(
            matches!(
                refused,
                Err(CommandError::Rejected(RunRejection::NotOverdue {
                    next_deadline_at: None
                }))
            ),
            "{}: {refused:?}",
            history.name
        );
    }

    // A run started before workers named themselves is held by no one a worker can be.
    let start = RunCommand::Start(Start {
        worker: Some(WorkerId::parse("w1").expect("an id")),
        at: at("2026-01-17T22:30:00Z"),
    });
    let refused = store
        .commands
        .execute(&request(running.tenant, running.run, start))
        .await;
    assert!(matches!(
        refused,
        Err(CommandError::Rejected(RunRejection::HeldByAnotherWorker {
            holder: None
        }))
    ));

    // The queued one cancels at once, freeing its slot; the chain goes on across versions.
    let cancel = |reason: &str| {
        RunCommand::Cancel(Cancel {
            reason: Some(reason.to_owned()),
            at: at("2026-01-17T22:31:00Z"),
        })
    };
    store
        .commands
        .execute(&request(queued.tenant, queued.run, cancel("Superseded")))
        .await
        .expect("cancel the queued run");
    let rows = stream(&store, queued).await;
    assert_eq!(
        rows.iter()
            .map(|row| row.schema_version)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(verify_chain(&rows), Ok(2));
    let run = fold(&rows).expect("fold");
    let run = run.snapshot().expect("a run");
    assert_eq!(
        (run.status, run.outcome),
        (RunStatus::Completed, Outcome::Cancelled)
    );

    // The running one records the request, and its worker's acknowledgement completes it.
    store
        .commands
        .execute(&request(running.tenant, running.run, cancel("Superseded")))
        .await
        .expect("ask the running run to cancel");
    store
        .commands
        .execute(&request(
            running.tenant,
            running.run,
            RunCommand::Complete(Complete {
                outcome: Some(Outcome::Cancelled),
                final_counts: None,
                failures: Vec::new(),
                at: at("2026-01-17T22:32:00Z"),
            }),
        ))
        .await
        .expect("acknowledge the cancel");
    let rows = stream(&store, running).await;
    assert_eq!(
        rows.iter()
            .map(|row| (row.event_type.as_str(), row.schema_version))
            .collect::<Vec<_>>(),
        [
            ("Queued", 1),
            ("Started", 1),
            ("Progressed", 1),
            ("CancelRequested", 1),
            ("Completed", 2)
        ]
    );
    assert_eq!(verify_chain(&rows), Ok(5));
    let Some(RunEvent::Completed(completed)) = rows.last().map(|row| row.decode().expect("decode"))
    else {
        panic!("a Completed last")
    };
    assert!(matches!(
        completed.reason,
        CompletionReason::Cancelled { .. }
    ));
    assert!(store.active_runs().await.is_empty());
}

#[test]
fn versions_and_types_the_code_does_not_know_are_refused_not_guessed() {
    use runledger_store::schema::decode_payload;
    let started = json!({"started_at": "2026-01-17T22:26:00Z"});
    assert!(decode_payload("Started", 1, started.clone()).is_ok());
    assert!(decode_payload("Started", 2, started.clone()).is_ok());
    let cases = [
        ("Started", 0, started.clone(), "unknown schema version 0"),
        ("Started", 3, started.clone(), "unknown schema version 3"),
        ("Progressed", 2, started.clone(), "unknown schema version 2"),
        ("Renamed", 1, started.clone(), "unknown event type Renamed"),
        (
            "Queued",
            1,
            json!(["not", "an", "object"]),
            "payload is not a JSON object",
        ),
        (
            "Started",
            1,
            json!("2026-01-17T22:26:00Z"),
            "payload is not a JSON object",
        ),
    ];
    for (event_type, version, payload, reason) in cases {
        assert_eq!(
            decode_payload(event_type, version, payload)
                .err()
                .as_deref(),
            Some(reason),
            "{event_type} v{version}"
        );
    }
}
