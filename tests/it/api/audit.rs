//! Audit routes: a run's events (whose hashes an auditor can recompute from the answer alone),
//! its state as of a version or a time (the same fold as the command path), tenant isolation
//! and roles, the tenant's log in pages, and the live log over real HTTP with resumption.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use http_body_util::{BodyExt, Empty};
use runledger_api::auth::Role;
use runledger_api::run_json::run_json;
use runledger_core::{RunId, TenantId};
use runledger_store::chain::{HashedFields, event_hash, verify_chain};
use runledger_store::command::fold;
use runledger_store::{LogCursor, RecordedEvent};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::{Answer, TestApi};
use crate::helpers::LOG_WAIT;
use crate::helpers::verbs::{complete, new_run_id, progress, request, start, tenant};

/// Queues `run` for `t` and takes it through start, two progress reports and completion: five
/// events, versions 1 to 5.
async fn run_of_five(api: &TestApi, t: TenantId) -> RunId {
    let run = new_run_id();
    api.store
        .queue_run(t, run, json!({"run": run.as_uuid()}))
        .await;
    for command in [start(), progress(2, 1), progress(4, 0), complete()] {
        execute(api, t, run, command).await;
    }
    run
}

/// A completed run of five events in tenant 1, and what a test of it needs.
struct AuditedRun {
    api: TestApi,
    t: TenantId,
    run: RunId,
    /// An auditor token of tenant 1.
    auditor: String,
    /// The run's events as stored.
    stored: Vec<RecordedEvent>,
}

impl AuditedRun {
    async fn new() -> Self {
        let api = TestApi::new().await;
        let t = tenant(1);
        let run = run_of_five(&api, t).await;
        let auditor = api.token(t, Role::Auditor).await;
        let stored = api.store.reader.read_stream(t, run).await.unwrap();
        Self {
            api,
            t,
            run,
            auditor,
            stored,
        }
    }

    /// The run JSON the state route must answer for the first `count` stored events: the
    /// store's own fold, rendered as every route renders a run.
    fn folded(&self, count: usize) -> Value {
        let run = fold(&self.stored[..count]).expect("stored events decode");
        let run = run_json(
            &self.api.config,
            run.snapshot().expect("a queued run"),
            None,
        )
        .expect("the run reads as the wire type");
        serde_json::to_value(run).expect("a run serializes")
    }

    /// `GET` a path of the run (`events`, `state?…`) as the auditor.
    async fn get(&self, rest: &str) -> Answer {
        self.api
            .get(&run_path(self.t, self.run, rest), &self.auditor)
            .await
    }
}

async fn execute(api: &TestApi, t: TenantId, run: RunId, command: runledger_core::RunCommand) {
    api.store
        .commands
        .execute(&request(t, run, command))
        .await
        .expect("the command applies");
}

fn run_path(t: TenantId, run: RunId, rest: &str) -> String {
    format!("/v1/tenants/{t}/runs/{run}/{rest}")
}

/// A time as the API writes it (and as the hash chain covers it).
fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn hex32(value: &Value) -> [u8; 32] {
    let text = value.as_str().expect("a hex string");
    assert_eq!(text, text.to_lowercase(), "hashes are lowercase hex");
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect();
    bytes.try_into().expect("32 bytes")
}

/// The hash of an event, recomputed from its JSON alone, as an auditor would.
fn recompute_hash(event: &Value) -> [u8; 32] {
    let uuid = |field: &str| event[field].as_str().unwrap().parse().unwrap();
    event_hash(
        &hex32(&event["prev_hash"]),
        &HashedFields {
            event_id: uuid("event_id"),
            run_id: uuid("run_id"),
            tenant_id: event["tenant_id"].as_i64().unwrap(),
            version: event["version"].as_u64().unwrap(),
            event_type: event["event_type"].as_str().unwrap(),
            schema_version: i32::try_from(event["schema_version"].as_i64().unwrap()).unwrap(),
            payload: &event["payload"],
            metadata: &event["metadata"],
            recorded_at: event["recorded_at"].as_str().unwrap().parse().unwrap(),
        },
    )
}

