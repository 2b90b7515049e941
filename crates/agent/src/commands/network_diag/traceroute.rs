//! Traceroute (Linux): probes with increasing TTL / hop limit, each hop's
//! probes sent together, until the destination answers.
//!
//! - UDP (default): datagrams to ports 33434 and up (one port per probe,
//!   as traceroute(8) numbers them), from a plain UDP socket with
//!   `IP_RECVERR` / `IPV6_RECVERR`: the kernel queues the ICMP time
//!   exceeded and port unreachable messages on the socket's error queue
//!   with the sender (`SO_EE_OFFENDER`) and the probe's destination port,
//!   so no privilege is needed. The destination answers with port
//!   unreachable.
//! - ICMP: echo requests on the same sockets `ping` uses (datagram if
//!   `ping_group_range` allows, raw if root). The destination answers with
//!   an echo reply.
//!
//! One socket per hop: late answers to an earlier hop land on a closed
//! socket (UDP, datagram ICMP) or carry a sequence number of another hop
//! (raw ICMP), so they cannot be taken for this hop's. The trace stops at
//! the destination, at an unreachable answer (`!H`, `!N`, `!X`...), when
//! every probe of a hop failed locally (no route), or when the time budget
//! runs out; the notes say which.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use spectra_protocol::{TraceProtocol, TracerouteHop};

use super::icmp;
use super::ping::{describe_send_error, IcmpEvent, IcmpSocket};
use super::sys::{self, QueuedError};
use super::{error_text, TraceOptions, TraceReport};

/// UDP payload bytes: the 60-byte IPv4 packet of traceroute(8)'s default.
const UDP_PAYLOAD: [u8; 32] = [0x40; 32];

/// How one probe was answered.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    /// A router on the way: ICMP time exceeded.
    TimeExceeded { from: IpAddr, at: Instant },
    /// The destination: port unreachable (UDP), echo reply (ICMP), or a
    /// service answering on the probe port.
    Destination { from: IpAddr, at: Instant },
    /// Another unreachable: the path ends here.
    Unreachable {
        from: Option<IpAddr>,
        at: Instant,
        flag: &'static str,
        text: String,
    },
    /// This host could not send it (no route, message too long...).
    LocalError(String),
}

/// Traces the route to `dst` from the calling thread, blocking for up to
/// `max_hops × timeout`, never past `options.budget`.
pub fn trace_blocking(dst: IpAddr, options: &TraceOptions) -> Result<TraceReport, String> {
    let started = Instant::now();
    let budget_end = started + options.budget;
    let mut report = TraceReport::default();
    for ttl in 1..=options.max_hops {
        if Instant::now() >= budget_end {
            report.stopped = Some(format!(
                "stopped before hop {ttl}: the {} s time budget ran out",
                options.budget.as_secs()
            ));
            break;
        }
        let (sent, answers) = match options.protocol {
            TraceProtocol::Udp => probe_hop_udp(dst, ttl, options, budget_end)?,
            TraceProtocol::Icmp => {
                let (probes, kind) = probe_hop_icmp(dst, ttl, options, budget_end)?;
                report.icmp_socket = Some(kind);
                probes
            }
        };
        let hop = summarize_hop(ttl, &sent, &answers, &mut report.notes);
        let unreachable = answers
            .iter()
            .any(|a| matches!(a, Some(Answer::Unreachable { .. })));
        let all_local = answers
            .iter()
            .all(|a| matches!(a, Some(Answer::LocalError(_))));
        let reached = hop.reached;
        report.hops.push(hop);
        if reached {
            report.reached = true;
            break;
        }
        if unreachable {
            report.stopped = Some(format!("stopped at hop {ttl}: destination unreachable"));
            break;
        }
        if all_local {
            report.stopped = Some(format!("stopped at hop {ttl}: no probe could be sent"));
            break;
        }
    }
    Ok(report)
}

