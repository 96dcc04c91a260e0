//! Opaque keyset page tokens: where a page ended, and which list it was a page of.
//!
//! A token holds the last row's sort key and id (a read model's page position), and a digest
//! of the filters and order it was issued for; a token reused with other filters is refused
//! rather than silently skipping rows. The read models' queries take and give typed positions;
//! only this module knows the text of a token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| Self::not_of_this_list())?;
        let token: PageToken =
            serde_json::from_slice(&bytes).map_err(|_| Self::not_of_this_list())?;
        if token.f != digest {
            return Err(ApiError::bad_field(
                "page_token",
                "was issued for other filters or another sort",
            ));
        }
        Ok(token)
    }

    /// The problem of a token that is not one of the list's.
    pub fn not_of_this_list() -> ApiError {
        ApiError::bad_field("page_token", "is not a page token of this list")
    }

    /// The digest of a list, from what tells it from other lists (its filters and order): the
    /// first 8 bytes of the SHA-256 of their JSON, in hex.
    pub fn digest(list: &impl Serialize) -> String {
        let text = serde_json::to_string(list).unwrap_or_default();
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }
}
