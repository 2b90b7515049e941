//! `system` collector: uptime, boot time, processes, logged-in users, OS,
//! kernel, architecture and virtualization.
//!
//! - This file: the pure parsers ([`parse_uptime`], [`parse_utmp`],
//!   [`parse_os_release`], [`parse_cpuinfo`]) and the pure decisions
//!   ([`classify_virtualization`], [`map_arch_to_uname`]).
//! - `linux.rs`: [`SystemCollector`] and the `read_*` helpers that the host
//!   info shares; `windows.rs`: `GetTickCount64`, `EnumProcesses`, WTS
//!   sessions; `unsupported.rs`: the rest.
//!
//! Sources on Linux and why:
//! - `processes` counts the numeric directories of `<procfs>`: the processes
//!   that exist now (threads are not listed there). The `processes` line of
//!   `/proc/stat` is forks since boot, not what SPEC means.
//! - `users` counts `USER_PROCESS` records of utmp (`<rootfs>/run/utmp`,
//!   else `<rootfs>/var/run/utmp`): login sessions, as `who` lists them.
//! - `boot_time` is `btime` of `/proc/stat`.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(any(target_os = "linux", windows)))]
mod unsupported;
#[cfg(windows)]
mod windows;

#[cfg(target_os = "linux")]
pub use linux::SystemCollector;
#[cfg(target_os = "linux")]
pub(crate) use linux::{read_kernel_release, read_os_release};
#[cfg(not(any(target_os = "linux", windows)))]
pub use unsupported::SystemCollector;
#[cfg(windows)]
pub(crate) use windows::read_uptime_secs;
#[cfg(windows)]
pub use windows::SystemCollector;

use super::ParseError;

/// `/proc/uptime`: `526.65 554.27` (uptime, idle time summed over CPUs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uptime {
    pub uptime_secs: f64,
    pub idle_secs: f64,
}

/// Parses `/proc/uptime`.
pub fn parse_uptime(text: &str) -> Result<Uptime, ParseError> {
    let mut fields = text.split_ascii_whitespace().map(str::parse::<f64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(uptime_secs)), Some(Ok(idle_secs))) if uptime_secs >= 0.0 => Ok(Uptime {
            uptime_secs,
            idle_secs,
        }),
        _ => Err(ParseError::new(
            "/proc/uptime",
            format!("expected two numbers, got {:?}", text.trim()),
        )),
    }
}

/// `ut_type` of a login session (glibc `bits/utmp.h`).
pub const UTMP_USER_PROCESS: i16 = 7;
/// `ut_type` of the boot record.
pub const UTMP_BOOT_TIME: i16 = 2;

/// Size of one glibc `struct utmp` on a target architecture (as named by
/// `std::env::consts::ARCH`). 384 bytes where `ut_session` and `ut_tv` are
/// 32-bit (x86_64 keeps them so for 32-bit compatibility, and every 32-bit
/// target), 400 where they are `long`/`struct timeval` (aarch64, riscv64...):
/// checked with `sizeof(struct utmpx)` under gcc for x86_64 and aarch64.
pub fn utmp_record_bytes(arch: &str) -> usize {
    match arch {
        "aarch64" | "riscv64" | "loongarch64" | "mips64" => 400,
        _ => 384,
    }
}

/// What the utmp file says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UtmpSummary {
    /// `USER_PROCESS` records: logged-in sessions.
    pub user_sessions: u32,
    /// Records read (whole ones).
    pub records: u32,
}

/// Counts the sessions in a utmp file of this machine's record layout.
pub fn parse_utmp(bytes: &[u8]) -> Result<UtmpSummary, ParseError> {
    parse_utmp_records(bytes, utmp_record_bytes(std::env::consts::ARCH))
}

