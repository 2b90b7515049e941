//! Linux `disk`: `<procfs>/self/mountinfo` (or the host's
//! `<procfs>/1/mountinfo` when `SPECTRA_ROOTFS` is not `/`) and
//! `statvfs(3)` on each selected mount under `<rootfs>`.
//!
//! The mount table is parsed again only when it changed: the kernel flags
//! `POLLPRI | POLLERR` on an open mountinfo when the mount namespace's
//! table changed since the last poll (proc(5), "/proc/pid/mountinfo"), so
//! the file is kept open and polled with a zero timeout each cycle. A
//! mountinfo that is not on procfs (a test fixture) is read every time.
//!
//! `statvfs` on a network or FUSE mount runs on its own short-lived thread
//! and is waited for at most [`DiskOptions::statvfs_timeout`]. A thread
//! stuck in the kernel cannot be killed: it is remembered, and while it is
//! stuck the mount is reported as hung without starting another one, so a
//! dead NFS server costs at most one blocked thread per mount.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use spectra_protocol::MetricData;

use super::{
    compute_disk_metric, describe_failed_mount, may_hang, select_mounts, DiskOptions, FsStats,
    SelectedMount,
};
use crate::collectors::mounts::parse_mountinfo;
use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots};

/// What probing one mount found: its numbers, or `None` when the mount
/// point is not a directory (a bind-mounted file such as Docker's
/// `/etc/hosts`).
pub type ProbeResult = io::Result<Option<FsStats>>;

/// The probe: `statvfs` in production, a stand-in in tests.
pub type ProbeFn = Arc<dyn Fn(&Path) -> ProbeResult + Send + Sync>;

pub struct DiskCollector {
    mountinfo_path: PathBuf,
    /// `None` when the root is `/`: mount points are used as they are.
    rootfs: Option<PathBuf>,
    options: DiskOptions,
    probe: ProbeFn,
    buf: String,
    /// The open mountinfo and whether it is on procfs (pollable).
    table: Option<(File, bool)>,
    /// The selection from the last parse, reused while the table is unchanged.
    mounts: Vec<SelectedMount>,
    /// Probes that timed out and have not answered yet, by mount point.
    hung: HashMap<String, Receiver<ProbeResult>>,
}

impl DiskCollector {
    pub fn new(roots: &HostRoots, options: DiskOptions) -> Self {
        Self::with_probe(roots, options, Arc::new(probe_statvfs))
    }

    /// As [`DiskCollector::new`] with another probe (tests).
    pub fn with_probe(roots: &HostRoots, options: DiskOptions, probe: ProbeFn) -> Self {
        let rootfs = (roots.rootfs != Path::new("/")).then(|| roots.rootfs.clone());
        // With a host root the host's mount table is wanted: the one of its
        // init, whose mount points are relative to that root. Our own
        // `self` table is the fallback when /proc/1 is not readable.
        let host_table = roots.procfs.join("1/mountinfo");
        let mountinfo_path = if rootfs.is_some() && std::fs::File::open(&host_table).is_ok() {
            host_table
        } else {
            roots.procfs.join("self/mountinfo")
        };
        Self {
            mountinfo_path,
            rootfs,
            options,
            probe,
            buf: String::new(),
            table: None,
            mounts: Vec::new(),
            hung: HashMap::new(),
        }
    }

    /// Re-reads and re-selects the mount table when it changed (or cannot
    /// tell), keeping the previous selection otherwise.
    fn refresh_mounts(&mut self) -> Result<(), CollectError> {
        let io_error = |source| CollectError::Io {
            path: self.mountinfo_path.clone(),
            source,
        };
        let (file, pollable) = match self.table.take() {
            Some((file, pollable)) => {
                if pollable && !has_mount_table_changed(&file) {
                    self.table = Some((file, pollable));
                    return Ok(());
                }
                (file, pollable)
            }
            None => {
                let file = File::open(&self.mountinfo_path).map_err(io_error)?;
                let pollable = is_on_procfs(&file);
                (file, pollable)
            }
        };
        self.buf.clear();
        let mut reader = &file;
        reader
            .seek(SeekFrom::Start(0))
            .and_then(|_| reader.read_to_string(&mut self.buf))
            .map_err(io_error)?;
        let entries = parse_mountinfo(&self.buf)?;
        self.mounts = select_mounts(&entries, &self.options);
        self.table = Some((file, pollable));
        Ok(())
    }

