//! Payload structs, one per collector (Appendix A). Rates are per second,
//! sizes in bytes, percentages 0-100. A value the platform cannot provide is
//! `None` and left out of the JSON, never a zero.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `cpu`: usage since the previous sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuMetric {
    /// Busy % over all cores (everything but idle and iowait).
    pub usage: f64,
    /// Busy % per core, in core order.
    pub cores: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iowait: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nice: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irq: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub softirq: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_1m: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_5m: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_15m: Option<f64>,
}

/// `memory`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryMetric {
    pub ram_total: u64,
    pub ram_used: u64,
    pub ram_available: u64,
    pub ram_used_pct: f64,
    pub swap_total: u64,
    pub swap_used: u64,
    pub swap_pct: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_free: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_cached: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_buffers: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_shared: Option<u64>,
}

/// `disk`: one per mount.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskMetric {
    pub device: String,
    pub mountpoint: String,
    pub filesystem: String,
    /// `local`, `network`, `virtual`, ...
    pub disk_type: String,
    /// The sizes are absent, never 0, when `error` says they could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_used: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_available: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_used_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes_used: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Why the numbers are missing (e.g. "statvfs timed out" on a hung NFS mount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `disk_io`: one per device; rates per second since the previous sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskIoMetric {
    pub device: String,
    /// Bytes read per second.
    pub read_bytes: f64,
    /// Bytes written per second.
    pub write_bytes: f64,
    /// Read operations per second.
    pub read_ops: f64,
    /// Write operations per second.
    pub write_ops: f64,
    /// Average read latency in ms over the interval.
    pub read_time_ms: f64,
    /// Average write latency in ms over the interval.
    pub write_time_ms: f64,
    pub io_in_progress: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub util_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<bool>,
}

/// `network`: one per interface; rates per second since the previous sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkMetric {
    pub interface: String,
    pub mac_address: String,
    pub mtu: u32,
    /// Link speed in Mbit/s, when the driver reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<u64>,
    pub rx_bytes: f64,
    pub rx_packets: f64,
    pub rx_errors: f64,
    pub rx_drops: f64,
    pub tx_bytes: f64,
    pub tx_packets: f64,
    pub tx_errors: f64,
    pub tx_drops: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operstate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<bool>,
    /// veth, bridge, loopback, tun...: not a physical NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_virtual: Option<bool>,
}

/// `temperature`: one per sensor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemperatureMetric {
    pub sensor: String,
    /// °C
    pub temperature: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_temp: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit_temp: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// `system`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemMetric {
    /// Seconds since boot.
    pub uptime: u64,
    pub processes: u64,
    /// Logged-in user sessions; absent where the host keeps no session
    /// record the agent can read (no utmp), never a made-up 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u32>,
    /// Seconds since the epoch.
    pub boot_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualization: Option<String>,
}

/// `process_list`: top N by CPU and by memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessListMetric {
    pub processes: Vec<ProcessInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_processes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_threads: Option<u64>,
    /// Processes per state (`running`, `sleeping`, `zombie`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_state: Option<BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub name: String,
    pub cpu_percent: f64,
    pub mem_percent: f64,
    pub mem_rss: u64,
    /// `running`, `runnable`, `waiting` or `other` (the seed's classes).
    pub status: String,
    pub threads_total: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Bytes read per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_bytes: Option<f64>,
    /// Bytes written per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_bytes: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_states: Option<BTreeMap<String, u32>>,
}

/// `service_list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceListMetric {
    pub services: Vec<ServiceInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    /// `active`, `inactive` or `failed` (systemd's active state).
    pub status: String,
    pub sub_status: String,
    pub load_state: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<String>,
}

/// `wifi`: one per wireless interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WifiMetric {
    pub interface: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_dbm: Option<f64>,
    /// 0-100
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_quality: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_ghz: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate_mbps: Option<f64>,
}

/// `container_list`: every workload, whatever runs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerListMetric {
    pub containers: Vec<Workload>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadSource {
    Docker,
    Podman,
    Proxmox,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Container,
    Lxc,
    Vm,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: String,
    pub source: WorkloadSource,
    pub kind: WorkloadKind,
    pub cpu_percent: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit_cores: Option<f64>,
    pub memory_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<u64>,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
}

/// `application_list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplicationListMetric {
    pub applications: Vec<Application>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Application {
    pub name: String,
    pub version: String,
    pub vendor: String,
    /// `dpkg`, `rpm`, `flatpak`, `registry`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `updates`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdatesMetric {
    pub pending_count: u32,
    pub security_count: u32,
    pub reboot_required: bool,
    pub package_manager: String,
    pub packages: Vec<PendingUpdate>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PendingUpdate {
    pub name: String,
    pub version: String,
    pub security: bool,
}

/// `throttle` (Raspberry Pi, from `vcgencmd get_throttled`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleMetric {
    pub undervoltage: bool,
    pub arm_freq_capped: bool,
    pub throttled: bool,
    pub soft_temp_limit: bool,
    pub undervoltage_occurred: bool,
    pub freq_cap_occurred: bool,
    pub throttled_occurred: bool,
    pub soft_temp_occurred: bool,
}

/// `clock` (Raspberry Pi).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClockMetric {
    pub arm_freq_hz: u64,
    pub core_freq_hz: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_freq_hz: Option<u64>,
}

/// `voltage` (Raspberry Pi).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VoltageMetric {
    pub core_volts: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdram_c_volts: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdram_i_volts: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdram_p_volts: Option<f64>,
}

/// `gpu` (Raspberry Pi).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuMetric {
    pub gpu_mem_total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_mem_used: Option<u64>,
}

/// `agent`: the agent's own cost and health, one envelope per sample. The
/// process fields are `None` where the platform cannot read them (only Linux
/// in this version); the counters are since the agent started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentMetric {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// CPU time spent in user mode since the agent started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_user_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_system_seconds: Option<f64>,
    /// CPU used since the previous sample, in % of one core (may exceed 100
    /// when several threads run at once); absent on the first sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,
    pub uptime_seconds: u64,
    /// Batches waiting in the on-disk spool.
    pub spool_batches: u64,
    /// Batches the spool dropped to respect its size cap.
    pub spool_dropped_batches: u64,
    pub sent_batches: u64,
    /// Batches the server refused (4xx) and that were dropped.
    pub rejected_batches: u64,
    /// One entry per collector that has run, by name.
    pub collectors: Vec<AgentCollectorStat>,
}

/// One collector's record inside [`AgentMetric`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCollectorStat {
    pub name: String,
    pub runs: u64,
    pub failures: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_duration_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_us: Option<u64>,
    pub state: crate::status::CollectorState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
