//! A client generated from the OpenAPI document by a standard generator of another ecosystem
//! (`openapi-python-client`, from PyPI), used unedited: `lifecycle.py` drives a run's whole
//! lifecycle with it against the real router served on a local port.
//!
//! The generator lives in a virtual environment under the target directory
//! (`target/openapi-python/venv`), made once and kept between runs; the document and the
//! generated package are made anew each run.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::api::TestApi;
use crate::client::support::serve;
use crate::helpers::verbs::tenant;

/// The generator, pinned: a newer one may generate other names.
const GENERATOR: &str = "openapi-python-client==0.29.1";
/// What the generated package imports besides what the generator brings (httpx, attrs).
const RUNTIME: &str = "python-dateutil==2.9.0.post0";

/// Where the venv and the generated client go: beside the test binary's profile directory
/// (`target/debug/deps/it-…` → `target/openapi-python`).
fn work_dir() -> PathBuf {
    let binary = std::env::current_exe().expect("the test binary's path");
    let target = binary
        .ancestors()
        .nth(3)
        .expect("the target directory above target/<profile>/deps");
    target.join("openapi-python")
}

async fn run(what: &str, command: &mut Command) {
    let output = command
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The venv with the pinned generator and runtime, made on the first run and reused after:
/// the marker file names what was installed, so changing a pin makes it anew.
async fn generator_venv(dir: &Path) -> PathBuf {
    let venv = dir.join("venv");
    let marker = venv.join("runledger-pins.txt");
    let pins = format!("{GENERATOR}\n{RUNTIME}\n");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(pins.as_str()) {
        return venv;
    }
    let _ = std::fs::remove_dir_all(&venv);
    run(
        "python3 -m venv",
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
    )
    .await;
    run(
        "pip install the generator",
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            GENERATOR,
            RUNTIME,
        ]),
    )
    .await;
    std::fs::write(&marker, pins).expect("write the venv's marker");
    venv
}

#[tokio::test]
async fn a_generated_python_client_drives_a_run_through_its_whole_lifecycle() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: python3 is not installed, so no Python client can be generated");
        return;
    }
    let dir = work_dir();
    std::fs::create_dir_all(&dir).expect("the work directory");
    let venv = generator_venv(&dir).await;

    // The document exactly as the router serves it.
    let document = runledger_api::openapi::document()
        .to_pretty_json()
        .expect("the document as JSON");
    let spec = dir.join("openapi.json");
    std::fs::write(&spec, document).expect("write the document");
    let generated = dir.join("generated");
    let _ = std::fs::remove_dir_all(&generated);
    std::fs::create_dir_all(&generated).expect("the output directory");
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(
        "openapi-python-client generate",
        Command::new(venv.join("bin/openapi-python-client"))
            .args(["generate", "--meta", "none", "--path"])
            .arg(&spec)
            .current_dir(&generated)
            .env("PATH", &path),
    )
    .await;
    assert!(
        generated
            .join("runledger_client/api/commands/queue_run.py")
            .is_file(),
        "the generator made the package runledger_client"
    );

    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(1)).await;
    // Reads wait on the projections (min_position): keep them running.
    let projectors = api.project_all_live();
    let served = serve(&api).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("it/openapi/lifecycle.py");
    run(
        "lifecycle.py",
        Command::new(venv.join("bin/python"))
            .arg(&script)
            .env("PYTHONPATH", &generated)
            .env("RUNLEDGER_URL", &served.url)
            .env("RUNLEDGER_TOKEN", &tokens.writer)
            .env("RUNLEDGER_TENANT", "1"),
    )
    .await;
    projectors.stop().await;
}
