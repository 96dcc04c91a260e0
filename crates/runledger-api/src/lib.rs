//! The HTTP API of runledger: tenant-scoped run commands through the domain and the store, and
//! queries over the projections.
//!
//! [`app`] builds the whole router; the binary and the tests call the same function.
//! Queries read projections through the read models' own typed queries (never fold events at
//! request time, except the audit routes that replay on purpose); commands go through
//! `runledger_store::CommandHandler`, stamped with the time of [`AppState::clock`].
//!
//! # Layout
//! - [`auth`]: bearer tokens, roles, tenant checks ([`auth::Authorized`]).
//! - [`caller_cache`]: token lookups remembered for a few seconds (docs/adr/0010).
//! - [`tokens`]: the token API and the tokens' storage: create, list, revoke; tenant scopes.
//! - [`error`]: `ApiError` and the problem+json middleware.
//! - [`extract`]: extractors whose rejections are problems.
//! - [`rate_limit`]: requests per token and per tenant, sign-in attempts per client address.
//! - [`idempotency`]: the `Idempotency-Key` header.
//! - [`run_json`]: the JSON of a run.
//! - [`openapi`]: every documented route listed once: the router and the OpenAPI document.
//! - [`operations`]: health, readiness, metrics, and serving the OpenAPI document.
//! - [`metrics`]: Prometheus metrics.
//! - [`runs_commands`]: queue, start, progress, complete, dispatch-failed, cancel; heartbeats;
//!   the default limits.
//! - [`runs_queries`]: list, get, count, over the OperationRun read model's typed queries.
//! - [`runs_watch`]: `?watch=true` on a run and on the list: server-sent changes.
//! - [`page`]: opaque keyset page tokens (the one owner of their encoding).
//! - [`notifications`]: the signed-in user's notices.
//! - [`projections`]: projection status and rebuilds.
//! - [`replicas`]: read replicas: their pools, probes (lag, in use) and the choice of one.
//! - [`live`]: the process's live hub fanned out to SSE streams (no connection per client).
//! - [`audit`]: a run's events, its state as of a version or time, the tenant's log (live: SSE).
//! - [`evidence`]: a run's chain verified, the tenant's log exported as NDJSON.
//! - [`ui`]: the monitoring pages under `/ui`, over the same queries.

pub mod audit;
pub mod auth;
pub mod caller_cache;
pub mod error;
pub mod evidence;
pub mod extract;
pub mod idempotency;
pub mod live;
pub mod metrics;
pub mod notifications;
pub mod openapi;
pub mod operations;
pub mod page;
pub mod projections;
pub mod rate_limit;
pub mod read_your_writes;
pub mod replicas;
pub mod run_json;
pub mod runs_commands;
pub mod runs_queries;
pub mod runs_watch;
pub mod tokens;
pub mod ui;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use runledger_core::{Clock, RunId, TenantId};
use runledger_projections::LiveLog;
use runledger_projections::operation_runs::ChangedRuns;
use runledger_store::{CommandHandler, EventReader, EventWriter, WriterConfig};
use sqlx::PgPool;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::caller_cache::CallerCache;

/// Settings of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where people open run pages, e.g. `http://127.0.0.1:8080/ui`; `view_url`s start with it.
    /// This process's own setting: links are built with it when they are read (the notices'
    /// too), never stored, so processes with different public URLs share every read model
    /// (docs/adr/0025).
    pub view_base_url: String,
    /// The longest a query waits for `min_position` (read-your-writes).
    pub max_read_wait: Duration,
    /// The largest accepted request body.
    pub max_body_bytes: usize,
    /// How long a token's lookup is reused: the longest a revoked token may still be accepted
    /// (docs/adr/0010). Zero looks the token up on every request.
    pub token_staleness: Duration,
    /// The longest the process's live hub goes without looking at the log and the projections'
    /// positions when no notification came (docs/adr/0017).
    pub live_poll: Duration,
    /// The lifecycle limits a queued run gets where its request gives none (docs/adr/0021).
    pub limits: runs_commands::limits::LimitDefaults,
    /// Requests per token and per tenant, sign-in attempts per client address.
    pub rate_limits: rate_limit::RateLimitConfig,
    /// How the command path's writer groups appends (its lanes, docs/adr/0016).
    pub writer: WriterConfig,
}

