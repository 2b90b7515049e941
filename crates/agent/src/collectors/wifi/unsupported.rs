//! `wifi` on platforms without a collector yet: says so explicitly.

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct WifiCollector;

impl WifiCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self
    }
}

impl Collector for WifiCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Wifi
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Err(CollectError::Unsupported(format!(
            "no wifi collector for {}",
            std::env::consts::OS
        )))
    }
}
