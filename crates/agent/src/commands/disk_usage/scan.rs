//! The directory walk behind `DISK_USAGE`.
//!
//! A small fixed pool of threads shares a stack of directories to read
//! (depth-first, so the stack stays small; no recursion, so no depth limit).
//! Sizes are *allocated* bytes (`st_blocks * 512`), what `du` reports by
//! default and what a full disk is made of; sparse files count what they
//! occupy, not their length. Like `du -x`:
//! - the walk stays on the root's filesystem: a directory on another device
//!   is a skipped mount, neither counted nor descended;
//! - a file with several hard links is counted once (first seen);
//! - symbolic links are counted as themselves and never followed;
//! - directories count their own blocks.
//!
//! Unreadable entries are counted (`error_count`), the first
//! [`MAX_REPORTED_ERRORS`] with their reason. When the time budget ends, the
//! walk stops and returns what it has, marked partial.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use chrono::Utc;
use spectra_protocol::{DiskUsageReport, PathError, PathUsage};

use super::{ScanOptions, ScanOutcome};

/// Unreadable entries listed with their reason; the rest are only counted.
pub const MAX_REPORTED_ERRORS: usize = 50;

/// Entries between two looks at the clock inside one large directory.
const CLOCK_EVERY: usize = 1024;

/// One directory met during the walk.
struct DirNode {
    /// Index of the parent directory; `None` for the root.
    parent: Option<usize>,
    name: OsString,
    /// Its own blocks plus the files directly in it.
    own_size: u64,
    own_files: u64,
}

/// A directory to read.
struct Job {
    id: usize,
    path: PathBuf,
}

struct Queue {
    jobs: Vec<Job>,
    /// Jobs taken and not finished: while any is, more may come.
    active: usize,
}

struct Shared<'a> {
    queue: Mutex<Queue>,
    wake: Condvar,
    stop: AtomicBool,
    partial_reason: Mutex<Option<String>>,
    next_id: AtomicUsize,
    /// (dev, ino) of multiply-linked files already counted.
    linked: Mutex<HashSet<(u64, u64)>>,
    root_dev: u64,
    deadline: Instant,
    options: &'a ScanOptions,
    fs_root: &'a Path,
    shown_root: &'a Path,
}

/// What one worker gathered; merged at the end.
#[derive(Default)]
struct WorkerOut {
    /// (id, node) for directories this worker discovered.
    nodes: Vec<(usize, DirNode)>,
    /// (id, size, files) for directories this worker read.
    contents: Vec<(usize, u64, u64)>,
    top_files: BinaryHeap<Reverse<(u64, PathBuf)>>,
    scanned_dirs: u64,
    scanned_files: u64,
    errors: Vec<PathError>,
    error_count: u64,
    skipped_mounts: Vec<String>,
}

impl Shared<'_> {
    fn halt(&self, reason: String) {
        if let Ok(mut r) = self.partial_reason.lock() {
            r.get_or_insert(reason);
        }
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_all();
    }

    fn out_of_time(&self) -> bool {
        if Instant::now() >= self.deadline {
            self.halt(format!(
                "time budget of {} reached",
                humantime::format_duration(self.options.budget)
            ));
        }
        self.stop.load(Ordering::Relaxed)
    }

    /// The path as the host sees it.
    fn shown(&self, real: &Path) -> String {
        let rel = real.strip_prefix(self.fs_root).unwrap_or(real);
        if rel.as_os_str().is_empty() {
            self.shown_root.display().to_string()
        } else {
            self.shown_root.join(rel).display().to_string()
        }
    }

    /// The next directory to read, or `None` when the walk is over.
    fn take(&self) -> Option<Job> {
        let mut q = self.queue.lock().ok()?;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(job) = q.jobs.pop() {
                q.active += 1;
                return Some(job);
            }
            if q.active == 0 {
                return None;
            }
            q = self.wake.wait(q).ok()?;
        }
    }

    fn finish(&self, children: Vec<Job>) {
        if let Ok(mut q) = self.queue.lock() {
            q.active -= 1;
            let woke = !children.is_empty() || q.active == 0;
            q.jobs.extend(children);
            if woke {
                self.wake.notify_all();
            }
        }
    }
}

