//! Golden JSON: pins the wire format of SPEC §3 / Appendix A byte for byte.
//! A change here is a protocol change: additive only.

use chrono::{TimeZone, Utc};
use serde_json::json;
use spectra_protocol::*;

fn ts() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 5).unwrap()
}

fn assert_golden<T: serde::Serialize>(value: &T, expected: &str) {
    let got = serde_json::to_string(value).unwrap();
    assert_eq!(got, expected);
}

#[test]
fn cpu_envelope_matches_golden() {
    let env = Envelope::new(
        ts(),
        "web-01",
        MetricData::Cpu(CpuMetric {
            usage: 12.5,
            cores: vec![10.0, 15.0],
            iowait: Some(0.5),
            steal: Some(0.0),
            load_1m: Some(0.42),
            load_5m: Some(0.3),
            load_15m: Some(0.2),
            ..Default::default()
        }),
    );
    assert_golden(
        &env,
        r#"{"type":"cpu","timestamp":"2026-11-25T10:00:05Z","hostname":"web-01","data":{"usage":12.5,"cores":[10.0,15.0],"iowait":0.5,"steal":0.0,"load_1m":0.42,"load_5m":0.3,"load_15m":0.2}}"#,
    );
}

#[test]
fn memory_payload_matches_golden() {
    let m = MemoryMetric {
        ram_total: 1000,
        ram_used: 400,
        ram_available: 600,
        ram_used_pct: 40.0,
        swap_total: 0,
        swap_used: 0,
        swap_pct: 0.0,
        ram_cached: Some(100),
        ..Default::default()
    };
    assert_golden(
        &m,
        r#"{"ram_total":1000,"ram_used":400,"ram_available":600,"ram_used_pct":40.0,"swap_total":0,"swap_used":0,"swap_pct":0.0,"ram_cached":100}"#,
    );
}

#[test]
fn system_and_disk_payloads_match_golden() {
    let s = SystemMetric {
        uptime: 3600,
        processes: 95,
        users: Some(1),
        boot_time: 1_764_061_200,
        kernel: Some("6.1.0".into()),
        ..Default::default()
    };
    assert_golden(
        &s,
        r#"{"uptime":3600,"processes":95,"users":1,"boot_time":1764061200,"kernel":"6.1.0"}"#,
    );
    let d = DiskMetric {
        device: "/dev/vda".into(),
        mountpoint: "/".into(),
        filesystem: "ext4".into(),
        disk_type: "local".into(),
        disk_total: Some(100),
        disk_used: Some(25),
        disk_available: Some(75),
        disk_used_pct: Some(25.0),
        inodes_total: Some(10),
        inodes_used: Some(1),
        inodes_pct: Some(10.0),
        ..Default::default()
    };
    assert_golden(
        &d,
        r#"{"device":"/dev/vda","mountpoint":"/","filesystem":"ext4","disk_type":"local","disk_total":100,"disk_used":25,"disk_available":75,"disk_used_pct":25.0,"inodes_total":10,"inodes_used":1,"inodes_pct":10.0}"#,
    );
}

#[test]
fn unreadable_disk_has_no_numbers_only_its_error() {
    let d = DiskMetric {
        device: "srv:/export".into(),
        mountpoint: "/mnt/nfs".into(),
        filesystem: "nfs4".into(),
        disk_type: "network".into(),
        error: Some("statvfs timed out after 5s".into()),
        ..Default::default()
    };
    assert_golden(
        &d,
        r#"{"device":"srv:/export","mountpoint":"/mnt/nfs","filesystem":"nfs4","disk_type":"network","error":"statvfs timed out after 5s"}"#,
    );
}

#[test]
fn raw_envelope_roundtrips_and_keeps_unknown_types() {
    let text = r#"[{"type":"gpu_nvidia","timestamp":"2026-11-25T10:00:05Z","hostname":"h","data":{"util":3}},{"type":"memory","timestamp":"2026-11-25T10:00:05Z","hostname":"h","data":{"ram_total":1,"ram_used":1,"ram_available":0,"ram_used_pct":100.0,"swap_total":0,"swap_used":0,"swap_pct":0.0}}]"#;
    let batch: RawBatch = serde_json::from_str(text).unwrap();
    assert_eq!(serde_json::to_string(&batch).unwrap(), text);
    let typed: Vec<_> = batch.into_iter().map(|e| e.into_typed().unwrap()).collect();
    assert_eq!(typed[0].data, MetricData::Other(json!({"util": 3})));
    assert!(matches!(
        typed[1].data,
        MetricData::Memory(MemoryMetric { ram_total: 1, .. })
    ));
}

