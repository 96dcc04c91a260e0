//! `EmbeddedError`: every way starting or stopping the private server can fail.

use std::io;
use std::path::PathBuf;

/// Why the private PostgreSQL server could not be set up, started or stopped.
///
/// Variants exist for outcomes a caller or an operator handles differently;
/// everything else is an [`EmbeddedError::Io`] with a context string.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No directory holds both `initdb` and `postgres`.
    ///
    /// A caller that can use an existing server (`DATABASE_URL`) may fall back to it;
    /// otherwise the message tells the operator what to install.
    #[error(
        "no PostgreSQL server binaries found (looked for `initdb` and `postgres` in {searched}); \
         install them (Debian/Ubuntu: `apt-get install postgresql`) \
         or set DATABASE_URL to use an existing server"
    )]
    BinariesNotFound {
        /// Where we looked, for the message.
        searched: String,
    },

    /// We run as root, which PostgreSQL refuses, and there is no account to run it as instead.
    #[error(
        "running as root, which PostgreSQL refuses, and there is no `{user}` user to run it as; \
         create one (Debian: `adduser --system --group {user}`) or run as an unprivileged user"
    )]
    NoServerUser {
        /// The account we looked for.
        user: String,
    },

    /// The server account cannot reach the data directory through its parents.
    #[error(
        "the `{user}` user, which runs PostgreSQL, cannot reach {path}: \
         {blocked} is not searchable by it; \
         put the data directory under a path it can traverse (e.g. /var/lib or /tmp) \
         or grant search permission (`chmod o+x {blocked}`)"
    )]
    NotTraversable {
        /// The directory the server needs.
        path: PathBuf,
        /// The first directory on the way that the account may not enter.
        blocked: PathBuf,
        /// The server account.
        user: String,
    },

    /// The existing cluster was made by another major version than the binaries found.
    #[error(
        "the cluster in {data_dir} was created by PostgreSQL {cluster} but the server binaries are \
         PostgreSQL {server}; install PostgreSQL {cluster}, or upgrade the cluster with pg_upgrade \
         (or delete it if its data is disposable)"
    )]
    IncompatibleCluster {
        /// The cluster directory.
        data_dir: PathBuf,
        /// Major version in the cluster's `PG_VERSION`.
        cluster: String,
        /// Major version of the binaries.
        server: String,
    },

    /// A server already runs on this cluster, probably another `runledger` on the same directory.
    #[error("the cluster in {data_dir} is already in use by PostgreSQL process {pid}")]
    InUse {
        /// The cluster directory.
        data_dir: PathBuf,
        /// The running server's process id, from `postmaster.pid`.
        pid: u32,
    },

    /// `initdb` ran and failed; its output says why.
    #[error("initdb failed ({status}):\n{output}")]
    Initdb {
        /// How it exited.
        status: String,
        /// Its combined stdout and stderr.
        output: String,
    },

    /// The server did not come up (it exited, or did not accept connections in time).
    #[error("PostgreSQL did not start: {reason}\n--- server log (tail) ---\n{log_tail}")]
    Start {
        /// What we saw.
        reason: String,
        /// The last lines the server logged, which usually name the cause.
        log_tail: String,
    },

    /// The server did not stop cleanly; it has been killed if it was still running.
    #[error("PostgreSQL did not stop cleanly: {reason}")]
    Stop {
        /// What we saw.
        reason: String,
    },

    /// A PostgreSQL tool (`pg_basebackup`, `psql`) failed, or a replication step did not
    /// finish in time.
    #[error("replication: {step} failed: {output}")]
    Replication {
        /// What we were doing.
        step: String,
        /// What the tool printed, or what we saw.
        output: String,
    },

    /// An unexpected IO failure while preparing or supervising the server.
    #[error("{context}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
}

impl EmbeddedError {
    /// Builds a `map_err` adapter that wraps an IO error with `context`.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}
