//! The id a worker names itself by when it starts a run, so that a re-delivered job is recognised.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ParseError;
use crate::ids::plain_token;

/// A worker's self-chosen id, such as `w1`, `sync-7d9f8-abcde` or `host-3/pid-4242`: 1–128
/// characters of `[A-Za-z0-9._:@/-]`.
///
/// The id is shown in problems (the holder of a run another worker tried to start), pages and
/// logs, so its alphabet leaves no room for white space, control characters or markup.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkerId(String);

impl WorkerId {
    /// The longest id, in characters.
    pub const MAX_LEN: usize = 128;

    /// Parses a worker id.
    ///
    /// # Errors
    /// [`ParseError`] naming `worker` for an empty, overlong or oddly spelled id.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        plain_token(
            "worker",
            text,
            Self::MAX_LEN,
            &['.', '_', ':', '@', '/', '-'],
        )
        .map(Self)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for WorkerId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

impl TryFrom<String> for WorkerId {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, ParseError> {
        Self::parse(&value)
    }
}

impl From<WorkerId> for String {
    fn from(value: WorkerId) -> String {
        value.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
