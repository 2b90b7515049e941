//! `disk_io` collector: per whole disk and partition, from `/proc/diskstats`.
//!
//! - This file: [`parse_diskstats_into`] / [`parse_diskstats`] and
//!   [`parse_block_stat`] (pure), [`compute_disk_io`] (rates between two
//!   samples of one device) and [`is_skipped_device`].
//! - `linux.rs`: [`DiskIoCollector`], reading `<procfs>/diskstats` and
//!   `<sysfs>/class/block/<dev>/partition`; `unsupported.rs`: the rest.
//!
//! Format (kernel `Documentation/admin-guide/iostats.rst`): `major minor
//! name` then 11 counters (reads completed, reads merged, sectors read, ms
//! reading, writes completed, writes merged, sectors written, ms writing,
//! I/Os in progress, ms doing I/O, weighted ms doing I/O); 4.18 adds 4
//! discard counters, 5.5 adds 2 flush counters. Lines of 14, 18 and 20
//! fields are read; fields beyond those are ignored (a newer kernel).
//!
//! Choices:
//! - Sectors are always 512 bytes here, whatever the device's sector size
//!   (iostats.rst, and `block/genhd.c` counts in 512-byte units).
//! - `loop*` and `ram*` devices are left out by default: they are backed by
//!   files or memory, not disks, and a snap-based host has dozens of them.
//!   `zram*`, `dm-*`, `md*`, `nbd*`, `sr*` are kept.
//! - Counter widths: the kernel prints the `ms` counters as `unsigned int`
//!   (they wrap after ~49.7 days of busy time), so they are 32-bit; the
//!   I/O and sector counts are `unsigned long`, treated as 64-bit. On a
//!   32-bit kernel a count that wraps is then seen as a reset: that device
//!   reports nothing for one interval rather than a wrong rate.
//! - A device whose I/O or sector count went backwards was reset (removed
//!   and re-added under the same name): no metric for that interval.
//! - Average latency is Δms / Δops over the interval, `0.0` when the
//!   interval had no operation of that kind (as `iostat`'s `r_await`).
//! - `util_pct` = Δ(ms doing I/O) / interval × 100, capped at 100 (the
//!   kernel's `io_ticks` can run slightly ahead of wall time).

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod unsupported;

#[cfg(target_os = "linux")]
pub use linux::DiskIoCollector;
#[cfg(not(target_os = "linux"))]
pub use unsupported::DiskIoCollector;

use std::time::Duration;

use spectra_protocol::DiskIoMetric;

use super::cpu::round_pct;
use super::rate::{delta_counter, CounterDelta, CounterWidth};
use super::{Collector, HostRoots, ParseError};

/// The `disk_io` collector for this platform (Linux: `/proc/diskstats`;
/// elsewhere one that answers `CollectError::Unsupported`).
pub fn new_collector(roots: &HostRoots) -> Box<dyn Collector> {
    Box::new(DiskIoCollector::new(roots))
}

/// Bytes per diskstats sector, whatever the hardware sector size.
pub const SECTOR_BYTES: u64 = 512;

/// The counters of one block device (one diskstats line, or a
/// `/sys/block/<dev>/stat` file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockCounters {
    pub reads: u64,
    pub reads_merged: u64,
    pub sectors_read: u64,
    pub read_ms: u64,
    pub writes: u64,
    pub writes_merged: u64,
    pub sectors_written: u64,
    pub write_ms: u64,
    /// A gauge, not a counter.
    pub in_progress: u64,
    pub io_ms: u64,
    pub weighted_io_ms: u64,
    /// Kernel 4.18+ only.
    pub discards: Option<u64>,
    /// Kernel 5.5+ only.
    pub flushes: Option<u64>,
}

/// One `/proc/diskstats` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskStat {
    pub major: u32,
    pub minor: u32,
    pub name: String,
    pub counters: BlockCounters,
}

/// Parses a whole `/proc/diskstats`.
pub fn parse_diskstats(text: &str) -> Result<Vec<DiskStat>, ParseError> {
    let mut out = Vec::new();
    parse_diskstats_into(text, &mut out)?;
    Ok(out)
}

