//! Streaming replication between private servers: a standby made from a primary with
//! `pg_basebackup -R` over a physical replication slot, synchronous or not, and the steps a
//! failover test takes on them (pause and resume replay, promote).
//!
//! ```no_run
//! use runledger_pg::{Durability, EmbeddedConfig, EmbeddedPostgres, StandbyMode};
//!
//! # fn main() -> Result<(), runledger_pg::EmbeddedError> {
//! // A synchronous standby holds commits back only where `synchronous_commit` is on: not in an
//! // ephemeral cluster.
//! let primary = EmbeddedPostgres::start(EmbeddedConfig {
//!     durability: Durability::Durable,
//!     ..EmbeddedConfig::ephemeral()
//! })?;
//! let standby = primary.start_standby("standby_1", StandbyMode::Synchronous, EmbeddedConfig {
//!     port: 5433,
//!     ..EmbeddedConfig::ephemeral()
//! })?;
//! primary.kill()?; // a crash: every commit acknowledged so far is on the standby
//! standby.promote()?;
//! # Ok(())
//! # }
//! ```
//!
//! Both servers listen on unix sockets only; the standby streams from the primary's socket, so
//! both must run on this machine as the same account (they do: [`EmbeddedPostgres`] runs every
//! server as us, or as `postgres` when we are root). PostgreSQL's defaults already allow it:
//! `wal_level = replica`, ten WAL senders, hot standby, and `initdb`'s `local replication`
//! trust line.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::cluster;
use crate::{Durability, EmbeddedConfig, EmbeddedError, EmbeddedPostgres};

/// How long a standby may take to stream (and, if synchronous, to be the synchronous one).
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether a primary's commits wait for a standby.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandbyMode {
    /// Listed in the primary's `synchronous_standby_names` (`ANY 1 (…)` of its synchronous
    /// standbys): a commit is acknowledged only once one of them has flushed it, so a crash of
    /// the primary loses no acknowledged commit. The primary must be `Durability::Durable`.
    Synchronous,
    /// Streams as fast as it can; the primary never waits for it, so its copy may lag and a
    /// crash of the primary may lose what it had not yet received.
    Asynchronous,
}

