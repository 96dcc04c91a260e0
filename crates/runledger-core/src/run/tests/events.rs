//! Stored payloads: every variant round-trips, `cancelled` decodes, and the event catalog shows what the code writes.

use serde_json::{Value, json};

use super::*;

/// One event of every shape the core writes.
fn every_shape() -> Vec<RunEvent> {
    let mut events = vec![
        queued(),
        RunEvent::Queued(RunQueued {
            initiator: Initiator::system(),
            identity: json!({}),
            context: json!({}),
            ..queued_payload()
        }),
        started(),
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
        dispatch_failed(),
    ];
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
fn stored_type_names_are_literals() {
    let names: Vec<&str> = [
        queued(),
        started(),
        progressed_success(1),
        completed(Outcome::Failed),
    ]
    .iter()
    .map(RunEvent::event_type)
    .collect();
    assert_eq!(names, ["Queued", "Started", "Progressed", "Completed"]);
    assert_eq!(names, RunEvent::TYPES);
    assert_eq!(RunEvent::SCHEMA_VERSION, 1);
}

#[test]
fn cancelled_decodes_though_no_command_produces_it() {
    assert_eq!(
        serde_json::from_value::<Outcome>(json!("cancelled")).ok(),
        Some(Outcome::Cancelled)
    );
    assert_eq!(
        "cancelled".parse::<Outcome>().ok(),
        Some(Outcome::Cancelled)
    );
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
            "Completed",
            json!({"outcome": "won", "reason": "finished", "completed_at": "2026-01-17T22:28:00Z"}),
        ),
        (
            "Completed",
            json!({"outcome": "failed", "reason": "finished", "completed_at": "2026-01-17T22:28:00Z",
            "failures": [{"code": "has space", "message": "m", "count": 1}]}),
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
}

/// The events whose payloads `docs/event-catalog.md` shows, in the order it shows them.
fn catalog_examples() -> Vec<RunEvent> {
    vec![
        queued(),
        started(),
        progressed(
            delta(8, 2, 0),
            Some(10),
            vec![entry("graph.throttled", "Throttled (retrying)", 2)],
        ),
        completed(Outcome::PartiallySucceeded),
        dispatch_failed(),
    ]
}

/// The `json` code blocks of a markdown text, parsed.
fn json_blocks(markdown: &str) -> Vec<Value> {
    markdown
        .split("```json\n")
        .skip(1)
        .map(|rest| {
            let block = rest.split("```").next().unwrap_or_default();
            serde_json::from_str(block).unwrap_or_else(|e| panic!("{e} in\n{block}"))
        })
        .collect()
}

#[test]
fn event_catalog_examples_are_what_the_code_writes() {
    let catalog = include_str!("../../../../../docs/event-catalog.md");
    let documented = json_blocks(catalog);
    let written: Vec<Value> = catalog_examples().iter().map(RunEvent::payload).collect();
    assert_eq!(documented, written);
}

#[test]
fn unknown_payload_fields_are_ignored_on_read() {
    let mut payload = started().payload();
    payload["added_later"] = json!(true);
    assert_eq!(
        RunEvent::from_payload("Started", payload).ok(),
        Some(started())
    );
}
