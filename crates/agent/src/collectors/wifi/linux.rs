//! Linux `wifi`: wireless interfaces from `<sysfs>/class/net/<if>/`
//! (`phy80211` for cfg80211 drivers, `wireless` for wireless extensions),
//! SSID, frequency, signal and bitrate from nl80211, and signal and quality
//! from `<procfs>/net/wireless`.
//!
//! The netlink socket (with the `nl80211` family id) is kept between
//! cycles. A kernel without nl80211 is asked again each cycle (cfg80211 is
//! loaded when a WiFi device appears; asking costs one round trip) and
//! `/proc/net/wireless` serves meanwhile; any other nl80211 error drops the
//! socket, is logged, and the cycle falls back to `/proc` too.

use std::io::ErrorKind;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;
use tracing::{debug, warn};

use super::netlink::{Nl80211Error, Nl80211Socket};
use super::nl80211::Nl80211Link;
use super::{compute_wifi_metrics, parse_proc_net_wireless, WirelessInterface};
use crate::collectors::{read_file_into, CollectError, Collector, CollectorKind, HostRoots};

pub struct WifiCollector {
    proc_wireless: PathBuf,
    class_net: PathBuf,
    buf: String,
    /// `None`: nl80211 is not asked (tests over fixture roots).
    nl80211: Option<Nl80211State>,
}

#[derive(Default)]
struct Nl80211State {
    socket: Option<Nl80211Socket>,
    /// The last reason nl80211 was not usable, logged when it changes.
    unavailable: Option<String>,
}

impl WifiCollector {
    pub fn new(roots: &HostRoots) -> Self {
        Self {
            nl80211: Some(Nl80211State::default()),
            ..Self::without_nl80211(roots)
        }
    }

    /// Reads only sysfs and `/proc/net/wireless` under `roots`: for tests
    /// whose fixture roots must not be mixed with this host's nl80211.
    pub fn without_nl80211(roots: &HostRoots) -> Self {
        Self {
            proc_wireless: roots.procfs.join("net/wireless"),
            class_net: roots.sysfs.join("class/net"),
            buf: String::new(),
            nl80211: None,
        }
    }

    /// What nl80211 says of this host's wireless links; empty (logged)
    /// when it cannot be asked.
    fn read_nl80211_links(&mut self) -> Vec<Nl80211Link> {
        let Some(state) = self.nl80211.as_mut() else {
            return Vec::new();
        };
        let result = match state.socket.as_mut() {
            Some(socket) => socket.read_links(),
            None => Nl80211Socket::open().and_then(|mut socket| {
                let links = socket.read_links();
                state.socket = Some(socket);
                links
            }),
        };
        match result {
            Ok(links) => {
                state.unavailable = None;
                links
            }
            Err(e) => {
                state.socket = None;
                let reason = e.to_string();
                if state.unavailable.as_deref() != Some(reason.as_str()) {
                    match e {
                        Nl80211Error::NoFamily => {
                            debug!(error = %reason, "nl80211 unavailable; /proc/net/wireless only")
                        }
                        _ => warn!(error = %reason, "nl80211 failed; /proc/net/wireless only"),
                    }
                    state.unavailable = Some(reason);
                }
                Vec::new()
            }
        }
    }

    /// Every interface of `<sysfs>/class/net` that is wireless. An
    /// unreadable directory lists none: `/proc/net/wireless` may still.
    fn read_wireless_interfaces(&self) -> Vec<WirelessInterface> {
        let Ok(dir) = std::fs::read_dir(&self.class_net) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in dir.flatten() {
            let path = entry.path();
            let is_cfg80211 = path.join("phy80211").exists();
            if is_cfg80211 || path.join("wireless").exists() {
                out.push(WirelessInterface {
                    name: entry.file_name().to_string_lossy().into_owned(),
                    is_cfg80211,
                });
            }
        }
        out
    }
}

