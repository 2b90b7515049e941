//! Config layering (defaults < file < env < CLI) and its errors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use spectra_agent::collectors::CollectorKind;
use spectra_agent::config::{AgentConfig, CliOverrides};
use spectra_agent::transport::Encoding;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

/// A base environment so the state dir default does not depend on the host.
const BASE: &[(&str, &str)] = &[
    ("SPECTRA_AGENT_STATE_DIR", "/tmp/state"),
    ("SPECTRA_HOSTNAME", "h-env"),
];

#[test]
fn defaults_apply_without_file_env_or_flags() {
    let c = AgentConfig::from_sources(None, &env_of(BASE), &CliOverrides::default()).unwrap();
    assert_eq!(c.server, "http://127.0.0.1:8080");
    assert_eq!(c.token, None);
    assert_eq!(c.roots.procfs, PathBuf::from("/proc"));
    assert_eq!(c.sender.compression, Encoding::Gzip);
    assert_eq!(c.sender.flush_interval, Duration::from_secs(5));
    assert_eq!(c.sender.spool_max_bytes, 64 * 1024 * 1024);
    assert_eq!(c.sender.backoff_initial, Duration::from_secs(1));
    assert_eq!(c.sender.backoff_max, Duration::from_secs(60));
    assert!(c.commands.enabled);
    assert!(!c.debug);
    let cpu = c.collector(CollectorKind::Cpu);
    assert!(cpu.enabled);
    assert_eq!(cpu.interval, Duration::from_secs(5));
    assert_eq!(
        c.collector(CollectorKind::System).interval,
        Duration::from_secs(300)
    );
    assert_eq!(c.collectors.len(), CollectorKind::ALL.len());
}

#[test]
fn each_layer_overrides_the_previous() {
    let file = r#"
        server = "http://file:1"
        hostname = "h-file"
        procfs = "/file/proc"
        debug = false
        [collectors.cpu]
        interval = "10s"
        [collectors.wifi]
        enabled = false
        [sender]
        compression = "zstd"
        flush_interval = "2s"
        max_batch_envelopes = 50
        [commands]
        enabled = false
    "#;
    let none = CliOverrides::default();
    // File over defaults.
    let c = AgentConfig::from_sources(
        Some(file),
        &env_of(&[("SPECTRA_AGENT_STATE_DIR", "/s")]),
        &none,
    )
    .unwrap();
    assert_eq!(c.server, "http://file:1");
    assert_eq!(c.hostname, "h-file");
    assert_eq!(c.roots.procfs, PathBuf::from("/file/proc"));
    assert_eq!(
        c.collector(CollectorKind::Cpu).interval,
        Duration::from_secs(10)
    );
    assert!(!c.collector(CollectorKind::Wifi).enabled);
    assert_eq!(c.sender.compression, Encoding::Zstd);
    assert_eq!(c.sender.flush_interval, Duration::from_secs(2));
    assert_eq!(c.sender.max_batch_envelopes, 50);
    assert!(!c.commands.enabled);

    // Env over file.
    let env = env_of(&[
        ("SPECTRA_AGENT_STATE_DIR", "/s"),
        ("SPECTRA_SERVER", "http://env:2"),
        ("HOSTNAME", "h-plain-env"),
        ("SPECTRA_PROCFS", "/env/proc"),
        ("DEBUG", "true"),
        ("SPECTRA_COMPRESSION", "gzip"),
        ("SPECTRA_TOKEN", "tok-env"),
    ]);
    let c = AgentConfig::from_sources(Some(file), &env, &none).unwrap();
    assert_eq!(c.server, "http://env:2");
    assert_eq!(c.hostname, "h-plain-env");
    assert_eq!(c.roots.procfs, PathBuf::from("/env/proc"));
    assert!(c.debug);
    assert_eq!(c.sender.compression, Encoding::Gzip);
    assert_eq!(c.token.as_deref(), Some("tok-env"));

    // SPECTRA_HOSTNAME wins over HOSTNAME.
    let env2 = env_of(&[
        ("SPECTRA_AGENT_STATE_DIR", "/s"),
        ("HOSTNAME", "plain"),
        ("SPECTRA_HOSTNAME", "spectra"),
    ]);
    assert_eq!(
        AgentConfig::from_sources(None, &env2, &none)
            .unwrap()
            .hostname,
        "spectra"
    );

    // CLI over env.
    let cli = CliOverrides {
        server: Some("http://cli:3/".into()),
        hostname: Some("h-cli".into()),
        procfs: Some("/cli/proc".into()),
        state_dir: Some("/cli/state".into()),
        token: Some("tok-cli".into()),
        ..Default::default()
    };
    let c = AgentConfig::from_sources(Some(file), &env, &cli).unwrap();
    assert_eq!(c.server, "http://cli:3", "trailing slash trimmed");
    assert_eq!(c.hostname, "h-cli");
    assert_eq!(c.roots.procfs, PathBuf::from("/cli/proc"));
    assert_eq!(c.state_dir, PathBuf::from("/cli/state"));
    assert_eq!(c.token.as_deref(), Some("tok-cli"));
}

