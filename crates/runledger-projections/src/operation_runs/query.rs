//! The OperationRun read model's queries, over `public.operation_runs` and always within one
//! tenant: a keyset page of runs filtered and sorted, one run, whether a run passes a filter
//! (for live lists), the other runs of one identity, and counts grouped by status and outcome.
//!
//! The inputs are typed: a filter holds domain values, so a query built from it is valid by
//! construction. Turning a request into them (and a bad one into a problem) is the caller's.

use chrono::{DateTime, Utc};
use runledger_core::{Outcome, RunId, RunStatus, RunType, TenantId, UserId};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::row::OperationRunRow;
use super::search::{Attribute, RunIdPrefix};
use crate::keyset::{Direction, cut_page, push_page_limit, push_past_page};

/// Which runs a list or a count is about (the tenant aside). Every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Exactly this run type.
    pub run_type: Option<RunType>,
    /// Run types starting with this.
    pub type_prefix: Option<TypePrefix>,
    /// Any of these statuses (none: any status).
    pub statuses: Vec<RunStatus>,
    /// Any of these outcomes (none: any outcome).
    pub outcomes: Vec<Outcome>,
    /// Initiated by this user.
    pub initiator: Option<UserId>,
    /// Initiated by someone of this name (case-insensitive).
    pub initiator_name: Option<String>,
    /// Run ids starting with this.
    pub id_prefix: Option<RunIdPrefix>,
    /// Runs whose context or identity holds this `key=value`.
    pub attribute: Option<Attribute>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
}

/// The start of run type names: at most [`RunType::MAX_LEN`] characters of `[a-z0-9_.]`
/// (so that it holds no `LIKE` wildcard but `_`, which the query escapes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypePrefix(String);

/// Why a text is not a [`TypePrefix`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("must be at most 100 characters of [a-z0-9_.]")]
pub struct InvalidTypePrefix;

impl TypePrefix {
    /// Parses a prefix.
    ///
    /// # Errors
    /// [`InvalidTypePrefix`] when it is too long or holds another character.
    pub fn parse(text: &str) -> Result<Self, InvalidTypePrefix> {
        let valid = text.len() <= RunType::MAX_LEN
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidTypePrefix)
        }
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The orders a list of runs can be sorted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOrder {
    /// Newest first (the default).
    CreatedDesc,
    /// Oldest first.
    CreatedAsc,
    /// Last completed first; runs not completed last.
    CompletedDesc,
}

/// Where a page ended: the last row's sort time (`None`: a run not completed, in
/// [`RunOrder::CompletedDesc`]) and its id, the tie-breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunPosition {
    /// The last row's `created_at` or `completed_at`, as the order sorts by.
    pub time: Option<DateTime<Utc>>,
    /// The last row's id.
    pub id: Uuid,
}

impl RunOrder {
    /// The position of `row` in this order.
    pub fn position_of(self, row: &OperationRunRow) -> RunPosition {
        RunPosition {
            time: match self {
                RunOrder::CreatedDesc | RunOrder::CreatedAsc => Some(row.created_at),
                RunOrder::CompletedDesc => row.completed_at,
            },
            id: row.id,
        }
    }
}

/// One page of a tenant's runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPageQuery {
    /// Which runs.
    pub filter: RunFilter,
    /// In which order.
    pub order: RunOrder,
    /// How many at most (at least 1).
    pub size: u32,
    /// The runs after this position (none: the first page).
    pub after: Option<RunPosition>,
}

/// A page of runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunPage {
    /// The rows, in the requested order.
    pub rows: Vec<OperationRunRow>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<RunPosition>,
}

/// A query of the read model that did not answer.
#[derive(Debug, thiserror::Error)]
pub enum RunQueryError {
    /// The position cannot be one of this order's (a run without a creation time).
    #[error("the position is not one of this order's")]
    PositionOutsideOrder,
    /// The database failed (or the read model is not built yet: an undefined table).
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// A count of runs, by the groups asked for (`None` where not grouped by).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RunCount {
    /// The status of the group.
    pub status: Option<String>,
    /// The outcome of the group.
    pub outcome: Option<String>,
    /// How many runs.
    pub count: i64,
}

