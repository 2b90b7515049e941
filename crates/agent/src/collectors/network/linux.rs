//! Linux `network`: `<procfs>/net/dev` (counters, two samples) and
//! `<sysfs>/class/net/<if>/` (MAC, MTU, speed, operstate, flags).
//!
//! `<procfs>/net/dev` is `/proc/self/net/dev`: it lists the network
//! namespace of the agent's own process. An agent in a container reports
//! the host's interfaces only when it runs in the host's network namespace
//! (`--network host`), whatever procfs it is given.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use spectra_protocol::{MetricData, NetworkMetric};

use super::{
    is_link_up, parse_if_flags, parse_net_dev, parse_net_dev_into, parse_speed_mbps, NetDevEntry,
    NetDevRateTracker, NetDevRates,
};
use crate::collectors::{read_file_into, CollectError, Collector, CollectorKind, HostRoots};

/// Reads and parses `<procfs>/net/dev` once (live tests, tools).
pub fn read_net_dev(procfs: &Path) -> Result<Vec<NetDevEntry>, CollectError> {
    let mut buf = String::new();
    read_file_into(&procfs.join("net/dev"), &mut buf)?;
    Ok(parse_net_dev(&buf)?)
}

/// What sysfs says about one interface.
struct LinkInfo {
    mac_address: String,
    mtu: u32,
    speed_mbps: Option<u64>,
    operstate: Option<String>,
    up: Option<bool>,
    is_virtual: bool,
}

/// Keeps the previous counters of every interface; the first `collect`
/// only records them.
pub struct NetworkCollector {
    net_dev_path: PathBuf,
    /// `<sysfs>/class/net`: one directory (a symlink) per interface.
    class_net: PathBuf,
    /// `<sysfs>/devices/virtual/net`: where the kernel puts interfaces with
    /// no parent device (lo, veth, bridges, bonds, VLANs, tun/tap, wg...).
    virtual_net: PathBuf,
    /// Reused buffers: no allocation per cycle once grown, except the
    /// strings the payloads own.
    buf: String,
    attr_buf: String,
    attr_path: PathBuf,
    sample: Vec<NetDevEntry>,
    tracker: NetDevRateTracker,
    rates: Vec<(usize, NetDevRates)>,
}

impl NetworkCollector {
    pub fn new(roots: &HostRoots) -> Self {
        Self {
            net_dev_path: roots.procfs.join("net/dev"),
            class_net: roots.sysfs.join("class/net"),
            virtual_net: roots.sysfs.join("devices/virtual/net"),
            buf: String::new(),
            attr_buf: String::new(),
            attr_path: PathBuf::new(),
            sample: Vec::new(),
            tracker: NetDevRateTracker::new(),
            rates: Vec::new(),
        }
    }

    /// Reads `<class_net>/<name>/<attr>` into `attr_buf`, trimmed on use.
    fn read_attr(&mut self, name: &str, attr: &str) -> std::io::Result<&str> {
        use std::io::Read;
        self.attr_path.as_mut_os_string().clear();
        self.attr_path.push(&self.class_net);
        self.attr_path.push(name);
        self.attr_path.push(attr);
        self.attr_buf.clear();
        std::fs::File::open(&self.attr_path)?.read_to_string(&mut self.attr_buf)?;
        Ok(self.attr_buf.trim())
    }

    /// The sysfs facts of `name`, `None` when sysfs has no such interface
    /// (it vanished since `/proc/net/dev` was read, or sysfs belongs to
    /// another network namespace).
    fn read_link_info(&mut self, name: &str) -> Option<LinkInfo> {
        // `mtu` exists for every net device: if it cannot be read, the
        // interface is not there.
        let mtu = match self.read_attr(name, "mtu") {
            Ok(text) => text.parse().ok()?,
            Err(e) => {
                if e.kind() != ErrorKind::NotFound {
                    tracing::debug!(interface = name, error = %e, "reading mtu");
                }
                return None;
            }
        };
        // Empty for interfaces without a link-layer address (tun, wg, ppp).
        let mac_address = self
            .read_attr(name, "address")
            .map(str::to_owned)
            .unwrap_or_default();
        // EINVAL on virtual and down links: unknown, not 0.
        let speed_mbps = self
            .read_attr(name, "speed")
            .ok()
            .and_then(parse_speed_mbps);
        let operstate = self.read_attr(name, "operstate").ok().map(str::to_owned);
        let flags = self.read_attr(name, "flags").ok().and_then(parse_if_flags);
        let up = is_link_up(flags, operstate.as_deref());
        self.attr_path.as_mut_os_string().clear();
        self.attr_path.push(&self.virtual_net);
        self.attr_path.push(name);
        let is_virtual = self.attr_path.exists();
        Some(LinkInfo {
            mac_address,
            mtu,
            speed_mbps,
            operstate,
            up,
            is_virtual,
        })
    }
}

