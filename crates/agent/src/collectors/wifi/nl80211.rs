//! nl80211 over generic netlink: the request bytes and the pure parsers of
//! the replies (no I/O here; `netlink.rs` moves the bytes).
//!
//! Hand-written rather than with `neli`: the agent needs three requests
//! (resolve the `nl80211` family, dump interfaces, dump one interface's
//! station) and a flat walk over attributes. A general netlink crate brings
//! its traits, derive macros and builders into a binary kept small on
//! purpose (opt-level "z"); this file is the whole protocol we use.
//!
//! Layouts (all integers in host byte order, everything 4-byte aligned):
//! - `struct nlmsghdr` (16 bytes: len u32, type u16, flags u16, seq u32,
//!   pid u32), then for generic netlink `struct genlmsghdr` (4 bytes: cmd
//!   u8, version u8, reserved u16), then attributes
//!   (`include/uapi/linux/netlink.h`, `genetlink.h`);
//! - `struct nlattr` (len u16 including its 4-byte header, type u16 whose
//!   top two bits are the NESTED and NET_BYTEORDER flags), then the payload,
//!   padded to 4 bytes;
//! - nl80211's attribute numbers from `include/uapi/linux/nl80211.h`.

use super::ParseError;

const WHAT: &str = "nl80211 reply";

