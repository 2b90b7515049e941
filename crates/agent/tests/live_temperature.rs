//! Live check of `temperature` on this host: either the host has no
//! sensors and the collector says `Unsupported`, or every sensor it reports
//! equals its sysfs file / 1000. Which case applied is printed.

#![cfg(target_os = "linux")]

use std::path::Path;

use chrono::Utc;
use spectra_agent::collectors::temperature::new_collector;
use spectra_agent::collectors::{CollectError, HostRoots};
use spectra_protocol::MetricData;

/// Every `(sensor file, millidegrees)` readable right now under hwmon and
/// thermal zones: the values the collector may legitimately report.
fn read_sysfs_millidegrees() -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let mut scan = |dir: &Path, want: &dyn Fn(&str) -> bool| {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !want(&name) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(e.path()) {
                if let Ok(v) = text.trim().parse::<i64>() {
                    out.push((e.path().display().to_string(), v));
                }
            }
        }
    };
    for class in ["/sys/class/hwmon", "/sys/class/thermal"] {
        let Ok(devices) = std::fs::read_dir(class) else {
            continue;
        };
        for dev in devices.flatten() {
            let p = dev.path();
            scan(&p, &|n| {
                n == "temp" || (n.starts_with("temp") && n.ends_with("_input"))
            });
            scan(&p.join("device"), &|n| {
                n.starts_with("temp") && n.ends_with("_input")
            });
        }
    }
    out
}

/// The collector's sensors as `(name, °C)`, or its error.
fn collect_sensors() -> Result<Vec<(String, f64)>, CollectError> {
    let metrics = new_collector(&HostRoots::default()).collect(Utc::now())?;
    Ok(metrics
        .into_iter()
        .map(|m| match m {
            MetricData::Temperature(t) => (t.sensor, t.temperature),
            other => panic!("not a temperature: {other:?}"),
        })
        .collect())
}

#[test]
fn reports_unsupported_or_exactly_the_sysfs_values() {
    // Sensors move: the collector's value must equal a sysfs value read
    // just before or just after it; a few attempts absorb a change that
    // lands exactly between the reads.
    let mut last_mismatch = Vec::new();
    for attempt in 1..=5 {
        let before = read_sysfs_millidegrees();
        let result = collect_sensors();
        let after = read_sysfs_millidegrees();
        let sensors = match result {
            Err(CollectError::Unsupported(msg)) => {
                println!("no sensors on this host: Unsupported({msg:?}); sysfs has {before:?}");
                assert_eq!(msg, "no temperature sensors");
                assert!(
                    before.is_empty() && after.is_empty(),
                    "collector says no sensors but sysfs has readable ones: {before:?}"
                );
                return;
            }
            Err(e) => panic!("unexpected error: {e:?}"),
            Ok(sensors) => sensors,
        };
        assert!(!sensors.is_empty());
        println!("attempt {attempt}: {} sensors reported", sensors.len());
        let sysfs_degrees: Vec<f64> = before
            .iter()
            .chain(&after)
            .map(|(_, v)| *v as f64 / 1000.0)
            .collect();
        last_mismatch = sensors
            .iter()
            .filter(|(_, t)| !sysfs_degrees.contains(t))
            .cloned()
            .collect();
        for (name, t) in &sensors {
            println!("  {name} = {t} °C");
        }
        if last_mismatch.is_empty() {
            println!("every reported sensor equals a sysfs file / 1000");
            return;
        }
    }
    panic!("sensors matching no sysfs value after 5 attempts: {last_mismatch:?}");
}
