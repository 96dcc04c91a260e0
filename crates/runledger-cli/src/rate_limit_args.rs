//! `serve`'s rate limits (docs/deployment.md, "Rate limits"), from flags or the environment.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use clap::Args;
use runledger_api::rate_limit::{Rate, RateLimitConfig};
use uuid::Uuid;

/// Requests per token and per tenant, sign-in attempts per client address; the defaults are
/// generous enough that no ordinary client meets them.
#[derive(Debug, Clone, Args)]
pub(crate) struct RateLimitArgs {
    /// Requests per second one bearer token may send (its burst too).
    #[arg(long, env = "RUNLEDGER_RATE_LIMIT_PER_TOKEN", default_value_t = NonZeroU32::new(1_000).unwrap_or(NonZeroU32::MIN))]
    rate_limit_per_token: NonZeroU32,
    /// One token's limit instead of --rate-limit-per-token, as `<token id>=<requests per
    /// second>`; repeatable (in the environment, separated by `;`).
    #[arg(long, env = "RUNLEDGER_RATE_LIMIT_TOKEN", value_delimiter = ';', value_parser = token_override)]
    rate_limit_token: Vec<(Uuid, NonZeroU32)>,
    /// Requests per second on one tenant's routes, whatever the token (its burst too).
    #[arg(long, env = "RUNLEDGER_RATE_LIMIT_PER_TENANT", default_value_t = NonZeroU32::new(5_000).unwrap_or(NonZeroU32::MIN))]
    rate_limit_per_tenant: NonZeroU32,
    /// Sign-in attempts per minute on the pages from one client address (its burst too).
    #[arg(long, env = "RUNLEDGER_SIGN_IN_ATTEMPTS_PER_MINUTE", default_value_t = NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN))]
    sign_in_attempts_per_minute: NonZeroU32,
}

impl RateLimitArgs {
    /// The limits these flags give.
    pub(crate) fn config(&self) -> anyhow::Result<RateLimitConfig> {
        let mut token_overrides = BTreeMap::new();
        for (token, requests) in &self.rate_limit_token {
            if token_overrides
                .insert(*token, Rate::per_second(*requests))
                .is_some()
            {
                anyhow::bail!("--rate-limit-token names token {token} twice");
            }
        }
        Ok(RateLimitConfig {
            per_token: Rate::per_second(self.rate_limit_per_token),
            token_overrides,
            per_tenant: Rate::per_second(self.rate_limit_per_tenant),
            sign_in: Rate::per_minute(self.sign_in_attempts_per_minute),
        })
    }
}

/// `<token id>=<requests per second>`.
fn token_override(text: &str) -> Result<(Uuid, NonZeroU32), String> {
    let (token, requests) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not <token id>=<requests per second>"))?;
    let token = token
        .trim()
        .parse()
        .map_err(|_| format!("{token:?} is not a token id (see `runledger token list`)"))?;
    let requests = requests
        .trim()
        .parse()
        .map_err(|_| format!("{requests:?} is not a positive number of requests per second"))?;
    Ok((token, requests))
}
