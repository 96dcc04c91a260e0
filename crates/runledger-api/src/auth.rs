//! Bearer tokens: who the caller is, for which tenant, in which role.
//!
//! Tokens are random secrets shown once at creation; only their SHA-256 is stored, so a leaked
//! database does not leak working tokens. Another tenant's resources answer 404, exactly as
//! missing ones, so a caller never learns what exists outside its tenant.

use std::collections::BTreeSet;
use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use runledger_core::{TenantId, UserId};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::TenantScoped;

/// What a token may do; each role includes the ones before it in its line:
/// reader ⊂ writer, reader ⊂ auditor, and admin includes all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads runs.
    Reader,
    /// Reads runs and records run commands.
    Writer,
    /// Reads runs, event history and verification.
    Auditor,
    /// Everything, on every tenant, and manages projections.
    Admin,
}

impl Role {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored or typed name.
    ///
    /// # Errors
    /// A message listing the roles when `text` is none of them.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "reader" => Ok(Role::Reader),
            "writer" => Ok(Role::Writer),
            "auditor" => Ok(Role::Auditor),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?}: expected reader, writer, auditor or admin"
            )),
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed || needed == Role::Reader
    }
}

/// The tenants a token acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    /// Every tenant, present and future (admin tokens, and service tokens made so).
    All,
    /// These tenants (never empty).
    Listed(BTreeSet<TenantId>),
}

impl TenantScope {
    /// Whether the token acts for `tenant`.
    pub fn includes(&self, tenant: TenantId) -> bool {
        match self {
            TenantScope::All => true,
            TenantScope::Listed(tenants) => tenants.contains(&tenant),
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's id (never its secret), for logs and event metadata.
    pub token_id: Uuid,
    /// The token's name.
    pub name: String,
    /// The token's home tenant: where its pages open, whose feed a user's token reads.
    pub tenant_id: TenantId,
    /// The tenants it acts for (the home among them).
    pub tenants: TenantScope,
    /// The token's role.
    pub role: Role,
    /// The user the token belongs to, if any.
    pub user_id: Option<UserId>,
}

impl Caller {
    /// Checks that the caller may act on `tenant` in `role`.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] for another tenant (as if it did not exist), then
    /// [`ApiError::Forbidden`] for a role that does not allow it.
    pub fn authorize(&self, tenant: TenantId, role: Role) -> Result<(), ApiError> {
        if !self.tenants.includes(tenant) {
            return Err(ApiError::NotFound);
        }
        if !self.role.allows(role) {
            return Err(ApiError::Forbidden);
        }
        Ok(())
    }

    /// Checks that the caller is an admin (routes that name no tenant: tokens, projections).
    ///
    /// # Errors
    /// [`ApiError::Forbidden`] for any other role.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// The actor recorded in event metadata.
    pub fn actor(&self) -> String {
        match self.user_id {
            Some(user) => format!("user:{user}"),
            None => format!("token:{}", self.name),
        }
    }
}

/// The stored hash of a token secret.
pub fn token_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|secret| !secret.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let caller = state
            .callers
            .caller(secret, || find_caller(&state.pool, secret))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        state.rate_limits.token(caller.token_id)?;
        Ok(caller)
    }
}

/// Looks up the live token of `secret`, and records that it was used (at most once a minute per
/// token, so a busy token costs no write per lookup; lookups are rare already, the caller cache
/// answers most requests).
pub(crate) async fn find_caller(pool: &PgPool, secret: &str) -> Result<Option<Caller>, ApiError> {
    let row: Option<TokenRow> = sqlx::query_as(
        "WITH found AS (SELECT id, name, tenant_id, role, user_id, tenant_ids, all_tenants \
            FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL), \
         touched AS (UPDATE api_tokens t SET last_used_at = now() FROM found \
            WHERE t.id = found.id AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute')) \
         SELECT * FROM found",
    )
    .bind(token_hash(secret).to_vec())
    .fetch_optional(pool)
    .await?;
    row.map(caller_of_token).transpose()
}

/// A live token as stored: id, name, home tenant, role, user, tenants, all tenants.
pub(crate) type TokenRow = (Uuid, String, i64, String, Option<i64>, Vec<i64>, bool);

/// The caller a stored token stands for.
pub(crate) fn caller_of_token(
    (token_id, name, tenant_id, role, user_id, tenant_ids, all_tenants): TokenRow,
) -> Result<Caller, ApiError> {
    let corrupt = |what: &str| {
        ApiError::Internal(anyhow::anyhow!(
            "stored token {token_id} has an invalid {what}"
        ))
    };
    Ok(Caller {
        token_id,
        name,
        tenant_id: TenantId::new(tenant_id).map_err(|_| corrupt("tenant"))?,
        tenants: if all_tenants {
            TenantScope::All
        } else {
            TenantScope::Listed(
                tenant_ids
                    .into_iter()
                    .map(TenantId::new)
                    .collect::<Result<_, _>>()
                    .map_err(|_| corrupt("tenant list"))?,
            )
        },
        role: Role::parse(&role).map_err(|_| corrupt("role"))?,
        user_id: user_id
            .map(UserId::new)
            .transpose()
            .map_err(|_| corrupt("user"))?,
    })
}

/// The roles as types, for [`Authorized`]: `Authorized<RunPath, needs::Auditor>`.
pub mod needs {
    use super::Role;

    /// A role a route needs.
    pub trait NeededRole {
        /// The role.
        const ROLE: Role;
    }

    /// Routes that read runs.
    #[derive(Debug)]
    pub struct Reader;
    /// Routes that record run commands.
    #[derive(Debug)]
    pub struct Writer;
    /// Routes that read event history and evidence.
    #[derive(Debug)]
    pub struct Auditor;

    impl NeededRole for Reader {
        const ROLE: Role = Role::Reader;
    }
    impl NeededRole for Writer {
        const ROLE: Role = Role::Writer;
    }
    impl NeededRole for Auditor {
        const ROLE: Role = Role::Auditor;
    }
}

/// A caller (`W`: the bearer token's [`Caller`], or a page's signed-in viewer) authorized for
/// the tenant its route's path (`P`) names in the role `R` needs. As an extractor it runs
/// before the query string, the headers and the body are read, so another tenant's route
/// answers exactly like a missing one whatever the request holds: the token (401), the path's
/// ids (400), then the tenant (404) and the role (403).
#[derive(Debug)]
pub struct Authorized<P, R, W = Caller> {
    /// Who asks.
    pub caller: W,
    /// The ids the route names.
    pub path: P,
    role: PhantomData<R>,
}

impl<P, R, W> FromRequestParts<AppState> for Authorized<P, R, W>
where
    W: FromRequestParts<AppState> + AsRef<Caller> + Send,
    W::Rejection: From<ApiError>,
    P: FromRequestParts<AppState, Rejection = ApiError> + TenantScoped + Send,
    R: needs::NeededRole,
{
    type Rejection = W::Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, W::Rejection> {
        let caller = W::from_request_parts(parts, state).await?;
        let path = P::from_request_parts(parts, state).await?;
        caller.as_ref().authorize(path.tenant_id(), R::ROLE)?;
        // After the tenant check: another tenant's routes answer 404, never 429, whatever the
        // load on that tenant.
        state.rate_limits.tenant(path.tenant_id())?;
        Ok(Self {
            caller,
            path,
            role: PhantomData,
        })
    }
}

impl AsRef<Caller> for Caller {
    fn as_ref(&self) -> &Caller {
        self
    }
}
