//! `NETWORK_DIAG` (SPEC §3, Appendix A): `ping`, `connect`, `netstat`,
//! `traceroute`, without running any external tool.
//!
//! Layout: [`icmp`] builds and reads ICMP packets (pure); [`netstat`] parses
//! `/proc/net/{tcp,udp}[6]` (pure) and joins sockets to processes;
//! [`connect`] is a TCP connect with a timeout; `ping` and `traceroute` send
//! probes from Linux sockets (`sys` holds their FFI), on the blocking pool.
//! Other systems answer ping, traceroute and netstat with an explicit
//! "not supported" error.
//!
//! Defaults (a request's fields override them, within the bounds
//! `NetworkDiagRequest::validate` enforces):
//!
//! | action | defaults |
//! |---|---|
//! | ping | 4 probes, 1000 ms apart, 2000 ms timeout each, 56 payload bytes |
//! | traceroute | UDP probes to ports 33434+, 30 hops max, 3 probes per hop, 1000 ms timeout per hop |
//! | connect | 5000 ms timeout |
//!
//! Time: the command loop cancels a command after 60 s, so the probes of a
//! ping or traceroute get [`PROBE_BUDGET`] (45 s) and name resolution
//! [`RESOLVE_TIMEOUT`] (5 s), leaving room to answer. Traceroute sends a
//! hop's probes together, so a silent path costs one timeout per hop (30 s
//! at the defaults) and stops at the destination; ping's worst case is
//! `count × max(interval, timeout)`. A run cut short by the budget returns
//! what it measured, and `raw_output` says where it stopped.

pub mod connect;
pub mod icmp;
pub mod netstat;
#[cfg(target_os = "linux")]
pub mod ping;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
pub mod traceroute;
#[cfg(not(target_os = "linux"))]
mod unsupported;

#[cfg(target_os = "linux")]
use ping::ping_blocking;
#[cfg(target_os = "linux")]
use traceroute::trace_blocking;
#[cfg(not(target_os = "linux"))]
use unsupported::{ping_blocking, trace_blocking};

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use spectra_protocol::{
    split_host_port, NetworkAction, NetworkDiagRequest, NetworkDiagResult, PingResult, PingSummary,
    TraceProtocol,
};

use super::{CommandContext, CommandOutcome};

pub const DEFAULT_PING_COUNT: u32 = 4;
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_millis(1000);
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_millis(2000);
pub const DEFAULT_PING_SIZE: u16 = 56;
pub const DEFAULT_TRACE_MAX_HOPS: u8 = 30;
pub const DEFAULT_TRACE_PROBES: u8 = 3;
pub const DEFAULT_TRACE_TIMEOUT: Duration = Duration::from_millis(1000);
/// traceroute(8)'s first UDP port.
pub const TRACE_FIRST_PORT: u16 = 33434;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(5000);
/// Longest a ping or traceroute probes (see the module doc).
pub const PROBE_BUDGET: Duration = Duration::from_secs(45);
/// Longest name resolution may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which ICMP socket to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SocketKind {
    /// Datagram if `ping_group_range` allows it, else raw.
    #[default]
    Auto,
    /// Unprivileged `SOCK_DGRAM` ICMP socket.
    Datagram,
    /// `SOCK_RAW` ICMP socket (root or `CAP_NET_RAW`).
    Raw,
}

impl SocketKind {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Auto => "ICMP socket",
            Self::Datagram => "unprivileged ICMP datagram socket",
            Self::Raw => "raw ICMP socket",
        }
    }
}

/// How to ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingOptions {
    pub count: u32,
    pub interval: Duration,
    /// Per probe.
    pub timeout: Duration,
    /// ICMP payload bytes.
    pub size: u16,
    /// No probe is sent, or waited for, past this.
    pub budget: Duration,
    pub socket: SocketKind,
}

impl Default for PingOptions {
    fn default() -> Self {
        Self {
            count: DEFAULT_PING_COUNT,
            interval: DEFAULT_PING_INTERVAL,
            timeout: DEFAULT_PING_TIMEOUT,
            size: DEFAULT_PING_SIZE,
            budget: PROBE_BUDGET,
            socket: SocketKind::Auto,
        }
    }
}

