//! The host page (issue 6) driven through `app(state)`: the page, its
//! charts document, the table fragments, and who sees the diagnostics slot.
//! Data arrives as an agent sends it (`POST /api/v1/metrics`).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, DurationRound, Utc};
use common::{harness, Harness, ADMIN_TOKEN};
use serde_json::{json, Value};
use spectra_store::Role;

impl Harness {
    /// Registers an agent; answers (agent id, credential).
    async fn register(&self, hostname: &str) -> (String, String) {
        self.enroll(json!({
            "hostname": hostname, "os": "linux", "platform": "debian", "platform_ver": "12",
            "kernel": "6.1.0-18-amd64", "arch": "x86_64", "cpu_model": "Intel(R) Xeon(R) E-2236",
            "cpu_cores": 12, "ram_total": 34359738368u64, "agent_version": "0.1.0",
            "boot_time": 1700000000, "ips": ["10.0.0.5", "fd00::5"]
        }))
        .await
    }

    async fn ingest(&self, credential: &str, batch: Value) {
        static BATCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = BATCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = self
            .send(
                Request::post("/api/v1/metrics")
                    .header("authorization", format!("Bearer {credential}"))
                    .header("x-spectra-batch-id", format!("batch-{n}"))
                    .header("content-type", "application/json")
                    .body(Body::from(batch.to_string()))
                    .unwrap(),
            )
            .await;
        assert!(r.status.is_success(), "{} {}", r.status, r.text);
    }
}

fn envelope(metric_type: &str, at: DateTime<Utc>, data: Value) -> Value {
    json!({"type": metric_type, "timestamp": at.to_rfc3339(), "hostname": "web-01", "data": data})
}

fn cpu(at: DateTime<Utc>, usage: f64, cores: [f64; 2]) -> Value {
    envelope(
        "cpu",
        at,
        json!({"usage": usage, "cores": cores, "iowait": 1.0, "steal": 0.0,
               "load_1m": 0.5, "load_5m": 0.4, "load_15m": 0.3}),
    )
}

fn disk(at: DateTime<Utc>, mount: &str, pct: f64) -> Value {
    envelope(
        "disk",
        at,
        json!({"device": "/dev/sda1", "mountpoint": mount, "filesystem": "ext4", "disk_type": "local",
               "disk_total": 1000, "disk_used": 500, "disk_available": 500, "disk_used_pct": pct}),
    )
}

fn process_list(at: DateTime<Utc>, name: &str) -> Value {
    envelope(
        "process_list",
        at,
        json!({"processes": [
            {"pid": 4242, "name": name, "cpu_percent": 93.5, "mem_percent": 1.2, "mem_rss": 52428800,
             "status": "running", "threads_total": 4, "user": "www-data",
             "cmdline": format!("/usr/bin/{name} --serve --a-very-long-option-that-goes-on-and-on-and-on-and-on-and-on-and-on")},
            {"pid": 1, "name": "systemd", "cpu_percent": 0.1, "mem_percent": 0.1, "mem_rss": 1048576,
             "status": "waiting", "threads_total": 1, "user": "root"}
        ], "total_processes": 97}),
    )
}

/// A time on a multiple of `secs`, `ago` before now.
fn aligned(ago: Duration, secs: i64) -> DateTime<Utc> {
    (Utc::now() - ago)
        .duration_trunc(Duration::seconds(secs))
        .unwrap()
}

fn chart<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["charts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no chart {id} in {doc}"))
}

/// The value of series `series` at time `t` in a columnar chart.
fn value_at(chart: &Value, series: usize, t: i64) -> Value {
    let x = chart["x"].as_array().unwrap();
    let i = x
        .iter()
        .position(|v| v.as_i64() == Some(t))
        .unwrap_or_else(|| panic!("{t} not on the x axis of {chart}"));
    chart["y"][series][i].clone()
}

