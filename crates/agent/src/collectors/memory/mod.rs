//! `memory` collector: RAM and swap.
//!
//! - This file: [`parse_meminfo`] (pure) and [`compute_memory_metric`].
//! - `linux.rs`: [`MemoryCollector`] reading `<procfs>/meminfo`;
//!   `windows.rs`: `GlobalMemoryStatusEx`; `unsupported.rs`: the rest.
//!
//! Definitions follow `free` of procps-ng 4, so the numbers match what an
//! administrator sees with `free -b`:
//! - `ram_used = MemTotal - MemAvailable`;
//! - `ram_cached = Cached + SReclaimable` (free's "cache": page cache plus
//!   reclaimable slab), `ram_buffers = Buffers`, `ram_shared = Shmem`;
//! - kernels before 3.14 have no `MemAvailable`: it is estimated as
//!   `MemFree + Buffers + Cached` (what tools did before the kernel offered
//!   its own estimate), capped at `MemTotal`.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(any(target_os = "linux", windows)))]
mod unsupported;
#[cfg(windows)]
mod windows;

#[cfg(target_os = "linux")]
pub use linux::MemoryCollector;
#[cfg(not(any(target_os = "linux", windows)))]
pub use unsupported::MemoryCollector;
#[cfg(windows)]
pub(crate) use windows::read_memory_status;
#[cfg(windows)]
pub use windows::MemoryCollector;

use spectra_protocol::MemoryMetric;

use super::cpu::round_pct;
use super::ParseError;

/// The `/proc/meminfo` fields Spectra uses, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub mem_total: u64,
    pub mem_free: u64,
    /// `None` on kernels before 3.14.
    pub mem_available: Option<u64>,
    pub buffers: u64,
    pub cached: u64,
    /// `None` on kernels before 2.6.19.
    pub s_reclaimable: Option<u64>,
    /// `None` on kernels before 2.6.32.
    pub shmem: Option<u64>,
    pub swap_total: u64,
    pub swap_free: u64,
}

impl MemInfo {
    /// `MemAvailable`, or the pre-3.14 estimate (module docs).
    pub fn available_bytes(&self) -> u64 {
        match self.mem_available {
            Some(a) => a,
            None => self
                .mem_free
                .saturating_add(self.buffers)
                .saturating_add(self.cached)
                .min(self.mem_total),
        }
    }
}

/// Parses `/proc/meminfo`: `MemTotal:       24684084 kB` lines. Values are
/// in KiB despite the "kB" (proc(5)). `MemTotal` and `MemFree` must be
/// there; the swap lines are absent only on kernels built without swap
/// support, where 0 is the truth.
pub fn parse_meminfo(text: &str) -> Result<MemInfo, ParseError> {
    let mut info = MemInfo::default();
    let (mut has_total, mut has_free) = (false, false);
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let field = match key {
            "MemTotal" => {
                has_total = true;
                &mut info.mem_total
            }
            "MemFree" => {
                has_free = true;
                &mut info.mem_free
            }
            "Buffers" => &mut info.buffers,
            "Cached" => &mut info.cached,
            "SwapTotal" => &mut info.swap_total,
            "SwapFree" => &mut info.swap_free,
            "MemAvailable" => info.mem_available.insert(0),
            "SReclaimable" => info.s_reclaimable.insert(0),
            "Shmem" => info.shmem.insert(0),
            _ => continue,
        };
        *field = parse_kib_value(key, rest)?;
    }
    if !has_total || !has_free {
        return Err(ParseError::new(
            "/proc/meminfo",
            "MemTotal or MemFree line missing",
        ));
    }
    Ok(info)
}

/// `"       24684084 kB"` → bytes.
fn parse_kib_value(key: &str, rest: &str) -> Result<u64, ParseError> {
    let bad = || {
        ParseError::new(
            "/proc/meminfo",
            format!("bad {key} value {:?}", rest.trim()),
        )
    };
    let mut parts = rest.split_ascii_whitespace();
    let number: u64 = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    match parts.next() {
        Some("kB") => number.checked_mul(1024).ok_or_else(bad),
        // HugePages_* counts have no unit; none of the fields above do that.
        None => Ok(number),
        Some(_) => Err(bad()),
    }
}

