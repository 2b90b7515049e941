//! Who may call what (SPEC §4, issue 5): the role matrix over every route
//! of the router's own table, sessions with their cookie and CSRF rules,
//! users, API tokens and login throttling.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use spectra_server::config::{Secret, Settings};
use spectra_server::http::routes::{route_table, Access};
use spectra_server::services::auth::{hash_password, new_api_token_record, role_rank};
use spectra_server::{first_run, AppState};
use spectra_store::{EmbeddedConfig, EmbeddedStore, Role, Store, UserRecord};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "test-admin-token";
const ENROLL_TOKEN: &str = "test-enroll-token";
const ADMIN_PASSWORD: &str = "correct horse battery";

struct Harness {
    _dir: TempDir,
    state: AppState,
}

async fn harness_with(adjust: impl FnOnce(&mut Settings)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: dir.path().to_owned(),
        local_agent: false,
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        admin_password: Some(Secret::new(ADMIN_PASSWORD)),
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

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Harness {
    async fn send(&self, req: Request<Body>) -> Reply {
        let resp = spectra_server::app(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A user with `role` and an API token for them.
    async fn user_with_token(&self, name: &str, role: Role) -> (String, String) {
        let user = UserRecord {
            id: format!("usr_{name}"),
            username: name.to_owned(),
            password_hash: hash_password("a long password").unwrap(),
            role,
            created_at: chrono::Utc::now(),
        };
        self.state.store.create_user(user.clone()).await.unwrap();
        let token = format!("token-of-{name}");
        self.state
            .store
            .create_api_token(new_api_token_record(&user.id, "test", &token))
            .await
            .unwrap();
        (user.id, token)
    }

    async fn agent_credential(&self) -> String {
        let req = Request::post("/api/v1/agent/register")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"token": ENROLL_TOKEN, "host": {"hostname": "web-01", "os": "linux", "platform": "debian", "platform_ver": "12", "kernel": "6.1", "arch": "x86_64", "cpu_model": "x", "cpu_cores": 2, "ram_total": 1, "agent_version": "0.1.0", "boot_time": 1, "ips": []}})
                    .to_string(),
            ))
            .unwrap();
        let r = self.send(req).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["credential"].as_str().unwrap().to_owned()
    }
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