    fn path_of(&self, mount_point: &str) -> PathBuf {
        match &self.rootfs {
            Some(root) => root.join(mount_point.trim_start_matches('/')),
            None => PathBuf::from(mount_point),
        }
    }

    /// Probes one mount, off-thread with a timeout when it may hang.
    fn probe_mount(&mut self, mount: &SelectedMount) -> ProbeResult {
        let path = self.path_of(&mount.mount_point);
        if !may_hang(&mount.fs_type, mount.disk_type) {
            return (self.probe)(&path);
        }
        if let Some(rx) = self.hung.get(&mount.mount_point) {
            match rx.try_recv() {
                // Still stuck: do not pile up another thread on it.
                Err(TryRecvError::Empty) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "statvfs still not answering (timed out in an earlier cycle)",
                    ))
                }
                // It came back: its answer is stale, probe afresh.
                Ok(_) | Err(TryRecvError::Disconnected) => {
                    self.hung.remove(&mount.mount_point);
                }
            }
        }
        let (tx, rx) = mpsc::channel();
        let probe = Arc::clone(&self.probe);
        let thread_path = path.clone();
        let spawned = std::thread::Builder::new()
            .name("spectra-statvfs".into())
            .spawn(move || {
                // The receiver may be gone after a timeout: nothing to do.
                let _ = tx.send(probe(&thread_path));
            });
        if let Err(e) = spawned {
            return Err(io::Error::other(format!(
                "cannot start statvfs thread: {e}"
            )));
        }
        match rx.recv_timeout(self.options.statvfs_timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!(
                    mountpoint = %mount.mount_point,
                    fs_type = %mount.fs_type,
                    timeout = ?self.options.statvfs_timeout,
                    "statvfs timed out"
                );
                self.hung.insert(mount.mount_point.clone(), rx);
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "statvfs timed out after {}",
                        humantime::format_duration(self.options.statvfs_timeout)
                    ),
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(io::Error::other("statvfs thread ended without an answer"))
            }
        }
    }
}

impl Collector for DiskCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Disk
    }

    fn may_block(&self) -> bool {
        true
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        self.refresh_mounts()?;
        let mounts = std::mem::take(&mut self.mounts);
        // Forget hung probes of mounts that are gone (unmounted with -l).
        self.hung
            .retain(|point, _| mounts.iter().any(|m| &m.mount_point == point));

        let mut out = Vec::with_capacity(mounts.len());
        for mount in &mounts {
            let metric = match self.probe_mount(mount) {
                // Placeholders with no blocks (autofs, ...): `df` hides them.
                Ok(Some(stats)) if stats.blocks == 0 => continue,
                Ok(Some(stats)) => compute_disk_metric(mount, &stats),
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(mountpoint = %mount.mount_point, error = %e, "statvfs failed");
                    let message = if e.kind() == io::ErrorKind::TimedOut {
                        e.to_string()
                    } else {
                        format!("statvfs: {e}")
                    };
                    describe_failed_mount(mount, message)
                }
            };
            out.push(MetricData::Disk(metric));
        }
        self.mounts = mounts;
        Ok(out)
    }
}

/// Whether the mount table behind `file` changed since the last poll (or
/// since it was opened). A failed poll counts as a change: re-reading is
/// always safe.
fn has_mount_table_changed(file: &File) -> bool {
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLPRI,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd for an fd `file` keeps open; the
    // timeout of 0 makes poll return at once.
    let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
    rc < 0 || pfd.revents & (libc::POLLPRI | libc::POLLERR) != 0
}

/// Whether `file` is on procfs (only there does poll report table changes).
fn is_on_procfs(file: &File) -> bool {
    let mut raw = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: the fd is open for the call and `raw` is a writable buffer of
    // the size fstatfs expects.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), raw.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: fstatfs returned 0, so it filled the struct.
    let raw = unsafe { raw.assume_init() };
    // `f_type` and the magic are `c_long` or `__fsword_t` depending on the
    // target; compare them widened.
    #[allow(clippy::unnecessary_cast)]
    let (magic, proc_magic) = (raw.f_type as i64, libc::PROC_SUPER_MAGIC as i64);
    magic == proc_magic
}

