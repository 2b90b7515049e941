//! Every seed diagnostic end to end: the seed's curl commands (as HTTP
//! requests with the admin token) against the real `spectra-server` and a
//! real `spectra-agent` on 127.0.0.1, answered by the agent with real
//! results, and checked against what the test set up (a listening socket,
//! a file tree of known sizes).

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;
use spectra_e2e::*;

const LONG: Duration = Duration::from_secs(60);

struct Setup {
    _dir: tempfile::TempDir,
    tree: std::path::PathBuf,
    _server: Server,
    _agent: Agent,
    api: Api,
}

async fn setup(hostname: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("server"),
        "127.0.0.1:0",
        &["--no-local-agent"],
    );
    let api = Api::new(&server.url());
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("big")).unwrap();
    std::fs::create_dir_all(tree.join("small")).unwrap();
    std::fs::write(tree.join("big/blob"), vec![7u8; 3 * 1024 * 1024]).unwrap();
    std::fs::write(tree.join("small/note"), vec![1u8; 10 * 1024]).unwrap();
    let config = format!(
        "{FAST_AGENT_CONFIG}\n[commands]\ndisk_roots = [\"{}\"]\n",
        dir.path().display()
    );
    let agent = Agent::start(&server.url(), &dir.path().join("agent"), &config, hostname);
    wait_for("the agent to register", LONG, || async {
        api.agent_by_hostname(hostname).await
    })
    .await;
    Setup {
        _dir: dir,
        tree,
        _server: server,
        _agent: agent,
        api,
    }
}

