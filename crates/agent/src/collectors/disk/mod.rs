//! `disk` collector: space and inodes of every real mount.
//!
//! - This file: which mounts count ([`classify_fs_type`], [`select_mounts`]),
//!   and the `df` arithmetic ([`compute_disk_metric`]), all pure.
//! - `linux.rs`: [`DiskCollector`], reading `<procfs>/self/mountinfo` (via
//!   [`crate::collectors::mounts::parse_mountinfo`]) and calling
//!   `statvfs(3)` on each selected mount, off-thread with a timeout where it
//!   can hang; `unsupported.rs`: the rest.
//!
//! Choices (what an administrator expects from `df`):
//! - Pseudo filesystems (proc, sysfs, cgroup, devpts, devtmpfs, ...) are
//!   skipped. `tmpfs` is skipped by default too: it is memory, not a disk,
//!   and a host has a dozen of them. [`DiskOptions::include_tmpfs`] brings
//!   them back (as `disk_type = "virtual"`) for whoever wants `/dev/shm`.
//! - A filesystem whose `statvfs` reports 0 blocks is skipped, as `df`
//!   without `-a` does (autofs placeholders, fuse control mounts).
//! - A mount hidden under a later mount on the same mount point is skipped
//!   (`statvfs` sees only the top one).
//! - Bind-mount duplicates (same device number and same root inside the
//!   filesystem) are reported once, at the shortest mount point (the first
//!   one on a tie). Btrfs subvolumes and bind mounts of sub-directories have
//!   different roots and stay: they are what the admin mounted.
//!   Bind-mounted files (Docker's `/etc/hosts`) are skipped.
//! - Network (nfs, cifs, sshfs, ceph, ...), overlay/squashfs ("virtual") and
//!   ZFS/btrfs ("local") mounts are kept.
//! - Numbers follow `df`: `disk_total = f_blocks × f_frsize`,
//!   `disk_used = (f_blocks − f_bfree) × f_frsize`, `disk_available =
//!   f_bavail × f_frsize` (what a non-root user can still write), and
//!   `disk_used_pct = used / (used + available) × 100`, so the reserved
//!   root blocks do not hide a full disk. Inodes are `None` when the
//!   filesystem reports none (btrfs, some overlays, vfat).
//! - A mount whose `statvfs` hangs (a dead NFS server) or fails is still
//!   reported, with `error` saying why and no sizes at all (the protocol's
//!   size fields are optional for exactly this: absent, never a made-up 0,
//!   so nothing charts or alerts on an empty disk). Dropping the mount
//!   instead would make a hung NFS share silently vanish from the host page.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod unsupported;

#[cfg(target_os = "linux")]
pub use linux::DiskCollector;
#[cfg(not(target_os = "linux"))]
pub use unsupported::DiskCollector;

use std::time::Duration;

use spectra_protocol::DiskMetric;

use super::cpu::round_pct;
use super::mounts::MountInfoEntry;
use super::{Collector, HostRoots};

/// The `disk` collector for this platform with default options (Linux:
/// mountinfo + statvfs; elsewhere one that answers
/// `CollectError::Unsupported`).
pub fn new_collector(roots: &HostRoots) -> Box<dyn Collector> {
    Box::new(DiskCollector::new(roots, DiskOptions::default()))
}

/// Tunables of the `disk` collector (`include_tmpfs` is the config file's
/// `[collectors.disk] include_tmpfs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskOptions {
    /// Report `tmpfs` mounts (`/dev/shm`, `/run`...). Default: no.
    pub include_tmpfs: bool,
    /// How long one `statvfs` on a network or FUSE mount may take.
    pub statvfs_timeout: Duration,
}

impl Default for DiskOptions {
    fn default() -> Self {
        Self {
            include_tmpfs: false,
            statvfs_timeout: Duration::from_secs(5),
        }
    }
}

/// What a filesystem type is, for `disk_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskType {
    /// On a block device of this host (ext4, xfs, btrfs, zfs, vfat...).
    Local,
    /// Served by another host; `statvfs` can hang.
    Network,
    /// Layered or image-backed (overlay, squashfs...), or tmpfs when asked.
    Virtual,
}

impl DiskType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Network => "network",
            Self::Virtual => "virtual",
        }
    }
}

