//! `?watch=true` through the real router over real HTTP: a run's watch shows it now and at each
//! change and ends after its completion; a filtered list's watch sees a run enter the filter,
//! change in it and leave it; another tenant's run answers like a missing one.

use axum::http::StatusCode;
use runledger_api::auth::Role;
use serde_json::{Value, json};

use crate::api::audit::{EventStream, SseEvent};
use crate::api::support::{run_path, runs_path, without_request_details};
use crate::api::{Answer, TestApi};
use crate::helpers::verbs::tenant;

/// The commands that take a queued run to its completion, as (path after the run, body).
fn lifecycle() -> [(&'static str, Value); 3] {
    [
        ("/start", json!({})),
        ("/progress", json!({"total": 2, "success": 1})),
        ("/complete", json!({"outcome": "succeeded"})),
    ]
}

/// Sends each command once `stream` has shown the one before; returns what it showed.
async fn step_by_step(
    api: &TestApi,
    writer: &str,
    id: &str,
    stream: &mut EventStream,
) -> Vec<SseEvent> {
    let mut shown = Vec::new();
    for (rest, body) in lifecycle() {
        let answer: Answer = api
            .post(&run_path(tenant(1), id, rest), writer, &body)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{rest}: {:#}", answer.body);
        shown.push(stream.next().await);
    }
    shown
}

#[tokio::test]
async fn a_watched_run_is_sent_at_each_change_and_the_stream_ends_after_it_completes() {
    let (api, tokens, id) = TestApi::with_queued_run().await;
    let t = tenant(1);
    api.project().await;
    let projectors = api.project_all_live();
    let served = api.serve().await;
    let path = format!("{}?watch=true", run_path(t, &id, ""));

    let mut stream = EventStream::open(served.address(), &path, &tokens.reader, None).await;
    let now = stream.next().await;
    assert_eq!(now.event, "run");
    assert_eq!(now.data["id"], id.as_str());
    assert_eq!(now.data["status"], "queued");
    let shown = step_by_step(&api, &tokens.writer, &id, &mut stream).await;
    let statuses: Vec<&Value> = shown.iter().map(|event| &event.data["status"]).collect();
    assert_eq!(statuses, ["running", "running", "completed"]);
    assert!(shown.iter().all(|event| event.event == "run"));
    assert_eq!(
        shown[1].data["summary_counts"]["success"], 1,
        "{:#}",
        shown[1].data
    );
    assert!(
        stream.next_or_end().await.is_none(),
        "the stream ends after the completion"
    );

    // Another tenant's run answers exactly like a missing one.
    let other = api.token(tenant(2), Role::Reader).await;
    let foreign = api
        .get(&format!("/v1/tenants/2/runs/{id}?watch=true"), &other)
        .await;
    let missing = api
        .get(
            &format!("/v1/tenants/2/runs/{}?watch=true", uuid::Uuid::now_v7()),
            &other,
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(
        without_request_details(&foreign.body),
        without_request_details(&missing.body)
    );
    projectors.stop().await;
}

#[tokio::test]
async fn a_watched_filtered_list_sees_a_run_enter_change_and_leave() {
    let (api, tokens, id) = TestApi::with_queued_run().await;
    let t = tenant(1);
    api.project().await;
    let projectors = api.project_all_live();
    let served = api.serve().await;
    let path = format!("{}?status=running&watch=true", runs_path(t));
    let mut stream = EventStream::open(served.address(), &path, &tokens.reader, None).await;

    // Started, the run enters the filter; progressed, it changes in it; completed, it leaves.
    let shown = step_by_step(&api, &tokens.writer, &id, &mut stream).await;
    let names: Vec<&str> = shown.iter().map(|event| event.event.as_str()).collect();
    assert_eq!(names, ["entered", "changed", "left"]);
    assert_eq!(shown[0].data["run"]["id"], id.as_str());
    assert_eq!(shown[0].data["run"]["status"], "running");
    assert_eq!(shown[1].data["run"]["summary_counts"]["success"], 1);
    assert_eq!(shown[2].data, json!({ "id": id }));
    projectors.stop().await;
}
