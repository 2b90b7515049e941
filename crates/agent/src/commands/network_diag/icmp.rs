//! ICMP and ICMPv6 packets: building echo requests and reading what comes
//! back on a raw socket. Pure functions over bytes, so they are tested
//! without a network.
//!
//! Formats: RFC 792 (ICMP), RFC 4443 (ICMPv6), RFC 791 / RFC 8200 for the IP
//! headers quoted inside error messages.

use std::net::IpAddr;

/// ICMP echo request (RFC 792).
pub const ECHO_REQUEST_V4: u8 = 8;
/// ICMP echo reply (RFC 792).
pub const ECHO_REPLY_V4: u8 = 0;
/// ICMPv6 echo request (RFC 4443 §4.1).
pub const ECHO_REQUEST_V6: u8 = 128;
/// ICMPv6 echo reply (RFC 4443 §4.2).
pub const ECHO_REPLY_V6: u8 = 129;

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const ICMP_HEADER_LEN: usize = 8;
const IPV6_HEADER_LEN: usize = 40;

/// The Internet checksum (RFC 1071): one's complement of the one's
/// complement sum of 16-bit words.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request: type, code 0, checksum, identifier, sequence, payload.
///
/// The IPv4 checksum is computed here (raw sockets send it as is). For
/// ICMPv6 the checksum covers a pseudo-header with addresses only the
/// kernel knows, so it is left 0 and the kernel fills it in (RFC 3542 §3.1:
/// `IPV6_CHECKSUM` is always on for ICMPv6 raw sockets; datagram ICMP
/// sockets compute both).
pub fn build_echo_request(v6: bool, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(ICMP_HEADER_LEN + payload.len());
    packet.push(if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 });
    packet.push(0);
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(&ident.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(payload);
    if !v6 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// The payload of probe packets: `cookie` (8 bytes, big-endian) then the
/// byte pattern 0x10, 0x11, ... as iputils fills it, cut or padded to
/// `size` bytes. The cookie lets replies be told apart from those of
/// another ping running at the same time with the same sequence number.
pub fn build_payload(cookie: u64, size: usize) -> Vec<u8> {
    let mut payload: Vec<u8> = cookie.to_be_bytes().into_iter().take(size).collect();
    let mut fill = 0x10u8;
    while payload.len() < size {
        payload.push(fill);
        fill = fill.wrapping_add(1);
    }
    payload
}

/// What an ICMP message says about one of our echo requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IcmpMessage<'a> {
    /// An echo reply with its identifier, sequence and payload.
    EchoReply {
        ident: u16,
        seq: u16,
        payload: &'a [u8],
    },
    /// An error (destination unreachable, time exceeded...) quoting an echo
    /// request we sent, identified by the quoted identifier and sequence.
    Error {
        icmp_type: u8,
        icmp_code: u8,
        ident: u16,
        seq: u16,
    },
    /// Anything else: echo requests (ours, looped back), errors about
    /// other traffic, router advertisements...
    Other,
}

/// Reads an ICMP message as a raw IPv4 socket returns it: the IP header
/// first, then ICMP. Returns the header's TTL and the message.
pub fn parse_raw_v4(packet: &[u8]) -> Result<(u8, IcmpMessage<'_>), String> {
    let (ttl, icmp) = split_ipv4_header(packet, IPPROTO_ICMP)?;
    Ok((ttl, parse_icmp(false, icmp)?))
}

/// Reads an ICMPv6 message as a raw IPv6 or a datagram ICMP socket returns
/// it (no IP header), or an ICMP message from a datagram IPv4 socket.
pub fn parse_icmp(v6: bool, icmp: &[u8]) -> Result<IcmpMessage<'_>, String> {
    if icmp.len() < ICMP_HEADER_LEN {
        return Err(format!(
            "ICMP message of {} bytes is shorter than its 8-byte header",
            icmp.len()
        ));
    }
    let (icmp_type, icmp_code) = (icmp[0], icmp[1]);
    let ident = u16::from_be_bytes([icmp[4], icmp[5]]);
    let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
    let reply = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    if icmp_type == reply {
        return Ok(IcmpMessage::EchoReply {
            ident,
            seq,
            payload: &icmp[ICMP_HEADER_LEN..],
        });
    }
    if !is_error_type(v6, icmp_type) {
        return Ok(IcmpMessage::Other);
    }
    // An error quotes the offending packet: its IP header and at least the
    // first 8 bytes after it, which for an echo request hold id and seq.
    let quoted = &icmp[ICMP_HEADER_LEN..];
    let inner = if v6 {
        if quoted.len() < IPV6_HEADER_LEN || quoted[6] != IPPROTO_ICMPV6 {
            return Ok(IcmpMessage::Other);
        }
        &quoted[IPV6_HEADER_LEN..]
    } else {
        match split_ipv4_header(quoted, IPPROTO_ICMP) {
            Ok((_, inner)) => inner,
            Err(_) => return Ok(IcmpMessage::Other),
        }
    };
    let request = if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 };
    if inner.len() < ICMP_HEADER_LEN || inner[0] != request {
        return Ok(IcmpMessage::Other);
    }
    Ok(IcmpMessage::Error {
        icmp_type,
        icmp_code,
        ident: u16::from_be_bytes([inner[4], inner[5]]),
        seq: u16::from_be_bytes([inner[6], inner[7]]),
    })
}

