//! `EmbeddedConfig`: where the private server keeps its files and how it is tuned.

use std::path::PathBuf;
use std::time::Duration;

/// How a cluster trades crash safety for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// PostgreSQL's defaults: a committed transaction survives a crash or power loss.
    /// For the `runledger` binary's own data.
    Durable,
    /// `fsync`, `synchronous_commit` and `full_page_writes` off, and `initdb --no-sync`.
    /// A crash may lose or corrupt the cluster, which is fine for throwaway test data and makes
    /// creating databases and committing much faster.
    Ephemeral,
}

/// Settings for [`EmbeddedPostgres::start`](crate::EmbeddedPostgres::start).
///
/// Start from [`EmbeddedConfig::durable`] or [`EmbeddedConfig::ephemeral`] and override fields
/// with struct update syntax:
///
/// ```
/// # use runledger_pg::EmbeddedConfig;
/// let config = EmbeddedConfig { max_connections: 500, ..EmbeddedConfig::ephemeral() };
/// ```
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The directory that holds everything: `pgdata/` (the cluster), `socket/` and
    /// `postgres.log`. Created if missing; other files in it are left alone.
    ///
    /// `None` makes a fresh directory under `/tmp`, removed when the server stops, including
    /// when the owning process dies without running destructors.
    pub dir: Option<PathBuf>,
    /// Crash safety versus speed.
    pub durability: Durability,
    /// The server's `max_connections`.
    pub max_connections: u32,
    /// The port, which only names the socket file (`.s.PGSQL.<port>`): no TCP port is opened,
    /// so a fixed number cannot collide with other servers that have their own socket directory.
    pub port: u16,
    /// A directory holding `initdb` and `postgres`; `None` searches `PATH`, then
    /// `/usr/lib/postgresql/*/bin` (highest version).
    pub bin_dir: Option<PathBuf>,
    /// How long to wait for the server to accept connections.
    pub start_timeout: Duration,
}

impl EmbeddedConfig {
    /// A crash-safe cluster kept in `dir` across runs, e.g. the binary's `./.runledger/`.
    #[must_use]
    pub fn durable(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
            durability: Durability::Durable,
            max_connections: 100,
            ..Self::ephemeral()
        }
    }

    /// A throwaway, fast, non-crash-safe cluster in a fresh directory under `/tmp`.
    ///
    /// `max_connections` is 300 because tests typically give each test its own pool.
    #[must_use]
    pub fn ephemeral() -> Self {
        Self {
            dir: None,
            durability: Durability::Ephemeral,
            max_connections: 300,
            port: 5432,
            bin_dir: None,
            start_timeout: Duration::from_secs(30),
        }
    }
}
