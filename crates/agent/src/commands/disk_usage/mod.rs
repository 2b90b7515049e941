//! `DISK_USAGE` (SPEC Appendix A): the largest directories and files under a
//! path, or the mounts when no path is given.
//!
//! The path is the host's: it is resolved under the agent's root filesystem
//! (`SPECTRA_ROOTFS`) as if that were `/`, symbolic links included, and must
//! land inside one of the configured scan roots (SPEC §6). The walk itself
//! is [`scan`].

#[cfg(unix)]
pub mod scan;

/// The walk needs st_dev, st_ino and st_blocks.
#[cfg(not(unix))]
pub mod scan {
    use super::{ScanOptions, ScanOutcome};
    use std::path::Path;

    pub fn scan(
        _fs_root: &Path,
        _shown_root: &Path,
        _options: &ScanOptions,
    ) -> std::io::Result<ScanOutcome> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("scans are not implemented for {} yet", std::env::consts::OS),
        ))
    }
}

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use spectra_protocol::{validate_abs_path, DiskUsageReport, DiskUsageRequest};

use super::{CommandContext, CommandOutcome};

/// How a scan runs.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Directories and files listed.
    pub top_n: usize,
    /// Past this the walk stops and the report is partial.
    pub budget: Duration,
    /// Walker threads.
    pub threads: usize,
    /// Directories remembered at most (each costs its name and four
    /// numbers); past this the report is partial.
    pub max_dirs: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            top_n: 20,
            budget: Duration::from_secs(20),
            threads: default_threads(),
            max_dirs: 4_000_000,
        }
    }
}

/// min(4, cores): a scan is I/O-bound; more threads than that mostly add
/// contention on the disk and on the host the agent is watching.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// A scan's report and the mounts it did not enter.
#[derive(Debug, Clone)]
pub struct ScanOutcome {
    pub report: DiskUsageReport,
}

/// Symbolic links followed while resolving one path (Linux's own limit).
const MAX_SYMLINK_HOPS: usize = 40;

/// A scan stops after this (or half the command timeout if that is less),
/// well before the command itself times out, and answers with what it has.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(20);

/// Why a path may not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum PathRefused {
    #[error("{0}")]
    Invalid(String),
    #[error("path {path} is outside the allowed scan roots ({roots})")]
    OutsideRoots { path: String, roots: String },
    #[error("path {path}: {source}")]
    Unresolvable { path: String, source: io::Error },
}

/// `path` as the host sees it with every symbolic link resolved, reading
/// links under `rootfs` and treating `rootfs` as `/` (an absolute link
/// target, or `..` at the top, cannot leave it), the way `openat2`'s
/// `RESOLVE_IN_ROOT` does.
pub fn resolve_in_root(rootfs: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut resolved = PathBuf::from("/");
    let mut pending: VecDeque<OsString> = normal_components(path);
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let real = rootfs.join(candidate.strip_prefix("/").unwrap_or(&candidate));
        let meta = std::fs::symlink_metadata(&real)?;
        if !meta.file_type().is_symlink() {
            resolved = candidate;
            continue;
        }
        hops += 1;
        if hops > MAX_SYMLINK_HOPS {
            return Err(io::Error::other("too many levels of symbolic links"));
        }
        let target = std::fs::read_link(&real)?;
        if target.is_absolute() {
            resolved = PathBuf::from("/");
        }
        for (i, c) in normal_components(&target).into_iter().enumerate() {
            pending.insert(i, c);
        }
    }
    Ok(resolved)
}

