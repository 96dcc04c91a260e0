//! Leadership: which projector applies a projection's versions (of one code fingerprint)
//! across processes.
//!
//! The leader holds a session-level advisory lock on a connection of its own, outside the pool.
//! When its process dies the connection closes, the lock is released, and another projector
//! takes it on its next step. Leadership only keeps the others idle: the checkpoint check of
//! every batch (`batch::claim`) is what makes two projectors that both believe they lead
//! harmless.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};

use crate::error::Result;
use crate::projection::Definition;
use crate::registry::ProjectionVersion;

/// How often a leader makes sure its lock connection is still alive.
const LEADER_CHECK: Duration = Duration::from_secs(1);

/// The connection that holds the leader lock.
struct Leader {
    conn: PgConnection,
    checked: Instant,
}

/// What a projector's bid for leadership came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lead {
    /// It led already, and still does.
    Kept,
    /// It leads from now on (its view of the versions must be prepared afresh).
    Taken,
    /// Another projector leads.
    Refused,
}

/// One projector's leadership of its projection.
pub(super) struct Leadership {
    projection: &'static str,
    key: i64,
    leader: Option<Leader>,
}

impl Leadership {
    /// Not leading yet.
    pub(super) fn new(definition: &Definition) -> Self {
        Self {
            projection: definition.name,
            key: definition.leader_key(),
            leader: None,
        }
    }

    /// Whether it holds the lock (as of the last [`Leadership::lead`]).
    pub(super) fn is_held(&self) -> bool {
        self.leader.is_some()
    }

    /// Holds or takes the leader lock.
    pub(super) async fn lead(&mut self, pool: &PgPool) -> Result<Lead> {
        if let Some(leader) = &mut self.leader {
            if leader.checked.elapsed() < LEADER_CHECK {
                return Ok(Lead::Kept);
            }
            match sqlx::query("SELECT 1").execute(&mut leader.conn).await {
                Ok(_) => {
                    leader.checked = Instant::now();
                    return Ok(Lead::Kept);
                }
                Err(error) => {
                    tracing::warn!(projection = self.projection, %error, "lost the leader connection");
                    self.leader = None;
                }
            }
        }
        // A connection of its own, outside the pool: the lock lives as long as the session.
        let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(self.key)
            .fetch_one(&mut conn)
            .await?;
        if locked {
            tracing::info!(projection = self.projection, "leading the projection");
            self.leader = Some(Leader {
                conn,
                checked: Instant::now(),
            });
            Ok(Lead::Taken)
        } else {
            let _ = conn.close().await;
            Ok(Lead::Refused)
        }
    }

    /// Gives up the leader lock, so another projector can take over at once.
    pub(super) async fn release(&mut self) {
        if let Some(mut leader) = self.leader.take() {
            // Unlocked explicitly: the session's end would release it too, but a moment later.
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(self.key)
                .execute(&mut leader.conn)
                .await;
            let _ = leader.conn.close().await;
        }
    }
}

/// Whether a projector (in any process) holds the leader lock of `version`'s projection and
/// fingerprint.
///
/// # Errors
/// [`crate::ProjectionError::Database`] when the database fails.
pub(crate) async fn is_led(pool: &PgPool, version: &ProjectionVersion) -> Result<bool> {
    // `pg_locks` shows a bigint advisory lock split in two: its high half as `classid`, its low
    // half as `objid`, with `objsubid` 1.
    let key = Definition::leader_key_of(&version.projection, &version.fingerprint) as u64;
    let led: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks l \
                        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                          AND l.database = (SELECT oid FROM pg_database \
                                            WHERE datname = current_database()) \
                          AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid)",
    )
    .bind((key >> 32) as i64)
    .bind((key & 0xffff_ffff) as i64)
    .fetch_one(pool)
    .await?;
    Ok(led)
}
