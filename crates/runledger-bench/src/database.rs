//! The benches' own databases: created fresh and migrated on the ledger's server, dropped at the
//! end, so a bench never touches the ledger's data; or a seeded log (`runledger-bench seed`)
//! that a bench measures over and leaves in place for the next one.

use anyhow::Context;
use clap::Args;
use runledger_cli::database::Database;
use runledger_store::MIGRATOR;
use sqlx::{ConnectOptions, PgConnection, PgPool};

/// Connections of a bench database's pool: more than any bench's concurrent tasks.
const POOL_CONNECTIONS: u32 = 40;

/// Where a bench runs: by default a fresh database of its own, generated and dropped by the
/// bench; with `--seeded NAME`, the log `runledger-bench seed` left in database `NAME`, kept.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct SeededArgs {
    /// Measure over the log seeded into this database by `runledger-bench seed` instead of
    /// generating one; the database is kept (the bench's own writes stay in it).
    #[arg(long, value_name = "NAME")]
    pub(crate) seeded: Option<String>,
}

/// The database a bench measures in, and whether it is the bench's own (dropped at the end).
pub(crate) struct BenchDatabase {
    pub(crate) pool: PgPool,
    name: String,
    seeded: bool,
}

impl BenchDatabase {
    /// The seeded database of `args`, or else a fresh one called `own`.
    pub(crate) async fn open(
        database: &Database,
        args: &SeededArgs,
        own: &str,
    ) -> anyhow::Result<Self> {
        let connections = POOL_CONNECTIONS;
        let Some(seeded) = &args.seeded else {
            return Ok(Self {
                pool: fresh_database_with_pool(database, own, connections).await?,
                name: own.to_owned(),
                seeded: false,
            });
        };
        let name = checked_name(seeded)?;
        let pool = database
            .pool(database.options().clone().database(name), connections)
            .await
            .with_context(|| {
                format!("opening the seeded database {name} (runledger-bench seed)")
            })?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            name: name.to_owned(),
            seeded: true,
        })
    }

    /// Whether the bench measures over a seeded log (and must not generate one).
    pub(crate) fn is_seeded(&self) -> bool {
        self.seeded
    }

    /// The database's name on the server.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Closes the pool; drops the database if it was the bench's own.
    pub(crate) async fn close(self, database: &Database) -> anyhow::Result<()> {
        self.pool.close().await;
        if self.seeded {
            return Ok(());
        }
        drop_database(database, &self.name).await
    }
}

/// `name` if it is a plain lower-case SQL identifier (it is spliced into `CREATE DATABASE`).
pub(crate) fn checked_name(name: &str) -> anyhow::Result<&str> {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63;
    anyhow::ensure!(
        plain,
        "database name {name:?}: use lower-case letters, digits and _ (at most 63)"
    );
    Ok(name)
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
    create_database(database, name, connections).await
}

/// The migrated database `name`, created if it does not exist (a seeded log grows in place).
pub(crate) async fn kept_database(
    database: &Database,
    name: &str,
    connections: u32,
) -> anyhow::Result<PgPool> {
    database.migrated_pool().await?.close().await;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut server_connection(database).await?)
            .await?;
    if !exists {
        return create_database(database, name, connections).await;
    }
    let pool = database
        .pool(database.options().clone().database(name), connections)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// A pool on database `name` for seeding a log: set-up, not a measurement, so its commits do
/// not wait for the disk (`synchronous_commit = off`); everything else is the store's path.
pub(crate) async fn seeding_pool(
    database: &Database,
    name: &str,
    connections: u32,
) -> anyhow::Result<PgPool> {
    let options = database.options().clone().database(name);
    database
        .pool(
            options.options([("synchronous_commit", "off")]),
            connections,
        )
        .await
}

/// Creates database `name` and migrates it.
async fn create_database(
    database: &Database,
    name: &str,
    connections: u32,
) -> anyhow::Result<PgPool> {
    sqlx::raw_sql(&format!("CREATE DATABASE {}", checked_name(name)?))
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
    sqlx::raw_sql(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        checked_name(name)?
    ))
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
