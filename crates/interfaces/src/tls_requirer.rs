//! The requirer side of `tls-certificates` v4 over the charm SDK: one certificate per
//! unit ([`Mode::Unit`], the default), or one for the whole application ([`Mode::App`]).
//!
//! State lives in two secrets, owned by the unit (unit mode) or by the application (app
//! mode, where only the leader acts and the label gains `-app`):
//!
//! - `<endpoint>-private-key` (`<endpoint>-app-private-key`): the private key, the CSR
//!   now published and the request it was made for. The key stays for the unit's (or
//!   application's) life; CSRs change with the request and at every renewal.
//! - `<endpoint>-certificate` (`<endpoint>-app-certificate`): the certificate in use
//!   (with its CA, chain and the CSR it answers), whose Juju expiry is the renewal time,
//!   90% of the way from notBefore to notAfter (Canonical's library uses the same
//!   fraction).
//!
//! The CSR is published in the unit's bag (app mode: the application's bag, written by
//! the leader) in the JSON shape Canonical's library writes,
//! and a certificate is accepted only when it answers that CSR, carries our public key
//! and is not a CA certificate. Renewal (on `secret-expired` for the certificate secret,
//! or on any hook once the renewal time has passed) makes a new CSR with the same key
//! and replaces the old one in the unit bag, as upstream v4 does; the old certificate is
//! still returned until the new one arrives, so callers keep serving TLS meanwhile. A
//! certificate the provider revokes, or drops while our CSR is still published, is
//! forgotten at once and a fresh CSR asks again.
//!
//! In app mode a unit that is not the leader gets `None` and touches nothing, as
//! Canonical's library keeps an app-mode certificate for the leader only; a new leader
//! picks up the application's secrets where the old one left them.
//!
//! Not here: both modes on one endpoint (upstream's `APP_AND_UNIT`) and more than one
//! certificate per unit or application.

use charm::{Bag, Context, Error, Event, LogLevel, Result, SecretOptions, SecretOwner, SecretRead};

use crate::tls_certificates::{
    certificate_is_ca, certificate_matches_csr, certificate_matches_key, certificate_validity,
    dumps, generate_csr, generate_private_key, parse_certificates, renewal_due, CsrRequest,
    ProvidedCertificate, RequestedCertificate, TlsError, CERTIFICATES_KEY, REQUESTS_KEY,
};

/// A certificate the provider issued for this unit (in app mode, for the application),
/// with the key it belongs to.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The leaf certificate, PEM.
    pub certificate: String,
    /// The issuing CA, PEM.
    pub ca: String,
    /// Leaf first, then the CA.
    pub chain: Vec<String>,
    /// This unit's (in app mode, the application's) private key, PEM.
    pub private_key: String,
    /// When this requirer will ask for a new certificate (Unix seconds).
    pub renew_at: i64,
    /// The certificate's notAfter (Unix seconds).
    pub expires_at: i64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("certificate", &self.certificate)
            .field("renew_at", &self.renew_at)
            .field("expires_at", &self.expires_at)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The CSR a unit asks for on its own address (an IP SAN, the common name) with the unit's
/// name (`app-N`) as a DNS SAN, as Ward's database charms do. An address that is not an
/// IP is an error naming it.
pub fn unit_address_request(unit_name: &str, address: &str) -> Result<CsrRequest> {
    let ip: std::net::IpAddr = address.parse().map_err(|_| {
        Error::Charm(format!(
            "the unit's address {address:?} is not an IP address"
        ))
    })?;
    Ok(CsrRequest::new(address)
        .ip(ip)
        .dns(&unit_name.replace('/', "-")))
}

/// Whose certificate a requirer asks for (Canonical's `Mode.UNIT` and `Mode.APP`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Each unit has its own key (a unit secret), publishes its CSR in its unit bag and
    /// gets its own certificate.
    #[default]
    Unit,
    /// One certificate for the application: the leader keeps the key in an application
    /// secret and publishes the CSR in the application bag; other units get `None`.
    App,
}

