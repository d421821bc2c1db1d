//! `certificate_transfer` (the `send-ca-cert` endpoint): a provider hands CA
//! certificates to apps that only need to trust them.
//!
//! Schema, as Canonical's `certificate_transfer` library v1 writes it:
//!
//! - **v1**, provider app bag: `certificates` = a JSON list of PEM strings (a set upstream;
//!   written sorted here so bags are stable), `version` = `1`.
//! - **v0**, provider unit bag (the leader's): `ca`, `certificate` (JSON strings),
//!   `chain` (JSON list), `version` = `0`.
//! - Requirer app bag: `version` = `1` when it reads v1.
//!
//! The upstream provider writes v1 only to requirers that said `version: 1` and v0 to
//! the rest. [`CertificateTransferProvider`] always writes the v1 app bag (a v1 requirer
//! may read before it has written its version) and adds the v0 unit bag for requirers
//! that have not said `1`. [`parse_provider_data`] reads v1 first and falls back to v0,
//! as the upstream requirer does.
//!
//! ```
//! use interfaces::certificate_transfer::{parse_provider_data, provider_app_bag};
//! let app = provider_app_bag(&["-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----".to_string()].into());
//! assert_eq!(app["version"], "1");
//! let certs = parse_provider_data(&app, &[]).unwrap();
//! assert_eq!(certs.len(), 1);
//! ```

use std::collections::BTreeSet;

use charm::{Bag, Context, Error, LogLevel, RelationId, Result};

use crate::tls_certificates::dumps;

/// The provider app bag's list of certificates.
pub const CERTIFICATES_KEY: &str = "certificates";
/// The schema version key (both sides).
pub const VERSION_KEY: &str = "version";

/// Provider data that does not follow either schema.
#[derive(Debug, thiserror::Error)]
#[error("invalid certificate_transfer {field}: {reason}")]
pub struct TransferError {
    /// The databag key.
    pub field: String,
    /// Why.
    pub reason: String,
}

/// The v1 provider app bag for `certificates`.
pub fn provider_app_bag(certificates: &BTreeSet<String>) -> Bag {
    let list: Vec<&String> = certificates.iter().collect();
    [
        (CERTIFICATES_KEY.to_string(), dumps(&list)),
        (VERSION_KEY.to_string(), "1".to_string()),
    ]
    .into()
}

/// The v0 provider unit bag for `certificates` (empty when there are none, as upstream
/// writes nothing then).
pub fn provider_unit_bag_v0(certificates: &BTreeSet<String>) -> Bag {
    let list: Vec<&String> = certificates.iter().collect();
    let Some(first) = list.first() else {
        return Bag::new();
    };
    [
        ("ca".to_string(), dumps(first)),
        ("certificate".to_string(), dumps(first)),
        ("chain".to_string(), dumps(&list)),
        (VERSION_KEY.to_string(), "0".to_string()),
    ]
    .into()
}

fn bad(field: &str, reason: impl ToString) -> TransferError {
    TransferError {
        field: field.into(),
        reason: reason.to_string(),
    }
}

/// The certificates a provider offers: v1 from its app bag, else v0 from its units'
/// bags (their `chain`, or `ca` and `certificate`).
pub fn parse_provider_data(
    app: &Bag,
    units: &[Bag],
) -> std::result::Result<BTreeSet<String>, TransferError> {
    if let Some(text) = app.get(CERTIFICATES_KEY) {
        let list: Vec<String> = serde_json::from_str(text).map_err(|e| bad(CERTIFICATES_KEY, e))?;
        return Ok(list.into_iter().collect());
    }
    let mut out = BTreeSet::new();
    for unit in units {
        if let Some(chain) = unit.get("chain") {
            let list: Option<Vec<String>> =
                serde_json::from_str(chain).map_err(|e| bad("chain", e))?;
            out.extend(list.unwrap_or_default());
        }
        for key in ["ca", "certificate"] {
            if let Some(v) = unit.get(key) {
                let pem: String = serde_json::from_str(v).map_err(|e| bad(key, e))?;
                out.insert(pem);
            }
        }
    }
    Ok(out)
}

