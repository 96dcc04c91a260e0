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

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use runledger_api::auth::Role;
use serde_json::{Value, json};

use crate::api::support::Served;
use crate::api::{Answer, TestApi};
use crate::helpers::verbs::tenant;

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
        // A resize lands a moment later on a busy machine: a few more rounds, each after a pause.
        for _ in 0..10 {
            self.client
                .set_window_size(window.0, window.1)
                .await
                .expect("resize the window");
            tokio::time::sleep(Duration::from_millis(50)).await;
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

    /// Saves a screenshot of the whole page, however long, as `target/screenshots/<name>.png`:
    /// the viewport is stretched to the page's height for the shot, then set back.
    pub(crate) async fn screenshot_page(&self, name: &str, width: u32, height: u32) -> PathBuf {
        let page_height = self
            .client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .expect("read the page's height")
            .as_u64()
            .expect("a height");
        let page_height = u32::try_from(page_height).expect("a page of sane height");
        self.set_viewport(width, page_height.max(height)).await;
        let path = self.screenshot(name).await;
        self.set_viewport(width, height).await;
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

/// The element `css` selects, or what went wrong.
async fn find(client: &Client, css: &str) -> Result<Element, String> {
    client
        .find(Locator::Css(css))
        .await
        .map_err(|e| format!("no `{css}` ({e})"))
}

/// The attribute `name` of the first element `css` selects, or what went wrong.
async fn attr_of(client: &Client, css: &str, name: &str) -> Result<String, String> {
    find(client, css)
        .await?
        .attr(name)
        .await
        .map_err(|e| format!("the `{name}` of `{css}`: {e}"))?
        .ok_or_else(|| format!("`{css}` has no `{name}`"))
}

/// The path of the page the browser shows.
async fn current_path(client: &Client) -> Result<String, String> {
    client
        .current_url()
        .await
        .map(|url| url.path().to_owned())
        .map_err(|e| format!("the current URL: {e}"))
}

/// Waits until the sign-in just pressed has landed on tenant 1's runs list: its session cookie
/// is set.
async fn until_signed_in(client: &Client) {
    eventually("the runs list of tenant 1 after signing in", || async {
        let path = current_path(client).await?;
        if path != "/ui/tenants/1/runs" {
            return Err(format!("the page {path}"));
        }
        find(client, "table#runs").await.map(drop)
    })
    .await;
}

/// Whether the page has kept the marker `window.__noReload` since it was set (a reload or a
/// navigation clears it).
async fn not_reloaded(client: &Client) -> bool {
    client
        .execute("return window.__noReload === true;", vec![])
        .await
        .expect("run a script")
        == Value::Bool(true)
}

/// A command through the HTTP API over the served port, as `token`; asserts `expected`.
async fn command(
    served: &Served,
    token: &str,
    path: &str,
    body: &Value,
    expected: StatusCode,
) -> Answer {
    let authorization = format!("Bearer {token}");
    let answer = served
        .send(
            Method::POST,
            path,
            &[
                ("authorization", &authorization),
                ("content-type", "application/json"),
            ],
            Bytes::from(body.to_string()),
        )
        .await;
    assert_eq!(answer.status, expected, "POST {path}: {:#}", answer.body);
    answer
}

#[tokio::test]
async fn a_run_appears_and_completes_live_then_its_page_and_a_notice_link_open() {
    let mut api = TestApi::new().await;
    // The served address is the public URL, so notices link to these very pages.
    let served = api.serve_public().await;
    let projectors = api.project_all_live();
    let base = served.url();
    let t = tenant(1);
    let writer = api.token(t, Role::Writer).await;
    let ada = api.user_token(t, Role::Admin, 7).await;

    // Some history, so the list is not empty: a run going on, one that succeeded, one that
    // could not be dispatched.
    let queue = |run_type: &str, initiator: Value| json!({"type": run_type, "identity": {"site": "north"}, "initiator": initiator});
    let earlier = [
        (
            queue("backup.nightly", json!({"user_id": 8, "name": "Bob"})),
            vec![
                ("/start", json!({})),
                ("/progress", json!({"success": 3, "total": 8})),
            ],
        ),
        (
            queue("restore.execute", json!({"user_id": 7, "name": "Ada"})),
            vec![
                ("/start", json!({})),
                ("/progress", json!({"success": 5, "total": 5})),
                ("/complete", json!({})),
            ],
        ),
        (
            queue("directory.export", json!({"user_id": 8, "name": "Bob"})),
            vec![(
                "/dispatch-failed",
                json!({"code": "worker.unavailable", "message": "No worker took the run"}),
            )],
        ),
    ];
    for (body, steps) in earlier {
        let queued = command(
            &served,
            &writer,
            "/v1/tenants/1/runs",
            &body,
            StatusCode::CREATED,
        )
        .await;
        let id = queued.body["run"]["id"].as_str().expect("a run id");
        for (step, body) in steps {
            let path = format!("/v1/tenants/1/runs/{id}{step}");
            command(&served, &writer, &path, &body, StatusCode::OK).await;
        }
    }

    let browser = Browser::start(1280, 800).await;
    let client = browser.client();

    // Sign in with an admin token bound to user 7: the runs list of tenant 1.
    client
        .goto(&format!("{base}/ui/sign-in"))
        .await
        .expect("open the sign-in page");
    let form = find(client, "form#sign-in")
        .await
        .unwrap_or_else(|e| panic!("the sign-in form: {e}"));
    form.find(Locator::Css("input#token[name=token]"))
        .await
        .expect("the token field")
        .send_keys(&ada)
        .await
        .expect("type the token");
    form.find(Locator::Css("[type=submit]"))
        .await
        .expect("the sign-in button")
        .click()
        .await
        .expect("press sign in");
    until_signed_in(client).await;
    eventually("the runs list's live stream to open", || async {
        match attr_of(client, "body", "data-live").await?.as_str() {
            "open" => Ok(()),
            other => Err(format!("body[data-live={other}]")),
        }
    })
    .await;
    client
        .execute("window.__noReload = true;", vec![])
        .await
        .expect("mark the page");

    // A run queued through the API appears at the top of the list, without a reload.
    let queued = command(
        &served,
        &writer,
        "/v1/tenants/1/runs",
        &json!({
            "type": "inventory.sync",
            "identity": {"scope": "all", "site": "browser-test"},
            "initiator": {"user_id": 7, "name": "Ada"},
            "context": {"ticket": "OPS-42", "sites": ["north", "south"]},
        }),
        StatusCode::CREATED,
    )
    .await;
    let id = queued.body["run"]["id"]
        .as_str()
        .expect("the run's id")
        .to_owned();
    let row = format!("table#runs tbody tr#run-{id}");
    eventually("the queued run's row in the list", || async {
        match attr_of(client, &row, "data-status").await?.as_str() {
            "queued" => Ok(()),
            other => Err(format!("{row}[data-status={other}]")),
        }
    })
    .await;
    assert!(not_reloaded(client).await, "the list reloaded");
    let first = attr_of(client, "table#runs tbody tr:first-child", "id").await;
    assert_eq!(first, Ok(format!("run-{id}")), "the new run is on top");

    // It starts, reports 9 done and 1 failed of 10, and completes: the row follows live.
    let run = format!("/v1/tenants/1/runs/{id}");
    command(
        &served,
        &writer,
        &format!("{run}/start"),
        &json!({}),
        StatusCode::OK,
    )
    .await;
    command(
        &served,
        &writer,
        &format!("{run}/progress"),
        &json!({
            "success": 9, "failed": 1, "total": 10,
            "failures": [{"code": "graph.throttled", "message": "Throttled (retrying)"}],
        }),
        StatusCode::OK,
    )
    .await;
    command(
        &served,
        &writer,
        &format!("{run}/complete"),
        &json!({}),
        StatusCode::OK,
    )
    .await;
    let outcome_badge = format!("{row} span.state");
    eventually(
        "the row to show the run completed, partially succeeded",
        || async {
            let status = attr_of(client, &row, "data-status").await?;
            let outcome = text_of(client, &outcome_badge).await?;
            if status == "completed" && outcome == "Partially succeeded" {
                Ok(())
            } else {
                Err(format!("data-status={status}, outcome badge {outcome:?}"))
            }
        },
    )
    .await;
    assert!(
        not_reloaded(client).await,
        "the list reloaded instead of updating live"
    );
    let row_text = text_of(client, &row).await.expect("the row's text");
    assert!(row_text.contains("inventory.sync"), "{row_text}");
    assert!(row_text.contains("Ada"), "{row_text}");
    assert!(row_text.contains("Partially succeeded"), "{row_text}");
    assert!(
        row_text.contains("graph.throttled"),
        "the failure code: {row_text}"
    );
    // Changed rows flash for a moment; the screenshot shows the row as it stays.
    eventually("the row's highlight to fade", || async {
        find(client, &format!("{row}:not(.changed)"))
            .await
            .map(drop)
    })
    .await;
    browser.screenshot("runs-list").await;
    browser.set_viewport(390, 844).await;
    browser.screenshot("runs-list-phone").await;
    browser.set_viewport(1280, 800).await;

    // The row's link opens the run: every event in the timeline, the chain verified.
    find(client, &format!("{row} a.run-link"))
        .await
        .unwrap_or_else(|e| panic!("the run's link: {e}"))
        .click()
        .await
        .expect("follow the run's link");
    let detail = format!("/ui/tenants/1/runs/{id}");
    on_completed_run_page(client, "the run's page", &detail).await;
    let events = client
        .find_all(Locator::Css("ol#timeline li.timeline-event"))
        .await
        .expect("the timeline's rows");
    assert_eq!(
        events.len(),
        4,
        "queued, started, progressed, completed in the timeline"
    );
    let chain = text_of(client, "#chain-badge")
        .await
        .unwrap_or_else(|e| panic!("the chain badge: {e}"));
    assert!(
        chain.contains("Chain verified"),
        "the chain badge: {chain:?}"
    );
    let failures = text_of(client, "table#failures")
        .await
        .unwrap_or_else(|e| panic!("the failure summary: {e}"));
    assert!(failures.contains("graph.throttled"), "{failures}");
    browser.screenshot_page("run-detail", 1280, 800).await;

    // Ada's notifications: the run's queued and completed notices, linking to its page.
    let notices_url = format!("{base}/ui/notifications");
    let notice_of_run =
        format!("ul#notifications li.notice:has(a.notice-link[href$='/runs/{id}'])");
    let kinds = eventually("the run's queued and completed notices", || async {
        client
            .goto(&notices_url)
            .await
            .map_err(|e| format!("open the notifications: {e}"))?;
        let notices = client
            .find_all(Locator::Css(&notice_of_run))
            .await
            .map_err(|e| format!("the notices: {e}"))?;
        let mut kinds = Vec::new();
        for notice in notices {
            let kind = notice
                .attr("data-kind")
                .await
                .map_err(|e| format!("a notice's kind: {e}"))?;
            kinds.push(kind.unwrap_or_default());
        }
        kinds.sort();
        if kinds == ["completed", "queued"] {
            Ok(kinds)
        } else {
            Err(format!("notices of kinds {kinds:?}"))
        }
    })
    .await;
    assert_eq!(kinds, ["completed", "queued"]);
    browser.screenshot("notifications").await;
    let link = find(
        client,
        &format!("{notice_of_run}[data-kind=completed] a.notice-link"),
    )
    .await
    .unwrap_or_else(|e| panic!("the completed notice's link: {e}"));
    let href = link
        .attr("href")
        .await
        .expect("read the link")
        .expect("an href");
    assert_eq!(
        href,
        format!("{base}{detail}"),
        "the notice links to the run's page"
    );
    link.click().await.expect("follow the notice's link");
    on_completed_run_page(client, "the run's page from its notice", &detail).await;

    browser.close().await;
    projectors.stop().await;
}

/// Waits until the browser shows the page at `detail` with the run completed.
async fn on_completed_run_page(client: &Client, what: &str, detail: &str) {
    eventually(what, || async {
        let path = current_path(client).await?;
        if path != detail {
            return Err(format!("the page {path}"));
        }
        match attr_of(client, "article#run", "data-status")
            .await?
            .as_str()
        {
            "completed" => Ok(()),
            other => Err(format!("article#run[data-status={other}]")),
        }
    })
    .await;
}

/// Whether the page scrolls sideways (its content wider than the viewport), and by how much.
async fn horizontal_overflow(client: &Client) -> i64 {
    client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .expect("measure the page")
        .as_i64()
        .expect("a width")
}

/// Screenshots of the page at both sizes (`<name>-1400`, `<name>-390`), asserting at each that
/// nothing scrolls sideways; the browser is left at 1,400 × 900.
async fn both_widths(browser: &Browser, name: &str) {
    for (width, height) in [(1400, 900), (390, 844)] {
        browser.set_viewport(width, height).await;
        browser
            .client()
            .execute("window.scrollTo(0, 0);", vec![])
            .await
            .expect("scroll to the top");
        browser.screenshot(&format!("{name}-{width}")).await;
        let overflow = horizontal_overflow(browser.client()).await;
        if overflow > 0 {
            let widest = browser
                .client()
                .execute(
                    "const w = document.documentElement.clientWidth;
                     return Array.from(document.querySelectorAll('body *'))
                         .filter(e => e.getBoundingClientRect().right > w)
                         .slice(-3).map(e => e.outerHTML.slice(0, 160));",
                    vec![],
                )
                .await
                .expect("find what overflows");
            panic!("{name} scrolls sideways by {overflow} px at {width} px: {widest:#}");
        }
    }
    browser.set_viewport(1400, 900).await;
}

#[tokio::test]
async fn fifty_runs_fit_a_laptop_screen_and_every_page_fits_a_phone() {
    let mut api = TestApi::new().await;
    let served = api.serve_public().await;
    let projectors = api.project_all_live();
    let base = served.url();
    let writer = api.token(tenant(1), Role::Writer).await;
    let ada = api.user_token(tenant(1), Role::Admin, 7).await;
    let queue = |i: usize, run_type: &str| {
        json!({
            "type": run_type,
            "identity": {"n": i},
            "initiator": {"user_id": 7, "name": "Ada Lovelace"},
            "context": {"restore_run_id": 1000 + i, "ticket": format!("OPS-{i}")},
        })
    };
    let types = [
        "inventory.sync",
        "restore.execute",
        "backup.nightly",
        "directory.export",
    ];
    let mut ids = Vec::new();
    for i in 0..50 {
        let queued = command(
            &served,
            &writer,
            "/v1/tenants/1/runs",
            &queue(i, types[i % types.len()]),
            StatusCode::CREATED,
        )
        .await;
        let id = queued.body["run"]["id"]
            .as_str()
            .expect("a run id")
            .to_owned();
        let run = format!("/v1/tenants/1/runs/{id}");
        // Every fifth queued, the others started; of those some finished, one failed, one
        // could not be dispatched.
        let steps: Vec<(&str, Value)> = match i % 5 {
            0 => vec![],
            1 => vec![
                ("/start", json!({})),
                ("/progress", json!({"success": 3, "total": 10})),
            ],
            2 => vec![
                ("/start", json!({})),
                (
                    "/complete",
                    json!({"final_counts": {"success": 12, "failed": 0, "skipped": 1, "total": 13}}),
                ),
            ],
            3 => vec![
                ("/start", json!({})),
                (
                    "/progress",
                    json!({"failed": 4, "total": 4, "failures": [{"code": "graph.forbidden", "message": "The app lacks Directory.Read.All", "count": 4}]}),
                ),
                ("/complete", json!({})),
            ],
            _ => vec![(
                "/dispatch-failed",
                json!({"code": "worker.unavailable", "message": "No worker took the run"}),
            )],
        };
        for (step, body) in steps {
            command(
                &served,
                &writer,
                &format!("{run}{step}"),
                &body,
                StatusCode::OK,
            )
            .await;
        }
        ids.push(id);
    }
    let failed = ids[3].clone();
    let dispatch_failed = ids[4].clone();
    let to_cancel = ids[45].clone();

    let browser = Browser::start(1400, 900).await;
    let client = browser.client();
    client
        .goto(&format!("{base}/ui/sign-in"))
        .await
        .expect("open the sign-in page");
    both_widths(&browser, "sign-in").await;
    find(client, "input#token")
        .await
        .unwrap_or_else(|e| panic!("the token field: {e}"))
        .send_keys(&ada)
        .await
        .expect("type the token");
    find(client, "form#sign-in [type=submit]")
        .await
        .unwrap_or_else(|e| panic!("the sign-in button: {e}"))
        .click()
        .await
        .expect("press sign in");
    // Navigating before the sign-in's answer has set the cookie would cancel it.
    until_signed_in(client).await;
    let list_url = format!("{base}/ui/tenants/1/runs");
    let visible = eventually(
        "the 50 runs in the list, 20 or more of them on screen",
        || async {
            client
                .goto(&list_url)
                .await
                .map_err(|e| format!("open the list: {e}"))?;
            let counted = client
                .execute(
                    "const rows = Array.from(document.querySelectorAll('table#runs tbody tr'));
                 const seen = rows.filter(r => { const b = r.getBoundingClientRect();
                     return b.top >= 0 && b.bottom <= window.innerHeight; });
                 return [rows.length, seen.length];",
                    vec![],
                )
                .await
                .map_err(|e| format!("count the rows: {e}"))?;
            let (all, seen) = (counted[0].as_u64(), counted[1].as_u64());
            match (all, seen) {
                (Some(50), Some(seen)) => Ok(seen),
                other => Err(format!("rows (all, on screen): {other:?}")),
            }
        },
    )
    .await;
    assert!(visible >= 20, "only {visible} runs on a 1,400 × 900 screen");
    eprintln!("{visible} of 50 runs on a 1,400 × 900 screen");
    let matching = text_of(client, "#matching").await.expect("the count");
    assert_eq!(matching, "50 runs match");
    // A failed run shows its code in its row; a dispatch-failed one says it never started.
    let code = eventually("the failed run's code in its row", || async {
        text_of(client, &format!("tr#run-{failed} .failure-code")).await
    })
    .await;
    assert_eq!(code, "graph.forbidden");
    let never = text_of(client, &format!("tr#run-{dispatch_failed} .cell-progress"))
        .await
        .expect("the dispatch-failed run's progress");
    assert!(
        never.contains("Never started") && never.contains("worker.unavailable"),
        "{never}"
    );
    // j, j, Enter opens the second run.
    client
        .execute(
            "document.activeElement && document.activeElement.blur();",
            vec![],
        )
        .await
        .expect("blur");
    let second = attr_of(client, "table#runs tbody tr:nth-child(2)", "id")
        .await
        .expect("the second row");
    find(client, "body")
        .await
        .expect("the body")
        .send_keys("jj")
        .await
        .expect("press j j");
    eventually("the second row selected", || async {
        find(client, &format!("tr#{second}.selected"))
            .await
            .map(drop)
    })
    .await;
    both_widths(&browser, "runs-list").await;
    // Enter (WebDriver's U+E007) opens the selected run.
    let second_run = second.trim_start_matches("run-").to_owned();
    find(client, "body")
        .await
        .expect("the body")
        .send_keys("\u{E007}")
        .await
        .expect("press Enter");
    eventually("the selected run's page after Enter", || async {
        let path = current_path(client).await?;
        if path == format!("/ui/tenants/1/runs/{second_run}") {
            Ok(())
        } else {
            Err(format!("the page {path}"))
        }
    })
    .await;

    // A search by context value, kept in the URL.
    client
        .goto(&format!("{list_url}?attribute=restore_run_id%3D1003"))
        .await
        .expect("search");
    let found = client
        .find_all(Locator::Css("table#runs tbody tr"))
        .await
        .expect("the rows");
    assert_eq!(found.len(), 1, "one run has restore_run_id 1003");

    // The failed run's page: why it failed at the top, and a timeline row opens onto its payload.
    client
        .goto(&format!("{list_url}/{failed}"))
        .await
        .expect("open the failed run");
    let reason = text_of(client, "#reason").await.expect("the reason");
    assert!(reason.contains("graph.forbidden"), "{reason}");
    let payload = "ol#timeline li.timeline-event:first-child .event-payload";
    let hidden = find(client, payload)
        .await
        .expect("the payload")
        .is_displayed()
        .await
        .expect("displayed?");
    assert!(!hidden, "the payload shows only once its row is opened");
    find(client, "ol#timeline li.timeline-event:first-child summary")
        .await
        .expect("the first event's row")
        .click()
        .await
        .expect("open the row");
    let shown = eventually("the payload after the click", || async {
        let element = find(client, payload).await?;
        match element.is_displayed().await {
            Ok(true) => element.text().await.map_err(|e| e.to_string()),
            other => Err(format!("displayed: {other:?}")),
        }
    })
    .await;
    assert!(shown.contains("\"restore_run_id\""), "{shown}");
    client
        .execute(
            "document.getElementById('timeline-heading').scrollIntoView();",
            vec![],
        )
        .await
        .expect("scroll to the timeline");
    browser.screenshot("run-timeline-1400").await;
    both_widths(&browser, "run-detail").await;

    // Cancel, as a writer (the admin may): the queued run completes cancelled.
    client
        .goto(&format!("{list_url}/{to_cancel}"))
        .await
        .expect("open the queued run");
    find(client, "form#cancel input[name=reason]")
        .await
        .unwrap_or_else(|e| panic!("the Cancel form: {e}"))
        .send_keys("Wrong site")
        .await
        .expect("type the reason");
    find(client, "form#cancel button[type=submit]")
        .await
        .expect("the Cancel button")
        .click()
        .await
        .expect("press Cancel");
    let run_url = format!("{list_url}/{to_cancel}");
    eventually("the run cancelled", || async {
        client.goto(&run_url).await.map_err(|e| e.to_string())?;
        match attr_of(client, "article#run", "data-outcome")
            .await?
            .as_str()
        {
            "cancelled" => Ok(()),
            other => Err(format!("outcome {other}")),
        }
    })
    .await;
    let reason = text_of(client, "#reason").await.expect("the reason");
    assert!(reason.contains("Wrong site"), "{reason}");
    both_widths(&browser, "run-cancelled").await;

    // Notifications: grouped per run, the unread count in the navigation.
    client
        .goto(&format!("{base}/ui/notifications"))
        .await
        .expect("open the notifications");
    let count = text_of(client, "#nav-notifications .count")
        .await
        .expect("the unread badge");
    assert!(count.parse::<u32>().is_ok_and(|n| n > 0), "{count}");
    both_widths(&browser, "notifications").await;

    // Projections: readable at 1,000 px, the Rebuild buttons on screen.
    client
        .goto(&format!("{base}/ui/projections"))
        .await
        .expect("open the projections");
    browser.set_viewport(1000, 900).await;
    assert!(
        horizontal_overflow(client).await <= 0,
        "projections scroll at 1,000 px"
    );
    let fits = client
        .execute(
            "return Array.from(document.querySelectorAll('#projections button'))
                 .every(b => b.getBoundingClientRect().right <= window.innerWidth);",
            vec![],
        )
        .await
        .expect("measure the buttons");
    assert_eq!(
        fits,
        Value::Bool(true),
        "a Rebuild button is cut off at 1,000 px"
    );
    browser.screenshot("projections-1000").await;
    both_widths(&browser, "projections").await;

    // A missing page keeps the navigation.
    client
        .goto(&format!(
            "{base}/ui/tenants/1/runs/00000000-0000-0000-0000-000000000000"
        ))
        .await
        .expect("open a missing run");
    find(client, "nav[aria-label=Main]")
        .await
        .expect("the navigation on a 404");
    both_widths(&browser, "not-found").await;

    browser.close().await;
    projectors.stop().await;
}
