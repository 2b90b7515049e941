//! Day compaction: once a UTC day lies wholly before the seal horizon,
//! each series' chunks of that day are merged into one chunk per tier.
//!
//! Sealing writes one chunk per series, tier and seal pass (24 a day at
//! the default 60-minute interval). Merged per day, a series costs one row
//! per tier and day instead of 72, pco sees 8,640 raw points (or 1,440
//! minute buckets) at once instead of a few hundred, and a 30-day chart
//! decodes 30 chunks per series instead of 720.
//!
//! Progress is one watermark in `store_state` (`compacted_day`: the start,
//! in ns, of the first day not yet compacted) plus, in memory, the series
//! reached inside that day; after a restart the day is walked again from
//! its first series, which is harmless: a (series, tier, day) with a single
//! chunk is left alone. Late data sealed into an already compacted day
//! stays a separate chunk (reads add chunks up, so answers are unchanged).

use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::codec::{decode_raw, decode_rollups, encode_raw, encode_rollups, Bucket, RawChunk};
use super::sql_error;
use super::writer::{HOUR_NS, TIER_HOUR, TIER_MINUTE, TIER_RAW};
use crate::{Result, StoreError};

pub(crate) const DAY_NS: i64 = 24 * HOUR_NS;
const WATERMARK_KEY: &str = "compacted_day";
/// Series read per query while walking a day.
const SERIES_PAGE: i64 = 256;

/// Where compaction stands: the day being compacted and the last series
/// done in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompactionCursor {
    pub day_ns: i64,
    pub after_series: i64,
}

/// The persisted watermark, or (first run) the day of the oldest chunk;
/// `None` when there are no chunks at all.
pub(crate) fn load_cursor(conn: &Connection) -> Result<Option<CompactionCursor>> {
    let stored: Option<i64> = conn
        .query_row(
            "SELECT value FROM store_state WHERE key = ?1",
            [WATERMARK_KEY],
            |row| row.get(0),
        )
        .optional()
        .map_err(sql_error)?;
    let day_ns = match stored {
        Some(day_ns) => Some(day_ns),
        None => oldest_chunk_end(conn, i64::MIN)?.map(day_of),
    };
    Ok(day_ns.map(|day_ns| CompactionCursor {
        day_ns,
        after_series: 0,
    }))
}

fn day_of(ts_ns: i64) -> i64 {
    ts_ns.div_euclid(DAY_NS) * DAY_NS
}

