//! The web dashboard in a real headless Chromium (SPEC §8), against the
//! real `spectra-server` on 127.0.0.1 with its local agent reporting this
//! machine: sign-in, the fleet overview, a host's charts and range picker,
//! a ping from the diagnostics panel, an enrollment token, sign-out, and
//! what a viewer may not see. Every page is checked for external requests
//! and for console errors (CSP violations show there).
//!
//! Needs Debian's `chromium` and `chromium-driver` (skipped with a message
//! without them, a failure under `CI=true`). With `SPECTRA_SCREENSHOTS=1`
//! the screenshots go to `docs/screenshots/` (the committed ones),
//! otherwise to a temporary directory.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spectra_e2e::browser::{Browser, LogEntry, Shots};
use spectra_e2e::*;

/// Page elements: the page has loaded, or a quick request answered.
const SHORT: Duration = Duration::from_secs(20);
/// Data from the local agent (it reports every 5 s), diagnostics.
const LONG: Duration = Duration::from_secs(60);

const ADMIN_PASSWORD: &str = "e2e-admin-password-42";
const VIEWER: &str = "e2e-viewer";
const VIEWER_PASSWORD: &str = "e2e-viewer-password-42";

struct Setup {
    _dir: tempfile::TempDir,
    server: Server,
    api: Api,
    /// The local agent as the API lists it.
    host_id: String,
    hostname: String,
}

/// A server with its local agent (on by default), the admin's password
/// and token set; waits until the local agent has registered.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        &dir.path().join("server"),
        "127.0.0.1:0",
        &[],
        &[
            ("SPECTRA_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("SPECTRA_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    );
    let api = Api::new(&server.url());
    let local = wait_for("the local agent to register", LONG, || async {
        let (status, body) = api.get("/api/v1/agents").await;
        if status != 200 {
            return None;
        }
        body.as_array()?
            .iter()
            .find(|a| a["local"] == true)
            .cloned()
    })
    .await;
    Setup {
        _dir: dir,
        host_id: local["id"].as_str().expect("agent id").to_owned(),
        hostname: local["hostname"].as_str().expect("hostname").to_owned(),
        server,
        api,
    }
}

/// Waits until the local agent has stored at least `n` CPU samples, so
/// its chart has a line to draw.
async fn wait_samples(s: &Setup, n: usize, timeout: Duration) {
    wait_for(
        &format!("{n} cpu samples from the local agent"),
        timeout,
        || async { (s.api.sample_times(&s.host_id, "cpu", "15m").await.len() >= n).then_some(()) },
    )
    .await;
}

/// The fleet table's row of the local host.
fn row_css(s: &Setup) -> String {
    format!(
        "#fleet-table tr[data-hostname=\"{}\"]",
        s.hostname.replace('\\', "\\\\").replace('"', "\\\"")
    )
}

/// Signs in through the login form, starting from `/` (which redirects to
/// the form), and lands on the fleet overview.
async fn sign_in(b: &Browser, s: &Setup, username: &str, password: &str) {
    b.goto(&format!("{}/", s.server.url())).await;
    b.wait_path("/login", SHORT).await;
    b.fill("#username", username, SHORT).await;
    b.fill("#password", password, SHORT).await;
    b.click("#login-form button[type=submit]", SHORT).await;
    b.wait_path("/", SHORT).await;
    b.wait_css("#fleet-table", SHORT).await;
}

/// Console messages that are errors; `expected` ones (substrings) are let
/// through.
fn errors<'a>(log: &'a [LogEntry], expected: &[&str]) -> Vec<&'a LogEntry> {
    log.iter()
        .filter(|e| e.level == "SEVERE" || e.message.contains("Content Security Policy"))
        .filter(|e| !expected.iter().any(|x| e.message.contains(x)))
        .collect()
}

/// No console error (CSP violation, failed request, script error) since
/// the last check.
async fn assert_console_clean(b: &Browser, step: &str, expected: &[&str]) {
    let log = b.console().await;
    let bad = errors(&log, expected);
    assert!(
        bad.is_empty(),
        "{step}: the browser console has errors: {bad:#?}"
    );
}