#[test]
fn unknown_key_is_named_with_the_file() {
    let cli = CliOverrides {
        config: Some("/etc/spectra/agent.toml".into()),
        ..Default::default()
    };
    let e = AgentConfig::from_sources(Some("sevrer = \"x\"\n"), &env_of(BASE), &cli)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sevrer"), "{e}");
    assert!(e.contains("/etc/spectra/agent.toml"), "{e}");

    let e = AgentConfig::from_sources(
        Some("[sender]\ncompresion = \"gzip\"\n"),
        &env_of(BASE),
        &cli,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("compresion"), "{e}");

    let e = AgentConfig::from_sources(
        Some("[collectors.cpu]\nintervall = \"5s\"\n"),
        &env_of(BASE),
        &cli,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("intervall"), "{e}");
}

#[test]
fn unknown_collector_is_named() {
    let e = AgentConfig::from_sources(
        Some("[collectors.gpu_temp]\nenabled = true\n"),
        &env_of(BASE),
        &CliOverrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("gpu_temp"), "{e}");
    assert!(e.contains("disk_io"), "lists valid names: {e}");
}

#[test]
fn bad_env_values_name_the_variable() {
    let mut pairs = BASE.to_vec();
    pairs.push(("DEBUG", "maybe"));
    let e = AgentConfig::from_sources(None, &env_of(&pairs), &CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("DEBUG"), "{e}");
    assert!(e.contains("maybe"), "{e}");

    let mut pairs = BASE.to_vec();
    pairs.push(("SPECTRA_COMPRESSION", "lz4"));
    let e = AgentConfig::from_sources(None, &env_of(&pairs), &CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("SPECTRA_COMPRESSION"), "{e}");
}

#[test]
fn bad_durations_name_the_key() {
    let e = AgentConfig::from_sources(
        Some("[collectors.memory]\ninterval = \"soon\"\n"),
        &env_of(BASE),
        &CliOverrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("collectors.memory.interval"), "{e}");
    let e = AgentConfig::from_sources(
        Some("[sender]\nbackoff_max = \"10 parsecs\"\n"),
        &env_of(BASE),
        &CliOverrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("sender.backoff_max"), "{e}");
    let e = AgentConfig::from_sources(
        Some("[collectors.cpu]\ninterval = \"1500ms\"\n"),
        &env_of(BASE),
        &CliOverrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("whole number of seconds"), "{e}");
}

#[test]
fn debug_output_redacts_the_token() {
    let mut pairs = BASE.to_vec();
    pairs.push(("SPECTRA_TOKEN", "super-secret-token"));
    let c = AgentConfig::from_sources(None, &env_of(&pairs), &CliOverrides::default()).unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("super-secret-token"), "{shown}");
    assert!(shown.contains("<redacted>"));
}

