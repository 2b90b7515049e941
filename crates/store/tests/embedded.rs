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
