//! Sixty live streams (log tails and watched lists, two tenants) on an API whose pool has five
//! connections, over real HTTP: each gets every event meant for it, in order, none of another
//! tenant's, while commands keep answering; a client that never reads delays no one; and a
//! subscriber that falls behind the hub's broadcast catches up from the log without a gap.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use futures_util::StreamExt;
use runledger_api::auth::Role;
use runledger_api::{AppState, app};
use runledger_core::TenantId;
use runledger_projections::{ProjectionsConfig, run_projectors};
use runledger_store::{HubConfig, LogCursor, LogHub};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use tokio::sync::watch;

use crate::api::TestApi;
use crate::api::audit::{EventStream, SseEvent};
use crate::api::support::{Served, run_path, runs_path};
use crate::helpers::LOG_WAIT;
use crate::helpers::verbs::{new_run_id, progress, request, start, tenant};
use crate::projections::support::options;

/// Runs per tenant; each is queued, started and completed: three events.
const RUNS: usize = 4;

/// The test API served over HTTP from a pool of `connections`, with its projectors sharing its
/// hub and pool, as `runledger serve` runs them. Dropping the stop sender stops them.
async fn serve_on_pool(api: &mut TestApi, connections: u32) -> (Served, watch::Sender<bool>) {
    let pool = PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with((*api.store.app_pool.connect_options()).clone())
        .await
        .expect("a small pool");
    let state = AppState::new(pool.clone(), api.config.clone(), Arc::clone(&api.clock));
    let projections = ProjectionsConfig {
        options: options(),
        live: Some(state.live.clone()),
    };
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        run_projectors(pool, projections, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await
        .expect("the projectors run");
    });
    api.app = app(state);
    (api.serve().await, stop)
}

/// Sends a command over HTTP and checks it was accepted.
async fn command(served: &Served, path: &str, token: &str, body: Value) -> Value {
    let answer = served
        .send(
            Method::POST,
            path,
            &[
                ("authorization", &format!("Bearer {token}")),
                ("content-type", "application/json"),
            ],
            body.to_string().into(),
        )
        .await;
    assert!(
        answer.status == StatusCode::CREATED || answer.status == StatusCode::OK,
        "{} {:#}",
        answer.status,
        answer.body
    );
    answer.body
}

/// Queues, starts and completes `RUNS` runs of tenant `t` over HTTP.
async fn drive_runs(served: &Served, t: TenantId, writer: &str) {
    for n in 0..RUNS {
        let queued = command(
            served,
            &runs_path(t),
            writer,
            json!({"type": "inventory.sync", "identity": {"n": n}}),
        )
        .await;
        let id = queued["run"]["id"].as_str().expect("a run id").to_owned();
        command(served, &run_path(t, &id, "/start"), writer, json!({})).await;
        command(
            served,
            &run_path(t, &id, "/complete"),
            writer,
            json!({"outcome": "succeeded"}),
        )
        .await;
    }
}

/// Reads `count` named events from `stream`.
async fn read(mut stream: EventStream, count: usize) -> Vec<SseEvent> {
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        events.push(stream.next().await);
    }
    events
}

fn cursor(event: &SseEvent) -> LogCursor {
    event.id.parse().expect("every id is a log cursor")
}

#[tokio::test]
async fn sixty_mixed_streams_on_a_pool_of_five_each_get_every_event_meant_for_them() {
    let mut api = TestApi::new().await;
    let tenants = [tenant(1), tenant(2)];
    let mut tokens = Vec::new();
    for t in tenants {
        tokens.push((
            api.token(t, Role::Auditor).await,
            api.token(t, Role::Reader).await,
            api.token(t, Role::Writer).await,
        ));
    }
    let (served, stop) = serve_on_pool(&mut api, 5).await;

    // 60 streams, each on a connection of its own: per tenant 15 log tails and 15 watched lists.
    let mut opened = Vec::new();
    for i in 0..60 {
        let which = i % 2;
        let t = tenants[which];
        let (auditor, reader, _) = &tokens[which];
        let stream = if i % 4 < 2 {
            let path = format!("/v1/tenants/{t}/events");
            (
                "log",
                t,
                EventStream::open(served.address(), &path, auditor, None).await,
            )
        } else {
            let path = format!("{}?watch=true", runs_path(t));
            (
                "list",
                t,
                EventStream::open(served.address(), &path, reader, None).await,
            )
        };
        opened.push(stream);
    }
    let readers: Vec<_> = opened
        .into_iter()
        .map(|(kind, t, stream)| {
            tokio::spawn(async move { (kind, t, read(stream, RUNS * 3).await) })
        })
        .collect();

    // Commands over the same server keep answering while the streams are open.
    let started = tokio::time::Instant::now();
    let (w1, w2) = (tokens[0].2.clone(), tokens[1].2.clone());
    tokio::join!(
        drive_runs(&served, tenants[0], &w1),
        drive_runs(&served, tenants[1], &w2)
    );
    assert!(started.elapsed() < LOG_WAIT, "the commands answered");

    for reader in readers {
        let (kind, t, events) = tokio::time::timeout(LOG_WAIT, reader)
            .await
            .expect("every stream gets its events within the wait")
            .expect("the reader did not panic");
        let cursors: Vec<LogCursor> = events.iter().map(cursor).collect();
        assert!(
            cursors.windows(2).all(|pair| pair[0] < pair[1]),
            "{kind} stream of {t}: in log order, none twice"
        );
        match kind {
            "log" => {
                for event in &events {
                    assert_eq!(event.data["tenant_id"], t.get(), "only its tenant's events");
                }
                let types: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
                assert_eq!(types.iter().filter(|t| **t == "Completed").count(), RUNS);
            }
            _ => {
                // One event per event of the tenant, each showing its run as the read model has
                // it by then; the last one of each run shows it completed.
                let mut last = std::collections::HashMap::new();
                for event in &events {
                    let run = &event.data["run"];
                    assert_eq!(run["tenant_id"], t.get(), "only its tenant's runs");
                    last.insert(run["id"].to_string(), run["status"].clone());
                }
                assert_eq!(
                    events.iter().filter(|e| e.event == "entered").count(),
                    RUNS,
                    "each run enters once"
                );
                assert_eq!(last.len(), RUNS);
                assert!(
                    last.values().all(|status| status == "completed"),
                    "{last:?}"
                );
            }
        }
    }
    let _ = stop.send(true);
}

