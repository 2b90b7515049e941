//! TLS end to end with the real binaries on 127.0.0.1: certificates from
//! `spectra-server tls init`, a server on `--tls-cert`/`--tls-key`, agents
//! that trust the CA file or pin the server certificate (and keep the pin
//! across restarts), and agents that refuse a certificate they should not
//! trust. Plain HTTP on 127.0.0.1 is covered by pipeline.rs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use spectra_e2e::*;

const LONG: Duration = Duration::from_secs(60);
const FINGERPRINT_LINE: &str = "server certificate fingerprint: ";

/// Runs `spectra-server tls init` into `dir`; returns the printed
/// fingerprint.
fn tls_init(dir: &Path) -> String {
    let out = Command::new(binary("spectra-server"))
        .args(["tls", "init", "--out"])
        .arg(dir)
        .output()
        .expect("run spectra-server tls init");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tls init failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fingerprint = stdout
        .lines()
        .find_map(|l| l.strip_prefix(FINGERPRINT_LINE))
        .unwrap_or_else(|| panic!("no fingerprint line in: {stdout}"))
        .trim()
        .to_owned();
    assert!(
        fingerprint.starts_with("sha256:") && fingerprint.len() == 7 + 64,
        "{fingerprint}"
    );
    fingerprint
}

