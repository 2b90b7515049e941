//! The dashboard's diagnostics panel (issue 6) driven through `app(state)`:
//! forms queue typed commands through the same service as the API
//! (validation, limits, audit), results come back as the agent sends
//! them and are rendered for people.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{harness, harness_with, Harness, ADMIN_TOKEN};
use serde_json::{json, Value};
use spectra_store::Role;

impl Harness {
    /// Enrolls an agent: its id and credential.
    async fn register(&self, hostname: &str) -> (String, String) {
        self.enroll(json!({
            "hostname": hostname, "os": "linux", "platform": "debian", "platform_ver": "12", "kernel": "6.1.0",
            "arch": "x86_64", "cpu_model": "test", "cpu_cores": 2, "ram_total": 1024, "agent_version": "0.1.0",
            "boot_time": 1700000000, "ips": ["127.0.0.1"]
        }))
        .await
    }

    /// Posts a panel form as the admin: the command id from the status
    /// fragment.
    async fn run(&self, agent_id: &str, kind: &str, body: &str) -> String {
        let r = self
            .post_form(
                &format!("/ui/hosts/{agent_id}/diagnostics/{kind}"),
                ADMIN_TOKEN,
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        attr(&r.text, "data-command-id")
    }

    /// Takes the next command as the agent and answers it.
    async fn answer(&self, credential: &str, payload: Value, error: Option<&str>) -> Value {
        let take = Request::get("/api/v1/agent/command?wait=0s")
            .header("authorization", format!("Bearer {credential}"))
            .body(Body::empty())
            .unwrap();
        let r = self.send(take).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let command = r.json();
        let mut result = json!({"id": command["id"], "type": command["type"], "payload": payload});
        if let Some(e) = error {
            result["error"] = json!(e);
        }
        let req = Request::post("/api/v1/agent/command_result")
            .header("authorization", format!("Bearer {credential}"))
            .header("content-type", "application/json")
            .body(Body::from(result.to_string()))
            .unwrap();
        let r = self.send(req).await;
        assert!(r.status.is_success(), "{} {}", r.status, r.text);
        command
    }

    async fn commands_of(&self, agent_id: &str) -> Vec<Value> {
        let r = self
            .hx_get(&format!("/api/v1/agents/{agent_id}/commands"), ADMIN_TOKEN)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json().as_array().unwrap().clone()
    }

    /// The rendered status/result fragment of a command.
    async fn fragment(&self, id: &str) -> String {
        let r = self
            .hx_get(&format!("/ui/commands/{id}"), ADMIN_TOKEN)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.text
    }
}

/// The first value of `name="..."` in `html`.
fn attr(html: &str, name: &str) -> String {
    let needle = format!("{name}=\"");
    let start = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + needle.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// The `<tbody>` rows of the table with class `class`.
fn table_rows(html: &str, class: &str) -> Vec<String> {
    let start = html
        .find(&format!("<table class=\"{class}"))
        .unwrap_or_else(|| panic!("no table .{class} in {html}"));
    let end = html[start..].find("</table>").unwrap() + start;
    let body = &html[start..end];
    let body = &body[body.find("<tbody>").unwrap()..];
    body.split("<tr")
        .skip(1)
        .map(|r| r.split("</tr>").next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_panel_offers_a_form_per_command_and_lists_recent_runs() {
    let h = harness().await;
    let (agent_id, _) = h.register("web-01").await;
    let r = h
        .hx_get(&format!("/ui/hosts/{agent_id}/diagnostics"), ADMIN_TOKEN)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for kind in [
        "ping",
        "traceroute",
        "connect",
        "netstat",
        "disk",
        "mounts",
        "logs",
    ] {
        assert!(
            r.text.contains(&format!("<form id=\"diag-{kind}\"",)),
            "form {kind}: {}",
            r.text
        );
        assert!(r.text.contains(&format!(
            "hx-post=\"/ui/hosts/{agent_id}/diagnostics/{kind}\" hx-target=\"#diag-result\""
        )));
    }
    assert!(r.text.contains("<label for=\"ping-target\">"));
    assert!(r
        .text
        .contains("<div id=\"diag-result\" class=\"diag-result\" aria-live=\"polite\""));
    assert!(r.text.contains("data-show-errors"));
    assert!(r.text.contains("No commands for this host yet"));
    // No inline style or script: the CSP forbids them.
    assert!(!r.text.contains("style="), "{}", r.text);
    assert!(!r.text.contains("<script"), "{}", r.text);

    let id = h.run(&agent_id, "netstat", "").await;
    let r = h
        .hx_get(
            &format!("/ui/hosts/{agent_id}/diagnostics/recent"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.text.contains(&format!("hx-get=\"/ui/commands/{id}\"")),
        "{}",
        r.text
    );
    assert!(r.text.contains("user:admin"));
    assert!(r.text.contains("status s-queued"));

    let r = h
        .hx_get("/ui/hosts/agt_missing/diagnostics", ADMIN_TOKEN)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("class=\"error-message\""), "{}", r.text);
}

#[tokio::test]
async fn posting_the_ping_form_queues_a_typed_ping_and_answers_a_live_status() {
    let h = harness().await;
    let (agent_id, credential) = h.register("web-01").await;
    let r = h
        .post_form(
            &format!("/ui/hosts/{agent_id}/diagnostics/ping"),
            ADMIN_TOKEN,
            "target=example.com&count=3&interval_ms=500",
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.headers["hx-trigger"], "diag-queued");
    assert!(r.text.contains("class=\"diag-run\""), "{}", r.text);
    assert_eq!(attr(&r.text, "data-command-status"), "queued");
    let id = attr(&r.text, "data-command-id");
    assert!(r.text.contains(&format!(
        "hx-get=\"/ui/commands/{id}?poll=1\" hx-trigger=\"load delay:1s\" hx-swap=\"outerHTML\""
    )));
    assert!(r.text.contains("waiting for the agent"), "{}", r.text);

    let c = h
        .hx_get(&format!("/api/v1/commands/{id}"), ADMIN_TOKEN)
        .await;
    let c = c.json();
    assert_eq!(c["type"], "NETWORK_DIAG");
    assert_eq!(c["agent_id"], agent_id.as_str());
    assert_eq!(
        c["payload"],
        json!({"action": "ping", "target": "example.com", "count": 3, "interval_ms": 500})
    );
    assert_eq!(c["requested_by"], "user:admin");

    // Delivered: the fragment says it runs, and keeps polling.
    let take = Request::get("/api/v1/agent/command?wait=0s")
        .header("authorization", format!("Bearer {credential}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(take).await.status, StatusCode::OK);
    let r = h
        .hx_get(&format!("/ui/commands/{id}?poll=1"), ADMIN_TOKEN)
        .await;
    assert_eq!(attr(&r.text, "data-command-status"), "delivered");
    assert!(r.text.contains("running on the agent"), "{}", r.text);
    assert!(r.text.contains("hx-trigger=\"load delay:1s\""));
    assert!(!r.headers.contains_key("hx-trigger"), "not ended yet");
}

#[tokio::test]
async fn bad_input_is_a_400_with_the_reason_and_queues_nothing() {
    let h = harness().await;
    let (agent_id, _) = h.register("web-01").await;
    let cases = [
        ("ping", "target=%3Brm+-rf+%2F", "not a hostname or IP"),
        ("connect", "host=db.lan&port=70000", "between 1 and 65535"),
        ("disk", "path=var%2Flog&top_n=5", "must be absolute"),
        ("traceroute", "target=1.1.1.1&protocol=tcp", "udp or icmp"),
        ("logs", "min_level=LOUD", "min_level"),
    ];
    for (kind, body, reason) in cases {
        let r = h
            .post_form(
                &format!("/ui/hosts/{agent_id}/diagnostics/{kind}"),
                ADMIN_TOKEN,
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{kind}: {}", r.text);
        assert!(r.text.contains("class=\"error-message\""), "{}", r.text);
        assert!(r.text.contains(reason), "{kind}: {}", r.text);
        assert!(!r.text.contains("diag-run"));
    }
    assert!(h.commands_of(&agent_id).await.is_empty(), "nothing queued");

    // Every refusal is in the audit log with the user and the reason.
    let r = h
        .hx_get(
            &format!("/api/v1/audit?agent_id={agent_id}&action=command.queue"),
            ADMIN_TOKEN,
        )
        .await;
    let audit = r.json();
    let events = audit.as_array().unwrap();
    assert_eq!(events.len(), cases.len(), "{audit}");
    assert!(events.iter().all(
        |e| e["actor"] == "user:admin" && e["outcome"].as_str().unwrap().starts_with("refused")
    ));
    assert!(events
        .iter()
        .any(|e| e["outcome"].as_str().unwrap().contains("not a hostname")));

    // An unknown kind or agent is a 404 fragment.
    let r = h
        .post_form(
            &format!("/ui/hosts/{agent_id}/diagnostics/format-disk"),
            ADMIN_TOKEN,
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("no diagnostic named"), "{}", r.text);
    let r = h
        .post_form("/ui/hosts/agt_nope/diagnostics/netstat", ADMIN_TOKEN, "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("agt_nope"), "{}", r.text);
}

#[tokio::test]
async fn the_per_agent_limit_applies_to_the_panel_too() {
    let h = harness_with(|s, _| s.command_max_open = 1).await;
    let (agent_id, _) = h.register("web-01").await;
    h.run(&agent_id, "mounts", "").await;
    let r = h
        .post_form(
            &format!("/ui/hosts/{agent_id}/diagnostics/mounts"),
            ADMIN_TOKEN,
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.text.contains("queued or running"), "{}", r.text);
    assert_eq!(h.commands_of(&agent_id).await.len(), 1);
}

#[tokio::test]
async fn a_finished_ping_renders_its_table_summary_and_chart() {
    let h = harness().await;
    let (agent_id, credential) = h.register("web-01").await;
    let id = h.run(&agent_id, "ping", "target=1.1.1.1&count=4").await;
    h.answer(
        &credential,
        json!({
            "action": "ping", "target": "1.1.1.1", "resolved": "1.1.1.1",
            "ping_results": [
                {"seq": 1, "success": true, "rtt": 12345000, "rtt_ms": 12.345, "ttl": 57, "response": "reply", "peer": "1.1.1.1"},
                {"seq": 2, "success": true, "rtt": 24690000, "rtt_ms": 24.69, "ttl": 57, "response": "reply", "peer": "1.1.1.1"},
                {"seq": 3, "success": false, "rtt": 0, "rtt_ms": 0.0, "response": "timeout", "peer": "1.1.1.1"},
                {"seq": 4, "success": true, "rtt": 11002000, "rtt_ms": 11.002, "ttl": 57, "response": "reply", "peer": "1.1.1.1"}
            ],
            "ping_summary": {"sent": 4, "received": 3, "loss_pct": 25.0, "min_ms": 11.002, "avg_ms": 16.012, "max_ms": 24.69, "mdev_ms": 6.2}
        }),
        None,
    )
    .await;
    let r = h
        .hx_get(&format!("/ui/commands/{id}?poll=1"), ADMIN_TOKEN)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers["hx-trigger"], "diag-ended",
        "the recent list reloads"
    );
    let html = r.text;
    assert_eq!(attr(&html, "data-command-status"), "done");
    assert!(
        !html.contains("hx-trigger=\"load"),
        "no more polling: {html}"
    );
    let rows = table_rows(&html, "ping-table");
    assert_eq!(rows.len(), 4, "{html}");
    assert!(
        rows[0].contains("12.35") && rows[0].contains(">57<"),
        "{}",
        rows[0]
    );
    assert!(rows[1].contains("24.69"), "{}", rows[1]);
    assert!(
        rows[2].contains("lost") && rows[2].contains("timeout"),
        "{}",
        rows[2]
    );
    assert!(rows[3].contains("11.00"), "{}", rows[3]);
    assert!(html.contains("3 of 4</strong> answered"), "{html}");
    assert!(html.contains("25 % loss"));
    assert!(html.contains("11.00/16.01/24.69/6.200"), "{html}");
    // The chart: one bar per probe; the slowest fills the 80-unit height.
    assert!(html.contains("<svg class=\"ping-chart\""));
    assert_eq!(html.matches("<rect class=\"rtt\"").count(), 3);
    assert_eq!(html.matches("<rect class=\"lost\"").count(), 1);
    assert!(
        html.contains("y=\"0.00\" width=\"80.00\" height=\"80.00\"><title>seq 2: 24.69 ms"),
        "{html}"
    );
    assert!(html.contains("<summary>Raw JSON</summary>"));
    assert!(!html.contains("style="));
}

#[tokio::test]
async fn traceroute_connect_and_netstat_results_are_rendered() {
    let h = harness().await;
    let (agent_id, credential) = h.register("web-01").await;

    let id = h
        .run(
            &agent_id,
            "traceroute",
            "target=9.9.9.9&max_hops=5&protocol=icmp",
        )
        .await;
    h.answer(
        &credential,
        json!({"action": "traceroute", "target": "9.9.9.9", "hops": [
            {"hop": 1, "address": "192.168.1.1", "rtt_ms": [0.512, 0.498, 0.601]},
            {"hop": 2, "rtt_ms": [null, null, null]},
            {"hop": 3, "address": "9.9.9.9", "rtt_ms": [8.25, null, 8.4], "reached": true}
        ]}),
        None,
    )
    .await;
    let html = h.fragment(&id).await;
    let rows = table_rows(&html, "trace-table");
    assert_eq!(rows.len(), 3, "{html}");
    assert!(rows[0].contains("192.168.1.1") && rows[0].contains("0.512 ms"));
    assert_eq!(
        rows[1].matches(">*<").count(),
        4,
        "address and 3 probes: {}",
        rows[1]
    );
    assert!(rows[2].contains("8.250 ms") && rows[2].contains(">*<"));
    assert!(html.contains("destination reached"));

    let id = h.run(&agent_id, "connect", "host=db.lan&port=5432").await;
    let c = h
        .hx_get(&format!("/api/v1/commands/{id}"), ADMIN_TOKEN)
        .await;
    assert_eq!(
        c.json()["payload"],
        json!({"action": "connect", "target": "db.lan", "port": 5432})
    );
    h.answer(
        &credential,
        json!({"action": "connect", "target": "db.lan", "connect": {
            "address": "10.0.0.5:5432", "success": false, "error": "connection refused", "outcome": "refused"}}),
        None,
    )
    .await;
    let html = h.fragment(&id).await;
    assert!(html.contains("data-outcome=\"refused\""), "{html}");
    assert!(html.contains("10.0.0.5:5432") && html.contains("connection refused"));

    let id = h.run(&agent_id, "netstat", "").await;
    h.answer(
        &credential,
        json!({"action": "netstat", "target": "", "netstat": [
            {"proto": "tcp", "local_addr": "0.0.0.0", "local_port": 22, "remote_addr": "0.0.0.0", "remote_port": 0, "state": "LISTEN", "user": "root", "pid": 612, "process_name": "sshd"},
            {"proto": "tcp6", "local_addr": "::1", "local_port": 5432, "remote_addr": "::1", "remote_port": 51234, "state": "ESTABLISHED", "user": "postgres", "pid": 901, "process_name": "postgres"},
            {"proto": "tcp", "local_addr": "10.0.0.2", "local_port": 22, "remote_addr": "10.0.0.9", "remote_port": 50022, "state": "ESTABLISHED", "user": "root"}
        ]}),
        None,
    )
    .await;
    let html = h.fragment(&id).await;
    let rows = table_rows(&html, "netstat-table");
    assert_eq!(rows.len(), 3, "{html}");
    assert!(rows[0].contains("0.0.0.0:22") && rows[0].contains("612/sshd"));
    assert!(rows[1].contains("[::1]:5432") && rows[1].contains("postgres"));
    assert!(html.contains("id=\"netstat-filter\""));
    assert!(
        html.contains("data-netstat-state=\"ESTABLISHED\"")
            && html.contains("ESTABLISHED <strong>2</strong>"),
        "{html}"
    );
}

#[tokio::test]
async fn disk_usage_mounts_and_logs_results_are_rendered() {
    let h = harness().await;
    let (agent_id, credential) = h.register("web-01").await;

    let id = h.run(&agent_id, "disk", "path=%2Fvar&top_n=3").await;
    h.answer(
        &credential,
        json!({
            "root": "/var", "total_size": 4294967296u64,
            "top_dirs": [
                {"path": "/var/cache", "size": 1073741824u64, "count": 120},
                {"path": "/var/lib", "size": 2147483648u64, "count": 9000}
            ],
            "top_files": [{"path": "/var/lib/big.img", "size": 1610612736u64, "count": 1}],
            "scanned_dirs": 812, "scanned_files": 10450, "error_count": 2, "partial": true,
            "partial_reason": "time budget of 20s reached", "duration_ms": 20000,
            "scanned_at": "2026-11-25T10:00:00Z",
            "errors": [{"path": "/var/lib/private", "error": "permission denied"}],
            "skipped_mounts": ["/var/lib/docker/overlay2/x/merged"]
        }),
        None,
    )
    .await;
    let html = h.fragment(&id).await;
    let dirs = table_rows(&html, "disk-table disk-dirs");
    assert_eq!(dirs.len(), 2);
    assert!(
        dirs[0].contains("/var/lib") && dirs[0].contains("2.0 GiB"),
        "largest first: {}",
        dirs[0]
    );
    assert!(
        dirs[0].contains("class=\"hbar-fill\" width=\"100.0\""),
        "{}",
        dirs[0]
    );
    assert!(
        dirs[1].contains("/var/cache") && dirs[1].contains("width=\"50.0\""),
        "{}",
        dirs[1]
    );
    assert!(dirs[0].contains("50 %"), "share of the total: {}", dirs[0]);
    let files = table_rows(&html, "disk-table disk-files");
    assert!(files[0].contains("/var/lib/big.img") && files[0].contains("1.5 GiB"));
    assert!(html.contains("812 directories, 10450 files"), "{html}");
    assert!(html.contains("Partial result: time budget of 20s reached"));
    assert!(html.contains("/var/lib/docker/overlay2/x/merged"));
    assert!(html.contains("/var/lib/private</span>: permission denied"));
    assert!(html.contains("first 1 of 2"));

    let id = h.run(&agent_id, "mounts", "").await;
    assert_eq!(
        h.hx_get(&format!("/api/v1/commands/{id}"), ADMIN_TOKEN)
            .await
            .json()["type"],
        "LIST_MOUNTS"
    );
    h.answer(
        &credential,
        json!([{"mountpoint": "/", "device": "/dev/sda1", "fstype": "ext4"},
               {"mountpoint": "/boot/firmware", "device": "/dev/mmcblk0p1", "fstype": "vfat"}]),
        None,
    )
    .await;
    let html = h.fragment(&id).await;
    let rows = table_rows(&html, "mounts-table");
    assert_eq!(rows.len(), 2);
    assert!(rows[1].contains("/dev/mmcblk0p1") && rows[1].contains("vfat"));

    let id = h
        .run(
            &agent_id,
            "logs",
            "min_level=WARNING&since=1h&unit=nginx.service&grep=&max_entries=50",
        )
        .await;
    let c = h
        .hx_get(&format!("/api/v1/commands/{id}"), ADMIN_TOKEN)
        .await
        .json();
    assert_eq!(c["type"], "FETCH_LOGS");
    assert_eq!(c["payload"]["min_level"], "WARNING");
    assert_eq!(c["payload"]["unit"], "nginx.service");
    assert_eq!(c["payload"]["max_entries"], 50);
    assert!(c["payload"]["since"].is_string(), "{c}");
    h.answer(
        &credential,
        json!([
            {"timestamp": "2026-11-25T10:00:01Z", "source": "nginx.service", "level": "ERROR",
             "message": "upstream timed out\n  while reading response header", "pid": 4312, "process_name": "nginx"},
            {"timestamp": "2026-11-25T10:00:02Z", "source": "nginx.service", "level": "WARNING",
             "message": "<script>alert(1)</script> client sent invalid header", "process_name": "nginx.service"}
        ]),
        None,
    )
    .await;
    let html = h.fragment(&id).await;
    let rows = table_rows(&html, "log-table");
    assert_eq!(rows.len(), 2, "{html}");
    assert!(
        rows[0].contains("class=\"lvl lvl-error\"") && rows[0].contains("data-level-rank=\"4\""),
        "{}",
        rows[0]
    );
    assert!(
        rows[0].contains("nginx.service · nginx[4312]"),
        "{}",
        rows[0]
    );
    assert!(
        rows[0].contains("upstream timed out\n  while reading"),
        "message kept as is"
    );
    assert!(rows[1].contains("lvl-warning"));
    assert!(!html.contains("<script>alert"), "messages are escaped");
    assert!(rows[1].contains("&#60;script&#62;alert(1)"), "{}", rows[1]);
    assert!(html.contains("id=\"log-filter\"") && html.contains("id=\"log-level-filter\""));
}

#[tokio::test]
async fn an_agent_refusal_is_shown_as_its_error() {
    let h = harness().await;
    let (agent_id, credential) = h.register("web-01").await;
    let id = h.run(&agent_id, "netstat", "").await;
    h.answer(
        &credential,
        Value::Null,
        Some("diagnostics are disabled on this agent"),
    )
    .await;
    let html = h.fragment(&id).await;
    assert_eq!(attr(&html, "data-command-status"), "failed");
    assert!(
        html.contains("class=\"error-message diag-failed\" role=\"alert\">The agent reported an error: diagnostics are disabled on this agent"),
        "{html}"
    );
    assert!(html.contains("[commands] enabled = false"), "{html}");
    assert!(!html.contains("hx-trigger=\"load"), "final: no polling");

    let r = h.hx_get("/ui/commands/cmd_nope", ADMIN_TOKEN).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("class=\"error-message\"") && r.text.contains("cmd_nope"));
}

#[tokio::test]
async fn an_expired_command_says_the_agent_did_not_pick_it_up() {
    let h = harness_with(|s, _| s.command_ttl = Duration::from_millis(1)).await;
    let (agent_id, _) = h.register("web-01").await;
    let id = h.run(&agent_id, "mounts", "").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(h.state.commands.expire_due().await.unwrap(), 1);
    let html = h.fragment(&id).await;
    assert_eq!(attr(&html, "data-command-status"), "expired");
    assert!(
        html.contains("did not pick this command up in time"),
        "{html}"
    );
}

#[tokio::test]
async fn only_operators_and_admins_may_use_the_panel() {
    let h = harness().await;
    let (agent_id, _) = h.register("web-01").await;
    let viewer = h.user_token("vic", Role::Viewer).await;
    let operator = h.user_token("olga", Role::Operator).await;
    let panel = format!("/ui/hosts/{agent_id}/diagnostics");
    let ping = format!("/ui/hosts/{agent_id}/diagnostics/ping");

    assert_eq!(
        h.hx_get(&panel, &viewer).await.status,
        StatusCode::FORBIDDEN
    );
    let r = h.post_form(&ping, &viewer, "target=1.1.1.1").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(h.commands_of(&agent_id).await.is_empty());

    assert_eq!(h.hx_get(&panel, &operator).await.status, StatusCode::OK);
    let r = h.post_form(&ping, &operator, "target=1.1.1.1").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = attr(&r.text, "data-command-id");
    assert_eq!(
        h.hx_get(&format!("/ui/commands/{id}"), &viewer)
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // The audit log names the dashboard user who queued it.
    let audit = h
        .hx_get(
            &format!("/api/v1/audit?agent_id={agent_id}&action=command.queue"),
            ADMIN_TOKEN,
        )
        .await
        .json();
    let queued = &audit[0];
    assert_eq!(queued["actor"], "user:olga", "{audit}");
    assert_eq!(queued["outcome"], "queued");
    assert_eq!(queued["target"], id.as_str());
    assert_eq!(queued["detail"]["type"], "NETWORK_DIAG");
    assert_eq!(queued["detail"]["payload"]["target"], "1.1.1.1");
}
