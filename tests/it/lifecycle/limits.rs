//! Each limit ends its run at its bound and not a nanosecond before; heartbeats (and progress
//! reports) keep a run alive; a run that never heartbeated is measured from its start; missing
//! limits take the run type's and the server's defaults, which the `Queued` event records.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use runledger_api::auth::Role;
use runledger_api::runs_commands::limits::LimitDefaults;
use runledger_core::{LimitSeconds, RunLimits, RunType};
use serde_json::{Value, json};

use super::support::{Lab, USER, micros, nanosecond};
use crate::api::support::runs_path;
use crate::helpers::verbs::at;

/// Asserts `run` (as the API shows it) timed out by `limit`, passed at `passed_at`, decided at
/// `decided_at`, measured from `last_heartbeat_at`.
#[track_caller]
fn assert_timed_out(
    run: &Value,
    limit: &str,
    code: &str,
    passed_at: i64,
    decided_at: i64,
    last_heartbeat_at: Option<i64>,
) {
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["outcome"], "failed", "{run:#}");
    assert_eq!(run["completion_reason"], "timed_out", "{run:#}");
    assert_eq!(run["completed_at"], micros(at(decided_at)), "{run:#}");
    let time_out = &run["time_out"];
    assert_eq!(time_out["limit"], limit, "{run:#}");
    assert_eq!(time_out["code"], code, "{run:#}");
    assert_eq!(time_out["passed_at"], micros(at(passed_at)), "{run:#}");
    assert_eq!(
        time_out["last_heartbeat_at"],
        json!(last_heartbeat_at.map(|s| micros(at(s)))),
        "{run:#}"
    );
    let codes: Vec<&Value> = run["failure_summary"]
        .as_array()
        .expect("a failure summary")
        .iter()
        .map(|entry| &entry["code"])
        .collect();
    assert_eq!(codes, vec![&json!(code)], "{run:#}");
}

#[tokio::test]
async fn a_start_deadline_ends_a_queued_run_at_its_bound_and_frees_its_identity() {
    let lab = Lab::new().await;
    let mut sweeper = lab.sweeper();
    let id = lab
        .queue(
            json!({"scope": "all"}),
            json!({"start_deadline_seconds": 300}),
        )
        .await;

    lab.set(at(300) - nanosecond());
    let before = lab.sweep(&mut sweeper).await;
    assert_eq!((before.candidates, before.timed_out), (0, 0));
    assert_eq!(lab.shown(&id).await["status"], "queued");

    lab.at(300);
    let report = lab.sweep(&mut sweeper).await;
    assert_eq!((report.candidates, report.timed_out), (1, 1), "{report:?}");
    assert_timed_out(
        &lab.shown(&id).await,
        "start_deadline",
        "run.start_deadline_exceeded",
        300,
        300,
        None,
    );
    // The identity is free again: the same operation queues a new run.
    let again = lab.queue(json!({"scope": "all"}), json!({})).await;
    assert_ne!(again, id);
    // Nothing more to do: the next round finds nothing.
    assert_eq!(lab.sweep(&mut sweeper).await.candidates, 0);
}

#[tokio::test]
async fn a_run_deadline_ends_a_running_run_at_its_bound() {
    let lab = Lab::new().await;
    let mut sweeper = lab.sweeper();
    let id = lab
        .queue(json!({}), json!({"run_deadline_seconds": 3600}))
        .await;
    lab.at(10);
    lab.start(&id, "w1").await;
    // Heartbeats do not extend a run deadline.
    lab.at(3000);
    assert_eq!(lab.heartbeat(&id).await.status, StatusCode::OK);

    lab.set(at(3610) - nanosecond());
    assert_eq!(lab.sweep(&mut sweeper).await.timed_out, 0);
    assert_eq!(lab.shown(&id).await["status"], "running");

    lab.at(3615);
    assert_eq!(lab.sweep(&mut sweeper).await.timed_out, 1);
    assert_timed_out(
        &lab.shown(&id).await,
        "run_deadline",
        "run.deadline_exceeded",
        3610,
        3615,
        Some(3000),
    );
}

