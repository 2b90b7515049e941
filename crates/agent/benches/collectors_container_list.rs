//! `container_list` cost on the agent's side: one whole cycle against an
//! in-process fake Docker daemon on a unix socket holding 100 running
//! containers (list, 100 inspects and 100 one-shot stats, 16 at a time,
//! each on its own connection), and the stats parser alone. A real daemon
//! adds its own time; this is what the agent spends.
//!
//! Run: `cargo bench -p spectra-agent --bench collectors_container_list`.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use spectra_agent::collectors::container_list::docker::parse_stats;
use spectra_agent::collectors::container_list::{ContainerListCollector, ContainerListConfig};
use spectra_agent::collectors::Collector;

const CONTAINERS: usize = 100;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/docker/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

fn serve(mut stream: UnixStream, list: &str, inspect: &str, stats: &str, version: &str) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("");
    let body = if path == "/version" {
        version
    } else if path.contains("/containers/json") {
        list
    } else if path.contains("/stats") {
        stats
    } else {
        inspect
    };
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes());
}

fn bench_cycle(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let list: Vec<serde_json::Value> = (0..CONTAINERS)
        .map(|i| {
            serde_json::json!({"Id": format!("{i:064x}"), "Names": [format!("/c{i}")],
                "Image": "nginx:1.25", "State": "running", "Status": "Up 2 hours"})
        })
        .collect();
    let list = serde_json::to_string(&list).unwrap();
    let (inspect, stats, version) = (
        fixture("inspect_web.json"),
        fixture("stats_v1.json"),
        fixture("version_24.json"),
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (l, i, s, v) = (
                list.clone(),
                inspect.clone(),
                stats.clone(),
                version.clone(),
            );
            std::thread::spawn(move || serve(stream, &l, &i, &s, &v));
        }
    });
    let mut collector = ContainerListCollector::with_config(ContainerListConfig {
        rootfs: dir.path().to_path_buf(),
        procfs: dir.path().to_path_buf(),
        docker_host: Some(format!("unix://{}", socket.display())),
        search_path: dir.path().as_os_str().to_owned(),
        request_timeout: Duration::from_secs(3),
        pvesh_timeout: Duration::from_secs(3),
    });
    c.bench_function("container_list/cycle_100_containers_fake_daemon", |b| {
        b.iter(|| collector.collect(Utc::now()).unwrap())
    });
    let stats = fixture("stats_v1.json");
    c.bench_function("container_list/parse_stats_v1", |b| {
        b.iter(|| parse_stats(stats.as_bytes()).unwrap())
    });
}

criterion_group!(benches, bench_cycle);
criterion_main!(benches);