impl Collector for WifiCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Wifi
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        let interfaces = self.read_wireless_interfaces();
        // Absent when the kernel has no wireless extensions compatibility
        // (CONFIG_WEXT_PROC), e.g. on this project's development VM.
        let entries = match read_file_into(&self.proc_wireless, &mut self.buf) {
            Ok(()) => parse_proc_net_wireless(&self.buf)?,
            Err(CollectError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        let links = self.read_nl80211_links();
        let metrics = compute_wifi_metrics(&interfaces, &entries, &links);
        if metrics.is_empty() {
            // The scheduler reports this once and stops asking (SPEC §2).
            return Err(CollectError::Unsupported(
                "no wireless interface".to_owned(),
            ));
        }
        Ok(metrics.into_iter().map(MetricData::Wifi).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::test_fixture as fixture;

    fn roots(tmp: &tempfile::TempDir) -> HostRoots {
        HostRoots {
            procfs: tmp.path().join("proc"),
            sysfs: tmp.path().join("sys"),
            rootfs: tmp.path().to_path_buf(),
        }
    }

    fn write_proc_wireless(roots: &HostRoots, fixture_path: &str) {
        std::fs::create_dir_all(roots.procfs.join("net")).unwrap();
        std::fs::write(roots.procfs.join("net/wireless"), fixture(fixture_path)).unwrap();
    }

    /// `<sysfs>/class/net/<name>/` with `extra` (`phy80211`, `wireless`)
    /// inside.
    fn add_interface(roots: &HostRoots, name: &str, extra: &[&str]) {
        let dir = roots.sysfs.join("class/net").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for e in extra {
            std::fs::create_dir_all(dir.join(e)).unwrap();
        }
    }

    #[test]
    fn raspberry_pi_wlan0_reports_signal_and_quality() {
        let tmp = tempfile::tempdir().unwrap();
        let roots = roots(&tmp);
        write_proc_wireless(&roots, "linux/raspberrypi4-aarch64/net-wireless");
        add_interface(&roots, "eth0", &[]);
        add_interface(&roots, "lo", &[]);
        add_interface(&roots, "wlan0", &["phy80211", "wireless"]);
        let out = WifiCollector::without_nl80211(&roots)
            .collect(Utc::now())
            .unwrap();
        let [MetricData::Wifi(m)] = out.as_slice() else {
            panic!("expected one wifi payload: {out:?}");
        };
        assert_eq!(m.interface, "wlan0");
        assert_eq!(m.signal_dbm, Some(-63.0));
        assert_eq!(m.link_quality, Some(67.14));
        assert_eq!(m.ssid, None);
    }

    #[test]
    fn wireless_interface_without_proc_file_is_listed_with_unknown_values() {
        let tmp = tempfile::tempdir().unwrap();
        let roots = roots(&tmp);
        add_interface(&roots, "wlp2s0", &["phy80211"]);
        let out = WifiCollector::without_nl80211(&roots)
            .collect(Utc::now())
            .unwrap();
        let [MetricData::Wifi(m)] = out.as_slice() else {
            panic!("{out:?}");
        };
        assert_eq!(m.interface, "wlp2s0");
        assert_eq!(m.signal_dbm, None);
        assert_eq!(m.link_quality, None);
    }

    #[test]
    fn no_wireless_interface_is_unsupported() {
        let tmp = tempfile::tempdir().unwrap();
        let roots = roots(&tmp);
        add_interface(&roots, "eth0", &[]);
        // As on this VM: no /proc/net/wireless at all.
        let err = WifiCollector::without_nl80211(&roots)
            .collect(Utc::now())
            .unwrap_err();
        assert!(
            matches!(&err, CollectError::Unsupported(m) if m == "no wireless interface"),
            "{err:?}"
        );
        // A kernel with wext but no wireless device: header-only file.
        write_proc_wireless(
            &roots,
            "linux/debian12-x86_64-docker-vm/net-wireless-no-devices",
        );
        let err = WifiCollector::without_nl80211(&roots)
            .collect(Utc::now())
            .unwrap_err();
        assert!(matches!(err, CollectError::Unsupported(_)), "{err:?}");
    }

    /// Live: this kernel either speaks nl80211 (then interfaces can be
    /// listed) or says clearly why not. This project's VM has no cfg80211.
    #[test]
    fn resolving_nl80211_here_works_or_gives_a_clear_reason() {
        match Nl80211Socket::open() {
            Ok(mut socket) => {
                // Dynamic genl family ids start after the controller's 0x10.
                assert!(socket.family_id() > 0x10, "{}", socket.family_id());
                let links = socket.read_links().unwrap();
                println!("nl80211 family {}: {links:?}", socket.family_id());
                assert!(links.iter().all(|l| !l.interface.name.is_empty()));
            }
            Err(e @ Nl80211Error::NoFamily) => {
                assert!(e.to_string().contains("cfg80211"), "{e}");
                println!("no nl80211 here: {e}");
            }
            Err(e @ Nl80211Error::Socket(_)) => {
                // A sandbox that forbids netlink sockets: a reason, no panic.
                println!("no generic netlink socket here: {e}");
            }
            Err(e) => panic!("nl80211 resolution failed unexpectedly: {e}"),
        }
    }

    /// Live: the whole collector on this host, nl80211 included.
    #[test]
    fn the_live_collector_reports_interfaces_or_that_there_are_none() {
        let mut collector = WifiCollector::new(&HostRoots::default());
        match collector.collect(Utc::now()) {
            Ok(metrics) => assert!(!metrics.is_empty()),
            Err(CollectError::Unsupported(m)) => assert_eq!(m, "no wireless interface"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn garbled_proc_file_is_a_parse_error() {
        let tmp = tempfile::tempdir().unwrap();
        let roots = roots(&tmp);
        add_interface(&roots, "wlan0", &["phy80211"]);
        std::fs::create_dir_all(roots.procfs.join("net")).unwrap();
        std::fs::write(roots.procfs.join("net/wireless"), "garbage\n").unwrap();
        let err = WifiCollector::without_nl80211(&roots)
            .collect(Utc::now())
            .unwrap_err();
        assert!(matches!(err, CollectError::Parse { .. }), "{err:?}");
    }
}
