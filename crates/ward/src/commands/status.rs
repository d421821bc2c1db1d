//! `ward status`: juju's tables, or `juju status --format=json`'s keys.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::api;
use crate::cli::StatusFormat;
use crate::client::Client;
use crate::error::{Context, Result};

use super::{juju_time, table};

fn info(s: &api::StatusInfo) -> Value {
    json!({"current": s.status, "message": s.message, "since": juju_time(s.since)})
}

/// The status as `juju status --format=json` shapes it.
pub(crate) fn juju_json(s: &api::Status) -> Value {
    let mut apps = Map::new();
    for a in &s.applications {
        let mut units = Map::new();
        for u in &a.units {
            let mut agent = info(&u.agent);
            agent["version"] = json!(s.juju_version);
            units.insert(
                u.name.clone(),
                json!({
                    "workload-status": info(&u.workload),
                    "juju-status": agent,
                    "leader": u.leader,
                    "address": u.address,
                    "public-address": u.address,
                    "open-ports": u.ports,
                }),
            );
        }
        let mut rels: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for r in &s.relations {
            let mine: Vec<&String> = r
                .endpoints
                .iter()
                .filter(|e| e.split(':').next() == Some(a.name.as_str()))
                .collect();
            for e in mine {
                let ep = e.split_once(':').map(|x| x.1).unwrap_or_default();
                let other = r
                    .endpoints
                    .iter()
                    .find(|o| *o != e)
                    .unwrap_or(e)
                    .split(':')
                    .next()
                    .unwrap_or_default();
                rels.entry(ep.to_string()).or_default().push(json!({
                    "related-application": other,
                    "interface": r.interface,
                    "scope": "global",
                }));
            }
        }
        apps.insert(
            a.name.clone(),
            json!({
                "charm": a.charm,
                "charm-origin": "local",
                "charm-name": a.charm,
                "charm-rev": a.charm_rev,
                "exposed": false,
                "version": a.version,
                "scale": a.units.len(),
                "application-status": info(&a.status),
                "relations": rels,
                "units": units,
            }),
        );
    }
    json!({
        "model": {
            "name": s.model,
            "type": "iaas",
            "controller": "ward",
            "cloud": "local",
            "region": "localhost",
            "version": s.juju_version,
            "model-status": {"current": "available", "since": juju_time(s.time_ms)},
            "sla": "unsupported",
        },
        "machines": {},
        "applications": apps,
        "controller": {"timestamp": juju_time(s.time_ms).split(' ').next_back().unwrap_or_default()},
    })
}

/// juju's tabular status.
pub(crate) fn tabular(s: &api::Status) -> String {
    let ts = juju_time(s.time_ms);
    let clock = ts.split(' ').next_back().unwrap_or_default().to_string();
    let mut out = table(
        &[
            vec![
                "Model",
                "Controller",
                "Cloud/Region",
                "Version",
                "SLA",
                "Timestamp",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            vec![
                s.model.clone(),
                "ward".into(),
                "local/localhost".into(),
                s.juju_version.clone(),
                "unsupported".into(),
                clock,
            ],
        ],
        &[],
    );
    if s.applications.is_empty() {
        out.push_str(&format!("\nModel {:?} is empty.\n", s.model));
        return out;
    }
    let mut apps = vec![[
        "App", "Version", "Status", "Scale", "Charm", "Channel", "Rev", "Exposed", "Message",
    ]
    .map(String::from)
    .to_vec()];
    for a in &s.applications {
        apps.push(vec![
            a.name.clone(),
            a.version.clone(),
            a.status.status.clone(),
            a.units.len().to_string(),
            a.charm.clone(),
            "local".into(),
            a.charm_rev.to_string(),
            "no".into(),
            a.status.message.clone(),
        ]);
    }
    out.push('\n');
    out.push_str(&table(&apps, &[3, 6]));
    let mut units = vec![["Unit", "Workload", "Agent", "Address", "Ports", "Message"]
        .map(String::from)
        .to_vec()];
    for a in &s.applications {
        for u in &a.units {
            units.push(vec![
                format!("{}{}", u.name, if u.leader { "*" } else { "" }),
                u.workload.status.clone(),
                u.agent.status.clone(),
                u.address.clone(),
                u.ports.join(","),
                u.workload.message.clone(),
            ]);
        }
    }
    if units.len() > 1 {
        out.push('\n');
        out.push_str(&table(&units, &[]));
    }
    if !s.relations.is_empty() {
        let mut rels = vec![[
            "Integration provider",
            "Requirer",
            "Interface",
            "Type",
            "Message",
        ]
        .map(String::from)
        .to_vec()];
        for r in &s.relations {
            let a = r.endpoints.first().cloned().unwrap_or_default();
            let b = r.endpoints.get(1).cloned().unwrap_or_else(|| a.clone());
            rels.push(vec![
                a,
                b,
                r.interface.clone(),
                r.kind.clone(),
                if r.life == "alive" {
                    String::new()
                } else {
                    r.life.clone()
                },
            ]);
        }
        out.push('\n');
        out.push_str(&table(&rels, &[]));
    }
    out
}

fn render(s: &api::Status, format: StatusFormat) -> Result<String> {
    Ok(match format {
        StatusFormat::Tabular => tabular(s),
        StatusFormat::Json => {
            serde_json::to_string(&juju_json(s)).failed(|| "writing JSON".into())? + "\n"
        }
        StatusFormat::Yaml => {
            serde_yaml_ng::to_string(&juju_json(s)).failed(|| "writing YAML".into())?
        }
    })
}

pub(crate) async fn run(client: &Client, format: StatusFormat, watch: bool) -> Result<()> {
    loop {
        let s: api::Status = client.get("/v1/status").await?;
        let text = render(&s, format)?;
        if watch {
            // Clear the screen and redraw, as `watch` does.
            print!("\x1b[2J\x1b[H{text}");
        } else {
            print!("{text}");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
