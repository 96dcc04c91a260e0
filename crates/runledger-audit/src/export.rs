//! Exports: the log (of a tenant, a run, a range) as NDJSON in safe log order, produced as a
//! stream of chunks so that memory stays bounded by one batch however long the log is.
//!
//! The export is a consistent cut: it holds the events (in scope) of every transaction that had
//! finished when it began, and none of those that had not, however many are appended while it
//! runs. The CLI writes the chunks to stdout; the HTTP route streams them as the response body.

use futures_util::{Stream, stream};
use runledger_store::{EventReader, LogCursor, LogWalk, RecordedEvent};

use crate::LOG_BATCH;
use crate::error::AuditError;
use crate::format::{
    AuditEvent, EXPORT_END_FORMAT, EXPORT_FORMAT, EXPORT_FORMAT_VERSION, ExportEnd, ExportHeader,
    LogBound, Scope, json_line, rfc3339,
};

/// Some lines of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportChunk {
    /// Whole lines, each ending in a newline.
    pub text: String,
    /// How many of them are events.
    pub events: u64,
}

/// Where an export's events come from.
enum Source {
    /// The log (or a tenant's), walked in safe order.
    Log(LogWalk),
    /// One run's events, read at once, in log order.
    Run(Option<Vec<RecordedEvent>>),
}

struct Export {
    header: Option<ExportHeader>,
    scope: Scope,
    source: Source,
    events: u64,
    last_cursor: Option<LogCursor>,
    finished: bool,
}

/// The export of `scope`: its header, its events, its end line (docs/export-format.md).
///
/// # Errors
/// [`AuditError::InvalidScope`] for a run without its tenant; on a database failure before the
/// first line. Failures later end the stream with an error (and the export without its end
/// line, so that it does not verify).
pub async fn export(
    reader: EventReader,
    scope: Scope,
) -> Result<impl Stream<Item = Result<ExportChunk, AuditError>> + Send + 'static, AuditError> {
    let horizon = reader.horizon().await?;
    let source = match (scope.tenant_id, scope.run_id) {
        (Some(tenant), Some(run)) => {
            let mut events = reader.read_stream(tenant, run).await?;
            events.retain(|event| event.tx_id < horizon.tx_id);
            events.sort_by_key(LogCursor::after);
            Source::Run(Some(events))
        }
        (None, Some(_)) => {
            return Err(AuditError::InvalidScope(
                "a run is exported with its tenant".to_owned(),
            ));
        }
        (tenant, None) => {
            let after = match scope.since {
                Some(LogBound::Cursor(cursor)) => cursor,
                _ => LogCursor::START,
            };
            Source::Log(reader.walk_to(horizon, after, tenant, LOG_BATCH))
        }
    };
    let export = Export {
        header: Some(ExportHeader {
            format: EXPORT_FORMAT.to_owned(),
            format_version: EXPORT_FORMAT_VERSION,
            exported_at: rfc3339(horizon.at),
            horizon_tx_id: horizon.tx_id,
            scope: scope.clone(),
        }),
        scope,
        source,
        events: 0,
        last_cursor: None,
        finished: false,
    };
    Ok(stream::try_unfold(export, |mut export| async move {
        let chunk = export.next_chunk().await?;
        Ok(chunk.map(|chunk| (chunk, export)))
    }))
}

impl Export {
    async fn next_chunk(&mut self) -> Result<Option<ExportChunk>, AuditError> {
        if let Some(header) = self.header.take() {
            return Ok(Some(ExportChunk {
                text: json_line(&header),
                events: 0,
            }));
        }
        if self.finished {
            return Ok(None);
        }
        loop {
            let batch = match &mut self.source {
                Source::Log(walk) => walk.next_batch().await?,
                Source::Run(events) => events.take(),
            };
            let Some(batch) = batch else {
                return Ok(Some(self.end()));
            };
            let past_until = match (self.scope.until, batch.last()) {
                (Some(LogBound::Cursor(until)), Some(last)) => LogCursor::after(last) > until,
                _ => false,
            };
            let mut chunk = ExportChunk {
                text: String::new(),
                events: 0,
            };
            for event in batch.iter().filter(|event| self.scope.contains(event)) {
                chunk.text.push_str(&json_line(&AuditEvent::from(event)));
                chunk.events += 1;
                self.last_cursor = Some(LogCursor::after(event));
            }
            self.events += chunk.events;
            if past_until {
                chunk.text.push_str(&self.end().text);
                return Ok(Some(chunk));
            }
            if chunk.events > 0 {
                return Ok(Some(chunk));
            }
        }
    }

    /// The end line; nothing follows it.
    fn end(&mut self) -> ExportChunk {
        self.finished = true;
        ExportChunk {
            text: json_line(&ExportEnd {
                format: EXPORT_END_FORMAT.to_owned(),
                events: self.events,
                last_cursor: self.last_cursor.map(|cursor| cursor.to_string()),
            }),
            events: 0,
        }
    }
}
