//! Collectors: one module per domain (SPEC §2).
//!
//! Each domain module holds its public types and pure maths in `mod.rs` and
//! its platform parts in `linux.rs` / `windows.rs` / `unsupported.rs`,
//! chosen by `#[cfg]` on the `mod` lines. `read_*` functions do I/O;
//! `parse_*(&str)` functions are pure and tested on fixtures captured from
//! real machines (`tests/fixtures/`).
//!
//! [`CollectorKind`] lists every collector of SPEC §2 with its default
//! interval; [`build`] makes the collector for a kind on this platform, and
//! a kind this agent does not implement yet becomes a collector that answers
//! [`CollectError::NotImplemented`], so the server is told explicitly.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

/// Where the host's `/proc`, `/sys` and `/` are (SPEC §2:
/// `SPECTRA_PROCFS`, `SPECTRA_SYSFS`, `SPECTRA_ROOTFS`), so an agent in a
/// container with the host mounted reports the host. Passed in, never global.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoots {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
}

impl Default for HostRoots {
    fn default() -> Self {
        Self {
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
        }
    }
}

/// Why a collector produced no data.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// Cannot run on this host (not a Pi, no systemd, no WiFi...). Reported
    /// once; the scheduler stops calling the collector.
    #[error("unsupported on this host: {0}")]
    Unsupported(String),
    /// This agent version does not implement the collector yet.
    #[error("not yet available in this agent version")]
    NotImplemented,
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {what}: {message}")]
    Parse { what: String, message: String },
    #[error("{0}")]
    Other(String),
}

/// A parse failure from a pure `parse_*` function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {message}")]
pub struct ParseError {
    pub what: &'static str,
    pub message: String,
}

impl ParseError {
    pub fn new(what: &'static str, message: impl Into<String>) -> Self {
        Self {
            what,
            message: message.into(),
        }
    }
}

impl From<ParseError> for CollectError {
    fn from(e: ParseError) -> Self {
        CollectError::Parse {
            what: e.what.to_owned(),
            message: e.message,
        }
    }
}

/// One collector. `collect` is synchronous: kernel-file collectors cost
/// microseconds; collectors that may block say so with [`Collector::may_block`]
/// and are run off the scheduler's thread with a timeout.
pub trait Collector: Send {
    fn kind(&self) -> CollectorKind;

    /// Rate-based collectors need a previous sample: their first call
    /// returns `Ok(vec![])`.
    fn is_rate_based(&self) -> bool {
        false
    }

    /// Statvfs on a network mount, subprocesses, D-Bus...
    fn may_block(&self) -> bool {
        false
    }

    /// One sample of this collector's payloads (one per entity for
    /// per-entity collectors). `now` is the scheduled tick.
    fn collect(&mut self, now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError>;
}

/// Every collector of SPEC §2 (append-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CollectorKind {
    Cpu,
    Memory,
    Disk,
    DiskIo,
    Network,
    ProcessList,
    ServiceList,
    Temperature,
    Wifi,
    ContainerList,
    System,
    ApplicationList,
    Updates,
    Pi,
    Agent,
}

impl CollectorKind {
    pub const ALL: [CollectorKind; 15] = [
        Self::Cpu,
        Self::Memory,
        Self::Disk,
        Self::DiskIo,
        Self::Network,
        Self::ProcessList,
        Self::ServiceList,
        Self::Temperature,
        Self::Wifi,
        Self::ContainerList,
        Self::System,
        Self::ApplicationList,
        Self::Updates,
        Self::Pi,
        Self::Agent,
    ];

    /// The name used in config files, `--collector` and `collector_status`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Disk => "disk",
            Self::DiskIo => "disk_io",
            Self::Network => "network",
            Self::ProcessList => "process_list",
            Self::ServiceList => "service_list",
            Self::Temperature => "temperature",
            Self::Wifi => "wifi",
            Self::ContainerList => "container_list",
            Self::System => "system",
            Self::ApplicationList => "application_list",
            Self::Updates => "updates",
            Self::Pi => "pi",
            Self::Agent => "agent",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Default intervals from the seed (SPEC §2). "Nightly" is every 24 h.
    pub fn default_interval(self) -> Duration {
        let s = match self {
            Self::Cpu | Self::DiskIo | Self::Network => 5,
            Self::Memory | Self::Temperature => 10,
            Self::ProcessList => 15,
            Self::Wifi | Self::Pi => 30,
            Self::Disk | Self::ServiceList | Self::ContainerList | Self::Agent => 60,
            Self::System => 300,
            Self::ApplicationList | Self::Updates => 86_400,
        };
        Duration::from_secs(s)
    }
}

impl std::fmt::Display for CollectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A collector this agent version does not implement yet: says so explicitly.
pub struct NotImplemented(pub CollectorKind);

impl Collector for NotImplemented {
    fn kind(&self) -> CollectorKind {
        self.0
    }
    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        Err(CollectError::NotImplemented)
    }
}

// ---------------------------------------------------------------------------
// Collector modules and the builder.

pub mod agent;
pub mod application_list;
pub mod container_list;
pub mod cpu;
pub mod disk;
pub mod disk_io;
pub mod host_info;
pub mod memory;
pub mod mounts;
pub mod network;
pub mod pi;
pub mod process_list;
pub mod rate;
pub mod service_list;
pub mod system;
pub mod temperature;
pub mod updates;
pub mod wifi;

/// Per-collector settings beyond enable/interval (`[collectors.NAME]` in
/// the config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorOptions {
    /// `process_list`: processes kept by CPU and, separately, by memory.
    pub process_list_top_n: usize,
    /// `disk`: report tmpfs mounts too.
    pub disk_include_tmpfs: bool,
}

