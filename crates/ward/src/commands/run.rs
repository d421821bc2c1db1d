//! `ward run`: an action on a unit, waiting for its result.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::api;
use crate::cli::DataFormat;
use crate::client::Client;
use crate::error::{CliError, Context, Result};

use super::{juju_timing, print_data};

/// The task as `juju run --format=json` shapes it (keyed by unit).
pub(crate) fn juju_shape(t: &api::Task) -> Value {
    let mut results = match &t.results {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if !results.contains_key("return-code") && matches!(t.status.as_str(), "completed" | "failed") {
        let code = if t.status == "completed" { 0 } else { 1 };
        results.insert("return-code".into(), json!(code));
    }
    let mut timing = Map::new();
    timing.insert("enqueued".into(), json!(juju_timing(t.enqueued)));
    if let Some(s) = t.started {
        timing.insert("started".into(), json!(juju_timing(s)));
    }
    if let Some(c) = t.completed {
        timing.insert("completed".into(), json!(juju_timing(c)));
    }
    let mut entry = json!({
        "id": t.id.to_string(),
        "status": t.status,
        "results": results,
        "timing": timing,
        "unit": t.unit,
    });
    if !t.message.is_empty() {
        entry["message"] = json!(t.message);
    }
    if !t.log.is_empty() {
        entry["log"] = json!(t
            .log
            .iter()
            .map(|(ms, m)| format!("{} {m}", juju_timing(*ms)))
            .collect::<Vec<_>>());
    }
    json!({ t.unit.clone(): entry })
}

pub(crate) async fn run(
    client: &Client,
    unit: String,
    action: String,
    params: Vec<String>,
    format: Option<DataFormat>,
    wait: Duration,
) -> Result<()> {
    if !unit.contains('/') {
        return Err(CliError::usage(format!(
            "{unit:?} is not a unit: give app/N, or app/leader for the application's leader"
        )));
    }
    if let Some(bad) = params.iter().find(|p| !p.contains('=')) {
        return Err(CliError::usage(format!(
            "parameter {bad:?} is not key=value"
        )));
    }
    let t: api::Task = client
        .post(
            "/v1/run",
            &api::Run {
                unit,
                action,
                params,
                wait_ms: wait.as_millis().min(u64::MAX as u128) as u64,
            },
        )
        .await?;
    match format {
        Some(f) => print_data(&juju_shape(&t), f)?,
        None => {
            for (ms, m) in &t.log {
                eprintln!("{} {m}", super::juju_time(*ms));
            }
            if let Value::Object(m) = &t.results {
                if !m.is_empty() {
                    print!(
                        "{}",
                        serde_yaml_ng::to_string(&t.results).failed(|| "writing YAML".into())?
                    );
                }
            }
        }
    }
    match t.status.as_str() {
        "completed" => Ok(()),
        "failed" | "aborted" => Err(CliError::failed(format!(
            "action {:?} on {} {}: {}",
            t.name,
            t.unit,
            t.status,
            if t.message.is_empty() {
                "the action exited non-zero; `ward debug-log --replay --include <unit>` shows why"
            } else {
                &t.message
            }
        ))),
        other => Err(CliError::failed(format!(
            "timed out after {} waiting for action {:?} (task {}) on {}: it is still {other}; it will run when the unit gets to it. Wait longer with --wait",
            humantime::format_duration(wait),
            t.name,
            t.id,
            t.unit
        ))),
    }
}
