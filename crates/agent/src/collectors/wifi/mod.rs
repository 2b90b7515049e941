//! `wifi` collector: SSID, signal, link quality, frequency and bitrate of
//! each wireless interface.
//!
//! - This file: the pure parts. [`parse_proc_net_wireless`] reads
//!   `/proc/net/wireless`; [`compute_link_quality_pct`] scales the link
//!   quality; [`compute_wifi_metrics`] joins the wireless interfaces found
//!   in sysfs, that file's lines and what nl80211 said.
//! - `nl80211.rs`: nl80211 (generic netlink) requests and the pure parsers
//!   of their replies, tested on byte fixtures.
//! - `netlink.rs` (Linux): the netlink socket that carries them.
//! - `linux.rs`: [`WifiCollector`], listing wireless interfaces in
//!   `<sysfs>/class/net/<if>/{phy80211,wireless}`, asking nl80211 and
//!   reading `<procfs>/net/wireless`; `unsupported.rs`: everything else.
//!
//! SSID, frequency and bitrate exist only over nl80211
//! (`NL80211_CMD_GET_INTERFACE`, `NL80211_CMD_GET_STATION`): on a kernel
//! without it (no cfg80211) those fields are `None`, never guessed, and
//! `/proc/net/wireless` still gives the signal level and link quality.
//! nl80211 answers for the agent's network namespace (netlink has no host
//! root to point at): an agent in a container needs the host's network.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub mod netlink;
pub mod nl80211;
#[cfg(not(target_os = "linux"))]
mod unsupported;

#[cfg(target_os = "linux")]
pub use linux::WifiCollector;
#[cfg(not(target_os = "linux"))]
pub use unsupported::WifiCollector;

use spectra_protocol::WifiMetric;

use self::nl80211::Nl80211Link;
use super::cpu::round_pct;
use super::{skip_two_line_header, Collector, HostRoots, ParseError};

/// The `wifi` collector for this platform (Linux: the real one; elsewhere:
/// one that answers [`super::CollectError::Unsupported`]).
pub fn new_collector(roots: &HostRoots) -> Box<dyn Collector> {
    Box::new(WifiCollector::new(roots))
}

/// The top of the link-quality scale of every cfg80211 driver (all of
/// mac80211, and fullmac drivers such as brcmfmac): cfg80211's wext
/// compatibility (`net/wireless/wext-compat.c`, `cfg80211_wireless_stats`)
/// clamps the signal to -110..-40 dBm and reports `signal + 110`, i.e.
/// 0..70, with `max_qual.qual = 70`.
pub const CFG80211_LINK_QUALITY_MAX: f64 = 70.0;

/// One interface line of `/proc/net/wireless`.
#[derive(Debug, Clone, PartialEq)]
pub struct WirelessEntry {
    pub interface: String,
    /// Link quality on the driver's scale (0..70 for cfg80211); `None` when
    /// the interface is not associated.
    pub link: Option<f64>,
    /// Signal level in dBm; `None` when not associated or when the driver
    /// reports a relative level instead of dBm.
    pub level_dbm: Option<f64>,
    /// Noise in dBm; `None` when the driver does not know it (cfg80211
    /// never does: it prints -256).
    pub noise_dbm: Option<f64>,
}