/// The provider on one endpoint.
#[derive(Debug, Clone)]
pub struct CertificateTransferProvider {
    endpoint: String,
}

impl CertificateTransferProvider {
    /// A provider on `endpoint` (e.g. `send-ca-cert`).
    pub fn new(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.into(),
        }
    }

    /// Publishes `certificates` on every relation of the endpoint (leader only; others
    /// do nothing). Writes only what changed.
    pub fn publish(&self, ctx: &mut Context<'_>, certificates: &BTreeSet<String>) -> Result<()> {
        if !ctx.is_leader()? {
            return Ok(());
        }
        let app_bag = provider_app_bag(certificates);
        for rel in ctx.relations(&self.endpoint)? {
            let current = ctx.app_data(&rel)?;
            if app_bag.iter().any(|(k, v)| current.get(k) != Some(v)) {
                ctx.set_app_data(&rel, &app_bag)?;
            }
            let v1 = ctx
                .remote_app_data(&rel)?
                .get(VERSION_KEY)
                .map(String::as_str)
                == Some("1");
            let want: Bag = if v1 {
                Bag::new()
            } else {
                provider_unit_bag_v0(certificates)
            };
            let mine = ctx.unit_data(&rel)?;
            let mut change = Bag::new();
            for key in ["ca", "certificate", "chain", VERSION_KEY] {
                let target = want.get(key).cloned().unwrap_or_default();
                if mine.get(key).cloned().unwrap_or_default() != target {
                    // An empty value deletes the key.
                    change.insert(key.to_string(), target);
                }
            }
            if !change.is_empty() {
                ctx.set_unit_data(&rel, &change)?;
            }
        }
        Ok(())
    }
}

/// The requirer on one endpoint.
#[derive(Debug, Clone)]
pub struct CertificateTransferRequirer {
    endpoint: String,
}

impl CertificateTransferRequirer {
    /// A requirer on `endpoint`.
    pub fn new(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.into(),
        }
    }

    /// Says `version: 1` (leader) and returns the certificates each relation offers;
    /// a relation whose data does not parse is logged and left out.
    pub fn certificates(
        &self,
        ctx: &mut Context<'_>,
    ) -> Result<Vec<(RelationId, BTreeSet<String>)>> {
        let leader = ctx.is_leader()?;
        let mut out = Vec::new();
        for rel in ctx.relations(&self.endpoint)? {
            if leader && ctx.app_data(&rel)?.get(VERSION_KEY).map(String::as_str) != Some("1") {
                ctx.set_app_data(&rel, &[(VERSION_KEY.to_string(), "1".to_string())].into())?;
            }
            let app = ctx.remote_app_data(&rel)?;
            let mut units = Vec::new();
            for unit in ctx.relation_units(&rel)? {
                units.push(ctx.remote_unit_data(&rel, &unit)?);
            }
            match parse_provider_data(&app, &units) {
                Ok(certs) => out.push((rel, certs)),
                Err(e) => ctx.log(LogLevel::Warning, &format!("{rel}: {e}"))?,
            }
        }
        Ok(out)
    }
}

impl From<TransferError> for Error {
    fn from(e: TransferError) -> Self {
        Error::charm(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v0_unit_bags_are_read_when_there_is_no_v1_app_bag() {
        let certs: BTreeSet<String> = ["B".to_string(), "A".to_string()].into();
        let unit = provider_unit_bag_v0(&certs);
        assert_eq!(unit["ca"], "\"A\"");
        assert_eq!(unit["chain"], "[\"A\", \"B\"]");
        assert_eq!(parse_provider_data(&Bag::new(), &[unit]).unwrap(), certs);
        let app = provider_app_bag(&certs);
        assert_eq!(app["certificates"], "[\"A\", \"B\"]");
        assert_eq!(parse_provider_data(&app, &[]).unwrap(), certs);
        assert!(parse_provider_data(&[("certificates".into(), "{".into())].into(), &[]).is_err());
    }
}
