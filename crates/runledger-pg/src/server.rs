//! `EmbeddedPostgres`: one private server process, the watchdog that ties it to us, and its URLs.
//!
//! The server is started through a small `sh` watchdog whose stdin is a pipe that only we hold.
//! When the pipe closes, because we called [`EmbeddedPostgres::stop`], dropped the handle, or
//! died in any way (a panic, SIGKILL, a test binary exiting without dropping its statics), the
//! watchdog asks the server for a fast shutdown and waits for it. So the server never outlives
//! its owner, and an ephemeral cluster's directory is deleted by the watchdog even when no
//! destructor of ours runs.

use std::ffi::{OsStr, OsString};
use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::account::RunAs;
use crate::binaries::Binaries;
use crate::probe;
use crate::{Durability, EmbeddedConfig, EmbeddedError};

/// The superuser `initdb` creates; every URL connects as it.
const SUPERUSER: &str = "postgres";

/// How long a fast shutdown may take before we kill the server.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of the server log an error quotes.
const LOG_TAIL_BYTES: u64 = 8 * 1024;

/// The longest socket file path we use: `sun_path` holds 108 bytes on Linux and 104 on macOS,
/// including the terminating NUL. Longer paths move the socket to a directory under `/tmp`.
const MAX_SOCKET_PATH: usize = 103;

/// The watchdog, run as `sh -c WATCHDOG runledger-pg-watchdog CLEANUP_DIR POSTGRES ARGS...`.
///
/// - fd 3 keeps our pipe; the server gets /dev/null, so only the watcher holds the read end.
/// - The watcher reads until end of file, which happens only when every write end is closed,
///   i.e. when we close it or die; then it sends SIGINT, PostgreSQL's fast shutdown.
/// - If the server exits on its own (a failed start), the watcher is killed so we see the exit.
/// - CLEANUP_DIR, if not empty, is deleted once the server is gone (ephemeral clusters).
const WATCHDOG: &str = r#"
cleanup=$1
shift
exec 3<&0 </dev/null
"$@" 3<&- &
server=$!
(
    while read -r line <&3; do :; done
    kill -INT "$server" 2>/dev/null
) &
watcher=$!
exec 3<&-
wait "$server"
status=$?
kill "$watcher" 2>/dev/null
if [ -n "$cleanup" ]; then rm -rf -- "$cleanup"; fi
exit "$status"
"#;

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
    /// Directories made for this server; dropped, and so deleted, only after `Drop::drop` has
    /// stopped the server, because fields drop after it.
    _temp_dirs: Vec<TempDir>,
}

/// The watchdog process and the write end of its stdin pipe.
#[derive(Debug)]
struct Watchdog {
    child: Child,
    pipe: ChildStdin,
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
        let binaries = Binaries::locate(config.bin_dir.as_deref())?;
        let run_as = RunAs::detect()?;
        let mut temp_dirs = Vec::new();

