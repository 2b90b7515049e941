//! The `pi` collector on fixture trees of a Raspberry Pi 4, 5, Zero W and a
//! Compute Module 4 without `vcgencmd` (tests/fixtures/pi/, origins in
//! tests/fixtures/README.md), with the fake `vcgencmd` of each board, in
//! process and through the real binary.
#![cfg(target_os = "linux")]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use spectra_agent::collectors::pi::PiCollector;
use spectra_agent::collectors::{CollectError, Collector, HostRoots};
use spectra_protocol::{
    ClockMetric, GpuMetric, MetricData, PiHealthMetric, PiStorage, RawEnvelope, ThrottleMetric,
    VoltageMetric,
};

/// Generous: the fake answers in milliseconds; only the hanging-firmware
/// test relies on a timeout firing.
const TIMEOUT: Duration = Duration::from_secs(20);

fn board(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pi")
        .join(name)
}

fn roots_of(dir: &Path) -> HostRoots {
    HostRoots {
        procfs: dir.join("proc"),
        sysfs: dir.join("sys"),
        rootfs: dir.to_path_buf(),
    }
}

/// One cycle of the collector on `name`'s tree with its fake `vcgencmd`.
fn collect_board(name: &str) -> Vec<MetricData> {
    let dir = board(name);
    let mut collector = PiCollector::with_search_path(&roots_of(&dir), dir.join("bin"), TIMEOUT);
    collector.collect(Utc::now()).unwrap()
}

fn health(data: &[MetricData]) -> &PiHealthMetric {
    match data.last() {
        Some(MetricData::PiHealth(h)) => h,
        other => panic!("pi_health last, found {other:?}"),
    }
}

fn types(data: &[MetricData]) -> Vec<&'static str> {
    data.iter().map(MetricData::type_name).collect()
}

const MIB: u64 = 1 << 20;

