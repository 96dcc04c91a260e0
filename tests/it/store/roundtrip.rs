//! Every event variant, and its metadata, reads back from the store as the domain event written.

use chrono::Duration;
use runledger_core::{
    CompletionReason, EventId, FailureCode, FailureEntry, Initiator, Outcome, ProgressDelta,
    RunCompleted, RunEvent, RunId, RunIdentity, RunProgressed, RunQueued, RunStarted, RunType,
    TenantId, UserId,
};
use runledger_store::chain::verify_chain;
use runledger_store::{AppendOutcome, EventMetadata, LogCursor, NewEvent};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::TestStore;
use crate::helpers::verbs::{at, new_event_id, new_run_id, tenant};

fn queued(t: TenantId, run: RunId, initiator: Initiator) -> RunEvent {
    let run_type = RunType::parse("backup.restore").unwrap();
    let identity =
        json!({"restore_run_id": 123, "site": "Zürich ✓", "tags": ["a", "b"], "deep": {"x": null}});
    RunEvent::Queued(RunQueued {
        run_id: run,
        tenant_id: t,
        run_identity_hash: RunIdentity::new(identity.clone())
            .unwrap()
            .hash(t, &run_type),
        run_type,
        identity,
        initiator,
        context: json!({
            "ratio": 0.1, "huge": 1.5e300, "tiny": 1e-7, "big": u64::MAX, "negative": -42,
            "quote": "say \"hi\"\n\ttab", "emoji": "🦀", "empty": {}, "list": [1, 2.5, true, null]
        }),
        queued_at: at(0) + Duration::microseconds(123_456),
    })
}

fn failure(code: &str, message: &str, count: u64) -> FailureEntry {
    FailureEntry {
        code: FailureCode::parse(code).unwrap(),
        message: message.to_owned(),
        count,
    }
}

fn progressed(success: u64, total: Option<u64>, failures: Vec<FailureEntry>) -> RunEvent {
    RunEvent::Progressed(RunProgressed {
        delta: ProgressDelta {
            success,
            failed: failures.iter().map(|f| f.count).sum(),
            skipped: 1,
        },
        total,
        failures,
        reported_at: at(2),
    })
}

fn completed(outcome: Outcome, reason: CompletionReason, failures: Vec<FailureEntry>) -> RunEvent {
    RunEvent::Completed(RunCompleted {
        outcome,
        reason,
        failures,
        completed_at: at(3) + Duration::nanoseconds(1),
    })
}

fn full_metadata() -> EventMetadata {
    EventMetadata {
        actor: "user:42".to_owned(),
        correlation_id: Some(Uuid::new_v4()),
        causation_id: Some(Uuid::new_v4()),
        request_id: Some("req-ünïcode-1".to_owned()),
    }
}

/// Four runs that together hold every variant: every event type, both completion reasons,
/// every terminal outcome including the reserved `cancelled`, optional fields set and unset.
fn histories() -> Vec<(TenantId, RunId, Vec<NewEvent>)> {
    let user = Initiator::user(UserId::new(42).unwrap(), "Zoë Q").unwrap();
    let with = |event, metadata| NewEvent {
        event_id: new_event_id(),
        event,
        metadata,
    };
    let (a, b, c, d) = (new_run_id(), new_run_id(), new_run_id(), new_run_id());
    vec![
        (
            tenant(1),
            a,
            vec![
                with(queued(tenant(1), a, user), full_metadata()),
                with(
                    RunEvent::Started(RunStarted { started_at: at(1) }),
                    EventMetadata::actor("token:ci-bot"),
                ),
                with(
                    progressed(
                        5,
                        Some(u64::MAX),
                        vec![failure("timeout", "host a timed out", 2)],
                    ),
                    full_metadata(),
                ),
                with(progressed(1, None, vec![]), EventMetadata::default()),
                with(
                    completed(
                        Outcome::PartiallySucceeded,
                        CompletionReason::Finished,
                        vec![],
                    ),
                    full_metadata(),
                ),
            ],
        ),
        (
            tenant(2),
            b,
            vec![
                with(
                    queued(tenant(2), b, Initiator::system()),
                    EventMetadata::actor("system"),
                ),
                with(
                    completed(
                        Outcome::Failed,
                        CompletionReason::DispatchFailed,
                        vec![failure("dispatch_error", "no worker", 1)],
                    ),
                    EventMetadata::actor("system"),
                ),
            ],
        ),
        (
            tenant(1),
            c,
            vec![
                with(
                    queued(tenant(1), c, Initiator::system()),
                    EventMetadata::actor("cli"),
                ),
                with(
                    RunEvent::Started(RunStarted { started_at: at(1) }),
                    EventMetadata::actor("cli"),
                ),
                with(
                    completed(Outcome::Succeeded, CompletionReason::Finished, vec![]),
                    EventMetadata::actor("cli"),
                ),
            ],
        ),
        // The reserved outcome: no command produces it, but it decodes.
        (
            tenant(1),
            d,
            vec![
                with(
                    queued(tenant(1), d, Initiator::system()),
                    EventMetadata::actor("cli"),
                ),
                with(
                    completed(Outcome::Cancelled, CompletionReason::Finished, vec![]),
                    EventMetadata::actor("cli"),
                ),
            ],
        ),
    ]
}

#[tokio::test]
async fn every_event_variant_and_its_metadata_reads_back_as_written() {
    let store = TestStore::new().await;
    let histories = histories();
    let mut written = 0;
    for (t, run, events) in &histories {
        let AppendOutcome::Appended(appended) =
            store.writer.append(*t, *run, 0, events).await.unwrap()
        else {
            panic!("run {run} appends")
        };
        assert_eq!(appended.version, events.len() as u64);
        assert_eq!(appended.positions.len(), events.len());

        let stored = store.reader.read_stream(*t, *run).await.unwrap();
        assert_eq!(stored.len(), events.len());
        for ((new, stored), version) in events.iter().zip(&stored).zip(1..) {
            assert_eq!(stored.version, version);
            assert_eq!(stored.event_id, new.event_id);
            assert_eq!(stored.tenant_id, *t);
            assert_eq!(stored.run_id, *run);
            assert_eq!(stored.event_type, new.event.event_type());
            assert_eq!(stored.schema_version, RunEvent::SCHEMA_VERSION);
            assert_eq!(stored.decode().unwrap(), new.event, "version {version}");
            assert_eq!(stored.decode_metadata().unwrap(), new.metadata);
        }
        assert_eq!(
            stored.iter().map(|e| e.position).collect::<Vec<_>>(),
            appended.positions
        );
        assert_eq!(verify_chain(&stored), Ok(events.len() as u64));
        written += events.len();
    }

    // The log reads the same rows, and they decode the same way.
    let log = store.wait_for_log(LogCursor::START, written).await;
    let all: Vec<(EventId, &RunEvent)> = histories
        .iter()
        .flat_map(|(_, _, events)| events.iter().map(|e| (e.event_id, &e.event)))
        .collect();
    assert_eq!(log.len(), all.len());
    for (stored, (event_id, event)) in log.iter().zip(&all) {
        assert_eq!(stored.event_id, *event_id);
        assert_eq!(&stored.decode().unwrap(), *event);
    }
    // Every stored type name is one of the catalog's.
    assert!(
        log.iter()
            .all(|e| RunEvent::TYPES.contains(&e.event_type.as_str()))
    );
}