#[test]
fn wrong_field_type_is_an_error() {
    let raw: RawEnvelope = serde_json::from_value(json!({"type": "cpu", "timestamp": "2026-11-25T10:00:05Z", "hostname": "h", "data": {"usage": "high", "cores": []}})).unwrap();
    assert!(raw.into_typed().is_err());
}

#[test]
fn command_and_result_match_golden() {
    let mut diag = NetworkDiagRequest::new(NetworkAction::Ping, Some("example.com".into()));
    diag.count = Some(4);
    let req = CommandRequest::NetworkDiag(diag);
    let cmd = Command {
        id: "c1".into(),
        command_type: req.command_type().to_string(),
        payload: req.payload(),
        created_at: ts(),
        expires_at: ts() + chrono::Duration::minutes(5),
    };
    assert_golden(
        &cmd,
        r#"{"id":"c1","type":"NETWORK_DIAG","payload":{"action":"ping","target":"example.com","count":4},"created_at":"2026-11-25T10:00:05Z","expires_at":"2026-11-25T10:05:05Z"}"#,
    );
    assert_eq!(
        CommandRequest::from_parts(&cmd.command_type, &cmd.payload).unwrap(),
        req
    );

    let res = CommandResult {
        id: "c1".into(),
        command_type: "LIST_MOUNTS".into(),
        payload: serde_json::to_value(vec![MountEntry {
            mountpoint: "/".into(),
            device: "/dev/vda".into(),
            fstype: "ext4".into(),
        }])
        .unwrap(),
        error: None,
    };
    assert_golden(
        &res,
        r#"{"id":"c1","type":"LIST_MOUNTS","payload":[{"mountpoint":"/","device":"/dev/vda","fstype":"ext4"}]}"#,
    );
    let failed = CommandResult {
        id: "c2".into(),
        command_type: "FETCH_LOGS".into(),
        payload: serde_json::Value::Null,
        error: Some("not supported by this agent yet".into()),
    };
    assert_golden(
        &failed,
        r#"{"id":"c2","type":"FETCH_LOGS","payload":null,"error":"not supported by this agent yet"}"#,
    );
}

#[test]
fn ping_result_carries_rtt_in_nanoseconds_and_ms() {
    let p = PingResult {
        seq: 1,
        success: true,
        rtt: 1_500_000,
        rtt_ms: 1.5,
        ttl: Some(64),
        response: "reply".into(),
        peer: "127.0.0.1".into(),
    };
    assert_golden(
        &p,
        r#"{"seq":1,"success":true,"rtt":1500000,"rtt_ms":1.5,"ttl":64,"response":"reply","peer":"127.0.0.1"}"#,
    );
}

