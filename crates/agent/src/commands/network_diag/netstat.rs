//! `netstat`: the TCP and UDP sockets of `<procfs>/net/{tcp,tcp6,udp,udp6}`
//! with their owning process and user.
//!
//! The tables are read from the agent's own network namespace
//! (`<procfs>/net` is `self/net`), except when the agent runs with another
//! procfs (`SPECTRA_PROCFS=/host/proc`, an agent in a container): then
//! from `<procfs>/1/net`, the host init's namespace, so the host's sockets
//! are listed rather than the container's ([`net_dir`]). Owners come from the `socket:[inode]`
//! links of `<procfs>/<pid>/fd/*`; processes whose `fd` directory cannot be
//! read (another user's, without root) or that exit meanwhile are skipped,
//! and their sockets have no pid. User names come from `<rootfs>/etc/passwd`,
//! else the numeric uid.
//!
//! The parsers are pure functions over the files' text; the format is
//! `tcp4_seq_show()` / `udp4_format_sock()` in the kernel (net/ipv4/tcp_ipv4.c,
//! net/ipv4/udp.c) and their IPv6 twins.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use spectra_protocol::NetstatEntry;

use crate::collectors::process_list::parse_passwd;
use crate::collectors::{HostRoots, ParseError};

/// At most this many entries are returned; the rest are counted.
pub const MAX_NETSTAT_ENTRIES: usize = 5_000;

/// Which `/proc/net` table a socket came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SocketTable {
    Tcp,
    Tcp6,
    Udp,
    Udp6,
}

impl SocketTable {
    pub const ALL: [SocketTable; 4] = [Self::Tcp, Self::Tcp6, Self::Udp, Self::Udp6];

    /// The file name under `<procfs>/net`, which is also the `proto`
    /// netstat(8) prints.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tcp6 => "tcp6",
            Self::Udp => "udp",
            Self::Udp6 => "udp6",
        }
    }

    fn is_v6(self) -> bool {
        matches!(self, Self::Tcp6 | Self::Udp6)
    }

    fn is_tcp(self) -> bool {
        matches!(self, Self::Tcp | Self::Tcp6)
    }
}

/// One line of a `/proc/net/{tcp,udp}[6]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketLine {
    pub table: SocketTable,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The kernel's `TCP_*` state number (UDP uses the same numbers).
    pub state: u8,
    pub uid: u32,
    /// 0 for sockets without one (TIME_WAIT, NEW_SYN_RECV).
    pub inode: u64,
}

/// Parses one table, e.g. `/proc/net/tcp`:
///
/// ```text
///   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
///    0: 0100007F:6448 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 6963 1 ...
/// ```
pub fn parse_socket_table(text: &str, table: SocketTable) -> Result<Vec<SocketLine>, ParseError> {
    let what = "/proc/net socket table";
    let mut lines = text.lines();
    match lines.next() {
        Some(header)
            if header.trim_start().starts_with("sl") && header.contains("local_address") => {}
        other => {
            return Err(ParseError::new(
                what,
                format!(
                    "{}: expected the `sl local_address ...` header, found {other:?}",
                    table.name()
                ),
            ))
        }
    }
    let mut sockets = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| {
            ParseError::new(
                what,
                format!("{}: {why} in line `{}`", table.name(), line.trim()),
            )
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl, local, remote, st, tx:rx, tr:when, retrnsmt, uid, timeout, inode
        if fields.len() < 10 {
            return Err(bad("fewer than 10 columns"));
        }
        let local = parse_hex_socket_address(fields[1], table.is_v6()).map_err(|e| bad(&e))?;
        let remote = parse_hex_socket_address(fields[2], table.is_v6()).map_err(|e| bad(&e))?;
        let state = u8::from_str_radix(fields[3], 16).map_err(|_| bad("bad state"))?;
        let uid = fields[7].parse::<u32>().map_err(|_| bad("bad uid"))?;
        let inode = fields[9].parse::<u64>().map_err(|_| bad("bad inode"))?;
        sockets.push(SocketLine {
            table,
            local,
            remote,
            state,
            uid,
            inode,
        });
    }
    Ok(sockets)
}

