//! The benches' own databases: created fresh and migrated on the ledger's server, dropped at the
//! end, so a bench never touches the ledger's data.

use anyhow::Context;
use runledger_cli::database::Database;
use runledger_store::MIGRATOR;
use sqlx::{ConnectOptions, PgConnection, PgPool};

/// Connections of a bench database's pool: more than any bench's concurrent tasks.
const POOL_CONNECTIONS: u32 = 40;

/// A fresh, migrated database called `name` on the ledger's server, for a bench of its own.
pub(crate) async fn fresh_database(database: &Database, name: &str) -> anyhow::Result<PgPool> {
    fresh_database_with_pool(database, name, POOL_CONNECTIONS).await
}

/// A fresh, migrated database called `name`, whose pool opens at most `connections`.
pub(crate) async fn fresh_database_with_pool(
    database: &Database,
    name: &str,
    connections: u32,
) -> anyhow::Result<PgPool> {
    // The ledger database is where the bench's own database is created and dropped from.
    database.migrated_pool().await?.close().await;
    drop_database(database, name).await?;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut server_connection(database).await?)
        .await?;
    let pool = database
        .pool(database.options().clone().database(name), connections)
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
