//! Spawned `runledger` processes on one throwaway database (`DATABASE_URL`): `serve` on a port
//! and public URL of its own, `project`; taken down (Ctrl-C, `kill -9`), brought back, paused
//! (`SIGSTOP`) and resumed. And the runs they project: queued and completed by a user, so that
//! each has two notices.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runledger_core::{Initiator, QueueRun, RunCommand, RunIdentity, RunType, UserId};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

use crate::client::cli::runledger_binary;
use crate::helpers::TestStore;
use crate::helpers::verbs::{at, complete, new_run_id, request, start, tenant};

/// The tenant of the runs.
pub(crate) const TENANT: i64 = 7;
/// The user who queues them, whose feed gets their notices.
pub(crate) const USER: i64 = 42;

/// How long a spawned process may take to answer (a machine loaded by other builds).
const START: Duration = Duration::from_secs(60);

/// A URL of the database `options` name, for a spawned process's `DATABASE_URL`.
pub(crate) fn database_url(options: &PgConnectOptions) -> String {
    let database = options.get_database().expect("a test database has a name");
    let user = options.get_username();
    let port = options.get_port();
    match options.get_socket() {
        Some(dir) => {
            let dir: String =
                form_urlencoded::byte_serialize(dir.to_string_lossy().as_bytes()).collect();
            format!("postgres://{user}@localhost/{database}?host={dir}&port={port}&sslmode=disable")
        }
        None => format!("postgres://{user}@{}:{port}/{database}", options.get_host()),
    }
}

/// One spawned `runledger` process, brought back with the same arguments after it is taken
/// down. Dropped, it is resumed and killed.
pub(crate) struct Node {
    name: &'static str,
    args: Vec<String>,
    database_url: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `http://127.0.0.1:<port>` of a `serve`.
    pub(crate) address: Option<String>,
}

impl Node {
    /// `runledger serve` on a free port, with `public_url` as its public URL and `extra` flags.
    pub(crate) fn serve(
        name: &'static str,
        database_url: &str,
        public_url: &str,
        extra: &[&str],
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut args = vec![
            "serve".to_owned(),
            "--listen".to_owned(),
            format!("127.0.0.1:{port}"),
            "--public-url".to_owned(),
            public_url.to_owned(),
        ];
        args.extend(extra.iter().map(|flag| (*flag).to_owned()));
        let mut node = Self::new(name, database_url, args);
        node.address = Some(format!("http://127.0.0.1:{port}"));
        node
    }

    /// `runledger project` with `extra` flags.
    pub(crate) fn project(name: &'static str, database_url: &str, extra: &[&str]) -> Self {
        let mut args = vec!["project".to_owned()];
        args.extend(extra.iter().map(|flag| (*flag).to_owned()));
        Self::new(name, database_url, args)
    }

    fn new(name: &'static str, database_url: &str, args: Vec<String>) -> Self {
        let mut node = Self {
            name,
            args,
            database_url: database_url.to_owned(),
            dir: tempfile::tempdir().expect("a directory"),
            child: None,
            address: None,
        };
        node.up();
        node
    }

    /// Starts it (again).
    pub(crate) fn up(&mut self) {
        assert!(self.child.is_none(), "{} is already up", self.name);
        let log = |suffix: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join(format!("{}.{suffix}", self.name)))
                .expect("a log file")
        };
        let child = Command::new(runledger_binary())
            .args(&self.args)
            .current_dir(self.dir.path())
            .env("DATABASE_URL", &self.database_url)
            .env("RUNLEDGER_LOG", "info")
            .env_remove("RUNLEDGER_SERVER")
            .env_remove("RUNLEDGER_TOKEN")
            .stdin(Stdio::null())
            .stdout(log("out"))
            .stderr(log("err"))
            .spawn()
            .expect("spawn runledger");
        self.child = Some(child);
    }

    /// Its process id, while it is up.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its standard error so far (for failure messages).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.err", self.name)))
            .unwrap_or_default()
    }

    /// Waits until a `serve` answers `/healthz`.
    pub(crate) async fn wait_until_serving(&mut self) {
        let address = self.address.clone().expect("a serve has an address");
        let client = runledger_client::Client::new(&address, "none").expect("a client");
        let deadline = Instant::now() + START;
        while client.healthz().await.is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("{} exited with {status}: {}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer within {START:?}: {}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            let status = Command::new("kill")
                .args([signal, &pid.to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill {signal} {pid}");
        }
    }

    /// Stops it as Ctrl-C does, and waits until it has exited cleanly.
    pub(crate) fn stop(&mut self) {
        self.signal("-INT");
        let mut child = self.child.take().expect("it is up");
        let deadline = Instant::now() + START;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the child") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGINT",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "{} exited with {status}: {}",
            self.name,
            self.log()
        );
    }

    /// Kills it with -9 (no shutdown at all: its connections simply close).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap the child");
        }
    }

    /// Pauses it (`SIGSTOP`): its connections stay open, it does nothing.
    pub(crate) fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes it (`SIGCONT`).
    pub(crate) fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}

