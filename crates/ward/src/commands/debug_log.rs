//! `ward debug-log`: hook runs and charm logs, followed live.

use std::io::Write;

use crate::client::Client;
use crate::error::Result;

pub(crate) async fn run(
    client: &Client,
    replay: bool,
    include: Vec<String>,
    no_tail: bool,
) -> Result<()> {
    let include: Vec<String> = include
        .iter()
        .flat_map(|i| i.split(','))
        .map(|s| s.trim().replace(',', ""))
        .filter(|s| !s.is_empty())
        .collect();
    let q = format!(
        "/v1/logs?replay={replay}&follow={}&include={}",
        !no_tail,
        include
            .iter()
            .map(|s| percent(s))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut resp = client.stream(&q).await?;
    let mut out = std::io::stdout();
    while let Some(chunk) = client.chunk(&mut resp).await? {
        if out.write_all(&chunk).and_then(|_| out.flush()).is_err() {
            break; // the reader went away (e.g. `| head`)
        }
    }
    Ok(())
}

/// Percent-encode a query value.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