/// What runs can be counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountGroup {
    /// The status column.
    Status,
    /// The outcome column.
    Outcome,
}

impl CountGroup {
    fn column(self) -> &'static str {
        match self {
            CountGroup::Status => "status",
            CountGroup::Outcome => "outcome",
        }
    }
}

/// `SELECT <row> FROM operation_runs WHERE tenant_id = $tenant`, ready for `AND …`.
fn select_rows(tenant: TenantId) -> QueryBuilder<'static, Postgres> {
    let mut query = QueryBuilder::new(format!(
        "SELECT {} FROM operation_runs WHERE tenant_id = ",
        OperationRunRow::COLUMNS
    ));
    query.push_bind(tenant.get());
    query
}

impl RunFilter {
    /// Whether `row` passes the filter: the same conditions as the queries' `WHERE`, checked on
    /// a row in memory, so that a process reads a changed run once for all of its live lists
    /// (each with its own filter). `tests/it/projections/filter_in_memory.rs` checks that the
    /// two agree; a new field must be added to both (the destructuring makes it a compile error
    /// to forget this one).
    #[must_use]
    pub fn admits(&self, row: &OperationRunRow) -> bool {
        let Self {
            run_type,
            type_prefix,
            statuses,
            outcomes,
            initiator,
            initiator_name,
            id_prefix,
            attribute,
            created_after,
            created_before,
        } = self;
        run_type.as_ref().is_none_or(|t| row.run_type == t.as_str())
            && type_prefix
                .as_ref()
                .is_none_or(|prefix| row.run_type.starts_with(prefix.as_str()))
            && (statuses.is_empty() || statuses.iter().any(|s| row.status == s.as_str()))
            && (outcomes.is_empty() || outcomes.iter().any(|o| row.outcome == o.as_str()))
            && initiator.is_none_or(|user| row.user_id == Some(user.get()))
            // `lower()` of the database and Rust's agree on the names a person types (ASCII
            // and the common scripts); the test below checks them on the rows it has.
            && initiator_name
                .as_ref()
                .is_none_or(|name| row.initiator_name.to_lowercase() == name.to_lowercase())
            && id_prefix.as_ref().is_none_or(|prefix| {
                let (low, high) = prefix.id_range();
                (low..=high).contains(&row.id)
            })
            && attribute
                .as_ref()
                .is_none_or(|attribute| attribute.admits(&row.context, &row.identity))
            && created_after.is_none_or(|after| row.created_at >= after)
            && created_before.is_none_or(|before| row.created_at < before)
    }

    /// Appends `AND …` conditions for the filter (the tenant condition comes first).
    fn push_conditions(&self, query: &mut QueryBuilder<'_, Postgres>) {
        if let Some(run_type) = &self.run_type {
            query
                .push(" AND type = ")
                .push_bind(run_type.as_str().to_owned());
        }
        if let Some(prefix) = &self.type_prefix {
            // `[a-z0-9_.]` only: escape `_`, the one LIKE wildcard it can hold.
            query
                .push(" AND type LIKE ")
                .push_bind(format!("{}%", prefix.as_str().replace('_', "\\_")));
        }
        push_any_of(query, "status", self.statuses.iter().map(|s| s.as_str()));
        push_any_of(query, "outcome", self.outcomes.iter().map(|o| o.as_str()));
        if let Some(user) = self.initiator {
            query.push(" AND user_id = ").push_bind(user.get());
        }
        if let Some(name) = &self.initiator_name {
            query
                .push(" AND lower(initiator_name) = lower(")
                .push_bind(name.clone())
                .push(")");
        }
        if let Some(prefix) = &self.id_prefix {
            // A range of the primary key rather than `id::text LIKE`, which no index answers.
            let (low, high) = prefix.id_range();
            query
                .push(" AND id BETWEEN ")
                .push_bind(low)
                .push(" AND ")
                .push_bind(high);
        }
        if let Some(attribute) = &self.attribute {
            // The expression of `operation_runs_attributes_idx`, written alike so that the
            // planner matches it: `[context, identity]` (`||` appends an object to an array).
            query
                .push(" AND ('[]'::jsonb || context || identity) @? ")
                .push_bind(attribute.json_path())
                .push("::jsonpath");
        }
        if let Some(after) = self.created_after {
            query.push(" AND created_at >= ").push_bind(after);
        }
        if let Some(before) = self.created_before {
            query.push(" AND created_at < ").push_bind(before);
        }
    }
}