fn start_tls_server(data_dir: &Path, listen: &str, certs: &Path) -> Server {
    let cert = certs.join("server.pem");
    let key = certs.join("server-key.pem");
    Server::start(
        data_dir,
        listen,
        &[
            "--no-local-agent",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    )
}

/// The fingerprint the server printed at start (after the enrollment token).
fn printed_fingerprint(server: &Server) -> String {
    loop {
        let line = server
            .stdout_rx
            .recv_timeout(LONG)
            .expect("the server printed no fingerprint line");
        if let Some(fp) = line.strip_prefix(FINGERPRINT_LINE) {
            return fp.trim().to_owned();
        }
    }
}

fn https_url(server: &Server) -> String {
    format!("https://{}", server.addr)
}

/// An admin API client over HTTPS that trusts only the generated CA.
fn https_api(server: &Server, ca: &Path) -> Api {
    let pem = std::fs::read(ca).expect("read ca.pem");
    let http = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA pem"))
        .timeout(Duration::from_secs(70))
        .build()
        .expect("client");
    Api {
        base: https_url(server),
        http,
    }
}

async fn latest_memory(api: &Api, hostname: &str) -> Option<Value> {
    let agent = api.agent_by_hostname(hostname).await?;
    let id = agent["id"].as_str()?;
    let (status, body) = api.get(&format!("/api/v1/agents/{id}/latest")).await;
    if status != 200 {
        return None;
    }
    let envelopes = body.get("envelopes").unwrap_or(&body).as_array()?.clone();
    envelopes.into_iter().find(|e| e["type"] == "memory")
}

/// Waits until `agent` has logged `needle` at least `times` times.
async fn wait_for_log(agent: &Agent, needle: &str, times: usize) -> String {
    wait_for(
        &format!("the agent to log {needle:?} {times}x"),
        LONG,
        || async {
            let log = agent.log();
            (log.matches(needle).count() >= times).then_some(log)
        },
    )
    .await
}

fn identity_of(state_dir: &Path) -> Value {
    let text = std::fs::read_to_string(state_dir.join("identity.json")).expect("identity.json");
    serde_json::from_str(&text).expect("identity json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_trusting_the_ca_file_enrolls_and_sends_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let fingerprint = tls_init(&certs);
    let server = start_tls_server(&dir.path().join("server"), "127.0.0.1:0", &certs);
    assert_eq!(printed_fingerprint(&server), fingerprint);
    let ca = certs.join("ca.pem");
    let api = https_api(&server, &ca);
    let ca_text = ca.to_str().unwrap();
    let agent = Agent::start_with_env(
        &https_url(&server),
        &dir.path().join("agent"),
        FAST_AGENT_CONFIG,
        "tls-ca",
        &[("SPECTRA_CA_FILE", ca_text)],
    );

    let memory = wait_for("a memory sample over https", LONG, || {
        latest_memory(&api, "tls-ca")
    })
    .await;
    assert_eq!(
        memory["data"]["ram_total"].as_u64(),
        Some(meminfo_total_bytes()),
        "{memory}"
    );
    // Trusting a CA is not pinning: nothing to keep in the identity.
    assert!(
        identity_of(&agent.state_dir)
            .get("server_fingerprint")
            .is_none(),
        "{}",
        identity_of(&agent.state_dir)
    );
    // Without the CA, the certificate is not trusted by public roots.
    let public = reqwest::Client::new()
        .get(format!("{}/healthz", https_url(&server)))
        .send()
        .await;
    assert!(public.is_err(), "a client without the CA connected");
    agent.stop();
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_pinning_the_fingerprint_enrolls_and_keeps_the_pin_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let fingerprint = tls_init(&certs);
    let data_dir = dir.path().join("server");
    let server = start_tls_server(&data_dir, "127.0.0.1:0", &certs);
    let api = https_api(&server, &certs.join("ca.pem"));
    let url = https_url(&server);
    let state_dir = dir.path().join("agent");
    let pinned_token = format!("{ENROLL_TOKEN}#{fingerprint}");
    let agent = Agent::start_with_env(
        &url,
        &state_dir,
        FAST_AGENT_CONFIG,
        "tls-pin",
        &[("SPECTRA_TOKEN", &pinned_token)],
    );
    wait_for("a memory sample from the pinned agent", LONG, || {
        latest_memory(&api, "tls-pin")
    })
    .await;
    assert_eq!(
        identity_of(&state_dir)["server_fingerprint"].as_str(),
        Some(fingerprint.as_str())
    );
    agent.stop();

    // The server comes back on the same address with another certificate;
    // the agent restarts without any pin setting: the stored pin refuses it.
    let port = server.port();
    server.stop();
    let other_certs = dir.path().join("other-certs");
    let other_fingerprint = tls_init(&other_certs);
    assert_ne!(other_fingerprint, fingerprint);
    let server = start_tls_server(&data_dir, &format!("127.0.0.1:{port}"), &other_certs);
    let agent = Agent::start_logged(&url, &state_dir, FAST_AGENT_CONFIG, "tls-pin", &[]);
    let log = wait_for_log(
        &agent,
        "server certificate does not match the pinned fingerprint",
        1,
    )
    .await;
    assert!(log.contains(&fingerprint), "{log}");
    assert!(log.contains(&other_fingerprint), "{log}");
    // Enrolled already: it collects on and keeps its batches for later.
    assert!(log.contains("cannot send batch; spooling"), "{log}");
    agent.stop();
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_with_a_wrong_pin_or_another_ca_never_enroll() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let fingerprint = tls_init(&certs);
    let other_certs = dir.path().join("other-certs");
    let other_fingerprint = tls_init(&other_certs);
    let server = start_tls_server(&dir.path().join("server"), "127.0.0.1:0", &certs);
    let api = https_api(&server, &certs.join("ca.pem"));
    let url = https_url(&server);

    let wrong_pin = format!("{ENROLL_TOKEN}#{other_fingerprint}");
    let pinned = Agent::start_logged(
        &url,
        &dir.path().join("agent-pin"),
        FAST_AGENT_CONFIG,
        "tls-wrong-pin",
        &[("SPECTRA_TOKEN", &wrong_pin)],
    );
    let other_ca: PathBuf = other_certs.join("ca.pem");
    let other_ca_text = other_ca.to_str().unwrap();
    let wrong_ca = Agent::start_logged(
        &url,
        &dir.path().join("agent-ca"),
        FAST_AGENT_CONFIG,
        "tls-wrong-ca",
        &[("SPECTRA_CA_FILE", other_ca_text)],
    );

    // Each says why, and keeps trying (twice: it retried after backing off).
    let log = wait_for_log(
        &pinned,
        "server certificate does not match the pinned fingerprint",
        2,
    )
    .await;
    assert!(
        log.contains(&format!("pinned {other_fingerprint}"))
            && log.contains(&format!("server presented {fingerprint}")),
        "{log}"
    );
    let log = wait_for_log(
        &wrong_ca,
        &format!("server certificate is not signed by the CA in {other_ca_text}"),
        2,
    )
    .await;
    assert!(log.contains("cannot enroll yet"), "{log}");

    for (agent, hostname) in [(&pinned, "tls-wrong-pin"), (&wrong_ca, "tls-wrong-ca")] {
        assert!(
            !agent.state_dir.join("identity.json").exists(),
            "{hostname} stored an identity"
        );
        assert!(
            api.agent_by_hostname(hostname).await.is_none(),
            "{hostname} reached the server"
        );
    }
    let (status, agents) = api.get("/api/v1/agents").await;
    assert_eq!(status, 200, "{agents}");
    assert_eq!(agents.as_array().map(Vec::len), Some(0), "{agents}");
    pinned.stop();
    wrong_ca.stop();
    server.stop();
}
