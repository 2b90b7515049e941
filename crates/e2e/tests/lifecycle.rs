//! Approval mode end to end (issue 5), with the real binaries on
//! 127.0.0.1: a server started with `SPECTRA_REQUIRE_APPROVAL=true`, an
//! agent that enrolls and waits (pending, collecting into its spool), an
//! admin who approves it through the API, and the metrics collected while
//! it waited arriving afterwards under the same identity.

use std::time::Duration;

use chrono::{DateTime, Utc};
use spectra_e2e::*;

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_agent_waits_for_approval_then_delivers_what_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        &dir.path().join("server"),
        "127.0.0.1:0",
        &["--no-local-agent"],
        &[("SPECTRA_REQUIRE_APPROVAL", "true")],
    );
    let api = Api::new(&server.url());
    let state_dir = dir.path().join("agent");
    let agent = Agent::start_logged(
        &server.url(),
        &state_dir,
        FAST_AGENT_CONFIG,
        "e2e-pending",
        &[],
    );

    let pending = wait_for("the agent to show as pending", LONG, || async {
        api.agent_by_hostname("e2e-pending")
            .await
            .filter(|a| a["status"] == "pending")
    })
    .await;
    let id = pending["id"].as_str().unwrap().to_owned();
    // It kept the credential the 202 carried, and the server refuses it:
    // the sender says so (once per streak) and keeps batches in its spool.
    wait_for("the agent to log that it waits", LONG, || async {
        let log = agent.log();
        (log.contains("waiting for approval by an administrator")
            && log.contains("credential refused"))
        .then_some(())
    })
    .await;
    let identity: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state_dir.join("identity.json")).expect("identity.json"),
    )
    .unwrap();
    assert_eq!(identity["agent_id"], id.as_str());
    let (status, latest) = api.get(&format!("/api/v1/agents/{id}/latest")).await;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(
        latest["envelopes"].as_array().map(Vec::len),
        Some(0),
        "nothing of a pending agent is stored: {latest}"
    );

    let approved_at = Utc::now();
    let (status, body) = api.post(&format!("/api/v1/agents/{id}/approve")).await;
    assert_eq!(status, 200, "{body}");

    let times = wait_for("cpu samples after approval", LONG, || async {
        let times = api.sample_times(&id, "cpu", "15m").await;
        (!times.is_empty()).then_some(times)
    })
    .await;
    let earliest = times
        .iter()
        .map(|t| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc))
        .min()
        .unwrap();
    assert!(
        earliest < approved_at,
        "samples collected while pending were kept and sent: earliest {earliest}, approved {approved_at}"
    );
    wait_for("the agent to show as online", LONG, || async {
        api.agent_by_hostname("e2e-pending")
            .await
            .filter(|a| a["status"] == "online")
    })
    .await;
    // One identity throughout: no second enrollment.
    let (_, agents) = api.get("/api/v1/agents").await;
    let named = agents
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["hostname"] == "e2e-pending")
        .count();
    assert_eq!(named, 1, "{agents}");
    let log = agent.log();
    assert_eq!(
        log.matches("credential refused").count(),
        1,
        "the refusal is logged once, not at every retry:\n{log}"
    );
    agent.stop();
}

fn stored_credential(state_dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(state_dir.join("identity.json")).expect("identity.json");
    let identity: serde_json::Value = serde_json::from_str(&text).unwrap();
    identity["credential"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_rotates_its_credential_when_an_admin_asks() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("server"),
        "127.0.0.1:0",
        &["--no-local-agent"],
    );
    let api = Api::new(&server.url());
    let state_dir = dir.path().join("agent");
    let agent = Agent::start_logged(
        &server.url(),
        &state_dir,
        FAST_AGENT_CONFIG,
        "e2e-rotate",
        &[],
    );
    let id = wait_for("the agent to register", LONG, || async {
        api.agent_by_hostname("e2e-rotate").await
    })
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for("a first cpu sample", LONG, || async {
        (!api.sample_times(&id, "cpu", "15m").await.is_empty()).then_some(())
    })
    .await;
    let old = stored_credential(&state_dir);

    let (status, body) = api.post(&format!("/api/v1/agents/{id}/rotate")).await;
    assert_eq!(status, 202, "{body}");
    // The agent sees the request on its next command poll (within the
    // 30 s long-poll), rotates, and saves the new credential.
    let new = wait_for("the stored credential to change", LONG, || async {
        let now = stored_credential(&state_dir);
        (now != old).then_some(now)
    })
    .await;
    assert_eq!(new.len(), 64);
    let rotated_at = Utc::now();
    // Metrics keep arriving under the same agent, with the new credential.
    wait_for("cpu samples after the rotation", LONG, || async {
        let times = api.sample_times(&id, "cpu", "15m").await;
        times
            .iter()
            .map(|t| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc))
            .any(|t| t > rotated_at + chrono::Duration::seconds(1))
            .then_some(())
    })
    .await;
    let (_, audit) = api.get("/api/v1/audit?action=agent.rotate").await;
    let outcomes: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ok", "requested"], "{audit}");
    assert!(agent.log().contains("credential rotated"));
    agent.stop();
}
