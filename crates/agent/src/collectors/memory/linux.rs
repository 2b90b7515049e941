//! Linux `memory`: `<procfs>/meminfo`.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use super::{compute_memory_metric, parse_meminfo};
use crate::collectors::{read_file_into, CollectError, Collector, CollectorKind, HostRoots};

pub struct MemoryCollector {
    meminfo_path: PathBuf,
    /// Reused read buffer.
    buf: String,
}

impl MemoryCollector {
    pub fn new(roots: &HostRoots) -> Self {
        Self {
            meminfo_path: roots.procfs.join("meminfo"),
            buf: String::new(),
        }
    }
}

impl Collector for MemoryCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Memory
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        read_file_into(&self.meminfo_path, &mut self.buf)?;
        let info = parse_meminfo(&self.buf)?;
        Ok(vec![MetricData::Memory(compute_memory_metric(&info))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo_under_the_procfs_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("meminfo"),
            "MemTotal: 2048 kB\nMemFree: 512 kB\nMemAvailable: 1024 kB\n",
        )
        .unwrap();
        let roots = HostRoots {
            procfs: dir.path().to_path_buf(),
            ..HostRoots::default()
        };
        let out = MemoryCollector::new(&roots).collect(Utc::now()).unwrap();
        let [MetricData::Memory(m)] = out.as_slice() else {
            panic!("{out:?}");
        };
        assert_eq!(m.ram_total, 2048 * 1024);
        assert_eq!(m.ram_used_pct, 50.0);
    }
}
