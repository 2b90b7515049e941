//! Linux `pi`: the board from the device tree, the firmware's readings from
//! `vcgencmd`, and sysfs where the kernel has the same reading.
//!
//! `vcgencmd` talks to the VideoCore firmware through a mailbox that can
//! stay busy (a hung firmware call blocks it for good), so every call runs
//! through the `updates` collector's bounded runner with a timeout, and
//! after one timeout the rest of the cycle uses sysfs only.
//!
//! Cost: each `vcgencmd` call is a fork+exec (a few ms on a Pi Zero), so
//! answers that cannot change until reboot (the memory split) are asked
//! once, and a query the firmware refuses (no sdram rails on a Pi 5, no
//! PMIC before it) is not asked again. The SoC temperature comes from the
//! thermal zone, the same sensor `measure_temp` reads, without a child.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use spectra_protocol::{ClockMetric, GpuMetric, MetricData, PiHealthMetric, VoltageMetric};

use super::{
    decode_throttled, is_raspberry_pi, parse_cpufreq_khz, parse_cpuinfo_revision,
    parse_device_tree_model, parse_device_tree_revision, parse_get_mem, parse_get_throttled,
    parse_measure_clock, parse_measure_temp, parse_measure_volts, parse_millidegrees,
    parse_pmic_read_adc, parse_throttled_sysfs, parse_vcgencmd_error, storage_from_attributes,
    sum_pmic_watts, MmcAttributes,
};
use crate::collectors::updates::{find_on_path, run_bounded};
use crate::collectors::{CollectError, Collector, CollectorKind, HostRoots, ParseError};

/// A healthy `vcgencmd` answers in milliseconds; seconds mean the mailbox
/// is stuck.
pub const DEFAULT_VCGENCMD_TIMEOUT: Duration = Duration::from_secs(3);
/// Every answer is one line, `pmic_read_adc` about thirty.
const OUTPUT_CAP_BYTES: usize = 64 << 10;
/// Used when the agent runs with no `PATH` at all (some service managers).
const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const VCGENCMD: &str = "vcgencmd";

/// Where `vcgencmd` is.
#[derive(Debug, Clone)]
enum VcgencmdLocation {
    /// Looked up on this `PATH`-style list every cycle, so a tool installed
    /// after the agent started is found.
    Search(OsString),
    /// This exact file (tests, or a configured path).
    Fixed(PathBuf),
}

/// The board, read once: it does not change while the agent runs.
#[derive(Debug, Clone)]
struct Board {
    model: String,
    revision: Option<String>,
}

pub struct PiCollector {
    roots: HostRoots,
    vcgencmd: VcgencmdLocation,
    timeout: Duration,
    board: Option<Board>,
    /// Queries (by arguments) the firmware refused, with its message: not
    /// asked again.
    refusals: Vec<(String, String)>,
    /// `get_mem gpu` / `get_mem arm`: fixed until reboot.
    memory_split: Option<GpuMetric>,
}

/// What one cycle learnt about `vcgencmd`.
struct Session {
    program: Option<PathBuf>,
    /// Set by the first timeout: the mailbox is stuck, stop asking.
    stuck: bool,
    unavailable: Vec<String>,
}

impl Session {
    /// After a fallback gave the reading, the first source's failure is no
    /// longer "unavailable" (it was logged when it happened).
    fn forget_failures_since(&mut self, mark: usize, found: bool) {
        if found {
            self.unavailable.truncate(mark);
        }
    }
}

