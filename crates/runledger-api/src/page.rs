//! Opaque keyset page tokens: where a page ended, and which list it was a page of.
//!
//! A token holds the last row's sort key and id, and a digest of the filters and order it was
//! issued for; a token reused with other filters is refused rather than silently skipping rows.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};

use crate::error::ApiError;

/// Where a page ended.
#[derive(Debug, Serialize, Deserialize)]
pub struct PageToken {
    /// Digest of the filters and sort the token belongs to.
    pub f: String,
    /// The last row's sort time (`None`: a row without one, e.g. a run not completed).
    pub t: Option<DateTime<Utc>>,
    /// The last row's id (the tie-breaker).
    pub id: uuid::Uuid,
}

impl PageToken {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Parses a token issued for the list whose digest is `digest`.
    ///
    /// # Errors
    /// [`ApiError::BadRequest`] naming `page_token` when it is malformed or of another list.
    pub fn decode(text: &str, digest: &str) -> Result<Self, ApiError> {
        let invalid = || ApiError::bad_field("page_token", "is not a page token of this list");
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let token: PageToken = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if token.f != digest {
            return Err(ApiError::bad_field(
                "page_token",
                "was issued for other filters or another sort",
            ));
        }
        Ok(token)
    }
}

/// The direction a keyset list is sorted in.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    /// Largest key first: the next page holds smaller keys.
    Descending,
    /// Smallest key first: the next page holds larger keys.
    Ascending,
}

/// Pushes `(column, id) < (t, id)` (`>` when ascending): the rows past a page that ended at
/// the row (`t`, `id`) of a list sorted by `column`, then by `id` to break ties.
pub fn push_past_page(
    query: &mut QueryBuilder<'_, Postgres>,
    column: &'static str,
    direction: Direction,
    t: DateTime<Utc>,
    id: uuid::Uuid,
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
