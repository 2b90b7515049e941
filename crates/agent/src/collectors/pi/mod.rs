//! `pi` collector: Raspberry Pi health (SPEC §2 row `pi`; Appendix A
//! `throttle`, `clock`, `voltage`, `gpu`, plus `pi_health`).
//!
//! - This file: the pure parsers of the firmware's answers (`vcgencmd`) and
//!   of the kernel's files (device tree, thermal zone, cpufreq, the
//!   firmware driver's `get_throttled`, mmc attributes), each with a sample
//!   line in its doc comment, and the maths that turns them into payloads.
//! - `linux.rs`: [`PiCollector`]: detects the board from the device-tree
//!   model, asks `vcgencmd` (found on `PATH`, or a path given to the
//!   constructor) with a timeout, and falls back to sysfs where the kernel
//!   has the same reading.
//! - `unsupported.rs`: every other platform says so explicitly.
//!
//! Envelopes per cycle: `throttle`, `clock`, `voltage`, `gpu` when their
//! required reading exists, and always one `pi_health` with the model, the
//! SoC temperature, the Pi 5 PMIC rails, SD/eMMC wear and the readings this
//! host cannot give (`unavailable`, each with its reason).
//!
//! The SoC temperature goes out in `pi_health` only, not as a `temperature`
//! envelope: the `temperature` collector already reports the same sensor
//! (thermal zone `cpu-thermal`), and a second copy would chart and alert
//! twice.
//!
//! Formats: the Raspberry Pi documentation of `vcgencmd`
//! (<https://www.raspberrypi.com/documentation/computers/os.html#vcgencmd>),
//! the kernel's mmc attributes
//! (`Documentation/driver-api/mmc/mmc-dev-attrs.rst`) and JEDEC JESD84-B51
//! (EXT_CSD `DEVICE_LIFE_TIME_EST_TYP_A/B`, `PRE_EOL_INFO`).

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod unsupported;

#[cfg(target_os = "linux")]
pub use linux::{PiCollector, DEFAULT_VCGENCMD_TIMEOUT};
#[cfg(not(target_os = "linux"))]
pub use unsupported::PiCollector;

use spectra_protocol::{PiStorage, PmicRail, ThrottleMetric};

use super::{Collector, HostRoots, ParseError};

/// The collector for this platform (SPEC §2 `pi`).
pub fn new_collector(roots: &HostRoots) -> Box<dyn Collector> {
    Box::new(PiCollector::new(roots))
}

/// Every Raspberry Pi's device-tree model starts so (`Raspberry Pi 4 Model
/// B Rev 1.4`, `Raspberry Pi Compute Module 4 Rev 1.0`, `Raspberry Pi 500`).
pub const MODEL_PREFIX: &str = "Raspberry Pi";

/// The device tree's `model` property: a NUL-terminated string,
/// `Raspberry Pi 4 Model B Rev 1.4\0`.
pub fn parse_device_tree_model(bytes: &[u8]) -> Result<String, ParseError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ParseError::new("device-tree model", format!("not UTF-8: {e}")))?;
    let model = text.trim_end_matches('\0').trim();
    if model.is_empty() {
        return Err(ParseError::new("device-tree model", "empty"));
    }
    if model.contains('\0') {
        return Err(ParseError::new(
            "device-tree model",
            format!("NUL inside the string: {model:?}"),
        ));
    }
    Ok(model.to_owned())
}

/// Whether a device-tree model names a Raspberry Pi board.
pub fn is_raspberry_pi(model: &str) -> bool {
    model.starts_with(MODEL_PREFIX)
}

/// The device tree's `system/linux,revision`: one big-endian 32-bit cell
/// (`00 c0 31 14` → `c03114`).
pub fn parse_device_tree_revision(bytes: &[u8]) -> Result<String, ParseError> {
    let cell: [u8; 4] = bytes.try_into().map_err(|_| {
        ParseError::new(
            "device-tree linux,revision",
            format!("expected one 4-byte cell, found {} bytes", bytes.len()),
        )
    })?;
    Ok(format!("{:x}", u32::from_be_bytes(cell)))
}

