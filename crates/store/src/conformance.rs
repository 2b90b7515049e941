//! The behaviour every storage backend must show, as async functions that
//! each take a fresh, empty store and assert one behaviour (they panic on
//! failure, like any test). A backend's tests call each one (or
//! [`run_all`]); the embedded store's are in `tests/conformance.rs`.
//!
//! Times are built around `Utc::now()` rounded down to the hour, minus a
//! few hours, so that a maintenance pass at the real "now" seals the data
//! and raw retention (7 days by default) does not delete it.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::{json, Value};
use spectra_protocol::{CommandResult, HostInfo, RawEnvelope};

use crate::{
    AgentState, ApiTokenRecord, AuditQuery, CommandStatus, EnrollmentTokenRecord, HistoryQuery,
    IngestOutcome, NewAgent, NewAuditEvent, NewCommand, Role, Sample, SessionRecord, Store,
    StoreError, UserRecord,
};

/// Runs every conformance check, each on a store from `make_store`.
pub async fn run_all<F, Fut>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Box<dyn Store>>,
{
    macro_rules! check {
        ($($name:ident),* $(,)?) => {$(
            let store = make_store().await;
            $name(store.as_ref()).await;
            store.close().await.expect("close");
        )*};
    }
    check!(
        agents_crud_and_credential_lookup,
        enrollment_tokens_are_consumed,
        users_and_api_tokens,
        settings_round_trip,
        latest_keeps_newest_per_type_and_entity,
        history_raw_returns_what_was_sent,
        history_with_step_averages_per_entity,
        duplicate_batch_changes_nothing,
        batch_belongs_to_the_sending_agent,
        unknown_type_is_stored_as_is,
        list_shaped_snapshots_are_returned,
        commands_are_claimed_once_and_completed_by_their_agent,
        commands_expire,
        audit_log_appends_and_filters,
        history_is_identical_across_maintenance,
        retention_deletes_old_data,
        delete_agent_purges_its_data,
    );
}

// ---------------------------------------------------------------- helpers

/// A whole hour a few hours ago: data there is sealable and not expired.
pub fn base_time() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(TimeDelta::hours(1))
        .expect("truncate")
        - TimeDelta::hours(3)
}

fn host(hostname: &str) -> HostInfo {
    HostInfo {
        hostname: hostname.to_owned(),
        os: "linux".into(),
        platform: "debian".into(),
        platform_ver: "12".into(),
        kernel: "6.1.0".into(),
        arch: "x86_64".into(),
        cpu_model: "Test CPU".into(),
        cpu_cores: 4,
        ram_total: 8_000_000_000,
        agent_version: "0.1.0".into(),
        boot_time: 1_700_000_000,
        ips: vec!["10.0.0.5".into()],
    }
}

fn new_agent(id: &str, hostname: &str, credential_hash: &str) -> NewAgent {
    NewAgent {
        id: id.to_owned(),
        host: host(hostname),
        labels: BTreeMap::from([("site".to_owned(), "lab".to_owned())]),
        credential_hash: credential_hash.to_owned(),
        state: AgentState::Active,
        local: false,
        created_at: DateTime::from_timestamp(1_750_000_000, 123_456_789).expect("time"),
    }
}

fn envelope(metric_type: &str, at: DateTime<Utc>, hostname: &str, data: Value) -> RawEnvelope {
    RawEnvelope {
        metric_type: metric_type.to_owned(),
        timestamp: at,
        hostname: hostname.to_owned(),
        data,
    }
}

/// A cpu payload whose values vary with `i` (floats, an int, an array).
fn cpu_data(i: i64) -> Value {
    let f = i as f64;
    json!({
        "usage": f * 0.5 + 0.25,
        "cores": [f, f * 2.0 + 0.1, 100.0 - f * 0.5],
        "iowait": 0.5,
        "steal": null,
        "load_1m": f * 0.01,
        "load_5m": 1.0,
        "load_15m": 2,
    })
}

fn disk_data(mountpoint: &str, device: &str, i: i64) -> Value {
    json!({
        "device": device,
        "mountpoint": mountpoint,
        "filesystem": "ext4",
        "disk_total": 1_000_000_000_000i64,
        "disk_used": 400_000_000_000i64 + i * 1000,
        "disk_used_pct": 40.0 + (i % 7) as f64 * 0.1,
        "inodes_total": 65536,
    })
}

fn memory_data(i: i64) -> Value {
    json!({
        "ram_total": 8_000_000_000i64,
        "ram_used": 2_000_000_000i64 + i,
        "ram_used_pct": 25.0 + (i % 3) as f64,
        "swap_total": 0,
        "swap_used": 0,
        "swap_pct": 0.0,
    })
}

fn query(
    agent_id: &str,
    metric_type: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step: Option<u64>,
) -> HistoryQuery {
    HistoryQuery {
        agent_id: agent_id.to_owned(),
        metric_type: metric_type.to_owned(),
        start,
        end,
        step: step.map(Duration::from_secs),
    }
}

async fn ingest_ok(store: &dyn Store, agent_id: &str, batch_id: &str, envelopes: Vec<RawEnvelope>) {
    let n = envelopes.len();
    let outcome = store
        .ingest(agent_id, batch_id, envelopes)
        .await
        .expect("ingest");
    assert_eq!(
        outcome,
        IngestOutcome::Stored { envelopes: n },
        "batch {batch_id}"
    );
}

/// What a raw history query must answer for these envelopes: sorted by
/// time, then by entity.
fn expected_samples(
    envelopes: &[RawEnvelope],
    metric_type: &str,
    entity_field: Option<&str>,
) -> Vec<Sample> {
    let mut samples: Vec<(DateTime<Utc>, String, Value)> = envelopes
        .iter()
        .filter(|e| e.metric_type == metric_type)
        .map(|e| {
            let entity = entity_field
                .and_then(|f| e.data.get(f))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            (e.timestamp, entity, e.data.clone())
        })
        .collect();
    samples.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    samples
        .into_iter()
        .map(|(timestamp, _, data)| Sample { timestamp, data })
        .collect()
}

