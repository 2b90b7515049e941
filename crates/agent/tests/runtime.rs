//! `run_with_transport` over an in-memory transport: real collectors of
//! this host, a command answered, a clean shutdown that flushes, and the
//! `agent` self-monitoring collector carrying the other collectors' stats.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use spectra_agent::collectors::CollectorKind;
use spectra_agent::config::{AgentConfig, CliOverrides};
use spectra_agent::transport::{EncodedBatch, Transport, TransportError};
use spectra_protocol::{AgentMetric, Command, CommandResult, MetricData, RawBatch, RawEnvelope};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct MemoryTransport {
    batches: Mutex<Vec<EncodedBatch>>,
    commands: Mutex<Vec<Command>>,
    results: Mutex<Vec<CommandResult>>,
}

#[async_trait]
impl Transport for MemoryTransport {
    async fn send_batch(&self, batch: &EncodedBatch) -> Result<(), TransportError> {
        self.batches.lock().unwrap().push(batch.clone());
        Ok(())
    }
    async fn next_command(&self) -> Result<Option<Command>, TransportError> {
        Ok(self.commands.lock().unwrap().pop())
    }
    async fn send_result(&self, result: &CommandResult) -> Result<(), TransportError> {
        self.results.lock().unwrap().push(result.clone());
        Ok(())
    }
}

/// Every envelope sent so far, decoded.
fn envelopes_sent(t: &MemoryTransport) -> Vec<RawEnvelope> {
    t.batches
        .lock()
        .unwrap()
        .iter()
        .flat_map(|b| {
            let mut json = Vec::new();
            flate2::read::GzDecoder::new(&b.body[..])
                .read_to_end(&mut json)
                .unwrap();
            serde_json::from_slice::<RawBatch>(&json).unwrap()
        })
        .collect()
}

fn types_sent(t: &MemoryTransport) -> Vec<String> {
    envelopes_sent(t)
        .into_iter()
        .map(|e| e.metric_type)
        .collect()
}

/// Every `agent` payload sent so far, decoded.
fn agent_payloads(t: &MemoryTransport) -> Vec<AgentMetric> {
    envelopes_sent(t)
        .into_iter()
        .filter(|e| e.metric_type == "agent")
        .map(|e| match e.into_typed().unwrap().data {
            MetricData::Agent(a) => a,
            other => panic!("agent envelope decoded as {other:?}"),
        })
        .collect()
}

/// The config of `file` for a test agent in `state_dir`, with every collector
/// but `keep` disabled.
fn config_with_only(
    file: &str,
    hostname: &str,
    state_dir: &std::path::Path,
    keep: &[CollectorKind],
) -> AgentConfig {
    let cli = CliOverrides {
        hostname: Some(hostname.into()),
        state_dir: Some(state_dir.to_owned()),
        ..Default::default()
    };
    let mut config = AgentConfig::from_sources(Some(file), &|_| None, &cli).unwrap();
    for kind in CollectorKind::ALL {
        if !keep.contains(&kind) {
            config.collectors.get_mut(&kind).unwrap().enabled = false;
        }
    }
    config
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn collects_sends_answers_commands_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let file = r#"
        [collectors.memory]
        interval = "1s"
        [collectors.cpu]
        enabled = false
        [sender]
        flush_interval = "1s"
    "#;
    // Only memory runs (plus the disabled/not-implemented reports).
    let config = config_with_only(
        file,
        "rt-test",
        dir.path(),
        &[CollectorKind::Memory, CollectorKind::Cpu],
    );
    let transport = Arc::new(MemoryTransport::default());
    transport.commands.lock().unwrap().push(Command {
        id: "cmd-1".into(),
        command_type: "LIST_MOUNTS".into(),
        payload: serde_json::Value::Null,
        created_at: Utc::now(),
        expires_at: Utc::now(),
    });
    let shutdown = CancellationToken::new();
    let runner = tokio::spawn(spectra_agent::runtime::run_with_transport(
        config,
        transport.clone(),
        shutdown.clone(),
    ));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !types_sent(&transport).iter().any(|t| t == "memory")
        || transport.results.lock().unwrap().is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no memory batch / command result; sent {:?}",
            types_sent(&transport)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), runner)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let types = types_sent(&transport);
    assert!(
        types.iter().any(|t| t == "collector_status"),
        "disabled collectors reported: {types:?}"
    );
    let results = transport.results.lock().unwrap();
    assert_eq!(results[0].id, "cmd-1");
    assert_eq!(results[0].error, None);
    let mounts = results[0].payload.as_array().expect("a mount list");
    assert!(mounts.iter().any(|m| m["mountpoint"] == "/"), "{mounts:?}");
    // Everything was sent: nothing left in the spool.
    let spool = spectra_agent::sender::Spool::open(dir.path().join("spool"), 1 << 20).unwrap();
    assert!(spool.is_empty());
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
    let config = config_with_only(
        file,
        "agent-test",
        dir.path(),
        &[CollectorKind::Memory, CollectorKind::Agent],
    );
    let transport = Arc::new(MemoryTransport::default());
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
