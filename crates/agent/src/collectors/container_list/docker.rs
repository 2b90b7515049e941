//! Docker Engine API (and Podman's Docker-compatible API) over a unix
//! socket: version negotiation, the container list, inspect, stats and logs.
//!
//! - Pure parts: [`negotiate_version`], [`parse_container_list`],
//!   [`parse_inspect`], [`parse_stats`], [`compute_cpu_percent`],
//!   [`build_workload`], [`decode_log_stream`]; tested on fixtures written
//!   in the shapes of the Docker Engine API v1.43 reference.
//! - I/O: [`DockerClient`] (one short connection per request, see
//!   `http.rs`), [`collect_workloads`] for one socket, and
//!   [`container_logs`] for `FETCH_LOGS`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use spectra_protocol::{Workload, WorkloadKind, WorkloadSource};

use super::http::{self, HttpError, Response};
use super::{round_hundredths, run_parallel};
use crate::collectors::ParseError;

/// The API version this module's parsers were written against: requests
/// use the lower of this and the daemon's `ApiVersion`.
pub const PARSER_API_VERSION: ApiVersion = ApiVersion {
    major: 1,
    minor: 43,
};
/// The oldest API with every field read here (`Health` 1.24,
/// `online_cpus` 1.27); an older daemon is an error, not a guess.
pub const OLDEST_API_VERSION: ApiVersion = ApiVersion {
    major: 1,
    minor: 27,
};
/// `one-shot=true` (no second sample inside the daemon) exists from here.
const ONE_SHOT_API_VERSION: ApiVersion = ApiVersion {
    major: 1,
    minor: 41,
};
/// A container list of 1,000 containers is ~1.5 MB.
const LIST_CAP_BYTES: usize = 16 << 20;
const OBJECT_CAP_BYTES: usize = 4 << 20;
/// `FETCH_LOGS` output kept at most.
const LOGS_CAP_BYTES: usize = 16 << 20;
/// Requests in flight per socket at most.
pub const MAX_PARALLEL_REQUESTS: usize = 16;
/// A cycle's requests to one socket stop being sent after this many
/// request timeouts (15 s at the default 3 s).
const CYCLE_BUDGET_TIMEOUTS: u32 = 5;

/// A Docker API version, `1.43`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    pub major: u32,
    pub minor: u32,
}

impl std::str::FromStr for ApiVersion {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = || ParseError::new("docker API version", format!("{s:?} is not MAJOR.MINOR"));
        let (major, minor) = s.trim().split_once('.').ok_or_else(bad)?;
        Ok(Self {
            major: major.parse().map_err(|_| bad())?,
            minor: minor.parse().map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What `GET /version` says that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonVersion {
    pub api_version: ApiVersion,
    pub min_api_version: Option<ApiVersion>,
    /// Podman's compatible API names a `Podman Engine` component.
    pub is_podman: bool,
}

#[derive(Deserialize)]
struct VersionJson {
    #[serde(rename = "ApiVersion")]
    api_version: String,
    #[serde(rename = "MinAPIVersion", default)]
    min_api_version: Option<String>,
    #[serde(rename = "Components", default)]
    components: Option<Vec<ComponentJson>>,
}

#[derive(Deserialize)]
struct ComponentJson {
    #[serde(rename = "Name", default)]
    name: String,
}

fn json<'a, T: Deserialize<'a>>(what: &'static str, body: &'a [u8]) -> Result<T, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError::new(what, e.to_string()))
}

/// Parses `GET /version`.
pub fn parse_version(body: &[u8]) -> Result<DaemonVersion, ParseError> {
    let v: VersionJson = json("docker /version", body)?;
    Ok(DaemonVersion {
        api_version: v.api_version.parse()?,
        min_api_version: v.min_api_version.as_deref().map(str::parse).transpose()?,
        is_podman: v
            .components
            .unwrap_or_default()
            .iter()
            .any(|c| c.name.contains("Podman")),
    })
}

/// The version to put in request paths: the lower of the daemon's and
/// [`PARSER_API_VERSION`]. An error when the daemon is older than
/// [`OLDEST_API_VERSION`] or cannot speak a version that old.
pub fn negotiate_version(daemon: &DaemonVersion) -> Result<ApiVersion, String> {
    let chosen = daemon.api_version.min(PARSER_API_VERSION);
    if chosen < OLDEST_API_VERSION {
        return Err(format!(
            "the daemon speaks Docker API {}, older than the {} this agent needs",
            daemon.api_version, OLDEST_API_VERSION
        ));
    }
    if let Some(min) = daemon.min_api_version.filter(|min| chosen < *min) {
        return Err(format!(
            "the daemon needs Docker API {min} or newer; this agent speaks up to {chosen}"
        ));
    }
    Ok(chosen)
}

/// One entry of `GET /containers/json?all=true`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ContainerSummary {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Names", default)]
    pub names: Vec<String>,
    #[serde(rename = "Image", default)]
    pub image: String,
    /// `created`, `restarting`, `running`, `removing`, `paused`, `exited`,
    /// `dead`.
    #[serde(rename = "State", default)]
    pub state: String,
    /// `Up 2 hours (healthy)`.
    #[serde(rename = "Status", default)]
    pub status: String,
}

