//! API tokens: creating (the secret shown once), listing and revoking them, for the token API
//! (`/v1/tokens`, admin role) and the `runledger token` subcommands.
//!
//! A token acts for a list of tenants or for all of them, in one role (docs/adr/0018): a product
//! service serving many tenants holds one token. An admin token acts for every tenant. Only the
//! secret's SHA-256 is stored.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use runledger_core::{TenantId, UserId};
use runledger_wire::{CreatedToken as CreatedTokenBody, NewTokenBody, TokenInfo, TokenList};
use sqlx::PgPool;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, Role, TenantScope, token_hash};
use crate::error::ApiError;
use crate::extract::CommandBody;
use crate::openapi::ADMIN_ROLE;

/// The longest token name, in characters.
const MAX_NAME_CHARS: usize = 100;

/// A token of one tenant (an admin token acts on every tenant).
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The tenant it acts for.
    pub tenant_id: TenantId,
    /// What it may do.
    pub role: Role,
    /// The user it belongs to, for the notification feed.
    pub user_id: Option<UserId>,
    /// A label for people and logs.
    pub name: String,
}

/// A token to create, of any scope: the parsed body of `POST /v1/tokens`, or a [`NewToken`].
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// A label for people and logs.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Its home tenant: where its pages open, whose feed a user's token reads.
    pub home: TenantId,
    /// The tenants it acts for (the home among them).
    pub scope: TenantScope,
    /// The user it belongs to.
    pub user_id: Option<UserId>,
}

impl From<&NewToken> for TokenSpec {
    fn from(token: &NewToken) -> Self {
        TokenSpec {
            name: token.name.clone(),
            role: token.role,
            home: token.tenant_id,
            scope: if token.role == Role::Admin {
                TenantScope::All
            } else {
                TenantScope::Listed(BTreeSet::from([token.tenant_id]))
            },
            user_id: token.user_id,
        }
    }
}

/// A created token: its id, and the secret, which is shown once and never stored.
#[derive(Debug)]
pub struct CreatedToken {
    /// The token id, for revoking.
    pub id: Uuid,
    /// The bearer secret.
    pub secret: String,
}

/// Creates a token of one tenant and returns its secret.
///
/// # Errors
/// The database error when the insert fails.
pub async fn create_token(pool: &PgPool, token: &NewToken) -> Result<CreatedToken, sqlx::Error> {
    create(pool, &TokenSpec::from(token)).await
}