/// The `Revision` line of `/proc/cpuinfo` on Raspberry Pi kernels:
/// `Revision\t: c03114`.
pub fn parse_cpuinfo_revision(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let value = value.trim();
        (key.trim() == "Revision"
            && !value.is_empty()
            && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| value.to_ascii_lowercase())
    })
}

/// Bits of the firmware's throttle word (`vcgencmd get_throttled`,
/// documented in the `vcgencmd` section of the Raspberry Pi docs).
pub mod throttle_bits {
    pub const UNDERVOLTAGE: u32 = 1 << 0;
    pub const ARM_FREQ_CAPPED: u32 = 1 << 1;
    pub const THROTTLED: u32 = 1 << 2;
    pub const SOFT_TEMP_LIMIT: u32 = 1 << 3;
    pub const UNDERVOLTAGE_OCCURRED: u32 = 1 << 16;
    pub const FREQ_CAP_OCCURRED: u32 = 1 << 17;
    pub const THROTTLED_OCCURRED: u32 = 1 << 18;
    pub const SOFT_TEMP_OCCURRED: u32 = 1 << 19;
}

/// The `throttle` payload of a throttle word; the word itself is kept in
/// `throttled_raw`.
pub fn decode_throttled(word: u32) -> ThrottleMetric {
    use throttle_bits as b;
    ThrottleMetric {
        undervoltage: word & b::UNDERVOLTAGE != 0,
        arm_freq_capped: word & b::ARM_FREQ_CAPPED != 0,
        throttled: word & b::THROTTLED != 0,
        soft_temp_limit: word & b::SOFT_TEMP_LIMIT != 0,
        undervoltage_occurred: word & b::UNDERVOLTAGE_OCCURRED != 0,
        freq_cap_occurred: word & b::FREQ_CAP_OCCURRED != 0,
        throttled_occurred: word & b::THROTTLED_OCCURRED != 0,
        soft_temp_occurred: word & b::SOFT_TEMP_OCCURRED != 0,
        throttled_raw: Some(word),
    }
}

/// `vcgencmd get_throttled`: `throttled=0x50005`.
pub fn parse_get_throttled(text: &str) -> Result<u32, ParseError> {
    const WHAT: &str = "vcgencmd get_throttled";
    let value = expect_key(text, "throttled", WHAT)?;
    let hex = value.strip_prefix("0x").ok_or_else(|| {
        ParseError::new(WHAT, format!("expected a 0x hex value, found {value:?}"))
    })?;
    parse_hex_u32(hex, WHAT)
}

/// The firmware driver's `.../soc:firmware/get_throttled` file: the same
/// word in hex, `50005` (accepted with a `0x` prefix too).
pub fn parse_throttled_sysfs(text: &str) -> Result<u32, ParseError> {
    let value = text.trim();
    parse_hex_u32(
        value.strip_prefix("0x").unwrap_or(value),
        "sysfs get_throttled",
    )
}

fn parse_hex_u32(hex: &str, what: &'static str) -> Result<u32, ParseError> {
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ParseError::new(what, format!("not a hex number: {hex:?}")));
    }
    u32::from_str_radix(hex, 16)
        .map_err(|e| ParseError::new(what, format!("{hex:?} does not fit 32 bits: {e}")))
}

/// The refusal `vcgencmd` prints for a command or argument this firmware
/// does not have: `error=2 error_msg="Invalid arguments"`. Returns the
/// message; `None` when `text` is an answer.
pub fn parse_vcgencmd_error(text: &str) -> Option<String> {
    let line = text.trim();
    let rest = line.strip_prefix("error=")?;
    let message = rest
        .split_once("error_msg=")
        .map(|(_, msg)| msg.trim().trim_matches('"').to_owned())
        .unwrap_or_else(|| format!("error {}", rest.trim()));
    Some(message)
}

