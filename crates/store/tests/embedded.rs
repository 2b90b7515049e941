//! Embedded-store behaviour beyond the shared conformance suite:
//! durability across an unclean stop, state rebuilt at open, sealing.

use chrono::{DurationRound, TimeDelta, Utc};
use serde_json::json;
use spectra_protocol::RawEnvelope;
use spectra_store::{EmbeddedConfig, EmbeddedStore, HistoryQuery, IngestOutcome, Store};

fn config(dir: &tempfile::TempDir) -> EmbeddedConfig {
    let mut config = EmbeddedConfig::new(dir.path());
    config.background_maintenance = false;
    config
}

fn cpu(at: chrono::DateTime<Utc>, usage: f64) -> RawEnvelope {
    RawEnvelope {
        metric_type: "cpu".into(),
        timestamp: at,
        hostname: "h".into(),
        data: json!({"usage": usage, "cores": [usage, 1.5]}),
    }
}

fn range(start: chrono::DateTime<Utc>) -> HistoryQuery {
    HistoryQuery {
        agent_id: "a1".into(),
        metric_type: "cpu".into(),
        start,
        end: start + TimeDelta::hours(1),
        step: None,
    }
}

#[tokio::test]
async fn acknowledged_batches_survive_a_drop_without_close() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::hours(2);
    let sent = vec![cpu(t0, 1.25), cpu(t0 + TimeDelta::seconds(10), 2.5)];
    {
        let store = EmbeddedStore::open(config(&dir)).unwrap();
        let outcome = store.ingest("a1", "b1", sent.clone()).await.unwrap();
        assert_eq!(outcome, IngestOutcome::Stored { envelopes: 2 });
        // Dropped without close(), as a killed process would be.
    }
    let store = EmbeddedStore::open(config(&dir)).unwrap();
    let history = store.history(range(t0)).await.unwrap();
    assert_eq!(history.len(), 2, "replayed from the batch log");
    assert_eq!(history[1].data, sent[1].data);
    assert_eq!(store.latest("a1").await.unwrap(), vec![sent[1].clone()]);
    assert_eq!(
        store.ingest("a1", "b1", sent).await.unwrap(),
        IngestOutcome::Duplicate,
        "dedupe survives too"
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn sealed_data_and_latest_state_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::hours(2);
    let sent: Vec<RawEnvelope> = (0..30)
        .map(|i| cpu(t0 + TimeDelta::seconds(i * 10), i as f64 * 0.5))
        .collect();
    {
        let store = EmbeddedStore::open(config(&dir)).unwrap();
        store.ingest("a1", "b1", sent.clone()).await.unwrap();
        let report = store.maintenance(Utc::now()).await.unwrap();
        assert_eq!(report.sealed_batches, 1);
        assert_eq!(report.chunks_written, 9, "3 series x (raw, minute, hour)");
        store.close().await.unwrap();
        assert!(
            store.ingest("a1", "b2", sent.clone()).await.is_err(),
            "closed stores refuse work"
        );
    }
    let store = EmbeddedStore::open(config(&dir)).unwrap();
    let history = store.history(range(t0)).await.unwrap();
    assert_eq!(history.len(), 30);
    assert!(history
        .iter()
        .zip(&sent)
        .all(|(s, e)| s.data == e.data && s.timestamp == e.timestamp));
    assert_eq!(store.latest("a1").await.unwrap(), vec![sent[29].clone()]);
    let again = store.maintenance(Utc::now()).await.unwrap();
    assert_eq!(again.sealed_batches, 0, "nothing left to seal");
    store.close().await.unwrap();
}

#[tokio::test]
async fn concurrent_ingests_are_all_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(EmbeddedStore::open(config(&dir)).unwrap());
    let t0 = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::hours(2);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = std::sync::Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .ingest(
                    "a1",
                    &format!("b{i}"),
                    vec![cpu(t0 + TimeDelta::seconds(i * 10), 1.0)],
                )
                .await
        }));
    }
    for task in tasks {
        assert!(matches!(
            task.await.unwrap(),
            Ok(IngestOutcome::Stored { envelopes: 1 })
        ));
    }
    assert_eq!(store.history(range(t0)).await.unwrap().len(), 50);
    store.close().await.unwrap();
}