/// Counts the sessions in utmp `bytes` made of `record_bytes`-sized records.
///
/// Only `ut_type` is read: a native-endian `short` at offset 0 of each
/// record (glibc `struct utmp`: `ut_type` i16, 2 bytes padding, `ut_pid`
/// i32 at 4, `ut_line[32]` at 8, `ut_id[4]` at 40, `ut_user[32]` at 44,
/// `ut_host[256]` at 76, `ut_exit` at 332, then session, time, address).
/// A trailing partial record (a writer caught mid-write) is ignored.
pub fn parse_utmp_records(bytes: &[u8], record_bytes: usize) -> Result<UtmpSummary, ParseError> {
    if record_bytes < 2 {
        return Err(ParseError::new("utmp", "record size below 2 bytes"));
    }
    let mut summary = UtmpSummary::default();
    for record in bytes.chunks_exact(record_bytes) {
        let ut_type = i16::from_ne_bytes([record[0], record[1]]);
        if !(0..=9).contains(&ut_type) {
            return Err(ParseError::new(
                "utmp",
                format!(
                    "record {} has ut_type {ut_type}: not a utmp file of this layout",
                    summary.records
                ),
            ));
        }
        summary.records += 1;
        if ut_type == UTMP_USER_PROCESS {
            summary.user_sessions += 1;
        }
    }
    Ok(summary)
}

/// The os-release(5) fields Spectra reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID`: `debian`, `ubuntu`, `raspbian`...
    pub id: Option<String>,
    pub version_id: Option<String>,
    pub name: Option<String>,
    pub pretty_name: Option<String>,
    pub version: Option<String>,
}

/// Parses os-release(5): `KEY=value` lines, values optionally in single or
/// double quotes, with `\"`, `\\`, `` \` `` and `\$` escapes; `#` comments.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut out = OsRelease::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let slot = match key {
            "ID" => &mut out.id,
            "VERSION_ID" => &mut out.version_id,
            "NAME" => &mut out.name,
            "PRETTY_NAME" => &mut out.pretty_name,
            "VERSION" => &mut out.version,
            _ => continue,
        };
        let value = unquote_shell_value(raw);
        if !value.is_empty() {
            *slot = Some(value);
        }
    }
    out
}

fn unquote_shell_value(raw: &str) -> String {
    let inner = match raw.as_bytes() {
        [q @ (b'"' | b'\''), .., last] if last == q && raw.len() >= 2 => &raw[1..raw.len() - 1],
        _ => raw,
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What `/proc/cpuinfo` tells about the CPU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuInfo {
    /// x86 `model name`; on ARM the board `Model` (Raspberry Pi), else
    /// `Hardware`, else the first `model name`/`Processor` line.
    pub model: Option<String>,
    /// `processor` entries: logical CPUs online.
    pub processors: u32,
    /// The x86 `hypervisor` CPU flag: running under some hypervisor.
    pub hypervisor_flag: bool,
}

/// Parses `/proc/cpuinfo` (`key<tabs>: value` lines, one block per CPU).
pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    let (mut model_name, mut board_model, mut hardware) = (None, None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => info.processors += 1,
            "model name" | "Processor" if model_name.is_none() && !value.is_empty() => {
                model_name = Some(value)
            }
            "Model" if board_model.is_none() && !value.is_empty() => board_model = Some(value),
            "Hardware" if hardware.is_none() && !value.is_empty() => hardware = Some(value),
            "flags" if !info.hypervisor_flag => {
                info.hypervisor_flag = value.split_ascii_whitespace().any(|f| f == "hypervisor")
            }
            _ => {}
        }
    }
    // On ARM, `model name` is only the core type ("ARMv7 Processor rev 3");
    // the board model says more ("Raspberry Pi 4 Model B Rev 1.4").
    info.model = board_model.or(model_name).or(hardware).map(str::to_owned);
    info
}