/// The page loads no script from an absolute URL and made no request to
/// another origin.
async fn assert_same_origin(b: &Browser, page: &str) {
    let report = b
        .js(
            "return {
               absolute_scripts: document.querySelectorAll('script[src^=\"http\"], script[src^=\"//\"]').length,
               inline_scripts: Array.from(document.querySelectorAll('script:not([src])')).filter(s => s.textContent.trim() !== '').length,
               foreign: performance.getEntriesByType('resource')
                 .map(e => e.name)
                 .filter(n => new URL(n, location.href).origin !== location.origin),
               resources: performance.getEntriesByType('resource').length,
             };",
        )
        .await;
    assert_eq!(report["absolute_scripts"], 0, "{page}: {report}");
    assert_eq!(
        report["inline_scripts"], 0,
        "{page}: inline scripts cannot run under the CSP: {report}"
    );
    assert_eq!(
        report["foreign"],
        json!([]),
        "{page}: requests to another origin: {report}"
    );
    assert!(
        report["resources"].as_u64().unwrap_or(0) > 0,
        "{page}: the page loaded its own assets: {report}"
    );
}

/// Every chart with its point count as JS: `[{el, canvas, points}]`. The
/// count is on the `.chart` (charts.js) or on its canvas.
const CHARTS_JS: &str = "const charts = Array.from(document.querySelectorAll('.chart[data-points], .chart canvas[data-points]'))
    .map(el => ({
      points: Number(el.dataset.points) || 0,
      canvas: el.tagName === 'CANVAS' ? el : el.querySelector('canvas'),
    }))
    .filter(c => c.canvas !== null);";

/// The largest `data-points` of the host page's charts that have a
/// canvas.
async fn chart_points(b: &Browser) -> u64 {
    b.js(&format!(
        "{CHARTS_JS} return Math.max(0, ...charts.map(c => c.points));"
    ))
    .await
    .as_u64()
    .unwrap_or(0)
}

