//! `updates` on platforms without a collector yet: says so explicitly.

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct UpdatesCollector;

impl UpdatesCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self
    }
}

impl Collector for UpdatesCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Updates
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Err(CollectError::Unsupported(format!(
            "no updates collector for {}",
            std::env::consts::OS
        )))
    }
}