impl ContainerSummary {
    /// The first name without Docker's leading `/`, else the short id.
    pub fn name(&self) -> String {
        self.names
            .first()
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_else(|| self.id.chars().take(12).collect())
    }
}

/// Parses `GET /containers/json`.
pub fn parse_container_list(body: &[u8]) -> Result<Vec<ContainerSummary>, ParseError> {
    json("docker /containers/json", body)
}

/// What `GET /containers/{id}/json` adds to the list.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerDetails {
    /// `starting`, `healthy`, `unhealthy`; `None` without a health check.
    pub health: Option<String>,
    pub restart_count: u32,
    /// `None` for a container never started (Docker says `0001-01-01...`).
    pub started_at: Option<DateTime<Utc>>,
    /// From `HostConfig.NanoCpus`, else `CpuQuota / CpuPeriod`.
    pub cpu_limit_cores: Option<f64>,
    /// `Config.Tty`: logs are raw, not multiplexed.
    pub tty: bool,
}

#[derive(Deserialize)]
struct InspectJson {
    #[serde(rename = "State")]
    state: InspectState,
    #[serde(rename = "RestartCount", default)]
    restart_count: u32,
    #[serde(rename = "HostConfig", default)]
    host_config: Option<HostConfigJson>,
    #[serde(rename = "Config", default)]
    config: Option<ConfigJson>,
}

#[derive(Deserialize)]
struct InspectState {
    #[serde(rename = "StartedAt", default)]
    started_at: Option<String>,
    #[serde(rename = "Health", default)]
    health: Option<HealthJson>,
}

#[derive(Deserialize)]
struct HealthJson {
    #[serde(rename = "Status", default)]
    status: String,
}

#[derive(Deserialize, Default)]
struct HostConfigJson {
    #[serde(rename = "NanoCpus", default)]
    nano_cpus: Option<i64>,
    #[serde(rename = "CpuQuota", default)]
    cpu_quota: Option<i64>,
    #[serde(rename = "CpuPeriod", default)]
    cpu_period: Option<i64>,
}

#[derive(Deserialize, Default)]
struct ConfigJson {
    #[serde(rename = "Tty", default)]
    tty: bool,
}

/// Parses `GET /containers/{id}/json`.
pub fn parse_inspect(body: &[u8]) -> Result<ContainerDetails, ParseError> {
    let v: InspectJson = json("docker /containers/{id}/json", body)?;
    let started_at = match v.state.started_at.as_deref() {
        None | Some("") => None,
        Some(text) => {
            let t = DateTime::parse_from_rfc3339(text)
                .map_err(|e| ParseError::new("docker State.StartedAt", format!("{text:?}: {e}")))?
                .with_timezone(&Utc);
            // Go's zero time: never started.
            (t.timestamp() > 0).then_some(t)
        }
    };
    let host = v.host_config.unwrap_or_default();
    let cpu_limit_cores = match (host.nano_cpus, host.cpu_quota, host.cpu_period) {
        (Some(nano), _, _) if nano > 0 => Some(nano as f64 / 1e9),
        (_, Some(quota), Some(period)) if quota > 0 && period > 0 => {
            Some(quota as f64 / period as f64)
        }
        _ => None,
    };
    Ok(ContainerDetails {
        health: v
            .state
            .health
            .map(|h| h.status)
            .filter(|s| !s.is_empty() && s != "none"),
        restart_count: v.restart_count,
        started_at,
        cpu_limit_cores,
        tty: v.config.unwrap_or_default().tty,
    })
}

/// Cumulative CPU counters of one stats sample, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    /// `cpu_usage.total_usage`: the container's CPU time.
    pub container_ns: u64,
    /// `system_cpu_usage`: the host's CPU time over all CPUs.
    pub system_ns: u64,
}

