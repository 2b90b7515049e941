//! Windows `system`: uptime from `GetTickCount64`, processes from
//! `EnumProcesses`, logged-in users as active Remote Desktop Services
//! sessions (`WTSEnumerateSessionsW`; the console session counts when a user
//! is logged on at it). OS version, kernel and virtualization detection are
//! not read yet: `None`.

use chrono::{DateTime, Utc};
use spectra_protocol::{MetricData, SystemMetric};
use windows_sys::Win32::System::ProcessStatus::EnumProcesses;
use windows_sys::Win32::System::RemoteDesktop::{
    WTSActive, WTSEnumerateSessionsW, WTSFreeMemory, WTS_CURRENT_SERVER_HANDLE, WTS_SESSION_INFOW,
};
use windows_sys::Win32::System::SystemInformation::GetTickCount64;

use super::map_arch_to_uname;
use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct SystemCollector {
    /// Reused pid buffer for `EnumProcesses`.
    pids: Vec<u32>,
}

impl SystemCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self {
            pids: vec![0; 1024],
        }
    }

    fn count_processes(&mut self) -> Result<u64, CollectError> {
        loop {
            let capacity_bytes = (self.pids.len() * std::mem::size_of::<u32>()) as u32;
            let mut returned_bytes = 0u32;
            // SAFETY: `pids` is a live buffer of `capacity_bytes` bytes; the
            // API writes at most that many and reports how many it wrote.
            let ok = unsafe {
                EnumProcesses(self.pids.as_mut_ptr(), capacity_bytes, &mut returned_bytes)
            };
            if ok == 0 {
                return Err(CollectError::Other(format!(
                    "EnumProcesses failed: {}",
                    std::io::Error::last_os_error()
                )));
            }
            // A full buffer may mean more processes than fit: grow and retry.
            if returned_bytes < capacity_bytes || self.pids.len() >= 1 << 20 {
                return Ok(u64::from(returned_bytes) / std::mem::size_of::<u32>() as u64);
            }
            let grown = self.pids.len() * 2;
            self.pids.resize(grown, 0);
        }
    }
}

/// Seconds since boot.
pub(crate) fn read_uptime_secs() -> u64 {
    // SAFETY: no arguments, no preconditions.
    let uptime_ms = unsafe { GetTickCount64() };
    uptime_ms / 1000
}

fn count_active_sessions() -> Result<u32, CollectError> {
    let mut sessions: *mut WTS_SESSION_INFOW = std::ptr::null_mut();
    let mut count = 0u32;
    // SAFETY: out-pointers are to live locals; on success the API allocates
    // `count` records at `sessions`, freed below with WTSFreeMemory.
    let ok = unsafe {
        WTSEnumerateSessionsW(WTS_CURRENT_SERVER_HANDLE, 0, 1, &mut sessions, &mut count)
    };
    if ok == 0 {
        return Err(CollectError::Other(format!(
            "WTSEnumerateSessionsW failed: {}",
            std::io::Error::last_os_error()
        )));
    }
    let active = if sessions.is_null() {
        0
    } else {
        // SAFETY: the API returned `count` initialised records at `sessions`.
        let list = unsafe { std::slice::from_raw_parts(sessions, count as usize) };
        list.iter().filter(|s| s.State == WTSActive).count() as u32
    };
    if !sessions.is_null() {
        // SAFETY: `sessions` came from WTSEnumerateSessionsW and is freed once.
        unsafe { WTSFreeMemory(sessions.cast()) };
    }
    Ok(active)
}

impl Collector for SystemCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::System
    }

    fn collect(&mut self, now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        let uptime = read_uptime_secs();
        let metric = SystemMetric {
            uptime,
            processes: self.count_processes()?,
            users: Some(count_active_sessions()?),
            boot_time: now.timestamp() - uptime as i64,
            os: Some("Windows".to_owned()),
            os_version: None,
            kernel: None,
            arch: Some(map_arch_to_uname(std::env::consts::ARCH).to_owned()),
            virtualization: None,
        };
        Ok(vec![MetricData::System(metric)])
    }
}