/// `vcgencmd measure_clock arm`: `frequency(48)=1500345728` (Hz). The
/// firmware answers `frequency(0)=0` for a clock the board does not have,
/// which is `None`, not a zero clock.
pub fn parse_measure_clock(text: &str) -> Result<Option<u64>, ParseError> {
    const WHAT: &str = "vcgencmd measure_clock";
    let line = single_line(text, WHAT)?;
    let (key, value) = line.split_once('=').ok_or_else(|| {
        ParseError::new(WHAT, format!("expected frequency(N)=HZ, found {line:?}"))
    })?;
    if !(key.starts_with("frequency(") && key.ends_with(')')) {
        return Err(ParseError::new(
            WHAT,
            format!("expected frequency(N)=HZ, found {line:?}"),
        ));
    }
    let hz: u64 = value
        .parse()
        .map_err(|e| ParseError::new(WHAT, format!("{value:?} is not a frequency in Hz: {e}")))?;
    Ok((hz != 0).then_some(hz))
}

/// `vcgencmd measure_volts core`: `volt=0.8500V`. A rail the firmware
/// does not measure reads `volt=0.0000V` on some firmware: `None`, since a
/// running board has no rail at 0 V.
pub fn parse_measure_volts(text: &str) -> Result<Option<f64>, ParseError> {
    const WHAT: &str = "vcgencmd measure_volts";
    let value = expect_key(text, "volt", WHAT)?;
    let number = value
        .strip_suffix('V')
        .ok_or_else(|| ParseError::new(WHAT, format!("expected a value in V, found {value:?}")))?;
    let volts = parse_finite(number, WHAT)?;
    Ok((volts > 0.0).then_some(volts))
}

/// `vcgencmd get_mem gpu`: `gpu=76M` (also `arm=948M`); bytes.
pub fn parse_get_mem(text: &str, key: &str) -> Result<u64, ParseError> {
    const WHAT: &str = "vcgencmd get_mem";
    let value = expect_key(text, key, WHAT)?;
    let (digits, unit) = value.split_at(
        value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    );
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        other => {
            return Err(ParseError::new(
                WHAT,
                format!("unknown unit {other:?} in {value:?}"),
            ))
        }
    };
    let amount: u64 = digits
        .parse()
        .map_err(|e| ParseError::new(WHAT, format!("{value:?} is not a size: {e}")))?;
    amount
        .checked_mul(1 << shift)
        .ok_or_else(|| ParseError::new(WHAT, format!("{value:?} overflows 64 bits")))
}

/// `vcgencmd measure_temp`: `temp=48.3'C` (°C).
pub fn parse_measure_temp(text: &str) -> Result<f64, ParseError> {
    const WHAT: &str = "vcgencmd measure_temp";
    let value = expect_key(text, "temp", WHAT)?;
    let number = value
        .strip_suffix("'C")
        .ok_or_else(|| ParseError::new(WHAT, format!("expected a value in 'C, found {value:?}")))?;
    parse_finite(number, WHAT)
}

/// `vcgencmd pmic_read_adc` (Pi 5): one reading per line, currents and
/// voltages of the same rail on separate lines, named `<rail>_A` and
/// `<rail>_V`:
///
/// ```text
///    VDD_CORE_A current(7)=2.05584000A
///    VDD_CORE_V volt(15)=0.86096720V
///       EXT5V_V volt(24)=5.14297600V
/// ```
///
/// Rails come out in the order of their first line, with their watts when
/// both are measured.
pub fn parse_pmic_read_adc(text: &str) -> Result<Vec<PmicRail>, ParseError> {
    const WHAT: &str = "vcgencmd pmic_read_adc";
    let mut rails: Vec<PmicRail> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let bad = || {
            ParseError::new(
                WHAT,
                format!("expected `NAME current(N)=XA` or `NAME volt(N)=XV`, found {line:?}"),
            )
        };
        let (name, reading) = line.split_once(char::is_whitespace).ok_or_else(bad)?;
        let (kind, value) = reading.trim().split_once('=').ok_or_else(bad)?;
        let (rail, is_current, number) = if kind.starts_with("current(") {
            let rail = name.strip_suffix("_A").unwrap_or(name);
            (rail, true, value.strip_suffix('A').ok_or_else(bad)?)
        } else if kind.starts_with("volt(") {
            let rail = name.strip_suffix("_V").unwrap_or(name);
            (rail, false, value.strip_suffix('V').ok_or_else(bad)?)
        } else {
            return Err(bad());
        };
        let number = parse_finite(number, WHAT)?;
        let index = match rails.iter().position(|r| r.rail == rail) {
            Some(i) => i,
            None => {
                rails.push(PmicRail {
                    rail: rail.to_owned(),
                    ..PmicRail::default()
                });
                rails.len() - 1
            }
        };
        let entry = &mut rails[index];
        if is_current {
            entry.amps = Some(number);
        } else {
            entry.volts = Some(number);
        }
    }
    if rails.is_empty() {
        return Err(ParseError::new(WHAT, "no readings"));
    }
    for rail in &mut rails {
        rail.watts = rail.volts.zip(rail.amps).map(|(v, a)| v * a);
    }
    Ok(rails)
}