/// What one `GET /containers/{id}/stats?stream=false` says.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStats {
    pub cpu: CpuSample,
    /// The daemon's own previous sample (empty with `one-shot=true`).
    pub precpu: Option<CpuSample>,
    pub online_cpus: u32,
    /// Usage without the reclaimable inactive page cache (Docker CLI).
    pub memory_bytes: u64,
    pub memory_limit: Option<u64>,
    /// Summed over the container's networks; `None` without any (host or
    /// `none` network mode).
    pub net_rx_bytes: Option<u64>,
    pub net_tx_bytes: Option<u64>,
    pub block_read_bytes: Option<u64>,
    pub block_write_bytes: Option<u64>,
}

#[derive(Deserialize)]
struct StatsJson {
    #[serde(default)]
    cpu_stats: Option<CpuStatsJson>,
    #[serde(default)]
    precpu_stats: Option<CpuStatsJson>,
    #[serde(default)]
    memory_stats: Option<MemoryStatsJson>,
    #[serde(default)]
    networks: Option<HashMap<String, NetJson>>,
    #[serde(default)]
    blkio_stats: Option<BlkioJson>,
}

#[derive(Deserialize, Default)]
struct CpuStatsJson {
    #[serde(default)]
    cpu_usage: Option<CpuUsageJson>,
    #[serde(default)]
    system_cpu_usage: Option<u64>,
    #[serde(default)]
    online_cpus: Option<u32>,
}

#[derive(Deserialize, Default)]
struct CpuUsageJson {
    #[serde(default)]
    total_usage: u64,
    #[serde(default)]
    percpu_usage: Option<Vec<u64>>,
}

#[derive(Deserialize, Default)]
struct MemoryStatsJson {
    #[serde(default)]
    usage: Option<u64>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    stats: Option<HashMap<String, u64>>,
}

#[derive(Deserialize)]
struct NetJson {
    #[serde(default)]
    rx_bytes: u64,
    #[serde(default)]
    tx_bytes: u64,
}

#[derive(Deserialize)]
struct BlkioJson {
    #[serde(default)]
    io_service_bytes_recursive: Option<Vec<BlkioEntryJson>>,
}

#[derive(Deserialize)]
struct BlkioEntryJson {
    #[serde(default)]
    op: String,
    #[serde(default)]
    value: u64,
}

/// Parses `GET /containers/{id}/stats?stream=false`. Memory is computed as
/// the Docker CLI does since 20.10 (docker/cli#2415): `usage` minus
/// `total_inactive_file` (cgroup v1) or `inactive_file` (cgroup v2), the
/// page cache the kernel can reclaim; subtracting the whole `cache` would
/// hide active file pages the container really holds.
pub fn parse_stats(body: &[u8]) -> Result<ContainerStats, ParseError> {
    let v: StatsJson = json("docker /containers/{id}/stats", body)?;
    let cpu_stats = v.cpu_stats.unwrap_or_default();
    let usage = cpu_stats.cpu_usage.unwrap_or_default();
    let online_cpus = cpu_stats
        .online_cpus
        .filter(|n| *n > 0)
        .or_else(|| {
            usage
                .percpu_usage
                .as_ref()
                .and_then(|p| u32::try_from(p.len()).ok())
        })
        .unwrap_or(0);
    let cpu = CpuSample {
        container_ns: usage.total_usage,
        system_ns: cpu_stats.system_cpu_usage.unwrap_or(0),
    };
    let precpu = v.precpu_stats.and_then(|p| {
        let system_ns = p.system_cpu_usage.filter(|s| *s > 0)?;
        Some(CpuSample {
            container_ns: p.cpu_usage.unwrap_or_default().total_usage,
            system_ns,
        })
    });
    let memory = v.memory_stats.unwrap_or_default();
    let raw_usage = memory.usage.unwrap_or(0);
    let stats = memory.stats.unwrap_or_default();
    let inactive = stats
        .get("total_inactive_file")
        .or_else(|| stats.get("inactive_file"))
        .copied()
        .filter(|inactive| *inactive < raw_usage)
        .unwrap_or(0);
    let (net_rx_bytes, net_tx_bytes) = match v.networks {
        Some(nets) if !nets.is_empty() => (
            Some(nets.values().map(|n| n.rx_bytes).sum()),
            Some(nets.values().map(|n| n.tx_bytes).sum()),
        ),
        _ => (None, None),
    };
    let blkio = v.blkio_stats.and_then(|b| b.io_service_bytes_recursive);
    // cgroup v1 says `Read`, cgroup v2 `read`.
    let sum_op = |op: &str| {
        blkio.as_ref().map(|entries| {
            entries
                .iter()
                .filter(|e| e.op.eq_ignore_ascii_case(op))
                .map(|e| e.value)
                .sum()
        })
    };
    Ok(ContainerStats {
        cpu,
        precpu,
        online_cpus,
        memory_bytes: raw_usage - inactive,
        memory_limit: memory.limit.filter(|l| *l > 0),
        net_rx_bytes,
        net_tx_bytes,
        block_read_bytes: sum_op("read"),
        block_write_bytes: sum_op("write"),
    })
}

