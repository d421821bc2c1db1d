//! A self-signed certificate authority on the `tls-certificates` interface.
//!
//! The leader keeps the CA (certificate, private key and the config it was made from)
//! in an application-owned secret labelled `active-ca-certificates`, and answers every
//! CSR that requirers publish on `certificates` in its application databag. The CA key
//! is ECDSA P-256 or RSA 2048 (`key-algorithm`). A config change that alters the CA
//! (its subject, lifetime or key algorithm), or the `rotate-private-key` action, makes a
//! new CA and re-issues everything. A CSR that fails the checks gets no certificate, a log line and
//! the unit's (still active) status naming the relation and the unit that sent it; the
//! others are still served. The certificate work is [`interfaces::tls_provider`]'s: this
//! charm only supplies the CA and the validity. The CA certificate is also published on
//! `send-ca-cert` ([`interfaces::certificate_transfer`]).

use charm::{
    Bag, Charm, Context, Error, Event, LogLevel, Result, SecretOptions, SecretOwner, SecretRead,
    Status,
};
use interfaces::certificate_transfer::CertificateTransferProvider;
use interfaces::tls_certificates::{dumps, CaConfig, CertificateAuthority, KeyAlgorithm};
use interfaces::tls_provider::{Report, TlsProvider};

/// The secret label of the active CA.
pub const CA_LABEL: &str = "active-ca-certificates";
const ENDPOINT: &str = "certificates";
const SEND_CA_CERT: &str = "send-ca-cert";

/// The charm.
#[derive(Debug, Default)]
pub struct SelfSigned {
    /// What this hook's reconcile refused, for the status.
    refused: Option<String>,
}

/// The settings the config describes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    ca: CaConfig,
    certificate_days: u32,
    /// Certificates per relation (`certificate-limit`; -1 for no limit).
    limit: Option<usize>,
}

impl Settings {
    /// What must match for a stored CA to stay in use.
    fn fingerprint(&self) -> String {
        let mut f = format!(
            "cn={}|o={}|c={}|days={}",
            self.ca.common_name,
            self.ca.organization.as_deref().unwrap_or(""),
            self.ca.country.as_deref().unwrap_or(""),
            self.ca.validity_days
        );
        // CAs made before key-algorithm existed are P-256 with a fingerprint without it;
        // leaving the default out keeps them in use instead of rotating on upgrade.
        if self.ca.key_algorithm != KeyAlgorithm::default() {
            f.push_str(&format!("|key={}", self.ca.key_algorithm));
        }
        f
    }
}

fn parse_days(key: &str, value: &str) -> Result<u32> {
    let bad = |reason: &str| Error::InvalidConfig {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    };
    let v = value.trim();
    let (num, mult) = match v.strip_suffix('d') {
        Some(n) => (n, 1),
        None => match v.strip_suffix('w') {
            Some(n) => (n, 7),
            None => (v, 1),
        },
    };
    let n: u32 = num
        .parse()
        .map_err(|_| bad("expected <n>d, <n>w or a number of days"))?;
    if n == 0 {
        return Err(bad("must be at least one day"));
    }
    n.checked_mul(mult)
        .filter(|d| *d <= 36_500)
        .ok_or_else(|| bad("at most 100 years"))
}

fn settings(ctx: &mut Context<'_>) -> Result<Settings> {
    let cfg = ctx.config()?;
    let common_name = cfg.get_str("ca-common-name")?.unwrap_or_default();
    if common_name.trim().is_empty() || common_name.len() > 64 {
        return Err(Error::InvalidConfig {
            key: "ca-common-name".into(),
            value: common_name,
            reason: "must be 1 to 64 characters".into(),
        });
    }
    let organization = cfg.get_str("ca-organization")?.filter(|s| !s.is_empty());
    let country = cfg.get_str("ca-country")?.filter(|s| !s.is_empty());
    if let Some(c) = &country {
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Error::InvalidConfig {
                key: "ca-country".into(),
                value: c.clone(),
                reason: "must be two capital letters".into(),
            });
        }
    }
    let root = cfg
        .get_str("root-ca-validity")?
        .unwrap_or_else(|| "365d".into());
    let cert = cfg
        .get_str("certificate-validity")?
        .unwrap_or_else(|| "90d".into());
    let root_days = parse_days("root-ca-validity", &root)?;
    let certificate_days = parse_days("certificate-validity", &cert)?;
    if root_days < 2 * certificate_days {
        return Err(Error::InvalidConfig {
            key: "root-ca-validity".into(),
            value: root,
            reason: format!("must be at least twice certificate-validity ({cert})"),
        });
    }
    let names = KeyAlgorithm::ALL.map(KeyAlgorithm::as_str);
    let key_algorithm = cfg
        .get_one_of("key-algorithm", &names, KeyAlgorithm::default().as_str())?
        .parse::<KeyAlgorithm>()
        .map_err(tls_err)?;
    let limit = match cfg.get_int("certificate-limit")? {
        None | Some(-1) => None,
        Some(n) if n >= 0 => Some(n as usize),
        Some(n) => {
            return Err(Error::InvalidConfig {
                key: "certificate-limit".into(),
                value: n.to_string(),
                reason: "must be -1 (no limit) or at least 0".into(),
            })
        }
    };
    Ok(Settings {
        limit,
        ca: CaConfig {
            common_name,
            organization,
            country,
            validity_days: root_days,
            key_algorithm,
        },
        certificate_days,
    })
}

