//! ICMP echo over IPv4 and IPv6 (Linux).
//!
//! Sockets, in order of preference:
//! 1. an unprivileged ICMP datagram socket (`SOCK_DGRAM` + `IPPROTO_ICMP` /
//!    `IPPROTO_ICMPV6`), allowed when one of the agent's groups is in
//!    `net.ipv4.ping_group_range` (the one sysctl governs both families).
//!    The kernel owns the identifier (it rewrites it to the socket's
//!    "port") and hands each socket only its own replies; errors arrive on
//!    the `IP_RECVERR` queue.
//! 2. a raw ICMP socket (`SOCK_RAW`), when the datagram socket is refused
//!    and the agent is root or has `CAP_NET_RAW`. A raw socket sees every
//!    ICMP message of the host, so replies are matched by our random
//!    identifier, the sequence number, and the cookie at the start of the
//!    payload; errors are read from the quoted request inside them.
//!
//! Probes are sequential: probe n+1 leaves `interval` after probe n, or as
//! soon as probe n is answered or timed out if that is later. A reply
//! arriving after its probe's timeout counts as lost (iputils would still
//! count it; a fixed per-probe verdict keeps the results simple).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use spectra_protocol::PingResult;

use super::icmp::{self, IcmpMessage};
use super::sys;
use super::{error_text, PingOptions, PingRun, SocketKind};

/// Something an ICMP socket received about one of our echo requests.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum IcmpEvent {
    Reply {
        seq: u16,
        from: IpAddr,
        ttl: Option<u8>,
        at: Instant,
    },
    /// An ICMP error quoting our request (`icmp` set), or a local error
    /// the kernel queued for it (`icmp` unset: no neighbour, no route...).
    Error {
        seq: u16,
        from: Option<IpAddr>,
        icmp: Option<(u8, u8)>,
        text: String,
        at: Instant,
    },
}

/// An ICMP socket of either kind, ready to send echo requests.
pub(super) struct IcmpSocket {
    socket: Socket,
    v6: bool,
    kind: SocketKind,
    /// Our identifier on a raw socket; the kernel's choice on a datagram
    /// socket (unknown to us and not needed: it demultiplexes).
    ident: u16,
    cookie: u64,
    /// Payload bytes per request.
    size: usize,
}

impl IcmpSocket {
    /// Opens a datagram or raw ICMP socket as `want` says; `Auto` tries the
    /// datagram socket first. The error says why neither could be opened.
    pub(super) fn open(v6: bool, want: SocketKind, size: usize) -> Result<Self, String> {
        let (domain, protocol) = if v6 {
            (Domain::IPV6, Protocol::ICMPV6)
        } else {
            (Domain::IPV4, Protocol::ICMPV4)
        };
        let dgram = || Socket::new(domain, Type::DGRAM, Some(protocol));
        let raw = || Socket::new(domain, Type::RAW, Some(protocol));
        let (socket, kind) = match want {
            SocketKind::Datagram => (
                dgram()
                    .map_err(|e| format!("cannot open an ICMP socket: {}", explain_dgram(&e)))?,
                SocketKind::Datagram,
            ),
            SocketKind::Raw => (
                raw().map_err(|e| format!("cannot open an ICMP socket: {}", explain_raw(&e)))?,
                SocketKind::Raw,
            ),
            SocketKind::Auto => match dgram() {
                Ok(s) => (s, SocketKind::Datagram),
                Err(dgram_error) => match raw() {
                    Ok(s) => (s, SocketKind::Raw),
                    Err(raw_error) => {
                        return Err(format!(
                            "cannot open an ICMP socket: {}; {}",
                            explain_dgram(&dgram_error),
                            explain_raw(&raw_error)
                        ))
                    }
                },
            },
        };
        let setup = |what: &str, r: io::Result<()>| {
            r.map_err(|e| format!("ICMP socket: {what}: {}", error_text(&e)))
        };
        if kind == SocketKind::Datagram {
            setup(
                "enabling the error queue",
                sys::enable_error_queue(&socket, v6),
            )?;
        }
        setup(
            "asking for the reply TTL",
            sys::enable_receive_ttl(&socket, v6),
        )?;
        Ok(Self {
            socket,
            v6,
            kind,
            ident: rand::random(),
            cookie: rand::random(),
            size,
        })
    }

    /// Which kind of socket was opened.
    pub(super) fn kind(&self) -> SocketKind {
        self.kind
    }

    /// Sets the TTL / hop limit of the requests that follow.
    pub(super) fn set_ttl(&self, ttl: u8) -> Result<(), String> {
        let r = if self.v6 {
            self.socket.set_unicast_hops_v6(u32::from(ttl))
        } else {
            self.socket.set_ttl_v4(u32::from(ttl))
        };
        r.map_err(|e| format!("setting the TTL to {ttl}: {}", error_text(&e)))
    }