/// The requirer on one endpoint.
#[derive(Debug, Clone)]
pub struct TlsRequirer {
    endpoint: String,
    mode: Mode,
    renewal_fraction: f64,
    now: Option<i64>,
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

/// RFC 3339 in UTC, as `secret-set --expire` takes it.
fn rfc3339(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn bag<const N: usize>(pairs: [(&str, String); N]) -> Bag {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn get_owned(ctx: &mut Context<'_>, label: &str) -> Result<Option<Bag>> {
    match ctx.get_secret(None, Some(label), SecretRead::Refresh) {
        Ok(bag) => Ok(Some(bag)),
        Err(Error::SecretNotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What the provider says about our CSR.
enum Answer {
    /// A certificate we accept.
    Valid(ProvidedCertificate),
    /// Revoked by the provider.
    Revoked,
    /// Nothing usable for our CSR.
    Missing,
    /// The provider's bag does not parse: keep what we have and wait for a fix.
    Unreadable,
}

impl TlsRequirer {
    /// A unit-mode requirer on `endpoint` (e.g. `certificates`), renewing at 90% of the
    /// validity.
    pub fn new(endpoint: &str) -> Self {
        TlsRequirer {
            endpoint: endpoint.into(),
            mode: Mode::Unit,
            renewal_fraction: 0.9,
            now: None,
        }
    }

    /// Asks for the unit's certificate ([`Mode::Unit`], the default) or the
    /// application's ([`Mode::App`]).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    fn owner(&self) -> SecretOwner {
        match self.mode {
            Mode::Unit => SecretOwner::Unit,
            Mode::App => SecretOwner::Application,
        }
    }

    /// The bag this requirer publishes its CSRs in, as it stands.
    fn published(&self, ctx: &mut Context<'_>, rel: &charm::RelationId) -> Result<Bag> {
        match self.mode {
            Mode::Unit => ctx.unit_data(rel),
            Mode::App => ctx.app_data(rel),
        }
    }

    fn publish(&self, ctx: &mut Context<'_>, rel: &charm::RelationId, data: &Bag) -> Result<()> {
        match self.mode {
            Mode::Unit => ctx.set_unit_data(rel, data),
            Mode::App => ctx.set_app_data(rel, data),
        }
    }

    /// Renews once `fraction` of the certificate's validity has passed; Canonical's
    /// library accepts 0.5 < fraction ≤ 1, and so does this.
    pub fn renewal_fraction(mut self, fraction: f64) -> std::result::Result<Self, TlsError> {
        if !(fraction > 0.5 && fraction <= 1.0) {
            return Err(TlsError::Config(format!(
                "renewal fraction {fraction} is not in (0.5, 1]"
            )));
        }
        self.renewal_fraction = fraction;
        Ok(self)
    }

    /// Uses `unix_seconds` as the current time instead of the system clock (replays and
    /// tests).
    pub fn at_time(mut self, unix_seconds: i64) -> Self {
        self.now = Some(unix_seconds);
        self
    }

    fn now(&self) -> i64 {
        self.now
            .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp())
    }

    fn scope(&self) -> &'static str {
        match self.mode {
            Mode::Unit => "",
            Mode::App => "-app",
        }
    }

    fn key_label(&self) -> String {
        format!("{}{}-private-key", self.endpoint, self.scope())
    }

    /// The label of the secret holding the certificate in use; its expiry is the
    /// renewal time.
    pub fn certificate_label(&self) -> String {
        format!("{}{}-certificate", self.endpoint, self.scope())
    }

    fn tls_err(&self, e: TlsError) -> Error {
        Error::Charm(format!("tls-certificates on {}: {e}", self.endpoint))
    }

    /// A new CSR for `request` signed by `key`, different from `old` (CSRs with the
    /// same content differ only by their signature, so try again in the unlikely case of
    /// a deterministic signer).
    fn new_csr(&self, key: &str, request: &CsrRequest, old: Option<&str>) -> Result<String> {
        for _ in 0..4 {
            let csr = generate_csr(key, request).map_err(|e| self.tls_err(e))?;
            if Some(csr.trim()) != old.map(str::trim) {
                return Ok(csr);
            }
        }
        Err(self.tls_err(TlsError::Csr(
            "the signer keeps producing the same CSR, so it cannot be renewed".into(),
        )))
    }

    /// Makes sure our key and a CSR for `request` exist and are published, renews when
    /// due, and returns the certificate in use once the provider has issued one. `None`
    /// without a relation, while waiting for a first (or, after revocation, a fresh)
    /// certificate, and in app mode on units that are not the leader. Provider data that
    /// does not parse is logged naming the relation and otherwise ignored: the
    /// certificate in use stays in use.
    pub fn reconcile(&self, ctx: &mut Context<'_>, request: &CsrRequest) -> Result<Option<Issued>> {
        let Some(rel) = ctx.relation(&self.endpoint)? else {
            return Ok(None);
        };
        if self.mode == Mode::App && !ctx.is_leader()? {
            return Ok(None);
        }
        let now = self.now();
        let wanted = fingerprint(request);
        let key_label = self.key_label();
        let cert_label = self.certificate_label();

        // 1. Key and CSR.
        let existing = get_owned(ctx, &key_label)?;
        let key = match existing.as_ref().and_then(|b| b.get("private-key")) {
            Some(k) => k.clone(),
            None => generate_private_key().map_err(|e| self.tls_err(e))?,
        };
        let mut csr = match &existing {
            Some(b) if b.get("request") == Some(&wanted) => {
                b.get("csr").cloned().unwrap_or_default()
            }
            _ => String::new(),
        };
        let mut key_dirty = existing.is_none();
        if csr.is_empty() {
            csr = self.new_csr(&key, request, None)?;
            key_dirty = true;
        }

        // 2. The certificate in use, if any, and why it may need replacing.
        let stored = get_owned(ctx, &cert_label)?;
        let stored_current = stored
            .as_ref()
            .filter(|s| s.get("csr").map(|c| c.trim()) == Some(csr.trim()))
            .is_some();
        let expired_event = match ctx.event().clone() {
            Event::SecretExpired(e) => {
                e.label.as_deref() == Some(cert_label.as_str())
                    || stored.is_some() && self.is_cert_secret(ctx, &e.id)
            }
            _ => false,
        };
        let answer = self.answer(ctx, &rel, &csr, &key)?;
        let mut forget_stored = false;
        let mut renew = false;
        match &answer {
            Answer::Revoked => {
                ctx.log(
                    LogLevel::Warning,
                    &format!(
                        "{}:{} the provider revoked our certificate; asking for a new one",
                        self.endpoint, rel.id
                    ),
                )?;
                forget_stored = stored_current;
                renew = true;
            }
            Answer::Missing if stored_current => {
                ctx.log(
                    LogLevel::Warning,
                    &format!(
                        "{}:{} the provider no longer lists our certificate; asking again",
                        self.endpoint, rel.id
                    ),
                )?;
                forget_stored = true;
                renew = true;
            }
            Answer::Valid(c) if stored_current => {
                let due = renewal_due(&c.certificate, self.renewal_fraction)
                    .map_err(|e| self.tls_err(e))?;
                if expired_event || now >= due {
                    ctx.log(
                        LogLevel::Info,
                        &format!(
                            "{}:{} renewing the certificate (due {})",
                            self.endpoint,
                            rel.id,
                            rfc3339(due)
                        ),
                    )?;
                    renew = true;
                }
            }
            _ => {}
        }

        // 3. A certificate for our CSR: keep it (unless we are renewing it away).
        let mut in_use: Option<Bag> = if forget_stored { None } else { stored.clone() };
        if let Answer::Valid(c) = &answer {
            if !renew {
                let due = renewal_due(&c.certificate, self.renewal_fraction)
                    .map_err(|e| self.tls_err(e))?;
                let content = bag([
                    ("certificate", c.certificate.clone()),
                    ("ca-certificate", c.ca.clone()),
                    ("chain", dumps(&c.chain)),
                    ("csr", csr.clone()),
                    ("request", wanted.clone()),
                ]);
                let opts = SecretOptions {
                    expire: Some(rfc3339(due)),
                    ..SecretOptions::default()
                };
                match &stored {
                    Some(old) if old.get("certificate") == Some(&c.certificate) => {}
                    Some(_) => {
                        let info = ctx.secret_info(None, Some(&cert_label))?;
                        ctx.set_secret(&info.id, &content, &opts)?;
                        // The old revision may have expired; Juju repeats secret-expired
                        // until it is gone.
                        ctx.remove_secret(&info.id, Some(info.revision))?;
                    }
                    None => {
                        ctx.add_secret(
                            &content,
                            self.owner(),
                            &SecretOptions {
                                label: Some(cert_label.clone()),
                                description: Some(format!(
                                    "certificate in use on {}; expires when it is due for renewal",
                                    self.endpoint
                                )),
                                ..opts
                            },
                        )?;
                    }
                }
                in_use = Some(content);
            }
        }
        if forget_stored {
            let info = ctx.secret_info(None, Some(&cert_label))?;
            ctx.remove_secret(&info.id, None)?;
        }

        // 4. Renewal: a new CSR with the same key replaces the old one.
        if renew {
            csr = self.new_csr(&key, request, Some(&csr))?;
            key_dirty = true;
        }
        if key_dirty {
            let content = bag([
                ("private-key", key.clone()),
                ("csr", csr.clone()),
                ("request", wanted.clone()),
            ]);
            match &existing {
                Some(_) => {
                    let info = ctx.secret_info(None, Some(&key_label))?;
                    ctx.set_secret(&info.id, &content, &SecretOptions::default())?;
                }
                None => {
                    ctx.add_secret(
                        &content,
                        self.owner(),
                        &SecretOptions {
                            label: Some(key_label.clone()),
                            description: Some(format!("private key for {}", self.endpoint)),
                            ..Default::default()
                        },
                    )?;
                }
            }
        }
        let published = dumps(&vec![RequestedCertificate {
            // Without the final newline, as Canonical's library publishes a CSR.
            certificate_signing_request: csr.trim().to_string(),
            ca: false,
        }]);
        if self.published(ctx, &rel)?.get(REQUESTS_KEY) != Some(&published) {
            self.publish(ctx, &rel, &bag([(REQUESTS_KEY, published)]))?;
        }

        // 5. What callers use: the accepted certificate, or while a renewal is pending
        //    the previous one for the same request as long as it is still valid.
        let Some(content) = in_use.filter(|c| c.get("request") == Some(&wanted)) else {
            return Ok(None);
        };
        let certificate = content.get("certificate").cloned().unwrap_or_default();
        let Ok((_, not_after)) = certificate_validity(&certificate) else {
            return Ok(None);
        };
        if now >= not_after || !certificate_matches_key(&certificate, &key).unwrap_or(false) {
            return Ok(None);
        }
        let renew_at =
            renewal_due(&certificate, self.renewal_fraction).map_err(|e| self.tls_err(e))?;
        Ok(Some(Issued {
            certificate,
            ca: content.get("ca-certificate").cloned().unwrap_or_default(),
            chain: content
                .get("chain")
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or_default(),
            private_key: key,
            renew_at,
            expires_at: not_after,
        }))
    }

    fn is_cert_secret(&self, ctx: &mut Context<'_>, id: &str) -> bool {
        ctx.secret_info(None, Some(&self.certificate_label()))
            .is_ok_and(|info| info.id == id)
    }

    /// The provider's answer to `csr`: accepted only when the CSR is ours, the public key
    /// is ours, and it is not a CA certificate (we never ask for one).
    fn answer(
        &self,
        ctx: &mut Context<'_>,
        rel: &charm::RelationId,
        csr: &str,
        key: &str,
    ) -> Result<Answer> {
        let provider = ctx.remote_app_data(rel)?;
        let Some(text) = provider.get(CERTIFICATES_KEY) else {
            return Ok(Answer::Missing);
        };
        let certs = match parse_certificates(text) {
            Ok(certs) => certs,
            Err(e) => {
                // Outside input: failing the hook would stall the whole charm on
                // another application's bug, and dropping our certificate would take
                // TLS down; keep what we have, as Canonical's library does.
                ctx.log(
                    LogLevel::Warning,
                    &format!(
                        "{}:{} ignoring the provider's {CERTIFICATES_KEY}: {e}",
                        self.endpoint, rel.id
                    ),
                )?;
                return Ok(Answer::Unreadable);
            }
        };
        let mut revoked = false;
        for c in certs {
            if c.certificate_signing_request.trim() != csr.trim() {
                continue;
            }
            if c.revoked == Some(true) {
                revoked = true;
                continue;
            }
            let ok = certificate_matches_csr(&c.certificate, csr).unwrap_or(false)
                && certificate_matches_key(&c.certificate, key).unwrap_or(false)
                && !certificate_is_ca(&c.certificate).unwrap_or(true);
            if ok {
                return Ok(Answer::Valid(c));
            }
            ctx.log(
                LogLevel::Warning,
                &format!(
                    "{}:{} ignoring a certificate that does not match our key or is a CA",
                    self.endpoint, rel.id
                ),
            )?;
        }
        Ok(if revoked {
            Answer::Revoked
        } else {
            Answer::Missing
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn renewal_fraction_is_bounded_as_upstream() {
        assert!(TlsRequirer::new("c").renewal_fraction(0.5).is_err());
        assert!(TlsRequirer::new("c").renewal_fraction(1.01).is_err());
        assert!(TlsRequirer::new("c").renewal_fraction(0.75).is_ok());
    }
}
