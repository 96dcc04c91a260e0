//! Leadership: which projector applies a projection's versions (of one code fingerprint)
//! across processes.
//!
//! The leader holds the store's lease named after the projection and the fingerprint
//! ([`runledger_store::Lease`], docs/adr/0024), renewed with the database's clock as it steps.
//! A leader that stops renewing (its process died, was paused, or hangs in a step) loses the
//! lease within its duration, and a standby takes it on its next step. Each batch commits only
//! through the lease's fence, checked in the batch's transaction (`batch::claim`), so a leader
//! that wakes after losing the lease commits nothing; the checkpoint check of the same
//! transaction is what makes the work exactly-once.

use std::time::Duration;

use runledger_store::lease::{self, Fence, Lease, LeaseBid};
use sqlx::PgPool;

use crate::error::Result;
use crate::projection::Definition;
use crate::registry::ProjectionVersion;

/// One projector's leadership of its projection.
pub(super) struct Leadership {
    lease: Lease,
}

impl Leadership {
    /// Not leading yet; leases of `duration` once it leads.
    pub(super) fn new(pool: PgPool, definition: &Definition, duration: Duration) -> Self {
        Self {
            lease: Lease::new(
                pool,
                lease_name(definition.name, &definition.fingerprint),
                duration,
            ),
        }
    }

    /// Whether it holds the lease (renewed less than its duration ago).
    pub(super) fn is_held(&self) -> bool {
        self.lease.is_held()
    }

    /// The fence a batch commits through, while the lease is held.
    pub(super) fn fence(&self) -> Option<Fence> {
        self.lease.fence()
    }

    /// How long a batch transaction may sit idle before the server ends it: half the lease.
    /// A paused leader's open transaction holds the lease's and the version's rows, and (once
    /// it has written) holds back every reader's safe horizon of the log, so it must end well
    /// before the lease lapses; a batch's own pauses between statements are milliseconds.
    pub(super) fn idle_limit(&self) -> Duration {
        self.lease.duration() / 2
    }

    /// Keeps, renews or takes the lease.
    pub(super) async fn lead(&mut self) -> Result<LeaseBid> {
        Ok(self.lease.bid().await?)
    }

    /// Gives up the lease, so another projector can take over at once.
    pub(super) async fn release(&mut self) {
        self.lease.release().await;
    }
}

/// The lease of the versions of `projection` with `fingerprint`: one leader per projection and
/// code fingerprint, so that during a rolling deploy the old code keeps the active version
/// current while the new code builds its own.
fn lease_name(projection: &str, fingerprint: &str) -> String {
    format!("projector:{projection}:{fingerprint}")
}

/// Whether a projector (in any process) holds the lease of `version`'s projection and
/// fingerprint.
///
/// # Errors
/// [`crate::ProjectionError::Database`] when the database fails.
pub(crate) async fn is_led(pool: &PgPool, version: &ProjectionVersion) -> Result<bool> {
    let name = lease_name(&version.projection, &version.fingerprint);
    Ok(lease::holder(pool, &name).await?.is_some())
}