#[tokio::test]
async fn a_client_that_never_reads_does_not_delay_the_others() {
    let mut api = TestApi::new().await;
    let t = tenant(1);
    let auditor = api.token(t, Role::Auditor).await;
    let writer = api.token(t, Role::Writer).await;
    let (served, stop) = serve_on_pool(&mut api, 5).await;
    let path = format!("/v1/tenants/{t}/events");

    // Opened, then never read while the runs are driven.
    let slow = EventStream::open(served.address(), &path, &auditor, None).await;
    let reading = EventStream::open(served.address(), &path, &auditor, None).await;
    let reader = tokio::spawn(read(reading, RUNS * 3));
    drive_runs(&served, t, &writer).await;
    let events = tokio::time::timeout(LOG_WAIT, reader)
        .await
        .expect("the reading client gets every event while the other reads nothing")
        .unwrap();
    assert_eq!(events.len(), RUNS * 3);

    // The slow client, once it reads, still gets every event, in order.
    let late = read(slow, RUNS * 3).await;
    let ids = |events: &[SseEvent]| events.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&late), ids(&events));
    let _ = stop.send(true);
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_the_broadcast_catches_up_from_the_log() {
    let store = crate::helpers::TestStore::new().await;
    // A broadcast of one batch: any subscriber that does not keep up falls behind.
    let hub = LogHub::start(
        store.reader.clone(),
        HubConfig {
            poll: Duration::from_millis(50),
            capacity: 1,
            ..HubConfig::default()
        },
    );
    let t = tenant(1);
    let mut quick = Box::pin(hub.follow(LogCursor::START, Some(t)));
    let mut slow = Box::pin(hub.follow(LogCursor::START, Some(t)));
    let run = new_run_id();
    store.queue_run(t, run, json!({"lag": 1})).await;
    // Both are subscribed and caught up with the first event.
    let first = quick.next().await.unwrap().unwrap();
    assert_eq!(slow.next().await.unwrap().unwrap().position, first.position);

    // The quick one reads every event as it comes, while the slow one reads nothing.
    let quick_reader = tokio::spawn(async move {
        let mut positions = vec![first.position];
        while positions.len() < 32 {
            positions.push(quick.next().await.unwrap().unwrap().position);
        }
        positions
    });
    store
        .commands
        .execute(&request(t, run, start()))
        .await
        .unwrap();
    for n in 1..=30 {
        store
            .commands
            .execute(&request(t, run, progress(n, 0)))
            .await
            .unwrap();
    }
    let quick_events = tokio::time::timeout(LOG_WAIT, quick_reader)
        .await
        .expect("the quick subscriber keeps up")
        .unwrap();
    // The slow one, far behind the one-batch broadcast by now, gets the same events, in order.
    let slow_events: Vec<i64> = tokio::time::timeout(LOG_WAIT, async {
        let mut positions = vec![first.position];
        while positions.len() < 32 {
            positions.push(slow.next().await.unwrap().unwrap().position);
        }
        positions
    })
    .await
    .expect("the slow subscriber catches up");
    assert_eq!(slow_events, quick_events);
}

#[tokio::test]
async fn a_watched_list_resumes_after_last_event_id_losing_nothing() {
    let mut api = TestApi::new().await;
    let t = tenant(1);
    let reader = api.token(t, Role::Reader).await;
    let writer = api.token(t, Role::Writer).await;
    let (served, stop) = serve_on_pool(&mut api, 5).await;
    let path = format!("{}?watch=true", runs_path(t));

    let mut stream = EventStream::open(served.address(), &path, &reader, None).await;
    let queued = command(
        &served,
        &runs_path(t),
        &writer,
        json!({"type": "inventory.sync", "identity": {}}),
    )
    .await;
    let id = queued["run"]["id"].as_str().unwrap().to_owned();
    let entered = stream.next().await;
    assert_eq!(entered.event, "entered");
    drop(stream);

    // While no one watches.
    command(&served, &run_path(t, &id, "/start"), &writer, json!({})).await;
    command(
        &served,
        &run_path(t, &id, "/complete"),
        &writer,
        json!({"outcome": "succeeded"}),
    )
    .await;
    let mut resumed = EventStream::open(served.address(), &path, &reader, Some(&entered.id)).await;
    let started = resumed.next().await;
    let completed = resumed.next().await;
    assert!(cursor(&entered) < cursor(&started) && cursor(&started) < cursor(&completed));
    // Resumed after the run entered, the stream had not shown it: it enters again, then changes.
    assert_eq!(started.data["run"]["id"], id.as_str());
    assert_eq!(completed.data["run"]["status"], "completed");
    let _ = stop.send(true);
}
