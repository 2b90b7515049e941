//! `container_list` against a fake Docker Engine API server (a unix socket
//! in a temp dir answering with the JSON fixtures of `fixtures/docker/`)
//! and a fake `pvesh` (a shell script printing `fixtures/proxmox/`), then
//! the real binary's `collect --collector container_list` against both.
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use spectra_agent::collectors::container_list::docker::container_logs;
use spectra_agent::collectors::container_list::{ContainerListCollector, ContainerListConfig};
use spectra_agent::collectors::{CollectError, Collector};
use spectra_protocol::{MetricData, RawEnvelope, Workload, WorkloadKind, WorkloadSource};

const WEB: &str = "8dfafdbc3a40b6a1d6e1e6b5b6a8a9e2f3c4d5e6f708192a3b4c5d6e7f8091a2";
const DB: &str = "9cd87474be90b6a1d6e1e6b5b6a8a9e2f3c4d5e6f708192a3b4c5d6e7f8091b3";
const BACKUP: &str = "4fa6e0f0c6786287e131c3852c58a2e01cc697a68231826813597e4994f1d6e2";

fn fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// How the fake daemon answers one path.
#[derive(Clone)]
enum Reply {
    /// 200 with `Content-Length`.
    Json(String),
    /// 200 with `Transfer-Encoding: chunked`, in small chunks.
    Chunked(String),
    /// A status and a body.
    Status(u16, String),
    /// 200 with a content type (log streams).
    Typed(Option<&'static str>, Vec<u8>),
    /// Reads the request, never answers; ends when the client hangs up.
    Hang,
    /// Announces 4096 bytes, sends a few, closes.
    Truncated,
}

/// A Docker Engine API stand-in on a unix socket in a temp dir.
struct FakeDaemon {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeDaemon {
    fn start(routes: Vec<(String, Reply)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let routes: Arc<HashMap<String, Reply>> = Arc::new(routes.into_iter().collect());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (routes, seen) = (routes.clone(), seen.clone());
                std::thread::spawn(move || serve(stream, &routes, &seen));
            }
        });
        Self {
            _dir: dir,
            socket,
            requests,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(mut stream: UnixStream, routes: &HashMap<String, Reply>, seen: &Mutex<Vec<String>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8(head).unwrap();
    let path = head.split(' ').nth(1).unwrap().to_owned();
    assert!(
        head.contains("\r\nHost: "),
        "HTTP/1.1 needs a Host header: {head}"
    );
    seen.lock().unwrap().push(path.clone());
    let reply = routes.get(&path).cloned().unwrap_or(Reply::Status(
        404,
        format!(r#"{{"message":"page not found: {path}"}}"#),
    ));
    let _ = match reply {
        Reply::Json(body) => write_reply(&mut stream, 200, None, body.as_bytes()),
        Reply::Status(code, body) => write_reply(&mut stream, code, None, body.as_bytes()),
        Reply::Typed(kind, body) => write_reply(&mut stream, 200, kind, &body),
        Reply::Chunked(body) => {
            let mut out =
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                    .to_vec();
            for piece in body.as_bytes().chunks(700) {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            stream.write_all(&out)
        }
        Reply::Hang => {
            // Until the client gives up and closes.
            let _ = stream.read_to_end(&mut Vec::new());
            Ok(())
        }
        Reply::Truncated => stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n[{\"Id\":\"8dfa",
        ),
    };
}

fn write_reply(
    stream: &mut UnixStream,
    code: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {code} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nApi-Version: 1.43\r\n\r\n",
        content_type.unwrap_or("application/json"),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)
}

/// The routes of a healthy daemon speaking `version` (1.43 or 1.41).
fn docker_routes(version_fixture: &str, api: &str) -> Vec<(String, Reply)> {
    let v = |p: &str| format!("/v{api}{p}");
    vec![
        ("/version".into(), Reply::Json(fixture(version_fixture))),
        (
            v("/containers/json?all=true"),
            Reply::Json(fixture("docker/containers_json.json")),
        ),
        (
            v(&format!("/containers/{WEB}/json")),
            Reply::Json(fixture("docker/inspect_web.json")),
        ),
        (
            v(&format!("/containers/{DB}/json")),
            Reply::Json(fixture("docker/inspect_db.json")),
        ),
        (
            v(&format!("/containers/{BACKUP}/json")),
            Reply::Json(fixture("docker/inspect_backup.json")),
        ),
        // First cycle: no previous sample, so the two-sample form.
        (
            v(&format!("/containers/{WEB}/stats?stream=false")),
            Reply::Chunked(fixture("docker/stats_v1.json")),
        ),
        (
            v(&format!("/containers/{DB}/stats?stream=false")),
            Reply::Json(fixture("docker/stats_v2_oneshot.json")),
        ),
    ]
}

fn config(rootfs: &Path, docker_host: Option<&Path>, search_path: &Path) -> ContainerListConfig {
    ContainerListConfig {
        rootfs: rootfs.to_path_buf(),
        procfs: rootfs.join("proc"),
        docker_host: docker_host.map(|s| format!("unix://{}", s.display())),
        search_path: search_path.as_os_str().to_owned(),
        request_timeout: Duration::from_secs(3),
        pvesh_timeout: Duration::from_secs(10),
    }
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 5).unwrap()
}

fn workloads(out: Vec<MetricData>) -> Vec<Workload> {
    match <[MetricData; 1]>::try_from(out) {
        Ok([MetricData::ContainerList(m)]) => m.containers,
        Ok(other) => panic!("{other:?}"),
        Err(other) => panic!("{other:?}"),
    }
}

fn empty_workload(source: WorkloadSource, kind: WorkloadKind) -> Workload {
    Workload {
        id: String::new(),
        name: String::new(),
        image: String::new(),
        state: String::new(),
        source,
        kind,
        cpu_percent: 0.0,
        cpu_limit_cores: None,
        memory_bytes: 0,
        memory_limit: None,
        net_rx_bytes: 0,
        net_tx_bytes: 0,
        health: None,
        restarts: None,
        uptime_seconds: None,
        status: None,
        stats_error: None,
        block_read_bytes: None,
        block_write_bytes: None,
        disk_bytes: None,
        disk_limit: None,
        node: None,
    }
}

fn expected_backup() -> Workload {
    Workload {
        id: BACKUP.into(),
        name: "backup".into(),
        image: "restic/restic:0.16.2".into(),
        state: "exited".into(),
        cpu_limit_cores: Some(0.5),
        restarts: Some(7),
        status: Some("Exited (1) 3 hours ago".into()),
        ..empty_workload(WorkloadSource::Docker, WorkloadKind::Container)
    }
}

fn expected_web() -> Workload {
    Workload {
        id: WEB.into(),
        name: "web".into(),
        image: "nginx:1.25".into(),
        state: "running".into(),
        // (100215355 - 100093996) / (739306590000000 - 739306580000000) * 4 * 100
        cpu_percent: 4.85,
        cpu_limit_cores: Some(1.5),
        memory_bytes: 6_537_216 - 2_105_344,
        memory_limit: Some(67_108_864),
        net_rx_bytes: 5338 + 4641,
        net_tx_bytes: 648 + 648,
        health: Some("healthy".into()),
        restarts: Some(0),
        // StartedAt 08:00:05.07, now 10:00:05
        uptime_seconds: Some(7199),
        status: Some("Up 2 hours (healthy)".into()),
        block_read_bytes: Some(1_056_768),
        block_write_bytes: Some(4096),
        ..empty_workload(WorkloadSource::Docker, WorkloadKind::Container)
    }
}

fn expected_db_first_cycle() -> Workload {
    Workload {
        id: DB.into(),
        name: "db".into(),
        image: "postgres:16".into(),
        state: "running".into(),
        memory_bytes: 52_428_800 - 10_485_760,
        memory_limit: Some(8_326_123_520),
        net_rx_bytes: 123_456,
        net_tx_bytes: 654_321,
        health: Some("unhealthy".into()),
        restarts: Some(2),
        uptime_seconds: Some(1805),
        status: Some("Up 2 hours".into()),
        // The daemon honoured one-shot (no precpu_stats) although not asked:
        // CPU needs a second sample, and the marker says so.
        stats_error: Some("cpu_percent unknown until the next sample".into()),
        block_read_bytes: Some(8_192_000),
        block_write_bytes: Some(409_600),
        ..empty_workload(WorkloadSource::Docker, WorkloadKind::Container)
    }
}

#[test]
fn lists_docker_containers_with_stats_health_restarts_and_cpu_across_cycles() {
    let mut routes = docker_routes("docker/version_24.json", "1.43");
    // Second cycle: a previous sample exists, so one-shot; the db's
    // counters moved by 1.5 s of CPU over 10 s of host CPU time (2 CPUs,
    // so 5 s of wall time): 30 % of one core.
    let mut db2: serde_json::Value =
        serde_json::from_str(&fixture("docker/stats_v2_oneshot.json")).unwrap();
    db2["cpu_stats"]["cpu_usage"]["total_usage"] = 4_000_000_000u64.into();
    db2["cpu_stats"]["system_cpu_usage"] = 739_410_000_000_000u64.into();
    routes.push((
        format!("/v1.43/containers/{DB}/stats?stream=false&one-shot=true"),
        Reply::Json(db2.to_string()),
    ));
    routes.push((
        format!("/v1.43/containers/{WEB}/stats?stream=false&one-shot=true"),
        Reply::Json(fixture("docker/stats_v1.json")),
    ));
    let daemon = FakeDaemon::start(routes);
    let root = tempfile::tempdir().unwrap();
    let mut collector =
        ContainerListCollector::with_config(config(root.path(), Some(&daemon.socket), root.path()));
    assert!(collector.may_block());

    let first = workloads(collector.collect(at()).unwrap());
    assert_eq!(
        first,
        [expected_backup(), expected_db_first_cycle(), expected_web()]
    );
    // Stats only for running containers; everything under /v1.43/.
    let requests = daemon.requests();
    assert!(
        !requests
            .iter()
            .any(|r| r.contains(&format!("{BACKUP}/stats"))),
        "{requests:?}"
    );
    assert!(
        requests.iter().skip(1).all(|r| r.starts_with("/v1.43/")),
        "{requests:?}"
    );

    let second = workloads(collector.collect(at()).unwrap());
    let db = second.iter().find(|w| w.name == "db").unwrap();
    // 1.5e9 / 1e10 * 2 * 100
    assert_eq!(db.cpu_percent, 30.0);
    assert_eq!(db.stats_error, None);
    // web's counters did not move between our two samples: no rate.
    let web = second.iter().find(|w| w.name == "web").unwrap();
    assert_eq!(
        web.stats_error.as_deref(),
        Some("cpu_percent unknown until the next sample")
    );
    assert!(daemon.requests().contains(&format!(
        "/v1.43/containers/{DB}/stats?stream=false&one-shot=true"
    )));
}

#[test]
fn negotiates_down_to_the_daemons_api_version() {
    let daemon = FakeDaemon::start(docker_routes("docker/version_20_10.json", "1.41"));
    let root = tempfile::tempdir().unwrap();
    let mut collector =
        ContainerListCollector::with_config(config(root.path(), Some(&daemon.socket), root.path()));
    let list = workloads(collector.collect(at()).unwrap());
    // Every route exists only under /v1.41/: a 1.43 request would be a 404.
    assert_eq!(
        list,
        [expected_backup(), expected_db_first_cycle(), expected_web()]
    );
    let requests = daemon.requests();
    assert_eq!(requests[0], "/version");
    assert!(
        requests[1..].iter().all(|r| r.starts_with("/v1.41/")),
        "{requests:?}"
    );
}

#[test]
fn podman_is_recognised_from_its_version_reply() {
    let daemon = FakeDaemon::start(docker_routes("docker/version_podman_4.json", "1.41"));
    let root = tempfile::tempdir().unwrap();
    let mut collector =
        ContainerListCollector::with_config(config(root.path(), Some(&daemon.socket), root.path()));
    let list = workloads(collector.collect(at()).unwrap());
    assert_eq!(list.len(), 3);
    assert!(
        list.iter().all(|w| w.source == WorkloadSource::Podman),
        "{list:?}"
    );
}

#[test]
fn a_slow_container_comes_without_stats_and_the_others_are_complete() {
    let mut routes = docker_routes("docker/version_24.json", "1.43");
    for (path, reply) in &mut routes {
        if path.contains(&format!("{DB}/stats")) {
            *reply = Reply::Hang;
        }
    }
    let daemon = FakeDaemon::start(routes);
    let root = tempfile::tempdir().unwrap();
    let mut config = config(root.path(), Some(&daemon.socket), root.path());
    config.request_timeout = Duration::from_millis(400);
    let mut collector = ContainerListCollector::with_config(config);
    let list = workloads(collector.collect(at()).unwrap());
    assert_eq!(list[0], expected_backup());
    assert_eq!(list[2], expected_web());
    let db = &list[1];
    assert_eq!(
        db.stats_error.as_deref(),
        Some(
            format!(
                "stats unavailable: {} did not answer GET /v1.43/containers/{DB}/stats?stream=false within 0.4 s",
                daemon.socket.display()
            )
            .as_str()
        )
    );
    assert_eq!(
        (
            db.cpu_percent,
            db.memory_bytes,
            db.net_rx_bytes,
            db.net_tx_bytes
        ),
        (0.0, 0, 0, 0)
    );
    assert_eq!((db.memory_limit, db.block_read_bytes), (None, None));
    // Inspect still answered: health and restarts are there.
    assert_eq!(db.health.as_deref(), Some("unhealthy"));
    assert_eq!(db.restarts, Some(2));
}

#[test]
fn a_daemon_closing_mid_reply_is_an_error_naming_the_socket() {
    let mut routes = docker_routes("docker/version_24.json", "1.43");
    routes[1].1 = Reply::Truncated;
    let daemon = FakeDaemon::start(routes);
    let root = tempfile::tempdir().unwrap();
    let mut collector =
        ContainerListCollector::with_config(config(root.path(), Some(&daemon.socket), root.path()));
    match collector.collect(at()) {
        Err(CollectError::Other(e)) => assert_eq!(
            e,
            format!(
                "{} closed the connection in the middle of the reply to GET /v1.43/containers/json?all=true",
                daemon.socket.display()
            )
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_daemon_error_status_is_reported_with_its_message() {
    let mut routes = docker_routes("docker/version_24.json", "1.43");
    routes[1].1 = Reply::Status(500, r#"{"message":"layer store is corrupt"}"#.into());
    let daemon = FakeDaemon::start(routes);
    let root = tempfile::tempdir().unwrap();
    let mut collector =
        ContainerListCollector::with_config(config(root.path(), Some(&daemon.socket), root.path()));
    let Err(CollectError::Other(e)) = collector.collect(at()) else {
        panic!("expected an error");
    };
    assert!(
        e.ends_with("answered HTTP 500 to GET /containers/json?all=true: layer store is corrupt"),
        "{e}"
    );
}

#[test]
fn a_socket_nobody_listens_on_is_an_error_not_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    drop(UnixListener::bind(&socket).unwrap());
    let mut collector =
        ContainerListCollector::with_config(config(dir.path(), Some(&socket), dir.path()));
    let Err(CollectError::Other(e)) = collector.collect(at()) else {
        panic!("expected an error");
    };
    assert!(
        e.starts_with(&format!("cannot connect to {}: ", socket.display())),
        "{e}"
    );
    assert!(e.contains("no daemon listens"), "{e}");
}

/// A directory holding a fake `pvesh` that prints the fixtures for the
/// paths of a one-node cluster `pve1`; other paths fail as pvesh does.
fn fake_pvesh(guests: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let print = |name: &str| {
        let text = if guests || name.starts_with("nodes_single") {
            fixture(&format!("proxmox/{name}"))
        } else {
            "[]".to_owned()
        };
        format!("printf '%s\\n' '{}'", text.trim().replace('\'', r"'\''"))
    };
    let script = format!(
        "#!/bin/sh\n\
         # pvesh get <path> --output-format json\n\
         [ \"$1\" = get ] && [ \"$3\" = --output-format ] && [ \"$4\" = json ] || {{ echo \"bad args: $*\" >&2; exit 2; }}\n\
         case \"$2\" in\n\
         /nodes) {} ;;\n\
         /nodes/pve1/lxc) {} ;;\n\
         /nodes/pve1/qemu) {} ;;\n\
         /nodes/pve1/lxc/101/status/current) {} ;;\n\
         /nodes/pve1/qemu/200/status/current) {} ;;\n\
         *) echo \"No '$2' handler defined\" >&2; exit 2 ;;\n\
         esac\n",
        print("nodes_single.json"),
        print("nodes_pve1_lxc.json"),
        print("nodes_pve1_qemu.json"),
        print("lxc_101_status_current.json"),
        print("qemu_200_status_current.json"),
    );
    let path = dir.path().join("pvesh");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn expected_proxmox() -> Vec<Workload> {
    let base = |vmid: &str, name: &str, kind: WorkloadKind| Workload {
        id: vmid.into(),
        name: name.into(),
        node: Some("pve1".into()),
        ..empty_workload(WorkloadSource::Proxmox, kind)
    };
    vec![
        Workload {
            state: "stopped".into(),
            status: Some("stopped".into()),
            cpu_limit_cores: Some(1.0),
            memory_limit: Some(536_870_912),
            block_read_bytes: Some(0),
            block_write_bytes: Some(0),
            disk_bytes: Some(0),
            disk_limit: Some(4_294_967_296),
            ..base("102", "ct-old", WorkloadKind::Lxc)
        },
        // From status/current, fresher than the list.
        Workload {
            state: "running".into(),
            status: Some("running".into()),
            cpu_percent: 6.24,
            cpu_limit_cores: Some(2.0),
            memory_bytes: 268_435_456,
            memory_limit: Some(1_073_741_824),
            net_rx_bytes: 73_471_290,
            net_tx_bytes: 3_523_341,
            uptime_seconds: Some(86_400),
            block_read_bytes: Some(219_996_160),
            block_write_bytes: Some(1_094_000_000),
            disk_bytes: Some(1_502_932_992),
            disk_limit: Some(8_589_934_592),
            ..base("101", "ct-web", WorkloadKind::Lxc)
        },
        Workload {
            state: "stopped".into(),
            status: Some("stopped".into()),
            cpu_limit_cores: Some(2.0),
            memory_limit: Some(2_147_483_648),
            block_read_bytes: Some(0),
            block_write_bytes: Some(0),
            disk_limit: Some(21_474_836_480),
            ..base("201", "vm-test", WorkloadKind::Vm)
        },
        Workload {
            state: "paused".into(),
            status: Some("paused".into()),
            cpu_limit_cores: Some(4.0),
            memory_bytes: 2_155_872_256,
            memory_limit: Some(4_294_967_296),
            net_rx_bytes: 1_051_245,
            net_tx_bytes: 526_001,
            uptime_seconds: Some(3600),
            block_read_bytes: Some(412_628_992),
            block_write_bytes: Some(96_468_992),
            disk_limit: Some(34_359_738_368),
            ..base("200", "vm-win", WorkloadKind::Vm)
        },
    ]
}

#[test]
fn proxmox_guests_of_this_node_without_templates() {
    let bin = fake_pvesh(true);
    let root = tempfile::tempdir().unwrap();
    let mut collector = ContainerListCollector::with_config(config(root.path(), None, bin.path()));
    let list = workloads(collector.collect(at()).unwrap());
    assert_eq!(list, expected_proxmox());
}

#[test]
fn a_proxmox_node_without_guests_sends_an_empty_list() {
    let bin = fake_pvesh(false);
    let root = tempfile::tempdir().unwrap();
    let mut collector = ContainerListCollector::with_config(config(root.path(), None, bin.path()));
    assert_eq!(workloads(collector.collect(at()).unwrap()), []);
}

#[test]
fn every_source_in_one_sorted_list_and_a_dead_one_does_not_hide_the_others() {
    let daemon = FakeDaemon::start(docker_routes("docker/version_24.json", "1.43"));
    let bin = fake_pvesh(true);
    let root = tempfile::tempdir().unwrap();
    let mut collector =
        ContainerListCollector::with_config(config(root.path(), Some(&daemon.socket), bin.path()));
    let list = workloads(collector.collect(at()).unwrap());
    let mut expected = vec![expected_backup(), expected_db_first_cycle(), expected_web()];
    expected.extend(expected_proxmox());
    assert_eq!(list, expected);

    // Docker gone (socket left behind): Proxmox's guests still come.
    let dead = root.path().join("dead.sock");
    drop(UnixListener::bind(&dead).unwrap());
    let mut collector =
        ContainerListCollector::with_config(config(root.path(), Some(&dead), bin.path()));
    let out = collector.collect(at()).unwrap();
    // ... and the list says which source failed.
    match out.as_slice() {
        [MetricData::ContainerList(m)] => {
            assert_eq!(m.errors.len(), 1, "{:?}", m.errors);
            assert!(m.errors[0].contains("dead.sock"), "{:?}", m.errors);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(workloads(out), expected_proxmox());
}

fn log_frame(stream: u8, text: &str) -> Vec<u8> {
    let mut out = vec![stream, 0, 0, 0];
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

#[test]
fn container_logs_decodes_multiplexed_and_tty_streams() {
    let mut body = log_frame(1, "2026-11-25T09:59:58.000000001Z GET / 200\n");
    body.extend(log_frame(2, "2026-11-25T09:59:59Z upstream timed out\n"));
    let routes = vec![
        (
            "/version".into(),
            Reply::Json(fixture("docker/version_24.json")),
        ),
        (
            "/v1.43/containers/web/logs?stdout=1&stderr=1&timestamps=1&tail=50&since=1764064000"
                .into(),
            Reply::Typed(Some("application/vnd.docker.multiplexed-stream"), body),
        ),
        // An older daemon: no content type, so the container's Tty decides.
        (
            "/v1.43/containers/backup/logs?stdout=1&stderr=1&timestamps=1&tail=2".into(),
            Reply::Typed(
                Some("text/plain"),
                b"2026-11-25T07:00:00Z repository opened\r\n".to_vec(),
            ),
        ),
        (
            "/v1.43/containers/backup/json".into(),
            Reply::Json(fixture("docker/inspect_backup.json")),
        ),
    ];
    let daemon = FakeDaemon::start(routes);
    let timeout = Duration::from_secs(3);
    let lines = container_logs(&daemon.socket, "web", 50, Some(1_764_064_000), timeout).unwrap();
    assert_eq!(
        lines,
        [
            (
                Utc.with_ymd_and_hms(2026, 11, 25, 9, 59, 58).unwrap()
                    + chrono::Duration::nanoseconds(1),
                "stdout".to_owned(),
                "GET / 200".to_owned()
            ),
            (
                Utc.with_ymd_and_hms(2026, 11, 25, 9, 59, 59).unwrap(),
                "stderr".to_owned(),
                "upstream timed out".to_owned()
            ),
        ]
    );
    let tty = container_logs(&daemon.socket, "backup", 2, None, timeout).unwrap();
    assert_eq!(
        tty,
        [(
            Utc.with_ymd_and_hms(2026, 11, 25, 7, 0, 0).unwrap(),
            "stdout".to_owned(),
            "repository opened".to_owned()
        )]
    );
    let missing = container_logs(&daemon.socket, "nope", 1, None, timeout).unwrap_err();
    assert!(missing.contains("HTTP 404"), "{missing}");
}

#[test]
fn collect_subcommand_prints_the_unified_envelope() {
    let daemon = FakeDaemon::start(docker_routes("docker/version_24.json", "1.43"));
    let bin = fake_pvesh(true);
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_spectra-agent"))
        .args(["collect", "--collector", "container_list"])
        .env_clear()
        .env("PATH", bin.path())
        .env("DOCKER_HOST", format!("unix://{}", daemon.socket.display()))
        .env("SPECTRA_ROOTFS", root.path())
        .env("SPECTRA_PROCFS", root.path().join("proc"))
        .env("SPECTRA_AGENT_STATE_DIR", state.path())
        .env("SPECTRA_HOSTNAME", "cli-test")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let envelope: RawEnvelope = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(envelope.metric_type, "container_list");
    assert_eq!(envelope.hostname, "cli-test");
    let data: spectra_protocol::ContainerListMetric =
        serde_json::from_value(envelope.data).unwrap();
    let names: Vec<(&str, &str)> = data
        .containers
        .iter()
        .map(|w| (w.name.as_str(), w.state.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("backup", "exited"),
            ("db", "running"),
            ("web", "running"),
            ("ct-old", "stopped"),
            ("ct-web", "running"),
            ("vm-test", "stopped"),
            ("vm-win", "paused")
        ]
    );
    // The binary's own clock: only the time-independent fields are exact.
    let web = data.containers.iter().find(|w| w.name == "web").unwrap();
    assert_eq!(
        (web.cpu_percent, web.health.as_deref(), web.restarts),
        (4.85, Some("healthy"), Some(0))
    );
}

#[test]
fn a_daemon_slow_for_everyone_costs_a_bounded_cycle_and_lists_everything() {
    let ids: Vec<String> = (0..100).map(|i| format!("{i:064x}")).collect();
    let list: Vec<serde_json::Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            serde_json::json!({"Id": id, "Names": [format!("/c{i:03}")], "Image": "busybox",
                "State": "running", "Status": "Up 1 minute"})
        })
        .collect();
    let mut routes = vec![
        (
            "/version".to_owned(),
            Reply::Json(fixture("docker/version_24.json")),
        ),
        (
            "/v1.43/containers/json?all=true".to_owned(),
            Reply::Json(serde_json::to_string(&list).unwrap()),
        ),
    ];
    for id in &ids {
        routes.push((format!("/v1.43/containers/{id}/json"), Reply::Hang));
    }
    let daemon = FakeDaemon::start(routes);
    let root = tempfile::tempdir().unwrap();
    let mut config = config(root.path(), Some(&daemon.socket), root.path());
    config.request_timeout = Duration::from_millis(100);
    let mut collector = ContainerListCollector::with_config(config);
    let list = workloads(collector.collect(at()).unwrap());
    assert_eq!(list.len(), 100);
    // 100 containers x (inspect + stats) x 100 ms / 16 at a time is over a
    // second, past the 5-timeout budget: the last ones are not asked.
    let not_asked = format!(
        "not asked: {} was too slow this cycle",
        daemon.socket.display()
    );
    let last = list.last().unwrap();
    assert_eq!(last.name, "c099");
    assert_eq!(
        last.stats_error,
        Some(format!(
            "inspect failed: {not_asked}; stats unavailable: {not_asked}"
        ))
    );
    // The first ones started at once and waited their own timeout.
    assert!(
        list[0]
            .stats_error
            .as_deref()
            .unwrap()
            .contains("did not answer"),
        "{:?}",
        list[0].stats_error
    );
    assert!(list
        .iter()
        .all(|w| w.state == "running" && w.stats_error.is_some()));
}

#[test]
fn fetch_logs_for_a_container_goes_through_the_daemon_and_filters() {
    use spectra_agent::collectors::HostRoots;
    use spectra_agent::commands::fetch_logs::container::fetch_container_logs;
    use spectra_protocol::{LogLevel, LogRequest};

    let mut body = log_frame(1, "2026-11-25T09:59:58Z GET / 200\n");
    body.extend(log_frame(2, "2026-11-25T09:59:59Z upstream timed out\n"));
    let routes = vec![
        (
            "/version".into(),
            Reply::Json(fixture("docker/version_24.json")),
        ),
        (
            // Filtering by level: the agent asks for 20x the entries.
            "/v1.43/containers/web/logs?stdout=1&stderr=1&timestamps=1&tail=100".into(),
            Reply::Typed(Some("application/vnd.docker.multiplexed-stream"), body),
        ),
    ];
    let daemon = FakeDaemon::start(routes);
    let empty_root = tempfile::tempdir().unwrap();
    let roots = HostRoots {
        rootfs: empty_root.path().to_owned(),
        ..HostRoots::default()
    };
    let host = format!("unix://{}", daemon.socket.display());
    let request = LogRequest {
        min_level: Some(LogLevel::Warning),
        max_entries: Some(5),
        ..LogRequest::default()
    };
    let entries = fetch_container_logs(&roots, Some(&host), &request, "web").unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].message, "upstream timed out");
    assert_eq!(entries[0].source, "web (stderr)");
    assert_eq!(entries[0].level, LogLevel::Warning);

    let e = fetch_container_logs(&roots, Some(&host), &request, "nope").unwrap_err();
    assert!(
        e.contains("nope") && e.contains(&daemon.socket.display().to_string()),
        "{e}"
    );
}
