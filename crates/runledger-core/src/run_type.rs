//! The run type taxonomy: dot-separated lowercase segments such as `inventory.sync`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ParseError;

/// A stable run type such as `inventory.sync` or `restore.execute`.
///
/// Two to eight segments separated by dots; each segment starts with a lowercase letter and
/// continues with lowercase letters, digits or `_`; at most 100 characters in all.
/// The type is part of the identity hash, so its spelling is fixed once parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunType(String);

impl RunType {
    /// The longest accepted type, in bytes.
    pub const MAX_LEN: usize = 100;

    /// Parses a run type.
    ///
    /// # Errors
    /// [`ParseError`] naming `type` when the text is not a valid taxonomy entry.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let invalid = |reason: &str| Err(ParseError::new("type", reason));
        if text.len() > Self::MAX_LEN {
            return invalid("must be at most 100 characters");
        }
        let segments: Vec<&str> = text.split('.').collect();
        if !(2..=8).contains(&segments.len()) {
            return invalid("must have two to eight dot-separated segments, e.g. inventory.sync");
        }
        let segment_ok = |segment: &str| {
            let mut chars = segment.chars();
            chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !segments.iter().all(|s| segment_ok(s)) {
            return invalid("segments must match [a-z][a-z0-9_]*, e.g. inventory.sync");
        }
        Ok(Self(text.to_owned()))
    }

    /// The type as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A readable name for notices: `inventory.sync` → `Inventory sync`.
    pub fn display_name(&self) -> String {
        let words = self.0.replace(['.', '_'], " ");
        let mut chars = words.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => words,
        }
    }
}

impl TryFrom<String> for RunType {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, ParseError> {
        Self::parse(&value)
    }
}

impl From<RunType> for String {
    fn from(value: RunType) -> String {
        value.0
    }
}

impl FromStr for RunType {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

impl fmt::Display for RunType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
