//! A private PostgreSQL server, run from the PostgreSQL binaries installed on this machine.
//!
//! Two users need one: the `runledger` binary, which keeps its ledger in a durable cluster in a
//! directory of its own (by default `./.runledger/`), and the integration tests, which start one
//! throwaway, non-crash-safe cluster per test process and give each test its own database.
//! Nothing here downloads anything: without installed binaries [`EmbeddedPostgres::start`]
//! fails with [`EmbeddedError::BinariesNotFound`], whose message says what to install.
//!
//! ```no_run
//! use runledger_pg::{EmbeddedConfig, EmbeddedPostgres};
//!
//! # fn main() -> Result<(), runledger_pg::EmbeddedError> {
//! let pg = EmbeddedPostgres::start(EmbeddedConfig::durable(".runledger"))?;
//! let url = pg.connection_url(); // hand this to sqlx
//! // ... use the database ...
//! pg.stop()?;
//! # Ok(())
//! # }
//! ```
//!
//! The server listens on a unix socket only (`listen_addresses = ''`), in a directory only the
//! server account can enter, and trusts local connections. When we run as root, which
//! PostgreSQL refuses, it runs as the `postgres` system user. It cannot outlive the process
//! that started it: [`EmbeddedPostgres`] explains the watchdog that ensures it.
//! The choices and the alternatives are in `docs/adr/0004-embedded-postgres.md`.
//!
//! A directory used by a server looks like this:
//!
//! ```text
//! <dir>/pgdata/          the cluster (PGDATA), owned by the server account, mode 0700
//! <dir>/socket/          the socket .s.PGSQL.<port>, owned by the server account, mode 0700
//! <dir>/postgres.log     the server log of this start; postgres.log.1 is the previous one
//! ```
//!
//! # Layout
//!
//! - `config`: `EmbeddedConfig` and `Durability`, what callers choose.
//! - `server`: `EmbeddedPostgres`: start (readiness), stop, and the server's settings; in it,
//!   `server::cluster` (directories, `initdb`, the socket and the log), `server::watchdog` (the
//!   `sh` watchdog that stops the server when its owner dies) and `server::url` (its URLs).
//! - `binaries`: finding `initdb` and `postgres` (PATH, then `/usr/lib/postgresql/*/bin`).
//! - `account`: running the server as the `postgres` user when we are root.
//! - `replication`: a streaming standby of a server (`pg_basebackup -R` over a replication
//!   slot, synchronous or not), promotion, pausing replay: what failover tests need.
//! - `probe`: a `pg_isready` in a few lines, to wait until the server accepts connections.
//! - `error`: `EmbeddedError`.

mod account;
mod binaries;
mod config;
mod error;
mod probe;
mod replication;
mod server;

pub use config::{Durability, EmbeddedConfig};
pub use error::EmbeddedError;
pub use replication::StandbyMode;
pub use server::EmbeddedPostgres;
