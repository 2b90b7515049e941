//! `service_list` on platforms without a collector yet (the Windows Service
//! Control Manager one is to come): says so explicitly.

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct ServiceListCollector;

impl ServiceListCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self
    }
}

impl Collector for ServiceListCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::ServiceList
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Err(CollectError::Unsupported(format!(
            "no service_list collector for {}",
            std::env::consts::OS
        )))
    }
}
