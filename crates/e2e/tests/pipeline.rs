//! The agent → server pipeline end to end, with the real binaries on
//! 127.0.0.1: enrollment, metrics in the history and latest APIs, the local
//! agent, commands through the seed's endpoints, outages, restarts and a
//! SIGKILLed server.

use std::io::Write;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use spectra_e2e::*;

const LONG: Duration = Duration::from_secs(60);

async fn agent_id(api: &Api, hostname: &str) -> String {
    let agent = wait_for("the agent to register", LONG, || async {
        api.agent_by_hostname(hostname).await
    })
    .await;
    agent["id"].as_str().expect("agent id").to_owned()
}

async fn latest_of(api: &Api, id: &str, metric_type: &str) -> Option<Value> {
    let (status, body) = api.get(&format!("/api/v1/agents/{id}/latest")).await;
    if status != 200 {
        return None;
    }
    let envelopes = body.get("envelopes").unwrap_or(&body).as_array()?.clone();
    envelopes.into_iter().find(|e| e["type"] == metric_type)
}

fn parse_times(times: &[String]) -> Vec<DateTime<Utc>> {
    let mut v: Vec<DateTime<Utc>> = times
        .iter()
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .expect("rfc3339")
                .with_timezone(&Utc)
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_enrolls_and_its_metrics_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("server"),
        "127.0.0.1:0",
        &["--no-local-agent"],
    );
    let api = Api::new(&server.url());
    let agent = Agent::start(
        &server.url(),
        &dir.path().join("agent"),
        FAST_AGENT_CONFIG,
        "e2e-enroll",
    );

    let id = agent_id(&api, "e2e-enroll").await;
    let memory = wait_for("a memory sample", LONG, || latest_of(&api, &id, "memory")).await;
    assert_eq!(
        memory["data"]["ram_total"].as_u64(),
        Some(meminfo_total_bytes()),
        "{memory}"
    );
    let used_pct = memory["data"]["ram_used_pct"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&used_pct), "{memory}");

    let cpu = wait_for("a cpu sample", LONG, || latest_of(&api, &id, "cpu")).await;
    let cores = cpu["data"]["cores"].as_array().unwrap();
    let cpu_lines = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    assert_eq!(cores.len(), cpu_lines, "{cpu}");
    let usage = cpu["data"]["usage"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&usage), "{cpu}");

    let system = wait_for("a system sample", LONG, || latest_of(&api, &id, "system")).await;
    assert!(system["data"]["uptime"].as_u64().unwrap() > 0, "{system}");

    // History returns what latest showed.
    let times = wait_for("cpu history", LONG, || async {
        let t = api.sample_times(&id, "cpu", "15m").await;
        (t.len() >= 2).then_some(t)
    })
    .await;
    assert!(times.len() >= 2);

    // Status is online while it reports.
    let listed = api.agent_by_hostname("e2e-enroll").await.unwrap();
    assert_eq!(listed["status"], "online", "{listed}");

    // A restart keeps the identity: still one agent with that hostname, same id.
    agent.stop().expect("agent exits on SIGTERM");
    let _agent = Agent::start(
        &server.url(),
        &dir.path().join("agent"),
        FAST_AGENT_CONFIG,
        "e2e-enroll",
    );
    let before = Utc::now();
    wait_for("samples after the agent restart", LONG, || async {
        let t = parse_times(&api.sample_times(&id, "cpu", "15m").await);
        t.last().is_some_and(|last| *last > before).then_some(())
    })
    .await;
    let (_, agents) = api.get("/api/v1/agents").await;
    let same_host: Vec<_> = agents
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["hostname"] == "e2e-enroll")
        .collect();
    assert_eq!(same_host.len(), 1, "{agents}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_agent_reports_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), "127.0.0.1:0", &[]);
    let api = Api::new(&server.url());
    let local = wait_for("the local agent", LONG, || async {
        let (status, body) = api.get("/api/v1/agents").await;
        (status == 200).then_some(())?;
        body.as_array()?
            .iter()
            .find(|a| a["local"] == true)
            .cloned()
    })
    .await;
    let id = local["id"].as_str().unwrap().to_owned();
    for t in ["cpu", "memory", "system"] {
        wait_for(&format!("local {t}"), LONG, || latest_of(&api, &id, t)).await;
    }
    let memory = latest_of(&api, &id, "memory").await.unwrap();
    assert_eq!(
        memory["data"]["ram_total"].as_u64(),
        Some(meminfo_total_bytes())
    );
    // The data dir the server created holds the database and credentials:
    // owner-only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&server.data_dir)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "data dir mode {mode:o}");

    // Restarting the server keeps the local agent's identity.
    let data_dir = server.data_dir.clone();
    assert!(server.stop().success());
    let server = Server::start(&data_dir, "127.0.0.1:0", &[]);
    let api = Api::new(&server.url());
    let (_, agents) = api.get("/api/v1/agents").await;
    let locals: Vec<_> = agents
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["local"] == true)
        .collect();
    assert_eq!(locals.len(), 1, "{agents}");
    assert_eq!(locals[0]["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_trigger_commands_reach_the_long_polling_agent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("server"),
        "127.0.0.1:0",
        &["--no-local-agent"],
    );
    let api = Api::new(&server.url());
    let _agent = Agent::start(
        &server.url(),
        &dir.path().join("agent"),
        FAST_AGENT_CONFIG,
        "webserver-01",
    );
    let id = agent_id(&api, "webserver-01").await;
    // Let the agent reach its long-poll (it reports first, then polls).
    wait_for("first metrics", LONG, || latest_of(&api, &id, "memory")).await;

    // LIST_MOUNTS runs on this agent version.
    let sent = Instant::now();
    let (status, body) = api
        .http
        .post(format!("{}/api/v1/agents/{id}/commands", api.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"type": "LIST_MOUNTS", "payload": {}}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 202);
    let body: Value = body.json().await.unwrap();
    let cmd = body["command_id"].as_str().unwrap().to_owned();
    let (status, done) = api.get(&format!("/api/v1/commands/{cmd}?wait=30s")).await;
    let elapsed = sent.elapsed();
    assert_eq!(status, 200);
    assert_eq!(done["status"], "done", "{done}");
    let mounts = done["result"].as_array().expect("mount list");
    assert!(mounts.iter().any(|m| m["mountpoint"] == "/"), "{done}");
    eprintln!("LIST_MOUNTS queued → result in {elapsed:?}");

    // The seed's curl examples: queued at once, answered explicitly.
    let (status, body) = api
        .post("/admin/trigger_network?hostname=webserver-01&action=ping&target=127.0.0.1")
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");
    let cmd = body["command_id"].as_str().unwrap().to_owned();
    let (_, result) = api.get(&format!("/api/v1/commands/{cmd}?wait=30s")).await;
    assert!(
        matches!(result["status"].as_str(), Some("done" | "failed")),
        "{result}"
    );
    if result["status"] == "failed" {
        assert!(
            result["error"].as_str().unwrap().contains("not supported"),
            "{result}"
        );
    }

    let (status, body) = api
        .post("/admin/trigger_disk?hostname=webserver-01&path=/var/log&top_n=10")
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = api.post("/admin/trigger_logs?hostname=webserver-01").await;
    assert_eq!(status, 202, "{body}");
    let cmd = body["command_id"].as_str().unwrap().to_owned();
    let (_, result) = api.get(&format!("/api/v1/commands/{cmd}?wait=30s")).await;
    assert!(
        matches!(result["status"].as_str(), Some("done" | "failed")),
        "{result}"
    );

    // Hostile input never gets queued.
    let (status, body) = api
        .post("/admin/trigger_network?hostname=webserver-01&action=ping&target=%3Brm%20-rf%20%2F")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not a hostname"),
        "{body}"
    );
    let (status, _) = api.post("/admin/trigger_disk?hostname=nope&path=/").await;
    assert_eq!(status, 404);
}

