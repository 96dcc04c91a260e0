//! Every route through the client, over real HTTP against the real router: each answer reads
//! as its wire type, and the wire type says everything the server sent (a run read raw and
//! through the client are the same JSON).

use runledger_api::auth::Role;
use runledger_client::ClientError;
use runledger_client::wire::audit::{ExportParams, LogParams, StateParams};
use runledger_client::wire::{
    CompleteBody, DispatchFailedBody, FailureBody, InitiatorBody, NoticeQuery, Outcome,
    ProgressBody, QueueRunBody, RunQuery, RunStatus,
};
use serde_json::{Value, json};

use super::support::{client, serve};
use crate::api::TestApi;
use crate::helpers::verbs::tenant;

fn queue_body(run_type: &str, identity: Value) -> QueueRunBody {
    QueueRunBody {
        run_type: run_type.to_owned(),
        identity: Some(identity),
        context: Some(json!({"source": "client test"})),
        initiator: Some(InitiatorBody {
            user_id: Some(7),
            name: Some("Ada".to_owned()),
        }),
        ..QueueRunBody::default()
    }
}

#[tokio::test]
async fn the_client_calls_every_route_and_reads_every_answer_whole() {
    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(1)).await;
    let user = api.user_token(tenant(1), Role::Reader, 7).await;
    let projectors = api.project_all_live();
    let served = serve(&api).await;
    let writer = client(&served, &tokens.writer);
    let reader = client(&served, &tokens.reader);
    let auditor = client(&served, &tokens.auditor);
    let admin = client(&served, &tokens.admin);

    // Commands.
    let queued = writer
        .queue_run(1, &queue_body("inventory.sync", json!({"scope": "all"})))
        .await
        .expect("queue");
    assert_eq!(queued.created, Some(true));
    assert_eq!(queued.run.status, RunStatus::Queued);
    let again = writer
        .queue_run(1, &queue_body("inventory.sync", json!({"scope": "all"})))
        .await
        .expect("queue the same identity");
    assert_eq!((again.created, again.position), (Some(false), None));
    assert_eq!(again.run.id, queued.run.id);
    let run = queued.run.id;
    let started = writer.start_run(1, run).await.expect("start");
    assert_eq!(started.run.status, RunStatus::Running);
    let progressed = writer
        .report_progress(
            1,
            run,
            &ProgressBody {
                success: 8,
                failed: 2,
                total: Some(10),
                failures: vec![FailureBody {
                    code: "graph.throttled".to_owned(),
                    message: "Throttled (retrying)".to_owned(),
                    count: Some(2),
                }],
                ..ProgressBody::default()
            },
        )
        .await
        .expect("progress");
    assert_eq!(progressed.run.summary_counts.success, 8);
    let completed = writer
        .complete_run(1, run, &CompleteBody::default())
        .await
        .expect("complete");
    assert_eq!(completed.run.outcome, Outcome::PartiallySucceeded);
    let other = writer
        .queue_run(1, &queue_body("backup.nightly", json!({})))
        .await
        .expect("queue another");
    let failed = writer
        .dispatch_failed(
            1,
            other.run.id,
            &DispatchFailedBody {
                code: "queue.unavailable".to_owned(),
                message: "the queue is down".to_owned(),
            },
        )
        .await
        .expect("dispatch-failed");
    assert_eq!(failed.run.outcome, Outcome::Failed);
    let refused = writer
        .start_run(1, other.run.id)
        .await
        .expect_err("a completed run does not start");
    assert_eq!(refused.status(), Some(409));
    assert_eq!(
        refused.problem().map(|p| p.slug().to_owned()).as_deref(),
        Some("invalid-transition")
    );

    // Queries, reading the command's own write.
    let position = failed.position;
    let shown = reader.get_run(1, run, position).await.expect("get the run");
    assert_eq!(shown.version, completed.run.version);
    assert_eq!(
        shown, completed.run,
        "a query shows what the command answered"
    );
    let raw: Value = raw_get(
        &served.url,
        &format!("/v1/tenants/1/runs/{run}"),
        &tokens.reader,
    )
    .await;
    assert_eq!(
        serde_json::to_value(&shown).expect("a run serializes"),
        raw,
        "the wire type holds every field the server sends"
    );
    let page = reader
        .list_runs(
            1,
            &RunQuery {
                status: vec!["completed".to_owned()],
                page_size: Some(1),
                ..RunQuery::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(page.runs.len(), 1);
    let next = page.next_page_token.clone().expect("a second page");
    let second = reader
        .list_runs(
            1,
            &RunQuery {
                status: vec!["completed".to_owned()],
                page_size: Some(1),
                page_token: Some(next),
                ..RunQuery::default()
            },
        )
        .await
        .expect("the second page");
    assert_eq!(second.runs.len(), 1);
    assert_ne!(second.runs[0].id, page.runs[0].id);
    let count = reader
        .count_runs(
            1,
            &RunQuery {
                group_by: Some("outcome".to_owned()),
                ..RunQuery::default()
            },
        )
        .await
        .expect("count");
    assert_eq!(count.total, 2);
    assert_eq!(count.groups.len(), 2);
    let missing = reader
        .get_run(2, run, None)
        .await
        .expect_err("another tenant's run");
    assert!(missing.is_not_found());

    // Audit.
    let events = auditor.run_events(1, run).await.expect("events");
    assert_eq!(events.events.len(), 4);
    let state = auditor
        .run_state(
            1,
            run,
            &StateParams {
                at_version: Some("2".to_owned()),
                at: None,
            },
        )
        .await
        .expect("state at version 2");
    assert_eq!(state.run.status, RunStatus::Running);
    assert_eq!(state.as_of.version, 2);
    let log = auditor
        .tenant_events(
            1,
            &LogParams {
                after: None,
                limit: Some("3".to_owned()),
            },
        )
        .await
        .expect("the log");
    assert_eq!(log.events.len(), 3);
    let rest = auditor
        .tenant_events(
            1,
            &LogParams {
                after: Some(log.next_cursor.clone()),
                limit: None,
            },
        )
        .await
        .expect("the rest of the log");
    assert_eq!(
        rest.events.len(),
        3,
        "4 events of the first run, 2 of the second"
    );
    let verified = auditor.verify_run(1, run).await.expect("verify");
    assert!(verified.valid);
    assert_eq!(verified.events_checked, 4);
    let export = auditor
        .export(1, &ExportParams::default())
        .await
        .expect("export");
    assert_eq!(
        export.lines().count(),
        6 + 2,
        "a header, six events, an end line"
    );

    // The user's feed.
    let feed = client(&served, &user);
    let notices = wait_for_notices(&feed).await;
    let read = feed
        .mark_notification_read(notices[0].id)
        .await
        .expect("mark read");
    assert!(read.read_at.is_some());

    // Admin: projections, tokens (their own tests are in `tokens`).
    let projections = admin.projections().await.expect("projections");
    assert!(projections["projections"].is_array());
    let rebuild = admin
        .rebuild_projection("operation_runs")
        .await
        .expect("rebuild");
    assert_eq!(rebuild["name"], "operation_runs");
    assert!(admin.list_tokens().await.expect("tokens").tokens.len() >= 5);

    // Operations.
    assert_eq!(reader.healthz().await.expect("healthz")["status"], "ok");
    let ready = reader.readyz().await.expect("readyz");
    assert!(ready.body["checks"]["database"] == "ok");
    assert!(
        reader
            .metrics()
            .await
            .expect("metrics")
            .contains("runledger_")
    );
    let document = reader.openapi().await.expect("openapi");
    assert!(document["paths"]["/v1/tokens"].is_object());
    projectors.stop().await;
}

/// The user's notices, once the feed's projector has made some.
async fn wait_for_notices(feed: &runledger_client::Client) -> Vec<runledger_client::wire::Notice> {
    for _ in 0..200 {
        let page = feed
            .notifications(&NoticeQuery::default())
            .await
            .expect("the feed");
        if !page.notifications.is_empty() {
            return page.notifications;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no notice within 5 seconds");
}

/// A route's JSON as the server sent it, without the client's types.
async fn raw_get(base: &str, path: &str, token: &str) -> Value {
    serde_json::from_str(&http_get(base, path, token).await).expect("JSON")
}

/// `GET path` over one plain HTTP/1 connection.
async fn http_get(base: &str, path: &str, token: &str) -> String {
    use http_body_util::BodyExt;
    use hyper_util::rt::TokioIo;
    let address = base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let request = axum::http::Request::get(path)
        .header("host", address)
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Empty::<axum::body::Bytes>::new())
        .expect("a request");
    let response = sender.send_request(request).await.expect("an answer");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    String::from_utf8(body.to_vec()).expect("text")
}

/// A problem answer reads as a typed [`ClientError::Problem`].
#[tokio::test]
async fn a_bad_request_is_a_typed_problem_naming_the_field() {
    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(1)).await;
    let served = serve(&api).await;
    let error = client(&served, &tokens.writer)
        .queue_run(1, &queue_body("Not A Type", json!({})))
        .await
        .expect_err("an invalid run type");
    let ClientError::Problem { problem, .. } = error else {
        panic!("a problem, not {error:?}");
    };
    assert_eq!(problem.status, 400);
    assert_eq!(problem.field.as_deref(), Some("type"));
}
