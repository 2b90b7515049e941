//! Linux `container_list`: finds the Docker and Podman sockets and `pvesh`
//! each cycle, queries them side by side, and sends one sorted list.
//!
//! Sockets (under the host root, so an agent in a container with the host
//! mounted sees the host's daemons):
//! - Docker: `DOCKER_HOST` when set (`unix://` only, as the Docker CLI reads
//!   it, and then instead of the default), else `/var/run/docker.sock`;
//!   rootless Docker: `/run/user/<uid>/docker.sock`.
//! - Podman: `/run/podman/podman.sock` (rootful) and
//!   `/run/user/<uid>/podman/podman.sock` (rootless, each user present).
//!   A "Docker" socket that is Podman's (the `podman-docker` package) is
//!   recognised from its `/version` and reported as `podman`.
//!
//! No source at all is [`CollectError::Unsupported`]. A source that is
//! there but fails (permission denied, a hung or dead daemon) is an error
//! naming it when every source failed; when others answered, their
//! workloads are sent and the failure is logged when it changes.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use spectra_protocol::{ContainerListMetric, MetricData, Workload, WorkloadSource};

use super::docker::{self, CpuSample};
use super::proxmox::{self, Pvesh};
use super::sort_workloads;
use crate::collectors::updates::find_on_path;
use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

/// Per request to a daemon: a healthy one answers in milliseconds (or about
/// a second for a first, two-sample stats); past this a container is
/// reported without stats rather than holding the whole list.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Per `pvesh` run: Perl start-up and a busy pmxcfs take seconds.
pub const DEFAULT_PVESH_TIMEOUT: Duration = Duration::from_secs(15);
/// Used when the agent runs with no `PATH` at all (some service managers).
const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where to look and how long to wait; [`ContainerListConfig::from_env`]
/// reads the agent's environment once, tests build it by hand.
#[derive(Debug, Clone)]
pub struct ContainerListConfig {
    pub rootfs: PathBuf,
    pub procfs: PathBuf,
    /// `DOCKER_HOST`.
    pub docker_host: Option<String>,
    /// `PATH`-style list searched for `pvesh` (and given to it).
    pub search_path: OsString,
    pub request_timeout: Duration,
    pub pvesh_timeout: Duration,
}

impl ContainerListConfig {
    pub fn from_env(roots: &HostRoots) -> Self {
        Self {
            rootfs: roots.rootfs.clone(),
            procfs: roots.procfs.clone(),
            docker_host: std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()),
            search_path: std::env::var_os("PATH")
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| OsString::from(FALLBACK_PATH)),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            pvesh_timeout: DEFAULT_PVESH_TIMEOUT,
        }
    }
}

/// A daemon socket found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketEndpoint {
    pub socket: PathBuf,
    /// From the path; `/version` may still say Podman.
    pub source: WorkloadSource,
}

