//! `/admin/enrollment`: the approval mode, the enrollment tokens, and a
//! new token shown once with the commands that start an agent with it.
//!
//! The install commands name this server as the browser reached it (the
//! `Host` header, `https` under TLS or behind a proxy that says
//! `X-Forwarded-Proto: https`). Under TLS the token carries the server
//! certificate's fingerprint (`<token>#sha256:<hex>`), exactly as the
//! startup message prints it, so the agent pins the certificate.

use std::collections::HashMap;

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Form;
use chrono::Utc;
use serde::Deserialize;
use spectra_store::{AuditQuery, Role};

use super::{done, form_body, fragment, parse_labels_text, Fragment};
use crate::http::agents::{self as api, EnrollmentTokenView};
use crate::http::extract::{Caller, ClientIp};
use crate::http::routes::{spec, Access, RouteSpec};
use crate::http::AppError;
use crate::services::agents::{require_approval, NewEnrollmentToken};
use crate::state::AppState;
use crate::ui::format;
use crate::ui::{render, Chrome, PageResult};

pub fn routes() -> Vec<RouteSpec> {
    use axum::routing::{get, post};
    const ADMIN: Access = Access::Page(Role::Admin);
    vec![
        spec(
            Method::GET,
            "/admin/enrollment",
            ADMIN,
            get(enrollment_page),
        ),
        spec(
            Method::POST,
            "/ui/admin/enrollment/approval",
            ADMIN,
            post(set_approval),
        ),
        spec(
            Method::POST,
            "/ui/admin/enrollment-tokens",
            ADMIN,
            post(create_token),
        ),
        spec(
            Method::POST,
            "/ui/admin/enrollment-tokens/{id}/delete",
            ADMIN,
            post(delete_token),
        ),
    ]
}

/// Lifetimes offered for a new token (any duration such as `90m` works).
pub const EXPIRY_CHOICES: &[&str] = &["1h", "24h", "7d", "30d"];

/// How many `enrollment_token.create` audit entries are read to name who
/// created each token.
const CREATORS_SCAN: usize = 1000;

/// One token's row (never its secret: only its hash is kept).
pub struct TokenRow {
    pub id: String,
    pub labels: Vec<(String, String)>,
    pub uses_left: String,
    pub expires: String,
    /// `usable`, `used up` or `expired`.
    pub state: &'static str,
    pub created_by: String,
    pub created_at: String,
}

#[derive(Template)]
#[template(path = "admin_enrollment_tokens.html")]
pub struct TokenTable {
    pub rows: Vec<TokenRow>,
    pub oob: bool,
}

#[derive(Template)]
#[template(path = "admin_enrollment_approval.html")]
pub struct ApprovalPanel {
    pub require_approval: bool,
    pub pending: usize,
    pub oob: bool,
}

/// Who created each token, from the audit log (tokens made at first start
/// have no entry).
async fn creators(state: &AppState) -> Result<HashMap<String, String>, AppError> {
    let events = state
        .commands
        .audit()
        .list(AuditQuery {
            action: Some("enrollment_token.create".into()),
            limit: CREATORS_SCAN,
            ..AuditQuery::default()
        })
        .await?;
    Ok(events
        .into_iter()
        .filter_map(|e| e.target.map(|t| (t, e.actor)))
        .collect())
}

fn token_row(t: EnrollmentTokenView, creators: &HashMap<String, String>) -> TokenRow {
    let now = Utc::now();
    let state = if t.usable {
        "usable"
    } else if t.uses_left == Some(0) {
        "used up"
    } else {
        "expired"
    };
    TokenRow {
        uses_left: t
            .uses_left
            .map(|n| n.to_string())
            .unwrap_or_else(|| "unlimited".into()),
        expires: match t.expires_at {
            None => "never".into(),
            Some(at) if at > now => format!(
                "{} (in {})",
                format::time(at),
                format::duration_secs((at - now).num_seconds() as f64)
            ),
            Some(at) => format::time(at),
        },
        state,
        created_by: creators.get(&t.id).cloned().unwrap_or_else(|| "—".into()),
        created_at: format::time(t.created_at),
        labels: t.labels.into_iter().collect(),
        id: t.id,
    }
}