/// CPU % of one core between two samples, as the Docker CLI computes it:
/// `container delta / host delta * online CPUs * 100` (so 250 % is two and
/// a half cores busy, as in `top`). `None` when the host counter did not
/// move or the container's went back (a restart).
pub fn compute_cpu_percent(
    previous: CpuSample,
    current: CpuSample,
    online_cpus: u32,
) -> Option<f64> {
    let system = current.system_ns.checked_sub(previous.system_ns)?;
    let container = current.container_ns.checked_sub(previous.container_ns)?;
    if system == 0 || online_cpus == 0 {
        return None;
    }
    Some(container as f64 / system as f64 * f64::from(online_cpus) * 100.0)
}

/// Everything learned about one container this cycle.
#[derive(Debug)]
pub struct ContainerReport {
    pub summary: ContainerSummary,
    pub details: Result<ContainerDetails, String>,
    /// `None` when the container is not running (no stats asked).
    pub stats: Option<Result<ContainerStats, String>>,
    /// From our previous sample or the daemon's `precpu_stats`.
    pub cpu_percent: Option<f64>,
}

/// The wire workload for one container (see `Workload::stats_error` for
/// when the required numbers are 0).
pub fn build_workload(
    report: ContainerReport,
    source: WorkloadSource,
    now: DateTime<Utc>,
) -> Workload {
    let summary = report.summary;
    let mut problems = Vec::new();
    let details = match report.details {
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(format!("inspect failed: {e}"));
            None
        }
    };
    let running = summary.state == "running";
    let mut w = Workload {
        name: summary.name(),
        id: summary.id,
        image: summary.image,
        state: summary.state,
        source,
        kind: WorkloadKind::Container,
        cpu_percent: 0.0,
        cpu_limit_cores: details.as_ref().and_then(|d| d.cpu_limit_cores),
        memory_bytes: 0,
        memory_limit: None,
        net_rx_bytes: 0,
        net_tx_bytes: 0,
        health: details.as_ref().and_then(|d| d.health.clone()),
        restarts: details.as_ref().map(|d| d.restart_count),
        uptime_seconds: details
            .as_ref()
            .and_then(|d| d.started_at)
            .filter(|_| running)
            .map(|t| u64::try_from((now - t).num_seconds()).unwrap_or(0)),
        status: Some(summary.status).filter(|s| !s.is_empty()),
        stats_error: None,
        block_read_bytes: None,
        block_write_bytes: None,
        disk_bytes: None,
        disk_limit: None,
        node: None,
    };
    match report.stats {
        None => {}
        Some(Err(e)) => problems.push(format!("stats unavailable: {e}")),
        Some(Ok(stats)) => {
            match report.cpu_percent {
                Some(cpu) => w.cpu_percent = round_hundredths(cpu),
                None => problems.push("cpu_percent unknown until the next sample".to_owned()),
            }
            w.memory_bytes = stats.memory_bytes;
            w.memory_limit = stats.memory_limit;
            match (stats.net_rx_bytes, stats.net_tx_bytes) {
                (Some(rx), Some(tx)) => (w.net_rx_bytes, w.net_tx_bytes) = (rx, tx),
                _ => {
                    problems.push("no network counters of its own (host or no network)".to_owned())
                }
            }
            w.block_read_bytes = stats.block_read_bytes;
            w.block_write_bytes = stats.block_write_bytes;
        }
    }
    if !problems.is_empty() {
        w.stats_error = Some(problems.join("; "));
    }
    w
}

/// Percent-encodes a path segment (container ids and names are
/// `[a-zA-Z0-9_.-]`, but a caller's string must not add path or query).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A negotiated connection target: each request opens its own short
/// connection, so requests run in parallel without sharing state.
#[derive(Debug, Clone)]
pub struct DockerClient {
    pub socket: PathBuf,
    pub version: ApiVersion,
    pub is_podman: bool,
    pub timeout: Duration,
}