/// One hop's entry from its probes' answers; `notes` gets what the entry
/// cannot hold (unreachable flags, other routers, local errors).
fn summarize_hop(
    ttl: u8,
    sent: &[Option<Instant>],
    answers: &[Option<Answer>],
    notes: &mut Vec<String>,
) -> TracerouteHop {
    let mut hop = TracerouteHop {
        hop: u32::from(ttl),
        address: None,
        rtt_ms: Vec::with_capacity(answers.len()),
        reached: false,
    };
    for (probe, (answer, sent_at)) in answers.iter().zip(sent).enumerate() {
        let (from, at) = match answer {
            Some(Answer::TimeExceeded { from, at }) => (Some(*from), Some(*at)),
            Some(Answer::Destination { from, at }) => {
                hop.reached = true;
                (Some(*from), Some(*at))
            }
            Some(Answer::Unreachable {
                from,
                at,
                flag,
                text,
            }) => {
                let who = from.map_or_else(|| "?".to_owned(), |f| f.to_string());
                notes.push(format!(
                    "hop {ttl} probe {}: {who} {flag} ({text})",
                    probe + 1
                ));
                (*from, Some(*at))
            }
            Some(Answer::LocalError(e)) => {
                notes.push(format!("hop {ttl} probe {}: {e}", probe + 1));
                (None, None)
            }
            None => (None, None),
        };
        let rtt = match (at, sent_at) {
            (Some(at), Some(sent_at)) => Some(at.duration_since(*sent_at).as_nanos() as f64 / 1e6),
            _ => None,
        };
        hop.rtt_ms.push(rtt);
        if let Some(from) = from {
            let from = from.to_string();
            match &hop.address {
                None => hop.address = Some(from),
                Some(first) if *first != from => notes.push(format!(
                    "hop {ttl} probe {}: also answered by {from}",
                    probe + 1
                )),
                Some(_) => {}
            }
        }
    }
    hop
}

/// Per probe of a hop: when it left (`None`: not sent) and its answer.
type HopProbes = (Vec<Option<Instant>>, Vec<Option<Answer>>);

fn probe_hop_udp(
    dst: IpAddr,
    ttl: u8,
    options: &TraceOptions,
    budget_end: Instant,
) -> Result<HopProbes, String> {
    let v6 = dst.is_ipv6();
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| format!("cannot open a UDP socket: {}", error_text(&e)))?;
    sys::enable_error_queue(&socket, v6)
        .map_err(|e| format!("UDP socket: enabling the error queue: {}", error_text(&e)))?;
    set_ttl(&socket, v6, ttl)?;
    let probes = usize::from(options.probes);
    let first_port = hop_first_port(options, ttl);
    let mut sent = vec![None; probes];
    let mut answers: Vec<Option<Answer>> = vec![None; probes];
    for p in 0..probes {
        let port = first_port.wrapping_add(p as u16);
        let to = SockAddr::from(SocketAddr::new(dst, port));
        sent[p] = Some(Instant::now());
        if let Err(e) = send_udp_probe(&socket, &to) {
            answers[p] = Some(Answer::LocalError(describe_send_error(&e)));
            sent[p] = None;
        }
    }
    let deadline = hop_deadline(&sent, options, budget_end);
    let mut buf = [0u8; 512];
    while answers.iter().any(Option::is_none) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let ready = sys::poll_sockets(&[&socket], deadline - now)
            .map_err(|e| format!("waiting for ICMP answers: {}", error_text(&e)))?;
        let Some(ready) = ready.first().copied() else {
            continue;
        };
        if ready.error {
            loop {
                let r = match sys::recv_msg(&socket, &mut buf, true) {
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        return Err(format!("reading the UDP error queue: {}", error_text(&e)))
                    }
                };
                let at = Instant::now();
                let (Some(error), Some(address)) = (r.error, r.address) else {
                    continue;
                };
                // The queued address is the probe's destination: its port
                // says which probe this is about.
                let index = usize::from(address.port().wrapping_sub(first_port));
                if let Some(slot) = answers.get_mut(index) {
                    if slot.is_none() {
                        *slot = Some(classify_udp_error(v6, &error, at));
                    }
                }
            }
            // SO_ERROR holds the last error too; clear it.
            let _ = socket.take_error();
        }
        if ready.readable {
            // A service listening on the probe port answered: that is the
            // destination too (traceroute(8) counts it the same way).
            if let Ok(r) = sys::recv_msg(&socket, &mut buf, false) {
                let from = r.address.map(|a| icmp::unmap(a.ip()));
                if let (Some(from), Some(slot)) = (from, answers.iter_mut().find(|a| a.is_none())) {
                    *slot = Some(Answer::Destination {
                        from,
                        at: Instant::now(),
                    });
                }
            }
        }
    }
    Ok((sent, answers))
}