/// `0100007F:1F90` (IPv4) or `00000000000000000000000001000000:1F90`
/// (IPv6) to an address.
///
/// The kernel prints the address as 32-bit words (`%08X`) in host byte
/// order: one word for IPv4, four for IPv6 (`s6_addr32[0..4]`), each
/// holding bytes that are in network order in memory. So each word's
/// native-endian bytes are the address bytes, in order. The port is
/// printed already converted to host order (`ntohs`).
pub fn parse_hex_socket_address(s: &str, v6: bool) -> Result<SocketAddr, String> {
    let (addr, port) = s
        .split_once(':')
        .ok_or_else(|| format!("address `{s}` has no `:port`"))?;
    let port = u16::from_str_radix(port, 16).map_err(|_| format!("bad port in `{s}`"))?;
    let words = if v6 { 4 } else { 1 };
    if addr.len() != words * 8 || !addr.is_ascii() {
        return Err(format!("address `{addr}` is not {} hex digits", words * 8));
    }
    let mut bytes = Vec::with_capacity(words * 4);
    for i in 0..words {
        let word = u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16)
            .map_err(|_| format!("address `{addr}` is not hexadecimal"))?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match <[u8; 16]>::try_from(bytes.as_slice()) {
        Ok(b16) => IpAddr::V6(Ipv6Addr::from(b16)),
        Err(_) => {
            let b4: [u8; 4] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| format!("address `{addr}` has a bad length"))?;
            IpAddr::V4(Ipv4Addr::from(b4))
        }
    };
    Ok(SocketAddr::new(ip, port))
}

/// A socket state as the tools print it: TCP as netstat(8) does
/// (`ESTABLISHED`, `TIME_WAIT`...), UDP as ss(8) does (`UNCONN` for an
/// unconnected socket, `ESTAB` for a connected one). States from
/// include/net/tcp_states.h.
pub fn state_name(table: SocketTable, state: u8) -> String {
    let name = if table.is_tcp() {
        match state {
            0x01 => "ESTABLISHED",
            0x02 => "SYN_SENT",
            0x03 => "SYN_RECV",
            0x04 => "FIN_WAIT1",
            0x05 => "FIN_WAIT2",
            0x06 => "TIME_WAIT",
            0x07 => "CLOSE",
            0x08 => "CLOSE_WAIT",
            0x09 => "LAST_ACK",
            0x0A => "LISTEN",
            0x0B => "CLOSING",
            0x0C => "NEW_SYN_RECV",
            _ => "",
        }
    } else {
        match state {
            0x01 => "ESTAB",
            0x07 => "UNCONN",
            _ => "",
        }
    };
    if name.is_empty() {
        format!("UNKNOWN({state:#04x})")
    } else {
        name.to_owned()
    }
}

/// The inode of an `fd` link target `socket:[12345]`.
pub fn parse_socket_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// A process that owns sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketOwner {
    pub pid: u32,
    pub name: String,
}

/// Sockets and owners joined into entries: listening and unconnected
/// sockets first (what a user looks for), then the rest, each group in
/// table order; at most `limit` entries. Also returns how many there were.
pub fn build_entries(
    sockets: &[SocketLine],
    owners: &HashMap<u64, SocketOwner>,
    users: &HashMap<u32, String>,
    limit: usize,
) -> (Vec<NetstatEntry>, usize) {
    let mut order: Vec<&SocketLine> = sockets.iter().collect();
    // TCP_LISTEN (0x0A) and, for UDP, TCP_CLOSE (0x07) = UNCONN.
    let listening = |s: &SocketLine| {
        if s.table.is_tcp() {
            s.state == 0x0A
        } else {
            s.state == 0x07
        }
    };
    order.sort_by_key(|s| (!listening(s), s.table));
    let entries = order
        .into_iter()
        .take(limit)
        .map(|s| {
            let owner = (s.inode != 0).then(|| owners.get(&s.inode)).flatten();
            NetstatEntry {
                proto: s.table.name().to_owned(),
                local_addr: s.local.ip().to_string(),
                local_port: s.local.port(),
                remote_addr: s.remote.ip().to_string(),
                remote_port: s.remote.port(),
                state: state_name(s.table, s.state),
                user: users
                    .get(&s.uid)
                    .cloned()
                    .unwrap_or_else(|| s.uid.to_string()),
                pid: owner.map(|o| o.pid),
                process_name: owner.map(|o| o.name.clone()),
            }
        })
        .collect();
    (entries, sockets.len())
}

