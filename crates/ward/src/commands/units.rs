//! `ward add-unit`, `ward remove-unit`, `ward remove-application`.

use crate::api;
use crate::client::Client;
use crate::error::{CliError, Result};

pub(crate) async fn add(client: &Client, app: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(CliError::usage("-n 0: add at least one unit"));
    }
    let u: api::Units = client
        .post("/v1/add-unit", &api::AddUnit { app: app.into(), n })
        .await?;
    println!("Added {}.", u.units.join(", "));
    Ok(())
}

pub(crate) async fn remove_unit(client: &Client, unit: &str) -> Result<()> {
    if !unit.contains('/') {
        return Err(CliError::usage(format!(
            "{unit:?} is not a unit name: units are named app/N (to remove an application use remove-application)"
        )));
    }
    let _: serde_json::Value = client
        .post("/v1/remove-unit", &api::UnitRef { unit: unit.into() })
        .await?;
    println!("Removing unit {unit}.");
    Ok(())
}

pub(crate) async fn remove_app(client: &Client, app: &str) -> Result<()> {
    let _: serde_json::Value = client
        .post("/v1/remove-application", &api::AppRef { app: app.into() })
        .await?;
    println!("Removing application {app}.");
    Ok(())
}
