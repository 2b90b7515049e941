//! The harness the dashboard's HTTP tests share: settings and a store in a
//! temporary directory, `app(state)` driven with tower's `oneshot`, requests
//! as the admin (a Bearer token) or as users made for the test, and agents
//! enrolled the way an agent enrolls.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::{json, Value};
use spectra_server::config::{Secret, Settings};
use spectra_server::services::auth::{hash_password, new_api_token_record};
use spectra_server::{first_run, AppState};
use spectra_store::{EmbeddedConfig, EmbeddedStore, Role, Store, UserRecord};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const ENROLL_TOKEN: &str = "test-enroll-token";
pub const ADMIN_PASSWORD: &str = "correct horse battery";
/// The `Host` header every helper request carries.
pub const HOST: &str = "monitor.lan:8080";

pub struct Harness {
    pub dir: TempDir,
    pub state: AppState,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

/// A harness whose settings `adjust` changes first (the directory is the
/// data directory, for files the settings name).
pub async fn harness_with(adjust: impl FnOnce(&mut Settings, &TempDir)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: dir.path().to_owned(),
        local_agent: false,
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        admin_password: Some(Secret::new(ADMIN_PASSWORD)),
        enroll_token: Some(Secret::new(ENROLL_TOKEN)),
        ..Settings::default()
    };
    adjust(&mut settings, &dir);
    let mut config = EmbeddedConfig::with_path(dir.path().join("spectra.db"));
    config.background_maintenance = false;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(config).unwrap());
    first_run::ensure_credentials(store.as_ref(), &settings)
        .await
        .unwrap();
    let state = AppState::new(store, settings, CancellationToken::new());
    Harness { dir, state }
}

pub async fn harness() -> Harness {
    harness_with(|_, _| {}).await
}

impl Harness {
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let resp = spectra_server::app(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// A GET as a page load sends it.
    pub async fn get(&self, uri: &str, bearer: &str) -> Reply {
        self.send(
            Request::get(uri)
                .header("host", HOST)
                .header("authorization", format!("Bearer {bearer}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// A GET as htmx sends it.
    pub async fn hx_get(&self, uri: &str, bearer: &str) -> Reply {
        self.send(
            Request::get(uri)
                .header("host", HOST)
                .header("authorization", format!("Bearer {bearer}"))
                .header("hx-request", "true")
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// An htmx form post with `body` already form-encoded.
    pub async fn post_form(&self, uri: &str, bearer: &str, body: &str) -> Reply {
        self.send(
            Request::post(uri)
                .header("host", HOST)
                .header("hx-request", "true")
                .header("authorization", format!("Bearer {bearer}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
    }

    /// An htmx form post of `form`, as the pages send it.
    pub async fn post(&self, uri: &str, bearer: &str, form: &[(&str, &str)]) -> Reply {
        self.post_form(uri, bearer, &encode_form(form)).await
    }

    /// A user with `role` and an API token for them: (user id, token).
    pub async fn user_with_token(&self, name: &str, role: Role) -> (String, String) {
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

    /// A user with `role`: their API token.
    pub async fn user_token(&self, name: &str, role: Role) -> String {
        self.user_with_token(name, role).await.1
    }

    /// An agent's registration with `token`, `host` its host information.
    pub async fn register_host(&self, token: &str, host: Value) -> Reply {
        self.send(
            Request::post("/api/v1/agent/register")
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"token": token, "host": host}).to_string(),
                ))
                .unwrap(),
        )
        .await
    }

    /// Enrolls an agent with the enrollment token: its id and credential.
    pub async fn enroll(&self, host: Value) -> (String, String) {
        let r = self.register_host(ENROLL_TOKEN, host).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let v = r.json();
        (
            v["agent_id"].as_str().unwrap().to_owned(),
            v["credential"].as_str().unwrap().to_owned(),
        )
    }
}

/// `form` as `application/x-www-form-urlencoded`.
pub fn encode_form(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
