//! The generic netlink socket that carries nl80211 requests (FFI: the only
//! `unsafe` of the wifi collector). Bytes in and out only; what they mean is
//! in `nl80211.rs`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::nl80211::{
    build_get_family_request, build_get_interfaces_request, build_get_station_request,
    parse_error_code, parse_family_id, parse_interface, parse_messages, parse_station,
    Nl80211Interface, Nl80211Link, StationInfo, NL80211_IFTYPE_STATION, NLMSG_DONE, NLMSG_ERROR,
};
use crate::collectors::CollectError;

/// A reply the kernel does not send within this is an error, not a hang.
const RECV_TIMEOUT: Duration = Duration::from_secs(2);
/// Big enough for any single datagram of an interface or station dump
/// (the kernel sizes dump skbs to at most 32 KiB).
const RECV_BUFFER: usize = 32 * 1024;

/// Why nl80211 cannot be asked on this host.
#[derive(Debug, thiserror::Error)]
pub enum Nl80211Error {
    /// The kernel has no `nl80211` generic netlink family: cfg80211 is not
    /// built or not loaded (no WiFi hardware, or a VM).
    #[error("the kernel has no nl80211 family (cfg80211 not loaded or not built)")]
    NoFamily,
    #[error("generic netlink socket: {0}")]
    Socket(io::Error),
    /// An `NLMSG_ERROR` reply.
    #[error("the kernel answered errno {errno} ({})", io::Error::from_raw_os_error(*errno))]
    Kernel { errno: i32 },
    #[error("{0}")]
    Protocol(String),
}

impl From<Nl80211Error> for CollectError {
    fn from(e: Nl80211Error) -> Self {
        CollectError::Other(format!("nl80211: {e}"))
    }
}

/// A generic netlink socket with the `nl80211` family id resolved.
pub struct Nl80211Socket {
    fd: OwnedFd,
    family: u16,
    seq: u32,
    buf: Vec<u8>,
}

impl Nl80211Socket {
    /// Opens a `NETLINK_GENERIC` socket and resolves `nl80211`.
    pub fn open() -> Result<Self, Nl80211Error> {
        // SAFETY: plain socket(2) call; the returned fd is checked and then
        // owned by OwnedFd, which closes it.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_GENERIC,
            )
        };
        if raw < 0 {
            return Err(Nl80211Error::Socket(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let timeout = libc::timeval {
            // `as _`: `time_t` is 32 or 64 bits by libc (musl warns on the name).
            tv_sec: RECV_TIMEOUT.as_secs() as _,
            tv_usec: 0,
        };
        // SAFETY: valid fd; the option value is a timeval of the size given.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::addr_of!(timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(Nl80211Error::Socket(io::Error::last_os_error()));
        }
        let mut socket = Self {
            fd,
            family: 0,
            seq: 0,
            buf: vec![0; RECV_BUFFER],
        };
        socket.family = socket.resolve_family()?;
        Ok(socket)
    }

    pub fn family_id(&self) -> u16 {
        self.family
    }

    fn resolve_family(&mut self) -> Result<u16, Nl80211Error> {
        let seq = self.next_seq();
        self.send(&build_get_family_request(seq))?;
        let mut family = None;
        self.receive(seq, false, |payload| {
            family = Some(parse_family_id(payload)?);
            Ok(())
        })
        .map_err(|e| match e {
            // ENOENT: the controller knows no family of that name.
            Nl80211Error::Kernel {
                errno: libc::ENOENT,
            } => Nl80211Error::NoFamily,
            other => other,
        })?;
        family.ok_or_else(|| Nl80211Error::Protocol("no CTRL_CMD_NEWFAMILY reply".into()))
    }

    /// Every wireless interface, with the AP station of those that are
    /// associated clients.
    pub fn read_links(&mut self) -> Result<Vec<Nl80211Link>, Nl80211Error> {
        let seq = self.next_seq();
        self.send(&build_get_interfaces_request(self.family, seq))?;
        let mut interfaces: Vec<Nl80211Interface> = Vec::new();
        self.receive(seq, true, |payload| {
            interfaces.push(parse_interface(payload)?);
            Ok(())
        })?;
        let mut links = Vec::with_capacity(interfaces.len());
        for interface in interfaces {
            let station =
                if interface.iftype == Some(NL80211_IFTYPE_STATION) && interface.ssid.is_some() {
                    self.read_station(interface.ifindex)?
                } else {
                    None
                };
            links.push(Nl80211Link { interface, station });
        }
        Ok(links)
    }

    fn read_station(&mut self, ifindex: u32) -> Result<Option<StationInfo>, Nl80211Error> {
        let seq = self.next_seq();
        self.send(&build_get_station_request(self.family, seq, ifindex))?;
        let mut station = None;
        self.receive(seq, true, |payload| {
            // A client has one station, its AP; keep the first.
            if station.is_none() {
                station = Some(parse_station(payload)?);
            }
            Ok(())
        })?;
        Ok(station)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, request: &[u8]) -> Result<(), Nl80211Error> {
        // SAFETY: an all-zero sockaddr_nl is valid; we set the family.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: valid fd, buffer and address of the sizes given.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                request.as_ptr().cast(),
                request.len(),
                0,
                std::ptr::addr_of!(kernel).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(Nl80211Error::Socket(io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Reads the replies to `seq`, handing each data message's payload to
    /// `each`, until the single reply (or, for a dump, `NLMSG_DONE`).
    /// Messages of other sequence numbers (a late reply to a request that
    /// timed out) are skipped.
    fn receive(
        &mut self,
        seq: u32,
        dump: bool,
        mut each: impl FnMut(&[u8]) -> Result<(), crate::collectors::ParseError>,
    ) -> Result<(), Nl80211Error> {
        loop {
            // SAFETY: valid fd; the buffer is ours and of the length given.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Nl80211Error::Socket(e));
            }
            let datagram = &self.buf[..n as usize];
            let messages =
                parse_messages(datagram).map_err(|e| Nl80211Error::Protocol(e.to_string()))?;
            for msg in messages {
                if msg.seq != seq {
                    continue;
                }
                match msg.msg_type {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let code = parse_error_code(&msg)
                            .map_err(|e| Nl80211Error::Protocol(e.to_string()))?;
                        if code == 0 {
                            return Ok(());
                        }
                        return Err(Nl80211Error::Kernel {
                            errno: code.saturating_neg(),
                        });
                    }
                    _ => {
                        each(msg.payload).map_err(|e| Nl80211Error::Protocol(e.to_string()))?;
                        if !dump {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}
