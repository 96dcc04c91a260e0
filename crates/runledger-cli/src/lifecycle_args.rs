//! The lifecycle settings of a process: the default limits a queued run gets (for `serve` and
//! `queue`) and the sweeper's (for `serve` and `project`), from flags or the environment.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use runledger_api::runs_commands::limits::{LimitDefaults, TypeLimits};
use runledger_core::RunLimits;
use runledger_sweeper::SweeperConfig;

/// The default lifecycle limits (docs/adr/0021): a limit a queue request leaves out is its run
/// type's default, else the server's, else none.
#[derive(Debug, Clone, Args)]
pub(crate) struct LimitArgs {
    /// Seconds a run may stay queued before it is timed out, unless its request or its run
    /// type says otherwise (1–2592000).
    #[arg(long, env = "RUNLEDGER_DEFAULT_START_DEADLINE_SECONDS")]
    default_start_deadline_seconds: Option<i64>,
    /// Seconds a run may run once started (1–2592000).
    #[arg(long, env = "RUNLEDGER_DEFAULT_RUN_DEADLINE_SECONDS")]
    default_run_deadline_seconds: Option<i64>,
    /// Seconds a running run may go without a heartbeat or progress report (1–2592000).
    #[arg(long, env = "RUNLEDGER_DEFAULT_HEARTBEAT_TIMEOUT_SECONDS")]
    default_heartbeat_timeout_seconds: Option<i64>,
    /// One run type's defaults, before the server's, e.g.
    /// `inventory.sync=start:300,run:3600,heartbeat:60`; repeatable (in the environment,
    /// separated by `;`).
    #[arg(long, env = "RUNLEDGER_RUN_TYPE_LIMITS", value_delimiter = ';')]
    run_type_limits: Vec<TypeLimits>,
}

impl LimitArgs {
    /// The defaults these flags give.
    pub(crate) fn defaults(&self) -> anyhow::Result<LimitDefaults> {
        let server = RunLimits::from_seconds(
            self.default_start_deadline_seconds,
            self.default_run_deadline_seconds,
            self.default_heartbeat_timeout_seconds,
        )
        .map_err(|e| anyhow::anyhow!("--default-{}: {}", e.field.replace('_', "-"), e.reason))?;
        let mut by_type = BTreeMap::new();
        for TypeLimits { run_type, limits } in &self.run_type_limits {
            if by_type.insert(run_type.clone(), *limits).is_some() {
                anyhow::bail!("--run-type-limits names {} twice", run_type.as_str());
            }
        }
        Ok(LimitDefaults { server, by_type })
    }
}

/// The sweeper's settings.
#[derive(Debug, Clone, Args)]
pub(crate) struct SweeperArgs {
    /// Seconds between the sweeper's rounds: a passed limit ends its run within about this long
    /// (plus the read model's lag); 0 runs no sweeper in this process.
    #[arg(long, env = "RUNLEDGER_SWEEP_INTERVAL_SECONDS", default_value_t = 1.0)]
    sweep_interval_seconds: f64,
    /// The most runs one round times out; a full round is followed by another at once.
    #[arg(long, env = "RUNLEDGER_SWEEP_BATCH", default_value_t = 200)]
    sweep_batch: u32,
}

impl SweeperArgs {
    /// The sweeper's configuration, with the leaders' `lease`, or `None` when this process runs
    /// none.
    pub(crate) fn config(&self, lease: Duration) -> anyhow::Result<Option<SweeperConfig>> {
        if self.sweep_interval_seconds == 0.0 {
            return Ok(None);
        }
        let interval = Duration::try_from_secs_f64(self.sweep_interval_seconds)
            .map_err(|_| anyhow::anyhow!("--sweep-interval-seconds must be a positive number"))?;
        anyhow::ensure!(self.sweep_batch > 0, "--sweep-batch must be at least 1");
        Ok(Some(SweeperConfig {
            interval,
            batch: self.sweep_batch,
            lease,
            ..SweeperConfig::default()
        }))
    }
}
