//! `memory` on platforms without a collector yet: says so explicitly.

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct MemoryCollector;

impl MemoryCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self
    }
}

impl Collector for MemoryCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Memory
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Err(CollectError::Unsupported(format!(
            "no memory collector for {}",
            std::env::consts::OS
        )))
    }
}