    /// Sends echo request `seq` to `dst`.
    pub(super) fn send_echo(&self, dst: IpAddr, seq: u16) -> io::Result<()> {
        // A pending socket error left by an earlier ICMP error would make
        // this send fail with it; SO_ERROR reads and clears it.
        let _ = self.socket.take_error();
        let payload = icmp::build_payload(self.cookie, self.size);
        let packet = icmp::build_echo_request(self.v6, self.ident, seq, &payload);
        self.socket
            .send_to(&packet, &SockAddr::from(SocketAddr::new(dst, 0)))
            .map(|_| ())
    }

    /// A buffer large enough for any reply or error to our requests.
    pub(super) fn buffer(&self) -> Vec<u8> {
        // IP header (up to 60) + ICMP header + payload, and room for an
        // error quoting a full 576-byte datagram.
        vec![0; (self.size + 128).max(1024)]
    }

    /// The next event about one of our requests, or `None` at `until`.
    pub(super) fn next_event(
        &self,
        until: Instant,
        buf: &mut [u8],
    ) -> Result<Option<IcmpEvent>, String> {
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(None);
            }
            let ready = sys::poll_sockets(&[&self.socket], until - now)
                .map_err(|e| format!("waiting for ICMP replies: {}", error_text(&e)))?;
            let Some(ready) = ready.first().copied() else {
                continue;
            };
            if ready.error {
                if self.kind == SocketKind::Datagram {
                    if let Some(event) = self.read_error_queue(buf)? {
                        return Ok(Some(event));
                    }
                    // An error not about our requests, or a pending
                    // socket error without a queue entry: clear it so poll
                    // does not report it again at once.
                    let _ = self.socket.take_error();
                } else {
                    // Raw sockets report errors as packets; clear the
                    // pending error so poll does not spin on it.
                    let _ = self.socket.take_error();
                }
            }
            if ready.readable {
                if let Some(event) = self.read_packet(buf)? {
                    return Ok(Some(event));
                }
            }
        }
    }

    fn read_error_queue(&self, buf: &mut [u8]) -> Result<Option<IcmpEvent>, String> {
        let r = match sys::recv_msg(&self.socket, buf, true) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(format!("reading the ICMP error queue: {}", error_text(&e))),
        };
        let at = Instant::now();
        // The queued data is our own echo request, as sent.
        let data = &buf[..r.len.min(buf.len())];
        let (Some(error), Some(seq)) = (r.error, data.get(6..8)) else {
            return Ok(None);
        };
        let seq = u16::from_be_bytes([seq[0], seq[1]]);
        let event = if error.is_icmp() {
            IcmpEvent::Error {
                seq,
                from: error.offender.map(icmp::unmap),
                icmp: Some((error.icmp_type, error.icmp_code)),
                text: icmp::describe_error(self.v6, error.icmp_type, error.icmp_code),
                at,
            }
        } else {
            IcmpEvent::Error {
                seq,
                from: None,
                icmp: None,
                text: error.errno_text().to_lowercase(),
                at,
            }
        };
        Ok(Some(event))
    }

    fn read_packet(&self, buf: &mut [u8]) -> Result<Option<IcmpEvent>, String> {
        let r = match sys::recv_msg(&self.socket, buf, false) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(format!("reading an ICMP reply: {}", error_text(&e))),
        };
        let at = Instant::now();
        let data = &buf[..r.len.min(buf.len())];
        let from = r.address.map(|a| icmp::unmap(a.ip()));
        // A malformed or foreign packet is not an error of this ping: the
        // raw socket sees all the host's ICMP traffic.
        let (header_ttl, message) = if self.v6 || self.kind == SocketKind::Datagram {
            match icmp::parse_icmp(self.v6, data) {
                Ok(m) => (None, m),
                Err(_) => return Ok(None),
            }
        } else {
            match icmp::parse_raw_v4(data) {
                Ok((ttl, m)) => (Some(ttl), m),
                Err(_) => return Ok(None),
            }
        };
        let raw = self.kind == SocketKind::Raw;
        match message {
            IcmpMessage::EchoReply {
                ident,
                seq,
                payload,
            } => {
                if (raw && ident != self.ident) || !self.is_our_payload(payload) {
                    return Ok(None);
                }
                let Some(from) = from else { return Ok(None) };
                Ok(Some(IcmpEvent::Reply {
                    seq,
                    from,
                    ttl: r.ttl.or(header_ttl),
                    at,
                }))
            }
            // Datagram sockets get errors on the error queue, not as data.
            IcmpMessage::Error {
                icmp_type,
                icmp_code,
                ident,
                seq,
            } if raw && ident == self.ident => Ok(Some(IcmpEvent::Error {
                seq,
                from,
                icmp: Some((icmp_type, icmp_code)),
                text: icmp::describe_error(self.v6, icmp_type, icmp_code),
                at,
            })),
            _ => Ok(None),
        }
    }

    fn is_our_payload(&self, payload: &[u8]) -> bool {
        let expected = icmp::build_payload(self.cookie, self.size.min(8));
        payload.starts_with(&expected)
    }
}

