//! The Linux socket calls socket2 does not wrap: `recvmsg` with its
//! control messages (the TTL / hop limit of a reply, the extended error of
//! an ICMP message queued by `IP_RECVERR`), `poll` over several sockets,
//! and integer socket options. Every `unsafe` block of the diagnostics is
//! here.
//!
//! References: ip(7) (`IP_RECVERR`, `IP_RECVTTL`, `MSG_ERRQUEUE`,
//! `sock_extended_err`), ipv6(7) (`IPV6_RECVERR`, `IPV6_RECVHOPLIMIT`),
//! cmsg(3), poll(2).

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::Socket;

/// An ICMP error (or a local error) the kernel queued for a socket with
/// `IP_RECVERR` / `IPV6_RECVERR` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedError {
    /// `SO_EE_ORIGIN_*`: local, ICMP or ICMPv6.
    pub origin: u8,
    /// The errno the error maps to (`EHOSTUNREACH`, `ECONNREFUSED`...).
    pub errno: u32,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// The router or host that sent the ICMP message (`SO_EE_OFFENDER`).
    pub offender: Option<IpAddr>,
}

impl QueuedError {
    /// Whether the error came from an ICMP(v6) message (rather than from
    /// this host's own stack).
    pub fn is_icmp(&self) -> bool {
        self.origin == libc::SO_EE_ORIGIN_ICMP || self.origin == libc::SO_EE_ORIGIN_ICMP6
    }

    /// The errno as text ("No route to host").
    pub fn errno_text(&self) -> String {
        super::error_text(&io::Error::from_raw_os_error(self.errno as i32))
    }
}

/// One message read with [`recv_msg`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Bytes written into the buffer.
    pub len: usize,
    /// For a normal read, the sender; for an error-queue read, the
    /// destination of the packet the error is about (with its port).
    pub address: Option<SocketAddr>,
    /// `IP_TTL` / `IPV6_HOPLIMIT` control message.
    pub ttl: Option<u8>,
    /// `IP_RECVERR` / `IPV6_RECVERR` control message.
    pub error: Option<QueuedError>,
}

