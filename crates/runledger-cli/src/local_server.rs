//! The record a running `serve` keeps in its embedded data directory, so that the other
//! subcommands work beside it (docs/adr/0018): its HTTP address, its database's socket, and a
//! credential of its own for the local user.
//!
//! `serve` writes `serve.json` (the address, the database URL, the token's id) and
//! `cli-token` (an admin token's secret, created at start and revoked at stop), both readable by
//! the user who ran it only (mode 0600). A record is live while its database's socket accepts
//! connections; a `serve` killed with SIGKILL leaves a record whose socket is gone (its
//! watchdog stopped the database), which the next `serve` replaces, revoking its token.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const RECORD_FILE: &str = "serve.json";
const TOKEN_FILE: &str = "cli-token";

/// A running `serve`, as it recorded itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalServer {
    /// Its process id (for people: liveness is the socket's).
    pub pid: u32,
    /// Where its HTTP API answers, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Its ledger database, over the embedded server's unix socket.
    pub database_url: String,
    /// The socket file of the embedded server.
    pub socket: PathBuf,
    /// The id of the token in `cli-token`, which `serve` revokes at stop.
    pub token_id: Uuid,
}

impl LocalServer {
    /// The record in `data_dir` and its token's secret, if a record is there, whether or not
    /// its server still runs.
    pub fn read(data_dir: &Path) -> Option<(Self, String)> {
        let record = fs::read(data_dir.join(RECORD_FILE)).ok()?;
        let record: LocalServer = serde_json::from_slice(&record).ok()?;
        let secret = fs::read_to_string(data_dir.join(TOKEN_FILE)).ok()?;
        Some((record, secret.trim().to_owned()))
    }

    /// The record of a `serve` that runs on `data_dir` now, and its token's secret.
    pub fn running(data_dir: &Path) -> Option<(Self, String)> {
        Self::read(data_dir).filter(|(record, _)| record.is_live())
    }

    /// Whether its database still accepts connections.
    pub fn is_live(&self) -> bool {
        UnixStream::connect(&self.socket).is_ok()
    }

    /// Writes the record and the secret into `data_dir`, readable by this user only.
    ///
    /// # Errors
    /// The file system's error.
    pub fn write(&self, data_dir: &Path, secret: &str) -> anyhow::Result<()> {
        write_private(&data_dir.join(TOKEN_FILE), secret.as_bytes())?;
        write_private(
            &data_dir.join(RECORD_FILE),
            &serde_json::to_vec_pretty(self)?,
        )
    }

    /// Removes the record of `data_dir` (at stop).
    pub fn remove(data_dir: &Path) {
        for file in [RECORD_FILE, TOKEN_FILE] {
            let path = data_dir.join(file);
            if let Err(error) = fs::remove_file(&path)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), %error, "cannot remove the record of serve");
            }
        }
    }
}

/// Writes `bytes` to `path` with mode 0600, replacing what was there.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    // A file left by an earlier start may have other modes: start afresh.
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}