#[tokio::test]
async fn run_events_come_in_stream_order_with_hashes_an_auditor_can_recompute() {
    let audited = AuditedRun::new().await;

    let answer = audited.get("events").await;

    assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
    assert_eq!(verify_chain(&audited.stored), Ok(5));
    let events = answer.body["events"].as_array().expect("an events array");
    assert_eq!(events.len(), audited.stored.len());
    for (event, stored) in events.iter().zip(&audited.stored) {
        assert_eq!(
            event,
            &json!({
                "cursor": LogCursor::after(stored).to_string(),
                "position": stored.position,
                "tx_id": stored.tx_id,
                "tenant_id": 1,
                "run_id": audited.run.as_uuid(),
                "version": stored.version,
                "event_id": stored.event_id.as_uuid(),
                "event_type": stored.event_type,
                "schema_version": stored.schema_version,
                "payload": stored.payload,
                "metadata": stored.metadata,
                "recorded_at": rfc3339(stored.recorded_at),
                "prev_hash": hex_of(&stored.prev_hash),
                "hash": hex_of(&stored.hash),
            })
        );
        assert_eq!(recompute_hash(event), stored.hash);
    }
    assert_eq!(
        events.iter().map(|e| &e["event_type"]).collect::<Vec<_>>(),
        ["Queued", "Started", "Progressed", "Progressed", "Completed"]
    );
    // Each event links to the one before it, in the answer itself.
    assert_eq!(events[0]["prev_hash"], "0".repeat(64));
    for pair in events.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
}

fn hex_of(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn state_at_each_version_is_the_fold_of_the_events_up_to_it() {
    let audited = AuditedRun::new().await;

    for version in 1..=5 {
        let answer = audited.get(&format!("state?at_version={version}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
        let last = &audited.stored[version - 1];
        assert_eq!(
            answer.body,
            json!({
                "run": audited.folded(version),
                "as_of": {"version": version, "recorded_at": rfc3339(last.recorded_at)},
            })
        );
    }
    let latest = audited.get("state").await;
    assert_eq!(latest.body["run"], audited.folded(5));
    assert_eq!(latest.body["as_of"]["version"], 5);
    assert_eq!(latest.body["run"]["status"], "completed");
}

#[tokio::test]
async fn state_at_a_time_folds_the_events_recorded_by_then() {
    let audited = AuditedRun::new().await;
    let stored = &audited.stored;
    let state_at = |at: DateTime<Utc>| format!("state?at={}", rfc3339(at));

    for event in stored {
        let answer = audited.get(&state_at(event.recorded_at)).await;
        assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
        let recorded_by_then = stored
            .iter()
            .take_while(|e| e.recorded_at <= event.recorded_at)
            .count();
        assert_eq!(answer.body["run"], audited.folded(recorded_by_then));
        assert_eq!(answer.body["as_of"]["version"], recorded_by_then);
    }
    let long_after = audited
        .get(&state_at(stored[4].recorded_at + Duration::days(1)))
        .await;
    assert_eq!(long_after.body["as_of"]["version"], 5);

    // Before the run's first event there was no run.
    let before = audited
        .get(&state_at(stored[0].recorded_at - Duration::microseconds(1)))
        .await;
    before.assert_problem(StatusCode::NOT_FOUND, None);
}

#[tokio::test]
async fn state_parameters_out_of_range_or_malformed_are_problems_naming_the_field() {
    let audited = AuditedRun::new().await;

    for (query, field) in [
        ("at_version=0", "at_version"),
        ("at_version=6", "at_version"),
        ("at_version=two", "at_version"),
        ("at_version=-1", "at_version"),
        ("at=yesterday", "at"),
        ("at_version=1&at=2026-11-26T12:00:00Z", "at_version"),
        ("version=1", "query"),
    ] {
        let answer = audited.get(&format!("state?{query}")).await;
        answer.assert_problem(StatusCode::BAD_REQUEST, Some(field));
    }
}

/// The parts of a problem body that do not depend on the request.
fn without_request_details(problem: &Value) -> Value {
    let mut problem = problem.clone();
    let object = problem.as_object_mut().expect("a problem object");
    object.remove("instance");
    object.remove("request_id");
    problem
}

#[tokio::test]
async fn another_tenants_run_answers_exactly_like_a_missing_one() {
    let api = TestApi::new().await;
    let (a, b) = (tenant(1), tenant(2));
    let run_of_b = run_of_five(&api, b).await;
    let auditor_of_a = api.token(a, Role::Auditor).await;
    let missing = new_run_id();

    for rest in ["events", "state", "state?at_version=1"] {
        let foreign = api.get(&run_path(b, run_of_b, rest), &auditor_of_a).await;
        let absent = api.get(&run_path(a, missing, rest), &auditor_of_a).await;
        let foreign_problem = foreign.assert_problem(StatusCode::NOT_FOUND, None);
        let absent_problem = absent.assert_problem(StatusCode::NOT_FOUND, None);
        assert_eq!(
            without_request_details(foreign_problem),
            without_request_details(absent_problem)
        );
    }
    // The tenant's log too: another tenant's log is as absent as its runs.
    let foreign_log = api
        .get(&format!("/v1/tenants/{b}/events"), &auditor_of_a)
        .await;
    foreign_log.assert_problem(StatusCode::NOT_FOUND, None);

    // An admin token acts on every tenant.
    let admin_of_a = api.token(a, Role::Admin).await;
    let as_admin = api.get(&run_path(b, run_of_b, "events"), &admin_of_a).await;
    assert_eq!(as_admin.status, StatusCode::OK, "{:#}", as_admin.body);
}

#[tokio::test]
async fn readers_and_writers_may_not_audit_and_strangers_are_unauthorized() {
    let AuditedRun { api, t, run, .. } = AuditedRun::new().await;

    for role in [Role::Reader, Role::Writer] {
        let token = api.token(t, role).await;
        for path in [
            run_path(t, run, "events"),
            run_path(t, run, "state"),
            format!("/v1/tenants/{t}/events"),
        ] {
            api.get(&path, &token)
                .await
                .assert_problem(StatusCode::FORBIDDEN, None);
        }
    }
    api.get(&run_path(t, run, "events"), "not-a-token")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, None);
}

#[tokio::test]
async fn pages_of_the_tenant_log_cover_each_of_its_events_once_in_safe_order() {
    let api = TestApi::new().await;
    let (a, b) = (tenant(1), tenant(2));
    // Interleave the tenants' appends, so the log mixes them.
    for _ in 0..3 {
        run_of_five(&api, a).await;
        run_of_five(&api, b).await;
    }
    // Wait until readers may pass every event: from then on, pages are deterministic.
    let log = api.store.wait_for_log(LogCursor::START, 30).await;
    let expected: Vec<String> = log
        .iter()
        .filter(|e| e.tenant_id == a)
        .map(|e| LogCursor::after(e).to_string())
        .collect();
    assert_eq!(expected.len(), 15);
    let auditor = api.token(a, Role::Auditor).await;

    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            None => format!("/v1/tenants/{a}/events?limit=4"),
            Some(cursor) => format!("/v1/tenants/{a}/events?limit=4&after={cursor}"),
        };
        let page = api.get(&path, &auditor).await;
        assert_eq!(page.status, StatusCode::OK, "{:#}", page.body);
        let events = page.body["events"].as_array().expect("an events array");
        assert!(events.len() <= 4);
        assert!(events.iter().all(|e| e["tenant_id"] == 1), "only tenant 1");
        let next_cursor = page.body["next_cursor"].as_str().expect("a next_cursor");
        if events.is_empty() {
            // An empty page hands back the cursor it was given.
            assert_eq!(Some(next_cursor), after.as_deref());
            break;
        }
        assert_eq!(events.last().unwrap()["cursor"], next_cursor);
        seen.extend(
            events
                .iter()
                .map(|e| e["cursor"].as_str().unwrap().to_owned()),
        );
        after = Some(next_cursor.to_owned());
    }
    assert_eq!(seen, expected);

    // The default page size covers it all at once.
    let whole = api.get(&format!("/v1/tenants/{a}/events"), &auditor).await;
    assert_eq!(whole.body["events"].as_array().unwrap().len(), 15);
}

