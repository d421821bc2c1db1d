//! `ward integrate` and `ward remove-relation`.

use crate::api;
use crate::client::Client;
use crate::error::Result;

pub(crate) async fn integrate(client: &Client, a: &str, b: &str) -> Result<()> {
    let r: api::Related = client
        .post(
            "/v1/integrate",
            &api::Relate {
                a: a.into(),
                b: b.into(),
            },
        )
        .await?;
    println!("Integrated {a} and {b} (relation {}).", r.id);
    Ok(())
}

pub(crate) async fn remove(client: &Client, a: &str, b: &str) -> Result<()> {
    let _: serde_json::Value = client
        .post(
            "/v1/remove-relation",
            &api::Relate {
                a: a.into(),
                b: b.into(),
            },
        )
        .await?;
    println!("Removing the relation between {a} and {b}.");
    Ok(())
}
