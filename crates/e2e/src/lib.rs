//! Harness for Spectra's end-to-end tests: starts the real `spectra-server`
//! and `spectra-agent` binaries on 127.0.0.1 and talks to them over HTTP.
//!
//! - [`Server`]: a `spectra-server` child on `127.0.0.1:0` (or a given
//!   port, to restart on the same address); its address is read from the
//!   `listening on <addr>` line it prints first.
//! - [`Agent`]: a `spectra-agent` child with its own state dir and config.
//! - [`Api`]: a small admin-token client for the server's API.
//! - [`wait_for`]: polls a condition until a deadline (never a bare sleep).
//!
//! - [`browser`]: a headless Chromium over WebDriver, for the dashboard.
//!
//! The binaries come from the same target dir as the test executable;
//! `cargo test --workspace` builds them.

pub mod browser;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789abcdef";
pub const ENROLL_TOKEN: &str = "e2e-enroll-token-0123456789abcdef";

/// Path of a workspace binary next to the test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} not found: run the tests with `cargo test --workspace`, which builds every binary",
        path.display()
    );
    // `cargo test -p spectra-e2e` alone does not rebuild the binaries: refuse
    // to test stale ones rather than pass or fail on old code.
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let crates: &[&str] = match name {
        "spectra-agent" => &["agent", "protocol"],
        _ => &["agent", "server", "store", "protocol"],
    };
    let newest_source = crates
        .iter()
        .flat_map(|c| {
            let dir = workspace.join("crates").join(c);
            [
                newest_mtime(&dir.join("src")),
                modified(&dir.join("Cargo.toml")),
            ]
        })
        .flatten()
        .max();
    if let (Some(built), Some(source)) = (built, newest_source) {
        assert!(
            built >= source,
            "{} is older than its sources: run `cargo test --workspace` (or `cargo build --bins`) so the binaries are rebuilt",
            path.display()
        );
    }
    path
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of the `.rs` files under `dir`.
fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else if path.extension().is_some_and(|e| e == "rs") {
            modified(&path)
        } else {
            None
        };
        newest = newest.max(t);
    }
    newest
}

/// Sends SIGTERM (graceful) to a child.
pub fn terminate(child: &Child) {
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
}

/// Waits for a child to exit, up to `timeout`; kills it if it does not.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what`
/// after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    /// Lines the server printed on stdout after `listening on`.
    pub stdout_rx: mpsc::Receiver<String>,
}

impl Server {
    /// Starts a server on `listen` (e.g. `127.0.0.1:0`) with the e2e admin
    /// and enrollment tokens. `extra` are more CLI arguments.
    pub fn start(data_dir: &Path, listen: &str, extra: &[&str]) -> Server {
        Self::start_with_env(data_dir, listen, extra, &[])
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with_env(
        data_dir: &Path,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut cmd = Command::new(binary("spectra-server"));
        cmd.envs(env.iter().copied());
        cmd.arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("SPECTRA_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SPECTRA_ENROLL_TOKEN", ENROLL_TOKEN)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn spectra-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("spectra-server printed nothing within 60 s");
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!("first stdout line should be `listening on <addr>`, got {first:?}")
            })
            .trim()
            .to_owned();
        Server {
            child,
            addr,
            data_dir: data_dir.to_owned(),
            stdout_rx: rx,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        terminate(&self.child);
        wait_exit(&mut self.child, Duration::from_secs(30))
            .expect("server did not exit within 30 s of SIGTERM")
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Agent {
    pub child: Child,
    pub state_dir: PathBuf,
    /// What the agent logged (stderr), when started with
    /// [`Agent::start_logged`]; empty otherwise.
    log: Arc<Mutex<String>>,
}

/// A config with fast intervals so tests see data quickly.
pub const FAST_AGENT_CONFIG: &str = r#"
[collectors.cpu]
interval = "1s"
[collectors.memory]
interval = "1s"
[collectors.system]
interval = "2s"
[sender]
flush_interval = "1s"
backoff_initial = "200ms"
backoff_max = "1s"
"#;

impl Agent {
    pub fn start(server_url: &str, state_dir: &Path, config_toml: &str, hostname: &str) -> Agent {
        Self::start_with_env(server_url, state_dir, config_toml, hostname, &[])
    }

    /// [`Agent::start`] with extra environment variables.
    pub fn start_with_env(
        server_url: &str,
        state_dir: &Path,
        config_toml: &str,
        hostname: &str,
        env: &[(&str, &str)],
    ) -> Agent {
        Self::spawn(server_url, state_dir, config_toml, hostname, env, false)
    }

    /// [`Agent::start_with_env`], keeping what the agent logs for
    /// [`Agent::log`] (still echoed to the test's stderr).
    pub fn start_logged(
        server_url: &str,
        state_dir: &Path,
        config_toml: &str,
        hostname: &str,
        env: &[(&str, &str)],
    ) -> Agent {
        Self::spawn(server_url, state_dir, config_toml, hostname, env, true)
    }

    fn spawn(
        server_url: &str,
        state_dir: &Path,
        config_toml: &str,
        hostname: &str,
        env: &[(&str, &str)],
        capture_log: bool,
    ) -> Agent {
        std::fs::create_dir_all(state_dir).expect("state dir");
        let config = state_dir.join("agent.toml");
        std::fs::write(&config, config_toml).expect("write agent config");
        let mut child = Command::new(binary("spectra-agent"))
            .arg("--config")
            .arg(&config)
            .env("SPECTRA_SERVER", server_url)
            .env("SPECTRA_TOKEN", ENROLL_TOKEN)
            .env("SPECTRA_AGENT_STATE_DIR", state_dir)
            .env("SPECTRA_HOSTNAME", hostname)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if capture_log {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .spawn()
            .expect("spawn spectra-agent");
        let log = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("{line}");
                    if let Ok(mut text) = log.lock() {
                        text.push_str(&line);
                        text.push('\n');
                    }
                }
            });
        }
        Agent {
            child,
            state_dir: state_dir.to_owned(),
            log,
        }
    }

    /// What the agent has logged so far ([`Agent::start_logged`] only).
    pub fn log(&self) -> String {
        self.log.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub fn stop(mut self) -> Option<std::process::ExitStatus> {
        terminate(&self.child);
        wait_exit(&mut self.child, Duration::from_secs(30))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An admin client for the server's API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(70))
                .build()
                .expect("client"),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("GET");
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    pub async fn post(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .post(format!("{}{}", self.base, path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("POST");
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// The agent with this hostname, once it has registered.
    pub async fn agent_by_hostname(&self, hostname: &str) -> Option<serde_json::Value> {
        let (status, body) = self.get("/api/v1/agents").await;
        if status != 200 {
            return None;
        }
        body.as_array()?
            .iter()
            .find(|a| a["hostname"] == hostname)
            .cloned()
    }

    /// Timestamps (RFC 3339 strings) of an agent's samples of one type.
    pub async fn sample_times(
        &self,
        agent_id: &str,
        metric_type: &str,
        range: &str,
    ) -> Vec<String> {
        let (status, body) = self
            .get(&format!(
                "/api/v1/agents/{agent_id}/metrics/{metric_type}?range={range}"
            ))
            .await;
        assert_eq!(status, 200, "history: {body}");
        body["samples"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter_map(|x| x["timestamp"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// MemTotal of /proc/meminfo in bytes.
pub fn meminfo_total_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemTotal");
    kb * 1024
}
