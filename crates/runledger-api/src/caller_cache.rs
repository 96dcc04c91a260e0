//! A short-lived, in-process memory of bearer token lookups.
//!
//! A client sends its token with every request, and looking a token up costs a database round
//! trip: a quarter of a command's. So a live token's caller is remembered for at most
//! [`ApiConfig::token_staleness`](crate::ApiConfig::token_staleness), counted from before the
//! lookup was sent. The lookup's snapshot is taken after that instant, so a token revoked at
//! time R is refused by every request that starts after R + staleness, on every server process
//! (docs/adr/0010). Unknown and revoked tokens are never remembered: a new token works at once,
//! and a bad one costs a lookup every time, as without the cache.
//!
//! Entries are keyed by the token's SHA-256, never by the secret.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::auth::{Caller, token_hash};
use crate::error::ApiError;

/// The most callers remembered at once; past it, expired entries are dropped, and if none
/// are, everything is (the next lookups refill it): memory stays bounded under any load.
const MAX_REMEMBERED: usize = 10_000;

/// Callers of recently looked-up live tokens. Cheap to clone; clones share the memory.
#[derive(Debug, Clone)]
pub struct CallerCache {
    staleness: Duration,
    remembered: Arc<Mutex<HashMap<[u8; 32], Remembered>>>,
}

#[derive(Debug)]
struct Remembered {
    caller: Caller,
    /// When the lookup that found the token live was sent.
    asked: Instant,
}

impl CallerCache {
    /// A cache whose entries live at most `staleness`; zero looks every token up every time.
    pub fn new(staleness: Duration) -> Self {
        Self {
            staleness,
            remembered: Arc::default(),
        }
    }

    /// The caller of `secret`: remembered if it was looked up live less than the staleness
    /// ago, else what `look_up` finds now (remembered when it is a live token).
    ///
    /// # Errors
    /// What `look_up` fails with.
    pub async fn caller<F, Fut>(&self, secret: &str, look_up: F) -> Result<Option<Caller>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Caller>, ApiError>>,
    {
        if self.staleness.is_zero() {
            return look_up().await;
        }
        let key = token_hash(secret);
        if let Some(caller) = self.fresh(&key) {
            return Ok(Some(caller));
        }
        let asked = Instant::now();
        let found = look_up().await?;
        if let Some(caller) = &found {
            self.remember(key, caller.clone(), asked);
        }
        Ok(found)
    }

    /// Forgets the token `token_id` at once (it was revoked through this process).
    pub fn forget(&self, token_id: uuid::Uuid) {
        self.lock()
            .retain(|_, entry| entry.caller.token_id != token_id);
    }

    fn fresh(&self, key: &[u8; 32]) -> Option<Caller> {
        let remembered = self.lock();
        remembered
            .get(key)
            .filter(|entry| entry.asked.elapsed() < self.staleness)
            .map(|entry| entry.caller.clone())
    }

    fn remember(&self, key: [u8; 32], caller: Caller, asked: Instant) {
        let mut remembered = self.lock();
        if remembered.len() >= MAX_REMEMBERED {
            remembered.retain(|_, entry| entry.asked.elapsed() < self.staleness);
            if remembered.len() >= MAX_REMEMBERED {
                remembered.clear();
            }
        }
        remembered.insert(key, Remembered { caller, asked });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Remembered>> {
        // A panic while the lock was held cannot leave an entry half-written (inserts and
        // removals are whole), so the map is still sound.
        self.remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
