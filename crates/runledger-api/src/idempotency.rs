//! `Idempotency-Key` on command routes: a retried request (same key, same body) gets the first
//! answer without appending again; the same key with another request is refused (422).
//!
//! The key seeds the command's event id (and a queued run's id), and its first send claims it:
//! the claim records the request and the time the command is stamped with. Every other send of
//! the key, concurrent or later, takes its time from the claim, so concurrent sends decide the
//! same events and the store appends them once (it deduplicates by event id); each send then
//! answers with the first answer remembered. No send waits for another. A send whose command
//! is refused releases the claim: refusals are not remembered, so a retry is a new attempt
//! (docs/adr/0012).

use axum::http::{HeaderMap, Method, StatusCode};
use chrono::{DateTime, Utc};
use runledger_core::{Clock, EventId, RunId, TenantId};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::ApiError;

/// The longest accepted key.
const MAX_KEY_LEN: usize = 200;

/// Namespace of ids derived from idempotency keys (a fixed, random UUID).
const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x6a4c_1f0e_93b2_4d51_8f3e_2b7c_5d90_a1e4);

/// A command request's idempotency: the key (if sent) and the ids it implies.
#[derive(Debug, Clone)]
pub struct Idempotency {
    key: Option<String>,
    request_hash: [u8; 32],
    tenant: TenantId,
}

/// What a command send does, once its key has been looked at.
#[derive(Debug)]
pub enum Begun {
    /// An earlier send of the key was answered: answer the same.
    Answered(StatusCode, Value),
    /// Run the command, stamped with this time (the claim's, for a keyed request).
    Execute(DateTime<Utc>),
}

/// What is stored under a key: its first answer and its claim, each if there is one.
#[derive(sqlx::FromRow)]
struct Stored {
    answer_hash: Option<Vec<u8>>,
    status: Option<i16>,
    body: Option<Value>,
    claim_hash: Option<Vec<u8>>,
    command_at: Option<DateTime<Utc>>,
}

