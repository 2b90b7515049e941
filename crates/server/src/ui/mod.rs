//! The web dashboard (SPEC §8): server-rendered HTML from askama templates
//! (`crates/server/templates/`), htmx for the live parts and uPlot for
//! charts, both vendored in `crates/server/assets/vendor/` and embedded in
//! the binary with rust-embed. Nothing is fetched from elsewhere: the page
//! makes no external request, and the build needs no Node.js.
//!
//! Layout:
//! - this file: the shared page chrome ([`Chrome`]), rendering, the
//!   embedded assets (`GET /assets/...`), what a refused page request
//!   answers ([`page_denial`]), and [`route_specs`], which the API's one
//!   route table ([`crate::http::routes`]) takes in, so every page has its
//!   access rule there too.
//! - [`pages`]: login/logout and the fleet overview (live rows).
//! - [`host`]: the host page: charts (columnar JSON for uPlot, read from
//!   the rollup tier that fits the range), tables and panels.
//! - [`diagnostics`]: the diagnostics panel: a form per command, live
//!   status, results rendered for people.
//! - [`admin`]: agents, enrollment tokens, users, API tokens, audit log.
//! - [`format`]: number, size, duration and time formatting for templates.
//!
//! Writes from the browser go through htmx, which sends the session's
//! CSRF token as `X-CSRF-Token` on every request (set once on `<body>`),
//! so the route guard's CSRF rule holds for pages as for the API.

pub mod admin;
pub mod diagnostics;
pub mod format;
pub mod host;
pub mod pages;

use std::sync::OnceLock;

use askama::Template;
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use sha2::{Digest, Sha256};
use spectra_store::Role;

use crate::http::routes::{spec, Access, RouteSpec};
use crate::http::AppError;
use crate::services::auth::{role_name, Principal, Via};

/// Every dashboard route (pages, fragments, assets), with its rule.
pub fn route_specs() -> Vec<RouteSpec> {
    let mut routes = vec![spec(
        Method::GET,
        "/assets/{*path}",
        Access::Public,
        axum::routing::get(asset),
    )];
    routes.extend(pages::routes());
    routes.extend(host::routes());
    routes.extend(diagnostics::routes());
    routes.extend(admin::routes());
    routes
}

/// The files under `crates/server/assets/`, compiled into the binary.
#[derive(rust_embed::RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// A short hash of every asset: asset URLs carry it (`?v=`), so browsers
/// may cache them for a long time and still see a new build at once.
pub fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut names: Vec<_> = Assets::iter().collect();
        names.sort();
        let mut hasher = Sha256::new();
        for name in names {
            if let Some(file) = Assets::get(&name) {
                hasher.update(name.as_bytes());
                hasher.update(file.metadata.sha256_hash());
            }
        }
        hex::encode(&hasher.finalize()[..6])
    })
}

/// `GET /assets/{*path}`: an embedded file, with its type, an ETag and a
/// long cache lifetime (URLs are versioned).
async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some(file) = Assets::get(&path) else {
        return AppError::NotFound(format!("no asset {path}")).into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..8]));
    let mut response = if headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag)
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        file.data.into_owned().into_response()
    };
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(&path)));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    response
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "md" | "LICENSE" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// What every signed-in page shows around its content: who is signed in,
/// the CSRF token htmx sends back, and which navigation entry is current.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub username: String,
    pub role: &'static str,
    pub csrf_token: String,
    pub is_admin: bool,
    pub is_operator: bool,
    /// The navigation entry to mark current (`fleet`, `admin`, ...).
    pub nav: &'static str,
    pub title: String,
    pub v: &'static str,
    pub version: &'static str,
}

