//! Tidy checks of the source tree: every Rust file opens with its `//!` line, and only the
//! store reads the `events` table.

use std::path::{Path, PathBuf};

use regex::Regex;

/// The files outside `crates/runledger-store/` that may name `events` in SQL, each with its
/// reason.
const EVENTS_SQL_ALLOWED: &[(&str, &str)] = &[(
    "crates/runledger-bench/src/append/baseline.rs",
    "the append bench's raw-SQL baselines measure the store against plain SQL over a table \
     like `events`, so they must not go through the store",
)];

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_path_buf()
}

/// Every `.rs` file under `dir` (build output aside), as paths relative to the root.
fn rust_files(dir: &str) -> Vec<String> {
    let root = root();
    let mut pending = vec![root.join(dir)];
    let mut files = Vec::new();
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|name| name != "target") {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path.strip_prefix(&root).expect("under the root");
                files.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no Rust files under {dir}");
    files
}

/// SQL naming the `events` table: `FROM events`, `JOIN events` (any case, any whitespace).
fn events_sql() -> Regex {
    Regex::new(r#"(?i)\b(from|join)\s+(public\.)?"?events\b"#).expect("a valid pattern")
}

fn read(file: &str) -> String {
    std::fs::read_to_string(root().join(file)).expect("read a source file")
}

#[test]
fn every_rust_file_opens_with_its_doc_line() {
    let undocumented: Vec<String> = ["crates", "tests"]
        .into_iter()
        .flat_map(rust_files)
        .filter(|file| !read(file).starts_with("//!"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "these files do not open with a `//!` line saying their one concept: {undocumented:?}"
    );
}

#[test]
fn only_the_store_reads_the_events_table() {
    // SQL naming the table, in code (comments may speak of events freely); tests under tests/
    // may read it directly, since they check the store from outside.
    let events_sql = events_sql();
    let mut found = Vec::new();
    for file in rust_files("crates") {
        if file.starts_with("crates/runledger-store/")
            || EVENTS_SQL_ALLOWED
                .iter()
                .any(|(allowed, _)| file == *allowed)
        {
            continue;
        }
        let code: String = read(&file)
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        found.extend(
            events_sql
                .find_iter(&code)
                .map(|sql| format!("{file}: {:?}", sql.as_str())),
        );
    }
    assert!(
        found.is_empty(),
        "SQL over `events` outside the store (read the log through runledger_store's \
         EventReader instead): {found:?}"
    );
}

#[test]
fn every_allowed_file_exists() {
    // An allowance that outlives its file would quietly allow whatever takes its path next.
    for (file, reason) in EVENTS_SQL_ALLOWED {
        assert!(
            root().join(file).is_file(),
            "{file} is allowed SQL over events ({reason}) but does not exist"
        );
    }
}

#[test]
fn the_tidy_check_sees_sql_over_events() {
    // The check above is only as good as its pattern: it must catch the shapes the log's SQL
    // takes, and let prose pass.
    let events_sql = events_sql();
    for sql in [
        "SELECT count(*) FROM events",
        "select 1 from events e",
        "FROM projection_versions v JOIN events e ON",
        "SELECT 1 FROM\n             events WHERE",
        "FROM public.events",
    ] {
        assert!(events_sql.is_match(sql), "{sql}");
    }
    for prose in [
        "FROM events_archive",
        "the events from a run",
        "FROM eventsx",
    ] {
        assert!(!events_sql.is_match(prose), "{prose}");
    }
}
