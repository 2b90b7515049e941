//! Windows `memory`: `GlobalMemoryStatusEx`.
//!
//! Windows has no "swap" figure as such: `ullTotalPageFile` is the commit
//! limit (RAM + page files). As most tools do, the page file is estimated as
//! `TotalPageFile - TotalPhys` and its use as commit charge beyond RAM in use;
//! both are approximations, saturating at 0.

use chrono::{DateTime, Utc};
use spectra_protocol::{MemoryMetric, MetricData};
use windows_sys::Win32::System::SystemInformation::{GlobalMemoryStatusEx, MEMORYSTATUSEX};

use crate::collectors::cpu::round_pct;
use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct MemoryCollector;

impl MemoryCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self
    }
}

/// Calls `GlobalMemoryStatusEx`. Also used for the host info's RAM total.
pub(crate) fn read_memory_status() -> Result<MEMORYSTATUSEX, CollectError> {
    // SAFETY: MEMORYSTATUSEX is plain old data; all-zero is a valid value.
    let mut status: MEMORYSTATUSEX = unsafe { std::mem::zeroed() };
    status.dwLength = std::mem::size_of::<MEMORYSTATUSEX>() as u32;
    // SAFETY: `status` is a live, writable struct whose dwLength is set as
    // the API requires.
    let ok = unsafe { GlobalMemoryStatusEx(&mut status) };
    if ok == 0 {
        return Err(CollectError::Other(format!(
            "GlobalMemoryStatusEx failed: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(status)
}

impl Collector for MemoryCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Memory
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        let s = read_memory_status()?;
        let used = s.ullTotalPhys.saturating_sub(s.ullAvailPhys);
        let swap_total = s.ullTotalPageFile.saturating_sub(s.ullTotalPhys);
        let commit_used = s.ullTotalPageFile.saturating_sub(s.ullAvailPageFile);
        let swap_used = commit_used.saturating_sub(used).min(swap_total);
        let pct = |part: u64, whole: u64| {
            if whole == 0 {
                0.0
            } else {
                round_pct(part as f64 * 100.0 / whole as f64)
            }
        };
        let metric = MemoryMetric {
            ram_total: s.ullTotalPhys,
            ram_used: used,
            ram_available: s.ullAvailPhys,
            ram_used_pct: pct(used, s.ullTotalPhys),
            swap_total,
            swap_used,
            swap_pct: pct(swap_used, swap_total),
            ..MemoryMetric::default()
        };
        Ok(vec![MetricData::Memory(metric)])
    }
}