/// Kernel and FUSE pseudo filesystems: no storage behind them.
const PSEUDO_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "fuse.gvfsd-fuse",
    "fuse.lxcfs",
    "fuse.portal",
    "hugetlbfs",
    "mqueue",
    "nfsd",
    "nsfs",
    "proc",
    "pstore",
    "ramfs",
    "rootfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "sysfs",
    "tracefs",
];

const NETWORK_FS: &[&str] = &[
    "9p",
    "afs",
    "beegfs",
    "ceph",
    "cifs",
    "davfs",
    "fuse.ceph-fuse",
    "fuse.glusterfs",
    "fuse.rclone",
    "fuse.s3fs",
    "fuse.sshfs",
    "glusterfs",
    "gpfs",
    "lustre",
    "ncpfs",
    "nfs",
    "nfs4",
    "smb3",
    "smbfs",
    "sshfs",
    "virtiofs",
];

const VIRTUAL_FS: &[&str] = &[
    "aufs",
    "erofs",
    "fuse.mergerfs",
    "fuse.snapfuse",
    "overlay",
    "squashfs",
];

/// The `disk_type` of a filesystem type, `None` for one that is not a disk
/// (pseudo filesystems; tmpfs unless `include_tmpfs`).
pub fn classify_fs_type(fs_type: &str, include_tmpfs: bool) -> Option<DiskType> {
    if fs_type == "tmpfs" {
        return include_tmpfs.then_some(DiskType::Virtual);
    }
    if PSEUDO_FS.contains(&fs_type) {
        None
    } else if NETWORK_FS.contains(&fs_type) {
        Some(DiskType::Network)
    } else if VIRTUAL_FS.contains(&fs_type) {
        Some(DiskType::Virtual)
    } else {
        Some(DiskType::Local)
    }
}

/// Whether `statvfs` on this mount can hang and must run off-thread:
/// network filesystems and any FUSE filesystem (a dead user-space daemon
/// blocks its callers).
pub fn may_hang(fs_type: &str, disk_type: DiskType) -> bool {
    disk_type == DiskType::Network || fs_type.starts_with("fuse")
}

/// A mount chosen for reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedMount {
    /// As the kernel shows it (in the host's view when reading the host's
    /// mountinfo).
    pub mount_point: String,
    pub source: String,
    pub fs_type: String,
    pub disk_type: DiskType,
    pub read_only: bool,
}

/// True when the per-mount or the super-block options say `ro`.
pub fn is_read_only(mount_options: &str, super_options: &str) -> bool {
    [mount_options, super_options]
        .iter()
        .any(|opts| opts.split(',').any(|o| o == "ro"))
}

/// The mounts to report, in mountinfo order (see the module docs for the
/// rules).
pub fn select_mounts(entries: &[MountInfoEntry], options: &DiskOptions) -> Vec<SelectedMount> {
    let mut kept: Vec<&MountInfoEntry> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if classify_fs_type(&e.fs_type, options.include_tmpfs).is_none() {
            continue;
        }
        // Over-mounted: a later entry sits on the same mount point.
        if entries[i + 1..]
            .iter()
            .any(|l| l.mount_point == e.mount_point)
        {
            continue;
        }
        let same_fs =
            |k: &&MountInfoEntry| k.major == e.major && k.minor == e.minor && k.root == e.root;
        match kept.iter().position(same_fs) {
            Some(at) if kept[at].mount_point.len() > e.mount_point.len() => kept[at] = e,
            Some(_) => {}
            None => kept.push(e),
        }
    }
    kept.into_iter()
        .filter_map(|e| {
            Some(SelectedMount {
                mount_point: e.mount_point.clone(),
                source: e.source.clone(),
                fs_type: e.fs_type.clone(),
                disk_type: classify_fs_type(&e.fs_type, options.include_tmpfs)?,
                read_only: is_read_only(&e.mount_options, &e.super_options),
            })
        })
        .collect()
}

/// The `statvfs(3)` fields used, in the filesystem's units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStats {
    /// `f_frsize`: the unit of the block counts.
    pub fragment_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
}

