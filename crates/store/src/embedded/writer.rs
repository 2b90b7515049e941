//! The writer thread: the only connection that writes.
//!
//! Ingests are group-committed: the thread takes the first queued batch,
//! then everything else already queued (up to `max_group_batches`, or
//! for `commit_window` more), writes them in one transaction and only
//! then answers each caller. Other writes run as closures between groups.
//! Sealing runs in steps of about `seal_step_bytes` of log. In the
//! background pass each step is prepared (rows read, decoded, flattened,
//! compressed: [`prepare_seal`]) on a short-lived sealer thread with a
//! read connection, and only its commit ([`WriterCtx::commit_seal`]: one
//! transaction inserting the chunks and deleting the log rows) runs here,
//! between ingest groups; a plan whose rows changed meanwhile is dropped
//! and prepared again. Explicit `maintenance` calls run both parts here.
//! Day compaction and retention follow, in bounded steps.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, Transaction};
use serde_json::Value;
use spectra_protocol::RawEnvelope;
use tokio::sync::oneshot;

use super::codec::{compute_rollups, encode_raw, encode_rollups, RawChunk};
use super::compact::{self, CompactionCursor};
use super::flatten::{Kind, Number};
use super::{decompose, entity_of, sql_error, to_ns, SeriesInfo, Shared};
use crate::{IngestOutcome, MaintenanceReport, Result, StoreError};

pub(crate) const TIER_RAW: i64 = 0;
pub(crate) const TIER_MINUTE: i64 = 1;
pub(crate) const TIER_HOUR: i64 = 2;
pub(crate) const MINUTE_NS: i64 = 60_000_000_000;
pub(crate) const HOUR_NS: i64 = 60 * MINUTE_NS;

/// How long one compaction step may hold the writer.
const COMPACT_BUDGET: Duration = Duration::from_millis(50);

/// How often activity (`touch_agent`) is written to the agents table.
const LAST_SEEN_FLUSH: Duration = Duration::from_secs(30);

pub(crate) struct PreparedBatch {
    pub agent_id: String,
    pub batch_id: String,
    pub received_at_ns: i64,
    pub min_ts: i64,
    pub max_ts: i64,
    /// zstd JSON of `envelopes`.
    pub blob: Vec<u8>,
    pub envelopes: Vec<RawEnvelope>,
    pub reply: oneshot::Sender<Result<IngestOutcome>>,
}

pub(crate) type WriteFn = Box<dyn FnOnce(&mut WriterCtx) + Send>;

pub(crate) enum Job {
    Ingest(PreparedBatch),
    Exec(WriteFn),
}

/// (agent, type, entity, field, kind)
type SeriesKey = (String, String, String, String, Kind);
/// (agent, type, entity)
type EntityKey = (String, String, String);
/// The non-numeric leaves of one sample, per entity: (timestamp, leaves).
type AttributeSamples = HashMap<EntityKey, Vec<(i64, Vec<(String, Value)>)>>;
/// field → (since, JSON text or `None` when the field went away)
type AttributeState = HashMap<String, (i64, Option<String>)>;

/// Where the background maintenance pass stands.
enum Background {
    Idle,
    /// A seal step is being prepared off-thread (for this horizon).
    Preparing(Receiver<Result<SealPlan>>, i64),
    /// Sealing is done; day compaction runs in bounded steps.
    Compacting(i64),
}

pub(crate) struct WriterCtx {
    pub conn: Connection,
    shared: Arc<Shared>,
    series_ids: HashMap<SeriesKey, i64>,
    /// The newest attribute row per field, per entity touched so far.
    attributes: HashMap<EntityKey, AttributeState>,
    last_seen_flushed: Instant,
    /// Day compaction's progress, loaded on first use.
    compaction: Option<CompactionCursor>,
}

pub(crate) fn decode_batch(blob: &[u8]) -> Result<Vec<RawEnvelope>> {
    let json = zstd::stream::decode_all(blob)
        .map_err(|e| StoreError::Backend(format!("corrupt batch log row: {e}")))?;
    serde_json::from_slice(&json)
        .map_err(|e| StoreError::Backend(format!("corrupt batch log row: {e}")))
}

pub(crate) fn compress_json(value: &Value) -> Result<Vec<u8>> {
    let json =
        serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("snapshot: {e}")))?;
    zstd::bulk::compress(&json, 3)
        .map_err(|e| StoreError::Backend(format!("compressing a snapshot: {e}")))
}

