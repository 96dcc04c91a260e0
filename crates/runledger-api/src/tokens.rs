//! Creating and revoking API tokens (the `runledger token` subcommands call these).

use runledger_core::{TenantId, UserId};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::{Role, token_hash};

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The tenant it acts for (an admin token acts on every tenant).
    pub tenant_id: TenantId,
    /// What it may do.
    pub role: Role,
    /// The user it belongs to, for the notification feed.
    pub user_id: Option<UserId>,
    /// A label for people and logs.
    pub name: String,
}

/// A created token: its id, and the secret, which is shown once and never stored.
#[derive(Debug)]
pub struct CreatedToken {
    /// The token id, for revoking.
    pub id: Uuid,
    /// The bearer secret.
    pub secret: String,
}

/// Creates a token and returns its secret.
///
/// # Errors
/// The database error when the insert fails.
pub async fn create_token(pool: &PgPool, token: &NewToken) -> Result<CreatedToken, sqlx::Error> {
    let secret = random_secret("rl_");
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO api_tokens (id, token_hash, tenant_id, role, user_id, name) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(token_hash(&secret).to_vec())
    .bind(token.tenant_id.get())
    .bind(token.role.as_str())
    .bind(token.user_id.map(UserId::get))
    .bind(&token.name)
    .execute(pool)
    .await?;
    Ok(CreatedToken { id, secret })
}

/// Revokes a token; returns whether a live token was revoked.
///
/// # Errors
/// The database error when the update fails.
pub async fn revoke_token(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    let revoked = sqlx::query(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(revoked.rows_affected() == 1)
}

/// How many live tokens exist (`serve` explains how to create one when there are none).
///
/// # Errors
/// The database error when the query fails.
pub async fn live_tokens(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL")
        .fetch_one(pool)
        .await
}

/// A fresh secret: `prefix` and 244 random bits (two v4 UUIDs, from the operating system's
/// generator) in hex.
pub fn random_secret(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    )
}