/// The daemon sockets present under `rootfs`, and notes on configured ones
/// that cannot be used (`DOCKER_HOST=tcp://...`).
pub fn discover_sockets(
    rootfs: &Path,
    docker_host: Option<&str>,
) -> (Vec<SocketEndpoint>, Vec<String>) {
    let mut candidates = Vec::new();
    let mut notes = Vec::new();
    match docker_host {
        Some(host) => match host.strip_prefix("unix://") {
            // The agent's own setting: not under the host root.
            Some(path) => candidates.push((PathBuf::from(path), WorkloadSource::Docker)),
            None => notes.push(format!(
                "DOCKER_HOST={host} is not used: only unix:// sockets are supported"
            )),
        },
        None => candidates.push((rootfs.join("var/run/docker.sock"), WorkloadSource::Docker)),
    }
    candidates.push((
        rootfs.join("run/podman/podman.sock"),
        WorkloadSource::Podman,
    ));
    let mut users: Vec<PathBuf> = std::fs::read_dir(rootfs.join("run/user"))
        .map(|dir| {
            dir.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    users.sort();
    for user in users {
        candidates.push((user.join("podman/podman.sock"), WorkloadSource::Podman));
        candidates.push((user.join("docker.sock"), WorkloadSource::Docker));
    }
    let mut seen = Vec::new();
    let mut endpoints = Vec::new();
    for (socket, source) in candidates {
        if !socket.exists() {
            continue;
        }
        // /run/docker.sock -> podman.sock and the like: one daemon once.
        let real = std::fs::canonicalize(&socket).unwrap_or_else(|_| socket.clone());
        if seen.contains(&real) {
            continue;
        }
        seen.push(real);
        endpoints.push(SocketEndpoint { socket, source });
    }
    (endpoints, notes)
}

pub struct ContainerListCollector {
    config: ContainerListConfig,
    /// Previous CPU counters per socket and container id.
    cpu_samples: HashMap<PathBuf, HashMap<String, CpuSample>>,
    /// The partial failure last logged, to log only changes.
    last_partial_error: Option<String>,
}

impl ContainerListCollector {
    pub fn new(roots: &HostRoots) -> Self {
        Self::with_config(ContainerListConfig::from_env(roots))
    }

    pub fn with_config(config: ContainerListConfig) -> Self {
        Self {
            config,
            cpu_samples: HashMap::new(),
            last_partial_error: None,
        }
    }
}

impl Collector for ContainerListCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::ContainerList
    }

    /// Sockets and children: bounded by timeouts, but not microseconds.
    fn may_block(&self) -> bool {
        true
    }

    fn collect(&mut self, now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        let (endpoints, notes) =
            discover_sockets(&self.config.rootfs, self.config.docker_host.as_deref());
        let pvesh = find_on_path(&self.config.search_path, "pvesh").map(|program| Pvesh {
            program,
            search_path: self.config.search_path.clone(),
            timeout: self.config.pvesh_timeout,
        });
        if endpoints.is_empty() && pvesh.is_none() {
            let mut reason = "no Docker or Podman socket and no pvesh".to_owned();
            if !notes.is_empty() {
                reason.push_str(&format!(" ({})", notes.join("; ")));
            }
            return Err(CollectError::Unsupported(reason));
        }

        // Each socket's previous samples go to its own thread; sockets gone
        // since last time drop theirs.
        let mut samples: Vec<HashMap<String, CpuSample>> = endpoints
            .iter()
            .map(|e| self.cpu_samples.remove(&e.socket).unwrap_or_default())
            .collect();
        self.cpu_samples.clear();
        let timeout = self.config.request_timeout;
        let hostname = proxmox::read_hostname(&self.config.procfs);
        let (docker_results, proxmox_result) = std::thread::scope(|scope| {
            let handles: Vec<_> = endpoints
                .iter()
                .zip(samples.iter_mut())
                .map(|(endpoint, samples)| {
                    scope.spawn(move || {
                        docker::collect_workloads(
                            &endpoint.socket,
                            endpoint.source.clone(),
                            timeout,
                            samples,
                            now,
                        )
                    })
                })
                .collect();
            let proxmox_result = pvesh
                .as_ref()
                .map(|pvesh| pvesh.collect_workloads(hostname.as_deref()));
            let docker_results: Vec<Result<Vec<Workload>, String>> = handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("the Docker request thread panicked".to_owned()))
                })
                .collect();
            (docker_results, proxmox_result)
        });
        for (endpoint, samples) in endpoints.iter().zip(samples) {
            self.cpu_samples.insert(endpoint.socket.clone(), samples);
        }

        let mut workloads = Vec::new();
        let mut failures = Vec::new();
        let sources = docker_results.len() + usize::from(proxmox_result.is_some());
        for result in docker_results.into_iter().chain(proxmox_result) {
            match result {
                Ok(list) => workloads.extend(list),
                Err(e) => failures.push(e),
            }
        }
        if failures.len() == sources {
            return Err(CollectError::Other(failures.join("; ")));
        }
        failures.extend(notes);
        let partial = (!failures.is_empty()).then(|| failures.join("; "));
        if partial != self.last_partial_error {
            match &partial {
                Some(e) => tracing::warn!(
                    collector = "container_list",
                    error = %e,
                    "some workload sources failed; sending the others"
                ),
                None => tracing::info!(
                    collector = "container_list",
                    "every workload source answers again"
                ),
            }
            self.last_partial_error = partial;
        }
        sort_workloads(&mut workloads);
        Ok(vec![MetricData::ContainerList(ContainerListMetric {
            containers: workloads,
            // The server shows a source that failed beside the ones that
            // answered, rather than a silently shorter list.
            errors: failures,
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rootful_and_rootless_sockets_once_each() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for dir in [
            "var/run",
            "run/podman",
            "run/user/1000/podman",
            "run/user/1001",
            "run/user/x",
        ] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        // Plain files stand in for sockets: discovery only looks.
        std::fs::write(r.join("run/podman/podman.sock"), "").unwrap();
        std::os::unix::fs::symlink(
            r.join("run/podman/podman.sock"),
            r.join("var/run/docker.sock"),
        )
        .unwrap();
        std::fs::write(r.join("run/user/1000/podman/podman.sock"), "").unwrap();
        std::fs::write(r.join("run/user/1001/docker.sock"), "").unwrap();
        std::fs::write(r.join("run/user/x/docker.sock"), "").unwrap();
        let (found, notes) = discover_sockets(r, None);
        let found: Vec<_> = found
            .iter()
            .map(|e| {
                (
                    e.socket.strip_prefix(r).unwrap().to_path_buf(),
                    e.source.clone(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                // docker.sock is the podman socket: listed once, first name.
                (PathBuf::from("var/run/docker.sock"), WorkloadSource::Docker),
                (
                    PathBuf::from("run/user/1000/podman/podman.sock"),
                    WorkloadSource::Podman
                ),
                (
                    PathBuf::from("run/user/1001/docker.sock"),
                    WorkloadSource::Docker
                ),
            ]
        );
        assert!(notes.is_empty());
    }

    #[test]
    fn docker_host_replaces_the_default_and_tcp_is_refused_with_a_reason() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("var/run")).unwrap();
        std::fs::write(root.path().join("var/run/docker.sock"), "").unwrap();
        let (found, notes) = discover_sockets(root.path(), Some("tcp://10.0.0.5:2375"));
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(
            notes,
            ["DOCKER_HOST=tcp://10.0.0.5:2375 is not used: only unix:// sockets are supported"]
        );
        let custom = root.path().join("custom.sock");
        std::fs::write(&custom, "").unwrap();
        let (found, _) =
            discover_sockets(root.path(), Some(&format!("unix://{}", custom.display())));
        assert_eq!(
            found,
            [SocketEndpoint {
                socket: custom,
                source: WorkloadSource::Docker
            }]
        );
    }

    #[test]
    fn nothing_to_ask_is_unsupported_with_the_reason() {
        let root = tempfile::tempdir().unwrap();
        let empty_path = tempfile::tempdir().unwrap();
        let mut c = ContainerListCollector::with_config(ContainerListConfig {
            rootfs: root.path().to_path_buf(),
            procfs: root.path().to_path_buf(),
            docker_host: Some("tcp://h:2375".into()),
            search_path: empty_path.path().as_os_str().to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            pvesh_timeout: DEFAULT_PVESH_TIMEOUT,
        });
        match c.collect(Utc::now()) {
            Err(CollectError::Unsupported(why)) => assert_eq!(
                why,
                "no Docker or Podman socket and no pvesh (DOCKER_HOST=tcp://h:2375 is not used: \
                 only unix:// sockets are supported)"
            ),
            other => panic!("{other:?}"),
        }
    }
}
