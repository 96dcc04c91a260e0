//! Finding the PostgreSQL server binaries (`initdb`, `postgres`) on this machine.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::EmbeddedError;

/// Debian and Ubuntu install each major version here and keep the server off PATH.
const DEBIAN_LIB_ROOT: &str = "/usr/lib/postgresql";

/// The server binaries of one installation.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    pub(crate) initdb: PathBuf,
    pub(crate) postgres: PathBuf,
}

impl Binaries {
    /// Finds the binaries: in `explicit` if given, else on `PATH`, else the highest version under
    /// `/usr/lib/postgresql/*/bin`.
    pub(crate) fn locate(explicit: Option<&Path>) -> Result<Self, EmbeddedError> {
        if let Some(dir) = explicit {
            return Self::in_dir(dir).ok_or_else(|| EmbeddedError::BinariesNotFound {
                searched: dir.display().to_string(),
            });
        }
        let path = std::env::var_os("PATH");
        find(path.as_deref(), Path::new(DEBIAN_LIB_ROOT)).ok_or_else(|| {
            EmbeddedError::BinariesNotFound {
                searched: format!("PATH and {DEBIAN_LIB_ROOT}/*/bin"),
            }
        })
    }

    /// The pair in `dir`, if both are executable files there.
    fn in_dir(dir: &Path) -> Option<Self> {
        let initdb = dir.join("initdb");
        let postgres = dir.join("postgres");
        (is_executable(&initdb) && is_executable(&postgres)).then_some(Self { initdb, postgres })
    }

    /// Another program of the same installation (`pg_basebackup`, `psql`), beside `initdb`
    /// once symbolic links are followed (a PATH entry may link to the installation's `bin`).
    pub(crate) fn tool(&self, name: &str) -> PathBuf {
        std::fs::canonicalize(&self.initdb)
            .unwrap_or_else(|_| self.initdb.clone())
            .with_file_name(name)
    }

    /// The major version of the server, as written in a cluster's `PG_VERSION` ("15", or "9.6").
    ///
    /// `postgres -V` answers even as root, unlike the server itself.
    pub(crate) fn major_version(&self) -> Result<String, EmbeddedError> {
        let out = Command::new(&self.postgres)
            .arg("-V")
            .output()
            .map_err(EmbeddedError::io(format!(
                "running {} -V",
                self.postgres.display()
            )))?;
        let text = String::from_utf8_lossy(&out.stdout);
        parse_major_version(&text).ok_or_else(|| EmbeddedError::Io {
            context: format!(
                "reading the version of {}: unexpected output {text:?}",
                self.postgres.display()
            ),
            source: std::io::Error::other("unrecognised `postgres -V` output"),
        })
    }
}

/// The search itself, with its inputs as parameters so tests can point it at fake trees.
fn find(path_var: Option<&OsStr>, lib_root: &Path) -> Option<Binaries> {
    if let Some(found) = path_var
        .into_iter()
        .flat_map(std::env::split_paths)
        .find_map(|dir| Binaries::in_dir(&dir))
    {
        return Some(found);
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(lib_root)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = parse_version(entry.file_name().to_str()?)?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    // Highest first: compare numerically, so "10" beats "9.6".
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.iter().find_map(|(_, bin)| Binaries::in_dir(bin))
}

/// `"15"` -> `[15]`, `"9.6"` -> `[9, 6]`; anything else is not a version directory.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// Reads "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" as "15".
///
/// Since PostgreSQL 10 the major version is the first number; before, the first two.
fn parse_major_version(output: &str) -> Option<String> {
    let version = output.split(')').nth(1)?.split_whitespace().next()?;
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let first: u32 = parts.next()?.parse().ok()?;
    if first >= 10 {
        Some(first.to_string())
    } else {
        let second: u32 = parts.next()?.parse().ok()?;
        Some(format!("{first}.{second}"))
    }
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes `dir/initdb` and `dir/postgres` as empty executable files.
    fn fake_install(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for name in ["initdb", "postgres"] {
            let file = dir.join(name);
            std::fs::write(&file, "").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn highest_installed_version_wins_numerically() {
        let root = tempfile::tempdir().unwrap();
        for version in ["9.6", "10", "15"] {
            fake_install(&root.path().join(version).join("bin"));
        }
        std::fs::create_dir(root.path().join("not-a-version")).unwrap();

        let found = find(None, root.path()).unwrap();
        assert_eq!(found.postgres, root.path().join("15/bin/postgres"));
    }

    #[test]
    fn path_beats_the_debian_tree() {
        let root = tempfile::tempdir().unwrap();
        fake_install(&root.path().join("lib/15/bin"));
        fake_install(&root.path().join("on-path"));
        let path_var =
            std::env::join_paths([root.path().join("empty"), root.path().join("on-path")]).unwrap();

        let found = find(Some(&path_var), &root.path().join("lib")).unwrap();
        assert_eq!(found.initdb, root.path().join("on-path/initdb"));
    }

    #[test]
    fn nothing_installed_finds_nothing() {
        let root = tempfile::tempdir().unwrap();
        assert!(find(Some(OsStr::new("")), root.path()).is_none());
    }

    #[test]
    fn missing_binaries_error_says_how_to_install_them() {
        let root = tempfile::tempdir().unwrap();
        let err = Binaries::locate(Some(root.path())).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
    }

    #[test]
    fn major_version_is_read_from_postgres_v() {
        let check = |output: &str, expected: Option<&str>| {
            assert_eq!(parse_major_version(output).as_deref(), expected, "{output}");
        };
        check(
            "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n",
            Some("15"),
        );
        check("postgres (PostgreSQL) 17devel\n", Some("17"));
        check("postgres (PostgreSQL) 9.6.24\n", Some("9.6"));
        check("something else", None);
    }
}
