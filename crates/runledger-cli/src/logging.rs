//! Where the binaries' logs go: stderr, filtered by `RUNLEDGER_LOG` (default `info,sqlx=warn`).

use tracing_subscriber::EnvFilter;

/// Installs the process's log subscriber; call it once, first thing in `main`.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("RUNLEDGER_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}
