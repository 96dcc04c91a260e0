//! Bad input found by probing, through the real router: a command body not labelled JSON
//! answers 415 and writes nothing; a page token answers 400 on another tenant's list (and on
//! another user's feed).

use axum::http::{Method, StatusCode, header};
use runledger_api::auth::Role;
use serde_json::json;

use crate::api::TestApi;
use crate::api::support::{Call, runs_path};
use crate::helpers::verbs::tenant;

#[tokio::test]
async fn a_command_body_that_is_not_labelled_json_answers_415_and_writes_nothing() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let writer = api.token(t, Role::Writer).await;
    let body = json!({ "type": "inventory.sync", "identity": {} }).to_string();
    let labels = [
        Some("text/plain"),
        None,
        Some("application/x-www-form-urlencoded"),
    ];
    for label in labels {
        let mut call = Call::new(Method::POST, &runs_path(t), Some(&writer));
        if let Some(label) = label {
            call = call.header(header::CONTENT_TYPE.as_str(), label);
        }
        let request = call.unlabelled(body.clone()).build();
        let answer = api.send(request).await;
        let problem = answer.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, None);
        assert_eq!(
            problem["type"], "urn:runledger:problem:unsupported-media-type",
            "{label:?}"
        );
    }
    assert_eq!(api.event_count().await, 0, "a refused body writes nothing");

    // JSON with parameters or a structured `+json` type is JSON; an empty body needs no label.
    for label in [
        "application/json; charset=utf-8",
        "application/merge-patch+json",
    ] {
        let body = json!({ "type": "inventory.sync", "identity": { "label": label } }).to_string();
        let answer = api
            .send(
                Call::new(Method::POST, &runs_path(t), Some(&writer))
                    .header(header::CONTENT_TYPE.as_str(), label)
                    .unlabelled(body.clone())
                    .build(),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{label}: {:#}",
            answer.body
        );
    }
    let run = api
        .queue(t, &writer, "inventory.sync", json!({"other": 1}))
        .await;
    let started = api
        .send(
            Call::new(
                Method::POST,
                &format!("{}/{run}/start", runs_path(t)),
                Some(&writer),
            )
            .build(),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{:#}", started.body);
}

#[tokio::test]
async fn a_page_token_of_another_tenants_list_answers_400() {
    let api = TestApi::new().await;
    let (one, two) = (tenant(1), tenant(2));
    let writer_one = api.token(one, Role::Writer).await;
    let writer_two = api.token(two, Role::Writer).await;
    for n in 0..3 {
        api.queue(one, &writer_one, "inventory.sync", json!({ "n": n }))
            .await;
        api.queue(two, &writer_two, "inventory.sync", json!({ "n": n }))
            .await;
    }
    api.project().await;
    let reader_one = api.token(one, Role::Reader).await;
    // A token acting for both tenants: the refusal is the list's, not the caller's tenants'.
    let admin = api.token(one, Role::Admin).await;

    let first = api
        .get(&format!("{}?page_size=2", runs_path(one)), &reader_one)
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:#}", first.body);
    let page_token = first.body["next_page_token"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let own = api
        .get(
            &format!("{}?page_size=2&page_token={page_token}", runs_path(one)),
            &admin,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{:#}", own.body);

    let other = api
        .get(
            &format!("{}?page_size=2&page_token={page_token}", runs_path(two)),
            &admin,
        )
        .await;
    other.assert_problem(StatusCode::BAD_REQUEST, Some("page_token"));
}