/// Parses `/proc/diskstats` into `out`, reusing its entries' allocations
/// (the collector's hot path: no allocation per cycle once warmed up).
pub fn parse_diskstats_into(text: &str, out: &mut Vec<DiskStat>) -> Result<(), ParseError> {
    let mut count = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let bad = |why: &str| ParseError::new("diskstats", format!("{why} in line {line:?}"));
        let mut fields = line.split_ascii_whitespace();
        let major = parse_u32(fields.next()).ok_or_else(|| bad("bad major"))?;
        let minor = parse_u32(fields.next()).ok_or_else(|| bad("bad minor"))?;
        let name = fields.next().ok_or_else(|| bad("missing name"))?;
        let counters = parse_counters(fields).map_err(|why| bad(&why))?;
        if count == out.len() {
            out.push(DiskStat::default());
        }
        let entry = &mut out[count];
        entry.major = major;
        entry.minor = minor;
        entry.name.clear();
        entry.name.push_str(name);
        entry.counters = counters;
        count += 1;
    }
    out.truncate(count);
    Ok(())
}

/// Parses `/sys/block/<dev>/stat` (or `.../<part>/stat`): the same
/// counters as a diskstats line without major, minor and name
/// (kernel `Documentation/block/stat.rst`).
pub fn parse_block_stat(text: &str) -> Result<BlockCounters, ParseError> {
    parse_counters(text.split_ascii_whitespace())
        .map_err(|why| ParseError::new("block stat", format!("{why} in {:?}", text.trim())))
}

fn parse_u32(field: Option<&str>) -> Option<u32> {
    field?.parse().ok()
}

fn parse_counters<'a>(fields: impl Iterator<Item = &'a str>) -> Result<BlockCounters, String> {
    // 17 counters at most are used (11 + 4 discard + 2 flush).
    let mut values = [0u64; 17];
    let mut n = 0;
    for field in fields {
        let value: u64 = field
            .parse()
            .map_err(|_| format!("counter {field:?} is not a number"))?;
        if let Some(slot) = values.get_mut(n) {
            *slot = value;
        }
        n += 1;
    }
    if n < 11 {
        return Err(format!("{n} counters, at least 11 expected"));
    }
    Ok(BlockCounters {
        reads: values[0],
        reads_merged: values[1],
        sectors_read: values[2],
        read_ms: values[3],
        writes: values[4],
        writes_merged: values[5],
        sectors_written: values[6],
        write_ms: values[7],
        in_progress: values[8],
        io_ms: values[9],
        weighted_io_ms: values[10],
        discards: (n >= 15).then_some(values[11]),
        flushes: (n >= 17).then_some(values[15]),
    })
}

