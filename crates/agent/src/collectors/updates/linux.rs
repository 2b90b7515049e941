//! Linux `updates`: finds the package manager on `PATH` and asks it, in
//! read-only, no-refresh, no-lock modes, what it would upgrade.
//!
//! - [`find_on_path`]: the `PATH` lookup, by hand (no `which` child).
//! - [`run_bounded`]: one child with `LC_ALL=C`, the searched `PATH`, no
//!   stdin, its own process group, a timeout (the whole group is killed) and
//!   a cap on the output kept.
//! - [`UpdatesCollector`]: per manager, the commands of the module docs in
//!   `mod.rs`, and the reboot flag.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use spectra_protocol::{MetricData, PendingUpdate};

use super::{
    compute_updates_metric, mark_dnf_security, parse_apt_simulation, parse_dnf_check_update,
    parse_dnf_security_list, parse_pacman_query_upgrades, PackageManager,
};
use super::{count_zypper_security_patches, parse_zypper_xml_updates, select_zypper_packages};
use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

/// apt on a slow disk with many sources takes tens of seconds; a stuck
/// mirror lock or NFS root must not hold the collector thread forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// `apt-get -s dist-upgrade` prints ~200 bytes per package: 8 MiB is tens of
/// thousands of packages, far past any real host.
pub const DEFAULT_OUTPUT_CAP_BYTES: usize = 8 << 20;
/// Used when the agent runs with no `PATH` at all (some service managers).
const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How often the runner looks whether a child that closed its pipes exited.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

pub struct UpdatesCollector {
    rootfs: PathBuf,
    search_path: OsString,
    timeout: Duration,
    output_cap_bytes: usize,
}

impl UpdatesCollector {
    /// Searches the agent's own `PATH`.
    pub fn new(roots: &HostRoots) -> Self {
        let search_path = std::env::var_os("PATH")
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| OsString::from(FALLBACK_PATH));
        Self::with_search_path(roots, search_path, DEFAULT_TIMEOUT)
    }

    /// Searches `search_path` (a `PATH`-style list) for the package manager,
    /// and gives the children that `PATH`: tests put fake tools there.
    pub fn with_search_path(
        roots: &HostRoots,
        search_path: impl Into<OsString>,
        timeout: Duration,
    ) -> Self {
        Self {
            rootfs: roots.rootfs.clone(),
            search_path: search_path.into(),
            timeout,
            output_cap_bytes: DEFAULT_OUTPUT_CAP_BYTES,
        }
    }

    /// The package manager of this host: the first of
    /// [`PackageManager::DETECTION_ORDER`] found on the search path.
    pub fn detect_package_manager(&self) -> Option<(PackageManager, PathBuf)> {
        PackageManager::DETECTION_ORDER
            .into_iter()
            .find_map(|pm| find_on_path(&self.search_path, pm.binary()).map(|p| (pm, p)))
    }

    fn run(&self, program: &Path, args: &[&str]) -> Result<CommandOutput, CollectError> {
        run_bounded(
            program,
            args,
            &self.search_path,
            self.timeout,
            self.output_cap_bytes,
        )
    }

    /// `LC_ALL=C apt-get -s -o Debug::NoLocking=1 dist-upgrade`: a
    /// simulation, which needs no root and takes no lock.
    fn collect_apt(&self, apt_get: &Path) -> Result<Vec<PendingUpdate>, CollectError> {
        let out = self.run(apt_get, &["-s", "-o", "Debug::NoLocking=1", "dist-upgrade"])?;
        out.require_success(&[0])?;
        Ok(parse_apt_simulation(&out.stdout)?)
    }

    /// `dnf -q --cacheonly check-update` (exit 100: updates, 0: none) and
    /// `updateinfo list --security` for the security subset; yum takes the
    /// same flags.
    fn collect_dnf(&self, dnf: &Path) -> Result<Vec<PendingUpdate>, CollectError> {
        let out = self.run(dnf, &["-q", "--cacheonly", "check-update"])?;
        out.require_success(&[0, 100])?;
        let updates = parse_dnf_check_update(&out.stdout)?;
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.run(
            dnf,
            &["-q", "--cacheonly", "updateinfo", "list", "--security"],
        )?;
        out.require_success(&[0])?;
        let security = parse_dnf_security_list(&out.stdout);
        Ok(mark_dnf_security(&updates, &security))
    }

    /// `zypper --non-interactive --no-refresh --xmlout list-updates`, and
    /// `list-patches --category security` for the security count. zypper's
    /// informational exit codes are successes: 100 updates needed, 101
    /// security updates needed, 102 reboot needed, 103 restart of zypper
    /// needed, 106 some repositories skipped (answered from the others).
    fn collect_zypper(&self, zypper: &Path) -> Result<(Vec<PendingUpdate>, u32), CollectError> {
        const OK: [i32; 6] = [0, 100, 101, 102, 103, 106];
        let global = ["--non-interactive", "--no-refresh", "--xmlout"];
        let out = self.run(zypper, &[&global[..], &["list-updates"]].concat())?;
        out.require_success(&OK)?;
        let packages = select_zypper_packages(&parse_zypper_xml_updates(&out.stdout)?);
        let out = self.run(
            zypper,
            &[&global[..], &["list-patches", "--category", "security"]].concat(),
        )?;
        out.require_success(&OK)?;
        let security = count_zypper_security_patches(&parse_zypper_xml_updates(&out.stdout)?);
        Ok((packages, security))
    }

    /// `pacman -Qu` reads the local sync database, never refreshes it.
    fn collect_pacman(&self, pacman: &Path) -> Result<Vec<PendingUpdate>, CollectError> {
        let out = self.run(pacman, &["-Qu"])?;
        // pacman's queries exit 1 when they match nothing: no upgrades.
        if out.status.code() == Some(1) && out.stdout.trim().is_empty() {
            return Ok(Vec::new());
        }
        out.require_success(&[0])?;
        Ok(parse_pacman_query_upgrades(&out.stdout)?)
    }

    /// Debian/Ubuntu: the flag file their packages' postinst scripts touch.
    /// RHEL/Fedora: `needs-restarting -r` exits 1 when a reboot is needed;
    /// without that tool (yum-utils / dnf-utils not installed) there is no
    /// cheap answer and the flag stays false.
    fn read_reboot_required(&self, manager: PackageManager) -> bool {
        if is_reboot_flag_present(&self.rootfs) {
            return true;
        }
        if !matches!(manager, PackageManager::Dnf | PackageManager::Yum) {
            return false;
        }
        let Some(tool) = find_on_path(&self.search_path, "needs-restarting") else {
            return false;
        };
        match self.run(&tool, &["-r"]) {
            Ok(out) => out.status.code() == Some(1),
            Err(error) => {
                tracing::warn!(%error, "needs-restarting failed; reboot_required left false");
                false
            }
        }
    }
}

