//! Stored payloads: every variant round-trips, the reserved shapes of version 1 decode, and the
//! event catalog shows what the code writes (and, for older versions, what it once wrote).

use serde_json::{Value, json};

use super::*;
use crate::limits::LimitSeconds;

fn all_limits() -> RunLimits {
    limits(Some(600), Some(3600), Some(300))
}

/// One event of every shape the core writes: the catalog's, and more.
fn every_shape() -> Vec<RunEvent> {
    let mut events = catalog_examples();
    events.extend([
        queued(),
        RunEvent::Queued(RunQueued {
            initiator: Initiator::system(),
            identity: json!({}),
            context: json!({}),
            ..queued_payload()
        }),
        RunEvent::Queued(RunQueued {
            limits: limits(None, Some(86_400), None),
            ..queued_payload()
        }),
        started(),
        RunEvent::Started(RunStarted {
            started_at: at(1),
            worker: Some(worker("sync-7d9f8/pid-4242")),
        }),
        progressed_success(1),
        progressed(
            delta(8, 2, 1),
            Some(11),
            vec![
                entry("graph.throttled", "Throttled (retrying)", 2),
                entry("graph.not_found", "Policy not found", 1),
            ],
        ),
        progressed(ProgressDelta::default(), Some(0), Vec::new()),
        cancel_requested(None, 2),
        timed_out(
            Limit::StartDeadline,
            600,
            at(10),
            None,
            at(11),
            "Not started",
        ),
        timed_out(
            Limit::RunDeadline,
            3600,
            at(61),
            Some(at(50)),
            at(62),
            "Not done",
        ),
        timed_out(
            Limit::HeartbeatTimeout,
            300,
            at(6),
            None,
            at(7),
            "No heartbeat",
        ),
        cancelled(cancel_request(None, 2), 2),
    ]);
    events.extend(Outcome::ALL.iter().map(|&outcome| completed(outcome)));
    events
}

#[test]
fn every_event_round_trips_through_its_payload() {
    for event in every_shape() {
        let decoded = RunEvent::from_payload(event.event_type(), event.payload());
        assert_eq!(decoded.ok().as_ref(), Some(&event), "{event:?}");
    }
}

#[test]
fn every_event_round_trips_through_payload_text() {
    // The store keeps JSONB: the payload must survive a trip through text too.
    for event in every_shape() {
        let text = event.payload().to_string();
        let payload: Value = serde_json::from_str(&text).expect("valid JSON");
        let decoded = RunEvent::from_payload(event.event_type(), payload);
        assert_eq!(decoded.ok().as_ref(), Some(&event), "{text}");
    }
}

#[test]
fn stored_type_names_and_versions_are_literals() {
    let events = [
        queued(),
        started(),
        progressed_success(1),
        RunEvent::CancelRequested(cancel_request(None, 2)),
        completed(Outcome::Failed),
    ];
    let stored: Vec<(&str, i32)> = events
        .iter()
        .map(|e| (e.event_type(), e.schema_version()))
        .collect();
    assert_eq!(
        stored,
        [
            ("Queued", 2),
            ("Started", 2),
            ("Progressed", 1),
            ("CancelRequested", 1),
            ("Completed", 2)
        ]
    );
    let names: Vec<&str> = stored.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, RunEvent::TYPES);
    for (name, version) in stored {
        assert_eq!(RunEvent::current_schema_version(name), Some(version));
    }
    assert_eq!(RunEvent::current_schema_version("queued"), None);
    assert_eq!(RunEvent::current_schema_version("Renamed"), None);
}

#[test]
fn completion_reason_tags_are_the_stored_ones() {
    for event in every_shape() {
        if let RunEvent::Completed(completed) = &event {
            assert_eq!(event.payload()["reason"], completed.reason.as_str());
        }
    }
}

#[test]
fn the_reserved_cancelled_of_version_one_still_decodes() {
    // Before the cancel path existed, `cancelled` was reserved: it decoded without a request.
    let payload = json!({
        "outcome": "cancelled",
        "reason": "finished",
        "completed_at": "2026-01-17T22:28:00Z",
    });
    let event = RunEvent::from_payload("Completed", payload).expect("a valid payload");
    assert_eq!(event, completed(Outcome::Cancelled));
    let run = snapshot(&[queued(), started(), event]);
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.outcome, Outcome::Cancelled);
    assert_eq!(run.cancel_requested, None);
    // And a cancelled run is as final as any other.
    check(
        &[queued(), started(), completed(Outcome::Cancelled)],
        complete(Some(Outcome::Succeeded)),
        invalid(CommandKind::Complete, RunStatus::Completed),
    );
}

