//! `serve`'s read replicas (docs/deployment.md, "Read replicas"; docs/adr/0027), from flags or
//! the environment.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use runledger_api::replicas::{ReplicaConfig, ReplicaTarget, Replicas};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

/// Streaming standbys of the primary that the run queries and pages read from.
#[derive(Debug, Clone, Args)]
pub(crate) struct ReplicaArgs {
    /// A read replica's PostgreSQL URL (a streaming standby of DATABASE_URL's server, logged in
    /// as the same role); repeatable (in the environment, separated by `,`). Its password is
    /// never logged.
    #[arg(
        long = "replica-url",
        env = "RUNLEDGER_REPLICA_URLS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    replica_urls: Vec<String>,
    /// Seconds of replay lag past which a replica is skipped (its queries read another replica
    /// or the primary).
    #[arg(
        long,
        env = "RUNLEDGER_REPLICA_MAX_LAG_SECONDS",
        default_value_t = 10.0
    )]
    replica_max_lag_seconds: f64,
    /// Seconds a query with `min_position` waits for a replica to replay it before it reads the
    /// primary (read-your-writes).
    #[arg(long, env = "RUNLEDGER_REPLICA_WAIT_SECONDS", default_value_t = 5.0)]
    replica_wait_seconds: f64,
}

impl ReplicaArgs {
    /// The replicas these flags name, probed against `primary`; none without `--replica-url`.
    pub(crate) fn replicas(&self, primary: &PgPool) -> anyhow::Result<Replicas> {
        if self.replica_urls.is_empty() {
            return Ok(Replicas::none());
        }
        let targets = self
            .replica_urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                // The URL may hold a password: the error names its place, never its text.
                url.trim()
                    .parse::<PgConnectOptions>()
                    .map(ReplicaTarget::new)
                    .ok()
                    .with_context(|| {
                        format!("replica URL number {} is not a valid PostgreSQL URL", i + 1)
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let config = ReplicaConfig {
            max_lag: seconds("--replica-max-lag-seconds", self.replica_max_lag_seconds)?,
            wait: seconds("--replica-wait-seconds", self.replica_wait_seconds)?,
            ..ReplicaConfig::default()
        };
        for target in &targets {
            tracing::info!(replica = %target.name, "reading queries from a replica");
        }
        Ok(Replicas::start(primary, targets, config))
    }
}

fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .with_context(|| format!("{flag} must be a number of seconds, 0 or more"))
}