fn from(ip: &str, mut req: Request<Body>) -> Request<Body> {
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

#[tokio::test]
async fn every_route_answers_each_kind_of_caller_by_its_rule() {
    let h = harness().await;
    let (_, viewer) = h.user_with_token("vic", Role::Viewer).await;
    let (_, operator) = h.user_with_token("olga", Role::Operator).await;
    let agent = h.agent_credential().await;
    let callers: [(&str, Option<&str>, Option<Role>); 5] = [
        ("nobody", None, None),
        ("agent", Some(&agent), None),
        ("viewer", Some(&viewer), Some(Role::Viewer)),
        ("operator", Some(&operator), Some(Role::Operator)),
        ("admin", Some(ADMIN_TOKEN), Some(Role::Admin)),
    ];
    let table = route_table();
    assert!(table.len() >= 25, "the whole API is in the table");
    let mut seen = std::collections::HashSet::new();
    for route in &table {
        assert!(
            seen.insert((route.method.clone(), route.path)),
            "{} {} is in the table twice",
            route.method,
            route.path
        );
        let uri = route
            .path
            .replace("{type}", "cpu")
            .replace("{id}", "does-not-exist")
            .replace("{*path}", "app.css")
            .replace("{kind}", "ping");
        for (who, credential, role) in callers {
            // Deletes of ids that do not exist are harmless; bodies are
            // empty, so a permitted call fails later, with 400 or 404.
            let r = h
                .send(request(route.method.as_str(), &uri, credential, None))
                .await;
            let denied = matches!(
                r.status,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::SEE_OTHER
            ) && !(route.access == Access::Public
                && r.status == StatusCode::SEE_OTHER);
            let expected_denial = match (route.access, who, role) {
                (Access::Public, _, _) => None,
                (Access::Agent, "agent", _) => None,
                (Access::Agent, _, _) => Some(StatusCode::UNAUTHORIZED),
                (Access::Role(_), _, None) => Some(StatusCode::UNAUTHORIZED),
                (Access::Role(min), _, Some(r)) if role_rank(r) < role_rank(min) => {
                    Some(StatusCode::FORBIDDEN)
                }
                (Access::Role(_), _, Some(_)) => None,
                (Access::Page(_), _, None) => Some(StatusCode::SEE_OTHER),
                (Access::Page(min), _, Some(r)) if role_rank(r) < role_rank(min) => {
                    Some(StatusCode::FORBIDDEN)
                }
                (Access::Page(_), _, Some(_)) => None,
            };
            match expected_denial {
                Some(status) => assert_eq!(
                    r.status, status,
                    "{} {} as {who}: {}",
                    route.method, route.path, r.body
                ),
                None => assert!(
                    !denied,
                    "{} {} as {who} should pass the rule: {} {}",
                    route.method, route.path, r.status, r.body
                ),
            }
            // The route exists for its method.
            assert_ne!(
                r.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{} {}",
                route.method,
                route.path
            );
            if r.status == StatusCode::NOT_FOUND {
                assert_ne!(
                    r.body["error"], "no such endpoint",
                    "{} {}",
                    route.method, route.path
                );
            }
            assert!(
                r.body.get("error").is_none_or(|e| e.is_string()),
                "JSON errors: {}",
                r.body
            );
        }
    }
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_run_diagnostics_and_an_operator_can() {
    let h = harness().await;
    let (_, viewer) = h.user_with_token("vic", Role::Viewer).await;
    let (_, operator) = h.user_with_token("olga", Role::Operator).await;
    h.agent_credential().await;
    let trigger = "/admin/trigger_network?hostname=web-01&action=netstat";
    let r = h.send(request("POST", trigger, Some(&viewer), None)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        r.body["error"].as_str().unwrap().contains("operator"),
        "{}",
        r.body
    );
    let r = h
        .send(request("GET", "/api/v1/agents", Some(&viewer), None))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = h
        .send(request("POST", trigger, Some(&operator), None))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let r = h
        .send(request("GET", "/api/v1/audit", Some(&operator), None))
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the audit log is an admin's"
    );
}

async fn login(h: &Harness, ip: &str, username: &str, password: &str) -> Reply {
    h.send(from(
        ip,
        request(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": username, "password": password})),
        ),
    ))
    .await
}

fn cookie_of(r: &Reply) -> String {
    let set = r.headers["set-cookie"].to_str().unwrap().to_owned();
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_session_cookie_works_with_its_csrf_token_and_ends_at_logout() {
    let h = harness().await;
    let r = login(&h, "10.0.0.1", "admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["username"], "admin");
    assert_eq!(r.body["role"], "admin");
    let set_cookie = r.headers["set-cookie"].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP here: {set_cookie}"
    );
    let csrf = r.body["csrf_token"].as_str().unwrap().to_owned();
    let cookie = cookie_of(&r);
    let with_cookie = |method: &str, uri: &str, csrf: Option<&str>, body: Option<Value>| {
        let mut req = request(method, uri, None, body);
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        if let Some(c) = csrf {
            req.headers_mut().insert("x-csrf-token", c.parse().unwrap());
        }
        req
    };
    let r = h
        .send(with_cookie("GET", "/api/v1/auth/me", None, None))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["csrf_token"], csrf.as_str());
    // A state-changing request with the cookie alone is refused.
    let new_token = json!({"name": "script"});
    let r = h
        .send(with_cookie(
            "POST",
            "/api/v1/tokens",
            None,
            Some(new_token.clone()),
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body["error"].as_str().unwrap().contains("CSRF"));
    let r = h
        .send(with_cookie(
            "POST",
            "/api/v1/tokens",
            Some("wrong"),
            Some(new_token.clone()),
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h
        .send(with_cookie(
            "POST",
            "/api/v1/tokens",
            Some(&csrf),
            Some(new_token),
        ))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    let r = h
        .send(with_cookie(
            "POST",
            "/api/v1/auth/logout",
            Some(&csrf),
            None,
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let r = h
        .send(with_cookie("GET", "/api/v1/auth/me", None, None))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the session is gone");
}

#[tokio::test]
async fn an_idle_session_expires() {
    let h = harness_with(|s| s.session_idle = Duration::from_millis(1)).await;
    let r = login(&h, "10.0.0.1", "admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut req = request("GET", "/api/v1/auth/me", None, None);
    req.headers_mut()
        .insert("cookie", cookie_of(&r).parse().unwrap());
    let r = h.send(req).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body["error"].as_str().unwrap().contains("expired"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_nth_failed_login_from_one_address_is_throttled_not_others() {
    let h = harness().await;
    for i in 0..spectra_server::state::LOGIN_MAX_FAILURES {
        let r = login(&h, "192.0.2.7", "admin", "wrong password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        assert_eq!(r.body["error"], "invalid username or password");
    }
    // Unknown users answer the same, without saying so.
    // From the throttled address even the right password waits.
    let r = login(&h, "192.0.2.7", "admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.body["error"].as_str().unwrap().contains("try again in"));
    let r = login(&h, "198.51.100.9", "nobody", "wrong password").await;
    assert_eq!(r.body["error"], "invalid username or password");
    let r = login(&h, "198.51.100.9", "admin", ADMIN_PASSWORD).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "another address logs in: {}",
        r.body
    );

    let audit = h
        .send(request(
            "GET",
            "/api/v1/audit?action=login",
            Some(ADMIN_TOKEN),
            None,
        ))
        .await;
    let actions: Vec<&str> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "login.failed").count(),
        6,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| **a == "login.throttled").count(),
        1
    );
    assert_eq!(actions.iter().filter(|a| **a == "login.ok").count(), 1);
    assert_eq!(audit.body[0]["source_ip"], "198.51.100.9");
}

#[tokio::test]
async fn users_are_managed_and_the_last_admin_stays() {
    let h = harness().await;
    let admin = |method: &str, uri: &str, body: Option<Value>| {
        request(method, uri, Some(ADMIN_TOKEN), body)
    };
    let r = h
        .send(admin(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "olga", "password": "operator pass", "role": "operator"})),
        ))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let olga = r.body["id"].as_str().unwrap().to_owned();
    assert!(r.body.get("password_hash").is_none());
    for (body, why) in [
        (
            json!({"username": "olga", "password": "operator pass", "role": "operator"}),
            "exists",
        ),
        (
            json!({"username": "bad name", "password": "operator pass", "role": "viewer"}),
            "username",
        ),
        (
            json!({"username": "eve", "password": "short", "role": "viewer"}),
            "at least 10",
        ),
        (
            json!({"username": "eve", "password": "long enough pw", "role": "root"}),
            "role",
        ),
    ] {
        let r = h.send(admin("POST", "/api/v1/users", Some(body))).await;
        assert!(r.status.is_client_error(), "{}", r.body);
        assert!(
            r.body["error"].as_str().unwrap().contains(why),
            "{why}: {}",
            r.body
        );
    }
    // Olga logs in; her role changes; her next request has the new role.
    assert_eq!(
        login(&h, "10.0.0.2", "olga", "operator pass").await.status,
        StatusCode::OK
    );
    let r = h
        .send(admin(
            "PUT",
            &format!("/api/v1/users/{olga}"),
            Some(json!({"role": "viewer", "password": "a new password"})),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["role"], "viewer");
    assert_eq!(
        login(&h, "10.0.0.2", "olga", "operator pass").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&h, "10.0.0.2", "olga", "a new password").await.body["role"],
        "viewer"
    );

    // The last admin can be neither demoted nor deleted.
    let users = h.send(admin("GET", "/api/v1/users", None)).await;
    let admin_id = users
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .send(admin(
            "PUT",
            &format!("/api/v1/users/{admin_id}"),
            Some(json!({"role": "viewer"})),
        ))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let r = h
        .send(admin("DELETE", &format!("/api/v1/users/{admin_id}"), None))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body["error"].as_str().unwrap().contains("last admin"));
    // With a second admin, the first may go.
    h.send(admin(
        "PUT",
        &format!("/api/v1/users/{olga}"),
        Some(json!({"role": "admin"})),
    ))
    .await;
    let r = h
        .send(admin("DELETE", &format!("/api/v1/users/{admin_id}"), None))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    // ... and with them their tokens.
    let r = h.send(admin("GET", "/api/v1/users", None)).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the deleted admin's token is gone"
    );
}

#[tokio::test]
async fn api_tokens_are_shown_once_carry_their_owner_s_role_and_can_be_revoked() {
    let h = harness().await;
    let (vic_id, vic) = h.user_with_token("vic", Role::Viewer).await;
    let r = h
        .send(request(
            "POST",
            "/api/v1/tokens",
            Some(&vic),
            Some(json!({"name": "grafana"})),
        ))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let new = r.body["token"].as_str().unwrap().to_owned();
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = h
        .send(request("GET", "/api/v1/tokens", Some(&new), None))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let listed = r.body.as_array().unwrap();
    assert_eq!(listed.len(), 2, "vic's two tokens: {}", r.body);
    assert!(
        !r.body.to_string().contains(&new),
        "the secret is never listed"
    );
    // Vic cannot list everyone's, nor revoke the admin's.
    let r = h
        .send(request("GET", "/api/v1/tokens?all=true", Some(&new), None))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let all = h
        .send(request(
            "GET",
            "/api/v1/tokens?all=true",
            Some(ADMIN_TOKEN),
            None,
        ))
        .await;
    let admin_token_id = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["user_id"] != vic_id.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .send(request(
            "DELETE",
            &format!("/api/v1/tokens/{admin_token_id}"),
            Some(&new),
            None,
        ))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The token acts with vic's role, and stops at revocation.
    let r = h
        .send(request(
            "POST",
            "/admin/trigger_logs?hostname=x",
            Some(&new),
            None,
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h
        .send(request(
            "DELETE",
            &format!("/api/v1/tokens/{id}"),
            Some(&vic),
            None,
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h
        .send(request("GET", "/api/v1/agents", Some(&new), None))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let audit = h
        .send(request(
            "GET",
            "/api/v1/audit?action=token",
            Some(ADMIN_TOKEN),
            None,
        ))
        .await;
    let actions: Vec<&str> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"token.create")
            && actions.contains(&"token.revoke")
            && actions.contains(&"token.use"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn own_password_change_needs_the_current_one() {
    let h = harness().await;
    let (_, vic) = h.user_with_token("vic", Role::Viewer).await;
    let r = h
        .send(request(
            "POST",
            "/api/v1/auth/password",
            Some(&vic),
            Some(json!({"current_password": "nope nope nope", "new_password": "another long one"})),
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h
        .send(request(
            "POST",
            "/api/v1/auth/password",
            Some(&vic),
            Some(
                json!({"current_password": "a long password", "new_password": "another long one"}),
            ),
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        login(&h, "10.0.0.3", "vic", "another long one")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let h = harness().await;
    let r = h.send(request("GET", "/healthz", None, None)).await;
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(r.headers["x-frame-options"], "DENY");
    assert_eq!(r.headers["referrer-policy"], "no-referrer");
}