impl Idempotency {
    /// Reads the `Idempotency-Key` header.
    ///
    /// # Errors
    /// [`ApiError::BadRequest`] naming `Idempotency-Key` when it is empty, too long or not text.
    pub fn from_request(
        tenant: TenantId,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Result<Self, ApiError> {
        let key = match headers.get("idempotency-key") {
            None => None,
            Some(value) => {
                let key = value
                    .to_str()
                    .map_err(|_| ApiError::bad_field("Idempotency-Key", "must be visible ASCII"))?;
                if key.is_empty() || key.len() > MAX_KEY_LEN {
                    return Err(ApiError::bad_field(
                        "Idempotency-Key",
                        "must be 1-200 characters",
                    ));
                }
                Some(key.to_owned())
            }
        };
        let mut hasher = Sha256::new();
        for part in [method.as_str().as_bytes(), path.as_bytes(), body] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        Ok(Self {
            key,
            request_hash: hasher.finalize().into(),
            tenant,
        })
    }

    /// Whether the request carries a key.
    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    /// The event id of the command: derived from the key, or fresh.
    pub fn event_id(&self) -> EventId {
        EventId::from_uuid(self.derived("event").unwrap_or_else(Uuid::now_v7))
    }

    /// The id of a run this request queues: derived from the key, or fresh.
    pub fn new_run_id(&self) -> RunId {
        RunId::from_uuid(self.derived("run").unwrap_or_else(Uuid::now_v7))
    }

    fn derived(&self, what: &str) -> Option<Uuid> {
        let key = self.key.as_ref()?;
        Some(Uuid::new_v5(
            &KEY_NAMESPACE,
            format!("{}:{what}:{key}", self.tenant).as_bytes(),
        ))
    }

    /// Looks at the key before its command runs: the first answer when there is one; else the
    /// time to stamp the command with, the claim's (claiming the key now with `clock`'s time
    /// when no send has yet). A request without a key simply runs at `clock`'s time.
    ///
    /// # Errors
    /// [`ApiError::Unprocessable`] when the key was used for a different request.
    pub async fn begin(&self, pool: &PgPool, clock: &dyn Clock) -> Result<Begun, ApiError> {
        let Some(key) = &self.key else {
            return Ok(Begun::Execute(clock.now()));
        };
        let stored: Stored = sqlx::query_as(
            "SELECT k.request_hash AS answer_hash, k.status, k.body, \
                    c.request_hash AS claim_hash, c.command_at \
             FROM (SELECT 1) AS one \
             LEFT JOIN idempotency_keys k ON k.tenant_id = $1 AND k.key = $2 \
             LEFT JOIN idempotency_claims c ON c.tenant_id = $1 AND c.key = $2",
        )
        .bind(self.tenant.get())
        .bind(key)
        .fetch_one(pool)
        .await?;
        if let (Some(hash), Some(status), Some(body)) =
            (stored.answer_hash, stored.status, stored.body)
        {
            self.check(&hash)?;
            return Ok(Begun::Answered(stored_status(status)?, body));
        }
        if let (Some(hash), Some(at)) = (stored.claim_hash, stored.command_at) {
            self.check(&hash)?;
            return Ok(Begun::Execute(at));
        }
        let at = clock.now();
        let claimed: Option<DateTime<Utc>> = sqlx::query_scalar(
            "INSERT INTO idempotency_claims (tenant_id, key, request_hash, command_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, key) DO NOTHING RETURNING command_at",
        )
        .bind(self.tenant.get())
        .bind(key)
        .bind(self.request_hash.to_vec())
        .bind(at)
        .fetch_optional(pool)
        .await?;
        if let Some(at) = claimed {
            return Ok(Begun::Execute(at));
        }
        // A concurrent send claimed the key a moment ago (the insert waited for its commit).
        let (hash, at): (Vec<u8>, DateTime<Utc>) = sqlx::query_as(
            "SELECT request_hash, command_at FROM idempotency_claims WHERE tenant_id = $1 AND key = $2",
        )
        .bind(self.tenant.get())
        .bind(key)
        .fetch_one(pool)
        .await?;
        self.check(&hash)?;
        Ok(Begun::Execute(at))
    }

    /// Remembers `answer` as the key's first answer, and returns the first answer: this one,
    /// or the one a concurrent send remembered first (they answer the same).
    ///
    /// # Errors
    /// [`ApiError::Internal`] when the database fails.
    pub async fn finish(
        &self,
        pool: &PgPool,
        (status, body): (StatusCode, Value),
    ) -> Result<(StatusCode, Value), ApiError> {
        let Some(key) = &self.key else {
            return Ok((status, body));
        };
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (tenant_id, key, request_hash, status, body)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, key) DO NOTHING",
        )
        .bind(self.tenant.get())
        .bind(key)
        .bind(self.request_hash.to_vec())
        .bind(i16::try_from(status.as_u16()).unwrap_or(i16::MAX))
        .bind(&body)
        .execute(pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok((status, body));
        }
        let (first_status, first_body): (i16, Value) = sqlx::query_as(
            "SELECT status, body FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
        )
        .bind(self.tenant.get())
        .bind(key)
        .fetch_one(pool)
        .await?;
        Ok((stored_status(first_status)?, first_body))
    }

    /// Releases the key's claim made at `at` after its command was refused, so that a retry
    /// is a new attempt at its own time (a concurrent send that read the claim still runs with
    /// it). Best effort: a claim left behind only fixes the time of a retry.
    pub async fn release(&self, pool: &PgPool, at: DateTime<Utc>) {
        let Some(key) = &self.key else { return };
        let released = sqlx::query(
            "DELETE FROM idempotency_claims              WHERE tenant_id = $1 AND key = $2 AND request_hash = $3 AND command_at = $4",
        )
        .bind(self.tenant.get())
        .bind(key)
        .bind(self.request_hash.to_vec())
        .bind(at)
        .execute(pool)
        .await;
        if let Err(error) = released {
            tracing::warn!(%error, "an idempotency claim could not be released");
        }
    }

    /// Refuses a key stored for another request than this one.
    fn check(&self, stored_hash: &[u8]) -> Result<(), ApiError> {
        if stored_hash == self.request_hash {
            Ok(())
        } else {
            Err(ApiError::Unprocessable {
                kind: "idempotency-key-reused",
                detail: "the idempotency key was used for a different request".to_owned(),
            })
        }
    }
}

fn stored_status(status: i16) -> Result<StatusCode, ApiError> {
    u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("stored idempotent status is invalid")))
}