/// Consecutive-sample gaps longer than `max`.
fn gaps_over(
    times: &[DateTime<Utc>],
    max: chrono::Duration,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    times
        .windows(2)
        .filter(|w| w[1] - w[0] > max)
        .map(|w| (w[0], w[1]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_outage_and_agent_restart_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("server");
    let server = Server::start(&data_dir, "127.0.0.1:0", &["--no-local-agent"]);
    let port = server.port();
    let url = server.url();
    let api = Api::new(&url);
    let agent = Agent::start(
        &url,
        &dir.path().join("agent"),
        FAST_AGENT_CONFIG,
        "e2e-outage",
    );
    let id = agent_id(&api, "e2e-outage").await;
    wait_for("cpu samples", LONG, || async {
        (api.sample_times(&id, "cpu", "15m").await.len() >= 2).then_some(())
    })
    .await;

    // Outage: the server is gone for ~8 s; the agent is restarted in the middle.
    let outage_start = Utc::now();
    assert!(server.stop().success(), "server exits cleanly on SIGTERM");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let agent_stopped = Instant::now();
    agent
        .stop()
        .expect("agent exits on SIGTERM while the server is down");
    let _agent = Agent::start(
        &url,
        &dir.path().join("agent"),
        FAST_AGENT_CONFIG,
        "e2e-outage",
    );
    let agent_downtime = agent_stopped.elapsed();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let outage_end = Utc::now();

    let server = Server::start(
        &data_dir,
        &format!("127.0.0.1:{port}"),
        &["--no-local-agent"],
    );
    let api = Api::new(&server.url());
    let times = wait_for("the spooled samples after the outage", LONG, || async {
        let t = parse_times(&api.sample_times(&id, "cpu", "15m").await);
        t.last()
            .is_some_and(|last| *last > outage_end + chrono::Duration::seconds(1))
            .then_some(t)
    })
    .await;
    let during: Vec<_> = times
        .iter()
        .copied()
        .filter(|t| *t >= outage_start - chrono::Duration::seconds(2) && *t <= outage_end)
        .collect();
    assert!(
        during.len() >= 5,
        "samples collected during the outage are missing: {during:?}"
    );
    // 1 s collector: every second is there, except while the agent itself
    // was down for its restart (one gap, no longer than that downtime + 2 s).
    let gaps = gaps_over(&times, chrono::Duration::milliseconds(1500));
    let allowed =
        chrono::Duration::from_std(agent_downtime).unwrap() + chrono::Duration::seconds(2);
    assert!(
        gaps.len() <= 1 && gaps.iter().all(|(a, b)| *b - *a <= allowed),
        "gaps {gaps:?} (agent was down {agent_downtime:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_server_keeps_every_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("server");
    let server = Server::start(&data_dir, "127.0.0.1:0", &["--no-local-agent"]);
    let url = server.url();
    let http = reqwest::Client::new();
    let reg: Value = http
        .post(format!("{url}/api/v1/agent/register"))
        .json(&json!({"token": ENROLL_TOKEN, "host": {"hostname": "e2e-kill", "os": "linux", "platform": "debian", "platform_ver": "12", "kernel": "6", "arch": "x86_64", "cpu_model": "x", "cpu_cores": 1, "ram_total": 1, "agent_version": "0", "boot_time": 0, "ips": []}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let credential = reg["credential"].as_str().expect("credential").to_owned();
    let id = reg["agent_id"].as_str().unwrap().to_owned();

    let base = Utc::now().timestamp() - 600;
    let mut acked = Vec::new();
    for i in 0..40i64 {
        let ts = Utc.timestamp_opt(base + i * 10, 0).unwrap();
        let batch = json!([{"type": "memory", "timestamp": ts, "hostname": "e2e-kill", "data": {"ram_total": 1000, "ram_used": i, "ram_available": 1000 - i, "ram_used_pct": i as f64 / 10.0, "swap_total": 0, "swap_used": 0, "swap_pct": 0.0}}]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(batch.to_string().as_bytes()).unwrap();
        let resp = http
            .post(format!("{url}/api/v1/metrics"))
            .bearer_auth(&credential)
            .header("X-Spectra-Batch-Id", format!("kill-{i}"))
            .header("Content-Encoding", "gzip")
            .header("Content-Type", "application/json")
            .body(gz.finish().unwrap())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "batch {i}: {}", resp.status());
        acked.push(ts);
    }
    server.kill();

    let server = Server::start(&data_dir, "127.0.0.1:0", &["--no-local-agent"]);
    let api = Api::new(&server.url());
    let start = Utc.timestamp_opt(base - 1, 0).unwrap().to_rfc3339();
    let end = Utc.timestamp_opt(base + 400, 0).unwrap().to_rfc3339();
    let (status, body) = api
        .get(&format!(
            "/api/v1/agents/{id}/metrics/memory?start={}&end={}",
            start.replace('+', "%2B"),
            end.replace('+', "%2B")
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let samples = body["samples"].as_array().unwrap();
    let got = parse_times(
        &samples
            .iter()
            .map(|s| s["timestamp"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
    );
    assert_eq!(got, acked, "every acknowledged sample survives SIGKILL");
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(s["data"]["ram_used"].as_i64(), Some(i as i64), "{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_goes_stale_then_offline() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        &dir.path().join("server"),
        "127.0.0.1:0",
        &["--no-local-agent"],
        &[
            ("SPECTRA_STALE_AFTER", "3s"),
            ("SPECTRA_OFFLINE_AFTER", "6s"),
        ],
    );
    let api = Api::new(&server.url());
    let agent = Agent::start(
        &server.url(),
        &dir.path().join("agent"),
        FAST_AGENT_CONFIG,
        "e2e-status",
    );
    let status_of = |api: Api| async move {
        api.agent_by_hostname("e2e-status")
            .await
            .and_then(|a| a["status"].as_str().map(str::to_owned))
    };
    wait_for("online", LONG, || async {
        (status_of(api.clone()).await.as_deref() == Some("online")).then_some(())
    })
    .await;
    agent.stop().expect("agent exits on SIGTERM");
    wait_for("stale", LONG, || async {
        (status_of(api.clone()).await.as_deref() == Some("stale")).then_some(())
    })
    .await;
    wait_for("offline", LONG, || async {
        (status_of(api.clone()).await.as_deref() == Some("offline")).then_some(())
    })
    .await;
    let agent = api.agent_by_hostname("e2e-status").await.unwrap();
    assert!(agent["last_seen"].is_string(), "{agent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_agent_serves_its_own_stats_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("server"),
        "127.0.0.1:0",
        &["--no-local-agent"],
    );
    // A free loopback port for the agent's debug endpoint.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let _agent = Agent::start_with_env(
        &server.url(),
        &dir.path().join("agent"),
        FAST_AGENT_CONFIG,
        "e2e-debug",
        &[("DEBUG", "true"), ("SPECTRA_DEBUG_LISTEN", &listen)],
    );
    let http = reqwest::Client::new();
    let vars: Value = wait_for("the debug endpoint with cpu runs", LONG, || async {
        let v: Value = http
            .get(format!("http://{listen}/debug/vars"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["collectors"]["cpu"]["runs"].as_u64()? >= 2).then_some(v)
    })
    .await;
    assert!(
        vars["collectors"]["cpu"]["last_duration_us"].is_u64(),
        "{vars}"
    );
    // Not a Pi: said once, explicitly, with the reason.
    assert_eq!(vars["collectors"]["pi"]["state"], "unsupported", "{vars}");
    assert!(
        vars["collectors"]["pi"]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("not a Raspberry Pi"),
        "{vars}"
    );
    let rss = vars["process"]["rss_bytes"].as_u64().unwrap();
    assert!(rss > 1 << 20, "{vars}");
    assert!(vars["sender"]["sent_batches"].is_u64(), "{vars}");
    let missing = http
        .get(format!("http://{listen}/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}
