//! The provider side of `tls-certificates` v4 over the charm SDK: a CA charm supplies
//! only "sign this validated CSR"; this module reads every requirer's CSRs, checks them,
//! writes the certificates in the v4 schema and withdraws those whose CSR went away.
//!
//! For each relation on the endpoint, [`TlsProvider::reconcile`] (leader only):
//!
//! 1. reads `certificate_signing_requests` from every remote unit's bag and from the
//!    remote application's bag (app-mode requirers);
//! 2. keeps a certificate already issued for a CSR that is still asked for, unless it
//!    was revoked, came from another CA, or does not carry the CSR's key;
//! 3. validates every other CSR with the [`CsrPolicy`] and asks the signer for a
//!    certificate; a CSR that fails is logged naming the relation and the requiring
//!    unit, gets nothing, and is reported in [`Report::refused`];
//! 4. drops certificates whose CSR vanished (the requirer renewed, departed, or gave
//!    up) — with no CRL to publish, withdrawal is how a provider revokes;
//! 5. writes `certificates` only when it changed, so running it on every hook is cheap.
//!
//! ```no_run
//! # use charm::Context;
//! use interfaces::tls_certificates::{CaConfig, CertificateAuthority};
//! use interfaces::tls_provider::TlsProvider;
//! # fn f(ctx: &mut Context<'_>) -> charm::Result<()> {
//! let ca = CertificateAuthority::generate(&CaConfig::new("Ward CA")).unwrap();
//! let report = TlsProvider::new("certificates")
//!     .reconcile(ctx, ca.certificate_pem(), |csr| ca.sign(csr, 90))?;
//! if let Some(problem) = report.status_message() {
//!     ctx.add_unit_status(charm::Status::active(problem));
//! }
//! # Ok(()) }
//! ```

use charm::{Bag, Context, Error, LogLevel, RelationId, Result};

use crate::tls_certificates::{
    certificate_matches_csr, dumps, parse_certificates, parse_requests, validate_csr, CsrPolicy,
    ProvidedCertificate, RequestedCertificate, TlsError, ValidatedCsr, CERTIFICATES_KEY,
    REQUESTS_KEY,
};

/// A CSR that got no certificate, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The relation it came on.
    pub relation: RelationId,
    /// The unit (or, for app-mode requests, the application) that asked.
    pub requester: String,
    /// Why it was refused.
    pub reason: String,
}

/// What one reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Certificates signed in this run.
    pub issued: usize,
    /// Certificates kept as they were.
    pub kept: usize,
    /// Certificates withdrawn because their CSR went away.
    pub withdrawn: usize,
    /// CSRs that got nothing.
    pub refused: Vec<Refusal>,
    /// CSRs over the per-relation limit, left waiting.
    pub over_limit: usize,
}

impl Report {
    /// A status message naming the relation and requester of the first refused CSR
    /// (and how many more), or `None` when every CSR was served.
    pub fn status_message(&self) -> Option<String> {
        let first = self.refused.first()?;
        let more = match self.refused.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        Some(format!(
            "refused a CSR from {} on {}: {}{more}",
            first.requester, first.relation, first.reason
        ))
    }
}

/// The provider on one endpoint.
#[derive(Debug, Clone)]
pub struct TlsProvider {
    endpoint: String,
    policy: CsrPolicy,
    limit: Option<usize>,
}

/// One CSR as a requirer published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The relation.
    pub relation: RelationId,
    /// The unit or app whose bag holds it.
    pub requester: String,
    /// What it asked for.
    pub request: RequestedCertificate,
}

