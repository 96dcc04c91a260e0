//! Query routes over the OperationRun read model: list filters and sorts, keyset pages (also
//! while new runs arrive), page-token misuse, GET with ETag/304, and `runs:count` groups.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::http::{Method, StatusCode, header};
use chrono::{DateTime, SecondsFormat, Utc};
use runledger_core::{
    Complete, Initiator, ProgressDelta, QueueRun, ReportProgress, RunCommand, RunIdentity, RunType,
    Start, TenantId, UserId,
};
use serde_json::{Value, json};

use super::support::{Call, run_path, runs_path};
use super::{Answer, TestApi};
use crate::helpers::verbs::{at, dispatch_failed, new_run_id, request, tenant};

/// One seeded run and the attributes the filters select on.
#[derive(Debug, Clone)]
struct Seeded {
    id: String,
    run_type: &'static str,
    user: Option<i64>,
    status: &'static str,
    outcome: &'static str,
    created: DateTime<Utc>,
    completed: Option<DateTime<Utc>>,
}

const TYPES: [&str; 4] = [
    "inventory.sync",
    "inventory.export",
    "restore.execute",
    "backup.policy_snapshot",
];

/// Seeds `count` runs in `t` through the command path, with known types, initiators, creation
/// times, statuses and outcomes (a run's fate is its index modulo 5), then projects them.
async fn seed(api: &TestApi, t: TenantId, count: usize) -> Vec<Seeded> {
    let mut seeded = Vec::with_capacity(count);
    for i in 0..count {
        let run = new_run_id();
        let base = i64::try_from(i).unwrap() * 10;
        let user = [Some(42), Some(43), None][i % 3];
        let run_type = TYPES[i % TYPES.len()];
        let initiator = match user {
            Some(user) => Initiator::user(UserId::new(user).unwrap(), "Ada").unwrap(),
            None => Initiator::system(),
        };
        let mut commands = vec![RunCommand::Queue(QueueRun {
            run_id: run,
            tenant_id: t,
            run_type: RunType::parse(run_type).unwrap(),
            identity: RunIdentity::new(json!({ "i": i })).unwrap(),
            initiator,
            context: json!({}),
            limits: runledger_core::RunLimits::default(),
            at: at(base),
        })];
        let start = RunCommand::Start(Start {
            worker: None,
            at: at(base + 1),
        });
        let report = |success, failed| {
            RunCommand::ReportProgress(ReportProgress {
                delta: ProgressDelta {
                    success,
                    failed,
                    skipped: 0,
                },
                total: None,
                failures: Vec::new(),
                at: at(base + 2),
            })
        };
        let complete = RunCommand::Complete(Complete {
            outcome: None,
            final_counts: None,
            failures: Vec::new(),
            at: at(base + 5),
        });
        let (status, outcome, completed) = match i % 5 {
            0 => ("queued", "pending", None),
            1 => {
                commands.push(start);
                ("running", "pending", None)
            }
            2 => {
                commands.extend([start, report(3, 0), complete]);
                ("completed", "succeeded", Some(at(base + 5)))
            }
            3 => {
                commands.push(dispatch_failed());
                ("completed", "failed", Some(at(3)))
            }
            _ => {
                commands.extend([start, report(1, 1), complete]);
                ("completed", "partially_succeeded", Some(at(base + 5)))
            }
        };
        for command in commands {
            api.store
                .commands
                .execute(&request(t, run, command))
                .await
                .expect("a seeded command applies");
        }
        seeded.push(Seeded {
            id: run.to_string(),
            run_type,
            user,
            status,
            outcome,
            created: at(base),
            completed,
        });
    }
    api.project().await;
    seeded
}

/// The run ids of a page, in order.
fn ids(page: &Answer) -> Vec<String> {
    assert_eq!(page.status, StatusCode::OK, "{:#}", page.body);
    page.body["runs"]
        .as_array()
        .expect("a runs array")
        .iter()
        .map(|run| run["id"].as_str().expect("a run id").to_owned())
        .collect()
}

