//! `runledger serve`: the API, the projectors and the sweeper in one process, with graceful
//! shutdown.
//!
//! One cancellation token fans out from SIGINT/SIGTERM to every task: the server stops
//! accepting and finishes in-flight requests, projectors finish or roll back their batch, the
//! sweeper finishes its round, the anchoring task stops between anchors, and only then does
//! `main` stop the embedded PostgreSQL.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use clap::builder::TypedValueParser;
use runledger_api::auth::Role;
use runledger_api::tokens::{NewToken, create_token, revoke_token};
use runledger_api::{ApiConfig, AppState};
use runledger_audit::{AnchorPolicy, run_anchoring};
use runledger_core::{Clock, TenantId};
use runledger_projections::{ProjectionsConfig, run_projectors};
use runledger_store::WriterConfig;
use runledger_sweeper::Sweeper;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::database::Database;
use crate::lifecycle_args::{LimitArgs, SweeperArgs};
use crate::projections::ProjectionConfigArgs;
use crate::rate_limit_args::RateLimitArgs;
use crate::replica_args::ReplicaArgs;
use runledger_cli::clock::SystemClock;
use runledger_cli::local_server::LocalServer;

/// How long a stop waits for the responses in flight before it closes what is still open (live
/// streams, which never end by themselves).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// `runledger serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "RUNLEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The URL people reach this server at (for `view_url` links, built when they are read:
    /// it shapes nothing stored); default `http://<listen>`.
    #[arg(long, env = "RUNLEDGER_PUBLIC_URL")]
    public_url: Option<String>,
    /// Record an anchor (a digest of the log, docs/auditing.md) after this many new events; 0: never.
    #[arg(long, env = "RUNLEDGER_ANCHOR_EVERY_EVENTS", default_value_t = 10_000)]
    anchor_every_events: u64,
    /// Record an anchor this many seconds after the last one if any event came since; 0: never.
    #[arg(long, env = "RUNLEDGER_ANCHOR_EVERY_SECONDS", default_value_t = 300)]
    anchor_every_seconds: u64,
    /// Seconds a token's lookup is reused: the longest a revoked token may still be accepted
    /// (docs/adr/0010); 0: look the token up on every request.
    #[arg(long, env = "RUNLEDGER_TOKEN_STALENESS_SECONDS", default_value_t = 5)]
    token_staleness_seconds: u64,
    /// Groups of appends that may commit at once, each on a connection of its own (a run's
    /// appends always share one); more than 1 pays only where the database has idle cores
    /// (docs/adr/0016, docs/performance.md).
    #[arg(long, env = "RUNLEDGER_WRITER_LANES", default_value_t = WriterConfig::default().lanes,
          value_parser = clap::value_parser!(u16).range(1..=64).map(usize::from))]
    writer_lanes: usize,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    sweeper: SweeperArgs,
    #[command(flatten)]
    projectors: ProjectionConfigArgs,
    #[command(flatten)]
    rate_limits: RateLimitArgs,
    #[command(flatten)]
    replicas: ReplicaArgs,
}

