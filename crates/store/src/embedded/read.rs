//! History reads: sealed chunks (raw or rollups, whichever tier fits the
//! step), attribute rows and snapshots, merged with the unsealed window.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection};
use serde_json::{Map, Value};

use super::codec::{decode_raw, decode_rollups, RawChunk};
use super::flatten::{insert_at, parse_path, Segment};
use super::writer::{HOUR_NS, MINUTE_NS, TIER_HOUR, TIER_MINUTE, TIER_RAW};
use super::{decompose, from_ns, sql_error, to_ns, SeriesInfo, Shared, WindowSample};
use crate::{HistoryQuery, Result, Sample, StoreError};

/// One field's attribute rows: its path and (since, value) in time order.
type FieldRows = (Vec<Segment>, Vec<(i64, Option<Value>)>);
/// Attribute rows of one type, per entity.
type Attributes = HashMap<String, Vec<FieldRows>>;
/// A non-numeric leaf: path and value.
type Leaf = (String, Value);

pub(crate) fn read_history(
    shared: &Shared,
    conn: &mut Connection,
    query: &HistoryQuery,
) -> Result<Vec<Sample>> {
    let start = to_ns(query.start);
    let end = to_ns(query.end);
    let step_ns = query
        .step
        .map(|step| i64::try_from(step.as_nanos()).unwrap_or(i64::MAX))
        .filter(|ns| *ns > 0);
    let tx = conn.transaction().map_err(sql_error)?;
    let (window, series) = {
        let mem = shared.lock_mem()?;
        // The first read starts the snapshot while the memory lock is held:
        // sealing commits under the same lock, so this snapshot and the
        // window copy agree on what is sealed.
        tx.query_row("SELECT count(*) FROM schema_version", [], |_| Ok(()))
            .map_err(sql_error)?;
        let window: Vec<WindowSample> = mem
            .window
            .get(&query.agent_id)
            .and_then(|by_type| by_type.get(&query.metric_type))
            .map(|samples| samples.iter().filter(|s| s.ts_ns <= end).cloned().collect())
            .unwrap_or_default();
        let series: Vec<SeriesInfo> = mem
            .series
            .get(&(query.agent_id.clone(), query.metric_type.clone()))
            .cloned()
            .unwrap_or_default();
        (window, series)
    };
    let attributes = load_attributes(&tx, &query.agent_id, &query.metric_type, end)?;
    let samples = match step_ns {
        None => {
            let snapshots = load_snapshots(&tx, &query.agent_id, &query.metric_type, start, end)?;
            read_raw(&tx, &series, &attributes, snapshots, window, start, end)?
        }
        Some(width) => read_stepped(&tx, query, &series, &attributes, window, start, end, width)?,
    };
    Ok(samples
        .into_iter()
        .map(|(ts, _, data)| Sample {
            timestamp: from_ns(ts),
            data,
        })
        .collect())
}

fn read_raw(
    conn: &Connection,
    series: &[SeriesInfo],
    attributes: &Attributes,
    snapshots: Vec<(i64, Value)>,
    window: Vec<WindowSample>,
    start: i64,
    end: i64,
) -> Result<Vec<(i64, String, Value)>> {
    // Entities as indexes so the per-point key is two integers.
    let mut entities: Vec<&str> = Vec::new();
    let mut by_time: BTreeMap<(i64, usize), Value> = BTreeMap::new();
    for info in series {
        let entity = match entities.iter().position(|e| *e == info.entity) {
            Some(index) => index,
            None => {
                entities.push(&info.entity);
                entities.len() - 1
            }
        };
        let path = parse_path(&info.field);
        for chunk in load_raw_chunks(conn, info.id, start, end)? {
            for (index, ts) in chunk.timestamps_ns.iter().enumerate() {
                if *ts < start || *ts > end {
                    continue;
                }
                let data = by_time
                    .entry((*ts, entity))
                    .or_insert_with(|| Value::Object(Map::new()));
                insert_at(data, &path, chunk.number_at(index).to_json());
            }
        }
    }
    let mut out: Vec<(i64, String, Value)> =
        Vec::with_capacity(by_time.len() + snapshots.len() + window.len());
    for ((ts, entity), mut data) in by_time {
        let entity = entities[entity];
        apply_attributes(&mut data, attributes.get(entity), ts);
        out.push((ts, entity.to_owned(), data));
    }
    out.extend(
        snapshots
            .into_iter()
            .map(|(ts, data)| (ts, String::new(), data)),
    );
    out.extend(
        window
            .into_iter()
            .filter(|sample| sample.ts_ns >= start)
            .map(|sample| (sample.ts_ns, sample.entity, Value::clone(&sample.data))),
    );
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(out)
}

