//! `ward config`: show all options, show one, or set and reset.

use crate::api;
use crate::client::Client;
use crate::error::{CliError, Context, Result};

pub(crate) async fn run(
    client: &Client,
    app: &str,
    settings: Vec<String>,
    reset: Vec<String>,
) -> Result<()> {
    let (set, get): (Vec<String>, Vec<String>) =
        settings.into_iter().partition(|s| s.contains('='));
    if !get.is_empty() && (!set.is_empty() || !reset.is_empty() || get.len() > 1) {
        return Err(CliError::usage(format!(
            "{get:?}: give either one option name to show its value, or key=value pairs to set"
        )));
    }
    let cfg: api::Config = client
        .post(
            "/v1/config",
            &api::ConfigChange {
                app: app.into(),
                set: set.clone(),
                reset: reset.clone(),
            },
        )
        .await?;
    if let Some(key) = get.first() {
        let Some(s) = cfg.settings.get(key) else {
            let names: Vec<&String> = cfg.settings.keys().collect();
            return Err(CliError::usage(format!(
                "{key}: {app:?} has no option {key:?}; its options are {names:?}"
            )));
        };
        match &s.value {
            serde_json::Value::String(v) => println!("{v}"),
            serde_json::Value::Null => println!(),
            v => println!("{v}"),
        }
        return Ok(());
    }
    if set.is_empty() && reset.is_empty() {
        let out = serde_json::json!({
            "application": cfg.application,
            "charm": cfg.charm,
            "settings": cfg.settings,
        });
        print!(
            "{}",
            serde_yaml_ng::to_string(&out).failed(|| "writing YAML".into())?
        );
    }
    Ok(())
}
