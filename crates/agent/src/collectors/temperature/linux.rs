//! Linux `temperature`: `<sysfs>/class/hwmon/hwmon*` and
//! `<sysfs>/class/thermal/thermal_zone*` (layout and rules in the module docs).
//!
//! The trees are listed again on every collect (a few `readdir`s and small
//! reads, every 10 s) so hot-plugged drives and sensors that come and go are
//! followed without bookkeeping; one read buffer is reused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use spectra_protocol::{MetricData, TemperatureMetric};
use tracing::debug;

use super::{
    compute_hwmon_metric, compute_zone_metric, parse_hwmon_temp_file, parse_millidegrees,
    parse_trip_point_file, HwmonReading, TripKind,
};
use crate::collectors::{read_file_into, CollectError, Collector, CollectorKind, HostRoots};

pub struct TemperatureCollector {
    hwmon_dir: PathBuf,
    thermal_dir: PathBuf,
    /// Reused read buffer.
    buf: String,
}

/// One hwmon device: where its `tempK_*` files are and what it is called.
struct HwmonChip {
    /// `hwmonN` itself, or `hwmonN/device` on old kernels.
    attr_dir: PathBuf,
    name: String,
    /// Basename of the `device` link (`nvme0`, `coretemp.0`), or `hwmonN`.
    device_id: String,
    /// `K` of every `tempK_input` present.
    indices: Vec<u32>,
}

/// How many sensors were seen and how many could be read this cycle.
#[derive(Default)]
struct Tally {
    found: usize,
}

impl TemperatureCollector {
    pub fn new(roots: &HostRoots) -> Self {
        Self {
            hwmon_dir: roots.sysfs.join("class/hwmon"),
            thermal_dir: roots.sysfs.join("class/thermal"),
            buf: String::new(),
        }
    }

    /// Reads `path` trimmed into the buffer; `None` when it cannot be read
    /// (absent, EIO, ENODATA...) or is empty.
    fn read_trimmed(&mut self, path: &Path) -> Option<String> {
        match read_file_into(path, &mut self.buf) {
            Ok(()) => {
                let t = self.buf.trim();
                (!t.is_empty()).then(|| t.to_owned())
            }
            Err(_) => None,
        }
    }

    /// A temperature file in °C; `None` (logged at debug) when unreadable
    /// or not a number: some sensors fail intermittently.
    fn read_degrees(&mut self, path: &Path) -> Option<f64> {
        if let Err(e) = read_file_into(path, &mut self.buf) {
            debug!(path = %path.display(), error = %e, "temperature file unreadable; skipped");
            return None;
        }
        match parse_millidegrees(&self.buf) {
            Ok(v) => Some(v),
            Err(e) => {
                debug!(path = %path.display(), error = %e, "temperature file unparsable; skipped");
                None
            }
        }
    }

    fn read_hwmon_chips(&mut self) -> Vec<HwmonChip> {
        let mut chips = Vec::new();
        for dir in list_dir_sorted(&self.hwmon_dir, "hwmon") {
            let dir_name = file_name_of(&dir);
            let device = dir.join("device");
            // Old kernels: attributes (and sometimes `name`) under `device/`.
            let mut attr_dir = dir.clone();
            let mut indices = list_temp_inputs(&dir);
            if indices.is_empty() {
                indices = list_temp_inputs(&device);
                attr_dir = device.clone();
            }
            if indices.is_empty() {
                continue;
            }
            let name = self
                .read_trimmed(&dir.join("name"))
                .or_else(|| self.read_trimmed(&device.join("name")))
                .unwrap_or_else(|| dir_name.clone());
            let device_id = std::fs::read_link(&device)
                .ok()
                .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or(dir_name);
            chips.push(HwmonChip {
                attr_dir,
                name,
                device_id,
                indices,
            });
        }
        chips
    }

    fn read_hwmon(&mut self, out: &mut Vec<TemperatureMetric>, tally: &mut Tally) {
        let chips = self.read_hwmon_chips();
        let mut name_counts: HashMap<&str, usize> = HashMap::new();
        for chip in &chips {
            *name_counts.entry(chip.name.as_str()).or_default() += 1;
        }
        for chip in &chips {
            let chip_name = if name_counts.get(chip.name.as_str()).copied() > Some(1) {
                format!("{}:{}", chip.name, chip.device_id)
            } else {
                chip.name.clone()
            };
            for &index in &chip.indices {
                tally.found += 1;
                let file = |item: &str| chip.attr_dir.join(format!("temp{index}_{item}"));
                let Some(input) = self.read_degrees(&file("input")) else {
                    continue;
                };
                let reading = HwmonReading {
                    index,
                    label: self.read_trimmed(&file("label")),
                    input,
                    max: self.read_degrees_if_exists(&file("max")),
                    crit: self.read_degrees_if_exists(&file("crit")),
                };
                out.push(compute_hwmon_metric(&chip_name, reading));
            }
        }
    }