impl EmbeddedPostgres {
    /// Makes a streaming standby of this server and starts it with `config` (its own directory
    /// and port; its `max_connections` must be at least this server's, as hot standby requires).
    ///
    /// The standby's cluster is `pg_basebackup -R` of this one over a new physical replication
    /// slot named `name`, so the primary keeps every WAL segment the standby still needs; its
    /// `application_name` is `name` too. Returns once the standby streams and, if
    /// [`StandbyMode::Synchronous`], once this primary counts it as synchronous.
    ///
    /// `name` must be a valid slot name: lower-case letters, digits and `_`.
    ///
    /// # Errors
    ///
    /// [`EmbeddedError::Replication`] when `name` is not a valid slot name, a synchronous
    /// standby is asked of an ephemeral primary, `pg_basebackup` or `psql` fails, or the standby
    /// does not stream within a minute; and what [`EmbeddedPostgres::start`] returns.
    pub fn start_standby(
        &self,
        name: &str,
        mode: StandbyMode,
        config: EmbeddedConfig,
    ) -> Result<EmbeddedPostgres, EmbeddedError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(replication_error(
                "naming a standby",
                format!("{name:?} is not a slot name (lower-case letters, digits and _)"),
            ));
        }
        if mode == StandbyMode::Synchronous && self.durability == Durability::Ephemeral {
            return Err(replication_error(
                "making a synchronous standby",
                "an ephemeral primary runs with synchronous_commit = off, so it would not wait",
            ));
        }
        let conninfo = format!(
            "host='{}' port={} user=postgres application_name={name}",
            self.socket_dir().display(),
            self.port()
        );
        let fast_copy = config.durability == Durability::Ephemeral;
        let standby = EmbeddedPostgres::start_with(config, |binaries, run_as, data_dir| {
            cluster::private_dir(data_dir, run_as)?;
            let mut command = Command::new(binaries.tool("pg_basebackup"));
            command
                .arg("--dbname")
                .arg(&conninfo)
                .arg("--pgdata")
                .arg(data_dir)
                // standby.signal, primary_conninfo and primary_slot_name.
                .arg("--write-recovery-conf")
                .args(["--create-slot", "--slot", name])
                .args(["--wal-method", "stream", "--checkpoint", "fast"]);
            if fast_copy {
                command.arg("--no-sync");
            }
            run_as.apply(&mut command);
            run_tool(command, "pg_basebackup")?;
            Ok(())
        })?;

        if mode == StandbyMode::Synchronous {
            let current = self.psql("SHOW synchronous_standby_names")?;
            let mut names: Vec<String> = listed_standbys(&current);
            names.push(name.to_owned());
            self.psql(&format!(
                "ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 ({})'",
                names.join(", ")
            ))?;
            self.psql("SELECT pg_reload_conf()")?;
        }
        let wanted_state = match mode {
            StandbyMode::Synchronous => "quorum",
            StandbyMode::Asynchronous => "async",
        };
        self.wait_for(
            &format!("standby {name} to stream"),
            &format!(
                "SELECT count(*) FROM pg_stat_replication \
                 WHERE application_name = '{name}' AND state = 'streaming' \
                 AND sync_state = '{wanted_state}'"
            ),
            "1",
        )?;
        Ok(standby)
    }

    /// Promotes this standby to a primary with `pg_ctl promote`, as an operator or a failover
    /// manager does, and waits until it accepts writes.
    ///
    /// # Errors
    ///
    /// [`EmbeddedError::Replication`] when this server is not a standby or does not finish
    /// promoting within a minute.
    pub fn promote(&self) -> Result<(), EmbeddedError> {
        let mut command = Command::new(self.binaries.tool("pg_ctl"));
        command
            .args([
                "promote",
                "--wait",
                "--timeout",
                "60",
                "--silent",
                "--pgdata",
            ])
            .arg(self.data_dir());
        self.run_as.apply(&mut command);
        run_tool(command, "pg_ctl promote")?;
        self.wait_for("the promotion", "SELECT pg_is_in_recovery()", "f")
    }

    /// Pauses this standby's replay: it keeps receiving WAL but its data stops moving, as a
    /// replica that lags does.
    ///
    /// # Errors
    ///
    /// [`EmbeddedError::Replication`] when this server is not a standby.
    pub fn pause_replay(&self) -> Result<(), EmbeddedError> {
        self.psql("SELECT pg_wal_replay_pause()").map(drop)
    }

    /// Resumes replay after [`EmbeddedPostgres::pause_replay`].
    ///
    /// # Errors
    ///
    /// [`EmbeddedError::Replication`] when this server is not a standby.
    pub fn resume_replay(&self) -> Result<(), EmbeddedError> {
        self.psql("SELECT pg_wal_replay_resume()").map(drop)
    }

    /// Runs one statement as the superuser in database `postgres` and returns its output, one
    /// unaligned line per row (`psql -XAtq`), trimmed.
    fn psql(&self, sql: &str) -> Result<String, EmbeddedError> {
        let mut command = Command::new(self.binaries.tool("psql"));
        command
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg("--host")
            .arg(self.socket_dir())
            .args(["--port", &self.port().to_string()])
            .args(["--username", "postgres", "--dbname", "postgres"])
            .args(["--command", sql]);
        self.run_as.apply(&mut command);
        run_tool(command, "psql").map(|out| out.trim().to_owned())
    }

    /// Polls `sql` every 20 ms until it answers `expected`, for at most [`ATTACH_TIMEOUT`].
    fn wait_for(&self, what: &str, sql: &str, expected: &str) -> Result<(), EmbeddedError> {
        let deadline = Instant::now() + ATTACH_TIMEOUT;
        loop {
            let last = self.psql(sql)?;
            if last == expected {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(replication_error(
                    &format!("waiting for {what}"),
                    format!(
                        "after {} s `{sql}` still answers {last:?}",
                        ATTACH_TIMEOUT.as_secs()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The standbys of a `synchronous_standby_names` we wrote (`ANY 1 (a, b)`), or none.
fn listed_standbys(setting: &str) -> Vec<String> {
    setting
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map(|list| {
            list.split(',')
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs a tool to completion; its stdout on success, its output in the error otherwise.
fn run_tool(mut command: Command, tool: &str) -> Result<String, EmbeddedError> {
    // The tools run as the server account: a directory of ours they could not enter as the
    // working directory would fail them before they start.
    command.current_dir(Path::new("/")).stdin(Stdio::null());
    let output = command
        .output()
        .map_err(EmbeddedError::io(format!("running {tool}")))?;
    if !output.status.success() {
        return Err(replication_error(
            tool,
            format!(
                "{} {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn replication_error(step: &str, output: impl Into<String>) -> EmbeddedError {
    EmbeddedError::Replication {
        step: step.to_owned(),
        output: output.into(),
    }
}

#[cfg(test)]
mod tests;