async fn token_table(state: &AppState, oob: bool) -> Result<TokenTable, AppError> {
    let creators = creators(state).await?;
    let mut rows: Vec<TokenRow> = api::enrollment_token_views(state)
        .await?
        .into_iter()
        .map(|t| token_row(t, &creators))
        .collect();
    // Newest first: the one just made is on top.
    rows.reverse();
    Ok(TokenTable { rows, oob })
}

async fn approval_panel(state: &AppState, oob: bool) -> Result<ApprovalPanel, AppError> {
    let on = require_approval(state.store.as_ref(), state.settings.require_approval).await?;
    let pending = state
        .store
        .list_agents()
        .await?
        .iter()
        .filter(|a| a.state == spectra_store::AgentState::Pending)
        .count();
    Ok(ApprovalPanel {
        require_approval: on,
        pending,
        oob,
    })
}

#[derive(Template)]
#[template(path = "admin_enrollment.html")]
struct EnrollmentPage {
    chrome: Chrome,
    approval: ApprovalPanel,
    tokens: TokenTable,
    expiry_choices: &'static [&'static str],
    server_url: String,
}

async fn enrollment_page(
    State(state): State<AppState>,
    Caller(principal): Caller,
    headers: HeaderMap,
) -> PageResult {
    let result = async {
        render(&EnrollmentPage {
            chrome: Chrome::new(&principal, "enrollment", "Enrollment"),
            approval: approval_panel(&state, false).await?,
            tokens: token_table(&state, false).await?,
            expiry_choices: EXPIRY_CHOICES,
            server_url: server_url(&headers, &state),
        })
    }
    .await;
    result.into()
}

#[derive(Debug, Deserialize)]
pub struct ApprovalForm {
    #[serde(default)]
    pub require_approval: String,
}

async fn set_approval(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    form: Result<Form<ApprovalForm>, FormRejection>,
) -> Fragment {
    let result = async {
        let form = form_body(form)?;
        let on = match form.require_approval.as_str() {
            "true" | "on" => true,
            "false" | "off" => false,
            other => {
                return Err(AppError::BadRequest(format!(
                    "require_approval: expected true or false, got `{}`",
                    other.chars().take(32).collect::<String>()
                )))
            }
        };
        api::set_approval_mode(&state, &principal.actor(ip.0), on).await?;
        let message = if on {
            "Approval is required: new agents wait under Agents until an admin approves them."
        } else {
            "Approval is off: new agents with a valid token are active at once."
        };
        done(
            message,
            vec![fragment(&approval_panel(&state, true).await?)?],
        )
    }
    .await;
    result.into()
}

#[derive(Debug, Default, Deserialize)]
pub struct NewTokenForm {
    /// Blank: unlimited.
    #[serde(default)]
    pub uses: String,
    /// Blank or `never`: no expiry.
    #[serde(default)]
    pub expires_in: String,
    #[serde(default)]
    pub labels: String,
}

/// The form as the API's request: the API's own checks (and messages)
/// then apply to uses, expiry and labels.
pub fn token_request(form: &NewTokenForm) -> Result<NewEnrollmentToken, String> {
    let uses = match form.uses.trim() {
        "" => None,
        text => Some(text.parse::<i64>().map_err(|_| {
            format!("uses: `{text}` must be a positive integer, or blank for unlimited")
        })?),
    };
    let expires_in = match form.expires_in.trim() {
        "" | "never" => None,
        text => Some(text.to_owned()),
    };
    Ok(NewEnrollmentToken {
        uses,
        expires_in,
        labels: parse_labels_text(&form.labels)?,
    })
}

/// A new token, shown once, with the commands that use it.
#[derive(Template)]
#[template(path = "admin_enrollment_new.html")]
pub struct NewToken {
    pub id: String,
    /// What the agent is given: the token, with `#sha256:<hex>` under TLS.
    pub agent_token: String,
    pub pinned: bool,
    pub server_url: String,
    pub uses: String,
    pub expires: String,
    pub linux: String,
    pub systemd: String,
    pub windows: String,
    pub oob: Vec<String>,
}