impl PiCollector {
    /// Looks `vcgencmd` up on the agent's own `PATH`.
    pub fn new(roots: &HostRoots) -> Self {
        let search_path = std::env::var_os("PATH")
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| OsString::from(FALLBACK_PATH));
        Self::build(
            roots,
            VcgencmdLocation::Search(search_path),
            DEFAULT_VCGENCMD_TIMEOUT,
        )
    }

    /// Looks `vcgencmd` up on `search_path` (a `PATH`-style list; an empty
    /// list means "no vcgencmd").
    pub fn with_search_path(
        roots: &HostRoots,
        search_path: impl Into<OsString>,
        timeout: Duration,
    ) -> Self {
        Self::build(roots, VcgencmdLocation::Search(search_path.into()), timeout)
    }

    /// Runs exactly `program` as `vcgencmd`.
    pub fn with_vcgencmd(
        roots: &HostRoots,
        program: impl Into<PathBuf>,
        timeout: Duration,
    ) -> Self {
        Self::build(roots, VcgencmdLocation::Fixed(program.into()), timeout)
    }

    fn build(roots: &HostRoots, vcgencmd: VcgencmdLocation, timeout: Duration) -> Self {
        Self {
            roots: roots.clone(),
            vcgencmd,
            timeout,
            board: None,
            refusals: Vec::new(),
            memory_split: None,
        }
    }

    /// The board, or `Unsupported` when the device tree names none.
    fn detect_board(&mut self) -> Result<Board, CollectError> {
        if let Some(board) = &self.board {
            return Ok(board.clone());
        }
        let candidates = [
            self.roots.sysfs.join("firmware/devicetree/base"),
            self.roots.procfs.join("device-tree"),
        ];
        let found = candidates.iter().find_map(|base| {
            std::fs::read(base.join("model"))
                .ok()
                .map(|bytes| (base, bytes))
        });
        let Some((base, bytes)) = found else {
            return Err(CollectError::Unsupported(format!(
                "not a Raspberry Pi (no device-tree model at {} or {})",
                candidates[0].join("model").display(),
                candidates[1].join("model").display()
            )));
        };
        let model = parse_device_tree_model(&bytes)
            .map_err(|e| CollectError::Unsupported(format!("not a Raspberry Pi ({e})")))?;
        if !is_raspberry_pi(&model) {
            return Err(CollectError::Unsupported(format!(
                "not a Raspberry Pi (device-tree model {model:?})"
            )));
        }
        let revision = std::fs::read(base.join("system/linux,revision"))
            .ok()
            .and_then(|bytes| parse_device_tree_revision(&bytes).ok())
            .or_else(|| {
                std::fs::read_to_string(self.roots.procfs.join("cpuinfo"))
                    .ok()
                    .and_then(|text| parse_cpuinfo_revision(&text))
            });
        let board = Board { model, revision };
        self.board = Some(board.clone());
        Ok(board)
    }

    fn find_vcgencmd(&self) -> Option<PathBuf> {
        match &self.vcgencmd {
            VcgencmdLocation::Search(path) => find_on_path(path, VCGENCMD),
            VcgencmdLocation::Fixed(program) => Some(program.clone()),
        }
    }

    fn child_path(&self) -> OsString {
        match &self.vcgencmd {
            VcgencmdLocation::Search(path) => path.clone(),
            VcgencmdLocation::Fixed(_) => OsString::from(FALLBACK_PATH),
        }
    }

    /// One `vcgencmd` answer parsed by `parse`, or `None` with the reason
    /// added to `session.unavailable` under `reading`.
    fn ask<T>(
        &mut self,
        session: &mut Session,
        reading: &'static str,
        args: &[&str],
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Option<T> {
        let query = args.join(" ");
        if let Some((_, message)) = self.refusals.iter().find(|(q, _)| *q == query) {
            session
                .unavailable
                .push(format!("{reading}: firmware refused: {message}"));
            return None;
        }
        let Some(program) = session.program.clone() else {
            session
                .unavailable
                .push(format!("{reading}: vcgencmd not found on PATH"));
            return None;
        };
        if session.stuck {
            session
                .unavailable
                .push(format!("{reading}: skipped, vcgencmd timed out this cycle"));
            return None;
        }
        let out = match run_bounded(
            &program,
            args,
            &self.child_path(),
            self.timeout,
            OUTPUT_CAP_BYTES,
        ) {
            Ok(out) => out,
            Err(error) => {
                let error = error.to_string();
                // run_bounded's only error that says so; a stuck mailbox
                // would make every further call wait the full timeout too.
                if error.contains("timed out") {
                    session.stuck = true;
                }
                tracing::warn!(collector = "pi", reading, %error, "vcgencmd failed");
                session.unavailable.push(format!("{reading}: {error}"));
                return None;
            }
        };
        // The firmware's refusal comes on stdout whatever the exit code.
        if let Some(message) = parse_vcgencmd_error(&out.stdout) {
            tracing::info!(collector = "pi", reading, %message, "firmware has no such reading; not asking again");
            self.refusals.push((query, message.clone()));
            session
                .unavailable
                .push(format!("{reading}: firmware refused: {message}"));
            return None;
        }
        if !out.status.success() {
            let first = out
                .stderr
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("no error output");
            session.unavailable.push(format!(
                "{reading}: vcgencmd {query} failed ({}): {first}",
                out.status
            ));
            return None;
        }
        match parse(&out.stdout) {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::warn!(collector = "pi", reading, %error, "unparseable vcgencmd answer");
                session.unavailable.push(format!("{reading}: {error}"));
                None
            }
        }
    }

    /// `get_throttled`, else the firmware driver's sysfs file.
    fn read_throttle(&mut self, session: &mut Session) -> Option<u32> {
        let mark = session.unavailable.len();
        let word = self
            .ask(session, "throttle", &["get_throttled"], parse_get_throttled)
            .or_else(|| match find_sysfs_get_throttled(&self.roots.sysfs) {
                Some(path) => read_parsed(&path, parse_throttled_sysfs, "throttle", &mut session.unavailable),
                None => {
                    session.unavailable.push(
                        "throttle: no sysfs get_throttled either (kernel without the Raspberry Pi firmware driver)"
                            .to_owned(),
                    );
                    None
                }
            });
        session.forget_failures_since(mark, word.is_some());
        word
    }

    fn read_clocks(&mut self, session: &mut Session) -> Option<ClockMetric> {
        let mark = session.unavailable.len();
        let arm = self
            .ask(
                session,
                "arm_freq_hz",
                &["measure_clock", "arm"],
                parse_measure_clock,
            )
            .flatten()
            .or_else(|| {
                // The kernel's requested ARM clock: the firmware may run
                // it lower while throttled, which only vcgencmd measures.
                let path = self
                    .roots
                    .sysfs
                    .join("devices/system/cpu/cpu0/cpufreq/scaling_cur_freq");
                read_parsed(
                    &path,
                    parse_cpufreq_khz,
                    "arm_freq_hz",
                    &mut session.unavailable,
                )
            });
        session.forget_failures_since(mark, arm.is_some());
        let core = self
            .ask(
                session,
                "core_freq_hz",
                &["measure_clock", "core"],
                parse_measure_clock,
            )
            .flatten();
        // The 3D block's clock is the GPU's (v3d on the Pi 4 and 5); firmware
        // that does not measure it on older boards still measures H.264's.
        let mark = session.unavailable.len();
        let gpu = self
            .ask(
                session,
                "gpu_freq_hz",
                &["measure_clock", "v3d"],
                parse_measure_clock,
            )
            .flatten()
            .or_else(|| {
                self.ask(
                    session,
                    "gpu_freq_hz",
                    &["measure_clock", "h264"],
                    parse_measure_clock,
                )
                .flatten()
            });
        session.forget_failures_since(mark, gpu.is_some());
        Some(ClockMetric {
            arm_freq_hz: arm?,
            core_freq_hz: core,
            gpu_freq_hz: gpu,
        })
    }

    fn read_voltages(&mut self, session: &mut Session) -> Option<VoltageMetric> {
        let mut volts = |reading: &'static str, rail: &str| {
            self.ask(
                session,
                reading,
                &["measure_volts", rail],
                parse_measure_volts,
            )
            .flatten()
        };
        let core = volts("core_volts", "core");
        let sdram_c_volts = volts("sdram_c_volts", "sdram_c");
        let sdram_i_volts = volts("sdram_i_volts", "sdram_i");
        let sdram_p_volts = volts("sdram_p_volts", "sdram_p");
        Some(VoltageMetric {
            core_volts: core?,
            sdram_c_volts,
            sdram_i_volts,
            sdram_p_volts,
        })
    }

    fn read_memory_split(&mut self, session: &mut Session) -> Option<GpuMetric> {
        if let Some(split) = &self.memory_split {
            return Some(split.clone());
        }
        let gpu = self.ask(session, "gpu_mem_total", &["get_mem", "gpu"], |t| {
            parse_get_mem(t, "gpu")
        })?;
        let arm = self.ask(session, "arm_mem_total", &["get_mem", "arm"], |t| {
            parse_get_mem(t, "arm")
        });
        let split = GpuMetric {
            gpu_mem_total: gpu,
            gpu_mem_used: None,
            arm_mem_total: arm,
        };
        // Kept only when complete, so a transient failure is retried.
        if arm.is_some() {
            self.memory_split = Some(split.clone());
        }
        Some(split)
    }

    /// Thermal zone 0 (the SoC's `cpu-thermal`), else `measure_temp`.
    fn read_soc_temperature(&mut self, session: &mut Session) -> Option<f64> {
        let mark = session.unavailable.len();
        let zone = self.roots.sysfs.join("class/thermal/thermal_zone0/temp");
        let celsius = read_parsed(
            &zone,
            parse_millidegrees,
            "soc_temp_c",
            &mut session.unavailable,
        )
        .or_else(|| self.ask(session, "soc_temp_c", &["measure_temp"], parse_measure_temp));
        session.forget_failures_since(mark, celsius.is_some());
        celsius
    }
}

