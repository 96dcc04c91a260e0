//! The pages' live updates through the real router: the runs list gets each changed run's row
//! (or its removal when it leaves the page's filters), a run's page gets its re-rendered article
//! until the run ends, and a reconnecting browser resumes after its `Last-Event-ID`.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::support::{Browser, unescaped};
use crate::api::TestApi;
use crate::api::support::run_path;
use crate::helpers::verbs::tenant;

/// The longest a test waits for one live event (the projector runs beside it).
const EVENT_WAIT: Duration = Duration::from_secs(20);

/// One server-sent event.
#[derive(Debug)]
struct Sent {
    event: String,
    id: Option<String>,
    data: String,
}

/// An open `text/event-stream` page response.
struct Live {
    body: Body,
    buffer: String,
}

impl Live {
    async fn open(
        api: &TestApi,
        browser: &Browser<'_>,
        url: &str,
        last_event_id: Option<&str>,
    ) -> Self {
        let mut request = browser.request(Method::GET, url, None);
        if let Some(id) = last_event_id {
            request
                .headers_mut()
                .insert("last-event-id", id.parse().unwrap());
        }
        let response = api
            .app
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        Self {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next event with data (comments and id-only blocks skipped); `None` when the server
    /// ended the response.
    async fn next(&mut self) -> Option<Sent> {
        tokio::time::timeout(EVENT_WAIT, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    if let Some(sent) = parse(&block) {
                        return Some(sent);
                    }
                    continue;
                }
                let frame = self.body.frame().await?.expect("read the stream");
                if let Ok(data) = frame.into_data() {
                    self.buffer
                        .push_str(std::str::from_utf8(&data).expect("UTF-8"));
                }
            }
        })
        .await
        .expect("a live event within the wait")
    }

    /// Events until one satisfies `wanted`; returns it.
    async fn until(&mut self, what: &str, wanted: impl Fn(&Sent) -> bool) -> Sent {
        loop {
            let sent = self
                .next()
                .await
                .unwrap_or_else(|| panic!("the stream ended before {what}"));
            if wanted(&sent) {
                return sent;
            }
        }
    }
}

fn parse(block: &str) -> Option<Sent> {
    let (mut event, mut id, mut data) = ("message".to_owned(), None, None::<String>);
    for line in block
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(':'))
    {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = value.to_owned(),
            "id" => id = Some(value.to_owned()),
            "data" => data = Some(data.map_or(value.to_owned(), |d| format!("{d}\n{value}"))),
            _ => {}
        }
    }
    Some(Sent {
        event,
        id,
        data: data?,
    })
}