/// What the host shows about containers and hypervisors; gathered by
/// `detect_virtualization` (best effort: each piece may be missing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VirtEvidence {
    /// `<rootfs>/.dockerenv` exists.
    pub dockerenv: bool,
    /// `<rootfs>/run/.containerenv` exists (podman).
    pub containerenv: bool,
    /// `container=` of PID 1's environment (systemd's convention).
    pub pid1_container_env: Option<String>,
    /// `<procfs>/1/cgroup`.
    pub pid1_cgroup: Option<String>,
    /// `<sysfs>/class/dmi/id/sys_vendor`.
    pub dmi_sys_vendor: Option<String>,
    /// `<sysfs>/class/dmi/id/product_name`.
    pub dmi_product_name: Option<String>,
    pub cpuinfo_hypervisor_flag: bool,
}

/// Names the virtualization, the innermost layer first (as
/// systemd-detect-virt does: a container in a VM is reported as the
/// container): `docker`, `podman`, `lxc`, `container` (other or
/// Kubernetes), or `kvm`, `qemu`, `vmware`, `virtualbox`, `hyper-v`, `xen`,
/// `parallels`, `vm` (the CPU says hypervisor, the vendor is unknown), else
/// `none`.
pub fn classify_virtualization(e: &VirtEvidence) -> String {
    if let Some(env) = e.pid1_container_env.as_deref().filter(|v| !v.is_empty()) {
        return match env {
            "lxc" | "lxc-libvirt" => "lxc".to_owned(),
            "oci" => "container".to_owned(),
            other => other.to_owned(),
        };
    }
    if e.dockerenv {
        return "docker".to_owned();
    }
    if e.containerenv {
        return "podman".to_owned();
    }
    if let Some(cgroup) = e.pid1_cgroup.as_deref() {
        let kind = cgroup.lines().find_map(|line| {
            let path = line.splitn(3, ':').nth(2)?;
            if path.contains("/docker") || path.contains("docker-") {
                Some("docker")
            } else if path.contains("libpod") {
                Some("podman")
            } else if path.contains("/lxc") || path.contains("lxc.payload") {
                Some("lxc")
            } else if path.contains("kubepods") || path.contains("containerd") {
                Some("container")
            } else {
                None
            }
        });
        if let Some(kind) = kind {
            return kind.to_owned();
        }
    }
    let vendor = e.dmi_sys_vendor.as_deref().unwrap_or("").trim();
    let product = e.dmi_product_name.as_deref().unwrap_or("").trim();
    let dmi = [vendor, product];
    let any = |needle: &str| dmi.iter().any(|s| s.contains(needle));
    let hypervisor = if any("KVM") || vendor == "Amazon EC2" || product == "Google Compute Engine" {
        Some("kvm")
    } else if any("QEMU") {
        Some("qemu")
    } else if any("VMware") {
        Some("vmware")
    } else if any("VirtualBox") || vendor == "innotek GmbH" {
        Some("virtualbox")
    } else if vendor == "Microsoft Corporation" && product == "Virtual Machine" {
        Some("hyper-v")
    } else if any("Xen") {
        Some("xen")
    } else if any("Parallels") {
        Some("parallels")
    } else if e.cpuinfo_hypervisor_flag {
        Some("vm")
    } else {
        None
    };
    hypervisor.unwrap_or("none").to_owned()
}

