//! The requirer side of `tls-certificates` v4 over the charm SDK, one certificate per
//! unit: the private key and the CSR live in a unit-owned secret, the CSR is published in
//! the unit's bag in the JSON shape Canonical's library writes, and a certificate is
//! accepted only when it answers our CSR and matches our key.
//!
//! Not yet here (see issue 6): expiry-driven renewal through the certificate secret,
//! revocation handling, app-mode requests.

use charm::{Bag, Context, Error, Result, SecretOptions, SecretOwner, SecretRead};

use crate::tls_certificates::{
    certificate_matches_csr, certificate_matches_key, dumps, generate_csr, generate_private_key,
    parse_certificates, CsrRequest, RequestedCertificate, CERTIFICATES_KEY, REQUESTS_KEY,
};

/// A certificate the provider issued for this unit, with the key it belongs to.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The leaf certificate, PEM.
    pub certificate: String,
    /// The issuing CA, PEM.
    pub ca: String,
    /// Leaf first, then the CA.
    pub chain: Vec<String>,
    /// This unit's private key, PEM.
    pub private_key: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("certificate", &self.certificate)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// The requirer on one endpoint.
#[derive(Debug, Clone)]
pub struct TlsRequirer {
    endpoint: String,
}

fn fingerprint(request: &CsrRequest) -> String {
    let mut ips: Vec<String> = request.ip_addresses.iter().map(|i| i.to_string()).collect();
    ips.sort();
    let mut dns = request.dns_names.clone();
    dns.sort();
    format!(
        "cn={};o={};dns={};ip={}",
        request.common_name,
        request.organization.as_deref().unwrap_or(""),
        dns.join(","),
        ips.join(",")
    )
}

impl TlsRequirer {
    /// A requirer on `endpoint` (e.g. `certificates`).
    pub fn new(endpoint: &str) -> Self {
        TlsRequirer {
            endpoint: endpoint.into(),
        }
    }

    fn label(&self) -> String {
        format!("{}-private-key", self.endpoint)
    }

    /// Makes sure our key and a CSR for `request` exist and are published, and returns the
    /// certificate once the provider has issued one for them. `None` without a relation
    /// or while waiting. Malformed provider data is an error naming the relation.
    pub fn reconcile(&self, ctx: &mut Context<'_>, request: &CsrRequest) -> Result<Option<Issued>> {
        let Some(rel) = ctx.relation(&self.endpoint)? else {
            return Ok(None);
        };
        let wanted = fingerprint(request);
        let label = self.label();
        let existing = match ctx.get_secret(None, Some(&label), SecretRead::Refresh) {
            Ok(bag) => Some(bag),
            Err(Error::SecretNotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let tls_err = |e: crate::tls_certificates::TlsError| {
            Error::Charm(format!("tls-certificates on {}: {e}", self.endpoint))
        };
        let (key, csr) = match &existing {
            Some(bag) if bag.get("request").map(String::as_str) == Some(wanted.as_str()) => (
                bag.get("private-key").cloned().unwrap_or_default(),
                bag.get("csr").cloned().unwrap_or_default(),
            ),
            _ => {
                // Keep the key across new CSRs; make one the first time.
                let key = match existing
                    .as_ref()
                    .and_then(|b| b.get("private-key").cloned())
                {
                    Some(k) => k,
                    None => generate_private_key().map_err(tls_err)?,
                };
                let csr = generate_csr(&key, request).map_err(tls_err)?;
                let content: Bag = [
                    ("private-key", key.clone()),
                    ("csr", csr.clone()),
                    ("request", wanted.clone()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                match &existing {
                    Some(_) => {
                        let info = ctx.secret_info(None, Some(&label))?;
                        ctx.set_secret(&info.id, &content, &SecretOptions::default())?;
                    }
                    None => {
                        ctx.add_secret(
                            &content,
                            SecretOwner::Unit,
                            &SecretOptions {
                                label: Some(label.clone()),
                                description: Some(format!("private key for {}", self.endpoint)),
                                ..Default::default()
                            },
                        )?;
                    }
                }
                (key, csr)
            }
        };
        let published = dumps(&vec![RequestedCertificate {
            certificate_signing_request: csr.clone(),
            ca: false,
        }]);
        if ctx.unit_data(&rel)?.get(REQUESTS_KEY) != Some(&published) {
            let mut data = Bag::new();
            data.insert(REQUESTS_KEY.into(), published);
            ctx.set_unit_data(&rel, &data)?;
        }
        let provider = ctx.remote_app_data(&rel)?;
        let Some(text) = provider.get(CERTIFICATES_KEY) else {
            return Ok(None);
        };
        let certs = parse_certificates(text).map_err(|e| {
            Error::Charm(format!(
                "{}:{} {CERTIFICATES_KEY} is malformed: {e}",
                self.endpoint, rel.id
            ))
        })?;
        for c in certs {
            if c.revoked == Some(true) || c.certificate_signing_request.trim() != csr.trim() {
                continue;
            }
            if certificate_matches_csr(&c.certificate, &csr).unwrap_or(false)
                && certificate_matches_key(&c.certificate, &key).unwrap_or(false)
            {
                return Ok(Some(Issued {
                    certificate: c.certificate,
                    ca: c.ca,
                    chain: c.chain,
                    private_key: key,
                }));
            }
        }
        Ok(None)
    }
}
