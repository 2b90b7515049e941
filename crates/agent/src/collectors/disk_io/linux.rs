//! Linux `disk_io`: `<procfs>/diskstats` (two samples) and
//! `<sysfs>/class/block/<dev>/partition` (once per device).

use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use super::{compute_disk_io, is_skipped_device, parse_diskstats_into, DiskStat};
use crate::collectors::{read_file_into, CollectError, Collector, CollectorKind, HostRoots};

/// One sample: the devices kept and when they were read.
#[derive(Default)]
struct Sample {
    stats: Vec<DiskStat>,
    /// Parallel to `stats`: whether each device is a partition (`None` when
    /// sysfs does not say).
    partitions: Vec<Option<bool>>,
    at: Option<Instant>,
}

/// Keeps the previous sample; the first `collect` only records it.
pub struct DiskIoCollector {
    diskstats_path: PathBuf,
    class_block_dir: PathBuf,
    /// Reused read buffer.
    buf: String,
    prev: Sample,
    cur: Sample,
}

impl DiskIoCollector {
    pub fn new(roots: &HostRoots) -> Self {
        Self {
            diskstats_path: roots.procfs.join("diskstats"),
            class_block_dir: roots.sysfs.join("class/block"),
            buf: String::new(),
            prev: Sample::default(),
            cur: Sample::default(),
        }
    }

    /// `<sysfs>/class/block/<dev>/partition` exists for partitions only.
    /// Names with `/` (`cciss/c0d0`) appear in sysfs with `!`.
    fn read_is_partition(&self, name: &str) -> Option<bool> {
        let dev_dir = self.class_block_dir.join(name.replace('/', "!"));
        if !dev_dir.exists() {
            return None;
        }
        Some(dev_dir.join("partition").exists())
    }
}

impl Collector for DiskIoCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::DiskIo
    }

    fn is_rate_based(&self) -> bool {
        true
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        read_file_into(&self.diskstats_path, &mut self.buf)?;
        let at = Instant::now();
        parse_diskstats_into(&self.buf, &mut self.cur.stats)?;
        self.cur.stats.retain(|s| !is_skipped_device(&s.name));

        // Partition flags: carried over from the previous sample for a
        // device seen before (same name and numbers), looked up for a new one.
        let mut partitions = std::mem::take(&mut self.cur.partitions);
        partitions.clear();
        for (position, stat) in self.cur.stats.iter().enumerate() {
            let known =
                find_same_device(&self.prev.stats, position, stat).map(|i| self.prev.partitions[i]);
            partitions.push(match known {
                Some(flag) => flag,
                None => self.read_is_partition(&stat.name),
            });
        }
        self.cur.partitions = partitions;
        self.cur.at = Some(at);

        let mut out = Vec::new();
        if let Some(prev_at) = self.prev.at {
            let elapsed = at.saturating_duration_since(prev_at);
            if elapsed.is_zero() {
                // Keep the older baseline so the next call measures a real
                // interval.
                return Ok(out);
            }
            out.reserve(self.cur.stats.len());
            for (position, stat) in self.cur.stats.iter().enumerate() {
                // A device without a previous sample (just plugged in)
                // waits for its second sample; a removed one is simply
                // absent from `cur`.
                let Some(i) = find_same_device(&self.prev.stats, position, stat) else {
                    continue;
                };
                if let Some(mut m) =
                    compute_disk_io(&self.prev.stats[i].counters, &stat.counters, elapsed)
                {
                    m.device.push_str(&stat.name);
                    m.partition = self.cur.partitions[position];
                    out.push(MetricData::DiskIo(m));
                }
            }
        }
        std::mem::swap(&mut self.prev, &mut self.cur);
        Ok(out)
    }
}