/// Per (bucket, entity): field → (sum, count).
type Sums = BTreeMap<(i64, String), BTreeMap<String, (f64, i64)>>;

#[allow(clippy::too_many_arguments)]
fn read_stepped(
    conn: &Connection,
    query: &HistoryQuery,
    series: &[SeriesInfo],
    attributes: &Attributes,
    window: Vec<WindowSample>,
    start: i64,
    end: i64,
    width: i64,
) -> Result<Vec<(i64, String, Value)>> {
    let bucket_of = |ts: i64| ts.div_euclid(width) * width;
    let tier = if width < MINUTE_NS {
        TIER_RAW
    } else if width < HOUR_NS {
        TIER_MINUTE
    } else {
        TIER_HOUR
    };
    // Rollup tiers see whole buckets, so every source counts from the
    // start of the step bucket holding `start`, keeping tiers consistent.
    let from = if tier == TIER_RAW {
        start
    } else {
        bucket_of(start)
    };
    let mut sums: Sums = BTreeMap::new();
    for info in series {
        let mut per_bucket: BTreeMap<i64, (f64, i64)> = BTreeMap::new();
        if tier == TIER_RAW {
            for chunk in load_raw_chunks(conn, info.id, from, end)? {
                let values = chunk.values_f64();
                for (ts, value) in chunk.timestamps_ns.iter().zip(values) {
                    if *ts >= from && *ts <= end {
                        let acc = per_bucket.entry(bucket_of(*ts)).or_insert((0.0, 0));
                        acc.0 += value;
                        acc.1 += 1;
                    }
                }
            }
        } else {
            for blob in load_chunk_blobs(conn, info.id, tier, from, end)? {
                for bucket in decode_rollups(&blob)? {
                    if bucket.start_ns >= from && bucket.start_ns <= end {
                        let acc = per_bucket
                            .entry(bucket_of(bucket.start_ns))
                            .or_insert((0.0, 0));
                        acc.0 += bucket.sum;
                        acc.1 += bucket.count;
                    }
                }
            }
        }
        for (bucket, (sum, count)) in per_bucket {
            let acc = sums
                .entry((bucket, info.entity.clone()))
                .or_default()
                .entry(info.field.clone())
                .or_insert((0.0, 0));
            acc.0 += sum;
            acc.1 += count;
        }
    }

    // Unsealed samples: numbers into the sums, the newest attributes per
    // bucket, and kept-whole payloads as snapshots.
    let mut window_attributes: HashMap<(i64, String), (i64, Vec<Leaf>)> = HashMap::new();
    let mut snapshots: BTreeMap<i64, (i64, Value)> = BTreeMap::new();
    for sample in window
        .into_iter()
        .filter(|s| s.ts_ns >= from && s.ts_ns <= end)
    {
        let bucket = bucket_of(sample.ts_ns);
        match decompose(&query.metric_type, &sample.data) {
            Some(leaves) => {
                let fields = sums.entry((bucket, sample.entity.clone())).or_default();
                for (field, number) in leaves.numbers {
                    let acc = fields.entry(field).or_insert((0.0, 0));
                    acc.0 += number.as_f64();
                    acc.1 += 1;
                }
                let slot = window_attributes
                    .entry((bucket, sample.entity))
                    .or_insert((i64::MIN, Vec::new()));
                if sample.ts_ns >= slot.0 {
                    *slot = (sample.ts_ns, leaves.attributes);
                }
            }
            None => keep_newest(
                &mut snapshots,
                bucket,
                sample.ts_ns,
                Value::clone(&sample.data),
            ),
        }
    }
    for (ts, data) in load_snapshots(conn, &query.agent_id, &query.metric_type, from, end)? {
        keep_newest(&mut snapshots, bucket_of(ts), ts, data);
    }

    let mut out = Vec::with_capacity(sums.len() + snapshots.len());
    for ((bucket, entity), fields) in sums {
        let mut data = Value::Object(Map::new());
        for (field, (sum, count)) in fields {
            if count > 0 {
                insert_at(
                    &mut data,
                    &parse_path(&field),
                    Value::from(sum / count as f64),
                );
            }
        }
        match window_attributes.remove(&(bucket, entity.clone())) {
            Some((_, leaves)) => {
                for (field, value) in leaves {
                    insert_at(&mut data, &parse_path(&field), value);
                }
            }
            None => {
                let at = bucket.saturating_add(width - 1).min(end);
                apply_attributes(&mut data, attributes.get(&entity), at);
            }
        }
        out.push((bucket, entity, data));
    }
    out.extend(
        snapshots
            .into_iter()
            .map(|(bucket, (_, data))| (bucket, String::new(), data)),
    );
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(out)
}

