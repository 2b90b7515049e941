//! The administration pages (issue 6) driven through `app(state)`: each
//! page for each role, every action's effect on the store and the audit
//! log, the API's rules as the pages show them, and the session cookie's
//! CSRF rule for the pages' htmx posts.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{
    encode_form, harness, harness_with, Harness, Reply, ADMIN_PASSWORD, ADMIN_TOKEN, ENROLL_TOKEN,
    HOST,
};
use serde_json::json;
use spectra_protocol::HostInfo;
use spectra_server::local_agent;
use spectra_server::services::agents::rotation_requested;
use spectra_store::{AgentState, AuditEvent, AuditQuery, Role};

impl Reply {
    #[track_caller]
    fn assert_ok(&self) -> &Self {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        self
    }

    /// A failed action: the status, and an `.error-message` saying `what`.
    #[track_caller]
    fn assert_error(&self, status: StatusCode, what: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(
            self.text.contains("class=\"error-message\""),
            "no .error-message: {}",
            self.text
        );
        assert!(
            unescape(&self.text).contains(what),
            "`{what}` not in {}",
            self.text
        );
    }
}

impl Harness {
    async fn register(&self, token: &str, hostname: &str) -> Reply {
        self.register_host(
            token,
            json!({"hostname": hostname, "os": "linux", "platform": "debian",
                "platform_ver": "12", "kernel": "6.1", "arch": "x86_64", "cpu_model": "x", "cpu_cores": 2,
                "ram_total": 1, "agent_version": "0.1.0", "boot_time": 1, "ips": []}),
        )
        .await
    }

