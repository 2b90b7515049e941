//! `service_list` collector: the host's systemd services with their load,
//! active and sub states and whether they are enabled (SPEC §2, Appendix A).
//!
//! - This file: the pure parts, tested on data shaped like systemd's own:
//!   [`ListedUnit`] (one row of `ListUnits`), [`index_unit_file_states`]
//!   (the rows of `ListUnitFiles`, keyed by unit name) and
//!   [`compute_service_list`] (filter, map, sort).
//! - `linux.rs`: [`ServiceListCollector`]: asks systemd over the system bus
//!   (D-Bus, `org.freedesktop.systemd1.Manager`), keeping the connection
//!   between cycles.
//! - `unsupported.rs`: every other platform says so explicitly.
//!
//! Two calls per cycle, whatever the number of units: `ListUnits` gives
//! every loaded unit's name, description and states, `ListUnitFiles` every
//! unit file's enablement (`enabled`, `disabled`, `static`, `masked`, ...).
//! Per-unit `GetUnitFileState` would cost one round trip per service.
//! A unit with no unit file of its own (a template instance such as
//! `getty@tty1.service`, a transient unit, a unit that was not found) has no
//! `enabled` rather than a guessed one.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod unsupported;

#[cfg(target_os = "linux")]
pub use linux::{system_bus_address, ServiceListCollector};
#[cfg(not(target_os = "linux"))]
pub use unsupported::ServiceListCollector;

use std::cmp::Ordering;
use std::collections::HashMap;

use spectra_protocol::{ServiceInfo, ServiceListMetric};

use super::{Collector, HostRoots};

/// The unit type reported by default: services, as `systemctl
/// list-units --type=service` shows them.
pub const DEFAULT_UNIT_SUFFIX: &str = ".service";

/// The collector for this platform (SPEC §2 `service_list`).
pub fn new_collector(roots: &HostRoots) -> Box<dyn Collector> {
    Box::new(ServiceListCollector::new(roots))
}

/// The fields of one `ListUnits` row the collector keeps (the D-Bus
/// signature is `a(ssssssouso)`: name, description, load state, active
/// state, sub state, followed unit, object path, job id, job type, job
/// path; see org.freedesktop.systemd1(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUnit {
    pub name: String,
    pub description: String,
    /// `loaded`, `not-found`, `masked`, `bad-setting`, `error`...
    pub load_state: String,
    /// `active`, `inactive`, `failed`, `activating`, `deactivating`...
    pub active_state: String,
    /// Type-specific: `running`, `exited`, `dead`, `failed`...
    pub sub_state: String,
}

/// Indexes `ListUnitFiles` rows (`a(ss)`: unit file path, enablement
/// state) by unit name, the path's last component. When the same name is
/// in several unit directories, the first row wins: systemd lists them in
/// search-path order and the first is the one it uses.
pub fn index_unit_file_states<I>(files: I) -> HashMap<String, String>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut states = HashMap::new();
    for (path, state) in files {
        let name = path.rsplit('/').next().unwrap_or(&path);
        if name.is_empty() {
            continue;
        }
        states.entry(name.to_owned()).or_insert(state);
    }
    states
}

/// The units whose name ends in `unit_suffix`, as [`ServiceInfo`]s with
/// their enablement from `file_states`, failed units first, then by name.
pub fn compute_service_list(
    units: Vec<ListedUnit>,
    file_states: &HashMap<String, String>,
    unit_suffix: &str,
) -> ServiceListMetric {
    let mut services: Vec<ServiceInfo> = units
        .into_iter()
        .filter(|u| u.name.ends_with(unit_suffix))
        .map(|u| to_service_info(u, file_states))
        .collect();
    services.sort_by(compare_services);
    ServiceListMetric { services }
}

/// Maps one unit; `status` is systemd's active state as it is (SPEC
/// Appendix A names `active`, `inactive` and `failed`; the transitional
/// states are passed through rather than folded into one of those).
pub fn to_service_info(unit: ListedUnit, file_states: &HashMap<String, String>) -> ServiceInfo {
    let enabled = file_states.get(&unit.name).cloned();
    ServiceInfo {
        name: unit.name,
        status: unit.active_state,
        sub_status: unit.sub_state,
        load_state: unit.load_state,
        description: unit.description,
        enabled,
    }
}