/// Sends one UDP probe. The answer to an earlier probe of this hop may
/// already have set the socket's pending error (on loopback it arrives
/// during the send itself), and the next send would fail with it:
/// SO_ERROR clears it first, and a send failing with `ECONNREFUSED`, which
/// only ever comes from such an answer, is retried once.
fn send_udp_probe(socket: &Socket, to: &SockAddr) -> io::Result<()> {
    let _ = socket.take_error();
    match socket.send_to(&UDP_PAYLOAD, to) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            let _ = socket.take_error();
            socket.send_to(&UDP_PAYLOAD, to).map(|_| ())
        }
        r => r.map(|_| ()),
    }
}

/// The first destination port of hop `ttl`'s probes: ports run on from
/// `first_port` across hops, one per probe, as in traceroute(8).
fn hop_first_port(options: &TraceOptions, ttl: u8) -> u16 {
    let before = u16::from(ttl - 1) * u16::from(options.probes);
    options.first_port.wrapping_add(before)
}

fn hop_deadline(sent: &[Option<Instant>], options: &TraceOptions, budget_end: Instant) -> Instant {
    let last = sent
        .iter()
        .flatten()
        .max()
        .copied()
        .unwrap_or_else(Instant::now);
    (last + options.timeout).min(budget_end.max(last))
}

fn classify_udp_error(v6: bool, error: &QueuedError, at: Instant) -> Answer {
    if !error.is_icmp() {
        return Answer::LocalError(format!(
            "local error: {}",
            error.errno_text().to_lowercase()
        ));
    }
    let from = error.offender.map(icmp::unmap);
    let (t, c) = (error.icmp_type, error.icmp_code);
    match from {
        Some(from) if icmp::is_time_exceeded(v6, t) => Answer::TimeExceeded { from, at },
        Some(from) if icmp::is_port_unreachable(v6, t, c) => Answer::Destination { from, at },
        _ => Answer::Unreachable {
            from,
            at,
            flag: icmp::traceroute_flag(v6, t, c),
            text: icmp::describe_error(v6, t, c),
        },
    }
}

fn set_ttl(socket: &Socket, v6: bool, ttl: u8) -> Result<(), String> {
    let r = if v6 {
        socket.set_unicast_hops_v6(u32::from(ttl))
    } else {
        socket.set_ttl_v4(u32::from(ttl))
    };
    r.map_err(|e| format!("setting the TTL to {ttl}: {}", error_text(&e)))
}

