//! The on-disk spool: bounded, ordered, durable across restarts.

use spectra_agent::sender::Spool;
use spectra_agent::transport::{EncodedBatch, Encoding};

fn batch(id: &str, size: usize) -> EncodedBatch {
    EncodedBatch {
        id: id.to_owned(),
        encoding: Encoding::Gzip,
        body: vec![0xAB; size],
        envelopes: 3,
    }
}

#[test]
fn drains_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    for id in ["a", "b", "c"] {
        spool.push(&batch(id, 100)).unwrap();
    }
    assert_eq!(spool.len(), 3);
    let mut order = Vec::new();
    while let Some(b) = spool.peek_oldest().unwrap() {
        order.push(b.id.clone());
        spool.remove_oldest().unwrap();
    }
    assert_eq!(order, ["a", "b", "c"]);
    assert_eq!(spool.bytes(), 0);
}

#[test]
fn bounded_drops_oldest_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    // Each file is ~1000 bytes + a short header: three fit in 3500, four do not.
    let mut spool = Spool::open(dir.path(), 3500).unwrap();
    for id in ["a", "b", "c", "d", "e"] {
        spool.push(&batch(id, 1000)).unwrap();
    }
    assert_eq!(spool.len(), 3);
    assert_eq!(spool.dropped(), 2);
    assert!(spool.bytes() <= 3500);
    assert_eq!(spool.peek_oldest().unwrap().unwrap().id, "c");
    // The count is persisted.
    drop(spool);
    let spool = Spool::open(dir.path(), 3500).unwrap();
    assert_eq!(spool.dropped(), 2);
}

#[test]
fn batch_larger_than_the_cap_is_dropped_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 2000).unwrap();
    spool.push(&batch("small", 100)).unwrap();
    spool.push(&batch("huge", 5000)).unwrap();
    assert_eq!(spool.len(), 1);
    assert_eq!(spool.dropped(), 1);
    assert_eq!(spool.peek_oldest().unwrap().unwrap().id, "small");
}

#[test]
fn survives_reopen_with_ids_and_sequence() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.push(&batch("first", 10)).unwrap();
        let mut zstd = batch("second", 20);
        zstd.encoding = Encoding::Zstd;
        spool.push(&zstd).unwrap();
    }
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.len(), 2);
    // New batches go after the old ones (sequence resumed, not restarted).
    spool.push(&batch("third", 30)).unwrap();
    let first = spool.peek_oldest().unwrap().unwrap();
    assert_eq!(
        first,
        batch("first", 10),
        "id, encoding, body and count preserved"
    );
    spool.remove_oldest().unwrap();
    let second = spool.peek_oldest().unwrap().unwrap();
    assert_eq!(second.id, "second");
    assert_eq!(second.encoding, Encoding::Zstd);
    spool.remove_oldest().unwrap();
    assert_eq!(spool.peek_oldest().unwrap().unwrap().id, "third");
}

#[test]
fn corrupt_and_partial_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.push(&batch("good-1", 10)).unwrap();
        spool.push(&batch("good-2", 10)).unwrap();
    }
    // A truncated file that sorts first, a garbage one, and a leftover tmp.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.iter().any(|n| n.to_string_lossy().ends_with(".gzip")));
    std::fs::write(dir.path().join("00000000000000000000.gzip.bak"), b"junk").unwrap();
    let first = dir.path().join("00000000000000000000.gzip");
    let bytes = std::fs::read(&first).unwrap();
    std::fs::write(&first, &bytes[..bytes.len() - 3]).unwrap();
    std::fs::write(
        dir.path().join("00000000000000000005.zstd"),
        b"not a spool file",
    )
    .unwrap();
    std::fs::write(dir.path().join("00000000000000000099.tmp"), b"partial").unwrap();

    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert!(
        !dir.path().join("00000000000000000099.tmp").exists(),
        "tmp leftovers removed"
    );
    let mut ids = Vec::new();
    while let Some(b) = spool.peek_oldest().unwrap() {
        ids.push(b.id.clone());
        spool.remove_oldest().unwrap();
    }
    assert_eq!(ids, ["good-2"], "only the intact batch is returned");
}
