//! Host info for registration (SPEC §3): [`read_host_info`] and
//! [`detect_hostname`].
//!
//! Host info is descriptive, not a metric: each piece is best effort, and a
//! piece that cannot be read is an empty string (or 0) here rather than a
//! failed registration. The platform parts are the `platform` modules below,
//! chosen by `#[cfg]` on their `mod` lines.

use spectra_protocol::HostInfo;

use super::system::map_arch_to_uname;
use super::HostRoots;

/// Static facts about this host. `hostname` comes from the config
/// (`SPECTRA_HOSTNAME` / `HOSTNAME` / [`detect_hostname`]).
pub fn read_host_info(roots: &HostRoots, hostname: &str) -> HostInfo {
    let mut info = platform::read_host_info(roots);
    info.hostname = hostname.to_owned();
    info.os = std::env::consts::OS.to_owned();
    info.arch = map_arch_to_uname(std::env::consts::ARCH).to_owned();
    info.agent_version = env!("CARGO_PKG_VERSION").to_owned();
    if info.cpu_cores == 0 {
        // Respects CPU affinity and cgroup quotas: a lower bound, better
        // than nothing.
        info.cpu_cores = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(0);
    }
    info
}

/// The kernel's hostname. Overrides (`SPECTRA_HOSTNAME`, `HOSTNAME`) are
/// the config's business, not this function's.
pub fn detect_hostname() -> String {
    platform::detect_hostname()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            tracing::warn!("could not read the hostname; using \"localhost\"");
            "localhost".to_owned()
        })
}

#[cfg(target_os = "linux")]
mod platform {
    use std::ffi::CStr;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use spectra_protocol::HostInfo;

    use crate::collectors::cpu::parse_proc_stat;
    use crate::collectors::memory::parse_meminfo;
    use crate::collectors::system::{parse_cpuinfo, read_kernel_release, read_os_release};
    use crate::collectors::HostRoots;

    pub(super) fn read_host_info(roots: &HostRoots) -> HostInfo {
        let read = |rel: &str| std::fs::read_to_string(roots.procfs.join(rel)).ok();
        let os = read_os_release(roots);
        let stat = read("stat").and_then(|t| parse_proc_stat(&t).ok());
        let cpuinfo = read("cpuinfo").map(|t| parse_cpuinfo(&t));
        // Online CPUs: the cpuN lines of /proc/stat (not affinity-limited
        // like available_parallelism), else cpuinfo's processor entries.
        let cpu_cores = stat
            .as_ref()
            .map(|s| s.cores.len() as u32)
            .filter(|n| *n > 0)
            .or_else(|| cpuinfo.as_ref().map(|c| c.processors))
            .unwrap_or(0);
        HostInfo {
            platform: os.id.unwrap_or_default(),
            platform_ver: os.version_id.unwrap_or_default(),
            kernel: read_kernel_release(roots).unwrap_or_default(),
            cpu_model: cpuinfo.and_then(|c| c.model).unwrap_or_default(),
            cpu_cores,
            ram_total: read("meminfo")
                .and_then(|t| parse_meminfo(&t).ok())
                .map(|m| m.mem_total)
                .unwrap_or(0),
            boot_time: stat.and_then(|s| s.btime).unwrap_or(0),
            ips: list_ip_addresses(),
            ..HostInfo::default()
        }
    }

    pub(super) fn detect_hostname() -> Option<String> {
        // The UTS namespace of this process, whatever procfs root is
        // configured: the hostname is the agent's own, like `hostname`.
        let text = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
        Some(text.trim().to_owned())
    }

    /// Non-loopback, non-link-local addresses of the interfaces that are up,
    /// via getifaddrs(3): simpler and more exact than reconstructing them
    /// from `/proc/net/fib_trie`. Link-local IPv6 (fe80::/10) is left out:
    /// every interface has one and it is useless from another network.
    fn list_ip_addresses() -> Vec<String> {
        let mut ips = Vec::new();
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: `head` is a valid out-pointer; on success getifaddrs stores
        // a list that we free exactly once with freeifaddrs below.
        if unsafe { libc::getifaddrs(&mut head) } != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "getifaddrs failed");
            return ips;
        }
        let mut cursor = head;
        while !cursor.is_null() {
            // SAFETY: `cursor` is a non-null node of the list getifaddrs
            // built, alive until freeifaddrs.
            let ifa = unsafe { &*cursor };
            cursor = ifa.ifa_next;
            let up = ifa.ifa_flags & libc::IFF_UP as u32 != 0;
            if !up || ifa.ifa_addr.is_null() {
                continue;
            }
            // SAFETY: ifa_addr is non-null and points to a sockaddr whose
            // family says which concrete struct it is.
            let addr = unsafe { sockaddr_to_ip(ifa.ifa_addr) };
            let Some(addr) = addr else { continue };
            if addr.is_loopback() || is_ipv6_link_local(&addr) {
                continue;
            }
            let text = addr.to_string();
            if !ips.contains(&text) {
                ips.push(text);
            }
            // Interface names are not reported; kept for debugging.
            if !ifa.ifa_name.is_null() {
                // SAFETY: ifa_name is a NUL-terminated string owned by the list.
                let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
                tracing::trace!(interface = %name.to_string_lossy(), address = %addr, "host address");
            }
        }
        // SAFETY: `head` came from a successful getifaddrs and is freed once.
        unsafe { libc::freeifaddrs(head) };
        ips
    }

    /// # Safety
    /// `sa` must point to a valid `sockaddr` of the length its family implies.
    unsafe fn sockaddr_to_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
        // SAFETY: the caller guarantees `sa` is valid; the family field
        // selects which larger struct it is, read unaligned to be safe.
        unsafe {
            match i32::from((*sa).sa_family) {
                libc::AF_INET => {
                    let sin = std::ptr::read_unaligned(sa.cast::<libc::sockaddr_in>());
                    Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        sin.sin_addr.s_addr,
                    ))))
                }
                libc::AF_INET6 => {
                    let sin6 = std::ptr::read_unaligned(sa.cast::<libc::sockaddr_in6>());
                    Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
                }
                _ => None,
            }
        }
    }

    fn is_ipv6_link_local(addr: &IpAddr) -> bool {
        matches!(addr, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
    }
}

