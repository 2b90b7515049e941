//! Linux `service_list`: systemd's units over the system bus.
//!
//! Calls carry `NO_AUTO_START`: on a host without systemd running, a bus
//! that knows an activation file for `org.freedesktop.systemd1` (Debian's
//! systemd package installs one) would otherwise try to start it; a monitor
//! must not, and the bus answers "no owner" instead.
//!
//! The D-Bus connection is opened on the first cycle and kept: connecting
//! costs a socket, the SASL handshake and a `Hello` round trip, a cycle only
//! the two calls. Any error drops it and the next cycle reconnects (the bus
//! daemon restarted, systemd re-executed...).
//!
//! zbus is async; the [`Collector`] trait is sync, so each cycle is one
//! `zbus::block_on`, which (with zbus's `tokio` feature) drives the
//! connection on a small single-threaded Tokio runtime of zbus's own. Its
//! tasks run only inside that call: between cycles nothing of ours runs.
//! That call runs on a short-lived thread of its own: Tokio panics when a
//! runtime is started on a thread that drives another, which is where
//! `spectra-agent collect` calls collectors from (the scheduler uses its
//! blocking pool, where it would work); one thread spawn per minute is the
//! price of never panicking, whoever calls.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use spectra_protocol::{MetricData, ServiceListMetric};
use zbus::proxy::{CacheProperties, MethodFlags};
use zbus::{fdo, Connection, OwnedObjectPath, Proxy};

use super::{compute_service_list, index_unit_file_states, ListedUnit, DEFAULT_UNIT_SUFFIX};
use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

const SYSTEMD_NAME: &str = "org.freedesktop.systemd1";
const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER_INTERFACE: &str = "org.freedesktop.systemd1.Manager";

/// The system bus socket under the host's root (the D-Bus specification's
/// well-known system bus address).
const SYSTEM_BUS_SOCKET: &str = "run/dbus/system_bus_socket";

/// One whole cycle (connect, both calls) must end within this: a hung bus
/// must not hold one of the scheduler's blocking threads.
const DEFAULT_CYCLE_TIMEOUT: Duration = Duration::from_secs(10);

/// One `ListUnits` row, `(ssssssouso)` (org.freedesktop.systemd1(5)).
type UnitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

/// The system bus address: `DBUS_SYSTEM_BUS_ADDRESS` when set and not
/// empty (as libdbus and sd-bus honour it), else the well-known socket under
/// the host's root, so an agent in a container with the host's `/` mounted
/// reaches the host's systemd.
pub fn system_bus_address(rootfs: &Path, from_env: Option<&str>) -> String {
    match from_env {
        Some(address) if !address.trim().is_empty() => address.to_owned(),
        _ => format!(
            "unix:path={}",
            escape_address_value(&rootfs.join(SYSTEM_BUS_SOCKET).to_string_lossy())
        ),
    }
}

/// Escapes a D-Bus address value: bytes outside `[-0-9A-Za-z_/.\*]` become
/// `%xx` (D-Bus specification, "Server Addresses").
fn escape_address_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_/.\\*".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

pub struct ServiceListCollector {
    address: String,
    unit_suffix: String,
    cycle_timeout: Duration,
    /// systemd's Manager on the kept connection.
    manager: Option<Proxy<'static>>,
}

impl ServiceListCollector {
    /// The host's system bus (see [`system_bus_address`]).
    pub fn new(roots: &HostRoots) -> Self {
        let from_env = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").ok();
        Self::with_bus_address(system_bus_address(&roots.rootfs, from_env.as_deref()))
    }