impl Chrome {
    pub fn new(principal: &Principal, nav: &'static str, title: impl Into<String>) -> Self {
        let csrf_token = match &principal.via {
            Via::Session { csrf_token, .. } => csrf_token.clone(),
            // An API token caller reading a page sends its token on every
            // request; no CSRF token exists or is needed.
            Via::Token { .. } => String::new(),
        };
        Self {
            username: principal.username.clone(),
            role: role_name(principal.role),
            csrf_token,
            is_admin: principal.may(Role::Admin),
            is_operator: principal.may(Role::Operator),
            nav,
            title: title.into(),
            v: asset_version(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// Renders a template to an HTML response (a template error is an internal
/// error: logged, never shown).
pub fn render<T: Template>(template: &T) -> Result<Response, AppError> {
    template
        .render()
        .map(|html| Html(html).into_response())
        .map_err(AppError::internal)
}

/// A small HTML page for a refused or failed page request.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    reason: String,
    message: String,
    v: &'static str,
}

/// What a page request the guard refused answers: not signed in → the
/// login page (303 with `?next=`; for htmx, `HX-Redirect`); anything else
/// → an HTML error page with the reason.
pub fn page_denial(headers: &HeaderMap, uri: &Uri, error: AppError) -> Response {
    if matches!(error, AppError::Unauthorized(_)) {
        let next = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| *p != "/")
            .map(|p| format!("?next={}", format::url_encode(p)))
            .unwrap_or_default();
        let target = format!("/login{next}");
        let is_htmx = headers.contains_key("hx-request");
        let mut response = if is_htmx {
            StatusCode::UNAUTHORIZED.into_response()
        } else {
            StatusCode::SEE_OTHER.into_response()
        };
        if let Ok(v) = HeaderValue::from_str(&target) {
            let name = if is_htmx {
                axum::http::HeaderName::from_static("hx-redirect")
            } else {
                LOCATION
            };
            response.headers_mut().insert(name, v);
        }
        return response;
    }
    error_page(error)
}

/// An [`AppError`] as an HTML page (internal errors are logged, not shown).
pub fn error_page(error: AppError) -> Response {
    let status = error.status();
    let message = match &error {
        AppError::Internal(cause) => {
            tracing::error!(error = %cause, "dashboard request failed");
            "internal server error (the server log has the cause)".to_owned()
        }
        other => other.to_string(),
    };
    let page = ErrorPage {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("Error").to_owned(),
        message,
        v: asset_version(),
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, error.to_string()).into_response(),
    }
}

/// A handler result for pages: errors become HTML error pages.
pub struct PageResult(pub Result<Response, AppError>);

impl IntoResponse for PageResult {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(r) => r,
            Err(e) => error_page(e),
        }
    }
}

impl From<Result<Response, AppError>> for PageResult {
    fn from(r: Result<Response, AppError>) -> Self {
        Self(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendored_library_ships_with_its_licence() {
        for (lib, licence) in [
            ("vendor/htmx.min.js", "vendor/htmx.LICENSE"),
            ("vendor/uPlot.iife.min.js", "vendor/uPlot.LICENSE"),
        ] {
            assert!(Assets::get(lib).is_some(), "{lib} is not embedded");
            let text = Assets::get(licence).expect("licence embedded");
            assert!(text.data.len() > 100, "{licence} is empty");
        }
    }

    #[test]
    fn asset_version_is_stable_and_short() {
        assert_eq!(asset_version(), asset_version());
        assert_eq!(asset_version().len(), 12);
    }

    #[test]
    fn unauthenticated_page_requests_go_to_login_with_next() {
        let uri: Uri = "/hosts/abc?range=24h".parse().unwrap();
        let r = page_denial(&HeaderMap::new(), &uri, AppError::Unauthorized("x".into()));
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers()[LOCATION],
            "/login?next=%2Fhosts%2Fabc%3Frange%3D24h"
        );
        let mut htmx = HeaderMap::new();
        htmx.insert("hx-request", HeaderValue::from_static("true"));
        let r = page_denial(&htmx, &uri, AppError::Unauthorized("x".into()));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().contains_key("hx-redirect"));
        let r = page_denial(&htmx, &uri, AppError::Forbidden("needs admin".into()));
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
}
