//! Tests that start real servers from the installed binaries and talk to them with sqlx.
//!
//! Add here: behaviour of the server's lifecycle (start, reuse, stop, crash, owner death).
//! Pure helpers are tested next to their code.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use super::*;

/// Names the file the owner-process helper writes its data directory to.
const HELPER_OUT_ENV: &str = "RUNLEDGER_PG_TEST_HELPER_OUT";

/// A directory under /tmp that the `postgres` account may traverse when we are root.
fn open_temp_dir() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("runledger-pg-test-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

async fn show(conn: &mut PgConnection, setting: &str) -> String {
    sqlx::query_scalar(&format!("SHOW {setting}"))
        .fetch_one(conn)
        .await
        .unwrap()
}

/// The postmaster's pid, from the first line of `postmaster.pid`.
fn server_pid(data_dir: &Path) -> u32 {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).unwrap();
    text.lines().next().unwrap().trim().parse().unwrap()
}

#[track_caller]
fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn ephemeral_cluster_serves_sqlx_over_the_socket_and_is_deleted_on_stop() {
    let pg = EmbeddedPostgres::start(EmbeddedConfig::ephemeral()).unwrap();
    let url = pg.connection_url();
    assert!(
        url.starts_with("postgres://postgres@localhost/postgres?host=/"),
        "{url}"
    );

    let mut conn = connect(&url).await;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    assert_eq!(show(&mut conn, "listen_addresses").await, "");
    assert_eq!(show(&mut conn, "fsync").await, "off");
    assert_eq!(show(&mut conn, "synchronous_commit").await, "off");
    assert_eq!(show(&mut conn, "full_page_writes").await, "off");
    assert_eq!(show(&mut conn, "max_connections").await, "300");
    assert_eq!(show(&mut conn, "server_encoding").await, "UTF8");

    // A name that needs percent-encoding in the URL.
    sqlx::query(r#"CREATE DATABASE "other db""#)
        .execute(&mut conn)
        .await
        .unwrap();
    let mut other = connect(&pg.database_url("other db")).await;
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert_eq!(name, "other db");
    other.close().await.unwrap();
    conn.close().await.unwrap();

    let base_dir = pg.data_dir().parent().unwrap().to_owned();
    pg.stop().unwrap();
    assert!(!base_dir.exists(), "{} was left behind", base_dir.display());
}

#[tokio::test]
async fn durable_cluster_is_created_once_and_reused() {
    let root = open_temp_dir();
    let dir = root.path().join("ledger");

    let pg = EmbeddedPostgres::start(EmbeddedConfig::durable(&dir)).unwrap();
    let mut conn = connect(&pg.connection_url()).await;
    assert_eq!(show(&mut conn, "fsync").await, "on");
    sqlx::query("CREATE TABLE kept (value text)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO kept VALUES ('still here')")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    // A second server on the same directory is refused while the first runs.
    let err = EmbeddedPostgres::start(EmbeddedConfig::durable(&dir)).unwrap_err();
    assert!(matches!(err, EmbeddedError::InUse { .. }), "{err}");

    pg.stop().unwrap();
    let initialised_at = std::fs::metadata(dir.join("pgdata/PG_VERSION"))
        .unwrap()
        .modified()
        .unwrap();

    let pg = EmbeddedPostgres::start(EmbeddedConfig::durable(&dir)).unwrap();
    let mut conn = connect(&pg.connection_url()).await;
    let value: String = sqlx::query_scalar("SELECT value FROM kept")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, "still here");
    conn.close().await.unwrap();
    pg.stop().unwrap();

    let reused_at = std::fs::metadata(dir.join("pgdata/PG_VERSION"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(initialised_at, reused_at, "initdb ran again");
    assert!(dir.join("postgres.log.1").exists());
}

#[tokio::test]
async fn a_cluster_whose_server_was_killed_starts_again() {
    let root = open_temp_dir();
    let dir = root.path().join("crashed");
    let pg = EmbeddedPostgres::start(EmbeddedConfig::durable(&dir)).unwrap();
    let pid = server_pid(pg.data_dir());

    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The watchdog reports the crash instead of a clean stop.
    let err = pg.stop().unwrap_err();
    assert!(matches!(err, EmbeddedError::Stop { .. }), "{err}");
    assert!(
        dir.join("pgdata/postmaster.pid").exists(),
        "the crash should leave a stale postmaster.pid behind"
    );

    let pg = EmbeddedPostgres::start(EmbeddedConfig::durable(&dir)).unwrap();
    let mut conn = connect(&pg.connection_url()).await;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    conn.close().await.unwrap();
    pg.stop().unwrap();
}

#[test]
fn the_server_stops_when_its_owner_process_dies() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("data_dir");
    let mut owner = Command::new(std::env::current_exe().unwrap())
        .args([
            "server::tests::owner_process_helper",
            "--exact",
            "--ignored",
            "--quiet",
        ])
        .env(HELPER_OUT_ENV, &out)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();

    wait_for(
        "the owner to start its server",
        Duration::from_secs(60),
        || out.exists(),
    );
    let data_dir = PathBuf::from(std::fs::read_to_string(&out).unwrap());
    let base_dir = data_dir.parent().unwrap().to_owned();
    let pid = server_pid(&data_dir);

    // SIGKILL: no destructor, no atexit, nothing of ours runs.
    owner.kill().unwrap();
    owner.wait().unwrap();

    wait_for("the server to exit", Duration::from_secs(30), || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    wait_for(
        "the ephemeral directory to be deleted",
        Duration::from_secs(10),
        || !base_dir.exists(),
    );
}

/// Run only by `the_server_stops_when_its_owner_process_dies`, in a child process.
#[test]
#[ignore = "a helper process for the_server_stops_when_its_owner_process_dies"]
fn owner_process_helper() {
    let Some(out) = std::env::var_os(HELPER_OUT_ENV) else {
        return;
    };
    let pg = EmbeddedPostgres::start(EmbeddedConfig::ephemeral()).unwrap();
    // Write then rename, so the parent never reads half a path.
    let partial = PathBuf::from(format!("{}.partial", out.to_string_lossy()));
    std::fs::write(&partial, pg.data_dir().as_os_str().as_encoded_bytes()).unwrap();
    std::fs::rename(&partial, &out).unwrap();
    // Wait to be killed; the bound only keeps a lost helper from living forever.
    std::thread::sleep(Duration::from_secs(120));
    drop(pg);
}

#[test]
fn a_failed_start_quotes_the_server_log() {
    let root = open_temp_dir();
    let dir = root.path().join("bad");
    let config = EmbeddedConfig {
        // More than the server allows, so it exits at once.
        max_connections: 300_000,
        ..EmbeddedConfig::durable(&dir)
    };
    let err = EmbeddedPostgres::start(config).unwrap_err();
    let EmbeddedError::Start { reason, log_tail } = &err else {
        panic!("expected a start error, got {err}");
    };
    assert!(reason.contains("exited"), "{reason}");
    assert!(log_tail.contains("max_connections"), "{log_tail}");
}

/// The integration tests keep their server in a `static`, which needs both.
#[test]
fn the_handle_can_live_in_a_static() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EmbeddedPostgres>();
}