/// POSTs a seed trigger, then waits for the command to end.
async fn run(api: &Api, trigger: &str) -> Value {
    let (status, body) = api.post(trigger).await;
    assert_eq!(status, 202, "{trigger}: {body}");
    assert_eq!(body["status"], "queued");
    let id = body["command_id"].as_str().unwrap().to_owned();
    wait_for("the command to end", LONG, || async {
        let (_, c) = api.get(&format!("/api/v1/commands/{id}?wait=30s")).await;
        matches!(c["status"].as_str(), Some("done" | "failed" | "expired")).then_some(c)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_diagnostics_run_on_the_agent_and_return_real_results() {
    let s = setup("diag-01").await;
    let api = &s.api;

    // ping 127.0.0.1: every probe answered.
    let ping = run(
        api,
        "/admin/trigger_network?hostname=diag-01&action=ping&target=127.0.0.1&count=3&interval_ms=200",
    )
    .await;
    assert_eq!(ping["status"], "done", "{ping}");
    let probes = ping["result"]["ping_results"].as_array().unwrap();
    assert_eq!(probes.len(), 3, "{ping}");
    assert!(probes.iter().all(|p| p["success"] == true), "{ping}");
    assert_eq!(ping["result"]["ping_summary"]["loss_pct"], 0.0, "{ping}");

    // connect: a port this test listens on, and one nobody does.
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = open.local_addr().unwrap().port();
    // Bound but not listening: refuses, and no other test can take it.
    let closed = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    closed
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let closed_port = closed.local_addr().unwrap().as_socket().unwrap().port();
    let c = run(
        api,
        &format!("/admin/trigger_network?hostname=diag-01&action=connect&target=127.0.0.1&port={open_port}"),
    )
    .await;
    assert_eq!(c["status"], "done", "{c}");
    assert_eq!(c["result"]["connect"]["success"], true, "{c}");
    let c = run(
        api,
        &format!(
            "/admin/trigger_network?hostname=diag-01&action=connect&target=127.0.0.1:{closed_port}"
        ),
    )
    .await;
    assert_eq!(c["result"]["connect"]["success"], false, "{c}");
    assert_eq!(c["result"]["connect"]["outcome"], "refused", "{c}");

    // netstat: the agent sees this test's listener, owned by this process.
    let n = run(
        api,
        "/admin/trigger_network?hostname=diag-01&action=netstat",
    )
    .await;
    assert_eq!(n["status"], "done", "{n}");
    let sockets = n["result"]["netstat"].as_array().unwrap();
    let mine = sockets
        .iter()
        .find(|e| {
            e["proto"].as_str().unwrap_or("").starts_with("tcp") && e["local_port"] == open_port
        })
        .unwrap_or_else(|| panic!("listener on {open_port} not in netstat"));
    assert_eq!(mine["state"], "LISTEN");
    assert_eq!(mine["pid"], std::process::id(), "{mine}");

    // traceroute to 127.0.0.1: one hop, the destination.
    let t = run(
        api,
        "/admin/trigger_network?hostname=diag-01&action=traceroute&target=127.0.0.1",
    )
    .await;
    assert_eq!(t["status"], "done", "{t}");
    let hops = t["result"]["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 1, "{t}");
    assert_eq!(hops[0]["address"], "127.0.0.1");
    assert_eq!(hops[0]["reached"], true);

    // disk usage on a tree of known sizes.
    let d = run(
        api,
        &format!(
            "/admin/trigger_disk?hostname=diag-01&path={}&top_n=5",
            s.tree.display()
        ),
    )
    .await;
    assert_eq!(d["status"], "done", "{d}");
    let top_dirs = d["result"]["top_dirs"].as_array().unwrap();
    let big = format!("{}/big", s.tree.display());
    assert!(
        top_dirs.iter().position(|x| x["path"] == big.as_str())
            < top_dirs
                .iter()
                .position(|x| x["path"] == format!("{}/small", s.tree.display()).as_str()),
        "big before small: {d}"
    );
    assert_eq!(d["result"]["top_files"][0]["path"], format!("{big}/blob"));
    assert!(d["result"]["top_files"][0]["size"].as_u64().unwrap() >= 3 * 1024 * 1024);
    assert_eq!(d["result"]["partial"], false);
    // Outside the configured roots: refused by the agent, with the reason.
    let d = run(api, "/admin/trigger_disk?hostname=diag-01&path=/etc").await;
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["error"].as_str().unwrap().contains("outside"), "{d}");
    // No path: the mounts.
    let d = run(api, "/admin/trigger_disk?hostname=diag-01").await;
    assert!(
        d["result"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountpoint"] == "/"),
        "{d}"
    );

    // logs: entries where this machine has a journal or a syslog file, and
    // otherwise a failure that says there is none (never an empty success).
    let l = run(api, "/admin/trigger_logs?hostname=diag-01&max_entries=5").await;
    match l["status"].as_str() {
        Some("done") => {
            let entries = l["result"].as_array().unwrap();
            assert!(!entries.is_empty() && entries.len() <= 5, "{l}");
            assert!(entries[0]["message"].is_string(), "{l}");
        }
        _ => assert!(
            l["error"].as_str().unwrap().contains("no system journal"),
            "{l}"
        ),
    }

    // Every run is in the audit log, with how it ended.
    let (_, audit) = api.get("/api/v1/audit?action=command&limit=100").await;
    let ends = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "command.done" || e["action"] == "command.failed")
        .count();
    assert_eq!(
        ends, 9,
        "ping, 2 connects, netstat, traceroute, 3 disk usages, logs: {audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_never_reaches_the_agent() {
    let s = setup("diag-02").await;
    let api = &s.api;
    for (trigger, why) in [
        (
            "/admin/trigger_network?hostname=diag-02&action=ping&target=%3Brm%20-rf%20%2F",
            "not a hostname",
        ),
        (
            "/admin/trigger_network?hostname=diag-02&action=ping&target=-f",
            "not a hostname",
        ),
        (
            "/admin/trigger_network?hostname=diag-02&action=traceroute&target=%24(id)",
            "not a hostname",
        ),
        (
            "/admin/trigger_disk?hostname=diag-02&path=/var/../etc",
            "..",
        ),
        (
            "/admin/trigger_disk?hostname=diag-02&path=var/log",
            "absolute",
        ),
        (
            "/admin/trigger_network?hostname=diag-02&action=connect&target=127.0.0.1&port=70000",
            "port",
        ),
    ] {
        let (status, body) = api.post(trigger).await;
        assert_eq!(status, 400, "{trigger}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(why),
            "{trigger}: {body}"
        );
    }
    let long = "a".repeat(300);
    let (status, body) = api
        .post(&format!(
            "/admin/trigger_network?hostname=diag-02&action=ping&target={long}"
        ))
        .await;
    assert_eq!(status, 400, "{body}");
    let agent = api.agent_by_hostname("diag-02").await.unwrap();
    let (_, queued) = api
        .get(&format!(
            "/api/v1/agents/{}/commands",
            agent["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        queued.as_array().unwrap().len(),
        0,
        "nothing was queued: {queued}"
    );
    let (_, audit) = api
        .get(&format!(
            "/api/v1/audit?agent_id={}&action=command",
            agent["id"].as_str().unwrap()
        ))
        .await;
    let refusals = audit.as_array().unwrap();
    assert_eq!(refusals.len(), 7, "each refusal audited: {audit}");
    assert!(
        refusals
            .iter()
            .all(|e| e["outcome"].as_str().unwrap().starts_with("refused")),
        "{audit}"
    );
}
