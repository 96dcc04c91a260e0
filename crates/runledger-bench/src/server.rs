//! The real app served in the bench's own process, on a random local port, with tokens for its
//! clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use runledger_api::auth::Role;
use runledger_api::tokens::{NewToken, create_token};
use runledger_api::{ApiConfig, AppState};
use runledger_cli::clock::SystemClock;
use runledger_core::TenantId;
use runledger_projections::{ProjectionsConfig, run_projectors};
use sqlx::PgPool;

/// Whether the served app's projectors run beside it, as in `runledger serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Projectors {
    /// The read models are built by the bench itself; only the API runs.
    Off,
    /// The projectors run in the process and share the API's live hub, as `serve` runs them.
    Live,
}

/// The app served in process; dropping it stops the server and its projectors.
pub(crate) struct Served {
    pub(crate) address: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Serves the real app on a random local port, in this process, until the answer is dropped.
pub(crate) async fn serve(
    pool: &PgPool,
    token_staleness: Duration,
    projectors: Projectors,
) -> anyhow::Result<Served> {
    let mut tasks = Vec::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let config = ApiConfig {
        token_staleness,
        // The bench's clients share one token at full speed: it measures the server, with the
        // limiter's cost in it but never its refusals.
        rate_limits: runledger_api::rate_limit::RateLimitConfig::unreachable(),
        ..ApiConfig::new(&format!("http://{address}"))
    };
    let state = AppState::new(pool.clone(), config.clone(), Arc::new(SystemClock));
    if projectors == Projectors::Live {
        let projections = ProjectionsConfig {
            live: Some(state.live.clone()),
            ..ProjectionsConfig::default()
        };
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(error) = run_projectors(pool, projections, std::future::pending()).await {
                tracing::error!(%error, "the bench server's projectors stopped");
            }
        }));
    }
    let app = runledger_api::app(state);
    tasks.push(tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the bench server stopped");
        }
    }));
    Ok(Served { address, tasks })
}

/// An admin token of `tenant`, for the bench's clients.
pub(crate) async fn admin_token(pool: &PgPool, tenant: TenantId) -> anyhow::Result<String> {
    let token = create_token(
        pool,
        &NewToken {
            tenant_id: tenant,
            role: Role::Admin,
            user_id: None,
            name: "bench".to_owned(),
        },
    )
    .await?;
    Ok(token.secret)
}
