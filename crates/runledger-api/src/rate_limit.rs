//! Rate limits: per bearer token, per tenant a route names, and per client address for the
//! pages' sign-in attempts (docs/deployment.md, "Rate limits").
//!
//! Each limit is a GCRA limiter (the `governor` crate) keyed in memory, per process: a burst of
//! `requests` is allowed, refilled evenly over `per`. A refused request answers 429 with
//! `Retry-After`, the whole seconds until its key has room again. Limits are per process, so a
//! deployment of N servers allows N times as much in total; they protect a server and its
//! database from one flooding client, they are not a quota.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use runledger_core::TenantId;
use uuid::Uuid;

use crate::error::ApiError;

/// A limit: `requests` at once, refilled evenly over `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// The burst, and how many are refilled per `per`.
    pub requests: NonZeroU32,
    /// The period over which `requests` are refilled.
    pub per: Duration,
}

impl Rate {
    /// `requests` per second.
    pub fn per_second(requests: NonZeroU32) -> Self {
        Self {
            requests,
            per: Duration::from_secs(1),
        }
    }

    /// `requests` per minute.
    pub fn per_minute(requests: NonZeroU32) -> Self {
        Self {
            requests,
            per: Duration::from_secs(60),
        }
    }

    fn quota(self) -> Quota {
        let replenish = (self.per / self.requests.get()).max(Duration::from_nanos(1));
        Quota::with_period(replenish)
            .unwrap_or_else(|| Quota::per_second(self.requests))
            .allow_burst(self.requests)
    }
}

/// The limits of a server. The defaults are generous: they stop a runaway loop, not a busy
/// client (a test suite, a bench, a product's workers never reach them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests of one bearer token.
    pub per_token: Rate,
    /// Tokens (by id) with a limit of their own instead of `per_token`: a busy service token
    /// allowed more, or a suspect one less.
    pub token_overrides: BTreeMap<Uuid, Rate>,
    /// Requests on one tenant's routes, whatever the token.
    pub per_tenant: Rate,
    /// Sign-in attempts on the pages from one client address.
    pub sign_in: Rate,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_token: Rate::per_second(NonZeroU32::new(1_000).unwrap_or(NonZeroU32::MIN)),
            token_overrides: BTreeMap::new(),
            per_tenant: Rate::per_second(NonZeroU32::new(5_000).unwrap_or(NonZeroU32::MIN)),
            sign_in: Rate::per_minute(NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN)),
        }
    }
}

impl RateLimitConfig {
    /// Limits no client reaches (still counted, so that their cost is measured): for benches
    /// of the command path, which would otherwise measure the limiter's refusals.
    pub fn unreachable() -> Self {
        let most = Rate::per_second(NonZeroU32::MAX);
        Self {
            per_token: most,
            token_overrides: BTreeMap::new(),
            per_tenant: most,
            sign_in: most,
        }
    }
}

/// One keyed limiter and what its refusal says.
struct Limit<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>,
    name: &'static str,
}

/// How many keys a limiter keeps before it forgets the ones that are full again.
const MAX_KEYS: usize = 10_000;

impl<K: Hash + Eq + Clone> Limit<K> {
    fn new(rate: Rate, name: &'static str) -> Self {
        Self {
            limiter: RateLimiter::keyed(rate.quota()),
            name,
        }
    }

    fn check(&self, key: &K) -> Result<(), ApiError> {
        let checked = self.limiter.check_key(key);
        // Keys whose bucket is full again carry no state worth keeping: forget them, so that
        // many one-off clients (addresses) cannot grow the map without bound.
        if self.limiter.len() > MAX_KEYS {
            self.limiter.retain_recent();
        }
        checked.map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::TooManyRequests {
                limit: self.name,
                // Whole seconds, rounded up: a client waiting that long is let through.
                retry_after_seconds: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }
}

/// The process's limiters. Cheap to clone (shared).
#[derive(Clone)]
pub struct RateLimits {
    inner: Arc<Limiters>,
}

struct Limiters {
    per_token: Limit<Uuid>,
    /// One limiter per overridden token (keyed by it alone).
    token_overrides: HashMap<Uuid, Limit<Uuid>>,
    per_tenant: Limit<TenantId>,
    sign_in: Limit<Option<IpAddr>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Limiters of `config`, all keys with full buckets.
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            inner: Arc::new(Limiters {
                per_token: Limit::new(config.per_token, "the token's request limit"),
                token_overrides: config
                    .token_overrides
                    .iter()
                    .map(|(token, rate)| (*token, Limit::new(*rate, "the token's request limit")))
                    .collect(),
                per_tenant: Limit::new(config.per_tenant, "the tenant's request limit"),
                sign_in: Limit::new(config.sign_in, "sign-in attempts from this address"),
            }),
        }
    }

    /// Counts a request of the token `token`.
    ///
    /// # Errors
    /// [`ApiError::TooManyRequests`] past the token's limit.
    pub fn token(&self, token: Uuid) -> Result<(), ApiError> {
        self.inner
            .token_overrides
            .get(&token)
            .unwrap_or(&self.inner.per_token)
            .check(&token)
    }

    /// Counts a request on `tenant`'s routes.
    ///
    /// # Errors
    /// [`ApiError::TooManyRequests`] past the tenant's limit.
    pub fn tenant(&self, tenant: TenantId) -> Result<(), ApiError> {
        self.inner.per_tenant.check(&tenant)
    }

    /// Counts a sign-in attempt from `address` (`None`: a connection whose peer is unknown,
    /// such as a request handed to the router in process; they share one limit).
    ///
    /// # Errors
    /// [`ApiError::TooManyRequests`] past the address's limit.
    pub fn sign_in(&self, address: Option<IpAddr>) -> Result<(), ApiError> {
        self.inner.sign_in.check(&address)
    }
}

/// The peer address of the request's connection, when the server was started with connect
/// info (`runledger serve` is); `None` otherwise. Never a forwarded header, which a client
/// sets as it likes.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|axum::extract::ConnectInfo(address)| address.ip()),
        ))
    }
}
