//! `NETWORK_DIAG` against this machine's real network stack, on loopback
//! only (127.0.0.1 and ::1): ping, traceroute, connect and netstat through
//! the command's `run`, compared with the system's own `ping` and `ss`
//! where they are installed (packages iputils-ping, iproute2).
//!
//! Tests that need a facility the machine lacks (root for raw sockets, a
//! tool) say so and skip; with `CI=true` they fail instead.

#![cfg(target_os = "linux")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use spectra_agent::collectors::HostRoots;
use spectra_agent::commands::network_diag::{
    self, ping::ping_blocking, traceroute::trace_blocking, PingOptions, SocketKind, TraceOptions,
};
use spectra_agent::commands::{CommandContext, COMMAND_TIMEOUT};
use spectra_protocol::{NetworkAction, NetworkDiagRequest, NetworkDiagResult, TraceProtocol};

fn ctx() -> CommandContext {
    CommandContext {
        roots: HostRoots::default(),
        enabled: true,
        disabled: BTreeSet::new(),
        disk_roots: vec![PathBuf::from("/")],
        restart: None,
        timeout: COMMAND_TIMEOUT,
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
    }
}

/// Skips a test whose prerequisite is missing, or fails it under CI.
fn skip(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and this test cannot run: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn tool(path: &str, package: &str) -> Option<PathBuf> {
    let p = PathBuf::from(path);
    if p.exists() {
        Some(p)
    } else {
        skip(&format!("{path} is not installed (package {package})"));
        None
    }
}

fn read_proc_u8(path: &str) -> u8 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn request(action: NetworkAction, target: &str) -> NetworkDiagRequest {
    NetworkDiagRequest::new(action, Some(target.to_owned()))
}

async fn run(r: &NetworkDiagRequest) -> NetworkDiagResult {
    let value = network_diag::run(&ctx(), r)
        .await
        .unwrap_or_else(|e| panic!("{r:?}: {e}"));
    serde_json::from_value(value).unwrap()
}

/// A fast ping: 4 probes at the smallest interval validate() allows.
fn ping_request(target: &str) -> NetworkDiagRequest {
    let mut r = request(NetworkAction::Ping, target);
    r.count = Some(4);
    r.interval_ms = Some(200);
    r
}

async fn assert_loopback_ping(target: &str, expected_ttl: u8) {
    let result = run(&ping_request(target)).await;
    assert_eq!(result.action, NetworkAction::Ping);
    assert_eq!(result.target, target);
    assert_eq!(result.resolved.as_deref(), Some(target));
    let probes = result.ping_results.unwrap();
    assert_eq!(probes.len(), 4);
    for (i, p) in probes.iter().enumerate() {
        assert_eq!(p.seq, i as u32 + 1);
        assert!(p.success, "{p:?}");
        assert_eq!(p.response, "reply");
        assert_eq!(p.peer, target);
        // The reply beat the 2 s timeout; rtt and rtt_ms agree.
        assert!(p.rtt > 0 && p.rtt < 2_000_000_000, "{p:?}");
        assert!((p.rtt_ms - p.rtt as f64 / 1e6).abs() < 1e-3, "{p:?}");
        // A loopback reply was never forwarded: the TTL it left with.
        assert_eq!(p.ttl, Some(expected_ttl), "{p:?}");
    }
    let summary = result.ping_summary.unwrap();
    assert_eq!(
        (summary.sent, summary.received, summary.loss_pct),
        (4, 4, 0.0)
    );
    let (min, avg, max) = (
        summary.min_ms.unwrap(),
        summary.avg_ms.unwrap(),
        summary.max_ms.unwrap(),
    );
    assert!(min <= avg && avg <= max, "{summary:?}");
    let raw = result.raw_output.unwrap();
    assert!(
        raw.contains("4 packets transmitted, 4 received, 0% packet loss"),
        "{raw}"
    );
}

#[tokio::test]
async fn pings_ipv4_loopback_with_the_default_ttl() {
    assert_loopback_ping(
        "127.0.0.1",
        read_proc_u8("/proc/sys/net/ipv4/ip_default_ttl"),
    )
    .await;
}

#[tokio::test]
async fn pings_ipv6_loopback_with_the_loopback_hop_limit() {
    assert_loopback_ping("::1", read_proc_u8("/proc/sys/net/ipv6/conf/lo/hop_limit")).await;
}

#[tokio::test]
async fn pings_a_hostname_through_the_system_resolver() {
    // `localhost` comes from /etc/hosts: no DNS query leaves the host.
    let result = run(&ping_request("localhost")).await;
    let resolved: IpAddr = result.resolved.unwrap().parse().unwrap();
    assert!(resolved.is_loopback(), "{resolved}");
    assert_eq!(result.ping_summary.unwrap().received, 4);
}

fn quick(socket: SocketKind) -> PingOptions {
    PingOptions {
        count: 2,
        interval: Duration::from_millis(200),
        socket,
        ..PingOptions::default()
    }
}

#[test]
fn raw_sockets_ping_both_families_as_root() {
    if !is_root() {
        return skip("raw ICMP sockets need root");
    }
    for dst in ["127.0.0.1", "::1"] {
        let run = ping_blocking(dst.parse().unwrap(), &quick(SocketKind::Raw)).unwrap();
        assert_eq!(run.socket, SocketKind::Raw);
        assert!(
            run.results.iter().all(|r| r.success && r.ttl.is_some()),
            "{run:?}"
        );
    }
}

/// Whether one of this process's groups is in `ping_group_range`, as the
/// kernel checks it (ping_group_range in net/ipv4/ping.c).
fn groups_allowed_to_ping() -> bool {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    let v: Vec<u32> = text
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let (low, high) = (v[0], v[1]);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let mut gids: Vec<u32> = Vec::new();
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("Gid:") {
            // real, effective, saved, fs: the kernel uses the effective one.
            gids.extend(
                rest.split_whitespace()
                    .nth(1)
                    .map(|g| g.parse::<u32>().unwrap()),
            );
        }
        if let Some(rest) = line.strip_prefix("Groups:") {
            gids.extend(rest.split_whitespace().map(|g| g.parse::<u32>().unwrap()));
        }
    }
    gids.iter().any(|g| (low..=high).contains(g))
}