impl PingOptions {
    /// The defaults with the request's fields applied.
    pub fn from_request(r: &NetworkDiagRequest) -> Self {
        let d = Self::default();
        Self {
            count: r.count.unwrap_or(d.count),
            interval: r.interval_ms.map_or(d.interval, Duration::from_millis),
            timeout: r.timeout_ms.map_or(d.timeout, Duration::from_millis),
            size: r.size.unwrap_or(d.size),
            ..d
        }
    }
}

/// What a ping measured.
#[derive(Debug, Clone, PartialEq)]
pub struct PingRun {
    /// One per probe sent, in order.
    pub results: Vec<PingResult>,
    /// The socket kind used.
    pub socket: SocketKind,
    /// Why fewer probes than asked were sent.
    pub stopped: Option<String>,
}

/// How to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceOptions {
    pub max_hops: u8,
    pub probes: u8,
    /// Per hop, from its last probe.
    pub timeout: Duration,
    pub protocol: TraceProtocol,
    /// UDP: the first destination port.
    pub first_port: u16,
    pub budget: Duration,
    /// ICMP probes: which socket.
    pub icmp_socket: SocketKind,
}

impl Default for TraceOptions {
    fn default() -> Self {
        Self {
            max_hops: DEFAULT_TRACE_MAX_HOPS,
            probes: DEFAULT_TRACE_PROBES,
            timeout: DEFAULT_TRACE_TIMEOUT,
            protocol: TraceProtocol::Udp,
            first_port: TRACE_FIRST_PORT,
            budget: PROBE_BUDGET,
            icmp_socket: SocketKind::Auto,
        }
    }
}

impl TraceOptions {
    /// The defaults with the request's fields applied.
    pub fn from_request(r: &NetworkDiagRequest) -> Self {
        let d = Self::default();
        Self {
            // validate() keeps these at 1 or more; `max(1)` keeps the TTL
            // arithmetic safe if a caller skipped it.
            max_hops: r.max_hops.unwrap_or(d.max_hops).max(1),
            probes: r.probes.unwrap_or(d.probes).max(1),
            timeout: r.timeout_ms.map_or(d.timeout, Duration::from_millis),
            protocol: r.protocol.unwrap_or(d.protocol),
            ..d
        }
    }
}

/// What a traceroute found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceReport {
    pub hops: Vec<spectra_protocol::TracerouteHop>,
    /// The destination answered (on the last hop).
    pub reached: bool,
    /// Unreachable flags, routers answering besides the first, local errors.
    pub notes: Vec<String>,
    /// Why the trace ended before the destination or `max_hops`.
    pub stopped: Option<String>,
    /// ICMP probes: the socket kind used.
    pub icmp_socket: Option<SocketKind>,
}

/// Runs one `NETWORK_DIAG` request.
pub async fn run(ctx: &CommandContext, request: &NetworkDiagRequest) -> CommandOutcome {
    // The command loop validated it already; checking again is cheap and
    // keeps any caller from putting an unchecked target on a socket.
    request.validate().map_err(|e| e.to_string())?;
    let result = match request.action {
        NetworkAction::Ping => run_ping(request).await?,
        NetworkAction::Traceroute => run_traceroute(request).await?,
        NetworkAction::Connect => run_connect(request).await?,
        NetworkAction::Netstat => run_netstat(ctx).await?,
    };
    serde_json::to_value(result).map_err(|e| format!("NETWORK_DIAG result: {e}"))
}

fn empty_result(action: NetworkAction, target: &str) -> NetworkDiagResult {
    NetworkDiagResult {
        action,
        target: target.to_owned(),
        ping_results: None,
        netstat: None,
        hops: None,
        connect: None,
        raw_output: None,
        ping_summary: None,
        resolved: None,
    }
}

fn target_of(request: &NetworkDiagRequest) -> Result<&str, String> {
    request
        .target
        .as_deref()
        .ok_or_else(|| format!("{:?} needs a target", request.action).to_lowercase())
}

