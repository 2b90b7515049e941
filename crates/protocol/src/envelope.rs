//! The metric envelope (SPEC §3) and the typed payload of every collector.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::metrics::*;
use crate::status::CollectorStatus;

/// One metric sample: `{"type", "timestamp", "hostname", "data"}`.
///
/// The agent builds `Envelope<MetricData>`; the server reads
/// [`RawEnvelope`] (`data` kept as JSON) so unknown types are stored as-is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<D = MetricData> {
    #[serde(rename = "type")]
    pub metric_type: String,
    pub timestamp: DateTime<Utc>,
    pub hostname: String,
    pub data: D,
}

/// An envelope whose payload is kept as JSON: what the server ingests.
pub type RawEnvelope = Envelope<serde_json::Value>;

/// A batch is a JSON array of envelopes (SPEC §3).
pub type RawBatch = Vec<RawEnvelope>;

impl Envelope<MetricData> {
    /// An envelope for `data`, its `type` taken from the payload.
    pub fn new(timestamp: DateTime<Utc>, hostname: impl Into<String>, data: MetricData) -> Self {
        Self {
            metric_type: data.type_name().to_owned(),
            timestamp,
            hostname: hostname.into(),
            data,
        }
    }
}

impl RawEnvelope {
    /// Decodes the payload into its typed form; unknown types stay
    /// [`MetricData::Other`].
    pub fn into_typed(self) -> Result<Envelope<MetricData>, serde_json::Error> {
        let data = MetricData::from_value(&self.metric_type, self.data)?;
        Ok(Envelope {
            metric_type: self.metric_type,
            timestamp: self.timestamp,
            hostname: self.hostname,
            data,
        })
    }
}

/// The `type` strings of SPEC §2 / Appendix A.
pub mod metric_type {
    pub const CPU: &str = "cpu";
    pub const MEMORY: &str = "memory";
    pub const DISK: &str = "disk";
    pub const DISK_IO: &str = "disk_io";
    pub const NETWORK: &str = "network";
    pub const PROCESS_LIST: &str = "process_list";
    pub const SERVICE_LIST: &str = "service_list";
    pub const TEMPERATURE: &str = "temperature";
    pub const WIFI: &str = "wifi";
    pub const CONTAINER_LIST: &str = "container_list";
    pub const SYSTEM: &str = "system";
    pub const APPLICATION_LIST: &str = "application_list";
    pub const UPDATES: &str = "updates";
    pub const THROTTLE: &str = "throttle";
    pub const CLOCK: &str = "clock";
    pub const VOLTAGE: &str = "voltage";
    pub const GPU: &str = "gpu";
    pub const PI_HEALTH: &str = "pi_health";
    pub const COLLECTOR_STATUS: &str = "collector_status";
    pub const AGENT: &str = "agent";
    /// One workload of a `container_list`, as a per-entity series: never
    /// sent by agents, derived by the server at ingest so each container,
    /// LXC or VM has its own history (entity `workload` =
    /// `<source>/<id>`).
    pub const WORKLOAD: &str = "workload";

    /// Types whose payload is one list snapshot (stored as snapshots, not series).
    pub const LIST_SHAPED: &[&str] = &[
        PROCESS_LIST,
        SERVICE_LIST,
        CONTAINER_LIST,
        APPLICATION_LIST,
        UPDATES,
    ];

    /// For types sent once per entity, the field naming the entity
    /// (mount, device, interface, sensor).
    pub fn entity_field(metric_type: &str) -> Option<&'static str> {
        match metric_type {
            DISK => Some("mountpoint"),
            DISK_IO => Some("device"),
            NETWORK => Some("interface"),
            TEMPERATURE => Some("sensor"),
            WIFI => Some("interface"),
            COLLECTOR_STATUS => Some("collector"),
            WORKLOAD => Some("workload"),
            _ => None,
        }
    }
}

/// The typed payload of an envelope. Serialises as the bare payload (the
/// type name travels in the envelope's `type`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MetricData {
    Cpu(CpuMetric),
    Memory(MemoryMetric),
    Disk(DiskMetric),
    DiskIo(DiskIoMetric),
    Network(NetworkMetric),
    ProcessList(ProcessListMetric),
    ServiceList(ServiceListMetric),
    Temperature(TemperatureMetric),
    Wifi(WifiMetric),
    ContainerList(ContainerListMetric),
    System(SystemMetric),
    ApplicationList(ApplicationListMetric),
    Updates(UpdatesMetric),
    Throttle(ThrottleMetric),
    Clock(ClockMetric),
    Voltage(VoltageMetric),
    Gpu(GpuMetric),
    PiHealth(PiHealthMetric),
    CollectorStatus(CollectorStatus),
    Agent(AgentMetric),
    /// A type this version does not know: kept as JSON, never rejected.
    Other(serde_json::Value),
}