/// Devices left out by default: `loop<N>` and `ram<N>` (see module docs).
pub fn is_skipped_device(name: &str) -> bool {
    ["loop", "ram"].iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The rates of one device between two samples `elapsed` apart, or `None`
/// when no time passed or the device's counters were reset. `device` and
/// `partition` are left for the caller to fill.
pub fn compute_disk_io(
    prev: &BlockCounters,
    cur: &BlockCounters,
    elapsed: Duration,
) -> Option<DiskIoMetric> {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return None;
    }
    let count = |p: u64, c: u64| match delta_counter(p, c, CounterWidth::Bits64) {
        CounterDelta::Grew(d) => Some(d),
        CounterDelta::Reset => None,
    };
    let reads = count(prev.reads, cur.reads)?;
    let writes = count(prev.writes, cur.writes)?;
    let sectors_read = count(prev.sectors_read, cur.sectors_read)?;
    let sectors_written = count(prev.sectors_written, cur.sectors_written)?;
    // The ms counters are 32-bit in the kernel; a wrap is a real wrap here
    // because a reset was already ruled out by the counts above.
    let ms = |p: u64, c: u64| delta_counter(p, c, CounterWidth::Bits32).grown();
    let read_ms = ms(prev.read_ms, cur.read_ms)?;
    let write_ms = ms(prev.write_ms, cur.write_ms)?;
    let io_ms = ms(prev.io_ms, cur.io_ms)?;

    let per_sec = |d: u64| round_pct(d as f64 / secs);
    let latency_ms = |ms: u64, ops: u64| {
        if ops == 0 {
            0.0
        } else {
            round_pct(ms as f64 / ops as f64)
        }
    };
    let util = (io_ms as f64 / (secs * 1000.0) * 100.0).min(100.0);
    Some(DiskIoMetric {
        device: String::new(),
        read_bytes: per_sec(sectors_read.saturating_mul(SECTOR_BYTES)),
        write_bytes: per_sec(sectors_written.saturating_mul(SECTOR_BYTES)),
        read_ops: per_sec(reads),
        write_ops: per_sec(writes),
        read_time_ms: latency_ms(read_ms, reads),
        write_time_ms: latency_ms(write_ms, writes),
        io_in_progress: cur.in_progress,
        util_pct: Some(round_pct(util)),
        partition: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::test_fixture as fixture;

    fn find<'a>(stats: &'a [DiskStat], name: &str) -> &'a DiskStat {
        stats.iter().find(|s| s.name == name).unwrap()
    }

    #[test]
    fn parses_captured_diskstats_with_flush_fields() {
        let stats = parse_diskstats(&fixture("linux/debian12-x86_64-docker-vm/diskstats")).unwrap();
        assert_eq!(stats.len(), 10);
        let vda = find(&stats, "vda");
        assert_eq!((vda.major, vda.minor), (254, 0));
        assert!(vda.counters.reads > 0 && vda.counters.sectors_written > 0);
        assert!(vda.counters.discards.is_some());
        assert!(vda.counters.flushes.is_some());
        let names: Vec<&str> = stats
            .iter()
            .filter(|s| !is_skipped_device(&s.name))
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, vec!["vda", "zram0"]);
    }

    #[test]
    fn parses_nvme_server_with_md_raid() {
        let stats = parse_diskstats(&fixture("linux/server-nvme-mdraid/diskstats")).unwrap();
        for name in ["nvme0n1", "nvme0n1p1", "nvme0n1p2", "nvme1n1p2", "md0"] {
            assert!(stats.iter().any(|s| s.name == name), "{name} missing");
        }
        let p1 = find(&stats, "nvme0n1p1");
        assert_eq!((p1.major, p1.minor), (259, 1));
        assert_eq!(p1.counters.reads, 2_142);
        assert_eq!(p1.counters.sectors_read, 110_842);
        assert_eq!(p1.counters.flushes, Some(0));
        // md devices do not account time: ms fields are 0.
        let md0 = find(&stats, "md0");
        assert_eq!(md0.counters.read_ms, 0);
        assert_eq!(md0.counters.discards, Some(240_512));
    }

    #[test]
    fn parses_raspberry_pi_sd_card_and_skips_its_ram_disks() {
        let stats = parse_diskstats(&fixture("linux/raspberrypi4-aarch64/diskstats")).unwrap();
        let p2 = find(&stats, "mmcblk0p2");
        assert_eq!((p2.major, p2.minor), (179, 2));
        assert_eq!(p2.counters.writes, 301_845);
        assert_eq!(p2.counters.flushes, Some(0));
        assert_eq!(find(&stats, "mmcblk0").counters.flushes, Some(9_572));
        let kept: Vec<&str> = stats
            .iter()
            .filter(|s| !is_skipped_device(&s.name))
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(kept, vec!["mmcblk0", "mmcblk0p1", "mmcblk0p2"]);
    }

    #[test]
    fn parses_kernel_4_19_line_with_discard_but_no_flush_fields() {
        let line = "   8       0 sda 10 0 80 5 20 0 160 9 0 12 14 3 0 24 1\n";
        let stats = parse_diskstats(line).unwrap();
        assert_eq!(stats[0].counters.discards, Some(3));
        assert_eq!(stats[0].counters.flushes, None);
        assert_eq!(stats[0].counters.weighted_io_ms, 14);
    }

    #[test]
    fn parses_old_kernel_with_14_fields() {
        let stats = parse_diskstats(&fixture("linux/centos6-kernel2.6.32/diskstats")).unwrap();
        let sda = find(&stats, "sda");
        assert_eq!(sda.counters.reads, 51_374);
        assert_eq!(sda.counters.weighted_io_ms, 401_223);
        assert_eq!(sda.counters.discards, None);
        assert_eq!(sda.counters.flushes, None);
        assert!(stats.iter().any(|s| s.name == "dm-0"));
    }

    #[test]
    fn rejects_short_or_garbled_lines() {
        assert!(parse_diskstats("8 0 sda 1 2 3\n").is_err());
        assert!(parse_diskstats("8 0 sda 1 2 3 4 5 6 7 8 9 10 x\n").is_err());
        assert!(parse_diskstats("x 0 sda 1 2 3 4 5 6 7 8 9 10 11\n").is_err());
        assert!(parse_diskstats("8 0\n").is_err());
    }

    #[test]
    fn reuses_entries_when_parsing_into() {
        let text = fixture("linux/debian12-x86_64-docker-vm/diskstats");
        let mut stats = parse_diskstats(&text).unwrap();
        let ptr = stats.as_ptr();
        let name_ptr = stats[8].name.as_ptr();
        parse_diskstats_into(&text, &mut stats).unwrap();
        assert_eq!(stats.as_ptr(), ptr);
        assert_eq!(stats[8].name.as_ptr(), name_ptr);
        parse_diskstats_into("8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n", &mut stats).unwrap();
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].name, "sda");
    }

    #[test]
    fn parses_sysfs_block_stat() {
        let dir = "linux/debian12-x86_64-docker-vm";
        let sys = parse_block_stat(&fixture(&format!("{dir}/sys-block-vda-stat"))).unwrap();
        let stats = parse_diskstats(&fixture(&format!("{dir}/diskstats"))).unwrap();
        let vda = &find(&stats, "vda").counters;
        // Captured just after diskstats: the same counters, grown a little.
        assert!(sys.reads >= vda.reads && sys.reads - vda.reads < 10_000);
        assert!(sys.sectors_written >= vda.sectors_written);
        assert!(sys.discards.is_some() && sys.flushes.is_some());
        assert!(parse_block_stat("1 2 3\n").is_err());
    }

    #[test]
    fn skips_loop_and_ram_devices_only() {
        for name in ["loop0", "loop12", "ram0", "ram15"] {
            assert!(is_skipped_device(name), "{name}");
        }
        for name in [
            "sda", "zram0", "nvme0n1", "md0", "dm-0", "loop", "ramdisk", "mmcblk0",
        ] {
            assert!(!is_skipped_device(name), "{name}");
        }
    }

    fn counters(
        reads: u64,
        sectors_read: u64,
        read_ms: u64,
        writes: u64,
        sectors_written: u64,
        write_ms: u64,
        io_ms: u64,
    ) -> BlockCounters {
        BlockCounters {
            reads,
            sectors_read,
            read_ms,
            writes,
            sectors_written,
            write_ms,
            io_ms,
            ..BlockCounters::default()
        }
    }

    #[test]
    fn computes_exact_rates_between_two_samples() {
        let prev = counters(1_000, 80_000, 5_000, 2_000, 160_000, 9_000, 20_000);
        let mut cur = counters(1_500, 100_000, 6_000, 2_200, 170_240, 9_800, 22_500);
        cur.in_progress = 3;
        let m = compute_disk_io(&prev, &cur, Duration::from_secs(5)).unwrap();
        // 20 000 sectors × 512 B / 5 s.
        assert_eq!(m.read_bytes, 2_048_000.0);
        assert_eq!(m.write_bytes, 1_048_576.0);
        assert_eq!(m.read_ops, 100.0);
        assert_eq!(m.write_ops, 40.0);
        // 1000 ms over 500 reads, 800 ms over 200 writes.
        assert_eq!(m.read_time_ms, 2.0);
        assert_eq!(m.write_time_ms, 4.0);
        assert_eq!(m.io_in_progress, 3);
        // 2500 ms busy in 5000 ms.
        assert_eq!(m.util_pct, Some(50.0));
    }

    #[test]
    fn idle_interval_has_zero_latency_and_utilisation() {
        let c = counters(10, 80, 5, 20, 160, 9, 12);
        let m = compute_disk_io(&c, &c, Duration::from_secs(5)).unwrap();
        assert_eq!(
            (m.read_ops, m.read_time_ms, m.write_time_ms),
            (0.0, 0.0, 0.0)
        );
        assert_eq!(m.util_pct, Some(0.0));
    }

    #[test]
    fn utilisation_is_capped_at_100() {
        let prev = counters(0, 0, 0, 0, 0, 0, 0);
        let cur = counters(1, 8, 1, 0, 0, 0, 5_100);
        let m = compute_disk_io(&prev, &cur, Duration::from_secs(5)).unwrap();
        assert_eq!(m.util_pct, Some(100.0));
    }

    #[test]
    fn reset_counters_give_no_metric_and_no_time_gives_none() {
        let prev = counters(1_000, 80_000, 5_000, 2_000, 160_000, 9_000, 20_000);
        let after_replug = counters(10, 800, 50, 0, 0, 0, 40);
        assert_eq!(
            compute_disk_io(&prev, &after_replug, Duration::from_secs(5)),
            None
        );
        assert_eq!(compute_disk_io(&prev, &prev, Duration::ZERO), None);
    }

    #[test]
    fn wrapped_32_bit_ms_counter_gives_a_real_latency() {
        let prev = counters(100, 800, u64::from(u32::MAX) - 99, 0, 0, 0, 0);
        let cur = counters(150, 1_200, 400, 0, 0, 0, 1_000);
        let m = compute_disk_io(&prev, &cur, Duration::from_secs(10)).unwrap();
        // 100 ms to the wrap + 400 after it, over 50 reads.
        assert_eq!(m.read_time_ms, 10.0);
        assert_eq!(m.util_pct, Some(10.0));
    }
}
