//! Linux `cpu`: `<procfs>/stat` (two samples) and `<procfs>/loadavg`.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use super::{compute_cpu_metric, parse_loadavg, parse_proc_stat_into, ProcStat};
use crate::collectors::{read_file_into, CollectError, Collector, CollectorKind, HostRoots};

/// Keeps the previous `/proc/stat` sample; the first `collect` only records it.
pub struct CpuCollector {
    stat_path: PathBuf,
    loadavg_path: PathBuf,
    /// Reused read buffer: no allocation per cycle once it has grown.
    buf: String,
    prev: Option<ProcStat>,
    cur: ProcStat,
}

impl CpuCollector {
    pub fn new(roots: &HostRoots) -> Self {
        Self {
            stat_path: roots.procfs.join("stat"),
            loadavg_path: roots.procfs.join("loadavg"),
            buf: String::new(),
            prev: None,
            cur: ProcStat::default(),
        }
    }
}

impl Collector for CpuCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Cpu
    }

    fn is_rate_based(&self) -> bool {
        true
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        read_file_into(&self.stat_path, &mut self.buf)?;
        parse_proc_stat_into(&self.buf, &mut self.cur)?;
        let Some(prev) = self.prev.as_mut() else {
            self.prev = Some(std::mem::take(&mut self.cur));
            return Ok(Vec::new());
        };
        // No tick elapsed (two calls within 1/USER_HZ s): keep the older
        // sample so the next call measures a real interval.
        let Some(mut metric) = compute_cpu_metric(prev, &self.cur) else {
            return Ok(Vec::new());
        };
        std::mem::swap(prev, &mut self.cur);

        read_file_into(&self.loadavg_path, &mut self.buf)?;
        let load = parse_loadavg(&self.buf)?;
        metric.load_1m = Some(load.load_1m);
        metric.load_5m = Some(load.load_5m);
        metric.load_15m = Some(load.load_15m);
        Ok(vec![MetricData::Cpu(metric)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn roots_with(files: &[(&str, &str)]) -> (tempfile::TempDir, HostRoots) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let roots = HostRoots {
            procfs: dir.path().to_path_buf(),
            sysfs: dir.path().join("sys"),
            rootfs: dir.path().join("root"),
        };
        (dir, roots)
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn first_collect_is_empty_then_reports_usage_and_load() {
        let (dir, roots) = roots_with(&[
            (
                "stat",
                "cpu  0 0 0 0 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n",
            ),
            ("loadavg", "1.50 0.75 0.25 2/300 4242\n"),
        ]);
        let mut c = CpuCollector::new(&roots);
        assert!(c.is_rate_based());
        assert!(c.collect(Utc::now()).unwrap().is_empty());

        write(
            dir.path(),
            "stat",
            "cpu  30 0 10 50 10 0 0 0 0 0\ncpu0 30 0 10 50 10 0 0 0 0 0\n",
        );
        let out = c.collect(Utc::now()).unwrap();
        let [MetricData::Cpu(m)] = out.as_slice() else {
            panic!("expected one cpu payload, got {out:?}");
        };
        assert_eq!(m.usage, 40.0);
        assert_eq!(m.cores, vec![40.0]);
        assert_eq!(m.iowait, Some(10.0));
        assert_eq!(m.load_1m, Some(1.5));
        assert_eq!(m.load_15m, Some(0.25));
    }

    #[test]
    fn unchanged_sample_keeps_the_older_baseline() {
        let (dir, roots) = roots_with(&[("stat", "cpu  0 0 0 0\n"), ("loadavg", "0 0 0 1/1 1\n")]);
        let mut c = CpuCollector::new(&roots);
        c.collect(Utc::now()).unwrap();
        write(dir.path(), "stat", "cpu  0 0 0 0\n");
        assert!(c.collect(Utc::now()).unwrap().is_empty());
        write(dir.path(), "stat", "cpu  25 0 0 75\n");
        let out = c.collect(Utc::now()).unwrap();
        let [MetricData::Cpu(m)] = out.as_slice() else {
            panic!("{out:?}");
        };
        assert_eq!(m.usage, 25.0);
    }

    #[test]
    fn missing_stat_file_is_an_io_error_naming_the_path() {
        let (_dir, roots) = roots_with(&[]);
        let err = CpuCollector::new(&roots).collect(Utc::now()).unwrap_err();
        match err {
            CollectError::Io { path, .. } => assert!(path.ends_with("stat")),
            other => panic!("{other:?}"),
        }
    }
}
