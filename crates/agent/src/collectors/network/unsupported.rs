//! `network` on platforms without a collector yet: says so explicitly.

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct NetworkCollector;

impl NetworkCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self
    }
}

impl Collector for NetworkCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Network
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Err(CollectError::Unsupported(format!(
            "no network collector for {}",
            std::env::consts::OS
        )))
    }
}
