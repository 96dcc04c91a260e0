//! Failure summary entries (`{code, message, count}`): parsing codes, sanitizing messages, merging.
//!
//! Messages come from workers and may carry secrets (tokens in error text, passwords in URLs).
//! They are sanitized in `decide`, before any event exists, so no stored event ever holds one.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::ParseError;
use crate::ids::plain_token;

/// A stable failure code such as `graph.throttled`: 1–100 characters of `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FailureCode(String);

impl FailureCode {
    /// The code that absorbs entries past [`FailureEntry::MAX_ENTRIES`] distinct codes.
    pub const OTHER: &'static str = "other";

    /// Parses a failure code.
    ///
    /// # Errors
    /// [`ParseError`] naming `failures.code` for an empty, overlong or oddly spelled code.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        plain_token("failures.code", text, 100, &['.', '_', ':', '-']).map(Self)
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FailureCode {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, ParseError> {
        Self::parse(&value)
    }
}

impl From<FailureCode> for String {
    fn from(value: FailureCode) -> String {
        value.0
    }
}

/// A failure as a worker reports it: the message is raw and not yet sanitized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureReport {
    /// The stable code.
    pub code: FailureCode,
    /// The raw message; `decide` sanitizes it.
    pub message: String,
    /// How many items failed this way (at least 1).
    pub count: u64,
}

/// One sanitized entry of the seed's `failure_summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureEntry {
    /// The stable code; entries are merged by it.
    pub code: FailureCode,
    /// A sanitized, length-bounded message (the most recent one reported for the code).
    pub message: String,
    /// How many items failed this way.
    pub count: u64,
}

impl FailureEntry {
    /// The most distinct codes a run keeps; later codes are merged into [`FailureCode::OTHER`].
    pub const MAX_ENTRIES: usize = 50;
    /// The longest kept message, in characters.
    pub const MAX_MESSAGE_CHARS: usize = 500;

    /// A sanitized entry from a worker's report (a zero count counts as one).
    pub fn from_report(report: &FailureReport) -> Self {
        Self {
            code: report.code.clone(),
            message: sanitize_message(&report.message),
            count: report.count.max(1),
        }
    }
}

/// Merges `new` entries into `summary` by code: counts add up, the newest message wins, and
/// the list never grows past [`FailureEntry::MAX_ENTRIES`].
pub fn merge_failures(summary: &mut Vec<FailureEntry>, new: &[FailureEntry]) {
    for entry in new {
        if let Some(existing) = summary.iter_mut().find(|e| e.code == entry.code) {
            existing.count = existing.count.saturating_add(entry.count);
            existing.message.clone_from(&entry.message);
        } else if summary.len() < FailureEntry::MAX_ENTRIES - 1
            || (summary.len() < FailureEntry::MAX_ENTRIES
                && entry.code.as_str() == FailureCode::OTHER)
        {
            summary.push(entry.clone());
        } else {
            let other = FailureEntry {
                code: FailureCode(FailureCode::OTHER.to_owned()),
                message: "Further failure codes were merged here".to_owned(),
                count: entry.count,
            };
            merge_failures(summary, &[other]);
        }
    }
}

/// The placeholder that replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Patterns of secrets in free text, each replaced by its replacement template.
static SECRET_PATTERNS: LazyLock<Vec<(Regex, String)>> = LazyLock::new(|| {
    let rules: [(&str, String); 6] = [
        // `Authorization: Bearer abc`, `bearer abc`, `Basic abc`.
        (
            r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+",
            format!("$1 {REDACTED}"),
        ),
        // `password=…`, `api_key: …`, `client-secret=…`, `token=…` and friends.
        (
            r#"(?i)\b(password|passwd|pwd|secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|authorization|sig|signature)(["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;&]+)"#,
            format!("$1$2{REDACTED}"),
        ),
        // Credentials in URLs: `https://user:pass@host`, up to the last `@` (a password may hold one).
        (
            r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s]+@",
            format!("$1{REDACTED}@"),
        ),
        // JSON Web Tokens.
        (
            r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
            REDACTED.to_owned(),
        ),
        // PEM blocks.
        (
            r"(?s)-----BEGIN [A-Z ]+-----.*?(-----END [A-Z ]+-----|$)",
            REDACTED.to_owned(),
        ),
        // Long opaque strings (hex or base64 keys of 32+ characters).
        (r"\b[A-Za-z0-9+/_-]{32,}={0,2}", REDACTED.to_owned()),
    ];
    rules
        .into_iter()
        .map(|(pattern, replacement)| {
            (
                Regex::new(pattern)
                    .unwrap_or_else(|e| unreachable!("secret pattern {pattern}: {e}")),
                replacement,
            )
        })
        .collect()
});

/// Collapses control characters and runs of white space, strips secrets, and bounds the length.
///
/// White space is collapsed first, so that a secret split by a control character
/// (`Bearer\u{0}abc`) is seen, and stripped, in the form it is stored in.
pub fn sanitize_message(raw: &str) -> String {
    let mut text = raw
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    for (pattern, replacement) in SECRET_PATTERNS.iter() {
        text = pattern
            .replace_all(&text, replacement.as_str())
            .into_owned();
    }
    if text.chars().count() <= FailureEntry::MAX_MESSAGE_CHARS {
        text
    } else {
        let mut bounded: String = text
            .chars()
            .take(FailureEntry::MAX_MESSAGE_CHARS - 1)
            .collect();
        bounded.push('…');
        bounded
    }
}
