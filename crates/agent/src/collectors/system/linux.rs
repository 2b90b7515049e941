//! Linux `system`: `<procfs>/uptime`, `<procfs>/stat`, `<procfs>` entries,
//! utmp, os-release, the kernel release and virtualization evidence.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use spectra_protocol::{MetricData, SystemMetric};

use super::{
    classify_virtualization, find_container_env, map_arch_to_uname, parse_cpuinfo,
    parse_os_release, parse_uptime, parse_utmp, OsRelease, VirtEvidence,
};
use crate::collectors::cpu::{parse_proc_stat_into, ProcStat};
use crate::collectors::{read_file_into, CollectError, Collector, CollectorKind, HostRoots};

pub struct SystemCollector {
    roots: HostRoots,
    /// Reused read buffer.
    buf: String,
    stat: ProcStat,
    /// utmp missing is said once at debug level, not every cycle.
    utmp_missing_logged: bool,
    /// Detected on the first collect only: it cannot change while the agent
    /// runs, and it reads `/proc/cpuinfo` and several other files.
    virtualization: Option<String>,
}

impl SystemCollector {
    pub fn new(roots: &HostRoots) -> Self {
        Self {
            roots: roots.clone(),
            buf: String::new(),
            stat: ProcStat::default(),
            utmp_missing_logged: false,
            virtualization: None,
        }
    }

    /// Logged-in sessions, or `None` when the host keeps no utmp (some
    /// containers, distributions that dropped utmp).
    fn read_user_sessions(&mut self) -> Result<Option<u32>, CollectError> {
        for rel in ["run/utmp", "var/run/utmp"] {
            let path = self.roots.rootfs.join(rel);
            match std::fs::read(&path) {
                Ok(bytes) => return Ok(Some(parse_utmp(&bytes)?.user_sessions)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(CollectError::Io { path, source }),
            }
        }
        if !self.utmp_missing_logged {
            self.utmp_missing_logged = true;
            tracing::debug!(
                rootfs = %self.roots.rootfs.display(),
                "no utmp file: logged-in users unknown"
            );
        }
        Ok(None)
    }
}

impl Collector for SystemCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::System
    }

    fn collect(&mut self, now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        let procfs = self.roots.procfs.clone();
        read_file_into(&procfs.join("uptime"), &mut self.buf)?;
        let uptime_secs = parse_uptime(&self.buf)?.uptime_secs;

        read_file_into(&procfs.join("stat"), &mut self.buf)?;
        parse_proc_stat_into(&self.buf, &mut self.stat)?;
        // btime is always there on Linux; derive it from uptime if not.
        let boot_time = self
            .stat
            .btime
            .unwrap_or_else(|| now.timestamp() - uptime_secs as i64);

        let processes = count_processes(&procfs)?;
        let users = self.read_user_sessions()?;
        let os = read_os_release(&self.roots);
        let virtualization = self
            .virtualization
            .get_or_insert_with(|| detect_virtualization(&self.roots))
            .clone();
        let metric = SystemMetric {
            uptime: uptime_secs as u64,
            processes,
            users,
            boot_time,
            os: os.pretty_name.or(os.name),
            os_version: os.version_id.or(os.version),
            kernel: read_kernel_release(&self.roots),
            arch: Some(map_arch_to_uname(std::env::consts::ARCH).to_owned()),
            virtualization: Some(virtualization),
        };
        Ok(vec![MetricData::System(metric)])
    }
}

/// Processes that exist now: the all-digit entries of `<procfs>`.
fn count_processes(procfs: &Path) -> Result<u64, CollectError> {
    let io_err = |source| CollectError::Io {
        path: procfs.to_path_buf(),
        source,
    };
    let mut count = 0;
    for entry in std::fs::read_dir(procfs).map_err(io_err)? {
        // A process may exit while we list: skip the entry, keep counting.
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let bytes = name.as_encoded_bytes();
        if !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit) {
            count += 1;
        }
    }
    Ok(count)
}

/// `<rootfs>/etc/os-release`, else `<rootfs>/usr/lib/os-release`
/// (os-release(5)); empty when neither exists.
pub(crate) fn read_os_release(roots: &HostRoots) -> OsRelease {
    ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|rel| std::fs::read_to_string(roots.rootfs.join(rel)).ok())
        .map(|text| parse_os_release(&text))
        .unwrap_or_default()
}

/// `<procfs>/sys/kernel/osrelease` (what `uname -r` prints).
pub(crate) fn read_kernel_release(roots: &HostRoots) -> Option<String> {
    read_trimmed(&roots.procfs.join("sys/kernel/osrelease"))
}