pub(crate) async fn serve(database: &Database, args: ServeArgs) -> anyhow::Result<()> {
    let pool = database.application_pool().await?;
    let public_url = args
        .public_url
        .unwrap_or_else(|| format!("http://{}", args.listen));
    let config = ApiConfig {
        token_staleness: Duration::from_secs(args.token_staleness_seconds),
        limits: args.limits.defaults()?,
        rate_limits: args.rate_limits.config()?,
        writer: WriterConfig {
            lanes: args.writer_lanes,
            ..WriterConfig::default()
        },
        ..ApiConfig::new(&public_url)
    };
    let sweeper = args.sweeper.config(args.projectors.lease()?)?;
    let projections = args.projectors.config()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Only the queries read replicas: every task below is given the primary's pool.
    let state = AppState::new(pool.clone(), config, Arc::clone(&clock))
        .with_replicas(args.replicas.replicas(&pool)?);
    // One listener for the whole process: the projectors wake on the API's hub and publish to
    // the positions its live clients wait on.
    let projections = ProjectionsConfig {
        live: Some(state.live.clone()),
        ..projections
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    if runledger_api::tokens::live_tokens(&pool).await? == 0 {
        announce_first_token(database, &pool).await?;
    }
    let record = record_for_the_cli(database, &pool, &listener).await?;
    println!(
        "runledger serves {public_url}: monitoring pages at {public_url}/ui (sign in with a token), OpenAPI at {public_url}/openapi.json; Ctrl-C stops it"
    );

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(wait_for_signal(shutdown.clone()));
    let projector_shutdown = shutdown.clone();
    let projector_pool = pool.clone();
    tasks.spawn(async move {
        let stopped = projector_shutdown.clone().cancelled_owned();
        if let Err(error) = run_projectors(projector_pool, projections, stopped).await {
            tracing::error!(%error, "projectors stopped with an error; shutting down");
            projector_shutdown.cancel();
        }
    });
    if let Some(config) = sweeper {
        // The API's command path: the sweeper's time-outs are group-committed with its appends.
        let mut sweeper = Sweeper::new(pool.clone(), state.commands.clone(), clock, config);
        let stopped = shutdown.clone().cancelled_owned();
        tasks.spawn(async move { sweeper.run(stopped).await });
    }
    let anchoring = AnchorPolicy {
        every_events: args.anchor_every_events,
        every: Duration::from_secs(args.anchor_every_seconds),
    };
    tasks.spawn(run_anchoring(
        pool.clone(),
        anchoring,
        shutdown.clone().cancelled_owned(),
    ));
    // With each connection's peer address: the sign-in attempts are limited per client.
    let app = runledger_api::app(state).into_make_service_with_connect_info::<SocketAddr>();
    let server =
        axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let grace_ended = async {
        shutdown.cancelled().await;
        tokio::time::sleep(STOP_GRACE).await;
    };
    let served = tokio::select! {
        served = server.into_future() => served.context("serving HTTP"),
        () = grace_ended => {
            // Live streams never end by themselves; their clients reconnect with
            // `Last-Event-ID` to another server (or this one restarted) and miss nothing.
            tracing::info!(grace = ?STOP_GRACE, "responses still open after the stop's grace period (live streams): closing them");
            Ok(())
        }
    };
    // The server stops on the signal; make sure every other task hears it too, then wait.
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    if let Some((dir, record)) = &record {
        forget_record(&pool, dir, record).await;
    }
    pool.close().await;
    served
}

/// On the embedded database, records this server in its data directory with a token of its own
/// for the local user (`local_server`), so that the other subcommands work beside it. A record
/// left by a `serve` that was killed is replaced, and its token revoked.
async fn record_for_the_cli(
    database: &Database,
    pool: &sqlx::PgPool,
    listener: &tokio::net::TcpListener,
) -> anyhow::Result<Option<(std::path::PathBuf, LocalServer)>> {
    let (Some(dir), Some((database_url, socket))) =
        (database.data_dir(), database.embedded_socket())
    else {
        return Ok(None);
    };
    if let Some((stale, _)) = LocalServer::read(dir) {
        revoke_token(pool, stale.token_id).await?;
    }
    let mut address = listener.local_addr()?;
    if address.ip().is_unspecified() {
        address.set_ip(if address.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let pid = std::process::id();
    let token = NewToken {
        tenant_id: TenantId::new(1)?,
        role: Role::Admin,
        user_id: None,
        name: format!("cli of serve (pid {pid})"),
    };
    let created = create_token(pool, &token).await?;
    let record = LocalServer {
        pid,
        url: format!("http://{address}"),
        database_url,
        socket,
        token_id: created.id,
    };
    record.write(dir, &created.secret)?;
    Ok(Some((dir.to_owned(), record)))
}

/// At stop: the record's token revoked and the record removed.
async fn forget_record(pool: &sqlx::PgPool, dir: &std::path::Path, record: &LocalServer) {
    if let Err(error) = revoke_token(pool, record.token_id).await {
        tracing::warn!(%error, "cannot revoke the command line's token");
    }
    LocalServer::remove(dir);
}

/// With no token yet, a server on the embedded database (which no other process can open while
/// it runs) prints a one-time admin token; a server on `DATABASE_URL` says how to create one.
async fn announce_first_token(database: &Database, pool: &sqlx::PgPool) -> anyhow::Result<()> {
    if database.is_embedded() {
        let token = NewToken {
            tenant_id: TenantId::new(1)?,
            role: Role::Admin,
            user_id: None,
            name: "first-admin".to_owned(),
        };
        let created = create_token(pool, &token).await?;
        println!(
            "first start: an admin token was created (shown only now; revoke it with `runledger token revoke {}`):",
            created.id
        );
        println!("  {}", created.secret);
    } else {
        println!(
            "no API tokens yet: run\n  runledger token create --tenant 1 --role admin --name me"
        );
    }
    Ok(())
}

async fn wait_for_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
        () = shutdown.cancelled() => {}
    }
    shutdown.cancel();
}
