//! Who sweeps: one process at a time, by a session-level advisory lock held on a connection of
//! its own, the pattern the projectors' leadership uses (docs/adr/0007).
//!
//! When the leader's process dies its connection closes, the lock is released, and a standby
//! takes over at its next round. This file is the whole of the sweeper's leadership, so that
//! moving it to a lease with fencing (design brief §8) changes nothing else. A time-out sent by
//! two leaders at once is harmless all the same: both are decided against the run's events, the
//! store appends one, and the other is refused.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};

/// How often a leader makes sure its lock connection is still alive.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The advisory lock key of the sweeper: one sweeper leads per database.
const SWEEPER_KEY: i64 = 0x7275_6e6c_7377_6570; // "runlswep"

/// The sweeper's leadership: held, or not.
#[derive(Debug)]
pub struct Leadership {
    pool: PgPool,
    held: Option<Held>,
}

#[derive(Debug)]
struct Held {
    conn: PgConnection,
    checked: Instant,
}

impl Leadership {
    /// Leadership over the database of `pool`, not held yet.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, held: None }
    }

    /// Whether this process held the lock at its last [`Leadership::lead`].
    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }

    /// Holds or takes the lock; false when another process holds it.
    ///
    /// # Errors
    /// The database's, when it cannot be reached to take the lock.
    pub async fn lead(&mut self) -> Result<bool, sqlx::Error> {
        if let Some(held) = &mut self.held {
            if held.checked.elapsed() < CHECK_EVERY {
                return Ok(true);
            }
            match sqlx::query("SELECT 1").execute(&mut held.conn).await {
                Ok(_) => {
                    held.checked = Instant::now();
                    return Ok(true);
                }
                Err(error) => {
                    tracing::warn!(%error, "the sweeper lost its leader connection");
                    self.held = None;
                }
            }
        }
        // A connection of its own, outside the pool: the lock lives as long as the session.
        let mut conn = PgConnection::connect_with(&self.pool.connect_options()).await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(SWEEPER_KEY)
            .fetch_one(&mut conn)
            .await?;
        if locked {
            tracing::info!("leading the sweeper");
            self.held = Some(Held {
                conn,
                checked: Instant::now(),
            });
        } else {
            let _ = conn.close().await;
        }
        Ok(locked)
    }

    /// Gives the lock up, so that a standby takes over at its next round.
    pub async fn release(&mut self) {
        if let Some(mut held) = self.held.take() {
            // Unlocked explicitly: the session's end would release it too, but a moment later.
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(SWEEPER_KEY)
                .execute(&mut held.conn)
                .await;
            let _ = held.conn.close().await;
        }
    }
}
