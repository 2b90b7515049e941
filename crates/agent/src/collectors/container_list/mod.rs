//! `container_list` collector: one view of every workload on the host,
//! whatever runs it (SPEC §2, Appendix A): Docker and Podman containers
//! through their Engine API on a unix socket, Proxmox VE LXC containers and
//! VMs through `pvesh`.
//!
//! - This file: the sources' shared helpers ([`sort_workloads`], a small
//!   bounded thread pool) and the builder.
//! - `http.rs`: a blocking HTTP/1.1 client over a unix socket (why it is
//!   hand-written is in its docs).
//! - `docker.rs`: the Docker Engine API: version negotiation, list,
//!   inspect, stats (CPU and memory as the Docker CLI computes them), and
//!   [`docker::container_logs`] for `FETCH_LOGS`.
//! - `proxmox.rs`: guests of this Proxmox node through `pvesh`.
//! - `linux.rs`: [`ContainerListCollector`]: finds the sockets and `pvesh`,
//!   queries every source each cycle side by side, and merges them.
//! - `unsupported.rs`: other platforms say so explicitly (Docker's named
//!   pipe on Windows is not spoken yet).

#[cfg(target_os = "linux")]
pub mod docker;
#[cfg(target_os = "linux")]
pub mod http;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub mod proxmox;
#[cfg(not(target_os = "linux"))]
mod unsupported;

#[cfg(target_os = "linux")]
pub use linux::{discover_sockets, ContainerListCollector, ContainerListConfig, SocketEndpoint};
#[cfg(not(target_os = "linux"))]
pub use unsupported::ContainerListCollector;

use spectra_protocol::{Workload, WorkloadSource};

use super::{Collector, HostRoots};

/// The collector for this platform (SPEC §2 `container_list`).
pub fn new_collector(roots: &HostRoots) -> Box<dyn Collector> {
    Box::new(ContainerListCollector::new(roots))
}

/// The order of the envelope's list: by source (`docker`, `podman`,
/// `proxmox`), then name, then id (two daemons may both have a `web`).
pub fn sort_workloads(workloads: &mut [Workload]) {
    workloads.sort_by(|a, b| {
        (source_name(&a.source), &a.name, &a.id).cmp(&(source_name(&b.source), &b.name, &b.id))
    });
}

/// The wire name of a source.
pub fn source_name(source: &WorkloadSource) -> &'static str {
    match source {
        WorkloadSource::Docker => "docker",
        WorkloadSource::Podman => "podman",
        WorkloadSource::Proxmox => "proxmox",
    }
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn round_hundredths(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `f` over every item on at most `max_threads` scoped threads, results in
/// the items' order. Requests to a daemon or `pvesh` children wait on I/O,
/// so threads (a few, short-lived, once a minute) beat a runtime here.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn run_parallel<T, R, F>(items: Vec<T>, max_threads: usize, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let threads = max_threads.clamp(1, items.len().max(1));
    if items.len() <= 1 || threads == 1 {
        return items.into_iter().map(f).collect();
    }
    let count = items.len();
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
    let results: Vec<Mutex<Option<R>>> = (0..count).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    break;
                }
                // Each slot is taken by exactly one thread: no contention,
                // and a poisoned lock (a panic in `f`) still yields the item.
                let item = slots[index]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                if let Some(item) = item {
                    let result = f(item);
                    *results[index].lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                }
            });
        }
    });
    results
        .into_iter()
        .filter_map(|r| r.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use spectra_protocol::WorkloadKind;

    #[test]
    fn run_parallel_keeps_order_and_runs_everything() {
        let out = run_parallel((0..100).collect(), 7, |i: u32| i * 2);
        assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(run_parallel(Vec::<u32>::new(), 4, |i| i), Vec::<u32>::new());
    }

    #[test]
    fn sorts_by_source_then_name_then_id() {
        let w = |source, name: &str, id: &str| Workload {
            id: id.into(),
            name: name.into(),
            image: String::new(),
            state: "running".into(),
            source,
            kind: WorkloadKind::Container,
            cpu_percent: 0.0,
            cpu_limit_cores: None,
            memory_bytes: 0,
            memory_limit: None,
            net_rx_bytes: 0,
            net_tx_bytes: 0,
            health: None,
            restarts: None,
            uptime_seconds: None,
            status: None,
            stats_error: None,
            block_read_bytes: None,
            block_write_bytes: None,
            disk_bytes: None,
            disk_limit: None,
            node: None,
        };
        let mut list = vec![
            w(WorkloadSource::Proxmox, "a", "1"),
            w(WorkloadSource::Podman, "web", "2"),
            w(WorkloadSource::Docker, "web", "b"),
            w(WorkloadSource::Docker, "web", "a"),
            w(WorkloadSource::Docker, "db", "c"),
        ];
        sort_workloads(&mut list);
        let order: Vec<_> = list
            .iter()
            .map(|w| (source_name(&w.source), w.id.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("docker", "c"),
                ("docker", "a"),
                ("docker", "b"),
                ("podman", "2"),
                ("proxmox", "1")
            ]
        );
    }
}
