//! `disk` on platforms without a collector yet: says so explicitly.

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use super::DiskOptions;
use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct DiskCollector;

impl DiskCollector {
    pub fn new(_roots: &HostRoots, _options: DiskOptions) -> Self {
        Self
    }
}

impl Collector for DiskCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Disk
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Err(CollectError::Unsupported(format!(
            "no disk collector for {}",
            std::env::consts::OS
        )))
    }
}