impl Collector for UpdatesCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Updates
    }

    fn may_block(&self) -> bool {
        true
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        let Some((manager, program)) = self.detect_package_manager() else {
            return Err(CollectError::Unsupported(
                "no supported package manager (apt, dnf, yum, zypper, pacman)".to_owned(),
            ));
        };
        let packages = match manager {
            PackageManager::Apt => self.collect_apt(&program)?,
            PackageManager::Dnf | PackageManager::Yum => self.collect_dnf(&program)?,
            PackageManager::Pacman => self.collect_pacman(&program)?,
            PackageManager::Zypper => {
                let (packages, security_count) = self.collect_zypper(&program)?;
                let mut metric =
                    compute_updates_metric(manager, packages, self.read_reboot_required(manager));
                // Per patch, not per package (module docs).
                metric.security_count = security_count;
                return Ok(vec![MetricData::Updates(metric)]);
            }
        };
        let reboot_required = self.read_reboot_required(manager);
        Ok(vec![MetricData::Updates(compute_updates_metric(
            manager,
            packages,
            reboot_required,
        ))])
    }
}

/// `<rootfs>/var/run/reboot-required` or `<rootfs>/run/reboot-required`.
pub fn is_reboot_flag_present(rootfs: &Path) -> bool {
    ["var/run/reboot-required", "run/reboot-required"]
        .iter()
        .any(|p| rootfs.join(p).exists())
}

