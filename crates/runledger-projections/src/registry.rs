//! The projection registry (`projection_versions`, `projection_poison`): creating versions and
//! their schemas, pointing the public views at the active one, switching, cancelling, skipping
//! poison events and dropping the schemas of retired versions.
//!
//! Every change of a projection's set of versions takes the transaction-scoped advisory lock
//! `registry_key`, so processes running different code (a rolling deploy) and operators'
//! commands never interleave them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use runledger_store::LogCursor;
use sqlx::{Executor, PgConnection, PgPool};

use crate::error::{ProjectionError, Result};
use crate::projection::{Definition, registry_key};

/// The lifecycle of a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionStatus {
    /// Being built side by side; not read.
    Building,
    /// The one the public views show.
    Active,
    /// Replaced by a newer version; its schema is dropped after a grace period.
    Retired,
    /// A rebuild given up; its schema is dropped after a grace period.
    Cancelled,
}

impl VersionStatus {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Building => "building",
            VersionStatus::Active => "active",
            VersionStatus::Retired => "retired",
            VersionStatus::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "building" => VersionStatus::Building,
            "active" => VersionStatus::Active,
            "retired" => VersionStatus::Retired,
            // The table's check constraint admits nothing else.
            _ => VersionStatus::Cancelled,
        }
    }
}

/// One version of a projection, as the registry stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionVersion {
    /// The registry id.
    pub id: i64,
    /// The projection.
    pub projection: String,
    /// SHA-256 (hex) of the DDL and code version.
    pub fingerprint: String,
    /// 1, or more for operator rebuilds of the same fingerprint.
    pub generation: i32,
    /// The Postgres schema of its tables.
    pub schema_name: String,
    /// Building, active, retired or cancelled.
    pub status: VersionStatus,
    /// The last event applied or skipped.
    pub checkpoint: LogCursor,
    /// How many events it has applied.
    pub events_applied: i64,
    /// How many poison events an operator skipped.
    pub events_skipped: i64,
    /// The position of the poison event that halts it, if one does.
    pub halted_position: Option<i64>,
    /// The error of that event, or the last one recorded.
    pub last_error: Option<String>,
    /// When it was created (a rebuild's start).
    pub created_at: DateTime<Utc>,
    /// When it became active.
    pub activated_at: Option<DateTime<Utc>>,
    /// When it was retired or cancelled.
    pub retired_at: Option<DateTime<Utc>>,
}

/// The columns of a [`VersionRow`].
macro_rules! version_columns {
    () => {
        "id, projection, fingerprint, generation, schema_name, status, checkpoint_tx_id, \
         checkpoint_position, events_applied, events_skipped, halted_position, last_error, \
         created_at, activated_at, retired_at"
    };
}
pub(crate) use version_columns;

/// A row of `projection_versions` as sqlx decodes it.
#[derive(sqlx::FromRow)]
pub(crate) struct VersionRow {
    id: i64,
    projection: String,
    fingerprint: String,
    generation: i32,
    schema_name: String,
    status: String,
    checkpoint_tx_id: i64,
    checkpoint_position: i64,
    events_applied: i64,
    events_skipped: i64,
    halted_position: Option<i64>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    activated_at: Option<DateTime<Utc>>,
    retired_at: Option<DateTime<Utc>>,
}

impl From<VersionRow> for ProjectionVersion {
    fn from(row: VersionRow) -> Self {
        Self {
            id: row.id,
            projection: row.projection,
            fingerprint: row.fingerprint,
            generation: row.generation,
            schema_name: row.schema_name,
            status: VersionStatus::parse(&row.status),
            checkpoint: cursor(row.checkpoint_tx_id, row.checkpoint_position),
            events_applied: row.events_applied,
            events_skipped: row.events_skipped,
            halted_position: row.halted_position,
            last_error: row.last_error,
            created_at: row.created_at,
            activated_at: row.activated_at,
            retired_at: row.retired_at,
        }
    }
}

/// A stored checkpoint as a log cursor (transaction ids are never negative).
pub(crate) fn cursor(tx_id: i64, position: i64) -> LogCursor {
    LogCursor {
        tx_id: tx_id.unsigned_abs(),
        position,
    }
}

/// A log cursor's transaction id as stored (`xid8` values fit in 63 bits for ages to come).
pub(crate) fn stored_tx_id(cursor: LogCursor) -> i64 {
    i64::try_from(cursor.tx_id).unwrap_or(i64::MAX)
}

