//! Following the primary among a multi-host `DATABASE_URL`'s servers: a pool is pointed at the
//! first server that fits `target_session_attrs`, and a watcher re-points it when that server
//! goes away or stops accepting writes (a promotion elsewhere), without a restart
//! (docs/adr/0028).
//!
//! Everything the process connects goes through the pool's connect options (the group writer
//! detaches a pool connection, the live listener connects with the pool's options, leases and
//! anchoring use the pool), so re-pointing the pool moves every one of them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use super::hosts::{ServerList, TargetSession};

/// How long a server may take to accept a connection and answer whether it takes writes.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the watcher asks the pool's server whether it still takes writes.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);
/// How often the watcher looks through the list again while no server fits (mid-promotion).
const SEARCH_INTERVAL: Duration = Duration::from_millis(100);

/// `options` (a pool's: its user, database, settings) pointed at `server`'s address.
fn at(options: &PgConnectOptions, server: &PgConnectOptions) -> PgConnectOptions {
    let moved = options.clone().port(server.get_port());
    // The list is all sockets or all TCP hosts (hosts.rs), so the kind never changes.
    match server.get_socket() {
        Some(socket) => moved.socket(socket),
        None => moved.host(server.get_host()),
    }
}

/// Whether the server of `connection` fits `target`.
async fn fits(connection: &mut PgConnection, target: TargetSession) -> Result<bool, sqlx::Error> {
    if target == TargetSession::Any {
        return connection.ping().await.map(|()| true);
    }
    // libpq's read-write test: not a standby, and not read-only by default.
    sqlx::query_scalar(
        "SELECT NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = 'off'",
    )
    .fetch_one(connection)
    .await
}

/// A connection to `options`' server, if it answers and fits `target` within [`PROBE_TIMEOUT`].
async fn probe(options: &PgConnectOptions, target: TargetSession) -> Option<PgConnection> {
    let attempt = async {
        let mut connection = options.connect().await?;
        Ok::<_, sqlx::Error>(fits(&mut connection, target).await?.then_some(connection))
    };
    match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => {
            tracing::debug!(%error, server = %address(options), "a DATABASE_URL server does not answer");
            None
        }
        Err(_) => None,
    }
}

/// The first server of `list` (in its order) that fits, as `options` pointed at it, with a
/// connection to it.
async fn find(
    list: &ServerList,
    options: &PgConnectOptions,
) -> Option<(PgConnectOptions, PgConnection)> {
    for server in &list.servers {
        let candidate = at(options, server);
        if let Some(connection) = probe(&candidate, list.target).await {
            return Some((candidate, connection));
        }
    }
    None
}

/// A server's address for people and logs (never its password).
pub(super) fn address(options: &PgConnectOptions) -> String {
    match options.get_socket() {
        Some(socket) => format!("{}:{}", socket.display(), options.get_port()),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    }
}

/// A pool on the server of `list` that fits, re-pointed by a watcher task when another one
/// does (until the pool is closed).
///
/// # Errors
/// When no server of the list fits now.
pub(super) async fn following_pool(
    list: ServerList,
    options: PgConnectOptions,
    pool_options: PgPoolOptions,
) -> anyhow::Result<PgPool> {
    let (current, watch) = find(&list, &options).await.ok_or_else(|| {
        anyhow::anyhow!(
            "no server of DATABASE_URL ({}) {}",
            list.servers
                .iter()
                .map(address)
                .collect::<Vec<_>>()
                .join(", "),
            match list.target {
                TargetSession::Any => "answers",
                TargetSession::ReadWrite => "answers and accepts writes (is a primary)",
            }
        )
    })?;
    tracing::info!(server = %address(&current), "DATABASE_URL's server in use");
    let moved_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let pool = pool_options
        .before_acquire(discard_older_than(Arc::clone(&moved_at)))
        .connect_with(current.clone())
        .await?;
    tokio::spawn(watch_primary(pool.clone(), list, current, watch, moved_at));
    Ok(pool)
}

type BeforeAcquire = dyn for<'c> Fn(
        &'c mut PgConnection,
        PoolConnectionMetadata,
    ) -> BoxFuture<'c, Result<bool, sqlx::Error>>
    + Send
    + Sync;

/// A pool's `before_acquire` that closes a connection opened before the pool was last
/// re-pointed: it may be on a server that still answers but no longer takes writes.
fn discard_older_than(moved_at: Arc<Mutex<Option<Instant>>>) -> Box<BeforeAcquire> {
    Box::new(move |_, metadata| {
        let moved = *moved_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let keep = moved.is_none_or(|moved| metadata.age < moved.elapsed());
        Box::pin(async move { Ok(keep) })
    })
}

/// Asks the pool's server every [`WATCH_INTERVAL`] whether it still fits, on a connection of
/// its own; when it does not (gone, or in recovery), looks through the list until a server fits
/// and re-points the pool there.
async fn watch_primary(
    pool: PgPool,
    list: ServerList,
    mut current: PgConnectOptions,
    mut watch: PgConnection,
    moved_at: Arc<Mutex<Option<Instant>>>,
) {
    loop {
        tokio::time::sleep(WATCH_INTERVAL).await;
        if pool.is_closed() {
            return;
        }
        let still = tokio::time::timeout(PROBE_TIMEOUT, fits(&mut watch, list.target)).await;
        if matches!(still, Ok(Ok(true))) {
            continue;
        }
        tracing::warn!(server = %address(&current), "DATABASE_URL's server in use no longer answers or accepts writes: looking for another");
        let lost = Instant::now();
        let (found, connection) = loop {
            if pool.is_closed() {
                return;
            }
            if let Some(found) = find(&list, &pool.connect_options()).await {
                break found;
            }
            tokio::time::sleep(SEARCH_INTERVAL).await;
        };
        // Even on the same server (restarted), the pool's older connections are gone.
        pool.set_connect_options(found.clone());
        *moved_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
        tracing::warn!(
            from = %address(&current),
            to = %address(&found),
            searched_ms = lost.elapsed().as_millis() as u64,
            "DATABASE_URL's server in use changed"
        );
        current = found;
        watch = connection;
    }
}

#[cfg(test)]
mod tests;
