//! What the benches share: a database of their own on the ledger's server, the events they
//! append, and the process's peak memory.

use anyhow::Context;
use chrono::Utc;
use runledger_core::{EventId, ProgressDelta, RunEvent, RunProgressed};
use runledger_store::{EventMetadata, MIGRATOR, NewEvent};
use sqlx::{ConnectOptions, PgConnection, PgPool};
use uuid::Uuid;

use crate::database::Database;

/// A fresh, migrated database called `name` on the ledger's server, for a bench of its own.
pub(crate) async fn fresh_database(database: &Database, name: &str) -> anyhow::Result<PgPool> {
    // The ledger database is where the bench's own database is created and dropped from.
    database.migrated_pool().await?.close().await;
    drop_database(database, name).await?;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut server_connection(database).await?)
        .await?;
    let pool = database
        .pool(database.options().clone().database(name), 40)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Drops the bench database `name`, if it exists.
pub(crate) async fn drop_database(database: &Database, name: &str) -> anyhow::Result<()> {
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut server_connection(database).await?)
        .await?;
    Ok(())
}

/// A connection to the ledger database, to create and drop other databases from.
async fn server_connection(database: &Database) -> anyhow::Result<PgConnection> {
    database
        .options()
        .clone()
        .connect()
        .await
        .context("connecting to the server")
}

/// `event` as the benches append it: a fresh time-ordered id, the actor `bench`.
pub(crate) fn bench_event(event: RunEvent) -> NewEvent {
    NewEvent {
        event_id: EventId::from_uuid(Uuid::now_v7()),
        event,
        metadata: EventMetadata::actor("bench"),
    }
}

/// A one-item progress event.
pub(crate) fn progressed() -> NewEvent {
    bench_event(RunEvent::Progressed(RunProgressed {
        delta: ProgressDelta {
            success: 1,
            failed: 0,
            skipped: 0,
        },
        total: None,
        failures: Vec::new(),
        reported_at: Utc::now(),
    }))
}

/// Resets this process's peak RSS to its current RSS, so the next [`peak_rss_kib`] is the peak
/// of what runs in between, not of the whole bench.
pub(crate) fn reset_peak_rss() {
    // Writing 5 to clear_refs resets VmHWM (Linux 4.0 and later); where it cannot, the peak
    // stays the process's, which overstates and never hides a peak.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `VmHWM` of this process, in KiB.
pub(crate) fn peak_rss_kib() -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")
}