/// Two days of cpu every 10 s for `a1`, one batch per 10 minutes, sealed
/// every hour on a simulated clock (as the background pass would), with
/// the last 25 minutes left unsealed.
async fn two_days_sealed_hourly(
    store: &EmbeddedStore,
) -> (chrono::DateTime<Utc>, Vec<RawEnvelope>) {
    let day0 = Utc::now().duration_trunc(TimeDelta::days(1)).unwrap() - TimeDelta::days(3);
    let mut sent = Vec::new();
    for batch in 0..(2 * 24 * 6) {
        let envelopes: Vec<RawEnvelope> = (0..60)
            .map(|i| {
                let n = batch * 60 + i;
                cpu(day0 + TimeDelta::seconds(n * 10), (n % 997) as f64 * 0.25)
            })
            .collect();
        sent.extend(envelopes.iter().cloned());
        store
            .ingest("a1", &format!("b{batch}"), envelopes)
            .await
            .unwrap();
        if batch % 6 == 5 {
            let now = day0 + TimeDelta::minutes((batch + 1) * 10) - TimeDelta::minutes(25);
            store.maintenance(now).await.unwrap();
        }
    }
    (day0, sent)
}

fn query(
    start: chrono::DateTime<Utc>,
    end: chrono::DateTime<Utc>,
    step: Option<u64>,
) -> HistoryQuery {
    HistoryQuery {
        agent_id: "a1".into(),
        metric_type: "cpu".into(),
        start,
        end,
        step: step.map(std::time::Duration::from_secs),
    }
}

fn chunk_rows(dir: &tempfile::TempDir, tier: i64) -> i64 {
    let conn = rusqlite::Connection::open(dir.path().join("spectra.db")).unwrap();
    conn.query_row(
        "SELECT count(*) FROM chunks WHERE tier = ?1",
        [tier],
        |row| row.get(0),
    )
    .unwrap()
}

#[tokio::test]
async fn compacting_a_day_changes_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(config(&dir)).unwrap();
    let (day0, sent) = two_days_sealed_hourly(&store).await;
    let end = day0 + TimeDelta::days(2);
    // The first day was compacted when the simulated clock passed
    // midnight; the second is still in hourly chunks (3 series each).
    assert!(
        chunk_rows(&dir, 0) < 3 * (1 + 24),
        "day 1 raw merged: {}",
        chunk_rows(&dir, 0)
    );
    let queries = [
        query(day0, end, None),
        query(
            day0 + TimeDelta::hours(20),
            day0 + TimeDelta::hours(28),
            None,
        ),
        query(day0, end, Some(60)),
        query(day0, end, Some(600)),
        query(day0, end, Some(3600)),
        query(
            day0 + TimeDelta::minutes(90),
            end - TimeDelta::minutes(7),
            Some(300),
        ),
    ];
    let mut before = Vec::new();
    for q in &queries {
        before.push(store.history(q.clone()).await.unwrap());
    }
    assert_eq!(before[0].len(), sent.len(), "every sample, sealed or not");
    assert!(before[0]
        .iter()
        .zip(&sent)
        .all(|(s, e)| s.timestamp == e.timestamp && s.data == e.data));

    // Sealing the rest and compacting the second day answers the same.
    let report = store.maintenance(end + TimeDelta::hours(1)).await.unwrap();
    assert!(report.sealed_batches > 0, "the unsealed tail got sealed");
    assert_eq!(chunk_rows(&dir, 0), 6, "one raw chunk per series and day");
    assert_eq!(
        chunk_rows(&dir, 1),
        6,
        "one 1-minute chunk per series and day"
    );
    assert_eq!(
        chunk_rows(&dir, 2),
        6,
        "one 1-hour chunk per series and day"
    );
    for (q, earlier) in queries.iter().zip(&before) {
        let now = store.history(q.clone()).await.unwrap();
        assert_eq!(now.len(), earlier.len(), "{q:?}");
        for (a, b) in now.iter().zip(earlier) {
            assert_eq!(a.timestamp, b.timestamp, "{q:?}");
            let (x, y) = (
                a.data["usage"].as_f64().unwrap(),
                b.data["usage"].as_f64().unwrap(),
            );
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                "{q:?}: {x} vs {y}"
            );
            assert_eq!(a.data["cores"].as_array().map(Vec::len), Some(2));
        }
    }
    // Hourly averages match what was sent.
    let hourly = store.history(query(day0, end, Some(3600))).await.unwrap();
    assert_eq!(hourly.len(), 48);
    let expected: f64 = sent[360..720]
        .iter()
        .map(|e| e.data["usage"].as_f64().unwrap())
        .sum::<f64>()
        / 360.0;
    let got = hourly[1].data["usage"].as_f64().unwrap();
    assert!((got - expected).abs() < 1e-9, "{got} vs {expected}");
    store.close().await.unwrap();

    // Compaction's watermark survives a reopen: nothing is merged twice.
    let store = EmbeddedStore::open(config(&dir)).unwrap();
    store.maintenance(end + TimeDelta::hours(2)).await.unwrap();
    assert_eq!(chunk_rows(&dir, 0), 6);
    assert_eq!(
        store.history(query(day0, end, None)).await.unwrap().len(),
        sent.len()
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn reads_spanning_sealed_chunks_and_the_window_are_exact_at_the_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(config(&dir)).unwrap();
    let t0 = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::hours(4);
    // Samples 0..=389 (to 64:50) are sealed, 390.. (from 65:00) stay in
    // the unsealed window, so the 10-minute step [60, 70) straddles both.
    let sent: Vec<RawEnvelope> = (0..540)
        .map(|i| cpu(t0 + TimeDelta::seconds(i * 10), i as f64))
        .collect();
    store
        .ingest("a1", "sealed", sent[..390].to_vec())
        .await
        .unwrap();
    let report = store.maintenance(t0 + TimeDelta::hours(2)).await.unwrap();
    assert_eq!(report.sealed_batches, 1);
    store
        .ingest("a1", "window", sent[390..].to_vec())
        .await
        .unwrap();
    let boundary = t0 + TimeDelta::seconds(3900);

    let raw = store
        .history(query(boundary - TimeDelta::seconds(10), boundary, None))
        .await
        .unwrap();
    assert_eq!(raw.len(), 2, "last sealed and first unsealed sample");
    assert_eq!(raw[0].data["usage"], 389.0);
    assert_eq!(raw[1].data["usage"], 390.0);

    let minutes = |m: i64| t0 + TimeDelta::minutes(m);
    let average = |range: std::ops::RangeInclusive<i32>| {
        let n = f64::from(range.end() - range.start() + 1);
        range.map(f64::from).sum::<f64>() / n
    };
    // Steps are aligned to the epoch; the first counts from its start
    // (55 min lies in [50, 60)); the last ends at `end` = 69:50.
    let end = minutes(69) + TimeDelta::seconds(50);
    let stepped = store
        .history(query(minutes(55), end, Some(600)))
        .await
        .unwrap();
    assert_eq!(stepped.len(), 2);
    assert_eq!(stepped[0].timestamp, minutes(50));
    assert_eq!(stepped[1].timestamp, minutes(60));
    for (sample, expected) in stepped.iter().zip([average(300..=359), average(360..=419)]) {
        let got = sample.data["usage"].as_f64().unwrap();
        assert!((got - expected).abs() < 1e-9, "{got} vs {expected}");
    }
    // An end inside a minute counts that whole minute, sealed or not,
    // so sealing the window later changes nothing.
    let mid_minute = store
        .history(query(
            minutes(60),
            minutes(66) + TimeDelta::seconds(5),
            Some(600),
        ))
        .await
        .unwrap();
    let got = mid_minute[0].data["usage"].as_f64().unwrap();
    assert!((got - average(360..=401)).abs() < 1e-9, "{got}");
    store.maintenance(t0 + TimeDelta::hours(3)).await.unwrap();
    let sealed = store
        .history(query(
            minutes(60),
            minutes(66) + TimeDelta::seconds(5),
            Some(600),
        ))
        .await
        .unwrap();
    assert_eq!(sealed, mid_minute);
    store.close().await.unwrap();
}

