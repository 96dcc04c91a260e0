//! Failure summaries: merged by code, bounded with an `other` bucket, and sanitized before any event exists.

use super::*;
use crate::failure::{REDACTED, merge_failures, sanitize_message};

#[test]
fn failures_merge_by_code_adding_counts_and_keeping_the_newest_message() {
    let run = snapshot(&[
        queued(),
        started(),
        progressed(
            ProgressDelta::default(),
            None,
            vec![entry("graph.throttled", "Throttled (retrying)", 1)],
        ),
        progressed(
            delta(0, 3, 0),
            None,
            vec![
                entry("graph.throttled", "Throttled again", 2),
                entry("graph.not_found", "Policy not found", 1),
            ],
        ),
        progressed(
            ProgressDelta::default(),
            None,
            vec![entry("graph.not_found", "Group not found", 4)],
        ),
    ]);
    assert_eq!(
        run.failure_summary,
        vec![
            entry("graph.throttled", "Throttled again", 3),
            entry("graph.not_found", "Group not found", 5),
        ]
    );
}

#[test]
fn failures_of_one_report_with_the_same_code_merge_too() {
    let mut summary = Vec::new();
    merge_failures(
        &mut summary,
        &[
            entry("a", "first", 1),
            entry("b", "b", 1),
            entry("a", "second", 2),
        ],
    );
    assert_eq!(summary, vec![entry("a", "second", 3), entry("b", "b", 1)]);
}

#[test]
fn completed_merges_its_failures_into_the_summary() {
    let run = snapshot(&[
        queued(),
        started(),
        progressed(
            delta(0, 1, 0),
            None,
            vec![entry("graph.throttled", "old", 1)],
        ),
        RunEvent::Completed(RunCompleted {
            outcome: Outcome::Failed,
            reason: CompletionReason::Finished,
            failures: vec![entry("graph.throttled", "new", 1)],
            final_counts: None,
            completed_at: at(3),
        }),
    ]);
    assert_eq!(
        run.failure_summary,
        vec![entry("graph.throttled", "new", 2)]
    );
}

#[test]
fn merged_counts_saturate_instead_of_overflowing() {
    let mut summary = vec![entry("a", "m", u64::MAX - 1)];
    merge_failures(&mut summary, &[entry("a", "m", 5)]);
    assert_eq!(summary, vec![entry("a", "m", u64::MAX)]);
}

/// `n` distinct codes `code.0` … with a count of one each.
fn distinct(range: std::ops::Range<usize>) -> Vec<FailureEntry> {
    range
        .map(|i| entry(&format!("code.{i}"), &format!("message {i}"), 1))
        .collect()
}

#[test]
fn the_summary_is_bounded_with_an_other_bucket() {
    let max = FailureEntry::MAX_ENTRIES;
    let mut summary = Vec::new();
    merge_failures(&mut summary, &distinct(0..max + 10));
    assert_eq!(summary.len(), max);
    // The first MAX_ENTRIES - 1 codes keep their own entries ...
    assert_eq!(summary[..max - 1], distinct(0..max - 1)[..]);
    // ... and the last entry counts every later code.
    let other = &summary[max - 1];
    assert_eq!(other.code.as_str(), FailureCode::OTHER);
    assert_eq!(other.count, 11);
    // A known code still merges into its own entry once the summary is full.
    merge_failures(&mut summary, &[entry("code.3", "again", 4)]);
    assert_eq!(summary[3], entry("code.3", "again", 5));
    // Further new codes keep landing in `other`.
    merge_failures(&mut summary, &distinct(500..503));
    assert_eq!(summary.len(), max);
    assert_eq!(summary[max - 1].count, 14);
}

#[test]
fn a_reported_other_code_is_the_same_bucket() {
    let max = FailureEntry::MAX_ENTRIES;
    let mut summary = distinct(0..max - 1);
    merge_failures(&mut summary, &[entry("other", "reported as other", 2)]);
    assert_eq!(summary.len(), max);
    merge_failures(&mut summary, &distinct(100..103));
    assert_eq!(summary.len(), max);
    assert_eq!(summary[max - 1].code.as_str(), FailureCode::OTHER);
    assert_eq!(summary[max - 1].count, 5);
}

#[test]
fn the_bound_holds_through_decide_and_evolve() {
    let mut history = vec![queued(), started()];
    for chunk in 0..4 {
        let failures: Vec<FailureReport> = (0..20)
            .map(|i| report_failure(&format!("code.{chunk}.{i}"), "boom", 1))
            .collect();
        let state = replay(&history);
        let events = decide(&state, report(ProgressDelta::default(), None, failures))
            .expect("failures alone are a valid report");
        history.extend(events);
    }
    let run = snapshot(&history);
    assert_eq!(run.failure_summary.len(), FailureEntry::MAX_ENTRIES);
    let counted: u64 = run.failure_summary.iter().map(|e| e.count).sum();
    assert_eq!(counted, 80);
}

#[test]
fn decide_sanitizes_reported_messages() {
    check(
        &[queued(), started()],
        report(
            delta(0, 1, 0),
            None,
            vec![report_failure(
                "graph.unauthorized",
                "401 for Authorization: Bearer abc.def-ghi",
                0,
            )],
        ),
        Ok(vec![progressed(
            delta(0, 1, 0),
            None,
            vec![entry(
                "graph.unauthorized",
                "401 for Authorization: [redacted] [redacted]",
                1,
            )],
        )]),
    );
}

/// Sanitizing `raw` gives exactly `expected`.
#[track_caller]
fn check_sanitized(raw: &str, expected: &str) {
    assert_eq!(sanitize_message(raw), expected);
}