impl TlsProvider {
    /// A provider on `endpoint` that signs CA requests too (as Canonical's
    /// self-signed-certificates does) and at most 100 SANs per CSR.
    pub fn new(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.into(),
            policy: CsrPolicy {
                allow_ca: true,
                ..CsrPolicy::default()
            },
            limit: None,
        }
    }

    /// Uses `policy` to validate CSRs.
    pub fn policy(mut self, policy: CsrPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Issues at most `limit` certificates per relation (`None`: no limit).
    pub fn limit(mut self, limit: Option<usize>) -> Self {
        self.limit = limit;
        self
    }

    /// Every CSR requirers publish on `rel`, unit bags first (sorted by unit), then the
    /// app bag; a bag whose value does not parse is logged and skipped.
    pub fn requests(&self, ctx: &mut Context<'_>, rel: &RelationId) -> Result<Vec<Request>> {
        let mut sources: Vec<(String, Bag)> = Vec::new();
        let mut units = ctx.relation_units(rel)?;
        units.sort();
        for unit in units {
            let bag = ctx.remote_unit_data(rel, &unit)?;
            sources.push((unit, bag));
        }
        if let Some(app) = ctx.remote_app(rel)? {
            let bag = ctx.remote_app_data(rel)?;
            sources.push((app, bag));
        }
        let mut out = Vec::new();
        for (requester, bag) in sources {
            let Some(text) = bag.get(REQUESTS_KEY) else {
                continue;
            };
            match parse_requests(text) {
                Ok(list) => out.extend(list.into_iter().map(|request| Request {
                    relation: rel.clone(),
                    requester: requester.clone(),
                    request,
                })),
                Err(e) => ctx.log(
                    LogLevel::Warning,
                    &format!("{rel}: ignoring {REQUESTS_KEY} from {requester}: {e}"),
                )?,
            }
        }
        Ok(out)
    }

    /// Every certificate this provider has published, by relation.
    pub fn issued(&self, ctx: &mut Context<'_>) -> Result<Vec<(RelationId, ProvidedCertificate)>> {
        let mut all = Vec::new();
        for rel in ctx.relations(&self.endpoint)? {
            if let Some(text) = ctx.app_data(&rel)?.get(CERTIFICATES_KEY) {
                let certs = parse_certificates(text).map_err(Error::charm)?;
                all.extend(certs.into_iter().map(|c| (rel.clone(), c)));
            }
        }
        Ok(all)
    }

    /// Marks every published certificate `revoked: true` (as Canonical's
    /// `revoke_all_certificates` does); the next reconcile re-issues for CSRs still
    /// asked for.
    pub fn revoke_all(&self, ctx: &mut Context<'_>) -> Result<()> {
        for rel in ctx.relations(&self.endpoint)? {
            let current = ctx.app_data(&rel)?;
            let Some(text) = current.get(CERTIFICATES_KEY) else {
                continue;
            };
            let mut certs = parse_certificates(text).unwrap_or_default();
            for c in &mut certs {
                c.revoked = Some(true);
            }
            let next = dumps(&certs);
            if &next != text {
                ctx.set_app_data(&rel, &[(CERTIFICATES_KEY.to_string(), next)].into())?;
            }
        }
        Ok(())
    }

    /// Answers every CSR on every relation of the endpoint (see the module docs).
    /// `ca` is the issuing CA's certificate; certificates from another CA are
    /// re-issued. `sign` returns the leaf PEM; the chain is `[leaf, ca]`.
    pub fn reconcile(
        &self,
        ctx: &mut Context<'_>,
        ca: &str,
        mut sign: impl FnMut(&ValidatedCsr) -> std::result::Result<String, TlsError>,
    ) -> Result<Report> {
        let mut report = Report::default();
        for rel in ctx.relations(&self.endpoint)? {
            let requests = self.requests(ctx, &rel)?;
            let current_text = ctx
                .app_data(&rel)?
                .get(CERTIFICATES_KEY)
                .cloned()
                .unwrap_or_default();
            let current = if current_text.is_empty() {
                Vec::new()
            } else {
                parse_certificates(&current_text).unwrap_or_else(|e| {
                    // Our own bag: rewrite it from scratch rather than fail every hook.
                    let _ = ctx.log(LogLevel::Warning, &format!("{rel}: rewriting {e}"));
                    Vec::new()
                })
            };
            let mut next: Vec<ProvidedCertificate> = Vec::new();
            for Request {
                requester, request, ..
            } in requests
            {
                let csr = &request.certificate_signing_request;
                if next
                    .iter()
                    .any(|c| c.certificate_signing_request.trim() == csr.trim())
                {
                    continue;
                }
                let kept = current.iter().find(|c| {
                    c.certificate_signing_request.trim() == csr.trim()
                        && c.revoked != Some(true)
                        && c.ca.trim() == ca.trim()
                        && certificate_matches_csr(&c.certificate, csr).unwrap_or(false)
                });
                if let Some(c) = kept {
                    next.push(c.clone());
                    report.kept += 1;
                    continue;
                }
                if self.limit.is_some_and(|l| next.len() >= l) {
                    report.over_limit += 1;
                    continue;
                }
                let signed = validate_csr(csr, request.ca, &self.policy).and_then(|v| sign(&v));
                match signed {
                    Ok(cert) => {
                        // PEMs without their final newline, as Canonical's library
                        // writes them (`str(...)` strips), so the bags match byte for byte.
                        let (cert, ca) = (cert.trim().to_string(), ca.trim().to_string());
                        next.push(ProvidedCertificate {
                            ca: ca.clone(),
                            certificate_signing_request: csr.trim().to_string(),
                            chain: vec![cert.clone(), ca],
                            certificate: cert,
                            revoked: None,
                        });
                        report.issued += 1;
                    }
                    Err(e) => {
                        let reason = e.to_string();
                        ctx.log(
                            LogLevel::Warning,
                            &format!("{rel}: not signing a CSR from {requester}: {reason}"),
                        )?;
                        report.refused.push(Refusal {
                            relation: rel.clone(),
                            requester,
                            reason,
                        });
                    }
                }
            }
            report.withdrawn += current
                .iter()
                .filter(|c| {
                    !next
                        .iter()
                        .any(|n| n.certificate_signing_request == c.certificate_signing_request)
                })
                .count();
            let text = dumps(&next);
            if text != current_text && !(next.is_empty() && current_text.is_empty()) {
                ctx.set_app_data(&rel, &[(CERTIFICATES_KEY.to_string(), text)].into())?;
            }
        }
        if report.over_limit > 0 {
            ctx.log(
                LogLevel::Warning,
                &format!(
                    "{}: {} CSRs wait for the per-relation certificate limit",
                    self.endpoint, report.over_limit
                ),
            )?;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_names_relation_requester_and_reason() {
        let r = Report {
            refused: vec![
                Refusal {
                    relation: RelationId::new("certificates", 7),
                    requester: "pg/2".into(),
                    reason: "does not parse".into(),
                },
                Refusal {
                    relation: RelationId::new("certificates", 7),
                    requester: "pg/3".into(),
                    reason: "x".into(),
                },
            ],
            ..Report::default()
        };
        assert_eq!(
            r.status_message().unwrap(),
            "refused a CSR from pg/2 on certificates:7: does not parse (and 1 more)"
        );
        assert_eq!(Report::default().status_message(), None);
    }
}
