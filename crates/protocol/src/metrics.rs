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
    /// Sources that failed this cycle while others answered (a socket
    /// refusing, `pvesh` timing out), each naming the source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
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
    /// The runtime's own one-line status (Docker's `Up 2 hours (healthy)`,
    /// Proxmox's `qmpstatus` such as `paused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why some of the required numbers (`cpu_percent`, `memory_bytes`,
    /// `net_rx_bytes`, `net_tx_bytes`) could not be measured this time (a
    /// stats request that timed out, a container on the host's network
    /// with no counters of its own). Those numbers are the wire contract
    /// and cannot be left out, so they are 0 and mean "unknown" exactly when
    /// this marker is present; without it, a 0 is a measured 0. A stopped
    /// workload has no marker: its 0 is real.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_error: Option<String>,
    /// Bytes read from block devices since the workload started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_read_bytes: Option<u64>,
    /// Bytes written to block devices since the workload started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_write_bytes: Option<u64>,
    /// Disk space used (Proxmox guests' root disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// Disk space allocated (Proxmox `maxdisk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_limit: Option<u64>,
    /// The cluster node running the guest (Proxmox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
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
    /// The firmware's whole throttle word (`0x50005` → 327685), bits beyond
    /// the eight above included, so a newer firmware's flags are not lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_raw: Option<u32>,
}

/// `clock` (Raspberry Pi).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClockMetric {
    pub arm_freq_hz: u64,
    /// Absent when only the kernel's cpufreq could be read (no `vcgencmd`):
    /// the VideoCore clock has no sysfs file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_freq_hz: Option<u64>,
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
    /// The ARM's share of the memory split (`vcgencmd get_mem arm`), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm_mem_total: Option<u64>,
}

/// `pi_health` (Raspberry Pi): the board's identity and the health
/// readings that have no Appendix A type: SoC temperature, the Pi 5 PMIC's
/// rails, SD/eMMC wear, and which readings this host cannot give.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PiHealthMetric {
    /// The device-tree model, e.g. `Raspberry Pi 4 Model B Rev 1.4`.
    pub model: String,
    /// The board revision code in hex (`c03114`), which encodes memory
    /// size, maker and SoC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// °C
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soc_temp_c: Option<f64>,
    /// `vcgencmd` when the firmware answered, `sysfs` when only the
    /// kernel's files could be read.
    pub source: String,
    /// Pi 5 PMIC rails (`vcgencmd pmic_read_adc`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pmic: Vec<PmicRail>,
    /// Sum of `pmic[].watts`: the SoC and memory rails, not the whole board
    /// (USB and HAT power on 5 V is not measured by the PMIC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pmic_watts: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<PiStorage>,
    /// Readings this host cannot give, with the reason, e.g.
    /// `voltage: vcgencmd not found on PATH`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}

/// One PMIC rail inside [`PiHealthMetric`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PmicRail {
    /// The PMIC's rail name without its `_A`/`_V` suffix, e.g. `VDD_CORE`.
    pub rail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volts: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amps: Option<f64>,
    /// `volts * amps` when both are measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watts: Option<f64>,
}

/// One SD card or eMMC inside [`PiHealthMetric`], from the kernel's mmc
/// sysfs attributes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PiStorage {
    /// The block device (`mmcblk0`), or the mmc card id (`mmc0:aaaa`)
    /// when it has none.
    pub device: String,
    /// `sd` or `emmc`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manfid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oemid: Option<String>,
    /// Manufacturing date as the card reports it (`MM/YYYY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// eMMC (JEDEC EXT_CSD) device life time estimate, type A and B: band
    /// 1 = 0-10 % of the rated life used, ... 10 = 90-100 %, 11 = beyond.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub life_time_a: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub life_time_b: Option<u8>,
    /// eMMC pre-end-of-life: 1 normal, 2 warning (80 % of reserved blocks
    /// used), 3 urgent (90 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_eol_info: Option<u8>,
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