/// The versions of `projection` whose schemas still exist, oldest first.
pub(crate) async fn versions(
    conn: &mut PgConnection,
    projection: &str,
) -> Result<Vec<ProjectionVersion>> {
    let rows: Vec<VersionRow> = sqlx::query_as(concat!(
        "SELECT ",
        version_columns!(),
        " FROM projection_versions WHERE projection = $1 AND dropped_at IS NULL ORDER BY id"
    ))
    .bind(projection)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(ProjectionVersion::from).collect())
}

/// The registry id and checkpoint of `projection`'s active version, if it has one.
pub(crate) async fn active_checkpoint(
    pool: &PgPool,
    projection: &str,
) -> Result<Option<(i64, LogCursor)>> {
    let checkpoint: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT id, checkpoint_tx_id, checkpoint_position FROM projection_versions \
         WHERE projection = $1 AND status = 'active'",
    )
    .bind(projection)
    .fetch_optional(pool)
    .await?;
    Ok(checkpoint.map(|(id, tx_id, position)| (id, cursor(tx_id, position))))
}

/// Runs SQL built at run time (DDL, with identifiers this crate made), possibly several
/// statements: a string without arguments goes by the simple query protocol, so nothing is
/// kept in the statement cache.
///
/// (`sqlx::raw_sql(..).execute(..)` would do the same, but its future trips the compiler's
/// higher-ranked `Send` check when a projector is spawned.)
async fn execute_script(conn: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
    conn.execute(sql.as_str()).await.map(|_| ())
}

/// The active and the building version among `all`.
fn live_pair(
    all: &[ProjectionVersion],
) -> (Option<&ProjectionVersion>, Option<&ProjectionVersion>) {
    let find = |status| all.iter().find(|v| v.status == status);
    (find(VersionStatus::Active), find(VersionStatus::Building))
}

/// Takes the registry lock of `projection` for the rest of the transaction.
async fn lock_registry(tx: &mut PgConnection, projection: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(registry_key(projection))
        .execute(tx)
        .await?;
    Ok(())
}

/// Creates a version: its registry row, its schema, and its tables from the DDL (run with
/// `search_path` set to the schema, so the DDL names tables unqualified). An active version
/// also gets the public views.
async fn create_version(
    tx: &mut PgConnection,
    definition: &Definition,
    generation: i32,
    status: VersionStatus,
) -> Result<ProjectionVersion> {
    let schema = definition.schema_name(generation);
    let row: VersionRow = sqlx::query_as(concat!(
        "INSERT INTO projection_versions (projection, fingerprint, generation, schema_name, status, \
                                          activated_at) \
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 = 'active' THEN now() END) RETURNING ",
        version_columns!()
    ))
    .bind(definition.name)
    .bind(&definition.fingerprint)
    .bind(generation)
    .bind(&schema)
    .bind(status.as_str())
    .fetch_one(&mut *tx)
    .await?;
    // The schema name is built from a checked projection name and hex digits: safe to splice.
    execute_script(tx, format!("CREATE SCHEMA {schema}")).await?;
    sqlx::query("SELECT set_config('search_path', $1, true)")
        .bind(&schema)
        .execute(&mut *tx)
        .await?;
    execute_script(tx, definition.ddl.clone()).await?;
    sqlx::query("SELECT set_config('search_path', 'public', true)")
        .execute(&mut *tx)
        .await?;
    if status == VersionStatus::Active {
        point_views(tx, definition, &schema).await?;
    }
    tracing::info!(
        projection = definition.name,
        schema,
        status = status.as_str(),
        "created a projection version"
    );
    Ok(row.into())
}

/// Points the public views of `definition` at `schema`.
///
/// The views' column lists are fixed by the code, so `CREATE OR REPLACE VIEW` replaces them in
/// place and queries never miss the view; when a new version changes the columns, the view is
/// dropped and created again in the same transaction.
async fn point_views(tx: &mut PgConnection, definition: &Definition, schema: &str) -> Result<()> {
    for view in definition.views {
        let select = view.select.replace("{schema}", schema);
        let name = view.name;
        sqlx::query("SAVEPOINT replace_view")
            .execute(&mut *tx)
            .await?;
        let replaced = execute_script(
            tx,
            format!("CREATE OR REPLACE VIEW public.{name} AS {select}"),
        )
        .await;
        if replaced.is_err() {
            sqlx::query("ROLLBACK TO SAVEPOINT replace_view")
                .execute(&mut *tx)
                .await?;
            execute_script(
                tx,
                format!("DROP VIEW IF EXISTS public.{name}; CREATE VIEW public.{name} AS {select}"),
            )
            .await?;
        }
        execute_script(
            tx,
            format!("GRANT SELECT ON public.{name} TO runledger_app"),
        )
        .await?;
    }
    Ok(())
}

