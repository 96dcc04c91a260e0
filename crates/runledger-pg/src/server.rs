//! `EmbeddedPostgres`: one private server process, from start to stop.
//!
//! A start prepares the directories and the cluster (`cluster`), runs the server under the
//! watchdog that ties it to us (`watchdog`), and waits until it accepts connections; the handle
//! then hands out the server's URLs (`url`) and stops it when stopped or dropped.

pub(crate) mod cluster;
mod url;
mod watchdog;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::account::RunAs;
use crate::binaries::Binaries;
use crate::probe;
use crate::{Durability, EmbeddedConfig, EmbeddedError};
use watchdog::Watchdog;

/// The superuser `initdb` creates; every URL connects as it.
const SUPERUSER: &str = "postgres";

/// How much of the server log an error quotes.
const LOG_TAIL_BYTES: u64 = 8 * 1024;

/// A running private PostgreSQL server, stopped when this handle is stopped or dropped.
///
/// It listens only on a unix socket in a directory that only the server account (and root) can
/// enter, and lets local connections in without a password (`trust`): whoever can reach the
/// socket may connect as the superuser `postgres`.
///
/// The server cannot outlive this process. It runs under a `sh` watchdog that stops it when our
/// end of a pipe closes, which the kernel does even when we die without running destructors
/// (a `static` in a test binary, an abort, SIGKILL); an ephemeral cluster's directory is then
/// deleted too. So a test binary may keep its server in a `static` that is never dropped.
///
/// Starting and stopping block the calling thread (`initdb` takes a second or two, a start or
/// a fast shutdown a fraction of a second). From async code, either accept that at startup and
/// shutdown, or wrap the call in `tokio::task::spawn_blocking`.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    data_dir: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    log_path: PathBuf,
    /// Read handle on the server log: still readable after the watchdog deleted an ephemeral
    /// cluster, so a failed start can quote the log.
    log: File,
    /// `None` once stopped.
    watchdog: Option<Watchdog>,
    /// The installation it runs from, and as whom: the replication steps run its other tools.
    pub(crate) binaries: Binaries,
    pub(crate) run_as: RunAs,
    pub(crate) durability: Durability,
    /// Directories made for this server; dropped, and so deleted, only after `Drop::drop` has
    /// stopped the server, because fields drop after it.
    _temp_dirs: Vec<TempDir>,
}

impl EmbeddedPostgres {
    /// Creates the cluster if needed, starts the server and waits until it accepts connections.
    ///
    /// A directory whose `pgdata/PG_VERSION` exists is reused; otherwise `initdb` creates the
    /// cluster. This blocks the calling thread; see the type's documentation.
    ///
    /// # Errors
    ///
    /// - [`EmbeddedError::BinariesNotFound`] when no `initdb`/`postgres` pair is installed.
    /// - [`EmbeddedError::NoServerUser`] or [`EmbeddedError::NotTraversable`] when running as
    ///   root and the `postgres` account is missing or cannot reach the directory.
    /// - [`EmbeddedError::IncompatibleCluster`] when the existing cluster is of another major
    ///   version, [`EmbeddedError::InUse`] when a server already runs on it.
    /// - [`EmbeddedError::Initdb`] or [`EmbeddedError::Start`] when PostgreSQL itself fails;
    ///   [`EmbeddedError::Io`] when preparing the directories fails.
    pub fn start(config: EmbeddedConfig) -> Result<Self, EmbeddedError> {
        let durability = config.durability;
        Self::start_with(config, |binaries, run_as, data_dir| {
            cluster::ensure_cluster(binaries, run_as, data_dir, durability)
        })
    }

    /// [`EmbeddedPostgres::start`] with `make_cluster` in place of `initdb` (a standby's is a
    /// base backup of its primary): it gets the installation, the account and `pgdata`.
    pub(crate) fn start_with(
        config: EmbeddedConfig,
        make_cluster: impl FnOnce(&Binaries, &RunAs, &Path) -> Result<(), EmbeddedError>,
    ) -> Result<Self, EmbeddedError> {
        let binaries = Binaries::locate(config.bin_dir.as_deref())?;
        let run_as = RunAs::detect()?;
        let mut temp_dirs = Vec::new();
        let (base_dir, delete_on_exit) = cluster::base_dir(&config, &run_as, &mut temp_dirs)?;
        run_as.check_traversable(&base_dir)?;

        let data_dir = base_dir.join("pgdata");
        make_cluster(&binaries, &run_as, &data_dir)?;
        cluster::refuse_if_running(&data_dir)?;
        let socket_dir = cluster::socket_dir(&base_dir, config.port, &run_as, &mut temp_dirs)?;
        let (log_path, log_writer, log) = cluster::open_log(&base_dir)?;

        let cleanup = if delete_on_exit {
            base_dir.as_os_str()
        } else {
            OsStr::new("")
        };
        tracing::info!(
            data_dir = %data_dir.display(),
            socket_dir = %socket_dir.display(),
            max_connections = config.max_connections,
            durability = ?config.durability,
            "starting private PostgreSQL server"
        );
        let spawned_at = Instant::now();
        let watchdog = Watchdog::spawn(
            &binaries.postgres,
            server_args(&config, &data_dir, &socket_dir),
            &data_dir,
            cleanup,
            log_writer,
            &run_as,
        )?;

        let mut server = Self {
            data_dir,
            socket_dir,
            port: config.port,
            log_path,
            log,
            watchdog: Some(watchdog),
            binaries,
            run_as,
            durability: config.durability,
            _temp_dirs: temp_dirs,
        };
        if let Err(reason) = server.wait_until_ready(spawned_at + config.start_timeout) {
            // Quote the log before the shutdown appends its own lines to it.
            let log_tail = server.log_tail();
            if let Err(error) = server.shutdown() {
                tracing::debug!(%error, "stopping the server that failed to start");
            }
            return Err(EmbeddedError::Start { reason, log_tail });
        }
        tracing::info!(
            elapsed_ms = spawned_at.elapsed().as_millis(),
            url = %server.connection_url(),
            "private PostgreSQL server accepts connections"
        );
        Ok(server)
    }

