//! docs/export-format.md cannot drift from the code: its worked example verifies offline, is
//! what the exporter writes, and its hashes are recomputed here independently of the ledger's
//! code (SHA-256 of the stated bytes); its table of numbers is what the canonicalizer writes.

use std::io::BufReader;

use regex::Regex;
use runledger_audit::format::{ExportHeader, parse_header};
use runledger_audit::verify::Target;
use runledger_audit::{AuditEvent, verify_export};
use runledger_core::identity::canonical_json;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const EXPORT_FORMAT: &str = include_str!("../../../docs/export-format.md");

/// The text of the section under `heading` (a whole heading line), up to the next heading of
/// the same or a higher level.
fn section(heading: &str) -> &'static str {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let start = EXPORT_FORMAT
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("docs/export-format.md has no {heading:?}"))
        + heading.len()
        + 2;
    let rest = &EXPORT_FORMAT[start..];
    let end = rest
        .match_indices("\n#")
        .find(|(at, _)| {
            let hashes = rest[at + 1..].chars().take_while(|c| *c == '#').count();
            hashes <= level && rest[at + 1 + hashes..].starts_with(' ')
        })
        .map_or(rest.len(), |(at, _)| at);
    &rest[..end]
}

/// The fenced blocks of `text` with info string `info`, their contents without the fences.
fn fenced(text: &'static str, info: &str) -> Vec<&'static str> {
    let fence = Regex::new(r"(?ms)^```(\w*)\n(.*?)^```$").unwrap();
    fence
        .captures_iter(text)
        .filter(|block| &block[1] == info)
        .map(|block| block.get(2).unwrap().as_str())
        .collect()
}

/// The nine fields of an event line that its hash covers, as the document says.
fn hashed_document(line: &Value) -> Value {
    let fields = [
        "event_id",
        "run_id",
        "tenant_id",
        "version",
        "event_type",
        "schema_version",
        "payload",
        "metadata",
        "recorded_at",
    ];
    Value::Object(
        fields
            .iter()
            .map(|field| ((*field).to_owned(), line[*field].clone()))
            .collect(),
    )
}

#[test]
fn export_format_worked_example_is_what_the_code_writes_and_verifies() {
    let example = section("## Worked example");
    let files = fenced(example, "ndjson");
    assert_eq!(files.len(), 1, "one example file");
    let file = files[0];
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(lines.len(), 4, "a header, two events, an end line");

    // The audit crate's offline verifier accepts the file as a whole.
    let verified = verify_export(BufReader::new(file.as_bytes()), Target::Log, None).unwrap();
    assert!(verified.report.is_valid(), "{}", verified.report.summary());
    assert_eq!((verified.report.events, verified.report.runs), (2, 1));

    // Each line is exactly what the exporter writes: the header and the event lines
    // re-serialize to themselves from what they hold.
    let header: ExportHeader = parse_header(lines[0]).unwrap();
    assert_eq!(serde_json::to_string(&header).unwrap(), lines[0]);
    let events: Vec<AuditEvent> = lines[1..3]
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    for (event, line) in events.iter().zip(&lines[1..3]) {
        let stored = event.clone().into_recorded().unwrap();
        assert_eq!(
            serde_json::to_string(&AuditEvent::from(&stored)).unwrap(),
            *line
        );
    }

    // The bytes hashed, recomputed without the ledger's code: the text blocks are the JCS of
    // each line's nine fields, their stated lengths are theirs, and SHA-256 of the previous
    // hash's 32 bytes followed by them is the line's hash, as stated.
    let canonical = fenced(example, "text");
    assert_eq!(canonical.len(), 2, "the bytes hashed for each event");
    let stated_lengths: Vec<usize> = Regex::new(r"these (\d+) bytes")
        .unwrap()
        .captures_iter(example)
        .map(|c| c[1].parse().unwrap())
        .collect();
    let stated_hashes: Vec<String> = Regex::new(r"its `hash`, `([0-9a-f]{64})`")
        .unwrap()
        .captures_iter(example)
        .map(|c| c[1].to_owned())
        .collect();
    assert_eq!(stated_lengths.len(), 2);
    assert_eq!(stated_hashes.len(), 2);
    let mut previous = [0u8; 32];
    for (index, line) in lines[1..3].iter().enumerate() {
        let line: Value = serde_json::from_str(line).unwrap();
        let bytes = canonical[index].strip_suffix('\n').unwrap().as_bytes();
        assert_eq!(bytes.len(), stated_lengths[index]);
        assert_eq!(
            serde_json_canonicalizer::to_vec(&hashed_document(&line)).unwrap(),
            bytes,
            "event {index}'s block is the JCS of its line"
        );
        let prev_hash = hex::decode(line["prev_hash"].as_str().unwrap()).unwrap();
        assert_eq!(
            prev_hash, previous,
            "event {index} chains to the one before"
        );
        let hash: [u8; 32] = Sha256::new()
            .chain_update(&prev_hash)
            .chain_update(bytes)
            .finalize()
            .into();
        assert_eq!(hex::encode(hash), line["hash"].as_str().unwrap());
        assert_eq!(hex::encode(hash), stated_hashes[index]);
        previous = hash;
    }
    // Version 1 chains from 32 zero bytes, written as 64 `0` characters.
    assert_eq!(events[0].version, 1);
    assert_eq!(events[0].prev_hash, "0".repeat(64));
}

#[test]
fn export_format_number_table_is_what_the_canonicalizer_writes() {
    let table = section("#### Numbers");
    let row = Regex::new(r"(?m)^\| `([^`]+)` \| `([^`]+)` \|$").unwrap();
    let rows: Vec<(String, String)> = row
        .captures_iter(table)
        .map(|c| (c[1].to_owned(), c[2].to_owned()))
        .collect();
    assert!(rows.len() >= 5, "the table of numbers: {rows:?}");
    for (written, hashed) in rows {
        let value: Value = serde_json::from_str(&written).unwrap();
        let canonical = canonical_json(&json!({ "n": value }));
        assert_eq!(
            String::from_utf8(canonical).unwrap(),
            format!("{{\"n\":{hashed}}}"),
            "{written} is hashed as {hashed}"
        );
    }
}