/// Pushes `AND column = ANY(values)`, unless there are no values (then any value passes).
fn push_any_of(
    query: &mut QueryBuilder<'_, Postgres>,
    column: &'static str,
    values: impl Iterator<Item = &'static str>,
) {
    let values: Vec<&'static str> = values.collect();
    if !values.is_empty() {
        query
            .push(format!(" AND {column} = ANY("))
            .push_bind(values)
            .push(")");
    }
}

/// One page of a tenant's runs, as `page` asks.
///
/// # Errors
/// [`RunQueryError::PositionOutsideOrder`] for a position without a time in a creation order;
/// [`RunQueryError::Database`] when the database fails.
pub async fn run_page(
    pool: &PgPool,
    tenant: TenantId,
    page: &RunPageQuery,
) -> Result<RunPage, RunQueryError> {
    let mut query = run_page_statement("", tenant, page)?;
    let rows: Vec<OperationRunRow> = query.build_query_as().fetch_all(pool).await?;
    let (rows, next) = cut_page(rows, page.size, |last| page.order.position_of(last));
    Ok(RunPage { rows, next })
}

/// The plan PostgreSQL chooses for [`run_page`]'s statement, one line per row of `EXPLAIN`:
/// what the tests read to prove that no filter or search is answered by a scan of the table.
///
/// # Errors
/// As [`run_page`].
pub async fn explain_run_page(
    pool: &PgPool,
    tenant: TenantId,
    page: &RunPageQuery,
) -> Result<Vec<String>, RunQueryError> {
    let mut query = run_page_statement("EXPLAIN ", tenant, page)?;
    Ok(query.build_query_scalar().fetch_all(pool).await?)
}

/// The plan PostgreSQL chooses for [`count_runs`]'s statement (see [`explain_run_page`]).
///
/// # Errors
/// The database's.
pub async fn explain_count_runs(
    pool: &PgPool,
    tenant: TenantId,
    filter: &RunFilter,
) -> Result<Vec<String>, sqlx::Error> {
    let mut query = count_statement("EXPLAIN ", tenant, filter, &[]);
    query.build_query_scalar().fetch_all(pool).await
}

/// [`run_page`]'s statement, after `prefix` (`EXPLAIN `, or nothing).
fn run_page_statement(
    prefix: &str,
    tenant: TenantId,
    page: &RunPageQuery,
) -> Result<QueryBuilder<'static, Postgres>, RunQueryError> {
    let mut query = QueryBuilder::new(format!(
        "{prefix}SELECT {} FROM operation_runs WHERE tenant_id = ",
        OperationRunRow::COLUMNS
    ));
    query.push_bind(tenant.get());
    page.filter.push_conditions(&mut query);
    if let Some(after) = &page.after {
        match (page.order, after.time) {
            (RunOrder::CreatedDesc, Some(t)) => {
                query.push(" AND ");
                push_past_page(&mut query, "created_at", Direction::Descending, t, after.id);
            }
            (RunOrder::CreatedAsc, Some(t)) => {
                query.push(" AND ");
                push_past_page(&mut query, "created_at", Direction::Ascending, t, after.id);
            }
            (RunOrder::CompletedDesc, Some(t)) => {
                // Runs not completed sort last: every one of them is past a completed run.
                query.push(" AND (");
                push_past_page(
                    &mut query,
                    "completed_at",
                    Direction::Descending,
                    t,
                    after.id,
                );
                query.push(" OR completed_at IS NULL)");
            }
            (RunOrder::CompletedDesc, None) => {
                query
                    .push(" AND completed_at IS NULL AND id < ")
                    .push_bind(after.id);
            }
            (RunOrder::CreatedDesc | RunOrder::CreatedAsc, None) => {
                return Err(RunQueryError::PositionOutsideOrder);
            }
        }
    }
    query.push(match page.order {
        RunOrder::CreatedDesc => " ORDER BY created_at DESC, id DESC",
        RunOrder::CreatedAsc => " ORDER BY created_at ASC, id ASC",
        RunOrder::CompletedDesc => " ORDER BY completed_at DESC NULLS LAST, id DESC",
    });
    push_page_limit(&mut query, page.size);
    Ok(query)
}