/// Writes an executable `#!/bin/sh` script named `vcgencmd` into `dir`.
/// Being the child's whole `PATH`, it names other programs by full path.
fn write_vcgencmd(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("vcgencmd");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Copies a fixture tree; symlinks become links to their original's
/// absolute target, so `bin/vcgencmd` still reaches the fake.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::canonicalize(entry.path()).unwrap(), &target)
                .unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn pi4_reports_every_reading_from_vcgencmd() {
    let data = collect_board("pi4");
    let expected = vec![
        MetricData::Throttle(ThrottleMetric {
            undervoltage_occurred: true,
            throttled_occurred: true,
            throttled_raw: Some(0x50000),
            ..Default::default()
        }),
        MetricData::Clock(ClockMetric {
            arm_freq_hz: 1_500_345_728,
            core_freq_hz: Some(500_000_992),
            gpu_freq_hz: Some(500_000_992),
        }),
        MetricData::Voltage(VoltageMetric {
            core_volts: 0.85,
            sdram_c_volts: Some(1.1),
            sdram_i_volts: Some(1.1),
            sdram_p_volts: Some(1.1),
        }),
        MetricData::Gpu(GpuMetric {
            gpu_mem_total: 76 * MIB,
            gpu_mem_used: None,
            arm_mem_total: Some(948 * MIB),
        }),
        MetricData::PiHealth(PiHealthMetric {
            model: "Raspberry Pi 4 Model B Rev 1.4".into(),
            revision: Some("c03114".into()),
            soc_temp_c: Some(48.312),
            source: "vcgencmd".into(),
            pmic: vec![],
            pmic_watts: None,
            storage: vec![PiStorage {
                device: "mmcblk0".into(),
                kind: "sd".into(),
                name: Some("SC32G".into()),
                manfid: Some("0x000003".into()),
                oemid: Some("0x5344".into()),
                date: Some("11/2020".into()),
                life_time_a: None,
                life_time_b: None,
                pre_eol_info: None,
            }],
            unavailable: vec!["pmic: firmware refused: Command not registered".into()],
        }),
    ];
    assert_eq!(data, expected);
}

#[test]
fn pi5_has_pmic_rails_and_no_sdram_volts() {
    let data = collect_board("pi5");
    assert_eq!(
        types(&data),
        ["throttle", "clock", "voltage", "gpu", "pi_health"]
    );
    assert_eq!(
        data[0],
        MetricData::Throttle(ThrottleMetric {
            throttled_raw: Some(0),
            ..Default::default()
        })
    );
    assert_eq!(
        data[1],
        MetricData::Clock(ClockMetric {
            arm_freq_hz: 2_400_029_184,
            core_freq_hz: Some(910_007_424),
            gpu_freq_hz: Some(960_012_160),
        })
    );
    // Absent, not zero.
    assert_eq!(
        data[2],
        MetricData::Voltage(VoltageMetric {
            core_volts: 0.861,
            sdram_c_volts: None,
            sdram_i_volts: None,
            sdram_p_volts: None,
        })
    );
    let h = health(&data);
    assert_eq!(h.model, "Raspberry Pi 5 Model B Rev 1.0");
    assert_eq!(h.revision.as_deref(), Some("d04170"));
    assert_eq!(h.soc_temp_c, Some(51.6));
    assert_eq!(h.pmic.len(), 14, "{:?}", h.pmic);
    let core = h.pmic.iter().find(|r| r.rail == "VDD_CORE").unwrap();
    assert_eq!((core.amps, core.volts), (Some(2.05584), Some(0.8609672)));
    assert!((core.watts.unwrap() - 2.05584 * 0.8609672).abs() < 1e-9);
    let ext5v = h.pmic.iter().find(|r| r.rail == "EXT5V").unwrap();
    assert_eq!(
        (ext5v.volts, ext5v.amps, ext5v.watts),
        (Some(5.142976), None, None)
    );
    let total: f64 = h.pmic.iter().filter_map(|r| r.watts).sum();
    assert!((h.pmic_watts.unwrap() - total).abs() < 1e-9);
    assert!(total > 2.0 && total < 4.0, "{total}");
    assert_eq!(
        h.unavailable,
        [
            "sdram_c_volts: firmware refused: Invalid arguments",
            "sdram_i_volts: firmware refused: Invalid arguments",
            "sdram_p_volts: firmware refused: Invalid arguments",
        ]
    );
    assert_eq!(h.storage.len(), 1, "the SDIO WiFi card is not storage");
    assert_eq!(h.storage[0].name.as_deref(), Some("EB1QT"));
}

#[test]
fn pi_zero_is_found_through_procfs_and_uses_the_h264_clock_when_v3d_is_off() {
    let data = collect_board("pi-zero");
    assert_eq!(
        types(&data),
        ["throttle", "clock", "voltage", "gpu", "pi_health"]
    );
    let MetricData::Throttle(t) = &data[0] else {
        panic!("{data:?}")
    };
    assert!(t.undervoltage && t.throttled && t.undervoltage_occurred && t.throttled_occurred);
    assert!(!t.arm_freq_capped && !t.soft_temp_limit && !t.freq_cap_occurred);
    assert_eq!(
        data[1],
        MetricData::Clock(ClockMetric {
            arm_freq_hz: 1_000_000_000,
            core_freq_hz: Some(400_000_000),
            gpu_freq_hz: Some(300_000_000),
        })
    );
    assert_eq!(
        data[2],
        MetricData::Voltage(VoltageMetric {
            core_volts: 1.35,
            sdram_c_volts: Some(1.2),
            sdram_i_volts: Some(1.2),
            sdram_p_volts: Some(1.225),
        })
    );
    assert_eq!(
        data[3],
        MetricData::Gpu(GpuMetric {
            gpu_mem_total: 64 * MIB,
            gpu_mem_used: None,
            arm_mem_total: Some(448 * MIB),
        })
    );
    let h = health(&data);
    assert_eq!(h.model, "Raspberry Pi Zero W Rev 1.1");
    assert_eq!(h.revision.as_deref(), Some("9000c1"), "from /proc/cpuinfo");
    assert_eq!(h.soc_temp_c, Some(42.774));
    assert_eq!(
        h.unavailable,
        ["pmic: firmware refused: Command not registered"]
    );
}

#[test]
fn without_vcgencmd_sysfs_gives_throttle_arm_clock_and_temperature_and_says_what_is_missing() {
    let empty_path = tempfile::tempdir().unwrap();
    let dir = board("cm4-emmc");
    let mut collector = PiCollector::with_search_path(&roots_of(&dir), empty_path.path(), TIMEOUT);
    let data = collector.collect(Utc::now()).unwrap();
    assert_eq!(types(&data), ["throttle", "clock", "pi_health"]);
    assert_eq!(
        data[0],
        MetricData::Throttle(ThrottleMetric {
            arm_freq_capped: true,
            freq_cap_occurred: true,
            throttled_raw: Some(0x20002),
            ..Default::default()
        })
    );
    assert_eq!(
        data[1],
        MetricData::Clock(ClockMetric {
            arm_freq_hz: 1_500_000_000,
            core_freq_hz: None,
            gpu_freq_hz: None,
        })
    );
    let h = health(&data);
    assert_eq!(h.source, "sysfs");
    assert_eq!(h.model, "Raspberry Pi Compute Module 4 Rev 1.0");
    assert_eq!(h.revision.as_deref(), Some("c03140"));
    assert_eq!(h.soc_temp_c, Some(55.017));
    assert_eq!(
        h.unavailable,
        [
            "core_freq_hz: vcgencmd not found on PATH",
            "gpu_freq_hz: vcgencmd not found on PATH",
            "core_volts: vcgencmd not found on PATH",
            "sdram_c_volts: vcgencmd not found on PATH",
            "sdram_i_volts: vcgencmd not found on PATH",
            "sdram_p_volts: vcgencmd not found on PATH",
            "gpu_mem_total: vcgencmd not found on PATH",
            "pmic: vcgencmd not found on PATH",
        ]
    );
    assert_eq!(
        h.storage,
        [PiStorage {
            device: "mmcblk0".into(),
            kind: "emmc".into(),
            name: Some("DG4032".into()),
            manfid: Some("0x000045".into()),
            oemid: Some("0x0100".into()),
            date: Some("01/2021".into()),
            life_time_a: Some(2),
            life_time_b: Some(1),
            pre_eol_info: Some(1),
        }]
    );
}

#[test]
fn soc_temperature_comes_from_vcgencmd_when_the_thermal_zone_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&board("pi4"), tmp.path());
    std::fs::remove_dir_all(tmp.path().join("sys/class/thermal")).unwrap();
    let mut collector =
        PiCollector::with_search_path(&roots_of(tmp.path()), tmp.path().join("bin"), TIMEOUT);
    let data = collector.collect(Utc::now()).unwrap();
    assert_eq!(
        health(&data).soc_temp_c,
        Some(48.3),
        "measure_temp's 48.3'C"
    );
    assert_eq!(
        health(&data).unavailable,
        ["pmic: firmware refused: Command not registered"],
        "the missing zone is not reported once vcgencmd answered"
    );
}

