//! Envelope and command decoding on arbitrary bytes: what the server does
//! with a metrics batch body (after decompression) and a command body, and
//! what the agent does with a command it is handed.
//!
//! Properties beyond "never panics":
//! - `MetricData::validate_value` (what ingest checks) and
//!   `RawEnvelope::into_typed` (what readers decode) accept exactly the
//!   same payloads, so nothing stored is later undecodable;
//! - a decoded payload survives `to_value` -> `from_value` unchanged, so what
//!   an agent serialises the server reads back as the same thing;
//! - a request accepted by `CommandRequest::from_parts` passes `validate`
//!   and round-trips through its own `payload()`, and its user-set strings
//!   (network targets, disk paths) can never become options or shell text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use spectra_protocol::{
    metric_type, Command, CommandRequest, CommandResult, CommandType, MetricData, NetworkAction,
    RawEnvelope, RegisterRequest,
};

/// Every `type` the server knows a payload shape for, plus one it does not.
const METRIC_TYPES: &[&str] = &[
    metric_type::CPU,
    metric_type::MEMORY,
    metric_type::DISK,
    metric_type::DISK_IO,
    metric_type::NETWORK,
    metric_type::PROCESS_LIST,
    metric_type::SERVICE_LIST,
    metric_type::TEMPERATURE,
    metric_type::WIFI,
    metric_type::CONTAINER_LIST,
    metric_type::SYSTEM,
    metric_type::APPLICATION_LIST,
    metric_type::UPDATES,
    metric_type::THROTTLE,
    metric_type::CLOCK,
    metric_type::VOLTAGE,
    metric_type::GPU,
    metric_type::PI_HEALTH,
    metric_type::COLLECTOR_STATUS,
    metric_type::AGENT,
    "not_a_known_type",
];

fuzz_target!(|data: &[u8]| {
    // A batch exactly as ingest parses it.
    if let Ok(batch) = serde_json::from_slice::<Vec<RawEnvelope>>(data) {
        for envelope in batch {
            check_payload(&envelope.metric_type.clone(), &envelope.data);
            let typed = envelope.into_typed();
            drop(typed);
        }
    }

    // The other JSON bodies that cross the wire.
    drop(serde_json::from_slice::<Command>(data));
    drop(serde_json::from_slice::<CommandResult>(data));
    drop(serde_json::from_slice::<RegisterRequest>(data));

    // Any JSON value as every metric payload and every command payload, so
    // the typed decoders are reached without a valid envelope around them.
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for t in METRIC_TYPES {
        check_payload(t, &value);
    }
    for t in CommandType::ALL {
        check_command(t.as_str(), &value);
    }
    // `{"type": ..., "payload": ...}` as `POST /api/v1/agents/{id}/commands`
    // carries it.
    if let Some(Value::String(t)) = value.get("type") {
        check_command(t, value.get("payload").unwrap_or(&Value::Null));
    }
});

fn check_payload(metric_type: &str, value: &Value) {
    let valid = MetricData::validate_value(metric_type, value).is_ok();
    let typed = MetricData::from_value(metric_type, value.clone());
    assert_eq!(
        valid,
        typed.is_ok(),
        "validate_value and from_value disagree on a `{metric_type}` payload"
    );
    let Ok(typed) = typed else { return };
    let wire = serde_json::to_value(&typed).expect("a decoded payload serialises");
    let again = MetricData::from_value(metric_type, wire)
        .unwrap_or_else(|e| panic!("a re-serialised `{metric_type}` payload is refused: {e}"));
    assert_eq!(
        typed, again,
        "`{metric_type}` payload changed on a round trip"
    );
}

fn check_command(command_type: &str, payload: &Value) {
    let Ok(request) = CommandRequest::from_parts(command_type, payload) else {
        return;
    };
    assert_eq!(request.command_type().as_str(), command_type);
    assert!(
        request.validate().is_ok(),
        "from_parts accepted {request:?}"
    );
    let again = CommandRequest::from_parts(command_type, &request.payload())
        .unwrap_or_else(|e| panic!("{request:?} does not survive its own payload: {e}"));
    assert_eq!(request, again);
    match &request {
        CommandRequest::NetworkDiag(r) => {
            if let Some(t) = &r.target {
                // Every action hands `target` (or its host part) to a
                // resolver or a socket; none may look like an option.
                let host = match r.action {
                    NetworkAction::Connect => spectra_protocol::split_host_port(t)
                        .map(|(h, _)| h)
                        .unwrap_or_else(|e| panic!("accepted connect target {t:?}: {e}")),
                    _ => t.as_str(),
                };
                if r.action != NetworkAction::Netstat {
                    assert!(!host.starts_with('-'), "accepted target {t:?}");
                    assert!(
                        !host.chars().any(|c| c.is_whitespace() || c.is_control()),
                        "accepted target {t:?}"
                    );
                }
            }
        }
        CommandRequest::DiskUsage(r) => {
            if let Some(p) = &r.path {
                assert!(
                    p.starts_with('/') || p.get(1..2) == Some(":"),
                    "accepted relative path {p:?}"
                );
                assert!(
                    !p.split(['/', '\\']).any(|c| c == ".."),
                    "accepted path {p:?}"
                );
            }
        }
        CommandRequest::FetchLogs(r) => {
            if let Some(unit) = &r.unit {
                assert!(!unit.starts_with('-'), "accepted unit {unit:?}");
            }
            if let Some(c) = &r.container {
                assert!(!c.starts_with('-'), "accepted container {c:?}");
            }
        }
        CommandRequest::ListMounts | CommandRequest::RestartAgent => {}
    }
}
