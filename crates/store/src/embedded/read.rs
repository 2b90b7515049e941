//! History reads: sealed chunks (raw or rollups, whichever tier fits the
//! step, see [`tier_for_step`]), attribute rows and snapshots, merged with
//! the unsealed window.
//!
//! Both paths work column-wise: each series becomes one time-sorted
//! column (points, or per-step sums from raw points or rollup buckets),
//! the columns of an entity are walked side by side, and each output
//! object is built once from a [`Shape`] computed per query.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection};
use serde_json::{Map, Value};

use super::codec::{decode_raw, decode_rollup_sums, RawChunk};
use super::flatten::{insert_at, parse_path, Number, Segment};
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
            // Up to an hour past `end`: a stepped read counts the whole
            // rollup bucket holding `end` (see `read_stepped`).
            .map(|samples| {
                samples
                    .iter()
                    .filter(|s| s.ts_ns <= end.saturating_add(HOUR_NS))
                    .cloned()
                    .collect()
            })
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

/// One series' points for the output: (timestamp or bucket, value),
/// sorted by time.
type Column = Vec<(i64, Number)>;

/// The shape of an entity's payload with every numeric leaf naming the
/// column that fills it, built once per query so each output object is
/// assembled in one pass (no path walking or key lookups per point).
#[derive(Debug)]
enum Shape {
    Leaf(usize),
    Object(Vec<(String, Shape)>),
    /// Items by index; gaps become `null`, as `insert_at` makes them.
    Array(Vec<Option<Shape>>),
}

impl Shape {
    fn from_paths(paths: &[Vec<Segment>]) -> Self {
        let mut root = Shape::Object(Vec::new());
        for (column, path) in paths.iter().enumerate() {
            root.insert(path, column);
        }
        root
    }

    /// Adds a leaf; a later path wins over an earlier conflicting one, as
    /// `insert_at` would have it.
    fn insert(&mut self, path: &[Segment], column: usize) {
        let Some((first, rest)) = path.split_first() else {
            *self = Shape::Leaf(column);
            return;
        };
        match first {
            Segment::Key(key) => {
                if !matches!(self, Shape::Object(_)) {
                    *self = Shape::Object(Vec::new());
                }
                let Shape::Object(entries) = self else { return };
                let index = match entries.iter().position(|(k, _)| k == key) {
                    Some(index) => index,
                    None => {
                        entries.push((key.clone(), Shape::Object(Vec::new())));
                        entries.len() - 1
                    }
                };
                entries[index].1.insert(rest, column);
            }
            Segment::Index(index) => {
                if !matches!(self, Shape::Array(_)) {
                    *self = Shape::Array(Vec::new());
                }
                let Shape::Array(items) = self else { return };
                if items.len() <= *index {
                    items.resize_with(index + 1, || None);
                }
                items[*index]
                    .get_or_insert_with(|| Shape::Object(Vec::new()))
                    .insert(rest, column);
            }
        }
    }

    /// The value for one row, taking the present leaves out of `row`;
    /// `None` when no leaf below is present.
    fn build(&self, row: &mut [Option<Value>]) -> Option<Value> {
        match self {
            Shape::Leaf(column) => row.get_mut(*column).and_then(Option::take),
            Shape::Object(entries) => {
                // Sized up front: growing the map rehashes every key.
                let mut map = Map::with_capacity(entries.len());
                for (key, shape) in entries {
                    if let Some(value) = shape.build(row) {
                        map.insert(key.clone(), value);
                    }
                }
                (!map.is_empty()).then_some(Value::Object(map))
            }
            Shape::Array(items) => {
                let mut out: Vec<Value> = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    if let Some(value) = item.as_ref().and_then(|shape| shape.build(row)) {
                        out.resize(index, Value::Null);
                        out.push(value);
                    }
                }
                (!out.is_empty()).then_some(Value::Array(out))
            }
        }
    }
}

/// Builds one object per distinct time across an entity's columns (each
/// sorted by time), calling `emit(time, object)` in time order. A column
/// holding one time twice (a resent sample) contributes its later value.
fn assemble_rows(paths: &[Vec<Segment>], columns: &[Column], mut emit: impl FnMut(i64, Value)) {
    let shape = Shape::from_paths(paths);
    let mut cursors = vec![0usize; columns.len()];
    let mut row: Vec<Option<Value>> = vec![None; columns.len()];
    loop {
        let next = columns
            .iter()
            .zip(&cursors)
            .filter_map(|(column, at)| column.get(*at).map(|point| point.0))
            .min();
        let Some(ts) = next else { break };
        for ((column, at), slot) in columns.iter().zip(cursors.iter_mut()).zip(row.iter_mut()) {
            while let Some((point_ts, number)) = column.get(*at) {
                if *point_ts != ts {
                    break;
                }
                *slot = Some(number.to_json());
                *at += 1;
            }
        }
        let data = shape
            .build(&mut row)
            .unwrap_or_else(|| Value::Object(Map::new()));
        emit(ts, data);
    }
}