impl ApiConfig {
    /// A configuration for a server reachable at `public_url` (no trailing slash needed).
    pub fn new(public_url: &str) -> Self {
        Self {
            view_base_url: format!("{}/ui", public_url.trim_end_matches('/')),
            max_read_wait: Duration::from_secs(5),
            max_body_bytes: 64 * 1024,
            token_staleness: Duration::from_secs(5),
            live_poll: Duration::from_secs(1),
            limits: runs_commands::limits::LimitDefaults::default(),
            rate_limits: rate_limit::RateLimitConfig::default(),
            writer: WriterConfig::default(),
        }
    }

    /// Whether the pages' cookies may only travel over HTTPS (when they are served over it).
    pub fn secure_cookies(&self) -> bool {
        self.view_base_url.starts_with("https://")
    }

    /// The page of a run.
    pub fn view_url(&self, tenant: TenantId, run: RunId) -> String {
        runledger_core::view_url(&self.view_base_url, tenant, run)
    }

    /// The "View run" link of a notice of `tenant`'s feed (the tenant the feed was read for).
    pub fn notice_view_url(
        &self,
        tenant: TenantId,
        notice: &runledger_projections::notifications::NoticeRow,
    ) -> String {
        self.view_url(tenant, RunId::from_uuid(notice.run_id))
    }
}

/// What every handler can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database (projections, tokens, idempotency keys): the primary.
    pub pool: PgPool,
    /// The read replicas the OperationRun read model's queries and pages read (none unless
    /// configured: then they read `pool`).
    pub replicas: replicas::Replicas,
    /// The event log, read side.
    pub reader: EventReader,
    /// The command path.
    pub commands: CommandHandler,
    /// Recently looked-up tokens.
    pub callers: CallerCache,
    /// Settings.
    pub config: ApiConfig,
    /// The process's rate limiters (of `config.rate_limits`).
    pub rate_limits: rate_limit::RateLimits,
    /// The process's one listener and log follower, and the projections' published positions:
    /// what every live client (SSE streams, read-your-writes waits) subscribes to.
    pub live: LiveLog,
    /// The process's one read of each changed run, shared by every watch of a run or a list.
    pub changed_runs: ChangedRuns,
    /// Where the time of commands (and of the pages' "3 minutes ago") comes from: the binary's
    /// system clock, or a test's manual one. The API reads no other clock for them.
    pub clock: Arc<dyn Clock>,
}

impl AppState {
    /// The state of an API over the ledger database `pool`, with its reader and its command
    /// path, reading time from `clock`; starts the process's live hub.
    pub fn new(pool: PgPool, config: ApiConfig, clock: Arc<dyn Clock>) -> Self {
        let reader = EventReader::new(pool.clone());
        Self {
            live: LiveLog::start(&pool, config.live_poll),
            changed_runs: ChangedRuns::new(pool.clone()),
            commands: CommandHandler::new(
                reader.clone(),
                EventWriter::with_config(pool.clone(), config.writer.clone()),
            ),
            reader,
            pool,
            replicas: replicas::Replicas::none(),
            callers: CallerCache::new(config.token_staleness),
            rate_limits: rate_limit::RateLimits::new(&config.rate_limits),
            config,
            clock,
        }
    }

    /// The same state, its queries reading from `replicas` (docs/adr/0027).
    #[must_use]
    pub fn with_replicas(self, replicas: replicas::Replicas) -> Self {
        Self { replicas, ..self }
    }
}

/// The whole API: the documented routes (listed once, in [`openapi::routes`], which also make
/// the OpenAPI document) and the pages.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    // Metrics recorded before a recorder is installed are dropped: install it before the first
    // request rather than at the first scrape.
    let _ = metrics::handle();
    let (api, document) = openapi::router_and_document();
    api.route_layer(axum::Extension(Arc::new(document)))
        .nest("/ui", ui::router())
        // Unknown paths and methods answer problems too (axum's defaults have empty bodies).
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::no_method)
        .layer(axum::middleware::from_fn(error::render_problems))
        .route_layer(axum::middleware::from_fn(metrics::track_requests))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}