/// The process ids holding the leases of the projectors of `projection` now.
pub(crate) async fn leader_pids(pool: &PgPool, projection: &str) -> Vec<u32> {
    let holders: Vec<String> = sqlx::query_scalar(
        "SELECT holder FROM leases WHERE name LIKE 'projector:' || $1 || ':%' \
           AND expires_at > clock_timestamp()",
    )
    .bind(projection)
    .fetch_all(pool)
    .await
    .expect("read the leases");
    holders
        .iter()
        .filter_map(|holder| holder.strip_prefix("pid ")?.split(' ').next()?.parse().ok())
        .collect()
}

/// Waits until the process `pid` holds the lease of `projection`; panics after `within`.
pub(crate) async fn wait_until_led_by(pool: &PgPool, projection: &str, pid: u32, within: Duration) {
    let deadline = Instant::now() + within;
    while !leader_pids(pool, projection).await.contains(&pid) {
        assert!(
            Instant::now() < deadline,
            "process {pid} did not lead {projection} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `count` runs of [`USER`] in [`TENANT`], each queued, started and completed through the
/// command path: two notices each.
pub(crate) async fn finished_runs(store: &TestStore, count: usize) -> Vec<Uuid> {
    let mut runs = Vec::with_capacity(count);
    for _ in 0..count {
        let run = new_run_id();
        let queue = RunCommand::Queue(QueueRun {
            run_id: run,
            tenant_id: tenant(TENANT),
            run_type: RunType::parse("inventory.sync").expect("a run type"),
            identity: RunIdentity::new(serde_json::json!({"run": run.as_uuid()}))
                .expect("an identity"),
            initiator: Initiator {
                user_id: Some(UserId::new(USER).expect("a user id")),
                name: "Ada".to_owned(),
            },
            context: serde_json::json!({}),
            limits: runledger_core::RunLimits::default(),
            at: at(0),
        });
        for command in [queue, start(), complete()] {
            store
                .commands
                .execute(&request(tenant(TENANT), run, command))
                .await
                .expect("a command of the run");
        }
        runs.push(run.as_uuid());
    }
    runs
}

/// How many notices the feed shows for each of `runs`.
pub(crate) async fn notices_per_run(pool: &PgPool, runs: &[Uuid]) -> HashMap<Uuid, i64> {
    let counts: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT run_id, count(*) FROM public.notifications WHERE run_id = ANY($1) GROUP BY run_id",
    )
    .bind(runs)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    counts.into_iter().collect()
}

/// Waits until the feed shows both notices of every one of `runs`; panics after `within`, with
/// what it shows.
pub(crate) async fn wait_for_notices(pool: &PgPool, runs: &[Uuid], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let counts = notices_per_run(pool, runs).await;
        if runs.iter().all(|run| counts.get(run) == Some(&2)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the feed did not show two notices of each of {} runs within {within:?}: {} complete",
            runs.len(),
            counts.values().filter(|n| **n == 2).count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The active version's count of applied events, per projection, once both have applied every
/// committed event (waiting at most `within`): each event was applied once by exactly one
/// leader, or the counts would differ from the log's.
pub(crate) async fn wait_until_caught_up(pool: &PgPool, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let events = crate::projections::support::event_count(pool).await;
        let runs = applied(pool, runledger_projections::OPERATION_RUNS).await;
        let feed = applied(pool, runledger_projections::NOTIFICATIONS).await;
        if runs == events && feed == events {
            return;
        }
        assert!(
            runs <= events && feed <= events,
            "more events applied than the log holds: {runs} and {feed} of {events}"
        );
        assert!(
            Instant::now() < deadline,
            "not caught up within {within:?}: {runs} and {feed} of {events} events applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The events the active version of `projection` has applied (0 before it has one).
async fn applied(pool: &PgPool, projection: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(
        "SELECT events_applied FROM projection_versions WHERE projection = $1 AND status = 'active'",
    )
    .bind(projection)
    .fetch_optional(pool)
    .await
    .expect("read the registry")
    .unwrap_or(0)
}
