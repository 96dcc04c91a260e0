//! The token API (admin role): a token to create, a created one (its secret shown once), a
//! token as listed.
//!
//! A token acts for a set of tenants, or for all of them, in one role: a product service that
//! serves many tenants holds one token. Every route still checks the tenant its path names
//! against the token, and another tenant's resources answer exactly like missing ones.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    /// A label for people and logs (1–100 characters).
    pub name: String,
    /// `reader`, `writer`, `auditor` or `admin` (an admin acts on every tenant).
    pub role: String,
    /// The tenants it acts for; the first is its home (where the pages open, whose feed a
    /// user's token reads). Empty only with `all_tenants` or for an admin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenant_ids: Vec<i64>,
    /// Acts for every tenant, present and future (a service token of a product that serves them
    /// all).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_tenants: bool,
    /// The user it belongs to (their notification feed); needs exactly one tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
}

/// A token as the API shows it: never its secret, which is stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// The token id (revoke by it).
    pub id: Uuid,
    /// The label.
    pub name: String,
    /// What it may do.
    pub role: String,
    /// The tenants it acts for, home first (every tenant when `all_tenants`).
    pub tenant_ids: Vec<i64>,
    /// Whether it acts for every tenant.
    pub all_tenants: bool,
    /// The user it belongs to, if any.
    pub user_id: Option<i64>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last used, to the minute (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The answer to `POST /v1/tokens`: the token and its secret, shown only this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The bearer secret: `Authorization: Bearer <secret>`. Not stored, not shown again.
    pub secret: String,
    /// The token.
    pub token: TokenInfo,
}

/// `GET /v1/tokens`: every token, newest first, revoked ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// The tokens.
    pub tokens: Vec<TokenInfo>,
}