/// Destination unreachable, time exceeded, parameter problem (and packet
/// too big for ICMPv6): the messages that quote the packet they are about.
fn is_error_type(v6: bool, icmp_type: u8) -> bool {
    if v6 {
        matches!(icmp_type, 1..=4)
    } else {
        matches!(icmp_type, 3 | 4 | 5 | 11 | 12)
    }
}

/// Checks an IPv4 header and returns its TTL and what follows it. Only
/// packets of `protocol` are accepted.
fn split_ipv4_header(packet: &[u8], protocol: u8) -> Result<(u8, &[u8]), String> {
    let Some(&first) = packet.first() else {
        return Err("empty IPv4 packet".into());
    };
    if first >> 4 != 4 {
        return Err(format!("not an IPv4 header (version {})", first >> 4));
    }
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < 20 || packet.len() < header_len {
        return Err(format!(
            "IPv4 header length {header_len} does not fit a {}-byte packet",
            packet.len()
        ));
    }
    if packet[9] != protocol {
        return Err(format!("IP protocol {} is not {protocol}", packet[9]));
    }
    Ok((packet[8], &packet[header_len..]))
}

/// Whether `icmp_type` means "your probe went past its TTL/hop limit".
pub fn is_time_exceeded(v6: bool, icmp_type: u8) -> bool {
    icmp_type == if v6 { 3 } else { 11 }
}

/// Whether an error is "port unreachable": how the destination of a UDP
/// traceroute probe answers.
pub fn is_port_unreachable(v6: bool, icmp_type: u8, icmp_code: u8) -> bool {
    if v6 {
        icmp_type == 1 && icmp_code == 4
    } else {
        icmp_type == 3 && icmp_code == 3
    }
}

/// An ICMP error as `ping` and `traceroute` name it ("host unreachable",
/// "time to live exceeded"...).
pub fn describe_error(v6: bool, icmp_type: u8, icmp_code: u8) -> String {
    let text = if v6 {
        match (icmp_type, icmp_code) {
            (1, 0) => "no route to destination",
            (1, 1) => "communication administratively prohibited",
            (1, 2) => "beyond scope of source address",
            (1, 3) => "address unreachable",
            (1, 4) => "port unreachable",
            (1, 5) => "source address failed ingress/egress policy",
            (1, 6) => "reject route to destination",
            (1, _) => "destination unreachable",
            (2, _) => "packet too big",
            (3, 0) => "hop limit exceeded in transit",
            (3, _) => "fragment reassembly time exceeded",
            (4, _) => "parameter problem",
            _ => "",
        }
    } else {
        match (icmp_type, icmp_code) {
            (3, 0) => "network unreachable",
            (3, 1) => "host unreachable",
            (3, 2) => "protocol unreachable",
            (3, 3) => "port unreachable",
            (3, 4) => "fragmentation needed",
            (3, 5) => "source route failed",
            (3, 6) => "destination network unknown",
            (3, 7) => "destination host unknown",
            (3, 9) | (3, 10) | (3, 13) => "communication administratively prohibited",
            (3, _) => "destination unreachable",
            (4, _) => "source quench",
            (5, _) => "redirect",
            (11, 0) => "time to live exceeded",
            (11, _) => "fragment reassembly time exceeded",
            (12, _) => "parameter problem",
            _ => "",
        }
    };
    if text.is_empty() {
        format!(
            "ICMP{} type {icmp_type} code {icmp_code}",
            if v6 { "v6" } else { "" }
        )
    } else {
        text.to_owned()
    }
}

/// The traceroute annotation of an unreachable code (`!H`, `!N`, `!X`...),
/// empty for port unreachable (the normal end of a UDP trace).
pub fn traceroute_flag(v6: bool, icmp_type: u8, icmp_code: u8) -> &'static str {
    match (v6, icmp_type, icmp_code) {
        (false, 3, 0) | (true, 1, 0) => "!N",
        (false, 3, 1) | (true, 1, 3) => "!H",
        (false, 3, 2) => "!P",
        (false, 3, 3) | (true, 1, 4) => "",
        (false, 3, 4) | (true, 2, _) => "!F",
        (false, 3, 9 | 10 | 13) | (true, 1, 1) => "!X",
        (true, 1, 2) => "!S",
        _ => "!?",
    }
}