/// The index in `prev` of the same device as `stat` (same name and
/// major:minor), looked up at the same position first: devices rarely move.
fn find_same_device(prev: &[DiskStat], position: usize, stat: &DiskStat) -> Option<usize> {
    let same = |p: &DiskStat| p.name == stat.name && p.major == stat.major && p.minor == stat.minor;
    match prev.get(position) {
        Some(p) if same(p) => Some(position),
        _ => prev.iter().position(same),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spectra_protocol::DiskIoMetric;

    struct Host {
        dir: tempfile::TempDir,
        roots: HostRoots,
    }

    fn host() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let roots = HostRoots {
            procfs: dir.path().join("proc"),
            sysfs: dir.path().join("sys"),
            rootfs: dir.path().to_path_buf(),
        };
        std::fs::create_dir_all(&roots.procfs).unwrap();
        for (dev, partition) in [("sda", false), ("sda1", true), ("sdb", false)] {
            let d = roots.sysfs.join("class/block").join(dev);
            std::fs::create_dir_all(&d).unwrap();
            if partition {
                std::fs::write(d.join("partition"), "1\n").unwrap();
            }
        }
        Host { dir, roots }
    }

    impl Host {
        fn write_diskstats(&self, text: &str) {
            std::fs::write(self.roots.procfs.join("diskstats"), text).unwrap();
        }
    }

    fn by_device(out: &[MetricData]) -> Vec<&DiskIoMetric> {
        out.iter()
            .map(|m| match m {
                MetricData::DiskIo(d) => d,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    const T0: &str = "\
   7       0 loop0 5 0 10 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   8       0 sda 100 0 800 10 200 0 1600 20 0 30 30 0 0 0 0 0 0
   8       1 sda1 50 0 400 5 100 0 800 10 0 15 15 0 0 0 0 0 0
   1       0 ram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
";

    #[test]
    fn first_collect_is_empty_then_reports_each_disk_and_partition() {
        let h = host();
        h.write_diskstats(T0);
        let mut c = DiskIoCollector::new(&h.roots);
        assert!(c.is_rate_based());
        assert!(c.collect(Utc::now()).unwrap().is_empty());
        h.write_diskstats(&T0.replace("sda 100 0 800", "sda 110 0 880"));
        let out = c.collect(Utc::now()).unwrap();
        let devs = by_device(&out);
        let names: Vec<&str> = devs.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, vec!["sda", "sda1"]);
        assert_eq!(devs[0].partition, Some(false));
        assert_eq!(devs[1].partition, Some(true));
        assert!(devs[0].read_ops > 0.0 && devs[0].read_bytes > 0.0);
        assert_eq!(devs[1].read_ops, 0.0);
        drop(h.dir);
    }

    #[test]
    fn hot_plugged_disk_waits_for_second_sample_and_removed_disk_disappears() {
        let h = host();
        h.write_diskstats(T0);
        let mut c = DiskIoCollector::new(&h.roots);
        c.collect(Utc::now()).unwrap();
        // sdb plugged in, sda1 removed.
        let t1 = "   8       0 sda 100 0 800 10 200 0 1600 20 0 30 30\n\
                  \x20  8      16 sdb 1 0 8 1 0 0 0 0 0 1 1\n";
        h.write_diskstats(t1);
        let out = c.collect(Utc::now()).unwrap();
        let names: Vec<&str> = by_device(&out).iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, vec!["sda"]);
        h.write_diskstats(&t1.replace("sdb 1 0 8", "sdb 3 0 24"));
        let out = c.collect(Utc::now()).unwrap();
        let devs = by_device(&out);
        let names: Vec<&str> = devs.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, vec!["sda", "sdb"]);
        assert_eq!(devs[1].partition, Some(false));
        assert!(devs[1].read_ops > 0.0);
    }

    #[test]
    fn reset_counters_skip_one_interval_then_resume() {
        let h = host();
        h.write_diskstats("   8       0 sda 1000 0 8000 10 0 0 0 0 0 30 30\n");
        let mut c = DiskIoCollector::new(&h.roots);
        c.collect(Utc::now()).unwrap();
        // Re-plugged under the same name: counters restart from zero.
        h.write_diskstats("   8       0 sda 4 0 32 1 0 0 0 0 0 1 1\n");
        assert!(c.collect(Utc::now()).unwrap().is_empty());
        h.write_diskstats("   8       0 sda 8 0 64 2 0 0 0 0 0 2 2\n");
        let out = c.collect(Utc::now()).unwrap();
        let devs = by_device(&out);
        assert_eq!(devs.len(), 1);
        assert!(devs[0].read_ops > 0.0);
    }

    #[test]
    fn device_renumbered_under_the_same_name_counts_as_new() {
        let h = host();
        h.write_diskstats("   8       0 sda 1 0 8 1 0 0 0 0 0 1 1\n");
        let mut c = DiskIoCollector::new(&h.roots);
        c.collect(Utc::now()).unwrap();
        h.write_diskstats("   8      32 sda 2 0 16 1 0 0 0 0 0 1 1\n");
        assert!(c.collect(Utc::now()).unwrap().is_empty());
    }

    #[test]
    fn missing_diskstats_is_an_io_error_naming_the_path() {
        let h = host();
        let err = DiskIoCollector::new(&h.roots)
            .collect(Utc::now())
            .unwrap_err();
        match err {
            CollectError::Io { path, .. } => assert!(path.ends_with("diskstats")),
            other => panic!("{other:?}"),
        }
    }
}
