//! A readiness probe: does the server on a unix socket accept connections yet?
//!
//! This is what `pg_isready` does, written out so we neither depend on the client binaries nor
//! spawn a process every few milliseconds while the server starts.
//! A socket that accepts the TCP-level connect is not enough: while starting up, the server
//! answers the startup message with "the database system is starting up".

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Protocol version 3.0, the only one servers since 7.4 speak.
const PROTOCOL_3_0: i32 = 196_608;

/// How long one probe may wait on a silent server before it counts as not ready.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends a startup message for `user`/`database` to the socket file `socket`.
///
/// `Ok` once the server asks to authenticate (with trust: says "authenticated"), which means it
/// accepts connections; `Err` carries what we saw otherwise, for the startup error.
pub(crate) fn accepts_connections(socket: &Path, user: &str, database: &str) -> Result<(), String> {
    let mut stream = UnixStream::connect(socket)
        .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
    let io_error = |e: std::io::Error| format!("talking to {}: {e}", socket.display());
    stream
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .map_err(io_error)?;
    stream
        .set_write_timeout(Some(PROBE_TIMEOUT))
        .map_err(io_error)?;
    stream
        .write_all(&startup_message(user, database))
        .map_err(io_error)?;

    let mut tag = [0_u8; 1];
    stream.read_exact(&mut tag).map_err(io_error)?;
    match tag[0] {
        b'R' => {
            // Terminate, so the server does not log an unexpected EOF for our probe.
            let _ = stream.write_all(&[b'X', 0, 0, 0, 4]);
            Ok(())
        }
        b'E' => Err(read_error_message(&mut stream).map_err(io_error)?),
        other => Err(format!(
            "unexpected reply {other:#04x} to the startup message"
        )),
    }
}

/// Int32 length, Int32 protocol version, then `name\0value\0` pairs and a final `\0`.
fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
    for (name, value) in [("user", user), ("database", database)] {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let len = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    let mut message = len.to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    message
}

/// Reads the rest of an ErrorResponse and returns its human-readable `M` field.
fn read_error_message(stream: &mut UnixStream) -> std::io::Result<String> {
    let mut len = [0_u8; 4];
    stream.read_exact(&mut len)?;
    // The length counts itself; cap it so a confused peer cannot make us allocate much.
    let body_len = (u32::from_be_bytes(len).saturating_sub(4)).min(64 * 1024);
    let mut body = vec![0_u8; body_len as usize];
    stream.read_exact(&mut body)?;
    // Fields are a type byte followed by a NUL-terminated string.
    let message = body
        .split(|&b| b == 0)
        .find_map(|field| field.strip_prefix(b"M"))
        .map_or_else(
            || "server refused the connection".to_owned(),
            |m| String::from_utf8_lossy(m).into_owned(),
        );
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_message_has_the_documented_layout() {
        let message = startup_message("postgres", "db");
        let expected_body = b"\0\x03\0\0user\0postgres\0database\0db\0\0";
        assert_eq!(&message[4..], expected_body);
        assert_eq!(
            message[..4],
            u32::try_from(message.len()).unwrap().to_be_bytes()
        );
    }

    #[test]
    fn a_missing_socket_is_not_ready() {
        let dir = tempfile::tempdir().unwrap();
        let err = accepts_connections(&dir.path().join(".s.PGSQL.5432"), "postgres", "postgres")
            .unwrap_err();
        assert!(err.contains("cannot connect"), "{err}");
    }
}