/// The `memory` payload of one meminfo reading (definitions in the module
/// docs). Percentages are rounded to 2 decimals; with no swap configured,
/// `swap_pct` is 0 (nothing of nothing is used).
pub fn compute_memory_metric(info: &MemInfo) -> MemoryMetric {
    let available = info.available_bytes();
    let used = info.mem_total.saturating_sub(available);
    let swap_used = info.swap_total.saturating_sub(info.swap_free);
    let pct = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            round_pct(part as f64 * 100.0 / whole as f64)
        }
    };
    MemoryMetric {
        ram_total: info.mem_total,
        ram_used: used,
        ram_available: available,
        ram_used_pct: pct(used, info.mem_total),
        swap_total: info.swap_total,
        swap_used,
        swap_pct: pct(swap_used, info.swap_total),
        ram_free: Some(info.mem_free),
        ram_cached: Some(info.cached.saturating_add(info.s_reclaimable.unwrap_or(0))),
        ram_buffers: Some(info.buffers),
        ram_shared: info.shmem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::test_fixture as fixture;

    #[test]
    fn parses_meminfo_of_this_debian_vm() {
        let info = parse_meminfo(&fixture("linux/debian12-x86_64-docker-vm/meminfo")).unwrap();
        assert_eq!(info.mem_total, 24_684_084 * 1024);
        assert_eq!(info.mem_available, Some(24_042_972 * 1024));
        assert_eq!(info.s_reclaimable, Some(153_928 * 1024));
        assert_eq!(info.shmem, Some(69_524 * 1024));
        assert_eq!((info.swap_total, info.swap_free), (0, 0));
    }

    #[test]
    fn used_matches_free_b_of_procps_ng_4() {
        // free-b.txt was captured right after meminfo; free computes
        // used = total - available, which is what we report.
        let info = parse_meminfo(&fixture("linux/debian12-x86_64-docker-vm/meminfo")).unwrap();
        let m = compute_memory_metric(&info);
        let free = fixture("linux/debian12-x86_64-docker-vm/free-b.txt");
        let mem_line: Vec<u64> = free
            .lines()
            .find(|l| l.starts_with("Mem:"))
            .unwrap()
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect();
        // free's columns: total used free shared buff/cache available.
        assert_eq!(m.ram_total, mem_line[0]);
        // Memory moved a little between the two captures: within 4 MiB.
        assert!(
            m.ram_used.abs_diff(mem_line[1]) < 4 << 20,
            "{m:?} vs {mem_line:?}"
        );
        let buff_cache = m.ram_buffers.unwrap() + m.ram_cached.unwrap();
        assert!(buff_cache.abs_diff(mem_line[4]) < 4 << 20, "{buff_cache}");
        assert_eq!(m.swap_pct, 0.0);
    }

    #[test]
    fn computes_used_and_percentages() {
        let text = "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 250 kB\n\
                    Buffers: 10 kB\nCached: 100 kB\nSReclaimable: 20 kB\nShmem: 5 kB\n\
                    SwapTotal: 400 kB\nSwapFree: 300 kB\n";
        let m = compute_memory_metric(&parse_meminfo(text).unwrap());
        assert_eq!(m.ram_used, 750 * 1024);
        assert_eq!(m.ram_used_pct, 75.0);
        assert_eq!(m.ram_cached, Some(120 * 1024));
        assert_eq!(m.ram_shared, Some(5 * 1024));
        assert_eq!(m.swap_used, 100 * 1024);
        assert_eq!(m.swap_pct, 25.0);
    }

    #[test]
    fn estimates_available_on_old_kernel_without_memavailable() {
        let info = parse_meminfo(&fixture("linux/centos6-kernel2.6.32/meminfo")).unwrap();
        assert_eq!(info.mem_available, None);
        assert_eq!(info.s_reclaimable, Some(118_800 * 1024));
        let m = compute_memory_metric(&info);
        // MemFree 1210460 + Buffers 198516 + Cached 1502312 kB.
        assert_eq!(m.ram_available, (1_210_460 + 198_516 + 1_502_312) * 1024);
        assert_eq!(m.ram_used, m.ram_total - m.ram_available);
        assert_eq!(m.swap_used, (4_194_300 - 4_180_052) * 1024);
    }

    #[test]
    fn parses_raspberry_pi_meminfo() {
        let m = compute_memory_metric(
            &parse_meminfo(&fixture("linux/raspberrypi4-aarch64/meminfo")).unwrap(),
        );
        assert_eq!(m.ram_total, 3_885_396 * 1024);
        assert!(m.ram_used_pct > 0.0 && m.ram_used_pct < 100.0);
        assert_eq!(m.swap_total, 102_396 * 1024);
    }

    #[test]
    fn rejects_meminfo_without_total_or_with_garbage() {
        assert!(parse_meminfo("MemFree: 1 kB\n").is_err());
        let err = parse_meminfo("MemTotal: lots kB\nMemFree: 1 kB\n").unwrap_err();
        assert!(err.message.contains("MemTotal"), "{err}");
        assert!(parse_meminfo("MemTotal: 1 MB\nMemFree: 1 kB\n").is_err());
    }
}
