//! Windows `cpu`: total usage from `GetSystemTimes`, two samples apart.
//!
//! `GetSystemTimes` gives system-wide idle, kernel and user time in 100 ns
//! units, where kernel time *includes* idle time. Per-core figures need PDH
//! or `NtQuerySystemInformation` and come later: `cores` is empty. Windows
//! has no load average and no iowait: those stay `None`.

use chrono::{DateTime, Utc};
use spectra_protocol::{CpuMetric, MetricData};
use windows_sys::Win32::Foundation::FILETIME;
use windows_sys::Win32::System::Threading::GetSystemTimes;

use super::round_pct;
use crate::collectors::rate::{delta_counter, CounterWidth};
use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

#[derive(Clone, Copy)]
struct SystemTimes {
    idle: u64,
    kernel: u64,
    user: u64,
}

pub struct CpuCollector {
    prev: Option<SystemTimes>,
}

impl CpuCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self { prev: None }
    }
}

fn filetime_to_u64(t: FILETIME) -> u64 {
    (u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime)
}

fn read_system_times() -> Result<SystemTimes, CollectError> {
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut idle, mut kernel, mut user) = (zero, zero, zero);
    // SAFETY: the three pointers are to live, writable FILETIME locals.
    let ok = unsafe { GetSystemTimes(&mut idle, &mut kernel, &mut user) };
    if ok == 0 {
        return Err(CollectError::Other(format!(
            "GetSystemTimes failed: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(SystemTimes {
        idle: filetime_to_u64(idle),
        kernel: filetime_to_u64(kernel),
        user: filetime_to_u64(user),
    })
}

impl Collector for CpuCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Cpu
    }

    fn is_rate_based(&self) -> bool {
        true
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        let cur = read_system_times()?;
        let Some(prev) = self.prev else {
            self.prev = Some(cur);
            return Ok(Vec::new());
        };
        let d = |p: u64, c: u64| {
            delta_counter(p, c, CounterWidth::Bits64)
                .grown()
                .unwrap_or(0)
        };
        let idle = d(prev.idle, cur.idle);
        let kernel = d(prev.kernel, cur.kernel);
        let user = d(prev.user, cur.user);
        let total = kernel.saturating_add(user);
        if total == 0 {
            return Ok(Vec::new());
        }
        self.prev = Some(cur);
        let pct = |v: u64| round_pct(v as f64 * 100.0 / total as f64);
        let metric = CpuMetric {
            usage: pct(total.saturating_sub(idle)),
            // Per-core needs PDH; not available from GetSystemTimes.
            cores: Vec::new(),
            user: Some(pct(user)),
            system: Some(pct(kernel.saturating_sub(idle))),
            idle: Some(pct(idle)),
            ..CpuMetric::default()
        };
        Ok(vec![MetricData::Cpu(metric)])
    }
}
