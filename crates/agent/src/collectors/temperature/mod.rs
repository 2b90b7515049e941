//! `temperature` collector: one [`TemperatureMetric`] per sensor.
//!
//! - This file: the pure parts — [`parse_millidegrees`], the sysfs file-name
//!   parsers ([`parse_hwmon_temp_file`], [`parse_trip_point_file`]), how
//!   thermal-zone trip points become `max_temp`/`crit_temp`
//!   ([`pick_zone_limits`]) and how sensors are named ([`format_sensor_name`]).
//! - `linux.rs`: [`TemperatureCollector`] walking `<sysfs>/class/hwmon` and
//!   `<sysfs>/class/thermal`; `unsupported.rs`: every other platform.
//!
//! Sources (kernel `Documentation/hwmon/sysfs-interface.rst` and
//! `Documentation/driver-api/thermal/sysfs-api.rst`):
//! - hwmon: `hwmonN/name`, `tempK_input` (millidegrees Celsius),
//!   `tempK_label`, `tempK_max`, `tempK_crit`. Drivers of old kernels put the
//!   files in `hwmonN/device/` instead; both places are read.
//! - thermal zones: `thermal_zoneN/type`, `temp` (millidegrees),
//!   `trip_point_K_type` (`critical`, `hot`, `passive`, `active`) and
//!   `trip_point_K_temp`.
//!
//! Naming: `<hwmon name>/<label or tempK>` (`coretemp/Package id 0`,
//! `nvme/Composite`, `cpu_thermal/temp1`) and `thermal/<zone type>`. When
//! several hwmon devices share a `name` (two NVMe drives, a dual-socket
//! `coretemp`), the chip part becomes `<name>:<device>` with the basename of
//! the `device` link (`nvme:nvme1/Composite`), so the names stay unique and
//! stable across boots (hwmon numbers are not).
//!
//! Duplicates: the thermal core registers an hwmon device for most zones
//! (`thermal_zoneN/hwmonM` exists, e.g. `cpu_thermal` on a Raspberry Pi,
//! `acpitz` on laptops). Such a zone is skipped and only its hwmon sensor is
//! reported; zones without that link (`x86_pkg_temp`) are reported as
//! `thermal/<type>`.
//!
//! Unreadable or unparsable inputs (EIO, ENODATA, EAGAIN: some sensors fail
//! intermittently) are skipped, never reported as 0. A host with no readable
//! sensor at all gets `CollectError::Unsupported("no temperature sensors")`.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod unsupported;

#[cfg(target_os = "linux")]
pub use linux::TemperatureCollector;
#[cfg(not(target_os = "linux"))]
pub use unsupported::TemperatureCollector;

use spectra_protocol::TemperatureMetric;

use super::{Collector, HostRoots, ParseError};

/// The `temperature` collector for this platform.
pub fn new_collector(roots: &HostRoots) -> Box<dyn Collector> {
    Box::new(TemperatureCollector::new(roots))
}

/// Parses a sysfs temperature file (`45000\n`, millidegrees Celsius, may be
/// negative) into degrees Celsius.
pub fn parse_millidegrees(text: &str) -> Result<f64, ParseError> {
    let trimmed = text.trim();
    let millis: i64 = trimmed.parse().map_err(|_| {
        ParseError::new(
            "temperature",
            format!("expected millidegrees, got {trimmed:?}"),
        )
    })?;
    Ok(millis as f64 / 1000.0)
}

/// Splits an hwmon attribute name `temp<K>_<item>` into `(K, item)`:
/// `temp1_input` → `(1, "input")`. Other attributes (`in0_input`,
/// `fan1_input`, `temp1_type`...) come back with their item, or `None` when
/// they are not `temp*`.
pub fn parse_hwmon_temp_file(file_name: &str) -> Option<(u32, &str)> {
    let rest = file_name.strip_prefix("temp")?;
    let (index, item) = rest.split_once('_')?;
    Some((index.parse().ok()?, item))
}

/// Splits a thermal zone attribute name `trip_point_<K>_<item>` into
/// `(K, item)`: `trip_point_0_temp` → `(0, "temp")`.
pub fn parse_trip_point_file(file_name: &str) -> Option<(u32, &str)> {
    let rest = file_name.strip_prefix("trip_point_")?;
    let (index, item) = rest.split_once('_')?;
    Some((index.parse().ok()?, item))
}

/// A thermal zone trip point kind (`trip_point_K_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TripKind {
    Critical,
    Hot,
    Passive,
    Active,
}

impl TripKind {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "critical" => Some(Self::Critical),
            "hot" => Some(Self::Hot),
            "passive" => Some(Self::Passive),
            "active" => Some(Self::Active),
            _ => None,
        }
    }
}