#[test]
fn state_dir_defaults_follow_xdg_for_non_root() {
    // Only meaningful when the tests do not run as root.
    #[cfg(unix)]
    {
        let running_as_root = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(true);
        let env = env_of(&[
            ("XDG_STATE_HOME", "/xdg"),
            ("HOME", "/home/u"),
            ("SPECTRA_HOSTNAME", "h"),
        ]);
        let c = AgentConfig::from_sources(None, &env, &CliOverrides::default()).unwrap();
        if running_as_root {
            assert_eq!(c.state_dir, PathBuf::from("/var/lib/spectra-agent"));
        } else {
            assert_eq!(c.state_dir, PathBuf::from("/xdg/spectra-agent"));
        }
    }
}

#[test]
fn debug_endpoint_listens_on_loopback_only() {
    let none = CliOverrides::default();
    let c = AgentConfig::from_sources(None, &env_of(BASE), &none).unwrap();
    assert_eq!(c.debug_listen.to_string(), "127.0.0.1:6060");
    let mut env = BASE.to_vec();
    env.push(("SPECTRA_DEBUG_LISTEN", "[::1]:7070"));
    let c = AgentConfig::from_sources(
        Some("debug_listen = \"127.0.0.1:1\"\n"),
        &env_of(&env),
        &none,
    )
    .unwrap();
    assert_eq!(
        c.debug_listen.to_string(),
        "[::1]:7070",
        "env overrides the file"
    );
    let e = AgentConfig::from_sources(
        Some("debug_listen = \"0.0.0.0:6060\"\n"),
        &env_of(BASE),
        &none,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("debug_listen") && e.contains("loopback"), "{e}");
    let e = AgentConfig::from_sources(Some("debug_listen = \"localhost\"\n"), &env_of(BASE), &none)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an address"), "{e}");
}

fn from_file(text: &str) -> Result<AgentConfig, String> {
    AgentConfig::from_sources(Some(text), &env_of(BASE), &CliOverrides::default())
        .map_err(|e| e.to_string())
}

#[test]
fn collector_specific_settings_apply_and_belong_to_their_collector() {
    let c = from_file(
        "[collectors.process_list]\ntop_n = 5\n[collectors.disk]\ninclude_tmpfs = true\n",
    )
    .unwrap();
    assert_eq!(c.collector_options.process_list_top_n, 5);
    assert!(c.collector_options.disk_include_tmpfs);
    let d = from_file("").unwrap();
    assert_eq!(d.collector_options.process_list_top_n, 20);
    assert!(!d.collector_options.disk_include_tmpfs);

    let e = from_file("[collectors.cpu]\ntop_n = 5\n").unwrap_err();
    assert!(
        e.contains("collectors.cpu.top_n") && e.contains("[collectors.process_list]"),
        "{e}"
    );
    let e = from_file("[collectors.process_list]\ntop_n = 0\n").unwrap_err();
    assert!(e.contains("top_n") && e.contains("got 0"), "{e}");
}

#[test]
fn diagnostics_policy_is_read_and_checked() {
    let c = from_file(
        "[commands]\ndisabled = [\"fetch_logs\", \"NETWORK_DIAG\"]\ndisk_roots = [\"/var\", \"/home\"]\n",
    )
    .unwrap();
    let disabled: Vec<&str> = c.commands.disabled.iter().map(|t| t.as_str()).collect();
    assert_eq!(disabled, ["FETCH_LOGS", "NETWORK_DIAG"]);
    assert_eq!(
        c.commands.disk_roots,
        [PathBuf::from("/var"), PathBuf::from("/home")]
    );
    assert_eq!(
        from_file("").unwrap().commands.disk_roots,
        [PathBuf::from("/")]
    );

    let e = from_file("[commands]\ndisabled = [\"FORMAT_DISK\"]\n").unwrap_err();
    assert!(e.contains("FORMAT_DISK"), "{e}");
    let e = from_file("[commands]\ndisk_roots = [\"var\"]\n").unwrap_err();
    assert!(
        e.contains("commands.disk_roots") && e.contains("absolute"),
        "{e}"
    );
    let e = from_file("[commands]\ndisk_roots = [\"/var/../etc\"]\n").unwrap_err();
    assert!(e.contains(".."), "{e}");
}