async fn run_ping(request: &NetworkDiagRequest) -> Result<NetworkDiagResult, String> {
    let target = target_of(request)?;
    let address = resolve(target, 0).await?.ip();
    let options = PingOptions::from_request(request);
    let opts = options.clone();
    let run = tokio::task::spawn_blocking(move || ping_blocking(address, &opts))
        .await
        .map_err(|e| format!("ping task failed: {e}"))??;
    let summary = summarize_pings(&run.results);
    let mut result = empty_result(NetworkAction::Ping, target);
    result.raw_output = Some(format_ping(target, address, &options, &run, &summary));
    result.ping_results = Some(run.results);
    result.ping_summary = Some(summary);
    result.resolved = Some(address.to_string());
    Ok(result)
}

async fn run_traceroute(request: &NetworkDiagRequest) -> Result<NetworkDiagResult, String> {
    let target = target_of(request)?;
    let address = resolve(target, 0).await?.ip();
    let options = TraceOptions::from_request(request);
    let opts = options.clone();
    let report = tokio::task::spawn_blocking(move || trace_blocking(address, &opts))
        .await
        .map_err(|e| format!("traceroute task failed: {e}"))??;
    let mut result = empty_result(NetworkAction::Traceroute, target);
    result.raw_output = Some(format_trace(target, address, &options, &report));
    result.hops = Some(report.hops);
    result.resolved = Some(address.to_string());
    Ok(result)
}

async fn run_connect(request: &NetworkDiagRequest) -> Result<NetworkDiagResult, String> {
    let target = target_of(request)?;
    let (host, target_port) = split_host_port(target).map_err(|e| e.to_string())?;
    let port = match (target_port, request.port) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!(
                "target `{target}` names port {a} but port is {b}: give one or make them agree"
            ))
        }
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => return Err("connect needs a port (target host:port, or port)".into()),
    };
    let address = resolve(host, port).await?;
    let timeout = request
        .timeout_ms
        .map_or(DEFAULT_CONNECT_TIMEOUT, Duration::from_millis);
    let connect = connect::connect_tcp(address, timeout).await;
    let mut result = empty_result(NetworkAction::Connect, target);
    result.resolved = Some(address.ip().to_string());
    result.connect = Some(connect);
    Ok(result)
}

async fn run_netstat(ctx: &CommandContext) -> Result<NetworkDiagResult, String> {
    let roots = ctx.roots.clone();
    let report =
        tokio::task::spawn_blocking(move || read_netstat(&roots, netstat::MAX_NETSTAT_ENTRIES))
            .await
            .map_err(|e| format!("netstat task failed: {e}"))??;
    let mut text = format!("{} sockets", report.total);
    if report.entries.len() < report.total {
        let _ = write!(
            text,
            "; showing the first {} (listening first): output capped at {}",
            report.entries.len(),
            netstat::MAX_NETSTAT_ENTRIES
        );
    }
    if report.unreadable_processes > 0 {
        let _ = write!(
            text,
            "; owners unknown for sockets of {} processes whose fds could not be read",
            report.unreadable_processes
        );
    }
    for missing in &report.missing_tables {
        let _ = write!(text, "; no table {missing}");
    }
    let mut result = empty_result(NetworkAction::Netstat, "");
    result.netstat = Some(report.entries);
    result.raw_output = Some(text);
    Ok(result)
}

#[cfg(target_os = "linux")]
fn read_netstat(
    roots: &crate::collectors::HostRoots,
    limit: usize,
) -> Result<netstat::NetstatReport, String> {
    netstat::read_netstat(roots, limit)
}
#[cfg(not(target_os = "linux"))]
use unsupported::read_netstat;

/// Resolves `host` with the system resolver (getaddrinfo, through tokio);
/// an IP literal is used as is. The first address wins, as ping(8) does.
pub async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| {
            format!(
                "cannot resolve `{host}`: no answer within {} s",
                RESOLVE_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("cannot resolve `{host}`: {}", error_text(&e)))?;
    let mut addresses = lookup;
    addresses
        .next()
        .ok_or_else(|| format!("cannot resolve `{host}`: no addresses"))
}