#[tokio::test]
async fn a_heartbeat_timeout_ends_a_run_at_its_bound_from_the_last_heartbeat_and_notifies() {
    let lab = Lab::new().await;
    let mut sweeper = lab.sweeper();
    let id = lab
        .queue(json!({}), json!({"heartbeat_timeout_seconds": 60}))
        .await;
    lab.at(10);
    lab.start(&id, "w1").await;
    lab.at(40);
    let beat = lab.heartbeat(&id).await;
    assert_eq!(beat.status, StatusCode::OK, "{:#}", beat.body);
    assert_eq!(beat.body["run"]["last_heartbeat_at"], micros(at(40)));
    assert_eq!(beat.body["run"]["heartbeat_deadline_at"], micros(at(100)));

    lab.set(at(100) - nanosecond());
    assert_eq!(lab.sweep(&mut sweeper).await.timed_out, 0);
    let alive = lab.shown(&id).await;
    assert_eq!(alive["status"], "running");
    assert_eq!(alive["last_heartbeat_at"], micros(at(40)));
    assert_eq!(alive["heartbeat_deadline_at"], micros(at(100)));

    lab.at(100);
    assert_eq!(lab.sweep(&mut sweeper).await.timed_out, 1);
    let run = lab.shown(&id).await;
    assert_timed_out(
        &run,
        "heartbeat_timeout",
        "run.heartbeat_timeout",
        100,
        100,
        Some(40),
    );
    // The event records what the decision was measured from: an auditor needs nothing else.
    let events = lab.events(&id).await;
    let completed = &events.last().expect("events").payload;
    assert_eq!(completed["reason"], "timed_out");
    assert_eq!(completed["time_out"]["limit_seconds"], 60);
    assert_eq!(completed["time_out"]["last_heartbeat_at"], json!(at(40)));

    // The initiator is told why it ended.
    let user = lab.api.user_token(lab.t, Role::Reader, USER).await;
    let feed = lab.api.get("/v1/notifications", &user).await;
    let notice = &feed.body["notifications"][0];
    assert_eq!(
        notice["title"], "Inventory sync timed out",
        "{:#}",
        feed.body
    );
    assert!(
        notice["body"]
            .as_str()
            .unwrap()
            .starts_with("Inventory sync timed out: No heartbeat for 60 s since the last one at"),
        "{notice:#}"
    );
}

#[tokio::test]
async fn a_run_heartbeating_in_time_is_never_timed_out() {
    let lab = Lab::new().await;
    let mut sweeper = lab.sweeper();
    let id = lab
        .queue(json!({}), json!({"heartbeat_timeout_seconds": 60}))
        .await;
    lab.start(&id, "w1").await;
    let mut last = 0;
    for beat in 1..=12 {
        last = beat * 59;
        lab.at(last);
        // Every third sign of life is a progress report, which counts as a heartbeat.
        let answer = if beat % 3 == 0 {
            lab.command(&id, "/progress", &json!({"success": 1})).await
        } else {
            lab.heartbeat(&id).await
        };
        assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
        assert_eq!(answer.body["cancel_requested"], false);
        lab.set(at(last + 60) - nanosecond());
        let report = lab.sweep(&mut sweeper).await;
        assert_eq!(report.timed_out, 0, "beat {beat}: {report:?}");
    }
    assert_eq!(lab.shown(&id).await["status"], "running");

    // Once it stops, it is ended a timeout after its last sign of life.
    lab.at(last + 60);
    assert_eq!(lab.sweep(&mut sweeper).await.timed_out, 1);
    assert_timed_out(
        &lab.shown(&id).await,
        "heartbeat_timeout",
        "run.heartbeat_timeout",
        last + 60,
        last + 60,
        Some(last),
    );
}