fn probe_hop_icmp(
    dst: IpAddr,
    ttl: u8,
    options: &TraceOptions,
    budget_end: Instant,
) -> Result<(HopProbes, super::SocketKind), String> {
    let v6 = dst.is_ipv6();
    let socket = IcmpSocket::open(v6, options.icmp_socket, UDP_PAYLOAD.len())?;
    socket.set_ttl(ttl)?;
    let probes = usize::from(options.probes);
    // Sequence numbers run on across hops (1, 2, ...), so a late reply to
    // an earlier hop's probe does not match this hop's.
    let first_seq = u16::from(ttl - 1) * u16::from(options.probes) + 1;
    let mut sent = vec![None; probes];
    let mut answers: Vec<Option<Answer>> = vec![None; probes];
    for p in 0..probes {
        sent[p] = Some(Instant::now());
        if let Err(e) = socket.send_echo(dst, first_seq + p as u16) {
            answers[p] = Some(Answer::LocalError(describe_send_error(&e)));
            sent[p] = None;
        }
    }
    let deadline = hop_deadline(&sent, options, budget_end);
    let mut buf = socket.buffer();
    while answers.iter().any(Option::is_none) {
        let Some(event) = socket.next_event(deadline, &mut buf)? else {
            break;
        };
        let (seq, answer) = match event {
            IcmpEvent::Reply { seq, from, at, .. } => (seq, Answer::Destination { from, at }),
            IcmpEvent::Error {
                seq,
                from,
                icmp: Some((t, c)),
                text,
                at,
            } => {
                let answer = match from {
                    Some(from) if icmp::is_time_exceeded(v6, t) => {
                        Answer::TimeExceeded { from, at }
                    }
                    _ => Answer::Unreachable {
                        from,
                        at,
                        flag: icmp::traceroute_flag(v6, t, c),
                        text,
                    },
                };
                (seq, answer)
            }
            IcmpEvent::Error {
                seq,
                icmp: None,
                text,
                ..
            } => (seq, Answer::LocalError(format!("local error: {text}"))),
        };
        let index = usize::from(seq.wrapping_sub(first_seq));
        if let Some(slot) = answers.get_mut(index) {
            if slot.is_none() {
                *slot = Some(answer);
            }
        }
    }
    Ok(((sent, answers), socket.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn options() -> TraceOptions {
        TraceOptions {
            probes: 3,
            ..TraceOptions::default()
        }
    }

    #[test]
    fn ports_run_on_across_hops() {
        let o = options();
        assert_eq!(hop_first_port(&o, 1), 33434);
        assert_eq!(hop_first_port(&o, 2), 33437);
        assert_eq!(hop_first_port(&o, 30), 33434 + 87);
    }

    #[test]
    fn a_hop_keeps_the_first_address_and_notes_others() {
        let t0 = Instant::now();
        let sent = vec![Some(t0), Some(t0), Some(t0)];
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let answers = vec![
            Some(Answer::TimeExceeded {
                from: a,
                at: t0 + Duration::from_millis(2),
            }),
            None,
            Some(Answer::TimeExceeded {
                from: b,
                at: t0 + Duration::from_millis(4),
            }),
        ];
        let mut notes = Vec::new();
        let hop = summarize_hop(3, &sent, &answers, &mut notes);
        assert_eq!(hop.hop, 3);
        assert_eq!(hop.address.as_deref(), Some("10.0.0.1"));
        assert_eq!(hop.rtt_ms, vec![Some(2.0), None, Some(4.0)]);
        assert!(!hop.reached);
        assert_eq!(notes, ["hop 3 probe 3: also answered by 10.0.0.2"]);
    }

    #[test]
    fn unreachable_and_local_errors_are_noted() {
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.9".parse().unwrap();
        let answers = vec![
            Some(Answer::Unreachable {
                from: Some(a),
                at: t0,
                flag: "!H",
                text: "host unreachable".into(),
            }),
            Some(Answer::LocalError(
                "unreachable: network is unreachable".into(),
            )),
        ];
        let mut notes = Vec::new();
        let hop = summarize_hop(1, &[Some(t0), None], &answers, &mut notes);
        assert_eq!(hop.address.as_deref(), Some("10.0.0.9"));
        assert_eq!(hop.rtt_ms, vec![Some(0.0), None]);
        assert_eq!(
            notes,
            [
                "hop 1 probe 1: 10.0.0.9 !H (host unreachable)",
                "hop 1 probe 2: unreachable: network is unreachable"
            ]
        );
    }

    #[test]
    fn queued_errors_are_classified() {
        let at = Instant::now();
        let r: IpAddr = "10.0.0.1".parse().unwrap();
        let e = |t, c, origin| QueuedError {
            origin,
            errno: libc::EHOSTUNREACH as u32,
            icmp_type: t,
            icmp_code: c,
            offender: Some(r),
        };
        assert_eq!(
            classify_udp_error(false, &e(11, 0, libc::SO_EE_ORIGIN_ICMP), at),
            Answer::TimeExceeded { from: r, at }
        );
        assert_eq!(
            classify_udp_error(true, &e(1, 4, libc::SO_EE_ORIGIN_ICMP6), at),
            Answer::Destination { from: r, at }
        );
        assert!(matches!(
            classify_udp_error(false, &e(3, 1, libc::SO_EE_ORIGIN_ICMP), at),
            Answer::Unreachable { flag: "!H", .. }
        ));
        assert_eq!(
            classify_udp_error(false, &e(0, 0, libc::SO_EE_ORIGIN_LOCAL), at),
            Answer::LocalError("local error: no route to host".into())
        );
    }
}