/// The smallest chunk end at or after `from_ns` over all tiers (each tier
/// is one seek in `chunks_by_age`).
fn oldest_chunk_end(conn: &Connection, from_ns: i64) -> Result<Option<i64>> {
    let mut statement = conn
        .prepare_cached("SELECT min(end_ts) FROM chunks WHERE tier = ?1 AND end_ts >= ?2")
        .map_err(sql_error)?;
    let mut oldest: Option<i64> = None;
    for tier in [TIER_RAW, TIER_MINUTE, TIER_HOUR] {
        let end: Option<i64> = statement
            .query_row(params![tier, from_ns], |row| row.get(0))
            .map_err(sql_error)?;
        oldest = match (oldest, end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(oldest)
}

/// What one step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompactionStep {
    pub chunks_merged: u64,
    pub chunks_written: u64,
    /// More days (or more of this day) are due.
    pub more: bool,
}

/// Compacts from `cursor` for about `budget`, in one transaction, for days
/// ending at or before `horizon_ns`. Advances `cursor` (and the persisted
/// watermark when a day is finished).
pub(crate) fn compact_step(
    conn: &mut Connection,
    cursor: &mut CompactionCursor,
    horizon_ns: i64,
    budget: Duration,
) -> Result<CompactionStep> {
    let began = Instant::now();
    let mut step = CompactionStep::default();
    let tx = conn.transaction().map_err(sql_error)?;
    let mut working = *cursor;
    loop {
        if working.day_ns.saturating_add(DAY_NS) > horizon_ns {
            break;
        }
        if working.after_series == 0 {
            // Skip days without chunks at once (e.g. after downtime).
            match oldest_chunk_end(&tx, working.day_ns)? {
                Some(end) if day_of(end) > working.day_ns => {
                    working.day_ns = day_of(end).min(day_of(horizon_ns));
                    continue;
                }
                Some(_) => {}
                None => {
                    working.day_ns = day_of(horizon_ns);
                    break;
                }
            }
        }
        let series: Vec<i64> = {
            let mut statement = tx
                .prepare_cached("SELECT id FROM series WHERE id > ?1 ORDER BY id LIMIT ?2")
                .map_err(sql_error)?;
            let rows = statement
                .query_map(params![working.after_series, SERIES_PAGE], |row| row.get(0))
                .map_err(sql_error)?;
            rows.collect::<rusqlite::Result<_>>().map_err(sql_error)?
        };
        if series.is_empty() {
            working = CompactionCursor {
                day_ns: working.day_ns + DAY_NS,
                after_series: 0,
            };
            continue;
        }
        for series_id in series {
            for tier in [TIER_RAW, TIER_MINUTE, TIER_HOUR] {
                let (merged, written) = compact_series_day(&tx, series_id, tier, working.day_ns)?;
                step.chunks_merged += merged;
                step.chunks_written += written;
            }
            working.after_series = series_id;
            if began.elapsed() >= budget {
                break;
            }
        }
        if began.elapsed() >= budget {
            break;
        }
    }
    tx.execute(
        "INSERT INTO store_state (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![WATERMARK_KEY, working.day_ns],
    )
    .map_err(sql_error)?;
    tx.commit().map_err(sql_error)?;
    *cursor = working;
    step.more = working.after_series != 0 || working.day_ns.saturating_add(DAY_NS) <= horizon_ns;
    Ok(step)
}

/// Merges one series' chunks of one tier lying wholly inside the day:
/// returns (chunks merged, chunks written).
fn compact_series_day(
    tx: &Transaction<'_>,
    series_id: i64,
    tier: i64,
    day_ns: i64,
) -> Result<(u64, u64)> {
    let day_end = day_ns + DAY_NS;
    let chunks: Vec<(i64, Vec<u8>)> = {
        let mut statement = tx
            .prepare_cached(
                "SELECT rowid, data FROM chunks WHERE series_id = ?1 AND tier = ?2 \
                 AND end_ts >= ?3 AND end_ts < ?4 AND start_ts >= ?3 ORDER BY start_ts, rowid",
            )
            .map_err(sql_error)?;
        let rows = statement
            .query_map(params![series_id, tier, day_ns, day_end], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .map_err(sql_error)?;
        rows.collect::<rusqlite::Result<_>>().map_err(sql_error)?
    };
    if chunks.len() < 2 {
        return Ok((0, 0));
    }
    let (start_ts, end_ts, count, blob) = if tier == TIER_RAW {
        let decoded = chunks
            .iter()
            .map(|(_, blob)| decode_raw(blob))
            .collect::<Result<Vec<_>>>()?;
        let merged = merge_raw(decoded)?;
        let (Some(first), Some(last)) = (merged.timestamps_ns.first(), merged.timestamps_ns.last())
        else {
            return Ok((0, 0));
        };
        (*first, *last, merged.len(), encode_raw(&merged)?)
    } else {
        let width = if tier == TIER_MINUTE {
            super::writer::MINUTE_NS
        } else {
            HOUR_NS
        };
        let decoded = chunks
            .iter()
            .map(|(_, blob)| decode_rollups(blob))
            .collect::<Result<Vec<_>>>()?;
        let merged = merge_rollups(decoded);
        let (Some(first), Some(last)) = (merged.first(), merged.last()) else {
            return Ok((0, 0));
        };
        (
            first.start_ns,
            last.start_ns.saturating_add(width - 1),
            merged.len(),
            encode_rollups(&merged)?,
        )
    };
    {
        let mut delete = tx
            .prepare_cached("DELETE FROM chunks WHERE rowid = ?1")
            .map_err(sql_error)?;
        for (rowid, _) in &chunks {
            delete.execute([rowid]).map_err(sql_error)?;
        }
    }
    tx.prepare_cached(
        "INSERT INTO chunks (series_id, tier, start_ts, end_ts, count, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .map_err(sql_error)?
    .execute(params![series_id, tier, start_ts, end_ts, count as i64, blob])
    .map_err(sql_error)?;
    Ok((chunks.len() as u64, 1))
}

/// One raw chunk holding every point of `chunks`, in time order (points
/// with equal timestamps keep the order they were sealed in).
pub(crate) fn merge_raw(chunks: Vec<RawChunk>) -> Result<RawChunk> {
    let Some(kind) = chunks.first().map(|c| c.kind) else {
        return Err(StoreError::Backend("merging no chunks".into()));
    };
    if chunks.iter().any(|c| c.kind != kind) {
        return Err(StoreError::Backend(
            "corrupt chunks: one series holds two kinds".into(),
        ));
    }
    let points = chunks
        .iter()
        .flat_map(|chunk| (0..chunk.len()).map(|i| (chunk.timestamps_ns[i], chunk.number_at(i))))
        .collect();
    Ok(RawChunk::from_points(kind, points))
}

/// One bucket list from several, sorted by start; buckets with the same
/// start (a minute split across seal passes) are combined, `last` taken
/// from the later-sealed one.
pub(crate) fn merge_rollups(chunks: Vec<Vec<Bucket>>) -> Vec<Bucket> {
    let mut all: Vec<Bucket> = chunks.into_iter().flatten().collect();
    all.sort_by_key(|b| b.start_ns);
    let mut merged: Vec<Bucket> = Vec::with_capacity(all.len());
    for bucket in all {
        match merged.last_mut() {
            Some(current) if current.start_ns == bucket.start_ns => {
                current.min = current.min.min(bucket.min);
                current.max = current.max.max(bucket.max);
                current.sum += bucket.sum;
                current.count += bucket.count;
                current.last = bucket.last;
            }
            _ => merged.push(bucket),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::super::flatten::{Kind, Number};
    use super::*;

    #[test]
    fn merging_raw_chunks_keeps_every_point_in_time_order() {
        let a = RawChunk::from_points(Kind::Int, vec![(30, Number::Int(3)), (10, Number::Int(1))]);
        let b = RawChunk::from_points(Kind::Int, vec![(20, Number::Int(2)), (30, Number::Int(4))]);
        let merged = merge_raw(vec![a, b]).unwrap();
        assert_eq!(merged.timestamps_ns, vec![10, 20, 30, 30]);
        assert_eq!(merged.ints, vec![1, 2, 3, 4]);
        let float = RawChunk::from_points(Kind::Float, vec![(1, Number::Float(1.5))]);
        let int = RawChunk::from_points(Kind::Int, vec![(2, Number::Int(1))]);
        assert!(merge_raw(vec![float, int]).is_err(), "kinds never mix");
    }

    #[test]
    fn merging_rollups_combines_split_buckets() {
        let bucket = |start_ns, value: f64, count| Bucket {
            start_ns,
            min: value,
            max: value,
            sum: value * count as f64,
            count,
            last: value,
        };
        let merged = merge_rollups(vec![
            vec![bucket(60, 5.0, 2), bucket(0, 1.0, 6)],
            vec![bucket(60, 2.0, 4), bucket(120, 7.0, 6)],
        ]);
        assert_eq!(merged.len(), 3);
        assert_eq!(merged[0], bucket(0, 1.0, 6));
        assert_eq!(
            merged[1],
            Bucket {
                start_ns: 60,
                min: 2.0,
                max: 5.0,
                sum: 18.0,
                count: 6,
                last: 2.0
            }
        );
        assert_eq!(merged[2].start_ns, 120);
    }
}
