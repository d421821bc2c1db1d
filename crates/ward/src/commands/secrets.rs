//! `ward secrets` and `ward show-secret`.

use serde_json::{json, Map, Value};

use crate::api;
use crate::cli::DataFormat;
use crate::client::Client;
use crate::error::Result;

use super::{juju_time, print_data, table};

fn id_of(uri: &str) -> &str {
    uri.rsplit(['/', ':']).next().unwrap_or(uri)
}

fn entry(s: &api::Secret) -> Value {
    let mut e = json!({
        "revision": s.revision,
        "owner": s.owner,
        "owner-kind": s.owner_kind,
        "rotation": s.rotation,
        "updated": juju_time(s.updated),
    });
    if let Some(l) = &s.label {
        e["label"] = json!(l);
    }
    if let Some(d) = &s.description {
        e["description"] = json!(d);
    }
    if !s.grants.is_empty() {
        e["access"] = json!(s
            .grants
            .iter()
            .map(|(rel, target)| json!({"target": target, "relation-id": rel}))
            .collect::<Vec<_>>());
    }
    e
}

pub(crate) async fn list(client: &Client, format: Option<DataFormat>) -> Result<()> {
    let all: Vec<api::Secret> = client.get("/v1/secrets").await?;
    match format {
        Some(f) => {
            let m: Map<String, Value> = all
                .iter()
                .map(|s| (id_of(&s.uri).to_string(), entry(s)))
                .collect();
            print_data(&m, f)
        }
        None => {
            if all.is_empty() {
                println!("No secrets to display.");
                return Ok(());
            }
            let mut rows = vec![[
                "ID",
                "Name",
                "Owner",
                "Rotation",
                "Revision",
                "Last updated",
            ]
            .map(String::from)
            .to_vec()];
            for s in &all {
                rows.push(vec![
                    s.uri.clone(),
                    s.label.clone().unwrap_or_else(|| "-".into()),
                    s.owner.clone(),
                    s.rotation.clone(),
                    s.revision.to_string(),
                    juju_time(s.updated),
                ]);
            }
            print!("{}", table(&rows, &[4]));
            Ok(())
        }
    }
}

pub(crate) async fn show(
    client: &Client,
    secret: &str,
    reveal: bool,
    format: DataFormat,
) -> Result<()> {
    let d: api::SecretDetail = client
        .post(
            "/v1/show-secret",
            &api::ShowSecret {
                secret: secret.into(),
                reveal,
            },
        )
        .await?;
    let mut e = entry(&d.secret);
    if let Some(c) = d.content {
        e["content"] = json!(c);
    }
    print_data(&json!({ id_of(&d.secret.uri): e }), format)
}