/// `::ffff:a.b.c.d` back to `a.b.c.d`, anything else unchanged.
pub fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (before
        // the final complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn checksum_of_a_packet_including_its_checksum_is_zero() {
        let packet = build_echo_request(false, 0x1234, 7, &build_payload(42, 57));
        assert_eq!(checksum(&packet), 0);
        assert_eq!(
            &packet[..8],
            &[8, 0, packet[2], packet[3], 0x12, 0x34, 0, 7]
        );
    }

    #[test]
    fn payload_starts_with_the_cookie_and_has_the_requested_size() {
        let p = build_payload(0x0102_0304_0506_0708, 12);
        assert_eq!(p, [1, 2, 3, 4, 5, 6, 7, 8, 0x10, 0x11, 0x12, 0x13]);
        assert_eq!(build_payload(0x0102_0304_0506_0708, 3), [1, 2, 3]);
        assert!(build_payload(1, 0).is_empty());
    }

    fn ipv4_header(protocol: u8, ttl: u8, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, ttl, protocol, 0, 0];
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    }

    #[test]
    fn reads_a_raw_ipv4_echo_reply_with_its_ttl() {
        let mut reply = build_echo_request(false, 0xbeef, 3, b"abcdefgh");
        reply[0] = ECHO_REPLY_V4;
        let mut packet = ipv4_header(1, 63, [10, 0, 0, 2], [10, 0, 0, 1]);
        packet.extend_from_slice(&reply);
        let (ttl, msg) = parse_raw_v4(&packet).unwrap();
        assert_eq!(ttl, 63);
        assert_eq!(
            msg,
            IcmpMessage::EchoReply {
                ident: 0xbeef,
                seq: 3,
                payload: b"abcdefgh"
            }
        );
    }

    #[test]
    fn reads_the_quoted_request_of_a_time_exceeded() {
        let request = build_echo_request(false, 0x0101, 9, &[0; 56]);
        let mut quoted = ipv4_header(1, 1, [10, 0, 0, 1], [192, 0, 2, 9]);
        // Routers quote the IP header and only 8 bytes beyond it (RFC 792).
        quoted.extend_from_slice(&request[..8]);
        let mut icmp = vec![11, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted);
        let mut packet = ipv4_header(1, 255, [10, 0, 0, 254], [10, 0, 0, 1]);
        packet.extend_from_slice(&icmp);
        let (_, msg) = parse_raw_v4(&packet).unwrap();
        assert_eq!(
            msg,
            IcmpMessage::Error {
                icmp_type: 11,
                icmp_code: 0,
                ident: 0x0101,
                seq: 9
            }
        );
        assert!(is_time_exceeded(false, 11));
    }

    #[test]
    fn reads_an_icmpv6_unreachable_quoting_our_request() {
        let request = build_echo_request(true, 0x0202, 4, &[0; 8]);
        let mut ip6 = vec![0x60, 0, 0, 0, 0, 16, IPPROTO_ICMPV6, 64];
        ip6.extend_from_slice(&[0; 32]);
        let mut icmp = vec![1, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&ip6);
        icmp.extend_from_slice(&request);
        assert_eq!(
            parse_icmp(true, &icmp).unwrap(),
            IcmpMessage::Error {
                icmp_type: 1,
                icmp_code: 3,
                ident: 0x0202,
                seq: 4
            }
        );
        assert_eq!(describe_error(true, 1, 3), "address unreachable");
        assert_eq!(traceroute_flag(true, 1, 3), "!H");
    }

    #[test]
    fn our_own_looped_back_request_is_not_a_reply() {
        let request = build_echo_request(true, 1, 1, &[]);
        assert_eq!(parse_icmp(true, &request).unwrap(), IcmpMessage::Other);
        let mut packet = ipv4_header(1, 64, [127, 0, 0, 1], [127, 0, 0, 1]);
        packet.extend_from_slice(&build_echo_request(false, 1, 1, &[]));
        assert_eq!(parse_raw_v4(&packet).unwrap().1, IcmpMessage::Other);
    }

    #[test]
    fn short_or_foreign_packets_are_errors_not_panics() {
        assert!(parse_icmp(false, &[0, 0, 0]).is_err());
        assert!(parse_raw_v4(&[]).is_err());
        assert!(parse_raw_v4(&[0x45, 0, 0]).is_err());
        assert!(parse_raw_v4(&[0x60; 40]).is_err());
        let udp = ipv4_header(17, 64, [1, 1, 1, 1], [2, 2, 2, 2]);
        assert!(parse_raw_v4(&udp).is_err());
        // An error quoting a truncated header is not ours.
        let icmp = [3, 1, 0, 0, 0, 0, 0, 0, 0x45, 0];
        assert_eq!(parse_icmp(false, &icmp).unwrap(), IcmpMessage::Other);
    }

    #[test]
    fn names_errors_as_ping_does() {
        assert_eq!(describe_error(false, 3, 1), "host unreachable");
        assert_eq!(describe_error(false, 11, 0), "time to live exceeded");
        assert_eq!(describe_error(false, 42, 7), "ICMP type 42 code 7");
        assert!(is_port_unreachable(false, 3, 3));
        assert!(is_port_unreachable(true, 1, 4));
        assert!(!is_port_unreachable(false, 3, 1));
        assert_eq!(traceroute_flag(false, 3, 13), "!X");
    }

    #[test]
    fn unmaps_v4_mapped_addresses() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(unmap(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(unmap(v6), v6);
    }
}
