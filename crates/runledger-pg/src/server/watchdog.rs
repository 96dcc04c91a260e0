//! The watchdog that ties the server to us: a small `sh` process whose stdin is a pipe that
//! only we hold.
//!
//! When the pipe closes, because we stopped the server, dropped its handle, or died in any way
//! (a panic, SIGKILL, a test binary exiting without dropping its statics), the watchdog asks the
//! server for a fast shutdown and waits for it. So the server never outlives its owner, and an
//! ephemeral cluster's directory is deleted by the watchdog even when no destructor of ours
//! runs.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::EmbeddedError;
use crate::account::RunAs;

/// How long a fast shutdown may take before we kill the server.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

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

/// The watchdog process and the write end of its stdin pipe.
#[derive(Debug)]
pub(super) struct Watchdog {
    child: Child,
    pipe: ChildStdin,
}

impl Watchdog {
    /// Starts `postgres` with `args` in `data_dir` under the watchdog, as `run_as`, with its
    /// output to `log`; the watchdog deletes `cleanup` (if not empty) once the server is gone.
    pub(super) fn spawn(
        postgres: &Path,
        args: Vec<std::ffi::OsString>,
        data_dir: &Path,
        cleanup: &OsStr,
        log: File,
        run_as: &RunAs,
    ) -> Result<Self, EmbeddedError> {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(WATCHDOG)
            .arg("runledger-pg-watchdog")
            .arg(cleanup)
            .arg(postgres)
            .args(args)
            .current_dir(data_dir)
            .stdin(Stdio::piped())
            .stdout(
                log.try_clone()
                    .map_err(EmbeddedError::io("duplicating the log file handle"))?,
            )
            .stderr(log)
            // Its own process group: a Ctrl-C in our terminal reaches us only, and we decide
            // when the server stops (after our own graceful shutdown, which may still need it).
            .process_group(0);
        run_as.apply(&mut command);
        let mut child = command.spawn().map_err(EmbeddedError::io(format!(
            "starting {} through /bin/sh",
            postgres.display()
        )))?;
        let Some(pipe) = child.stdin.take() else {
            unreachable!("stdin was configured as a pipe");
        };
        Ok(Self { child, pipe })
    }

    /// The server's exit status, if it has exited (a failed start).
    pub(super) fn exited(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Closes the pipe and waits for the server to exit: a fast shutdown, or, after
    /// [`STOP_TIMEOUT`], an immediate one. `log_path` is named in errors.
    pub(super) fn stop(self, data_dir: &Path, log_path: &Path) -> Result<(), EmbeddedError> {
        let Watchdog { mut child, pipe } = self;
        // End of file on the watchdog's stdin: it sends SIGINT (fast shutdown).
        drop(pipe);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let waited = child.try_wait().map_err(EmbeddedError::io(
                "waiting for the PostgreSQL server to stop",
            ))?;
            match waited {
                Some(status) if status.success() => {
                    tracing::info!(data_dir = %data_dir.display(), "private PostgreSQL server stopped");
                    return Ok(());
                }
                Some(status) => {
                    return Err(EmbeddedError::Stop {
                        reason: format!(
                            "the server exited with {status}; see {}",
                            log_path.display()
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
                            log_path.display()
                        ),
                    });
                }
            }
        }
    }
}

impl Watchdog {
    /// SIGKILL to the whole group (the watchdog, the server and its children), then waits.
    pub(super) fn kill(self) -> Result<(), EmbeddedError> {
        let Watchdog { mut child, pipe } = self;
        let group = format!("-{}", child.id());
        Command::new("kill")
            .args(["-KILL", "--", &group])
            .status()
            .map_err(EmbeddedError::io(
                "sending SIGKILL to the PostgreSQL process group",
            ))?;
        drop(pipe);
        child.wait().map_err(EmbeddedError::io(
            "waiting for the killed PostgreSQL server",
        ))?;
        Ok(())
    }
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
