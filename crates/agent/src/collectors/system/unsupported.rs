//! `system` on platforms without a collector yet: says so explicitly.

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct SystemCollector;

impl SystemCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self
    }
}

impl Collector for SystemCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::System
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Err(CollectError::Unsupported(format!(
            "no system collector for {}",
            std::env::consts::OS
        )))
    }
}