/// Why the kernel refused an unprivileged ICMP socket.
fn explain_dgram(e: &io::Error) -> String {
    let text = error_text(e);
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => {
            let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
                .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|_| "unreadable".into());
            format!(
                "unprivileged ICMP (SOCK_DGRAM) was refused ({text}): none of the agent's groups \
                 is in net.ipv4.ping_group_range (`{range}`)"
            )
        }
        Some(libc::EPROTONOSUPPORT) | Some(libc::EAFNOSUPPORT) => {
            format!("this kernel has no unprivileged ICMP sockets ({text})")
        }
        _ => format!("unprivileged ICMP (SOCK_DGRAM) socket: {text}"),
    }
}

/// Why the kernel refused a raw ICMP socket.
fn explain_raw(e: &io::Error) -> String {
    let text = error_text(e);
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => format!(
            "raw ICMP (SOCK_RAW) was refused ({text}): the agent is not root and lacks CAP_NET_RAW"
        ),
        _ => format!("raw ICMP (SOCK_RAW) socket: {text}"),
    }
}

/// How a send failure reads in a probe's `response`.
pub(super) fn describe_send_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) => {
            format!("unreachable: {}", error_text(e).to_lowercase())
        }
        _ => format!("error: sending: {}", error_text(e)),
    }
}

/// Pings `dst` from the calling thread. Blocks for up to
/// `count × max(interval, timeout)`, never past `options.budget`.
pub fn ping_blocking(dst: IpAddr, options: &PingOptions) -> Result<PingRun, String> {
    let socket = IcmpSocket::open(dst.is_ipv6(), options.socket, usize::from(options.size))?;
    let mut buf = socket.buffer();
    let started = Instant::now();
    let budget_end = started + options.budget;
    let mut results = Vec::new();
    let mut stopped = None;
    let mut next_send = started;
    for i in 0..options.count {
        let seq = u16::try_from(i + 1).unwrap_or(u16::MAX);
        if next_send >= budget_end {
            stopped = Some(budget_note(i, options));
            break;
        }
        let now = Instant::now();
        if next_send > now {
            std::thread::sleep(next_send - now);
        }
        let sent_at = Instant::now();
        next_send = sent_at + options.interval;
        if let Err(e) = socket.send_echo(dst, seq) {
            results.push(failed(seq, dst, describe_send_error(&e)));
            continue;
        }
        let deadline = (sent_at + options.timeout).min(budget_end.max(sent_at));
        let result = loop {
            match socket.next_event(deadline, &mut buf)? {
                None => break failed(seq, dst, "timeout".into()),
                Some(IcmpEvent::Reply {
                    seq: s,
                    from,
                    ttl,
                    at,
                }) if s == seq => {
                    let rtt = at.duration_since(sent_at);
                    break PingResult {
                        seq: u32::from(seq),
                        success: true,
                        rtt: u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX),
                        rtt_ms: rtt.as_nanos() as f64 / 1e6,
                        ttl,
                        response: "reply".into(),
                        peer: from.to_string(),
                    };
                }
                Some(IcmpEvent::Error {
                    seq: s, from, text, ..
                }) if s == seq => {
                    let text = match from {
                        Some(from) => format!("unreachable: {text} (from {from})"),
                        None => format!("unreachable: {text}"),
                    };
                    break failed(seq, from.unwrap_or(dst), text);
                }
                // A late answer to an earlier probe.
                Some(_) => {}
            }
        };
        results.push(result);
    }
    if stopped.is_none() && results.len() < options.count as usize {
        stopped = Some(budget_note(results.len() as u32, options));
    }
    Ok(PingRun {
        results,
        socket: socket.kind(),
        stopped,
    })
}

fn budget_note(sent: u32, options: &PingOptions) -> String {
    format!(
        "stopped after {sent} of {} probes: the {} s time budget ran out",
        options.count,
        options.budget.as_secs()
    )
}

fn failed(seq: u16, peer: IpAddr, response: String) -> PingResult {
    PingResult {
        seq: u32::from(seq),
        success: false,
        rtt: 0,
        rtt_ms: 0.0,
        ttl: None,
        response,
        peer: peer.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_sysctl_and_the_privilege() {
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        let dgram = explain_dgram(&denied);
        assert!(dgram.contains("net.ipv4.ping_group_range"), "{dgram}");
        let raw = explain_raw(&io::Error::from_raw_os_error(libc::EPERM));
        assert!(
            raw.contains("not root") && raw.contains("CAP_NET_RAW"),
            "{raw}"
        );
    }

    #[test]
    fn send_failures_read_as_unreachable_or_error() {
        let e = io::Error::from_raw_os_error(libc::ENETUNREACH);
        assert_eq!(
            describe_send_error(&e),
            "unreachable: network is unreachable"
        );
        let e = io::Error::from_raw_os_error(libc::EMSGSIZE);
        assert!(describe_send_error(&e).starts_with("error: sending: "));
    }
}
