//! `DISK_USAGE`: sizes against `st_blocks` and `du` on generated trees, hard
//! links, symbolic-link loops, an unreadable directory, the scan roots, the
//! time budget and one-filesystem walks.

#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use spectra_agent::collectors::HostRoots;
use spectra_agent::commands::disk_usage::{scan::scan, ScanOptions};
use spectra_agent::commands::{self, CommandContext};
use spectra_protocol::{DiskUsageReport, DiskUsageRequest, MountEntry};

/// Skips a test whose system facility is missing, except under CI=true
/// where it must be there.
fn skip_unless_ci(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but {why}");
    }
    eprintln!("SKIPPED: {why}");
}

fn write_file(path: &Path, len: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Non-zero bytes: no filesystem turns them into holes.
    std::fs::write(path, vec![0x5a; len]).unwrap();
}

fn allocated(path: &Path) -> u64 {
    std::fs::symlink_metadata(path).unwrap().blocks() * 512
}

/// `du -s -x --block-size=1 path`, `None` without du.
fn du_bytes(path: &Path) -> Option<u64> {
    let out = Command::new("du")
        .args(["-s", "-x", "--block-size=1"])
        .arg(path)
        .output()
        .ok()?;
    assert!(out.status.success(), "du failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn context(disk_roots: Vec<PathBuf>) -> CommandContext {
    CommandContext {
        roots: HostRoots::default(),
        enabled: true,
        disabled: BTreeSet::new(),
        disk_roots,
        restart: None,
        timeout: commands::COMMAND_TIMEOUT,
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
    }
}

async fn disk_usage(ctx: &CommandContext, path: &Path) -> Result<DiskUsageReport, String> {
    let value = commands::disk_usage::run(
        ctx,
        &DiskUsageRequest {
            path: Some(path.display().to_string()),
            top_n: Some(10),
        },
    )
    .await?;
    Ok(serde_json::from_value(value).unwrap())
}

/// root/a/{small 10 000 B, big 1 MiB}, root/a/b/mid 200 000 B,
/// root/c/{huge 3 MiB, hard (a hard link to huge)}, root/to-usr -> /usr,
/// root/a/loop -> ., root/a/b/up -> ../..
fn generated_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_file(&root.join("a/small"), 10_000);
    write_file(&root.join("a/big"), 1 << 20);
    write_file(&root.join("a/b/mid"), 200_000);
    write_file(&root.join("c/huge"), 3 << 20);
    std::fs::hard_link(root.join("c/huge"), root.join("c/hard")).unwrap();
    symlink("/usr", root.join("to-usr")).unwrap();
    symlink(".", root.join("a/loop")).unwrap();
    symlink("../..", root.join("a/b/up")).unwrap();
    dir
}

#[tokio::test]
async fn sizes_match_st_blocks_and_du_with_hard_links_once() {
    let tree = generated_tree();
    let root = tree.path();
    let ctx = context(vec![root.to_path_buf()]);
    let report = disk_usage(&ctx, root).await.unwrap();

    let blocks = |rel: &str| allocated(&root.join(rel));
    let dir_a = blocks("a") + blocks("a/small") + blocks("a/big") + blocks("a/loop");
    let dir_b = blocks("a/b") + blocks("a/b/mid") + blocks("a/b/up");
    let dir_c = blocks("c") + blocks("c/huge");
    let total = blocks("") + dir_a + dir_b + dir_c + blocks("to-usr");
    assert_eq!(report.total_size, total);
    match du_bytes(root) {
        // du also counts a hard-linked file once.
        Some(du) => assert_eq!(report.total_size, du),
        None => skip_unless_ci("du not installed (coreutils)"),
    }

    assert_eq!(report.root, root.display().to_string());
    assert!(!report.partial, "{:?}", report.partial_reason);
    assert_eq!(report.error_count, 0);
    // root, a, a/b, c; links are never entered.
    assert_eq!(report.scanned_dirs, 4);
    // small, big, mid, huge-or-hard, and the three links.
    assert_eq!(report.scanned_files, 7);

    let dirs: Vec<(String, u64, u64)> = report
        .top_dirs
        .iter()
        .map(|d| (d.path.clone(), d.size, d.count))
        .collect();
    let shown = |rel: &str| root.join(rel).display().to_string();
    assert_eq!(
        dirs,
        [
            (shown("c"), dir_c, 1),
            (shown("a"), dir_a + dir_b, 5),
            (shown("a/b"), dir_b, 2),
        ]
    );
    let big = &report.top_files[0];
    assert!(
        big.path == shown("c/huge") || big.path == shown("c/hard"),
        "{big:?}"
    );
    assert_eq!(big.size, blocks("c/huge"));
    assert_eq!(report.top_files[1].path, shown("a/big"));
    assert_eq!(report.top_files[2].path, shown("a/b/mid"));
}

