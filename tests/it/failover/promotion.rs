//! A spawned `runledger serve` on a multi-host `DATABASE_URL` (a durable primary and its
//! synchronous standby, `target_session_attrs=read-write`), 8 clients driving run lifecycles
//! with an `Idempotency-Key` per command; the primary killed (`SIGKILL`) and the standby
//! promoted with `pg_ctl promote`. Commands during the switch answer 503 problem+json and succeed on retry with the
//! same key; the same `serve` accepts commands again within 10 s of the promotion; every
//! acknowledged command's events are on the new primary exactly once, `runledger verify` passes
//! there, the read model catches up (projector leadership moved), the live stream carries the
//! new events, anchoring records on the new primary, and the read models there equal a rebuild.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Method, StatusCode, header};
use runledger_api::auth::Role;
use runledger_api::tokens::{NewToken, create_token};
use runledger_core::RunId;
use runledger_pg::{Durability, EmbeddedConfig, EmbeddedPostgres, StandbyMode};
use runledger_projections::{Notifications, OperationRuns, Projection, Projector, rebuild};
use runledger_store::EventReader;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::api::Answer;
use crate::api::audit::EventStream;
use crate::api::support::send_to;
use crate::client::cli::runledger;
use crate::helpers::verbs::tenant;
use crate::processes::support::wait_until_caught_up;
use crate::projections::support::{drain, options, view_rows};
use crate::robust::support::{DATABASE, SpawnedServe, migrate};

/// How many clients drive lifecycles throughout.
const CLIENTS: usize = 8;
/// The bound: from `pg_ctl promote` returning to a command accepted again.
const AFTER_PROMOTION: Duration = Duration::from_secs(10);
/// The longest one command is retried (with its key) before the test gives up.
const RETRYING: Duration = Duration::from_secs(30);
/// The read model's and the live stream's bound to catch up on the new primary.
const CATCH_UP: Duration = Duration::from_secs(30);

/// A server of the pair, in a directory of the test's own.
fn config(
    dir: &tempfile::TempDir,
    name: &str,
    port: u16,
    durability: Durability,
) -> EmbeddedConfig {
    EmbeddedConfig {
        dir: Some(dir.path().join(name)),
        durability,
        max_connections: 100,
        port,
        ..EmbeddedConfig::ephemeral()
    }
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// Per run: the commands acknowledged (`queue`, `start`, `complete`), in order.
    acknowledged: HashMap<String, Vec<&'static str>>,
    /// The problem types of the 503s.
    unavailable: Vec<String>,
    /// Commands that succeeded on a retry (same key) after a 503.
    succeeded_on_retry: usize,
    /// Any answer that was neither a success nor a 503.
    failures: Vec<(StatusCode, Value)>,
}