        let (base_dir, delete_on_exit) = match &config.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(EmbeddedError::io(format!("creating {}", dir.display())))?;
                let dir = dir
                    .canonicalize()
                    .map_err(EmbeddedError::io(format!("resolving {}", dir.display())))?;
                (dir, false)
            }
            None => {
                let temp = temp_dir(&run_as, "runledger-pg-")?;
                // The watchdog, running as the server account, deletes it: in sticky /tmp that
                // takes owning it.
                run_as.give(temp.path())?;
                let path = temp.path().to_owned();
                temp_dirs.push(temp);
                (path, true)
            }
        };
        run_as.check_traversable(&base_dir)?;

        let data_dir = base_dir.join("pgdata");
        ensure_cluster(&binaries, &run_as, &data_dir, config.durability)?;
        refuse_if_running(&data_dir)?;
        let socket_dir = socket_dir(&base_dir, config.port, &run_as, &mut temp_dirs)?;
        let (log_path, log_writer, log) = open_log(&base_dir)?;

        let cleanup = if delete_on_exit {
            base_dir.as_os_str()
        } else {
            OsStr::new("")
        };
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(WATCHDOG)
            .arg("runledger-pg-watchdog")
            .arg(cleanup)
            .arg(&binaries.postgres)
            .args(server_args(&config, &data_dir, &socket_dir))
            .current_dir(&data_dir)
            .stdin(Stdio::piped())
            .stdout(
                log_writer
                    .try_clone()
                    .map_err(EmbeddedError::io("duplicating the log file handle"))?,
            )
            .stderr(log_writer)
            // Its own process group: a Ctrl-C in our terminal reaches us only, and we decide
            // when the server stops (after our own graceful shutdown, which may still need it).
            .process_group(0);
        run_as.apply(&mut command);

        tracing::info!(
            data_dir = %data_dir.display(),
            socket_dir = %socket_dir.display(),
            max_connections = config.max_connections,
            durability = ?config.durability,
            "starting private PostgreSQL server"
        );
        let spawned_at = Instant::now();
        let mut child = command.spawn().map_err(EmbeddedError::io(format!(
            "starting {} through /bin/sh",
            binaries.postgres.display()
        )))?;
        let Some(pipe) = child.stdin.take() else {
            unreachable!("stdin was configured as a pipe");
        };

        let mut server = Self {
            data_dir,
            socket_dir,
            port: config.port,
            log_path,
            log,
            watchdog: Some(Watchdog { child, pipe }),
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
        format!(
            "postgres://{SUPERUSER}@localhost/{}?host={}&port={}&sslmode=disable",
            percent_encode(database.as_bytes(), b""),
            percent_encode(self.socket_dir.as_os_str().as_bytes(), b"/"),
            self.port
        )
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

    /// Polls until the server accepts connections, it exits, or `deadline` passes.
    fn wait_until_ready(&mut self, deadline: Instant) -> Result<(), String> {
        let socket = self.socket_dir.join(format!(".s.PGSQL.{}", self.port));
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(watchdog) = &mut self.watchdog {
                match watchdog.child.try_wait() {
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
        let Some(Watchdog { mut child, pipe }) = self.watchdog.take() else {
            return Ok(());
        };
        // End of file on the watchdog's stdin: it sends SIGINT (fast shutdown).
        drop(pipe);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let waited = child.try_wait().map_err(EmbeddedError::io(
                "waiting for the PostgreSQL server to stop",
            ))?;
            match waited {
                Some(status) if status.success() => {
                    tracing::info!(data_dir = %self.data_dir.display(), "private PostgreSQL server stopped");
                    return Ok(());
                }
                Some(status) => {
                    return Err(EmbeddedError::Stop {
                        reason: format!(
                            "the server exited with {status}; see {}",
                            self.log_path.display()
                        ),
                    });
                }
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                None => {
                    kill_group(&mut child);
                    return Err(EmbeddedError::Stop {
                        reason: format!(
                            "it was still running {} s after a fast shutdown request, so it was \
                             killed; see {}",
                            STOP_TIMEOUT.as_secs(),
                            self.log_path.display()
                        ),
                    });
                }
            }
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

/// Runs `initdb` unless `data_dir` already holds a cluster, which must match our major version.
fn ensure_cluster(
    binaries: &Binaries,
    run_as: &RunAs,
    data_dir: &Path,
    durability: Durability,
) -> Result<(), EmbeddedError> {
    let version_file = data_dir.join("PG_VERSION");
    if version_file.exists() {
        let cluster = std::fs::read_to_string(&version_file)
            .map_err(EmbeddedError::io(format!(
                "reading {}",
                version_file.display()
            )))?
            .trim()
            .to_owned();
        let server = binaries.major_version()?;
        if cluster != server {
            return Err(EmbeddedError::IncompatibleCluster {
                data_dir: data_dir.to_owned(),
                cluster,
                server,
            });
        }
        tracing::debug!(data_dir = %data_dir.display(), "reusing existing cluster");
        return Ok(());
    }

    // initdb would create the directory itself, but as the server account it may not write
    // in our directory, so we make it and hand it over.
    private_dir(data_dir, run_as)?;
    let mut command = Command::new(&binaries.initdb);
    command
        .arg("--pgdata")
        .arg(data_dir)
        .args(["--username", SUPERUSER])
        // Socket-only in a private directory, so trust is safe; see the ADR.
        .args(["--auth", "trust"])
        .args(["--encoding", "UTF8"])
        // C collation: byte order, the same on every machine, and no locale needs installing.
        .arg("--no-locale")
        .current_dir(data_dir)
        .stdin(Stdio::null());
    if durability == Durability::Ephemeral {
        command.arg("--no-sync");
    }
    run_as.apply(&mut command);

    tracing::info!(data_dir = %data_dir.display(), "initialising a new PostgreSQL cluster");
    let output = command.output().map_err(EmbeddedError::io(format!(
        "running {}",
        binaries.initdb.display()
    )))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        return Err(EmbeddedError::Initdb {
            status: output.status.to_string(),
            output: text,
        });
    }
    tracing::debug!(output = %text, "initdb finished");
    Ok(())
}

/// Fails with [`EmbeddedError::InUse`] if the cluster's `postmaster.pid` names a live server.
///
/// PostgreSQL would refuse to start too, but with a message about a lock file. A stale file
/// from a server that was killed is fine: PostgreSQL replaces it.
fn refuse_if_running(data_dir: &Path) -> Result<(), EmbeddedError> {
    let Ok(pid_file) = std::fs::read_to_string(data_dir.join("postmaster.pid")) else {
        return Ok(());
    };
    let Some(pid) = pid_file
        .lines()
        .next()
        .and_then(|line| line.trim().parse::<u32>().ok())
    else {
        return Ok(());
    };
    let command_name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if matches!(command_name.trim(), "postgres" | "postmaster") {
        return Err(EmbeddedError::InUse {
            data_dir: data_dir.to_owned(),
            pid,
        });
    }
    Ok(())
}

/// Makes `dir` (or keeps it) with mode 0700 and gives it to the server account.
///
/// PostgreSQL insists on 0700 or 0750 for its data directory.
fn private_dir(dir: &Path, run_as: &RunAs) -> Result<(), EmbeddedError> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(EmbeddedError::io(format!("chmod 0700 {}", dir.display())))?;
        }
        Err(e) => {
            return Err(EmbeddedError::Io {
                context: format!("creating {}", dir.display()),
                source: e,
            });
        }
    }
    run_as.give(dir)
}