/// What [`read_netstat`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetstatReport {
    pub entries: Vec<NetstatEntry>,
    /// Sockets in the tables (more than `entries` when capped).
    pub total: usize,
    /// Processes whose `fd` directory could not be read.
    pub unreadable_processes: usize,
    /// Tables that could not be read (a kernel without IPv6...), with why.
    pub missing_tables: Vec<String>,
}

/// Where the socket tables are: `<procfs>/net` for the usual `/proc`,
/// `<procfs>/1/net` for a host procfs mounted elsewhere when readable.
pub fn net_dir(procfs: &Path) -> std::path::PathBuf {
    if procfs != Path::new("/proc") {
        let host = procfs.join("1/net");
        if host.join("tcp").is_file() {
            return host;
        }
    }
    procfs.join("net")
}

/// Reads the four tables and the socket owners under `roots`.
pub fn read_netstat(roots: &HostRoots, limit: usize) -> Result<NetstatReport, String> {
    let mut sockets = Vec::new();
    let mut missing_tables = Vec::new();
    let net = net_dir(&roots.procfs);
    for table in SocketTable::ALL {
        let path = net.join(table.name());
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                sockets.extend(parse_socket_table(&text, table).map_err(|e| e.to_string())?)
            }
            // No IPv6 in this kernel: no tcp6/udp6; the others still count.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing_tables.push(format!("{}: {e}", path.display()))
            }
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        }
    }
    if missing_tables.len() == SocketTable::ALL.len() {
        return Err(format!(
            "no socket tables under {}: {}",
            net.display(),
            missing_tables.join("; ")
        ));
    }
    let (owners, unreadable_processes) = read_socket_owners(&roots.procfs);
    let users = std::fs::read_to_string(roots.rootfs.join("etc/passwd"))
        .map(|t| parse_passwd(&t))
        .unwrap_or_default();
    let (entries, total) = build_entries(&sockets, &owners, &users, limit);
    Ok(NetstatReport {
        entries,
        total,
        unreadable_processes,
        missing_tables,
    })
}