#[test]
fn refused_queries_and_the_memory_split_are_asked_once() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("calls");
    let fake = board("pi5").join("bin/vcgencmd");
    write_vcgencmd(
        tmp.path(),
        &format!(
            "printf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"",
            log.display(),
            fake.display()
        ),
    );
    let mut collector =
        PiCollector::with_search_path(&roots_of(&board("pi5")), tmp.path(), TIMEOUT);
    let first = collector.collect(Utc::now()).unwrap();
    let second = collector.collect(Utc::now()).unwrap();
    assert_eq!(first, second, "the same answers both cycles");
    let calls = std::fs::read_to_string(&log).unwrap();
    let count = |args: &str| calls.lines().filter(|l| *l == args).count();
    assert_eq!(count("get_throttled"), 2);
    assert_eq!(count("measure_clock arm"), 2);
    assert_eq!(count("pmic_read_adc"), 2);
    assert_eq!(
        count("measure_volts sdram_c"),
        1,
        "refused: not asked again"
    );
    assert_eq!(count("get_mem gpu"), 1, "fixed until reboot");
    assert_eq!(count("measure_temp"), 0, "the thermal zone is read instead");
    // The refusal is still reported on every cycle.
    assert!(health(&second)
        .unavailable
        .contains(&"sdram_c_volts: firmware refused: Invalid arguments".to_owned()));
}