#[tokio::test]
async fn the_page_shows_the_host_and_every_collector_status() {
    let h = harness().await;
    let (id, credential) = h.register("web-01").await;
    let now = aligned(Duration::seconds(30), 5);
    h.ingest(
        &credential,
        json!([
            cpu(now, 12.0, [10.0, 14.0]),
            envelope(
                "system",
                now,
                json!({"uptime": 3600, "processes": 97, "boot_time": now.timestamp() - 3600,
                                           "os": "Debian GNU/Linux 12 (bookworm)"})
            ),
            envelope(
                "collector_status",
                now,
                json!({"collector": "wifi", "state": "unsupported",
                                                     "message": "no wireless interface"})
            ),
            envelope(
                "collector_status",
                now,
                json!({"collector": "disk", "state": "error",
                                                     "message": "statvfs /mnt/nfs timed out"})
            ),
        ]),
    )
    .await;
    let r = h.get(&format!("/hosts/{id}"), ADMIN_TOKEN).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let html = r.text;
    assert!(html.contains(r#"<h1 id="host-name">web-01</h1>"#), "{html}");
    assert!(html.contains("Debian GNU/Linux 12 (bookworm)"));
    assert!(html.contains("Intel(R) Xeon(R) E-2236"));
    assert!(html.contains("32 GiB"), "RAM in binary units");
    assert!(html.contains("10.0.0.5, fd00::5"));
    // Collectors: unsupported and failing ones say so, with the reason.
    assert!(html.contains(r#"data-collector="wifi" data-state="unsupported""#));
    assert!(html.contains("no wireless interface"));
    assert!(html.contains(r#"data-collector="disk" data-state="error""#));
    assert!(html.contains("statvfs /mnt/nfs timed out"));
    // Charts for what reported; a note, not an empty chart, for the rest.
    assert!(html.contains(r#"data-chart-id="cpu""#));
    assert!(html.contains(r#"data-chart-id="load""#));
    assert!(!html.contains(r#"data-chart-id="wifi_signal""#));
    assert!(!html.contains(r#"data-chart-id="disk_usage""#));
    assert!(
        html.contains(
            "Not charted: WiFi signal: wifi collector unsupported: no wireless interface"
        ),
        "{html}"
    );
    assert!(html.contains("Disk usage per mount: disk collector error: statvfs /mnt/nfs timed out"));
    // The range picker, with the default range pressed.
    assert!(html.contains(r#"id="range-picker""#));
    assert!(html.contains(r#"data-range="1h" aria-pressed="true""#));
    assert!(html.contains(r#"data-range="7d" aria-pressed="false""#));
    // No Pi and no workloads reported: no such sections.
    assert!(!html.contains(r#"id="pi""#));
    assert!(!html.contains(r#"id="workloads""#));
    // Scripts only from files (CSP).
    assert!(html.contains(r#"src="/assets/charts.js?v="#));
    assert!(!html.contains("style=\""));
}

#[tokio::test]
async fn charts_come_back_columnar_with_the_values_sent() {
    let h = harness().await;
    let (id, credential) = h.register("web-01").await;
    let t1 = aligned(Duration::minutes(5), 5);
    let t2 = t1 + Duration::seconds(5);
    h.ingest(
        &credential,
        json!([
            cpu(t1, 40.0, [30.0, 50.0]),
            cpu(t2, 60.0, [55.0, 65.0]),
            disk(t1, "/", 50.0),
            disk(t1, "/data", 75.5),
        ]),
    )
    .await;
    let r = h
        .get(&format!("/ui/hosts/{id}/charts?range=15m"), ADMIN_TOKEN)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let doc = r.json();
    assert_eq!(doc["range"], "15m");
    assert_eq!(doc["tier"], "raw");
    assert_eq!(doc["step_s"], 5);
    assert!(doc["start"].is_string() && doc["end"].is_string());
    assert_eq!(doc["description"], "last 15 min · raw samples · step 5 s");

    let c = chart(&doc, "cpu");
    assert_eq!(c["unit"], "%");
    assert_eq!(c["series"][0]["label"], "usage");
    assert_eq!(c["x"].as_array().unwrap().len(), 2);
    assert_eq!(value_at(c, 0, t1.timestamp()), json!(40.0));
    assert_eq!(value_at(c, 0, t2.timestamp()), json!(60.0));
    let cores = chart(&doc, "cpu_cores");
    assert_eq!(cores["series"][1]["label"], "core 1");
    assert_eq!(value_at(cores, 1, t2.timestamp()), json!(65.0));
    let load = chart(&doc, "load");
    assert_eq!(value_at(load, 2, t1.timestamp()), json!(0.3));

    let d = chart(&doc, "disk_usage");
    let labels: Vec<&str> = d["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["/", "/data"]);
    assert_eq!(value_at(d, 0, t1.timestamp()), json!(50.0));
    assert_eq!(value_at(d, 1, t1.timestamp()), json!(75.5));
    assert_eq!(
        d["y"].as_array().unwrap().len(),
        2,
        "one y array per series"
    );
    // Types that never reported are not in the document.
    assert!(doc["charts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["id"] != "wifi_signal" && c["id"] != "memory"));
}

#[tokio::test]
async fn long_ranges_read_the_rollup_tiers() {
    let h = harness().await;
    let (id, credential) = h.register("web-01").await;
    // Two samples inside one 20-minute step (and one minute bucket).
    let t = aligned(Duration::hours(2), 1200) + Duration::seconds(60);
    h.ingest(
        &credential,
        json!([
            cpu(t, 40.0, [40.0, 40.0]),
            cpu(t + Duration::seconds(5), 60.0, [60.0, 60.0])
        ]),
    )
    .await;
    let r = h
        .get(&format!("/ui/hosts/{id}/charts?range=7d"), ADMIN_TOKEN)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let doc = r.json();
    assert_eq!(doc["tier"], "1-minute");
    assert_eq!(doc["step_s"], 1200);
    let bucket = t.timestamp() - 60;
    assert_eq!(value_at(chart(&doc, "cpu"), 0, bucket), json!(50.0));

    let doc = h
        .get(&format!("/ui/hosts/{id}/charts?range=90d"), ADMIN_TOKEN)
        .await
        .json();
    assert_eq!(doc["tier"], "1-hour");
    assert_eq!(doc["step_s"], 21_600);
    let doc = h
        .get(&format!("/ui/hosts/{id}/charts?range=2y"), ADMIN_TOKEN)
        .await
        .json();
    assert_eq!(doc["tier"], "1-hour");
    assert_eq!(doc["range"], "2y");

    // A zoomed window: start/end, reported as custom.
    let start = (t - Duration::minutes(10)).to_rfc3339();
    let end = (t + Duration::minutes(10)).to_rfc3339();
    let r = h
        .get(
            &format!(
                "/ui/hosts/{id}/charts?start={}&end={}",
                start.replace('+', "%2B"),
                end.replace('+', "%2B")
            ),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let doc = r.json();
    assert_eq!(doc["range"], "custom");
    assert_eq!(doc["tier"], "raw");
    assert_eq!(value_at(chart(&doc, "cpu"), 0, t.timestamp()), json!(40.0));
}

#[tokio::test]
async fn bad_windows_are_refused_with_a_message() {
    let h = harness().await;
    let (id, _) = h.register("web-01").await;
    let r = h
        .get(&format!("/ui/hosts/{id}/charts?range=forever"), ADMIN_TOKEN)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let e = r.json()["error"].as_str().unwrap().to_owned();
    assert!(e.starts_with("range:") && e.contains("forever"), "{e}");
    let r = h
        .get(
            &format!("/ui/hosts/{id}/charts?start=yesterday"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].as_str().unwrap().starts_with("start:"));
    let r = h
        .get(
            &format!("/ui/hosts/{id}/charts?range=1h&start=2026-01-01T00:00:00Z"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn processes_show_what_ran_at_the_time_asked() {
    let h = harness().await;
    let (id, credential) = h.register("web-01").await;
    let older = aligned(Duration::minutes(40), 60);
    let newer = older + Duration::minutes(5);
    h.ingest(
        &credential,
        json!([
            process_list(older, "old-cruncher"),
            process_list(newer, "new-cruncher")
        ]),
    )
    .await;

    let between = (older + Duration::minutes(2)).format("%Y-%m-%dT%H:%M:%SZ");
    let r = h
        .get(
            &format!("/ui/hosts/{id}/processes?at={between}"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("old-cruncher"), "{}", r.text);
    assert!(!r.text.contains("new-cruncher"));
    assert!(r.text.contains("2m 0s before the time asked"), "{}", r.text);
    // The datetime-local form value (UTC, minutes) works the same.
    let local = (older + Duration::minutes(3)).format("%Y-%m-%dT%H:%M");
    let r = h
        .get(&format!("/ui/hosts/{id}/processes?at={local}"), ADMIN_TOKEN)
        .await;
    assert!(r.text.contains("old-cruncher") && !r.text.contains("new-cruncher"));
    assert!(r.text.contains(&format!(r#"value="{local}""#)));
    // Later: the newer snapshot; top by CPU first, cmdline cut with the
    // whole line in the title.
    let r = h
        .get(&format!("/ui/hosts/{id}/processes"), ADMIN_TOKEN)
        .await;
    assert!(r.text.contains("new-cruncher"), "{}", r.text);
    let first = r.text.find("new-cruncher").unwrap();
    assert!(first < r.text.find("systemd").unwrap());
    assert!(
        r.text.contains("on-and-on-and-on\""),
        "full cmdline in title"
    );
    assert!(r.text.contains("…</code>"), "cut cmdline");
    assert!(r.text.contains("top 2 of 97 processes"));
    // Before any snapshot: said so.
    let early = (older - Duration::minutes(30)).format("%Y-%m-%dT%H:%M");
    let r = h
        .get(&format!("/ui/hosts/{id}/processes?at={early}"), ADMIN_TOKEN)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text.contains("No process list was reported"),
        "{}",
        r.text
    );
    // Nonsense: a 400 with the reason.
    let r = h
        .get(&format!("/ui/hosts/{id}/processes?at=teatime"), ADMIN_TOKEN)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("at: `teatime` is not a time"), "{}", r.text);
}

#[tokio::test]
async fn only_operators_get_the_diagnostics_slot() {
    let h = harness().await;
    let (id, _) = h.register("web-01").await;
    let viewer = h.user_token("vic", Role::Viewer).await;
    let operator = h.user_token("olga", Role::Operator).await;
    let r = h.get(&format!("/hosts/{id}"), &viewer).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!r.text.contains(r#"id="diagnostics""#));
    assert!(r.text.contains(r#"id="charts""#), "viewers see the host");
    let r = h.get(&format!("/hosts/{id}"), &operator).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains(&format!(
        r#"<section id="diagnostics" class="panel" hx-get="/ui/hosts/{id}/diagnostics" hx-trigger="load" data-show-errors>"#
    )));
    // Viewers read the charts too.
    let r = h
        .get(&format!("/ui/hosts/{id}/charts?range=1h"), &viewer)
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_host_is_a_404_page() {
    let h = harness().await;
    let r = h.get("/hosts/agt_nope", ADMIN_TOKEN).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("<!doctype html>"));
    assert!(
        r.text.contains("no host with agent id agt_nope"),
        "{}",
        r.text
    );
    let r = h
        .get("/ui/hosts/agt_nope/charts?range=1h", ADMIN_TOKEN)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"].as_str().unwrap().contains("agt_nope"));
    for part in [
        "processes",
        "services",
        "applications",
        "updates",
        "workloads",
        "pi",
    ] {
        let r = h
            .get(&format!("/ui/hosts/agt_nope/{part}"), ADMIN_TOKEN)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{part}");
    }
}

#[tokio::test]
async fn tables_show_services_applications_and_updates() {
    let h = harness().await;
    let (id, credential) = h.register("web-01").await;
    // Nothing yet: each table says so.
    let r = h
        .get(&format!("/ui/hosts/{id}/services"), ADMIN_TOKEN)
        .await;
    assert!(
        r.text.contains("No service list reported yet."),
        "{}",
        r.text
    );
    let now = aligned(Duration::seconds(10), 1);
    let service = |name: &str, status: &str| json!({"name": name, "status": status, "sub_status": "running", "load_state": "loaded", "description": format!("{name} daemon")});
    h.ingest(
        &credential,
        json!([
            envelope(
                "service_list",
                now,
                json!({"services": [
                service("apache2.service", "active"), service("zfs-mount.service", "failed"),
                service("cron.service", "active")]})
            ),
            envelope(
                "application_list",
                now,
                json!({"applications": [
                {"name": "nginx", "version": "1.22.1-9", "vendor": "Debian Nginx Maintainers"},
                {"name": "curl", "version": "7.88.1-10", "vendor": "Alessandro Ghedini"}]})
            ),
            envelope(
                "updates",
                now,
                json!({"pending_count": 3, "security_count": 1, "reboot_required": true,
                "package_manager": "apt", "packages": [
                    {"name": "libc6", "version": "2.36-9+deb12u4", "security": false},
                    {"name": "openssl", "version": "3.0.13-1~deb12u1", "security": true}]})
            ),
        ]),
    )
    .await;
    let r = h
        .get(&format!("/ui/hosts/{id}/services"), ADMIN_TOKEN)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let failed = r.text.find(r#"data-service="zfs-mount.service""#).unwrap();
    let apache = r.text.find(r#"data-service="apache2.service""#).unwrap();
    let cron = r.text.find(r#"data-service="cron.service""#).unwrap();
    assert!(
        failed < apache && apache < cron,
        "failed first, then by name"
    );
    assert!(r
        .text
        .contains(r#"<span class="status s-failed">failed</span>"#));
    assert!(r.text.contains("1 failed"));
    let r = h
        .get(&format!("/ui/hosts/{id}/services?q=cron"), ADMIN_TOKEN)
        .await;
    assert!(
        r.text.contains("cron.service") && !r.text.contains(r#"data-service="apache2.service""#)
    );

    let r = h
        .get(&format!("/ui/hosts/{id}/applications?q=NGINX"), ADMIN_TOKEN)
        .await;
    assert!(r.text.contains(r#"data-application="nginx""#), "{}", r.text);
    assert!(!r.text.contains(r#"data-application="curl""#));
    assert!(r.text.contains("2 installed"));

    let r = h.get(&format!("/ui/hosts/{id}/updates"), ADMIN_TOKEN).await;
    assert!(
        r.text.contains(r#"<dd id="updates-pending">3</dd>"#),
        "{}",
        r.text
    );
    assert!(r
        .text
        .contains(r#"<dd id="updates-security" class="warm">1</dd>"#));
    assert!(r
        .text
        .contains(r#"<dd id="updates-reboot" class="hot">yes</dd>"#));
    let openssl = r.text.find(r#"data-package="openssl""#).unwrap();
    assert!(
        openssl < r.text.find(r#"data-package="libc6""#).unwrap(),
        "security first"
    );
}

#[tokio::test]
async fn workloads_and_pi_sections_appear_once_reported() {
    let h = harness().await;
    let (id, credential) = h.register("pi-01").await;
    let now = aligned(Duration::seconds(10), 1);
    h.ingest(
        &credential,
        json!([
            envelope("container_list", now, json!({"containers": [
                {"id": "3f2a9c1b7d4e5f60", "name": "homeassistant", "image": "ghcr.io/home-assistant/home-assistant:2024.6",
                 "state": "running", "source": "docker", "kind": "container", "cpu_percent": 3.5,
                 "memory_bytes": 268435456u64, "memory_limit": 1073741824u64, "net_rx_bytes": 1048576, "net_tx_bytes": 2048,
                 "health": "healthy", "restarts": 2}]})),
            envelope("throttle", now, json!({"undervoltage": true, "arm_freq_capped": false, "throttled": false,
                "soft_temp_limit": false, "undervoltage_occurred": true, "freq_cap_occurred": false,
                "throttled_occurred": true, "soft_temp_occurred": false, "throttled_raw": 327685})),
            envelope("pi_health", now, json!({"model": "Raspberry Pi 4 Model B Rev 1.4", "source": "vcgencmd",
                "soc_temp_c": 61.3, "storage": [{"device": "mmcblk0", "kind": "sd"}]})),
        ]),
    )
    .await;
    let html = h.get(&format!("/hosts/{id}"), ADMIN_TOKEN).await.text;
    assert!(html.contains(r#"<section class="panel" id="workloads" hx-get="/ui/hosts/"#));
    assert!(html.contains(r#"<section class="panel" id="pi" hx-get="/ui/hosts/"#));
    assert!(html.contains(r#"data-chart-id="pi_throttle""#));
    assert!(html.contains(r#"data-chart-id="workload_cpu""#));

    let r = h
        .get(&format!("/ui/hosts/{id}/workloads"), ADMIN_TOKEN)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains(r#"data-workload="homeassistant""#));
    assert!(r.text.contains("256 MiB / 1.0 GiB"), "{}", r.text);
    assert!(r
        .text
        .contains(r#"<span class="status s-healthy">healthy</span>"#));

    let r = h.get(&format!("/ui/hosts/{id}/pi"), ADMIN_TOKEN).await;
    assert!(r.text.contains("Raspberry Pi 4 Model B Rev 1.4"));
    assert!(r.text.contains("Under-voltage detected"), "{}", r.text);
    assert!(r.text.contains("Throttling has occurred since boot"));
    assert!(r.text.contains("61.3 °C"));
    assert!(r.text.contains("0x50005"));

    // The workload's CPU charts under its name; the flag as % of the time.
    let doc = h
        .get(&format!("/ui/hosts/{id}/charts?range=15m"), ADMIN_TOKEN)
        .await
        .json();
    let w = chart(&doc, "workload_cpu");
    assert_eq!(w["series"][0]["label"], "homeassistant");
    let th = chart(&doc, "pi_throttle");
    assert_eq!(th["series"][0]["label"], "under-voltage");
    let first = th["y"][0]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| !v.is_null())
        .unwrap()
        .clone();
    assert_eq!(first, json!(100.0));
}