/// Sets an integer socket option (those socket2 has no setter for).
pub fn set_int_option(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` lives across the call and its size is passed along.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Turns on the extended error queue (`IP_RECVERR` or `IPV6_RECVERR`).
pub fn enable_error_queue(socket: &Socket, v6: bool) -> io::Result<()> {
    if v6 {
        set_int_option(socket, libc::SOL_IPV6, libc::IPV6_RECVERR, 1)
    } else {
        set_int_option(socket, libc::SOL_IP, libc::IP_RECVERR, 1)
    }
}

/// Asks for the TTL / hop limit of received packets as a control message.
pub fn enable_receive_ttl(socket: &Socket, v6: bool) -> io::Result<()> {
    if v6 {
        socket.set_recv_hoplimit_v6(true)
    } else {
        set_int_option(socket, libc::SOL_IP, libc::IP_RECVTTL, 1)
    }
}

/// Reads one message without blocking (`MSG_DONTWAIT`), from the error
/// queue when `error_queue` (`MSG_ERRQUEUE`). `WouldBlock` when none is
/// waiting.
pub fn recv_msg(socket: &Socket, buf: &mut [u8], error_queue: bool) -> io::Result<Received> {
    let fd = socket.as_raw_fd();
    let mut name = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    // u64 words keep the buffer aligned for `cmsghdr`; 512 bytes hold the
    // few control messages asked for (an extended error with its offender
    // address is under 64).
    let mut control = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = name.as_mut_ptr().cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 64]>() as _;
    let mut flags = libc::MSG_DONTWAIT;
    if error_queue {
        flags |= libc::MSG_ERRQUEUE;
    }
    // SAFETY: every pointer in `msg` refers to a live local buffer whose
    // length is the one given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel wrote `msg_namelen` bytes of a socket address
    // into `name` (zero-filled beyond, so reading the family is defined).
    let address = unsafe { socket_address(name.as_ptr().cast(), msg.msg_namelen as usize) };
    let mut received = Received {
        len: n as usize,
        address,
        ttl: None,
        error: None,
    };
    // SAFETY: `msg` is the header recvmsg filled in; CMSG_FIRSTHDR and
    // CMSG_NXTHDR stay within `msg_controllen`, and each cmsg's data is
    // read only when `cmsg_len` says it is long enough.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let header = std::ptr::read_unaligned(cmsg);
            let data = libc::CMSG_DATA(cmsg);
            let data_len = (header.cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
            match (header.cmsg_level, header.cmsg_type) {
                (libc::SOL_IP, libc::IP_TTL) | (libc::SOL_IPV6, libc::IPV6_HOPLIMIT)
                    if data_len >= size_of::<libc::c_int>() =>
                {
                    let ttl = std::ptr::read_unaligned(data.cast::<libc::c_int>());
                    received.ttl = u8::try_from(ttl).ok();
                }
                (libc::SOL_IP, libc::IP_RECVERR) | (libc::SOL_IPV6, libc::IPV6_RECVERR)
                    if data_len >= size_of::<libc::sock_extended_err>() =>
                {
                    let ee = std::ptr::read_unaligned(data.cast::<libc::sock_extended_err>());
                    // SO_EE_OFFENDER: the sender's address follows the struct.
                    let offender_len = data_len - size_of::<libc::sock_extended_err>();
                    let offender = socket_address(
                        data.add(size_of::<libc::sock_extended_err>()).cast(),
                        offender_len,
                    )
                    .map(|a| a.ip());
                    received.error = Some(QueuedError {
                        origin: ee.ee_origin,
                        errno: ee.ee_errno,
                        icmp_type: ee.ee_type,
                        icmp_code: ee.ee_code,
                        offender,
                    });
                }
                _ => {}
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(received)
}

/// Reads a `sockaddr_in` / `sockaddr_in6` of `len` bytes at `ptr`; `None`
/// for another family, a short buffer, or `AF_UNSPEC` (an offender the
/// kernel did not know).
///
/// # Safety
/// `ptr` must be readable for `len` bytes.
unsafe fn socket_address(ptr: *const u8, len: usize) -> Option<SocketAddr> {
    if len < size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY (whole body): each read is within `len`, checked first, and
    // unaligned reads make no assumption about the buffer's alignment.
    let family = std::ptr::read_unaligned(ptr.cast::<libc::sa_family_t>());
    match libc::c_int::from(family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            let sin = std::ptr::read_unaligned(ptr.cast::<libc::sockaddr_in>());
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            let sin6 = std::ptr::read_unaligned(ptr.cast::<libc::sockaddr_in6>());
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// What [`poll_sockets`] found on one socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readiness {
    /// A normal message waits.
    pub readable: bool,
    /// The error queue holds something (or a pending socket error).
    pub error: bool,
}

/// Waits up to `timeout` for any of `sockets` to have data or a queued
/// error. An interrupted wait (`EINTR`) returns nothing ready: callers loop
/// on their own deadline anyway.
pub fn poll_sockets(sockets: &[&Socket], timeout: Duration) -> io::Result<Vec<Readiness>> {
    let mut fds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // Round up so a 0.4 ms remainder does not turn into a busy loop.
    let millis = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a live array of `fds.len()` pollfd structs.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![Readiness::default(); fds.len()]);
        }
        return Err(e);
    }
    Ok(fds
        .iter()
        .map(|p| Readiness {
            readable: p.revents & libc::POLLIN != 0,
            error: p.revents & libc::POLLERR != 0,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Protocol, SockAddr, Type};

    #[test]
    fn reads_an_icmp_port_unreachable_from_the_udp_error_queue() {
        // A UDP datagram to a closed loopback port comes back as an ICMP
        // port unreachable, queued with the offender's address.
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = closed.local_addr().unwrap();
        drop(closed);
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        enable_error_queue(&s, false).unwrap();
        s.send_to(b"probe", &SockAddr::from(target)).unwrap();
        let ready = poll_sockets(&[&s], Duration::from_secs(5)).unwrap();
        assert!(ready[0].error, "{ready:?}");
        let mut buf = [0u8; 64];
        let r = recv_msg(&s, &mut buf, true).unwrap();
        assert_eq!(&buf[..r.len], b"probe");
        assert_eq!(r.address, Some(target));
        let e = r.error.unwrap();
        assert!(e.is_icmp());
        assert_eq!((e.icmp_type, e.icmp_code), (3, 3));
        assert_eq!(e.offender, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(e.errno, libc::ECONNREFUSED as u32);
        // The queue is empty now.
        let again = recv_msg(&s, &mut buf, true).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_normal_read_carries_the_ttl_and_sender() {
        let rx = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        rx.bind(&SockAddr::from("[::1]:0".parse::<SocketAddr>().unwrap()))
            .unwrap();
        enable_receive_ttl(&rx, true).unwrap();
        let to = rx.local_addr().unwrap().as_socket().unwrap();
        let tx = std::net::UdpSocket::bind("[::1]:0").unwrap();
        tx.send_to(b"hi", to).unwrap();
        poll_sockets(&[&rx], Duration::from_secs(5)).unwrap();
        let mut buf = [0u8; 16];
        let r = recv_msg(&rx, &mut buf, false).unwrap();
        assert_eq!(&buf[..r.len], b"hi");
        assert_eq!(r.address, Some(tx.local_addr().unwrap()));
        // Unicast hop limit of a Linux host (net.ipv6.conf.*.hop_limit).
        assert!(r.ttl.is_some_and(|t| t > 0), "{r:?}");
        assert!(r.error.is_none());
    }
}
