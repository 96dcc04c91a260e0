//! Tampering with stored events as the superuser: a verification of the whole log names every
//! tampered run, the first broken version and why, and no other run; so do a verification of
//! one run and the HTTP verify route.

use axum::http::StatusCode;
use runledger_api::auth::Role;
use runledger_audit::anchor::stored_anchors;
use runledger_audit::verify::{Anchors, Target, verify_run};
use runledger_store::chain::ChainBreak;

use super::support::{assert_broken, export_anchors, small_ledger, verify};
use crate::api::TestApi;
use crate::helpers::TestStore;
use crate::helpers::verbs::tenant;

#[tokio::test]
async fn an_untouched_ledger_verifies_with_its_anchors() {
    let store = TestStore::new().await;
    small_ledger(&store).await;
    export_anchors(&store).await;

    let report = verify(&store, Target::Log, Anchors::Stored).await;

    assert!(report.is_valid(), "{}", report.summary());
    assert_eq!((report.runs, report.events), (5, 25));
    assert_eq!(report.anchors_checked, 1);
    assert_eq!(report.summary(), "verified 5 runs, 25 events, 1 anchor: OK");
    let tenant_two = verify(&store, Target::Tenant(tenant(2)), Anchors::Stored).await;
    assert!(tenant_two.is_valid(), "{}", tenant_two.summary());
    assert_eq!((tenant_two.runs, tenant_two.events), (2, 10));
}

#[tokio::test]
async fn every_tampered_run_is_named_with_its_first_broken_version_and_why() {
    let store = TestStore::new().await;
    let (runs, _) = small_ledger(&store).await;
    let more = super::support::runs_of_five(&store, tenant(1), 2).await;
    let [flipped, metadata, retimed] = [runs[0], runs[1], runs[2]];
    let [deleted, swapped] = [more[0], more[1]];

    // One byte of a payload: `"success": 2` becomes `"success": 3` in the first progress report.
    store
        .tamper(
            flipped,
            "UPDATE events SET payload = replace(payload::text, '\"success\": 2', \
             '\"success\": 3')::jsonb WHERE run_id = $1 AND version = 3",
        )
        .await;
    store
        .tamper(
            metadata,
            "UPDATE events SET metadata = jsonb_set(metadata, '{actor}', '\"mallory\"') \
             WHERE run_id = $1 AND version = 2",
        )
        .await;
    store
        .tamper(
            retimed,
            "UPDATE events SET recorded_at = recorded_at - interval '1 hour' \
             WHERE run_id = $1 AND version = 4",
        )
        .await;
    store
        .tamper(
            deleted,
            "DELETE FROM events WHERE run_id = $1 AND version = 3",
        )
        .await;
    // Versions 2 and 3 trade places (through free numbers: `(run_id, version)` is unique).
    for statement in [
        "UPDATE events SET version = version + 1000 WHERE run_id = $1 AND version IN (2, 3)",
        "UPDATE events SET version = CASE version WHEN 1002 THEN 3 ELSE 2 END \
         WHERE run_id = $1 AND version IN (1002, 1003)",
    ] {
        store.tamper(swapped, statement).await;
    }

    let report = verify(&store, Target::Log, Anchors::None).await;

    assert_broken(
        &report,
        &[
            (flipped, 3, ChainBreak::HashMismatch),
            (metadata, 2, ChainBreak::HashMismatch),
            (retimed, 4, ChainBreak::HashMismatch),
            (deleted, 4, ChainBreak::VersionGap { expected: 3 }),
            // In log order the event now numbered 3 comes first, where 2 was due; 2 follows.
            (swapped, 3, ChainBreak::OrderChanged),
        ],
    );
    assert_eq!(report.runs, 7);
    let lines: Vec<String> = report.problems().collect();
    assert!(lines[0].contains(&flipped.to_string()) && lines[0].contains("version 3"));
    assert!(lines[3].contains("version 3 is missing"), "{}", lines[3]);
    assert!(lines[4].contains("order of events changed"), "{}", lines[4]);
    assert_eq!(
        report.summary(),
        "verified 7 runs, 34 events: FAILED (5 broken runs)"
    );

    // One run's verification (`runledger verify --tenant --run`) says the same of it.
    for (run, version, reason) in [
        (swapped, 3, ChainBreak::OrderChanged),
        (deleted, 4, ChainBreak::VersionGap { expected: 3 }),
    ] {
        let one = verify(&store, Target::Run(tenant(1), run), Anchors::None).await;
        assert_broken(&one, &[(run, version, reason)]);
    }
}

#[tokio::test]
async fn tampering_after_an_anchor_leaves_the_anchor_unchanged_but_the_chain_broken() {
    let store = TestStore::new().await;
    let (runs, _) = small_ledger(&store).await;
    export_anchors(&store).await;
    store
        .tamper(
            runs[1],
            "UPDATE events SET payload = payload || '{\"x\": 1}' WHERE run_id = $1 AND version = 2",
        )
        .await;

    let report = verify(&store, Target::Log, Anchors::Stored).await;

    // An anchor digests the stored hashes; the changed payload shows in its run's chain.
    assert!(report.anchor_failures.is_empty());
    assert_broken(&report, &[(runs[1], 2, ChainBreak::HashMismatch)]);
    assert_eq!(stored_anchors(&store.pool).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_verify_route_answers_a_runs_first_invalid_event() {
    let api = TestApi::new().await;
    let (runs, foreign) = small_ledger(&api.store).await;
    let auditor = api.token(tenant(1), Role::Auditor).await;
    api.store
        .tamper(
            runs[0],
            "UPDATE events SET recorded_at = recorded_at + interval '1 microsecond' \
             WHERE run_id = $1 AND version = 4",
        )
        .await;
    let path = |run| format!("/v1/tenants/1/runs/{run}/verify");

    let intact = api.get(&path(runs[1]), &auditor).await;
    assert_eq!(intact.status, StatusCode::OK, "{:#}", intact.body);
    assert_eq!(
        intact.body,
        serde_json::json!({"valid": true, "events_checked": 5, "first_invalid": null})
    );

    let tampered = api.get(&path(runs[0]), &auditor).await;
    assert_eq!(tampered.status, StatusCode::OK);
    assert_eq!(tampered.body["valid"], false);
    assert_eq!(tampered.body["events_checked"], 5);
    let invalid = &tampered.body["first_invalid"];
    assert_eq!(invalid["version"], 4);
    assert_eq!(invalid["reason"], "hash_mismatch");
    let stored = api
        .store
        .reader
        .read_stream(tenant(1), runs[0])
        .await
        .unwrap();
    assert_eq!(invalid["event_id"], stored[3].event_id.to_string());
    assert_eq!(invalid["position"], stored[3].position);
    let library = verify_run(&api.store.reader, tenant(1), runs[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        invalid["detail"],
        library.first_invalid.unwrap().explanation()
    );

    // Another tenant's run answers like a missing one; a reader may not verify.
    api.get(&path(foreign[0]), &auditor)
        .await
        .assert_problem(StatusCode::NOT_FOUND, None);
    let reader = api.token(tenant(1), Role::Reader).await;
    api.get(&path(runs[1]), &reader)
        .await
        .assert_problem(StatusCode::FORBIDDEN, None);
}