    async fn audit(&self, action: &str) -> Vec<AuditEvent> {
        self.state
            .store
            .list_audit(AuditQuery {
                action: Some(action.into()),
                limit: 100,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
    }

    async fn user_id(&self, username: &str) -> Option<String> {
        self.state
            .store
            .user_by_name(username)
            .await
            .unwrap()
            .map(|u| u.id)
    }
}

/// The HTML entities askama writes, back to text.
fn unescape(html: &str) -> String {
    html.replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// The text of the element that opens with `open` (up to the next `<`).
#[track_caller]
fn text_after(html: &str, open: &str) -> String {
    let start = html
        .find(open)
        .unwrap_or_else(|| panic!("`{open}` not in {html}"))
        + open.len();
    let rest = &html[start..];
    unescape(&rest[..rest.find('<').unwrap_or(rest.len())])
}

// ---------------------------------------------------------------- pages by role

#[tokio::test]
async fn each_page_renders_for_an_admin_and_admin_pages_are_refused_to_a_viewer() {
    let h = harness().await;
    let (_, viewer) = h.user_with_token("vic", Role::Viewer).await;
    let pages: [(&str, &[&str]); 5] = [
        (
            "/admin/agents",
            &[
                "id=\"agents-msg\"",
                "id=\"agents-tables\"",
                "Enrolled agents",
            ],
        ),
        (
            "/admin/enrollment",
            &[
                "id=\"create-enrollment-token\"",
                "id=\"create-enrollment-token-submit\"",
                "id=\"approval-mode\"",
                "id=\"enrollment-tokens-table\"",
                "http://monitor.lan:8080",
            ],
        ),
        (
            "/admin/users",
            &["id=\"users-list\"", "id=\"create-user\"", ">admin<"],
        ),
        (
            "/admin/audit",
            &["id=\"audit-filter\"", "id=\"audit-table\""],
        ),
        (
            "/account/tokens",
            &[
                "id=\"create-api-token\"",
                "id=\"my-tokens\"",
                "id=\"all-tokens\"",
            ],
        ),
    ];
    for (uri, needles) in pages {
        let r = h.get(uri, ADMIN_TOKEN).await;
        r.assert_ok();
        assert!(r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        for needle in needles {
            assert!(r.text.contains(needle), "{uri}: `{needle}` missing");
        }
        // No inline script or style: the CSP would refuse them.
        assert!(!r.text.contains("style=\""), "{uri}");
        assert!(!r.text.contains("<script>"), "{uri}");
        let r = h.get(uri, &viewer).await;
        if uri == "/account/tokens" {
            r.assert_ok();
            assert!(
                !r.text.contains("id=\"all-tokens\""),
                "a viewer sees only their own tokens"
            );
        } else {
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri} as a viewer");
            assert!(r.text.contains("error-message"), "an HTML error page");
        }
    }
    // The write routes follow the same rule.
    let r = h
        .post(
            "/ui/admin/users",
            &viewer,
            &[
                ("username", "x"),
                ("password", "0123456789"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(h.user_id("x").await.is_none());
}

// ---------------------------------------------------------------- enrollment

#[tokio::test]
async fn an_enrollment_token_made_on_the_page_is_shown_once_and_enrolls_an_agent() {
    let h = harness().await;
    let r = h
        .post(
            "/ui/admin/enrollment-tokens",
            ADMIN_TOKEN,
            &[
                ("uses", "1"),
                ("expires_in", "1h"),
                ("labels", "env=prod, rack=r1"),
            ],
        )
        .await;
    r.assert_ok();
    assert!(r.text.contains("id=\"new-token\""), "{}", r.text);
    let token = text_after(&r.text, "<code class=\"secret\" id=\"new-token-value\">");
    assert_eq!(token.len(), 64, "{token}");
    let linux = text_after(
        &r.text,
        "id=\"install-linux\" aria-labelledby=\"install-linux-title\">",
    );
    assert_eq!(
        linux,
        format!("SPECTRA_SERVER='http://{HOST}' SPECTRA_TOKEN='{token}' spectra-agent")
    );
    let windows = text_after(
        &r.text,
        "id=\"install-windows\" aria-labelledby=\"install-windows-title\">",
    );
    assert_eq!(
        windows,
        format!(
            "$env:SPECTRA_SERVER=\"http://{HOST}\"; $env:SPECTRA_TOKEN=\"{token}\"; .\\spectra-agent.exe"
        )
    );
    assert!(r.text.contains("data-copy=\"install-linux\""));
    assert!(r.text.contains("data-copy=\"install-windows\""));
    // The tokens table is swapped in out of band, without the secret.
    assert!(r
        .text
        .contains("id=\"enrollment-tokens\" hx-swap-oob=\"true\""));
    assert_eq!(
        r.text.matches(&token).count(),
        4,
        "token, linux, systemd, windows"
    );

    // The token really enrolls an agent, with its labels, once.
    let reg = h.register(&token, "web-01").await;
    assert_eq!(reg.status, StatusCode::OK, "{}", reg.text);
    let agent_id = reg.json()["agent_id"].as_str().unwrap().to_owned();
    let agent = h.state.store.get_agent(&agent_id).await.unwrap().unwrap();
    assert_eq!(agent.labels["env"], "prod");
    assert_eq!(agent.labels["rack"], "r1");
    let again = h.register(&token, "web-02").await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "one use only");

    // The page lists it as used up, and never shows the secret again.
    let page = h.get("/admin/enrollment", ADMIN_TOKEN).await;
    page.assert_ok();
    assert!(!page.text.contains(&token));
    assert!(page.text.contains("used up"));
    assert!(page.text.contains("user:admin"), "created by");
    let created = h.audit("enrollment_token.create").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].actor, "user:admin");
}

#[tokio::test]
async fn bad_enrollment_token_requests_say_what_is_wrong_and_change_nothing() {
    let h = harness().await;
    let before = h.state.store.list_enrollment_tokens().await.unwrap().len();
    for (form, what) in [
        (
            [("uses", "1"), ("expires_in", "forever"), ("labels", "")],
            "expires_in",
        ),
        ([("uses", "0"), ("expires_in", ""), ("labels", "")], "uses"),
        (
            [("uses", "many"), ("expires_in", ""), ("labels", "")],
            "uses",
        ),
        (
            [("uses", ""), ("expires_in", "1h"), ("labels", "bad key=x")],
            "labels: key `bad key`",
        ),
        (
            [("uses", ""), ("expires_in", "1h"), ("labels", "no-equals")],
            "no-equals",
        ),
    ] {
        let r = h
            .post("/ui/admin/enrollment-tokens", ADMIN_TOKEN, &form)
            .await;
        r.assert_error(StatusCode::BAD_REQUEST, what);
    }
    let after = h.state.store.list_enrollment_tokens().await.unwrap().len();
    assert_eq!(before, after);

    // Unlimited and never-expiring, then revoked from the page.
    let r = h
        .post(
            "/ui/admin/enrollment-tokens",
            ADMIN_TOKEN,
            &[("uses", ""), ("expires_in", "never"), ("labels", "")],
        )
        .await;
    r.assert_ok();
    assert!(r.text.contains("unlimited uses, never expires"));
    let id = text_after(&r.text, "<h3 id=\"new-token-title\">Token ");
    let token = h
        .state
        .store
        .list_enrollment_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.id == id)
        .unwrap();
    assert_eq!((token.uses_left, token.expires_at), (None, None));
    let r = h
        .post(
            &format!("/ui/admin/enrollment-tokens/{id}/delete"),
            ADMIN_TOKEN,
            &[],
        )
        .await;
    r.assert_ok();
    assert!(r.text.contains("ok-message"));
    assert!(!r.text.contains(&format!("data-token-id=\"{id}\"")));
    assert!(
        h.audit("enrollment_token.revoke").await[0]
            .target
            .as_deref()
            == Some(id.as_str())
    );
    let r = h
        .post(
            &format!("/ui/admin/enrollment-tokens/{id}/delete"),
            ADMIN_TOKEN,
            &[],
        )
        .await;
    r.assert_error(StatusCode::NOT_FOUND, "not found");
}

#[tokio::test]
async fn under_tls_the_install_commands_pin_the_server_certificate() {
    let h = harness_with(|s, dir| {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert_path = dir.path().join("server.pem");
        let key_path = dir.path().join("server-key.pem");
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        s.tls_cert = Some(cert_path);
        s.tls_key = Some(key_path);
    })
    .await;
    let served = spectra_server::tls::ServerTls::load(
        &h.dir.path().join("server.pem"),
        &h.dir.path().join("server-key.pem"),
    )
    .unwrap();
    let r = h
        .post(
            "/ui/admin/enrollment-tokens",
            ADMIN_TOKEN,
            &[("uses", "1"), ("expires_in", "1h")],
        )
        .await;
    r.assert_ok();
    let shown = text_after(&r.text, "<code class=\"secret\" id=\"new-token-value\">");
    let (token, pin) = shown.split_once('#').unwrap();
    assert_eq!(pin, served.fingerprint.to_string());
    assert!(pin.starts_with("sha256:"));
    let linux = text_after(
        &r.text,
        "id=\"install-linux\" aria-labelledby=\"install-linux-title\">",
    );
    assert_eq!(
        linux,
        format!("SPECTRA_SERVER='https://{HOST}' SPECTRA_TOKEN='{token}#{pin}' spectra-agent")
    );
    // The agent strips the pin before sending: the bare token enrolls.
    assert_eq!(h.register(token, "tls-host").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_approval_switch_is_the_api_setting() {
    let h = harness().await;
    let r = h
        .post(
            "/ui/admin/enrollment/approval",
            ADMIN_TOKEN,
            &[("require_approval", "true")],
        )
        .await;
    r.assert_ok();
    assert!(r.text.contains("data-require-approval=\"true\""));
    let api = h.get("/api/v1/settings/enrollment", ADMIN_TOKEN).await;
    assert_eq!(api.json()["require_approval"], true);
    let reg = h.register(ENROLL_TOKEN, "waiting").await;
    assert_eq!(reg.status, StatusCode::ACCEPTED, "{}", reg.text);
    let page = h.get("/admin/enrollment", ADMIN_TOKEN).await;
    assert!(page.text.contains("1 agent waiting for approval"));
    let r = h
        .post(
            "/ui/admin/enrollment/approval",
            ADMIN_TOKEN,
            &[("require_approval", "maybe")],
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "require_approval");
    let r = h
        .post(
            "/ui/admin/enrollment/approval",
            ADMIN_TOKEN,
            &[("require_approval", "false")],
        )
        .await;
    r.assert_ok();
    let api = h.get("/api/v1/settings/enrollment", ADMIN_TOKEN).await;
    assert_eq!(api.json()["require_approval"], false);
    assert_eq!(h.audit("settings.require_approval").await.len(), 2);
}

// ---------------------------------------------------------------- agents

#[tokio::test]
async fn agent_actions_change_the_store_and_are_audited() {
    let h = harness().await;
    h.post(
        "/ui/admin/enrollment/approval",
        ADMIN_TOKEN,
        &[("require_approval", "true")],
    )
    .await
    .assert_ok();
    let reg = h.register(ENROLL_TOKEN, "web-01").await;
    assert_eq!(reg.status, StatusCode::ACCEPTED);
    let id = reg.json()["agent_id"].as_str().unwrap().to_owned();
    let agent_state = |id: String| {
        let store = h.state.store.clone();
        async move { store.get_agent(&id).await.unwrap().map(|a| a.state) }
    };

    let page = h.get("/admin/agents", ADMIN_TOKEN).await;
    page.assert_ok();
    let pending = text_after(&page.text, "id=\"pending-agents-title\">");
    assert!(pending.contains("Waiting for approval"));
    assert!(page
        .text
        .contains(&format!("hx-post=\"/ui/admin/agents/{id}/approve\"")));
    assert!(page.text.contains(&format!("href=\"/hosts/{id}\"")));

    let r = h
        .post(&format!("/ui/admin/agents/{id}/approve"), ADMIN_TOKEN, &[])
        .await;
    r.assert_ok();
    assert!(r.text.contains("web-01 is approved"));
    assert!(r.text.contains("id=\"agents-tables\" hx-swap-oob=\"true\""));
    assert!(
        !r.text.contains("id=\"pending-agents\""),
        "no longer waiting"
    );
    assert_eq!(agent_state(id.clone()).await, Some(AgentState::Active));
    assert_eq!(
        h.audit("agent.approve").await[0].agent_id.as_deref(),
        Some(id.as_str())
    );

    // Labels: one per line or comma separated; errors in the form's area.
    let r = h
        .post(
            &format!("/ui/admin/agents/{id}/labels"),
            ADMIN_TOKEN,
            &[("labels", "env=prod\nrole=db, rack=r1")],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.headers["hx-retarget"], "#agents-msg");
    let agent = h.state.store.get_agent(&id).await.unwrap().unwrap();
    assert_eq!(agent.labels.len(), 3);
    assert_eq!(agent.labels["role"], "db");
    assert!(r.text.contains("env=prod"));
    for (labels, what) in [("env", "`env` is not key=value"), ("bad key=1", "bad key")] {
        let r = h
            .post(
                &format!("/ui/admin/agents/{id}/labels"),
                ADMIN_TOKEN,
                &[("labels", labels)],
            )
            .await;
        r.assert_error(StatusCode::BAD_REQUEST, what);
        assert!(!r.headers.contains_key("hx-retarget"));
    }
    let agent = h.state.store.get_agent(&id).await.unwrap().unwrap();
    assert_eq!(agent.labels.len(), 3, "a refused edit changes nothing");
    assert_eq!(h.audit("agent.labels").await.len(), 1);

    let r = h
        .post(&format!("/ui/admin/agents/{id}/rotate"), ADMIN_TOKEN, &[])
        .await;
    r.assert_ok();
    assert!(rotation_requested(h.state.store.as_ref(), &id)
        .await
        .unwrap());
    assert!(r.text.contains("credential rotation requested"));
    assert_eq!(h.audit("agent.rotate").await[0].outcome, "requested");

    let r = h
        .post(&format!("/ui/admin/agents/{id}/revoke"), ADMIN_TOKEN, &[])
        .await;
    r.assert_ok();
    assert_eq!(agent_state(id.clone()).await, Some(AgentState::Revoked));
    assert!(r.text.contains("s-revoked"));
    assert_eq!(h.audit("agent.revoke").await.len(), 1);

    let r = h
        .post(&format!("/ui/admin/agents/{id}/delete"), ADMIN_TOKEN, &[])
        .await;
    r.assert_ok();
    assert_eq!(agent_state(id.clone()).await, None);
    assert_eq!(
        h.audit("agent.delete").await[0].target.as_deref(),
        Some("web-01")
    );
    let r = h
        .post(&format!("/ui/admin/agents/{id}/delete"), ADMIN_TOKEN, &[])
        .await;
    r.assert_error(StatusCode::NOT_FOUND, "not found");
}

#[tokio::test]
async fn the_local_agent_can_be_neither_revoked_nor_deleted() {
    let h = harness().await;
    let host = HostInfo {
        hostname: "the-server".into(),
        ..HostInfo::default()
    };
    let id = local_agent::ensure_local_agent(h.state.store.as_ref(), host)
        .await
        .unwrap();
    let page = h.get("/admin/agents", ADMIN_TOKEN).await;
    page.assert_ok();
    assert!(!page.text.contains(&format!("/ui/admin/agents/{id}/delete")));
    assert!(!page.text.contains(&format!("/ui/admin/agents/{id}/revoke")));
    for action in ["revoke", "delete"] {
        let r = h
            .post(&format!("/ui/admin/agents/{id}/{action}"), ADMIN_TOKEN, &[])
            .await;
        r.assert_error(StatusCode::CONFLICT, "local agent");
    }
    let agent = h.state.store.get_agent(&id).await.unwrap().unwrap();
    assert_eq!(agent.state, AgentState::Active);
}

// ---------------------------------------------------------------- users

#[tokio::test]
async fn users_are_managed_on_the_page_and_the_last_admin_stays() {
    let h = harness().await;
    let r = h
        .post(
            "/ui/admin/users",
            ADMIN_TOKEN,
            &[
                ("username", "olga"),
                ("password", "a good long password"),
                ("role", "operator"),
            ],
        )
        .await;
    r.assert_ok();
    assert!(r.text.contains("User olga created with the operator role."));
    assert!(r.text.contains("id=\"users-table\" hx-swap-oob=\"true\""));
    let olga = h.user_id("olga").await.expect("created");

    for (form, status, what) in [
        (
            [
                ("username", "olga"),
                ("password", "a good long password"),
                ("role", "viewer"),
            ],
            StatusCode::CONFLICT,
            "already exists",
        ),
        (
            [
                ("username", "pete"),
                ("password", "short"),
                ("role", "viewer"),
            ],
            StatusCode::BAD_REQUEST,
            "at least 10 characters",
        ),
        (
            [
                ("username", "bad name"),
                ("password", "a good long password"),
                ("role", "viewer"),
            ],
            StatusCode::BAD_REQUEST,
            "username",
        ),
        (
            [
                ("username", "pete"),
                ("password", "a good long password"),
                ("role", "boss"),
            ],
            StatusCode::BAD_REQUEST,
            "role `boss`",
        ),
    ] {
        h.post("/ui/admin/users", ADMIN_TOKEN, &form)
            .await
            .assert_error(status, what);
    }
    assert!(h.user_id("pete").await.is_none());

    let r = h
        .post(
            &format!("/ui/admin/users/{olga}/role"),
            ADMIN_TOKEN,
            &[("role", "viewer")],
        )
        .await;
    r.assert_ok();
    let user = h.state.store.get_user(&olga).await.unwrap().unwrap();
    assert_eq!(user.role, Role::Viewer);
    assert_eq!(
        h.audit("user.role").await[0].outcome,
        "ok: operator -> viewer"
    );

    let r = h
        .post(
            &format!("/ui/admin/users/{olga}/password"),
            ADMIN_TOKEN,
            &[("password", "another long password")],
        )
        .await;
    r.assert_ok();
    assert!(h
        .state
        .auth
        .verify_login("olga", "another long password")
        .await
        .is_ok());
    assert_eq!(h.audit("user.password_reset").await.len(), 1);

    // The last admin stays an admin, and stays.
    let admin = h.user_id("admin").await.unwrap();
    h.post(
        &format!("/ui/admin/users/{admin}/role"),
        ADMIN_TOKEN,
        &[("role", "operator")],
    )
    .await
    .assert_error(StatusCode::CONFLICT, "admin is the last admin");
    h.post(&format!("/ui/admin/users/{admin}/delete"), ADMIN_TOKEN, &[])
        .await
        .assert_error(StatusCode::CONFLICT, "last admin and cannot be deleted");
    let user = h.state.store.get_user(&admin).await.unwrap().unwrap();
    assert_eq!(user.role, Role::Admin);

    let r = h
        .post(&format!("/ui/admin/users/{olga}/delete"), ADMIN_TOKEN, &[])
        .await;
    r.assert_ok();
    assert!(h.user_id("olga").await.is_none());
    assert!(!r.text.contains("data-username=\"olga\""));
    assert_eq!(
        h.audit("user.delete").await[0].target.as_deref(),
        Some("olga")
    );
    assert_eq!(h.audit("user.create").await.len(), 1);
}

// ---------------------------------------------------------------- own tokens, password

#[tokio::test]
async fn own_api_tokens_are_shown_once_and_revoked() {
    let h = harness().await;
    let (_, viewer) = h.user_with_token("vic", Role::Viewer).await;
    let r = h
        .post("/ui/account/tokens", &viewer, &[("name", "grafana")])
        .await;
    r.assert_ok();
    assert!(r.text.contains("id=\"new-api-token\""));
    let token = text_after(
        &r.text,
        "<code class=\"secret\" id=\"new-api-token-value\">",
    );
    assert_eq!(token.len(), 64);
    assert!(r.text.contains("data-copy=\"new-api-token-value\""));
    assert!(r.text.contains("id=\"token-tables\" hx-swap-oob=\"true\""));
    assert!(
        !r.text.contains("id=\"all-tokens\""),
        "a viewer sees only theirs"
    );

    // It acts as its owner.
    let me = h.get("/api/v1/auth/me", &token).await;
    assert_eq!(me.json()["username"], "vic");
    let page = h.get("/account/tokens", &viewer).await;
    assert!(page.text.contains(">grafana<"));
    assert!(!page.text.contains(&token), "shown once");

    h.post("/ui/account/tokens", &viewer, &[("name", "  ")])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "name must be 1-100");

    // An admin sees everyone's tokens; a viewer cannot touch theirs.
    let admin_page = h.get("/account/tokens", ADMIN_TOKEN).await;
    let all = &admin_page.text[admin_page.text.find("id=\"all-tokens\"").unwrap()..];
    assert!(all.contains(">grafana<") && all.contains(">vic<"));
    let admin_token_id = h
        .state
        .store
        .list_api_tokens(h.user_id("admin").await.as_deref())
        .await
        .unwrap()[0]
        .id
        .clone();
    h.post(
        &format!("/ui/account/tokens/{admin_token_id}/delete"),
        &viewer,
        &[],
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not found");

    let id = text_after(&r.text, "data-token-id=\"");
    let id = id.split('"').next().unwrap().to_owned();
    let r = h
        .post(&format!("/ui/account/tokens/{id}/delete"), &viewer, &[])
        .await;
    r.assert_ok();
    assert!(unescape(&r.text).contains("“grafana” is revoked"));
    assert_eq!(
        h.get("/api/v1/auth/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.audit("token.create").await.len(), 1);
    assert_eq!(h.audit("token.revoke").await.len(), 1);
}

#[tokio::test]
async fn the_own_password_form_needs_the_current_password() {
    let h = harness().await;
    let (_, viewer) = h.user_with_token("vic", Role::Viewer).await;
    let form = |current: &'static str, new: &'static str, confirm: &'static str| {
        [
            ("current_password", current),
            ("new_password", new),
            ("confirm_password", confirm),
        ]
    };
    h.post(
        "/ui/account/password",
        &viewer,
        &form("a long password", "a new long password", "something else"),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "differ");
    h.post(
        "/ui/account/password",
        &viewer,
        &form(
            "wrong password",
            "a new long password",
            "a new long password",
        ),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "current password is wrong");
    h.post(
        "/ui/account/password",
        &viewer,
        &form("a long password", "short", "short"),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "at least 10");
    let r = h
        .post(
            "/ui/account/password",
            &viewer,
            &form(
                "a long password",
                "a new long password",
                "a new long password",
            ),
        )
        .await;
    r.assert_ok();
    assert!(r.text.contains("ok-message"));
    assert!(h
        .state
        .auth
        .verify_login("vic", "a new long password")
        .await
        .is_ok());
    let outcomes: Vec<String> = h
        .audit("user.password")
        .await
        .into_iter()
        .map(|e| e.outcome)
        .collect();
    assert_eq!(outcomes, ["ok", "refused: wrong current password"]);
}

// ---------------------------------------------------------------- audit

#[tokio::test]
async fn the_audit_page_filters_and_pages_backwards() {
    let h = harness().await;
    for name in ["u1", "u2", "u3"] {
        h.post(
            "/ui/admin/users",
            ADMIN_TOKEN,
            &[
                ("username", name),
                ("password", "a good long password"),
                ("role", "viewer"),
            ],
        )
        .await
        .assert_ok();
    }
    let reg = h.register(ENROLL_TOKEN, "db-01").await;
    let agent = reg.json()["agent_id"].as_str().unwrap().to_owned();
    h.post(
        &format!("/ui/admin/agents/{agent}/labels"),
        ADMIN_TOKEN,
        &[("labels", "env=prod")],
    )
    .await
    .assert_ok();

    let page = h.get("/admin/audit?action=user", ADMIN_TOKEN).await;
    page.assert_ok();
    let actions: Vec<&str> = page
        .text
        .split("data-action=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert_eq!(actions, ["user.create"; 3], "newest first, only user.*");
    let targets: Vec<String> = page
        .text
        .split("<td class=\"mono\">u")
        .skip(1)
        .map(|s| format!("u{}", &s[..1]))
        .collect();
    assert_eq!(targets, ["u3", "u2", "u1"]);

    // By agent: its hostname or its id, with the hostname linked.
    for agent_filter in ["db-01", agent.as_str()] {
        let page = h
            .get(&format!("/admin/audit?agent={agent_filter}"), ADMIN_TOKEN)
            .await;
        page.assert_ok();
        assert!(page.text.contains("data-action=\"agent.labels\""));
        assert!(!page.text.contains("data-action=\"user.create\""));
        assert!(page
            .text
            .contains(&format!("<a href=\"/hosts/{agent}\">db-01</a>")));
    }
    // By actor; token use is logged under the admin's name too.
    let page = h
        .get(
            "/admin/audit?actor=user%3Aadmin&action=user.create",
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(page.text.matches("data-action=\"user.create\"").count(), 3);
    let page = h.get("/admin/audit?actor=user%3Anobody", ADMIN_TOKEN).await;
    assert!(page.text.contains("id=\"audit-empty\""));

    // Two per page: "Older" pages back with before=<last id shown>.
    let first = h.get("/admin/audit?action=user&limit=2", ADMIN_TOKEN).await;
    assert_eq!(first.text.matches("data-action=\"user.create\"").count(), 2);
    assert!(!first.text.contains("id=\"audit-newest\""));
    let older_href = {
        let start = first.text.find("id=\"audit-older\"").unwrap();
        let tag_start = first.text[..start].rfind("<a href=\"").unwrap() + "<a href=\"".len();
        unescape(&first.text[tag_start..first.text[tag_start..].find('"').unwrap() + tag_start])
    };
    assert!(older_href.contains("action=user") && older_href.contains("before="));
    assert!(older_href.contains("limit=2"), "{older_href}");
    let second = h.get(&older_href, ADMIN_TOKEN).await;
    second.assert_ok();
    assert_eq!(
        second.text.matches("data-action=\"user.create\"").count(),
        1,
        "{older_href}"
    );
    assert!(second.text.contains(">u1<"));
    assert!(!second.text.contains(">u3<"));
    assert!(second.text.contains("id=\"audit-newest\""));
    assert!(!second.text.contains("id=\"audit-older\""), "nothing older");

    let bad = h.get("/admin/audit?before=yesterday", ADMIN_TOKEN).await;
    bad.assert_ok();
    assert!(text_after(&bad.text, "id=\"audit-error\">").contains("before:"));
}

// ---------------------------------------------------------------- sessions

#[tokio::test]
async fn a_session_cookie_needs_the_csrf_token_the_page_carries() {
    let h = harness().await;
    let r = h
        .send(
            Request::post("/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(encode_form(&[
                    ("username", "admin"),
                    ("password", ADMIN_PASSWORD),
                    ("next", "/account/tokens"),
                ])))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let cookie = r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let with_cookie = |method: &str, uri: &str, csrf: Option<&str>, body: String| {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", HOST)
            .header("cookie", &cookie)
            .header("hx-request", "true")
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = csrf {
            b = b.header("x-csrf-token", c);
        }
        b.body(Body::from(body)).unwrap()
    };
    let page = h
        .send(with_cookie("GET", "/admin/users", None, String::new()))
        .await;
    page.assert_ok();
    let csrf = text_after(&page.text, "hx-headers='{\"X-CSRF-Token\": \"");
    let csrf = csrf.split('"').next().unwrap().to_owned();
    assert!(csrf.len() >= 32, "{csrf}");

    let form = encode_form(&[
        ("username", "carol"),
        ("password", "a good long password"),
        ("role", "viewer"),
    ]);
    let r = h
        .send(with_cookie("POST", "/ui/admin/users", None, form.clone()))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("CSRF"));
    let r = h
        .send(with_cookie(
            "POST",
            "/ui/admin/users",
            Some("wrong"),
            form.clone(),
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(h.user_id("carol").await.is_none(), "nothing changed");
    let r = h
        .send(with_cookie("POST", "/ui/admin/users", Some(&csrf), form))
        .await;
    r.assert_ok();
    assert!(h.user_id("carol").await.is_some());
    // The session's actor is the signed-in user.
    assert_eq!(h.audit("user.create").await[0].actor, "user:admin");
}
