//! Query strings and the parameter parsers behind them, on arbitrary text.
//!
//! The input is used twice: as a whole query string (deserialised into every
//! handler's query struct, through axum's `Query` and through
//! `serde_urlencoded` directly, then each value through the parameter
//! parsers), and as one raw value (through the same parsers and the
//! diagnostics validators).
//!
//! Properties beyond "never panics":
//! - `validate_target` never accepts an option (`-x`), whitespace, control
//!   characters or shell metacharacters, nor more than 253 characters;
//! - `split_host_port` returns a slice of its input and never port 0;
//! - `validate_abs_path` accepts only absolute paths without `..`;
//! - a history window is ordered, its step at least 1 s, and a `range=`
//!   window at most `MAX_RANGE` long.
#![no_main]

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::Query;
use axum::http::Uri;
use chrono::{DateTime, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use spectra_protocol::{
    split_host_port, validate_abs_path, validate_container_ref, validate_target, LogLevel,
    NetworkAction,
};
use spectra_server::http::agent_api::{parse_wait, PollQuery};
use spectra_server::http::agents::{parse_history_params, HistoryParams, MAX_RANGE};
use spectra_server::http::commands::{
    parse_opt_number, parse_since, AuditParams, DiskQuery, ListQuery, LogsQuery, NetworkQuery,
    WaitQuery,
};
use spectra_server::services::ingest::{validate_batch_id, BodyEncoding};

/// Characters a POSIX shell (or a Windows `cmd`) gives a meaning to.
const SHELL_META: &[char] = &[
    ';', '&', '|', '$', '`', '(', ')', '<', '>', '\'', '"', '\\', '*', '?', '[', ']', '{', '}',
    '!', '#', '~', '=', '%', '^', ',', '/', '+', '@',
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    check_query_string(text);
    check_value("value", text);
});

fn check_query_string(query: &str) {
    // Through axum's own extractor, when the text can be a URI's query.
    if let Ok(uri) = format!("/p?{query}").parse::<Uri>() {
        let axum_history = Query::<HistoryParams>::try_from_uri(&uri);
        let direct = serde_urlencoded::from_str::<HistoryParams>(uri.query().unwrap_or(""));
        assert_eq!(axum_history.is_ok(), direct.is_ok());
        drop(Query::<PollQuery>::try_from_uri(&uri));
        drop(Query::<LogsQuery>::try_from_uri(&uri));
        drop(Query::<NetworkQuery>::try_from_uri(&uri));
    }

    if let Ok(history) = serde_urlencoded::from_str::<HistoryParams>(query) {
        check_history(&history);
    }
    deserialize::<PollQuery>(query);
    deserialize::<LogsQuery>(query);
    deserialize::<DiskQuery>(query);
    deserialize::<NetworkQuery>(query);
    deserialize::<WaitQuery>(query);
    deserialize::<ListQuery>(query);
    deserialize::<AuditParams>(query);

    // The seed's metrics endpoint reads `batch_id` from a plain map.
    if let Ok(map) = serde_urlencoded::from_str::<HashMap<String, String>>(query) {
        for (name, value) in &map {
            check_value(name, value);
        }
    }
}

fn deserialize<T: DeserializeOwned>(query: &str) {
    drop(serde_urlencoded::from_str::<T>(query));
}

/// A fixed "now", so that a crash reproduces.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn check_history(p: &HistoryParams) {
    let Ok(w) = parse_history_params(p, now()) else {
        return;
    };
    assert!(w.start <= w.end, "{p:?} gave {w:?}");
    if let Some(step) = w.step {
        assert!(step >= Duration::from_secs(1), "{p:?} gave {w:?}");
    }
    if p.range.as_deref().is_some_and(|r| !r.is_empty()) {
        let len = (w.end - w.start).to_std().unwrap_or(Duration::MAX);
        assert!(len <= MAX_RANGE, "{p:?} gave {w:?}");
    }
}

fn check_value(name: &str, value: &str) {
    drop(parse_wait(name, value));
    drop(parse_since(Some(value)));
    drop(parse_opt_number::<u8>(name, Some(value)));
    drop(parse_opt_number::<u16>(name, Some(value)));
    drop(parse_opt_number::<u32>(name, Some(value)));
    drop(parse_opt_number::<u64>(name, Some(value)));
    drop(parse_opt_number::<usize>(name, Some(value)));
    drop(parse_opt_number::<i64>(name, Some(value)));
    let _ = LogLevel::parse(value);
    let _ = NetworkAction::parse(value);
    drop(BodyEncoding::parse_header(Some(value)));
    drop(validate_batch_id(value));
    drop(validate_container_ref(value));

    check_target(value);
    if let Ok((host, port)) = split_host_port(value) {
        assert_ne!(port, Some(0), "split_host_port({value:?})");
        assert!(
            value.contains(host),
            "split_host_port({value:?}) gave host {host:?}"
        );
        check_target(host);
    }

    if validate_abs_path(value).is_ok() {
        let b = value.as_bytes();
        let windows = b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':';
        assert!(value.starts_with('/') || windows, "accepted {value:?}");
        assert!(
            !value.split(['/', '\\']).any(|c| c == ".."),
            "accepted {value:?}"
        );
        assert!(!value.chars().any(char::is_control), "accepted {value:?}");
    }
}

fn check_target(target: &str) {
    if validate_target(target).is_err() {
        return;
    }
    assert!(!target.starts_with('-'), "accepted target {target:?}");
    assert!(
        target.len() <= 253,
        "accepted a {}-byte target",
        target.len()
    );
    assert!(
        !target
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || SHELL_META.contains(&c)),
        "accepted target {target:?}"
    );
}
