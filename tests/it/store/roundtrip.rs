//! Every event variant, and its metadata, reads back from the store as the domain event written.

use chrono::Duration;
use runledger_core::{
    CompletionReason, EventId, FailureCode, FailureEntry, Initiator, Limit, LimitPassed,
    LimitSeconds, Outcome, ProgressDelta, RunCancelRequested, RunCompleted, RunEvent, RunId,
    RunIdentity, RunLimits, RunProgressed, RunQueued, RunStarted, RunType, SummaryCounts, TenantId,
    UserId, WorkerId,
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
        limits: RunLimits::default(),
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
    RunEvent::Completed(completed_run(outcome, reason, failures))
}

fn completed_run(
    outcome: Outcome,
    reason: CompletionReason,
    failures: Vec<FailureEntry>,
) -> RunCompleted {
    RunCompleted {
        outcome,
        reason,
        failures,
        final_counts: None,
        completed_at: at(3) + Duration::nanoseconds(1),
    }
}

fn full_metadata() -> EventMetadata {
    EventMetadata {
        actor: "user:42".to_owned(),
        correlation_id: Some(Uuid::new_v4()),
        causation_id: Some(Uuid::new_v4()),
        request_id: Some("req-ünïcode-1".to_owned()),
    }
}

/// Runs that together hold every variant: every event type, every completion reason, every
/// terminal outcome including `cancelled` without a request (as version 1 reserved it), limits,
/// workers and final counts, optional and nullable fields set and unset.
fn histories() -> Vec<(TenantId, RunId, Vec<NewEvent>)> {
    let user = Initiator::user(UserId::new(42).unwrap(), "Zoë Q").unwrap();
    let with = |event, metadata| NewEvent {
        event_id: new_event_id(),
        event,
        metadata,
    };
    let (a, b, c, d) = (new_run_id(), new_run_id(), new_run_id(), new_run_id());
    let (e, f, g) = (new_run_id(), new_run_id(), new_run_id());
    vec![
        (
            tenant(1),
            a,
            vec![
                with(queued(tenant(1), a, user), full_metadata()),
                with(
                    RunEvent::Started(RunStarted {
                        started_at: at(1),
                        worker: None,
                    }),
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
                    RunEvent::Started(RunStarted {
                        started_at: at(1),
                        worker: None,
                    }),
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
        // Limits, a worker, a cancel request, and its acknowledgement with final counts.
        (
            tenant(1),
            e,
            vec![
                with(
                    with_limits(
                        queued(tenant(1), e, Initiator::system()),
                        Some(600),
                        Some(3600),
                        None,
                    ),
                    full_metadata(),
                ),
                with(
                    RunEvent::Started(RunStarted {
                        started_at: at(1),
                        worker: Some(WorkerId::parse("host-3/pid-4242").unwrap()),
                    }),
                    full_metadata(),
                ),
                with(progressed(2, Some(10), vec![]), full_metadata()),
                with(cancel_requested(Some("Wrong tenant ✓")), full_metadata()),
                with(
                    RunEvent::Completed(RunCompleted {
                        final_counts: Some(SummaryCounts {
                            total: Some(10),
                            success: 4,
                            failed: 1,
                            skipped: 1,
                        }),
                        ..completed_run(
                            Outcome::Cancelled,
                            CompletionReason::Cancelled {
                                cancellation: cancellation(Some("Wrong tenant ✓")),
                            },
                            vec![failure("run.cancelled", "stopped at 6 of 10", 1)],
                        )
                    }),
                    full_metadata(),
                ),
            ],
        ),
        // A heartbeat timeout.
        (
            tenant(2),
            f,
            vec![
                with(
                    with_limits(
                        queued(tenant(2), f, Initiator::system()),
                        None,
                        None,
                        Some(30),
                    ),
                    EventMetadata::actor("system"),
                ),
                with(
                    RunEvent::Started(RunStarted {
                        started_at: at(1),
                        worker: None,
                    }),
                    EventMetadata::actor("system"),
                ),
                with(
                    completed(
                        Outcome::Failed,
                        CompletionReason::TimedOut {
                            time_out: LimitPassed {
                                limit: Limit::HeartbeatTimeout,
                                limit_seconds: LimitSeconds::parse("limit", 30).unwrap(),
                                passed_at: at(2) + Duration::microseconds(7),
                                last_heartbeat_at: Some(at(1) + Duration::microseconds(7)),
                            },
                        },
                        vec![failure("run.heartbeat_timeout", "No heartbeat for 30 s", 1)],
                    ),
                    EventMetadata::actor("sweeper"),
                ),
            ],
        ),
        // Cancelled while queued, without a reason.
        (
            tenant(1),
            g,
            vec![
                with(
                    queued(tenant(1), g, Initiator::system()),
                    EventMetadata::actor("cli"),
                ),
                with(
                    completed(
                        Outcome::Cancelled,
                        CompletionReason::Cancelled {
                            cancellation: cancellation(None),
                        },
                        vec![],
                    ),
                    EventMetadata::actor("cli"),
                ),
            ],
        ),
    ]
}

fn with_limits(
    queued: RunEvent,
    start: Option<i64>,
    run: Option<i64>,
    heartbeat: Option<i64>,
) -> RunEvent {
    let RunEvent::Queued(queued) = queued else {
        unreachable!("a Queued event")
    };
    RunEvent::Queued(RunQueued {
        limits: RunLimits::from_seconds(start, run, heartbeat).unwrap(),
        ..queued
    })
}

fn cancellation(reason: Option<&str>) -> RunCancelRequested {
    RunCancelRequested {
        reason: reason.map(str::to_owned),
        requested_at: at(2) + Duration::microseconds(999_999),
    }
}

fn cancel_requested(reason: Option<&str>) -> RunEvent {
    RunEvent::CancelRequested(cancellation(reason))
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
            assert_eq!(stored.schema_version, new.event.schema_version());
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