#[tokio::test]
async fn a_malformed_cursor_or_limit_is_a_problem_naming_the_field() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let auditor = api.token(t, Role::Auditor).await;
    let log = format!("/v1/tenants/{t}/events");

    for (query, field) in [
        ("after=abc", "after"),
        ("after=12", "after"),
        ("after=1.-2", "after"),
        ("after=1.2.3", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=many", "limit"),
        ("from=1.2", "query"),
    ] {
        api.get(&format!("{log}?{query}"), &auditor)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, Some(field));
    }

    // The live log checks its cursor before it opens.
    let live = |query: &str, last_event_id: Option<&str>| {
        let mut request = Request::get(format!("{log}{query}"))
            .header(header::AUTHORIZATION, format!("Bearer {auditor}"))
            .header(header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        request.body(Body::empty()).expect("a valid request")
    };
    let answer: Answer = api.send(live("", Some("not-a-cursor"))).await;
    answer.assert_problem(StatusCode::BAD_REQUEST, Some("Last-Event-ID"));
    let answer = api.send(live("?after=x", None)).await;
    answer.assert_problem(StatusCode::BAD_REQUEST, Some("after"));
    let answer = api.send(live("?limit=5", None)).await;
    answer.assert_problem(StatusCode::BAD_REQUEST, Some("limit"));
}

/// The app on a random local port, served as the binary serves it.
async fn serve(api: &TestApi) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let address = listener.local_addr().expect("the bound address");
    let app = api.app.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve the API");
    });
    (address, server)
}

/// One server-sent event.
#[derive(Debug)]
pub(crate) struct SseEvent {
    pub(crate) id: String,
    pub(crate) event: String,
    pub(crate) data: Value,
}