impl MetricData {
    /// The envelope `type` of this payload (`"other"` for [`MetricData::Other`],
    /// whose real type name lives only in its envelope).
    pub fn type_name(&self) -> &'static str {
        use metric_type as t;
        match self {
            Self::Cpu(_) => t::CPU,
            Self::Memory(_) => t::MEMORY,
            Self::Disk(_) => t::DISK,
            Self::DiskIo(_) => t::DISK_IO,
            Self::Network(_) => t::NETWORK,
            Self::ProcessList(_) => t::PROCESS_LIST,
            Self::ServiceList(_) => t::SERVICE_LIST,
            Self::Temperature(_) => t::TEMPERATURE,
            Self::Wifi(_) => t::WIFI,
            Self::ContainerList(_) => t::CONTAINER_LIST,
            Self::System(_) => t::SYSTEM,
            Self::ApplicationList(_) => t::APPLICATION_LIST,
            Self::Updates(_) => t::UPDATES,
            Self::Throttle(_) => t::THROTTLE,
            Self::Clock(_) => t::CLOCK,
            Self::Voltage(_) => t::VOLTAGE,
            Self::Gpu(_) => t::GPU,
            Self::PiHealth(_) => t::PI_HEALTH,
            Self::CollectorStatus(_) => t::COLLECTOR_STATUS,
            Self::Agent(_) => t::AGENT,
            Self::Other(_) => "other",
        }
    }

    /// Decodes `value` as the payload of `metric_type`.
    pub fn from_value(
        type_name: &str,
        value: serde_json::Value,
    ) -> Result<Self, serde_json::Error> {
        use metric_type as t;
        use serde_json::from_value as v;
        Ok(match type_name {
            t::CPU => Self::Cpu(v(value)?),
            t::MEMORY => Self::Memory(v(value)?),
            t::DISK => Self::Disk(v(value)?),
            t::DISK_IO => Self::DiskIo(v(value)?),
            t::NETWORK => Self::Network(v(value)?),
            t::PROCESS_LIST => Self::ProcessList(v(value)?),
            t::SERVICE_LIST => Self::ServiceList(v(value)?),
            t::TEMPERATURE => Self::Temperature(v(value)?),
            t::WIFI => Self::Wifi(v(value)?),
            t::CONTAINER_LIST => Self::ContainerList(v(value)?),
            t::SYSTEM => Self::System(v(value)?),
            t::APPLICATION_LIST => Self::ApplicationList(v(value)?),
            t::UPDATES => Self::Updates(v(value)?),
            t::THROTTLE => Self::Throttle(v(value)?),
            t::CLOCK => Self::Clock(v(value)?),
            t::VOLTAGE => Self::Voltage(v(value)?),
            t::GPU => Self::Gpu(v(value)?),
            t::PI_HEALTH => Self::PiHealth(v(value)?),
            t::COLLECTOR_STATUS => Self::CollectorStatus(v(value)?),
            t::AGENT => Self::Agent(v(value)?),
            _ => Self::Other(value),
        })
    }
}

impl MetricData {
    /// Checks that `value` has the shape of a `type_name` payload (field
    /// names and JSON types) without keeping the decoded form. Unknown types
    /// pass: they are stored as-is (SPEC §3).
    pub fn validate_value(
        type_name: &str,
        value: &serde_json::Value,
    ) -> Result<(), serde_json::Error> {
        use metric_type as t;
        match type_name {
            t::CPU => CpuMetric::deserialize(value).map(drop),
            t::MEMORY => MemoryMetric::deserialize(value).map(drop),
            t::DISK => DiskMetric::deserialize(value).map(drop),
            t::DISK_IO => DiskIoMetric::deserialize(value).map(drop),
            t::NETWORK => NetworkMetric::deserialize(value).map(drop),
            t::PROCESS_LIST => ProcessListMetric::deserialize(value).map(drop),
            t::SERVICE_LIST => ServiceListMetric::deserialize(value).map(drop),
            t::TEMPERATURE => TemperatureMetric::deserialize(value).map(drop),
            t::WIFI => WifiMetric::deserialize(value).map(drop),
            t::CONTAINER_LIST => ContainerListMetric::deserialize(value).map(drop),
            t::SYSTEM => SystemMetric::deserialize(value).map(drop),
            t::APPLICATION_LIST => ApplicationListMetric::deserialize(value).map(drop),
            t::UPDATES => UpdatesMetric::deserialize(value).map(drop),
            t::THROTTLE => ThrottleMetric::deserialize(value).map(drop),
            t::CLOCK => ClockMetric::deserialize(value).map(drop),
            t::VOLTAGE => VoltageMetric::deserialize(value).map(drop),
            t::GPU => GpuMetric::deserialize(value).map(drop),
            t::PI_HEALTH => PiHealthMetric::deserialize(value).map(drop),
            t::COLLECTOR_STATUS => CollectorStatus::deserialize(value).map(drop),
            t::AGENT => AgentMetric::deserialize(value).map(drop),
            _ => Ok(()),
        }
    }
}

/// The JSON error body every Spectra endpoint answers with on failure:
/// `{"error": "what was wrong"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