/// The `container=` value of a NUL-separated environment block
/// (`/proc/1/environ`).
pub fn find_container_env(environ: &[u8]) -> Option<String> {
    environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(b"container="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// `std::env::consts::ARCH` as `uname -m` would name it.
pub fn map_arch_to_uname(arch: &str) -> &str {
    match arch {
        "x86" => "i686",
        // Rust's "arm" is 32-bit ARM; Raspberry Pi OS 32-bit reports armv7l.
        "arm" => "armv7l",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_bytes(path: &str) -> Vec<u8> {
        let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
    }

    fn fixture(path: &str) -> String {
        String::from_utf8(fixture_bytes(path)).unwrap()
    }

    #[test]
    fn parses_uptime() {
        let u = parse_uptime("526.65 554.27\n").unwrap();
        assert_eq!(u.uptime_secs, 526.65);
        assert_eq!(u.idle_secs, 554.27);
        let live = parse_uptime(&fixture("linux/debian12-x86_64-docker-vm/uptime")).unwrap();
        assert!(live.uptime_secs > 0.0);
        assert!(parse_uptime("12.5\n").is_err());
        assert!(parse_uptime("abc def\n").is_err());
    }

    #[test]
    fn counts_user_sessions_in_glibc_x86_64_utmp() {
        // Written by glibc's pututxline (generate-utmp.c): boot, runlevel,
        // getty, alice on tty2, bob on pts/0, one dead pts/1 session.
        let bytes = fixture_bytes("utmp/glibc-x86_64.utmp");
        let s = parse_utmp_records(&bytes, utmp_record_bytes("x86_64")).unwrap();
        assert_eq!(s.records, 6);
        assert_eq!(s.user_sessions, 2);
    }

    #[test]
    fn reads_user_name_where_glibc_puts_it() {
        // Guards the documented offsets: record 3 is alice's USER_PROCESS.
        let bytes = fixture_bytes("utmp/glibc-x86_64.utmp");
        let rec = &bytes[3 * 384..4 * 384];
        assert_eq!(i16::from_ne_bytes([rec[0], rec[1]]), UTMP_USER_PROCESS);
        assert_eq!(&rec[8..12], b"tty2");
        assert_eq!(&rec[44..49], b"alice");
    }

    #[test]
    fn counts_sessions_in_400_byte_aarch64_records_and_ignores_partial_tail() {
        let mut bytes = vec![0u8; 400 * 3 + 17];
        bytes[0..2].copy_from_slice(&UTMP_BOOT_TIME.to_ne_bytes());
        bytes[400..402].copy_from_slice(&UTMP_USER_PROCESS.to_ne_bytes());
        bytes[800..802].copy_from_slice(&UTMP_USER_PROCESS.to_ne_bytes());
        let s = parse_utmp_records(&bytes, utmp_record_bytes("aarch64")).unwrap();
        assert_eq!((s.records, s.user_sessions), (3, 2));
    }

    #[test]
    fn rejects_utmp_of_another_layout() {
        // A ut_type outside 0..=9 means the bytes are not utmp records of
        // this size (another architecture's file, or not utmp at all).
        let mut garbage = vec![0xffu8; 400];
        garbage.extend_from_slice(&fixture_bytes("utmp/glibc-x86_64.utmp"));
        assert!(parse_utmp_records(&garbage, 400).is_err());
        assert_eq!(parse_utmp(&[]).unwrap(), UtmpSummary::default());
    }

    #[test]
    fn parses_os_release_with_quotes_and_escapes() {
        let text = "# comment\nNAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID='12'\n\
                    PRETTY_NAME=\"Say \\\"hi\\\" \\$HOME\"\nVERSION=\n";
        let os = parse_os_release(text);
        assert_eq!(os.name.as_deref(), Some("Debian GNU/Linux"));
        assert_eq!(os.id.as_deref(), Some("debian"));
        assert_eq!(os.version_id.as_deref(), Some("12"));
        assert_eq!(os.pretty_name.as_deref(), Some("Say \"hi\" $HOME"));
        assert_eq!(os.version, None, "empty value is no value");
    }

    #[test]
    fn parses_captured_os_release_files() {
        let deb = parse_os_release(&fixture("linux/debian12-x86_64-docker-vm/os-release"));
        assert_eq!(deb.id.as_deref(), Some("debian"));
        assert_eq!(deb.version_id.as_deref(), Some("12"));
        assert_eq!(
            deb.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        let pi = parse_os_release(&fixture("linux/raspberrypi4-aarch64/os-release"));
        assert_eq!(pi.id.as_deref(), Some("debian"));
        assert_eq!(pi.version_id.as_deref(), Some("11"));
    }

    #[test]
    fn parses_cpuinfo_of_x86_vm() {
        let info = parse_cpuinfo(&fixture("linux/debian12-x86_64-docker-vm/cpuinfo"));
        assert_eq!(info.model.as_deref(), Some("Intel(R) Xeon(R) Processor"));
        assert_eq!(info.processors, 2);
        assert!(info.hypervisor_flag);
    }

    #[test]
    fn parses_cpuinfo_of_raspberry_pi_with_board_model() {
        let info = parse_cpuinfo(&fixture("linux/raspberrypi4-aarch64/cpuinfo"));
        assert_eq!(
            info.model.as_deref(),
            Some("Raspberry Pi 4 Model B Rev 1.4")
        );
        assert_eq!(info.processors, 4);
        assert!(!info.hypervisor_flag);
    }

    #[test]
    fn classifies_containers_before_hypervisors() {
        let vm = VirtEvidence {
            dmi_sys_vendor: Some("QEMU".into()),
            dmi_product_name: Some("Standard PC (i440FX + PIIX, 1996)".into()),
            cpuinfo_hypervisor_flag: true,
            ..VirtEvidence::default()
        };
        assert_eq!(classify_virtualization(&vm), "qemu");
        let docker_in_vm = VirtEvidence {
            dockerenv: true,
            ..vm.clone()
        };
        assert_eq!(classify_virtualization(&docker_in_vm), "docker");
        let lxc = VirtEvidence {
            pid1_container_env: Some("lxc".into()),
            ..VirtEvidence::default()
        };
        assert_eq!(classify_virtualization(&lxc), "lxc");
        let cgroup_v1_docker = VirtEvidence {
            pid1_cgroup: Some("12:pids:/docker/3f2a9c\n0::/docker/3f2a9c\n".into()),
            ..VirtEvidence::default()
        };
        assert_eq!(classify_virtualization(&cgroup_v1_docker), "docker");
    }

    #[test]
    fn classifies_hypervisors_from_dmi_or_cpu_flag() {
        let with = |vendor: &str, product: &str| VirtEvidence {
            dmi_sys_vendor: Some(vendor.into()),
            dmi_product_name: Some(product.into()),
            ..VirtEvidence::default()
        };
        assert_eq!(
            classify_virtualization(&with("VMware, Inc.", "VMware Virtual Platform")),
            "vmware"
        );
        assert_eq!(
            classify_virtualization(&with("innotek GmbH", "VirtualBox")),
            "virtualbox"
        );
        assert_eq!(
            classify_virtualization(&with("Microsoft Corporation", "Virtual Machine")),
            "hyper-v"
        );
        assert_eq!(
            classify_virtualization(&with("Microsoft Corporation", "Surface Laptop 4")),
            "none"
        );
        assert_eq!(
            classify_virtualization(&with("Dell Inc.", "PowerEdge R640")),
            "none"
        );
        let flag_only = VirtEvidence {
            cpuinfo_hypervisor_flag: true,
            ..VirtEvidence::default()
        };
        assert_eq!(classify_virtualization(&flag_only), "vm");
        assert_eq!(classify_virtualization(&VirtEvidence::default()), "none");
    }

    #[test]
    fn finds_container_variable_in_environ_block() {
        assert_eq!(
            find_container_env(b"HOME=/\0container=podman\0TERM=linux\0").as_deref(),
            Some("podman")
        );
        assert_eq!(find_container_env(b"HOME=/\0TERM=linux\0"), None);
    }

    #[test]
    fn maps_rust_arch_names_to_uname() {
        assert_eq!(map_arch_to_uname("x86_64"), "x86_64");
        assert_eq!(map_arch_to_uname("aarch64"), "aarch64");
        assert_eq!(map_arch_to_uname("arm"), "armv7l");
        assert_eq!(map_arch_to_uname("x86"), "i686");
    }
}
