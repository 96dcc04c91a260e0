//! Which account runs the server: ourselves, or the `postgres` user when we are root.
//!
//! PostgreSQL refuses to run as root, and our processes (developers' machines, CI) often are root.
//! Then `initdb` and `postgres` run as the `postgres` system user: the directories they write are
//! handed to it with `chown`, and every directory above them must be searchable by it.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::EmbeddedError;

/// The account PostgreSQL packages create; we run the server as it when we are root.
const SERVER_USER: &str = "postgres";

/// Who `initdb` and `postgres` run as.
#[derive(Debug, Clone)]
pub(crate) enum RunAs {
    /// We are not root: the server runs as us and owns what we create.
    CurrentUser,
    /// We are root: the server runs as this account.
    Account { name: String, uid: u32, gid: u32 },
}

impl RunAs {
    /// Picks the account from our effective uid.
    pub(crate) fn detect() -> Result<Self, EmbeddedError> {
        if effective_uid()? != 0 {
            return Ok(Self::CurrentUser);
        }
        let passwd = std::fs::read_to_string("/etc/passwd")
            .map_err(EmbeddedError::io("reading /etc/passwd"))?;
        let (uid, gid) =
            lookup_passwd(&passwd, SERVER_USER).ok_or_else(|| EmbeddedError::NoServerUser {
                user: SERVER_USER.to_owned(),
            })?;
        Ok(Self::Account {
            name: SERVER_USER.to_owned(),
            uid,
            gid,
        })
    }

    /// Whether the server runs as another account than ours.
    pub(crate) fn switches_user(&self) -> bool {
        matches!(self, Self::Account { .. })
    }

    /// Makes `command` run as the server account.
    ///
    /// std drops root's supplementary groups when it sets the uid, so the server ends up with
    /// exactly the account's uid and primary gid; [`RunAs::check_traversable`] assumes that.
    pub(crate) fn apply(&self, command: &mut Command) {
        if let Self::Account { uid, gid, .. } = self {
            command.uid(*uid).gid(*gid);
        }
    }

    /// Hands `path` to the server account.
    pub(crate) fn give(&self, path: &Path) -> Result<(), EmbeddedError> {
        if let Self::Account { uid, gid, .. } = self {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .map_err(EmbeddedError::io(format!("chown {}", path.display())))?;
        }
        Ok(())
    }

    /// Fails unless the server account may search `path` and every directory above it.
    ///
    /// Checked up front because the server's own error ("could not change directory ...:
    /// Permission denied") does not say which directory is in the way.
    pub(crate) fn check_traversable(&self, path: &Path) -> Result<(), EmbeddedError> {
        let Self::Account { name, uid, gid } = self else {
            return Ok(());
        };
        // Top down, so the error names the directory to fix first.
        let mut dirs: Vec<&Path> = path.ancestors().collect();
        dirs.reverse();
        for dir in dirs {
            let meta = dir
                .metadata()
                .map_err(EmbeddedError::io(format!("stat {}", dir.display())))?;
            // Unix applies exactly one class of permission bits: owner, else group, else other.
            let search_bit = if meta.uid() == *uid {
                0o100
            } else if meta.gid() == *gid {
                0o010
            } else {
                0o001
            };
            if meta.mode() & search_bit == 0 {
                return Err(EmbeddedError::NotTraversable {
                    path: path.to_owned(),
                    blocked: dir.to_owned(),
                    user: name.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Our effective uid, without `unsafe` or a libc binding.
///
/// Linux makes `/proc/self` owned by the effective uid of the process reading it; where there
/// is no `/proc`, `id -u` says the same.
fn effective_uid() -> Result<u32, EmbeddedError> {
    if let Ok(meta) = std::fs::metadata("/proc/self") {
        return Ok(meta.uid());
    }
    let output = Command::new("id")
        .arg("-u")
        .output()
        .map_err(EmbeddedError::io(
            "running `id -u` to learn our effective uid",
        ))?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| EmbeddedError::Io {
            context: "running `id -u` to learn our effective uid".to_owned(),
            source: std::io::Error::other("unexpected output"),
        })
}

/// Finds `name`'s uid and primary gid in the text of `/etc/passwd`.
fn lookup_passwd(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lookup_reads_uid_and_primary_gid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      postgresx:x:7:7::/:/bin/sh\n\
                      postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(lookup_passwd(passwd, "postgres"), Some((101, 104)));
        assert_eq!(lookup_passwd(passwd, "nobody"), None);
    }

    #[test]
    fn a_closed_parent_directory_is_reported_by_name() {
        let root = tempfile::tempdir().unwrap();
        let closed = root.path().join("closed");
        let data = closed.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let set_mode = |dir: &Path, mode| {
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap();
        };
        // tempdir() makes a 0700 directory; open it so only `closed` is in the way.
        set_mode(root.path(), 0o755);
        set_mode(&closed, 0o700);
        // An account that owns nothing here: only the "other" bits apply to it.
        let stranger = RunAs::Account {
            name: "stranger".to_owned(),
            uid: 4_000_000,
            gid: 4_000_000,
        };

        let err = stranger.check_traversable(&data).unwrap_err();
        assert!(
            matches!(&err, EmbeddedError::NotTraversable { blocked, .. } if *blocked == closed),
            "{err}"
        );
        assert!(RunAs::CurrentUser.check_traversable(&data).is_ok());
    }
}
