//! Proxmox VE guests (LXC containers and QEMU VMs) of this node, through
//! `pvesh`, the node's own CLI to its API (no credentials needed as root).
//!
//! Each cycle: `pvesh get /nodes` (which node is this one), then
//! `/nodes/<node>/lxc` and `/nodes/<node>/qemu` side by side, then
//! `/nodes/<node>/<lxc|qemu>/<vmid>/status/current` for each running guest,
//! [`MAX_PARALLEL_PVESH`] at a time, each with a timeout. The lists carry
//! pvestatd's figures already; the per-guest status adds QEMU's own state
//! (`qmpstatus`: a VM can be `running` yet `paused`) and fresher numbers,
//! and when it fails the list's figures stay.
//!
//! Units (PVE API viewer, `GET /nodes/{node}/qemu`): `cpu` is the guest's
//! CPU use as a fraction of its `cpus` allocation (1.0 = every allocated
//! core busy), so `cpu_percent = cpu * cpus * 100` is a percentage of ONE
//! core, the same scale as Docker's CLI and `process_list` (a 4-core VM
//! fully busy is 400 %). Sizes and counters (`mem`, `maxmem`, `disk`,
//! `maxdisk`, `netin`, `netout`, `diskread`, `diskwrite`) are bytes;
//! `uptime` seconds. A VM's `disk` is always 0 (the host cannot see inside
//! its filesystems without the guest agent), so it is left out, not sent as
//! a measured 0.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use spectra_protocol::{Workload, WorkloadKind, WorkloadSource};

use super::{round_hundredths, run_parallel};
use crate::collectors::updates::run_bounded;
use crate::collectors::ParseError;

/// pvesh is a Perl program (~0.3 s of CPU to start): a few at a time.
pub const MAX_PARALLEL_PVESH: usize = 4;
/// The output of one `pvesh get` kept at most.
const OUTPUT_CAP_BYTES: usize = 8 << 20;

/// One guest as `pvesh get .../lxc|qemu` or `.../status/current` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Guest {
    pub vmid: u64,
    pub kind: WorkloadKind,
    pub name: String,
    /// `running` or `stopped`.
    pub status: String,
    /// QEMU's own state (`running`, `paused`, `prelaunch`...).
    pub qmpstatus: Option<String>,
    pub template: bool,
    /// Fraction of the allocated CPUs, 0-1.
    pub cpu: Option<f64>,
    pub cpus: Option<f64>,
    pub mem: Option<u64>,
    pub maxmem: Option<u64>,
    pub disk: Option<u64>,
    pub maxdisk: Option<u64>,
    pub netin: Option<u64>,
    pub netout: Option<u64>,
    pub diskread: Option<u64>,
    pub diskwrite: Option<u64>,
    pub uptime: Option<u64>,
}

