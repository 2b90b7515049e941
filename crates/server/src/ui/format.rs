//! Formatting for people: sizes, rates, durations, percentages, times.
//! Pure functions, used by handlers and templates alike.

use chrono::{DateTime, Utc};

/// Percent-encodes everything but unreserved characters (RFC 3986 §2.3),
/// for a value placed in a query string.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if !n.is_finite() {
        return "—".into();
    }
    let mut value = n.abs();
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let sign = if n < 0.0 { "-" } else { "" };
    if unit == 0 {
        format!("{sign}{value:.0} B")
    } else if value < 10.0 {
        format!("{sign}{value:.1} {}", UNITS[unit])
    } else {
        format!("{sign}{value:.0} {}", UNITS[unit])
    }
}

/// A byte rate: `1.2 MiB/s`.
pub fn rate(bytes_per_s: f64) -> String {
    format!("{}/s", bytes(bytes_per_s))
}

/// A percentage with one decimal below 10 and none above: `4.2 %`, `57 %`.
pub fn pct(p: f64) -> String {
    if !p.is_finite() {
        "—".into()
    } else if p < 10.0 {
        format!("{p:.1} %")
    } else {
        format!("{p:.0} %")
    }
}

/// A duration in its two largest units: `3d 4h`, `5h 12m`, `42s`.
pub fn duration_secs(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "—".into();
    }
    let s = secs as u64;
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {}s", s % 60)
    } else {
        format!("{s}s")
    }
}

/// How long ago `t` was, from `now`: `12s ago`, `3h 5m ago`, `never`.
pub fn ago(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        None => "never".into(),
        Some(t) => {
            let secs = (now - t).num_seconds();
            if secs < 0 {
                "just now".into()
            } else {
                format!("{} ago", duration_secs(secs as f64))
            }
        }
    }
}

/// A UTC time for tables: `2026-11-25 10:00:05Z`.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// An SVG polyline's `points` for a sparkline `width`×`height` (the SVG's
/// own units), values scaled between 0 and `max` (percentages: 100).
/// `None` values break nothing: they are skipped.
pub fn sparkline_points(values: &[Option<f64>], width: f64, height: f64, max: f64) -> String {
    let n = values.len();
    if n < 2 || max <= 0.0 {
        return String::new();
    }
    let mut out = String::with_capacity(n * 10);
    for (i, v) in values.iter().enumerate() {
        let Some(v) = v.filter(|v| v.is_finite()) else {
            continue;
        };
        let x = i as f64 * width / (n - 1) as f64;
        let y = height - (v.clamp(0.0, max) / max) * height;
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&format!("{x:.1},{y:.1}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(50.0 * 1024.0 * 1024.0 * 1024.0), "50 GiB");
        assert_eq!(rate(2.5 * 1024.0 * 1024.0), "2.5 MiB/s");
        assert_eq!(bytes(f64::NAN), "—");
    }

    #[test]
    fn durations_keep_two_units() {
        assert_eq!(duration_secs(42.0), "42s");
        assert_eq!(duration_secs(3.0 * 3600.0 + 125.0), "3h 2m");
        assert_eq!(duration_secs(3.0 * 86_400.0 + 4.0 * 3600.0 + 59.0), "3d 4h");
        assert_eq!(duration_secs(-1.0), "—");
    }

    #[test]
    fn percentages_and_encoding() {
        assert_eq!(pct(4.24), "4.2 %");
        assert_eq!(pct(57.4), "57 %");
        assert_eq!(url_encode("/a b?c=d&e"), "%2Fa%20b%3Fc%3Dd%26e");
    }

    #[test]
    fn sparklines_scale_and_skip_gaps() {
        let p = sparkline_points(&[Some(0.0), None, Some(100.0)], 60.0, 20.0, 100.0);
        assert_eq!(p, "0.0,20.0 60.0,0.0");
        assert_eq!(sparkline_points(&[Some(1.0)], 60.0, 20.0, 100.0), "");
        // Values above max are clamped to the top.
        assert_eq!(
            sparkline_points(&[Some(200.0), Some(50.0)], 10.0, 10.0, 100.0),
            "0.0,0.0 10.0,5.0"
        );
    }
}
