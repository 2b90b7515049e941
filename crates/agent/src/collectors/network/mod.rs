//! `network` collector: per-interface traffic rates and link facts.
//!
//! - This file: the pure parts. [`parse_net_dev`] / [`parse_net_dev_into`]
//!   read `/proc/net/dev` text; [`compute_net_dev_rates`] turns two counter
//!   samples into per-second rates; [`NetDevRateTracker`] keeps the previous
//!   counters of every interface (keyed by name) across cycles and handles
//!   interfaces that come, go or reset; [`parse_speed_mbps`],
//!   [`parse_if_flags`] and [`is_link_up`] read the small sysfs attributes.
//! - `linux.rs`: [`NetworkCollector`] reading `<procfs>/net/dev` and
//!   `<sysfs>/class/net/<if>/{address,mtu,speed,operstate,flags}`;
//!   `unsupported.rs`: everything else (Windows is a later round).
//!
//! `/proc/net/dev` is parsed by hand rather than through sysinfo: the seed
//! measured sysinfo's network refresh at 14x the cost of parsing this one
//! file, and the format is small and stable (kernel
//! `net/core/net-procfs.c`, `dev_seq_printf_stats`).
//!
//! Counters are taken as 64-bit: the kernel prints `rtnl_link_stats64`
//! fields with `%llu` on every architecture. A driver that still keeps a
//! 32-bit counter (wrapping at 2^32) therefore looks like a reset at its
//! wrap: that interface gets no rate for one interval, never a wrong one.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod unsupported;

#[cfg(target_os = "linux")]
pub use linux::{read_net_dev, NetworkCollector};
#[cfg(not(target_os = "linux"))]
pub use unsupported::NetworkCollector;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::rate::{rate_per_sec, CounterWidth};
use super::{skip_two_line_header, Collector, HostRoots, ParseError};

/// The `network` collector for this platform (Linux: the real one;
/// elsewhere: one that answers [`super::CollectError::Unsupported`]).
pub fn new_collector(roots: &HostRoots) -> Box<dyn Collector> {
    Box::new(NetworkCollector::new(roots))
}

/// The counters of one interface the collector turns into rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetDevCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_drops: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_drops: u64,
}

/// One interface line of `/proc/net/dev`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDevEntry {
    pub name: String,
    pub counters: NetDevCounters,
}

/// Parses `/proc/net/dev` text.
pub fn parse_net_dev(text: &str) -> Result<Vec<NetDevEntry>, ParseError> {
    let mut out = Vec::new();
    parse_net_dev_into(text, &mut out)?;
    Ok(out)
}

/// Parses `/proc/net/dev` text into `out`, reusing its entries (and their
/// name strings) so a collector allocates nothing in steady state.
///
/// ```text
/// Inter-|   Receive                                                |  Transmit
///  face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
///     lo: 2523637   12048    0    0    0     0          0         0  2523637   12048    0    0    0     0       0          0
///   eth0:3987654321 45012345    0    3    0     0          0      1022 123456789 30123456    0 ...
/// ```
///
/// Two header lines, then one line per interface: the name, a colon, and 16
/// numbers (8 receive, 8 transmit). Kernels before 3.x printed
/// `"%6s:%8lu"`, so a 9-digit byte count follows the colon with no space
/// (`eth0:3987654321`): the name is split off at the colon, not at
/// whitespace. An interface name can never contain a colon
/// (`dev_valid_name` rejects it), so the first colon is the separator.
pub fn parse_net_dev_into(text: &str, out: &mut Vec<NetDevEntry>) -> Result<(), ParseError> {
    const WHAT: &str = "/proc/net/dev";
    let mut lines = text.lines();
    skip_two_line_header(&mut lines, WHAT)?;
    let mut count = 0;
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let (name, numbers) = line
            .split_once(':')
            .ok_or_else(|| ParseError::new(WHAT, format!("no ':' in line {line:?}")))?;
        let name = name.trim();
        // The kernel never prints such names (`dev_valid_name`); refusing
        // them keeps a bogus file from steering the sysfs paths built from
        // the name.
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(ParseError::new(
                WHAT,
                format!("invalid interface name in {line:?}"),
            ));
        }
        let mut values = [0u64; 16];
        let mut fields = 0;
        for field in numbers.split_ascii_whitespace() {
            // Columns past the 16th would be a future kernel's addition.
            if fields < values.len() {
                values[fields] = field.parse().map_err(|_| {
                    ParseError::new(WHAT, format!("bad counter {field:?} for {name}"))
                })?;
            }
            fields += 1;
        }
        if fields < values.len() {
            return Err(ParseError::new(
                WHAT,
                format!("{name} has {fields} counters, 16 expected"),
            ));
        }
        // Receive: bytes packets errs drop fifo frame compressed multicast;
        // transmit: bytes packets errs drop fifo colls carrier compressed.
        let counters = NetDevCounters {
            rx_bytes: values[0],
            rx_packets: values[1],
            rx_errors: values[2],
            rx_drops: values[3],
            tx_bytes: values[8],
            tx_packets: values[9],
            tx_errors: values[10],
            tx_drops: values[11],
        };
        if let Some(entry) = out.get_mut(count) {
            entry.name.clear();
            entry.name.push_str(name);
            entry.counters = counters;
        } else {
            out.push(NetDevEntry {
                name: name.to_owned(),
                counters,
            });
        }
        count += 1;
    }
    out.truncate(count);
    Ok(())
}

