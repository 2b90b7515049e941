//! The server's API driven through `app(state)` (and once through a real
//! socket), each test with its own embedded store in its own tempdir.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use spectra_server::config::{Secret, Settings};
use spectra_server::{first_run, local_agent, AppState};
use spectra_store::{EmbeddedConfig, EmbeddedStore, Store};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "test-admin-token";
const ENROLL_TOKEN: &str = "test-enroll-token";

struct Harness {
    _dir: TempDir,
    state: AppState,
    shutdown: CancellationToken,
}

fn test_settings(dir: &TempDir) -> Settings {
    Settings {
        data_dir: dir.path().to_owned(),
        local_agent: false,
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        enroll_token: Some(Secret::new(ENROLL_TOKEN)),
        ..Settings::default()
    }
}

fn open_store(dir: &TempDir) -> Arc<dyn Store> {
    let mut config = EmbeddedConfig::with_path(dir.path().join("spectra.db"));
    config.background_maintenance = false;
    Arc::new(EmbeddedStore::open(config).unwrap())
}

async fn harness() -> Harness {
    harness_with(|_| {}).await
}

async fn harness_with(adjust: impl FnOnce(&mut Settings)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(&dir);
    adjust(&mut settings);
    let store = open_store(&dir);
    first_run::ensure_credentials(store.as_ref(), &settings)
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let state = AppState::new(store, settings, shutdown.clone());
    Harness {
        _dir: dir,
        state,
        shutdown,
    }
}

impl Harness {
    fn app(&self) -> Router {
        spectra_server::app(self.state.clone())
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        send(self.app(), req).await
    }

    async fn admin(&self, method: &str, uri: &str) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(Body::empty())
            .unwrap();
        self.send(req).await
    }

    async fn register(&self, hostname: &str) -> (String, String) {
        let (status, body) = self.send(register_request(ENROLL_TOKEN, hostname)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            body["agent_id"].as_str().unwrap().to_owned(),
            body["credential"].as_str().unwrap().to_owned(),
        )
    }

    async fn ingest(
        &self,
        credential: &str,
        batch_id: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method("POST")
            .uri("/api/v1/metrics")
            .header("authorization", format!("Bearer {credential}"))
            .header("x-spectra-batch-id", batch_id);
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    async fn latest_types(&self, agent_id: &str) -> Vec<Value> {
        let (status, body) = self
            .admin("GET", &format!("/api/v1/agents/{agent_id}/latest"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["agent_id"], agent_id);
        body["envelopes"].as_array().unwrap().clone()
    }
}

async fn send(app: Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, body)
}

fn register_request(token: &str, hostname: &str) -> Request<Body> {
    let body = json!({"token": token, "host": {
        "hostname": hostname, "os": "linux", "platform": "debian", "platform_ver": "12", "kernel": "6.1.0",
        "arch": "x86_64", "cpu_model": "test", "cpu_cores": 2, "ram_total": 1024, "agent_version": "0.1.0",
        "boot_time": 1700000000, "ips": ["127.0.0.1"]
    }});
    Request::builder()
        .method("POST")
        .uri("/api/v1/agent/register")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn cpu_batch(hostname: &str, ts: &str, usage: f64) -> Vec<u8> {
    json!([
        {"type": "cpu", "timestamp": ts, "hostname": hostname, "data": {"usage": usage, "cores": [usage], "iowait": 0.5, "load_1m": 0.1, "load_5m": 0.2, "load_15m": 0.3}},
        {"type": "memory", "timestamp": ts, "hostname": hostname, "data": {"ram_total": 1000, "ram_used": 400, "ram_available": 600, "ram_used_pct": 40.0, "swap_total": 0, "swap_used": 0, "swap_pct": 0.0}}
    ])
    .to_string()
    .into_bytes()
}

fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn assert_json_error(status: StatusCode, body: &Value, expected: StatusCode, contains: &str) {
    assert_eq!(status, expected, "{body}");
    let msg = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error message: {body}"));
    assert!(
        msg.contains(contains),
        "`{msg}` should mention `{contains}`"
    );
}

// ---------------------------------------------------------------- registration and auth

#[tokio::test]
async fn registration_needs_a_valid_enrollment_token() {
    let h = harness().await;
    let (agent_id, credential) = h.register("web-01").await;
    assert_eq!(credential.len(), 64);
    let (status, agents) = h.admin("GET", "/api/v1/agents").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(agents[0]["id"], agent_id.as_str());
    assert_eq!(agents[0]["hostname"], "web-01");
    assert_eq!(agents[0]["local"], false);

    let (status, body) = h.send(register_request("wrong-token", "evil")).await;
    assert_json_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "enrollment token is invalid, expired or used up",
    );
    let (_, agents) = h.admin("GET", "/api/v1/agents").await;
    assert_eq!(
        agents.as_array().unwrap().len(),
        1,
        "a refused registration creates nothing"
    );
}