/// A number that pvesh may print as a JSON number or a numeric string
/// (older PVE printed LXC `vmid`s as strings).
fn number(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn unsigned(v: &Value, key: &str) -> Option<u64> {
    number(v, key).filter(|n| *n >= 0.0).map(|n| n as u64)
}

fn text_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// One guest object of either endpoint.
pub fn parse_guest(v: &Value, kind: WorkloadKind) -> Result<Guest, ParseError> {
    let what = "pvesh guest";
    let vmid =
        unsigned(v, "vmid").ok_or_else(|| ParseError::new(what, format!("no vmid in {v}")))?;
    let status = text_field(v, "status")
        .ok_or_else(|| ParseError::new(what, format!("no status for guest {vmid}")))?;
    Ok(Guest {
        vmid,
        kind,
        name: text_field(v, "name").unwrap_or_else(|| vmid.to_string()),
        status,
        qmpstatus: text_field(v, "qmpstatus"),
        template: number(v, "template").is_some_and(|t| t != 0.0),
        cpu: number(v, "cpu"),
        // `cpus` in node lists and status; `maxcpu` in cluster resources.
        cpus: number(v, "cpus").or_else(|| number(v, "maxcpu")),
        mem: unsigned(v, "mem"),
        maxmem: unsigned(v, "maxmem"),
        disk: unsigned(v, "disk"),
        maxdisk: unsigned(v, "maxdisk"),
        netin: unsigned(v, "netin"),
        netout: unsigned(v, "netout"),
        diskread: unsigned(v, "diskread"),
        diskwrite: unsigned(v, "diskwrite"),
        uptime: unsigned(v, "uptime"),
    })
}

fn parse_json(what: &'static str, text: &str) -> Result<Value, ParseError> {
    serde_json::from_str(text).map_err(|e| ParseError::new(what, e.to_string()))
}

/// Parses `pvesh get /nodes/<node>/lxc|qemu --output-format json`.
pub fn parse_guest_list(text: &str, kind: WorkloadKind) -> Result<Vec<Guest>, ParseError> {
    match parse_json("pvesh guest list", text)? {
        Value::Array(items) => items.iter().map(|v| parse_guest(v, kind.clone())).collect(),
        other => Err(ParseError::new(
            "pvesh guest list",
            format!("expected an array, found {other}"),
        )),
    }
}

/// Parses `pvesh get /nodes/<node>/<kind>/<vmid>/status/current`.
pub fn parse_guest_status(text: &str, kind: WorkloadKind) -> Result<Guest, ParseError> {
    parse_guest(&parse_json("pvesh status/current", text)?, kind)
}

/// Parses `pvesh get /nodes`: the cluster's node names.
pub fn parse_nodes(text: &str) -> Result<Vec<String>, ParseError> {
    let Value::Array(items) = parse_json("pvesh /nodes", text)? else {
        return Err(ParseError::new("pvesh /nodes", "expected an array"));
    };
    items
        .iter()
        .map(|n| {
            text_field(n, "node")
                .ok_or_else(|| ParseError::new("pvesh /nodes", format!("no node name in {n}")))
        })
        .collect()
}

/// This node among the cluster's: the one named like this host (Proxmox
/// names a node after the short hostname), else the only one.
pub fn select_local_node(nodes: &[String], hostname: Option<&str>) -> Result<String, String> {
    let short = hostname.map(|h| h.trim().split('.').next().unwrap_or_default().to_owned());
    if let Some(short) = short.filter(|s| !s.is_empty()) {
        if let Some(node) = nodes.iter().find(|n| **n == short) {
            return Ok(node.clone());
        }
    }
    match nodes {
        [only] => Ok(only.clone()),
        _ => Err(format!(
            "cannot tell which of the Proxmox nodes {nodes:?} is this host ({})",
            hostname.unwrap_or("hostname unknown")
        )),
    }
}

/// The wire workload for one guest of `node`.
pub fn build_workload(guest: Guest, node: &str) -> Workload {
    let running = guest.status == "running";
    // A running VM whose QEMU is paused or suspended shows that state.
    let state = match &guest.qmpstatus {
        Some(q) if running && q != "running" => q.clone(),
        _ => guest.status.clone(),
    };
    let cpu_percent = match (guest.cpu, guest.cpus) {
        (Some(cpu), Some(cpus)) => round_hundredths(cpu * cpus * 100.0),
        (Some(cpu), None) => round_hundredths(cpu * 100.0),
        _ => 0.0,
    };
    let is_vm = guest.kind == WorkloadKind::Vm;
    Workload {
        id: guest.vmid.to_string(),
        name: guest.name,
        // Proxmox guests have no image.
        image: String::new(),
        state,
        source: WorkloadSource::Proxmox,
        kind: guest.kind,
        cpu_percent,
        cpu_limit_cores: guest.cpus,
        memory_bytes: guest.mem.unwrap_or(0),
        memory_limit: guest.maxmem.filter(|m| *m > 0),
        net_rx_bytes: guest.netin.unwrap_or(0),
        net_tx_bytes: guest.netout.unwrap_or(0),
        health: None,
        restarts: None,
        uptime_seconds: guest.uptime.filter(|_| running),
        status: guest.qmpstatus.or(Some(guest.status)),
        stats_error: None,
        block_read_bytes: guest.diskread,
        block_write_bytes: guest.diskwrite,
        disk_bytes: guest.disk.filter(|d| !(is_vm && *d == 0)),
        disk_limit: guest.maxdisk.filter(|d| *d > 0),
        node: Some(node.to_owned()),
    }
}

/// Where `pvesh` is and how to run it.
#[derive(Debug, Clone)]
pub struct Pvesh {
    pub program: PathBuf,
    /// `PATH` given to the child (tests point it at fakes).
    pub search_path: OsString,
    pub timeout: Duration,
}

impl Pvesh {
    /// `pvesh get <path> --output-format json`, its stdout.
    pub fn get(&self, path: &str) -> Result<String, String> {
        let out = run_bounded(
            &self.program,
            &["get", path, "--output-format", "json"],
            OsStr::new(&self.search_path),
            self.timeout,
            OUTPUT_CAP_BYTES,
        )
        .map_err(|e| format!("pvesh get {path}: {e}"))?;
        if !out.status.success() {
            let first = out
                .stderr
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("no error output");
            return Err(format!("pvesh get {path} failed ({}): {first}", out.status));
        }
        Ok(out.stdout)
    }

    /// Every guest of this node (templates left out: they never run).
    pub fn collect_workloads(&self, hostname: Option<&str>) -> Result<Vec<Workload>, String> {
        let nodes = parse_nodes(&self.get("/nodes")?).map_err(|e| e.to_string())?;
        let node = select_local_node(&nodes, hostname)?;
        let kinds = [(WorkloadKind::Lxc, "lxc"), (WorkloadKind::Vm, "qemu")];
        let lists = run_parallel(kinds.to_vec(), 2, |(kind, segment)| {
            let out = self.get(&format!("/nodes/{node}/{segment}"))?;
            parse_guest_list(&out, kind).map_err(|e| e.to_string())
        });
        let mut guests = Vec::new();
        for list in lists {
            guests.extend(list?.into_iter().filter(|g| !g.template));
        }
        let guests = run_parallel(guests, MAX_PARALLEL_PVESH, |guest| {
            if guest.status != "running" {
                return guest;
            }
            let segment = if guest.kind == WorkloadKind::Lxc {
                "lxc"
            } else {
                "qemu"
            };
            let path = format!("/nodes/{node}/{segment}/{}/status/current", guest.vmid);
            let current = self.get(&path).and_then(|out| {
                parse_guest_status(&out, guest.kind.clone()).map_err(|e| e.to_string())
            });
            match current {
                Ok(current) => current,
                Err(e) => {
                    // The list's figures stand; the next cycle asks again.
                    tracing::debug!(vmid = guest.vmid, error = %e, "pvesh status/current failed");
                    guest
                }
            }
        });
        Ok(guests
            .into_iter()
            .map(|g| build_workload(g, &node))
            .collect())
    }
}

/// The short hostname this agent sees, to pick this node in a cluster.
pub fn read_hostname(procfs: &Path) -> Option<String> {
    std::fs::read_to_string(procfs.join("sys/kernel/hostname"))
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::test_fixture;

    fn fixture(name: &str) -> String {
        test_fixture(&format!("proxmox/{name}"))
    }

    #[test]
    fn parses_lxc_list_with_string_vmids_and_a_stopped_guest() {
        let guests = parse_guest_list(&fixture("nodes_pve1_lxc.json"), WorkloadKind::Lxc).unwrap();
        assert_eq!(guests.len(), 2);
        let web = guests.iter().find(|g| g.vmid == 101).unwrap();
        assert_eq!(web.name, "ct-web");
        assert_eq!(web.status, "running");
        assert_eq!(web.cpus, Some(2.0));
        let stopped = guests.iter().find(|g| g.vmid == 102).unwrap();
        assert_eq!(stopped.status, "stopped");
        assert_eq!(stopped.uptime, Some(0));
    }

    #[test]
    fn maps_a_running_lxc_with_cpu_as_percent_of_one_core() {
        let g =
            parse_guest_status(&fixture("lxc_101_status_current.json"), WorkloadKind::Lxc).unwrap();
        let w = build_workload(g, "pve1");
        assert_eq!(w.id, "101");
        assert_eq!(w.kind, WorkloadKind::Lxc);
        assert_eq!(w.state, "running");
        // cpu 0.0312 of 2 cores
        assert_eq!(w.cpu_percent, 6.24);
        assert_eq!(w.cpu_limit_cores, Some(2.0));
        assert_eq!(w.memory_bytes, 268_435_456);
        assert_eq!(w.memory_limit, Some(1_073_741_824));
        assert_eq!((w.net_rx_bytes, w.net_tx_bytes), (73_471_290, 3_523_341));
        assert_eq!(w.disk_bytes, Some(1_502_932_992));
        assert_eq!(w.disk_limit, Some(8_589_934_592));
        assert_eq!(w.uptime_seconds, Some(86_400));
        assert_eq!(w.node.as_deref(), Some("pve1"));
    }

    #[test]
    fn a_paused_vm_shows_paused_and_no_fake_disk_usage() {
        let g =
            parse_guest_status(&fixture("qemu_200_status_current.json"), WorkloadKind::Vm).unwrap();
        let w = build_workload(g, "pve1");
        assert_eq!(w.state, "paused");
        assert_eq!(w.status.as_deref(), Some("paused"));
        assert_eq!(w.disk_bytes, None);
        assert_eq!(w.disk_limit, Some(34_359_738_368));
        assert_eq!(w.block_read_bytes, Some(412_628_992));
    }

    #[test]
    fn picks_the_local_node() {
        let nodes = parse_nodes(&fixture("nodes.json")).unwrap();
        assert_eq!(nodes, ["pve1", "pve2"]);
        assert_eq!(select_local_node(&nodes, Some("pve2.lan")).unwrap(), "pve2");
        assert!(select_local_node(&nodes, Some("other"))
            .unwrap_err()
            .contains("cannot tell"));
        assert_eq!(select_local_node(&nodes[..1], None).unwrap(), "pve1");
    }

    #[test]
    fn rejects_a_guest_without_vmid() {
        let e =
            parse_guest_list(r#"[{"name":"x","status":"running"}]"#, WorkloadKind::Vm).unwrap_err();
        assert!(e.message.contains("no vmid"), "{e}");
        assert!(parse_guest_list("{}", WorkloadKind::Vm).is_err());
    }
}