impl Collector for PiCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Pi
    }

    /// `vcgencmd` children.
    fn may_block(&self) -> bool {
        true
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        let board = self.detect_board()?;
        let program = self.find_vcgencmd();
        let mut session = Session {
            program,
            stuck: false,
            unavailable: Vec::new(),
        };
        let throttle = self.read_throttle(&mut session);
        let clock = self.read_clocks(&mut session);
        let voltage = self.read_voltages(&mut session);
        let gpu = self.read_memory_split(&mut session);
        let soc_temp_c = self.read_soc_temperature(&mut session);
        let pmic = self
            .ask(
                &mut session,
                "pmic",
                &["pmic_read_adc"],
                parse_pmic_read_adc,
            )
            .unwrap_or_default();
        let storage = read_storage(&self.roots.sysfs, &mut session.unavailable);

        session.unavailable.dedup();
        let source = if session.program.is_some() && !session.stuck {
            "vcgencmd"
        } else {
            "sysfs"
        };
        let mut out = Vec::with_capacity(5);
        out.extend(throttle.map(|w| MetricData::Throttle(decode_throttled(w))));
        out.extend(clock.map(MetricData::Clock));
        out.extend(voltage.map(MetricData::Voltage));
        out.extend(gpu.map(MetricData::Gpu));
        out.push(MetricData::PiHealth(PiHealthMetric {
            model: board.model,
            revision: board.revision,
            soc_temp_c,
            source: source.to_owned(),
            pmic_watts: sum_pmic_watts(&pmic),
            pmic,
            storage,
            unavailable: session.unavailable,
        }));
        Ok(out)
    }
}

