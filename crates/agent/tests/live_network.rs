//! Live-host checks of the `network` and `wifi` collectors against this
//! machine's kernel files and `ip -j link`. Only what holds on any Linux
//! host is asserted.

#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use chrono::Utc;
use spectra_agent::collectors::network::{self, read_net_dev};
use spectra_agent::collectors::{wifi, CollectError, HostRoots};
use spectra_protocol::{MetricData, NetworkMetric};

fn read_sys_u64(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_sys_text(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// `[rx_bytes, tx_bytes, rx_packets, tx_packets]` of every interface in
/// `/sys/class/net/<if>/statistics`.
fn read_sysfs_statistics(names: &[String]) -> BTreeMap<String, [u64; 4]> {
    names
        .iter()
        .map(|name| {
            let dir = Path::new("/sys/class/net").join(name).join("statistics");
            let v = ["rx_bytes", "tx_bytes", "rx_packets", "tx_packets"]
                .map(|f| read_sys_u64(&dir.join(f)));
            (name.clone(), v)
        })
        .collect()
}

#[test]
fn net_dev_counters_match_sysfs_statistics_read_around_them() {
    let procfs = Path::new("/proc");
    let names: Vec<String> = read_net_dev(procfs)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(
        names.iter().any(|n| n == "lo"),
        "every Linux network namespace has lo: {names:?}"
    );
    // sysfs, then the collector's parse, then sysfs again: counters only
    // grow, so each parsed value lies between the two sysfs reads.
    let before = read_sysfs_statistics(&names);
    let parsed = read_net_dev(procfs).unwrap();
    let after = read_sysfs_statistics(&names);
    for entry in &parsed {
        let (Some(b), Some(a)) = (before.get(&entry.name), after.get(&entry.name)) else {
            println!("{}: appeared between the reads, not compared", entry.name);
            continue;
        };
        let c = &entry.counters;
        let got = [c.rx_bytes, c.tx_bytes, c.rx_packets, c.tx_packets];
        for (i, field) in ["rx_bytes", "tx_bytes", "rx_packets", "tx_packets"]
            .iter()
            .enumerate()
        {
            assert!(
                b[i] <= got[i] && got[i] <= a[i],
                "{} {field}: /proc/net/dev says {}, sysfs {} before and {} after",
                entry.name,
                got[i],
                b[i],
                a[i]
            );
        }
    }
}

fn collect_network_twice() -> Vec<NetworkMetric> {
    let mut c = network::new_collector(&HostRoots::default());
    assert!(c.is_rate_based());
    assert!(c.collect(Utc::now()).unwrap().is_empty(), "first call");
    c.collect(Utc::now())
        .unwrap()
        .into_iter()
        .map(|m| match m {
            MetricData::Network(n) => n,
            other => panic!("not a network payload: {other:?}"),
        })
        .collect()
}

#[test]
fn collector_reports_every_interface_with_sysfs_mtu_mac_and_virtual_flag() {
    let metrics = collect_network_twice();
    let mut from_proc: Vec<String> = read_net_dev(Path::new("/proc"))
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    let mut reported: Vec<String> = metrics.iter().map(|m| m.interface.clone()).collect();
    from_proc.sort();
    reported.sort();
    assert_eq!(reported, from_proc);

    for m in &metrics {
        let dir = Path::new("/sys/class/net").join(&m.interface);
        assert_eq!(
            u64::from(m.mtu),
            read_sys_u64(&dir.join("mtu")),
            "{}",
            m.interface
        );
        assert_eq!(
            m.mac_address,
            read_sys_text(&dir.join("address")),
            "{}",
            m.interface
        );
        let is_virtual = Path::new("/sys/devices/virtual/net")
            .join(&m.interface)
            .exists();
        assert_eq!(m.is_virtual, Some(is_virtual), "{}", m.interface);
        for rate in [
            m.rx_bytes,
            m.rx_packets,
            m.rx_errors,
            m.rx_drops,
            m.tx_bytes,
            m.tx_packets,
            m.tx_errors,
            m.tx_drops,
        ] {
            assert!(rate.is_finite() && rate >= 0.0, "{m:?}");
        }
        if let Some(speed) = m.speed {
            assert!(speed > 0, "{m:?}");
        }
    }
    let lo = metrics.iter().find(|m| m.interface == "lo").unwrap();
    assert_eq!(lo.is_virtual, Some(true));
    assert_eq!(lo.up, Some(true), "lo is up on any running host");
    assert_eq!(lo.speed, None, "lo has no link speed");
}

#[test]
fn collector_agrees_with_ip_link_on_mtu_and_mac() {
    let Some(out) = Command::new("ip")
        .args(["-j", "link"])
        .output()
        .ok()
        .filter(|o| o.status.success())
    else {
        println!("SKIPPED comparison: `ip -j link` is not available on this host");
        return;
    };
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let links = links.as_array().unwrap();
    let metrics = collect_network_twice();
    let mut compared = 0;
    for m in &metrics {
        let Some(link) = links.iter().find(|l| l["ifname"] == m.interface.as_str()) else {
            println!("{}: not in `ip -j link` (vanished?)", m.interface);
            continue;
        };
        assert_eq!(
            link["mtu"].as_u64(),
            Some(u64::from(m.mtu)),
            "{}",
            m.interface
        );
        // ip prints no address for interfaces without one (tun, wg).
        let ip_mac = link["address"].as_str().unwrap_or("");
        assert_eq!(ip_mac, m.mac_address, "{}", m.interface);
        compared += 1;
    }
    assert!(compared > 0, "no interface compared: {metrics:?}");
}

#[test]
fn wifi_reports_each_wireless_interface_or_says_unsupported() {
    let wireless: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("phy80211").exists() || e.path().join("wireless").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let result = wifi::new_collector(&HostRoots::default()).collect(Utc::now());
    if wireless.is_empty() && !Path::new("/proc/net/wireless").exists() {
        println!("no wireless interface on this host: expecting Unsupported");
        let err = result.unwrap_err();
        assert!(
            matches!(&err, CollectError::Unsupported(m) if m == "no wireless interface"),
            "{err:?}"
        );
        return;
    }
    match result {
        Ok(out) => {
            for name in &wireless {
                assert!(
                    out.iter()
                        .any(|m| matches!(m, MetricData::Wifi(w) if &w.interface == name)),
                    "{name} missing from {out:?}"
                );
            }
            for m in &out {
                let MetricData::Wifi(w) = m else {
                    panic!("not a wifi payload: {m:?}");
                };
                if let Some(q) = w.link_quality {
                    assert!((0.0..=100.0).contains(&q), "{w:?}");
                }
                if let Some(dbm) = w.signal_dbm {
                    assert!(dbm < 0.0, "{w:?}");
                }
            }
        }
        Err(CollectError::Unsupported(m)) => {
            assert!(wireless.is_empty(), "{wireless:?} exist but: {m}")
        }
        Err(e) => panic!("{e}"),
    }
}