/// Every page of `query` (without `?`), `page_size` at a time; returns the ids in order.
async fn all_pages(
    api: &TestApi,
    t: TenantId,
    token: &str,
    query: &str,
    page_size: u32,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut path = format!("{}?page_size={page_size}", runs_path(t));
        if !query.is_empty() {
            path = format!("{path}&{query}");
        }
        if let Some(token) = &next {
            path = format!("{path}&page_token={token}");
        }
        let page = api.get(&path, token).await;
        let page_ids = ids(&page);
        assert!(page_ids.len() <= page_size as usize);
        seen.extend(page_ids);
        match page.body["next_page_token"].as_str() {
            Some(token) => next = Some(token.to_owned()),
            None => return seen,
        }
    }
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Which seeded runs a query should select.
type Filter = Box<dyn Fn(&Seeded) -> bool>;

/// The ids of `runs` that `keep` selects, newest first (the default order).
fn newest_first(runs: &[Seeded], keep: impl Fn(&Seeded) -> bool) -> Vec<String> {
    let mut selected: Vec<&Seeded> = runs.iter().filter(|r| keep(r)).collect();
    selected.sort_by_key(|r| std::cmp::Reverse(r.created));
    selected.iter().map(|r| r.id.clone()).collect()
}

#[tokio::test]
async fn each_filter_selects_exactly_the_matching_runs_of_the_tenant() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let runs = seed(&api, t, 20).await;
    // Another tenant's runs never show.
    seed(&api, tenant(2), 5).await;
    let reader = api.tokens(t).await.reader;
    let cases: Vec<(String, Filter)> = vec![
        (String::new(), Box::new(|_| true)),
        (
            "type=inventory.sync".into(),
            Box::new(|r| r.run_type == "inventory.sync"),
        ),
        (
            "type_prefix=inventory.".into(),
            Box::new(|r| r.run_type.starts_with("inventory.")),
        ),
        // `_` is a literal, not a LIKE wildcard.
        (
            "type_prefix=backup.policy_".into(),
            Box::new(|r| r.run_type.starts_with("backup.policy_")),
        ),
        ("type_prefix=backup.policyx".into(), Box::new(|_| false)),
        ("status=running".into(), Box::new(|r| r.status == "running")),
        (
            "status=queued&status=running".into(),
            Box::new(|r| r.status != "completed"),
        ),
        (
            "outcome=failed&outcome=partially_succeeded".into(),
            Box::new(|r| matches!(r.outcome, "failed" | "partially_succeeded")),
        ),
        (
            "initiator_user_id=42".into(),
            Box::new(|r| r.user == Some(42)),
        ),
        (
            format!("created_after={}", rfc3339(at(50))),
            Box::new(|r| r.created >= at(50)),
        ),
        (
            format!("created_before={}", rfc3339(at(50))),
            Box::new(|r| r.created < at(50)),
        ),
        (
            format!(
                "created_after={}&created_before={}&type_prefix=inventory.&status=completed",
                rfc3339(at(20)),
                rfc3339(at(150))
            ),
            Box::new(|r| {
                r.created >= at(20)
                    && r.created < at(150)
                    && r.run_type.starts_with("inventory.")
                    && r.status == "completed"
            }),
        ),
    ];
    for (query, keep) in cases {
        let page = api.get(&format!("{}?{query}", runs_path(t)), &reader).await;
        assert_eq!(ids(&page), newest_first(&runs, keep), "?{query}");
        assert!(page.body["next_page_token"].is_null());
    }
    // The list shows each run as GET does.
    let page = api.get(&runs_path(t), &reader).await;
    let first = &page.body["runs"][0];
    let one = api
        .get(&run_path(t, first["id"].as_str().unwrap(), ""), &reader)
        .await;
    assert_eq!(&one.body, first);
}