#[test]
fn optional_fields_may_be_absent_from_payloads() {
    let progressed_payload = json!({
        "delta": {"success": 1},
        "reported_at": "2026-01-17T22:27:00Z",
    });
    assert_eq!(
        RunEvent::from_payload("Progressed", progressed_payload).ok(),
        Some(progressed_success(1))
    );
    let started_payload = json!({"started_at": "2026-01-17T22:26:00Z"});
    assert_eq!(
        RunEvent::from_payload("Started", started_payload).ok(),
        Some(started())
    );
    let mut queued_payload = queued().payload();
    queued_payload["limits"] = json!({});
    assert_eq!(
        RunEvent::from_payload("Queued", queued_payload).ok(),
        Some(queued())
    );
    let cancel_payload = json!({"requested_at": "2026-01-17T22:27:00Z"});
    assert_eq!(
        RunEvent::from_payload("CancelRequested", cancel_payload).ok(),
        Some(RunEvent::CancelRequested(cancel_request(None, 2)))
    );
}

#[test]
fn payloads_that_do_not_match_their_type_are_errors() {
    let cases = [
        ("Renamed", started().payload()),
        ("queued", queued().payload()),
        ("Queued", started().payload()),
        ("Started", json!({})),
        ("Started", json!({"started_at": "yesterday"})),
        (
            "Started",
            json!({"started_at": "2026-01-17T22:26:00Z", "worker": "has space"}),
        ),
        ("CancelRequested", json!({"reason": "no time"})),
        (
            "Completed",
            json!({"outcome": "won", "reason": "finished", "completed_at": "2026-01-17T22:28:00Z"}),
        ),
        (
            "Completed",
            json!({"outcome": "failed", "reason": "finished", "completed_at": "2026-01-17T22:28:00Z",
            "failures": [{"code": "has space", "message": "m", "count": 1}]}),
        ),
        (
            "Completed",
            json!({"outcome": "failed", "reason": "timed_out", "completed_at": "2026-01-17T22:28:00Z"}),
        ),
        (
            "Completed",
            json!({"outcome": "failed", "reason": "slept", "completed_at": "2026-01-17T22:28:00Z"}),
        ),
        (
            "Completed",
            json!({"outcome": "failed", "completed_at": "2026-01-17T22:28:00Z"}),
        ),
        (
            "Completed",
            json!({"outcome": "failed", "reason": "timed_out", "completed_at": "2026-01-17T22:28:00Z",
            "time_out": {"limit": "heartbeat_timeout", "limit_seconds": 0,
                "passed_at": "2026-01-17T22:31:00Z", "last_heartbeat_at": null}}),
        ),
        (
            "Completed",
            json!({"outcome": "cancelled", "reason": "cancelled", "completed_at": "2026-01-17T22:28:00Z"}),
        ),
    ];
    for (event_type, payload) in cases {
        assert!(
            RunEvent::from_payload(event_type, payload.clone()).is_err(),
            "{event_type} {payload}"
        );
    }
    let mut payload = queued().payload();
    payload["tenant_id"] = json!(0);
    assert!(RunEvent::from_payload("Queued", payload).is_err());
    let mut payload = queued().payload();
    payload["run_identity_hash"] =
        json!("E51B876FC8AA4F8084E71E479F745509CC846DE29C430DD5C56505AEEADF9C91");
    assert!(RunEvent::from_payload("Queued", payload).is_err());
    // Version 2 of `Queued` requires its limits (the store upcasts version 1 to none).
    let mut payload = queued().payload();
    payload.as_object_mut().expect("an object").remove("limits");
    assert!(RunEvent::from_payload("Queued", payload).is_err());
    for seconds in [0, -1, i64::from(LimitSeconds::MAX) + 1] {
        let mut payload = queued().payload();
        payload["limits"]["run_deadline_seconds"] = json!(seconds);
        assert!(
            RunEvent::from_payload("Queued", payload).is_err(),
            "{seconds}"
        );
    }
}

#[test]
fn unknown_payload_fields_are_ignored_on_read() {
    let mut payload = started().payload();
    payload["added_later"] = json!(true);
    assert_eq!(
        RunEvent::from_payload("Started", payload).ok(),
        Some(started())
    );
    // Also beside the reason of a completion, which is read with the rest of the payload.
    for event in [completed(Outcome::Succeeded), dispatch_failed()] {
        let mut payload = event.payload();
        payload["added_later"] = json!({"x": 1});
        assert_eq!(
            RunEvent::from_payload("Completed", payload).ok(),
            Some(event)
        );
    }
}

/// The one event `command` decides to after `history`.
#[track_caller]
fn decided(history: &[RunEvent], command: RunCommand) -> RunEvent {
    match decide(&replay(history), command).as_deref() {
        Ok([event]) => event.clone(),
        other => panic!("not one event: {other:?}"),
    }
}

