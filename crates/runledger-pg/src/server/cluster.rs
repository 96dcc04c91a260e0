//! Preparing a server's directories: the base directory, the cluster (`initdb`, or an existing
//! one of our major version that no server runs on), the socket directory and the log file.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use super::SUPERUSER;
use crate::account::RunAs;
use crate::binaries::Binaries;
use crate::{Durability, EmbeddedConfig, EmbeddedError};

/// The longest socket file path we use: `sun_path` holds 108 bytes on Linux and 104 on macOS,
/// including the terminating NUL. Longer paths move the socket to a directory under `/tmp`.
const MAX_SOCKET_PATH: usize = 103;

/// The directory the server lives in, and whether it is ours to delete when the server stops:
/// the configured one (created if missing), or a fresh one under the temp dir for an ephemeral
/// cluster, kept alive by `temp_dirs`.
pub(super) fn base_dir(
    config: &EmbeddedConfig,
    run_as: &RunAs,
    temp_dirs: &mut Vec<TempDir>,
) -> Result<(PathBuf, bool), EmbeddedError> {
    match &config.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(EmbeddedError::io(format!("creating {}", dir.display())))?;
            let dir = dir
                .canonicalize()
                .map_err(EmbeddedError::io(format!("resolving {}", dir.display())))?;
            Ok((dir, false))
        }
        None => {
            let temp = temp_dir(run_as, "runledger-pg-")?;
            // The watchdog, running as the server account, deletes it: in sticky /tmp that
            // takes owning it.
            run_as.give(temp.path())?;
            let path = temp.path().to_owned();
            temp_dirs.push(temp);
            Ok((path, true))
        }
    }
}

/// Runs `initdb` unless `data_dir` already holds a cluster, which must match our major version.
pub(super) fn ensure_cluster(
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
pub(super) fn refuse_if_running(data_dir: &Path) -> Result<(), EmbeddedError> {
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
pub(crate) fn private_dir(dir: &Path, run_as: &RunAs) -> Result<(), EmbeddedError> {
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
pub(super) fn socket_dir(
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
pub(super) fn open_log(base_dir: &Path) -> Result<(PathBuf, File, File), EmbeddedError> {
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