#[test]
fn datagram_sockets_work_exactly_when_ping_group_range_allows() {
    let result = ping_blocking("127.0.0.1".parse().unwrap(), &quick(SocketKind::Datagram));
    if groups_allowed_to_ping() {
        let run = result.unwrap();
        assert_eq!(run.socket, SocketKind::Datagram);
        assert!(
            run.results.iter().all(|r| r.success && r.ttl.is_some()),
            "{run:?}"
        );
    } else {
        let e = result.unwrap_err();
        assert!(e.contains("net.ipv4.ping_group_range"), "{e}");
    }
}

#[test]
fn ping_stops_at_its_time_budget_and_says_so() {
    // Probes leave at 0, 200 and 400 ms; the 4th would leave after the
    // 500 ms budget. A slow machine can send fewer, never more.
    let options = PingOptions {
        count: 5,
        interval: Duration::from_millis(200),
        budget: Duration::from_millis(500),
        ..PingOptions::default()
    };
    let run = ping_blocking("127.0.0.1".parse().unwrap(), &options).unwrap();
    assert!((1..=3).contains(&run.results.len()), "{run:?}");
    let stopped = run.stopped.unwrap();
    assert!(
        stopped.starts_with(&format!("stopped after {} of 5 probes", run.results.len()))
            && stopped.contains("time budget"),
        "{stopped}"
    );
}

#[test]
fn matches_the_system_ping_on_ipv4_loopback() {
    let Some(ping) = tool("/usr/bin/ping", "iputils-ping") else {
        return;
    };
    let out = Command::new(ping)
        .args(["-c", "2", "-i", "0.2", "-n", "127.0.0.1"])
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("2 packets transmitted, 2 received"), "{text}");
    let system_ttls: Vec<u8> = text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("ttl="))
        .map(|t| t.parse().unwrap())
        .collect();
    assert_eq!(system_ttls.len(), 2, "{text}");
    let ours = ping_blocking("127.0.0.1".parse().unwrap(), &quick(SocketKind::Auto)).unwrap();
    let our_ttls: Vec<u8> = ours.results.iter().filter_map(|r| r.ttl).collect();
    assert_eq!(our_ttls, system_ttls, "{ours:?}\n{text}");
}