#[tokio::test]
async fn every_sort_pages_through_each_run_once_in_order() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let runs = seed(&api, t, 23).await;
    let reader = api.tokens(t).await.reader;

    let mut ascending = runs.clone();
    ascending.sort_by_key(|r| r.created);
    let mut by_completion = runs.clone();
    // Latest completion first, runs not completed last (newest id first among them).
    by_completion.sort_by(|a, b| match (a.completed, b.completed) {
        (Some(x), Some(y)) => y.cmp(&x).then(b.id.cmp(&a.id)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => b.id.cmp(&a.id),
    });
    let id_list = |runs: &[Seeded]| runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    for (sort, expected) in [
        ("", newest_first(&runs, |_| true)),
        ("sort=-created_at", newest_first(&runs, |_| true)),
        ("sort=created_at", id_list(&ascending)),
        ("sort=-completed_at", id_list(&by_completion)),
    ] {
        for page_size in [1, 4, 500] {
            let seen = all_pages(&api, t, &reader, sort, page_size).await;
            assert_eq!(seen, expected, "{sort} by {page_size}");
        }
    }
    // Filters and pages together.
    let seen = all_pages(&api, t, &reader, "status=completed&sort=-completed_at", 2).await;
    let completed: Vec<String> = by_completion
        .iter()
        .filter(|r| r.status == "completed")
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(seen, completed);
}

#[tokio::test]
async fn page_size_defaults_to_50_and_must_be_between_1_and_500() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let writer = api.tokens(t).await.writer;
    for i in 0..51 {
        api.queue(t, &writer, "inventory.sync", json!({ "i": i }))
            .await;
    }
    api.project().await;
    let reader = api.tokens(t).await.reader;

    let first = api.get(&runs_path(t), &reader).await;
    assert_eq!(ids(&first).len(), 50);
    assert!(first.body["next_page_token"].is_string());
    let all = api
        .get(&format!("{}?page_size=500", runs_path(t)), &reader)
        .await;
    assert_eq!(ids(&all).len(), 51);
    for size in ["0", "501", "-1"] {
        let answer = api
            .get(&format!("{}?page_size={size}", runs_path(t)), &reader)
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "page_size={size}");
    }
    api.get(&format!("{}?page_size=0", runs_path(t)), &reader)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, Some("page_size"));
}

#[tokio::test]
async fn pages_cover_every_run_once_while_new_runs_are_queued() {
    let api = Arc::new(TestApi::new().await);
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    let mut before = BTreeSet::new();
    for i in 0..40 {
        before.insert(
            api.queue(t, &tokens.writer, "inventory.sync", json!({ "i": i }))
                .await,
        );
    }
    api.project().await;
    let live = api.project_live();

    // A writer queues more runs while a reader pages through, in both orders.
    let (writer_api, writer) = (Arc::clone(&api), tokens.writer.clone());
    let arriving = tokio::spawn(async move {
        for i in 40..80 {
            writer_api
                .queue(t, &writer, "inventory.sync", json!({ "i": i }))
                .await;
            tokio::task::yield_now().await;
        }
    });
    for sort in ["sort=-created_at", "sort=created_at"] {
        let seen = all_pages(&api, t, &tokens.reader, sort, 3).await;
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "no run twice ({sort})");
        assert!(
            before.is_subset(&unique),
            "every run that existed before paging began is on a page ({sort})"
        );
    }
    arriving.await.expect("the writer queued its runs");
    live.stop().await;
}

#[tokio::test]
async fn a_page_token_is_refused_with_other_filters_or_another_sort() {
    let api = TestApi::new().await;
    let t = tenant(1);
    seed(&api, t, 6).await;
    let reader = api.tokens(t).await.reader;
    let first = api
        .get(
            &format!("{}?page_size=2&type_prefix=inventory.", runs_path(t)),
            &reader,
        )
        .await;
    let token = first.body["next_page_token"]
        .as_str()
        .expect("more pages")
        .to_owned();

    let same = api
        .get(
            &format!(
                "{}?page_size=3&type_prefix=inventory.&page_token={token}",
                runs_path(t)
            ),
            &reader,
        )
        .await;
    assert_eq!(
        same.status,
        StatusCode::OK,
        "another page size is the same list"
    );
    for other in [
        "type_prefix=restore.",
        "",
        "type_prefix=inventory.&status=queued",
        "type_prefix=inventory.&sort=created_at",
    ] {
        api.get(
            &format!("{}?{other}&page_token={token}", runs_path(t)),
            &reader,
        )
        .await
        .assert_problem(StatusCode::BAD_REQUEST, Some("page_token"));
    }
}