/// Per-second rates of one interface over one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NetDevRates {
    pub rx_bytes: f64,
    pub rx_packets: f64,
    pub rx_errors: f64,
    pub rx_drops: f64,
    pub tx_bytes: f64,
    pub tx_packets: f64,
    pub tx_errors: f64,
    pub tx_drops: f64,
}

/// Per-second rates from `prev` to `cur`, `elapsed` apart. `None` when no
/// time passed or when any counter went backwards (the driver was reloaded
/// or the interface re-created under the same name): the whole interface
/// then has no rate for this interval rather than a partly wrong one.
pub fn compute_net_dev_rates(
    prev: &NetDevCounters,
    cur: &NetDevCounters,
    elapsed: Duration,
) -> Option<NetDevRates> {
    let rate = |p: u64, c: u64| rate_per_sec(p, c, CounterWidth::Bits64, elapsed);
    Some(NetDevRates {
        rx_bytes: rate(prev.rx_bytes, cur.rx_bytes)?,
        rx_packets: rate(prev.rx_packets, cur.rx_packets)?,
        rx_errors: rate(prev.rx_errors, cur.rx_errors)?,
        rx_drops: rate(prev.rx_drops, cur.rx_drops)?,
        tx_bytes: rate(prev.tx_bytes, cur.tx_bytes)?,
        tx_packets: rate(prev.tx_packets, cur.tx_packets)?,
        tx_errors: rate(prev.tx_errors, cur.tx_errors)?,
        tx_drops: rate(prev.tx_drops, cur.tx_drops)?,
    })
}

#[derive(Debug, Clone, Copy)]
struct TrackedInterface {
    counters: NetDevCounters,
    /// The sample that last saw this interface: one that was not seen in
    /// the latest sample has vanished and is dropped.
    generation: u64,
}

/// The previous counters of every interface, keyed by name, and when they
/// were read. Interfaces are matched by name, never by position, so one
/// that appears or vanishes between samples does not shift the others.
#[derive(Debug, Default)]
pub struct NetDevRateTracker {
    prev: HashMap<String, TrackedInterface>,
    prev_at: Option<Instant>,
    generation: u64,
}

