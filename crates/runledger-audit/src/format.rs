//! The export format (docs/export-format.md): a header line, one [`AuditEvent`] per line in safe
//! log order, and an end line; the same event JSON the audit HTTP routes answer.
//!
//! An event line holds every stored field, so a verifier can recompute each hash from the line
//! alone, with no database and no trust in the server that wrote it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use runledger_core::{EventId, RunId, TenantId};
use runledger_store::{LogCursor, RecordedEvent};
use serde::{Deserialize, Serialize};

/// The `format` of an export's header line.
pub const EXPORT_FORMAT: &str = "runledger-export";

/// The `format` of an export's end line.
pub const EXPORT_END_FORMAT: &str = "runledger-export-end";

/// The version of the export format this code writes and reads. A change to any line's shape is
/// a new version; readers refuse versions they do not know.
pub const EXPORT_FORMAT_VERSION: u32 = 1;

/// The media type of an export.
pub const NDJSON: &str = "application/x-ndjson";

/// One stored event, exactly as stored (the wire crate's type: the audit routes answer it too).
pub use runledger_wire::AuditEvent;

/// The line of a stored event.
pub fn audit_event(event: &RecordedEvent) -> AuditEvent {
    AuditEvent {
        cursor: LogCursor::after(event).to_string(),
        position: event.position,
        tx_id: event.tx_id,
        tenant_id: event.tenant_id.get(),
        run_id: event.run_id.as_uuid(),
        version: event.version,
        event_id: event.event_id.as_uuid(),
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        payload: event.payload.clone(),
        metadata: event.metadata.clone(),
        recorded_at: rfc3339(event.recorded_at),
        prev_hash: hex::encode(event.prev_hash),
        hash: hex::encode(event.hash),
    }
}

/// The stored event a line describes.
///
/// # Errors
/// A description of the first field that is not what a stored event can hold.
pub fn recorded_event(line: AuditEvent) -> Result<RecordedEvent, String> {
    let hash = |field: &str, text: &str| -> Result<[u8; 32], String> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(text, &mut bytes)
            .map_err(|_| format!("{field} is not 64 hex digits"))?;
        Ok(bytes)
    };
    let cursor = LogCursor {
        tx_id: line.tx_id,
        position: line.position,
    };
    if line.cursor != cursor.to_string() {
        return Err(format!(
            "cursor {} is not tx_id.position ({cursor})",
            line.cursor
        ));
    }
    Ok(RecordedEvent {
        position: line.position,
        tx_id: line.tx_id,
        event_id: EventId::from_uuid(line.event_id),
        tenant_id: TenantId::new(line.tenant_id).map_err(|e| format!("tenant_id: {e}"))?,
        run_id: RunId::from_uuid(line.run_id),
        version: line.version,
        prev_hash: hash("prev_hash", &line.prev_hash)?,
        hash: hash("hash", &line.hash)?,
        recorded_at: DateTime::parse_from_rfc3339(&line.recorded_at)
            .map_err(|e| format!("recorded_at: {e}"))?
            .with_timezone(&Utc),
        event_type: line.event_type,
        schema_version: line.schema_version,
        payload: line.payload,
        metadata: line.metadata,
    })
}

/// A time as the audit formats write it: the form the hash chain covers.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// One end of an export's range: a log cursor (`tx_id.position`, as export lines and anchors
/// print it) or a record time (RFC 3339).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogBound {
    /// After this cursor (`--since`), or up to and including it (`--until`).
    Cursor(LogCursor),
    /// Recorded at or after this time (`--since`), or at or before it (`--until`).
    Time(DateTime<Utc>),
}

impl LogBound {
    /// Whether `event` comes after this bound (for `since`).
    pub fn is_before(&self, event: &RecordedEvent) -> bool {
        match self {
            LogBound::Cursor(cursor) => LogCursor::after(event) > *cursor,
            LogBound::Time(time) => event.recorded_at >= *time,
        }
    }

    /// Whether `event` comes at or before this bound (for `until`).
    pub fn is_at_or_after(&self, event: &RecordedEvent) -> bool {
        match self {
            LogBound::Cursor(cursor) => LogCursor::after(event) <= *cursor,
            LogBound::Time(time) => event.recorded_at <= *time,
        }
    }
}

impl fmt::Display for LogBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogBound::Cursor(cursor) => cursor.fmt(f),
            LogBound::Time(time) => f.write_str(&rfc3339(*time)),
        }
    }
}

