//! `container_list` on platforms without a collector yet (Docker's named
//! pipe on Windows, Docker Desktop's VM on macOS): says so explicitly.

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct ContainerListCollector;

impl ContainerListCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self
    }
}

impl Collector for ContainerListCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::ContainerList
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Err(CollectError::Unsupported(format!(
            "no container_list collector for {}",
            std::env::consts::OS
        )))
    }
}