/// `(max_temp, crit_temp)` of a thermal zone from its trip points (°C):
/// `crit` is the lowest `critical` trip (the kernel shuts down there); `max`
/// is the lowest `hot` trip, or else the lowest `passive` trip (where the
/// kernel starts throttling). `active` trips only start fans and are not
/// limits. Trips at or below 0 °C are firmware placeholders for "disabled"
/// (ACPI tables report 0 or -273.2) and are ignored.
pub fn pick_zone_limits(trips: &[(TripKind, f64)]) -> (Option<f64>, Option<f64>) {
    let lowest = |kind: TripKind| {
        trips
            .iter()
            .filter(|(k, t)| *k == kind && *t > 0.0)
            .map(|(_, t)| *t)
            .reduce(f64::min)
    };
    let max = lowest(TripKind::Hot).or_else(|| lowest(TripKind::Passive));
    (max, lowest(TripKind::Critical))
}

/// `<chip>/<label>` or `<chip>/temp<K>` when the sensor has no label.
pub fn format_sensor_name(chip: &str, label: Option<&str>, index: u32) -> String {
    match label {
        Some(label) => format!("{chip}/{label}"),
        None => format!("{chip}/temp{index}"),
    }
}

/// One hwmon temperature channel as read from sysfs (°C).
#[derive(Debug, Clone, PartialEq)]
pub struct HwmonReading {
    pub index: u32,
    pub label: Option<String>,
    pub input: f64,
    pub max: Option<f64>,
    pub crit: Option<f64>,
}

/// The metric of one hwmon channel of chip `chip`.
pub fn compute_hwmon_metric(chip: &str, reading: HwmonReading) -> TemperatureMetric {
    TemperatureMetric {
        sensor: format_sensor_name(chip, reading.label.as_deref(), reading.index),
        temperature: reading.input,
        max_temp: reading.max,
        crit_temp: reading.crit,
        label: reading.label,
    }
}

/// The metric of a thermal zone of type `zone_type`.
pub fn compute_zone_metric(
    zone_type: &str,
    temp: f64,
    trips: &[(TripKind, f64)],
) -> TemperatureMetric {
    let (max_temp, crit_temp) = pick_zone_limits(trips);
    TemperatureMetric {
        sensor: format!("thermal/{zone_type}"),
        temperature: temp,
        max_temp,
        crit_temp,
        label: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_millidegrees_including_negative_and_newline() {
        assert_eq!(parse_millidegrees("45000\n").unwrap(), 45.0);
        assert_eq!(parse_millidegrees("-12500").unwrap(), -12.5);
        assert_eq!(parse_millidegrees("38937\n").unwrap(), 38.937);
        assert!(parse_millidegrees("").is_err());
        assert!(parse_millidegrees("N/A\n").is_err());
    }

    #[test]
    fn splits_hwmon_and_trip_point_file_names() {
        assert_eq!(parse_hwmon_temp_file("temp1_input"), Some((1, "input")));
        assert_eq!(parse_hwmon_temp_file("temp12_crit"), Some((12, "crit")));
        assert_eq!(
            parse_hwmon_temp_file("temp3_crit_alarm"),
            Some((3, "crit_alarm"))
        );
        assert_eq!(parse_hwmon_temp_file("in0_input"), None);
        assert_eq!(parse_hwmon_temp_file("tempx_input"), None);
        assert_eq!(
            parse_trip_point_file("trip_point_0_temp"),
            Some((0, "temp"))
        );
        assert_eq!(
            parse_trip_point_file("trip_point_2_type"),
            Some((2, "type"))
        );
        assert_eq!(parse_trip_point_file("temp"), None);
    }

    #[test]
    fn zone_limits_prefer_hot_then_passive_and_ignore_placeholders() {
        let trips = [
            (TripKind::Active, 60.0),
            (TripKind::Passive, 85.0),
            (TripKind::Hot, 95.0),
            (TripKind::Critical, 105.0),
            (TripKind::Critical, 0.0),
        ];
        assert_eq!(pick_zone_limits(&trips), (Some(95.0), Some(105.0)));
        let passive_only = [(TripKind::Passive, 80.0), (TripKind::Passive, 70.0)];
        assert_eq!(pick_zone_limits(&passive_only), (Some(70.0), None));
        assert_eq!(pick_zone_limits(&[(TripKind::Active, 50.0)]), (None, None));
        assert_eq!(TripKind::parse("critical\n"), Some(TripKind::Critical));
        assert_eq!(TripKind::parse("bogus"), None);
    }

    #[test]
    fn names_sensors_by_label_or_index() {
        assert_eq!(
            format_sensor_name("coretemp", Some("Package id 0"), 1),
            "coretemp/Package id 0"
        );
        assert_eq!(
            format_sensor_name("cpu_thermal", None, 1),
            "cpu_thermal/temp1"
        );
    }
}
