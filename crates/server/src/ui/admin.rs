//! The administration pages (issue 6): agents, enrollment, users, the
//! audit log, and every user's own API tokens and password.
//!
//! Layout: one submodule per page, each with its routes, handlers and
//! templates (`templates/admin_*.html`, `templates/account_*.html`):
//! - [`agents`]: `/admin/agents`: approve, revoke, delete, labels, rotation;
//! - [`enrollment`]: `/admin/enrollment`: approval mode, enrollment tokens
//!   and the install commands that carry a new one;
//! - [`users`]: `/admin/users`: create, role, password reset, delete;
//! - [`account`]: `/account/tokens`: one's API tokens (an admin also sees
//!   everyone's) and one's password;
//! - [`audit`]: `/admin/audit`: the log, filtered and paged backwards.
//!
//! Every change goes through the same shared functions as the JSON API
//! (`crate::http::agents`, `crate::http::auth`), so the rules (the last
//! admin, label checks, token expiry, the local agent) and the audit
//! entries are the API's own.
//!
//! How actions answer (one convention for all of them): a button or form
//! posts with htmx and targets a message area that carries
//! `data-show-errors`. Success is `200` with an `.ok-message` for that area
//! plus the changed tables as out-of-band swaps (`hx-swap-oob`); failure
//! is a `4xx` with an `.error-message`, which `app.js` puts into the
//! target (htmx itself does not swap error responses).

pub mod account;
pub mod agents;
pub mod audit;
pub mod enrollment;
pub mod users;

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;

use crate::http::routes::RouteSpec;
use crate::http::AppError;

pub fn routes() -> Vec<RouteSpec> {
    let mut routes = Vec::new();
    routes.extend(agents::routes());
    routes.extend(enrollment::routes());
    routes.extend(users::routes());
    routes.extend(account::routes());
    routes.extend(audit::routes());
    routes
}

/// The answer of an action: a message for the target, then fragments
/// swapped out of band (each rendered with `hx-swap-oob`).
#[derive(Template)]
#[template(path = "admin_flash.html")]
struct Flash {
    ok: bool,
    message: String,
    oob: Vec<String>,
}

/// A successful action: `.ok-message` plus out-of-band fragments.
pub(crate) fn done(message: impl Into<String>, oob: Vec<String>) -> Result<Response, AppError> {
    super::render(&Flash {
        ok: true,
        message: message.into(),
        oob,
    })
}

/// Sets `HX-Retarget`, for an answer that belongs elsewhere than the
/// element that asked (a form's own error area gets errors, the page's
/// message area gets the success).
pub(crate) fn retarget(mut response: Response, selector: &'static str) -> Response {
    response.headers_mut().insert(
        HeaderName::from_static("hx-retarget"),
        HeaderValue::from_static(selector),
    );
    response
}

/// A failed action as an `.error-message` fragment with the error's
/// status (internal errors are logged, never shown).
pub(crate) fn error_fragment(error: AppError) -> Response {
    let status = error.status();
    let message = match &error {
        AppError::Internal(cause) => {
            tracing::error!(error = %cause, "dashboard action failed");
            "internal server error (the server log has the cause)".to_owned()
        }
        other => other.to_string(),
    };
    let flash = Flash {
        ok: false,
        message,
        oob: Vec::new(),
    };
    match flash.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, error.to_string()).into_response(),
    }
}

/// A handler result for htmx fragments: errors become `.error-message`
/// fragments with their status (not whole error pages).
pub struct Fragment(pub Result<Response, AppError>);

impl IntoResponse for Fragment {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(r) => r,
            Err(e) => error_fragment(e),
        }
    }
}

impl From<Result<Response, AppError>> for Fragment {
    fn from(r: Result<Response, AppError>) -> Self {
        Self(r)
    }
}

/// A form body, or a 400 that says the request was not a form.
pub(crate) fn form_body<T>(form: Result<Form<T>, FormRejection>) -> Result<T, AppError> {
    form.map(|Form(f)| f)
        .map_err(|e| AppError::BadRequest(format!("the form was not sent as a form: {e}")))
}

/// Renders a fragment template to a string (for out-of-band swaps).
pub(crate) fn fragment<T: Template>(template: &T) -> Result<String, AppError> {
    template.render().map_err(AppError::internal)
}

/// Labels as people type them: `key=value` pairs, one per line or
/// separated by commas; blank entries are skipped. The pairs are then
/// checked by the API's own rules ([`crate::services::agents::validate_labels`]
/// runs in the shared functions); this only splits the text, and says
/// which entry it could not read.
pub fn parse_labels_text(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for entry in text.split(['\n', ',']) {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            return Err(format!(
                "labels: `{entry}` is not key=value (one per line, or separated by commas)"
            ));
        };
        let key = key.trim();
        if labels
            .insert(key.to_owned(), value.trim().to_owned())
            .is_some()
        {
            return Err(format!("labels: `{key}` is given twice"));
        }
    }
    Ok(labels)
}

/// Labels back as text for the edit box, one `key=value` per line.
pub fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_from_lines_or_commas() {
        let l = parse_labels_text("env=prod\n role = db ,rack=r1\n\n").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l["env"], "prod");
        assert_eq!(l["role"], "db");
        assert_eq!(l["rack"], "r1");
        assert!(parse_labels_text("  \n , ").unwrap().is_empty());
        // An empty value is kept (the API accepts it).
        assert_eq!(parse_labels_text("flag=").unwrap()["flag"], "");
    }

    #[test]
    fn unreadable_labels_name_the_entry() {
        let e = parse_labels_text("env=prod\nbroken").unwrap_err();
        assert!(e.contains("`broken`"), "{e}");
        let e = parse_labels_text("env=a, env=b").unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn labels_round_trip_through_text() {
        let l = parse_labels_text("b=2,a=1").unwrap();
        assert_eq!(labels_text(&l), "a=1\nb=2");
        assert_eq!(parse_labels_text(&labels_text(&l)).unwrap(), l);
    }

    #[test]
    fn errors_become_fragments_with_their_status() {
        let r = error_fragment(AppError::Conflict("admin is the last admin".into()));
        assert_eq!(r.status(), axum::http::StatusCode::CONFLICT);
        let r = error_fragment(AppError::Internal("secret cause".into()));
        assert_eq!(r.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    }
}
