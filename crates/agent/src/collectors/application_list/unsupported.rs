//! `application_list` on platforms without a collector yet: says so explicitly.

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct ApplicationListCollector;

impl ApplicationListCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self
    }
}

impl Collector for ApplicationListCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::ApplicationList
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Err(CollectError::Unsupported(format!(
            "no application_list collector for {}",
            std::env::consts::OS
        )))
    }
}