/// Sends one command with `key` until it succeeds (each 503 retried with the same key), for at
/// most [`RETRYING`]; `None` when it failed otherwise (recorded).
async fn command(
    address: SocketAddr,
    token: &str,
    path: &str,
    body: &Value,
    seen: &Mutex<Seen>,
) -> Option<Answer> {
    let key = uuid::Uuid::new_v4().to_string();
    let bearer = format!("Bearer {token}");
    let started = Instant::now();
    let mut refused = false;
    loop {
        let answer = send_to(
            address,
            Method::POST,
            path,
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
                ("idempotency-key", &key),
            ],
            Bytes::from(body.to_string()),
        )
        .await;
        let mut seen = seen.lock().await;
        if answer.status.is_success() {
            seen.succeeded_on_retry += usize::from(refused);
            return Some(answer);
        }
        if answer.status != StatusCode::SERVICE_UNAVAILABLE {
            seen.failures.push((answer.status, answer.body));
            return None;
        }
        let problem = answer.assert_problem(StatusCode::SERVICE_UNAVAILABLE, None);
        assert!(answer.headers.contains_key(header::RETRY_AFTER));
        seen.unavailable
            .push(problem["type"].as_str().unwrap_or_default().to_owned());
        drop(seen);
        refused = true;
        assert!(
            started.elapsed() < RETRYING,
            "{path} still answers 503 after {RETRYING:?} of retries"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client driving lifecycles (queue, start, complete) one after another until `stop`.
async fn client(
    address: SocketAddr,
    token: String,
    n: usize,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) {
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let body = json!({ "type": "inventory.sync", "identity": { "client": n, "round": round } });
        let Some(queued) = command(address, &token, "/v1/tenants/1/runs", &body, &seen).await
        else {
            continue;
        };
        let run = queued.body["run"]["id"]
            .as_str()
            .expect("a run id")
            .to_owned();
        seen.lock()
            .await
            .acknowledged
            .insert(run.clone(), vec!["queue"]);
        for (step, body) in [
            ("start", json!({ "worker": format!("w{n}") })),
            ("complete", json!({})),
        ] {
            let path = format!("/v1/tenants/1/runs/{run}/{step}");
            if command(address, &token, &path, &body, &seen)
                .await
                .is_none()
            {
                break;
            }
            let mut seen = seen.lock().await;
            seen.acknowledged.get_mut(&run).expect("queued").push(step);
        }
    }
}

async fn anchors(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM anchors")
        .fetch_one(pool)
        .await
        .expect("count anchors")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_standby_promoted_under_load_is_found_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().expect("a directory");
    // Synchronous replication holds commits back only on a durable primary.
    let primary_config = config(&dir, "primary", 5432, Durability::Durable);
    let primary = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(primary_config))
        .await
        .expect("the start task")
        .expect("start the primary");
    {
        let pool = PgPool::connect(&primary.database_url("postgres"))
            .await
            .expect("connect to the primary");
        sqlx::raw_sql(&format!("CREATE DATABASE {DATABASE}"))
            .execute(&pool)
            .await
            .expect("create the ledger's database");
        pool.close().await;
    }
    migrate(&primary.database_url(DATABASE));
    let (writer, auditor) = {
        let pool = PgPool::connect(&primary.database_url(DATABASE))
            .await
            .expect("connect to the ledger");
        let mut secrets = Vec::new();
        for role in [Role::Writer, Role::Auditor] {
            let token = NewToken {
                tenant_id: tenant(1),
                role,
                user_id: None,
                name: format!("failover-{}", role.as_str()),
            };
            secrets.push(create_token(&pool, &token).await.expect("a token").secret);
        }
        pool.close().await;
        (secrets[0].clone(), secrets[1].clone())
    };
    let standby_config = config(&dir, "standby", 5433, Durability::Ephemeral);
    let (primary, standby) = tokio::task::spawn_blocking(move || {
        let standby = primary
            .start_standby("failover_1", StandbyMode::Synchronous, standby_config)
            .expect("start the synchronous standby");
        (primary, standby)
    })
    .await
    .expect("the standby task");

    // libpq's socket form: both servers, the one that takes writes wanted.
    let database_url = format!(
        "postgres://postgres@/{DATABASE}?host={},{}&port={},{}&target_session_attrs=read-write",
        primary.socket_dir().display(),
        standby.socket_dir().display(),
        primary.port(),
        standby.port()
    );
    let mut serve = SpawnedServe::spawn(
        &database_url,
        &[
            "--sweep-interval-seconds",
            "0",
            "--anchor-every-events",
            "20",
        ],
    );
    serve.wait_until_ready().await;
    let address = serve.address;
    let mut tail = EventStream::open(address, "/v1/tenants/1/events", &auditor, None).await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            tokio::spawn(client(
                address,
                writer.clone(),
                n,
                Arc::clone(&seen),
                Arc::clone(&stop),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let before = seen.lock().await.acknowledged.len();
    assert!(before > 0, "commands are served before the failover");

    let killed = Instant::now();
    tokio::task::spawn_blocking(move || primary.kill())
        .await
        .expect("the kill task")
        .expect("kill the primary");
    // The clients keep sending while there is no primary.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let promoting = Instant::now();
    let standby = tokio::task::spawn_blocking(move || {
        standby.promote().expect("promote the standby");
        standby
    })
    .await
    .expect("the promote task");
    let promoted = Instant::now();
    let promote_took = promoted - promoting;
    let pool = PgPool::connect(&standby.database_url(DATABASE))
        .await
        .expect("connect to the new primary");
    let anchors_at_promotion = anchors(&pool).await;

    // A fresh command (its own key) until one is accepted: the server found the new primary.
    let first_success = loop {
        let answer = send_to(
            address,
            Method::POST,
            "/v1/tenants/1/runs",
            &[
                ("authorization", &format!("Bearer {writer}")),
                ("content-type", "application/json"),
                ("idempotency-key", &uuid::Uuid::new_v4().to_string()),
            ],
            Bytes::from(
                json!({ "type": "inventory.sync", "identity": { "probe": true } }).to_string(),
            ),
        )
        .await;
        if answer.status.is_success() {
            break answer;
        }
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{:#}",
            answer.body
        );
        assert!(
            promoted.elapsed() < AFTER_PROMOTION,
            "commands still refused {AFTER_PROMOTION:?} after the promotion: {:#}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let served_after_promotion = promoted.elapsed();
    let served_after_kill = killed.elapsed();
    let probe_run = first_success.body["run"]["id"]
        .as_str()
        .expect("a run id")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("a client");
    }

    let seen = seen.lock().await;
    assert!(
        seen.failures.is_empty(),
        "only 503s during the switch: {:?}",
        seen.failures
    );
    assert!(
        !seen.unavailable.is_empty(),
        "the clients sent commands during the switch"
    );
    for kind in &seen.unavailable {
        assert!(
            [
                "urn:runledger:problem:database-unavailable",
                "urn:runledger:problem:outcome-unknown"
            ]
            .contains(&kind.as_str()),
            "{kind}"
        );
    }
    assert!(
        seen.succeeded_on_retry > 0,
        "some command refused during the switch succeeded on retry with its key"
    );
    assert!(
        seen.acknowledged.len() > before,
        "lifecycles went on after the failover"
    );

    // Every acknowledged command is on the new primary, exactly once.
    let reader = EventReader::new(pool.clone());
    for (run, commands) in seen.acknowledged.iter() {
        let id: RunId = run.parse().expect("a run id");
        let events = reader
            .read_stream(tenant(1), id)
            .await
            .expect("read a run's events");
        let mut kinds: Vec<String> = events.iter().map(|e| e.event_type.clone()).collect();
        let total = kinds.len();
        kinds.sort();
        kinds.dedup();
        assert_eq!(
            kinds.len(),
            total,
            "run {run}: an event stored twice: {kinds:?}"
        );
        assert!(
            total >= commands.len(),
            "run {run}: {commands:?} acknowledged but only {kinds:?} stored"
        );
    }

    // The projectors lead on the new primary: the read model has every event.
    wait_until_caught_up(&pool, CATCH_UP).await;
    // The live stream opened before the failover (reopened from its last id if the server
    // ended it) carries the run queued after it.
    let mut last_id: Option<String> = None;
    'tail: loop {
        while let Some(event) = tail.next_or_end().await {
            if event.data["run_id"] == probe_run.as_str() {
                break 'tail;
            }
            last_id = Some(event.id);
        }
        tail = EventStream::open(
            address,
            "/v1/tenants/1/events",
            &auditor,
            last_id.as_deref(),
        )
        .await;
    }
    // Anchoring goes on on the new primary.
    let anchoring = Instant::now();
    while anchors(&pool).await <= anchors_at_promotion {
        assert!(
            anchoring.elapsed() < CATCH_UP,
            "no anchor recorded on the new primary"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    serve.stop();
    drop(tail);
    // With every process stopped, the read models on the new primary equal a rebuild of them
    // from its log.
    let before = (
        view_rows(&pool, "operation_runs").await,
        view_rows(&pool, "notifications").await,
    );
    assert!(!before.0.is_empty(), "the run read model has the runs");
    rebuild(&pool, &OperationRuns::new().definition())
        .await
        .expect("rebuild the run read model");
    drain(&mut Projector::new(
        pool.clone(),
        OperationRuns::new(),
        options(),
    ))
    .await;
    let feed = Notifications::new(pool.clone());
    rebuild(&pool, &feed.definition())
        .await
        .expect("rebuild the notification feed");
    drain(&mut Projector::new(pool.clone(), feed, options())).await;
    let after = (
        view_rows(&pool, "operation_runs").await,
        view_rows(&pool, "notifications").await,
    );
    assert_eq!(after, before, "the read models equal a rebuild");
    let verified = runledger(dir.path())
        .arg("verify")
        .env("DATABASE_URL", standby.database_url(DATABASE))
        .output()
        .expect("run runledger verify");
    assert!(
        verified.status.success(),
        "runledger verify on the new primary: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    pool.close().await;
    let acknowledged: usize = seen.acknowledged.values().map(Vec::len).sum();
    // The figures, for the record (`--nocapture`); the bounds are asserted above.
    eprintln!(
        "failover: promote took {promote_took:?}; first command accepted {served_after_promotion:?} \
         after the promotion returned, {served_after_kill:?} after the kill; {acknowledged} commands \
         acknowledged ({} lifecycles), {} answered 503 during the switch, {} succeeded on retry \
         with their key",
        seen.acknowledged.len(),
        seen.unavailable.len(),
        seen.succeeded_on_retry
    );
}