fn tls_err(e: interfaces::tls_certificates::TlsError) -> Error {
    Error::charm(e)
}

/// The active CA, made (or re-made) when missing, when the config no longer matches,
/// or when `rotate` asks. Returns it and whether it is new.
fn ensure_ca(
    ctx: &mut Context<'_>,
    s: &Settings,
    rotate: bool,
) -> Result<(CertificateAuthority, bool)> {
    let existing = match ctx.get_secret(None, Some(CA_LABEL), SecretRead::Tracked) {
        Ok(content) => Some(content),
        Err(Error::SecretNotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    if let Some(c) = &existing {
        if !rotate && c.get("config-hash") == Some(&s.fingerprint()) {
            if let (Some(cert), Some(key)) = (c.get("ca-certificate"), c.get("private-key")) {
                return Ok((
                    CertificateAuthority::from_pem(cert, key).map_err(tls_err)?,
                    false,
                ));
            }
        }
    }
    let ca = CertificateAuthority::generate(&s.ca).map_err(tls_err)?;
    let content: Bag = [
        (
            "ca-certificate".to_string(),
            ca.certificate_pem().to_string(),
        ),
        ("private-key".to_string(), ca.private_key_pem().to_string()),
        ("config-hash".to_string(), s.fingerprint()),
    ]
    .into();
    if existing.is_some() {
        let id = ctx.secret_info(None, Some(CA_LABEL))?.id;
        ctx.set_secret(&id, &content, &SecretOptions::default())?;
    } else {
        let opts = SecretOptions {
            label: Some(CA_LABEL.into()),
            description: Some("the CA's certificate and private key".into()),
            ..Default::default()
        };
        ctx.add_secret(&content, SecretOwner::Application, &opts)?;
    }
    ctx.log(
        LogLevel::Info,
        "made a new CA; every certificate will be re-issued",
    )?;
    Ok((ca, true))
}

/// Answers every CSR on every `certificates` relation (certificates from an older CA
/// are re-issued) and publishes the CA on `send-ca-cert`.
fn reconcile(ctx: &mut Context<'_>, ca: &CertificateAuthority, s: &Settings) -> Result<Report> {
    let report =
        TlsProvider::new(ENDPOINT)
            .limit(s.limit)
            .reconcile(ctx, ca.certificate_pem(), |csr| {
                ca.sign(csr, s.certificate_days)
            })?;
    CertificateTransferProvider::new(SEND_CA_CERT)
        .publish(ctx, &[ca.certificate_pem().to_string()].into())?;
    Ok(report)
}

impl Charm for SelfSigned {
    fn handle(&mut self, ctx: &mut Context<'_>, event: &Event) -> Result<()> {
        if let Event::Action { name, .. } = event {
            return match name.as_str() {
                "get-ca-certificate" => {
                    let content = ctx.get_secret(None, Some(CA_LABEL), SecretRead::Tracked)?;
                    let pem = content.get("ca-certificate").cloned().unwrap_or_default();
                    ctx.set_results(&serde_json::json!({ "ca-certificate": pem }))
                }
                "get-issued-certificates" => {
                    if !ctx.is_leader()? {
                        return ctx.action_fail("run this action on the leader");
                    }
                    let certs: Vec<_> = TlsProvider::new(ENDPOINT)
                        .issued(ctx)?
                        .into_iter()
                        .map(|(_, c)| c)
                        .collect();
                    if certs.is_empty() {
                        return ctx.action_fail("No certificates issued yet.");
                    }
                    ctx.set_results(&serde_json::json!({ "certificates": dumps(&certs) }))
                }
                "rotate-private-key" => {
                    if !ctx.is_leader()? {
                        return ctx.action_fail("only the leader can rotate the CA key");
                    }
                    let s = settings(ctx)?;
                    let (ca, _) = ensure_ca(ctx, &s, true)?;
                    reconcile(ctx, &ca, &s)?;
                    ctx.set_results(&serde_json::json!({ "result": "New private key and CA certificate made; certificates re-issued." }))
                }
                other => Err(Error::charm(format!("unknown action {other:?}"))),
            };
        }
        if !ctx.is_leader()? {
            return Ok(());
        }
        let s = settings(ctx)?;
        let (ca, _) = ensure_ca(ctx, &s, false)?;
        self.refused = reconcile(ctx, &ca, &s)?.status_message();
        Ok(())
    }

    fn collect_unit_status(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        if ctx.is_leader()? {
            // A refused CSR is the requirer's problem; the CA keeps serving the others.
            ctx.add_unit_status(Status::active(self.refused.clone().unwrap_or_default()));
        } else {
            ctx.add_unit_status(Status::blocked("Scaling is not implemented for this charm"));
        }
        Ok(())
    }
}
