//! The append bench's baselines, in raw SQL: `INSERT`s into a plain table with the columns of
//! `events`, and Message DB's `write_message` when it is installed. The one place of the bench
//! crate that writes SQL of its own against tables the store does not own.
//!
//! Each baseline writer holds one pooled connection for the whole measurement, so it never
//! acquires (and so never pings) a connection, and sends each statement prepared (sqlx
//! prepares a statement on a connection's first use and reuses it): the driver in its best
//! configuration.

use runledger_cli::database::Database;
use runledger_store::EventMetadata;
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use super::harness::Appender;
use crate::log::progressed;

/// A plain table with the columns of `events`: no triggers, no unique keys but the position.
const CREATE_RAW_TABLE: &str = "CREATE TABLE raw_events (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id uuid NOT NULL, tenant_id bigint NOT NULL, run_id uuid NOT NULL, version bigint NOT NULL,
    event_type text NOT NULL, schema_version integer NOT NULL, payload jsonb NOT NULL,
    metadata jsonb NOT NULL, recorded_at timestamptz NOT NULL, prev_hash bytea NOT NULL,
    hash bytea NOT NULL)";

/// One row per statement, the plainest insert.
const RAW_INSERT_ONE: &str = "INSERT INTO raw_events (event_id, tenant_id, run_id, version,
        event_type, schema_version, payload, metadata, recorded_at, prev_hash, hash)
    VALUES ($1, $2, $3, $4, 'Progressed', 1, $5, $6, now(), $7, $8)";

/// Many rows in one statement (and so one transaction), as the store's append inserts a batch.
const RAW_INSERT_MANY: &str = "INSERT INTO raw_events (event_id, tenant_id, run_id, version,
        event_type, schema_version, payload, metadata, recorded_at, prev_hash, hash)
    SELECT e.event_id, $1, $2, e.version, 'Progressed', 1, e.payload, e.metadata, now(),
           e.prev_hash, e.hash
    FROM unnest($3::uuid[], $4::bigint[], $5::jsonb[], $6::jsonb[], $7::bytea[], $8::bytea[])
         AS e(event_id, version, payload, metadata, prev_hash, hash)";

/// Creates the raw baseline's table in the bench database.
///
/// # Errors
/// When the database fails (or the table exists).
pub async fn create_raw_table(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::raw_sql(CREATE_RAW_TABLE).execute(pool).await?;
    Ok(())
}

/// A raw writer: `batch` rows per autocommitted `INSERT`, to a run of its own.
pub(super) struct RawAppender {
    connection: PoolConnection<Postgres>,
    run: Uuid,
    version: i64,
    batch: usize,
}

impl RawAppender {
    /// A writer on a connection of its own from `pool`.
    pub(super) async fn ready(pool: &PgPool, batch: usize) -> anyhow::Result<Self> {
        Ok(Self {
            connection: pool.acquire().await?,
            run: Uuid::new_v4(),
            version: 0,
            batch,
        })
    }
}

impl Appender for RawAppender {
    async fn append(&mut self) -> anyhow::Result<u64> {
        let payload = progressed().event.payload();
        let metadata = EventMetadata::actor("bench").to_json();
        let (prev_hash, hash) = (vec![0u8; 32], vec![1u8; 32]);
        if self.batch == 1 {
            sqlx::query(RAW_INSERT_ONE)
                .bind(Uuid::now_v7())
                .bind(1_i64)
                .bind(self.run)
                .bind(self.version + 1)
                .bind(payload)
                .bind(metadata)
                .bind(prev_hash)
                .bind(hash)
                .execute(&mut *self.connection)
                .await?;
        } else {
            let ids: Vec<Uuid> = (0..self.batch).map(|_| Uuid::now_v7()).collect();
            let versions: Vec<i64> = (1..=self.batch as i64).map(|i| self.version + i).collect();
            sqlx::query(RAW_INSERT_MANY)
                .bind(1_i64)
                .bind(self.run)
                .bind(&ids)
                .bind(&versions)
                .bind(vec![payload; self.batch])
                .bind(vec![metadata; self.batch])
                .bind(vec![prev_hash; self.batch])
                .bind(vec![hash; self.batch])
                .execute(&mut *self.connection)
                .await?;
        }
        self.version += self.batch as i64;
        Ok(self.batch as u64)
    }
}

/// A pool on the database `name` of the ledger's server if Message DB is installed in it (its
/// `message_store.write_message`); `None` when the database or the function is missing.
///
/// # Errors
/// When the server cannot be reached at all.
pub async fn message_db(database: &Database, name: &str) -> anyhow::Result<Option<PgPool>> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&database.migrated_pool().await?)
            .await?;
    if !exists {
        return Ok(None);
    }
    // Message DB's functions call each other unqualified: its own role runs with its schema
    // on the search path, and so must we.
    let options = database
        .options()
        .clone()
        .database(name)
        .options([("search_path", "message_store,public")]);
    let pool = database.pool(options, 20).await?;
    let installed: bool = sqlx::query_scalar(
        "SELECT to_regprocedure('message_store.write_message(varchar, varchar, varchar, jsonb,
                                                             jsonb, bigint)') IS NOT NULL",
    )
    .fetch_one(&pool)
    .await?;
    Ok(installed.then_some(pool))
}

/// A Message DB writer: one `write_message` per append, with its expected version, to a stream
/// of its own in a category of its own (Message DB serializes the writers of one category on an
/// advisory lock held to commit; a category per writer spares it that, its best case).
pub(super) struct MessageDbAppender {
    connection: PoolConnection<Postgres>,
    stream: String,
    /// The stream's version: -1 while it is empty.
    version: i64,
}

impl MessageDbAppender {
    /// Writer `index` on a connection of its own from `pool`.
    pub(super) async fn ready(pool: &PgPool, index: usize) -> anyhow::Result<Self> {
        Ok(Self {
            connection: pool.acquire().await?,
            stream: format!("benchWriter{index}-{}", Uuid::new_v4().simple()),
            version: -1,
        })
    }
}

impl Appender for MessageDbAppender {
    async fn append(&mut self) -> anyhow::Result<u64> {
        let data: Value = progressed().event.payload();
        let position: i64 =
            sqlx::query_scalar("SELECT message_store.write_message($1, $2, $3, $4, $5, $6)")
                .bind(Uuid::now_v7().to_string())
                .bind(&self.stream)
                .bind("Progressed")
                .bind(data)
                .bind(EventMetadata::actor("bench").to_json())
                .bind(self.version)
                .fetch_one(&mut *self.connection)
                .await?;
        self.version = position;
        Ok(1)
    }
}