/// The tenant's run `run` if it passes `filter`: what a live list needs to know of a run that
/// changed.
///
/// # Errors
/// The database's.
pub async fn run_if_listed(
    pool: &PgPool,
    tenant: TenantId,
    run: RunId,
    filter: &RunFilter,
) -> Result<Option<OperationRunRow>, sqlx::Error> {
    let mut query = select_rows(tenant);
    query.push(" AND id = ").push_bind(run.as_uuid());
    filter.push_conditions(&mut query);
    query.build_query_as().fetch_optional(pool).await
}

/// The tenant's run `run`; another tenant's run is `None`, like a missing one.
///
/// # Errors
/// The database's.
pub async fn find_run(
    pool: &PgPool,
    tenant: TenantId,
    run: RunId,
) -> Result<Option<OperationRunRow>, sqlx::Error> {
    run_if_listed(pool, tenant, run, &RunFilter::default()).await
}

/// The tenant's runs with the identity `identity_hash` other than `except`, newest first, at
/// most `limit`: the same operation queued before or after (related runs).
///
/// # Errors
/// The database's.
pub async fn same_identity(
    pool: &PgPool,
    tenant: TenantId,
    identity_hash: &str,
    except: Uuid,
    limit: u32,
) -> Result<Vec<OperationRunRow>, sqlx::Error> {
    let mut query = select_rows(tenant);
    query
        .push(" AND run_identity_hash = ")
        .push_bind(identity_hash.to_owned())
        .push(" AND id <> ")
        .push_bind(except)
        .push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(limit));
    query.build_query_as().fetch_all(pool).await
}

/// How many of the tenant's runs pass `filter`, grouped by `groups` in their order (none: one
/// count of all), the groups sorted by their values.
///
/// # Errors
/// The database's.
pub async fn count_runs(
    pool: &PgPool,
    tenant: TenantId,
    filter: &RunFilter,
    groups: &[CountGroup],
) -> Result<Vec<RunCount>, sqlx::Error> {
    count_statement("", tenant, filter, groups)
        .build_query_as()
        .fetch_all(pool)
        .await
}

/// [`count_runs`]'s statement, after `prefix` (`EXPLAIN `, or nothing).
fn count_statement(
    prefix: &str,
    tenant: TenantId,
    filter: &RunFilter,
    groups: &[CountGroup],
) -> QueryBuilder<'static, Postgres> {
    let grouped = |group: CountGroup| {
        if groups.contains(&group) {
            group.column()
        } else {
            "NULL::text"
        }
    };
    let mut query = QueryBuilder::new(format!(
        "{prefix}SELECT {} AS status, {} AS outcome, count(*) AS count FROM operation_runs WHERE tenant_id = ",
        grouped(CountGroup::Status),
        grouped(CountGroup::Outcome),
    ));
    query.push_bind(tenant.get());
    filter.push_conditions(&mut query);
    if !groups.is_empty() {
        let columns: Vec<&str> = groups.iter().map(|g| g.column()).collect();
        query
            .push(" GROUP BY ")
            .push(columns.join(", "))
            .push(" ORDER BY ")
            .push(columns.join(", "));
    }
    query
}