/// Sum of the rails' watts, `None` when no rail has both readings.
pub fn sum_pmic_watts(rails: &[PmicRail]) -> Option<f64> {
    rails
        .iter()
        .filter_map(|r| r.watts)
        .fold(None, |sum, w| Some(sum.unwrap_or(0.0) + w))
}

/// A thermal zone's `temp`: millidegrees Celsius, `48312` → 48.312.
pub fn parse_millidegrees(text: &str) -> Result<f64, ParseError> {
    let value = text.trim();
    let milli: i64 = value.parse().map_err(|e| {
        ParseError::new(
            "thermal_zone temp",
            format!("{value:?} is not millidegrees: {e}"),
        )
    })?;
    Ok(milli as f64 / 1000.0)
}

/// cpufreq's `scaling_cur_freq`: kHz, `1500000` → 1.5 GHz in Hz.
pub fn parse_cpufreq_khz(text: &str) -> Result<u64, ParseError> {
    const WHAT: &str = "cpufreq scaling_cur_freq";
    let value = text.trim();
    let khz: u64 = value
        .parse()
        .map_err(|e| ParseError::new(WHAT, format!("{value:?} is not a frequency in kHz: {e}")))?;
    khz.checked_mul(1000)
        .ok_or_else(|| ParseError::new(WHAT, format!("{value:?} overflows 64 bits")))
}

/// The mmc card kinds that are storage (SDIO cards, such as the Pi's WiFi
/// chip, are not): the `type` attribute `SD` or `MMC`.
pub fn parse_mmc_type(text: &str) -> Option<&'static str> {
    match text.trim() {
        "SD" => Some("sd"),
        "MMC" => Some("emmc"),
        _ => None,
    }
}

/// An eMMC's `life_time` attribute: the type A and B estimates in hex,
/// `0x01 0x02`. Band 0 means "not defined" (`None`); 1 = 0-10 % of the
/// rated life used, ..., 10 = 90-100 %, 11 = beyond it; above is reserved.
pub fn parse_life_time(text: &str) -> Result<(Option<u8>, Option<u8>), ParseError> {
    const WHAT: &str = "mmc life_time";
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [a, b] = fields.as_slice() else {
        return Err(ParseError::new(
            WHAT,
            format!(
                "expected two hex bands like `0x01 0x02`, found {:?}",
                text.trim()
            ),
        ));
    };
    let band = |field: &str| -> Result<Option<u8>, ParseError> {
        let value = parse_hex_byte(field, WHAT)?;
        match value {
            0 => Ok(None),
            1..=11 => Ok(Some(value)),
            _ => Err(ParseError::new(
                WHAT,
                format!("band {field} is reserved (above 0x0B)"),
            )),
        }
    };
    Ok((band(a)?, band(b)?))
}

