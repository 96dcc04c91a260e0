//! The `runledger` binary beside a running `serve` on an embedded data directory: every line of
//! README.md's command-line block, run as written (spawned, from the directory holding
//! `.runledger/`), succeeds; `--server` reaches a server over HTTP; at stop, `serve` removes its
//! record and revokes the command line's token.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use runledger_cli::local_server::LocalServer;

/// How long a `serve` may take to initialise its cluster and record itself (an `initdb` on a
/// machine loaded by other builds).
const START: Duration = Duration::from_secs(120);

/// The `runledger` binary of this checkout, built once per test run (`cargo test -p
/// runledger-it` builds only the test binary, and a stale binary would test old code).
pub(crate) fn runledger_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build(&["-p", "runledger-cli", "--bin", "runledger"], "runledger"))
}

/// The client's example worker, built as [`runledger_binary`] is.
fn example_worker() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        build(
            &["-p", "runledger-client", "--example", "worker"],
            "examples/worker",
        )
    })
}

/// Builds a target of this checkout into the test binary's target directory, and returns
/// `artifact`'s path in it.
fn build(target: &[&str], artifact: &str) -> PathBuf {
    // The test binary is `<target>/<profile>/deps/it-…`: the binary goes to `<target>/<profile>/`.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary is in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("<target>/<profile>");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet"])
        .args(target)
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build {target:?} failed");
    profile_dir.join(artifact)
}

/// A `runledger serve` spawned in a directory of its own, on the embedded default
/// (`./.runledger/`), listening on a free port.
pub(crate) struct Serve {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Serve {
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().expect("a directory");
        let child = runledger(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("RUNLEDGER_LOG", "info")
            .stdout(std::fs::File::create(dir.path().join("serve.out")).expect("serve.out"))
            .stderr(std::fs::File::create(dir.path().join("serve.err")).expect("serve.err"))
            .spawn()
            .expect("spawn runledger serve");
        let mut serve = Serve {
            dir,
            child: Some(child),
        };
        serve.wait_until_recorded();
        serve
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join(".runledger")
    }