/// The first executable regular file named `binary` in the `PATH`-style
/// list `search_path`. Empty entries (which mean the current directory to a
/// shell) are skipped on purpose: the agent must not run a file from
/// wherever it was started.
pub fn find_on_path(search_path: &OsStr, binary: &str) -> Option<PathBuf> {
    std::env::split_paths(search_path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(binary))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// What a finished child said.
#[derive(Debug)]
pub struct CommandOutput {
    pub program: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    /// `CollectError::Other` with the first line of stderr unless the exit
    /// code is one of `ok_codes`.
    fn require_success(&self, ok_codes: &[i32]) -> Result<(), CollectError> {
        match self.status.code() {
            Some(code) if ok_codes.contains(&code) => Ok(()),
            _ => {
                let first = self
                    .stderr
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("no error output");
                Err(CollectError::Other(format!(
                    "{} failed ({}): {first}",
                    self.program, self.status
                )))
            }
        }
    }
}

/// Runs `program args` with `LC_ALL=C` (stable, parseable messages) and
/// `PATH=search_path`, stdin closed, in its own process group. Output past
/// `cap_bytes` per stream is an error rather than a silently short list.
/// Past `timeout` the whole group is killed (a shell wrapper's children
/// too) and the child reaped.
pub fn run_bounded(
    program: &Path,
    args: &[&str],
    search_path: &OsStr,
    timeout: Duration,
    cap_bytes: usize,
) -> Result<CommandOutput, CollectError> {
    let name = program.file_name().map_or_else(
        || program.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let deadline = Instant::now() + timeout;
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .env("PATH", search_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| CollectError::Io {
            path: program.to_path_buf(),
            source,
        })?;
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        spawn_reader(out, true, cap_bytes, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        spawn_reader(err, false, cap_bytes, tx);
    }

    // Both pipes reach end of file when the child (and anything it started)
    // exits; until then the child is not reaped, so its pid still names our
    // process group when we kill it.
    let (mut stdout, mut stderr) = (None, None);
    while stdout.is_none() || stderr.is_none() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(remaining) {
            Ok((is_stdout, read)) => {
                let read = read.map_err(|source| {
                    kill_group(&mut child);
                    CollectError::Io {
                        path: program.to_path_buf(),
                        source,
                    }
                })?;
                if read.truncated {
                    kill_group(&mut child);
                    return Err(CollectError::Other(format!(
                        "{name} printed more than {cap_bytes} bytes"
                    )));
                }
                let text = String::from_utf8_lossy(&read.bytes).into_owned();
                if is_stdout {
                    stdout = Some(text);
                } else {
                    stderr = Some(text);
                }
            }
            // Timeout, or a reader gone without answering (cannot happen:
            // each sends exactly once).
            Err(_) => return Err(timed_out(&mut child, &name, timeout)),
        }
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL_INTERVAL),
            Ok(None) => return Err(timed_out(&mut child, &name, timeout)),
            Err(source) => {
                kill_group(&mut child);
                return Err(CollectError::Io {
                    path: program.to_path_buf(),
                    source,
                });
            }
        }
    };
    Ok(CommandOutput {
        program: name,
        status,
        stdout: stdout.unwrap_or_default(),
        stderr: stderr.unwrap_or_default(),
    })
}

fn timed_out(child: &mut Child, name: &str, timeout: Duration) -> CollectError {
    kill_group(child);
    CollectError::Other(format!(
        "{name} timed out after {} s and was killed",
        timeout.as_secs_f64()
    ))
}

/// SIGKILL to the child's process group, then reap the child.
fn kill_group(child: &mut Child) {
    if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) has no memory-safety preconditions; the child is
        // not reaped yet, so `pgid` is still our child's group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

struct ReadOutcome {
    bytes: Vec<u8>,
    truncated: bool,
}