/// Creates a token of any scope and returns its secret.
///
/// # Errors
/// The database error when the insert fails.
pub async fn create(pool: &PgPool, token: &TokenSpec) -> Result<CreatedToken, sqlx::Error> {
    let secret = random_secret("rl_");
    let id = Uuid::now_v7();
    let (listed, all_tenants) = match &token.scope {
        TenantScope::All => (vec![token.home.get()], true),
        TenantScope::Listed(tenants) => (tenants.iter().map(|t| t.get()).collect(), false),
    };
    sqlx::query(
        "INSERT INTO api_tokens (id, token_hash, tenant_id, role, user_id, name, tenant_ids, all_tenants) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(token_hash(&secret).to_vec())
    .bind(token.home.get())
    .bind(token.role.as_str())
    .bind(token.user_id.map(UserId::get))
    .bind(&token.name)
    .bind(listed)
    .bind(all_tenants)
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

/// The columns of a token as listed (one list for both queries), and their row.
macro_rules! token_columns {
    () => {
        "id, name, role, tenant_ids, all_tenants, user_id, created_at, last_used_at, revoked_at"
    };
}
type InfoRow = (
    Uuid,
    String,
    String,
    Vec<i64>,
    bool,
    Option<i64>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

fn info_of_row(
    (id, name, role, tenant_ids, all_tenants, user_id, created_at, last_used_at, revoked_at): InfoRow,
) -> TokenInfo {
    TokenInfo {
        id,
        name,
        role,
        tenant_ids,
        all_tenants,
        user_id,
        created_at,
        last_used_at,
        revoked_at,
    }
}

/// Every token, newest first, revoked ones included.
///
/// # Errors
/// The database error when the query fails.
pub async fn list_tokens(pool: &PgPool) -> Result<Vec<TokenInfo>, sqlx::Error> {
    let rows: Vec<InfoRow> = sqlx::query_as(concat!(
        "SELECT ",
        token_columns!(),
        " FROM api_tokens ORDER BY created_at DESC, id DESC"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(info_of_row).collect())
}

/// One token, if it exists.
///
/// # Errors
/// The database error when the query fails.
pub async fn find_token(pool: &PgPool, id: Uuid) -> Result<Option<TokenInfo>, sqlx::Error> {
    let row: Option<InfoRow> = sqlx::query_as(concat!(
        "SELECT ",
        token_columns!(),
        " FROM api_tokens WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(info_of_row))
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

/// The token routes (admin role).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_route, list_route))
        .routes(routes!(revoke_route))
}

/// The token a `POST /v1/tokens` body asks for.
///
/// # Errors
/// A 400 naming the first field that is not acceptable.
pub fn parse_new_token(body: NewTokenBody) -> Result<TokenSpec, ApiError> {
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_field("name", "must be 1 to 100 characters"));
    }
    let role = Role::parse(&body.role).map_err(|reason| ApiError::bad_field("role", reason))?;
    let mut listed = Vec::with_capacity(body.tenant_ids.len());
    for (index, id) in body.tenant_ids.iter().enumerate() {
        let tenant = TenantId::new(*id)
            .map_err(|e| ApiError::bad_field(format!("tenant_ids[{index}]"), e.reason))?;
        if !listed.contains(&tenant) {
            listed.push(tenant);
        }
    }
    let all_tenants = body.all_tenants || role == Role::Admin;
    if listed.is_empty() && !all_tenants {
        return Err(ApiError::bad_field(
            "tenant_ids",
            "must list at least one tenant, unless all_tenants is true",
        ));
    }
    let user_id = body
        .user_id
        .map(UserId::new)
        .transpose()
        .map_err(|e| ApiError::bad_field("user_id", e.reason))?;
    if user_id.is_some() && (all_tenants || listed.len() != 1) {
        return Err(ApiError::bad_field(
            "user_id",
            "a user's token acts for exactly one tenant (its feed's)",
        ));
    }
    let home = match listed.first() {
        Some(home) => *home,
        None => TenantId::new(1).map_err(|e| ApiError::bad_field("tenant_ids", e.reason))?,
    };
    let scope = if all_tenants {
        TenantScope::All
    } else {
        TenantScope::Listed(listed.into_iter().collect())
    };
    Ok(TokenSpec {
        name,
        role,
        home,
        scope,
        user_id,
    })
}

/// Create a token (its secret is shown only in this answer).
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens",
    request_body = NewTokenBody,
    responses((status = 201, body = CreatedTokenBody, description = "The token, with its secret (shown only now)"),
        (status = 403, description = ADMIN_ROLE)),
    security(("bearer" = [])))]
pub(crate) async fn create_route(
    State(state): State<AppState>,
    caller: Caller,
    body: CommandBody<NewTokenBody>,
) -> Result<(StatusCode, Json<CreatedTokenBody>), ApiError> {
    caller.require_admin()?;
    let spec = parse_new_token(body.value)?;
    let created = create(&state.pool, &spec).await?;
    let token = find_token(&state.pool, created.id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a created token is not stored")))?;
    tracing::info!(by = %caller.token_id, token = %created.id, role = spec.role.as_str(), "token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedTokenBody {
            secret: created.secret,
            token,
        }),
    ))
}

/// List tokens (never a secret).
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = TokenList, description = "Every token, newest first, revoked ones included; never a secret"),
        (status = 403, description = ADMIN_ROLE)),
    security(("bearer" = [])))]
pub(crate) async fn list_route(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<TokenList>, ApiError> {
    caller.require_admin()?;
    Ok(Json(TokenList {
        tokens: list_tokens(&state.pool).await?,
    }))
}

/// Revoke a token.
#[utoipa::path(delete, path = "/v1/tokens/{token_id}", tag = "tokens",
    params(("token_id" = Uuid, Path, description = "The token id")),
    responses((status = 200, body = TokenInfo, description = "The token, revoked (revoking a revoked token answers the same); every server refuses it within the token staleness (docs/adr/0010)"),
        (status = 400, description = "Not a token id"), (status = 403, description = ADMIN_ROLE)),
    security(("bearer" = [])))]
pub(crate) async fn revoke_route(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    caller.require_admin()?;
    let id: Uuid = id
        .parse()
        .map_err(|_| ApiError::bad_field("token_id", "must be a UUID"))?;
    if revoke_token(&state.pool, id).await? {
        tracing::info!(by = %caller.token_id, token = %id, "token revoked");
    }
    // This process forgets it at once; the others within the staleness.
    state.callers.forget(id);
    find_token(&state.pool, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}