#[tokio::test]
async fn admin_endpoints_need_the_api_token() {
    let h = harness().await;
    for (method, uri) in [
        ("GET", "/api/v1/agents"),
        ("GET", "/metrics"),
        ("POST", "/admin/trigger_logs?hostname=x"),
        ("GET", "/api/v1/commands/x"),
    ] {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let (status, body) = h.send(req).await;
        assert_json_error(status, &body, StatusCode::UNAUTHORIZED, "Authorization");
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", "Bearer nope")
            .body(Body::empty())
            .unwrap();
        let (status, body) = h.send(req).await;
        assert_json_error(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            "invalid credentials",
        );
    }
    let (status, body) = h
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
}

#[tokio::test]
async fn an_api_token_is_not_an_agent_credential() {
    let h = harness().await;
    let (status, body) = h
        .ingest(ADMIN_TOKEN, "b1", None, cpu_batch("x", &now_rfc3339(), 1.0))
        .await;
    assert_json_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid credentials",
    );
}

// ---------------------------------------------------------------- ingest

#[tokio::test]
async fn ingested_batch_is_returned_by_history_and_latest() {
    let h = harness().await;
    let (agent_id, credential) = h.register("web-01").await;
    let ts = now_rfc3339();
    let (status, body) = h
        .ingest(
            &credential,
            "batch-1",
            Some("gzip"),
            gzip(&cpu_batch("web-01", &ts, 12.5)),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"stored": 2})));

    let (status, body) = h
        .admin(
            "GET",
            &format!("/api/v1/agents/{agent_id}/metrics/cpu?range=15m"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["type"], "cpu");
    let samples = body["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{body}");
    assert_eq!(samples[0]["data"]["usage"], 12.5);

    let latest = h.latest_types(&agent_id).await;
    let types: Vec<&str> = latest.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(
        types.contains(&"cpu") && types.contains(&"memory"),
        "{types:?}"
    );

    let (_, agent) = h.admin("GET", &format!("/api/v1/agents/{agent_id}")).await;
    assert_eq!(agent["status"], "online", "{agent}");

    let (status, metrics) = h.admin("GET", "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = metrics.as_str().unwrap();
    assert!(text.contains("spectra_batches_stored_total 1"), "{text}");
    assert!(
        text.contains(&format!(
            "spectra_agent_up{{agent_id=\"{agent_id}\",hostname=\"web-01\"}} 1"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn each_workload_of_a_container_list_gets_its_own_history() {
    let h = harness().await;
    let (agent_id, credential) = h.register("docker-01").await;
    let t0 = chrono::Utc::now() - chrono::Duration::seconds(120);
    for (i, (state, health, cpu)) in [("running", "healthy", 5.0), ("exited", "unhealthy", 0.0)]
        .into_iter()
        .enumerate()
    {
        let ts = (t0 + chrono::Duration::seconds(60 * i as i64)).to_rfc3339();
        let batch = json!([{"type": "container_list", "timestamp": ts, "hostname": "docker-01", "data": {"containers": [
            {"id": "abc123", "name": "web", "image": "nginx:1.27", "state": state, "source": "docker", "kind": "container", "cpu_percent": cpu, "memory_bytes": 1000, "net_rx_bytes": 10, "net_tx_bytes": 20, "health": health, "restarts": i},
            {"id": "101", "name": "db", "image": "", "state": "running", "source": "proxmox", "kind": "lxc", "cpu_percent": 1.5, "memory_bytes": 2000, "net_rx_bytes": 0, "net_tx_bytes": 0}
        ]}}]);
        let (s, b) = h
            .ingest(
                &credential,
                &format!("w-{i}"),
                None,
                batch.to_string().into_bytes(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, body) = h
        .admin(
            "GET",
            &format!("/api/v1/agents/{agent_id}/metrics/workload?range=1h"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let web: Vec<&Value> = body["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["data"]["workload"] == "docker/abc123")
        .collect();
    assert_eq!(web.len(), 2, "{body}");
    assert_eq!(web[0]["data"]["running"], 1);
    assert_eq!(web[0]["data"]["healthy"], 1);
    assert_eq!(web[1]["data"]["state"], "exited");
    assert_eq!(
        web[1]["data"]["running"], 0,
        "a stop is visible as a number"
    );
    assert_eq!(web[1]["data"]["healthy"], 0);
    assert_eq!(web[1]["data"]["restarts"], 1);
    // The list itself is still there, whole.
    let (_, lists) = h
        .admin(
            "GET",
            &format!("/api/v1/agents/{agent_id}/metrics/container_list?range=1h"),
        )
        .await;
    assert_eq!(lists["samples"].as_array().unwrap().len(), 2, "{lists}");
    let latest = h.latest_types(&agent_id).await;
    let workloads: Vec<&str> = latest
        .iter()
        .filter(|e| e["type"] == "workload")
        .map(|e| e["data"]["workload"].as_str().unwrap())
        .collect();
    assert_eq!(workloads.len(), 2, "{latest:?}");
}

#[tokio::test]
async fn zstd_and_query_batch_id_are_accepted() {
    let h = harness().await;
    let (_, credential) = h.register("web-01").await;
    let body = zstd::encode_all(&cpu_batch("web-01", &now_rfc3339(), 1.0)[..], 3).unwrap();
    let req = Request::post("/api/v1/metrics?batch_id=q-1")
        .header("authorization", format!("Bearer {credential}"))
        .header("content-encoding", "zstd")
        .body(Body::from(body))
        .unwrap();
    let (status, body) = h.send(req).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"stored": 2})));
}

#[tokio::test]
async fn bad_input_is_refused_with_a_message_and_nothing_is_stored() {
    let h = harness().await;
    let (agent_id, credential) = h.register("web-01").await;
    let ts = now_rfc3339();
    let good = cpu_batch("web-01", &ts, 5.0);

    let (s, b) = h
        .ingest(&credential, "b1", None, b"{not json".to_vec())
        .await;
    assert_json_error(s, &b, StatusCode::BAD_REQUEST, "line 1");
    let wrong_type =
        json!([{"type": "cpu", "timestamp": 5, "hostname": "web-01", "data": {}}]).to_string();
    let (s, b) = h
        .ingest(&credential, "b2", None, wrong_type.into_bytes())
        .await;
    assert_json_error(s, &b, StatusCode::BAD_REQUEST, "column");
    let (s, b) = h
        .ingest(
            &credential,
            "b3",
            None,
            json!({"type": "cpu"}).to_string().into_bytes(),
        )
        .await;
    assert_json_error(s, &b, StatusCode::BAD_REQUEST, "array");
    let (s, b) = h
        .ingest(
            &credential,
            "b4",
            Some("gzip"),
            b"definitely not gzip".to_vec(),
        )
        .await;
    assert_json_error(s, &b, StatusCode::BAD_REQUEST, "gzip");
    let (s, b) = h.ingest(&credential, "b5", Some("br"), good.clone()).await;
    assert_json_error(s, &b, StatusCode::UNSUPPORTED_MEDIA_TYPE, "br");
    let (s, b) = h.ingest(&credential, "bad/id", None, good.clone()).await;
    assert_json_error(s, &b, StatusCode::BAD_REQUEST, "batch id");
    let req = Request::post("/api/v1/metrics")
        .header("authorization", format!("Bearer {credential}"))
        .body(Body::from(good.clone()))
        .unwrap();
    let (s, b) = h.send(req).await;
    assert_json_error(s, &b, StatusCode::BAD_REQUEST, "batch id");
    let empty_type =
        json!([{"type": "", "timestamp": ts, "hostname": "web-01", "data": {}}]).to_string();
    let (s, b) = h
        .ingest(&credential, "b6", None, empty_type.into_bytes())
        .await;
    assert_json_error(s, &b, StatusCode::BAD_REQUEST, "type");
    // A known type whose payload has the wrong field types is refused whole,
    // even with a good envelope before it.
    let wrong_payload = json!([
        {"type": "memory", "timestamp": ts, "hostname": "web-01", "data": {"ram_total": 1, "ram_used": 1, "ram_available": 0, "ram_used_pct": 100.0, "swap_total": 0, "swap_used": 0, "swap_pct": 0.0}},
        {"type": "cpu", "timestamp": ts, "hostname": "web-01", "data": {"usage": "high", "cores": []}}
    ])
    .to_string();
    let (s, b) = h
        .ingest(&credential, "b6b", None, wrong_payload.into_bytes())
        .await;
    assert_json_error(s, &b, StatusCode::BAD_REQUEST, "envelope 1: `cpu` data");

    // A 100 MB decompression bomb, compressed as a stream (~100 KB).
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..100 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    let (s, b) = h.ingest(&credential, "b7", Some("gzip"), bomb).await;
    assert_json_error(
        s,
        &b,
        StatusCode::PAYLOAD_TOO_LARGE,
        "decompressed body exceeds 67108864 bytes",
    );

    // Over the 8 MiB compressed limit.
    let (s, b) = h
        .ingest(&credential, "b8", Some("gzip"), vec![7u8; 9 * 1024 * 1024])
        .await;
    assert_json_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "exceeds");

    // Credentials.
    let req = Request::post("/api/v1/metrics")
        .header("x-spectra-batch-id", "b9")
        .body(Body::from(good.clone()))
        .unwrap();
    let (s, b) = h.send(req).await;
    assert_json_error(s, &b, StatusCode::UNAUTHORIZED, "Authorization");
    let (s, b) = h.ingest("0000", "b10", None, good.clone()).await;
    assert_json_error(s, &b, StatusCode::UNAUTHORIZED, "invalid credentials");

    assert!(
        h.latest_types(&agent_id).await.is_empty(),
        "nothing may be stored"
    );
    let (_, hist) = h
        .admin(
            "GET",
            &format!("/api/v1/agents/{agent_id}/metrics/cpu?range=1h"),
        )
        .await;
    assert_eq!(hist["samples"], json!([]));
    let (_, metrics) = h.admin("GET", "/metrics").await;
    assert!(metrics
        .as_str()
        .unwrap()
        .contains("spectra_batches_stored_total 0"));
}

#[tokio::test]
async fn an_unknown_metric_type_is_stored_as_is() {
    let h = harness().await;
    let (agent_id, credential) = h.register("web-01").await;
    let batch = json!([{"type": "gpu_nvidia", "timestamp": now_rfc3339(), "hostname": "web-01", "data": {"util": 37, "name": "RTX"}}]);
    let (s, b) = h
        .ingest(&credential, "u1", None, batch.to_string().into_bytes())
        .await;
    assert_eq!((s, b), (StatusCode::OK, json!({"stored": 1})));
    let latest = h.latest_types(&agent_id).await;
    let gpu = latest
        .iter()
        .find(|e| e["type"] == "gpu_nvidia")
        .expect("unknown type kept");
    assert_eq!(gpu["data"], json!({"util": 37, "name": "RTX"}));
}

#[tokio::test]
async fn a_replayed_batch_is_acknowledged_but_stored_once() {
    let h = harness().await;
    let (agent_id, credential) = h.register("web-01").await;
    let batch = cpu_batch("web-01", &now_rfc3339(), 3.0);
    let (s, b) = h.ingest(&credential, "same-id", None, batch.clone()).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"stored": 2})));
    let (s, b) = h.ingest(&credential, "same-id", None, batch).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"duplicate": true})));
    let (_, hist) = h
        .admin(
            "GET",
            &format!("/api/v1/agents/{agent_id}/metrics/cpu?range=1h"),
        )
        .await;
    assert_eq!(hist["samples"].as_array().unwrap().len(), 1, "{hist}");
}