#[tokio::test]
async fn paths_outside_the_roots_or_with_dotdot_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed");
    let other = dir.path().join("other");
    write_file(&allowed.join("f"), 10);
    write_file(&other.join("secret"), 10);
    symlink(&other, allowed.join("escape")).unwrap();
    let ctx = context(vec![allowed.clone(), PathBuf::from("/nonexistent-root")]);

    let roots = format!("{}, /nonexistent-root", allowed.display());
    let e = disk_usage(&ctx, &other).await.unwrap_err();
    assert_eq!(
        e,
        format!(
            "path {} is outside the allowed scan roots ({roots})",
            other.display()
        )
    );
    // A link inside the roots that leads out is refused too.
    let escape = allowed.join("escape");
    let e = disk_usage(&ctx, &escape).await.unwrap_err();
    assert!(e.contains("outside the allowed scan roots"), "{e}");
    // `..` is refused by the agent's own check, whatever it would resolve to.
    let e = disk_usage(&ctx, &allowed.join("../allowed"))
        .await
        .unwrap_err();
    assert!(e.contains("must not contain `..`"), "{e}");

    let report = disk_usage(&ctx, &allowed).await.unwrap();
    assert_eq!(report.scanned_files, 2, "f and the link itself");
}

#[tokio::test]
async fn without_a_path_the_mounts_are_listed() {
    let ctx = context(vec![PathBuf::from("/")]);
    let value = commands::disk_usage::run(&ctx, &DiskUsageRequest::default())
        .await
        .unwrap();
    let mounts: Vec<MountEntry> = serde_json::from_value(value.clone()).unwrap();
    assert!(mounts.iter().any(|m| m.mountpoint == "/"), "{mounts:?}");
    let listed = commands::list_mounts::run(&ctx.roots).await.unwrap();
    assert_eq!(value, listed);
}