    /// Optional attributes (`max`, `crit`) are absent on many chips: only
    /// try to read those that exist, so debug logs stay about real failures.
    fn read_degrees_if_exists(&mut self, path: &Path) -> Option<f64> {
        if path.exists() {
            self.read_degrees(path)
        } else {
            None
        }
    }

    fn read_thermal_zones(&mut self, out: &mut Vec<TemperatureMetric>, tally: &mut Tally) {
        for zone in list_dir_sorted(&self.thermal_dir, "thermal_zone") {
            let Ok(entries) = std::fs::read_dir(&zone) else {
                continue;
            };
            let mut has_hwmon = false;
            let mut trip_indices = Vec::new();
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("hwmon") {
                    has_hwmon = true;
                } else if let Some((k, "type")) = parse_trip_point_file(&name) {
                    trip_indices.push(k);
                }
            }
            // The thermal core also registered this zone as an hwmon device:
            // it is reported from there, once.
            if has_hwmon {
                continue;
            }
            tally.found += 1;
            let Some(temp) = self.read_degrees(&zone.join("temp")) else {
                continue;
            };
            let zone_type = self
                .read_trimmed(&zone.join("type"))
                .unwrap_or_else(|| file_name_of(&zone));
            trip_indices.sort_unstable();
            let mut trips = Vec::with_capacity(trip_indices.len());
            for k in trip_indices {
                let kind = self
                    .read_trimmed(&zone.join(format!("trip_point_{k}_type")))
                    .and_then(|t| TripKind::parse(&t));
                let Some(kind) = kind else { continue };
                if let Some(t) = self.read_degrees(&zone.join(format!("trip_point_{k}_temp"))) {
                    trips.push((kind, t));
                }
            }
            out.push(compute_zone_metric(&zone_type, temp, &trips));
        }
    }

    /// Every readable sensor, hwmon first then thermal zones.
    pub fn read_sensors(&mut self) -> Result<Vec<TemperatureMetric>, CollectError> {
        let mut out = Vec::new();
        let mut tally = Tally::default();
        self.read_hwmon(&mut out, &mut tally);
        self.read_thermal_zones(&mut out, &mut tally);
        if out.is_empty() {
            if tally.found == 0 {
                return Err(CollectError::Unsupported("no temperature sensors".into()));
            }
            // Sensors exist but all failed this time: transient, not
            // Unsupported (which would stop the collector for good).
            return Err(CollectError::Other(format!(
                "{} temperature sensors found, none readable",
                tally.found
            )));
        }
        Ok(out)
    }
}

impl Collector for TemperatureCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Temperature
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Ok(self
            .read_sensors()?
            .into_iter()
            .map(MetricData::Temperature)
            .collect())
    }
}

fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Entries of `dir` named `<prefix><number>`, in numeric order (`hwmon2`
/// before `hwmon10`). A missing directory is an empty list.
fn list_dir_sorted(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?.strip_prefix(prefix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort_unstable_by_key(|(n, _)| *n);
    found.into_iter().map(|(_, p)| p).collect()
}

/// `K` of every `tempK_input` in `dir`, sorted.
fn list_temp_inputs(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut indices: Vec<u32> = entries
        .flatten()
        .filter_map(|e| match parse_hwmon_temp_file(e.file_name().to_str()?) {
            Some((k, "input")) => Some(k),
            _ => None,
        })
        .collect();
    indices.sort_unstable();
    indices
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_roots(machine: &str) -> HostRoots {
        HostRoots {
            sysfs: PathBuf::from(format!(
                "{}/tests/fixtures/linux/{machine}/sys",
                env!("CARGO_MANIFEST_DIR")
            )),
            ..HostRoots::default()
        }
    }

    fn read(machine: &str) -> Result<Vec<TemperatureMetric>, CollectError> {
        TemperatureCollector::new(&fixture_roots(machine)).read_sensors()
    }

    fn find<'a>(sensors: &'a [TemperatureMetric], name: &str) -> &'a TemperatureMetric {
        sensors
            .iter()
            .find(|s| s.sensor == name)
            .unwrap_or_else(|| panic!("{name} not in {sensors:#?}"))
    }

    #[test]
    fn reads_an_intel_laptop_with_coretemp_nvme_and_acpi_zones() {
        let sensors = read("hwmon-intel-laptop").unwrap();
        let names: Vec<&str> = sensors.iter().map(|s| s.sensor.as_str()).collect();
        assert_eq!(
            names,
            [
                "acpitz/temp1",
                "nvme/Composite",
                "nvme/Sensor 1",
                "coretemp/Package id 0",
                "coretemp/Core 0",
                "coretemp/Core 1",
                "thermal/x86_pkg_temp",
            ],
            "hwmon in hwmonN order, then zones; the acpitz zone (linked to hwmon0) is reported once"
        );
        let package = find(&sensors, "coretemp/Package id 0");
        assert_eq!(package.temperature, 52.0);
        assert_eq!(package.max_temp, Some(100.0));
        assert_eq!(package.crit_temp, Some(100.0));
        assert_eq!(package.label.as_deref(), Some("Package id 0"));
        let nvme = find(&sensors, "nvme/Composite");
        assert_eq!(nvme.temperature, 38.85);
        assert_eq!(nvme.max_temp, Some(81.85));
        assert_eq!(nvme.crit_temp, Some(84.85));
        let pkg_zone = find(&sensors, "thermal/x86_pkg_temp");
        assert_eq!(pkg_zone.temperature, 53.0);
        assert_eq!((pkg_zone.max_temp, pkg_zone.crit_temp), (None, None));
        let acpi = find(&sensors, "acpitz/temp1");
        assert_eq!(acpi.crit_temp, Some(105.0));
        assert_eq!(acpi.label, None);
    }

    #[test]
    fn reads_a_raspberry_pi_cpu_sensor_once() {
        let sensors = read("hwmon-raspberrypi4").unwrap();
        assert_eq!(sensors.len(), 1, "{sensors:#?}");
        let cpu = &sensors[0];
        assert_eq!(cpu.sensor, "cpu_thermal/temp1");
        assert_eq!(cpu.temperature, 48.686);
        assert_eq!(cpu.crit_temp, Some(110.0));
    }

    #[test]
    fn reads_an_amd_server_and_skips_the_failing_sensor() {
        let sensors = read("hwmon-amd-server").unwrap();
        let names: Vec<&str> = sensors.iter().map(|s| s.sensor.as_str()).collect();
        // temp2_input of the second nvme is a directory (read fails with
        // EISDIR, standing in for EIO): skipped, not reported as 0.
        assert_eq!(
            names,
            [
                "k10temp/Tctl",
                "k10temp/Tccd1",
                "nvme:nvme0/Composite",
                "nvme:nvme1/Composite",
            ]
        );
        assert_eq!(find(&sensors, "k10temp/Tctl").temperature, 61.25);
        assert_eq!(find(&sensors, "k10temp/Tccd1").temperature, 55.5);
        assert_eq!(find(&sensors, "nvme:nvme1/Composite").temperature, 41.85);
        assert!(sensors.iter().all(|s| s.temperature != 0.0));
    }

    #[test]
    fn reads_attributes_under_device_on_old_kernels() {
        let sensors = read("hwmon-old-kernel-device-dir").unwrap();
        assert_eq!(sensors.len(), 2, "{sensors:#?}");
        let cpu = find(&sensors, "it8712/temp1");
        assert_eq!(cpu.temperature, 43.0);
        assert_eq!(cpu.max_temp, Some(70.0));
        assert_eq!(find(&sensors, "it8712/temp2").temperature, 35.0);
    }

    #[test]
    fn no_sensors_is_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("class/hwmon/hwmon0")).unwrap();
        std::fs::write(dir.path().join("class/hwmon/hwmon0/name"), "acpi_fan\n").unwrap();
        let roots = HostRoots {
            sysfs: dir.path().to_path_buf(),
            ..HostRoots::default()
        };
        let err = TemperatureCollector::new(&roots)
            .collect(Utc::now())
            .unwrap_err();
        assert!(
            matches!(&err, CollectError::Unsupported(m) if m == "no temperature sensors"),
            "{err:?}"
        );
    }

    #[test]
    fn sensors_present_but_all_failing_is_a_transient_error() {
        let dir = tempfile::tempdir().unwrap();
        let hwmon = dir.path().join("class/hwmon/hwmon0");
        std::fs::create_dir_all(hwmon.join("temp1_input")).unwrap();
        std::fs::write(hwmon.join("name"), "drivetemp\n").unwrap();
        let roots = HostRoots {
            sysfs: dir.path().to_path_buf(),
            ..HostRoots::default()
        };
        let err = TemperatureCollector::new(&roots)
            .collect(Utc::now())
            .unwrap_err();
        assert!(matches!(err, CollectError::Other(_)), "{err:?}");
    }
}
