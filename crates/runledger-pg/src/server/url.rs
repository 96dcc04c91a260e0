//! The server's connection URLs: the superuser over the unix socket, percent-encoded.

use std::fmt::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The URL of `database` as `user` over the socket in `socket_dir` named by `port`.
pub(super) fn socket_url(user: &str, database: &str, socket_dir: &Path, port: u16) -> String {
    format!(
        "postgres://{user}@localhost/{}?host={}&port={port}&sslmode=disable",
        percent_encode(database.as_bytes(), b""),
        percent_encode(socket_dir.as_os_str().as_bytes(), b"/"),
    )
}

/// Percent-encodes everything but unreserved URL characters and `keep`.
fn percent_encode(bytes: &[u8], keep: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || keep.contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_percent_encode_the_socket_directory_and_database() {
        assert_eq!(percent_encode(b"/tmp/a b+c", b"/"), "/tmp/a%20b%2Bc");
        assert_eq!(percent_encode(b"my/db", b""), "my%2Fdb");
        assert_eq!(
            socket_url("postgres", "my db", Path::new("/tmp/s k"), 5432),
            "postgres://postgres@localhost/my%20db?host=/tmp/s%20k&port=5432&sslmode=disable"
        );
    }
}
