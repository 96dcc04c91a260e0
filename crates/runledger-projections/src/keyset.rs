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

/// Pushes `LIMIT size + 1`: one row more than the page, which tells whether there is a next
/// page without a count. [`cut_page`] takes the extra row off again.
pub(crate) fn push_page_limit(query: &mut QueryBuilder<'_, Postgres>, size: u32) {
    query.push(" LIMIT ").push_bind(i64::from(size) + 1);
}

/// The page of at most `size` rows out of `rows` (read with [`push_page_limit`]), and the
/// position of its last row when a next page follows.
pub(crate) fn cut_page<T, P>(
    mut rows: Vec<T>,
    size: u32,
    position_of: impl FnOnce(&T) -> P,
) -> (Vec<T>, Option<P>) {
    let more = rows.len() > size as usize;
    rows.truncate(size as usize);
    let next = rows.last().filter(|_| more).map(position_of);
    (rows, next)
}