/// A bound that is neither a cursor nor a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a bound is a log cursor (`tx_id.position`) or an RFC 3339 time (`2026-11-26T12:00:00Z`)")]
pub struct InvalidBound;

impl FromStr for LogBound {
    type Err = InvalidBound;
    fn from_str(text: &str) -> Result<Self, InvalidBound> {
        if let Ok(cursor) = text.parse() {
            return Ok(LogBound::Cursor(cursor));
        }
        DateTime::parse_from_rfc3339(text)
            .map(|time| LogBound::Time(time.with_timezone(&Utc)))
            .map_err(|_| InvalidBound)
    }
}

impl Serialize for LogBound {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LogBound {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Which events an export (or a verification) covers. Everything when nothing is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Only this tenant's events.
    pub tenant_id: Option<TenantId>,
    /// Only this run's events (of `tenant_id`).
    pub run_id: Option<RunId>,
    /// Only events after this bound: runs then start mid-chain.
    pub since: Option<LogBound>,
    /// Only events up to this bound.
    pub until: Option<LogBound>,
}

impl Scope {
    /// Whether `event` is in scope.
    pub fn contains(&self, event: &RecordedEvent) -> bool {
        self.tenant_id
            .is_none_or(|tenant| event.tenant_id == tenant)
            && self.run_id.is_none_or(|run| event.run_id == run)
            && self.since.is_none_or(|since| since.is_before(event))
            && self.until.is_none_or(|until| until.is_at_or_after(event))
    }

    /// Whether the scope holds every event of whole tenants up to its end, so that anchors (which
    /// digest whole tenants) can be checked against it.
    pub fn holds_whole_tenants(&self) -> bool {
        self.run_id.is_none() && self.since.is_none() && self.until.is_none()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(tenant) = self.tenant_id {
            parts.push(format!("tenant {tenant}"));
        }
        if let Some(run) = self.run_id {
            parts.push(format!("run {run}"));
        }
        if let Some(since) = self.since {
            parts.push(format!("since {since}"));
        }
        if let Some(until) = self.until {
            parts.push(format!("until {until}"));
        }
        if parts.is_empty() {
            f.write_str("the whole log")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// The first line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportHeader {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// [`EXPORT_FORMAT_VERSION`] when written by this code.
    pub format_version: u32,
    /// The database clock when the export began.
    pub exported_at: String,
    /// The export holds the events (in scope) of every transaction below this id: all that had
    /// finished when the export began, and nothing later.
    pub horizon_tx_id: u64,
    /// Which events it holds.
    pub scope: Scope,
}

/// The last line of an export: without it the file was cut short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportEnd {
    /// Always [`EXPORT_END_FORMAT`].
    pub format: String,
    /// How many event lines the export holds.
    pub events: u64,
    /// The cursor of the last event line, if any.
    pub last_cursor: Option<String>,
}

/// A line of an export after the header.
#[derive(Debug)]
pub enum ExportLine {
    /// An event.
    Event(Box<RecordedEvent>),
    /// The end line.
    End(ExportEnd),
}

/// Reads the header line.
///
/// # Errors
/// A description of what is wrong with it.
pub fn parse_header(line: &str) -> Result<ExportHeader, String> {
    let header: ExportHeader = serde_json::from_str(line)
        .map_err(|e| format!("the first line is not a runledger export header: {e}"))?;
    if header.format != EXPORT_FORMAT {
        return Err(format!(
            "the first line is a {:?} header, not {EXPORT_FORMAT:?}",
            header.format
        ));
    }
    if header.format_version != EXPORT_FORMAT_VERSION {
        return Err(format!(
            "export format version {} is not one this verifier reads ({EXPORT_FORMAT_VERSION})",
            header.format_version
        ));
    }
    Ok(header)
}

/// Reads a line after the header.
///
/// # Errors
/// A description of what is wrong with it.
pub fn parse_line(line: &str) -> Result<ExportLine, String> {
    match serde_json::from_str::<AuditEvent>(line) {
        Ok(event) => Ok(ExportLine::Event(Box::new(recorded_event(event)?))),
        Err(event_error) => match serde_json::from_str::<ExportEnd>(line) {
            Ok(end) if end.format == EXPORT_END_FORMAT => Ok(ExportLine::End(end)),
            _ => Err(format!("not an event line: {event_error}")),
        },
    }
}

/// A line of JSON with its newline.
pub(crate) fn json_line(value: &impl Serialize) -> String {
    let mut line = serde_json::to_string(value)
        .unwrap_or_else(|e| unreachable!("export lines always serialize: {e}"));
    line.push('\n');
    line
}
