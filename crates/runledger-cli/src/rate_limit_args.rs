//! `serve`'s rate limits (docs/deployment.md, "Rate limits"), from flags or the environment.

use std::num::NonZeroU32;

use clap::Args;
use runledger_api::rate_limit::{Rate, RateLimitConfig};

/// Requests per token and per tenant, sign-in attempts per client address; the defaults are
/// generous enough that no ordinary client meets them.
#[derive(Debug, Clone, Args)]
pub(crate) struct RateLimitArgs {
    /// Requests per second one bearer token may send (its burst too).
    #[arg(long, env = "RUNLEDGER_RATE_LIMIT_PER_TOKEN", default_value_t = NonZeroU32::new(1_000).unwrap_or(NonZeroU32::MIN))]
    rate_limit_per_token: NonZeroU32,
    /// Requests per second on one tenant's routes, whatever the token (its burst too).
    #[arg(long, env = "RUNLEDGER_RATE_LIMIT_PER_TENANT", default_value_t = NonZeroU32::new(5_000).unwrap_or(NonZeroU32::MIN))]
    rate_limit_per_tenant: NonZeroU32,
    /// Sign-in attempts per minute on the pages from one client address (its burst too).
    #[arg(long, env = "RUNLEDGER_SIGN_IN_ATTEMPTS_PER_MINUTE", default_value_t = NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN))]
    sign_in_attempts_per_minute: NonZeroU32,
}

impl RateLimitArgs {
    /// The limits these flags give.
    pub(crate) fn config(&self) -> RateLimitConfig {
        RateLimitConfig {
            per_token: Rate::per_second(self.rate_limit_per_token),
            per_tenant: Rate::per_second(self.rate_limit_per_tenant),
            sign_in: Rate::per_minute(self.sign_in_attempts_per_minute),
        }
    }
}