/// The `data-live-url` of a page.
fn live_url(html: &str) -> String {
    regex::Regex::new(r#"data-live-url="([^"]+)""#)
        .unwrap()
        .captures(html)
        .map(|c| unescaped(&c[1]))
        .unwrap_or_else(|| panic!("a live page: {html}"))
}

fn row_update(sent: &Sent) -> Value {
    assert_eq!(sent.event, "run");
    serde_json::from_str(&sent.data).expect("a row update is JSON")
}

#[tokio::test]
async fn the_runs_list_receives_new_and_changed_rows_and_drops_runs_that_leave_its_filter() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    // A page offers live updates once the read model has been built.
    api.project().await;
    let live_projector = api.project_live();
    let mut browser = Browser::signed_in(&api, &tokens.reader).await;
    let all = browser.get("/ui/tenants/1/runs").await;
    let mut everything = Live::open(&api, &browser, &live_url(&all.html), None).await;
    let running_only = browser.get("/ui/tenants/1/runs?status=running").await;
    let mut running = Live::open(&api, &browser, &live_url(&running_only.html), None).await;

    let id = api
        .queue(t, &tokens.writer, "inventory.sync", json!({}))
        .await;
    let added = everything
        .until("the new run's row", |sent| {
            row_update(sent)["id"] == id.as_str()
        })
        .await;
    let html = row_update(&added)["html"].as_str().unwrap().to_owned();
    assert!(
        html.starts_with(&format!(r#"<tr id="run-{id}" data-status="queued""#)),
        "{html}"
    );
    let not_running = running
        .until("the queued run", |sent| {
            row_update(sent)["id"] == id.as_str()
        })
        .await;
    assert_eq!(
        row_update(&not_running)["html"],
        Value::Null,
        "not in a running-only list"
    );

    let start = api
        .post(&run_path(t, &id, "/start"), &tokens.writer, &json!({}))
        .await;
    assert_eq!(start.status, StatusCode::OK, "{:#}", start.body);
    let started = running
        .until("the running row", |sent| {
            !row_update(sent)["html"].is_null()
        })
        .await;
    assert!(
        row_update(&started)["html"]
            .as_str()
            .unwrap()
            .contains(">Running<")
    );

    let complete = api
        .post(&run_path(t, &id, "/complete"), &tokens.writer, &json!({}))
        .await;
    assert_eq!(complete.status, StatusCode::OK, "{:#}", complete.body);
    let completed = everything
        .until("the completed row", |sent| {
            row_update(sent)["html"]
                .as_str()
                .is_some_and(|html| html.contains(r#"data-status="completed""#))
        })
        .await;
    assert!(
        row_update(&completed)["html"]
            .as_str()
            .unwrap()
            .contains(">Succeeded<")
    );
    let left = running
        .until("the run leaving", |sent| row_update(sent)["html"].is_null())
        .await;
    assert_eq!(row_update(&left)["id"], id.as_str());

    // A reconnecting browser resumes after the last event it received, repeating nothing.
    let resumed_from = started.id.clone().expect("every update has an id");
    let mut resumed = Live::open(&api, &browser, &live_url(&all.html), Some(&resumed_from)).await;
    let first = resumed
        .next()
        .await
        .expect("an update after the resume point");
    assert_ne!(first.id, started.id);
    assert!(
        row_update(&first)["html"]
            .as_str()
            .is_some_and(|html| html.contains(r#"data-status="completed""#)),
        "{first:?}"
    );
    live_projector.stop().await;
}

#[tokio::test]
async fn a_run_page_follows_the_run_until_it_ends() {
    let (api, tokens, id) = TestApi::with_queued_run().await;
    let t = tenant(1);
    api.project().await;
    let live_projector = api.project_live();
    let mut browser = Browser::signed_in(&api, &tokens.auditor).await;
    let page = browser.get(&format!("/ui/tenants/1/runs/{id}")).await;
    let mut live = Live::open(&api, &browser, &live_url(&page.html), None).await;

    for (rest, body) in [
        ("/start", json!({})),
        ("/progress", json!({ "success": 3, "total": 4 })),
    ] {
        let answer = api
            .post(&run_path(t, &id, rest), &tokens.writer, &body)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
    }
    let progressed = live
        .until("the progress", |sent| sent.data.contains("3 ok of 4"))
        .await;
    assert_eq!(progressed.event, "run");
    assert!(
        progressed
            .data
            .starts_with(r#"<article id="run" data-status="running""#)
    );
    assert_eq!(
        progressed
            .data
            .matches(r#"<li class="timeline-event""#)
            .count(),
        3
    );

    let answer = api
        .post(&run_path(t, &id, "/complete"), &tokens.writer, &json!({}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
    let last = live
        .until("the completed article", |sent| {
            sent.data.contains(r#"data-status="completed""#)
        })
        .await;
    assert!(
        last.data.contains("Chain verified (4 events)"),
        "{}",
        last.data
    );
    let end = live.next().await.expect("an end event");
    assert_eq!(end.event, "end");
    assert!(
        live.next().await.is_none(),
        "the response ends with the run"
    );
    live_projector.stop().await;
}

#[tokio::test]
async fn a_live_stream_needs_a_session_and_a_well_formed_cursor() {
    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(1)).await;
    let mut stranger = Browser::new(&api);
    let refused = stranger.get("/ui/tenants/1/runs/live?after=0.0").await;
    assert!(refused.location().starts_with("/ui/sign-in"));
    let mut browser = Browser::signed_in(&api, &tokens.reader).await;
    let malformed = browser.get("/ui/tenants/1/runs/live?after=yesterday").await;
    assert!(
        malformed
            .assert_html(StatusCode::BAD_REQUEST)
            .contains("after: ")
    );
}