/// `SPECTRA_SERVER=... SPECTRA_TOKEN=... spectra-agent`, as the README
/// starts an agent (values single-quoted: a pinned token holds `#`).
pub fn linux_command(server_url: &str, agent_token: &str) -> String {
    format!("SPECTRA_SERVER='{server_url}' SPECTRA_TOKEN='{agent_token}' spectra-agent")
}

/// A systemd unit running the agent as root (its identity then lives in
/// `/var/lib/spectra-agent`).
pub fn systemd_unit(server_url: &str, agent_token: &str) -> String {
    format!(
        "# /etc/systemd/system/spectra-agent.service\n\
         [Unit]\n\
         Description=Spectra agent\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Environment=\"SPECTRA_SERVER={server_url}\"\n\
         Environment=\"SPECTRA_TOKEN={agent_token}\"\n\
         ExecStart=/usr/local/bin/spectra-agent\n\
         Restart=on-failure\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n\
         \n\
         # then: systemctl daemon-reload && systemctl enable --now spectra-agent"
    )
}

/// PowerShell, from the folder holding `spectra-agent.exe`.
pub fn windows_command(server_url: &str, agent_token: &str) -> String {
    format!(
        "$env:SPECTRA_SERVER=\"{server_url}\"; $env:SPECTRA_TOKEN=\"{agent_token}\"; .\\spectra-agent.exe"
    )
}

/// This server's URL as the browser reached it. The `Host` header must
/// look like a host name or address with an optional port (it ends up in
/// a shell command); otherwise the listen address stands in.
pub fn server_url_from(
    host: Option<&str>,
    forwarded_proto: Option<&str>,
    tls: bool,
    listen: &str,
) -> String {
    let scheme = match forwarded_proto.map(str::trim) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        Some(p) if p.eq_ignore_ascii_case("http") => "http",
        _ if tls => "https",
        _ => "http",
    };
    let host = host.map(str::trim).filter(|h| {
        !h.is_empty()
            && h.len() <= 261
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
    });
    format!("{scheme}://{}", host.unwrap_or(listen))
}

fn server_url(headers: &HeaderMap, state: &AppState) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    server_url_from(
        header("host"),
        header("x-forwarded-proto"),
        state.tls_enabled(),
        &state.settings.listen.to_string(),
    )
}

/// The served certificate's fingerprint (`sha256:<hex>`), read from the
/// configured certificate file as `tls::ServerTls::load` reads it; `None`
/// without TLS or when the file cannot be read (then logged).
async fn server_fingerprint(state: &AppState) -> Option<String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    if !state.tls_enabled() {
        return None;
    }
    let path = state.settings.tls_cert.clone()?;
    let pem = match tokio::fs::read(&path).await {
        Ok(pem) => pem,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the TLS certificate to pin it in the install commands");
            return None;
        }
    };
    let leaf = CertificateDer::pem_slice_iter(&pem).next()?.ok()?;
    Some(spectra_agent::transport::tls::Fingerprint::of_der(&leaf).to_string())
}

async fn create_token(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    headers: HeaderMap,
    form: Result<Form<NewTokenForm>, FormRejection>,
) -> Fragment {
    let result = async {
        let form = form_body(form)?;
        let request = token_request(&form).map_err(AppError::BadRequest)?;
        let (record, token) =
            api::create_enrollment(&state, &principal.actor(ip.0), request).await?;
        let fingerprint = server_fingerprint(&state).await;
        let agent_token = match &fingerprint {
            Some(fp) => format!(
                "{token}{}{fp}",
                spectra_agent::transport::tls::TOKEN_PIN_SEPARATOR
            ),
            None => token,
        };
        let url = server_url(&headers, &state);
        let new = NewToken {
            uses: record
                .uses_left
                .map(|n| format!("{n} use{}", if n == 1 { "" } else { "s" }))
                .unwrap_or_else(|| "unlimited uses".into()),
            expires: record
                .expires_at
                .map(|at| format!("expires {}", format::time(at)))
                .unwrap_or_else(|| "never expires".into()),
            linux: linux_command(&url, &agent_token),
            systemd: systemd_unit(&url, &agent_token),
            windows: windows_command(&url, &agent_token),
            pinned: fingerprint.is_some(),
            server_url: url,
            agent_token,
            id: record.id,
            oob: vec![fragment(&token_table(&state, true).await?)?],
        };
        render(&new)
    }
    .await;
    result.into()
}

