//! Support for the audit tests: a small ledger of complete runs, verification of the database
//! and of export text, anchor files, and the superuser's tampering.

use futures_util::TryStreamExt;
use runledger_audit::anchor::{Anchor, record_anchor, stored_anchors};
use runledger_audit::export::export;
use runledger_audit::file::read_anchors;
use runledger_audit::verify::{Anchors, ExportReport, Report, Target, verify_database};
use runledger_audit::{AuditError, Scope, verify_export};
use runledger_core::{RunId, TenantId};
use runledger_store::LogCursor;
use runledger_store::chain::ChainBreak;
use serde_json::json;

use crate::helpers::TestStore;
use crate::helpers::verbs::{complete, new_run_id, progress, request, start, tenant};

/// Runs of five events each (queued, started, progress 2+1, progress 4, completed) in
/// `tenant`, one after the other.
pub(crate) async fn runs_of_five(store: &TestStore, t: TenantId, count: usize) -> Vec<RunId> {
    let mut runs = Vec::new();
    for _ in 0..count {
        let run = new_run_id();
        store.queue_run(t, run, json!({"run": run.as_uuid()})).await;
        for command in [start(), progress(2, 1), progress(4, 0), complete()] {
            store
                .commands
                .execute(&request(t, run, command))
                .await
                .expect("the command applies");
        }
        runs.push(run);
    }
    runs
}

/// Three runs in tenant 1 and two in tenant 2: 25 events.
pub(crate) async fn small_ledger(store: &TestStore) -> (Vec<RunId>, Vec<RunId>) {
    let first = runs_of_five(store, tenant(1), 3).await;
    let second = runs_of_five(store, tenant(2), 2).await;
    (first, second)
}

/// Waits until readers may pass every committed event: transactions of tests running in
/// parallel on other databases of the cluster hold the horizon back for a moment.
pub(crate) async fn settle(store: &TestStore) {
    let committed = store.count("events").await;
    store
        .wait_for_log(
            LogCursor::START,
            usize::try_from(committed).expect("a count"),
        )
        .await;
}

/// Verifies the database (every committed event: it settles first).
pub(crate) async fn verify(store: &TestStore, target: Target, anchors: Anchors) -> Report {
    settle(store).await;
    verify_database(&store.pool, target, anchors, &|_| {})
        .await
        .expect("the verification runs")
}

/// Records an anchor of every committed event and returns the anchor file, as `runledger
/// anchors export` writes it.
pub(crate) async fn export_anchors(store: &TestStore) -> String {
    settle(store).await;
    record_anchor(&store.pool).await.expect("record an anchor");
    stored_anchors(&store.pool)
        .await
        .expect("read the anchors")
        .iter()
        .map(Anchor::to_line)
        .collect()
}

/// Reads an anchor file.
pub(crate) fn anchors(file: &str) -> Vec<Anchor> {
    read_anchors(file.as_bytes()).expect("an anchor file")
}

/// The export of `scope`, whole, as `runledger export` writes it.
pub(crate) async fn export_text(store: &TestStore, scope: Scope) -> String {
    let chunks = export(store.reader.clone(), scope)
        .await
        .expect("the export starts");
    let chunks: Vec<_> = chunks.try_collect().await.expect("the export completes");
    chunks.into_iter().map(|chunk| chunk.text).collect()
}

/// Verifies export text offline.
pub(crate) fn verify_text(
    text: &str,
    target: Target,
    anchors: Option<Vec<Anchor>>,
) -> Result<ExportReport, AuditError> {
    verify_export(text.as_bytes(), target, anchors)
}

/// Runs `statement` (without parameters) as the superuser with the append-only triggers off,
/// like `TestStore::tamper` does for a run's rows: for tables other than `events`.
pub(crate) async fn tamper_table(store: &TestStore, statement: &str) {
    let mut tx = store.pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .expect("turn the triggers off");
    sqlx::query(statement)
        .execute(&mut *tx)
        .await
        .expect("tamper");
    tx.commit().await.expect("commit the tampering");
}

/// Deletes the newest `count` events of `run` and moves its stream head back, as a careful
/// tamperer would: its chain still verifies.
pub(crate) async fn delete_newest_events(store: &TestStore, run: RunId, count: u64) {
    store
        .tamper(
            run,
            &format!(
                "DELETE FROM events WHERE run_id = $1 AND version > \
             (SELECT max(version) - {count} FROM events WHERE run_id = $1)"
            ),
        )
        .await;
    store
        .tamper(
            run,
            "UPDATE streams SET (version, last_hash) = \
         (SELECT version, hash FROM events WHERE run_id = $1 ORDER BY version DESC LIMIT 1) \
         WHERE run_id = $1",
        )
        .await;
}

/// Asserts that `report` names exactly these broken runs: `(run, version, reason)`.
#[track_caller]
pub(crate) fn assert_broken(report: &Report, expected: &[(RunId, u64, ChainBreak)]) {
    let found: Vec<(RunId, u64, ChainBreak)> = report
        .broken_runs
        .iter()
        .map(|failure| (failure.run_id, failure.version, failure.reason.clone()))
        .collect();
    assert_eq!(
        found,
        expected,
        "{}",
        report.problems().collect::<Vec<_>>().join("\n")
    );
    assert!(!report.is_valid());
}
