//! Reading export and anchor files line by line, or in batches decoded on every core, with
//! memory bounded by one batch of lines.

use std::io::BufRead;

use runledger_core::{RunId, TenantId};
use runledger_store::RecordedEvent;

use crate::anchor::Anchor;
use crate::error::AuditError;
use crate::format::{ExportEnd, ExportHeader, ExportLine, parse_header, parse_line};
use crate::parallel;

/// A line of an export after the header, as far as a reader is concerned.
#[derive(Debug)]
pub enum ExportItem {
    /// A well-formed event line.
    Event(Box<RecordedEvent>),
    /// A line that is not what an export holds there, described with its line number.
    Invalid(String),
}

/// An event line with its hash already recomputed, or a line that is not one.
#[derive(Debug)]
pub enum CheckedItem {
    /// A well-formed event line.
    Event {
        /// The event.
        event: Box<RecordedEvent>,
        /// [`RecordedEvent::hash_is_intact`].
        hash_is_intact: bool,
    },
    /// A line that is not what an export holds there, described with its line number.
    Invalid(String),
}

/// One line as read: its number and its bytes, newline included.
type RawLine = (u64, Vec<u8>);

/// What one line holds, decoded on its own.
enum Decoded {
    Blank,
    Line(ExportLine),
    Invalid(String),
}

fn decode(line_number: u64, bytes: &[u8]) -> Decoded {
    let Ok(line) = std::str::from_utf8(bytes) else {
        return Decoded::Invalid(format!("line {line_number}: not UTF-8"));
    };
    let line = line.trim_end_matches(['\n', '\r']);
    if line.is_empty() {
        return Decoded::Blank;
    }
    match parse_line(line) {
        Ok(line) => Decoded::Line(line),
        Err(problem) => Decoded::Invalid(format!("line {line_number}: {problem}")),
    }
}

/// An export being read: its header, then its lines.
#[derive(Debug)]
pub struct ExportReader<R> {
    input: R,
    line_number: u64,
    header: ExportHeader,
    events: u64,
    end: Option<ExportEnd>,
}

impl<R: BufRead> ExportReader<R> {
    /// Reads the header.
    ///
    /// # Errors
    /// [`AuditError::NotAnExport`] when the first line is not an export header of a known
    /// version; [`AuditError::Io`] when reading fails.
    pub fn open(mut input: R) -> Result<Self, AuditError> {
        let mut buffer = Vec::new();
        input.read_until(b'\n', &mut buffer)?;
        let line = std::str::from_utf8(&buffer)
            .map_err(|_| AuditError::NotAnExport("the first line is not UTF-8".to_owned()))?;
        let header = parse_header(line.trim_end()).map_err(AuditError::NotAnExport)?;
        Ok(ExportReader {
            input,
            line_number: 1,
            header,
            events: 0,
            end: None,
        })
    }

    /// The export's header.
    pub fn header(&self) -> &ExportHeader {
        &self.header
    }

    /// Up to `count` more lines; none at the end of the input.
    fn read_lines(&mut self, count: usize) -> Result<Vec<RawLine>, AuditError> {
        let mut lines = Vec::with_capacity(count);
        while lines.len() < count {
            let mut bytes = Vec::new();
            if self.input.read_until(b'\n', &mut bytes)? == 0 {
                break;
            }
            self.line_number += 1;
            lines.push((self.line_number, bytes));
        }
        Ok(lines)
    }

    /// Takes a decoded line in file order: counts events, keeps the end line, and refuses
    /// lines after it. Returns the event or the problem, if the line is either.
    fn take(
        &mut self,
        line_number: u64,
        decoded: Decoded,
    ) -> Option<Result<Box<RecordedEvent>, String>> {
        match decoded {
            Decoded::Blank => None,
            _ if self.end.is_some() => {
                Some(Err(format!("line {line_number}: comes after the end line")))
            }
            Decoded::Line(ExportLine::Event(event)) => {
                self.events += 1;
                Some(Ok(event))
            }
            Decoded::Line(ExportLine::End(end)) => {
                self.end = Some(end);
                None
            }
            Decoded::Invalid(problem) => Some(Err(problem)),
        }
    }