/// Reads and parses one sysfs file; a missing or bad file adds its reason
/// to `unavailable`.
fn read_parsed<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
    reading: &str,
    unavailable: &mut Vec<String>,
) -> Option<T> {
    match std::fs::read_to_string(path) {
        Ok(text) => match parse(&text) {
            Ok(value) => Some(value),
            Err(e) => {
                unavailable.push(format!("{reading}: {}: {e}", path.display()));
                None
            }
        },
        Err(e) => {
            unavailable.push(format!("{reading}: {}: {e}", path.display()));
            None
        }
    }
}

/// The firmware driver's `get_throttled` file: `devices/platform/soc/
/// soc:firmware/get_throttled` on the Pi 1-4; the firmware node sits under
/// another bus name on newer device trees, so every `*:firmware` node one
/// level under a platform device is tried. Newer Raspberry Pi kernels mark
/// the file deprecated (one `WARN_ONCE` in the kernel log on first read),
/// which is why it is only the fallback when `vcgencmd` cannot answer.
fn find_sysfs_get_throttled(sysfs: &Path) -> Option<PathBuf> {
    let platform = sysfs.join("devices/platform");
    let usual = platform.join("soc/soc:firmware/get_throttled");
    if usual.is_file() {
        return Some(usual);
    }
    std::fs::read_dir(&platform)
        .ok()?
        .flatten()
        .find_map(|bus| {
            std::fs::read_dir(bus.path())
                .ok()?
                .flatten()
                .find_map(|node| {
                    let candidate = node.path().join("get_throttled");
                    (node.file_name().to_string_lossy().ends_with(":firmware")
                        && candidate.is_file())
                    .then_some(candidate)
                })
        })
}

/// Every SD card and eMMC under `<sysfs>/bus/mmc/devices` (falling back to
/// `<sysfs>/class/mmc_host/mmc*/mmc*:*`), sorted by device name.
fn read_storage(sysfs: &Path, unavailable: &mut Vec<String>) -> Vec<spectra_protocol::PiStorage> {
    let mut cards = list_dirs(&sysfs.join("bus/mmc/devices"));
    if cards.is_empty() {
        for host in list_dirs(&sysfs.join("class/mmc_host")) {
            cards.extend(list_dirs(&host).into_iter().filter(|card| {
                card.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(':'))
            }));
        }
    }
    let mut storage = Vec::new();
    for card in cards {
        let read = |name: &str| std::fs::read_to_string(card.join(name)).ok();
        let attrs = MmcAttributes {
            card_type: read("type"),
            name: read("name"),
            manfid: read("manfid"),
            oemid: read("oemid"),
            date: read("date"),
            life_time: read("life_time"),
            pre_eol_info: read("pre_eol_info"),
        };
        let card_id = card
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The block device (`block/mmcblk0`) is the name the disk
        // collectors use; an SD card without a driver bound has none.
        let device = list_dirs(&card.join("block"))
            .first()
            .and_then(|b| b.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| card_id.clone());
        match storage_from_attributes(&device, &attrs) {
            Ok(Some(s)) => storage.push(s),
            Ok(None) => {}
            Err(e) => unavailable.push(format!("storage {card_id}: {e}")),
        }
    }
    storage.sort_by(|a, b| a.device.cmp(&b.device));
    storage
}

/// Subdirectories of `dir` (symlinks followed, as in `bus/*/devices`),
/// sorted; none when `dir` is missing.
fn list_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}