    /// A collector that asks the bus at `address` (a D-Bus address such as
    /// `unix:path=/run/dbus/system_bus_socket`). Nothing is opened until
    /// the first collect.
    pub fn with_bus_address(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            unit_suffix: DEFAULT_UNIT_SUFFIX.to_owned(),
            cycle_timeout: DEFAULT_CYCLE_TIMEOUT,
            manager: None,
        }
    }

    /// Reports units of another type (`.timer`, `.socket`...) instead of
    /// services.
    pub fn with_unit_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.unit_suffix = suffix.into();
        self
    }

    pub fn bus_address(&self) -> &str {
        &self.address
    }

    /// Whether a connection is kept for the next cycle.
    pub fn is_connected(&self) -> bool {
        self.manager.is_some()
    }

    /// One cycle: the units and their unit-file states, over the kept
    /// connection (opened first if needed). Any error drops the connection.
    pub fn read_services(&mut self) -> Result<ServiceListMetric, CollectError> {
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("service_list".to_owned())
                .spawn_scoped(scope, || self.read_services_on_this_thread())
                .map_err(|e| CollectError::Other(format!("starting the D-Bus thread: {e}")))?;
            worker
                .join()
                .unwrap_or_else(|_| Err(CollectError::Other("the D-Bus thread panicked".into())))
        })
    }

    /// One cycle on the calling thread, which must not be driving a Tokio
    /// runtime.
    fn read_services_on_this_thread(&mut self) -> Result<ServiceListMetric, CollectError> {
        let timeout = self.cycle_timeout;
        let result = zbus::block_on(async {
            match tokio::time::timeout(timeout, self.query()).await {
                Ok(result) => result,
                Err(_) => Err(CollectError::Other(format!(
                    "systemd did not answer over {} within {:.0} s",
                    self.address,
                    timeout.as_secs_f64()
                ))),
            }
        });
        if result.is_err() {
            // Dropped inside block_on: the connection's tasks live on the
            // runtime that call drives.
            let manager = self.manager.take();
            zbus::block_on(async move { drop(manager) });
        }
        result
    }

    async fn query(&mut self) -> Result<ServiceListMetric, CollectError> {
        let manager = match &self.manager {
            Some(m) => m.clone(),
            None => {
                let m = manager_proxy(&connect(&self.address).await?, &self.address).await?;
                self.manager = Some(m.clone());
                m
            }
        };
        let rows: Vec<UnitRow> = call_manager(&manager, &self.address, "ListUnits").await?;
        let files: Vec<(String, String)> =
            call_manager(&manager, &self.address, "ListUnitFiles").await?;
        let states = index_unit_file_states(files);
        Ok(build_metric(rows, &states, &self.unit_suffix))
    }
}

/// Maps `ListUnits` rows (only the five fields Spectra reports) and
/// builds the payload.
fn build_metric(
    rows: Vec<UnitRow>,
    file_states: &HashMap<String, String>,
    unit_suffix: &str,
) -> ServiceListMetric {
    let units = rows.into_iter().map(listed_unit).collect();
    compute_service_list(units, file_states, unit_suffix)
}

fn listed_unit(row: UnitRow) -> ListedUnit {
    let (name, description, load_state, active_state, sub_state, ..) = row;
    ListedUnit {
        name,
        description,
        load_state,
        active_state,
        sub_state,
    }
}

async fn connect(address: &str) -> Result<Connection, CollectError> {
    zbus::connection::Builder::address(address)
        .build()
        .await
        .map_err(|e| match &e {
            zbus::Error::Connection(io, _) if io.kind() == ErrorKind::NotFound => {
                CollectError::Unsupported(format!(
                    "no systemd: no system bus at {address} (the socket does not exist)"
                ))
            }
            _ => CollectError::Other(format!("connecting to the system bus at {address}: {e}")),
        })
}

/// systemd's Manager, without the property cache (it would subscribe to
/// `PropertiesChanged` and fetch every property: traffic for nothing).
async fn manager_proxy(
    connection: &Connection,
    address: &str,
) -> Result<Proxy<'static>, CollectError> {
    zbus::proxy::Builder::<Proxy<'static>>::new(connection)
        .destination(SYSTEMD_NAME)
        .path(SYSTEMD_PATH)
        .interface(MANAGER_INTERFACE)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(|e| CollectError::Other(format!("systemd Manager proxy over {address}: {e}")))
}

/// Calls a no-argument method of systemd's Manager, never auto-starting
/// it, and decodes its reply.
async fn call_manager<T>(
    manager: &Proxy<'_>,
    address: &str,
    method: &str,
) -> Result<T, CollectError>
where
    T: for<'d> zbus::wire::DynamicDeserialize<'d>,
{
    manager
        .call_with_flags(method, MethodFlags::NO_AUTO_START, &())
        .await
        .map_err(|e| call_error(address, method, e))?
        .ok_or_else(|| CollectError::Other(format!("systemd {method} over {address}: no reply")))
}