/// The `disk` payload of a mount from its `statvfs`, computed as `df` does.
pub fn compute_disk_metric(mount: &SelectedMount, stats: &FsStats) -> DiskMetric {
    let unit = stats.fragment_size;
    let total = stats.blocks.saturating_mul(unit);
    let used = stats
        .blocks
        .saturating_sub(stats.blocks_free)
        .saturating_mul(unit);
    let available = stats.blocks_available.saturating_mul(unit);
    let used_pct = match used.saturating_add(available) {
        0 => 0.0,
        denominator => round_pct(used as f64 / denominator as f64 * 100.0),
    };
    let (inodes_total, inodes_used, inodes_pct) = match stats.files {
        0 => (None, None, None),
        files => {
            let used = files.saturating_sub(stats.files_free);
            let pct = round_pct(used as f64 / files as f64 * 100.0);
            (Some(files), Some(used), Some(pct))
        }
    };
    DiskMetric {
        disk_total: Some(total),
        disk_used: Some(used),
        disk_available: Some(available),
        disk_used_pct: Some(used_pct),
        inodes_total,
        inodes_used,
        inodes_pct,
        ..describe_mount(mount)
    }
}

/// The `disk` payload of a mount whose numbers could not be read: `error`
/// set and no numbers at all (absent, never a made-up 0), so a dead NFS share
/// stays visible without charting as an empty disk.
pub fn describe_failed_mount(mount: &SelectedMount, error: String) -> DiskMetric {
    DiskMetric {
        error: Some(error),
        ..describe_mount(mount)
    }
}

