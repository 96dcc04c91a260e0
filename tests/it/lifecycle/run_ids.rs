//! Run ids chosen by the caller: the queued run takes the id; an id already used answers 409,
//! the same whether this tenant or another used it; a key without an id derives the id.

use axum::http::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use super::support::Lab;
use crate::api::support::{Call, runs_path, without_request_details};
use crate::helpers::verbs::tenant;

#[tokio::test]
async fn a_caller_chosen_run_id_is_the_runs_and_a_taken_one_is_refused_alike_for_every_tenant() {
    let lab = Lab::new().await;
    let chosen = Uuid::now_v7();
    let id = lab
        .queue(json!({"n": 1}), json!({"run_id": chosen.to_string()}))
        .await;
    assert_eq!(id, chosen.to_string());
    assert_eq!(lab.events(&id).await[0].payload["run_id"], id.as_str());

    // The same id again (another identity, so no dedupe): taken.
    let again = lab
        .post(
            &runs_path(lab.t),
            &json!({"type": "inventory.sync", "identity": {"n": 2}, "run_id": chosen}),
        )
        .await;
    again.assert_problem(StatusCode::CONFLICT, None);

    // Another tenant choosing the same id gets the same answer, and cannot tell whose it is.
    let other = lab.api.tokens(tenant(2)).await;
    let foreign = lab
        .api
        .post(
            &runs_path(tenant(2)),
            &other.writer,
            &json!({"type": "inventory.sync", "identity": {"n": 2}, "run_id": chosen}),
        )
        .await;
    foreign.assert_problem(StatusCode::CONFLICT, None);
    assert_eq!(
        without_request_details(&foreign.body),
        without_request_details(&again.body)
    );
    assert_eq!(lab.api.event_count().await, 1, "nothing else was stored");
}

#[tokio::test]
async fn a_run_id_must_be_a_uuid_and_not_the_nil_one() {
    let lab = Lab::new().await;
    for run_id in [json!("run-1"), json!(Uuid::nil()), json!(7)] {
        let answer = lab
            .post(
                &runs_path(lab.t),
                &json!({"type": "inventory.sync", "run_id": run_id}),
            )
            .await;
        answer.assert_problem(StatusCode::BAD_REQUEST, Some("run_id"));
    }
    assert_eq!(lab.api.event_count().await, 0);
}

#[tokio::test]
async fn without_a_run_id_an_idempotency_key_derives_it() {
    let lab = Lab::new().await;
    let send = |key: &str, identity: i64| {
        lab.api.send(
            Call::new(Method::POST, &runs_path(lab.t), Some(&lab.tokens.writer))
                .header("idempotency-key", key)
                .json(&json!({"type": "inventory.sync", "identity": {"n": identity}}))
                .build(),
        )
    };
    let first = send("order-17", 1).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:#}", first.body);
    let id: Uuid = first.body["run"]["id"].as_str().unwrap().parse().unwrap();
    // A UUIDv5 of the tenant and the key (docs/adr/0021): the same key names the same run.
    assert_eq!(id.get_version_num(), 5);
    let retry = send("order-17", 1).await;
    assert_eq!(retry.body["run"]["id"], id.to_string());
    let other_key = send("order-18", 2).await;
    assert_ne!(other_key.body["run"]["id"], id.to_string());
}