#[test]
fn an_unreadable_directory_is_recorded_and_the_rest_counted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    // The walker (as `nobody` below) must be able to enter the root.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_file(&root.join("open/file"), 50_000);
    write_file(&root.join("locked/hidden"), 50_000);
    std::fs::set_permissions(root.join("open"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(root.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();

    // Root reads a mode-000 directory anyway (CAP_DAC_READ_SEARCH). Setting
    // this thread's filesystem uid to nobody drops those capabilities for
    // it and for the walker threads it starts (threads inherit the
    // creating thread's credentials); the other tests' threads keep theirs.
    let scanned = root.clone();
    let report = std::thread::spawn(move || {
        // SAFETY: raw setfsgid/setfsuid syscalls take integers and change
        // only the calling thread's filesystem ids (glibc's wrappers are
        // avoided on purpose: they would not, for setresuid and friends).
        unsafe {
            libc::syscall(libc::SYS_setfsgid, 65534);
            libc::syscall(libc::SYS_setfsuid, 65534);
        }
        let denied = std::fs::read_dir(scanned.join("locked")).unwrap_err();
        assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
        scan(&scanned, &scanned, &ScanOptions::default()).unwrap()
    })
    .join()
    .unwrap()
    .report;
    std::fs::set_permissions(root.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();

    assert_eq!(report.error_count, 1);
    assert_eq!(report.errors.len(), 1);
    assert_eq!(
        report.errors[0].path,
        root.join("locked").display().to_string()
    );
    assert!(
        report.errors[0].error.contains("Permission denied"),
        "{:?}",
        report.errors[0]
    );
    assert!(!report.partial);
    assert_eq!(report.scanned_files, 1);
    assert_eq!(
        report.top_files[0].path,
        root.join("open/file").display().to_string()
    );
    // The locked directory's own blocks are known from its parent's listing.
    assert_eq!(
        report.total_size,
        allocated(&root)
            + allocated(&root.join("open"))
            + allocated(&root.join("open/file"))
            + allocated(&root.join("locked"))
    );
}

#[test]
fn a_directory_that_vanishes_is_an_error_not_a_failure() {
    // Scanning a path that is gone by the time the walk starts.
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone");
    let e = scan(&gone, &gone, &ScanOptions::default()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    // A file is its own (only) entry.
    write_file(&dir.path().join("one"), 4096);
    let r = scan(
        &dir.path().join("one"),
        Path::new("/var/one"),
        &ScanOptions::default(),
    )
    .unwrap()
    .report;
    assert_eq!((r.scanned_files, r.scanned_dirs), (1, 0));
    assert_eq!(r.top_files[0].path, "/var/one");
    assert_eq!(r.total_size, allocated(&dir.path().join("one")));
}

fn wide_tree(dirs: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..dirs {
        write_file(&dir.path().join(format!("d{i}/e/f")), 100);
    }
    dir
}

#[test]
fn the_time_budget_and_directory_cap_end_in_a_partial_report() {
    let tree = wide_tree(200);
    let zero = ScanOptions {
        budget: Duration::ZERO,
        ..ScanOptions::default()
    };
    let r = scan(tree.path(), tree.path(), &zero).unwrap().report;
    assert!(r.partial);
    assert_eq!(
        r.partial_reason.as_deref(),
        Some("time budget of 0s reached")
    );
    assert!(r.scanned_dirs < 401, "{}", r.scanned_dirs);

    let capped = ScanOptions {
        max_dirs: 50,
        ..ScanOptions::default()
    };
    let r = scan(tree.path(), tree.path(), &capped).unwrap().report;
    assert!(r.partial);
    assert_eq!(
        r.partial_reason.as_deref(),
        Some("more than 50 directories")
    );

    let full = scan(tree.path(), tree.path(), &ScanOptions::default())
        .unwrap()
        .report;
    assert!(!full.partial);
    assert_eq!((full.scanned_dirs, full.scanned_files), (401, 200));
    assert_eq!(full.top_dirs.len(), 20);
    assert!(full.top_dirs.iter().all(|d| d.count == 1));
}

/// Unmounts on drop, so a failed assertion leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn other_filesystems_are_skipped_not_entered() {
    let tree = generated_tree();
    let mnt = tree.path().join("a/mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "spectra-test"])
        .arg(&mnt)
        .output();
    let _guard = match mounted {
        Ok(out) if out.status.success() => Mounted(mnt.clone()),
        other => {
            skip_unless_ci(&format!("cannot mount a tmpfs (needs root): {other:?}"));
            return;
        }
    };
    write_file(&mnt.join("inside"), 4 << 20);

    let outcome = scan(tree.path(), tree.path(), &ScanOptions::default()).unwrap();
    assert_eq!(outcome.report.skipped_mounts, [mnt.display().to_string()]);
    let r = outcome.report;
    assert!(
        !r.top_files.iter().any(|f| f.path.contains("inside")),
        "{:?}",
        r.top_files
    );
    match du_bytes(tree.path()) {
        Some(du) => assert_eq!(r.total_size, du),
        None => skip_unless_ci("du not installed (coreutils)"),
    }
}

#[test]
fn a_system_directory_matches_du() {
    // Whatever this host holds: /usr is large, static, and on one filesystem
    // or several (both are fine: -x and the walk agree on where to stop).
    let usr = Path::new("/usr");
    let Some(du) = du_bytes(usr) else {
        skip_unless_ci("du not installed (coreutils)");
        return;
    };
    let outcome = scan(
        usr,
        usr,
        &ScanOptions {
            budget: Duration::from_secs(600),
            ..ScanOptions::default()
        },
    )
    .unwrap();
    let r = outcome.report;
    assert!(!r.partial);
    assert_eq!(r.total_size, du);
    eprintln!(
        "/usr: {} dirs, {} files, {} bytes in {} ms ({:.0} files/s)",
        r.scanned_dirs,
        r.scanned_files,
        r.total_size,
        r.duration_ms,
        r.scanned_files as f64 * 1000.0 / r.duration_ms.max(1) as f64
    );
}
