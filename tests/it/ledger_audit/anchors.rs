//! Anchors: deleting the newest events of a run, or a whole run, leaves every chain intact; an
//! anchor exported earlier catches it (from the database and from an export), while the stored
//! anchors catch it only until the tamperer rewrites them too. Anchors chain, are append-only,
//! and are recorded on schedule.

use std::time::Duration;

use runledger_audit::anchor::{
    AnchorBreak, AnchorOutcome, AnchorPolicy, TenantState, anchor_if_due, check_anchor_chain,
    record_anchor, run_anchoring, stored_anchors,
};
use runledger_audit::verify::{AnchorFailure, AnchorProblem, Anchors, Target};
use runledger_audit::{AuditError, Scope};

use super::support::{
    anchors, delete_newest_events, export_anchors, export_text, runs_of_five, settle, small_ledger,
    tamper_table, verify, verify_text,
};
use crate::helpers::verbs::tenant;
use crate::helpers::{LOG_WAIT, TestStore};

/// Asserts that the first anchor failure says tenant `t` lost `events` events and `runs` runs.
#[track_caller]
fn assert_tenant_lost(report: &runledger_audit::Report, t: i64, events: u64, runs: u64) {
    assert_eq!(report.anchor_failures.len(), 1, "{}", report.summary());
    assert_anchor_says_tenant_lost(&report.anchor_failures[0], t, events, runs);
    assert!(!report.is_valid());
}

/// Asserts that `failure` says tenant `t` lost `events` events and `runs` runs.
#[track_caller]
fn assert_anchor_says_tenant_lost(failure: &AnchorFailure, t: i64, events: u64, runs: u64) {
    let AnchorProblem::Tenant {
        tenant: failed,
        anchored,
        found,
    } = &failure.problem
    else {
        panic!("a tenant mismatch: {failure}");
    };
    assert_eq!(*failed, tenant(t), "{failure}");
    assert_eq!(anchored.events - found.events, events, "{failure}");
    assert_eq!(anchored.runs - found.runs, runs, "{failure}");
}

#[tokio::test]
async fn deleting_the_newest_events_of_a_run_is_caught_only_by_an_exported_anchor() {
    let store = TestStore::new().await;
    let (runs, _) = small_ledger(&store).await;
    let exported = export_anchors(&store).await;
    runs_of_five(&store, tenant(1), 1).await;

    delete_newest_events(&store, runs[1], 2).await;

    let chains = verify(&store, Target::Log, Anchors::None).await;
    assert!(chains.is_valid(), "the chains cannot see a deleted tail");
    assert_eq!(chains.events, 28);
    // The stored anchor sees it, as long as the tamperer leaves it alone…
    let stored = verify(&store, Target::Log, Anchors::Stored).await;
    assert_tenant_lost(&stored, 1, 2, 0);
    // …but a superuser can delete (or rewrite) the stored anchors too.
    tamper_table(&store, "DELETE FROM anchors").await;
    let rewritten = verify(&store, Target::Log, Anchors::Stored).await;
    assert!(rewritten.is_valid());
    assert_eq!(rewritten.anchors_checked, 0);
    // The anchor exported before the tampering still catches it, in the database…
    let given = verify(&store, Target::Log, Anchors::Given(anchors(&exported))).await;
    assert_tenant_lost(&given, 1, 2, 0);
    assert!(
        given
            .problems()
            .next()
            .unwrap()
            .starts_with("anchor #1 at "),
        "{}",
        given.problems().next().unwrap()
    );
    let only_tenant_one = verify(
        &store,
        Target::Tenant(tenant(1)),
        Anchors::Given(anchors(&exported)),
    )
    .await;
    assert_tenant_lost(&only_tenant_one, 1, 2, 0);
    let only_tenant_two = verify(
        &store,
        Target::Tenant(tenant(2)),
        Anchors::Given(anchors(&exported)),
    )
    .await;
    assert!(only_tenant_two.is_valid(), "{}", only_tenant_two.summary());
    // …and in an export of the tampered log, offline.
    let export = export_text(&store, Scope::default()).await;
    let offline = verify_text(&export, Target::Log, Some(anchors(&exported))).unwrap();
    assert_tenant_lost(&offline.report, 1, 2, 0);
    assert!(
        verify_text(&export, Target::Log, None)
            .unwrap()
            .report
            .is_valid()
    );
}

