//! Exports: every stored field on each line; a tenant exported while writes continue is a
//! consistent cut that verifies offline; edited, cut-short, reordered or filtered exports are
//! verified as what they are; the HTTP route streams the same format.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use runledger_api::auth::Role;
use runledger_audit::format::{LogBound, parse_header};
use runledger_audit::verify::{Anchors, Target};
use runledger_audit::{AuditEvent, Scope};
use runledger_core::TenantId;
use runledger_store::chain::ChainBreak;
use runledger_store::{CommandHandler, LogCursor};
use serde_json::json;

use super::support::{
    anchors, assert_broken, export_anchors, export_text, settle, small_ledger, verify, verify_text,
};
use crate::api::TestApi;
use crate::helpers::TestStore;
use crate::helpers::verbs::{complete, new_run_id, progress, queue, request, start, tenant};

/// The event lines of an export, parsed.
fn event_lines(text: &str) -> Vec<AuditEvent> {
    let lines: Vec<&str> = text.lines().collect();
    lines[1..lines.len() - 1]
        .iter()
        .map(|line| serde_json::from_str(line).expect("an event line"))
        .collect()
}

#[tokio::test]
async fn export_lines_hold_every_stored_field_in_safe_log_order() {
    let store = TestStore::new().await;
    small_ledger(&store).await;
    settle(&store).await;

    let text = export_text(&store, Scope::default()).await;

    let stored = store
        .reader
        .read_log(LogCursor::START, 100, None)
        .await
        .unwrap();
    let exported: Vec<_> = event_lines(&text)
        .into_iter()
        .map(|line| runledger_audit::recorded_event(line).expect("a stored event"))
        .collect();
    assert_eq!(exported, stored);
    let lines: Vec<&str> = text.lines().collect();
    let header = parse_header(lines[0]).expect("a header");
    assert_eq!(
        (header.format.as_str(), header.format_version),
        ("runledger-export", 1)
    );
    assert_eq!(header.scope, Scope::default());
    let end: serde_json::Value = serde_json::from_str(lines[26]).unwrap();
    assert_eq!(
        end,
        json!({"format": "runledger-export-end", "events": 25,
               "last_cursor": LogCursor::after(&stored[24]).to_string()})
    );
    let verified = verify_text(&text, Target::Log, None).unwrap();
    assert!(verified.report.is_valid());
    assert_eq!((verified.report.runs, verified.report.events), (5, 25));
}

/// Queues runs of `t` and takes them through their lifecycle until `stop`.
async fn keep_writing(commands: CommandHandler, t: TenantId, stop: Arc<AtomicBool>) -> usize {
    let mut runs = 0;
    while !stop.load(Ordering::Relaxed) {
        let run = new_run_id();
        let queued = queue(t, run, json!({"run": run.as_uuid()}));
        for command in [queued, start(), progress(1, 0), progress(1, 1), complete()] {
            commands
                .execute(&request(t, run, command))
                .await
                .expect("the command applies");
        }
        runs += 1;
    }
    runs
}

#[tokio::test]
async fn a_tenant_exported_while_writes_continue_verifies_offline_as_a_consistent_cut() {
    let store = TestStore::new().await;
    small_ledger(&store).await;
    let exported_anchors = export_anchors(&store).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = [1, 1, 2]
        .into_iter()
        .map(|t| {
            tokio::spawn(keep_writing(
                store.commands.clone(),
                tenant(t),
                stop.clone(),
            ))
        })
        .collect();

    let mut exports = Vec::new();
    for _ in 0..3 {
        exports.push(
            export_text(
                &store,
                Scope {
                    tenant_id: Some(tenant(1)),
                    ..Scope::default()
                },
            )
            .await,
        );
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        assert!(
            writer.await.unwrap() > 0,
            "the writers wrote during the exports"
        );
    }

    for text in &exports {
        let verified = verify_text(text, Target::Log, Some(anchors(&exported_anchors))).unwrap();
        let report = &verified.report;
        assert!(
            report.is_valid(),
            "{}",
            report.problems().collect::<Vec<_>>().join("\n")
        );
        assert_eq!(report.runs_starting_mid_chain, 0);
        assert_eq!(report.anchors_checked, 1);
        assert!(event_lines(text).iter().all(|event| event.tenant_id == 1));
        // Exactly the tenant's events of the transactions finished when the export began.
        let below_horizon: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE tenant_id = 1 AND tx_id < $1::text::xid8",
        )
        .bind(verified.header.horizon_tx_id.to_string())
        .fetch_one(&store.pool)
        .await
        .unwrap();
        assert_eq!(report.events, below_horizon.unsigned_abs());
    }
    // The database verifies too, all of it.
    assert!(
        verify(&store, Target::Log, Anchors::Stored)
            .await
            .is_valid()
    );
}