    /// The next event line (or a description of a line that is not one); `None` at the end of
    /// the input. The end line is read, kept for [`ExportReader::end_problems`], and skipped.
    ///
    /// # Errors
    /// [`AuditError::Io`] when reading fails.
    pub fn next_item(&mut self) -> Result<Option<ExportItem>, AuditError> {
        loop {
            let Some((line_number, bytes)) = self.read_lines(1)?.pop() else {
                return Ok(None);
            };
            match self.take(line_number, decode(line_number, &bytes)) {
                Some(Ok(event)) => return Ok(Some(ExportItem::Event(event))),
                Some(Err(problem)) => return Ok(Some(ExportItem::Invalid(problem))),
                None => {}
            }
        }
    }

    /// The items of the next `count` lines (fewer at the end), decoded and their events'
    /// hashes recomputed on every core; `None` at the end of the input.
    ///
    /// # Errors
    /// [`AuditError::Io`] when reading fails.
    pub fn next_checked(&mut self, count: usize) -> Result<Option<Vec<CheckedItem>>, AuditError> {
        let lines = self.read_lines(count)?;
        if lines.is_empty() {
            return Ok(None);
        }
        let decoded = parallel::map(&lines, |(line_number, bytes)| {
            let decoded = decode(*line_number, bytes);
            let intact = match &decoded {
                Decoded::Line(ExportLine::Event(event)) => event.hash_is_intact(),
                _ => false,
            };
            (decoded, intact)
        });
        Ok(Some(
            lines
                .iter()
                .zip(decoded)
                .filter_map(|((line_number, _), (decoded, hash_is_intact))| {
                    self.take(*line_number, decoded).map(|item| match item {
                        Ok(event) => CheckedItem::Event {
                            event,
                            hash_is_intact,
                        },
                        Err(problem) => CheckedItem::Invalid(problem),
                    })
                })
                .collect(),
        ))
    }

    /// What is wrong with the end of the export, once every line is read: a missing end line
    /// (the file was cut short) or one that counts other events than the file holds.
    pub fn end_problems(&self) -> Vec<String> {
        match &self.end {
            None => vec!["the export has no end line: it was cut short".to_owned()],
            Some(end) if end.events != self.events => vec![format!(
                "the end line counts {} events, the export holds {} event lines",
                end.events, self.events
            )],
            Some(_) => Vec::new(),
        }
    }
}

/// One run's events from an export, in version order, for a replay.
///
/// # Errors
/// [`AuditError::NotAnExport`] when the file is not an export or has a line that is not one
/// (verify it to see what is wrong); [`AuditError::Io`] when reading fails.
pub fn run_from_export(
    input: impl BufRead,
    tenant: TenantId,
    run: RunId,
) -> Result<Vec<RecordedEvent>, AuditError> {
    let mut export = ExportReader::open(input)?;
    let mut events = Vec::new();
    while let Some(item) = export.next_item()? {
        match item {
            ExportItem::Event(event) if event.run_id == run && event.tenant_id == tenant => {
                events.push(*event);
            }
            ExportItem::Event(_) => {}
            ExportItem::Invalid(problem) => {
                return Err(AuditError::NotAnExport(format!(
                    "{problem} (run `runledger verify --file` to see every problem)"
                )));
            }
        }
    }
    events.sort_by_key(|event| event.version);
    Ok(events)
}

/// Reads an anchor file (`runledger anchors export`): one anchor per line.
///
/// # Errors
/// [`AuditError::NotAnExport`] for a line that is not an anchor; [`AuditError::Io`] when
/// reading fails.
pub fn read_anchors(input: impl BufRead) -> Result<Vec<Anchor>, AuditError> {
    let mut anchors = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let anchor = Anchor::parse_line(&line).map_err(|problem| {
            AuditError::NotAnExport(format!("anchor file line {}: {problem}", index + 1))
        })?;
        anchors.push(anchor);
    }
    Ok(anchors)
}