/// The share of the rated life a `life_time` band says is used, as a
/// `(from, to)` percentage range; band 11 ("exceeded") is `(100, None)`.
pub fn life_time_used_pct(band: u8) -> Option<(u8, Option<u8>)> {
    match band {
        1..=10 => Some(((band - 1) * 10, Some(band * 10))),
        11 => Some((100, None)),
        _ => None,
    }
}

/// An eMMC's `pre_eol_info`: `0x01` normal, `0x02` warning (80 % of the
/// reserved blocks used), `0x03` urgent (90 %); `0x00` is "not defined".
pub fn parse_pre_eol_info(text: &str) -> Result<Option<u8>, ParseError> {
    const WHAT: &str = "mmc pre_eol_info";
    match parse_hex_byte(text.trim(), WHAT)? {
        0 => Ok(None),
        v @ 1..=3 => Ok(Some(v)),
        v => Err(ParseError::new(
            WHAT,
            format!("{v:#04x} is reserved (above 0x03)"),
        )),
    }
}

fn parse_hex_byte(field: &str, what: &'static str) -> Result<u8, ParseError> {
    let hex = field.strip_prefix("0x").ok_or_else(|| {
        ParseError::new(what, format!("expected 0x-prefixed hex, found {field:?}"))
    })?;
    u8::from_str_radix(hex, 16)
        .map_err(|e| ParseError::new(what, format!("{field:?} is not a hex byte: {e}")))
}

/// The raw text of one mmc card's attributes (`None`: file absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MmcAttributes {
    pub card_type: Option<String>,
    pub name: Option<String>,
    pub manfid: Option<String>,
    pub oemid: Option<String>,
    pub date: Option<String>,
    pub life_time: Option<String>,
    pub pre_eol_info: Option<String>,
}

/// One card's [`PiStorage`], or `None` for a card that is not storage
/// (SDIO). `device` is its block device or card id.
pub fn storage_from_attributes(
    device: &str,
    attrs: &MmcAttributes,
) -> Result<Option<PiStorage>, ParseError> {
    let Some(kind) = attrs.card_type.as_deref().and_then(parse_mmc_type) else {
        return Ok(None);
    };
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (life_time_a, life_time_b) = match attrs.life_time.as_deref() {
        Some(t) => parse_life_time(t)?,
        None => (None, None),
    };
    let pre_eol_info = match attrs.pre_eol_info.as_deref() {
        Some(t) => parse_pre_eol_info(t)?,
        None => None,
    };
    Ok(Some(PiStorage {
        device: device.to_owned(),
        kind: kind.to_owned(),
        name: text(&attrs.name),
        manfid: text(&attrs.manfid),
        oemid: text(&attrs.oemid),
        date: text(&attrs.date),
        life_time_a,
        life_time_b,
        pre_eol_info,
    }))
}

/// The value of a one-line `key=value` answer, `key` checked.
fn expect_key<'a>(text: &'a str, key: &str, what: &'static str) -> Result<&'a str, ParseError> {
    let line = single_line(text, what)?;
    match line.split_once('=') {
        Some((k, v)) if k == key => Ok(v.trim()),
        _ => Err(ParseError::new(
            what,
            format!("expected {key}=..., found {line:?}"),
        )),
    }
}

fn single_line<'a>(text: &'a str, what: &'static str) -> Result<&'a str, ParseError> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    match (lines.next(), lines.next()) {
        (Some(line), None) => Ok(line),
        (None, _) => Err(ParseError::new(what, "empty answer")),
        (Some(_), Some(extra)) => Err(ParseError::new(
            what,
            format!("expected one line, found another: {extra:?}"),
        )),
    }
}