#[tokio::test]
async fn deleting_a_whole_run_is_caught_by_an_exported_anchor() {
    let store = TestStore::new().await;
    let (_, runs) = small_ledger(&store).await;
    let exported = export_anchors(&store).await;

    store
        .tamper(runs[0], "DELETE FROM events WHERE run_id = $1")
        .await;
    store
        .tamper(runs[0], "DELETE FROM streams WHERE run_id = $1")
        .await;

    let chains = verify(&store, Target::Log, Anchors::None).await;
    assert!(chains.is_valid());
    assert_eq!((chains.runs, chains.events), (4, 20));
    let given = verify(&store, Target::Log, Anchors::Given(anchors(&exported))).await;
    assert_tenant_lost(&given, 2, 5, 1);
    let export = export_text(&store, Scope::default()).await;
    let offline = verify_text(&export, Target::Log, Some(anchors(&exported))).unwrap();
    assert_tenant_lost(&offline.report, 2, 5, 1);
}

/// The sequences of the anchors a report says fail, in the order it lists them.
fn failed_sequences(report: &runledger_audit::Report) -> Vec<u64> {
    report
        .anchor_failures
        .iter()
        .map(|failure| failure.sequence)
        .collect()
}

/// Asserts that `report` lists exactly `failed` as failing anchors, each as a problem line of
/// its own (what `runledger verify` prints), and that it fails.
#[track_caller]
fn assert_anchors_fail(report: &runledger_audit::Report, failed: &[u64]) {
    assert_eq!(failed_sequences(report), failed, "{}", report.summary());
    for sequence in failed {
        let line = format!("anchor #{sequence} at ");
        assert!(
            report.problems().any(|problem| problem.starts_with(&line)),
            "no problem line for anchor #{sequence}: {:?}",
            report.problems().collect::<Vec<_>>()
        );
    }
    assert!(
        report
            .summary()
            .ends_with(&format!("FAILED ({} anchor failures)", failed.len())),
        "{}",
        report.summary()
    );
}

// Issue 11: `verify` reported only the first failing anchor of each tenant.
#[tokio::test]
async fn verify_reports_every_failing_anchor_not_only_the_first() {
    let store = TestStore::new().await;
    let (runs, _) = small_ledger(&store).await;
    export_anchors(&store).await;
    runs_of_five(&store, tenant(1), 1).await;
    let exported = export_anchors(&store).await;
    assert_eq!(anchors(&exported).len(), 2);

    // Events both anchors cover are deleted: each of them fails, in the database (stored and
    // exported anchors) and offline.
    delete_newest_events(&store, runs[1], 2).await;
    let stored = verify(&store, Target::Log, Anchors::Stored).await;
    assert_anchors_fail(&stored, &[1, 2]);
    for failure in &stored.anchor_failures {
        assert_anchor_says_tenant_lost(failure, 1, 2, 0);
    }
    let given = verify(&store, Target::Log, Anchors::Given(anchors(&exported))).await;
    assert_anchors_fail(&given, &[1, 2]);
    let export = export_text(&store, Scope::default()).await;
    let offline = verify_text(&export, Target::Log, Some(anchors(&exported))).unwrap();
    assert_anchors_fail(&offline.report, &[1, 2]);

    // Both anchors of the kept file edited: each is reported.
    let edited = exported
        .replace("\"event_count\":25", "\"event_count\":23")
        .replace("\"event_count\":30", "\"event_count\":28");
    assert_eq!(anchors(&edited).len(), 2);
    let report = verify(&store, Target::Log, Anchors::Given(anchors(&edited))).await;
    assert_anchors_fail(&report, &[1, 2]);
    assert!(
        report
            .anchor_failures
            .iter()
            .all(|failure| failure.problem == AnchorProblem::Record(AnchorBreak::HashMismatch)),
        "{:?}",
        report.anchor_failures
    );
}

#[tokio::test]
async fn anchors_chain_cover_the_log_and_are_recorded_only_when_it_moved() {
    let store = TestStore::new().await;
    assert_eq!(record_anchor(&store.pool).await.unwrap(), None);
    small_ledger(&store).await;
    settle(&store).await;
    let first = record_anchor(&store.pool)
        .await
        .unwrap()
        .expect("the log moved");
    assert_eq!(record_anchor(&store.pool).await.unwrap(), None);
    runs_of_five(&store, tenant(3), 1).await;
    settle(&store).await;
    let second = record_anchor(&store.pool)
        .await
        .unwrap()
        .expect("the log moved");

    assert_eq!(
        (first.sequence, first.event_count, first.run_count),
        (1, 25, 5)
    );
    assert_eq!(
        (second.sequence, second.event_count, second.run_count),
        (2, 30, 6)
    );
    assert_eq!(second.prev_hash, first.hash);
    assert!(second.cursor > first.cursor);
    assert_eq!(second.tenant(tenant(1)), first.tenant(tenant(1)));
    assert_eq!(first.tenant(tenant(3)), TenantState::default());
    assert_eq!(second.tenant(tenant(3)).events, 5);
    let stored = stored_anchors(&store.pool).await.unwrap();
    assert_eq!(stored, vec![first, second]);
    assert!(check_anchor_chain(&stored).is_empty());
    let report = verify(&store, Target::Log, Anchors::Stored).await;
    assert!(report.is_valid());
    assert_eq!(report.anchors_checked, 2);
}