/// A fresh private directory under the temp dir, for an ephemeral cluster or a socket.
///
/// When the server runs as another account we use `/tmp` rather than `$TMPDIR`, which often
/// points into a home directory that account cannot enter.
fn temp_dir(run_as: &RunAs, prefix: &str) -> Result<TempDir, EmbeddedError> {
    let parent = if run_as.switches_user() {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .map_err(EmbeddedError::io(format!(
            "creating a directory in {}",
            parent.display()
        )))
}

/// `base_dir/socket`, or a directory under `/tmp` when that path is too long for a socket.
fn socket_dir(
    base_dir: &Path,
    port: u16,
    run_as: &RunAs,
    temp_dirs: &mut Vec<TempDir>,
) -> Result<PathBuf, EmbeddedError> {
    let preferred = base_dir.join("socket");
    let socket_file = preferred.join(format!(".s.PGSQL.{port}"));
    if socket_file.as_os_str().len() <= MAX_SOCKET_PATH {
        private_dir(&preferred, run_as)?;
        return Ok(preferred);
    }
    let temp = temp_dir(run_as, "runledger-pg-socket-")?;
    run_as.give(temp.path())?;
    tracing::debug!(
        preferred = %preferred.display(),
        used = %temp.path().display(),
        "socket path too long, using a temporary socket directory"
    );
    let path = temp.path().to_owned();
    temp_dirs.push(temp);
    Ok(path)
}

/// Opens `postgres.log` for the server (write) and for us (read), keeping the previous one.
fn open_log(base_dir: &Path) -> Result<(PathBuf, File, File), EmbeddedError> {
    let path = base_dir.join("postgres.log");
    if path.exists() {
        let previous = base_dir.join("postgres.log.1");
        std::fs::rename(&path, &previous).map_err(EmbeddedError::io(format!(
            "moving {} to {}",
            path.display(),
            previous.display()
        )))?;
    }
    // Opened by us and inherited by the server: the server account needs no write access.
    let writer = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(EmbeddedError::io(format!("creating {}", path.display())))?;
    let reader =
        File::open(&path).map_err(EmbeddedError::io(format!("opening {}", path.display())))?;
    Ok((path, writer, reader))
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

/// Last resort when a fast shutdown hangs: immediate shutdown for the whole watchdog group.
fn kill_group(child: &mut Child) {
    // The watchdog leads its own process group, so its pid is the group id.
    let group = format!("-{}", child.id());
    if let Err(error) = Command::new("kill").args(["-QUIT", "--", &group]).status() {
        tracing::warn!(%error, "sending SIGQUIT to the PostgreSQL process group");
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Percent-encodes everything but unreserved URL characters and `keep`.
fn percent_encode(bytes: &[u8], keep: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || keep.contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests;