#[tokio::test]
async fn a_run_started_but_never_heartbeated_is_measured_from_its_start() {
    let lab = Lab::new().await;
    let mut sweeper = lab.sweeper();
    let id = lab
        .queue(json!({}), json!({"heartbeat_timeout_seconds": 60}))
        .await;
    // Queued a long while: the heartbeat timeout binds only once started.
    lab.at(500);
    assert_eq!(lab.sweep(&mut sweeper).await.candidates, 0);
    lab.start(&id, "w1").await;
    let shown = lab.shown(&id).await;
    assert_eq!(shown["last_heartbeat_at"], Value::Null);
    assert_eq!(shown["heartbeat_deadline_at"], micros(at(560)));

    lab.set(at(560) - nanosecond());
    assert_eq!(lab.sweep(&mut sweeper).await.timed_out, 0);
    lab.at(560);
    assert_eq!(lab.sweep(&mut sweeper).await.timed_out, 1);
    let run = lab.shown(&id).await;
    assert_timed_out(
        &run,
        "heartbeat_timeout",
        "run.heartbeat_timeout",
        560,
        560,
        None,
    );
    assert!(
        run["failure_summary"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("No heartbeat within 60 s of starting"),
        "{run:#}"
    );
}

fn seconds(s: i64) -> Option<LimitSeconds> {
    Some(LimitSeconds::parse("test", s).expect("a valid limit"))
}

#[tokio::test]
async fn missing_limits_take_the_run_types_then_the_servers_defaults_and_the_event_records_them() {
    let mut lab = Lab::new().await;
    lab.api.reconfigure(|config| {
        config.limits = LimitDefaults {
            server: RunLimits {
                start_deadline_seconds: seconds(600),
                run_deadline_seconds: seconds(7200),
                heartbeat_timeout_seconds: None,
            },
            by_type: BTreeMap::from([(
                RunType::parse("inventory.sync").unwrap(),
                RunLimits {
                    start_deadline_seconds: seconds(300),
                    run_deadline_seconds: None,
                    heartbeat_timeout_seconds: seconds(60),
                },
            )]),
        };
    });
    let sync = lab
        .queue(json!({}), json!({"heartbeat_timeout_seconds": 30}))
        .await;
    let queued = &lab.events(&sync).await[0];
    assert_eq!(queued.schema_version, 2);
    assert_eq!(
        queued.payload["limits"],
        json!({"start_deadline_seconds": 300, "run_deadline_seconds": 7200, "heartbeat_timeout_seconds": 30})
    );
    let shown = lab.shown(&sync).await;
    assert_eq!(shown["limits"], queued.payload["limits"]);
    assert_eq!(shown["start_deadline_at"], micros(at(300)));
    assert_eq!(shown["run_deadline_at"], Value::Null, "not started yet");

    let other = lab
        .post(
            &runs_path(lab.t),
            &json!({"type": "backup.policy_snapshot"}),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{:#}", other.body);
    assert_eq!(
        other.body["run"]["limits"],
        json!({"start_deadline_seconds": 600, "run_deadline_seconds": 7200, "heartbeat_timeout_seconds": null})
    );
}

#[tokio::test]
async fn a_limit_out_of_bounds_is_refused_naming_it_and_nothing_is_stored() {
    let lab = Lab::new().await;
    for (field, seconds) in [
        ("start_deadline_seconds", json!(0)),
        ("run_deadline_seconds", json!(2_592_001)),
        ("heartbeat_timeout_seconds", json!(-5)),
    ] {
        let answer = lab
            .post(
                &runs_path(lab.t),
                &json!({"type": "inventory.sync", field: seconds}),
            )
            .await;
        let problem = answer.assert_problem(StatusCode::BAD_REQUEST, Some(field));
        assert!(
            problem["detail"].as_str().unwrap().contains("2592000"),
            "{problem:#}"
        );
    }
    let not_a_number = lab
        .post(
            &runs_path(lab.t),
            &json!({"type": "inventory.sync", "run_deadline_seconds": "soon"}),
        )
        .await;
    not_a_number.assert_problem(StatusCode::BAD_REQUEST, Some("run_deadline_seconds"));
    assert_eq!(lab.api.event_count().await, 0);
}
