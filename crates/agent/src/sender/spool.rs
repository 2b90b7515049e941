//! The bounded on-disk spool (SPEC §2): encoded batches wait here while the
//! server is unreachable and are sent oldest-first when it returns.
//!
//! Layout of `<state_dir>/spool/`:
//! - `00000000000000000042.gzip`: one file per batch, named by a
//!   zero-padded sequence number and its encoding. The file starts with one
//!   header line `SPECTRA-SPOOL 1 <batch id> <envelopes> <body bytes>\n`
//!   followed by the compressed body. Keeping the batch id means a batch
//!   re-sent after a restart carries the same id, so the server drops the
//!   duplicate.
//! - `dropped`: how many batches were dropped to respect the size cap,
//!   persisted so the count survives restarts.
//! - `*.tmp`: a write in progress; leftovers of a crash are deleted at open.
//!
//! Files are written atomically (tmp + fsync + rename + directory fsync).
//! A file that cannot be parsed is logged and removed, never a panic.

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::transport::{EncodedBatch, Encoding};

const MAGIC: &str = "SPECTRA-SPOOL 1";
const DROPPED_FILE: &str = "dropped";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug)]
struct SpoolFile {
    seq: u64,
    path: PathBuf,
    size: u64,
}

/// A bounded on-disk FIFO of encoded batches.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    files: VecDeque<SpoolFile>,
    bytes: u64,
    next_seq: u64,
    dropped: u64,
}

impl Spool {
    /// Opens (creating) `dir`, scans the batches already there and resumes
    /// their sequence numbers.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<Self, SpoolError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut files = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == DROPPED_FILE {
                continue;
            }
            if name.ends_with(".tmp") {
                // A write interrupted by a crash: never renamed, so never acknowledged.
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove partial spool file");
                }
                continue;
            }
            match parse_file_name(&name) {
                Some((seq, _)) => {
                    let size = entry.metadata().map_err(io_err(&path))?.len();
                    files.push(SpoolFile { seq, path, size });
                }
                None => {
                    tracing::warn!(path = %path.display(), "ignoring unexpected file in the spool directory");
                }
            }
        }
        files.sort_by_key(|f| f.seq);
        let next_seq = files.last().map_or(0, |f| f.seq + 1);
        let bytes = files.iter().map(|f| f.size).sum();
        let dropped = read_dropped(&dir.join(DROPPED_FILE));
        let mut spool = Self {
            dir,
            max_bytes,
            files: files.into(),
            bytes,
            next_seq,
            dropped,
        };
        // The cap may have been lowered since the files were written.
        spool.enforce_cap(0)?;
        Ok(spool)
    }

    /// Appends `batch`; drops the oldest batches (counted) to stay under the
    /// cap. A batch larger than the whole cap is itself dropped.
    pub fn push(&mut self, batch: &EncodedBatch) -> Result<(), SpoolError> {
        let header = format!(
            "{MAGIC} {} {} {}\n",
            batch.id,
            batch.envelopes,
            batch.body.len()
        );
        let size = (header.len() + batch.body.len()) as u64;
        if size > self.max_bytes {
            tracing::warn!(batch_id = %batch.id, size_bytes = size, max_bytes = self.max_bytes, "batch larger than the whole spool: dropped");
            self.dropped += 1;
            self.write_dropped()?;
            return Ok(());
        }
        self.enforce_cap(size)?;
        let seq = self.next_seq;
        let path = self
            .dir
            .join(format!("{seq:020}.{}", encoding_name(batch.encoding)));
        let tmp = self.dir.join(format!("{seq:020}.tmp"));
        {
            let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(header.as_bytes()).map_err(io_err(&tmp))?;
            f.write_all(&batch.body).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(&self.dir);
        self.next_seq += 1;
        self.bytes += size;
        self.files.push_back(SpoolFile { seq, path, size });
        Ok(())
    }

    /// The oldest batch, skipping (and removing) files that cannot be read
    /// back: a corrupt file is logged, never fatal.
    pub fn peek_oldest(&mut self) -> Result<Option<EncodedBatch>, SpoolError> {
        while let Some(front) = self.files.front() {
            let path = front.path.clone();
            match read_batch(&path) {
                Ok(batch) => return Ok(Some(batch)),
                Err(why) => {
                    tracing::warn!(path = %path.display(), reason = %why, "corrupt spool file skipped and removed");
                    self.remove_oldest()?;
                }
            }
        }
        Ok(None)
    }

    /// Removes the oldest batch (after it was sent, or rejected).
    pub fn remove_oldest(&mut self) -> Result<(), SpoolError> {
        if let Some(f) = self.files.pop_front() {
            self.bytes = self.bytes.saturating_sub(f.size);
            match fs::remove_file(&f.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&f.path)(e)),
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Bytes on disk (headers included).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Batches dropped to respect the cap, ever (persisted).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Drops oldest files until `incoming` more bytes fit under the cap.
    fn enforce_cap(&mut self, incoming: u64) -> Result<(), SpoolError> {
        let mut dropped_now = 0u64;
        while self.bytes + incoming > self.max_bytes && !self.files.is_empty() {
            self.remove_oldest()?;
            dropped_now += 1;
        }
        if dropped_now > 0 {
            self.dropped += dropped_now;
            tracing::warn!(
                dropped_batches = dropped_now,
                dropped_total = self.dropped,
                max_bytes = self.max_bytes,
                "spool full: oldest batches dropped"
            );
            self.write_dropped()?;
        }
        Ok(())
    }

    fn write_dropped(&self) -> Result<(), SpoolError> {
        let path = self.dir.join(DROPPED_FILE);
        let tmp = self.dir.join("dropped.tmp");
        fs::write(&tmp, format!("{}\n", self.dropped)).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        Ok(())
    }
}

fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Gzip => "gzip",
        Encoding::Zstd => "zstd",
        Encoding::Identity => "json",
    }
}

