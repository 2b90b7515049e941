//! Ping and traceroute across a real router: three network namespaces
//! built by the test, `A — R — B`, joined by veth pairs:
//!
//! ```text
//!   A  10.200.1.1  fd00:200:1::1 ── R  10.200.1.2  fd00:200:1::2
//!                                      10.200.2.1  fd00:200:2::1 ── B  10.200.2.2  fd00:200:2::2
//! ```
//!
//! R forwards; A and B route through it. R has no route to 10.200.3.0/24
//! (it answers "network unreachable") and drops 10.200.4.0/24 silently. The probes run inside A: on a
//! dedicated thread that joined A with `setns(2)` (a network namespace is
//! per thread), so packets never leave the namespaces. Each test builds its
//! own chain, named after the process id and a counter, and a guard deletes
//! the namespaces (and with them the veths) however the test ends.
//!
//! Needs root and `ip` (iproute2); compares with `traceroute` (package
//! traceroute) and `ping` (iputils-ping) run through `ip netns exec` where
//! they are installed. Without root or `ip` the tests skip, and fail under
//! `CI=true`.

#![cfg(target_os = "linux")]

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use spectra_agent::commands::network_diag::connect::connect_tcp;
use spectra_agent::commands::network_diag::ping::ping_blocking;
use spectra_agent::commands::network_diag::traceroute::trace_blocking;
use spectra_agent::commands::network_diag::{PingOptions, SocketKind, TraceOptions};
use spectra_protocol::TraceProtocol;

const IP: &str = "/usr/sbin/ip";

