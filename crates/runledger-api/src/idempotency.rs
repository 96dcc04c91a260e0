//! `Idempotency-Key` on command routes: a retried request (same key, same body) gets the first
//! answer without appending again; the same key with another request is refused (422).
//!
//! The key also seeds the command's event id (and a queued run's id), so even two concurrent
//! first sends append once: the store deduplicates by event id.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode};
use runledger_core::{EventId, RunId, TenantId};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::ApiError;

/// How often [`Idempotency::recall_within`] looks again.
const RECALL_POLL: Duration = Duration::from_millis(10);

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

    /// The stored first answer to this key, if any.
    ///
    /// # Errors
    /// [`ApiError::Unprocessable`] when the key was used for a different request.
    pub async fn recall(&self, pool: &PgPool) -> Result<Option<(StatusCode, Value)>, ApiError> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let stored: Option<(Vec<u8>, i16, Value)> = sqlx::query_as(
            "SELECT request_hash, status, body FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
        )
        .bind(self.tenant.get())
        .bind(key)
        .fetch_optional(pool)
        .await?;
        match stored {
            None => Ok(None),
            Some((hash, _, _)) if hash != self.request_hash => Err(ApiError::Unprocessable {
                kind: "idempotency-key-reused",
                detail: "the idempotency key was used for a different request".to_owned(),
            }),
            Some((_, status, body)) => {
                let status = u16::try_from(status)
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .ok_or_else(|| {
                        ApiError::Internal(anyhow::anyhow!("stored idempotent status is invalid"))
                    })?;
                Ok(Some((status, body)))
            }
        }
    }

    /// The stored first answer to this key, waiting at most `wait` for a concurrent first send
    /// to store it.
    ///
    /// # Errors
    /// As [`Idempotency::recall`].
    pub async fn recall_within(
        &self,
        pool: &PgPool,
        wait: Duration,
    ) -> Result<Option<(StatusCode, Value)>, ApiError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(answer) = self.recall(pool).await? {
                return Ok(Some(answer));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(RECALL_POLL).await;
        }
    }

    /// Remembers the first answer to this key (a concurrent first answer wins; both are equal).
    ///
    /// # Errors
    /// [`ApiError::Internal`] when the database fails.
    pub async fn remember(
        &self,
        pool: &PgPool,
        status: StatusCode,
        body: &Value,
    ) -> Result<(), ApiError> {
        let Some(key) = &self.key else { return Ok(()) };
        sqlx::query(
            "INSERT INTO idempotency_keys (tenant_id, key, request_hash, status, body)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, key) DO NOTHING",
        )
        .bind(self.tenant.get())
        .bind(key)
        .bind(self.request_hash.to_vec())
        .bind(i16::try_from(status.as_u16()).unwrap_or(i16::MAX))
        .bind(body)
        .execute(pool)
        .await?;
        Ok(())
    }
}