fn describe_mount(mount: &SelectedMount) -> DiskMetric {
    DiskMetric {
        device: mount.source.clone(),
        mountpoint: mount.mount_point.clone(),
        filesystem: mount.fs_type.clone(),
        disk_type: mount.disk_type.name().to_owned(),
        read_only: Some(mount.read_only),
        ..DiskMetric::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::mounts::parse_mountinfo;
    use crate::collectors::test_fixture as fixture;

    fn points(mounts: &[SelectedMount]) -> Vec<&str> {
        mounts.iter().map(|m| m.mount_point.as_str()).collect()
    }

    #[test]
    fn keeps_only_the_root_disk_of_the_captured_container() {
        let entries =
            parse_mountinfo(&fixture("linux/debian12-x86_64-docker-vm/mountinfo")).unwrap();
        let mounts = select_mounts(&entries, &DiskOptions::default());
        assert_eq!(points(&mounts), vec!["/"]);
        assert_eq!(mounts[0].source, "/dev/vda");
        assert_eq!(mounts[0].disk_type, DiskType::Local);
        assert!(!mounts[0].read_only);
    }

    #[test]
    fn tmpfs_comes_back_when_asked_and_overmounts_count_once() {
        let entries =
            parse_mountinfo(&fixture("linux/debian12-x86_64-docker-vm/mountinfo")).unwrap();
        let options = DiskOptions {
            include_tmpfs: true,
            ..DiskOptions::default()
        };
        let mounts = select_mounts(&entries, &options);
        // /dev/shm is mounted twice (ids 25 and 30): only the top one counts.
        assert_eq!(
            points(&mounts),
            vec![
                "/",
                "/mnt/sandboxing/model_tools_env/v1/python",
                "/dev/shm",
                "/sys/fs/cgroup"
            ]
        );
        assert_eq!(mounts[2].disk_type, DiskType::Virtual);
        assert!(mounts[1].read_only);
    }

    #[test]
    fn selects_real_mounts_of_a_busy_server() {
        let entries = parse_mountinfo(&fixture("linux/server-nvme-mdraid/mountinfo")).unwrap();
        let mounts = select_mounts(&entries, &DiskOptions::default());
        assert_eq!(
            points(&mounts),
            vec![
                "/",
                "/boot/efi",
                "/home",
                "/srv/data",
                "/var/lib/docker/overlay2/3f1c/merged",
                "/snap/core22/1380",
                "/mnt/backup",
                "/mnt/share",
                "/tank",
                "/tank/vm",
                "/srv/data/www",
            ]
        );
        let by_point = |p: &str| mounts.iter().find(|m| m.mount_point == p).unwrap();
        // /srv/data was bind-mounted again at /var/www-data (same root):
        // reported once, at the shorter path.
        assert!(!points(&mounts).contains(&"/var/www-data"));
        // btrfs subvolume /home on the same device as / has its own root.
        assert_eq!(by_point("/home").fs_type, "btrfs");
        assert_eq!(by_point("/mnt/backup").disk_type, DiskType::Network);
        assert_eq!(by_point("/mnt/share").disk_type, DiskType::Network);
        assert_eq!(by_point("/snap/core22/1380").disk_type, DiskType::Virtual);
        assert!(by_point("/snap/core22/1380").read_only);
        assert_eq!(by_point("/tank/vm").disk_type, DiskType::Local);
        assert_eq!(
            by_point("/var/lib/docker/overlay2/3f1c/merged").disk_type,
            DiskType::Virtual
        );
    }

    #[test]
    fn bind_duplicate_keeps_the_shortest_mount_point() {
        let text = "\
30 1 8:1 / /mnt/deep/data rw - ext4 /dev/sdb1 rw
31 1 8:1 / /data rw - ext4 /dev/sdb1 rw
32 1 8:1 / /data2 ro - ext4 /dev/sdb1 rw
";
        let mounts = select_mounts(&parse_mountinfo(text).unwrap(), &DiskOptions::default());
        assert_eq!(points(&mounts), vec!["/data"]);
    }

    #[test]
    fn classifies_filesystem_types() {
        for fs in [
            "proc",
            "sysfs",
            "cgroup2",
            "devtmpfs",
            "tmpfs",
            "fuse.lxcfs",
        ] {
            assert_eq!(classify_fs_type(fs, false), None, "{fs}");
        }
        for fs in ["nfs4", "cifs", "fuse.sshfs", "ceph", "glusterfs"] {
            assert_eq!(classify_fs_type(fs, false), Some(DiskType::Network), "{fs}");
        }
        for fs in ["overlay", "squashfs"] {
            assert_eq!(classify_fs_type(fs, false), Some(DiskType::Virtual), "{fs}");
        }
        for fs in ["ext4", "xfs", "btrfs", "zfs", "vfat", "fuseblk"] {
            assert_eq!(classify_fs_type(fs, false), Some(DiskType::Local), "{fs}");
        }
        assert!(may_hang("fuse.sshfs", DiskType::Network));
        assert!(may_hang("fuseblk", DiskType::Local));
        assert!(!may_hang("ext4", DiskType::Local));
    }

    fn mount(fs_type: &str) -> SelectedMount {
        SelectedMount {
            mount_point: "/".into(),
            source: "/dev/vda".into(),
            fs_type: fs_type.into(),
            disk_type: DiskType::Local,
            read_only: false,
        }
    }

    #[test]
    fn computes_sizes_and_percent_like_df() {
        // 100 blocks of 4 KiB, 30 free of which 20 available to non-root.
        let stats = FsStats {
            fragment_size: 4096,
            blocks: 100,
            blocks_free: 30,
            blocks_available: 20,
            files: 1000,
            files_free: 750,
        };
        let m = compute_disk_metric(&mount("ext4"), &stats);
        assert_eq!(m.disk_total, Some(409_600));
        assert_eq!(m.disk_used, Some(286_720));
        assert_eq!(m.disk_available, Some(81_920));
        // df: used / (used + avail) = 70 / 90.
        assert_eq!(m.disk_used_pct, Some(77.78));
        assert_eq!(m.inodes_total, Some(1000));
        assert_eq!(m.inodes_used, Some(250));
        assert_eq!(m.inodes_pct, Some(25.0));
        assert_eq!(m.error, None);
        assert_eq!(
            (m.device.as_str(), m.disk_type.as_str()),
            ("/dev/vda", "local")
        );
    }

    #[test]
    fn filesystem_without_inodes_reports_none() {
        let stats = FsStats {
            fragment_size: 4096,
            blocks: 10,
            blocks_free: 10,
            blocks_available: 10,
            files: 0,
            files_free: 0,
        };
        let m = compute_disk_metric(&mount("btrfs"), &stats);
        assert_eq!(
            (m.inodes_total, m.inodes_used, m.inodes_pct),
            (None, None, None)
        );
        assert_eq!(m.disk_used_pct, Some(0.0));
    }

    #[test]
    fn failed_mount_carries_its_error() {
        let m = describe_failed_mount(&mount("nfs4"), "statvfs timed out after 5s".into());
        assert_eq!(m.error.as_deref(), Some("statvfs timed out after 5s"));
        assert_eq!((m.disk_total, m.disk_used_pct), (None, None));
        assert_eq!(m.mountpoint, "/");
    }

    #[test]
    fn read_only_from_mount_or_super_options() {
        assert!(is_read_only("ro,relatime", "rw"));
        assert!(is_read_only("rw,relatime", "ro,errors=continue"));
        assert!(!is_read_only("rw,relatime,errors=remount-ro", "rw"));
    }
}