impl NetDevRateTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `sample` (read at `at`) and fills `rates` with
    /// `(index into sample, rates)` for every interface that has a rate:
    ///
    /// - the first sample has none (nothing to compare with);
    /// - an interface new since the previous sample has none until its
    ///   second sample;
    /// - an interface whose counters went backwards (reset) has none this
    ///   time and is measured from its new values next time;
    /// - an interface missing from `sample` is forgotten.
    ///
    /// When `at` is not later than the previous sample, nothing is recorded
    /// and `rates` is left empty, so the next call measures a real interval.
    pub fn update(
        &mut self,
        sample: &[NetDevEntry],
        at: Instant,
        rates: &mut Vec<(usize, NetDevRates)>,
    ) {
        rates.clear();
        let elapsed = match self.prev_at {
            Some(prev_at) => match at.checked_duration_since(prev_at) {
                Some(d) if !d.is_zero() => Some(d),
                _ => return,
            },
            None => None,
        };
        self.prev_at = Some(at);
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        for (index, entry) in sample.iter().enumerate() {
            match self.prev.get_mut(entry.name.as_str()) {
                Some(tracked) => {
                    if let Some(r) = elapsed
                        .and_then(|e| compute_net_dev_rates(&tracked.counters, &entry.counters, e))
                    {
                        rates.push((index, r));
                    }
                    tracked.counters = entry.counters;
                    tracked.generation = generation;
                }
                None => {
                    self.prev.insert(
                        entry.name.clone(),
                        TrackedInterface {
                            counters: entry.counters,
                            generation,
                        },
                    );
                }
            }
        }
        self.prev.retain(|_, t| t.generation == generation);
    }

    /// How many interfaces are tracked (for tests and the agent's own
    /// metrics).
    pub fn tracked_interfaces(&self) -> usize {
        self.prev.len()
    }
}

/// `/sys/class/net/<if>/speed` in Mbit/s. `None` when the driver does not
/// know: the kernel prints `-1` (`SPEED_UNKNOWN`; some older kernels print
/// it unsigned as `4294967295`) and virtual or down links fail the read
/// with EINVAL before any text exists. 0 is not a speed either.
pub fn parse_speed_mbps(text: &str) -> Option<u64> {
    let value: i64 = text.trim().parse().ok()?;
    (value > 0 && value != i64::from(u32::MAX)).then_some(value as u64)
}

/// `/sys/class/net/<if>/flags`: `0x1003`.
pub fn parse_if_flags(text: &str) -> Option<u32> {
    let text = text.trim();
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    u32::from_str_radix(hex, 16).ok()
}

/// `IFF_UP` from `<linux/if.h>`: administratively up.
pub const IFF_UP: u32 = 0x1;