#[test]
fn a_hanging_vcgencmd_is_killed_once_and_the_cycle_falls_back_to_sysfs() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("calls");
    write_vcgencmd(
        tmp.path(),
        &format!(
            "printf '%s\\n' \"$*\" >> '{}'\nexec /bin/sleep 600",
            log.display()
        ),
    );
    let mut collector = PiCollector::with_search_path(
        &roots_of(&board("pi4")),
        tmp.path(),
        Duration::from_millis(300),
    );
    let data = collector.collect(Utc::now()).unwrap();
    assert_eq!(types(&data), ["throttle", "clock", "pi_health"]);
    assert_eq!(
        data[0],
        MetricData::Throttle(ThrottleMetric {
            undervoltage_occurred: true,
            throttled_occurred: true,
            throttled_raw: Some(0x50000),
            ..Default::default()
        }),
        "from sysfs get_throttled"
    );
    assert_eq!(
        data[1],
        MetricData::Clock(ClockMetric {
            arm_freq_hz: 1_500_000_000,
            core_freq_hz: None,
            gpu_freq_hz: None,
        }),
        "from cpufreq"
    );
    let h = health(&data);
    assert_eq!(h.source, "sysfs");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        ["get_throttled"],
        "one wait, not one per reading"
    );
    assert!(
        h.unavailable
            .iter()
            .all(|r| r.contains("skipped, vcgencmd timed out this cycle")),
        "{:?}",
        h.unavailable
    );
    assert!(h.unavailable.iter().any(|r| r.starts_with("core_volts:")));
}

#[test]
fn a_garbled_answer_names_the_reading_and_what_was_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let base = tree.join("sys/firmware/devicetree/base");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("model"), b"Raspberry Pi 3 Model B Plus Rev 1.3\0").unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    write_vcgencmd(&bin, "echo 'hello world'");
    let mut collector = PiCollector::with_search_path(&roots_of(&tree), &bin, TIMEOUT);
    let data = collector.collect(Utc::now()).unwrap();
    assert_eq!(types(&data), ["pi_health"], "nothing made up");
    let h = health(&data);
    assert_eq!(h.revision, None);
    assert!(
        h.unavailable.contains(
            &"throttle: vcgencmd get_throttled: expected throttled=..., found \"hello world\""
                .to_owned()
        ),
        "{:?}",
        h.unavailable
    );
    assert!(h
        .unavailable
        .iter()
        .any(|r| r.starts_with("throttle: no sysfs get_throttled")));
    assert!(h
        .unavailable
        .iter()
        .any(|r| r.starts_with("pmic: vcgencmd pmic_read_adc: expected")));
}

#[test]
fn other_boards_and_hosts_without_a_device_tree_are_unsupported() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let no_tool = tempfile::tempdir().unwrap();
    let err = PiCollector::with_search_path(&roots_of(&empty), no_tool.path(), TIMEOUT)
        .collect(Utc::now())
        .unwrap_err();
    let CollectError::Unsupported(reason) = err else {
        panic!("{err:?}")
    };
    assert!(
        reason.starts_with("not a Raspberry Pi (no device-tree model at "),
        "{reason}"
    );

    let pine = tmp.path().join("pine");
    std::fs::create_dir_all(pine.join("proc/device-tree")).unwrap();
    std::fs::write(
        pine.join("proc/device-tree/model"),
        b"Pine64 RockPro64 v2.1\0",
    )
    .unwrap();
    let err = PiCollector::with_search_path(&roots_of(&pine), no_tool.path(), TIMEOUT)
        .collect(Utc::now())
        .unwrap_err();
    let CollectError::Unsupported(reason) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        reason,
        "not a Raspberry Pi (device-tree model \"Pine64 RockPro64 v2.1\")"
    );
}

