//! Enrollment and the agent lifecycle (issue 5), driven through
//! `app(state)`: enrollment tokens (uses, expiry, revocation, labels),
//! approval mode, revoke, delete, labels, credential rotation, host
//! updates and enrollment throttling. Each test has its own embedded store.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use spectra_server::config::{Secret, Settings};
use spectra_server::services::auth::hash_secret;
use spectra_server::state::ENROLL_MAX_FAILURES;
use spectra_server::{first_run, AppState};
use spectra_store::{EmbeddedConfig, EmbeddedStore, EnrollmentTokenRecord, HistoryQuery, Store};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "test-admin-token";
const ENROLL_TOKEN: &str = "test-enroll-token";

struct Harness {
    _dir: TempDir,
    state: AppState,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn harness_with(adjust: impl FnOnce(&mut Settings)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: dir.path().to_owned(),
        local_agent: false,
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        enroll_token: Some(Secret::new(ENROLL_TOKEN)),
        ..Settings::default()
    };
    adjust(&mut settings);
    let mut config = EmbeddedConfig::with_path(dir.path().join("spectra.db"));
    config.background_maintenance = false;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(config).unwrap());
    first_run::ensure_credentials(store.as_ref(), &settings)
        .await
        .unwrap();
    let state = AppState::new(store, settings, CancellationToken::new());
    Harness { _dir: dir, state }
}

async fn harness() -> Harness {
    harness_with(|_| {}).await
}