/// Whether the interface is up: `IFF_UP` in its flags (the admin state, what
/// `ip link set up` sets; `lo` is up with operstate `unknown`), or, when
/// the flags are unreadable, operstate `up`. `None` when neither is known.
pub fn is_link_up(flags: Option<u32>, operstate: Option<&str>) -> Option<bool> {
    match (flags, operstate) {
        (Some(f), _) => Some(f & IFF_UP != 0),
        (None, Some(state)) => Some(state == "up"),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::test_fixture as fixture;

    fn by_name<'a>(entries: &'a [NetDevEntry], name: &str) -> &'a NetDevCounters {
        &entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} not in {entries:?}"))
            .counters
    }

    #[test]
    fn parses_net_dev_captured_from_this_vm() {
        let entries = parse_net_dev(&fixture("linux/debian12-x86_64-docker-vm/net-dev")).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
        let lo = by_name(&entries, "lo");
        // Loopback sends exactly what it receives.
        assert_eq!(lo.rx_bytes, lo.tx_bytes);
        assert_eq!(lo.rx_bytes, 2_524_781);
        assert_eq!(lo.rx_packets, 12_068);
        let eth0 = by_name(&entries, "eth0");
        assert_eq!(eth0.rx_bytes, 392_592_732);
        assert_eq!(eth0.tx_packets, 7_159);
        assert_eq!(by_name(&entries, "ifb1"), &NetDevCounters::default());
    }

    #[test]
    fn parses_server_with_bonding_vlans_and_docker() {
        let entries = parse_net_dev(&fixture("linux/server-bond-vlan-docker/net-dev")).unwrap();
        assert_eq!(entries.len(), 11);
        // Long names push the columns right but still parse.
        assert_eq!(by_name(&entries, "br-3f2a9c1d7e4b").rx_packets, 9_876_543);
        assert_eq!(by_name(&entries, "bond0.100").tx_bytes, 2_001_234_567_890);
        // The bond is the sum of its slaves (written that way, README).
        let (eno1, eno2, bond) = (
            by_name(&entries, "eno1"),
            by_name(&entries, "eno2"),
            by_name(&entries, "bond0"),
        );
        assert_eq!(bond.rx_bytes, eno1.rx_bytes + eno2.rx_bytes);
        assert_eq!(bond.rx_drops, eno1.rx_drops + eno2.rx_drops);
        assert_eq!(bond.tx_packets, eno1.tx_packets + eno2.tx_packets);
        assert_eq!(by_name(&entries, "wg0").tx_drops, 17);
        assert_eq!(by_name(&entries, "vethc0ffee1").tx_drops, 5);
        assert_eq!(by_name(&entries, "eno1").rx_errors, 12);
    }

    #[test]
    fn parses_raspberry_pi_with_ethernet_and_wlan() {
        let entries = parse_net_dev(&fixture("linux/raspberrypi4-aarch64/net-dev")).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "wlan0"]);
        assert_eq!(by_name(&entries, "wlan0").rx_bytes, 348_812_377);
        assert_eq!(by_name(&entries, "eth0").rx_drops, 17);
    }

    #[test]
    fn parses_old_kernel_number_glued_to_the_colon() {
        let text = fixture("linux/centos6-kernel2.6.32/net-dev");
        assert!(text.contains("eth0:3987654321"), "fixture lost its point");
        let entries = parse_net_dev(&text).unwrap();
        assert_eq!(by_name(&entries, "eth0").rx_bytes, 3_987_654_321);
        assert_eq!(by_name(&entries, "eth0").rx_packets, 45_012_345);
        assert_eq!(by_name(&entries, "eth1").rx_bytes, 412_345_678_901);
        assert_eq!(by_name(&entries, "eth1").rx_errors, 2);
        assert_eq!(by_name(&entries, "lo").tx_bytes, 5_623);
    }

    const HEADER: &str = "Inter-|   Receive    |  Transmit\n face |bytes packets|bytes packets\n";

    #[test]
    fn rejects_missing_header_short_lines_and_garbage() {
        assert!(parse_net_dev("").is_err());
        assert!(parse_net_dev("  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n").is_err());
        let short = format!("{HEADER}  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n");
        assert!(parse_net_dev(&short).unwrap_err().message.contains("16"));
        let garbage = format!("{HEADER}  eth0: 1 2 x 4 5 6 7 8 9 10 11 12 13 14 15 16\n");
        assert!(parse_net_dev(&garbage).is_err());
        let nameless = format!("{HEADER}  : 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n");
        assert!(parse_net_dev(&nameless).is_err());
        let escaping = format!("{HEADER}  ../x: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n");
        assert!(parse_net_dev(&escaping).is_err());
    }

    #[test]
    fn header_only_means_no_interfaces() {
        assert!(parse_net_dev(HEADER).unwrap().is_empty());
    }

    #[test]
    fn u64_max_counters_parse() {
        let text = format!(
            "{HEADER}  eth0: {m} 1 0 0 0 0 0 0 {m} 1 0 0 0 0 0 0\n",
            m = u64::MAX
        );
        let entries = parse_net_dev(&text).unwrap();
        assert_eq!(entries[0].counters.rx_bytes, u64::MAX);
        assert_eq!(entries[0].counters.tx_bytes, u64::MAX);
    }

    #[test]
    fn parse_into_reuses_entries_and_shrinks() {
        let text = fixture("linux/server-bond-vlan-docker/net-dev");
        let mut entries = parse_net_dev(&text).unwrap();
        let ptr = entries.as_ptr();
        let name_ptr = entries[3].name.as_ptr();
        parse_net_dev_into(&text, &mut entries).unwrap();
        assert_eq!(entries.len(), 11);
        assert_eq!(entries.as_ptr(), ptr, "the vector was reallocated");
        assert_eq!(entries[3].name.as_ptr(), name_ptr, "name reallocated");
        parse_net_dev_into(&fixture("linux/raspberrypi4-aarch64/net-dev"), &mut entries).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2].name, "wlan0");
    }

    /// A `/proc/net/dev` sample from `(name, [rx bytes, rx packets, rx errs,
    /// rx drop, tx bytes, tx packets, tx errs, tx drop])`.
    fn sample(rows: &[(&str, [u64; 8])]) -> Vec<NetDevEntry> {
        let mut text = HEADER.to_owned();
        for (name, v) in rows {
            text.push_str(&format!(
                "{name:>6}: {} {} {} {} 0 0 0 0 {} {} {} {} 0 0 0 0\n",
                v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
            ));
        }
        parse_net_dev(&text).unwrap()
    }

    fn rates_by_name(
        sample: &[NetDevEntry],
        rates: &[(usize, NetDevRates)],
    ) -> Vec<(String, NetDevRates)> {
        rates
            .iter()
            .map(|(i, r)| (sample[*i].name.clone(), *r))
            .collect()
    }

    #[test]
    fn computes_exact_rates_per_second() {
        let prev = sample(&[("eth0", [1_000, 10, 0, 0, 5_000, 50, 1, 0])]);
        let cur = sample(&[("eth0", [6_000, 60, 5, 10, 30_000, 300, 1, 25])]);
        let r = compute_net_dev_rates(&prev[0].counters, &cur[0].counters, Duration::from_secs(5))
            .unwrap();
        assert_eq!(
            r,
            NetDevRates {
                rx_bytes: 1_000.0,
                rx_packets: 10.0,
                rx_errors: 1.0,
                rx_drops: 2.0,
                tx_bytes: 5_000.0,
                tx_packets: 50.0,
                tx_errors: 0.0,
                tx_drops: 5.0,
            }
        );
        let half = compute_net_dev_rates(
            &prev[0].counters,
            &cur[0].counters,
            Duration::from_millis(2_500),
        )
        .unwrap();
        assert_eq!(half.rx_bytes, 2_000.0);
        assert_eq!(
            compute_net_dev_rates(&prev[0].counters, &cur[0].counters, Duration::ZERO),
            None
        );
    }

    #[test]
    fn tracker_first_sample_has_no_rates_then_exact_ones() {
        let t0 = Instant::now();
        let mut tracker = NetDevRateTracker::new();
        let mut rates = Vec::new();
        let s0 = sample(&[
            ("lo", [100, 1, 0, 0, 100, 1, 0, 0]),
            ("eth0", [0, 0, 0, 0, 0, 0, 0, 0]),
        ]);
        tracker.update(&s0, t0, &mut rates);
        assert!(rates.is_empty());
        assert_eq!(tracker.tracked_interfaces(), 2);

        let s1 = sample(&[
            ("lo", [100, 1, 0, 0, 100, 1, 0, 0]),
            ("eth0", [12_500_000, 10_000, 0, 2, 250_000, 2_000, 0, 0]),
        ]);
        tracker.update(&s1, t0 + Duration::from_secs(5), &mut rates);
        let got = rates_by_name(&s1, &rates);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "lo");
        assert_eq!(got[0].1, NetDevRates::default(), "idle lo is 0/s");
        assert_eq!(got[1].0, "eth0");
        assert_eq!(got[1].1.rx_bytes, 2_500_000.0);
        assert_eq!(got[1].1.rx_packets, 2_000.0);
        assert_eq!(got[1].1.rx_drops, 0.4);
        assert_eq!(got[1].1.tx_bytes, 50_000.0);
        assert_eq!(got[1].1.tx_packets, 400.0);
    }

    #[test]
    fn hot_plugged_interface_waits_for_its_second_sample_and_vanished_ones_go() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut tracker = NetDevRateTracker::new();
        let mut rates = Vec::new();
        tracker.update(
            &sample(&[("eth0", [0; 8]), ("veth1", [0; 8])]),
            t0,
            &mut rates,
        );
        // veth1 vanished (container stopped), veth2 appeared before eth0.
        let s1 = sample(&[("veth2", [500; 8]), ("eth0", [100; 8])]);
        tracker.update(&s1, t0 + s, &mut rates);
        let got = rates_by_name(&s1, &rates);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, "eth0");
        assert_eq!(got[0].1.rx_bytes, 100.0);
        assert_eq!(tracker.tracked_interfaces(), 2, "veth1 is forgotten");

        let s2 = sample(&[("veth2", [800; 8]), ("eth0", [300; 8])]);
        tracker.update(&s2, t0 + 2 * s, &mut rates);
        let got = rates_by_name(&s2, &rates);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], ("veth2".to_owned(), rates_all(300.0)));
        assert_eq!(got[1], ("eth0".to_owned(), rates_all(200.0)));

        // veth1 comes back with the same name: new, so no rate yet (its old
        // counters were forgotten, not compared with).
        let s3 = sample(&[("eth0", [400; 8]), ("veth1", [7; 8])]);
        tracker.update(&s3, t0 + 3 * s, &mut rates);
        let got = rates_by_name(&s3, &rates);
        assert_eq!(got, vec![("eth0".to_owned(), rates_all(100.0))]);
    }

    fn rates_all(v: f64) -> NetDevRates {
        NetDevRates {
            rx_bytes: v,
            rx_packets: v,
            rx_errors: v,
            rx_drops: v,
            tx_bytes: v,
            tx_packets: v,
            tx_errors: v,
            tx_drops: v,
        }
    }

    #[test]
    fn counter_reset_gives_no_rate_then_measures_from_the_new_base() {
        let t0 = Instant::now();
        let s = Duration::from_secs(5);
        let mut tracker = NetDevRateTracker::new();
        let mut rates = Vec::new();
        tracker.update(
            &sample(&[("eth0", [9_000_000, 9_000, 0, 0, 8_000_000, 8_000, 0, 0])]),
            t0,
            &mut rates,
        );
        // Driver reload: every counter starts again near zero.
        tracker.update(
            &sample(&[("eth0", [1_000, 10, 0, 0, 500, 5, 0, 0])]),
            t0 + s,
            &mut rates,
        );
        assert!(rates.is_empty(), "a reset must not give a rate: {rates:?}");
        tracker.update(
            &sample(&[("eth0", [6_000, 60, 0, 0, 1_000, 10, 0, 0])]),
            t0 + 2 * s,
            &mut rates,
        );
        assert_eq!(rates.len(), 1);
        assert_eq!(rates[0].1.rx_bytes, 1_000.0);
        assert_eq!(rates[0].1.tx_packets, 1.0);
    }

    #[test]
    fn u64_wrap_around_counts_through_zero() {
        let t0 = Instant::now();
        let mut tracker = NetDevRateTracker::new();
        let mut rates = Vec::new();
        let near_max = u64::MAX - 99;
        tracker.update(
            &sample(&[("eth0", [near_max, 0, 0, 0, 0, 0, 0, 0])]),
            t0,
            &mut rates,
        );
        tracker.update(
            &sample(&[("eth0", [100, 0, 0, 0, 0, 0, 0, 0])]),
            t0 + Duration::from_secs(2),
            &mut rates,
        );
        assert_eq!(rates.len(), 1);
        assert_eq!(rates[0].1.rx_bytes, 100.0, "200 bytes in 2 s");
    }

    #[test]
    fn same_instant_keeps_the_older_baseline() {
        let t0 = Instant::now();
        let mut tracker = NetDevRateTracker::new();
        let mut rates = Vec::new();
        tracker.update(&sample(&[("eth0", [0; 8])]), t0, &mut rates);
        tracker.update(&sample(&[("eth0", [50; 8])]), t0, &mut rates);
        assert!(rates.is_empty());
        tracker.update(
            &sample(&[("eth0", [100; 8])]),
            t0 + Duration::from_secs(1),
            &mut rates,
        );
        assert_eq!(rates[0].1, rates_all(100.0));
    }

    #[test]
    fn speed_is_none_when_unknown() {
        assert_eq!(parse_speed_mbps("1000\n"), Some(1_000));
        assert_eq!(parse_speed_mbps("25000"), Some(25_000));
        assert_eq!(parse_speed_mbps("-1\n"), None);
        assert_eq!(parse_speed_mbps("4294967295\n"), None);
        assert_eq!(parse_speed_mbps("0\n"), None);
        assert_eq!(parse_speed_mbps(""), None);
    }

    #[test]
    fn flags_and_up_state() {
        assert_eq!(parse_if_flags("0x1003\n"), Some(0x1003));
        assert_eq!(parse_if_flags("0x82"), Some(0x82));
        assert_eq!(parse_if_flags("1003"), None);
        // lo: IFF_UP with operstate "unknown" is up.
        assert_eq!(is_link_up(Some(0x9), Some("unknown")), Some(true));
        // A down ifb: flags without IFF_UP.
        assert_eq!(is_link_up(Some(0x82), Some("down")), Some(false));
        // Admin up, no carrier: up (operstate says the rest).
        assert_eq!(is_link_up(Some(0x1003), Some("down")), Some(true));
        assert_eq!(is_link_up(None, Some("up")), Some(true));
        assert_eq!(is_link_up(None, Some("dormant")), Some(false));
        assert_eq!(is_link_up(None, None), None);
    }
}
