//! The `agent` self-monitoring collector inside a running agent: its
//! envelope reaches the transport carrying the other collectors' stats.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use spectra_agent::collectors::CollectorKind;
use spectra_agent::config::{AgentConfig, CliOverrides};
use spectra_agent::transport::{EncodedBatch, Transport, TransportError};
use spectra_protocol::{AgentMetric, Command, CommandResult, MetricData, RawBatch};
use tokio_util::sync::CancellationToken;

/// Keeps every batch; no commands.
#[derive(Default)]
struct RecordingTransport {
    batches: Mutex<Vec<EncodedBatch>>,
}

#[async_trait]
impl Transport for RecordingTransport {
    async fn send_batch(&self, batch: &EncodedBatch) -> Result<(), TransportError> {
        self.batches.lock().unwrap().push(batch.clone());
        Ok(())
    }
    async fn next_command(&self) -> Result<Option<Command>, TransportError> {
        Ok(None)
    }
    async fn send_result(&self, _result: &CommandResult) -> Result<(), TransportError> {
        Ok(())
    }
}

/// Every `agent` payload sent so far, decoded.
fn agent_payloads(t: &RecordingTransport) -> Vec<AgentMetric> {
    let batches = t.batches.lock().unwrap();
    let mut out = Vec::new();
    for b in batches.iter() {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&b.body[..])
            .read_to_end(&mut json)
            .unwrap();
        for envelope in serde_json::from_slice::<RawBatch>(&json).unwrap() {
            if envelope.metric_type == "agent" {
                match envelope.into_typed().unwrap().data {
                    MetricData::Agent(a) => out.push(a),
                    other => panic!("agent envelope decoded as {other:?}"),
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn running_agent_reports_its_collectors_stats() {
    let dir = tempfile::tempdir().unwrap();
    let file = r#"
        [collectors.memory]
        interval = "1s"
        [collectors.agent]
        interval = "1s"
        [sender]
        flush_interval = "1s"
    "#;
    let cli = CliOverrides {
        hostname: Some("agent-test".into()),
        state_dir: Some(dir.path().to_owned()),
        ..Default::default()
    };
    let mut config = AgentConfig::from_sources(Some(file), &|_| None, &cli).unwrap();
    for kind in CollectorKind::ALL {
        if !matches!(kind, CollectorKind::Memory | CollectorKind::Agent) {
            config.collectors.get_mut(&kind).unwrap().enabled = false;
        }
    }
    let transport = Arc::new(RecordingTransport::default());
    let shutdown = CancellationToken::new();
    let runner = tokio::spawn(spectra_agent::runtime::run_with_transport(
        config,
        transport.clone(),
        shutdown.clone(),
    ));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let found = loop {
        let payloads = agent_payloads(&transport);
        if let Some(a) = payloads.into_iter().find(|a| {
            a.collectors
                .iter()
                .any(|c| c.name == "memory" && c.runs >= 1)
        }) {
            break a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no agent envelope with a memory entry; agent payloads: {:?}",
            agent_payloads(&transport)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), runner)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let memory = found
        .collectors
        .iter()
        .find(|c| c.name == "memory")
        .unwrap();
    // Memory is always readable on Linux; elsewhere it may be unsupported,
    // but it still ran and is listed.
    if cfg!(target_os = "linux") {
        assert_eq!(memory.failures, 0, "{memory:?}");
        assert!(memory.last_duration_us.is_some(), "{memory:?}");
        assert!(found.rss_bytes.is_some_and(|b| b > 0), "{found:?}");
        assert!(found.cpu_user_seconds.is_some(), "{found:?}");
    } else {
        assert_eq!(found.rss_bytes, None, "{found:?}");
    }
    // Disabled collectors never run, so they are not listed.
    assert!(
        found.collectors.iter().all(|c| c.name != "cpu"),
        "{found:?}"
    );
    assert_eq!(found.rejected_batches, 0);
}