impl Default for CollectorOptions {
    fn default() -> Self {
        Self {
            process_list_top_n: process_list::DEFAULT_TOP_N,
            disk_include_tmpfs: false,
        }
    }
}

/// [`build_with`] with default [`CollectorOptions`].
pub fn build(kind: CollectorKind, roots: &HostRoots) -> Box<dyn Collector> {
    build_with(kind, roots, &CollectorOptions::default())
}

/// The collector for `kind` on this platform, or [`NotImplemented`] for a
/// kind this agent version does not have yet, so the server is told so
/// explicitly.
pub fn build_with(
    kind: CollectorKind,
    roots: &HostRoots,
    options: &CollectorOptions,
) -> Box<dyn Collector> {
    match kind {
        CollectorKind::Cpu => Box::new(cpu::CpuCollector::new(roots)),
        CollectorKind::Memory => Box::new(memory::MemoryCollector::new(roots)),
        CollectorKind::System => Box::new(system::SystemCollector::new(roots)),
        CollectorKind::Disk => Box::new(disk::DiskCollector::new(
            roots,
            disk::DiskOptions {
                include_tmpfs: options.disk_include_tmpfs,
                ..disk::DiskOptions::default()
            },
        )),
        CollectorKind::DiskIo => disk_io::new_collector(roots),
        CollectorKind::Network => network::new_collector(roots),
        CollectorKind::Wifi => wifi::new_collector(roots),
        CollectorKind::Temperature => temperature::new_collector(roots),
        CollectorKind::ApplicationList => application_list::new_collector(roots),
        CollectorKind::ProcessList => Box::new(process_list::ProcessListCollector::with_top_n(
            roots,
            options.process_list_top_n,
        )),
        // The running agent builds the real one with the scheduler's and
        // sender's stats (runtime.rs); here there are none.
        CollectorKind::Agent => Box::new(agent::AgentCollector::standalone()),
        CollectorKind::Updates => updates::new_collector(roots),
        CollectorKind::ServiceList => service_list::new_collector(roots),
        CollectorKind::Pi => pi::new_collector(roots),
        CollectorKind::ContainerList => container_list::new_collector(roots),
    }
}

/// Skips the two header lines of a `/proc/net` table whose column groups
/// are separated by `|` (`/proc/net/dev`, `/proc/net/wireless`).
pub(crate) fn skip_two_line_header(
    lines: &mut std::str::Lines<'_>,
    what: &'static str,
) -> Result<(), ParseError> {
    for _ in 0..2 {
        match lines.next() {
            Some(header) if header.contains('|') => {}
            other => {
                return Err(ParseError::new(
                    what,
                    format!("expected a two-line header, found {other:?}"),
                ))
            }
        }
    }
    Ok(())
}

/// Hands the heap's free pages back to the kernel. The nightly collectors
/// (application_list, updates) parse megabytes once a day; without this,
/// glibc keeps that peak for the rest of the day and the agent's resident
/// set sits above SPEC §7's 6 MiB (measured: 6.1 MiB at default intervals).
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory at the top of glibc's
    // heaps; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Reads `path` into `buf` (cleared first), reusing its allocation: the
/// collectors' hot path reads the same small kernel files every cycle.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn read_file_into(path: &std::path::Path, buf: &mut String) -> Result<(), CollectError> {
    use std::io::Read;
    buf.clear();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(buf))
        .map(drop)
        .map_err(|source| CollectError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads a fixture under `crates/agent/tests/fixtures/` (collectors' unit
/// tests; each fixture's origin is in the README there).
#[cfg(test)]
pub(crate) fn test_fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

#[cfg(test)]
mod build_tests {
    use super::*;

    #[test]
    fn builds_a_collector_of_the_asked_kind_for_every_kind() {
        let roots = HostRoots::default();
        for kind in CollectorKind::ALL {
            assert_eq!(build(kind, &roots).kind(), kind);
        }
        // `pi` is real: on a host whose device tree names no Raspberry Pi
        // (this one) it says so; tests/pi.rs runs it on Pi fixture trees.
        let on_a_pi = std::fs::read("/sys/firmware/devicetree/base/model")
            .is_ok_and(|m| m.starts_with(b"Raspberry Pi"));
        match build(CollectorKind::Pi, &roots).collect(Utc::now()) {
            Ok(data) => assert!(on_a_pi && !data.is_empty(), "{data:?}"),
            Err(CollectError::Unsupported(reason)) => {
                assert!(
                    !on_a_pi && reason.starts_with("not a Raspberry Pi"),
                    "{reason}"
                )
            }
            Err(other) => panic!("pi: {other:?}"),
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn container_list_is_real_and_says_when_nothing_runs_workloads() {
        // tests/container_list.rs runs it against fake daemons and pvesh.
        let mut c = build(CollectorKind::ContainerList, &HostRoots::default());
        assert!(c.may_block());
        match c.collect(Utc::now()) {
            Ok(data) => assert!(matches!(data.as_slice(), [MetricData::ContainerList(_)])),
            Err(CollectError::Unsupported(reason)) => {
                assert!(
                    reason.starts_with("no Docker or Podman socket and no pvesh"),
                    "{reason}"
                )
            }
            // A socket this test may not use is a real error, not a failure here.
            Err(CollectError::Other(e)) => assert!(e.contains(".sock"), "{e}"),
            Err(other) => panic!("container_list: {other:?}"),
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn cpu_memory_and_system_are_real_on_linux() {
        let roots = HostRoots::default();
        let mut memory = build(CollectorKind::Memory, &roots);
        assert_eq!(memory.collect(Utc::now()).unwrap().len(), 1);
        let mut system = build(CollectorKind::System, &roots);
        assert_eq!(system.collect(Utc::now()).unwrap().len(), 1);
        assert!(build(CollectorKind::Cpu, &roots).is_rate_based());
    }
}
