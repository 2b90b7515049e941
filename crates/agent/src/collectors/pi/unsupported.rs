//! `pi` on platforms other than Linux: Raspberry Pi OS and the other Pi
//! distributions are Linux, so there is nothing to read.

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

pub struct PiCollector;

impl PiCollector {
    pub fn new(_roots: &HostRoots) -> Self {
        Self
    }
}

impl Collector for PiCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Pi
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Err(CollectError::Unsupported(format!(
            "not a Raspberry Pi (the pi collector reads Linux's device tree; this is {})",
            std::env::consts::OS
        )))
    }
}
