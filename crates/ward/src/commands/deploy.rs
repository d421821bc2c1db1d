//! `ward deploy` and `ward refresh`: pack or read the charm, upload it, and
//! ask the controller to deploy (or upgrade to) it.

use crate::api;
use crate::charmpkg;
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::home::Home;

pub(crate) async fn deploy(
    home: &Home,
    charm: &str,
    app: Option<String>,
    n: usize,
    config: Vec<String>,
) -> Result<()> {
    if config.iter().any(|c| !c.contains('=')) {
        let bad: Vec<&String> = config.iter().filter(|c| !c.contains('=')).collect();
        return Err(CliError::usage(format!(
            "--config {bad:?}: each --config takes key=value"
        )));
    }
    let src = charmpkg::resolve(charm)?;
    let bytes = src.bytes()?;
    let client = Client::new(home)?;
    let up = client.upload(bytes).await?;
    let units: api::Units = client
        .post(
            "/v1/deploy",
            &api::Deploy {
                app,
                charm: up.id,
                units: n,
                config,
            },
        )
        .await?;
    println!(
        "Deployed {:?} from local charm {:?} with {} unit(s): {}",
        units.app,
        up.name,
        units.units.len(),
        units.units.join(", ")
    );
    Ok(())
}

pub(crate) async fn refresh(home: &Home, app: &str, path: Option<String>) -> Result<()> {
    let client = Client::new(home)?;
    let status: api::Status = client.get("/v1/status").await?;
    let Some(current) = status.applications.iter().find(|a| a.name == app) else {
        return Err(CliError::usage(format!(
            "application {app:?} not found: `ward status` lists the applications"
        )));
    };
    let src = match &path {
        Some(p) => charmpkg::resolve(p)?,
        None => charmpkg::resolve(&current.charm)?,
    };
    let up = client.upload(src.bytes()?).await?;
    let _: serde_json::Value = client
        .post(
            "/v1/refresh",
            &api::Refresh {
                app: app.to_string(),
                charm: up.id,
            },
        )
        .await?;
    let after: api::Status = client.get("/v1/status").await?;
    let rev = after
        .applications
        .iter()
        .find(|a| a.name == app)
        .map(|a| a.charm_rev)
        .unwrap_or(current.charm_rev);
    if rev == current.charm_rev {
        println!("{app:?} already runs this charm (revision {rev}); nothing to upgrade.");
    } else {
        println!(
            "Added local charm {:?}, revision {rev}, to the model; {app:?} upgrades from revision {}.",
            up.name, current.charm_rev
        );
    }
    Ok(())
}