/// What a leader found when it prepared its projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Prepared {
    /// Versions of this code's fingerprint are live (active or building).
    Ready,
    /// This fingerprint was retired or cancelled and another one is active: this code is older
    /// than the active version (or an operator gave it up), so it builds nothing by itself.
    Superseded,
}

/// Makes sure a version of this code's fingerprint is live: the first version of a projection
/// is created active; when another fingerprint is active, a building version is created beside
/// it (replacing a building version of yet another fingerprint: the newest deploy wins).
pub(crate) async fn prepare(pool: &PgPool, definition: &Definition) -> Result<Prepared> {
    let mut tx = pool.begin().await?;
    lock_registry(&mut tx, definition.name).await?;
    let all = versions(&mut tx, definition.name).await?;
    let (active, building) = live_pair(&all);
    let mine =
        |v: Option<&ProjectionVersion>| v.is_some_and(|v| v.fingerprint == definition.fingerprint);
    let (active_is_mine, building_is_mine) = (mine(active), mine(building));
    let (has_active, foreign_building) = (
        active.is_some(),
        building.filter(|_| !building_is_mine).map(|b| b.id),
    );
    let prepared = if active_is_mine || building_is_mine {
        Prepared::Ready
    } else if has_active
        && sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM projection_versions \
             WHERE projection = $1 AND fingerprint = $2)",
        )
        .bind(definition.name)
        .bind(&definition.fingerprint)
        .fetch_one(&mut *tx)
        .await?
    {
        Prepared::Superseded
    } else {
        if let Some(foreign) = foreign_building {
            set_status(&mut tx, foreign, VersionStatus::Cancelled).await?;
        }
        let status = if has_active {
            VersionStatus::Building
        } else {
            VersionStatus::Active
        };
        create_version(&mut tx, definition, 1, status).await?;
        Prepared::Ready
    };
    tx.commit().await?;
    Ok(prepared)
}