/// Failed services first (what an administrator looks for), then by name.
pub fn compare_services(a: &ServiceInfo, b: &ServiceInfo) -> Ordering {
    let failed = |s: &ServiceInfo| s.status != "failed";
    failed(a).cmp(&failed(b)).then_with(|| a.name.cmp(&b.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, load: &str, active: &str, sub: &str, description: &str) -> ListedUnit {
        ListedUnit {
            name: name.to_owned(),
            description: description.to_owned(),
            load_state: load.to_owned(),
            active_state: active.to_owned(),
            sub_state: sub.to_owned(),
        }
    }

    fn files(rows: &[(&str, &str)]) -> HashMap<String, String> {
        index_unit_file_states(rows.iter().map(|(p, s)| ((*p).to_owned(), (*s).to_owned())))
    }

    #[test]
    fn indexes_unit_file_states_by_file_name_first_directory_wins() {
        let states = files(&[
            ("/etc/systemd/system/nginx.service", "masked"),
            ("/lib/systemd/system/nginx.service", "enabled"),
            ("/lib/systemd/system/getty@.service", "enabled"),
            ("/lib/systemd/system/", "bogus"),
        ]);
        assert_eq!(states.len(), 2, "{states:?}");
        assert_eq!(states["nginx.service"], "masked");
        assert_eq!(states["getty@.service"], "enabled");
    }

    #[test]
    fn maps_a_unit_with_its_enablement() {
        let states = files(&[("/lib/systemd/system/ssh.service", "enabled")]);
        let info = to_service_info(
            unit(
                "ssh.service",
                "loaded",
                "active",
                "running",
                "OpenBSD Secure Shell server",
            ),
            &states,
        );
        assert_eq!(
            info,
            ServiceInfo {
                name: "ssh.service".into(),
                status: "active".into(),
                sub_status: "running".into(),
                load_state: "loaded".into(),
                description: "OpenBSD Secure Shell server".into(),
                enabled: Some("enabled".into()),
            }
        );
    }

    #[test]
    fn an_instance_without_its_own_unit_file_has_no_enablement() {
        let states = files(&[("/lib/systemd/system/getty@.service", "enabled")]);
        let info = to_service_info(
            unit(
                "getty@tty1.service",
                "loaded",
                "active",
                "running",
                "Getty on tty1",
            ),
            &states,
        );
        assert_eq!(info.enabled, None);
    }

    #[test]
    fn keeps_only_services_failed_first_then_by_name() {
        let units = vec![
            unit(
                "systemd-journald.socket",
                "loaded",
                "active",
                "running",
                "Journal Socket",
            ),
            unit(
                "ssh.service",
                "loaded",
                "active",
                "running",
                "OpenBSD Secure Shell server",
            ),
            unit(
                "apt-daily.service",
                "loaded",
                "inactive",
                "dead",
                "Daily apt download activities",
            ),
            unit("zz-broken.service", "loaded", "failed", "failed", "Broken"),
            unit(
                "cron.service",
                "loaded",
                "activating",
                "start",
                "Regular background program processing daemon",
            ),
            unit(
                "ab-broken.service",
                "not-found",
                "failed",
                "failed",
                "ab-broken.service",
            ),
            unit("-.mount", "loaded", "active", "mounted", "Root Mount"),
        ];
        let metric = compute_service_list(units, &HashMap::new(), DEFAULT_UNIT_SUFFIX);
        let names: Vec<(&str, &str)> = metric
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.status.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("ab-broken.service", "failed"),
                ("zz-broken.service", "failed"),
                ("apt-daily.service", "inactive"),
                ("cron.service", "activating"),
                ("ssh.service", "active"),
            ]
        );
    }

    #[test]
    fn another_suffix_selects_another_unit_type() {
        let units = vec![
            unit("ssh.service", "loaded", "active", "running", "ssh"),
            unit(
                "apt-daily.timer",
                "loaded",
                "active",
                "waiting",
                "Daily apt download activities",
            ),
        ];
        let states = files(&[("/lib/systemd/system/apt-daily.timer", "enabled")]);
        let metric = compute_service_list(units, &states, ".timer");
        assert_eq!(metric.services.len(), 1);
        assert_eq!(metric.services[0].name, "apt-daily.timer");
        assert_eq!(metric.services[0].enabled.as_deref(), Some("enabled"));
    }

    #[test]
    fn no_units_is_an_empty_list() {
        let metric = compute_service_list(Vec::new(), &HashMap::new(), DEFAULT_UNIT_SUFFIX);
        assert!(metric.services.is_empty());
    }
}