impl Collector for NetworkCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Network
    }

    fn is_rate_based(&self) -> bool {
        true
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        read_file_into(&self.net_dev_path, &mut self.buf)?;
        // Rates are measured on a monotonic clock taken with the read, not
        // on the scheduled tick.
        let at = Instant::now();
        parse_net_dev_into(&self.buf, &mut self.sample)?;
        let mut rates = std::mem::take(&mut self.rates);
        self.tracker.update(&self.sample, at, &mut rates);

        let mut out = Vec::with_capacity(rates.len());
        let mut missing = 0usize;
        for &(index, r) in &rates {
            let Some(entry) = self.sample.get(index) else {
                continue;
            };
            let name = entry.name.clone();
            let Some(link) = self.read_link_info(&name) else {
                missing += 1;
                tracing::debug!(interface = %name, "interface not in sysfs; skipped");
                continue;
            };
            out.push(MetricData::Network(NetworkMetric {
                interface: name,
                mac_address: link.mac_address,
                mtu: link.mtu,
                speed: link.speed_mbps,
                rx_bytes: r.rx_bytes,
                rx_packets: r.rx_packets,
                rx_errors: r.rx_errors,
                rx_drops: r.rx_drops,
                tx_bytes: r.tx_bytes,
                tx_packets: r.tx_packets,
                tx_errors: r.tx_errors,
                tx_drops: r.tx_drops,
                operstate: link.operstate,
                up: link.up,
                is_virtual: Some(link.is_virtual),
            }));
        }
        let had_rates = !rates.is_empty();
        self.rates = rates;
        if had_rates && out.is_empty() && missing > 0 {
            return Err(CollectError::Other(format!(
                "none of the {missing} interfaces of {} is in {}: are procfs and sysfs \
                 from the same network namespace?",
                self.net_dev_path.display(),
                self.class_net.display()
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::test_fixture as fixture;

    /// A fake `/sys` built from a captured `ls -l /sys/class/net` (the
    /// symlinks) and `grep -H . */{address,mtu,...}` (the attributes).
    fn build_sysfs(sys: &Path, ls: &str, attrs: &str) {
        let class_net = sys.join("class/net");
        std::fs::create_dir_all(&class_net).unwrap();
        for line in ls.lines() {
            let Some((left, target)) = line.split_once(" -> ") else {
                continue;
            };
            let name = left.rsplit(' ').next().unwrap();
            let target_dir = class_net.join(target);
            std::fs::create_dir_all(&target_dir).unwrap();
            std::os::unix::fs::symlink(target, class_net.join(name)).unwrap();
        }
        for line in attrs.lines() {
            let (file, value) = line.split_once(':').unwrap();
            std::fs::write(class_net.join(file), format!("{value}\n")).unwrap();
        }
    }

    /// Host roots over a temp dir: `proc/net/dev` and `sys/` from fixtures
    /// of `dir`.
    fn roots_from_fixtures(dir: &str) -> (tempfile::TempDir, HostRoots) {
        let tmp = tempfile::tempdir().unwrap();
        let roots = HostRoots {
            procfs: tmp.path().join("proc"),
            sysfs: tmp.path().join("sys"),
            rootfs: tmp.path().to_path_buf(),
        };
        std::fs::create_dir_all(roots.procfs.join("net")).unwrap();
        std::fs::write(
            roots.procfs.join("net/dev"),
            fixture(&format!("{dir}/net-dev")),
        )
        .unwrap();
        build_sysfs(
            &roots.sysfs,
            &fixture(&format!("{dir}/class-net.ls")),
            &fixture(&format!("{dir}/class-net-attrs.grep")),
        );
        (tmp, roots)
    }

    fn network_metrics(out: Vec<MetricData>) -> Vec<NetworkMetric> {
        out.into_iter()
            .map(|m| match m {
                MetricData::Network(n) => n,
                other => panic!("not a network payload: {other:?}"),
            })
            .collect()
    }

    fn find<'a>(metrics: &'a [NetworkMetric], name: &str) -> &'a NetworkMetric {
        metrics
            .iter()
            .find(|m| m.interface == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    /// Bumps every counter of `name` in `<procfs>/net/dev` by `by`.
    fn bump_counters(roots: &HostRoots, name: &str, by: u64) {
        let path = roots.procfs.join("net/dev");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            match line.split_once(':') {
                Some((n, rest)) if n.trim() == name => {
                    let bumped: Vec<String> = rest
                        .split_whitespace()
                        .map(|v| (v.parse::<u64>().unwrap() + by).to_string())
                        .collect();
                    out.push_str(&format!("{n}: {}\n", bumped.join(" ")));
                }
                _ => out.push_str(&format!("{line}\n")),
            }
        }
        std::fs::write(path, out).unwrap();
    }

    #[test]
    fn this_vm_first_collect_is_empty_then_one_payload_per_interface() {
        let (_tmp, roots) = roots_from_fixtures("linux/debian12-x86_64-docker-vm");
        let mut c = NetworkCollector::new(&roots);
        assert!(c.is_rate_based());
        assert!(c.collect(Utc::now()).unwrap().is_empty());
        bump_counters(&roots, "eth0", 1_000);
        let m = network_metrics(c.collect(Utc::now()).unwrap());
        let names: Vec<&str> = m.iter().map(|m| m.interface.as_str()).collect();
        assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);

        let eth0 = find(&m, "eth0");
        assert_eq!(eth0.mac_address, "02:fc:00:00:00:01");
        assert_eq!(eth0.mtu, 1400);
        assert_eq!(eth0.speed, None, "virtio reports -1");
        assert_eq!(eth0.operstate.as_deref(), Some("up"));
        assert_eq!(eth0.up, Some(true));
        assert_eq!(eth0.is_virtual, Some(false));
        assert!(eth0.rx_bytes > 0.0 && eth0.tx_drops > 0.0, "{eth0:?}");

        let lo = find(&m, "lo");
        assert_eq!(lo.mtu, 65_536);
        assert_eq!(lo.is_virtual, Some(true));
        assert_eq!(lo.up, Some(true), "IFF_UP with operstate unknown");
        assert_eq!(lo.rx_bytes, 0.0, "lo counters did not move");
        assert_eq!(lo.speed, None, "speed file fails with EINVAL (absent)");

        let ifb0 = find(&m, "ifb0");
        assert_eq!(ifb0.up, Some(false));
        assert_eq!(ifb0.is_virtual, Some(true));
        assert_eq!(ifb0.operstate.as_deref(), Some("down"));
    }

    #[test]
    fn server_virtual_interfaces_are_recognisable_and_filterable() {
        let (_tmp, roots) = roots_from_fixtures("linux/server-bond-vlan-docker");
        let mut c = NetworkCollector::new(&roots);
        c.collect(Utc::now()).unwrap();
        let m = network_metrics(c.collect(Utc::now()).unwrap());
        assert_eq!(m.len(), 11);
        let physical: Vec<&str> = m
            .iter()
            .filter(|m| m.is_virtual == Some(false))
            .map(|m| m.interface.as_str())
            .collect();
        assert_eq!(physical, ["eno1", "eno2"]);
        assert_eq!(find(&m, "bond0").speed, Some(2_000));
        assert_eq!(find(&m, "bond0.100").mtu, 9_000);
        assert_eq!(find(&m, "eno1").speed, Some(1_000));
        assert_eq!(find(&m, "docker0").speed, None);
        let wg = find(&m, "wg0");
        assert_eq!(wg.mac_address, "", "wireguard has no MAC");
        assert_eq!(wg.mtu, 1_420);
        assert_eq!(wg.up, Some(true));
        let bridge = find(&m, "br-3f2a9c1d7e4b");
        assert_eq!(bridge.up, Some(true), "admin up");
        assert_eq!(bridge.operstate.as_deref(), Some("down"), "no ports");
    }

    #[test]
    fn raspberry_pi_reports_ethernet_and_wlan_as_physical() {
        let (_tmp, roots) = roots_from_fixtures("linux/raspberrypi4-aarch64");
        let mut c = NetworkCollector::new(&roots);
        c.collect(Utc::now()).unwrap();
        bump_counters(&roots, "wlan0", 10);
        let m = network_metrics(c.collect(Utc::now()).unwrap());
        let wlan = find(&m, "wlan0");
        assert_eq!(wlan.is_virtual, Some(false));
        assert_eq!(wlan.speed, None);
        assert_eq!(wlan.mac_address, "dc:a6:32:4b:7e:02");
        assert!(wlan.rx_bytes > 0.0);
        assert_eq!(find(&m, "eth0").speed, Some(1_000));
        assert_eq!(find(&m, "eth0").rx_bytes, 0.0);
    }

    #[test]
    fn interface_missing_from_sysfs_is_skipped_and_all_missing_is_an_error() {
        let (_tmp, roots) = roots_from_fixtures("linux/raspberrypi4-aarch64");
        let mut c = NetworkCollector::new(&roots);
        c.collect(Utc::now()).unwrap();
        std::fs::remove_file(roots.sysfs.join("class/net/wlan0")).unwrap();
        let m = network_metrics(c.collect(Utc::now()).unwrap());
        let names: Vec<&str> = m.iter().map(|m| m.interface.as_str()).collect();
        assert_eq!(names, ["lo", "eth0"]);

        std::fs::remove_dir_all(roots.sysfs.join("class")).unwrap();
        let err = c.collect(Utc::now()).unwrap_err();
        assert!(err.to_string().contains("namespace"), "{err}");
    }

    #[test]
    fn missing_net_dev_is_an_io_error_naming_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let roots = HostRoots {
            procfs: tmp.path().to_path_buf(),
            sysfs: tmp.path().to_path_buf(),
            rootfs: tmp.path().to_path_buf(),
        };
        match NetworkCollector::new(&roots).collect(Utc::now()) {
            Err(CollectError::Io { path, .. }) => assert!(path.ends_with("net/dev")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn read_net_dev_reads_the_roots_file() {
        let (_tmp, roots) = roots_from_fixtures("linux/server-bond-vlan-docker");
        let entries = read_net_dev(&roots.procfs).unwrap();
        assert_eq!(entries.len(), 11);
    }
}
