//! The embedded store's tables and their migrations, applied in order at
//! open. `schema_version` holds how many migrations ran; a migration is
//! never edited once shipped, only followed by a new one.
//!
//! Times are `INTEGER` nanoseconds since the epoch (UTC) so records
//! round-trip exactly.

use rusqlite::{params, Connection};

use super::sql_error;
use crate::Result;

const MIGRATIONS: &[&str] = &[
    // 1: the foundation.
    r#"
    CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        hostname TEXT NOT NULL,
        host_json TEXT NOT NULL,
        labels_json TEXT NOT NULL,
        state TEXT NOT NULL,
        local INTEGER NOT NULL,
        credential_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_seen INTEGER
    );
    CREATE INDEX agents_by_credential ON agents(credential_hash);

    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );

    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        last_used INTEGER
    );

    CREATE TABLE enrollment_tokens (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        uses_left INTEGER,
        expires_at INTEGER,
        labels_json TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );

    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE commands (
        id TEXT PRIMARY KEY,
        agent_id TEXT NOT NULL,
        command_type TEXT NOT NULL,
        payload_json TEXT NOT NULL,
        status TEXT NOT NULL,
        result_json TEXT,
        error TEXT,
        requested_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        delivered_at INTEGER,
        completed_at INTEGER
    );
    CREATE INDEX commands_by_agent ON commands(agent_id, status, created_at);

    -- One row per acknowledged batch until it is sealed: zstd JSON of the
    -- envelope array. min_ts/max_ts are the envelopes' timestamps.
    CREATE TABLE batch_log (
        id INTEGER PRIMARY KEY,
        agent_id TEXT NOT NULL,
        batch_id TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        min_ts INTEGER NOT NULL,
        max_ts INTEGER NOT NULL,
        envelopes BLOB NOT NULL
    );
    -- Sealing walks the log agent by agent, so each series gets one chunk
    -- per seal pass instead of a sliver per step.
    CREATE INDEX batch_log_by_agent ON batch_log(agent_id, id);

    -- Batch ids already stored, for deduplication (pruned by retention).
    CREATE TABLE seen_batches (
        agent_id TEXT NOT NULL,
        batch_id TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (agent_id, batch_id)
    ) WITHOUT ROWID;
    CREATE INDEX seen_batches_by_time ON seen_batches(received_at);

    -- kind: 0 int, 1 float, 2 bool. The kind is part of the key so a field
    -- sent as 1 and later as 1.5 keeps each value's JSON type.
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        agent_id TEXT NOT NULL,
        metric_type TEXT NOT NULL,
        entity TEXT NOT NULL,
        field TEXT NOT NULL,
        kind INTEGER NOT NULL,
        UNIQUE (agent_id, metric_type, entity, field, kind)
    );

    -- tier: 0 raw, 1 one-minute rollups, 2 one-hour rollups.
    CREATE TABLE chunks (
        series_id INTEGER NOT NULL,
        tier INTEGER NOT NULL,
        start_ts INTEGER NOT NULL,
        end_ts INTEGER NOT NULL,
        count INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    CREATE INDEX chunks_by_series ON chunks(series_id, tier, end_ts);
    CREATE INDEX chunks_by_age ON chunks(tier, end_ts);

    -- Non-numeric leaves (strings, nulls, empty containers): one row per
    -- change; value NULL means the field stopped being sent.
    CREATE TABLE attributes (
        agent_id TEXT NOT NULL,
        metric_type TEXT NOT NULL,
        entity TEXT NOT NULL,
        field TEXT NOT NULL,
        since_ts INTEGER NOT NULL,
        value_json TEXT,
        PRIMARY KEY (agent_id, metric_type, entity, field, since_ts)
    ) WITHOUT ROWID;

    -- List-shaped and undecomposable payloads: zstd JSON of `data`.
    CREATE TABLE snapshots (
        agent_id TEXT NOT NULL,
        metric_type TEXT NOT NULL,
        ts INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    CREATE INDEX snapshots_by_type ON snapshots(agent_id, metric_type, ts);
    CREATE INDEX snapshots_by_age ON snapshots(ts);

    -- The newest envelope per (agent, type, entity) as of the last seal;
    -- the unsealed batch log is replayed over it at open.
    CREATE TABLE latest (
        agent_id TEXT NOT NULL,
        metric_type TEXT NOT NULL,
        entity TEXT NOT NULL,
        envelope_json TEXT NOT NULL,
        PRIMARY KEY (agent_id, metric_type, entity)
    ) WITHOUT ROWID;
    "#,
    // 2: day compaction's watermark (see compact.rs).
    r#"
    CREATE TABLE store_state (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 3: the audit log.
    r#"
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        agent_id TEXT,
        target TEXT,
        outcome TEXT NOT NULL,
        source_ip TEXT,
        detail_json TEXT NOT NULL
    );
    CREATE INDEX audit_by_agent ON audit_log(agent_id, id);
    CREATE INDEX audit_by_at ON audit_log(at);
    CREATE INDEX commands_by_agent_created ON commands(agent_id, created_at);
    "#,
    // 4: browser sessions.
    r#"
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        session_hash TEXT NOT NULL UNIQUE,
        user_id TEXT NOT NULL,
        csrf_token TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX sessions_by_user ON sessions(user_id);
    "#,
];

/// Brings the database up to the newest schema, in one transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction().map_err(sql_error)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(sql_error)?;
    let current: Option<i64> = tx
        .query_row("SELECT max(version) FROM schema_version", [], |row| {
            row.get(0)
        })
        .map_err(sql_error)?;
    let current = usize::try_from(current.unwrap_or(0)).unwrap_or(0);
    if current > MIGRATIONS.len() {
        return Err(crate::StoreError::Backend(format!(
            "the database has schema version {current}, newer than this server knows ({}); upgrade spectra-server",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql).map_err(sql_error)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            params![index as i64 + 1],
        )
        .map_err(sql_error)?;
        tracing::info!(version = index + 1, "applied storage migration");
    }
    tx.commit().map_err(sql_error)
}
