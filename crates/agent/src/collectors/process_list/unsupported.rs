//! `process_list` on platforms without a collector yet: says so explicitly.

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct ProcessListCollector;

impl ProcessListCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self
    }

    pub fn with_top_n(_roots: &HostRoots, _top_n: usize) -> Self {
        Self
    }
}

impl Collector for ProcessListCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::ProcessList
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Err(CollectError::Unsupported(format!(
            "no process_list collector for {}",
            std::env::consts::OS
        )))
    }
}