/// The events whose payloads `docs/event-catalog.md` shows at their current versions, in the
/// order it shows them: each is what `decide` makes of a command, so the examples are
/// consistent with the rules as well as with the format.
fn catalog_examples() -> Vec<RunEvent> {
    let RunCommand::Queue(queue) = queue() else {
        unreachable!("queue() queues")
    };
    let queued = decided(
        &[],
        RunCommand::Queue(QueueRun {
            limits: all_limits(),
            ..queue
        }),
    );
    let started = decided(
        std::slice::from_ref(&queued),
        RunCommand::Start(Start {
            worker: Some(worker("w1")),
            at: at(1),
        }),
    );
    let running = [queued.clone(), started.clone()];
    let progressed = decided(
        &running,
        report(
            delta(8, 2, 0),
            Some(10),
            vec![report_failure("graph.throttled", "Throttled (retrying)", 2)],
        ),
    );
    let progressing = [queued.clone(), started.clone(), progressed.clone()];
    let cancel_requested = decided(&running, cancel(Some("Wrong tenant selected"), 2));
    let finished = decided(&progressing, complete(Some(Outcome::PartiallySucceeded)));
    let finished_with_final_counts = decided(
        &running,
        RunCommand::Complete(Complete {
            outcome: None,
            final_counts: Some(SummaryCounts {
                total: Some(10),
                success: 9,
                failed: 1,
                skipped: 0,
            }),
            failures: vec![report_failure("graph.not_found", "Policy not found", 1)],
            at: at(3),
        }),
    );
    let dispatch_failed = decided(std::slice::from_ref(&queued), fail_dispatch());
    let timed_out = decided(
        &running,
        time_out(at(7), Some(at(1) + TimeDelta::seconds(30))),
    );
    let cancelled = decided(
        &[queued.clone(), started.clone(), cancel_requested.clone()],
        complete(Some(Outcome::Cancelled)),
    );
    vec![
        queued,
        started,
        progressed,
        cancel_requested,
        finished,
        finished_with_final_counts,
        dispatch_failed,
        timed_out,
        cancelled,
    ]
}

/// A `json` code block of the catalog: the stored type and schema version its label names
/// (```` ```json Queued v2 ````), and the payload.
#[derive(Debug, PartialEq)]
struct Example {
    event_type: String,
    schema_version: i32,
    payload: Value,
}

/// The `json` code blocks of a markdown text, parsed; each must be labelled `Type vN`.
fn json_blocks(markdown: &str) -> Vec<Example> {
    markdown
        .split("```json")
        .skip(1)
        .map(|rest| {
            let (label, body) = rest.split_once('\n').unwrap_or_default();
            let (event_type, version) = label
                .trim()
                .split_once(" v")
                .unwrap_or_else(|| panic!("a json block labelled `Type vN`, not {label:?}"));
            let block = body.split("```").next().unwrap_or_default();
            Example {
                event_type: event_type.to_owned(),
                schema_version: version.parse().expect("a version number"),
                payload: serde_json::from_str(block).unwrap_or_else(|e| panic!("{e} in\n{block}")),
            }
        })
        .collect()
}

const CATALOG: &str = include_str!("../../../../../docs/event-catalog.md");

#[test]
fn event_catalog_examples_are_what_the_code_writes() {
    let current: Vec<Example> = json_blocks(CATALOG)
        .into_iter()
        .filter(|e| RunEvent::current_schema_version(&e.event_type) == Some(e.schema_version))
        .collect();
    let written: Vec<Example> = catalog_examples()
        .iter()
        .map(|event| Example {
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            payload: event.payload(),
        })
        .collect();
    assert_eq!(current, written);
}

/// The stored version-1 histories of `tests-vectors/v1-histories.json`, as examples.
fn stored_v1_events() -> Vec<Example> {
    let vectors: Value =
        serde_json::from_str(include_str!("../../../tests-vectors/v1-histories.json"))
            .expect("valid JSON");
    let histories = vectors["histories"].as_array().expect("histories");
    histories
        .iter()
        .flat_map(|history| history["events"].as_array().expect("events"))
        .map(|event| Example {
            event_type: event["event_type"].as_str().expect("a type").to_owned(),
            schema_version: i32::try_from(event["schema_version"].as_i64().expect("a version"))
                .expect("small"),
            payload: event["payload"].clone(),
        })
        .collect()
}

#[test]
fn event_catalog_examples_of_older_versions_are_stored_fixtures() {
    // The older versions' examples are what the code of that version wrote; the store's
    // upcasters are tested on the same payloads (tests/it/store/upcast.rs).
    let stored = stored_v1_events();
    let older: Vec<Example> = json_blocks(CATALOG)
        .into_iter()
        .filter(|e| RunEvent::current_schema_version(&e.event_type) != Some(e.schema_version))
        .collect();
    assert!(!older.is_empty());
    for example in &older {
        assert!(
            stored.contains(example),
            "the catalog's {} v{} example is not a stored fixture",
            example.event_type,
            example.schema_version
        );
    }
}

#[test]
fn event_catalog_has_a_section_and_an_example_for_every_type_and_version() {
    let examples = json_blocks(CATALOG);
    for event_type in RunEvent::TYPES {
        let current = RunEvent::current_schema_version(event_type).expect("a known type");
        for version in 1..=current {
            let heading = format!("## `{event_type}` (version {version})");
            assert!(CATALOG.contains(&heading), "no section {heading}");
            assert!(
                examples
                    .iter()
                    .any(|e| e.event_type == event_type && e.schema_version == version),
                "no example of {event_type} v{version}"
            );
        }
    }
    assert!(
        examples
            .iter()
            .all(|e| RunEvent::current_schema_version(&e.event_type)
                .is_some_and(|current| (1..=current).contains(&e.schema_version))),
        "an example of a type or version the code does not know"
    );
}