/// Maps socket inodes to the process holding them, from the `fd` links of
/// every `<procfs>/<pid>`; returns also how many processes were skipped
/// because their `fd` directory could not be read.
pub fn read_socket_owners(procfs: &Path) -> (HashMap<u64, SocketOwner>, usize) {
    let mut owners = HashMap::new();
    let mut unreadable = 0;
    let Ok(dir) = std::fs::read_dir(procfs) else {
        return (owners, 0);
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let fds = match std::fs::read_dir(entry.path().join("fd")) {
            Ok(fds) => fds,
            // Gone since the listing: not worth counting.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => {
                unreadable += 1;
                continue;
            }
        };
        let mut name = None;
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = target.to_str().and_then(parse_socket_link) else {
                continue;
            };
            let name = name.get_or_insert_with(|| {
                std::fs::read_to_string(entry.path().join("comm"))
                    .map(|c| c.trim_end_matches('\n').to_owned())
                    .unwrap_or_default()
            });
            // Shared sockets (forked servers): the lowest pid, stable
            // across runs, usually the parent.
            owners
                .entry(inode)
                .and_modify(|o: &mut SocketOwner| {
                    if pid < o.pid {
                        *o = SocketOwner {
                            pid,
                            name: name.clone(),
                        };
                    }
                })
                .or_insert_with(|| SocketOwner {
                    pid,
                    name: name.clone(),
                });
        }
    }
    (owners, unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/netstat");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    // The /proc encoding is host-endian: these fixtures come from an
    // x86_64 machine.
    #[cfg(target_endian = "little")]
    #[test]
    fn decodes_loopback_and_v4_mapped_ipv6_addresses() {
        assert_eq!(
            parse_hex_socket_address("00000000000000000000000001000000:1F90", true).unwrap(),
            sa("[::1]:8080")
        );
        assert_eq!(
            parse_hex_socket_address("0000000000000000FFFF00000100007F:0016", true).unwrap(),
            sa("[::ffff:127.0.0.1]:22")
        );
        assert_eq!(
            parse_hex_socket_address("B80D0120000000000000000001000000:01BB", true).unwrap(),
            sa("[2001:db8::1]:443")
        );
        assert_eq!(
            parse_hex_socket_address("0100007F:0035", false).unwrap(),
            sa("127.0.0.1:53")
        );
        assert_eq!(
            parse_hex_socket_address("0202000A:D431", false).unwrap(),
            sa("10.0.2.2:54321")
        );
    }

    #[test]
    fn rejects_malformed_addresses() {
        for (bad, v6) in [
            ("0100007F", false),
            ("0100007:0035", false),
            ("0100007G:0035", false),
            ("0100007F:XYZ", false),
            ("0100007F:0035", true),
            ("ÄÄ00007F:0035", false),
        ] {
            assert!(parse_hex_socket_address(bad, v6).is_err(), "{bad}");
        }
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_captured_tcp_table() {
        let sockets = parse_socket_table(&fixture("tcp"), SocketTable::Tcp).unwrap();
        assert_eq!(sockets.len(), 18);
        assert_eq!(
            sockets[0],
            SocketLine {
                table: SocketTable::Tcp,
                local: sa("127.0.0.1:25672"),
                remote: sa("0.0.0.0:0"),
                state: 0x0A,
                uid: 106,
                inode: 6963,
            }
        );
        assert_eq!(sockets[1].local, sa("0.0.0.0:2024"));
        assert_eq!(sockets.iter().filter(|s| s.state == 0x0A).count(), 10);
        assert_eq!(sockets.iter().filter(|s| s.state == 0x01).count(), 5);
        // TIME_WAIT sockets have no inode (and their timer column differs).
        let time_wait: Vec<_> = sockets.iter().filter(|s| s.state == 0x06).collect();
        assert_eq!(time_wait.len(), 3);
        assert!(time_wait.iter().all(|s| s.inode == 0));
        assert_eq!(time_wait[0].local, sa("127.0.0.1:60864"));
        assert_eq!(time_wait[0].remote, sa("127.0.0.1:4369"));
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_captured_tcp6_and_udp_tables() {
        let tcp6 = parse_socket_table(&fixture("tcp6"), SocketTable::Tcp6).unwrap();
        assert_eq!(tcp6.len(), 4);
        assert_eq!((tcp6[0].local, tcp6[0].state), (sa("[::1]:6379"), 0x0A));
        assert_eq!(tcp6[1].local, sa("[::]:48953"));
        // A dual-stack listener's connection that came in over IPv4.
        assert_eq!(tcp6[3].local, sa("[::ffff:127.0.0.1]:48953"));
        assert_eq!(tcp6[3].remote, sa("[::ffff:127.0.0.1]:46216"));
        assert_eq!(tcp6[3].state, 0x01);
        let udp = parse_socket_table(&fixture("udp"), SocketTable::Udp).unwrap();
        assert_eq!(udp.len(), 2);
        assert_eq!((udp[0].local, udp[0].state), (sa("127.0.0.1:54712"), 0x07));
        assert_eq!((udp[1].remote, udp[1].state), (sa("127.0.0.1:54712"), 0x01));
        assert_eq!(udp[1].inode, 41643);
        let udp6 = parse_socket_table(&fixture("udp6"), SocketTable::Udp6).unwrap();
        assert_eq!(udp6.len(), 1);
        assert_eq!(udp6[0].local, sa("[::1]:39164"));
    }

    #[test]
    fn header_only_is_no_sockets_and_garbage_is_an_error() {
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
        assert!(parse_socket_table(header, SocketTable::Tcp)
            .unwrap()
            .is_empty());
        let e = parse_socket_table("garbage\n", SocketTable::Udp).unwrap_err();
        assert!(e.to_string().contains("udp: expected"), "{e}");
        let short = format!("{header}   0: 0100007F:0035 00000000:0000 07\n");
        let e = parse_socket_table(&short, SocketTable::Udp).unwrap_err();
        assert!(e.to_string().contains("fewer than 10 columns"), "{e}");
    }

    #[test]
    fn names_states_as_netstat_and_ss_do() {
        assert_eq!(state_name(SocketTable::Tcp, 0x0A), "LISTEN");
        assert_eq!(state_name(SocketTable::Tcp6, 0x01), "ESTABLISHED");
        assert_eq!(state_name(SocketTable::Tcp, 0x06), "TIME_WAIT");
        assert_eq!(state_name(SocketTable::Udp, 0x07), "UNCONN");
        assert_eq!(state_name(SocketTable::Udp6, 0x01), "ESTAB");
        assert_eq!(state_name(SocketTable::Udp, 0x0A), "UNKNOWN(0x0a)");
    }

    #[test]
    fn reads_socket_links() {
        assert_eq!(parse_socket_link("socket:[6963]"), Some(6963));
        assert_eq!(parse_socket_link("pipe:[6963]"), None);
        assert_eq!(parse_socket_link("/dev/null"), None);
        assert_eq!(parse_socket_link("socket:[x]"), None);
    }

    #[test]
    fn joins_owners_and_users_listeners_first_and_caps() {
        let line = |table, state, uid, inode, port| SocketLine {
            table,
            local: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            remote: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
            state,
            uid,
            inode,
        };
        let sockets = vec![
            line(SocketTable::Tcp, 0x01, 1000, 11, 1),
            line(SocketTable::Udp, 0x07, 0, 12, 2),
            line(SocketTable::Tcp, 0x0A, 0, 13, 3),
            line(SocketTable::Tcp, 0x06, 0, 0, 4),
        ];
        let owners = HashMap::from([(
            13,
            SocketOwner {
                pid: 42,
                name: "sshd".into(),
            },
        )]);
        let users = HashMap::from([(0, "root".to_owned())]);
        let (entries, total) = build_entries(&sockets, &owners, &users, 3);
        assert_eq!(total, 4);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].local_port, 3);
        assert_eq!(entries[0].state, "LISTEN");
        assert_eq!(entries[0].pid, Some(42));
        assert_eq!(entries[0].process_name.as_deref(), Some("sshd"));
        assert_eq!(entries[0].user, "root");
        assert_eq!(entries[1].proto, "udp");
        assert_eq!(entries[1].pid, None);
        // Not in passwd: the numeric uid.
        assert_eq!(entries[2].user, "1000");
        assert_eq!(entries[2].state, "ESTABLISHED");
    }

    #[test]
    fn a_host_procfs_mounted_elsewhere_is_read_from_init_s_namespace() {
        assert_eq!(net_dir(Path::new("/proc")), Path::new("/proc/net"));
        let host = tempfile::tempdir().unwrap();
        // Without a readable 1/net, the procfs' own net.
        assert_eq!(net_dir(host.path()), host.path().join("net"));
        std::fs::create_dir_all(host.path().join("1/net")).unwrap();
        std::fs::write(host.path().join("1/net/tcp"), fixture("tcp")).unwrap();
        assert_eq!(net_dir(host.path()), host.path().join("1/net"));
    }
}