/// Reads a pipe to its end on a thread, keeping at most `cap_bytes`.
fn spawn_reader(
    mut pipe: impl Read + Send + 'static,
    is_stdout: bool,
    cap_bytes: usize,
    tx: mpsc::Sender<(bool, std::io::Result<ReadOutcome>)>,
) {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // One byte past the cap tells "exactly cap" from "more than cap".
        let limit = u64::try_from(cap_bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let result = pipe.by_ref().take(limit).read_to_end(&mut bytes).map(|_| {
            let truncated = bytes.len() > cap_bytes;
            bytes.truncate(cap_bytes);
            ReadOutcome { bytes, truncated }
        });
        // The receiver may have gone (timeout): nothing left to tell.
        let _ = tx.send((is_stdout, result));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::test_fixture;

    /// A tempdir holding executable shell scripts, used as `PATH`: being the
    /// whole `PATH` of the child, scripts name other tools by full path.
    fn fake_bin(scripts: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in scripts {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    fn roots_at(rootfs: &Path) -> HostRoots {
        HostRoots {
            rootfs: rootfs.to_path_buf(),
            ..HostRoots::default()
        }
    }

    /// A collector with `rootfs` as its root, `bin` as its PATH and a
    /// generous timeout.
    fn collector_in(rootfs: &Path, bin: &Path) -> UpdatesCollector {
        UpdatesCollector::with_search_path(&roots_at(rootfs), bin, Duration::from_secs(60))
    }

    fn collect_one(c: &mut UpdatesCollector) -> spectra_protocol::UpdatesMetric {
        let out = c.collect(Utc::now()).unwrap();
        let [MetricData::Updates(m)] = out.as_slice() else {
            panic!("{out:?}");
        };
        m.clone()
    }

    #[test]
    fn runs_a_fake_apt_get_and_parses_its_output() {
        let fixture = format!(
            "{}/tests/fixtures/updates/apt_debian12_security.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        let args_file = tempfile::NamedTempFile::new().unwrap();
        let script = format!(
            "echo \"$LC_ALL $*\" > '{}'\n/bin/cat '{fixture}'",
            args_file.path().display()
        );
        let bin = fake_bin(&[("apt-get", &script)]);
        let rootfs = tempfile::tempdir().unwrap();
        let mut c = collector_in(rootfs.path(), bin.path());
        assert!(c.may_block());
        let m = collect_one(&mut c);
        assert_eq!(m.package_manager, "apt");
        assert_eq!(m.pending_count, 4);
        assert_eq!(m.security_count, 3);
        assert!(!m.reboot_required);
        let args = std::fs::read_to_string(args_file.path()).unwrap();
        assert_eq!(args.trim(), "C -s -o Debug::NoLocking=1 dist-upgrade");
        let expected =
            parse_apt_simulation(&test_fixture("updates/apt_debian12_security.txt")).unwrap();
        assert_eq!(m.packages, expected);
    }

    #[test]
    fn reports_the_reboot_flag_under_the_rootfs() {
        let bin = fake_bin(&[("apt-get", "echo 'Calculating upgrade...'")]);
        let rootfs = tempfile::tempdir().unwrap();
        let mut c = collector_in(rootfs.path(), bin.path());
        let m = collect_one(&mut c);
        assert!(!m.reboot_required);
        assert_eq!(m.pending_count, 0);

        std::fs::create_dir_all(rootfs.path().join("run")).unwrap();
        std::fs::write(rootfs.path().join("run/reboot-required"), "").unwrap();
        assert!(collect_one(&mut c).reboot_required);
        std::fs::remove_file(rootfs.path().join("run/reboot-required")).unwrap();

        std::fs::create_dir_all(rootfs.path().join("var/run")).unwrap();
        std::fs::write(rootfs.path().join("var/run/reboot-required"), "").unwrap();
        assert!(collect_one(&mut c).reboot_required);
    }

    #[test]
    fn kills_a_package_manager_that_outlives_the_timeout() {
        let pid_file = tempfile::NamedTempFile::new().unwrap();
        // The shell's child `sleep` is in the group too: only killing the
        // whole group ends it. The file gets "<shell pid> <sleep pid>".
        let script = format!(
            "/bin/sleep 300 &\necho $$ $! > '{}'\nwait",
            pid_file.path().display()
        );
        let bin = fake_bin(&[("apt-get", &script)]);
        let rootfs = tempfile::tempdir().unwrap();
        let mut c = UpdatesCollector::with_search_path(
            &roots_at(rootfs.path()),
            bin.path(),
            Duration::from_secs(2),
        );
        let err = c.collect(Utc::now()).unwrap_err();
        assert!(
            matches!(&err, CollectError::Other(m) if m.contains("timed out")),
            "{err}"
        );
        let pids = std::fs::read_to_string(pid_file.path()).unwrap();
        let pids: Vec<&str> = pids.split_whitespace().collect();
        assert_eq!(pids.len(), 2, "script did not start: {pids:?}");
        // The shell is our child, killed and reaped: its pid is gone.
        assert!(
            !Path::new(&format!("/proc/{}", pids[0])).exists(),
            "shell {} still alive",
            pids[0]
        );
        // The orphaned sleep is reaped by init, asynchronously: wait (with a
        // deadline) until it is gone or a zombie.
        let stat = format!("/proc/{}/stat", pids[1]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let dead = match std::fs::read_to_string(&stat) {
                Err(_) => true,
                Ok(s) => s
                    .rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            };
            if dead {
                break;
            }
            assert!(Instant::now() < deadline, "sleep {} survived", pids[1]);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_failing_command_reports_its_first_stderr_line() {
        let bin = fake_bin(&[(
            "apt-get",
            "echo 'E: Could not open lock file' >&2\necho 'E: second' >&2\nexit 100",
        )]);
        let rootfs = tempfile::tempdir().unwrap();
        let mut c = collector_in(rootfs.path(), bin.path());
        let err = c.collect(Utc::now()).unwrap_err();
        let CollectError::Other(message) = &err else {
            panic!("{err:?}");
        };
        assert!(message.contains("E: Could not open lock file"), "{message}");
        assert!(!message.contains("second"), "{message}");
    }

    #[test]
    fn output_past_the_cap_is_an_error() {
        let bin = fake_bin(&[(
            "apt-get",
            "i=0; while [ $i -lt 1000 ]; do echo 'Inst x [1] (2 a [all])'; i=$((i+1)); done",
        )]);
        let rootfs = tempfile::tempdir().unwrap();
        let mut c = collector_in(rootfs.path(), bin.path());
        c.output_cap_bytes = 1000;
        let err = c.collect(Utc::now()).unwrap_err();
        assert!(err.to_string().contains("more than 1000 bytes"), "{err}");
    }

    #[test]
    fn runs_fake_dnf_with_security_and_needs_restarting() {
        let fixtures = format!("{}/tests/fixtures/updates", env!("CARGO_MANIFEST_DIR"));
        let dnf = format!(
            "case \"$*\" in\n\
             '-q --cacheonly check-update') /bin/cat '{fixtures}/dnf_fedora39_check_update.txt'; exit 100;;\n\
             '-q --cacheonly updateinfo list --security') /bin/cat '{fixtures}/dnf_fedora39_updateinfo_security.txt';;\n\
             *) echo \"unexpected: $*\" >&2; exit 2;;\n\
             esac"
        );
        let bin = fake_bin(&[("dnf", &dnf), ("needs-restarting", "exit 1")]);
        let rootfs = tempfile::tempdir().unwrap();
        let mut c = collector_in(rootfs.path(), bin.path());
        let m = collect_one(&mut c);
        assert_eq!(m.package_manager, "dnf");
        assert_eq!(m.pending_count, 7);
        assert_eq!(m.security_count, 4);
        assert!(m.reboot_required, "needs-restarting -r exited 1");
    }

    #[test]
    fn runs_fake_zypper_without_refreshing() {
        let fixtures = format!("{}/tests/fixtures/updates", env!("CARGO_MANIFEST_DIR"));
        let zypper = format!(
            "case \"$*\" in\n\
             '--non-interactive --no-refresh --xmlout list-updates') /bin/cat '{fixtures}/zypper_leap155_list_updates.xml';;\n\
             '--non-interactive --no-refresh --xmlout list-patches --category security') /bin/cat '{fixtures}/zypper_leap155_security_patches.xml'; exit 101;;\n\
             *) echo \"unexpected: $*\" >&2; exit 2;;\n\
             esac"
        );
        let bin = fake_bin(&[("zypper", &zypper)]);
        let rootfs = tempfile::tempdir().unwrap();
        let mut c = collector_in(rootfs.path(), bin.path());
        let m = collect_one(&mut c);
        assert_eq!(m.package_manager, "zypper");
        assert_eq!(m.pending_count, 3);
        assert_eq!(m.security_count, 2);
    }

    #[test]
    fn pacman_with_nothing_to_upgrade_is_zero() {
        let bin = fake_bin(&[("pacman", "exit 1")]);
        let rootfs = tempfile::tempdir().unwrap();
        let mut c = collector_in(rootfs.path(), bin.path());
        let m = collect_one(&mut c);
        assert_eq!(m.package_manager, "pacman");
        assert_eq!(m.pending_count, 0);
        assert_eq!(m.security_count, 0);
    }

    #[test]
    fn no_package_manager_is_unsupported() {
        let empty = tempfile::tempdir().unwrap();
        // A non-executable file with the right name does not count.
        std::fs::write(empty.path().join("apt-get"), "").unwrap();
        let mut c = UpdatesCollector::with_search_path(
            &HostRoots::default(),
            empty.path(),
            Duration::from_secs(60),
        );
        let err = c.collect(Utc::now()).unwrap_err();
        assert!(
            matches!(&err, CollectError::Unsupported(m)
                if m == "no supported package manager (apt, dnf, yum, zypper, pacman)"),
            "{err:?}"
        );
    }

    #[test]
    fn finds_the_first_match_in_path_order() {
        let a = fake_bin(&[("dnf", "true")]);
        let b = fake_bin(&[("apt-get", "true"), ("dnf", "true")]);
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        assert_eq!(find_on_path(&path, "dnf"), Some(a.path().join("dnf")));
        let c = UpdatesCollector::with_search_path(&HostRoots::default(), path, DEFAULT_TIMEOUT);
        // Detection order beats PATH order: apt-get first.
        assert_eq!(
            c.detect_package_manager(),
            Some((PackageManager::Apt, b.path().join("apt-get")))
        );
    }
}