fn parse_finite(number: &str, what: &'static str) -> Result<f64, ParseError> {
    number
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| ParseError::new(what, format!("{number:?} is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination_of_the_eight_throttle_bits_decodes_to_its_flags() {
        use throttle_bits as b;
        let bits = [
            b::UNDERVOLTAGE,
            b::ARM_FREQ_CAPPED,
            b::THROTTLED,
            b::SOFT_TEMP_LIMIT,
            b::UNDERVOLTAGE_OCCURRED,
            b::FREQ_CAP_OCCURRED,
            b::THROTTLED_OCCURRED,
            b::SOFT_TEMP_OCCURRED,
        ];
        for combination in 0u32..256 {
            let word = bits
                .iter()
                .enumerate()
                .filter(|(i, _)| combination & (1 << i) != 0)
                .fold(0, |w, (_, bit)| w | bit);
            // Through the text parsers, as vcgencmd and sysfs print it.
            let parsed = parse_get_throttled(&format!("throttled={word:#x}\n")).unwrap();
            assert_eq!(parsed, word);
            assert_eq!(parse_throttled_sysfs(&format!("{word:x}\n")).unwrap(), word);
            let m = decode_throttled(parsed);
            let flags = [
                m.undervoltage,
                m.arm_freq_capped,
                m.throttled,
                m.soft_temp_limit,
                m.undervoltage_occurred,
                m.freq_cap_occurred,
                m.throttled_occurred,
                m.soft_temp_occurred,
            ];
            for (i, flag) in flags.iter().enumerate() {
                assert_eq!(*flag, combination & (1 << i) != 0, "word {word:#x} bit {i}");
            }
            assert_eq!(m.throttled_raw, Some(word));
        }
    }

    #[test]
    fn throttle_word_of_the_docs_example_is_undervoltage_now_and_since_boot() {
        let m = decode_throttled(parse_get_throttled("throttled=0x50005").unwrap());
        assert!(m.undervoltage && m.throttled && m.undervoltage_occurred && m.throttled_occurred);
        assert!(!m.arm_freq_capped && !m.soft_temp_limit && !m.freq_cap_occurred);
        // Bits Spectra does not name are kept in the raw word.
        let m = decode_throttled(parse_get_throttled("throttled=0x100000").unwrap());
        assert_eq!(
            m,
            ThrottleMetric {
                throttled_raw: Some(0x10_0000),
                ..Default::default()
            }
        );
    }

    #[test]
    fn garbage_throttle_answers_are_errors_that_name_the_input() {
        for bad in [
            "",
            "throttled=",
            "throttled=50005",
            "throttled=0xZZ",
            "temp=1",
            "throttled=0x1ffffffff",
        ] {
            let err = parse_get_throttled(bad).unwrap_err();
            assert_eq!(err.what, "vcgencmd get_throttled", "{bad:?}");
        }
        let err = parse_throttled_sysfs("nope").unwrap_err();
        assert!(err.message.contains("\"nope\""), "{err}");
    }

    #[test]
    fn parses_clocks_and_treats_a_zero_clock_as_absent() {
        assert_eq!(
            parse_measure_clock("frequency(48)=1500345728\n").unwrap(),
            Some(1_500_345_728)
        );
        assert_eq!(
            parse_measure_clock("frequency(1)=500000992").unwrap(),
            Some(500_000_992)
        );
        assert_eq!(parse_measure_clock("frequency(0)=0\n").unwrap(), None);
        for bad in [
            "",
            "volt=1.0V",
            "frequency(48)=fast",
            "frequency=12",
            "frequency(1)=-5",
        ] {
            assert!(parse_measure_clock(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_volts_and_treats_zero_volts_as_absent() {
        assert_eq!(parse_measure_volts("volt=0.8500V\n").unwrap(), Some(0.85));
        assert_eq!(parse_measure_volts("volt=1.1000V").unwrap(), Some(1.1));
        assert_eq!(parse_measure_volts("volt=0.0000V").unwrap(), None);
        for bad in [
            "volt=0.85",
            "volt=V",
            "volt=nanV",
            "temp=1V",
            "volt=0.8V\nvolt=0.9V",
        ] {
            assert!(parse_measure_volts(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_memory_split_in_bytes() {
        assert_eq!(parse_get_mem("gpu=76M\n", "gpu").unwrap(), 76 << 20);
        assert_eq!(parse_get_mem("arm=948M", "arm").unwrap(), 948 << 20);
        assert_eq!(parse_get_mem("arm=1G", "arm").unwrap(), 1 << 30);
        assert_eq!(parse_get_mem("gpu=512K", "gpu").unwrap(), 512 << 10);
        let err = parse_get_mem("gpu=76M", "arm").unwrap_err();
        assert!(err.message.contains("expected arm="), "{err}");
        for bad in ["gpu=M", "gpu=76T", "gpu=-1M", "gpu=99999999999999999999M"] {
            assert!(parse_get_mem(bad, "gpu").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_temperature_in_celsius() {
        assert_eq!(parse_measure_temp("temp=48.3'C\n").unwrap(), 48.3);
        assert_eq!(parse_measure_temp("temp=-2.0'C").unwrap(), -2.0);
        for bad in ["temp=48.3", "temp=hot'C", "temp=48.3C", "volt=1'C"] {
            assert!(parse_measure_temp(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pairs_pmic_currents_and_volts_by_rail_and_computes_watts() {
        let text = "   VDD_CORE_A current(7)=2.05584000A\n   3V3_SYS_A current(1)=0.05000000A\n   VDD_CORE_V volt(15)=0.86096720V\n   3V3_SYS_V volt(9)=3.30000000V\n      EXT5V_V volt(24)=5.14297600V\n";
        let rails = parse_pmic_read_adc(text).unwrap();
        let names: Vec<&str> = rails.iter().map(|r| r.rail.as_str()).collect();
        assert_eq!(names, ["VDD_CORE", "3V3_SYS", "EXT5V"]);
        assert_eq!(rails[0].amps, Some(2.05584));
        assert_eq!(rails[0].volts, Some(0.8609672));
        let core_watts = rails[0].watts.unwrap();
        assert!((core_watts - 2.05584 * 0.8609672).abs() < 1e-12);
        assert_eq!(
            (rails[2].volts, rails[2].amps, rails[2].watts),
            (Some(5.142976), None, None)
        );
        let total = sum_pmic_watts(&rails).unwrap();
        assert!((total - (core_watts + 0.05 * 3.3)).abs() < 1e-12);
        assert_eq!(sum_pmic_watts(&rails[2..]), None);
    }

    #[test]
    fn garbage_pmic_output_is_an_error_naming_the_line() {
        for bad in [
            "",
            "VDD_CORE_A",
            "VDD_CORE_A power(1)=2W",
            "VDD_CORE_A current(7)=2.0V",
            "X_V volt(1)=abcV",
        ] {
            let err = parse_pmic_read_adc(bad).unwrap_err();
            assert_eq!(err.what, "vcgencmd pmic_read_adc", "{bad:?}");
        }
        let err = parse_pmic_read_adc("VDD_CORE_A power(1)=2W").unwrap_err();
        assert!(err.message.contains("VDD_CORE_A power(1)=2W"), "{err}");
    }

    #[test]
    fn recognises_vcgencmd_refusals() {
        assert_eq!(
            parse_vcgencmd_error("error=2 error_msg=\"Invalid arguments\"\n").as_deref(),
            Some("Invalid arguments")
        );
        assert_eq!(
            parse_vcgencmd_error("error=1 error_msg=\"Command not registered\"").as_deref(),
            Some("Command not registered")
        );
        assert_eq!(parse_vcgencmd_error("error=5").as_deref(), Some("error 5"));
        assert_eq!(parse_vcgencmd_error("volt=0.85V"), None);
    }

    #[test]
    fn life_time_bands_cover_every_jedec_value() {
        assert_eq!(parse_life_time("0x01 0x02\n").unwrap(), (Some(1), Some(2)));
        assert_eq!(parse_life_time("0x00 0x0b").unwrap(), (None, Some(11)));
        assert_eq!(parse_life_time("0x0a 0x0A").unwrap(), (Some(10), Some(10)));
        for band in 1..=11u8 {
            let text = format!("{band:#04x} {band:#04x}");
            assert_eq!(parse_life_time(&text).unwrap(), (Some(band), Some(band)));
        }
        assert_eq!(life_time_used_pct(1), Some((0, Some(10))));
        assert_eq!(life_time_used_pct(9), Some((80, Some(90))));
        assert_eq!(life_time_used_pct(10), Some((90, Some(100))));
        assert_eq!(life_time_used_pct(11), Some((100, None)));
        assert_eq!(life_time_used_pct(0), None);
        for bad in [
            "",
            "0x01",
            "0x01 0x02 0x03",
            "1 2",
            "0x0c 0x01",
            "0xzz 0x01",
        ] {
            let err = parse_life_time(bad).unwrap_err();
            assert_eq!(err.what, "mmc life_time", "{bad:?}");
        }
    }

    #[test]
    fn pre_eol_info_levels() {
        assert_eq!(parse_pre_eol_info("0x01\n").unwrap(), Some(1));
        assert_eq!(parse_pre_eol_info("0x02").unwrap(), Some(2));
        assert_eq!(parse_pre_eol_info("0x03").unwrap(), Some(3));
        assert_eq!(parse_pre_eol_info("0x00").unwrap(), None);
        assert!(parse_pre_eol_info("0x04")
            .unwrap_err()
            .message
            .contains("reserved"));
        assert!(parse_pre_eol_info("normal").is_err());
    }

    #[test]
    fn device_tree_model_and_revision() {
        let model = parse_device_tree_model(b"Raspberry Pi 4 Model B Rev 1.4\0").unwrap();
        assert_eq!(model, "Raspberry Pi 4 Model B Rev 1.4");
        assert!(is_raspberry_pi(&model));
        let other = parse_device_tree_model(b"Pine64 RockPro64 v2.1\0").unwrap();
        assert!(!is_raspberry_pi(&other));
        assert!(parse_device_tree_model(b"\0").is_err());
        assert!(parse_device_tree_model(b"a\0b\0").is_err());
        assert!(parse_device_tree_model(&[0xff, 0xfe, 0]).is_err());
        assert_eq!(
            parse_device_tree_revision(&[0x00, 0xc0, 0x31, 0x14]).unwrap(),
            "c03114"
        );
        assert!(parse_device_tree_revision(&[0xc0, 0x31]).is_err());
        assert_eq!(
            parse_cpuinfo_revision(
                "Hardware\t: BCM2835\nRevision\t: 9000C1\nSerial\t\t: 00000000\n"
            ),
            Some("9000c1".to_owned())
        );
        assert_eq!(parse_cpuinfo_revision("processor\t: 0\n"), None);
    }

    #[test]
    fn sysfs_fallback_values() {
        assert_eq!(parse_millidegrees("48312\n").unwrap(), 48.312);
        assert!(parse_millidegrees("warm").is_err());
        assert_eq!(parse_cpufreq_khz("1500000\n").unwrap(), 1_500_000_000);
        assert!(parse_cpufreq_khz("").is_err());
    }

    #[test]
    fn sdio_cards_are_not_storage_and_emmc_wear_is_parsed() {
        let sdio = MmcAttributes {
            card_type: Some("SDIO\n".into()),
            ..Default::default()
        };
        assert_eq!(storage_from_attributes("mmc1:0001", &sdio).unwrap(), None);
        let emmc = MmcAttributes {
            card_type: Some("MMC\n".into()),
            name: Some("BJTD4R\n".into()),
            manfid: Some("0x000015\n".into()),
            life_time: Some("0x02 0x01\n".into()),
            pre_eol_info: Some("0x01\n".into()),
            ..Default::default()
        };
        let s = storage_from_attributes("mmcblk0", &emmc).unwrap().unwrap();
        assert_eq!(
            (s.kind.as_str(), s.name.as_deref()),
            ("emmc", Some("BJTD4R"))
        );
        assert_eq!(
            (s.life_time_a, s.life_time_b, s.pre_eol_info),
            (Some(2), Some(1), Some(1))
        );
        let broken = MmcAttributes {
            life_time: Some("garbage".into()),
            ..emmc
        };
        assert_eq!(
            storage_from_attributes("mmcblk0", &broken)
                .unwrap_err()
                .what,
            "mmc life_time"
        );
    }
}
