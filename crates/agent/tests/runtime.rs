//! `run_with_transport` over an in-memory transport: real collectors of
//! this host, a command answered, and a clean shutdown that flushes.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use spectra_agent::collectors::CollectorKind;
use spectra_agent::config::{AgentConfig, CliOverrides};
use spectra_agent::transport::{EncodedBatch, Transport, TransportError};
use spectra_protocol::{Command, CommandResult, RawBatch};
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

fn types_sent(t: &MemoryTransport) -> Vec<String> {
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
        .map(|e| e.metric_type)
        .collect()
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
    let cli = CliOverrides {
        hostname: Some("rt-test".into()),
        state_dir: Some(dir.path().to_owned()),
        ..Default::default()
    };
    let mut config = AgentConfig::from_sources(Some(file), &|_| None, &cli).unwrap();
    // Only memory runs (plus the disabled/not-implemented reports).
    for kind in CollectorKind::ALL {
        if !matches!(kind, CollectorKind::Memory | CollectorKind::Cpu) {
            config.collectors.get_mut(&kind).unwrap().enabled = false;
        }
    }
    let transport = Arc::new(MemoryTransport::default());
    transport.commands.lock().unwrap().push(Command {
        id: "cmd-1".into(),
        command_type: "FETCH_LOGS".into(),
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
    assert_eq!(
        results[0].error.as_deref(),
        Some("FETCH_LOGS is not supported by this agent yet")
    );
    // Everything was sent: nothing left in the spool.
    let spool = spectra_agent::sender::Spool::open(dir.path().join("spool"), 1 << 20).unwrap();
    assert!(spool.is_empty());
}