/// Names and `..` of a path, without `/` and `.`.
fn normal_components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Checks `path` (validated again here: the agent never trusts the server's
/// checks alone) and returns it resolved, as the host sees it.
pub fn resolve_scan_path(
    rootfs: &Path,
    allowed: &[PathBuf],
    path: &str,
) -> Result<PathBuf, PathRefused> {
    validate_abs_path(path).map_err(|e| PathRefused::Invalid(e.to_string()))?;
    let outside = || PathRefused::OutsideRoots {
        path: path.to_owned(),
        roots: allowed
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    // Roots resolved the same way, so `/var` allowed and `/var` a link to
    // `/data/var` still compare equal; a root that does not exist holds
    // nothing.
    let roots: Vec<PathBuf> = allowed
        .iter()
        .filter_map(|r| resolve_in_root(rootfs, r).ok())
        .collect();
    let inside = |p: &Path| roots.iter().any(|r| p.starts_with(r));
    let resolved = match resolve_in_root(rootfs, Path::new(path)) {
        Ok(resolved) => resolved,
        // Say nothing about paths outside the roots, not even whether they
        // exist.
        Err(_) if !inside(Path::new(path)) => return Err(outside()),
        Err(source) => {
            return Err(PathRefused::Unresolvable {
                path: path.to_owned(),
                source,
            })
        }
    };
    // Path::starts_with compares whole components: /variable is not in /var.
    if inside(&resolved) {
        Ok(resolved)
    } else {
        Err(outside())
    }
}

/// `<rootfs>/<host path>`.
fn under_root(rootfs: &Path, host_path: &Path) -> PathBuf {
    rootfs.join(host_path.strip_prefix("/").unwrap_or(host_path))
}

/// Runs `DISK_USAGE`: the mounts without a path, else a scan.
pub async fn run(ctx: &CommandContext, request: &DiskUsageRequest) -> CommandOutcome {
    let Some(path) = &request.path else {
        return super::list_mounts::run(&ctx.roots).await;
    };
    let shown =
        resolve_scan_path(&ctx.roots.rootfs, &ctx.disk_roots, path).map_err(|e| e.to_string())?;
    let options = ScanOptions {
        top_n: request.top_n.map_or(20, |n| n as usize),
        budget: DEFAULT_BUDGET.min(ctx.timeout / 2),
        ..ScanOptions::default()
    };
    let real = under_root(&ctx.roots.rootfs, &shown);
    let outcome = tokio::task::spawn_blocking(move || scan::scan(&real, &shown, &options))
        .await
        .map_err(|e| format!("DISK_USAGE failed: {e}"))?
        .map_err(|e| format!("DISK_USAGE {path}: {e}"))?;
    to_json(outcome)
}

fn to_json(outcome: ScanOutcome) -> CommandOutcome {
    serde_json::to_value(&outcome.report).map_err(|e| format!("DISK_USAGE result: {e}"))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_inside_the_root_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("data/www")).unwrap();
        std::fs::create_dir_all(root.join("var")).unwrap();
        // Absolute target: means <root>/data, not the agent's /data.
        symlink("/data/www", root.join("var/www")).unwrap();
        symlink("../../..", root.join("data/www/up")).unwrap();
        assert_eq!(
            resolve_in_root(root, Path::new("/var/www")).unwrap(),
            Path::new("/data/www")
        );
        // `..` cannot climb above the root.
        assert_eq!(
            resolve_in_root(root, Path::new("/var/www/up")).unwrap(),
            Path::new("/")
        );
        symlink("loop", root.join("loop")).unwrap();
        let e = resolve_in_root(root, Path::new("/loop")).unwrap_err();
        assert!(e.to_string().contains("symbolic links"), "{e}");
    }

    #[test]
    fn roots_compare_whole_components() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("var/log")).unwrap();
        std::fs::create_dir_all(root.join("variable")).unwrap();
        let allowed = [PathBuf::from("/var")];
        assert_eq!(
            resolve_scan_path(root, &allowed, "/var/log").unwrap(),
            Path::new("/var/log")
        );
        let e = resolve_scan_path(root, &allowed, "/variable").unwrap_err();
        assert_eq!(
            e.to_string(),
            "path /variable is outside the allowed scan roots (/var)"
        );
        // Nothing is said about whether an outside path exists.
        let e = resolve_scan_path(root, &allowed, "/nope").unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
        let e = resolve_scan_path(root, &allowed, "/var/nope").unwrap_err();
        assert!(e.to_string().contains("No such file"), "{e}");
    }
}