#[tokio::test]
async fn anchors_are_append_only_and_an_edited_anchor_file_fails() {
    let store = TestStore::new().await;
    small_ledger(&store).await;
    let exported = export_anchors(&store).await;
    let report = verify(&store, Target::Log, Anchors::Stored).await;
    runledger_audit::status::record_verification(&store.pool, "the whole log", &report)
        .await
        .unwrap();

    for statement in [
        "UPDATE anchors SET event_count = 1",
        "DELETE FROM anchors",
        "TRUNCATE anchors",
        "UPDATE verifications SET valid = false",
        "DELETE FROM verifications",
    ] {
        let refused = sqlx::query(statement).execute(&store.pool).await;
        assert!(refused.is_err(), "{statement} was allowed");
    }

    let status = runledger_audit::status::status(&store.pool).await.unwrap();
    assert_eq!(status.last_anchor.map(|anchor| anchor.sequence), Some(1));
    assert_eq!(status.events_after_last_anchor, 0);
    let last = status.last_verification.expect("a recorded verification");
    assert!(last.valid);
    assert_eq!(
        (last.scope.as_str(), last.events, last.anchors_checked),
        ("the whole log", 25, 1)
    );

    // Someone edits the kept file to match a log with two fewer events.
    let edited = exported.replace("\"event_count\":25", "\"event_count\":23");
    assert_ne!(edited, exported);
    let report = verify(&store, Target::Log, Anchors::Given(anchors(&edited))).await;
    assert_eq!(report.anchor_failures.len(), 1);
    assert_eq!(
        report.anchor_failures[0].problem,
        AnchorProblem::Record(AnchorBreak::HashMismatch)
    );
    assert_eq!(report.anchors_checked, 0, "an edited anchor proves nothing");
}

#[tokio::test]
async fn anchors_cannot_be_checked_against_part_of_a_tenant() {
    let store = TestStore::new().await;
    let (runs, _) = small_ledger(&store).await;
    let exported = export_anchors(&store).await;

    let one_run = runledger_audit::verify_database(
        &store.pool,
        Target::Run(tenant(1), runs[0]),
        Anchors::Given(anchors(&exported)),
        &|_| {},
    )
    .await;
    assert!(matches!(one_run, Err(AuditError::AnchorsNeedWholeTenants)));
    let since = export_text(
        &store,
        Scope {
            since: Some("2000-01-01T00:00:00Z".parse().unwrap()),
            ..Scope::default()
        },
    )
    .await;
    assert!(matches!(
        verify_text(&since, Target::Log, Some(anchors(&exported))),
        Err(AuditError::AnchorsNeedWholeTenants)
    ));
}

#[tokio::test]
async fn the_ledger_anchors_after_every_n_events_or_after_a_while() {
    let store = TestStore::new().await;
    let policy = AnchorPolicy {
        every_events: 10,
        every: Duration::from_secs(60),
    };
    runs_of_five(&store, tenant(1), 1).await;
    settle(&store).await;
    assert_eq!(
        anchor_if_due(&store.pool, policy, Duration::ZERO)
            .await
            .unwrap(),
        AnchorOutcome::NotDue
    );
    // Five events are not ten, but a minute has passed.
    let AnchorOutcome::Recorded(by_time) =
        anchor_if_due(&store.pool, policy, Duration::from_secs(61))
            .await
            .unwrap()
    else {
        panic!("an anchor is due after a while");
    };
    assert_eq!(by_time.event_count, 5);
    // Nothing new: not due, however long it has been.
    assert_eq!(
        anchor_if_due(&store.pool, policy, Duration::from_secs(3600))
            .await
            .unwrap(),
        AnchorOutcome::NotDue
    );
    runs_of_five(&store, tenant(1), 2).await;
    settle(&store).await;
    let AnchorOutcome::Recorded(by_count) = anchor_if_due(&store.pool, policy, Duration::ZERO)
        .await
        .unwrap()
    else {
        panic!("an anchor is due after ten events");
    };
    assert_eq!((by_count.sequence, by_count.event_count), (2, 15));
}

#[tokio::test]
async fn the_anchoring_task_records_anchors_until_shutdown() {
    let store = TestStore::new().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_anchoring(
        store.pool.clone(),
        AnchorPolicy {
            every_events: 5,
            every: Duration::ZERO,
        },
        async {
            let _ = stopped.await;
        },
    ));
    runs_of_five(&store, tenant(1), 2).await;

    tokio::time::timeout(LOG_WAIT, async {
        loop {
            let anchored = stored_anchors(&store.pool)
                .await
                .unwrap()
                .last()
                .map_or(0, |anchor| anchor.event_count);
            if anchored == 10 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the task anchored every event");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the task stops on shutdown")
        .unwrap();
}