/// The bus answers for a name nobody owns with `ServiceUnknown` (or
/// `NameHasNoOwner`): no systemd on this bus, an explicit unsupported state.
fn call_error(address: &str, method: &str, e: zbus::Error) -> CollectError {
    match &e {
        zbus::Error::FDO(fdo_error) => match fdo_error.as_ref() {
            fdo::Error::ServiceUnknown(message) | fdo::Error::NameHasNoOwner(message) => {
                CollectError::Unsupported(format!(
                    "no systemd: {SYSTEMD_NAME} is not on the system bus at {address} ({message})"
                ))
            }
            _ => CollectError::Other(format!("systemd {method} over {address}: {e}")),
        },
        _ => CollectError::Other(format!("systemd {method} over {address}: {e}")),
    }
}

impl Collector for ServiceListCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::ServiceList
    }

    /// A D-Bus round trip to another process.
    fn may_block(&self) -> bool {
        true
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Ok(vec![MetricData::ServiceList(self.read_services()?)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, description: &str, load: &str, active: &str, sub: &str) -> UnitRow {
        let path = |p: &str| OwnedObjectPath::try_from(p.to_owned()).unwrap();
        (
            name.into(),
            description.into(),
            load.into(),
            active.into(),
            sub.into(),
            String::new(),
            path("/org/freedesktop/systemd1/unit/ssh_2eservice"),
            0,
            String::new(),
            path("/"),
        )
    }

    #[test]
    fn the_bus_address_is_under_the_root_unless_the_environment_says() {
        assert_eq!(
            system_bus_address(Path::new("/"), None),
            "unix:path=/run/dbus/system_bus_socket"
        );
        assert_eq!(
            system_bus_address(Path::new("/host"), Some("")),
            "unix:path=/host/run/dbus/system_bus_socket"
        );
        assert_eq!(
            system_bus_address(Path::new("/host"), Some("unix:path=/x/bus,guid=1")),
            "unix:path=/x/bus,guid=1"
        );
    }

    #[test]
    fn escapes_a_root_with_characters_the_address_syntax_reserves() {
        assert_eq!(
            system_bus_address(Path::new("/mnt/host root,1"), None),
            "unix:path=/mnt/host%20root%2c1/run/dbus/system_bus_socket"
        );
    }

    #[test]
    fn maps_the_list_units_tuple_keeping_the_five_reported_fields() {
        let states = index_unit_file_states([(
            "/lib/systemd/system/ssh.service".to_owned(),
            "enabled".to_owned(),
        )]);
        let metric = build_metric(
            vec![
                row(
                    "ssh.service",
                    "OpenBSD Secure Shell server",
                    "loaded",
                    "active",
                    "running",
                ),
                row(
                    "dbus.socket",
                    "D-Bus System Message Bus Socket",
                    "loaded",
                    "active",
                    "running",
                ),
            ],
            &states,
            DEFAULT_UNIT_SUFFIX,
        );
        assert_eq!(
            metric.services,
            [spectra_protocol::ServiceInfo {
                name: "ssh.service".into(),
                status: "active".into(),
                sub_status: "running".into(),
                load_state: "loaded".into(),
                description: "OpenBSD Secure Shell server".into(),
                enabled: Some("enabled".into()),
            }]
        );
    }

    #[test]
    fn a_missing_name_on_the_bus_is_unsupported_other_errors_are_not() {
        let unknown = zbus::Error::FDO(Box::new(fdo::Error::ServiceUnknown(
            "The name is not activatable".into(),
        )));
        match call_error("unix:path=/b", "ListUnits", unknown) {
            CollectError::Unsupported(m) => {
                assert!(m.starts_with("no systemd: "), "{m}");
                assert!(
                    m.contains("unix:path=/b") && m.contains("not activatable"),
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
        let denied = zbus::Error::FDO(Box::new(fdo::Error::AccessDenied("policy".into())));
        assert!(matches!(
            call_error("unix:path=/b", "ListUnits", denied),
            CollectError::Other(m) if m.contains("ListUnits") && m.contains("policy")
        ));
    }
}