fn parse_encoding(name: &str) -> Option<Encoding> {
    match name {
        "gzip" => Some(Encoding::Gzip),
        "zstd" => Some(Encoding::Zstd),
        "json" => Some(Encoding::Identity),
        _ => None,
    }
}

/// `00000000000000000042.gzip` → (42, Gzip).
fn parse_file_name(name: &str) -> Option<(u64, Encoding)> {
    let (seq, enc) = name.split_once('.')?;
    if seq.len() != 20 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((seq.parse().ok()?, parse_encoding(enc)?))
}

/// Parses one spool file's bytes (pure). `Err` says why it is corrupt.
pub fn parse_spool_file(encoding: Encoding, bytes: &[u8]) -> Result<EncodedBatch, String> {
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no header line")?;
    let header = std::str::from_utf8(&bytes[..nl]).map_err(|_| "header is not UTF-8")?;
    let rest = header
        .strip_prefix(MAGIC)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or("bad magic")?;
    let mut parts = rest.split(' ');
    let (Some(id), Some(envelopes), Some(len), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("header needs id, envelopes and length".into());
    };
    let envelopes: u32 = envelopes.parse().map_err(|_| "bad envelope count")?;
    let len: usize = len.parse().map_err(|_| "bad length")?;
    let body = &bytes[nl + 1..];
    if body.len() != len {
        return Err(format!(
            "truncated: header says {len} bytes, file has {}",
            body.len()
        ));
    }
    if id.is_empty() {
        return Err("empty batch id".into());
    }
    Ok(EncodedBatch {
        id: id.to_owned(),
        encoding,
        body: body.to_vec(),
        envelopes,
    })
}

fn read_batch(path: &Path) -> Result<EncodedBatch, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (_, encoding) = parse_file_name(&name).ok_or("bad file name")?;
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    parse_spool_file(encoding, &bytes)
}

fn read_dropped(path: &Path) -> u64 {
    match fs::read_to_string(path) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(path = %path.display(), "unreadable dropped-batch count, starting from 0");
            0
        }),
        Err(_) => 0,
    }
}

/// Makes a rename durable (POSIX needs the directory synced too).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        if let Err(e) = d.sync_all() {
            tracing::debug!(dir = %dir.display(), error = %e, "directory fsync failed");
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}