/// Parses `/proc/net/wireless` (kernel `net/wireless/wext-proc.c`):
///
/// ```text
/// Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE
///  face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22
///  wlan0: 0000   47.  -63.  -256        0      0      0      0      4        0
/// ```
///
/// Two header lines, then per interface `name: status link level noise`
/// and six discard/miss counters. Each of link, level and noise is followed
/// by `.` when the driver updated it and by a space otherwise. With dBm
/// units the kernel prints `level - 256`, so a noise of `-256` is "no
/// value". An interface that is not associated prints all zeros
/// (`wext-proc.c` shows a zeroed `nullstats`).
pub fn parse_proc_net_wireless(text: &str) -> Result<Vec<WirelessEntry>, ParseError> {
    const WHAT: &str = "/proc/net/wireless";
    let mut lines = text.lines();
    skip_two_line_header(&mut lines, WHAT)?;
    let mut out = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let (name, rest) = line
            .split_once(':')
            .ok_or_else(|| ParseError::new(WHAT, format!("no ':' in line {line:?}")))?;
        let name = name.trim();
        let mut fields = rest.split_ascii_whitespace();
        // The status word (`%04x`) is not reported.
        let _status = fields.next();
        let mut next_value = |what: &str| -> Result<i32, ParseError> {
            let field = fields
                .next()
                .ok_or_else(|| ParseError::new(WHAT, format!("{name}: no {what}")))?;
            field
                .trim_end_matches('.')
                .parse()
                .map_err(|_| ParseError::new(WHAT, format!("{name}: bad {what} {field:?}")))
        };
        let link = next_value("link quality")?;
        let level = next_value("signal level")?;
        let noise = next_value("noise level")?;
        let associated = link != 0 || level != 0;
        out.push(WirelessEntry {
            interface: name.to_owned(),
            link: associated.then_some(f64::from(link)),
            level_dbm: (associated && level < 0 && level > -256).then_some(f64::from(level)),
            noise_dbm: (noise < 0 && noise > -256).then_some(f64::from(noise)),
        });
    }
    Ok(out)
}

/// Link quality in % of the driver's scale: `link / max × 100`, clamped to
/// 0..100 and rounded to 2 decimals. For cfg80211 drivers `max` is
/// [`CFG80211_LINK_QUALITY_MAX`], so 70 is 100 % (-40 dBm or better) and
/// 35 is 50 % (-75 dBm).
pub fn compute_link_quality_pct(link: f64, max: f64) -> Option<f64> {
    if max <= 0.0 {
        return None;
    }
    Some(round_pct((link / max * 100.0).clamp(0.0, 100.0)))
}

/// A wireless interface found in sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WirelessInterface {
    pub name: String,
    /// `phy80211` exists: the driver is a cfg80211 one, so its link
    /// quality is on the 0..70 scale. Old wext-only drivers have their own
    /// scale, unknown without the SIOCGIWRANGE ioctl: no percentage then.
    pub is_cfg80211: bool,
}

/// cfg80211's own link quality for a signal (what it prints in
/// `/proc/net/wireless`, see [`CFG80211_LINK_QUALITY_MAX`]): the signal
/// clamped to -110..-40 dBm, plus 110.
pub fn cfg80211_link_quality(signal_dbm: f64) -> f64 {
    signal_dbm.clamp(-110.0, -40.0) + 110.0
}

