//! History reads: sealed chunks (raw or rollups, whichever tier fits the
//! step), attribute rows and snapshots, merged with the unsealed window.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection};
use serde_json::{Map, Value};

use super::codec::{decode_raw, decode_rollup_sums, RawChunk};
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

/// The distinct entities of `series` in name order, and each series'
/// entity as an index into them, so inner loops compare integers.
fn index_entities(series: &[SeriesInfo]) -> (Vec<&str>, Vec<usize>) {
    let mut entities: Vec<&str> = series.iter().map(|s| s.entity.as_str()).collect();
    entities.sort_unstable();
    entities.dedup();
    let of_series = series
        .iter()
        .map(|s| entities.binary_search(&s.entity.as_str()).unwrap_or(0))
        .collect();
    (entities, of_series)
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
    let (entities, entity_of_series) = index_entities(series);
    let mut out: Vec<(i64, String, Value)> = Vec::new();
    for (entity_index, entity) in entities.iter().enumerate() {
        // One entity's rows, in time order; the series of an entity
        // usually share every timestamp, so a row is found by walking a
        // cursor rather than looking it up in a map per point.
        let mut rows: Vec<(i64, Value)> = Vec::new();
        for (info, _) in series
            .iter()
            .zip(&entity_of_series)
            .filter(|(_, e)| **e == entity_index)
        {
            let path = parse_path(&info.field);
            for chunk in load_raw_chunks(conn, info.id, start, end)? {
                let mut cursor = 0usize;
                for (index, ts) in chunk.timestamps_ns.iter().enumerate() {
                    if *ts < start || *ts > end {
                        continue;
                    }
                    let slot = match rows.get(cursor) {
                        Some((row_ts, _)) if row_ts == ts => cursor,
                        _ => {
                            let found = rows.partition_point(|(row_ts, _)| row_ts < ts);
                            if rows.get(found).is_none_or(|(row_ts, _)| row_ts != ts) {
                                rows.insert(found, (*ts, Value::Object(Map::new())));
                            }
                            found
                        }
                    };
                    insert_at(&mut rows[slot].1, &path, chunk.number_at(index).to_json());
                    cursor = slot + 1;
                }
            }
        }
        let fields = attributes.get(*entity);
        out.reserve(rows.len());
        for (ts, mut data) in rows {
            apply_attributes(&mut data, fields, ts);
            out.push((ts, (*entity).to_owned(), data));
        }
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

/// The tier a stepped read uses: the coarsest whose buckets still fit in
/// one step (raw below a minute, 1-minute rollups below an hour, 1-hour
/// rollups from an hour). A 30-day chart at 600 s therefore decodes the
/// 1-minute tier: coarser tiers would blur steps that are not multiples
/// of their bucket.
fn tier_for_step(width_ns: i64) -> i64 {
    if width_ns < MINUTE_NS {
        TIER_RAW
    } else if width_ns < HOUR_NS {
        TIER_MINUTE
    } else {
        TIER_HOUR
    }
}

/// One series' per-step sums: (bucket start, sum, count), sorted by
/// bucket once [`normalize_steps`] ran.
type StepSums = Vec<(i64, f64, i64)>;

/// Adds a point (or a rollup bucket) to the run of sums: time-sorted
/// sources hit the last bucket again and again, so this is a compare and
/// two adds per point.
fn add_step(sums: &mut StepSums, bucket: i64, sum: f64, count: i64) {
    match sums.last_mut() {
        Some(last) if last.0 == bucket => {
            last.1 += sum;
            last.2 += count;
        }
        _ => sums.push((bucket, sum, count)),
    }
}

/// Sorts and merges the sums when sources overlapped (late data, the
/// unsealed window).
fn normalize_steps(sums: &mut StepSums) {
    if sums.windows(2).all(|w| w[0].0 < w[1].0) {
        return;
    }
    sums.sort_by_key(|(bucket, _, _)| *bucket);
    let mut merged: StepSums = Vec::with_capacity(sums.len());
    for (bucket, sum, count) in sums.drain(..) {
        add_step(&mut merged, bucket, sum, count);
    }
    *sums = merged;
}

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
    let tier = tier_for_step(width);
    // Rollup tiers see whole buckets, so every source counts from the
    // start of the step bucket holding `start`, keeping tiers consistent.
    let from = if tier == TIER_RAW {
        start
    } else {
        bucket_of(start)
    };

    // Sealed data, one list of step sums per series.
    let mut columns: Vec<(String, String, StepSums)> = Vec::with_capacity(series.len());
    for info in series {
        let mut sums = StepSums::new();
        if tier == TIER_RAW {
            for chunk in load_raw_chunks(conn, info.id, from, end)? {
                let values = chunk.values_f64();
                for (ts, value) in chunk.timestamps_ns.iter().zip(values) {
                    if *ts >= from && *ts <= end {
                        add_step(&mut sums, bucket_of(*ts), value, 1);
                    }
                }
            }
        } else {
            for blob in load_chunk_blobs(conn, info.id, tier, from, end)? {
                let rollups = decode_rollup_sums(&blob)?;
                for ((start_ns, sum), count) in
                    rollups.starts_ns.iter().zip(&rollups.sums).zip(&rollups.counts)
                {
                    if *start_ns >= from && *start_ns <= end {
                        add_step(&mut sums, bucket_of(*start_ns), *sum, *count);
                    }
                }
            }
        }
        columns.push((info.entity.clone(), info.field.clone(), sums));
    }

    // Unsealed samples: numbers into the sums, the newest attributes per
    // bucket, and kept-whole payloads as snapshots.
    let mut column_of: HashMap<(String, String), usize> = HashMap::new();
    let mut window_attributes: HashMap<(i64, String), (i64, Vec<Leaf>)> = HashMap::new();
    let mut snapshots: BTreeMap<i64, (i64, Value)> = BTreeMap::new();
    for sample in window
        .into_iter()
        .filter(|s| s.ts_ns >= from && s.ts_ns <= end)
    {
        let bucket = bucket_of(sample.ts_ns);
        match decompose(&query.metric_type, &sample.data) {
            Some(leaves) => {
                if column_of.is_empty() {
                    for (index, (entity, field, _)) in columns.iter().enumerate() {
                        column_of.insert((entity.clone(), field.clone()), index);
                    }
                }
                for (field, number) in leaves.numbers {
                    let key = (sample.entity.clone(), field);
                    let index = match column_of.get(&key) {
                        Some(index) => *index,
                        None => {
                            columns.push((key.0.clone(), key.1.clone(), StepSums::new()));
                            column_of.insert(key, columns.len() - 1);
                            columns.len() - 1
                        }
                    };
                    add_step(&mut columns[index].2, bucket, number.as_f64(), 1);
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

    // Per entity, walk its columns' sorted sums side by side and build
    // each output object once.
    columns.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut out = Vec::with_capacity(snapshots.len());
    let mut first = 0usize;
    while first < columns.len() {
        let entity = columns[first].0.clone();
        let last = columns[first..]
            .iter()
            .position(|c| c.0 != entity)
            .map_or(columns.len(), |n| first + n);
        let group = &mut columns[first..last];
        for column in group.iter_mut() {
            normalize_steps(&mut column.2);
        }
        let paths: Vec<Vec<Segment>> = group.iter().map(|c| parse_path(&c.1)).collect();
        let mut cursors = vec![0usize; group.len()];
        let fields = attributes.get(&entity);
        loop {
            let next = group
                .iter()
                .zip(&cursors)
                .filter_map(|(c, at)| c.2.get(*at).map(|s| s.0))
                .min();
            let Some(bucket) = next else { break };
            let mut data = Value::Object(Map::new());
            for ((column, at), path) in group.iter().zip(cursors.iter_mut()).zip(&paths) {
                if let Some((b, sum, count)) = column.2.get(*at) {
                    if *b == bucket {
                        if *count > 0 {
                            insert_at(&mut data, path, Value::from(sum / *count as f64));
                        }
                        *at += 1;
                    }
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
                    apply_attributes(&mut data, fields, at);
                }
            }
            out.push((bucket, entity.clone(), data));
        }
        first = last;
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