#[cfg(windows)]
mod platform {
    use spectra_protocol::HostInfo;

    use crate::collectors::memory::read_memory_status;
    use crate::collectors::system::read_uptime_secs;
    use crate::collectors::HostRoots;

    pub(super) fn read_host_info(_roots: &HostRoots) -> HostInfo {
        let uptime = read_uptime_secs() as i64;
        HostInfo {
            platform: "windows".to_owned(),
            // Edition and build need RtlGetVersion / the registry: later.
            platform_ver: String::new(),
            kernel: String::new(),
            cpu_model: std::env::var("PROCESSOR_IDENTIFIER").unwrap_or_default(),
            cpu_cores: 0,
            ram_total: read_memory_status().map(|s| s.ullTotalPhys).unwrap_or(0),
            boot_time: chrono::Utc::now().timestamp() - uptime,
            // GetAdaptersAddresses comes with the network collector.
            ips: Vec::new(),
            ..HostInfo::default()
        }
    }

    pub(super) fn detect_hostname() -> Option<String> {
        std::env::var("COMPUTERNAME").ok()
    }
}

#[cfg(not(any(target_os = "linux", windows)))]
mod platform {
    use spectra_protocol::HostInfo;

    use crate::collectors::HostRoots;

    pub(super) fn read_host_info(_roots: &HostRoots) -> HostInfo {
        HostInfo::default()
    }

    pub(super) fn detect_hostname() -> Option<String> {
        std::env::var("HOSTNAME").ok()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reads_host_info_from_raspberry_pi_fixture_tree() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/linux/raspberrypi4-aarch64");
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path().join("proc");
        let root = dir.path().join("root");
        std::fs::create_dir_all(proc.join("sys/kernel")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        for f in ["cpuinfo", "meminfo"] {
            std::fs::copy(fixtures.join(f), proc.join(f)).unwrap();
        }
        std::fs::copy(fixtures.join("stat.t0"), proc.join("stat")).unwrap();
        std::fs::copy(
            fixtures.join("osrelease"),
            proc.join("sys/kernel/osrelease"),
        )
        .unwrap();
        std::fs::copy(fixtures.join("os-release"), root.join("etc/os-release")).unwrap();
        let roots = HostRoots {
            procfs: proc,
            sysfs: dir.path().join("sys"),
            rootfs: root,
        };
        let info = read_host_info(&roots, "pi-kitchen");
        assert_eq!(info.hostname, "pi-kitchen");
        assert_eq!(info.os, "linux");
        assert_eq!(info.platform, "debian");
        assert_eq!(info.platform_ver, "11");
        assert_eq!(info.kernel, "5.15.84-v8+");
        assert_eq!(info.cpu_model, "Raspberry Pi 4 Model B Rev 1.4");
        assert_eq!(info.cpu_cores, 4);
        assert_eq!(info.ram_total, 3_885_396 * 1024);
        assert_eq!(info.boot_time, 1_700_000_000);
        assert_eq!(info.agent_version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn missing_files_give_empty_strings_not_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let roots = HostRoots {
            procfs: dir.path().join("proc"),
            sysfs: dir.path().join("sys"),
            rootfs: dir.path().join("root"),
        };
        let info = read_host_info(&roots, "h");
        assert_eq!(info.platform, "");
        assert_eq!(info.kernel, "");
        assert_eq!(info.ram_total, 0);
        assert!(info.cpu_cores >= 1, "falls back to available_parallelism");
    }

    #[test]
    fn live_host_ips_exclude_loopback() {
        let info = read_host_info(&HostRoots::default(), "h");
        for ip in &info.ips {
            let addr: std::net::IpAddr = ip.parse().unwrap();
            assert!(!addr.is_loopback(), "{ip}");
        }
    }

    #[test]
    fn detects_the_kernel_hostname() {
        let expected = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(detect_hostname(), expected.trim());
    }
}
