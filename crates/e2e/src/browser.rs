//! A headless Chromium for the dashboard's browser tests (SPEC §8), driven
//! over WebDriver with `fantoccini`.
//!
//! - [`Browser::start`]: finds Debian's `chromedriver` and `chromium`
//!   (`SPECTRA_CHROMEDRIVER` / `SPECTRA_CHROMIUM` override the paths),
//!   starts the driver on a free 127.0.0.1 port, waits for its `/status`,
//!   and opens a session with a fresh profile. Without the tools it panics
//!   under `CI=true` and otherwise says what is missing and returns `None`,
//!   so the test returns early.
//! - Helpers with a deadline each ([`Browser::wait_css`],
//!   [`Browser::wait_js`]), script execution, the browser's console log
//!   (`goog:loggingPrefs`), Chrome DevTools commands, and screenshots.
//! - [`Shots`]: where screenshots go: `docs/screenshots/` with
//!   `SPECTRA_SCREENSHOTS=1` (to refresh the committed ones), otherwise a
//!   temporary directory, so test runs leave the tree clean.
//!
//! The driver runs in its own process group; [`Browser::close`] ends the
//! session (the driver then quits Chromium) and dropping a [`Browser`]
//! kills that group, so no Chromium outlives a failed test.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// What a missing tool's message tells the reader to run.
pub const INSTALL_HINT: &str = "apt-get install -y chromium chromium-driver";

/// How long the driver may take to answer `/status`, and Chromium to open
/// a session.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Chromium's switches: headless, quiet (no background requests of its
/// own, so the page's requests are the only ones), a fixed window size.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
];

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The driver and browser binaries, or `None` (after saying why) when one
/// is missing outside CI.
pub fn find_tools() -> Option<(PathBuf, PathBuf)> {
    let driver = env_path("SPECTRA_CHROMEDRIVER", "/usr/bin/chromedriver");
    let chromium = env_path("SPECTRA_CHROMIUM", "/usr/bin/chromium");
    let missing: Vec<String> = [
        ("chromedriver", "SPECTRA_CHROMEDRIVER", &driver),
        ("chromium", "SPECTRA_CHROMIUM", &chromium),
    ]
    .iter()
    .filter(|(_, _, path)| !path.is_file())
    .map(|(name, var, path)| format!("{name} (not at {}; {var} sets the path)", path.display()))
    .collect();
    if missing.is_empty() {
        return Some((driver, chromium));
    }
    let message = format!(
        "browser tests need {}: install them with `{INSTALL_HINT}`",
        missing.join(" and ")
    );
    if is_ci() {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free 127.0.0.1 port")
}

/// A WebDriver command the typed API lacks: `method` on
/// `session/<id>/<path>` with a JSON body.
#[derive(Debug)]
struct SessionCommand {
    method: http::Method,
    path: String,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for SessionCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(Value::to_string),
        )
    }
}

/// One line of the browser's console log.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// `SEVERE`, `WARNING`, `INFO`, `DEBUG`.
    pub level: String,
    pub message: String,
}