/// `stat` (is it a directory?) then `statvfs(3)`.
fn probe_statvfs(path: &Path) -> ProbeResult {
    if !std::fs::metadata(path)?.is_dir() {
        return Ok(None);
    }
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in mount point"))?;
    let mut raw = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a NUL-terminated string alive for the call and
    // `raw` is a writable buffer of the size statvfs expects.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), raw.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the whole struct.
    let raw = unsafe { raw.assume_init() };
    // The field types differ between 32- and 64-bit targets; all fit u64.
    #[allow(clippy::unnecessary_cast)]
    let stats = FsStats {
        fragment_size: raw.f_frsize as u64,
        blocks: raw.f_blocks as u64,
        blocks_free: raw.f_bfree as u64,
        blocks_available: raw.f_bavail as u64,
        files: raw.f_files as u64,
        files_free: raw.f_ffree as u64,
    };
    Ok(Some(stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spectra_protocol::DiskMetric;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    const MOUNTINFO: &str = "\
22 29 0:21 / /proc rw - proc proc rw
29 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 29 0:45 / /mnt/nfs rw - nfs4 nas:/export rw,vers=4.2
31 29 254:0 /var/lib/docker/containers/x/hosts /etc/hosts rw - ext4 /dev/vda rw
32 29 0:50 / /mnt/empty rw - autofs systemd-1 rw
33 29 0:51 / /mnt/auto rw - ext4 /dev/sdz1 rw
";

    fn roots_with_mountinfo(text: &str) -> (tempfile::TempDir, HostRoots) {
        let dir = tempfile::tempdir().unwrap();
        let procfs = dir.path().join("proc");
        std::fs::create_dir_all(procfs.join("self")).unwrap();
        std::fs::write(procfs.join("self/mountinfo"), text).unwrap();
        let roots = HostRoots {
            procfs,
            sysfs: dir.path().join("sys"),
            rootfs: PathBuf::from("/"),
        };
        (dir, roots)
    }

    fn disks(out: Vec<MetricData>) -> Vec<DiskMetric> {
        out.into_iter()
            .map(|m| match m {
                MetricData::Disk(d) => d,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn stats(blocks: u64) -> FsStats {
        FsStats {
            fragment_size: 4096,
            blocks,
            blocks_free: blocks / 2,
            blocks_available: blocks / 4,
            files: 100,
            files_free: 10,
        }
    }

    /// A probe answering by mount point: `/mnt/nfs` blocks until `release`
    /// is dropped, `/etc/hosts` is a file, `/mnt/auto` has 0 blocks.
    fn fake_probe(release: mpsc::Receiver<()>, calls: Arc<AtomicUsize>) -> ProbeFn {
        let release = Mutex::new(release);
        Arc::new(move |path: &Path| match path.to_str().unwrap() {
            "/mnt/nfs" => {
                calls.fetch_add(1, Ordering::SeqCst);
                let _ = release.lock().unwrap().recv();
                Ok(Some(stats(1000)))
            }
            "/etc/hosts" => Ok(None),
            "/mnt/auto" => Ok(Some(stats(0))),
            _ => Ok(Some(stats(100))),
        })
    }

    #[test]
    fn hung_network_mount_is_reported_and_never_blocks_twice() {
        let (_dir, roots) = roots_with_mountinfo(MOUNTINFO);
        let (release, blocked) = mpsc::channel::<()>();
        let calls = Arc::new(AtomicUsize::new(0));
        let options = DiskOptions {
            statvfs_timeout: Duration::from_millis(50),
            ..DiskOptions::default()
        };
        let mut c =
            DiskCollector::with_probe(&roots, options, fake_probe(blocked, Arc::clone(&calls)));
        assert!(c.may_block());

        let first = disks(c.collect(Utc::now()).unwrap());
        let points: Vec<&str> = first.iter().map(|d| d.mountpoint.as_str()).collect();
        assert_eq!(points, vec!["/", "/mnt/nfs"]);
        assert_eq!(first[0].disk_total, Some(409_600));
        assert_eq!(first[0].error, None);
        let nfs = &first[1];
        assert_eq!(nfs.error.as_deref(), Some("statvfs timed out after 50ms"));
        assert_eq!((nfs.disk_total, nfs.disk_type.as_str()), (None, "network"));

        // Still stuck: reported again without a second blocked thread.
        let second = disks(c.collect(Utc::now()).unwrap());
        assert!(second[1]
            .error
            .as_deref()
            .unwrap()
            .contains("still not answering"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // The server comes back: the next cycle probes afresh and succeeds.
        drop(release);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let out = disks(c.collect(Utc::now()).unwrap());
            if out[1].error.is_none() {
                assert_eq!(out[1].disk_total, Some(4_096_000));
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never recovered: {out:?}"
            );
            // Waiting for the released thread to post its answer.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn failing_statvfs_is_reported_with_its_error() {
        let (_dir, roots) = roots_with_mountinfo("29 1 254:0 / / rw - ext4 /dev/vda rw\n");
        let probe: ProbeFn =
            Arc::new(|_: &Path| Err(io::Error::from(io::ErrorKind::PermissionDenied)));
        let mut c = DiskCollector::with_probe(&roots, DiskOptions::default(), probe);
        let out = disks(c.collect(Utc::now()).unwrap());
        assert_eq!(out.len(), 1);
        assert!(
            out[0].error.as_deref().unwrap().starts_with("statvfs: "),
            "{out:?}"
        );
    }

    #[test]
    fn joins_mount_points_under_a_host_root() {
        let dir = tempfile::tempdir().unwrap();
        let procfs = dir.path().join("proc");
        std::fs::create_dir_all(procfs.join("1")).unwrap();
        std::fs::write(
            procfs.join("1/mountinfo"),
            "29 1 254:0 / / rw - ext4 /dev/vda rw\n30 29 254:1 / /data rw - xfs /dev/vdb rw\n",
        )
        .unwrap();
        let rootfs = dir.path().join("host");
        std::fs::create_dir_all(rootfs.join("data")).unwrap();
        let roots = HostRoots {
            procfs,
            sysfs: dir.path().join("sys"),
            rootfs: rootfs.clone(),
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_by_probe = Arc::clone(&seen);
        let probe: ProbeFn = Arc::new(move |p: &Path| {
            seen_by_probe.lock().unwrap().push(p.to_path_buf());
            Ok(Some(stats(8)))
        });
        let mut c = DiskCollector::with_probe(&roots, DiskOptions::default(), probe);
        let out = disks(c.collect(Utc::now()).unwrap());
        assert_eq!(out[1].mountpoint, "/data");
        assert_eq!(
            *seen.lock().unwrap(),
            vec![rootfs.clone(), rootfs.join("data")]
        );
    }

    #[test]
    fn real_statvfs_of_a_directory_and_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = probe_statvfs(dir.path()).unwrap().unwrap();
        assert!(s.blocks > 0 && s.fragment_size > 0);
        assert!(s.blocks_available <= s.blocks_free);
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(probe_statvfs(&file).unwrap(), None);
        assert!(probe_statvfs(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn rereads_a_mount_table_that_is_not_on_procfs_every_time() {
        let (dir, roots) = roots_with_mountinfo("29 1 254:0 / / rw - ext4 /dev/vda rw\n");
        let probe: ProbeFn = Arc::new(|_: &Path| Ok(Some(stats(8))));
        let mut c = DiskCollector::with_probe(&roots, DiskOptions::default(), probe);
        assert_eq!(disks(c.collect(Utc::now()).unwrap()).len(), 1);
        std::fs::write(
            dir.path().join("proc/self/mountinfo"),
            "29 1 254:0 / / rw - ext4 /dev/vda rw\n30 29 8:1 / /data rw - xfs /dev/sdb1 rw\n",
        )
        .unwrap();
        let out = disks(c.collect(Utc::now()).unwrap());
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].mountpoint, "/data");
    }

    #[test]
    fn procfs_mount_table_reports_no_change_right_after_reading() {
        let mut file = File::open("/proc/self/mountinfo").unwrap();
        assert!(is_on_procfs(&file));
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert!(!text.is_empty());
        // Nothing in this test process mounts anything.
        assert!(!has_mount_table_changed(&file));
        let tmp = tempfile::tempfile().unwrap();
        assert!(!is_on_procfs(&tmp));
    }

    #[test]
    fn missing_mountinfo_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let roots = HostRoots {
            procfs: dir.path().to_path_buf(),
            sysfs: dir.path().to_path_buf(),
            rootfs: PathBuf::from("/"),
        };
        let err = DiskCollector::new(&roots, DiskOptions::default())
            .collect(Utc::now())
            .unwrap_err();
        assert!(matches!(err, CollectError::Io { .. }), "{err:?}");
    }
}