/// Equality of two answers, reporting the first difference (not pages of
/// samples).
fn assert_samples_eq(actual: &[Sample], expected: &[Sample], what: &str) {
    for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a, e, "{what}: sample {index} differs");
    }
    assert_eq!(actual.len(), expected.len(), "{what}: sample count");
}

fn assert_close(actual: &Value, expected: f64, what: &str) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {actual} is not a number"));
    assert!(
        (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        "{what}: {actual} != {expected}"
    );
}

/// An hour of cpu, memory and two disks every 10 s, one batch per minute.
fn hour_of_batches(start: DateTime<Utc>, hostname: &str) -> Vec<(String, Vec<RawEnvelope>)> {
    (0..60)
        .map(|minute| {
            let mut batch = Vec::new();
            for tick in 0..6 {
                let i = minute * 6 + tick;
                let at = start + TimeDelta::seconds(i * 10);
                batch.push(envelope("cpu", at, hostname, cpu_data(i)));
                batch.push(envelope("memory", at, hostname, memory_data(i)));
                batch.push(envelope("disk", at, hostname, disk_data("/", "/dev/sda1", i)));
                batch.push(envelope("disk", at, hostname, disk_data("/boot", "/dev/sda2", i + 3)));
                if tick == 0 {
                    batch.push(envelope(
                        "process_list",
                        at,
                        hostname,
                        json!({"processes": [{"pid": 1, "name": "init", "cpu_percent": i as f64 * 0.1}]}),
                    ));
                }
            }
            (format!("batch-{minute}"), batch)
        })
        .collect()
}

// ---------------------------------------------------------------- checks