#[tokio::test]
async fn background_sealing_prepares_off_the_writer_and_seals_each_sample_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmbeddedConfig::new(dir.path());
    config.seal_interval = std::time::Duration::from_millis(20);
    // Small steps, so several plans are prepared and committed in turn.
    config.seal_step_bytes = 512;
    let store = EmbeddedStore::open(config).unwrap();
    let t0 = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::hours(2);
    let sent: Vec<RawEnvelope> = (0..120)
        .map(|i| cpu(t0 + TimeDelta::seconds(i * 10), i as f64 * 0.5))
        .collect();
    for (n, batch) in sent.chunks(10).enumerate() {
        store
            .ingest("a1", &format!("b{n}"), batch.to_vec())
            .await
            .unwrap();
    }
    let db = rusqlite::Connection::open(dir.path().join("spectra.db")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let left: i64 = db
            .query_row("SELECT count(*) FROM batch_log", [], |row| row.get(0))
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left} log rows never sealed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let raw_points: i64 = db
        .query_row(
            "SELECT coalesce(sum(count), 0) FROM chunks WHERE tier = 0",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        raw_points,
        120 * 3,
        "every point of the 3 series sealed exactly once"
    );
    let history = store.history(range(t0)).await.unwrap();
    assert_eq!(history.len(), 120);
    assert!(history
        .iter()
        .zip(&sent)
        .all(|(s, e)| s.data == e.data && s.timestamp == e.timestamp));
    store.close().await.unwrap();
}