/// One [`WifiMetric`] per wireless interface: every interface sysfs or
/// nl80211 lists, plus any `/proc/net/wireless` names that neither did (a
/// wireless line is proof enough). nl80211 gives SSID, frequency and TX
/// bitrate, and its station signal is preferred (it is what `iw` shows;
/// `/proc` has the same value through cfg80211's wext compatibility).
/// Sorted by interface name.
pub fn compute_wifi_metrics(
    interfaces: &[WirelessInterface],
    entries: &[WirelessEntry],
    links: &[Nl80211Link],
) -> Vec<WifiMetric> {
    let mut out: Vec<WifiMetric> = Vec::with_capacity(interfaces.len().max(entries.len()));
    let mut add = |name: &str, is_cfg80211: bool| {
        if out.iter().any(|m| m.interface == name) {
            return;
        }
        let entry = entries.iter().find(|e| e.interface == name);
        let link = links.iter().find(|l| l.interface.name == name);
        let station = link.and_then(|l| l.station);
        let nl_signal = station.and_then(|s| s.signal_dbm).map(f64::from);
        let link_quality = entry
            .and_then(|e| e.link)
            .or_else(|| nl_signal.map(cfg80211_link_quality))
            .filter(|_| is_cfg80211)
            .and_then(|q| compute_link_quality_pct(q, CFG80211_LINK_QUALITY_MAX));
        out.push(WifiMetric {
            interface: name.to_owned(),
            signal_dbm: nl_signal.or_else(|| entry.and_then(|e| e.level_dbm)),
            link_quality,
            ssid: link
                .and_then(|l| l.interface.ssid.as_deref())
                .map(nl80211::format_ssid),
            frequency_ghz: link
                .and_then(|l| l.interface.frequency_mhz)
                .map(|mhz| f64::from(mhz) / 1000.0),
            bitrate_mbps: station
                .and_then(|s| s.tx_bitrate_100kbps)
                .map(|r| f64::from(r) / 10.0),
        });
    };
    for iface in interfaces {
        add(&iface.name, iface.is_cfg80211);
    }
    for link in links {
        // nl80211 speaks only for cfg80211 drivers.
        add(&link.interface.name, true);
    }
    for entry in entries {
        // Not in sysfs: the driver is unknown, so is its quality scale.
        add(&entry.interface, false);
    }
    out.sort_by(|a, b| a.interface.cmp(&b.interface));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::test_fixture as fixture;

    #[test]
    fn parses_laptop_iwlwifi_associated_and_idle_dongle() {
        let entries =
            parse_proc_net_wireless(&fixture("linux/laptop-iwlwifi/net-wireless")).unwrap();
        assert_eq!(
            entries,
            vec![
                WirelessEntry {
                    interface: "wlp0s20f3".to_owned(),
                    link: Some(70.0),
                    level_dbm: Some(-38.0),
                    noise_dbm: None,
                },
                WirelessEntry {
                    interface: "wlp4s0u1".to_owned(),
                    link: None,
                    level_dbm: None,
                    noise_dbm: None,
                },
            ]
        );
    }

    #[test]
    fn parses_raspberry_pi_brcmfmac() {
        let entries =
            parse_proc_net_wireless(&fixture("linux/raspberrypi4-aarch64/net-wireless")).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].interface, "wlan0");
        assert_eq!(entries[0].link, Some(47.0));
        assert_eq!(entries[0].level_dbm, Some(-63.0));
        assert_eq!(entries[0].noise_dbm, None, "-256 is no value");
    }

    #[test]
    fn header_only_file_has_no_interfaces() {
        let text = fixture("linux/debian12-x86_64-docker-vm/net-wireless-no-devices");
        assert!(parse_proc_net_wireless(&text).unwrap().is_empty());
    }

    #[test]
    fn legacy_driver_with_real_noise_and_relative_level() {
        let text = "Inter-| sta-|\n face | tus |\n  eth1: 0000   60.  -55.  -92.       0      0      0      0      0        0\n  ath0: 0001   40.   190.  0        0      0      0      0      0        0\n";
        let entries = parse_proc_net_wireless(text).unwrap();
        assert_eq!(entries[0].noise_dbm, Some(-92.0));
        assert_eq!(entries[0].level_dbm, Some(-55.0));
        // A positive level is in the driver's relative units, not dBm.
        assert_eq!(entries[1].level_dbm, None);
        assert_eq!(entries[1].link, Some(40.0));
    }

    #[test]
    fn rejects_missing_header_and_garbage() {
        assert!(parse_proc_net_wireless("").is_err());
        let text = "Inter-|\n face |\n wlan0: 0000   x.  -63.  -256\n";
        assert!(parse_proc_net_wireless(text).is_err());
        let text = "Inter-|\n face |\n wlan0: 0000   47.\n";
        assert!(parse_proc_net_wireless(text).is_err());
        let text = "Inter-|\n face |\n wlan0 0000   47.\n";
        assert!(parse_proc_net_wireless(text).is_err());
    }

    #[test]
    fn link_quality_is_a_share_of_the_70_scale() {
        assert_eq!(compute_link_quality_pct(70.0, 70.0), Some(100.0));
        assert_eq!(compute_link_quality_pct(35.0, 70.0), Some(50.0));
        assert_eq!(compute_link_quality_pct(47.0, 70.0), Some(67.14));
        assert_eq!(compute_link_quality_pct(0.0, 70.0), Some(0.0));
        assert_eq!(compute_link_quality_pct(80.0, 70.0), Some(100.0));
        assert_eq!(compute_link_quality_pct(10.0, 0.0), None);
    }

    #[test]
    fn metrics_join_sysfs_interfaces_with_proc_lines() {
        let entries =
            parse_proc_net_wireless(&fixture("linux/laptop-iwlwifi/net-wireless")).unwrap();
        let interfaces = [
            WirelessInterface {
                name: "wlp4s0u1".to_owned(),
                is_cfg80211: true,
            },
            WirelessInterface {
                name: "wlp0s20f3".to_owned(),
                is_cfg80211: true,
            },
        ];
        let m = compute_wifi_metrics(&interfaces, &entries, &[]);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].interface, "wlp0s20f3");
        assert_eq!(m[0].signal_dbm, Some(-38.0));
        assert_eq!(m[0].link_quality, Some(100.0));
        assert_eq!(m[0].ssid, None);
        assert_eq!(m[0].frequency_ghz, None);
        assert_eq!(m[0].bitrate_mbps, None);
        // Not associated: the interface is listed, its signal is unknown.
        assert_eq!(m[1].interface, "wlp4s0u1");
        assert_eq!(m[1].signal_dbm, None);
        assert_eq!(m[1].link_quality, None);
    }

    /// The byte fixtures of `nl80211.rs`, parsed as the collector does.
    fn laptop_links() -> Vec<Nl80211Link> {
        use nl80211::fixtures::*;
        use nl80211::*;
        let dump = [laptop_interface(1), idle_dongle_interface(1), done(1)].concat();
        let station = laptop_station(2);
        let station = parse_station(parse_messages(&station).unwrap()[0].payload).unwrap();
        parse_messages(&dump)
            .unwrap()
            .iter()
            .filter(|m| m.msg_type != NLMSG_DONE)
            .map(|m| {
                let interface = parse_interface(m.payload).unwrap();
                let station = interface.ssid.is_some().then_some(station);
                Nl80211Link { interface, station }
            })
            .collect()
    }

    #[test]
    fn nl80211_adds_ssid_frequency_and_bitrate_to_the_proc_values() {
        let entries =
            parse_proc_net_wireless(&fixture("linux/laptop-iwlwifi/net-wireless")).unwrap();
        let m = compute_wifi_metrics(&[], &entries, &laptop_links());
        assert_eq!(
            m,
            [
                WifiMetric {
                    interface: "wlp0s20f3".into(),
                    ssid: Some("HomeNet".into()),
                    signal_dbm: Some(-38.0),
                    link_quality: Some(100.0),
                    frequency_ghz: Some(5.18),
                    bitrate_mbps: Some(866.7),
                },
                WifiMetric {
                    interface: "wlp4s0u1".into(),
                    ..WifiMetric::default()
                },
            ]
        );
    }

    #[test]
    fn nl80211_alone_gives_signal_and_cfg80211_quality() {
        // A kernel without CONFIG_WEXT_PROC: no /proc/net/wireless.
        let m = compute_wifi_metrics(&[], &[], &laptop_links());
        assert_eq!(m[0].signal_dbm, Some(-38.0));
        // -38 dBm is past cfg80211's -40 dBm ceiling: 70 of 70.
        assert_eq!(m[0].link_quality, Some(100.0));
        assert_eq!(cfg80211_link_quality(-75.0), 35.0);
        assert_eq!(cfg80211_link_quality(-120.0), 0.0);
    }

    #[test]
    fn quality_needs_a_known_scale_and_proc_only_interfaces_are_kept() {
        let entries =
            parse_proc_net_wireless(&fixture("linux/raspberrypi4-aarch64/net-wireless")).unwrap();
        // wlan0 not in sysfs: signal from /proc, quality scale unknown.
        let m = compute_wifi_metrics(&[], &entries, &[]);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].signal_dbm, Some(-63.0));
        assert_eq!(m[0].link_quality, None);
        // In sysfs with phy80211 (brcmfmac is cfg80211): 47 / 70.
        let cfg = [WirelessInterface {
            name: "wlan0".to_owned(),
            is_cfg80211: true,
        }];
        let m = compute_wifi_metrics(&cfg, &entries, &[]);
        assert_eq!(m.len(), 1, "listed once though found twice");
        assert_eq!(m[0].link_quality, Some(67.14));
        // A sysfs interface without a /proc line: listed, values unknown.
        assert_eq!(compute_wifi_metrics(&cfg, &[], &[])[0].signal_dbm, None);
        assert!(compute_wifi_metrics(&[], &[], &[]).is_empty());
    }
}