fn skip(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and this test cannot run: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// Whether namespaces can be built here; says why not otherwise.
fn can_build_namespaces() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        skip("building network namespaces needs root");
        return false;
    }
    if !Path::new(IP).exists() {
        skip(&format!("{IP} is not installed (package iproute2)"));
        return false;
    }
    true
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ip -n <ns> <args>`, the arguments split on spaces.
fn ip(ns: &str, args: &str) {
    let mut argv = vec![IP, "-n", ns];
    argv.extend(args.split(' '));
    sh(&argv);
}

/// `sysctl -w <setting>` inside `ns` (most of `net.*` is per namespace).
fn sysctl(ns: &str, setting: &str) {
    sh(&[IP, "netns", "exec", ns, "sysctl", "-q", "-w", setting]);
}

/// Waits for `dev` to be operationally up. The kernel applies carrier
/// changes asynchronously (linkwatch, up to a second later), and until
/// then the device drops what is sent through it: the first ARP or
/// neighbour solicitation would be lost and a probe would time out.
fn wait_until_up(ns: &str, dev: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new(IP)
            .args(["-n", ns, "-o", "link", "show", "dev", dev])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains(" state UP ") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ns}/{dev} not up after 10 s: {text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The three namespaces of one test; deleting them on drop also deletes
/// the veth pairs inside them.
struct Chain {
    a: String,
    r: String,
    b: String,
}

impl Drop for Chain {
    fn drop(&mut self) {
        for ns in [&self.a, &self.r, &self.b] {
            // Best effort: a namespace that was never created is fine.
            let _ = Command::new(IP).args(["netns", "del", ns]).output();
        }
    }
}

static CHAINS: AtomicU32 = AtomicU32::new(0);

impl Chain {
    fn build() -> Chain {
        let tag = format!(
            "{}x{}",
            std::process::id(),
            CHAINS.fetch_add(1, Ordering::Relaxed)
        );
        // The guard exists before anything is created, so a failing step
        // still cleans up what was made.
        let chain = Chain {
            a: format!("spxA{tag}"),
            r: format!("spxR{tag}"),
            b: format!("spxB{tag}"),
        };
        let (a, r, b) = (chain.a.as_str(), chain.r.as_str(), chain.b.as_str());
        for ns in [a, r, b] {
            sh(&[IP, "netns", "add", ns]);
            // No duplicate address detection on the interfaces to come: a
            // tentative link-local address holds up neighbour discovery.
            sysctl(ns, "net.ipv6.conf.default.accept_dad=0");
            sysctl(ns, "net.ipv6.conf.all.accept_dad=0");
            ip(ns, "link set lo up");
        }
        // veth names live inside their namespaces, so they need no tag.
        ip(a, &format!("link add va type veth peer name vra netns {r}"));
        ip(b, &format!("link add vb type veth peer name vrb netns {r}"));
        let addrs = [
            (a, "va", "10.200.1.1/24", "fd00:200:1::1/64"),
            (r, "vra", "10.200.1.2/24", "fd00:200:1::2/64"),
            (r, "vrb", "10.200.2.1/24", "fd00:200:2::1/64"),
            (b, "vb", "10.200.2.2/24", "fd00:200:2::2/64"),
        ];
        for (ns, dev, v4, v6) in addrs {
            ip(ns, &format!("addr add {v4} dev {dev}"));
            ip(ns, &format!("-6 addr add {v6} dev {dev} nodad"));
            ip(ns, &format!("link set {dev} up"));
        }
        // 10.200.4.0/24 is a black hole in R: probes there vanish.
        ip(r, "route add blackhole 10.200.4.0/24");
        ip(a, "route add default via 10.200.1.2");
        ip(b, "route add default via 10.200.2.1");
        ip(a, "-6 route add default via fd00:200:1::2");
        ip(b, "-6 route add default via fd00:200:2::1");
        sysctl(r, "net.ipv4.ip_forward=1");
        sysctl(r, "net.ipv6.conf.all.forwarding=1");
        // ICMP errors are rate-limited per destination (a burst of 6, then
        // one a second); several traces in a row would see timeouts.
        for ns in [r, b] {
            sysctl(ns, "net.ipv4.icmp_ratelimit=0");
            sysctl(ns, "net.ipv6.icmp.ratelimit=0");
        }
        // Unprivileged ICMP sockets allowed in A only: tests choose the
        // socket kind explicitly.
        sysctl(a, "net.ipv4.ping_group_range=0 2147483647");
        for (ns, dev, _, _) in addrs {
            wait_until_up(ns, dev);
        }
        chain
    }

    /// Runs `f` on a thread inside namespace `ns`.
    fn run_in<T: Send>(&self, ns: &str, f: impl FnOnce() -> T + Send) -> T {
        let file = File::open(Path::new("/run/netns").join(ns)).unwrap();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: setns on a namespace fd we hold open; it
                    // moves only this thread, which ends with `f`.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
                    f()
                })
                .join()
                .unwrap()
        })
    }
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn trace(protocol: TraceProtocol, icmp_socket: SocketKind) -> TraceOptions {
    TraceOptions {
        max_hops: 8,
        protocol,
        icmp_socket,
        ..TraceOptions::default()
    }
}

/// The hop addresses `traceroute -n` prints, run inside `ns`.
fn system_traceroute(ns: &str, dst: &str, extra: &[&str]) -> Option<Vec<String>> {
    if !Path::new("/usr/sbin/traceroute").exists() {
        skip("/usr/sbin/traceroute is not installed (package traceroute)");
        return None;
    }
    let mut args = vec![
        "netns",
        "exec",
        ns,
        "traceroute",
        "-n",
        "-q",
        "1",
        "-w",
        "2",
        "-m",
        "8",
    ];
    args.extend_from_slice(extra);
    args.push(dst);
    let out = Command::new(IP).args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // " 1  10.200.1.2  0.050 ms" after the "traceroute to" line.
    Some(
        text.lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .collect(),
    )
}

#[test]
fn traceroute_crosses_the_router_over_ipv4_with_udp_and_icmp() {
    if !can_build_namespaces() {
        return;
    }
    let chain = Chain::build();
    let dst = addr("10.200.2.2");
    let reports = chain.run_in(&chain.a, || {
        [
            trace(TraceProtocol::Udp, SocketKind::Auto),
            trace(TraceProtocol::Icmp, SocketKind::Datagram),
            trace(TraceProtocol::Icmp, SocketKind::Raw),
        ]
        .map(|o| trace_blocking(dst, &o))
    });
    for report in reports {
        let report = report.unwrap();
        assert!(report.reached, "{report:?}");
        let hops = &report.hops;
        assert_eq!(hops.len(), 2, "{report:?}");
        assert_eq!(hops[0].address.as_deref(), Some("10.200.1.2"));
        assert!(!hops[0].reached);
        assert_eq!(hops[1].address.as_deref(), Some("10.200.2.2"));
        assert!(hops[1].reached);
        for hop in hops {
            assert_eq!(hop.rtt_ms.len(), 3);
            assert!(hop.rtt_ms.iter().all(Option::is_some), "{hop:?}");
        }
        assert!(report.notes.is_empty(), "{:?}", report.notes);
    }
    if let Some(system) = system_traceroute(&chain.a, "10.200.2.2", &[]) {
        assert_eq!(system, ["10.200.1.2", "10.200.2.2"]);
    }
}

#[test]
fn traceroute_crosses_the_router_over_ipv6() {
    if !can_build_namespaces() {
        return;
    }
    let chain = Chain::build();
    let dst = addr("fd00:200:2::2");
    let reports = chain.run_in(&chain.a, || {
        [
            trace(TraceProtocol::Udp, SocketKind::Auto),
            trace(TraceProtocol::Icmp, SocketKind::Datagram),
            trace(TraceProtocol::Icmp, SocketKind::Raw),
        ]
        .map(|o| trace_blocking(dst, &o))
    });
    for report in reports {
        let report = report.unwrap();
        let addresses: Vec<_> = report.hops.iter().map(|h| h.address.as_deref()).collect();
        assert_eq!(
            addresses,
            [Some("fd00:200:1::2"), Some("fd00:200:2::2")],
            "{report:?}"
        );
        assert!(report.reached && report.hops[1].reached, "{report:?}");
    }
    if let Some(system) = system_traceroute(&chain.a, "fd00:200:2::2", &["-6"]) {
        assert_eq!(system, ["fd00:200:1::2", "fd00:200:2::2"]);
    }
}

#[test]
fn traceroute_stops_at_an_unreachable_network() {
    if !can_build_namespaces() {
        return;
    }
    let chain = Chain::build();
    // R has no route to 10.200.3.0/24: it answers "network unreachable".
    let report = chain.run_in(&chain.a, || {
        trace_blocking(
            addr("10.200.3.1"),
            &trace(TraceProtocol::Udp, SocketKind::Auto),
        )
    });
    let report = report.unwrap();
    assert!(!report.reached);
    assert_eq!(report.hops.len(), 1, "{report:?}");
    assert_eq!(report.hops[0].address.as_deref(), Some("10.200.1.2"));
    assert!(
        report.notes.iter().any(|n| n.contains("10.200.1.2 !N")),
        "{report:?}"
    );
    assert!(
        report
            .stopped
            .as_deref()
            .is_some_and(|s| s.contains("unreachable")),
        "{report:?}"
    );
}

fn ping_options(socket: SocketKind) -> PingOptions {
    PingOptions {
        count: 2,
        interval: Duration::from_millis(200),
        socket,
        ..PingOptions::default()
    }
}

#[test]
fn ping_through_the_router_arrives_with_one_ttl_less() {
    if !can_build_namespaces() {
        return;
    }
    let chain = Chain::build();
    for kind in [SocketKind::Datagram, SocketKind::Raw] {
        let (router, far, far6, nowhere) = chain.run_in(&chain.a, || {
            let o = ping_options(kind);
            (
                ping_blocking(addr("10.200.1.2"), &o).unwrap(),
                ping_blocking(addr("10.200.2.2"), &o).unwrap(),
                ping_blocking(addr("fd00:200:2::2"), &o).unwrap(),
                ping_blocking(addr("10.200.3.1"), &o).unwrap(),
            )
        });
        for run in [&router, &far, &far6] {
            assert_eq!(run.socket, kind);
            assert!(run.results.iter().all(|r| r.success), "{run:?}");
        }
        let ttl =
            |run: &spectra_agent::commands::network_diag::PingRun| run.results[0].ttl.unwrap();
        // B's reply was forwarded once, by R.
        assert_eq!(ttl(&far), ttl(&router) - 1, "{kind:?}");
        assert!(far.results.iter().all(|r| r.peer == "10.200.2.2"));
        // The router's "network unreachable", read from the error queue
        // (datagram) or from the ICMP error itself (raw).
        for r in &nowhere.results {
            assert!(!r.success);
            assert_eq!(
                r.response, "unreachable: network unreachable (from 10.200.1.2)",
                "{kind:?}"
            );
            assert_eq!(r.peer, "10.200.1.2");
        }
        // iputils agrees on the TTL.
        if Path::new("/usr/bin/ping").exists() {
            let out = Command::new(IP)
                .args([
                    "netns",
                    "exec",
                    &chain.a,
                    "ping",
                    "-c",
                    "1",
                    "-n",
                    "10.200.2.2",
                ])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains(&format!("ttl={}", ttl(&far))), "{text}");
        } else {
            skip("/usr/bin/ping is not installed (package iputils-ping)");
        }
    }
}

#[test]
fn connect_and_ping_tell_refused_unreachable_and_timeout_apart() {
    if !can_build_namespaces() {
        return;
    }
    let chain = Chain::build();
    let (connects, silent) = chain.run_in(&chain.a, || {
        // The runtime's sockets are created on this thread, inside A.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let timeout = Duration::from_millis(500);
        let connects = rt.block_on(async {
            [
                // Nothing listens on B: B answers with a reset.
                connect_tcp("10.200.2.2:9".parse().unwrap(), timeout).await,
                // R has no route: ICMP network unreachable.
                connect_tcp("10.200.3.1:80".parse().unwrap(), timeout).await,
                // R drops it: no answer at all.
                connect_tcp("10.200.4.1:80".parse().unwrap(), timeout).await,
            ]
        });
        let silent = ping_blocking(
            addr("10.200.4.1"),
            &PingOptions {
                count: 1,
                timeout,
                ..ping_options(SocketKind::Auto)
            },
        );
        (connects, silent)
    });
    let outcomes: Vec<_> = connects.iter().map(|c| c.outcome.as_deref()).collect();
    assert_eq!(
        outcomes,
        [Some("refused"), Some("unreachable"), Some("timeout")],
        "{connects:?}"
    );
    assert!(connects.iter().all(|c| !c.success && c.error.is_some()));
    assert_eq!(connects[1].error.as_deref(), Some("Network is unreachable"));
    let silent = silent.unwrap();
    assert_eq!(silent.results.len(), 1);
    assert_eq!(silent.results[0].response, "timeout");
    assert!(!silent.results[0].success);
}