pub async fn agents_crud_and_credential_lookup(store: &dyn Store) {
    let created = store
        .create_agent(new_agent("a1", "web-01", "hash-1"))
        .await
        .expect("create");
    assert_eq!(created.id, "a1");
    assert_eq!(created.hostname, "web-01");
    assert_eq!(created.state, AgentState::Active);
    assert_eq!(created.last_seen, None);
    assert_eq!(
        store.get_agent("a1").await.expect("get"),
        Some(created.clone())
    );
    assert!(
        store
            .create_agent(new_agent("a1", "other", "hash-x"))
            .await
            .is_err(),
        "duplicate id"
    );
    store
        .create_agent(new_agent("a2", "web-02", "hash-2"))
        .await
        .expect("create");

    let ids: Vec<String> = store
        .list_agents()
        .await
        .expect("list")
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, ["a1", "a2"]);
    assert_eq!(
        store
            .agent_by_credential("hash-2")
            .await
            .expect("lookup")
            .map(|a| a.id),
        Some("a2".into())
    );
    assert_eq!(
        store.agent_by_credential("nope").await.expect("lookup"),
        None
    );

    store
        .set_agent_credential("a1", "hash-1b".into())
        .await
        .expect("rotate");
    assert_eq!(
        store.agent_by_credential("hash-1").await.expect("lookup"),
        None
    );
    assert_eq!(
        store
            .agent_by_credential("hash-1b")
            .await
            .expect("lookup")
            .map(|a| a.id),
        Some("a1".into())
    );

    store
        .set_agent_state("a1", AgentState::Revoked)
        .await
        .expect("state");
    let mut new_host = host("web-01-renamed");
    new_host.cpu_cores = 16;
    store
        .update_agent_host("a1", new_host.clone())
        .await
        .expect("host");
    let seen = DateTime::from_timestamp(1_760_000_000, 5).expect("time");
    store.touch_agent("a1", seen).await.expect("touch");
    store
        .touch_agent("a1", seen - TimeDelta::seconds(5))
        .await
        .expect("older touch");
    let agent = store.get_agent("a1").await.expect("get").expect("exists");
    assert_eq!(agent.state, AgentState::Revoked);
    assert_eq!(agent.host, new_host);
    assert_eq!(agent.hostname, "web-01-renamed");
    assert_eq!(agent.last_seen, Some(seen), "newest activity wins");
    assert_eq!(agent.labels.get("site").map(String::as_str), Some("lab"));

    assert_eq!(store.get_agent("missing").await.expect("get"), None);
    assert!(matches!(
        store.set_agent_state("missing", AgentState::Active).await,
        Err(StoreError::NotFound(_))
    ));
    let labels: BTreeMap<String, String> = [("site".to_owned(), "paris".to_owned())].into();
    store
        .set_agent_labels("a1", labels.clone())
        .await
        .expect("labels");
    assert_eq!(
        store
            .get_agent("a1")
            .await
            .expect("get")
            .expect("exists")
            .labels,
        labels
    );
    assert!(matches!(
        store.set_agent_labels("nope", labels).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn enrollment_tokens_are_consumed(store: &dyn Store) {
    let now = Utc::now();
    let token =
        |id: &str, uses: Option<u32>, expires_at: Option<DateTime<Utc>>| EnrollmentTokenRecord {
            id: id.to_owned(),
            token_hash: format!("hash-{id}"),
            uses_left: uses,
            expires_at,
            labels: BTreeMap::from([("env".to_owned(), "prod".to_owned())]),
            created_at: now,
        };
    store
        .create_enrollment_token(token("two", Some(2), None))
        .await
        .expect("create");
    store
        .create_enrollment_token(token("unlimited", None, Some(now + TimeDelta::hours(1))))
        .await
        .expect("create");
    store
        .create_enrollment_token(token("expired", Some(5), Some(now - TimeDelta::seconds(1))))
        .await
        .expect("create");
    assert_eq!(store.list_enrollment_tokens().await.expect("list").len(), 3);

    let first = store
        .consume_enrollment_token("hash-two", now)
        .await
        .expect("consume")
        .expect("valid");
    assert_eq!(first.uses_left, Some(1));
    assert_eq!(first.labels.get("env").map(String::as_str), Some("prod"));
    let second = store
        .consume_enrollment_token("hash-two", now)
        .await
        .expect("consume")
        .expect("valid");
    assert_eq!(second.uses_left, Some(0));
    assert_eq!(
        store
            .consume_enrollment_token("hash-two", now)
            .await
            .expect("consume"),
        None,
        "exhausted"
    );

    for _ in 0..3 {
        let unlimited = store
            .consume_enrollment_token("hash-unlimited", now)
            .await
            .expect("consume");
        assert_eq!(unlimited.map(|t| t.uses_left), Some(None));
    }
    assert_eq!(
        store
            .consume_enrollment_token("hash-unlimited", now + TimeDelta::hours(2))
            .await
            .expect("consume"),
        None,
        "expired later"
    );
    assert_eq!(
        store
            .consume_enrollment_token("hash-expired", now)
            .await
            .expect("consume"),
        None,
        "expired"
    );
    assert_eq!(
        store
            .consume_enrollment_token("hash-unknown", now)
            .await
            .expect("consume"),
        None
    );

    store
        .delete_enrollment_token("unlimited")
        .await
        .expect("delete");
    assert_eq!(
        store
            .consume_enrollment_token("hash-unlimited", now)
            .await
            .expect("consume"),
        None,
        "deleted"
    );
    assert_eq!(store.list_enrollment_tokens().await.expect("list").len(), 2);
}

pub async fn users_and_api_tokens(store: &dyn Store) {
    let created_at = DateTime::from_timestamp(1_750_000_000, 42).expect("time");
    let user = UserRecord {
        id: "u1".into(),
        username: "admin".into(),
        password_hash: "$argon2id$v=19$stub".into(),
        role: Role::Admin,
        created_at,
    };
    store.create_user(user.clone()).await.expect("create");
    assert_eq!(
        store.user_by_name("admin").await.expect("by name"),
        Some(user.clone())
    );
    assert_eq!(store.get_user("u1").await.expect("get"), Some(user.clone()));
    assert_eq!(store.user_by_name("nobody").await.expect("by name"), None);
    let duplicate = UserRecord {
        id: "u2".into(),
        ..user.clone()
    };
    assert!(
        store.create_user(duplicate).await.is_err(),
        "usernames are unique"
    );
    let viewer = UserRecord {
        id: "u3".into(),
        username: "eve".into(),
        role: Role::Viewer,
        ..user.clone()
    };
    store.create_user(viewer.clone()).await.expect("create");
    assert_eq!(store.list_users().await.expect("list"), vec![user, viewer]);

    let token = ApiTokenRecord {
        id: "t1".into(),
        user_id: "u1".into(),
        name: "ci".into(),
        token_hash: "token-hash".into(),
        created_at,
        last_used: None,
    };
    store
        .create_api_token(token.clone())
        .await
        .expect("create token");
    assert_eq!(
        store.api_token_by_hash("token-hash").await.expect("lookup"),
        Some(token)
    );
    assert_eq!(
        store.api_token_by_hash("other").await.expect("lookup"),
        None
    );

    // Tokens per user, touched, deleted.
    let eve_token = ApiTokenRecord {
        id: "t2".into(),
        user_id: "u3".into(),
        name: "eve's".into(),
        token_hash: "eve-hash".into(),
        created_at: created_at + TimeDelta::seconds(1),
        last_used: None,
    };
    store.create_api_token(eve_token).await.expect("create");
    let ids = |v: Vec<ApiTokenRecord>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_api_tokens(None).await.expect("all")),
        ["t1", "t2"]
    );
    assert_eq!(
        ids(store.list_api_tokens(Some("u3")).await.expect("eve's")),
        ["t2"]
    );
    store
        .touch_api_token("t1", created_at + TimeDelta::hours(1))
        .await
        .expect("touch");
    assert_eq!(
        store
            .api_token_by_hash("token-hash")
            .await
            .expect("lookup")
            .expect("exists")
            .last_used,
        Some(created_at + TimeDelta::hours(1))
    );
    store.delete_api_token("t1").await.expect("delete");
    assert_eq!(
        store.api_token_by_hash("token-hash").await.expect("lookup"),
        None
    );
    assert!(matches!(
        store.delete_api_token("t1").await,
        Err(StoreError::NotFound(_))
    ));

    // Role and password changes; `None` leaves a field alone.
    store
        .update_user("u3", Some(Role::Operator), None)
        .await
        .expect("role");
    let eve = store.get_user("u3").await.expect("get").expect("exists");
    assert_eq!(
        (eve.role, eve.password_hash.as_str()),
        (Role::Operator, "$argon2id$v=19$stub")
    );
    store
        .update_user("u3", None, Some("$argon2id$new".into()))
        .await
        .expect("password");
    let eve = store.get_user("u3").await.expect("get").expect("exists");
    assert_eq!(
        (eve.role, eve.password_hash.as_str()),
        (Role::Operator, "$argon2id$new")
    );
    assert!(matches!(
        store.update_user("nope", Some(Role::Admin), None).await,
        Err(StoreError::NotFound(_))
    ));

    // Sessions: found by hash, touched, expired by age or idleness.
    let session = |id: &str, hash: &str, last_seen: DateTime<Utc>| SessionRecord {
        id: id.into(),
        session_hash: hash.into(),
        user_id: "u3".into(),
        csrf_token: format!("csrf-{id}"),
        created_at,
        last_seen,
        expires_at: created_at + TimeDelta::hours(12),
    };
    store
        .create_session(session("s1", "h1", created_at))
        .await
        .expect("session");
    store
        .create_session(session("s2", "h2", created_at + TimeDelta::minutes(50)))
        .await
        .expect("session");
    assert_eq!(
        store.session_by_hash("h1").await.expect("lookup"),
        Some(session("s1", "h1", created_at))
    );
    store
        .touch_session("s1", created_at + TimeDelta::minutes(55))
        .await
        .expect("touch");
    // Idle since before 00:52: s2 (00:50) goes, s1 (touched at 00:55) stays.
    let removed = store
        .delete_expired_sessions(
            created_at + TimeDelta::hours(1),
            created_at + TimeDelta::minutes(52),
        )
        .await
        .expect("expire");
    assert_eq!(removed, 1);
    assert!(store.session_by_hash("h2").await.expect("lookup").is_none());
    assert_eq!(
        store
            .delete_expired_sessions(created_at + TimeDelta::hours(12), created_at)
            .await
            .expect("expire"),
        1,
        "past expires_at"
    );
    store
        .create_session(session("s3", "h3", created_at))
        .await
        .expect("session");
    store.delete_session("s3").await.expect("logout");
    assert!(store.session_by_hash("h3").await.expect("lookup").is_none());

    // Deleting a user takes their tokens and sessions along.
    store
        .create_session(session("s4", "h4", created_at))
        .await
        .expect("session");
    store.delete_user("u3").await.expect("delete user");
    assert_eq!(store.get_user("u3").await.expect("get"), None);
    assert!(store
        .list_api_tokens(Some("u3"))
        .await
        .expect("list")
        .is_empty());
    assert!(store.session_by_hash("h4").await.expect("lookup").is_none());
    assert!(matches!(
        store.delete_user("u3").await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn settings_round_trip(store: &dyn Store) {
    assert_eq!(
        store.get_setting("local_agent_id").await.expect("get"),
        None
    );
    store
        .set_setting("local_agent_id", "abc")
        .await
        .expect("set");
    assert_eq!(
        store
            .get_setting("local_agent_id")
            .await
            .expect("get")
            .as_deref(),
        Some("abc")
    );
    store
        .set_setting("local_agent_id", "def")
        .await
        .expect("overwrite");
    assert_eq!(
        store
            .get_setting("local_agent_id")
            .await
            .expect("get")
            .as_deref(),
        Some("def")
    );
}

pub async fn latest_keeps_newest_per_type_and_entity(store: &dyn Store) {
    let t0 = base_time();
    let t1 = t0 + TimeDelta::seconds(10);
    let newest_cpu = envelope("cpu", t1, "h", cpu_data(2));
    ingest_ok(
        store,
        "a1",
        "b1",
        vec![
            envelope("cpu", t0, "h", cpu_data(1)),
            newest_cpu.clone(),
            envelope("disk", t0, "h", disk_data("/", "/dev/sda1", 1)),
            envelope("disk", t0, "h", disk_data("/boot", "/dev/sda2", 1)),
        ],
    )
    .await;
    // An older sample arriving later does not replace a newer one.
    ingest_ok(
        store,
        "a1",
        "b2",
        vec![envelope(
            "cpu",
            t0 - TimeDelta::seconds(10),
            "h",
            cpu_data(0),
        )],
    )
    .await;
    let newest_root = envelope("disk", t1, "h", disk_data("/", "/dev/sda1", 9));
    ingest_ok(store, "a1", "b3", vec![newest_root.clone()]).await;

    let latest = store.latest("a1").await.expect("latest");
    assert_eq!(latest.len(), 3, "cpu + two disks: {latest:?}");
    assert!(latest.contains(&newest_cpu));
    assert!(latest.contains(&newest_root));
    assert!(latest.iter().any(|e| e.data["mountpoint"] == "/boot"));
    assert!(store.latest("other").await.expect("latest").is_empty());
    // Restricted to some types: every entity of those, nothing else.
    let disks = store
        .latest_of_types("a1", &["disk"])
        .await
        .expect("latest of types");
    assert_eq!(disks.len(), 2, "{disks:?}");
    assert!(disks.contains(&newest_root));
    let cpu = store
        .latest_of_types("a1", &["nope", "cpu"])
        .await
        .expect("latest of types");
    assert_eq!(cpu, vec![newest_cpu]);
    assert!(store
        .latest_of_types("other", &["cpu"])
        .await
        .expect("latest of types")
        .is_empty());
}

pub async fn history_raw_returns_what_was_sent(store: &dyn Store) {
    let t0 = base_time();
    let mut sent = Vec::new();
    for i in 0..12 {
        let at = t0 + TimeDelta::seconds(i * 10);
        sent.push(envelope("cpu", at, "h", cpu_data(i)));
        sent.push(envelope("disk", at, "h", disk_data("/", "/dev/sda1", i)));
        sent.push(envelope(
            "disk",
            at,
            "h",
            disk_data("/data", "/dev/sdb1", i),
        ));
        sent.push(envelope("memory", at, "h", memory_data(i)));
    }
    // Sub-second timestamps survive too.
    sent.push(envelope(
        "cpu",
        t0 + TimeDelta::milliseconds(125_250),
        "h",
        cpu_data(99),
    ));
    ingest_ok(store, "a1", "b1", sent[..20].to_vec()).await;
    ingest_ok(store, "a1", "b2", sent[20..].to_vec()).await;

    let end = t0 + TimeDelta::minutes(5);
    for (metric, entity) in [
        ("cpu", None),
        ("disk", Some("mountpoint")),
        ("memory", None),
    ] {
        let history = store
            .history(query("a1", metric, t0, end, None))
            .await
            .expect("history");
        assert_samples_eq(&history, &expected_samples(&sent, metric, entity), metric);
    }
    let cpu = store
        .history(query("a1", "cpu", t0, end, None))
        .await
        .expect("history");
    assert_eq!(
        cpu[1].data["cores"],
        json!([1.0, 2.1, 99.5]),
        "arrays keep their order and type"
    );
    assert!(cpu[1].data["load_15m"].is_i64(), "integers stay integers");
    assert!(cpu[0].data["steal"].is_null());

    let window = store
        .history(query(
            "a1",
            "cpu",
            t0 + TimeDelta::seconds(20),
            t0 + TimeDelta::seconds(40),
            None,
        ))
        .await
        .expect("history");
    assert_eq!(window.len(), 3, "both ends are inclusive");
    assert!(store
        .history(query("a1", "wifi", t0, end, None))
        .await
        .expect("history")
        .is_empty());
}

pub async fn history_with_step_averages_per_entity(store: &dyn Store) {
    let t0 = base_time();
    let mut sent = Vec::new();
    for i in 0..12 {
        let at = t0 + TimeDelta::seconds(i * 10);
        sent.push(envelope("cpu", at, "h", cpu_data(i)));
        sent.push(envelope("disk", at, "h", disk_data("/", "/dev/sda1", i)));
        sent.push(envelope(
            "disk",
            at,
            "h",
            disk_data("/data", "/dev/sdb1", i + 3),
        ));
    }
    ingest_ok(store, "a1", "b1", sent).await;
    let end = t0 + TimeDelta::seconds(119);

    let cpu = store
        .history(query("a1", "cpu", t0, end, Some(60)))
        .await
        .expect("history");
    assert_eq!(cpu.len(), 2);
    assert_eq!(cpu[0].timestamp, t0);
    assert_eq!(cpu[1].timestamp, t0 + TimeDelta::seconds(60));
    // usage = i * 0.5 + 0.25 over i = 0..6 and 6..12.
    assert_close(
        &cpu[0].data["usage"],
        2.5 * 0.5 + 0.25,
        "usage, first minute",
    );
    assert_close(
        &cpu[1].data["usage"],
        8.5 * 0.5 + 0.25,
        "usage, second minute",
    );
    assert_close(
        &cpu[0].data["cores"][1],
        2.5 * 2.0 + 0.1,
        "per-core average",
    );

    let disks = store
        .history(query("a1", "disk", t0, end, Some(60)))
        .await
        .expect("history");
    assert_eq!(disks.len(), 4, "two entities x two steps");
    let root: Vec<&Sample> = disks
        .iter()
        .filter(|s| s.data["mountpoint"] == "/")
        .collect();
    let data: Vec<&Sample> = disks
        .iter()
        .filter(|s| s.data["mountpoint"] == "/data")
        .collect();
    assert_eq!((root.len(), data.len()), (2, 2));
    let pct = |i: i64| 40.0 + (i % 7) as f64 * 0.1;
    assert_close(
        &root[0].data["disk_used_pct"],
        (0..6).map(pct).sum::<f64>() / 6.0,
        "/ average",
    );
    assert_close(
        &data[0].data["disk_used_pct"],
        (3..9).map(pct).sum::<f64>() / 6.0,
        "/data average",
    );
    assert_eq!(
        root[0].data["device"], "/dev/sda1",
        "text fields come along"
    );

    let whole = store
        .history(query("a1", "cpu", t0, end, Some(3600)))
        .await
        .expect("history");
    assert_eq!(whole.len(), 1);
    assert_close(&whole[0].data["usage"], 5.5 * 0.5 + 0.25, "hourly");
}

pub async fn duplicate_batch_changes_nothing(store: &dyn Store) {
    let t0 = base_time();
    let batch = vec![envelope("cpu", t0, "h", cpu_data(1))];
    ingest_ok(store, "a1", "same", batch.clone()).await;
    let other = vec![envelope(
        "cpu",
        t0 + TimeDelta::seconds(10),
        "h",
        cpu_data(2),
    )];
    assert_eq!(
        store.ingest("a1", "same", other).await.expect("ingest"),
        IngestOutcome::Duplicate
    );
    assert_eq!(
        store
            .ingest("a1", "same", batch.clone())
            .await
            .expect("ingest"),
        IngestOutcome::Duplicate
    );
    let history = store
        .history(query("a1", "cpu", t0, t0 + TimeDelta::minutes(1), None))
        .await
        .expect("history");
    assert_eq!(
        history.len(),
        1,
        "nothing doubled, nothing of the duplicate stored"
    );
    assert_eq!(store.latest("a1").await.expect("latest"), batch);
    // The same batch id from another agent is a different batch.
    ingest_ok(store, "a2", "same", batch).await;
}

pub async fn batch_belongs_to_the_sending_agent(store: &dyn Store) {
    let t0 = base_time();
    // Agent a1 sends envelopes claiming to be web-02 (agent a2's host).
    ingest_ok(
        store,
        "a1",
        "b1",
        vec![envelope("cpu", t0, "web-02", cpu_data(1))],
    )
    .await;
    let range = query("a1", "cpu", t0, t0 + TimeDelta::minutes(1), None);
    assert_eq!(
        store.history(range.clone()).await.expect("history").len(),
        1
    );
    let theirs = HistoryQuery {
        agent_id: "a2".into(),
        ..range
    };
    assert!(store.history(theirs).await.expect("history").is_empty());
    assert!(store.latest("a2").await.expect("latest").is_empty());
}

pub async fn unknown_type_is_stored_as_is(store: &dyn Store) {
    let t0 = base_time();
    let sent = vec![
        envelope(
            "future_gadget",
            t0,
            "h",
            json!({"level": 3, "label": "x", "nested": {"v": [1, "a"]}}),
        ),
        envelope(
            "future_gadget",
            t0 + TimeDelta::seconds(10),
            "h",
            json!(["not", "an", "object"]),
        ),
        envelope("future_gadget", t0 + TimeDelta::seconds(20), "h", json!(42)),
        // A known type whose payload cannot be split exactly is kept whole too.
        envelope("memory", t0, "h", json!({"ram_total": u64::MAX})),
        envelope(
            "collector_status",
            t0,
            "h",
            json!({"collector": "wifi", "status": "unsupported"}),
        ),
    ];
    ingest_ok(store, "a1", "b1", sent.clone()).await;
    let end = t0 + TimeDelta::minutes(1);
    for metric in ["future_gadget", "memory", "collector_status"] {
        let history = store
            .history(query("a1", metric, t0, end, None))
            .await
            .expect("history");
        assert_samples_eq(&history, &expected_samples(&sent, metric, None), metric);
    }
    assert_eq!(store.latest("a1").await.expect("latest").len(), 3);
}

pub async fn list_shaped_snapshots_are_returned(store: &dyn Store) {
    let t0 = base_time();
    let processes = |pid: i64| {
        json!({"processes": [
            {"pid": pid, "name": "nginx", "cmdline": "nginx -g daemon off;", "cpu_percent": 12.5, "status": "running"},
            {"pid": 2, "name": "sshd", "cpu_percent": 0.0, "status": "waiting"},
        ]})
    };
    let sent: Vec<RawEnvelope> = (0..3)
        .map(|i| {
            envelope(
                "process_list",
                t0 + TimeDelta::seconds(15 * i),
                "h",
                processes(100 + i),
            )
        })
        .collect();
    ingest_ok(store, "a1", "b1", sent.clone()).await;
    let end = t0 + TimeDelta::minutes(1);
    let history = store
        .history(query("a1", "process_list", t0, end, None))
        .await
        .expect("history");
    assert_samples_eq(
        &history,
        &expected_samples(&sent, "process_list", None),
        "process_list",
    );
    // "Which process was it at t0 + 20 s?": the snapshot at t0 + 15 s.
    let at = store
        .history(query(
            "a1",
            "process_list",
            t0 + TimeDelta::seconds(15),
            t0 + TimeDelta::seconds(20),
            None,
        ))
        .await
        .expect("history");
    assert_eq!(at.len(), 1);
    assert_eq!(at[0].data["processes"][0]["pid"], 101);
    let stepped = store
        .history(query("a1", "process_list", t0, end, Some(60)))
        .await
        .expect("history");
    assert_eq!(stepped.len(), 1, "the last snapshot per step");
    assert_eq!(stepped[0].data["processes"][0]["pid"], 102);
}

pub async fn commands_are_claimed_once_and_completed_by_their_agent(store: &dyn Store) {
    let now = Utc::now();
    let command = |id: &str, offset: i64| NewCommand {
        id: id.to_owned(),
        agent_id: "a1".into(),
        command_type: "DISK_USAGE".into(),
        payload: json!({"path": "/", "top_n": 10}),
        requested_by: "admin".into(),
        created_at: now + TimeDelta::milliseconds(offset),
        expires_at: now + TimeDelta::minutes(5),
    };
    let queued = store
        .enqueue_command(command("c1", 0))
        .await
        .expect("enqueue");
    assert_eq!(queued.status, CommandStatus::Queued);
    assert!(
        store.enqueue_command(command("c1", 0)).await.is_err(),
        "ids are unique"
    );
    store
        .enqueue_command(command("c2", 1))
        .await
        .expect("enqueue");

    assert_eq!(
        store.claim_command("a2", now).await.expect("claim"),
        None,
        "not a2's"
    );
    let first = store
        .claim_command("a1", now)
        .await
        .expect("claim")
        .expect("c1");
    assert_eq!(
        (first.id.as_str(), first.status),
        ("c1", CommandStatus::Delivered)
    );
    assert_eq!(first.delivered_at, Some(now));
    assert_eq!(first.payload, json!({"path": "/", "top_n": 10}));
    let second = store
        .claim_command("a1", now)
        .await
        .expect("claim")
        .expect("c2");
    assert_eq!(second.id, "c2", "oldest first, each once");
    assert_eq!(store.claim_command("a1", now).await.expect("claim"), None);

    let answer = CommandResult {
        id: "c1".into(),
        command_type: "DISK_USAGE".into(),
        payload: json!({"root": "/", "top_dirs": []}),
        error: None,
    };
    assert!(matches!(
        store.complete_command("a2", answer.clone(), now).await,
        Err(StoreError::NotFound(_))
    ));
    let done = store
        .complete_command("a1", answer.clone(), now)
        .await
        .expect("complete");
    assert_eq!(done.status, CommandStatus::Done);
    assert_eq!(done.result, Some(json!({"root": "/", "top_dirs": []})));
    assert_eq!(done.completed_at, Some(now));
    assert!(
        store.complete_command("a1", answer, now).await.is_err(),
        "a final command stays final"
    );

    let failure = CommandResult {
        id: "c2".into(),
        command_type: "DISK_USAGE".into(),
        payload: Value::Null,
        error: Some("permission denied".into()),
    };
    let failed = store
        .complete_command("a1", failure, now)
        .await
        .expect("complete");
    assert_eq!(
        (failed.status, failed.error.as_deref()),
        (CommandStatus::Failed, Some("permission denied"))
    );
    assert_eq!(store.get_command("c2").await.expect("get"), Some(failed));
    assert_eq!(store.get_command("nope").await.expect("get"), None);
    let listed: Vec<String> = store
        .list_commands("a1", 10)
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, ["c2", "c1"], "newest first");
    assert_eq!(store.list_commands("a1", 1).await.expect("list").len(), 1);
}

pub async fn commands_expire(store: &dyn Store) {
    let now = Utc::now();
    let command = |id: &str, expires_in: i64| NewCommand {
        id: id.to_owned(),
        agent_id: "a1".into(),
        command_type: "LIST_MOUNTS".into(),
        payload: json!({}),
        requested_by: "admin".into(),
        created_at: now,
        expires_at: now + TimeDelta::seconds(expires_in),
    };
    store
        .enqueue_command(command("old", 10))
        .await
        .expect("enqueue");
    // Past its expiry, a command is not handed out even before expire_commands runs.
    assert_eq!(
        store
            .claim_command("a1", now + TimeDelta::seconds(11))
            .await
            .expect("claim"),
        None
    );
    let expired = store
        .expire_commands(now + TimeDelta::seconds(11), Duration::from_secs(60))
        .await
        .expect("expire");
    assert_eq!(
        expired
            .iter()
            .map(|c| (c.id.as_str(), c.status))
            .collect::<Vec<_>>(),
        [("old", CommandStatus::Expired)],
        "returns what it expired, as it is now"
    );
    assert_eq!(expired[0].requested_by, "admin");
    assert_eq!(
        store
            .get_command("old")
            .await
            .expect("get")
            .map(|c| c.status),
        Some(CommandStatus::Expired)
    );

    store
        .enqueue_command(command("slow", 600))
        .await
        .expect("enqueue");
    store
        .claim_command("a1", now)
        .await
        .expect("claim")
        .expect("delivered");
    let timeout = Duration::from_secs(120);
    assert_eq!(
        store.count_open_commands("a1").await.expect("count open"),
        1,
        "the delivered one is open; the expired one is not"
    );
    assert!(store
        .expire_commands(now + TimeDelta::seconds(60), timeout)
        .await
        .expect("expire")
        .is_empty());
    let failed = store
        .expire_commands(now + TimeDelta::seconds(121), timeout)
        .await
        .expect("expire");
    assert_eq!(
        failed
            .iter()
            .map(|c| (c.id.as_str(), c.status))
            .collect::<Vec<_>>(),
        [("slow", CommandStatus::Failed)]
    );
    assert_eq!(store.count_open_commands("a1").await.expect("count"), 0);
    assert_eq!(
        store
            .count_commands_since("a1", now)
            .await
            .expect("count since"),
        2
    );
    assert_eq!(
        store
            .count_commands_since("a1", now + TimeDelta::seconds(1))
            .await
            .expect("count since"),
        0
    );
    let slow = store
        .get_command("slow")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(slow.status, CommandStatus::Failed);
    assert!(slow.error.is_some(), "says why it failed");
}

pub async fn audit_log_appends_and_filters(store: &dyn Store) {
    let t0 = Utc::now();
    let event = |i: i64, actor: &str, action: &str, agent: Option<&str>| NewAuditEvent {
        at: t0 + TimeDelta::seconds(i),
        actor: actor.to_owned(),
        action: action.to_owned(),
        agent_id: agent.map(str::to_owned),
        target: Some(format!("t{i}")),
        outcome: "ok".into(),
        source_ip: Some("127.0.0.1".into()),
        detail: json!({"i": i}),
    };
    let mut ids = Vec::new();
    for (i, (actor, action, agent)) in [
        ("user:admin", "command.queued", Some("a1")),
        ("user:admin", "command.done", Some("a1")),
        ("user:ops", "command.queued", Some("a2")),
        ("user:ops", "login.failed", None),
        ("user:admin", "commandeer", None),
    ]
    .into_iter()
    .enumerate()
    {
        ids.push(
            store
                .append_audit(event(i as i64, actor, action, agent))
                .await
                .expect("append"),
        );
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let all = store
        .list_audit(AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].action, "commandeer", "newest first");
    assert_eq!(all[4].detail, json!({"i": 0}));
    assert_eq!(all[4].at, t0, "time round-trips");
    assert_eq!(all[4].source_ip.as_deref(), Some("127.0.0.1"));

    let actions = |q: AuditQuery| async move {
        store
            .list_audit(q)
            .await
            .expect("list")
            .into_iter()
            .map(|e| e.target.unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let by_agent = actions(AuditQuery {
        agent_id: Some("a1".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(by_agent, ["t1", "t0"]);
    let by_prefix = actions(AuditQuery {
        action: Some("command".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(
        by_prefix,
        ["t2", "t1", "t0"],
        "a dotted prefix, not `commandeer`"
    );
    let exact = actions(AuditQuery {
        action: Some("login.failed".into()),
        actor: Some("user:ops".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(exact, ["t3"]);
    let page = actions(AuditQuery {
        before_id: Some(ids[2]),
        limit: 1,
        ..Default::default()
    })
    .await;
    assert_eq!(page, ["t1"]);
    let recent = actions(AuditQuery {
        since: Some(t0 + TimeDelta::seconds(3)),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(recent, ["t4", "t3"]);
    // A LIKE wildcard in the filter is literal.
    let none = actions(AuditQuery {
        action: Some("comm_nd".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert!(none.is_empty());
}

pub async fn history_is_identical_across_maintenance(store: &dyn Store) {
    let t0 = base_time() - TimeDelta::hours(1);
    let batches = hour_of_batches(t0, "h");
    let sent: Vec<RawEnvelope> = batches.iter().flat_map(|(_, b)| b.clone()).collect();
    let (first, rest) = batches.split_at(40);
    for (id, batch) in first {
        ingest_ok(store, "a1", id, batch.clone()).await;
    }
    // Seal the first 40 minutes, then add the rest: reads merge both.
    store.maintenance(Utc::now()).await.expect("maintenance");
    for (id, batch) in rest {
        ingest_ok(store, "a1", id, batch.clone()).await;
    }
    let end = t0 + TimeDelta::hours(1);
    let kinds = [
        ("cpu", None),
        ("memory", None),
        ("disk", Some("mountpoint")),
        ("process_list", None),
    ];
    let mut before = Vec::new();
    for (metric, entity) in kinds {
        let raw = store
            .history(query("a1", metric, t0, end, None))
            .await
            .expect("history");
        assert_samples_eq(
            &raw,
            &expected_samples(&sent, metric, entity),
            &format!("{metric} half sealed"),
        );
        let minutes = store
            .history(query("a1", metric, t0, end, Some(300)))
            .await
            .expect("history");
        let hours = store
            .history(query("a1", metric, t0, end, Some(3600)))
            .await
            .expect("history");
        before.push((minutes, hours));
    }
    store.maintenance(Utc::now()).await.expect("maintenance");
    for ((metric, entity), (minutes_before, hours_before)) in kinds.into_iter().zip(before) {
        let raw = store
            .history(query("a1", metric, t0, end, None))
            .await
            .expect("history");
        assert_samples_eq(
            &raw,
            &expected_samples(&sent, metric, entity),
            &format!("{metric} sealed"),
        );
        for (step, earlier) in [(300, minutes_before), (3600, hours_before)] {
            let now = store
                .history(query("a1", metric, t0, end, Some(step)))
                .await
                .expect("history");
            assert_eq!(now.len(), earlier.len(), "{metric} step {step}");
            for (a, b) in now.iter().zip(&earlier) {
                assert_eq!(a.timestamp, b.timestamp);
                assert_json_close(
                    &a.data,
                    &b.data,
                    &format!("{metric} step {step} at {}", a.timestamp),
                );
            }
        }
    }
    // Rollups agree with averages computed from what was sent.
    let five = store
        .history(query("a1", "cpu", t0, end, Some(300)))
        .await
        .expect("history");
    assert_eq!(five.len(), 12);
    let usage = |i: i64| i as f64 * 0.5 + 0.25;
    assert_close(
        &five[3].data["usage"],
        (90..120).map(usage).sum::<f64>() / 30.0,
        "5-minute average",
    );
}

fn assert_json_close(a: &Value, b: &Value, what: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                "{what}: {x} vs {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{what}");
            for (x, y) in x.iter().zip(y) {
                assert_json_close(x, y, what);
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys = |m: &serde_json::Map<String, Value>| {
                m.keys().cloned().collect::<std::collections::BTreeSet<_>>()
            };
            assert_eq!(keys(x), keys(y), "{what}");
            for (key, x) in x {
                assert_json_close(x, &y[key], what);
            }
        }
        _ => assert_eq!(a, b, "{what}"),
    }
}

pub async fn retention_deletes_old_data(store: &dyn Store) {
    let t0 = base_time() - TimeDelta::days(10);
    let batches = hour_of_batches(t0, "h");
    for (id, batch) in &batches {
        ingest_ok(store, "a1", id, batch.clone()).await;
    }
    let end = t0 + TimeDelta::hours(1);
    store.maintenance(Utc::now()).await.expect("maintenance");
    assert!(
        store
            .history(query("a1", "cpu", t0, end, None))
            .await
            .expect("history")
            .is_empty(),
        "raw samples older than 7 days are gone"
    );
    assert!(store
        .history(query("a1", "process_list", t0, end, None))
        .await
        .expect("history")
        .is_empty());
    // The 1-minute and 1-hour tiers keep them longer.
    let hourly = store
        .history(query("a1", "cpu", t0, end, Some(3600)))
        .await
        .expect("history");
    assert_eq!(hourly.len(), 1);
    assert_close(
        &hourly[0].data["usage"],
        179.5 * 0.5 + 0.25,
        "hourly average survives",
    );
    let minutes = store
        .history(query("a1", "cpu", t0, end, Some(60)))
        .await
        .expect("history");
    assert_eq!(minutes.len(), 60);

    // Past the 1-minute tier's 90 days only the 1-hour tier is left.
    store
        .maintenance(Utc::now() + TimeDelta::days(85))
        .await
        .expect("maintenance");
    assert!(store
        .history(query("a1", "cpu", t0, end, Some(60)))
        .await
        .expect("history")
        .is_empty());
    assert_eq!(
        store
            .history(query("a1", "cpu", t0, end, Some(3600)))
            .await
            .expect("history")
            .len(),
        1
    );
}

pub async fn delete_agent_purges_its_data(store: &dyn Store) {
    let t0 = base_time() - TimeDelta::hours(1);
    store
        .create_agent(new_agent("a1", "web-01", "hash-1"))
        .await
        .expect("create");
    store
        .create_agent(new_agent("a2", "web-02", "hash-2"))
        .await
        .expect("create");
    let batches = hour_of_batches(t0, "h");
    for (id, batch) in &batches[..30] {
        ingest_ok(store, "a1", id, batch.clone()).await;
        ingest_ok(store, "a2", id, batch.clone()).await;
    }
    store.maintenance(Utc::now()).await.expect("maintenance");
    for (id, batch) in &batches[30..32] {
        ingest_ok(store, "a1", id, batch.clone()).await;
    }
    let now = Utc::now();
    store
        .enqueue_command(NewCommand {
            id: "c1".into(),
            agent_id: "a1".into(),
            command_type: "LIST_MOUNTS".into(),
            payload: json!({}),
            requested_by: "admin".into(),
            created_at: now,
            expires_at: now + TimeDelta::minutes(5),
        })
        .await
        .expect("enqueue");

    store.delete_agent("a1").await.expect("delete");
    assert_eq!(store.get_agent("a1").await.expect("get"), None);
    assert_eq!(
        store.agent_by_credential("hash-1").await.expect("lookup"),
        None
    );
    assert!(store.latest("a1").await.expect("latest").is_empty());
    assert_eq!(store.claim_command("a1", now).await.expect("claim"), None);
    let end = t0 + TimeDelta::hours(1);
    for metric in ["cpu", "disk", "process_list"] {
        assert!(
            store
                .history(query("a1", metric, t0, end, None))
                .await
                .expect("history")
                .is_empty(),
            "{metric}"
        );
        assert!(store
            .history(query("a1", metric, t0, end, Some(3600)))
            .await
            .expect("history")
            .is_empty());
    }
    // A new agent with the same id starts empty; the other agent is untouched.
    store
        .create_agent(new_agent("a1", "web-01", "hash-3"))
        .await
        .expect("re-create");
    assert!(store
        .history(query("a1", "cpu", t0, end, None))
        .await
        .expect("history")
        .is_empty());
    assert_eq!(
        store
            .history(query("a2", "cpu", t0, end, None))
            .await
            .expect("history")
            .len(),
        180
    );
    ingest_ok(store, "a1", "batch-0", batches[0].1.clone()).await;
}
