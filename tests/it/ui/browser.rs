//! The monitoring pages end to end in a real browser: headless Chromium driven over WebDriver
//! (`chromedriver`, with `fantoccini`), against the real router served over real HTTP on a
//! random port, with the projectors running live, as `runledger serve` runs them.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them as root); the
//! test fails, never skips, without them. Screenshots land in `target/screenshots/`.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::api::TestApi;

/// The longest any wait of these tests takes before it fails.
const WAIT: Duration = Duration::from_secs(20);

/// How to get the browser when it is missing.
const INSTALL_HINT: &str = "the browser tests need Chromium and its WebDriver: run `scripts/test` \
     as root (it installs them), or `apt-get install chromium chromium-driver` (Debian)";

/// `name` on `PATH`, if it is there.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Where screenshots go: `target/screenshots/` of the workspace (or of `CARGO_TARGET_DIR`).
pub(crate) fn screenshot_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| workspace.join(dir))
        .unwrap_or_else(|| workspace.join("target"));
    target.join("screenshots")
}

/// A `chromedriver` on a free local port, in a process group of its own, so that dropping it
/// also kills the Chromium it started (Chromium outlives a killed chromedriver otherwise).
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        let chromedriver = on_path("chromedriver")
            .unwrap_or_else(|| panic!("`chromedriver` is not on PATH; {INSTALL_HINT}"));
        // A port the kernel just handed out and we let go of; chromedriver binds it next.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free local port")
            .port();
        let child = std::os::unix::process::CommandExt::process_group(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            0,
        )
        .spawn()
        .unwrap_or_else(|e| panic!("start chromedriver: {e}; {INSTALL_HINT}"));
        Self { child, port }
    }

    /// Waits until chromedriver accepts connections.
    async fn ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll chromedriver") {
                panic!("chromedriver exited before it listened ({status}); {INSTALL_HINT}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {} within {WAIT:?}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group is chromedriver's own (process_group(0) above): it, Chromium and nothing else.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless Chromium, one fresh profile, driven through its own chromedriver.
pub(crate) struct Browser {
    client: Client,
    // Dropped after the client: kills chromedriver and Chromium, then removes the profile.
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a `width`×`height` window.
    pub(crate) async fn start(width: u32, height: u32) -> Self {
        let chromium = ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find_map(on_path)
            .unwrap_or_else(|| panic!("no Chromium on PATH; {INSTALL_HINT}"));
        let mut driver = Driver::start();
        driver.ready().await;
        let profile = tempfile::tempdir().expect("a temporary browser profile");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    // Root has no sandbox; small /dev/shm in containers.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    // Nothing but loopback is reachable: no background traffic to wait on.
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| panic!("start a Chromium session: {e}; {INSTALL_HINT}"));
        let browser = Self {
            client,
            _driver: driver,
            _profile: profile,
        };
        browser.set_viewport(width, height).await;
        browser
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Resizes the window so that the page's viewport is `width`×`height` CSS pixels (a
    /// headless window's size includes browser chrome the page does not get).
    pub(crate) async fn set_viewport(&self, width: u32, height: u32) {
        let mut window = (width, height);
        for _ in 0..3 {
            self.client
                .set_window_size(window.0, window.1)
                .await
                .expect("resize the window");
            let inner = self
                .client
                .execute("return [window.innerWidth, window.innerHeight];", vec![])
                .await
                .expect("read the viewport size");
            let inner = |i: usize| {
                u32::try_from(inner[i].as_u64().expect("a viewport dimension"))
                    .expect("a small viewport")
            };
            let (inner_width, inner_height) = (inner(0), inner(1));
            if (inner_width, inner_height) == (width, height) {
                return;
            }
            window = (
                (window.0 + width).saturating_sub(inner_width),
                (window.1 + height).saturating_sub(inner_height),
            );
        }
        panic!("could not give the page a {width}x{height} viewport");
    }

    /// Saves a screenshot of the viewport as `target/screenshots/<name>.png`; returns its path.
    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("take a screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// Ends the session (Chromium quits), then chromedriver.
    pub(crate) async fn close(self) {
        let Self {
            client,
            _driver,
            _profile,
        } = self;
        client.close().await.expect("end the browser session");
    }
}

/// Polls `probe` until it answers `Ok`, for at most [`WAIT`]; fails with `what` and the last
/// thing the probe saw.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(seen) => assert!(
                start.elapsed() < WAIT,
                "waited {WAIT:?} for {what}; last seen: {seen}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element `css` selects, or what went wrong.
pub(crate) async fn text_of(client: &Client, css: &str) -> Result<String, String> {
    let element = client
        .find(Locator::Css(css))
        .await
        .map_err(|e| format!("no `{css}` ({e})"))?;
    element
        .text()
        .await
        .map_err(|e| format!("the text of `{css}`: {e}"))
}

#[tokio::test]
async fn the_browser_loads_a_served_page() {
    let mut api = TestApi::new().await;
    let served = api.serve_public().await;
    let browser = Browser::start(1280, 900).await;
    let client = browser.client();
    client
        .goto(&format!("{}/healthz", served.url()))
        .await
        .expect("open /healthz");
    let body = eventually("/healthz in the browser", || async {
        let text = text_of(client, "body").await?;
        if text.is_empty() {
            Err("an empty page".to_owned())
        } else {
            Ok(text)
        }
    })
    .await;
    assert!(body.contains("ok"), "{body}");
    let shot = browser.screenshot("healthz").await;
    assert!(std::fs::metadata(&shot).expect("the screenshot").len() > 0);
    browser.set_viewport(390, 844).await;
    browser.screenshot("healthz-phone").await;
    browser.close().await;
}
