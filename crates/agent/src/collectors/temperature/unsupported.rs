//! `temperature` on platforms without a collector yet: says so explicitly.

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct TemperatureCollector;

impl TemperatureCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self
    }
}

impl Collector for TemperatureCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Temperature
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Err(CollectError::Unsupported(format!(
            "no temperature collector for {}",
            std::env::consts::OS
        )))
    }
}