    /// The URL of the `postgres` database, as the superuser `postgres`, over the unix socket.
    ///
    /// Shaped `postgres://postgres@localhost/postgres?host=/sock/dir&port=5432&sslmode=disable`;
    /// both sqlx and libpq (`psql`) take a `host` query parameter that starts with `/` as the
    /// socket directory, and the port names the socket file in it.
    #[must_use]
    pub fn connection_url(&self) -> String {
        self.database_url(SUPERUSER)
    }

    /// Like [`EmbeddedPostgres::connection_url`], for the database `database`.
    ///
    /// The database is not created; connect with [`EmbeddedPostgres::connection_url`] and run
    /// `CREATE DATABASE` first.
    #[must_use]
    pub fn database_url(&self, database: &str) -> String {
        url::socket_url(SUPERUSER, database, &self.socket_dir, self.port)
    }

    /// The cluster directory (`PGDATA`).
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory holding the socket file `.s.PGSQL.<port>`.
    #[must_use]
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The port, which names the socket file; no TCP port is open.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file. Each start of a durable cluster moves the previous log to
    /// `postgres.log.1`.
    #[must_use]
    pub fn log_file(&self) -> &Path {
        &self.log_path
    }

    /// Stops the server with a fast shutdown (open transactions are rolled back, sessions are
    /// closed) and waits until it has exited. Blocks; see the type's documentation.
    ///
    /// Dropping the handle does the same, but can only log a failure.
    ///
    /// # Errors
    ///
    /// [`EmbeddedError::Stop`] when the server had crashed, exited with an error, or did not
    /// stop within a minute (it is then killed); [`EmbeddedError::Io`] when waiting for it fails.
    pub fn stop(mut self) -> Result<(), EmbeddedError> {
        self.shutdown()
    }

    /// Kills the server and all its processes at once with SIGKILL, as a crash of its machine
    /// would: nothing is flushed, no client is told. Waits until they are gone.
    ///
    /// # Errors
    ///
    /// [`EmbeddedError::Io`] when signalling or waiting fails.
    pub fn kill(mut self) -> Result<(), EmbeddedError> {
        match self.watchdog.take() {
            Some(watchdog) => watchdog.kill(),
            None => Ok(()),
        }
    }

    /// Polls until the server accepts connections, it exits, or `deadline` passes.
    fn wait_until_ready(&mut self, deadline: Instant) -> Result<(), String> {
        let socket = self.socket_dir.join(format!(".s.PGSQL.{}", self.port));
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(watchdog) = &mut self.watchdog {
                match watchdog.exited() {
                    Ok(Some(status)) => return Err(format!("the server exited ({status})")),
                    Ok(None) => {}
                    Err(e) => return Err(format!("cannot watch the server process: {e}")),
                }
            }
            let last_probe = match probe::accepts_connections(&socket, SUPERUSER, SUPERUSER) {
                Ok(()) => return Ok(()),
                Err(reason) => reason,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "it did not accept connections in time (last attempt: {last_probe})"
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Closes the watchdog's pipe and waits for the server to exit; a no-op once stopped.
    fn shutdown(&mut self) -> Result<(), EmbeddedError> {
        match self.watchdog.take() {
            Some(watchdog) => watchdog.stop(&self.data_dir, &self.log_path),
            None => Ok(()),
        }
    }

    /// The last lines of the server log, whole lines only.
    fn log_tail(&self) -> String {
        let len = self.log.metadata().map_or(0, |meta| meta.len());
        let start = len.saturating_sub(LOG_TAIL_BYTES);
        let mut bytes = vec![0_u8; usize::try_from(len - start).unwrap_or(0)];
        if let Err(e) = self.log.read_exact_at(&mut bytes, start) {
            return format!("(cannot read {}: {e})", self.log_path.display());
        }
        let text = String::from_utf8_lossy(&bytes);
        let text = if start > 0 {
            text.split_once('\n').map_or(&*text, |(_, rest)| rest)
        } else {
            &text
        };
        text.trim_end().to_owned()
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::warn!(%error, "stopping the private PostgreSQL server on drop");
        }
    }
}

/// The `postgres` command line after the binary.
///
/// Settings go on the command line rather than into `postgresql.conf`, so each start applies
/// the current config and a reused cluster keeps no stale choices.
fn server_args(config: &EmbeddedConfig, data_dir: &Path, socket_dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-D".into(), data_dir.into(), "-p".into()];
    args.push(config.port.to_string().into());
    let mut settings = vec![
        // No TCP listener at all: only the socket below.
        "listen_addresses=".to_owned(),
        format!("max_connections={}", config.max_connections),
    ];
    if config.durability == Durability::Ephemeral {
        settings.extend(
            [
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
            ]
            .map(str::to_owned),
        );
    }
    for setting in settings {
        args.push("-c".into());
        args.push(setting.into());
    }
    // A list setting: quoting keeps a path with commas or spaces in one piece.
    let mut socket_setting = OsString::from("unix_socket_directories=\"");
    socket_setting.push(socket_dir);
    socket_setting.push("\"");
    args.push("-c".into());
    args.push(socket_setting);
    args
}

#[cfg(test)]
mod tests;