#[tokio::test]
async fn traceroute_to_loopback_is_one_reached_hop() {
    for (target, protocol) in [
        ("127.0.0.1", TraceProtocol::Udp),
        ("::1", TraceProtocol::Udp),
        ("127.0.0.1", TraceProtocol::Icmp),
        ("::1", TraceProtocol::Icmp),
    ] {
        let mut r = request(NetworkAction::Traceroute, target);
        r.protocol = Some(protocol);
        let result = run(&r).await;
        let hops = result.hops.unwrap();
        assert_eq!(hops.len(), 1, "{target} {protocol:?}: {hops:?}");
        assert_eq!(hops[0].hop, 1);
        assert_eq!(hops[0].address.as_deref(), Some(target));
        assert!(hops[0].reached);
        assert_eq!(hops[0].rtt_ms.len(), 3);
        assert!(
            hops[0].rtt_ms.iter().all(|r| r.is_some_and(|ms| ms >= 0.0)),
            "{hops:?}"
        );
        let raw = result.raw_output.unwrap();
        assert!(
            raw.starts_with(&format!("traceroute to {target} ({target}), 30 hops max")),
            "{raw}"
        );
    }
}

/// Runs `f` on a thread whose credentials are `nobody`'s (uid and gid
/// 65534, no supplementary groups, so no capabilities). The raw
/// syscalls change only the calling thread, unlike glibc's wrappers which
/// change every thread of the process.
fn as_nobody<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: plain syscalls on this thread's own credentials;
                // the thread ends with `f`, nothing else runs on it.
                unsafe {
                    assert_eq!(
                        libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()),
                        0
                    );
                    assert_eq!(libc::syscall(libc::SYS_setresgid, 65534, 65534, 65534), 0);
                    assert_eq!(libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534), 0);
                }
                f()
            })
            .join()
            .unwrap()
    })
}

#[test]
fn traceroute_udp_works_unprivileged_and_ping_says_why_it_cannot() {
    if !is_root() {
        return skip("dropping to nobody on one thread needs root");
    }
    // The UDP trace reads ICMP from the error queue (IP_RECVERR): no raw
    // socket, no privilege.
    let (report, ping) = as_nobody(|| {
        let options = TraceOptions::default();
        (
            trace_blocking("127.0.0.1".parse().unwrap(), &options),
            ping_blocking("::1".parse().unwrap(), &quick(SocketKind::Auto)),
        )
    });
    let report = report.unwrap();
    assert!(report.reached, "{report:?}");
    assert_eq!(report.hops.len(), 1);
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    // Nobody's group 65534 is rarely in ping_group_range; when it is, the
    // datagram socket works.
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    let v: Vec<u32> = range
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    if (v[0]..=v[1]).contains(&65534) {
        assert_eq!(ping.unwrap().socket, SocketKind::Datagram);
    } else {
        let e = ping.unwrap_err();
        eprintln!("unprivileged ping: {e}");
        assert!(e.contains("net.ipv4.ping_group_range"), "{e}");
        assert!(e.contains("not root and lacks CAP_NET_RAW"), "{e}");
    }
}

#[tokio::test]
async fn connect_reports_connected_and_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let result = run(&request(
        NetworkAction::Connect,
        &format!("127.0.0.1:{port}"),
    ))
    .await;
    let c = result.connect.unwrap();
    assert!(c.success, "{c:?}");
    assert_eq!(c.outcome.as_deref(), Some("connected"));
    assert_eq!(c.address, format!("127.0.0.1:{port}"));
    assert!(c.latency_ms.is_some());
    assert_eq!(result.resolved.as_deref(), Some("127.0.0.1"));

    // IPv6 with the port in its own field.
    let listener6 = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let port6 = listener6.local_addr().unwrap().port();
    let mut r = request(NetworkAction::Connect, "::1");
    r.port = Some(port6);
    let c = run(&r).await.connect.unwrap();
    assert_eq!(c.outcome.as_deref(), Some("connected"), "{c:?}");
    assert_eq!(c.address, format!("[::1]:{port6}"));

    // A port that is bound but not listening refuses, and stays ours
    // meanwhile (a dropped listener's port could be taken by a parallel
    // test's bind).
    drop(listener);
    let held = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    held.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let port = held.local_addr().unwrap().as_socket().unwrap().port();
    let c = run(&request(
        NetworkAction::Connect,
        &format!("127.0.0.1:{port}"),
    ))
    .await
    .connect
    .unwrap();
    drop(held);
    assert!(!c.success, "{c:?}");
    assert_eq!(c.outcome.as_deref(), Some("refused"), "{c:?}");
    assert_eq!(c.error.as_deref(), Some("Connection refused"));
}

#[tokio::test]
async fn connect_with_disagreeing_ports_is_an_error() {
    let mut r = request(NetworkAction::Connect, "[::1]:22");
    r.port = Some(23);
    let e = network_diag::run(&ctx(), &r).await.unwrap_err();
    assert!(e.contains("port 22") && e.contains("port is 23"), "{e}");
}