pub struct Browser {
    pub client: Client,
    /// `None` once ended.
    driver: Option<Child>,
    driver_log: PathBuf,
    /// The profile (`--user-data-dir`) and the driver's log; removed after
    /// the processes are gone (fields drop after `Drop::drop`).
    _dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or returns
    /// `None` when the tools are missing outside CI (see [`find_tools`]).
    pub async fn start() -> Option<Browser> {
        let (driver_path, chromium) = find_tools()?;
        let dir = tempfile::tempdir().expect("browser tempdir");
        let profile = dir.path().join("profile");
        std::fs::create_dir_all(&profile).expect("profile dir");
        let driver_log = dir.path().join("chromedriver.log");
        // A port found free may be taken before the driver binds it: then
        // the driver exits at once and another port is tried.
        let mut attempt = 0;
        let (driver, port) = loop {
            attempt += 1;
            let port = free_port();
            let mut driver = Command::new(&driver_path)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", driver_log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group, so Drop can end Chromium with it.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", driver_path.display()));
            match wait_driver_ready(&mut driver, port).await {
                Ok(()) => break (driver, port),
                Err(why) => {
                    // (An exited driver was reaped: its group is empty.)
                    if !why.starts_with("chromedriver exited") {
                        kill_group(&mut driver);
                    }
                    let log = std::fs::read_to_string(&driver_log).unwrap_or_default();
                    assert!(
                        attempt < 3,
                        "chromedriver did not start on 127.0.0.1:{port}: {why}\n{log}"
                    );
                }
            }
        };
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": args,
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let caps = match caps {
            Value::Object(map) => map,
            _ => unreachable!("an object literal"),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut builder = ClientBuilder::new(connector);
        builder.capabilities(caps);
        let driver_url = format!("http://127.0.0.1:{port}/");
        let connect = builder.connect(&driver_url);
        let mut browser_driver = driver;
        let client = match tokio::time::timeout(START_TIMEOUT, connect).await {
            Ok(Ok(client)) => client,
            other => {
                kill_group(&mut browser_driver);
                let log = std::fs::read_to_string(&driver_log).unwrap_or_default();
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no session within {START_TIMEOUT:?}"),
                };
                panic!(
                    "could not open a Chromium session ({}): {why}\nchromedriver log:\n{log}",
                    chromium.display()
                );
            }
        };
        Some(Browser {
            client,
            driver: Some(browser_driver),
            driver_log,
            _dir: dir,
        })
    }

    /// Ends the session (the driver quits Chromium), then the driver.
    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = tokio::time::timeout(Duration::from_secs(20), client.close()).await;
        if let Some(mut driver) = self.driver.take() {
            kill_group(&mut driver);
        }
    }

    /// What chromedriver logged so far (for failure messages).
    pub fn driver_log(&self) -> String {
        std::fs::read_to_string(&self.driver_log).unwrap_or_default()
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The current URL's path (and query).
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Runs `script` (a function body: `return ...;`) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.js_args(script, vec![]).await
    }

    /// [`Browser::js`] with `arguments[0..]`.
    pub async fn js_args(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The first element matching `css`, waiting up to `timeout`; on
    /// timeout the panic names the selector, the URL and the page's start.
    pub async fn wait_css(&self, css: &str, timeout: Duration) -> Element {
        let found = self
            .client
            .wait()
            .at_most(timeout)
            .every(Duration::from_millis(100))
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => element,
            Err(e) => {
                let context = self.page_context().await;
                panic!("waiting {timeout:?} for `{css}`: {e}\n{context}")
            }
        }
    }

    /// Waits for `css` (up to `timeout`) and clicks it.
    pub async fn click(&self, css: &str, timeout: Duration) {
        let element = self.wait_css(css, timeout).await;
        // Centred, so a sticky header cannot cover it.
        if let Ok(arg) = serde_json::to_value(&element) {
            let _ = self
                .client
                .execute(
                    "arguments[0].scrollIntoView({block: 'center', inline: 'center'});",
                    vec![arg],
                )
                .await;
        }
        if let Err(e) = element.click().await {
            let context = self.page_context().await;
            panic!("clicking `{css}`: {e}\n{context}");
        }
    }

    /// Waits for the field `css` (up to `timeout`), clears it and types
    /// `text`.
    pub async fn fill(&self, css: &str, text: &str, timeout: Duration) {
        let element = self.wait_css(css, timeout).await;
        let typed = async {
            element.clear().await?;
            element.send_keys(text).await
        };
        if let Err(e) = typed.await {
            let context = self.page_context().await;
            panic!("typing into `{css}`: {e}\n{context}");
        }
    }

    /// The text of the first element matching `css` (a form field's
    /// value), waiting up to `timeout` for it.
    pub async fn text_of(&self, css: &str, timeout: Duration) -> String {
        self.wait_css(css, timeout).await;
        self.js_args(
            "const e = document.querySelector(arguments[0]);
             return e === null ? null
               : ('value' in e && typeof e.value === 'string' && e.tagName !== 'BUTTON' ? e.value : e.textContent);",
            vec![json!(css)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Whether `css` matches anything now.
    pub async fn exists(&self, css: &str) -> bool {
        self.js_args(
            "return document.querySelector(arguments[0]) !== null;",
            vec![json!(css)],
        )
        .await
            == json!(true)
    }

    /// Polls `script` until it returns something other than `null`,
    /// `false` or `undefined`, up to `timeout`; returns that value.
    pub async fn wait_js(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            // A navigation in progress can fail a script: retry until the
            // deadline.
            let last = self.client.execute(script, vec![]).await;
            match &last {
                Ok(v) if !v.is_null() && *v != json!(false) => return v.clone(),
                _ => {}
            }
            if Instant::now() >= deadline {
                let context = self.page_context().await;
                panic!(
                    "timed out after {timeout:?} waiting for {what} (last: {last:?})\n{context}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the current URL's path (without the query) is `path`:
    /// a navigation has finished.
    pub async fn wait_path(&self, path: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.path().await;
            if now.split('?').next() == Some(path) {
                return;
            }
            if Instant::now() >= deadline {
                let context = self.page_context().await;
                panic!("timed out after {timeout:?} waiting for {path}, at {now}\n{context}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The URL and the start of the page, for failure messages.
    pub async fn page_context(&self) -> String {
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_else(|e| format!("<no url: {e}>"));
        let html = self
            .client
            .execute(
                "return document.body ? document.body.outerHTML : document.documentElement.outerHTML;",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let html: String = html.chars().take(4000).collect();
        format!("at {url}; the page begins:\n{html}")
    }

    /// The browser's console messages since the last call (CSP
    /// violations, failed requests and script errors are `SEVERE`).
    pub async fn console(&self) -> Vec<LogEntry> {
        let value = self
            .client
            .issue_cmd(SessionCommand {
                method: http::Method::POST,
                path: "se/log".into(),
                body: Some(json!({"type": "browser"})),
            })
            .await
            .unwrap_or_else(|e| panic!("reading the browser's console log: {e}"));
        value
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| LogEntry {
                        level: e["level"].as_str().unwrap_or_default().to_owned(),
                        message: e["message"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A Chrome DevTools Protocol command (e.g. `Emulation.*`).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.client
            .issue_cmd(SessionCommand {
                method: http::Method::POST,
                path: "goog/cdp/execute".into(),
                body: Some(json!({"cmd": cmd, "params": params})),
            })
            .await
            .unwrap_or_else(|e| panic!("CDP {cmd}: {e}"))
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("screenshot {}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(mut driver) = self.driver.take() {
            kill_group(&mut driver);
        }
    }
}

/// SIGKILL to the driver's process group (the driver and the Chromium it
/// started), then reaps the driver. Called once per driver, before it is
/// reaped, so the group id is still ours.
fn kill_group(child: &mut Child) {
    // Chromium may still be in the group after the driver has gone, so
    // the group is signalled either way.
    // SAFETY: kill(2) on the process group we created for our own child.
    unsafe {
        libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls the driver's `/status` until it is ready, it exits, or the
/// deadline passes.
async fn wait_driver_ready(driver: &mut Child, port: u16) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("http://127.0.0.1:{port}/status");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!("chromedriver exited with {status}"));
        }
        if let Ok(resp) = http.get(&url).send().await {
            if let Ok(body) = resp.json::<Value>().await {
                if body["value"]["ready"] == json!(true) {
                    return Ok(());
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("/status not ready within {START_TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where screenshots go: the committed `docs/screenshots/` when
/// `SPECTRA_SCREENSHOTS=1`, otherwise a temporary directory.
pub struct Shots {
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Shots {
    pub fn from_env() -> Shots {
        if std::env::var("SPECTRA_SCREENSHOTS").is_ok_and(|v| v == "1") {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
            Shots { dir, _temp: None }
        } else {
            let temp = tempfile::tempdir().expect("screenshot tempdir");
            Shots {
                dir: temp.path().to_owned(),
                _temp: Some(temp),
            }
        }
    }

    /// Whether these go to the committed `docs/screenshots/`.
    pub fn committed(&self) -> bool {
        self._temp.is_none()
    }

    /// The path of screenshot `name` (e.g. `fleet.png`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
