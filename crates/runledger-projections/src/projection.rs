//! What a projection is to the runtime: a name, its DDL, the public views over its tables, a
//! fingerprint that versions it, and a batch apply function.

use std::future::Future;
use std::sync::Arc;

use runledger_core::RunEvent;
use runledger_store::RecordedEvent;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::error::{ApplyError, ProjectionError};

/// A public view over one table of a projection. `select` is the view's query with `{schema}`
/// standing for the version's schema; its column list is fixed, so switching versions can
/// replace the view in place (`CREATE OR REPLACE VIEW`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicView {
    /// The view's name in `public`, e.g. `operation_runs`.
    pub name: &'static str,
    /// The view's query, with `{schema}` for the version's schema.
    pub select: &'static str,
}

/// One event of a batch: as stored, and decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectedEvent {
    /// The stored event (position, transaction, record time, run, tenant).
    pub recorded: RecordedEvent,
    /// The domain event.
    pub event: RunEvent,
}

/// A read model that folds events into tables of its own.
///
/// `apply` runs inside the runtime's transaction, with `search_path` set to the version's
/// schema, so its SQL names tables unqualified; the runtime advances the checkpoint in the same
/// transaction. It must be deterministic in the events (never read the clock), so that a
/// rebuild produces exactly the incrementally built rows.
pub trait Projection: Send + Sync + 'static {
    /// The stored name (`[a-z_]+`), e.g. `operation_runs`.
    fn name(&self) -> &'static str;

    /// The DDL of the projection's tables, with unqualified names.
    fn ddl(&self) -> &str;

    /// The version of the apply code: bump it when the code writes different rows, so the
    /// fingerprint changes and the projection is rebuilt.
    fn code_version(&self) -> &'static str;

    /// The views in `public` that show the active version.
    fn views(&self) -> &'static [PublicView];

    /// Applies a batch of events in log order.
    ///
    /// # Errors
    /// [`ApplyError::Poison`] when an event's data cannot be applied; [`ApplyError::Failed`]
    /// for anything worth retrying.
    fn apply(
        &self,
        events: &[ProjectedEvent],
        tx: &mut ApplyTx<'_>,
    ) -> impl Future<Output = Result<(), ApplyError>> + Send;

    /// The projection's definition: what versions are made of.
    fn definition(&self) -> Definition {
        Definition::new(self.name(), self.ddl(), self.code_version(), self.views())
    }
}

/// A projection as the registry knows it: enough to create, version and switch its schemas,
/// without its apply code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// The stored name.
    pub name: &'static str,
    /// The DDL.
    pub ddl: String,
    /// SHA-256 (hex) of the DDL and the code version.
    pub fingerprint: String,
    /// The public views.
    pub views: &'static [PublicView],
}

impl Definition {
    /// A definition; the fingerprint is computed here, from the DDL and the code version only:
    /// no setting of a process (its address, public URL, pool sizes) enters it, so every
    /// process of the same code applies the same versions (docs/adr/0025).
    ///
    /// # Panics
    /// When `name` is not `[a-z_]+`: names become parts of SQL identifiers.
    pub fn new(
        name: &'static str,
        ddl: &str,
        code_version: &str,
        views: &'static [PublicView],
    ) -> Self {
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "projection names are [a-z_]+: {name}"
        );
        let mut hasher = Sha256::new();
        // Length-prefixed parts, so no two different inputs share an encoding. The third part
        // was a projection's configuration; it stays, empty, so that the fingerprints of
        // versions built before it went keep their value and are not rebuilt for nothing.
        for part in [ddl, code_version, ""] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        Self {
            name,
            ddl: ddl.to_owned(),
            fingerprint: hex::encode(hasher.finalize()),
            views,
        }
    }

    /// The Postgres schema of a version: `proj_<name>_<12 hex of the fingerprint>`, with
    /// `_g<generation>` for operator rebuilds of the same fingerprint.
    pub fn schema_name(&self, generation: i32) -> String {
        let short = &self.fingerprint[..12];
        if generation == 1 {
            format!("proj_{}_{short}", self.name)
        } else {
            format!("proj_{}_{short}_g{generation}", self.name)
        }
    }
}

/// The transaction-scoped advisory lock key that serializes changes to a projection's versions
/// (creating, switching, cancelling) across processes.
pub(crate) fn registry_key(projection: &str) -> i64 {
    lock_key(&format!("runledger.registry:{projection}"))
}

fn lock_key(text: &str) -> i64 {
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// A hook a test installs to fail a batch at a named statement boundary, as a crash would.
pub type FailPoint = Arc<dyn Fn(&'static str) -> Result<(), Injected> + Send + Sync>;

/// The failure a [`FailPoint`] injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injected;

/// The apply transaction as a projection sees it: the connection, and the boundaries where a
/// test may inject a failure.
pub struct ApplyTx<'a> {
    pub(crate) conn: &'a mut PgConnection,
    pub(crate) fail_point: Option<&'a FailPoint>,
}

impl ApplyTx<'_> {
    /// The transaction's connection (`search_path` is the version's schema).
    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn
    }

    /// Marks a statement boundary named `at`: a test's fail point may fail the batch here.
    ///
    /// # Errors
    /// [`ProjectionError::Injected`] when the fail point says so.
    pub fn boundary(&self, at: &'static str) -> Result<(), ApplyError> {
        fail_at(self.fail_point, at).map_err(ApplyError::Failed)
    }
}

/// Runs the fail point, if any, at `at`.
pub(crate) fn fail_at(
    fail_point: Option<&FailPoint>,
    at: &'static str,
) -> Result<(), ProjectionError> {
    match fail_point {
        Some(fail) => fail(at).map_err(|Injected| ProjectionError::Injected(at)),
        None => Ok(()),
    }
}