fn keep_newest(snapshots: &mut BTreeMap<i64, (i64, Value)>, bucket: i64, ts: i64, data: Value) {
    match snapshots.get(&bucket) {
        Some((current, _)) if *current > ts => {}
        _ => {
            snapshots.insert(bucket, (ts, data));
        }
    }
}

fn apply_attributes(data: &mut Value, fields: Option<&Vec<FieldRows>>, ts: i64) {
    for (path, rows) in fields.into_iter().flatten() {
        let index = rows.partition_point(|(since, _)| *since <= ts);
        if let Some((_, Some(value))) = index.checked_sub(1).and_then(|i| rows.get(i)) {
            insert_at(data, path, value.clone());
        }
    }
}

fn load_chunk_blobs(
    conn: &Connection,
    series_id: i64,
    tier: i64,
    from: i64,
    to: i64,
) -> Result<Vec<Vec<u8>>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT data FROM chunks WHERE series_id = ?1 AND tier = ?2 AND end_ts >= ?3 AND start_ts <= ?4 \
             ORDER BY start_ts, rowid",
        )
        .map_err(sql_error)?;
    let rows = statement
        .query_map(params![series_id, tier, from, to], |row| row.get(0))
        .map_err(sql_error)?;
    rows.collect::<rusqlite::Result<_>>().map_err(sql_error)
}

fn load_raw_chunks(conn: &Connection, series_id: i64, from: i64, to: i64) -> Result<Vec<RawChunk>> {
    load_chunk_blobs(conn, series_id, TIER_RAW, from, to)?
        .iter()
        .map(|blob| decode_raw(blob))
        .collect()
}

fn load_attributes(conn: &Connection, agent_id: &str, metric: &str, to: i64) -> Result<Attributes> {
    let mut statement = conn
        .prepare_cached(
            "SELECT entity, field, since_ts, value_json FROM attributes \
             WHERE agent_id = ?1 AND metric_type = ?2 AND since_ts <= ?3 ORDER BY entity, field, since_ts",
        )
        .map_err(sql_error)?;
    let rows = statement
        .query_map(params![agent_id, metric, to], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, Option<String>>(3)?,
            ))
        })
        .map_err(sql_error)?;
    let mut attributes: Attributes = HashMap::new();
    let mut last_field: Option<(String, String)> = None;
    for row in rows {
        let (entity, field, since, value) = row.map_err(sql_error)?;
        let value = value
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| StoreError::Backend(format!("stored attribute unreadable: {e}")))?;
        let fields = attributes.entry(entity.clone()).or_default();
        let same = last_field
            .as_ref()
            .is_some_and(|(e, f)| *e == entity && *f == field);
        if !same || fields.is_empty() {
            fields.push((parse_path(&field), Vec::new()));
            last_field = Some((entity, field));
        }
        if let Some((_, rows)) = fields.last_mut() {
            rows.push((since, value));
        }
    }
    Ok(attributes)
}

fn load_snapshots(
    conn: &Connection,
    agent_id: &str,
    metric: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Value)>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT ts, data FROM snapshots WHERE agent_id = ?1 AND metric_type = ?2 AND ts >= ?3 AND ts <= ?4 \
             ORDER BY ts, rowid",
        )
        .map_err(sql_error)?;
    let rows = statement
        .query_map(params![agent_id, metric, from, to], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .map_err(sql_error)?;
    let mut out = Vec::new();
    for row in rows {
        let (ts, blob) = row.map_err(sql_error)?;
        let json = zstd::stream::decode_all(blob.as_slice())
            .map_err(|e| StoreError::Backend(format!("corrupt snapshot: {e}")))?;
        let data = serde_json::from_slice(&json)
            .map_err(|e| StoreError::Backend(format!("corrupt snapshot: {e}")))?;
        out.push((ts, data));
    }
    Ok(out)
}