impl DockerClient {
    /// `GET /version` and [`negotiate_version`].
    pub fn negotiate(socket: &Path, timeout: Duration) -> Result<Self, String> {
        let response =
            http::get(socket, "/version", timeout, OBJECT_CAP_BYTES).map_err(|e| e.to_string())?;
        let body = require_ok(socket, "/version", response)?;
        let daemon = parse_version(&body).map_err(|e| format!("{}: {e}", socket.display()))?;
        let version =
            negotiate_version(&daemon).map_err(|e| format!("{}: {e}", socket.display()))?;
        Ok(Self {
            socket: socket.to_path_buf(),
            version,
            is_podman: daemon.is_podman,
            timeout,
        })
    }

    /// `GET /v<version><path>`: the body of a 2xx reply.
    fn get(&self, path: &str, cap: usize) -> Result<Response, HttpError> {
        http::get(
            &self.socket,
            &format!("/v{}{path}", self.version),
            self.timeout,
            cap,
        )
    }

    fn get_ok(&self, path: &str, cap: usize) -> Result<Vec<u8>, String> {
        let response = self.get(path, cap).map_err(|e| e.to_string())?;
        require_ok(&self.socket, path, response)
    }

    pub fn list_containers(&self) -> Result<Vec<ContainerSummary>, String> {
        let body = self.get_ok("/containers/json?all=true", LIST_CAP_BYTES)?;
        parse_container_list(&body).map_err(|e| format!("{}: {e}", self.socket.display()))
    }

    /// `Ok(None)`: the container is gone (removed since the list).
    pub fn inspect(&self, id: &str) -> Result<Option<ContainerDetails>, String> {
        let path = format!("/containers/{}/json", encode_segment(id));
        let response = self
            .get(&path, OBJECT_CAP_BYTES)
            .map_err(|e| e.to_string())?;
        if response.status == 404 {
            return Ok(None);
        }
        let body = require_ok(&self.socket, &path, response)?;
        parse_inspect(&body).map(Some).map_err(|e| e.to_string())
    }

    /// With `one_shot`, the daemon answers at once without its own
    /// previous sample (API 1.41+); without, it waits for a second sample
    /// (about a second) and fills `precpu_stats`.
    pub fn stats(&self, id: &str, one_shot: bool) -> Result<ContainerStats, String> {
        let one_shot = if one_shot && self.version >= ONE_SHOT_API_VERSION {
            "&one-shot=true"
        } else {
            ""
        };
        let path = format!(
            "/containers/{}/stats?stream=false{one_shot}",
            encode_segment(id)
        );
        let body = self.get_ok(&path, OBJECT_CAP_BYTES)?;
        parse_stats(&body).map_err(|e| e.to_string())
    }
}

/// The body of a 2xx reply, else an error with Docker's `{"message"}`.
fn require_ok(socket: &Path, path: &str, response: Response) -> Result<Vec<u8>, String> {
    if (200..300).contains(&response.status) {
        return Ok(response.body);
    }
    #[derive(Deserialize)]
    struct ErrorJson {
        message: String,
    }
    let message = serde_json::from_slice::<ErrorJson>(&response.body)
        .map(|e| e.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&response.body).trim().to_owned());
    Err(format!(
        "{} answered HTTP {} to GET {path}: {message}",
        socket.display(),
        response.status
    ))
}