#[tokio::test]
async fn an_edited_export_fails_offline_verification_naming_what_changed() {
    let store = TestStore::new().await;
    let (runs, _) = small_ledger(&store).await;
    settle(&store).await;
    let text = export_text(&store, Scope::default()).await;
    let lines: Vec<&str> = text.lines().collect();
    let line_of = |run: runledger_core::RunId, version: u64| {
        lines
            .iter()
            .position(|line| {
                line.contains(&run.to_string()) && line.contains(&format!("\"version\":{version},"))
            })
            .expect("the event's line")
    };
    let edited = |index: usize, line: &str| {
        let mut copy: Vec<&str> = lines.clone();
        copy[index] = line;
        copy.join("\n") + "\n"
    };
    let without = |index: usize| {
        let mut copy: Vec<&str> = lines.clone();
        copy.remove(index);
        copy.join("\n") + "\n"
    };
    let offline = |text: &str| verify_text(text, Target::Log, None).unwrap().report;

    // One byte of a payload.
    let progress_line = lines[line_of(runs[1], 3)];
    assert!(progress_line.contains("\"success\":2"));
    let report = offline(&edited(
        line_of(runs[1], 3),
        &progress_line.replace("\"success\":2", "\"success\":3"),
    ));
    assert_broken(&report, &[(runs[1], 3, ChainBreak::HashMismatch)]);
    assert!(report.line_problems.is_empty());

    // A deleted middle line: a version gap, and an end line that counts one more event.
    let report = offline(&without(line_of(runs[2], 3)));
    assert_broken(
        &report,
        &[(runs[2], 4, ChainBreak::VersionGap { expected: 3 })],
    );
    assert_eq!(
        report.line_problems,
        vec!["the end line counts 25 events, the export holds 24 event lines"]
    );

    // Cut short before the end line.
    let report = offline(&without(lines.len() - 1));
    assert_eq!(
        report.line_problems,
        vec!["the export has no end line: it was cut short"]
    );
    assert!(report.broken_runs.is_empty());

    // A line that is not an event at all.
    let report = offline(&edited(line_of(runs[0], 5), "{\"hello\": \"auditor\"}"));
    assert!(report.line_problems[0].starts_with(&format!(
        "line {}: not an event line",
        line_of(runs[0], 5) + 1
    )));

    // Two lines of different runs trade places: the chains hold, the log order does not.
    let mut swapped: Vec<&str> = lines.clone();
    swapped.swap(line_of(runs[0], 5), line_of(runs[1], 1));
    let report = offline(&(swapped.join("\n") + "\n"));
    assert!(report.broken_runs.is_empty());
    assert!(
        report.line_problems[0].contains("not in log order"),
        "{:?}",
        report.line_problems
    );
    assert!(
        report.summary().ends_with("FAILED (1 bad line)"),
        "{}",
        report.summary()
    );

    // An unknown format version is not read at all.
    let future = text.replacen("\"format_version\":1", "\"format_version\":2", 1);
    assert!(verify_text(&future, Target::Log, None).is_err());
}

#[tokio::test]
async fn an_export_since_a_cursor_starts_mid_chain_and_verifies_from_there() {
    let store = TestStore::new().await;
    let (runs, _) = small_ledger(&store).await;
    settle(&store).await;
    let stored = store
        .reader
        .read_log(LogCursor::START, 100, None)
        .await
        .unwrap();
    // After the third event of the first run, up to the second run's fourth.
    let since = LogBound::Cursor(LogCursor::after(&stored[2]));
    let until = LogBound::Cursor(LogCursor::after(&stored[8]));

    let text = export_text(
        &store,
        Scope {
            since: Some(since),
            until: Some(until),
            ..Scope::default()
        },
    )
    .await;

    let verified = verify_text(&text, Target::Log, None).unwrap();
    let report = &verified.report;
    assert!(report.is_valid(), "{}", report.summary());
    assert_eq!(
        (report.runs, report.events, report.runs_starting_mid_chain),
        (2, 6, 1)
    );
    assert_eq!(verified.header.scope.since, Some(since));
    // An edit is still caught, from the first event present on.
    let edited = text.replacen("\"success\":4", "\"success\":5", 1);
    let report = verify_text(&edited, Target::Log, None).unwrap().report;
    assert_broken(&report, &[(runs[0], 4, ChainBreak::HashMismatch)]);
    // The same range by time holds the same events.
    let by_time = export_text(
        &store,
        Scope {
            since: Some(LogBound::Time(stored[3].recorded_at)),
            until: Some(LogBound::Time(stored[8].recorded_at)),
            ..Scope::default()
        },
    )
    .await;
    assert_eq!(event_lines(&by_time), event_lines(&text));
}

#[tokio::test]
async fn the_export_route_streams_a_tenants_export_that_verifies_offline() {
    let api = TestApi::new().await;
    small_ledger(&api.store).await;
    settle(&api.store).await;
    let auditor = api.token(tenant(2), Role::Auditor).await;
    let get = |query: &str| {
        Request::get(format!("/v1/tenants/2/export{query}"))
            .header(header::AUTHORIZATION, format!("Bearer {auditor}"))
            .body(Body::empty())
            .unwrap()
    };

    let (status, headers, body) = api.send_raw(get("")).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-ndjson");
    let text = String::from_utf8(body.to_vec()).unwrap();
    let verified = verify_text(&text, Target::Log, None).unwrap();
    assert!(verified.report.is_valid());
    assert_eq!((verified.report.runs, verified.report.events), (2, 10));
    assert_eq!(verified.header.scope.tenant_id, Some(tenant(2)));
    // The same lines as the CLI's export of the tenant.
    let cli = export_text(
        &api.store,
        Scope {
            tenant_id: Some(tenant(2)),
            ..Scope::default()
        },
    )
    .await;
    assert_eq!(event_lines(&text), event_lines(&cli));

    let (status, _, body) = api.send_raw(get("?since=yesterday")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["field"], "since");
    let reader = api.token(tenant(2), Role::Reader).await;
    api.get("/v1/tenants/2/export", &reader)
        .await
        .assert_problem(StatusCode::FORBIDDEN, None);
}