    fn wait_until_recorded(&mut self) {
        let deadline = Instant::now() + START;
        while LocalServer::running(&self.data_dir()).is_none() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("serve exited with {status}: {}", self.log("serve.err"));
            }
            assert!(
                Instant::now() < deadline,
                "serve did not record itself within {START:?}: {}",
                self.log("serve.err")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Stops it as Ctrl-C does and waits for it to exit.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        interrupt(&child);
        let status = wait_for(&mut child, START).expect("serve stops on SIGINT");
        assert!(status.success(), "serve exited with {status}");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            interrupt(&child);
            if wait_for(&mut child, START).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

pub(crate) fn interrupt(child: &Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
}

pub(crate) fn wait_for(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The binary, run in `dir`, with no environment of the test's that would change its database
/// or server.
pub(crate) fn runledger(dir: &Path) -> Command {
    let mut command = Command::new(runledger_binary());
    command
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("RUNLEDGER_SERVER")
        .env_remove("RUNLEDGER_TOKEN")
        .stdin(Stdio::null());
    command
}

#[track_caller]
fn succeeded(line: &str, output: &Output) -> String {
    assert!(
        output.status.success(),
        "`{line}` failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

/// The `runledger …` lines of README.md's "The command line" block, without their comments.
fn readme_lines() -> Vec<String> {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("## The command line")
        .nth(1)
        .expect("README.md has a command-line section");
    let block = section
        .split("```sh")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the section opens with a sh block");
    block
        .lines()
        .map(|line| line.split(" #").next().unwrap_or(line).trim().to_owned())
        .filter(|line| line.starts_with("runledger "))
        .collect()
}

/// What the lines print that later lines name: the run and the token they created.
#[derive(Default)]
struct Placeholders {
    run_id: Option<String>,
    token_id: Option<String>,
}

impl Placeholders {
    fn fill(&self, line: &str) -> String {
        let mut filled = line.to_owned();
        for (name, value) in [("<run id>", &self.run_id), ("<token id>", &self.token_id)] {
            if filled.contains(name) {
                let value = value
                    .as_deref()
                    .unwrap_or_else(|| panic!("`{line}` names {name} before a line made one"));
                filled = filled.replace(name, value);
            }
        }
        filled
    }

    fn learn(&mut self, stdout: &str) {
        if let Some(id) = stdout
            .lines()
            .find_map(|line| line.strip_prefix("token id: "))
        {
            self.token_id = Some(id.trim().to_owned());
        }
        if let Ok(answer) = serde_json::from_str::<serde_json::Value>(stdout)
            && answer["created"] == true
            && let Some(id) = answer["run"]["id"].as_str()
        {
            self.run_id = Some(id.to_owned());
        }
    }
}

/// Runs one README line in `dir` as a shell would: words split on spaces, `> file` redirects
/// stdout; a line that runs until Ctrl-C (`project`) must still run after a while, and exit
/// cleanly on SIGINT.
fn run_line(dir: &Path, line: &str) -> String {
    let (command, redirect) = match line.split_once(" > ") {
        Some((command, file)) => (command, Some(file.trim())),
        None => (line, None),
    };
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    if args == ["project"] {
        let mut child = runledger(dir)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn runledger project");
        assert!(
            wait_for(&mut child, Duration::from_secs(3)).is_none(),
            "`{line}` exited at once: {:?}",
            child.wait_with_output()
        );
        interrupt(&child);
        assert!(
            wait_for(&mut child, START).is_some(),
            "`{line}` ignores Ctrl-C"
        );
        return succeeded(line, &child.wait_with_output().expect("its output"));
    }
    let output = runledger(dir)
        .args(&args)
        .output()
        .expect("spawn runledger");
    let stdout = succeeded(line, &output);
    if let Some(file) = redirect {
        std::fs::write(dir.join(file), &stdout).expect("write the redirected output");
    }
    stdout
}

#[test]
fn every_readme_command_line_works_while_serve_runs() {
    let mut serve = Serve::start();
    let dir = serve.dir.path().to_owned();
    // The URL a person would give psql names the ledger's database, not `postgres`.
    let log = serve.log("serve.err");
    assert!(
        log.lines()
            .any(|line| line.contains("the ledger's database")
                && line.contains("postgres://postgres@localhost/runledger?")),
        "serve does not log its database's URL: {}",
        serve.log("serve.err")
    );

    let lines = readme_lines();
    for must in [
        "migrate",
        "token create",
        "token list",
        "token revoke",
        "queue",
        "show",
        "verify",
        "export",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("runledger {must}"))),
            "README.md's command-line block has no `runledger {must}` line"
        );
    }
    let mut placeholders = Placeholders::default();
    let mut printed = Vec::new();
    for line in &lines {
        let line = placeholders.fill(line);
        let stdout = run_line(&dir, &line);
        placeholders.learn(&stdout);
        printed.push((line, stdout));
    }
    // What the lines printed is what they did: the run went through the server and is whole.
    let said = |prefix: &str| {
        printed
            .iter()
            .find(|(line, _)| line.starts_with(prefix))
            .map(|(_, stdout)| stdout.clone())
            .unwrap_or_else(|| panic!("no `{prefix}` line ran"))
    };
    let shown: serde_json::Value =
        serde_json::from_str(&said("runledger show")).expect("show prints the run as JSON");
    assert_eq!(shown["id"].as_str(), placeholders.run_id.as_deref());
    assert!(said("runledger verify").contains(": OK"));
    let exported = std::fs::read_to_string(dir.join("tenant-1.ndjson")).expect("the export");
    assert!(
        exported.lines().count() >= 3,
        "the export holds the run's events: {exported}"
    );
    assert!(said("runledger token revoke").starts_with("revoked "));

    // While it runs, the data directory holds its record, readable by this user only.
    let data_dir = serve.data_dir();
    for file in ["serve.json", "cli-token"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(data_dir.join(file))
                .expect("the record")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{file} is readable by others");
    }
    let (record, _) = LocalServer::running(&data_dir).expect("serve's record");

    // --server (and RUNLEDGER_SERVER) reach a server over HTTP with the token given, whatever
    // the data directory: this one names none that exists.
    let admin = serve
        .log("serve.out")
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("rl_"))
        .expect("serve printed its first admin token")
        .to_owned();
    let over_http = runledger(&dir)
        .args([
            "--data-dir",
            "/nonexistent/runledger",
            "--server",
            &record.url,
        ])
        .args(["queue", "--tenant", "2", "--type", "inventory.sync"])
        .env("RUNLEDGER_TOKEN", &admin)
        .output()
        .expect("spawn runledger");
    let queued: serde_json::Value =
        serde_json::from_str(&succeeded("queue --server", &over_http)).expect("JSON");
    assert_eq!(queued["created"], true);
    assert_eq!(queued["run"]["tenant_id"], 2);
    let refused = runledger(&dir)
        .args(["--server", &record.url, "token", "list"])
        .env("RUNLEDGER_TOKEN", "rl_not_a_token")
        .output()
        .expect("spawn runledger");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "a bad token is a clear 401: {}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The client's example worker records a run through this server, start to completion.
    let example = Command::new(example_worker())
        .env("RUNLEDGER_SERVER", &record.url)
        .env("RUNLEDGER_TOKEN", &admin)
        .env("RUNLEDGER_TENANT", "3")
        .output()
        .expect("spawn the example worker");
    let run: serde_json::Value =
        serde_json::from_str(&succeeded("examples/worker", &example)).expect("the run's JSON");
    assert_eq!(run["tenant_id"], 3);
    assert_eq!(run["status"], "completed");
    assert_eq!(run["outcome"], "partially_succeeded");
    assert_eq!(
        run["summary_counts"],
        serde_json::json!({ "total": 40, "success": 35, "failed": 5, "skipped": 0 })
    );
    assert_eq!(run["failure_summary"][0]["code"], "graph.throttled");
    assert_eq!(run["failure_summary"][0]["count"], 5);

    // At stop, the record goes and its token is revoked (the listing opens the database itself,
    // now that no serve runs).
    serve.stop();
    assert!(
        LocalServer::read(&data_dir).is_none(),
        "serve left its record"
    );
    let listed = succeeded(
        "token list",
        &runledger(&dir)
            .args(["token", "list"])
            .output()
            .expect("spawn"),
    );
    let cli_token = listed
        .lines()
        .find(|line| line.starts_with(&record.token_id.to_string()))
        .expect("the command line's token is listed");
    assert!(
        cli_token.contains(" revoked "),
        "not revoked at stop: {cli_token}"
    );
}