/// Every container of the daemon at `socket`, inspected, with stats for
/// the running ones; requests run [`MAX_PARALLEL_REQUESTS`] at a time, each
/// bounded by `timeout`, so a slow container costs its own stats only.
/// `cpu_samples` holds the previous cycle's counters per container id and
/// is replaced with this cycle's. An error means nothing could be listed.
pub fn collect_workloads(
    socket: &Path,
    default_source: WorkloadSource,
    timeout: Duration,
    cpu_samples: &mut HashMap<String, CpuSample>,
    now: DateTime<Utc>,
) -> Result<Vec<Workload>, String> {
    let client = DockerClient::negotiate(socket, timeout)?;
    let source = if client.is_podman {
        WorkloadSource::Podman
    } else {
        default_source
    };
    let containers = client.list_containers()?;
    let previous = std::mem::take(cpu_samples);
    // A daemon slow for everyone would cost a timeout per container per
    // round; past this the rest are sent from the list alone.
    let deadline = Instant::now() + timeout * CYCLE_BUDGET_TIMEOUTS;
    let reports = run_parallel(containers, MAX_PARALLEL_REQUESTS, |summary| {
        if Instant::now() >= deadline {
            let skipped = format!(
                "not asked: {} was too slow this cycle",
                client.socket.display()
            );
            let running = summary.state == "running";
            return Some(ContainerReport {
                summary,
                details: Err(skipped.clone()),
                stats: running.then_some(Err(skipped)),
                cpu_percent: None,
            });
        }
        let details = match client.inspect(&summary.id) {
            Ok(Some(d)) => Ok(d),
            Ok(None) => return None,
            Err(e) => Err(e),
        };
        let running = summary.state == "running";
        let prev = previous.get(&summary.id).copied();
        let stats = running.then(|| client.stats(&summary.id, prev.is_some()));
        let cpu_percent = match &stats {
            Some(Ok(s)) => prev
                .or(s.precpu)
                .and_then(|p| compute_cpu_percent(p, s.cpu, s.online_cpus)),
            _ => None,
        };
        Some(ContainerReport {
            summary,
            details,
            stats,
            cpu_percent,
        })
    });
    let mut workloads = Vec::with_capacity(reports.len());
    for report in reports.into_iter().flatten() {
        if let Some(Ok(stats)) = &report.stats {
            cpu_samples.insert(report.summary.id.clone(), stats.cpu);
        }
        workloads.push(build_workload(report, source.clone(), now));
    }
    Ok(workloads)
}

/// One log line: when, `stdout` or `stderr`, the text.
pub type LogLine = (DateTime<Utc>, String, String);

/// The last `tail` lines of a container's logs (since `since`, seconds
/// since the epoch), for `FETCH_LOGS`: `GET /containers/{id}/logs` with
/// timestamps, decoded by [`decode_log_stream`].
pub fn container_logs(
    socket: &Path,
    container: &str,
    tail: u32,
    since: Option<i64>,
    timeout: Duration,
) -> Result<Vec<LogLine>, String> {
    if container.is_empty() || container == "." || container == ".." {
        return Err(format!("{container:?} is not a container id or name"));
    }
    let client = DockerClient::negotiate(socket, timeout)?;
    let mut path = format!(
        "/containers/{}/logs?stdout=1&stderr=1&timestamps=1&tail={tail}",
        encode_segment(container)
    );
    if let Some(since) = since {
        path.push_str(&format!("&since={since}"));
    }
    let response = client
        .get(&path, LOGS_CAP_BYTES)
        .map_err(|e| e.to_string())?;
    let content_type = response.header("content-type").map(str::to_owned);
    let body = require_ok(socket, &path, response)?;
    // API 1.42+ says which framing it used; older daemons only through
    // the container's `Config.Tty`.
    let raw = match content_type.as_deref() {
        Some(t) if t.contains("multiplexed-stream") => false,
        Some(t) if t.contains("raw-stream") => true,
        _ => match client.inspect(container)? {
            Some(details) => details.tty,
            None => return Err(format!("no container {container:?}")),
        },
    };
    decode_log_stream(&body, raw).map_err(|e| format!("{}: {e}", socket.display()))
}

/// Decodes a logs body. Multiplexed (non-TTY containers): frames of an
/// 8-byte header (stream type 0 stdin, 1 stdout, 2 stderr; three zero
/// bytes; big-endian u32 length) and the payload. Raw (TTY containers):
/// plain text, all `stdout`. Each line starts with the RFC 3339 timestamp
/// asked with `timestamps=1`; a line split across frames is joined.
pub fn decode_log_stream(body: &[u8], raw: bool) -> Result<Vec<LogLine>, ParseError> {
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut lines = Vec::new();
    let mut push_complete =
        |buf: &mut Vec<u8>, stream: usize, data: &[u8]| -> Result<(), ParseError> {
            buf.extend_from_slice(data);
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                lines.push(parse_log_line(&line[..end], stream)?);
            }
            Ok(())
        };
    if raw {
        push_complete(&mut pending[0], 0, body)?;
    } else {
        let mut rest = body;
        while !rest.is_empty() {
            if rest.len() < 8 {
                return Err(ParseError::new(
                    "docker log stream",
                    format!("{} bytes left, shorter than a frame header", rest.len()),
                ));
            }
            let stream = match rest[0] {
                0 | 1 => 0,
                2 => 1,
                other => {
                    return Err(ParseError::new(
                        "docker log stream",
                        format!("unknown stream type {other} (is the container a TTY one?)"),
                    ))
                }
            };
            let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
            let payload = rest.get(8..8 + len).ok_or_else(|| {
                ParseError::new(
                    "docker log stream",
                    format!("frame of {len} bytes cut after {}", rest.len() - 8),
                )
            })?;
            push_complete(&mut pending[stream], stream, payload)?;
            rest = &rest[8 + len..];
        }
    }
    // A last line without its newline.
    for (stream, buf) in pending.iter().enumerate() {
        if !buf.is_empty() {
            lines.push(parse_log_line(buf, stream)?);
        }
    }
    Ok(lines)
}

