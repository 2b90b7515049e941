//! Drives the real `spectra-agent` binary.

use std::process::{Command, Output};

use spectra_protocol::RawEnvelope;

fn agent(args: &[&str]) -> Output {
    let state = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spectra-agent"));
    cmd.args(args);
    // Keep the caller's environment from leaking into the test.
    for var in [
        "DEBUG",
        "SPECTRA_SERVER",
        "SPECTRA_TOKEN",
        "SPECTRA_PROCFS",
        "SPECTRA_SYSFS",
        "SPECTRA_ROOTFS",
        "SPECTRA_COMPRESSION",
        "SPECTRA_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("SPECTRA_AGENT_STATE_DIR", state.path())
        .env("SPECTRA_HOSTNAME", "cli-test");
    cmd.output().unwrap()
}

fn lines(out: &Output) -> Vec<RawEnvelope> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not an envelope: {l}: {e}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn meminfo_total_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[cfg(target_os = "linux")]
#[test]
fn collect_cpu_and_memory_prints_two_envelopes() {
    let out = agent(&[
        "collect",
        "--collector",
        "cpu",
        "--collector",
        "memory",
        "--sample-interval",
        "200ms",
    ]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let envelopes = lines(&out);
    let types: Vec<&str> = envelopes.iter().map(|e| e.metric_type.as_str()).collect();
    assert_eq!(types, ["cpu", "memory"]);
    assert!(envelopes.iter().all(|e| e.hostname == "cli-test"));
    let cpu = &envelopes[0].data;
    let usage = cpu["usage"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&usage), "usage {usage}");
    assert!(!cpu["cores"].as_array().unwrap().is_empty());
    assert_eq!(
        envelopes[1].data["ram_total"].as_u64().unwrap(),
        meminfo_total_bytes()
    );
}

#[test]
fn unknown_collector_is_named_with_the_valid_ones() {
    let out = agent(&["collect", "--collector", "gpu_fan"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("gpu_fan"), "{err}");
    assert!(err.contains("memory"), "lists valid names: {err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn unsupported_collector_fails_with_an_explicit_status_line() {
    // This host is no Raspberry Pi (tests/pi.rs runs `pi` on Pi fixtures).
    let out = agent(&["collect", "--collector", "pi"]);
    assert!(!out.status.success(), "every requested collector failed");
    let envelopes = lines(&out);
    assert_eq!(envelopes.len(), 1);
    assert_eq!(envelopes[0].metric_type, "collector_status");
    assert_eq!(envelopes[0].data["collector"], "pi");
    assert_eq!(envelopes[0].data["state"], "unsupported");
    assert!(stderr(&out).contains("not a Raspberry Pi"));
}

#[cfg(target_os = "linux")]
#[test]
fn one_working_collector_is_enough_for_success() {
    let out = agent(&["collect", "--collector", "pi", "--collector", "memory"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let types: Vec<String> = lines(&out).into_iter().map(|e| e.metric_type).collect();
    assert_eq!(types, ["collector_status", "memory"]);
}

#[test]
fn invalid_config_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "server = \"http://127.0.0.1:1\"\n[sender]\nflush_every = \"5s\"\n",
    )
    .unwrap();
    let out = agent(&[
        "--config",
        path.to_str().unwrap(),
        "collect",
        "--collector",
        "memory",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("flush_every"), "{err}");
    assert!(err.contains("agent.toml"), "{err}");
}

#[test]
fn no_token_and_no_identity_says_to_set_spectra_token() {
    let out = agent(&["--server", "http://127.0.0.1:9"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("SPECTRA_TOKEN"), "{err}");
}