#[test]
fn ordinary_text_is_kept() {
    for text in [
        "Throttled (retrying)",
        "graph.throttled: 429 Too Many Requests",
        "Policy 'Windows 11 baseline' not found",
        "Zürich: 3 of 5 devices failed — retry in 30s",
        "token expired",
        "secret rotation is due",
        "https://graph.microsoft.com/v1.0/deviceManagement",
        "",
    ] {
        check_sanitized(text, text);
    }
}

#[test]
fn bearer_and_basic_credentials_are_stripped() {
    check_sanitized(
        "request failed: bearer eyJraWQiOiIx.abc~+/=",
        "request failed: bearer [redacted]",
    );
    check_sanitized("Basic dXNlcjpwYXNz rejected", "Basic [redacted] rejected");
}

#[test]
fn key_value_secrets_are_stripped() {
    let cases = [
        (
            "login failed password=hunter2 for admin",
            "login failed password=[redacted] for admin",
        ),
        ("password = hunter2", "password = [redacted]"),
        ("api_key: abc123, retrying", "api_key: [redacted], retrying"),
        ("API-KEY=abc123", "API-KEY=[redacted]"),
        (
            "client_secret=s3cr3t&grant_type=client_credentials",
            "client_secret=[redacted]&grant_type=client_credentials",
        ),
        ("client-secret: 'two words'", "client-secret: [redacted]"),
        (
            r#"{"password": "hunter two", "user": "x"}"#,
            r#"{"password": [redacted], "user": "x"}"#,
        ),
        (
            "refresh_token=abc;access_token=def",
            "refresh_token=[redacted];access_token=[redacted]",
        ),
        ("sig=abc123 expired", "sig=[redacted] expired"),
    ];
    for (raw, expected) in cases {
        check_sanitized(raw, expected);
    }
}

#[test]
fn url_credentials_are_stripped() {
    check_sanitized(
        "GET https://user:pass@host.example/path failed",
        "GET https://[redacted]@host.example/path failed",
    );
    check_sanitized(
        "postgres://app:pa$$w0rd@db:5432/ledger unreachable",
        "postgres://[redacted]@db:5432/ledger unreachable",
    );
    // An unescaped `@` in the password does not leave its tail behind.
    check_sanitized(
        "redis://default:p@ss@cache:6379 and mail to ops@example.com",
        "redis://[redacted]@cache:6379 and mail to ops@example.com",
    );
}

#[test]
fn jwts_are_stripped() {
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    check_sanitized(
        &format!("token {jwt} rejected"),
        "token [redacted] rejected",
    );
    // Short JWTs too, which the long-key rule would miss.
    check_sanitized("got eyJhbGc.eyJzdWI.sig", "got [redacted]");
}

#[test]
fn pem_blocks_are_stripped() {
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc/def+ghi\n-----END RSA PRIVATE KEY-----";
    check_sanitized(
        &format!("bad key {pem} in config"),
        "bad key [redacted] in config",
    );
    // A block cut off before its end is stripped to the end of the text.
    check_sanitized(
        "bad key -----BEGIN PRIVATE KEY-----\nMIIEpAIB",
        "bad key [redacted]",
    );
}

#[test]
fn long_opaque_keys_are_stripped() {
    check_sanitized(
        "key 0123456789abcdef0123456789abcdef rejected",
        "key [redacted] rejected",
    );
    check_sanitized(
        "sas c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA== denied",
        "sas [redacted] denied",
    );
    // 31 characters are not yet "long".
    check_sanitized(
        "id 0123456789abcdef0123456789abcde",
        "id 0123456789abcdef0123456789abcde",
    );
}

#[test]
fn white_space_and_control_characters_collapse() {
    check_sanitized(
        "  line one\r\n\tline\u{0}two\u{7f}\u{1b}[31m  three \u{85} ",
        "line one line two [31m three",
    );
    check_sanitized("\n\t\u{0}", "");
}

#[test]
fn secrets_split_by_control_characters_are_stripped() {
    check_sanitized("Bearer\u{0}abc", "Bearer [redacted]");
    check_sanitized("password\u{1}=\u{1}hunter2", "password = [redacted]");
}

#[test]
fn messages_are_bounded_on_a_char_boundary() {
    let max = FailureEntry::MAX_MESSAGE_CHARS;
    let exact = "é".repeat(max);
    check_sanitized(&exact, &exact);

    // 498 two-byte chars, then three- and four-byte ones: the cut falls after the first `€`.
    let long = format!("{}{}", "é".repeat(max - 2), "€😀€😀€😀");
    let bounded = sanitize_message(&long);
    assert_eq!(bounded.chars().count(), max);
    assert_eq!(bounded, format!("{}€…", "é".repeat(max - 2)));

    let words = "Zürich ".repeat(max);
    let bounded = sanitize_message(&words);
    assert_eq!(bounded.chars().count(), max);
    assert!(bounded.starts_with("Zürich Zürich"));
    assert!(bounded.ends_with('…'));

    let bounded = sanitize_message(&"😀".repeat(3 * max));
    assert_eq!(bounded, format!("{}…", "😀".repeat(max - 1)));
}

#[test]
fn redaction_happens_before_bounding() {
    let max = FailureEntry::MAX_MESSAGE_CHARS;
    // The secret straddles the cut: it must not survive in part.
    let raw = format!("{} password=hunter2hunter2", "x ".repeat(max / 2 - 5));
    let bounded = sanitize_message(&raw);
    assert!(!bounded.contains("hunter"), "{bounded}");
    assert!(bounded.chars().count() <= max);
}

#[test]
fn the_placeholder_is_stable() {
    assert_eq!(REDACTED, "[redacted]");
    // Sanitizing twice changes nothing.
    let once = sanitize_message("password=hunter2 Bearer abc https://u:p@h eyJa.eyJb.c");
    assert_eq!(sanitize_message(&once), once);
}
