//! `ward resolve`: retry (or skip) a unit's failed hook.

use crate::api;
use crate::client::Client;
use crate::error::Result;

pub(crate) async fn run(client: &Client, unit: &str, retry: bool) -> Result<()> {
    let _: serde_json::Value = client
        .post(
            "/v1/resolve",
            &api::Resolve {
                unit: unit.into(),
                retry,
            },
        )
        .await?;
    println!(
        "{unit}: {}",
        if retry {
            "retrying the failed hook"
        } else {
            "skipping the failed hook"
        }
    );
    Ok(())
}