#[test]
fn this_host_is_told_apart_from_a_pi() {
    let on_a_pi = std::fs::read("/sys/firmware/devicetree/base/model")
        .is_ok_and(|m| m.starts_with(b"Raspberry Pi"));
    match PiCollector::new(&HostRoots::default()).collect(Utc::now()) {
        Ok(data) => assert!(on_a_pi, "{data:?}"),
        Err(CollectError::Unsupported(reason)) => {
            assert!(
                !on_a_pi && reason.starts_with("not a Raspberry Pi"),
                "{reason}"
            )
        }
        Err(other) => panic!("{other:?}"),
    }
}

/// `spectra-agent collect --collector pi` with the host roots in a fixture
/// tree and the fake `vcgencmd` first on `PATH`.
fn agent_collect_pi(
    sysfs: &Path,
    procfs: &Path,
    path_first: Option<&Path>,
) -> std::process::Output {
    let state = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spectra-agent"));
    cmd.args(["collect", "--collector", "pi"]);
    for var in [
        "DEBUG",
        "SPECTRA_SERVER",
        "SPECTRA_TOKEN",
        "SPECTRA_ROOTFS",
        "SPECTRA_LOG",
    ] {
        cmd.env_remove(var);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = match path_first {
        Some(dir) => std::env::join_paths(
            std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&path)),
        )
        .unwrap(),
        None => path,
    };
    cmd.env("SPECTRA_SYSFS", sysfs)
        .env("SPECTRA_PROCFS", procfs)
        .env("PATH", path)
        .env("SPECTRA_AGENT_STATE_DIR", state.path())
        .env("SPECTRA_HOSTNAME", "pi-test");
    cmd.output().unwrap()
}

fn envelopes(out: &std::process::Output) -> Vec<RawEnvelope> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not an envelope: {l}: {e}")))
        .collect()
}

#[test]
fn the_binary_collects_a_pi5_fixture_with_vcgencmd_found_on_path() {
    let dir = board("pi5");
    let out = agent_collect_pi(&dir.join("sys"), &dir.join("proc"), Some(&dir.join("bin")));
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let envs = envelopes(&out);
    let kinds: Vec<&str> = envs.iter().map(|e| e.metric_type.as_str()).collect();
    assert_eq!(kinds, ["throttle", "clock", "voltage", "gpu", "pi_health"]);
    assert!(envs.iter().all(|e| e.hostname == "pi-test"));
    assert_eq!(envs[0].data["throttled_raw"], 0);
    assert_eq!(envs[1].data["gpu_freq_hz"], 960_012_160u64);
    assert_eq!(envs[2].data, serde_json::json!({"core_volts": 0.861}));
    assert_eq!(envs[3].data["gpu_mem_total"], 8 * MIB);
    let h = &envs[4].data;
    assert_eq!(h["model"], "Raspberry Pi 5 Model B Rev 1.0");
    assert_eq!(h["source"], "vcgencmd");
    assert_eq!(h["pmic"].as_array().unwrap().len(), 14);
    assert_eq!(h["storage"][0]["device"], "mmcblk0");
    // What the server decodes is what the agent built.
    for env in envs {
        let typed = env.into_typed().unwrap();
        assert!(!matches!(typed.data, MetricData::Other(_)), "{typed:?}");
    }
}

#[test]
fn the_binary_says_unsupported_on_a_tree_that_is_no_pi() {
    let tmp = tempfile::tempdir().unwrap();
    let out = agent_collect_pi(tmp.path(), tmp.path(), None);
    assert!(!out.status.success(), "the only collector failed");
    let envs = envelopes(&out);
    assert_eq!(envs.len(), 1);
    assert_eq!(envs[0].metric_type, "collector_status");
    assert_eq!(envs[0].data["collector"], "pi");
    assert_eq!(envs[0].data["state"], "unsupported");
    let message = envs[0].data["message"].as_str().unwrap();
    assert!(message.contains("not a Raspberry Pi"), "{message}");
}