#[tokio::test]
async fn hostile_targets_never_reach_a_socket() {
    for action in [
        NetworkAction::Ping,
        NetworkAction::Traceroute,
        NetworkAction::Connect,
    ] {
        for target in [";rm -rf /", "-f", "$(id)"] {
            let mut r = request(action, target);
            r.port = Some(80);
            let e = network_diag::run(&ctx(), &r).await.unwrap_err();
            assert!(
                e.contains(&format!("`{target}`")) && e.contains("not a hostname or IP"),
                "{action:?} {target}: {e}"
            );
        }
    }
    let mut r = request(NetworkAction::Ping, "127.0.0.1");
    r.count = Some(0);
    let e = network_diag::run(&ctx(), &r).await.unwrap_err();
    assert!(e.contains("count"), "{e}");
}

fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim_end()
        .to_owned()
}

#[tokio::test]
async fn netstat_finds_our_own_sockets_with_pid_and_name() {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp6 = std::net::TcpListener::bind("[::1]:0").unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let result = run(&NetworkDiagRequest::new(NetworkAction::Netstat, None)).await;
    let entries = result.netstat.unwrap();
    let pid = std::process::id();
    let find = |proto: &str, port: u16| {
        entries
            .iter()
            .find(|e| e.proto == proto && e.local_port == port)
            .unwrap_or_else(|| panic!("no {proto} socket on port {port}"))
    };
    let e = find("tcp", tcp.local_addr().unwrap().port());
    assert_eq!(
        (e.local_addr.as_str(), e.state.as_str()),
        ("127.0.0.1", "LISTEN")
    );
    assert_eq!(e.pid, Some(pid));
    assert_eq!(e.process_name.as_deref(), Some(own_comm().as_str()));
    assert_eq!(e.user, user_of_self());
    let e = find("tcp6", tcp6.local_addr().unwrap().port());
    assert_eq!(
        (e.local_addr.as_str(), e.remote_addr.as_str()),
        ("::1", "::")
    );
    assert_eq!(e.pid, Some(pid));
    let e = find("udp", udp.local_addr().unwrap().port());
    assert_eq!(e.state, "UNCONN");
    assert_eq!(e.pid, Some(pid));
    assert!(result.raw_output.unwrap().contains("sockets"));
}

/// This process's user name as netstat should show it: from /etc/passwd,
/// else the uid.
fn user_of_self() -> String {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_owned())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// Listening TCP sockets per local port, from `ss -ltnH`.
fn ss_listeners(ss: &PathBuf) -> BTreeMap<u16, usize> {
    let out = Command::new(ss).args(["-ltnH"]).output().unwrap();
    assert!(out.status.success());
    let mut ports = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // State Recv-Q Send-Q Local:Port Peer:Port
        let local = line.split_whitespace().nth(3).unwrap();
        let port: u16 = local.rsplit_once(':').unwrap().1.parse().unwrap();
        *ports.entry(port).or_insert(0) += 1;
    }
    ports
}

#[tokio::test]
async fn netstat_lists_the_same_tcp_listeners_as_ss() {
    let Some(ss) = tool("/usr/bin/ss", "iproute2") else {
        return;
    };
    let _ours = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // Other tests may open or close listeners meanwhile: read ss before
    // and after, and hold each port's count between the two readings.
    let before = ss_listeners(&ss);
    let result = run(&NetworkDiagRequest::new(NetworkAction::Netstat, None)).await;
    let after = ss_listeners(&ss);
    let mut ours: BTreeMap<u16, usize> = BTreeMap::new();
    for e in result.netstat.unwrap() {
        if e.proto.starts_with("tcp") && e.state == "LISTEN" {
            *ours.entry(e.local_port).or_insert(0) += 1;
        }
    }
    let ports: BTreeSet<u16> = before
        .keys()
        .chain(after.keys())
        .chain(ours.keys())
        .copied()
        .collect();
    for port in ports {
        let (b, a) = (
            before.get(&port).copied().unwrap_or(0),
            after.get(&port).copied().unwrap_or(0),
        );
        let o = ours.get(&port).copied().unwrap_or(0);
        assert!(
            b.min(a) <= o && o <= b.max(a),
            "port {port}: ss saw {b} then {a} listeners, netstat {o}"
        );
    }
    assert!(!ours.is_empty());
}