fn parse_log_line(line: &[u8], stream: usize) -> Result<LogLine, ParseError> {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    let (stamp, message) = text.split_once(' ').unwrap_or((text, ""));
    let at = DateTime::parse_from_rfc3339(stamp)
        .map_err(|e| {
            ParseError::new(
                "docker log line",
                format!("{stamp:?} is not an RFC 3339 timestamp ({e}): {text:?}"),
            )
        })?
        .with_timezone(&Utc);
    let stream = if stream == 0 { "stdout" } else { "stderr" };
    Ok((at, stream.to_owned(), message.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::test_fixture;

    fn fixture(name: &str) -> Vec<u8> {
        test_fixture(&format!("docker/{name}")).into_bytes()
    }

    #[test]
    fn negotiates_the_lower_version_and_refuses_too_old_daemons() {
        let v = parse_version(&fixture("version_24.json")).unwrap();
        assert_eq!(
            v.api_version,
            ApiVersion {
                major: 1,
                minor: 43
            }
        );
        assert_eq!(
            v.min_api_version,
            Some(ApiVersion {
                major: 1,
                minor: 12
            })
        );
        assert!(!v.is_podman);
        assert_eq!(negotiate_version(&v).unwrap().to_string(), "1.43");

        let newer = DaemonVersion {
            api_version: ApiVersion {
                major: 1,
                minor: 47,
            },
            min_api_version: Some(ApiVersion {
                major: 1,
                minor: 24,
            }),
            is_podman: false,
        };
        assert_eq!(negotiate_version(&newer).unwrap(), PARSER_API_VERSION);
        let old = DaemonVersion {
            api_version: ApiVersion {
                major: 1,
                minor: 25,
            },
            ..newer.clone()
        };
        assert!(negotiate_version(&old)
            .unwrap_err()
            .contains("older than the 1.27"));
        let strict = DaemonVersion {
            min_api_version: Some(ApiVersion {
                major: 1,
                minor: 44,
            }),
            ..newer
        };
        assert!(negotiate_version(&strict)
            .unwrap_err()
            .contains("needs Docker API 1.44"));
        assert!(parse_version(br#"{"ApiVersion":"one"}"#).is_err());
    }

    #[test]
    fn recognises_podman_from_its_version_components() {
        let v = parse_version(&fixture("version_podman_4.json")).unwrap();
        assert!(v.is_podman);
        assert_eq!(negotiate_version(&v).unwrap().to_string(), "1.41");
    }

    #[test]
    fn parses_the_documented_container_list() {
        let list = parse_container_list(&fixture("containers_json.json")).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].name(), "web");
        assert_eq!(list[0].image, "nginx:1.25");
        assert_eq!(list[0].state, "running");
        assert_eq!(list[0].status, "Up 2 hours (healthy)");
        assert_eq!(list[2].state, "exited");
    }

    #[test]
    fn parses_inspect_health_restarts_start_and_cpu_limit() {
        let d = parse_inspect(&fixture("inspect_web.json")).unwrap();
        assert_eq!(d.health.as_deref(), Some("healthy"));
        assert_eq!(d.restart_count, 0);
        assert_eq!(
            d.started_at.unwrap().to_rfc3339(),
            "2026-11-25T08:00:05.072697474+00:00"
        );
        assert_eq!(d.cpu_limit_cores, Some(1.5));
        assert!(!d.tty);
        let never = parse_inspect(&fixture("inspect_backup.json")).unwrap();
        assert_eq!(never.started_at, None);
        assert_eq!(never.health, None);
        assert_eq!(never.restart_count, 7);
        assert_eq!(never.cpu_limit_cores, Some(0.5));
    }

    #[test]
    fn parses_cgroup_v1_stats_as_the_docker_cli_does() {
        let s = parse_stats(&fixture("stats_v1.json")).unwrap();
        // usage 6537216 - total_inactive_file 2105344
        assert_eq!(s.memory_bytes, 4_431_872);
        assert_eq!(s.memory_limit, Some(67_108_864));
        assert_eq!(s.net_rx_bytes, Some(5338 + 4641));
        assert_eq!(s.net_tx_bytes, Some(648 + 648));
        assert_eq!(s.online_cpus, 4);
        assert_eq!(s.block_read_bytes, Some(1_056_768));
        assert_eq!(s.block_write_bytes, Some(4096));
        let pre = s.precpu.unwrap();
        // (100215355-100093996) / (739306590000000-739306580000000) * 4 * 100
        let cpu = compute_cpu_percent(pre, s.cpu, s.online_cpus).unwrap();
        assert!((cpu - 4.85436).abs() < 1e-4, "{cpu}");
    }

    #[test]
    fn parses_cgroup_v2_one_shot_stats_without_precpu() {
        let s = parse_stats(&fixture("stats_v2_oneshot.json")).unwrap();
        assert_eq!(s.precpu, None);
        // usage 52428800 - inactive_file 10485760
        assert_eq!(s.memory_bytes, 41_943_040);
        assert_eq!(s.block_read_bytes, Some(8_192_000));
        assert_eq!(s.block_write_bytes, Some(409_600));
        assert_eq!(s.net_rx_bytes, Some(123_456));
    }

    #[test]
    fn cpu_percent_needs_moving_counters() {
        let a = CpuSample {
            container_ns: 1_000,
            system_ns: 10_000,
        };
        let b = CpuSample {
            container_ns: 3_000,
            system_ns: 20_000,
        };
        assert_eq!(compute_cpu_percent(a, b, 4), Some(80.0));
        assert_eq!(compute_cpu_percent(a, a, 4), None);
        // Restarted container: its counter went back.
        assert_eq!(
            compute_cpu_percent(
                b,
                CpuSample {
                    container_ns: 5,
                    system_ns: 30_000
                },
                4
            ),
            None
        );
    }

    #[test]
    fn a_workload_without_stats_says_why_and_keeps_zeros() {
        let summary = parse_container_list(&fixture("containers_json.json"))
            .unwrap()
            .remove(0);
        let now = DateTime::parse_from_rfc3339("2026-11-25T10:00:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let w = build_workload(
            ContainerReport {
                summary,
                details: parse_inspect(&fixture("inspect_web.json")).map_err(|e| e.to_string()),
                stats: Some(Err("timed out".into())),
                cpu_percent: None,
            },
            WorkloadSource::Docker,
            now,
        );
        assert_eq!(
            w.stats_error.as_deref(),
            Some("stats unavailable: timed out")
        );
        assert_eq!((w.cpu_percent, w.memory_bytes, w.net_rx_bytes), (0.0, 0, 0));
        assert_eq!(w.health.as_deref(), Some("healthy"));
        assert_eq!(w.uptime_seconds, Some(7199));
    }

    #[test]
    fn decodes_multiplexed_logs_joining_split_lines() {
        let mut body = Vec::new();
        let mut frame = |stream: u8, text: &str| {
            body.extend_from_slice(&[stream, 0, 0, 0]);
            body.extend_from_slice(&(text.len() as u32).to_be_bytes());
            body.extend_from_slice(text.as_bytes());
        };
        frame(1, "2026-11-25T10:00:00.000000001Z listening on :80\n");
        frame(2, "2026-11-25T10:00:01.5Z warn: slow");
        frame(2, " request\n2026-11-25T10:00:02Z last\n");
        let lines = decode_log_stream(&body, false).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].1, "stdout");
        assert_eq!(lines[0].2, "listening on :80");
        assert_eq!(lines[0].0.timestamp_subsec_nanos(), 1);
        assert_eq!(
            (lines[1].1.as_str(), lines[1].2.as_str()),
            ("stderr", "warn: slow request")
        );
        assert_eq!(lines[2].2, "last");
        let cut = &body[..body.len() - 3];
        assert!(decode_log_stream(cut, false)
            .unwrap_err()
            .message
            .contains("cut"));
    }

    #[test]
    fn decodes_raw_tty_logs_and_rejects_untimed_lines() {
        let body = b"2026-11-25T10:00:00Z $ top\r\n2026-11-25T10:00:01Z done";
        let lines = decode_log_stream(body, true).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (lines[0].1.as_str(), lines[0].2.as_str()),
            ("stdout", "$ top")
        );
        assert_eq!(lines[1].2, "done");
        let e = decode_log_stream(b"hello world\n", true).unwrap_err();
        assert!(e.message.contains("not an RFC 3339 timestamp"), "{e}");
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(encode_segment("web-1_a.b"), "web-1_a.b");
        assert_eq!(encode_segment("../x?y"), "..%2Fx%3Fy");
    }
}
