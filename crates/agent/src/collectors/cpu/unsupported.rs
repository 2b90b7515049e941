//! `cpu` on platforms without a collector yet: says so explicitly.

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct CpuCollector;

impl CpuCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self
    }
}

impl Collector for CpuCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Cpu
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Err(CollectError::Unsupported(format!(
            "no cpu collector for {}",
            std::env::consts::OS
        )))
    }
}
