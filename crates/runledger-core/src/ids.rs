//! Identifiers: tenants and users are positive integers (as in the seed), runs and events are
//! UUIDs; and the plain-token alphabet of the codes and ids that callers name themselves.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ParseError;

/// Declares a positive 64-bit id newtype: the seed's `BigInt` keys.
macro_rules! positive_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name(i64);

        impl $name {
            /// Parses a positive id.
            ///
            /// # Errors
            /// [`ParseError`] when the value is zero or negative.
            pub fn new(value: i64) -> Result<Self, ParseError> {
                if value > 0 {
                    Ok(Self(value))
                } else {
                    Err(ParseError::new($field, "must be a positive integer"))
                }
            }

            /// The raw value, for storage.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = ParseError;
            fn try_from(value: i64) -> Result<Self, ParseError> {
                Self::new(value)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                let value = s
                    .parse::<i64>()
                    .map_err(|_| ParseError::new($field, "must be a positive integer"))?;
                Self::new(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

positive_id!(
    /// A tenant: every run, event and query is scoped by one.
    TenantId,
    "tenant_id"
);
positive_id!(
    /// A user of the product, the initiator of a run when a person started it.
    UserId,
    "user_id"
);

/// Declares a UUID id newtype.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID made by the caller (the core never generates ids).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID, for storage.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| ParseError::new($field, "must be a UUID"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A run, and so the id of its event stream.
    RunId,
    "run_id"
);
uuid_id!(
    /// One event; re-sending an append with the same event ids is idempotent.
    EventId,
    "event_id"
);

/// `text` when it is 1 to `max_len` characters of ASCII letters, digits and `punctuation`: the
/// alphabet of codes and ids that appear in problems, pages and logs (no white space, control
/// characters or markup).
///
/// # Errors
/// [`ParseError`] naming `field` for an empty, overlong or oddly spelled text.
pub(crate) fn plain_token(
    field: &'static str,
    text: &str,
    max_len: usize,
    punctuation: &[char],
) -> Result<String, ParseError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || punctuation.contains(&c);
    if !text.is_empty() && text.len() <= max_len && text.chars().all(plain) {
        Ok(text.to_owned())
    } else {
        let punctuation: String = punctuation.iter().collect();
        Err(ParseError::new(
            field,
            format!("must be 1-{max_len} characters of [A-Za-z0-9{punctuation}]"),
        ))
    }
}
