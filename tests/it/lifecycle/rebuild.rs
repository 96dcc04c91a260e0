//! After time-outs and cancellations, a rebuild of the read model and of the feed equals the
//! incremental build row for row, and the read model's lifecycle fields are the fold of the log.

use axum::http::StatusCode;
use runledger_core::operation_run::LIFECYCLE_FIELDS;
use runledger_projections::rebuild;
use runledger_store::command::fold;
use serde_json::{Map, Value, json};

use super::support::{Lab, micros};
use crate::api::support::run_path;
use crate::helpers::verbs::at;
use crate::projections::support::view_rows;

/// The rows of both projections' public views, whole.
async fn both_views(lab: &Lab) -> (Vec<Value>, Vec<Value>) {
    let pool = &lab.api.store.pool;
    (
        view_rows(pool, "operation_runs").await,
        view_rows(pool, "notifications").await,
    )
}

/// The lifecycle fields of `run` (an OperationRun JSON).
fn lifecycle(run: &Value) -> Map<String, Value> {
    LIFECYCLE_FIELDS
        .iter()
        .map(|field| ((*field).to_owned(), run[*field].clone()))
        .collect()
}

#[tokio::test]
async fn a_rebuild_after_time_outs_and_cancellations_equals_the_incremental_build() {
    let lab = Lab::new().await;
    let mut sweeper = lab.sweeper();
    // One run of each way to end, and two still open.
    let never_started = lab
        .queue(json!({"n": 1}), json!({"start_deadline_seconds": 30}))
        .await;
    let overrun = lab
        .queue(json!({"n": 2}), json!({"run_deadline_seconds": 40}))
        .await;
    let silent = lab
        .queue(json!({"n": 3}), json!({"heartbeat_timeout_seconds": 20}))
        .await;
    let cancelled_queued = lab.queue(json!({"n": 4}), json!({})).await;
    let acknowledged = lab.queue(json!({"n": 5}), json!({})).await;
    let asked = lab.queue(json!({"n": 6}), json!({})).await;
    let open = lab
        .queue(json!({"n": 7}), json!({"heartbeat_timeout_seconds": 600}))
        .await;
    lab.at(1);
    for id in [&overrun, &silent, &acknowledged, &asked, &open] {
        lab.start(id, "w1").await;
    }
    lab.at(5);
    assert_eq!(lab.heartbeat(&silent).await.status, StatusCode::OK);
    assert_eq!(lab.heartbeat(&open).await.status, StatusCode::OK);
    for (id, body) in [
        (&cancelled_queued, json!({"reason": "Wrong tenant"})),
        (&acknowledged, json!({})),
        (&asked, json!({"reason": "Operator asked"})),
    ] {
        let answer = lab.command(id, "/cancel", &body).await;
        assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
    }
    lab.command(&acknowledged, "/progress", &json!({"success": 2}))
        .await;
    lab.command(&acknowledged, "/complete", &json!({"outcome": "cancelled"}))
        .await;
    lab.at(45);
    let report = lab.sweep(&mut sweeper).await;
    assert_eq!(report.timed_out, 3, "{report:?}");

    lab.api.project().await;
    let incremental = both_views(&lab).await;
    assert_eq!(incremental.0.len(), 7);
    assert!(incremental.1.len() >= 7, "{:#?}", incremental.1);

    // The read model's lifecycle fields are the fold of each run's events.
    for id in [
        &never_started,
        &overrun,
        &silent,
        &cancelled_queued,
        &acknowledged,
        &asked,
        &open,
    ] {
        let folded = fold(&lab.events(id).await).expect("fold");
        let expected = folded.snapshot().expect("a run").to_operation_run_json();
        let shown = lab.shown(id).await;
        assert_eq!(lifecycle(&shown), lifecycle(&expected), "run {id}");
    }

    // Rebuild both from the start of the log, side by side, and let them switch (as the
    // application role, as `runledger rebuild` does).
    let config = lab.api.projections_config();
    let pool = &lab.api.store.app_pool;
    for definition in config.definitions(pool) {
        assert!(rebuild(pool, &definition).await.unwrap().created);
    }
    lab.api.project().await;
    let generations: Vec<(String, i64)> = sqlx::query_as(
        "SELECT projection, generation::bigint FROM projection_versions \
         WHERE status = 'active' ORDER BY projection",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        generations.iter().all(|(_, generation)| *generation == 2),
        "both were really rebuilt: {generations:?}"
    );
    let rebuilt = both_views(&lab).await;
    assert_eq!(rebuilt.0, incremental.0, "the read model, row for row");
    assert_eq!(rebuilt.1, incremental.1, "the feed, notice for notice");

    // The API shows the same runs: the heartbeat beside the log joins the rebuilt rows.
    let open_run = lab
        .api
        .get(&run_path(lab.t, &open, ""), &lab.tokens.reader)
        .await;
    assert_eq!(open_run.body["last_heartbeat_at"], micros(at(5)));
}