/// Groups series by entity (in name order): (entity, indexes into `series`).
fn group_by_entity(series: &[SeriesInfo]) -> Vec<(&str, Vec<usize>)> {
    let mut order: Vec<usize> = (0..series.len()).collect();
    order.sort_by(|a, b| series[*a].entity.cmp(&series[*b].entity));
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for index in order {
        let entity = series[index].entity.as_str();
        match groups.last_mut() {
            Some((current, members)) if *current == entity => members.push(index),
            _ => groups.push((entity, vec![index])),
        }
    }
    groups
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
    let mut out: Vec<(i64, String, Value)> = Vec::new();
    for (entity, members) in group_by_entity(series) {
        let mut paths = Vec::with_capacity(members.len());
        let mut columns = Vec::with_capacity(members.len());
        for index in members {
            let info = &series[index];
            let mut column = Column::new();
            for chunk in load_raw_chunks(conn, info.id, start, end)? {
                for (index, ts) in chunk.timestamps_ns.iter().enumerate() {
                    if *ts >= start && *ts <= end {
                        column.push((*ts, chunk.number_at(index)));
                    }
                }
            }
            // Chunks come in start order; only overlapping ones (late
            // data) need a sort, which is stable so resent values stay
            // in sealing order.
            if !column.windows(2).all(|w| w[0].0 <= w[1].0) {
                column.sort_by_key(|(ts, _)| *ts);
            }
            paths.push(parse_path(&info.field));
            columns.push(column);
        }
        let fields = attributes.get(entity);
        assemble_rows(&paths, &columns, |ts, mut data| {
            apply_attributes(&mut data, fields, ts);
            out.push((ts, entity.to_owned(), data));
        });
    }
    out.extend(
        snapshots
            .into_iter()
            .map(|(ts, data)| (ts, String::new(), data)),
    );
    out.extend(
        window
            .into_iter()
            .filter(|sample| sample.ts_ns >= start && sample.ts_ns <= end)
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
    // Unsealed numbers are counted as the rollup tier would count them
    // once sealed: by the start of their tier bucket (a rollup bucket
    // starting at or before `end` counts whole), so a read gives the same
    // averages before and after sealing.
    let tier_width = match tier {
        TIER_MINUTE => MINUTE_NS,
        TIER_HOUR => HOUR_NS,
        _ => 1,
    };
    let tier_floor = |ts: i64| ts.div_euclid(tier_width) * tier_width;
    // Sized up front: growing long vectors page-faults fresh memory in.
    let steps_hint = usize::try_from((end - from) / width + 1)
        .unwrap_or(0)
        .min(1 << 16);
    // Sealed data, one list of step sums per series.
    let mut columns: Vec<(String, String, StepSums)> = Vec::with_capacity(series.len());
    for info in series {
        let mut sums = StepSums::with_capacity(steps_hint);
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
            visit_chunk_blobs(conn, info.id, tier, from, end, |blob| {
                let rollups = decode_rollup_sums(blob)?;
                for ((start_ns, sum), count) in rollups
                    .starts_ns
                    .iter()
                    .zip(&rollups.sums)
                    .zip(&rollups.counts)
                {
                    if *start_ns >= from && *start_ns <= end {
                        add_step(&mut sums, bucket_of(*start_ns), *sum, *count);
                    }
                }
                Ok(())
            })?;
        }
        columns.push((info.entity.clone(), info.field.clone(), sums));
    }

    // Unsealed samples: numbers into the sums, the newest attributes per
    // bucket, and kept-whole payloads as snapshots.
    let mut column_of: HashMap<(String, String), usize> = HashMap::new();
    let mut window_attributes: HashMap<(i64, String), (i64, Vec<Leaf>)> = HashMap::new();
    let mut snapshots: BTreeMap<i64, (i64, Value)> = BTreeMap::new();
    for sample in window {
        let leaves = decompose(&query.metric_type, &sample.data);
        let at = if leaves.is_some() {
            tier_floor(sample.ts_ns)
        } else {
            sample.ts_ns
        };
        if at < from || at > end {
            continue;
        }
        let bucket = bucket_of(at);
        match leaves {
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

    // Per entity: the averages as columns, each output object built once.
    columns.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut out = Vec::with_capacity(snapshots.len() + steps_hint);
    let mut first = 0usize;
    while first < columns.len() {
        let entity = columns[first].0.clone();
        let last = columns[first..]
            .iter()
            .position(|c| c.0 != entity)
            .map_or(columns.len(), |n| first + n);
        let group = &mut columns[first..last];
        let mut paths = Vec::with_capacity(group.len());
        let mut averages = Vec::with_capacity(group.len());
        for (_, field, sums) in group.iter_mut() {
            normalize_steps(sums);
            paths.push(parse_path(field));
            // Same element size: `collect` reuses the sums' buffer in place.
            averages.push(
                std::mem::take(sums)
                    .into_iter()
                    .filter(|(_, _, count)| *count > 0)
                    .map(|(bucket, sum, count)| (bucket, Number::Float(sum / count as f64)))
                    .collect::<Column>(),
            );
        }
        let fields = attributes.get(&entity);
        assemble_rows(&paths, &averages, |bucket, mut data| {
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
        });
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

/// Calls `visit` with each chunk blob of the series and tier overlapping
/// `[from, to]`, in start order, straight from SQLite's buffer (no copy).
fn visit_chunk_blobs(
    conn: &Connection,
    series_id: i64,
    tier: i64,
    from: i64,
    to: i64,
    mut visit: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut statement = conn
        .prepare_cached(
            "SELECT data FROM chunks WHERE series_id = ?1 AND tier = ?2 AND end_ts >= ?3 AND start_ts <= ?4 \
             ORDER BY start_ts, rowid",
        )
        .map_err(sql_error)?;
    let mut rows = statement
        .query(params![series_id, tier, from, to])
        .map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let blob = row.get_ref(0).map_err(sql_error)?;
        let bytes = blob
            .as_blob()
            .map_err(|e| StoreError::Backend(format!("corrupt chunk row: {e}")))?;
        visit(bytes)?;
    }
    Ok(())
}

fn load_raw_chunks(conn: &Connection, series_id: i64, from: i64, to: i64) -> Result<Vec<RawChunk>> {
    let mut chunks = Vec::new();
    visit_chunk_blobs(conn, series_id, TIER_RAW, from, to, |blob| {
        chunks.push(decode_raw(blob)?);
        Ok(())
    })?;
    Ok(chunks)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `insert_at` builds from the same leaves, for comparison.
    fn by_insert_at(paths: &[&str], values: &[Option<Number>]) -> Value {
        let mut data = Value::Object(Map::new());
        for (path, value) in paths.iter().zip(values) {
            if let Some(value) = value {
                insert_at(&mut data, &parse_path(path), value.to_json());
            }
        }
        data
    }

    #[test]
    fn shapes_build_what_insert_at_builds() {
        let paths = ["usage", "cores/#0", "cores/#2", "nested/a/#1/b", "flag"];
        let parsed: Vec<Vec<Segment>> = paths.iter().map(|p| parse_path(p)).collect();
        let shape = Shape::from_paths(&parsed);
        let rows = [
            vec![
                Some(Number::Float(1.5)),
                Some(Number::Int(2)),
                Some(Number::Float(3.0)),
                Some(Number::Int(4)),
                Some(Number::Bool(true)),
            ],
            // Missing leaves: no key, and array gaps stay null only up to
            // the last present item.
            vec![
                Some(Number::Float(1.5)),
                None,
                Some(Number::Int(7)),
                None,
                None,
            ],
            vec![None, Some(Number::Int(1)), None, None, None],
        ];
        for values in rows {
            let mut row: Vec<Option<Value>> =
                values.iter().map(|v| v.map(Number::to_json)).collect();
            let built = shape.build(&mut row).unwrap();
            assert_eq!(built, by_insert_at(&paths, &values));
        }
        let mut row = vec![Some(json!(1.5)), None, None, None, None];
        assert_eq!(shape.build(&mut row).unwrap(), json!({"usage": 1.5}));
    }

    #[test]
    fn rows_merge_columns_by_time_and_keep_a_resent_value() {
        let paths = vec![parse_path("a"), parse_path("b")];
        let columns = vec![
            vec![
                (10, Number::Int(1)),
                (20, Number::Int(2)),
                (20, Number::Int(3)),
            ],
            vec![(20, Number::Int(5)), (30, Number::Int(6))],
        ];
        let mut rows = Vec::new();
        assemble_rows(&paths, &columns, |ts, data| rows.push((ts, data)));
        assert_eq!(
            rows,
            vec![
                (10, json!({"a": 1})),
                (20, json!({"a": 3, "b": 5})),
                (30, json!({"b": 6})),
            ]
        );
    }

    #[test]
    fn overlapping_step_sums_are_sorted_and_combined() {
        let mut sums: StepSums = vec![(60, 1.0, 1), (0, 2.0, 2), (60, 3.0, 1)];
        normalize_steps(&mut sums);
        assert_eq!(sums, vec![(0, 2.0, 2), (60, 4.0, 2)]);
        assert_eq!(tier_for_step(30 * 1_000_000_000), TIER_RAW);
        assert_eq!(tier_for_step(600 * 1_000_000_000), TIER_MINUTE);
        assert_eq!(tier_for_step(HOUR_NS), TIER_HOUR);
    }
}
