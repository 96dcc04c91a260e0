//! The list's search parameters (`run_id_prefix`, `initiator_name`, `attribute`): each within
//! the caller's tenant, keyset-paged like every list, refused with a problem naming the
//! parameter when malformed, and answered from an index of the read model, never a scan of it
//! (the plans read on a read model of 100,000 runs).

use std::collections::BTreeSet;

use axum::http::StatusCode;
use runledger_api::auth::Role;
use runledger_core::TenantId;
use runledger_projections::operation_runs::{
    Attribute, RunFilter, RunIdPrefix, RunOrder, RunPageQuery, explain_count_runs, explain_run_page,
};
use serde_json::{Value, json};

use super::TestApi;
use super::support::runs_path;
use crate::helpers::verbs::tenant;

/// Queues a run in `t` with `body`'s fields (type `restore.execute` unless given); its id.
async fn queued(api: &TestApi, t: TenantId, token: &str, body: Value) -> String {
    let mut body = body;
    if body.get("type").is_none() {
        body["type"] = json!("restore.execute");
    }
    let answer = api.post(&runs_path(t), token, &body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:#}", answer.body);
    answer.body["run"]["id"].as_str().unwrap().to_owned()
}

/// The ids a list answer holds.
fn ids(answer: &Value) -> BTreeSet<String> {
    answer["runs"]
        .as_array()
        .expect("a page of runs")
        .iter()
        .map(|run| run["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `key=value` as a query string value.
fn encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn the_list_finds_runs_by_context_identity_id_prefix_and_initiator_name_within_the_tenant() {
    let api = TestApi::new().await;
    let (t1, t2) = (tenant(1), tenant(2));
    let writer = api.token(t1, Role::Writer).await;
    let reader = api.token(t1, Role::Reader).await;
    let other_writer = api.token(t2, Role::Writer).await;
    let other_reader = api.token(t2, Role::Reader).await;
    // The restore run of RestoreRun 42 (a number in its context), another of "43" (text), one
    // found by its identity, and tenant 2's run with the very same context.
    let by_number = queued(
        &api,
        t1,
        &writer,
        json!({"identity": {"restore": 1}, "context": {"restore_run_id": 42},
               "initiator": {"user_id": 7, "name": "Ada"}}),
    )
    .await;
    let by_text = queued(
        &api,
        t1,
        &writer,
        json!({"identity": {"restore": 2}, "context": {"restore_run_id": "43"}}),
    )
    .await;
    let by_identity = queued(
        &api,
        t1,
        &writer,
        json!({"type": "inventory.sync", "identity": {"site": "north"}}),
    )
    .await;
    let elsewhere = queued(
        &api,
        t2,
        &other_writer,
        json!({"identity": {"restore": 1}, "context": {"restore_run_id": 42}}),
    )
    .await;
    api.project().await;

    let list = |token: &str, t: TenantId, query: String| {
        let path = format!("{}?{query}", runs_path(t));
        let token = token.to_owned();
        let api = &api;
        async move {
            let answer = api.get(&path, &token).await;
            assert_eq!(answer.status, StatusCode::OK, "{path}: {:#}", answer.body);
            answer.body
        }
    };
    let found = list(
        &reader,
        t1,
        format!("attribute={}", encoded("restore_run_id=42")),
    )
    .await;
    assert_eq!(
        ids(&found),
        BTreeSet::from([by_number.clone()]),
        "the number, in tenant 1 only"
    );
    let found = list(
        &reader,
        t1,
        format!("attribute={}", encoded("restore_run_id=43")),
    )
    .await;
    assert_eq!(
        ids(&found),
        BTreeSet::from([by_text.clone()]),
        "text matches text"
    );
    let found = list(&reader, t1, format!("attribute={}", encoded("site=north"))).await;
    assert_eq!(
        ids(&found),
        BTreeSet::from([by_identity.clone()]),
        "the identity too"
    );
    let found = list(
        &other_reader,
        t2,
        format!("attribute={}", encoded("restore_run_id=42")),
    )
    .await;
    assert_eq!(
        ids(&found),
        BTreeSet::from([elsewhere.clone()]),
        "tenant 2 sees its own"
    );
    let count = api
        .get(
            &format!(
                "{}:count?attribute={}",
                runs_path(t1),
                encoded("restore_run_id=42")
            ),
            &reader,
        )
        .await;
    assert_eq!(count.body["total"], 1, "{:#}", count.body);

    // A run id prefix: the first 20 hex digits (a UUIDv7's time and some random bits) name one
    // run; 8 digits name every run queued in the same few seconds, each starting with them.
    let long_prefix = by_text[..23].to_owned();
    let found = list(&reader, t1, format!("run_id_prefix={long_prefix}")).await;
    assert_eq!(ids(&found), BTreeSet::from([by_text.clone()]));
    let short_prefix = by_text[..8].to_uppercase();
    let found = list(&reader, t1, format!("run_id_prefix={short_prefix}")).await;
    assert!(ids(&found).contains(&by_text));
    assert!(
        ids(&found).iter().all(|id| id.starts_with(&by_text[..8])),
        "{found:#}"
    );
    assert!(!ids(&found).contains(&elsewhere), "never another tenant's");

    let found = list(&reader, t1, "initiator_name=aDA".to_owned()).await;
    assert_eq!(
        ids(&found),
        BTreeSet::from([by_number.clone()]),
        "case-insensitive"
    );

    // Another tenant's list is refused before anything is searched.
    let refused = api
        .get(
            &format!(
                "{}?attribute={}",
                runs_path(t2),
                encoded("restore_run_id=42")
            ),
            &reader,
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{:#}", refused.body);

    // Values are data, never path syntax: quotes, backslashes, control characters and path
    // operators search for themselves (and find nothing here).
    for value in [
        r#"a"b\c"#,
        "tab\there",
        "π ≈ 3.14",
        "$[*] ? (@ == 1)",
        "1e400",
        "null",
    ] {
        let found = list(
            &reader,
            t1,
            format!("attribute={}", encoded(&format!("k={value}"))),
        )
        .await;
        assert!(ids(&found).is_empty(), "{value}: {found:#}");
    }

    for (query, field) in [
        ("attribute=restore_run_id".to_owned(), "attribute"),
        (format!("attribute={}", encoded("a b=c")), "attribute"),
        (
            format!("attribute={}", encoded(&format!("k={}", "v".repeat(201)))),
            "attribute",
        ),
        ("run_id_prefix=xyz".to_owned(), "run_id_prefix"),
        (format!("run_id_prefix={}", "a".repeat(33)), "run_id_prefix"),
        (
            format!("initiator_name={}", "n".repeat(201)),
            "initiator_name",
        ),
    ] {
        let answer = api
            .get(&format!("{}?{query}", runs_path(t1)), &reader)
            .await;
        answer.assert_problem(StatusCode::BAD_REQUEST, Some(field));
    }
}

#[tokio::test]
async fn a_search_is_keyset_paged_and_its_page_tokens_belong_to_it() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let writer = api.token(t, Role::Writer).await;
    let reader = api.token(t, Role::Reader).await;
    let mut batch = BTreeSet::new();
    for i in 0..5 {
        batch.insert(
            queued(
                &api,
                t,
                &writer,
                json!({"identity": {"i": i}, "context": {"batch": "b1", "i": i}}),
            )
            .await,
        );
    }
    for i in 0..3 {
        queued(
            &api,
            t,
            &writer,
            json!({"identity": {"j": i}, "context": {"batch": "b2"}}),
        )
        .await;
    }
    api.project().await;

    let search = format!("attribute={}&page_size=2", encoded("batch=b1"));
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            None => format!("{}?{search}", runs_path(t)),
            Some(token) => format!("{}?{search}&page_token={}", runs_path(t), encoded(token)),
        };
        let answer = api.get(&path, &reader).await;
        assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
        seen.extend(ids(&answer.body));
        pages += 1;
        match answer.body["next_page_token"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "the pages end");
    }
    assert_eq!(pages, 3, "5 runs in pages of 2");
    assert_eq!(seen.len(), 5, "each run once: {seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), batch);

    // A token of the b1 search is not a token of the b2 search.
    let first = api
        .get(&format!("{}?{search}", runs_path(t)), &reader)
        .await;
    let b1_token = first.body["next_page_token"].as_str().unwrap().to_owned();
    let other = api
        .get(
            &format!(
                "{}?attribute={}&page_size=2&page_token={}",
                runs_path(t),
                encoded("batch=b2"),
                encoded(&b1_token)
            ),
            &reader,
        )
        .await;
    other.assert_problem(StatusCode::BAD_REQUEST, Some("page_token"));
}

#[tokio::test]
async fn every_search_is_answered_from_an_index_on_a_large_tenant() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let writer = api.token(t, Role::Writer).await;
    let wanted = queued(
        &api,
        t,
        &writer,
        json!({"identity": {"restore": 1}, "context": {"restore_run_id": 42},
               "initiator": {"user_id": 7, "name": "Ada"}}),
    )
    .await;
    api.project().await;
    // 100,000 more runs of 7 tenants straight into the active version's table (as its owner),
    // then analyzed: the planner knows the table is large.
    let schema: String = sqlx::query_scalar(
        "SELECT schema_name FROM projection_versions WHERE projection = 'operation_runs' AND status = 'active'",
    )
    .fetch_one(&api.store.pool)
    .await
    .unwrap();
    sqlx::raw_sql(&format!(
        "INSERT INTO {schema}.operation_runs (id, tenant_id, user_id, initiator_name, type, status,
             outcome, run_identity_hash, summary_counts, failure_summary, context, created_at,
             updated_at, identity, version, last_position, last_tx_id, last_event_at)
         SELECT gen_random_uuid(), 1 + i % 7, i % 50, 'user ' || (i % 50), 'inventory.sync',
                'completed', 'succeeded', md5(i::text) || md5(i::text), '{{\"success\": 1, \"failed\": 0, \"skipped\": 0}}',
                '[]', jsonb_build_object('restore_run_id', 1000 + i, 'ticket', 'OPS-' || i),
                now() - make_interval(secs => i), now(), jsonb_build_object('n', i), 2, 0, 0, now()
         FROM generate_series(1, 100000) AS i;
         ANALYZE {schema}.operation_runs;"
    ))
    .execute(&api.store.pool)
    .await
    .unwrap();

    let searches = [
        (
            "context key=value",
            RunFilter {
                attribute: Some(Attribute::parse("restore_run_id=42").unwrap()),
                ..RunFilter::default()
            },
            "operation_runs_attributes_idx",
        ),
        (
            "identity key=value",
            RunFilter {
                attribute: Some(Attribute::parse("restore=1").unwrap()),
                ..RunFilter::default()
            },
            "operation_runs_attributes_idx",
        ),
        (
            "run id prefix",
            RunFilter {
                id_prefix: Some(RunIdPrefix::parse(&wanted[..13]).unwrap()),
                ..RunFilter::default()
            },
            "operation_runs_pkey",
        ),
        (
            "initiator name",
            RunFilter {
                initiator_name: Some("Ada".to_owned()),
                ..RunFilter::default()
            },
            "operation_runs_tenant_initiator_name_idx",
        ),
    ];
    for (what, filter, index) in searches {
        let page = RunPageQuery {
            filter: filter.clone(),
            order: RunOrder::CreatedDesc,
            size: 50,
            after: None,
        };
        for (statement, plan) in [
            (
                "list",
                explain_run_page(&api.store.pool, t, &page).await.unwrap(),
            ),
            (
                "count",
                explain_count_runs(&api.store.pool, t, &filter)
                    .await
                    .unwrap(),
            ),
        ] {
            let plan = plan.join("\n");
            assert!(
                !plan.contains("Seq Scan"),
                "{what} ({statement}) scans:\n{plan}"
            );
            assert!(
                plan.contains(index),
                "{what} ({statement}) without {index}:\n{plan}"
            );
        }
    }
}
