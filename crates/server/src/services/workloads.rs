//! Per-workload history (issue: unified workloads). An agent sends one
//! `container_list` envelope holding every container, LXC and VM; the store
//! keeps that as a snapshot, which answers "what ran at 03:12" but gives no
//! chart of one container's CPU over a week. So at ingest each workload
//! also becomes a `workload` envelope (entity `<source>/<id>`), stored as a
//! per-entity series like a disk or an interface: numbers become series,
//! text (state, health, image) becomes attributes whose changes are kept.
//!
//! Two numbers are added so a chart or an alert can see a state change
//! without parsing text: `running` (1 when `state` is `running`) and
//! `healthy` (1 healthy, 0 unhealthy, absent without a health check).

use serde_json::{Map, Value};
use spectra_protocol::{metric_type, RawEnvelope};

/// Appends one `workload` envelope per workload of every `container_list`
/// envelope in `batch`. Malformed lists are left alone (they were already
/// validated; anything without an `id` is skipped).
pub fn add_workload_series(batch: &mut Vec<RawEnvelope>) {
    let mut derived = Vec::new();
    for envelope in batch.iter() {
        if envelope.metric_type != metric_type::CONTAINER_LIST {
            continue;
        }
        let Some(containers) = envelope.data.get("containers").and_then(Value::as_array) else {
            continue;
        };
        for workload in containers {
            if let Some(data) = workload_data(workload) {
                derived.push(RawEnvelope {
                    metric_type: metric_type::WORKLOAD.to_owned(),
                    timestamp: envelope.timestamp,
                    hostname: envelope.hostname.clone(),
                    data,
                });
            }
        }
    }
    batch.extend(derived);
}

fn workload_data(workload: &Value) -> Option<Value> {
    let object = workload.as_object()?;
    let id = object.get("id")?.as_str()?;
    let source = object
        .get("source")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let mut data = Map::with_capacity(object.len() + 3);
    data.insert("workload".into(), Value::from(format!("{source}/{id}")));
    for (key, value) in object {
        data.insert(key.clone(), value.clone());
    }
    if let Some(state) = object.get("state").and_then(Value::as_str) {
        data.insert("running".into(), Value::from(u8::from(state == "running")));
    }
    match object.get("health").and_then(Value::as_str) {
        Some("healthy") => {
            data.insert("healthy".into(), Value::from(1u8));
        }
        Some("unhealthy") => {
            data.insert("healthy".into(), Value::from(0u8));
        }
        // "starting", "none" or no health check: no claim either way.
        _ => {}
    }
    Some(Value::Object(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(metric_type: &str, data: Value) -> RawEnvelope {
        RawEnvelope {
            metric_type: metric_type.into(),
            timestamp: "2026-11-25T10:00:00Z".parse().unwrap(),
            hostname: "h".into(),
            data,
        }
    }

    #[test]
    fn each_workload_becomes_an_entity_with_state_numbers() {
        let mut batch = vec![
            envelope("cpu", json!({"usage": 1.0})),
            envelope(
                "container_list",
                json!({"containers": [
                    {"id": "abc", "name": "web", "image": "nginx", "state": "running", "source": "docker", "kind": "container", "cpu_percent": 2.5, "memory_bytes": 100, "net_rx_bytes": 1, "net_tx_bytes": 2, "health": "unhealthy", "restarts": 3},
                    {"id": "101", "name": "db", "image": "", "state": "stopped", "source": "proxmox", "kind": "lxc", "cpu_percent": 0.0, "memory_bytes": 0, "net_rx_bytes": 0, "net_tx_bytes": 0},
                    {"name": "no id"}
                ]}),
            ),
        ];
        add_workload_series(&mut batch);
        assert_eq!(
            batch.len(),
            4,
            "two workloads derived, the one without id skipped"
        );
        let web = &batch[2];
        assert_eq!(web.metric_type, "workload");
        assert_eq!(web.timestamp, batch[1].timestamp);
        assert_eq!(web.data["workload"], "docker/abc");
        assert_eq!(web.data["running"], 1);
        assert_eq!(web.data["healthy"], 0);
        assert_eq!(web.data["restarts"], 3);
        assert_eq!(web.data["cpu_percent"], 2.5);
        let db = &batch[3];
        assert_eq!(db.data["workload"], "proxmox/101");
        assert_eq!(db.data["running"], 0);
        assert!(
            db.data.get("healthy").is_none(),
            "no health check, no claim"
        );
        assert_eq!(
            metric_type::entity_field("workload"),
            Some("workload"),
            "the store keys the series by it"
        );
    }

    #[test]
    fn batches_without_container_lists_are_untouched() {
        let mut batch = vec![envelope("container_list", json!({"containers": "nope"}))];
        add_workload_series(&mut batch);
        assert_eq!(batch.len(), 1);
    }
}