// ---- TLS trust settings ----

const PIN_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn tls_env(extra: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    let mut pairs = BASE.to_vec();
    pairs.push(("SPECTRA_SERVER", "https://monitor.example:8443"));
    pairs.extend_from_slice(extra);
    env_of(&pairs)
}

#[test]
fn token_pin_is_split_from_the_token_sent_to_the_server() {
    let token = format!("enroll-tok#sha256:{PIN_HEX}");
    let cli = CliOverrides {
        token: Some(token),
        ..Default::default()
    };
    let c = AgentConfig::from_sources(None, &tls_env(&[]), &cli).unwrap();
    assert_eq!(c.token.as_deref(), Some("enroll-tok"));
    assert_eq!(
        c.server_fingerprint.map(|f| f.to_string()),
        Some(format!("sha256:{PIN_HEX}"))
    );
}

#[test]
fn ca_file_and_fingerprint_come_from_env_file_and_flags() {
    let file = format!("ca_file = \"/file/ca.pem\"\nserver_fingerprint = \"sha256:{PIN_HEX}\"\n");
    let c =
        AgentConfig::from_sources(Some(&file), &tls_env(&[]), &CliOverrides::default()).unwrap();
    assert_eq!(c.ca_file, Some(PathBuf::from("/file/ca.pem")));
    assert!(c.server_fingerprint.is_some());
    let env = tls_env(&[("SPECTRA_CA_FILE", "/env/ca.pem")]);
    let c = AgentConfig::from_sources(Some(&file), &env, &CliOverrides::default()).unwrap();
    assert_eq!(c.ca_file, Some(PathBuf::from("/env/ca.pem")));
    let cli = CliOverrides {
        ca_file: Some("/cli/ca.pem".into()),
        ..Default::default()
    };
    let c = AgentConfig::from_sources(Some(&file), &env, &cli).unwrap();
    assert_eq!(c.ca_file, Some(PathBuf::from("/cli/ca.pem")));
}

#[test]
fn conflicting_pins_are_an_error() {
    let other = PIN_HEX.replace("00", "11");
    let env_pin = format!("sha256:{other}");
    let mut pairs = BASE.to_vec();
    pairs.push(("SPECTRA_SERVER", "https://monitor.example:8443"));
    pairs.push(("SPECTRA_SERVER_FINGERPRINT", &env_pin));
    let cli = CliOverrides {
        token: Some(format!("tok#sha256:{PIN_HEX}")),
        ..Default::default()
    };
    let e = AgentConfig::from_sources(None, &env_of(&pairs), &cli)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("server_fingerprint") && e.contains("keep one"),
        "{e}"
    );
}

#[test]
fn bad_fingerprints_and_token_suffixes_name_the_setting() {
    let env = tls_env(&[("SPECTRA_SERVER_FINGERPRINT", "sha256:abcd")]);
    let e = AgentConfig::from_sources(None, &env, &CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("SPECTRA_SERVER_FINGERPRINT"), "{e}");
    let cli = CliOverrides {
        token: Some("tok#md5:abcd".into()),
        ..Default::default()
    };
    let e = AgentConfig::from_sources(None, &tls_env(&[]), &cli)
        .unwrap_err()
        .to_string();
    assert!(e.contains("SPECTRA_TOKEN") && e.contains("md5:abcd"), "{e}");
}

#[test]
fn tls_trust_settings_need_an_https_server() {
    let mut pairs = BASE.to_vec();
    pairs.push(("SPECTRA_SERVER", "http://monitor.example:8080"));
    pairs.push(("SPECTRA_CA_FILE", "/etc/spectra/ca.pem"));
    let e = AgentConfig::from_sources(None, &env_of(&pairs), &CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("use https://"), "{e}");
}