/// `ping`'s closing statistics over `results`, as iputils computes them:
/// loss over probes sent, and min/avg/max/mdev of the replies' RTT, mdev
/// being the population standard deviation `sqrt(mean(rtt²) - mean(rtt)²)`.
/// Times are rounded to the microsecond, as ping prints them.
pub fn summarize_pings(results: &[PingResult]) -> PingSummary {
    let sent = results.len() as u32;
    let rtts: Vec<f64> = results
        .iter()
        .filter(|r| r.success)
        .map(|r| r.rtt_ms)
        .collect();
    let received = rtts.len() as u32;
    let loss_pct = if sent == 0 {
        0.0
    } else {
        f64::from(sent - received) * 100.0 / f64::from(sent)
    };
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    let stats = (!rtts.is_empty()).then(|| {
        let n = rtts.len() as f64;
        let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rtts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let avg = rtts.iter().sum::<f64>() / n;
        let mean_sq = rtts.iter().map(|r| r * r).sum::<f64>() / n;
        // Rounding can leave a tiny negative variance when all are equal.
        let mdev = (mean_sq - avg * avg).max(0.0).sqrt();
        (round(min), round(avg), round(max), round(mdev))
    });
    PingSummary {
        sent,
        received,
        loss_pct: round(loss_pct),
        min_ms: stats.map(|s| s.0),
        avg_ms: stats.map(|s| s.1),
        max_ms: stats.map(|s| s.2),
        mdev_ms: stats.map(|s| s.3),
    }
}