fn request(method: &str, uri: &str, bearer: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// The request as if it came from `ip` (the router sees no socket here).
fn from(ip: &str, mut req: Request<Body>) -> Request<Body> {
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

fn host(hostname: &str) -> Value {
    json!({
        "hostname": hostname, "os": "linux", "platform": "debian", "platform_ver": "12",
        "kernel": "6.1.0", "arch": "x86_64", "cpu_model": "test", "cpu_cores": 2,
        "ram_total": 1024, "agent_version": "0.1.0", "boot_time": 1700000000, "ips": ["10.0.0.5"]
    })
}

fn register_request(token: &str, hostname: &str) -> Request<Body> {
    request(
        "POST",
        "/api/v1/agent/register",
        None,
        Some(json!({"token": token, "host": host(hostname)})),
    )
}

fn cpu_batch(hostname: &str) -> Value {
    let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    json!([{"type": "cpu", "timestamp": ts, "hostname": hostname,
            "data": {"usage": 12.5, "cores": [12.5], "load_1m": 0.1, "load_5m": 0.2, "load_15m": 0.3}}])
}

impl Harness {
    async fn send(&self, req: Request<Body>) -> Reply {
        let app: Router = spectra_server::app(self.state.clone());
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn admin(&self, method: &str, uri: &str, body: Option<Value>) -> Reply {
        self.send(request(method, uri, Some(ADMIN_TOKEN), body))
            .await
    }

    /// Registers with `token`; the whole answer.
    async fn enroll(&self, token: &str, hostname: &str) -> Reply {
        self.send(register_request(token, hostname)).await
    }

    /// Registers with `token`, expecting 200: `(agent_id, credential)`.
    async fn enroll_ok(&self, token: &str, hostname: &str) -> (String, String) {
        let r = self.enroll(token, hostname).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        (
            r.body["agent_id"].as_str().unwrap().to_owned(),
            r.body["credential"].as_str().unwrap().to_owned(),
        )
    }

    async fn new_token(&self, body: Value) -> (String, String) {
        let r = self
            .admin("POST", "/api/v1/enrollment-tokens", Some(body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (
            r.body["id"].as_str().unwrap().to_owned(),
            r.body["token"].as_str().unwrap().to_owned(),
        )
    }

    async fn ingest(&self, credential: &str, batch_id: &str, hostname: &str) -> Reply {
        let req = Request::builder()
            .method("POST")
            .uri("/api/v1/metrics")
            .header("authorization", format!("Bearer {credential}"))
            .header("x-spectra-batch-id", batch_id)
            .body(Body::from(cpu_batch(hostname).to_string()))
            .unwrap();
        self.send(req).await
    }

    async fn poll(&self, credential: &str) -> Reply {
        self.send(request(
            "GET",
            "/api/v1/agent/command?wait=0",
            Some(credential),
            None,
        ))
        .await
    }

    async fn agent(&self, id: &str) -> Reply {
        self.admin("GET", &format!("/api/v1/agents/{id}"), None)
            .await
    }

    /// Every stored cpu sample of the agent, read from the store itself.
    async fn cpu_samples(&self, agent_id: &str) -> usize {
        let now = chrono::Utc::now();
        self.state
            .store
            .history(HistoryQuery {
                agent_id: agent_id.to_owned(),
                metric_type: "cpu".into(),
                start: now - chrono::Duration::hours(1),
                end: now + chrono::Duration::hours(1),
                step: None,
            })
            .await
            .unwrap()
            .len()
    }

    async fn audit_actions(&self, prefix: &str) -> Vec<(String, Value)> {
        let r = self
            .admin("GET", &format!("/api/v1/audit?action={prefix}"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["action"].as_str().unwrap().to_owned(), e.clone()))
            .collect()
    }
}

fn assert_error(r: &Reply, status: StatusCode, contains: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let msg = r.body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error message: {}", r.body));
    assert!(
        msg.contains(contains),
        "`{msg}` should mention `{contains}`"
    );
}

// ---------------------------------------------------------------- enrollment tokens

#[tokio::test]
async fn a_one_time_token_enrolls_one_agent_only() {
    let h = harness().await;
    let (id, token) = h.new_token(json!({"uses": 1})).await;
    assert_eq!(token.len(), 64);
    h.enroll_ok(&token, "web-01").await;
    let r = h.enroll(&token, "web-02").await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "enrollment token is invalid, expired or used up",
    );
    // The list shows it spent, and never the secret.
    let list = h.admin("GET", "/api/v1/enrollment-tokens", None).await;
    assert_eq!(list.status, StatusCode::OK);
    let t = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap();
    assert_eq!(t["uses_left"], 0);
    assert_eq!(t["usable"], false);
    assert!(!list.body.to_string().contains(&token));
    let agents = h.admin("GET", "/api/v1/agents", None).await;
    assert_eq!(agents.body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_n_use_token_enrolls_n_agents_with_its_labels() {
    let h = harness().await;
    let (_, token) = h
        .new_token(json!({"uses": 2, "expires_in": "7d", "labels": {"site": "lab", "rack": "r2"}}))
        .await;
    let (a, _) = h.enroll_ok(&token, "pi-01").await;
    let (b, _) = h.enroll_ok(&token, "pi-02").await;
    assert_eq!(
        h.enroll(&token, "pi-03").await.status,
        StatusCode::UNAUTHORIZED
    );
    for id in [a, b] {
        let r = h.agent(&id).await;
        assert_eq!(
            r.body["labels"],
            json!({"site": "lab", "rack": "r2"}),
            "{}",
            r.body
        );
    }
    // The startup token is unlimited and labels nothing.
    let (c, _) = h.enroll_ok(ENROLL_TOKEN, "pi-04").await;
    assert_eq!(h.agent(&c).await.body["labels"], json!({}));
}

#[tokio::test]
async fn token_requests_are_checked_and_name_the_field() {
    let h = harness().await;
    for (body, field) in [
        (json!({"uses": 0}), "uses"),
        (json!({"uses": -3}), "uses"),
        (json!({"expires_in": "soon"}), "expires_in"),
        (json!({"expires_in": "0s"}), "expires_in"),
        (json!({"labels": {"bad key!": "x"}}), "labels"),
        (json!({"labels": {"k": "a\nb"}}), "labels"),
        (json!({"usage": 3}), "usage"),
    ] {
        let r = h
            .admin("POST", "/api/v1/enrollment-tokens", Some(body.clone()))
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, field);
    }
    // An empty body means unlimited, never expiring, no labels.
    let r = h
        .admin("POST", "/api/v1/enrollment-tokens", Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["uses_left"], Value::Null);
    assert_eq!(r.body["expires_at"], Value::Null);
    let r = h
        .admin(
            "POST",
            "/api/v1/enrollment-tokens",
            Some(json!({"uses": null, "expires_in": "1h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(r.body["expires_at"].clone()).unwrap();
    let left = expires - chrono::Utc::now();
    assert!(left > chrono::Duration::minutes(59) && left <= chrono::Duration::hours(1));
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let h = harness().await;
    // Written through the store, already past its expiry: no waiting.
    let token = "expired-enrollment-token";
    h.state
        .store
        .create_enrollment_token(EnrollmentTokenRecord {
            id: "enr_expired".into(),
            token_hash: hash_secret(token),
            uses_left: None,
            expires_at: Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
            labels: BTreeMap::new(),
            created_at: chrono::Utc::now() - chrono::Duration::hours(2),
        })
        .await
        .unwrap();
    let r = h.enroll(token, "late-01").await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "expired");
    let list = h.admin("GET", "/api/v1/enrollment-tokens", None).await;
    let t = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "enr_expired")
        .unwrap()
        .clone();
    assert_eq!(t["usable"], false, "{t}");
}

#[tokio::test]
async fn a_revoked_token_is_refused_and_its_agents_keep_working() {
    let h = harness().await;
    let (id, token) = h.new_token(json!({})).await;
    let (_, credential) = h.enroll_ok(&token, "db-01").await;
    let r = h
        .admin("DELETE", &format!("/api/v1/enrollment-tokens/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_error(
        &h.enroll(&token, "db-02").await,
        StatusCode::UNAUTHORIZED,
        "invalid",
    );
    assert_eq!(
        h.ingest(&credential, "b1", "db-01").await.status,
        StatusCode::OK
    );
    let r = h
        .admin("DELETE", &format!("/api/v1/enrollment-tokens/{id}"), None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not found");
    let audit = h.audit_actions("enrollment_token").await;
    let actions: Vec<&str> = audit.iter().map(|(a, _)| a.as_str()).collect();
    assert!(actions.contains(&"enrollment_token.create"), "{actions:?}");
    assert!(actions.contains(&"enrollment_token.revoke"), "{actions:?}");
    assert!(
        audit.iter().all(|(_, e)| e["actor"] == "user:admin"),
        "{audit:?}"
    );
}

// ---------------------------------------------------------------- approval mode

#[tokio::test]
async fn under_approval_mode_a_new_agent_waits_and_its_data_is_refused() {
    let h = harness_with(|s| s.require_approval = true).await;
    let r = h.enroll(ENROLL_TOKEN, "new-01").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["status"], "pending");
    let id = r.body["agent_id"].as_str().unwrap().to_owned();
    let credential = r.body["credential"].as_str().unwrap().to_owned();

    let refused = h.ingest(&credential, "b1", "new-01").await;
    assert_error(&refused, StatusCode::FORBIDDEN, "waiting for approval");
    assert_error(
        &h.poll(&credential).await,
        StatusCode::FORBIDDEN,
        "waiting for approval",
    );
    assert_eq!(
        h.cpu_samples(&id).await,
        0,
        "nothing of a pending agent is stored"
    );
    assert_eq!(h.agent(&id).await.body["status"], "pending");

    let r = h
        .admin("POST", &format!("/api/v1/agents/{id}/approve"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_ne!(r.body["status"], "pending");
    // The same credential works from now on (the refused batch id too).
    assert_eq!(
        h.ingest(&credential, "b1", "new-01").await.status,
        StatusCode::OK
    );
    assert_eq!(h.cpu_samples(&id).await, 1);
    assert_eq!(h.agent(&id).await.body["status"], "online");

    let audit = h.audit_actions("enroll").await;
    assert!(
        audit
            .iter()
            .any(|(a, e)| a == "enroll.pending" && e["agent_id"] == id.as_str()),
        "{audit:?}"
    );
    let audit = h.audit_actions("agent.approve").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].1["agent_id"], id.as_str());
}

#[tokio::test]
async fn an_admin_turns_approval_mode_on_and_off_at_runtime() {
    let h = harness().await;
    let get = h.admin("GET", "/api/v1/settings/enrollment", None).await;
    assert_eq!(get.body, json!({"require_approval": false}));
    let put = h
        .admin(
            "PUT",
            "/api/v1/settings/enrollment",
            Some(json!({"require_approval": true})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(
        h.admin("GET", "/api/v1/settings/enrollment", None)
            .await
            .body,
        json!({"require_approval": true})
    );
    assert_eq!(
        h.enroll(ENROLL_TOKEN, "a").await.status,
        StatusCode::ACCEPTED
    );
    h.admin(
        "PUT",
        "/api/v1/settings/enrollment",
        Some(json!({"require_approval": false})),
    )
    .await;
    assert_eq!(h.enroll(ENROLL_TOKEN, "b").await.status, StatusCode::OK);
    let bad = h
        .admin(
            "PUT",
            "/api/v1/settings/enrollment",
            Some(json!({"require_approval": "yes"})),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "require_approval");
    let audit = h.audit_actions("settings.require_approval").await;
    assert_eq!(audit.len(), 2, "{audit:?}");
}

// ---------------------------------------------------------------- revoke, delete, labels

#[tokio::test]
async fn a_revoked_agent_is_refused_at_once() {
    let h = harness().await;
    let (id, credential) = h.enroll_ok(ENROLL_TOKEN, "web-01").await;
    // This caches the credential as active.
    assert_eq!(
        h.ingest(&credential, "b1", "web-01").await.status,
        StatusCode::OK
    );
    let r = h
        .admin("POST", &format!("/api/v1/agents/{id}/revoke"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "revoked");
    assert_error(
        &h.ingest(&credential, "b2", "web-01").await,
        StatusCode::FORBIDDEN,
        "revoked",
    );
    assert_error(&h.poll(&credential).await, StatusCode::FORBIDDEN, "revoked");
    assert_eq!(h.cpu_samples(&id).await, 1, "history stays until deleted");
    let r = h
        .admin("POST", "/api/v1/agents/no-such-agent/revoke", None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "no-such-agent");
    assert_eq!(h.audit_actions("agent.revoke").await.len(), 1);
}

#[tokio::test]
async fn deleting_an_agent_purges_its_data() {
    let h = harness().await;
    let (id, credential) = h.enroll_ok(ENROLL_TOKEN, "old-01").await;
    let (other, other_credential) = h.enroll_ok(ENROLL_TOKEN, "keep-01").await;
    assert_eq!(
        h.ingest(&credential, "b1", "old-01").await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.ingest(&other_credential, "b1", "keep-01").await.status,
        StatusCode::OK
    );
    assert_eq!(h.cpu_samples(&id).await, 1);

    let r = h
        .admin("DELETE", &format!("/api/v1/agents/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(h.agent(&id).await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.cpu_samples(&id).await, 0);
    assert!(h.state.store.latest(&id).await.unwrap().is_empty());
    assert_eq!(
        h.ingest(&credential, "b2", "old-01").await.status,
        StatusCode::UNAUTHORIZED
    );
    // Only that agent.
    assert_eq!(h.cpu_samples(&other).await, 1);
    let agents = h.admin("GET", "/api/v1/agents", None).await;
    assert_eq!(agents.body.as_array().unwrap().len(), 1);
    assert_eq!(
        h.admin("DELETE", &format!("/api/v1/agents/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(h.audit_actions("agent.delete").await.len(), 1);
}

#[tokio::test]
async fn labels_are_replaced_and_checked() {
    let h = harness().await;
    let (id, _) = h.enroll_ok(ENROLL_TOKEN, "web-01").await;
    let uri = format!("/api/v1/agents/{id}/labels");
    let r = h
        .admin(
            "PUT",
            &uri,
            Some(json!({"labels": {"env": "prod", "team": "ops"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        h.agent(&id).await.body["labels"],
        json!({"env": "prod", "team": "ops"})
    );
    let r = h
        .admin("PUT", &uri, Some(json!({"labels": {"env": "dev"}})))
        .await;
    assert_eq!(r.body["labels"], json!({"env": "dev"}));
    assert_error(
        &h.admin("PUT", &uri, Some(json!({"labels": {"": "x"}})))
            .await,
        StatusCode::BAD_REQUEST,
        "labels",
    );
    assert_error(
        &h.admin("PUT", &uri, Some(json!({"env": "dev"}))).await,
        StatusCode::BAD_REQUEST,
        "env",
    );
    assert_eq!(h.agent(&id).await.body["labels"], json!({"env": "dev"}));
    let audit = h.audit_actions("agent.labels").await;
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(audit[0].1["detail"]["after"], json!({"env": "dev"}));
}

// ---------------------------------------------------------------- rotation and host info

#[tokio::test]
async fn rotation_replaces_the_credential_at_once() {
    let h = harness().await;
    let (id, old) = h.enroll_ok(ENROLL_TOKEN, "web-01").await;
    assert_eq!(h.ingest(&old, "b1", "web-01").await.status, StatusCode::OK);
    let r = h
        .send(request("POST", "/api/v1/agent/rotate", Some(&old), None))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let new = r.body["credential"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(
        h.ingest(&old, "b2", "web-01").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.ingest(&new, "b3", "web-01").await.status, StatusCode::OK);
    assert_eq!(h.cpu_samples(&id).await, 2);
    let audit = h.audit_actions("agent.rotate").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].1["actor"], format!("agent:{id}"));
}

#[tokio::test]
async fn an_admin_asks_an_agent_to_rotate_through_its_next_poll() {
    let h = harness().await;
    let (id, credential) = h.enroll_ok(ENROLL_TOKEN, "web-01").await;
    let r = h.poll(&credential).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(r.headers.get("x-spectra-rotate").is_none());

    let r = h
        .admin("POST", &format!("/api/v1/agents/{id}/rotate"), None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let r = h.poll(&credential).await;
    assert_eq!(r.headers.get("x-spectra-rotate").unwrap(), "1");

    let rotated = h
        .send(request(
            "POST",
            "/api/v1/agent/rotate",
            Some(&credential),
            None,
        ))
        .await;
    let new = rotated.body["credential"].as_str().unwrap().to_owned();
    let r = h.poll(&new).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(
        r.headers.get("x-spectra-rotate").is_none(),
        "the request is done"
    );
    assert_eq!(
        h.admin("POST", "/api/v1/agents/nope/rotate", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let audit = h.audit_actions("agent.rotate").await;
    let outcomes: Vec<&str> = audit
        .iter()
        .map(|(_, e)| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ok", "requested"], "newest first");
}

#[tokio::test]
async fn an_agent_keeps_its_host_info_current() {
    let h = harness().await;
    let (id, credential) = h.enroll_ok(ENROLL_TOKEN, "web-01").await;
    let mut newer = host("web-01");
    newer["kernel"] = json!("6.12.0");
    newer["agent_version"] = json!("0.2.0");
    newer["ips"] = json!(["10.0.0.6", "fd00::6"]);
    let r = h
        .send(request(
            "PUT",
            "/api/v1/agent/host",
            Some(&credential),
            Some(newer),
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let agent = h.agent(&id).await.body;
    assert_eq!(agent["host"]["kernel"], "6.12.0");
    assert_eq!(agent["host"]["agent_version"], "0.2.0");
    assert_eq!(agent["host"]["ips"], json!(["10.0.0.6", "fd00::6"]));
    let mut empty = host("");
    empty["os"] = json!("linux");
    let r = h
        .send(request(
            "PUT",
            "/api/v1/agent/host",
            Some(&credential),
            Some(empty),
        ))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "hostname");
    let r = h
        .send(request(
            "PUT",
            "/api/v1/agent/host",
            Some(ADMIN_TOKEN),
            Some(host("x")),
        ))
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "an API token is no agent credential"
    );
}

// ---------------------------------------------------------------- throttling

#[tokio::test]
async fn failed_enrollments_throttle_the_address_not_others() {
    let h = harness().await;
    for i in 0..ENROLL_MAX_FAILURES {
        let r = h
            .send(from("192.0.2.7", register_request("wrong-token", "evil")))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "attempt {i}: {}",
            r.body
        );
    }
    // Over the limit: even the right token waits.
    let r = h
        .send(from("192.0.2.7", register_request(ENROLL_TOKEN, "evil")))
        .await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "try again in");
    let r = h
        .send(from("198.51.100.9", register_request(ENROLL_TOKEN, "good")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let failed = h.audit_actions("enroll.failed").await;
    assert_eq!(failed.len(), ENROLL_MAX_FAILURES);
    assert_eq!(failed[0].1["source_ip"], "192.0.2.7");
    let ok = h.audit_actions("enroll.ok").await;
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].1["source_ip"], "198.51.100.9");
}