/// Waits for a chart with at least two points, reloading the page every
/// 15 s in case its own refresh has not brought them yet.
async fn wait_chart_with_points(b: &Browser) {
    let deadline = Instant::now() + LONG;
    let mut loaded_at = Instant::now();
    loop {
        if chart_points(b).await > 1 {
            return;
        }
        if Instant::now() >= deadline {
            let context = b.page_context().await;
            panic!(
                "no chart (`.chart[data-points]` with a canvas) above 1 point within {LONG:?} (largest: {})\n{context}",
                chart_points(b).await
            );
        }
        if loaded_at.elapsed() > Duration::from_secs(15) {
            b.client.refresh().await.expect("reload the host page");
            b.wait_css("#charts[data-loaded=\"true\"]", SHORT).await;
            loaded_at = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Pixels of the first chart with data: how many are drawn (alpha) and
/// how many in a colour (a series line; axes and grid are grey).
async fn chart_pixels(b: &Browser) -> Value {
    b.js(&format!(
        "{CHARTS_JS}
         const chart = charts.find(c => c.points > 1);
         if (!chart) return null;
         const c = chart.canvas;
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
         let drawn = 0, coloured = 0;
         for (let i = 0; i < d.length; i += 4) {{
           if (d[i + 3] === 0) continue;
           drawn++;
           const hi = Math.max(d[i], d[i + 1], d[i + 2]), lo = Math.min(d[i], d[i + 1], d[i + 2]);
           if (d[i + 3] > 100 && hi - lo > 60) coloured++;
         }}
         return {{width: c.width, height: c.height, points: chart.points, drawn: drawn, coloured: coloured}};"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_and_uses_the_dashboard() {
    let started = Instant::now();
    let Some(b) = Browser::start().await else {
        return;
    };
    let s = setup().await;
    let shots = Shots::from_env();
    if shots.committed() {
        // The committed screenshots show a few minutes of data: lines in
        // the charts and the fleet's sparklines.
        wait_samples(&s, 60, Duration::from_secs(420)).await;
    } else {
        wait_samples(&s, 2, LONG).await;
    }

    // 1. `/` sends an anonymous visitor to the form; signing in lands on
    //    the fleet overview.
    sign_in(&b, &s, "admin", ADMIN_PASSWORD).await;
    assert_console_clean(&b, "sign-in", &[]).await;

    // 2. The overview lists this host.
    let row = row_css(&s);
    b.wait_css(&row, SHORT).await;
    let row_text = b.text_of(&row, SHORT).await;
    assert!(row_text.contains(&s.hostname), "{row_text}");
    assert!(
        b.exists(&format!("{row} .status.s-online")).await,
        "the local host shows online: {row_text}"
    );
    assert_same_origin(&b, "fleet").await;
    b.screenshot(&shots.path("fleet.png")).await;

    // The theme switch: dark, saved for the next page; then back.
    b.click("#theme-toggle", SHORT).await;
    let theme = b.js("return document.documentElement.dataset.theme;").await;
    assert_eq!(
        theme, "dark",
        "the toggle switches the light default to dark"
    );
    let background = b
        .js("return getComputedStyle(document.body).backgroundColor;")
        .await;
    b.screenshot(&shots.path("fleet-dark.png")).await;
    b.client.refresh().await.expect("reload");
    b.wait_css(&row, SHORT).await;
    assert_eq!(
        b.js("return document.documentElement.dataset.theme;").await,
        "dark",
        "the choice survives a reload"
    );
    b.click("#theme-toggle", SHORT).await;
    assert_eq!(
        b.js("return document.documentElement.dataset.theme;").await,
        "light"
    );
    let light_background = b
        .js("return getComputedStyle(document.body).backgroundColor;")
        .await;
    assert_ne!(background, light_background, "dark and light differ");

    // A phone-sized window: the overview still fits its width (the table
    // scrolls inside its wrapper, the page does not).
    b.client
        .set_window_size(390, 844)
        .await
        .expect("phone-sized window");
    let width = b
        .wait_js(
            "the narrow layout",
            "return window.innerWidth <= 420 ? window.innerWidth : null;",
            SHORT,
        )
        .await;
    let overflow = b
        .js("return document.documentElement.scrollWidth - window.innerWidth;")
        .await;
    b.screenshot(&shots.path("fleet-mobile.png")).await;
    assert!(
        overflow.as_i64().unwrap_or(i64::MAX) <= 1,
        "at {width}px the page scrolls sideways by {overflow}px"
    );
    b.client
        .set_window_size(1400, 1000)
        .await
        .expect("desktop window");
    assert_console_clean(&b, "fleet", &[]).await;

    // 3. The host page: charts with data.
    b.click(&format!("{row} a.host-link"), SHORT).await;
    b.wait_path(&format!("/hosts/{}", s.host_id), SHORT).await;
    b.wait_css("#charts[data-loaded=\"true\"]", SHORT).await;
    wait_chart_with_points(&b).await;
    // The last 15 minutes: the samples spread wider than on the hour.
    b.click("#range-picker [data-range=\"15m\"]", SHORT).await;
    b.wait_css("#charts[data-range=\"15m\"][data-loaded=\"true\"]", SHORT)
        .await;
    wait_chart_with_points(&b).await;
    // uPlot draws axes and grid in grey: colour is a series line.
    let pixels = chart_pixels(&b).await;
    eprintln!("the first chart with data: {pixels}");
    assert!(
        pixels["drawn"].as_u64().unwrap_or(0) > 0 && pixels["coloured"].as_u64().unwrap_or(0) > 4,
        "the chart canvas has a coloured series line drawn: {pixels}"
    );
    assert_same_origin(&b, "host").await;
    b.js("const c = document.getElementById('charts');
          (c.closest('.panel') || c).scrollIntoView();
          return null;")
        .await;
    b.screenshot(&shots.path("host.png")).await;
    assert_console_clean(&b, "host page", &[]).await;

    // 4. The range picker reloads the charts for 24 h.
    b.click("#range-picker [data-range=\"24h\"]", SHORT).await;
    b.wait_css("#charts[data-range=\"24h\"][data-loaded=\"true\"]", SHORT)
        .await;
    assert!(
        b.exists("#range-picker [data-range=\"24h\"][aria-pressed=\"true\"]")
            .await,
        "the picker shows 24 h as chosen"
    );
    assert_console_clean(&b, "range 24h", &[]).await;

    // 5. A ping from the diagnostics panel, run by the local agent.
    b.fill(
        "#diagnostics #diag-ping input[name=target]",
        "127.0.0.1",
        SHORT,
    )
    .await;
    b.click("#diagnostics #diag-ping [type=submit]", SHORT)
        .await;
    b.wait_css("#diag-result [data-command-status=\"done\"]", LONG)
        .await;
    b.wait_css("#diag-result .ping-table tbody tr", SHORT).await;
    let table = b.text_of("#diag-result .ping-table", SHORT).await;
    assert!(table.contains("127.0.0.1"), "the ping table: {table}");
    // The result at the bottom of the view, the forms above it.
    b.js("document.getElementById('diag-result').scrollIntoView({block: 'end'}); return null;")
        .await;
    b.screenshot(&shots.path("diagnostics.png")).await;
    assert_console_clean(&b, "diagnostics", &[]).await;
    let (_, audit) = s.api.get("/api/v1/audit").await;
    assert!(
        audit.to_string().contains("127.0.0.1"),
        "the ping is in the audit log: {audit}"
    );

    // 6. A new enrollment token and the install command that carries it.
    let (_, before) = s.api.get("/api/v1/enrollment-tokens").await;
    b.goto(&format!("{}/admin/enrollment", s.server.url()))
        .await;
    let create = b.wait_css("#create-enrollment-token", SHORT).await;
    let tag = create.tag_name().await.expect("tag name").to_lowercase();
    if tag == "form" {
        b.click("#create-enrollment-token [type=submit]", SHORT)
            .await;
    } else {
        create
            .click()
            .await
            .expect("click #create-enrollment-token");
    }
    let secret = b.text_of("#new-token .secret", SHORT).await;
    let secret = secret.trim().to_owned();
    assert!(secret.len() >= 16, "a token is shown: {secret:?}");
    let install = b.text_of("#install-linux", SHORT).await;
    assert!(
        install.contains(&secret),
        "the Linux install command carries the token: {install}"
    );
    let (_, after) = s.api.get("/api/v1/enrollment-tokens").await;
    assert_eq!(
        after.as_array().map(Vec::len),
        before.as_array().map(|a| a.len() + 1),
        "one more enrollment token: {after}"
    );
    assert_same_origin(&b, "enrollment").await;
    b.screenshot(&shots.path("enrollment.png")).await;
    assert_console_clean(&b, "enrollment", &[]).await;

    // 7. Sign out: back to the form, and the session is gone.
    b.click("#logout", SHORT).await;
    b.wait_path("/login", SHORT).await;
    b.goto(&format!("{}/", s.server.url())).await;
    b.wait_path("/login", SHORT).await;
    assert_console_clean(&b, "logout", &[]).await;

    b.close().await;
    eprintln!("dashboard admin flow took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_diagnostics_and_no_admin_pages() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let s = setup().await;
    let resp = s
        .api
        .http
        .post(format!("{}/api/v1/users", s.server.url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"username": VIEWER, "password": VIEWER_PASSWORD, "role": "viewer"}))
        .send()
        .await
        .expect("POST /api/v1/users");
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    assert!(status == 200 || status == 201, "{status} {body}");

    sign_in(&b, &s, VIEWER, VIEWER_PASSWORD).await;
    let row = row_css(&s);
    b.wait_css(&row, SHORT).await;
    assert!(
        !b.exists("a[href=\"/admin/agents\"]").await,
        "no admin links in a viewer's menu"
    );

    // An admin page answers 403, as a page.
    b.goto(&format!("{}/admin/agents", s.server.url())).await;
    let heading = b.text_of("h1", SHORT).await;
    assert!(heading.starts_with("403"), "the 403 page: {heading}");
    let status = b
        .js("const n = performance.getEntriesByType('navigation')[0]; return n ? n.responseStatus : null;")
        .await;
    assert_eq!(status, 403, "the page's HTTP status");
    // The refused page itself is the only error the console may show.
    assert_console_clean(&b, "viewer on /admin/agents", &["status of 403"]).await;

    // The host page renders, without the diagnostics panel.
    b.goto(&format!("{}/", s.server.url())).await;
    b.click(&format!("{row} a.host-link"), SHORT).await;
    b.wait_path(&format!("/hosts/{}", s.host_id), SHORT).await;
    b.wait_css("#charts[data-loaded=\"true\"]", SHORT).await;
    assert!(
        !b.exists("#diagnostics").await,
        "a viewer gets no #diagnostics"
    );
    assert!(!b.exists("#diag-ping").await, "a viewer gets no ping form");
    assert_console_clean(&b, "viewer host page", &[]).await;

    b.close().await;
}