/// `NLMSG_ERROR`, `NLMSG_DONE` (netlink.h).
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_ROOT | NLM_F_MATCH`.
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;
const NLA_HDRLEN: usize = 4;
/// NLA_F_NESTED | NLA_F_NET_BYTEORDER.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// The generic netlink controller (genetlink.h).
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

pub const NL80211_FAMILY_NAME: &str = "nl80211";
pub const NL80211_CMD_GET_INTERFACE: u8 = 5;
pub const NL80211_CMD_NEW_INTERFACE: u8 = 7;
pub const NL80211_CMD_GET_STATION: u8 = 17;
pub const NL80211_CMD_NEW_STATION: u8 = 19;

pub const NL80211_ATTR_IFINDEX: u16 = 3;
pub const NL80211_ATTR_IFNAME: u16 = 4;
pub const NL80211_ATTR_IFTYPE: u16 = 5;
pub const NL80211_ATTR_STA_INFO: u16 = 21;
pub const NL80211_ATTR_WIPHY_FREQ: u16 = 38;
pub const NL80211_ATTR_SSID: u16 = 52;

pub const NL80211_STA_INFO_SIGNAL: u16 = 7;
pub const NL80211_STA_INFO_TX_BITRATE: u16 = 8;
/// u16, in 100 kbit/s; 0 when the rate does not fit (then BITRATE32).
pub const NL80211_RATE_INFO_BITRATE: u16 = 1;
/// u32, in 100 kbit/s (kernels since 3.5).
pub const NL80211_RATE_INFO_BITRATE32: u16 = 5;

/// `enum nl80211_iftype`: only a managed (client) interface has one
/// station, its access point, whose signal is the link's.
pub const NL80211_IFTYPE_STATION: u32 = 2;

/// One attribute: its type (flags masked off) and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    pub kind: u16,
    pub payload: &'a [u8],
}

/// One netlink message of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub msg_type: u16,
    pub seq: u32,
    /// After the 16-byte header.
    pub payload: &'a [u8],
}

/// What a wireless interface says of itself (`NL80211_CMD_NEW_INTERFACE`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nl80211Interface {
    pub ifindex: u32,
    pub name: String,
    pub iftype: Option<u32>,
    /// Raw SSID bytes (0-32, any bytes); present while associated.
    pub ssid: Option<Vec<u8>>,
    pub frequency_mhz: Option<u32>,
}

/// The link's station (`NL80211_CMD_NEW_STATION`): the access point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StationInfo {
    pub signal_dbm: Option<i8>,
    /// TX bitrate in units of 100 kbit/s.
    pub tx_bitrate_100kbps: Option<u32>,
}

/// nl80211's view of one wireless link, joined for the payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nl80211Link {
    pub interface: Nl80211Interface,
    pub station: Option<StationInfo>,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = NLA_HDRLEN + payload.len();
    // Attributes we send are a few bytes: the u16 length cannot overflow.
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align4(buf.len()), 0);
}

/// A generic netlink request: header, genl header (version 1), attributes.
fn build_request(family: u16, flags: u16, seq: u32, cmd: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(&[0; 4]); // length, set below
    buf.extend_from_slice(&family.to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel fills ours in
    buf.extend_from_slice(&[cmd, 1, 0, 0]);
    for (kind, payload) in attrs {
        push_attr(&mut buf, *kind, payload);
    }
    let len = buf.len() as u32;
    buf[..4].copy_from_slice(&len.to_ne_bytes());
    buf
}

/// `CTRL_CMD_GETFAMILY` for `nl80211` (the name NUL-terminated, as the
/// controller's policy, `NLA_NUL_STRING`, wants).
pub fn build_get_family_request(seq: u32) -> Vec<u8> {
    build_request(
        GENL_ID_CTRL,
        0,
        seq,
        CTRL_CMD_GETFAMILY,
        &[(CTRL_ATTR_FAMILY_NAME, b"nl80211\0")],
    )
}

/// `NL80211_CMD_GET_INTERFACE` as a dump: every wireless interface.
pub fn build_get_interfaces_request(family: u16, seq: u32) -> Vec<u8> {
    build_request(family, NLM_F_DUMP, seq, NL80211_CMD_GET_INTERFACE, &[])
}

/// `NL80211_CMD_GET_STATION` as a dump of one interface's stations (the
/// kernel requires `NL80211_ATTR_IFINDEX`; for a client that is its AP).
pub fn build_get_station_request(family: u16, seq: u32, ifindex: u32) -> Vec<u8> {
    build_request(
        family,
        NLM_F_DUMP,
        seq,
        NL80211_CMD_GET_STATION,
        &[(NL80211_ATTR_IFINDEX, &ifindex.to_ne_bytes())],
    )
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Splits a datagram into its netlink messages. A length that runs past
/// the buffer or below the header is an error naming the offset.
pub fn parse_messages(buf: &[u8]) -> Result<Vec<Message<'_>>, ParseError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDRLEN <= buf.len() {
        let bad = |m: String| ParseError::new(WHAT, format!("message at byte {at}: {m}"));
        let len = read_u32(buf, at).ok_or_else(|| bad("truncated".into()))? as usize;
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            return Err(bad(format!("length {len} in a {} byte reply", buf.len())));
        }
        out.push(Message {
            msg_type: read_u16(buf, at + 4).ok_or_else(|| bad("truncated".into()))?,
            seq: read_u32(buf, at + 8).ok_or_else(|| bad("truncated".into()))?,
            payload: &buf[at + NLMSG_HDRLEN..at + len],
        });
        at += align4(len);
    }
    if at < buf.len() && buf.len() - at >= NLA_HDRLEN {
        return Err(ParseError::new(
            WHAT,
            format!("{} trailing bytes after the last message", buf.len() - at),
        ));
    }
    Ok(out)
}

/// The errno of an `NLMSG_ERROR` message (negative, or 0 for an ack).
pub fn parse_error_code(msg: &Message<'_>) -> Result<i32, ParseError> {
    read_u32(msg.payload, 0)
        .map(|v| v as i32)
        .ok_or_else(|| ParseError::new(WHAT, "NLMSG_ERROR without an error code"))
}

/// Walks a run of attributes.
pub fn parse_attrs(mut b: &[u8]) -> Result<Vec<Attr<'_>>, ParseError> {
    let mut out = Vec::new();
    while b.len() >= NLA_HDRLEN {
        let len = usize::from(read_u16(b, 0).unwrap_or(0));
        let kind = read_u16(b, 2).unwrap_or(0) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > b.len() {
            return Err(ParseError::new(
                WHAT,
                format!(
                    "attribute {kind} has length {len} with {} bytes left",
                    b.len()
                ),
            ));
        }
        out.push(Attr {
            kind,
            payload: &b[NLA_HDRLEN..len],
        });
        b = &b[align4(len).min(b.len())..];
    }
    Ok(out)
}

/// The generic netlink command and attributes of a genl message payload.
pub fn parse_genl(payload: &[u8]) -> Result<(u8, Vec<Attr<'_>>), ParseError> {
    if payload.len() < GENL_HDRLEN {
        return Err(ParseError::new(
            WHAT,
            "message shorter than its genl header",
        ));
    }
    Ok((payload[0], parse_attrs(&payload[GENL_HDRLEN..])?))
}

fn attr_u32(a: &Attr<'_>, name: &str) -> Result<u32, ParseError> {
    read_u32(a.payload, 0)
        .ok_or_else(|| ParseError::new(WHAT, format!("{name}: {} bytes, want 4", a.payload.len())))
}

/// The family id from a `CTRL_CMD_NEWFAMILY` reply's payload.
pub fn parse_family_id(payload: &[u8]) -> Result<u16, ParseError> {
    let (_, attrs) = parse_genl(payload)?;
    attrs
        .iter()
        .find(|a| a.kind == CTRL_ATTR_FAMILY_ID)
        .and_then(|a| read_u16(a.payload, 0))
        .ok_or_else(|| ParseError::new(WHAT, "CTRL_ATTR_FAMILY_ID missing"))
}

/// One `NL80211_CMD_NEW_INTERFACE` payload. An interface needs its index
/// and name; SSID and frequency are there only while associated.
pub fn parse_interface(payload: &[u8]) -> Result<Nl80211Interface, ParseError> {
    let (_, attrs) = parse_genl(payload)?;
    let mut iface = Nl80211Interface::default();
    let mut ifindex = None;
    for a in &attrs {
        match a.kind {
            NL80211_ATTR_IFINDEX => ifindex = Some(attr_u32(a, "NL80211_ATTR_IFINDEX")?),
            NL80211_ATTR_IFNAME => {
                let raw = a.payload.split(|&c| c == 0).next().unwrap_or(&[]);
                iface.name = String::from_utf8_lossy(raw).into_owned();
            }
            NL80211_ATTR_IFTYPE => iface.iftype = Some(attr_u32(a, "NL80211_ATTR_IFTYPE")?),
            NL80211_ATTR_SSID => iface.ssid = Some(a.payload.to_vec()),
            NL80211_ATTR_WIPHY_FREQ => {
                iface.frequency_mhz = Some(attr_u32(a, "NL80211_ATTR_WIPHY_FREQ")?)
            }
            _ => {}
        }
    }
    iface.ifindex =
        ifindex.ok_or_else(|| ParseError::new(WHAT, "interface without NL80211_ATTR_IFINDEX"))?;
    if iface.name.is_empty() {
        return Err(ParseError::new(
            WHAT,
            format!("interface {} without NL80211_ATTR_IFNAME", iface.ifindex),
        ));
    }
    Ok(iface)
}

/// One `NL80211_CMD_NEW_STATION` payload: `NL80211_ATTR_STA_INFO` nested
/// with the signal (s8 dBm) and the TX rate, itself nested, whose
/// `BITRATE32` is preferred over the 16-bit `BITRATE` (which reads 0 for
/// rates past 6553.5 Mbit/s).
pub fn parse_station(payload: &[u8]) -> Result<StationInfo, ParseError> {
    let (_, attrs) = parse_genl(payload)?;
    let sta = attrs
        .iter()
        .find(|a| a.kind == NL80211_ATTR_STA_INFO)
        .ok_or_else(|| ParseError::new(WHAT, "station without NL80211_ATTR_STA_INFO"))?;
    let mut info = StationInfo::default();
    for a in parse_attrs(sta.payload)? {
        match a.kind {
            NL80211_STA_INFO_SIGNAL => {
                let b = *a.payload.first().ok_or_else(|| {
                    ParseError::new(WHAT, "NL80211_STA_INFO_SIGNAL without a byte")
                })?;
                info.signal_dbm = Some(b as i8);
            }
            NL80211_STA_INFO_TX_BITRATE => {
                let mut rate16 = None;
                let mut rate32 = None;
                for r in parse_attrs(a.payload)? {
                    match r.kind {
                        NL80211_RATE_INFO_BITRATE32 => rate32 = read_u32(r.payload, 0),
                        NL80211_RATE_INFO_BITRATE => rate16 = read_u16(r.payload, 0),
                        _ => {}
                    }
                }
                info.tx_bitrate_100kbps = rate32.or(rate16.filter(|&r| r > 0).map(u32::from));
            }
            _ => {}
        }
    }
    Ok(info)
}

/// An SSID for display: as is when it is printable UTF-8, else with each
/// byte outside printable ASCII as `\xNN` (as `iw` prints it).
pub fn format_ssid(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => raw
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) && b != b'\\' {
                    char::from(b).to_string()
                } else {
                    format!("\\x{b:02x}")
                }
            })
            .collect(),
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Replies built byte by byte from the layouts in the module docs, as
    //! the kernel's `nl80211_send_iface` and `nl80211_send_station` emit
    //! them (tests/fixtures/README.md, "nl80211 replies").
    use super::*;

    pub fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        push_attr(&mut b, kind, payload);
        b
    }

    pub fn nested(kind: u16, inner: &[Vec<u8>]) -> Vec<u8> {
        // NLA_F_NESTED, as the kernel's nla_nest_start sets it.
        attr(kind | 0x8000, &inner.concat())
    }

    pub fn message(msg_type: u16, seq: u32, cmd: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut b = Vec::new();
        let body = attrs.concat();
        let len = (NLMSG_HDRLEN + GENL_HDRLEN + body.len()) as u32;
        b.extend_from_slice(&len.to_ne_bytes());
        b.extend_from_slice(&msg_type.to_ne_bytes());
        b.extend_from_slice(&0x2u16.to_ne_bytes()); // NLM_F_MULTI
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&4242u32.to_ne_bytes());
        b.extend_from_slice(&[cmd, 1, 0, 0]);
        b.extend_from_slice(&body);
        b
    }

    pub fn done(seq: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&20u32.to_ne_bytes());
        b.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        b.extend_from_slice(&0x2u16.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&4242u32.to_ne_bytes());
        b.extend_from_slice(&0i32.to_ne_bytes());
        b
    }

    /// A laptop's `wlp0s20f3` (iwlwifi) associated to "HomeNet" on channel
    /// 36 (5180 MHz), as `NL80211_CMD_NEW_INTERFACE`: wiphy, ifindex,
    /// ifname, iftype, MAC, generation, SSID, frequency, channel width,
    /// center frequency, tx power (the attributes `nl80211_send_iface`
    /// puts, in its order).
    pub fn laptop_interface(seq: u32) -> Vec<u8> {
        message(
            0x22,
            seq,
            NL80211_CMD_NEW_INTERFACE,
            &[
                attr(1, &0u32.to_ne_bytes()),
                attr(NL80211_ATTR_IFINDEX, &3u32.to_ne_bytes()),
                attr(NL80211_ATTR_IFNAME, b"wlp0s20f3\0"),
                attr(NL80211_ATTR_IFTYPE, &NL80211_IFTYPE_STATION.to_ne_bytes()),
                attr(6, &[0x3c, 0x58, 0xc2, 0x11, 0x22, 0x33]),
                attr(46, &17u32.to_ne_bytes()),
                attr(NL80211_ATTR_SSID, b"HomeNet"),
                attr(NL80211_ATTR_WIPHY_FREQ, &5180u32.to_ne_bytes()),
                attr(159, &3u32.to_ne_bytes()),
                attr(160, &5210u32.to_ne_bytes()),
                attr(98, &2200u32.to_ne_bytes()),
            ],
        )
    }

    /// The same laptop's second, unassociated interface (a USB dongle):
    /// no SSID, no frequency.
    pub fn idle_dongle_interface(seq: u32) -> Vec<u8> {
        message(
            0x22,
            seq,
            NL80211_CMD_NEW_INTERFACE,
            &[
                attr(1, &1u32.to_ne_bytes()),
                attr(NL80211_ATTR_IFINDEX, &5u32.to_ne_bytes()),
                attr(NL80211_ATTR_IFNAME, b"wlp4s0u1\0"),
                attr(NL80211_ATTR_IFTYPE, &NL80211_IFTYPE_STATION.to_ne_bytes()),
                attr(6, &[0x00, 0x0f, 0x00, 0xaa, 0xbb, 0xcc]),
                attr(46, &3u32.to_ne_bytes()),
            ],
        )
    }

    /// The AP station of `wlp0s20f3`: inactive time, rx/tx bytes, signal
    /// -38 dBm, TX rate 866.7 Mbit/s (VHT MCS 9, 80 MHz, 2 streams) with
    /// both BITRATE and BITRATE32, signal average.
    pub fn laptop_station(seq: u32) -> Vec<u8> {
        message(
            0x22,
            seq,
            NL80211_CMD_NEW_STATION,
            &[
                attr(NL80211_ATTR_IFINDEX, &3u32.to_ne_bytes()),
                attr(6, &[0xa0, 0x63, 0x91, 0x01, 0x02, 0x03]),
                attr(46, &17u32.to_ne_bytes()),
                nested(
                    NL80211_ATTR_STA_INFO,
                    &[
                        attr(1, &1200u32.to_ne_bytes()),
                        attr(2, &123_456_789u32.to_ne_bytes()),
                        attr(3, &9_876_543u32.to_ne_bytes()),
                        attr(NL80211_STA_INFO_SIGNAL, &[(-38i8) as u8]),
                        nested(
                            NL80211_STA_INFO_TX_BITRATE,
                            &[
                                attr(NL80211_RATE_INFO_BITRATE, &8667u16.to_ne_bytes()),
                                attr(NL80211_RATE_INFO_BITRATE32, &8667u32.to_ne_bytes()),
                                attr(6, &[9]), // VHT_MCS
                                attr(7, &[2]), // VHT_NSS
                                attr(8, &[]),  // 80_MHZ_WIDTH (flag)
                            ],
                        ),
                        attr(13, &[(-39i8) as u8]),
                    ],
                ),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn builds_the_family_request_the_controller_expects() {
        let req = build_get_family_request(7);
        let msgs = parse_messages(&req).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].msg_type, GENL_ID_CTRL);
        assert_eq!(msgs[0].seq, 7);
        assert_eq!(read_u16(&req, 6), Some(NLM_F_REQUEST));
        let (cmd, attrs) = parse_genl(msgs[0].payload).unwrap();
        assert_eq!(cmd, CTRL_CMD_GETFAMILY);
        assert_eq!(
            attrs,
            [Attr {
                kind: CTRL_ATTR_FAMILY_NAME,
                payload: b"nl80211\0"
            }]
        );
        // 16 header + 4 genl + 4 attr header + 8 name: already aligned.
        assert_eq!(req.len(), 32);
    }

    #[test]
    fn builds_the_station_dump_for_one_interface() {
        let req = build_get_station_request(0x22, 9, 3);
        assert_eq!(read_u16(&req, 6), Some(NLM_F_REQUEST | NLM_F_DUMP));
        let msgs = parse_messages(&req).unwrap();
        let (cmd, attrs) = parse_genl(msgs[0].payload).unwrap();
        assert_eq!(cmd, NL80211_CMD_GET_STATION);
        assert_eq!(attrs[0].kind, NL80211_ATTR_IFINDEX);
        assert_eq!(read_u32(attrs[0].payload, 0), Some(3));
        let req = build_get_interfaces_request(0x22, 10);
        assert_eq!(
            parse_genl(parse_messages(&req).unwrap()[0].payload)
                .unwrap()
                .0,
            NL80211_CMD_GET_INTERFACE
        );
    }

    #[test]
    fn parses_the_family_id_from_a_newfamily_reply() {
        let reply = message(
            GENL_ID_CTRL,
            1,
            1, // CTRL_CMD_NEWFAMILY
            &[
                attr(CTRL_ATTR_FAMILY_NAME, b"nl80211\0"),
                attr(CTRL_ATTR_FAMILY_ID, &0x22u16.to_ne_bytes()),
                attr(3, &1u32.to_ne_bytes()), // CTRL_ATTR_VERSION
            ],
        );
        let msgs = parse_messages(&reply).unwrap();
        assert_eq!(parse_family_id(msgs[0].payload), Ok(0x22));
        let without = message(
            GENL_ID_CTRL,
            1,
            1,
            &[attr(CTRL_ATTR_FAMILY_NAME, b"nl80211\0")],
        );
        let err = parse_family_id(parse_messages(&without).unwrap()[0].payload).unwrap_err();
        assert!(err.message.contains("CTRL_ATTR_FAMILY_ID"), "{err}");
    }

    #[test]
    fn parses_an_interface_dump_with_an_associated_and_an_idle_interface() {
        let dump = [laptop_interface(4), idle_dongle_interface(4), done(4)].concat();
        let msgs = parse_messages(&dump).unwrap();
        assert_eq!(
            msgs.iter().map(|m| m.msg_type).collect::<Vec<_>>(),
            [0x22, 0x22, NLMSG_DONE]
        );
        assert_eq!(
            parse_interface(msgs[0].payload).unwrap(),
            Nl80211Interface {
                ifindex: 3,
                name: "wlp0s20f3".into(),
                iftype: Some(NL80211_IFTYPE_STATION),
                ssid: Some(b"HomeNet".to_vec()),
                frequency_mhz: Some(5180),
            }
        );
        assert_eq!(
            parse_interface(msgs[1].payload).unwrap(),
            Nl80211Interface {
                ifindex: 5,
                name: "wlp4s0u1".into(),
                iftype: Some(NL80211_IFTYPE_STATION),
                ssid: None,
                frequency_mhz: None,
            }
        );
    }

    #[test]
    fn parses_signal_and_the_32_bit_tx_bitrate_of_a_station() {
        let reply = laptop_station(5);
        let msgs = parse_messages(&reply).unwrap();
        assert_eq!(
            parse_station(msgs[0].payload).unwrap(),
            StationInfo {
                signal_dbm: Some(-38),
                tx_bitrate_100kbps: Some(8667),
            }
        );
    }

    #[test]
    fn an_old_kernel_without_bitrate32_gives_the_16_bit_rate() {
        let msg = message(
            0x22,
            1,
            NL80211_CMD_NEW_STATION,
            &[nested(
                NL80211_ATTR_STA_INFO,
                &[
                    attr(NL80211_STA_INFO_SIGNAL, &[(-71i8) as u8]),
                    nested(
                        NL80211_STA_INFO_TX_BITRATE,
                        &[attr(NL80211_RATE_INFO_BITRATE, &540u16.to_ne_bytes())],
                    ),
                ],
            )],
        );
        let info = parse_station(parse_messages(&msg).unwrap()[0].payload).unwrap();
        assert_eq!(
            info,
            StationInfo {
                signal_dbm: Some(-71),
                tx_bitrate_100kbps: Some(540)
            }
        );
    }

    #[test]
    fn a_station_without_signal_or_rate_reports_none_of_them() {
        let msg = message(
            0x22,
            1,
            NL80211_CMD_NEW_STATION,
            &[nested(
                NL80211_ATTR_STA_INFO,
                &[attr(1, &5u32.to_ne_bytes())],
            )],
        );
        assert_eq!(
            parse_station(parse_messages(&msg).unwrap()[0].payload).unwrap(),
            StationInfo::default()
        );
        let msg = message(
            0x22,
            1,
            NL80211_CMD_NEW_STATION,
            &[attr(NL80211_ATTR_IFINDEX, &3u32.to_ne_bytes())],
        );
        assert!(parse_station(parse_messages(&msg).unwrap()[0].payload).is_err());
    }

    #[test]
    fn rejects_truncated_and_overlong_data_naming_the_place() {
        let mut reply = laptop_interface(1);
        reply.truncate(reply.len() - 3);
        let err = parse_messages(&reply).unwrap_err();
        assert!(err.message.contains("message at byte 0"), "{err}");
        // An attribute claiming more bytes than are left.
        let bad = [&[200u8, 0, 4, 0][..], b"abcd"].concat();
        let err = parse_attrs(&bad).unwrap_err();
        assert!(err.message.contains("attribute 4 has length 200"), "{err}");
        // An interface without its index.
        let msg = message(
            0x22,
            1,
            NL80211_CMD_NEW_INTERFACE,
            &[attr(NL80211_ATTR_IFNAME, b"wlan0\0")],
        );
        assert!(parse_interface(parse_messages(&msg).unwrap()[0].payload).is_err());
        // A frequency of the wrong size.
        let msg = message(
            0x22,
            1,
            NL80211_CMD_NEW_INTERFACE,
            &[
                attr(NL80211_ATTR_IFINDEX, &3u32.to_ne_bytes()),
                attr(NL80211_ATTR_WIPHY_FREQ, &[1, 2]),
            ],
        );
        let err = parse_interface(parse_messages(&msg).unwrap()[0].payload).unwrap_err();
        assert!(err.message.contains("NL80211_ATTR_WIPHY_FREQ"), "{err}");
    }

    #[test]
    fn reads_the_error_code_of_an_nlmsg_error() {
        // -ENOENT (2) for an unknown family, followed by the request's header.
        let mut b = Vec::new();
        b.extend_from_slice(&36u32.to_ne_bytes());
        b.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        b.extend_from_slice(&0u16.to_ne_bytes());
        b.extend_from_slice(&1u32.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&(-2i32).to_ne_bytes());
        b.extend_from_slice(&build_get_family_request(1)[..16]);
        let msgs = parse_messages(&b).unwrap();
        assert_eq!(msgs[0].msg_type, NLMSG_ERROR);
        assert_eq!(parse_error_code(&msgs[0]), Ok(-2));
    }

    #[test]
    fn formats_ssids_like_iw() {
        assert_eq!(format_ssid(b"HomeNet"), "HomeNet");
        assert_eq!(format_ssid("Café 5G".as_bytes()), "Café 5G");
        assert_eq!(format_ssid(b"a\x00b\xff"), "a\\x00b\\xff");
        assert_eq!(format_ssid(b""), "");
    }
}