impl WorkerOut {
    fn error(&mut self, path: String, error: impl std::fmt::Display) {
        self.error_count += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(PathError {
                path,
                error: error.to_string(),
            });
        }
    }

    fn offer_file(&mut self, top_n: usize, size: u64, path: impl FnOnce() -> PathBuf) {
        if self.top_files.len() < top_n {
            self.top_files.push(Reverse((size, path())));
        } else if self
            .top_files
            .peek()
            .is_some_and(|Reverse((smallest, _))| size > *smallest)
        {
            self.top_files.pop();
            self.top_files.push(Reverse((size, path())));
        }
    }
}

/// Scans `fs_root` (the directory as this process reaches it, e.g. under
/// `/host`), reporting paths under `shown_root` (as the host sees it).
/// `fs_root` must not be a symbolic link (resolve it first).
pub fn scan(
    fs_root: &Path,
    shown_root: &Path,
    options: &ScanOptions,
) -> std::io::Result<ScanOutcome> {
    let started = Instant::now();
    let scanned_at = Utc::now();
    let root_meta = std::fs::symlink_metadata(fs_root)?;
    let shared = Shared {
        queue: Mutex::new(Queue {
            jobs: Vec::new(),
            active: 0,
        }),
        wake: Condvar::new(),
        stop: AtomicBool::new(false),
        partial_reason: Mutex::new(None),
        next_id: AtomicUsize::new(1),
        linked: Mutex::new(HashSet::new()),
        root_dev: root_meta.dev(),
        deadline: started + options.budget,
        options,
        fs_root,
        shown_root,
    };
    let root_size = allocated(&root_meta);
    let mut root_out = WorkerOut::default();
    root_out.nodes.push((
        0,
        DirNode {
            parent: None,
            name: OsString::new(),
            own_size: root_size,
            own_files: 0,
        },
    ));
    if root_meta.is_dir() {
        if let Ok(mut q) = shared.queue.lock() {
            q.jobs.push(Job {
                id: 0,
                path: fs_root.to_path_buf(),
            });
        }
    } else {
        // A single file: it is its own top file.
        root_out.scanned_files = 1;
        root_out.nodes[0].1.own_files = 1;
        root_out.offer_file(options.top_n, root_size, || fs_root.to_path_buf());
    }

    let threads = options.threads.max(1);
    let outs: Vec<WorkerOut> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(|| walk(&shared))).collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    if outs.len() < threads {
        shared.halt("a scan thread panicked".into());
    }
    let mut outs = outs;
    outs.push(root_out);

    let n = shared.next_id.load(Ordering::SeqCst);
    let mut nodes: Vec<Option<DirNode>> = (0..n).map(|_| None).collect();
    let mut contents = Vec::new();
    let mut top_files = BinaryHeap::new();
    let (mut dirs, mut files, mut error_count) = (0, 0, 0);
    let mut errors = Vec::new();
    let mut skipped_mounts = Vec::new();
    for out in outs {
        for (id, node) in out.nodes {
            if let Some(slot) = nodes.get_mut(id) {
                *slot = Some(node);
            }
        }
        contents.extend(out.contents);
        for f in out.top_files {
            top_files.push(f);
            if top_files.len() > options.top_n {
                top_files.pop();
            }
        }
        dirs += out.scanned_dirs;
        files += out.scanned_files;
        error_count += out.error_count;
        errors.extend(out.errors);
        skipped_mounts.extend(out.skipped_mounts);
    }
    errors.truncate(MAX_REPORTED_ERRORS);
    skipped_mounts.sort();
    for (id, size, count) in contents {
        if let Some(Some(node)) = nodes.get_mut(id) {
            node.own_size += size;
            node.own_files += count;
        }
    }

    // Children always have larger ids than their parent (an id is handed
    // out when the parent lists the child), so one pass from the end sums
    // every subtree.
    let mut totals: Vec<(u64, u64)> = nodes
        .iter()
        .map(|n| n.as_ref().map_or((0, 0), |n| (n.own_size, n.own_files)))
        .collect();
    for id in (1..nodes.len()).rev() {
        if let Some(parent) = nodes[id].as_ref().and_then(|n| n.parent) {
            let (size, count) = totals[id];
            totals[parent].0 += size;
            totals[parent].1 += count;
        }
    }
    let mut order: Vec<usize> = (1..nodes.len()).filter(|i| nodes[*i].is_some()).collect();
    order.sort_unstable_by_key(|i| Reverse(totals[*i].0));
    order.truncate(options.top_n);
    let top_dirs = order
        .into_iter()
        .map(|id| PathUsage {
            path: shown_root
                .join(relative_path(&nodes, id))
                .display()
                .to_string(),
            size: totals[id].0,
            count: totals[id].1,
        })
        .collect();
    let mut top_files: Vec<PathUsage> = top_files
        .into_sorted_vec()
        .into_iter()
        .map(|Reverse((size, path))| PathUsage {
            path: shared.shown(&path),
            size,
            count: 1,
        })
        .collect();
    // into_sorted_vec of Reverse is largest first already; keep it explicit.
    top_files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));

    let partial_reason = shared.partial_reason.lock().ok().and_then(|r| r.clone());
    Ok(ScanOutcome {
        report: DiskUsageReport {
            root: shown_root.display().to_string(),
            top_dirs,
            top_files,
            scanned_dirs: dirs,
            scanned_files: files,
            error_count,
            partial: partial_reason.is_some(),
            duration_ms: started.elapsed().as_millis() as u64,
            scanned_at,
            total_size: totals.first().map_or(0, |t| t.0),
            partial_reason,
            errors,
            skipped_mounts,
        },
    })
}