impl WriterCtx {
    /// Rebuilds the in-memory state: series, the persisted latest state and
    /// the unsealed batch log on top of it.
    pub(crate) fn load(conn: Connection, shared: Arc<Shared>) -> Result<Self> {
        let mut series_ids = HashMap::new();
        {
            let mut mem = shared.lock_mem()?;
            let mut statement = conn
                .prepare("SELECT id, agent_id, metric_type, entity, field, kind FROM series")
                .map_err(sql_error)?;
            let rows = statement
                .query_map([], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, String>(4)?,
                        row.get::<_, i64>(5)?,
                    ))
                })
                .map_err(sql_error)?;
            for row in rows {
                let (id, agent, metric, entity, field, kind) = row.map_err(sql_error)?;
                let Some(kind) = Kind::from_code(kind) else {
                    tracing::warn!(series = id, kind, "skipping a series of unknown kind");
                    continue;
                };
                mem.series
                    .entry((agent.clone(), metric.clone()))
                    .or_default()
                    .push(SeriesInfo {
                        id,
                        entity: entity.clone(),
                        field: field.clone(),
                    });
                series_ids.insert((agent, metric, entity, field, kind), id);
            }

            let mut statement = conn
                .prepare("SELECT agent_id, envelope_json FROM latest")
                .map_err(sql_error)?;
            let rows = statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(sql_error)?;
            for row in rows {
                let (agent, json) = row.map_err(sql_error)?;
                let envelope: RawEnvelope =
                    serde_json::from_str(&json).map_err(super::json_error)?;
                let key = (
                    envelope.metric_type.clone(),
                    entity_of(&envelope.metric_type, &envelope.data),
                );
                mem.latest.entry(agent).or_default().insert(key, envelope);
            }

            let mut statement = conn
                .prepare("SELECT id, agent_id, envelopes FROM batch_log ORDER BY id")
                .map_err(sql_error)?;
            let rows = statement
                .query_map([], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Vec<u8>>(2)?,
                    ))
                })
                .map_err(sql_error)?;
            let mut replayed = 0usize;
            for row in rows {
                let (id, agent, blob) = row.map_err(sql_error)?;
                let envelopes = decode_batch(&blob)?;
                mem.apply_envelopes(&agent, id, &envelopes);
                replayed += 1;
            }
            if replayed > 0 {
                tracing::info!(batches = replayed, "replayed the unsealed batch log");
            }
        }
        Ok(Self {
            conn,
            shared,
            series_ids,
            attributes: HashMap::new(),
            last_seen_flushed: Instant::now(),
            compaction: None,
        })
    }

    /// The thread's loop; returns when every sender is gone and the queue
    /// is drained.
    pub(crate) fn run(mut self, jobs: Receiver<Job>) {
        let interval = self.shared.config.seal_interval;
        let background = self.shared.config.background_maintenance && !interval.is_zero();
        let mut next_maintenance = Instant::now() + interval;
        let mut state = Background::Idle;
        loop {
            // A plan prepared off-thread is committed as soon as it is
            // ready, even while ingests keep arriving.
            if let Background::Preparing(ready, _) = &state {
                match ready.try_recv() {
                    Err(TryRecvError::Empty) => {}
                    result => {
                        let plan = result.unwrap_or_else(|_| {
                            Err(StoreError::Backend("the seal preparer stopped".into()))
                        });
                        state = self.advance_background(state, Some(plan), &mut next_maintenance);
                    }
                }
            }
            let job = match &state {
                Background::Preparing(..) => match jobs.recv_timeout(Duration::from_millis(2)) {
                    Ok(job) => Some(job),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                Background::Compacting(_) => match jobs.try_recv() {
                    Ok(job) => Some(job),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => break,
                },
                Background::Idle if background => {
                    match jobs
                        .recv_timeout(next_maintenance.saturating_duration_since(Instant::now()))
                    {
                        Ok(job) => Some(job),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                Background::Idle => match jobs.recv() {
                    Ok(job) => Some(job),
                    Err(_) => break,
                },
            };
            match job {
                Some(job) => self.handle(job, &jobs),
                None if matches!(state, Background::Preparing(..)) => {}
                None => state = self.advance_background(state, None, &mut next_maintenance),
            }
        }
        if let Err(error) = self.flush_last_seen() {
            tracing::warn!(error = %error, "could not persist agent activity at close");
        }
        if let Err(error) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::debug!(error = %error, "checkpoint at close failed");
        }
        tracing::info!("embedded store writer stopped");
    }

    /// Moves the background pass on: starts preparing a seal step off
    /// the writer thread, commits a prepared one (a short transaction),
    /// then compacts in bounded steps and applies retention.
    fn advance_background(
        &mut self,
        state: Background,
        prepared: Option<Result<SealPlan>>,
        next_maintenance: &mut Instant,
    ) -> Background {
        let interval = self.shared.config.seal_interval;
        let outcome = (|| -> Result<Background> {
            match (state, prepared) {
                (Background::Idle, _) => Ok(self.start_preparing(self.seal_horizon(Utc::now()))),
                (Background::Preparing(_, horizon), Some(plan)) => {
                    let (sealed, chunks, more) = self.commit_seal(plan?)?;
                    tracing::debug!(batches = sealed, chunks, "sealed batch log rows");
                    Ok(if more {
                        self.start_preparing(horizon)
                    } else {
                        Background::Compacting(horizon)
                    })
                }
                (state @ Background::Preparing(..), None) => Ok(state),
                (Background::Compacting(horizon), _) => {
                    if self.compact_step(horizon)? {
                        return Ok(Background::Compacting(horizon));
                    }
                    self.apply_retention(to_ns(Utc::now()))?;
                    self.flush_last_seen()?;
                    Ok(Background::Idle)
                }
            }
        })();
        let next = match outcome {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(error = %error, "background maintenance failed");
                Background::Idle
            }
        };
        if matches!(next, Background::Idle) {
            *next_maintenance = Instant::now() + interval;
        }
        next
    }

    /// Prepares the next seal step on its own thread with a read
    /// connection: only the commit runs on the writer.
    fn start_preparing(&self, horizon_ns: i64) -> Background {
        let (done, ready) = std::sync::mpsc::channel();
        let shared = Arc::clone(&self.shared);
        let limit = shared.config.seal_batch_limit.max(1);
        let budget = shared.config.seal_step_bytes;
        let spawned = std::thread::Builder::new()
            .name("spectra-store-sealer".into())
            .spawn(move || {
                let plan = shared.with_reader(|conn| {
                    prepare_seal(conn, &shared.config, horizon_ns, limit, budget)
                });
                let _ = done.send(plan);
            });
        if let Err(error) = spawned {
            tracing::warn!(error = %error, "could not start the seal preparer");
        }
        // A failed spawn drops `done`: the next poll sees it and goes idle.
        Background::Preparing(ready, horizon_ns)
    }

    fn handle(&mut self, job: Job, jobs: &Receiver<Job>) {
        match job {
            Job::Exec(f) => f(self),
            Job::Ingest(first) => {
                let config = &self.shared.config;
                let cap = config.max_group_batches.max(1);
                let deadline = Instant::now() + config.commit_window;
                let mut group = vec![first];
                let mut deferred = Vec::new();
                while group.len() < cap {
                    let next = match jobs.try_recv() {
                        Ok(job) => Some(job),
                        Err(_) if !config.commit_window.is_zero() => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                None
                            } else {
                                jobs.recv_timeout(left).ok()
                            }
                        }
                        Err(_) => None,
                    };
                    match next {
                        Some(Job::Ingest(batch)) => group.push(batch),
                        Some(Job::Exec(f)) => deferred.push(f),
                        None => break,
                    }
                }
                self.commit_group(group);
                for f in deferred {
                    f(self);
                }
            }
        }
    }

    /// Writes a group of batches in one transaction and answers each caller
    /// once it is committed.
    fn commit_group(&mut self, group: Vec<PreparedBatch>) {
        let flush_activity = self.last_seen_flushed.elapsed() >= LAST_SEEN_FLUSH;
        let result = (|| -> Result<Vec<Option<i64>>> {
            let tx = self.conn.transaction().map_err(sql_error)?;
            let mut rows = Vec::with_capacity(group.len());
            {
                let mut seen = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO seen_batches (agent_id, batch_id, received_at) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(sql_error)?;
                let mut log = tx
                    .prepare_cached(
                        "INSERT INTO batch_log (agent_id, batch_id, received_at, min_ts, max_ts, envelopes) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .map_err(sql_error)?;
                for batch in &group {
                    let fresh = seen
                        .execute(params![
                            batch.agent_id,
                            batch.batch_id,
                            batch.received_at_ns
                        ])
                        .map_err(sql_error)?;
                    if fresh == 0 {
                        rows.push(None);
                        continue;
                    }
                    log.execute(params![
                        batch.agent_id,
                        batch.batch_id,
                        batch.received_at_ns,
                        batch.min_ts,
                        batch.max_ts,
                        batch.blob
                    ])
                    .map_err(sql_error)?;
                    rows.push(Some(tx.last_insert_rowid()));
                }
            }
            if flush_activity {
                write_last_seen(&tx, &self.shared)?;
            }
            tx.commit().map_err(sql_error)?;
            Ok(rows)
        })();
        if flush_activity {
            self.last_seen_flushed = Instant::now();
        }
        match result {
            Ok(rows) => {
                // Memory is updated after COMMIT and before answering, so a
                // read after an acknowledgement sees the batch.
                if let Ok(mut mem) = self.shared.lock_mem() {
                    for (batch, row) in group.iter().zip(&rows) {
                        if let Some(row) = row {
                            mem.apply_envelopes(&batch.agent_id, *row, &batch.envelopes);
                        }
                    }
                }
                for (batch, row) in group.into_iter().zip(rows) {
                    let outcome = match row {
                        Some(_) => IngestOutcome::Stored {
                            envelopes: batch.envelopes.len(),
                        },
                        None => IngestOutcome::Duplicate,
                    };
                    let _ = batch.reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                tracing::error!(error = %error, batches = group.len(), "group commit failed");
                let message = error.to_string();
                for batch in group {
                    let _ = batch.reply.send(Err(StoreError::Backend(message.clone())));
                }
            }
        }
    }

    fn flush_last_seen(&mut self) -> Result<()> {
        let tx = self.conn.transaction().map_err(sql_error)?;
        write_last_seen(&tx, &self.shared)?;
        tx.commit().map_err(sql_error)?;
        self.last_seen_flushed = Instant::now();
        Ok(())
    }

    /// Seals everything due as of `now`, then applies retention.
    pub(crate) fn maintain(&mut self, now: DateTime<Utc>) -> Result<MaintenanceReport> {
        let mut report = MaintenanceReport::default();
        let limit = self.shared.config.seal_batch_limit.max(1);
        let horizon = self.seal_horizon(now);
        loop {
            let (sealed, chunks, more) = self.seal_step(horizon, limit)?;
            report.sealed_batches += sealed;
            report.chunks_written += chunks;
            if !more {
                break;
            }
        }
        while self.compact_step(horizon)? {}
        let (chunks_deleted, snapshots_deleted) = self.apply_retention(to_ns(now))?;
        report.chunks_deleted = chunks_deleted;
        report.snapshots_deleted = snapshots_deleted;
        self.flush_last_seen()?;
        tracing::debug!(?report, "maintenance done");
        Ok(report)
    }

    /// One bounded step of day compaction (see `compact.rs`); true while
    /// more is due.
    fn compact_step(&mut self, horizon_ns: i64) -> Result<bool> {
        let cursor = match self.compaction {
            Some(cursor) => cursor,
            None => match compact::load_cursor(&self.conn)? {
                Some(cursor) => cursor,
                None => return Ok(false),
            },
        };
        let mut next = cursor;
        let step = compact::compact_step(&mut self.conn, &mut next, horizon_ns, COMPACT_BUDGET);
        // On failure the transaction rolled back: reload from the database.
        self.compaction = step.is_ok().then_some(next);
        let step = step?;
        if step.chunks_merged > 0 {
            tracing::debug!(
                merged = step.chunks_merged,
                written = step.chunks_written,
                day_ns = next.day_ns,
                "compacted chunks"
            );
        }
        Ok(step.more)
    }

    /// Batches whose samples all lie before this are sealed: `now` rounded
    /// down to the seal interval, so chunks cover whole windows.
    fn seal_horizon(&self, now: DateTime<Utc>) -> i64 {
        let now_ns = to_ns(now);
        let interval_ns = i64::try_from(self.shared.config.seal_interval.as_nanos())
            .unwrap_or(i64::MAX)
            .max(1);
        now_ns.div_euclid(interval_ns) * interval_ns
    }

    /// Seals up to `limit` log rows (and about `seal_step_bytes` of them)
    /// due before `horizon_ns`: returns the rows sealed, the chunks
    /// written, and whether more may be due.
    fn seal_step(&mut self, horizon_ns: i64, limit: usize) -> Result<(u64, u64, bool)> {
        let result = self.seal_step_inner(horizon_ns, limit);
        if result.is_err() {
            // The attribute cache may hold rows that were rolled back.
            self.attributes.clear();
        }
        result
    }

    fn seal_step_inner(&mut self, horizon_ns: i64, limit: usize) -> Result<(u64, u64, bool)> {
        let budget = self.shared.config.seal_step_bytes;
        let plan = prepare_seal(&self.conn, &self.shared.config, horizon_ns, limit, budget)?;
        self.commit_seal(plan)
    }

    /// Writes a prepared seal step in one transaction: returns the rows
    /// sealed, the chunks written, and whether more may be due. A plan
    /// whose log rows are no longer all there (sealed meanwhile by another
    /// pass, or their agent deleted) is dropped unwritten and reported as
    /// "more due", so it is prepared afresh: no sample is ever sealed twice.
    pub(crate) fn commit_seal(&mut self, plan: SealPlan) -> Result<(u64, u64, bool)> {
        let result = self.commit_seal_inner(plan);
        if result.is_err() {
            // The attribute cache may hold rows that were rolled back.
            self.attributes.clear();
        }
        result
    }

    fn commit_seal_inner(&mut self, plan: SealPlan) -> Result<(u64, u64, bool)> {
        let SealPlan {
            rows,
            agents,
            series,
            attribute_samples,
            snapshots,
            more,
        } = plan;
        if rows.is_empty() {
            return Ok((0, 0, more));
        }
        let latest_rows: Vec<(String, String, String, String)> = {
            let mem = self.shared.lock_mem()?;
            let mut out = Vec::new();
            for agent in &agents {
                for ((metric, entity), envelope) in mem.latest.get(agent).into_iter().flatten() {
                    let json = serde_json::to_string(envelope).map_err(super::json_error)?;
                    out.push((agent.clone(), metric.clone(), entity.clone(), json));
                }
            }
            out
        };

        let tx = self.conn.transaction().map_err(sql_error)?;
        {
            let mut exists = tx
                .prepare_cached("SELECT count(*) FROM batch_log WHERE id = ?1")
                .map_err(sql_error)?;
            for id in &rows {
                let found: i64 = exists
                    .query_row([id], |row| row.get(0))
                    .map_err(sql_error)?;
                if found == 0 {
                    tracing::debug!(row = id, "seal plan is stale; preparing it again");
                    return Ok((0, 0, true));
                }
            }
        }
        let mut new_series: Vec<(SeriesKey, i64)> = Vec::new();
        let mut chunks_written = 0u64;
        {
            let mut insert_series = tx
                .prepare_cached(
                    "INSERT INTO series (agent_id, metric_type, entity, field, kind) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(sql_error)?;
            let mut insert_chunk = tx
                .prepare_cached(
                    "INSERT INTO chunks (series_id, tier, start_ts, end_ts, count, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sql_error)?;
            for (key, chunks) in series {
                let series_id = match self.series_ids.get(&key) {
                    Some(id) => *id,
                    None => {
                        insert_series
                            .execute(params![key.0, key.1, key.2, key.3, key.4 as i64])
                            .map_err(sql_error)?;
                        let id = tx.last_insert_rowid();
                        new_series.push((key.clone(), id));
                        id
                    }
                };
                for (tier, start, end, count, blob) in chunks {
                    insert_chunk
                        .execute(params![series_id, tier, start, end, count, blob])
                        .map_err(sql_error)?;
                    chunks_written += 1;
                }
            }

            write_attributes(&tx, &mut self.attributes, attribute_samples)?;

            let mut insert_snapshot = tx
                .prepare_cached("INSERT INTO snapshots (agent_id, metric_type, ts, data) VALUES (?1, ?2, ?3, ?4)")
                .map_err(sql_error)?;
            for (agent, metric, ts, blob) in &snapshots {
                insert_snapshot
                    .execute(params![agent, metric, ts, blob])
                    .map_err(sql_error)?;
            }

            let mut upsert_latest = tx
                .prepare_cached(
                    "INSERT INTO latest (agent_id, metric_type, entity, envelope_json) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (agent_id, metric_type, entity) DO UPDATE SET envelope_json = excluded.envelope_json",
                )
                .map_err(sql_error)?;
            for (agent, metric, entity, json) in &latest_rows {
                upsert_latest
                    .execute(params![agent, metric, entity, json])
                    .map_err(sql_error)?;
            }

            let mut delete_row = tx
                .prepare_cached("DELETE FROM batch_log WHERE id = ?1")
                .map_err(sql_error)?;
            for id in &rows {
                delete_row.execute([id]).map_err(sql_error)?;
            }
        }

        // Commit and trim the window under the memory lock, so a reader
        // never sees a sample both in a chunk and in the window, or in neither.
        let sealed_rows: HashSet<i64> = rows.iter().copied().collect();
        let mut mem = self.shared.lock_mem()?;
        tx.commit().map_err(sql_error)?;
        for agent in &agents {
            if let Some(by_type) = mem.window.get_mut(agent) {
                for samples in by_type.values_mut() {
                    samples.retain(|sample| !sealed_rows.contains(&sample.batch_row));
                }
                by_type.retain(|_, samples| !samples.is_empty());
            }
        }
        for ((agent, metric, entity, field, kind), id) in new_series {
            mem.series
                .entry((agent.clone(), metric.clone()))
                .or_default()
                .push(SeriesInfo {
                    id,
                    entity: entity.clone(),
                    field: field.clone(),
                });
            self.series_ids
                .insert((agent, metric, entity, field, kind), id);
        }
        drop(mem);
        tracing::debug!(
            batches = rows.len(),
            chunks = chunks_written,
            "sealed batch log rows"
        );
        Ok((rows.len() as u64, chunks_written, more))
    }

    /// Deletes whole chunks and snapshots past their tier's retention and
    /// expired dedupe entries.
    fn apply_retention(&mut self, now_ns: i64) -> Result<(u64, u64)> {
        let config = &self.shared.config;
        let before = |keep: Duration| {
            now_ns.saturating_sub(i64::try_from(keep.as_nanos()).unwrap_or(i64::MAX))
        };
        let tx = self.conn.transaction().map_err(sql_error)?;
        let mut chunks = 0;
        for (tier, keep) in [
            (TIER_RAW, config.retention.raw),
            (TIER_MINUTE, config.retention.minute),
            (TIER_HOUR, config.retention.hour),
        ] {
            chunks += tx
                .execute(
                    "DELETE FROM chunks WHERE tier = ?1 AND end_ts < ?2",
                    params![tier, before(keep)],
                )
                .map_err(sql_error)?;
        }
        let snapshots = tx
            .execute(
                "DELETE FROM snapshots WHERE ts < ?1",
                [before(config.retention.raw)],
            )
            .map_err(sql_error)?;
        tx.execute(
            "DELETE FROM seen_batches WHERE received_at < ?1",
            [before(config.dedupe_window)],
        )
        .map_err(sql_error)?;
        tx.commit().map_err(sql_error)?;
        Ok((chunks as u64, snapshots as u64))
    }

    /// Deletes an agent and every row and in-memory trace of its data.
    pub(crate) fn delete_agent(&mut self, id: &str) -> Result<()> {
        let tx = self.conn.transaction().map_err(sql_error)?;
        let existed = tx
            .execute("DELETE FROM agents WHERE id = ?1", [id])
            .map_err(sql_error)?;
        tx.execute(
            "DELETE FROM chunks WHERE series_id IN (SELECT id FROM series WHERE agent_id = ?1)",
            [id],
        )
        .map_err(sql_error)?;
        for table in [
            "series",
            "attributes",
            "snapshots",
            "latest",
            "batch_log",
            "seen_batches",
            "commands",
        ] {
            tx.execute(&format!("DELETE FROM {table} WHERE agent_id = ?1"), [id])
                .map_err(sql_error)?;
        }
        let mut mem = self.shared.lock_mem()?;
        tx.commit().map_err(sql_error)?;
        mem.latest.remove(id);
        mem.window.remove(id);
        mem.series.retain(|(agent, _), _| agent != id);
        drop(mem);
        self.series_ids.retain(|key, _| key.0 != id);
        self.attributes.retain(|key, _| key.0 != id);
        if let Ok(mut last_seen) = self.shared.last_seen.lock() {
            last_seen.remove(id);
        }
        if existed == 0 {
            return Err(StoreError::NotFound(format!("agent {id}")));
        }
        Ok(())
    }
}

/// A chunk ready to insert: (tier, start, end, count, blob).
type EncodedChunk = (i64, i64, i64, i64, Vec<u8>);

/// A seal step's work done ahead of its transaction: the log rows it
/// covers and the encoded chunks, attributes and snapshots they become.
#[derive(Default)]
pub(crate) struct SealPlan {
    rows: Vec<i64>,
    agents: HashSet<String>,
    series: Vec<(SeriesKey, Vec<EncodedChunk>)>,
    attribute_samples: AttributeSamples,
    snapshots: Vec<(String, String, i64, Vec<u8>)>,
    /// More rows may be due after these.
    more: bool,
}

/// Reads up to `limit` log rows (about `byte_budget` compressed bytes)
/// due before `horizon_ns` and does the expensive part of sealing them
/// (decoding, flattening, compressing). Needs only a read connection, so
/// the background pass runs it off the writer thread.
pub(crate) fn prepare_seal(
    conn: &Connection,
    config: &super::EmbeddedConfig,
    horizon_ns: i64,
    limit: usize,
    byte_budget: usize,
) -> Result<SealPlan> {
    let interval_ns = i64::try_from(config.seal_interval.as_nanos()).unwrap_or(i64::MAX);
    // Rows received more than a seal interval before the horizon are
    // sealed whatever their timestamps say (an agent clock far ahead).
    let received_before = horizon_ns.saturating_sub(interval_ns);
    // The step's work (decoding, compressing) grows with the log bytes
    // it reads, whatever the batch sizes, so it is cut by bytes as well
    // as by rows: that bounds how long queued ingests wait behind it.
    let byte_budget = byte_budget.max(1);
    let mut rows: Vec<(i64, String, Vec<u8>)> = Vec::new();
    let mut more = false;
    {
        let mut statement = conn
                .prepare_cached(
                    "SELECT id, agent_id, envelopes FROM batch_log WHERE max_ts < ?1 OR received_at < ?2 \
                     ORDER BY agent_id, id LIMIT ?3",
                )
                .map_err(sql_error)?;
        let mut found = statement
            .query(params![
                horizon_ns,
                received_before,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ])
            .map_err(sql_error)?;
        let mut bytes = 0usize;
        while let Some(row) = found.next().map_err(sql_error)? {
            if bytes >= byte_budget {
                more = true;
                break;
            }
            let blob: Vec<u8> = row.get(2).map_err(sql_error)?;
            bytes += blob.len();
            rows.push((
                row.get(0).map_err(sql_error)?,
                row.get(1).map_err(sql_error)?,
                blob,
            ));
        }
    }
    if rows.is_empty() {
        return Ok(SealPlan::default());
    }
    more |= rows.len() >= limit;

    let mut points: HashMap<SeriesKey, Vec<(i64, Number)>> = HashMap::new();
    let mut attribute_samples: AttributeSamples = HashMap::new();
    let mut snapshots: Vec<(String, String, i64, Vec<u8>)> = Vec::new();
    let mut agents: HashSet<String> = HashSet::new();
    for (_, agent, blob) in &rows {
        agents.insert(agent.clone());
        for envelope in decode_batch(blob)? {
            let ts = to_ns(envelope.timestamp);
            match decompose(&envelope.metric_type, &envelope.data) {
                Some(leaves) => {
                    let entity = entity_of(&envelope.metric_type, &envelope.data);
                    for (field, number) in leaves.numbers {
                        let key = (
                            agent.clone(),
                            envelope.metric_type.clone(),
                            entity.clone(),
                            field,
                            number.kind(),
                        );
                        points.entry(key).or_default().push((ts, number));
                    }
                    attribute_samples
                        .entry((agent.clone(), envelope.metric_type, entity))
                        .or_default()
                        .push((ts, leaves.attributes));
                }
                None => {
                    let blob = compress_json(&envelope.data)?;
                    snapshots.push((agent.clone(), envelope.metric_type, ts, blob));
                }
            }
        }
    }

    let mut series = Vec::with_capacity(points.len());
    for (key, series_points) in points {
        let chunk = RawChunk::from_points(key.4, series_points);
        let (Some(first), Some(last)) = (chunk.timestamps_ns.first(), chunk.timestamps_ns.last())
        else {
            continue;
        };
        let mut chunks = vec![(
            TIER_RAW,
            *first,
            *last,
            chunk.len() as i64,
            encode_raw(&chunk)?,
        )];
        let values = chunk.values_f64();
        for (tier, width) in [(TIER_MINUTE, MINUTE_NS), (TIER_HOUR, HOUR_NS)] {
            let buckets = compute_rollups(&chunk.timestamps_ns, &values, width);
            let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
                continue;
            };
            chunks.push((
                tier,
                first.start_ns,
                last.start_ns.saturating_add(width - 1),
                buckets.len() as i64,
                encode_rollups(&buckets)?,
            ));
        }
        series.push((key, chunks));
    }
    Ok(SealPlan {
        rows: rows.into_iter().map(|(id, _, _)| id).collect(),
        agents,
        series,
        attribute_samples,
        snapshots,
        more,
    })
}

/// Persists the activity recorded by `touch_agent` since the last flush.
fn write_last_seen(tx: &Transaction<'_>, shared: &Shared) -> Result<()> {
    let pending: Vec<(String, DateTime<Utc>)> = match shared.last_seen.lock() {
        Ok(map) => map.iter().map(|(id, at)| (id.clone(), *at)).collect(),
        Err(_) => return Err(StoreError::Backend("activity map poisoned".into())),
    };
    let mut update = tx
        .prepare_cached(
            "UPDATE agents SET last_seen = max(coalesce(last_seen, ?2), ?2) WHERE id = ?1",
        )
        .map_err(sql_error)?;
    for (id, at) in pending {
        update.execute(params![id, to_ns(at)]).map_err(sql_error)?;
    }
    Ok(())
}

/// Writes a row for every attribute change (and disappearance) among the
/// samples, in time order per entity.
///
/// Known limit: a late sample older than a field's newest row does not
/// rewrite that field's history (the rows stay as they were), so a string
/// that changed only in late data reads as its neighbours' value.
fn write_attributes(
    tx: &Transaction<'_>,
    cache: &mut HashMap<EntityKey, AttributeState>,
    samples: AttributeSamples,
) -> Result<()> {
    let mut insert = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO attributes (agent_id, metric_type, entity, field, since_ts, value_json) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(sql_error)?;
    for (key, mut entity_samples) in samples {
        if !cache.contains_key(&key) {
            let state = load_attribute_state(tx, &key)?;
            cache.insert(key.clone(), state);
        }
        let Some(state) = cache.get_mut(&key) else {
            continue;
        };
        entity_samples.sort_by_key(|(ts, _)| *ts);
        for (ts, attributes) in entity_samples {
            let mut present: HashSet<&str> = HashSet::new();
            for (field, value) in &attributes {
                present.insert(field);
                let text = value.to_string();
                let changed = match state.get(field) {
                    Some((since, _)) if *since > ts => false,
                    Some((_, Some(current))) => *current != text,
                    _ => true,
                };
                if changed {
                    insert
                        .execute(params![key.0, key.1, key.2, field, ts, text])
                        .map_err(sql_error)?;
                    state.insert(field.clone(), (ts, Some(text)));
                }
            }
            for (field, (since, value)) in state.iter_mut() {
                if value.is_some() && *since <= ts && !present.contains(field.as_str()) {
                    insert
                        .execute(params![
                            key.0,
                            key.1,
                            key.2,
                            field,
                            ts,
                            Option::<String>::None
                        ])
                        .map_err(sql_error)?;
                    *since = ts;
                    *value = None;
                }
            }
        }
    }
    Ok(())
}

fn load_attribute_state(conn: &Connection, key: &EntityKey) -> Result<AttributeState> {
    let mut statement = conn
        .prepare_cached(
            "SELECT field, since_ts, value_json FROM attributes \
             WHERE agent_id = ?1 AND metric_type = ?2 AND entity = ?3 ORDER BY since_ts",
        )
        .map_err(sql_error)?;
    let rows = statement
        .query_map(params![key.0, key.1, key.2], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<String>>(2)?,
            ))
        })
        .map_err(sql_error)?;
    let mut state = AttributeState::new();
    for row in rows {
        let (field, since, value) = row.map_err(sql_error)?;
        state.insert(field, (since, value));
    }
    Ok(state)
}
