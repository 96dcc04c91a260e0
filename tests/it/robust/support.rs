//! A private PostgreSQL cluster a test may stop and start again (the shared test cluster must
//! stay up for every other test), or give a streaming standby, and `runledger` spawned on it
//! with a `DATABASE_URL`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use runledger_pg::{Durability, EmbeddedConfig, EmbeddedPostgres, StandbyMode};
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::client::cli::{interrupt, runledger, wait_for};
use crate::helpers::APP_LOGIN_ROLE;

/// The ledger's database on a test's private cluster.
pub(crate) const DATABASE: &str = "runledger";

/// A cluster in a directory of the test's own, kept across a stop and a start.
pub(crate) struct Cluster {
    config: EmbeddedConfig,
    server: Option<EmbeddedPostgres>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a fresh cluster (`initdb`) and creates the ledger's empty database in it.
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a directory");
        let config = EmbeddedConfig {
            dir: Some(dir.path().join("pg")),
            durability: Durability::Ephemeral,
            max_connections: 100,
            ..EmbeddedConfig::ephemeral()
        };
        let mut cluster = Self {
            config,
            server: None,
            _dir: dir,
        };
        cluster.resume().await;
        let mut admin = cluster.superuser("postgres").await;
        sqlx::raw_sql(&format!("CREATE DATABASE {DATABASE}"))
            .execute(&mut admin)
            .await
            .expect("create the ledger's database");
        cluster
    }

    /// Stops the server (a fast shutdown: connections are cut).
    pub(crate) async fn stop(&mut self) {
        let server = self.server.take().expect("the cluster runs");
        tokio::task::spawn_blocking(move || server.stop())
            .await
            .expect("the stop task")
            .expect("stop the cluster");
    }

    /// Starts the (stopped) server again on the same files and socket.
    pub(crate) async fn resume(&mut self) {
        let config = self.config.clone();
        let server = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(config))
            .await
            .expect("the start task")
            .expect("start the cluster");
        self.server = Some(server);
    }

    /// Makes an asynchronous streaming standby of this cluster (`name` is its replication
    /// slot), listening on `port` in a directory of its own; returns once it streams.
    pub(crate) async fn start_standby(&self, name: &str, port: u16) -> EmbeddedPostgres {
        let config = EmbeddedConfig {
            port,
            ..EmbeddedConfig::ephemeral()
        };
        // Blocks for the base backup: the test has nothing else running yet.
        self.server()
            .start_standby(name, StandbyMode::Asynchronous, config)
            .expect("start a streaming standby")
    }

    fn server(&self) -> &EmbeddedPostgres {
        self.server.as_ref().expect("the cluster runs")
    }

    /// The URL of `database` as the superuser.
    pub(crate) fn superuser_url(&self, database: &str) -> String {
        self.server().database_url(database)
    }

    /// The URL of the ledger's database as the tests' application login role (see
    /// `helpers::APP_LOGIN_ROLE`), which [`Cluster::create_application_role`] makes.
    pub(crate) fn application_url(&self) -> String {
        application_url(&self.superuser_url(DATABASE))
    }

    /// A connection to `database` as the superuser.
    pub(crate) async fn superuser(&self, database: &str) -> PgConnection {
        self.superuser_url(database)
            .parse::<sqlx::postgres::PgConnectOptions>()
            .expect("a URL")
            .disable_statement_logging()
            .connect()
            .await
            .expect("connect as the superuser")
    }

    /// Creates the application login role on this cluster, as an operator does
    /// (docs/deployment.md); `runledger_app` must exist (the first migration makes it).
    pub(crate) async fn create_application_role(&self) {
        let mut admin = self.superuser(DATABASE).await;
        sqlx::raw_sql(&format!(
            "CREATE ROLE {APP_LOGIN_ROLE} LOGIN IN ROLE runledger_app; \
             ALTER ROLE {APP_LOGIN_ROLE} SET role = 'runledger_app'"
        ))
        .execute(&mut admin)
        .await
        .expect("create the application login role");
        admin.close().await.expect("close");
    }
}

/// `superuser_url` (a server's URL of the ledger's database as the superuser) as the tests'
/// application login role, which [`Cluster::create_application_role`] makes; a standby of the
/// cluster has it too.
pub(crate) fn application_url(superuser_url: &str) -> String {
    let rest = superuser_url
        .strip_prefix("postgres://postgres@")
        .expect("a superuser URL");
    format!("postgres://{APP_LOGIN_ROLE}@{rest}")
}

/// How long a spawned `serve` may take to answer `/readyz` (it migrates nothing, but builds
/// the read models' first versions).
const START: Duration = Duration::from_secs(60);

/// A `runledger serve` spawned on `DATABASE_URL`, on a local port of its own.
pub(crate) struct SpawnedServe {
    pub(crate) address: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SpawnedServe {
    /// Spawns `runledger serve` with `database_url` and `args`, without waiting for it.
    pub(crate) fn spawn(database_url: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a directory");
        let address = free_local_address();
        let child = runledger(dir.path())
            .args(["serve", "--listen", &address.to_string()])
            .args(args)
            .env("DATABASE_URL", database_url)
            .env("RUNLEDGER_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("serve.err")).expect("serve.err"))
            .spawn()
            .expect("spawn runledger serve");
        Self {
            address,
            dir,
            child: Some(child),
        }
    }

    /// Its log so far.
    pub(crate) fn log(&self) -> String {
        read(&self.dir.path().join("serve.err"))
    }

    /// Waits until it exits (within `within`); its status.
    pub(crate) fn exit_status(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("it was spawned");
        wait_for(&mut child, within).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("serve did not exit within {within:?}: {}", self.log())
        })
    }

    /// Waits until `/readyz` answers 200.
    pub(crate) async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + START;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().expect("wait for serve")
            {
                panic!("serve exited with {status}: {}", self.log());
            }
            if let Ok(tcp) = tokio::net::TcpStream::connect(self.address).await {
                drop(tcp);
                let ready = crate::api::support::send_to(
                    self.address,
                    axum::http::Method::GET,
                    "/readyz",
                    &[],
                    axum::body::Bytes::new(),
                )
                .await;
                if ready.status.is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "serve was not ready within {START:?}: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops it as Ctrl-C does, and checks it exits cleanly.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        interrupt(&child);
        let status = wait_for(&mut child, Duration::from_secs(30)).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("serve did not stop on SIGINT: {}", self.log())
        });
        assert!(
            status.success(),
            "serve exited with {status}: {}",
            self.log()
        );
    }
}

impl Drop for SpawnedServe {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A local address no one listens on now (the port the system hands out for a moment).
fn free_local_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free local port")
}

/// Runs `runledger migrate` on `database_url`; panics unless it succeeds.
pub(crate) fn migrate(database_url: &str) {
    let dir = tempfile::tempdir().expect("a directory");
    let output = runledger(dir.path())
        .arg("migrate")
        .env("DATABASE_URL", database_url)
        .output()
        .expect("run runledger migrate");
    assert!(
        output.status.success(),
        "runledger migrate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