#[tokio::test]
async fn envelopes_naming_another_host_stay_with_the_sender() {
    let h = harness().await;
    let (victim_id, victim_cred) = h.register("victim").await;
    let (attacker_id, attacker_cred) = h.register("attacker").await;
    let ts = now_rfc3339();
    let (s, _) = h
        .ingest(&victim_cred, "v1", None, cpu_batch("victim", &ts, 10.0))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = h
        .ingest(&attacker_cred, "a1", None, cpu_batch("victim", &ts, 99.0))
        .await;
    assert_eq!(s, StatusCode::OK);

    let (_, victim) = h
        .admin(
            "GET",
            &format!("/api/v1/agents/{victim_id}/metrics/cpu?range=1h"),
        )
        .await;
    let usages: Vec<&Value> = victim["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["data"]["usage"])
        .collect();
    assert_eq!(usages, vec![&json!(10.0)], "the victim's data is untouched");
    let (_, attacker) = h
        .admin(
            "GET",
            &format!("/api/v1/agents/{attacker_id}/metrics/cpu?range=1h"),
        )
        .await;
    assert_eq!(attacker["samples"][0]["data"]["usage"], 99.0);
}

#[tokio::test]
async fn history_parameters_are_checked() {
    let h = harness().await;
    let (agent_id, _) = h.register("web-01").await;
    for (query, name) in [
        ("range=forever", "range"),
        ("start=yesterday", "start"),
        (
            "start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
            "start",
        ),
        ("range=1h&step=0s", "step"),
    ] {
        let (s, b) = h
            .admin(
                "GET",
                &format!("/api/v1/agents/{agent_id}/metrics/cpu?{query}"),
            )
            .await;
        assert_json_error(s, &b, StatusCode::BAD_REQUEST, name);
    }
    let (s, b) = h
        .admin("GET", "/api/v1/agents/nope/metrics/cpu?range=1h")
        .await;
    assert_json_error(s, &b, StatusCode::NOT_FOUND, "nope");
    let (s, b) = h.admin("GET", "/api/v1/agents/nope").await;
    assert_json_error(s, &b, StatusCode::NOT_FOUND, "nope");
}

// ---------------------------------------------------------------- commands

#[tokio::test]
async fn trigger_endpoints_validate_and_resolve_the_host() {
    let h = harness().await;
    let (agent_id, _) = h.register("web-01").await;
    h.register("twin").await;
    h.register("twin").await;

    for uri in [
        "/admin/trigger_logs?hostname=web-01",
        "/admin/trigger_disk?hostname=web-01&path=/var&top_n=5",
        "/admin/trigger_network?hostname=web-01&action=ping&target=127.0.0.1&count=2",
        &format!("/admin/trigger_network?agent_id={agent_id}&action=netstat"),
    ] {
        let (s, b) = h.admin("POST", uri).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{uri}: {b}");
        assert_eq!(b["status"], "queued");
        let id = b["command_id"].as_str().unwrap();
        let (s, cmd) = h.admin("GET", &format!("/api/v1/commands/{id}")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(cmd["agent_id"], agent_id.as_str());
        assert_eq!(cmd["status"], "queued");
    }
    let (_, list) = h
        .admin("GET", &format!("/api/v1/agents/{agent_id}/commands"))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 4);

    let (s, b) = h.admin("POST", "/admin/trigger_logs?hostname=ghost").await;
    assert_json_error(s, &b, StatusCode::NOT_FOUND, "ghost");
    let (s, b) = h
        .admin("POST", "/admin/trigger_logs?agent_id=agt_missing")
        .await;
    assert_json_error(s, &b, StatusCode::NOT_FOUND, "agt_missing");
    let (s, b) = h.admin("POST", "/admin/trigger_logs?hostname=twin").await;
    assert_json_error(s, &b, StatusCode::CONFLICT, "agt_");
    assert_eq!(
        b["error"].as_str().unwrap().matches("agt_").count(),
        2,
        "{b}"
    );

    for (uri, why) in [
        (
            "/admin/trigger_network?hostname=web-01&action=ping&target=%3Brm%20-rf%20%2F",
            "not a hostname or IP",
        ),
        (
            "/admin/trigger_network?hostname=web-01&action=format&target=x",
            "unknown action",
        ),
        (
            "/admin/trigger_disk?hostname=web-01&path=/var/../etc",
            "path",
        ),
        (
            "/admin/trigger_disk?hostname=web-01&path=/var&top_n=0",
            "top_n",
        ),
        ("/admin/trigger_disk?hostname=web-01&top_n=many", "top_n"),
    ] {
        let (s, b) = h.admin("POST", uri).await;
        assert_json_error(s, &b, StatusCode::BAD_REQUEST, why);
    }
    let (_, list) = h
        .admin("GET", &format!("/api/v1/agents/{agent_id}/commands"))
        .await;
    assert_eq!(
        list.as_array().unwrap().len(),
        4,
        "refused commands are not queued"
    );
}

#[tokio::test]
async fn commands_api_takes_typed_json() {
    let h = harness().await;
    let (agent_id, _) = h.register("web-01").await;
    let post = |body: Value| {
        Request::post(format!("/api/v1/agents/{agent_id}/commands"))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (s, b) = h.send(post(json!({"type": "NETWORK_DIAG", "payload": {"action": "connect", "target": "example.com:443"}}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, b) = h.send(post(json!({"type": "FORMAT_DISK"}))).await;
    assert_json_error(s, &b, StatusCode::BAD_REQUEST, "FORMAT_DISK");
    let (s, b) = h.send(post(json!({"type": "NETWORK_DIAG", "payload": {"action": "ping", "target": "x", "shell": "id"}}))).await;
    assert_json_error(s, &b, StatusCode::BAD_REQUEST, "shell");
    let req = Request::post("/api/v1/agents/agt_nope/commands")
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Body::from(json!({"type": "LIST_MOUNTS"}).to_string()))
        .unwrap();
    let (s, b) = h.send(req).await;
    assert_json_error(s, &b, StatusCode::NOT_FOUND, "agt_nope");
}

#[tokio::test]
async fn per_agent_limits_refuse_with_429_and_every_outcome_is_audited() {
    let h = harness_with(|s| {
        s.command_max_open = 2;
        s.command_max_per_minute = 3;
    })
    .await;
    let (agent_id, credential) = h.register("web-01").await;
    let (other_id, _) = h.register("db-01").await;
    let trigger = |host: &str| format!("/admin/trigger_network?hostname={host}&action=netstat");

    for _ in 0..2 {
        let (s, b) = h.admin("POST", &trigger("web-01")).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    }
    let (s, b) = h.admin("POST", &trigger("web-01")).await;
    assert_json_error(
        s,
        &b,
        StatusCode::TOO_MANY_REQUESTS,
        "2 commands queued or running",
    );
    // Another agent has its own budget.
    let (s, b) = h.admin("POST", &trigger("db-01")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");

    // The agent takes one and answers it: a slot frees up.
    let take_and_answer = || async {
        let take = Request::get("/api/v1/agent/command?wait=0s")
            .header("authorization", format!("Bearer {credential}"))
            .body(Body::empty())
            .unwrap();
        let (s, command) = h.send(take).await;
        assert_eq!(s, StatusCode::OK, "{command}");
        let answer = Request::post("/api/v1/agent/command_result")
            .header("authorization", format!("Bearer {credential}"))
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"id": command["id"], "type": "NETWORK_DIAG", "payload": {"action": "netstat"}})
                    .to_string(),
            ))
            .unwrap();
        let (s, b) = h.send(answer).await;
        assert!(s.is_success(), "{s} {b}");
        command
    };
    let command = take_and_answer().await;
    let (s, b) = h.admin("POST", &trigger("web-01")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "a slot is free again: {b}");
    // With a slot free once more, the per-minute budget (3) is the limit.
    take_and_answer().await;
    let (s, b) = h.admin("POST", &trigger("web-01")).await;
    assert_json_error(s, &b, StatusCode::TOO_MANY_REQUESTS, "in the last minute");

    // Hostile input is refused and audited too.
    let (s, b) = h
        .admin(
            "POST",
            "/admin/trigger_network?hostname=web-01&action=ping&target=%24(id)",
        )
        .await;
    assert_json_error(s, &b, StatusCode::BAD_REQUEST, "not a hostname or IP");

    let (s, audit) = h
        .admin("GET", &format!("/api/v1/audit?agent_id={agent_id}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    let events: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let outcome_words: Vec<(&str, &str)> = events
        .iter()
        .map(|(a, o)| (a.as_str(), o.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        outcome_words,
        [
            ("command.queue", "refused"),
            ("command.queue", "refused"),
            ("command.done", "ok"),
            ("command.queue", "queued"),
            ("command.done", "ok"),
            ("command.queue", "refused"),
            ("command.queue", "queued"),
            ("command.queue", "queued"),
            ("enroll.ok", "ok"),
        ],
        "newest first, from the agent's enrollment on: {audit}"
    );
    let newest = &audit[0];
    assert_eq!(newest["actor"], "user:admin", "{newest}");
    assert!(
        newest["outcome"]
            .as_str()
            .unwrap()
            .contains("not a hostname"),
        "{newest}"
    );
    assert_eq!(newest["detail"]["type"], "NETWORK_DIAG");
    let done = &audit[4];
    assert_eq!(done["actor"], format!("agent:{agent_id}"));
    assert_eq!(done["target"], command["id"]);
    assert_eq!(done["detail"]["requested_by"], "user:admin");

    // Filters: by action prefix, and the other agent's events stay apart.
    let (_, dones) = h.admin("GET", "/api/v1/audit?action=command.done").await;
    assert_eq!(dones.as_array().unwrap().len(), 2);
    let (_, other) = h
        .admin("GET", &format!("/api/v1/audit?agent_id={other_id}"))
        .await;
    assert_eq!(
        other.as_array().unwrap().len(),
        2,
        "its enrollment and its one command: {other}"
    );
    let (s, b) = h.admin("GET", "/api/v1/audit?limit=0").await;
    assert_json_error(s, &b, StatusCode::BAD_REQUEST, "limit");
    let (s, b) = h.admin("GET", "/api/v1/audit?since=yesterday").await;
    assert_json_error(s, &b, StatusCode::BAD_REQUEST, "since");
    let req = Request::get("/api/v1/audit").body(Body::empty()).unwrap();
    let (s, _) = h.send(req).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_commands_are_audited_as_expired() {
    let h = harness_with(|s| s.command_ttl = Duration::from_millis(1)).await;
    h.register("web-01").await;
    let (s, b) = h
        .admin("POST", "/admin/trigger_disk?hostname=web-01&path=/var")
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["command_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(h.state.commands.expire_due().await.unwrap(), 1);
    let (_, cmd) = h.admin("GET", &format!("/api/v1/commands/{id}")).await;
    assert_eq!(cmd["status"], "expired");
    let (_, audit) = h.admin("GET", "/api/v1/audit?action=command.expired").await;
    assert_eq!(audit[0]["target"], id.as_str());
    assert_eq!(audit[0]["actor"], "system");
    assert!(audit[0]["outcome"].as_str().unwrap().starts_with("expired"));
}

/// Waits (with a deadline) until `n` agents are long-polling.
async fn wait_for_pollers(state: &AppState, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while state.commands.polling_agents() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent never started polling"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_long_polling_agent_receives_a_command_queued_later_over_tcp() {
    let h = harness().await;
    let (agent_id, credential) = h.register("web-01").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(spectra_server::serve(
        listener,
        h.state.clone(),
        h.shutdown.clone(),
    ));
    let client = reqwest::Client::new();

    let poll = tokio::spawn({
        let (client, base, credential) = (client.clone(), base.clone(), credential.clone());
        async move {
            client
                .get(format!("{base}/api/v1/agent/command?wait=30s"))
                .bearer_auth(credential)
                .send()
                .await
                .unwrap()
        }
    });
    wait_for_pollers(&h.state, 1).await;

    let queued: Value = client
        .post(format!(
            "{base}/admin/trigger_network?hostname=web-01&action=ping&target=127.0.0.1"
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let command_id = queued["command_id"].as_str().unwrap().to_owned();

    let resp = poll.await.unwrap();
    assert_eq!(resp.status(), 200);
    let command: Value = resp.json().await.unwrap();
    assert_eq!(command["id"], command_id.as_str());
    assert_eq!(command["type"], "NETWORK_DIAG");
    assert_eq!(command["payload"]["target"], "127.0.0.1");

    // Someone waits for the result while the agent answers.
    let waiter = tokio::spawn({
        let (client, base, id) = (client.clone(), base.clone(), command_id.clone());
        async move {
            client
                .get(format!("{base}/api/v1/commands/{id}?wait=5s"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    let result = json!({"id": command_id, "type": "NETWORK_DIAG", "payload": {"action": "ping", "target": "127.0.0.1", "ping_results": []}});
    let resp = client
        .post(format!("{base}/api/v1/agent/command_result"))
        .bearer_auth(&credential)
        .json(&result)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let done = waiter.await.unwrap();
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["agent_id"], agent_id.as_str());
    assert_eq!(done["result"]["target"], "127.0.0.1");
    assert_eq!(done["requested_by"], "user:admin");

    // Another agent cannot answer it.
    let (_, other) = h.register("other").await;
    let resp = client
        .post(format!("{base}/api/v1/agent/command_result"))
        .bearer_auth(&other)
        .json(&result)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Shutdown: a pending long-poll answers 204 and the server stops.
    let poll = tokio::spawn({
        let (client, base) = (client.clone(), base.clone());
        async move {
            client
                .get(format!("{base}/api/v1/agent/command?wait=30s"))
                .bearer_auth(credential)
                .send()
                .await
                .unwrap()
        }
    });
    wait_for_pollers(&h.state, 1).await;
    h.shutdown.cancel();
    assert_eq!(poll.await.unwrap().status(), 204);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops after shutdown")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_idle_long_poll_answers_204() {
    let h = harness().await;
    let (_, credential) = h.register("web-01").await;
    let req = Request::get("/api/v1/agent/command?wait=0s")
        .header("authorization", format!("Bearer {credential}"))
        .body(Body::empty())
        .unwrap();
    let (s, b) = h.send(req).await;
    assert_eq!((s, b), (StatusCode::NO_CONTENT, Value::Null));
    let req = Request::get("/api/v1/agent/command?wait=soon")
        .header("authorization", format!("Bearer {credential}"))
        .body(Body::empty())
        .unwrap();
    let (s, b) = h.send(req).await;
    assert_json_error(s, &b, StatusCode::BAD_REQUEST, "wait");
}

// ---------------------------------------------------------------- first run and the local agent

#[tokio::test]
async fn first_run_creates_the_admin_once_and_keeps_the_enrollment_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let settings = Settings {
        data_dir: dir.path().to_owned(),
        local_agent: false,
        ..Settings::default()
    };
    let first = first_run::ensure_credentials(store.as_ref(), &settings)
        .await
        .unwrap();
    let initial = first.initial.as_ref().expect("admin created on first run");
    let file = dir.path().join(first_run::CREDENTIALS_FILE);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(initial.password.expose()) && text.contains(initial.api_token.expose()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(dir.path().join(first_run::ENROLLMENT_TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let rendered = first.render();
    assert!(rendered.contains(&format!(
        "enrollment token: {}",
        first.enrollment_token.expose()
    )));

    // The printed token works over the API.
    let state = AppState::new(store.clone(), settings.clone(), CancellationToken::new());
    let app = spectra_server::app(state);
    let req = Request::get("/api/v1/agents")
        .header(
            "authorization",
            format!("Bearer {}", initial.api_token.expose()),
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(app.clone(), req).await.0, StatusCode::OK);

    // Second start: no new admin, same enrollment token; a new SPECTRA_ADMIN_TOKEN is added.
    let settings2 = Settings {
        admin_token: Some(Secret::new("later-token")),
        ..settings
    };
    let second = first_run::ensure_credentials(store.as_ref(), &settings2)
        .await
        .unwrap();
    assert!(second.initial.is_none());
    assert_eq!(
        second.enrollment_token.expose(),
        first.enrollment_token.expose()
    );
    let req = Request::get("/api/v1/agents")
        .header("authorization", "Bearer later-token")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(app.clone(), req).await.0, StatusCode::OK);
    let (s, _) = send(app, register_request(second.enrollment_token.expose(), "h")).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn local_agent_keeps_its_id_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let host = spectra_protocol::HostInfo {
        hostname: "me".into(),
        ..Default::default()
    };
    let a = local_agent::ensure_local_agent(store.as_ref(), host.clone())
        .await
        .unwrap();
    let b = local_agent::ensure_local_agent(store.as_ref(), host)
        .await
        .unwrap();
    assert_eq!(a, b);
    let agents = store.list_agents().await.unwrap();
    assert_eq!(agents.len(), 1);
    assert!(agents[0].local);
}

#[tokio::test]
async fn local_agent_reports_this_host() {
    let h = harness().await;
    let stop = h.shutdown.child_token();
    let task = local_agent::start_local_agent(&h.state, stop.clone())
        .await
        .unwrap();
    let agent_id = h
        .state
        .store
        .get_setting(local_agent::LOCAL_AGENT_ID_KEY)
        .await
        .unwrap()
        .expect("registered");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let latest = h.latest_types(&agent_id).await;
        if latest.iter().any(|e| e["type"] == "memory") {
            let mem = latest.iter().find(|e| e["type"] == "memory").unwrap();
            assert!(mem["data"]["ram_total"].as_u64().unwrap() > 0, "{mem}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no memory envelope from the local agent: {latest:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, agents) = h.admin("GET", "/api/v1/agents").await;
    assert_eq!(agents[0]["local"], true);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("local agent stops")
        .unwrap();
}

#[tokio::test]
async fn an_agent_may_hold_two_command_polls_not_more() {
    let h = harness().await;
    let (_, credential) = h.register("web-01").await;
    let poll = || {
        let app = h.app();
        let credential = credential.clone();
        tokio::spawn(async move {
            let req = Request::get("/api/v1/agent/command?wait=30s")
                .header("authorization", format!("Bearer {credential}"))
                .body(Body::empty())
                .unwrap();
            send(app, req).await
        })
    };
    let first = poll();
    let second = poll();
    wait_for_pollers(&h.state, 1).await;
    // Both polls wait on the agent's one key; give the second time to join.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let third = Request::get("/api/v1/agent/command?wait=0s")
            .header("authorization", format!("Bearer {credential}"))
            .body(Body::empty())
            .unwrap();
        let (s, b) = h.send(third).await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert!(b["error"].as_str().unwrap().contains("polls open"), "{b}");
            break;
        }
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "a third poll was never refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.shutdown.cancel();
    let (s1, _) = first.await.unwrap();
    let (s2, _) = second.await.unwrap();
    assert_eq!((s1, s2), (StatusCode::NO_CONTENT, StatusCode::NO_CONTENT));
}