async fn delete_token(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Fragment {
    let result = async {
        if !state
            .store
            .list_enrollment_tokens()
            .await?
            .iter()
            .any(|t| t.id == id)
        {
            return Err(AppError::NotFound(format!(
                "enrollment token {id} not found"
            )));
        }
        api::revoke_enrollment(&state, &principal.actor(ip.0), &id).await?;
        let message = format!("Enrollment token {id} is revoked; agents it enrolled keep working.");
        answer_with_table(&state, message).await
    }
    .await;
    result.into()
}

async fn answer_with_table(state: &AppState, message: String) -> Result<Response, AppError> {
    done(message, vec![fragment(&token_table(state, true).await?)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_url_follows_the_host_header_and_tls() {
        assert_eq!(
            server_url_from(Some("monitor.lan:8080"), None, false, "0.0.0.0:8080"),
            "http://monitor.lan:8080"
        );
        assert_eq!(
            server_url_from(Some("[::1]:8443"), None, true, "0.0.0.0:8080"),
            "https://[::1]:8443"
        );
        assert_eq!(
            server_url_from(Some("monitor.lan"), Some("https"), false, "0.0.0.0:8080"),
            "https://monitor.lan"
        );
    }

    #[test]
    fn a_host_header_that_could_break_the_command_is_not_used() {
        for bad in ["evil.lan' ; rm -rf /", "a b", "", "x$(id)"] {
            assert_eq!(
                server_url_from(Some(bad), None, false, "10.0.0.1:8080"),
                "http://10.0.0.1:8080",
                "{bad}"
            );
        }
        assert_eq!(
            server_url_from(None, None, false, "10.0.0.1:8080"),
            "http://10.0.0.1:8080"
        );
    }

    #[test]
    fn install_commands_carry_server_and_token() {
        let l = linux_command("http://m:8080", "abc#sha256:00");
        assert_eq!(
            l,
            "SPECTRA_SERVER='http://m:8080' SPECTRA_TOKEN='abc#sha256:00' spectra-agent"
        );
        let w = windows_command("http://m:8080", "abc");
        assert_eq!(
            w,
            "$env:SPECTRA_SERVER=\"http://m:8080\"; $env:SPECTRA_TOKEN=\"abc\"; .\\spectra-agent.exe"
        );
        let unit = systemd_unit("http://m:8080", "abc");
        assert!(unit.contains("Environment=\"SPECTRA_SERVER=http://m:8080\"\n"));
        assert!(unit.contains("Environment=\"SPECTRA_TOKEN=abc\"\n"));
        assert!(unit.contains("ExecStart=/usr/local/bin/spectra-agent\n"));
    }

    #[test]
    fn the_form_becomes_the_api_request() {
        let r = token_request(&NewTokenForm {
            uses: " 3 ".into(),
            expires_in: "7d".into(),
            labels: "env=prod, rack=r1".into(),
        })
        .unwrap();
        assert_eq!(r.uses, Some(3));
        assert_eq!(r.expires_in.as_deref(), Some("7d"));
        assert_eq!(r.labels.len(), 2);
        let r = token_request(&NewTokenForm {
            expires_in: "never".into(),
            ..NewTokenForm::default()
        })
        .unwrap();
        assert_eq!((r.uses, r.expires_in), (None, None));
        let e = token_request(&NewTokenForm {
            uses: "many".into(),
            ..NewTokenForm::default()
        })
        .unwrap_err();
        assert!(e.starts_with("uses:"), "{e}");
    }
}
