//! Keyset pages: the condition that selects the rows past the last row of a page, for a list
//! sorted by a time column and then by `id` (never `OFFSET`: a page stays cheap and skips or
//! repeats nothing when rows are added meanwhile).

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

/// The direction a keyset list is sorted in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Direction {
    /// Largest key first: the next page holds smaller keys.
    Descending,
    /// Smallest key first: the next page holds larger keys.
    Ascending,
}

/// Pushes `(column, id) < (t, id)` (`>` when ascending): the rows past a page that ended at
/// the row (`t`, `id`) of a list sorted by `column`, then by `id` to break ties.
pub(crate) fn push_past_page(
    query: &mut QueryBuilder<'_, Postgres>,
    column: &'static str,
    direction: Direction,
    t: DateTime<Utc>,
    id: Uuid,
) {
    let comparison = match direction {
        Direction::Descending => "<",
        Direction::Ascending => ">",
    };
    query
        .push(format!("({column}, id) {comparison} ("))
        .push_bind(t)
        .push(", ")
        .push_bind(id)
        .push(")");
}