#[tokio::test]
async fn get_run_has_the_version_as_etag_and_if_none_match_answers_304() {
    let (api, tokens, id) = TestApi::with_queued_run().await;
    let t = tenant(1);
    api.project().await;
    let path = run_path(t, &id, "");
    let conditional = |tag: &str| {
        Call::new(Method::GET, &path, Some(&tokens.reader))
            .header("if-none-match", tag)
            .build()
    };

    let first = api.get(&path, &tokens.reader).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.headers[header::ETAG], "\"1\"");
    assert_eq!(first.body["version"], 1);
    assert_eq!(first.body["done"], false);
    assert_eq!(
        first.body["view_url"],
        format!("http://test/ui/tenants/1/runs/{id}")
    );

    for tag in ["\"1\"", "W/\"1\"", "\"7\", \"1\"", "*"] {
        let unchanged = api.send(conditional(tag)).await;
        assert_eq!(
            unchanged.status,
            StatusCode::NOT_MODIFIED,
            "If-None-Match: {tag}"
        );
        assert_eq!(unchanged.headers[header::ETAG], "\"1\"");
        assert_eq!(unchanged.body, Value::Null);
    }

    api.post(&run_path(t, &id, "/start"), &tokens.writer, &json!({}))
        .await;
    api.project().await;
    let changed = api.send(conditional("\"1\"")).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.headers[header::ETAG], "\"2\"");
    assert_eq!(changed.body["status"], "running");
}

/// The groups `runs:count` should answer for `runs`, grouped by the `(column, value)` pairs
/// `key` gives, in the order of the values (as SQL orders by the grouped columns).
fn groups(runs: &[&Seeded], key: impl Fn(&Seeded) -> Vec<(&'static str, &'static str)>) -> Value {
    let mut counts: BTreeMap<Vec<&str>, (Value, u64)> = BTreeMap::new();
    for run in runs {
        let pairs = key(run);
        let entry = counts
            .entry(pairs.iter().map(|(_, value)| *value).collect())
            .or_insert_with(|| {
                let group = pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), json!(v)))
                    .collect();
                (Value::Object(group), 0)
            });
        entry.1 += 1;
        entry.0["count"] = json!(entry.1);
    }
    counts.into_values().map(|(group, _)| group).collect()
}

#[tokio::test]
async fn count_totals_the_filtered_runs_grouped_by_status_and_outcome() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let runs = seed(&api, t, 12).await;
    seed(&api, tenant(2), 3).await;
    let reader = api.tokens(t).await.reader;
    let count = async |query: &str| {
        api.get(&format!("/v1/tenants/{t}/runs:count?{query}"), &reader)
            .await
    };
    let all: Vec<&Seeded> = runs.iter().collect();

    assert_eq!(count("").await.body, json!({"total": 12, "groups": []}));
    assert_eq!(
        count("group_by=status").await.body,
        json!({"total": 12, "groups": groups(&all, |r| vec![("status", r.status)])})
    );
    let by_both = count("group_by=status,outcome").await.body;
    assert_eq!(
        by_both,
        json!({"total": 12, "groups": groups(&all, |r| vec![("status", r.status), ("outcome", r.outcome)])})
    );
    assert_eq!(
        by_both["groups"].as_array().unwrap().len(),
        5,
        "every fate is there"
    );
    // The list filters apply.
    let inventory_completed: Vec<&Seeded> = runs
        .iter()
        .filter(|r| r.status == "completed" && r.run_type.starts_with("inventory."))
        .collect();
    assert_eq!(
        count("group_by=outcome&status=completed&type_prefix=inventory.")
            .await
            .body,
        json!({
            "total": inventory_completed.len(),
            "groups": groups(&inventory_completed, |r| vec![("outcome", r.outcome)]),
        })
    );
    count("group_by=type")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, Some("group_by"));
}