/// An OS error without the " (os error N)" Rust appends: "Connection
/// refused", as the tools print it.
pub fn error_text(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// ping(8)-like text of a run, for people reading the result.
fn format_ping(
    target: &str,
    address: IpAddr,
    options: &PingOptions,
    run: &PingRun,
    summary: &PingSummary,
) -> String {
    let header = if address.is_ipv6() { 40 } else { 20 };
    let mut t = format!(
        "PING {target} ({address}) {}({}) bytes of data, {}.\n",
        options.size,
        usize::from(options.size) + 8 + header,
        run.socket.describe()
    );
    for r in &run.results {
        if r.success {
            let ttl = r.ttl.map_or_else(String::new, |t| format!(" ttl={t}"));
            let _ = writeln!(
                t,
                "{} bytes from {}: icmp_seq={}{ttl} time={:.3} ms",
                usize::from(options.size) + 8,
                r.peer,
                r.seq,
                r.rtt_ms
            );
        } else {
            let _ = writeln!(t, "icmp_seq={}: {}", r.seq, r.response);
        }
    }
    if let Some(stopped) = &run.stopped {
        let _ = writeln!(t, "{stopped}");
    }
    let _ = write!(
        t,
        "\n--- {target} ping statistics ---\n{} packets transmitted, {} received, {}% packet loss\n",
        summary.sent, summary.received, summary.loss_pct
    );
    if let (Some(min), Some(avg), Some(max), Some(mdev)) = (
        summary.min_ms,
        summary.avg_ms,
        summary.max_ms,
        summary.mdev_ms,
    ) {
        let _ = writeln!(
            t,
            "rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms"
        );
    }
    t
}

/// traceroute(8)-like text of a trace.
fn format_trace(
    target: &str,
    address: IpAddr,
    options: &TraceOptions,
    report: &TraceReport,
) -> String {
    let protocol = match options.protocol {
        TraceProtocol::Udp => "UDP".to_owned(),
        TraceProtocol::Icmp => format!(
            "ICMP echo, {}",
            report.icmp_socket.unwrap_or_default().describe()
        ),
    };
    let mut t = format!(
        "traceroute to {target} ({address}), {} hops max, {} probes per hop, {protocol}\n",
        options.max_hops, options.probes
    );
    for hop in &report.hops {
        let _ = write!(
            t,
            "{:2}  {}",
            hop.hop,
            hop.address.as_deref().unwrap_or("*")
        );
        for rtt in &hop.rtt_ms {
            match rtt {
                Some(ms) => {
                    let _ = write!(t, "  {ms:.3} ms");
                }
                None => t.push_str("  *"),
            }
        }
        t.push('\n');
    }
    for note in &report.notes {
        let _ = writeln!(t, "{note}");
    }
    if let Some(stopped) = &report.stopped {
        let _ = writeln!(t, "{stopped}");
    } else if !report.reached {
        let _ = writeln!(
            t,
            "destination not reached within {} hops",
            options.max_hops
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(seq: u32, rtt_ms: Option<f64>) -> PingResult {
        PingResult {
            seq,
            success: rtt_ms.is_some(),
            rtt: rtt_ms.map_or(0, |ms| (ms * 1e6) as u64),
            rtt_ms: rtt_ms.unwrap_or(0.0),
            ttl: rtt_ms.map(|_| 64),
            response: if rtt_ms.is_some() { "reply" } else { "timeout" }.into(),
            peer: "127.0.0.1".into(),
        }
    }

    #[test]
    fn summary_matches_iputils_maths() {
        // 4 sent, 3 received: 25% loss; rtts 1, 2, 4 ms.
        // avg 7/3 = 2.333; mean of squares 21/3 = 7; mdev sqrt(7 - 49/9) = 1.247.
        let results = [
            probe(1, Some(1.0)),
            probe(2, None),
            probe(3, Some(2.0)),
            probe(4, Some(4.0)),
        ];
        let s = summarize_pings(&results);
        assert_eq!((s.sent, s.received), (4, 3));
        assert_eq!(s.loss_pct, 25.0);
        assert_eq!(s.min_ms, Some(1.0));
        assert_eq!(s.avg_ms, Some(2.333));
        assert_eq!(s.max_ms, Some(4.0));
        assert_eq!(s.mdev_ms, Some(1.247));
    }

    #[test]
    fn summary_of_equal_rtts_has_zero_mdev_and_of_no_replies_no_times() {
        let s = summarize_pings(&[
            probe(1, Some(0.1)),
            probe(2, Some(0.1)),
            probe(3, Some(0.1)),
        ]);
        assert_eq!(s.mdev_ms, Some(0.0));
        assert_eq!(s.loss_pct, 0.0);
        let s = summarize_pings(&[probe(1, None), probe(2, None)]);
        assert_eq!((s.sent, s.received, s.loss_pct), (2, 0, 100.0));
        assert_eq!(
            (s.min_ms, s.avg_ms, s.max_ms, s.mdev_ms),
            (None, None, None, None)
        );
        // Two of three lost: iputils prints 66%, the exact figure is kept.
        let s = summarize_pings(&[probe(1, Some(1.0)), probe(2, None), probe(3, None)]);
        assert_eq!(s.loss_pct, 66.667);
    }

    #[test]
    fn request_fields_override_defaults() {
        let mut r = NetworkDiagRequest::new(NetworkAction::Ping, Some("::1".into()));
        assert_eq!(PingOptions::from_request(&r), PingOptions::default());
        r.count = Some(2);
        r.interval_ms = Some(200);
        r.timeout_ms = Some(300);
        r.size = Some(0);
        let o = PingOptions::from_request(&r);
        assert_eq!(
            (o.count, o.interval, o.timeout, o.size),
            (2, Duration::from_millis(200), Duration::from_millis(300), 0)
        );
        r.max_hops = Some(5);
        r.probes = Some(1);
        r.protocol = Some(TraceProtocol::Icmp);
        let t = TraceOptions::from_request(&r);
        assert_eq!(
            (t.max_hops, t.probes, t.protocol),
            (5, 1, TraceProtocol::Icmp)
        );
        assert_eq!(t.timeout, Duration::from_millis(300));
        assert_eq!(TraceOptions::default().first_port, 33434);
    }

    #[test]
    fn error_text_drops_the_os_error_number() {
        let e = io::Error::from_raw_os_error(libc_econnrefused());
        assert_eq!(error_text(&e), "Connection refused");
        assert_eq!(error_text(&io::Error::other("plain")), "plain");
    }

    #[cfg(unix)]
    fn libc_econnrefused() -> i32 {
        libc::ECONNREFUSED
    }
    #[cfg(windows)]
    fn libc_econnrefused() -> i32 {
        10061 // WSAECONNREFUSED
    }

    #[tokio::test]
    async fn resolves_literals_without_dns_and_names_from_the_hosts_file() {
        assert_eq!(
            resolve("::1", 22).await.unwrap(),
            "[::1]:22".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            resolve("localhost", 0).await.map(|a| a.ip().is_loopback()),
            Ok(true)
        );
    }
}