fn read_trimmed(path: &PathBuf) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Best-effort virtualization detection (see [`classify_virtualization`]).
/// Every source is optional: PID 1's environment needs privileges, DMI is
/// absent on most ARM boards, and so on; what cannot be read is no evidence.
pub(crate) fn detect_virtualization(roots: &HostRoots) -> String {
    let evidence = VirtEvidence {
        dockerenv: roots.rootfs.join(".dockerenv").exists(),
        containerenv: roots.rootfs.join("run/.containerenv").exists(),
        pid1_container_env: std::fs::read(roots.procfs.join("1/environ"))
            .ok()
            .and_then(|environ| find_container_env(&environ)),
        pid1_cgroup: std::fs::read_to_string(roots.procfs.join("1/cgroup")).ok(),
        dmi_sys_vendor: read_trimmed(&roots.sysfs.join("class/dmi/id/sys_vendor")),
        dmi_product_name: read_trimmed(&roots.sysfs.join("class/dmi/id/product_name")),
        cpuinfo_hypervisor_flag: std::fs::read_to_string(roots.procfs.join("cpuinfo"))
            .map(|text| parse_cpuinfo(&text).hypervisor_flag)
            .unwrap_or(false),
    };
    classify_virtualization(&evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path)
    }

    /// A procfs + rootfs tree from the Debian fixtures, with two "processes"
    /// and the glibc utmp fixture.
    fn fixture_tree() -> (tempfile::TempDir, HostRoots) {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path().join("proc");
        let root = dir.path().join("root");
        let deb = fixture("linux/debian12-x86_64-docker-vm");
        std::fs::create_dir_all(proc.join("sys/kernel")).unwrap();
        std::fs::create_dir_all(proc.join("1")).unwrap();
        std::fs::create_dir_all(proc.join("4242")).unwrap();
        std::fs::create_dir_all(proc.join("self")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::copy(deb.join("uptime"), proc.join("uptime")).unwrap();
        std::fs::copy(deb.join("stat.t0"), proc.join("stat")).unwrap();
        std::fs::copy(deb.join("cpuinfo"), proc.join("cpuinfo")).unwrap();
        std::fs::copy(deb.join("osrelease"), proc.join("sys/kernel/osrelease")).unwrap();
        std::fs::copy(deb.join("os-release"), root.join("etc/os-release")).unwrap();
        std::fs::copy(fixture("utmp/glibc-x86_64.utmp"), root.join("run/utmp")).unwrap();
        let roots = HostRoots {
            procfs: proc,
            sysfs: dir.path().join("sys"),
            rootfs: root,
        };
        (dir, roots)
    }

    #[test]
    fn collects_system_facts_from_a_fixture_tree() {
        let (_dir, roots) = fixture_tree();
        let out = SystemCollector::new(&roots).collect(Utc::now()).unwrap();
        let [MetricData::System(m)] = out.as_slice() else {
            panic!("{out:?}");
        };
        let uptime_text = std::fs::read_to_string(roots.procfs.join("uptime")).unwrap();
        assert_eq!(
            m.uptime,
            parse_uptime(&uptime_text).unwrap().uptime_secs as u64
        );
        assert_eq!(m.boot_time, 1_795_597_022);
        assert_eq!(m.processes, 2, "1 and 4242, not self or sys");
        assert_eq!(m.users, Some(2));
        assert_eq!(m.os.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(m.os_version.as_deref(), Some("12"));
        assert_eq!(m.kernel.as_deref(), Some("6.18.44-fc-v669"));
        assert_eq!(
            m.virtualization.as_deref(),
            Some("vm"),
            "hypervisor flag only"
        );
    }

    #[test]
    fn missing_utmp_leaves_users_unknown_and_dockerenv_names_docker() {
        let (_dir, roots) = fixture_tree();
        std::fs::remove_file(roots.rootfs.join("run/utmp")).unwrap();
        std::fs::write(roots.rootfs.join(".dockerenv"), "").unwrap();
        let out = SystemCollector::new(&roots).collect(Utc::now()).unwrap();
        let [MetricData::System(m)] = out.as_slice() else {
            panic!("{out:?}");
        };
        assert_eq!(m.users, None);
        assert_eq!(m.virtualization.as_deref(), Some("docker"));
    }

    #[test]
    fn missing_uptime_is_an_error() {
        let (_dir, roots) = fixture_tree();
        std::fs::remove_file(roots.procfs.join("uptime")).unwrap();
        let err = SystemCollector::new(&roots)
            .collect(Utc::now())
            .unwrap_err();
        assert!(matches!(err, CollectError::Io { .. }), "{err:?}");
    }
}