/// The path of directory `id` relative to the root.
fn relative_path(nodes: &[Option<DirNode>], mut id: usize) -> PathBuf {
    let mut names = Vec::new();
    while let Some(node) = nodes.get(id).and_then(Option::as_ref) {
        match node.parent {
            Some(parent) => {
                names.push(node.name.as_os_str());
                id = parent;
            }
            None => break,
        }
    }
    names.iter().rev().collect()
}

fn allocated(meta: &std::fs::Metadata) -> u64 {
    meta.blocks().saturating_mul(512)
}

fn walk(shared: &Shared<'_>) -> WorkerOut {
    let mut out = WorkerOut::default();
    while let Some(job) = shared.take() {
        let children = if shared.out_of_time() {
            Vec::new()
        } else {
            read_dir(shared, &job, &mut out)
        };
        shared.finish(children);
    }
    out
}

/// Counts the entries of one directory; returns its subdirectories.
fn read_dir(shared: &Shared<'_>, job: &Job, out: &mut WorkerOut) -> Vec<Job> {
    let mut children = Vec::new();
    let entries = match std::fs::read_dir(&job.path) {
        Ok(entries) => entries,
        Err(e) => {
            out.error(shared.shown(&job.path), e);
            return children;
        }
    };
    out.scanned_dirs += 1;
    let (mut size, mut files) = (0u64, 0u64);
    for (i, entry) in entries.enumerate() {
        if i % CLOCK_EVERY == CLOCK_EVERY - 1 && shared.out_of_time() {
            break;
        }
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                out.error(shared.shown(&job.path), e);
                continue;
            }
        };
        // lstat relative to the open directory: never follows a link.
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) => {
                out.error(shared.shown(&entry.path()), e);
                continue;
            }
        };
        if meta.is_dir() {
            if meta.dev() != shared.root_dev {
                out.skipped_mounts.push(shared.shown(&entry.path()));
                continue;
            }
            let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
            if id >= shared.options.max_dirs {
                shared.halt(format!("more than {} directories", shared.options.max_dirs));
                break;
            }
            out.nodes.push((
                id,
                DirNode {
                    parent: Some(job.id),
                    name: entry.file_name(),
                    own_size: allocated(&meta),
                    own_files: 0,
                },
            ));
            children.push(Job {
                id,
                path: entry.path(),
            });
            continue;
        }
        if meta.nlink() > 1 {
            let first = shared
                .linked
                .lock()
                .map(|mut seen| seen.insert((meta.dev(), meta.ino())))
                .unwrap_or(true);
            if !first {
                continue;
            }
        }
        let bytes = allocated(&meta);
        size += bytes;
        files += 1;
        out.offer_file(shared.options.top_n, bytes, || entry.path());
    }
    out.scanned_files += files;
    out.contents.push((job.id, size, files));
    children
}