#[test]
fn register_request_and_response_match_golden() {
    let r = RegisterRequest {
        token: "tok".into(),
        host: HostInfo {
            hostname: "web-01".into(),
            os: "linux".into(),
            platform: "debian".into(),
            platform_ver: "12".into(),
            kernel: "6.1.0".into(),
            arch: "x86_64".into(),
            cpu_model: "Xeon".into(),
            cpu_cores: 2,
            ram_total: 1024,
            agent_version: "0.1.0".into(),
            boot_time: 1,
            ips: vec!["10.0.0.2".into()],
        },
    };
    assert_golden(
        &r,
        r#"{"token":"tok","host":{"hostname":"web-01","os":"linux","platform":"debian","platform_ver":"12","kernel":"6.1.0","arch":"x86_64","cpu_model":"Xeon","cpu_cores":2,"ram_total":1024,"agent_version":"0.1.0","boot_time":1,"ips":["10.0.0.2"]}}"#,
    );
    let ok = RegisterResponse {
        agent_id: "a1".into(),
        credential: Some("secret".into()),
        status: None,
    };
    assert_golden(&ok, r#"{"agent_id":"a1","credential":"secret"}"#);
    assert!(!format!("{ok:?}").contains("secret"));
    let pending = RegisterResponse {
        agent_id: "a1".into(),
        credential: None,
        status: Some("pending".into()),
    };
    assert_golden(&pending, r#"{"agent_id":"a1","status":"pending"}"#);
}

#[test]
fn collector_status_matches_golden() {
    let s = Envelope::new(
        ts(),
        "h",
        MetricData::CollectorStatus(CollectorStatus {
            collector: "wifi".into(),
            state: CollectorState::NotImplemented,
            message: Some("not yet available in this agent".into()),
        }),
    );
    assert_golden(
        &s,
        r#"{"type":"collector_status","timestamp":"2026-11-25T10:00:05Z","hostname":"h","data":{"collector":"wifi","state":"not_implemented","message":"not yet available in this agent"}}"#,
    );
}

#[test]
fn throttle_and_workload_match_golden() {
    let t = ThrottleMetric {
        undervoltage: true,
        undervoltage_occurred: true,
        ..Default::default()
    };
    assert_golden(
        &t,
        r#"{"undervoltage":true,"arm_freq_capped":false,"throttled":false,"soft_temp_limit":false,"undervoltage_occurred":true,"freq_cap_occurred":false,"throttled_occurred":false,"soft_temp_occurred":false}"#,
    );
    let w = Workload {
        id: "abc".into(),
        name: "db".into(),
        image: "postgres:16".into(),
        state: "running".into(),
        source: WorkloadSource::Docker,
        kind: WorkloadKind::Container,
        cpu_percent: 1.5,
        cpu_limit_cores: None,
        memory_bytes: 10,
        memory_limit: Some(20),
        net_rx_bytes: 1,
        net_tx_bytes: 2,
        health: None,
        restarts: None,
        uptime_seconds: None,
        status: None,
        stats_error: None,
        block_read_bytes: None,
        block_write_bytes: None,
        disk_bytes: None,
        disk_limit: None,
        node: None,
    };
    assert_golden(
        &w,
        r#"{"id":"abc","name":"db","image":"postgres:16","state":"running","source":"docker","kind":"container","cpu_percent":1.5,"memory_bytes":10,"memory_limit":20,"net_rx_bytes":1,"net_tx_bytes":2}"#,
    );
}

#[test]
fn workload_with_optional_fields_matches_golden_and_round_trips() {
    let w = Workload {
        id: "101".into(),
        name: "ct-web".into(),
        image: String::new(),
        state: "running".into(),
        source: WorkloadSource::Proxmox,
        kind: WorkloadKind::Lxc,
        cpu_percent: 0.0,
        cpu_limit_cores: Some(2.0),
        memory_bytes: 0,
        memory_limit: Some(1024),
        net_rx_bytes: 0,
        net_tx_bytes: 0,
        health: None,
        restarts: Some(3),
        uptime_seconds: Some(60),
        status: Some("running".into()),
        stats_error: Some("timed out".into()),
        block_read_bytes: Some(5),
        block_write_bytes: Some(6),
        disk_bytes: Some(7),
        disk_limit: Some(8),
        node: Some("pve1".into()),
    };
    let golden = r#"{"id":"101","name":"ct-web","image":"","state":"running","source":"proxmox","kind":"lxc","cpu_percent":0.0,"cpu_limit_cores":2.0,"memory_bytes":0,"memory_limit":1024,"net_rx_bytes":0,"net_tx_bytes":0,"restarts":3,"uptime_seconds":60,"status":"running","stats_error":"timed out","block_read_bytes":5,"block_write_bytes":6,"disk_bytes":7,"disk_limit":8,"node":"pve1"}"#;
    assert_golden(&w, golden);
    let back: Workload = serde_json::from_str(golden).unwrap();
    assert_eq!(back, w);
}

#[test]
fn agent_envelope_matches_golden_and_round_trips() {
    let env = Envelope::new(
        ts(),
        "web-01",
        MetricData::Agent(AgentMetric {
            rss_bytes: Some(5_160_960),
            peak_rss_bytes: Some(5_398_528),
            cpu_user_seconds: Some(1.25),
            cpu_system_seconds: Some(0.5),
            cpu_pct: Some(0.2),
            threads: Some(2),
            uptime_seconds: 3600,
            spool_batches: 1,
            spool_dropped_batches: 0,
            sent_batches: 720,
            rejected_batches: 2,
            collectors: vec![
                AgentCollectorStat {
                    name: "cpu".into(),
                    runs: 720,
                    failures: 0,
                    last_duration_us: Some(41),
                    max_duration_us: Some(310),
                    state: CollectorState::Ok,
                    last_error: None,
                },
                AgentCollectorStat {
                    name: "pi".into(),
                    runs: 1,
                    failures: 0,
                    last_duration_us: None,
                    max_duration_us: None,
                    state: CollectorState::NotImplemented,
                    last_error: Some("not yet available in this agent version".into()),
                },
            ],
        }),
    );
    let golden = r#"{"type":"agent","timestamp":"2026-11-25T10:00:05Z","hostname":"web-01","data":{"rss_bytes":5160960,"peak_rss_bytes":5398528,"cpu_user_seconds":1.25,"cpu_system_seconds":0.5,"cpu_pct":0.2,"threads":2,"uptime_seconds":3600,"spool_batches":1,"spool_dropped_batches":0,"sent_batches":720,"rejected_batches":2,"collectors":[{"name":"cpu","runs":720,"failures":0,"last_duration_us":41,"max_duration_us":310,"state":"ok"},{"name":"pi","runs":1,"failures":0,"state":"not_implemented","last_error":"not yet available in this agent version"}]}}"#;
    assert_golden(&env, golden);
    let raw: RawEnvelope = serde_json::from_str(golden).unwrap();
    assert!(MetricData::validate_value(&raw.metric_type, &raw.data).is_ok());
    let typed = raw.into_typed().unwrap();
    assert_eq!(typed.data, env.data);
    // Process fields absent (not Linux): still a valid `agent` payload.
    let bare = json!({"uptime_seconds": 5, "spool_batches": 0, "spool_dropped_batches": 0,
        "sent_batches": 0, "rejected_batches": 0, "collectors": []});
    match MetricData::from_value(metric_type::AGENT, bare).unwrap() {
        MetricData::Agent(a) => assert_eq!((a.rss_bytes, a.cpu_pct), (None, None)),
        other => panic!("decoded as {other:?}"),
    }
}

#[test]
fn pi_payloads_match_golden_and_leave_absent_readings_out() {
    let health = Envelope::new(
        ts(),
        "pi5",
        MetricData::PiHealth(PiHealthMetric {
            model: "Raspberry Pi 5 Model B Rev 1.0".into(),
            revision: Some("d04170".into()),
            soc_temp_c: Some(51.6),
            source: "vcgencmd".into(),
            pmic: vec![
                PmicRail {
                    rail: "VDD_CORE".into(),
                    volts: Some(0.8),
                    amps: Some(2.5),
                    watts: Some(2.0),
                },
                PmicRail {
                    rail: "EXT5V".into(),
                    volts: Some(5.1),
                    amps: None,
                    watts: None,
                },
            ],
            pmic_watts: Some(2.0),
            storage: vec![PiStorage {
                device: "mmcblk0".into(),
                kind: "emmc".into(),
                name: Some("BJTD4R".into()),
                life_time_a: Some(1),
                life_time_b: Some(2),
                pre_eol_info: Some(1),
                ..Default::default()
            }],
            unavailable: vec!["voltage sdram_c: not on this board".into()],
        }),
    );
    let golden = r#"{"type":"pi_health","timestamp":"2026-11-25T10:00:05Z","hostname":"pi5","data":{"model":"Raspberry Pi 5 Model B Rev 1.0","revision":"d04170","soc_temp_c":51.6,"source":"vcgencmd","pmic":[{"rail":"VDD_CORE","volts":0.8,"amps":2.5,"watts":2.0},{"rail":"EXT5V","volts":5.1}],"pmic_watts":2.0,"storage":[{"device":"mmcblk0","kind":"emmc","name":"BJTD4R","life_time_a":1,"life_time_b":2,"pre_eol_info":1}],"unavailable":["voltage sdram_c: not on this board"]}}"#;
    assert_golden(&health, golden);
    let raw: RawEnvelope = serde_json::from_str(golden).unwrap();
    assert!(MetricData::validate_value(&raw.metric_type, &raw.data).is_ok());
    assert_eq!(raw.into_typed().unwrap(), health);

    // A sysfs-only Pi knows its ARM clock but not the VideoCore's.
    let clock = ClockMetric {
        arm_freq_hz: 1_500_000_000,
        core_freq_hz: None,
        gpu_freq_hz: None,
    };
    assert_golden(&clock, r#"{"arm_freq_hz":1500000000}"#);
    let throttle = ThrottleMetric {
        undervoltage: true,
        throttled_raw: Some(0x50005),
        ..Default::default()
    };
    assert_golden(
        &throttle,
        r#"{"undervoltage":true,"arm_freq_capped":false,"throttled":false,"soft_temp_limit":false,"undervoltage_occurred":false,"freq_cap_occurred":false,"throttled_occurred":false,"soft_temp_occurred":false,"throttled_raw":327685}"#,
    );
    let gpu = GpuMetric {
        gpu_mem_total: 76 << 20,
        gpu_mem_used: None,
        arm_mem_total: Some(948 << 20),
    };
    assert_golden(
        &gpu,
        r#"{"gpu_mem_total":79691776,"arm_mem_total":994050048}"#,
    );
    // pi_health without its model is malformed, not an unknown type.
    assert!(MetricData::validate_value("pi_health", &json!({"source": "sysfs"})).is_err());
}