async fn set_status(tx: &mut PgConnection, id: i64, status: VersionStatus) -> Result<()> {
    sqlx::query(
        "UPDATE projection_versions SET status = $2, updated_at = now(), \
                retired_at = CASE WHEN $2 IN ('retired', 'cancelled') THEN now() END, \
                activated_at = CASE WHEN $2 = 'active' THEN now() ELSE activated_at END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .execute(tx)
    .await?;
    Ok(())
}

/// Makes the building version `building` active, in one transaction, if it has caught up with
/// the active one: the public views now show its schema, and the old version is retired.
/// Returns whether it switched.
pub(crate) async fn switch(pool: &PgPool, definition: &Definition, building: i64) -> Result<bool> {
    let mut tx = pool.begin().await?;
    lock_registry(&mut tx, definition.name).await?;
    let all = versions(&mut tx, definition.name).await?;
    let Some(new) = all
        .iter()
        .find(|v| v.id == building && v.status == VersionStatus::Building)
    else {
        return Ok(false);
    };
    let old = all.iter().find(|v| v.status == VersionStatus::Active);
    // Never move reads backwards: a read-your-writes wait that the old version passed must stay
    // passed after the switch.
    if old.is_some_and(|old| old.checkpoint > new.checkpoint) || new.halted_position.is_some() {
        return Ok(false);
    }
    point_views(&mut tx, definition, &new.schema_name).await?;
    if let Some(old) = old {
        set_status(&mut tx, old.id, VersionStatus::Retired).await?;
    }
    set_status(&mut tx, new.id, VersionStatus::Active).await?;
    tx.commit().await?;
    tracing::info!(
        projection = definition.name,
        schema = new.schema_name,
        "switched reads to the rebuilt version"
    );
    Ok(true)
}

/// Drops the schemas of `projection`'s versions retired or cancelled more than `grace` ago, so
/// that queries that resolved the old view before a switch can finish. Returns how many.
///
/// A drop waits at most a moment for queries still reading the old tables, and is tried again
/// later when it cannot get its lock.
pub(crate) async fn drop_expired(
    pool: &PgPool,
    projection: &str,
    grace: Duration,
) -> Result<usize> {
    let expired: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, schema_name FROM projection_versions \
         WHERE projection = $1 AND status IN ('retired', 'cancelled') AND dropped_at IS NULL \
           AND retired_at <= now() - make_interval(secs => $2)",
    )
    .bind(projection)
    .bind(grace.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let mut dropped = 0;
    for (id, schema) in expired {
        let mut tx = pool.begin().await?;
        let drop = execute_script(
            &mut tx,
            format!("SET LOCAL lock_timeout = '2s'; DROP SCHEMA IF EXISTS {schema} CASCADE"),
        )
        .await;
        if let Err(error) = drop {
            tracing::warn!(%error, schema, "could not drop a retired projection schema yet");
            continue;
        }
        sqlx::query(
            "UPDATE projection_versions SET dropped_at = now(), updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        dropped += 1;
    }
    Ok(dropped)
}

/// A rebuild an operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildStarted {
    /// The building version.
    pub version: ProjectionVersion,
    /// False when a rebuild was already under way and this is it.
    pub created: bool,
}

/// Starts a rebuild of `definition` from the start of the log, side by side with the active
/// version, which keeps serving reads until the new one has caught up and replaces it. A
/// projector of this code's fingerprint builds it (the CLI's `rebuild` runs one).
///
/// The new version is a new generation of this code's fingerprint; a rebuild already under way
/// is returned as it is.
///
/// # Errors
/// [`ProjectionError::Database`] when the database fails.
pub async fn rebuild(pool: &PgPool, definition: &Definition) -> Result<RebuildStarted> {
    let mut tx = pool.begin().await?;
    lock_registry(&mut tx, definition.name).await?;
    let all = versions(&mut tx, definition.name).await?;
    if let Some(building) = all.iter().find(|v| v.status == VersionStatus::Building) {
        return Ok(RebuildStarted {
            version: building.clone(),
            created: false,
        });
    }
    let generation: i32 = sqlx::query_scalar(
        "SELECT COALESCE(max(generation), 0) + 1 FROM projection_versions \
         WHERE projection = $1 AND fingerprint = $2",
    )
    .bind(definition.name)
    .bind(&definition.fingerprint)
    .fetch_one(&mut *tx)
    .await?;
    let status = if all.iter().any(|v| v.status == VersionStatus::Active) {
        VersionStatus::Building
    } else {
        VersionStatus::Active
    };
    let version = create_version(&mut tx, definition, generation, status).await?;
    tx.commit().await?;
    Ok(RebuildStarted {
        version,
        created: true,
    })
}

/// Cancels the rebuild of `projection` under way, if any: the active version keeps serving and
/// the building one's schema is dropped after the grace period. Returns the cancelled version.
///
/// # Errors
/// [`ProjectionError::Database`] when the database fails.
pub async fn cancel_rebuild(pool: &PgPool, projection: &str) -> Result<Option<ProjectionVersion>> {
    let mut tx = pool.begin().await?;
    lock_registry(&mut tx, projection).await?;
    let all = versions(&mut tx, projection).await?;
    let Some(building) = all
        .into_iter()
        .find(|v| v.status == VersionStatus::Building)
    else {
        return Ok(None);
    };
    set_status(&mut tx, building.id, VersionStatus::Cancelled).await?;
    tx.commit().await?;
    Ok(Some(building))
}

/// Skips the poison event at `position` of `projection`: every live version halted there moves
/// past it without applying it, on its projector's next step. The event stays recorded in
/// `projection_poison` with the time it was skipped. Returns how many versions it releases.
///
/// # Errors
/// [`ProjectionError::NoPoisonEvent`] when no live version recorded a poison event there.
pub async fn skip(pool: &PgPool, projection: &str, position: i64) -> Result<u64> {
    let skipped = sqlx::query(
        "UPDATE projection_poison p SET skipped_at = now() \
         FROM projection_versions v \
         WHERE p.version_id = v.id AND v.projection = $1 AND p.position = $2 \
           AND v.status IN ('active', 'building') AND p.skipped_at IS NULL",
    )
    .bind(projection)
    .bind(position)
    .execute(pool)
    .await?
    .rows_affected();
    if skipped == 0 {
        return Err(ProjectionError::NoPoisonEvent {
            projection: projection.to_owned(),
            position,
        });
    }
    Ok(skipped)
}

/// The version with registry id `id`, if its schema still exists.
///
/// # Errors
/// [`ProjectionError::Database`] when the database fails.
pub async fn version(pool: &PgPool, id: i64) -> Result<Option<ProjectionVersion>> {
    let row: Option<VersionRow> = sqlx::query_as(concat!(
        "SELECT ",
        version_columns!(),
        " FROM projection_versions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(ProjectionVersion::from))
}
