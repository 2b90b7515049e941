//! ping, traceroute and netstat on systems other than Linux: an explicit
//! "not supported" (their sockets options and `/proc` tables are Linux's).

use std::net::IpAddr;

use crate::collectors::HostRoots;

use super::netstat::NetstatReport;
use super::{PingOptions, PingRun, TraceOptions, TraceReport};

const WHY: &str = "is not supported on this operating system by this agent (Linux only)";

pub fn ping_blocking(_dst: IpAddr, _options: &PingOptions) -> Result<PingRun, String> {
    Err(format!("ping {WHY}"))
}

pub fn trace_blocking(_dst: IpAddr, _options: &TraceOptions) -> Result<TraceReport, String> {
    Err(format!("traceroute {WHY}"))
}

pub fn read_netstat(_roots: &HostRoots, _limit: usize) -> Result<NetstatReport, String> {
    Err(format!("netstat {WHY}"))
}
