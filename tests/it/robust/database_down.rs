//! The database stopped under load, with a spawned `runledger serve` (as the application role)
//! on a private cluster: `/readyz` answers 503 within 1 s of the stop and commands 503
//! `application/problem+json` with `Retry-After` within 3 s, never a 500; once the database is
//! back, commands succeed without restarting `serve`, a live stream opened before the outage
//! carries the new events, and every command answered 2xx has its events in the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Method, StatusCode, header};
use runledger_api::auth::Role;
use runledger_api::tokens::{NewToken, create_token};
use runledger_core::RunId;
use runledger_store::EventReader;
use serde_json::json;
use tokio::sync::Mutex;

use crate::api::Answer;
use crate::api::audit::EventStream;
use crate::api::support::send_to;
use crate::helpers::verbs::tenant;

use super::support::{Cluster, DATABASE, SpawnedServe, migrate};

/// How many clients send commands throughout.
const CLIENTS: usize = 3;
/// The longest the test waits for the server to serve commands again once the database is back.
const RECOVERY: Duration = Duration::from_secs(20);

/// Queues a run with a fresh identity under a fresh `Idempotency-Key`.
async fn queue(address: std::net::SocketAddr, token: &str) -> Answer {
    let bearer = format!("Bearer {token}");
    let key = uuid::Uuid::new_v4().to_string();
    let body = json!({ "type": "inventory.sync", "identity": { "n": key } }).to_string();
    send_to(
        address,
        Method::POST,
        "/v1/tenants/1/runs",
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
            ("idempotency-key", &key),
        ],
        Bytes::from(body),
    )
    .await
}

/// What the clients saw: the runs whose queue was acknowledged, and every other answer.
#[derive(Default)]
struct Seen {
    acknowledged: Vec<String>,
    refused: Vec<(StatusCode, String)>,
}

/// A client sending commands one after another until `stop`, honouring `Retry-After` (capped,
/// so that it keeps the load on).
async fn client(
    address: std::net::SocketAddr,
    token: String,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let answer = queue(address, &token).await;
        let mut seen = seen.lock().await;
        if answer.status.is_success() {
            let id = answer.body["run"]["id"]
                .as_str()
                .expect("a run id")
                .to_owned();
            seen.acknowledged.push(id);
        } else {
            let kind = answer.body["type"].as_str().unwrap_or_default().to_owned();
            seen.refused.push((answer.status, kind));
            drop(seen);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_database_stopped_serve_answers_503_fast_and_recovers_by_itself() {
    let mut cluster = Cluster::start().await;
    // The owner migrates; `serve` runs as the application role and does not.
    migrate(&cluster.superuser_url(DATABASE));
    cluster.create_application_role().await;
    let (writer, auditor) = {
        let pool = sqlx::PgPool::connect(&cluster.superuser_url(DATABASE))
            .await
            .expect("connect as the owner");
        let mut secrets = Vec::new();
        for role in [Role::Writer, Role::Auditor] {
            let token = NewToken {
                tenant_id: tenant(1),
                role,
                user_id: None,
                name: format!("robust-{}", role.as_str()),
            };
            secrets.push(create_token(&pool, &token).await.expect("a token").secret);
        }
        pool.close().await;
        (secrets[0].clone(), secrets[1].clone())
    };
    let mut serve = SpawnedServe::spawn(
        &cluster.application_url(),
        &[
            "--sweep-interval-seconds",
            "0",
            "--anchor-every-events",
            "0",
        ],
    );
    serve.wait_until_ready().await;
    let address = serve.address;
    let mut tail = EventStream::open(address, "/v1/tenants/1/events", &auditor, None).await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(client(
                address,
                writer.clone(),
                Arc::clone(&seen),
                Arc::clone(&stop),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !seen.lock().await.acknowledged.is_empty(),
        "commands are served before the outage"
    );

    cluster.stop().await;
    let stopped = Instant::now();
    let ready = send_to(address, Method::GET, "/readyz", &[], Bytes::new()).await;
    let readiness_took = stopped.elapsed();
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:#}",
        ready.body
    );
    assert_eq!(ready.body["checks"]["database"], "unreachable");
    assert!(
        readiness_took < Duration::from_secs(1),
        "/readyz took {readiness_took:?}"
    );

    let asked = Instant::now();
    let refused = queue(address, &writer).await;
    let command_took = asked.elapsed();
    let command_after_stop = stopped.elapsed();
    let problem = refused.assert_problem(StatusCode::SERVICE_UNAVAILABLE, None);
    assert!(
        [
            "urn:runledger:problem:database-unavailable",
            "urn:runledger:problem:outcome-unknown"
        ]
        .contains(&problem["type"].as_str().unwrap_or_default()),
        "{problem:#}"
    );
    assert!(refused.headers.contains_key(header::RETRY_AFTER));
    assert!(
        command_after_stop < Duration::from_secs(3),
        "the command answered {command_took:?} after it was sent, {command_after_stop:?} after the stop"
    );
    // The clients keep sending through the outage for a moment.
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    cluster.resume().await;
    let resumed = Instant::now();
    let recovered = loop {
        let answer = queue(address, &writer).await;
        if answer.status.is_success() {
            break answer;
        }
        assert!(
            resumed.elapsed() < RECOVERY,
            "commands still fail {RECOVERY:?} after the database came back: {:#}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let recovery_took = resumed.elapsed();
    let recovered_run = recovered.body["run"]["id"]
        .as_str()
        .expect("a run id")
        .to_owned();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("a client");
    }

    // The live stream opened before the outage carries the run queued after it.
    loop {
        let event = tail.next().await;
        if event.data["run_id"] == recovered_run {
            break;
        }
    }
    let ready = send_to(address, Method::GET, "/readyz", &[], Bytes::new()).await;
    assert_eq!(ready.status, StatusCode::OK, "{:#}", ready.body);

    let seen = seen.lock().await;
    let failures: Vec<_> = seen
        .refused
        .iter()
        .filter(|(status, _)| *status != StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        failures.is_empty(),
        "only 503s while the database was down: {failures:?}"
    );
    assert!(
        !seen.refused.is_empty(),
        "the clients sent commands during the outage"
    );
    let pool = sqlx::PgPool::connect(&cluster.superuser_url(DATABASE))
        .await
        .expect("connect as the owner");
    let reader = EventReader::new(pool.clone());
    for run in seen.acknowledged.iter().chain([&recovered_run]) {
        let run: RunId = run.parse().expect("a run id");
        let events = reader
            .read_stream(tenant(1), run)
            .await
            .expect("read a run's events");
        assert!(!events.is_empty(), "acknowledged run {run} has no events");
    }
    pool.close().await;
    // A stop waits for the responses in flight, but not forever for a live stream, which never
    // ends by itself: with the tail still open, serve stops within its grace period.
    let stopping = Instant::now();
    serve.stop();
    let stop_took = stopping.elapsed();
    assert!(
        stop_took < Duration::from_secs(15),
        "serve took {stop_took:?} to stop with a live stream open"
    );
    drop(tail);
    // The figures, for the record (`--nocapture`); the bounds are asserted above.
    eprintln!(
        "database down: /readyz 503 in {readiness_took:?}; a command 503 in {command_took:?} \
         ({command_after_stop:?} after the stop); commands served again {recovery_took:?} after \
         the database accepted connections; {} commands acknowledged, {} refused with 503; \
         stopped in {stop_took:?} with a live stream open",
        seen.acknowledged.len() + 1,
        seen.refused.len()
    );
}