/// An open `text/event-stream` response, read over a real HTTP/1.1 connection.
pub(crate) struct EventStream {
    body: hyper::body::Incoming,
    buffer: Vec<u8>,
    connection: JoinHandle<()>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        // Closes the connection, as a client that goes away does.
        self.connection.abort();
    }
}

impl EventStream {
    pub(crate) async fn open(
        address: SocketAddr,
        path: &str,
        token: &str,
        last_event_id: Option<&str>,
    ) -> Self {
        let (mut sender, connection) = super::support::http1_connection(address).await;
        let mut request = Request::get(path)
            .header(header::HOST, address.to_string())
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = sender
            .send_request(
                request
                    .body(Empty::<Bytes>::new())
                    .expect("a valid request"),
            )
            .await
            .expect("a response");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        Self {
            body: response.into_body(),
            buffer: Vec::new(),
            connection,
        }
    }

    /// The next event (keep-alive comments skipped), waiting at most [`LOG_WAIT`].
    pub(crate) async fn next(&mut self) -> SseEvent {
        self.next_or_end().await.expect("the stream stays open")
    }

    /// The next event (comments skipped), or `None` when the server ended the response;
    /// waiting at most [`LOG_WAIT`].
    pub(crate) async fn next_or_end(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(LOG_WAIT, async {
            loop {
                if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                    let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                    if let Some(event) = parse_sse_block(&String::from_utf8(block).unwrap()) {
                        return Some(event);
                    }
                    continue;
                }
                let frame = self.body.frame().await?.expect("read the stream");
                if let Ok(data) = frame.into_data() {
                    self.buffer.extend_from_slice(&data);
                }
            }
        })
        .await
        .expect("an event or the end arrives within the wait")
    }
}

/// One block of `field: value` lines; `None` for a block of comments only (a keep-alive).
fn parse_sse_block(block: &str) -> Option<SseEvent> {
    let (mut id, mut event, mut data) = (None, None, None::<String>);
    for line in block
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(':'))
    {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        match field {
            "id" => id = Some(value),
            "event" => event = Some(value),
            "data" => data = Some(data.map_or(value.clone(), |d| format!("{d}\n{value}"))),
            other => panic!("unexpected SSE field {other:?} in {block:?}"),
        }
    }
    let data = data?;
    Some(SseEvent {
        id: id.expect("every event has an id"),
        event: event.expect("every event has a name"),
        data: serde_json::from_str(&data).expect("the data is JSON"),
    })
}

#[tokio::test]
async fn the_live_log_delivers_new_events_in_order_and_resumes_after_last_event_id() {
    let api = TestApi::new().await;
    let (a, b) = (tenant(1), tenant(2));
    let run = new_run_id();
    api.store.queue_run(a, run, json!({"live": 1})).await;
    let other = new_run_id();
    api.store.queue_run(b, other, json!({"live": 2})).await;
    let auditor = api.token(a, Role::Auditor).await;
    let (address, server) = serve(&api).await;
    let log = format!("/v1/tenants/{a}/events");

    let mut stream = EventStream::open(address, &log, &auditor, None).await;
    let mut received = vec![stream.next().await];
    // Appended after the stream opened, with the other tenant's appends in between.
    execute(&api, b, other, start()).await;
    for command in [start(), progress(1, 0), progress(2, 0)] {
        execute(&api, a, run, command).await;
        execute(&api, b, other, progress(1, 0)).await;
    }
    for _ in 0..3 {
        received.push(stream.next().await);
    }
    drop(stream);

    // Appended while no one listens.
    execute(&api, a, run, progress(3, 0)).await;
    execute(&api, a, run, complete()).await;
    // The header wins over `after` (which would repeat versions 2 to 4).
    let resume_from = received.last().unwrap().id.clone();
    let mut resumed = EventStream::open(
        address,
        &format!("{log}?after={}", received[0].id),
        &auditor,
        Some(&resume_from),
    )
    .await;
    for _ in 0..2 {
        received.push(resumed.next().await);
    }
    drop(resumed);
    server.abort();

    // Every event of the tenant, once each, in order, each as the run's events route shows it.
    let stored = api.store.reader.read_stream(a, run).await.unwrap();
    assert_eq!(
        received.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        stored
            .iter()
            .map(|e| LogCursor::after(e).to_string())
            .collect::<Vec<_>>()
    );
    let shown = api.get(&run_path(a, run, "events"), &auditor).await;
    for (event, shown) in received
        .iter()
        .zip(shown.body["events"].as_array().unwrap())
    {
        assert_eq!(&event.data, shown);
        assert_eq!(event.data["cursor"], event.id);
        assert_eq!(event.data["event_type"], event.event);
    }
}
