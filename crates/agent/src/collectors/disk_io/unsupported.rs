//! `disk_io` on platforms without a collector yet: says so explicitly.

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct DiskIoCollector;

impl DiskIoCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self
    }
}

impl Collector for DiskIoCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::DiskIo
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Err(CollectError::Unsupported(format!(
            "no disk_io collector for {}",
            std::env::consts::OS
        )))
    }
}
