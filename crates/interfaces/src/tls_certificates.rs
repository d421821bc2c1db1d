//! `tls-certificates` (v4): the databag schema, keys and CSRs for requirers, and a
//! certificate authority for providers.
//!
//! Requirers publish `certificate_signing_requests` (a JSON list of
//! `{"certificate_signing_request", "ca"}`); providers answer in their app bag with
//! `certificates` (a JSON list of `{"ca", "certificate_signing_request", "certificate",
//! "chain", "revoked"?}`). Each top-level value is JSON text written as Python's
//! `json.dumps` writes it, keys in the order of Canonical's models and PEMs without
//! their final newline, so bags compare byte for byte with Canonical's library.
//!
//! ```
//! use interfaces::tls_certificates::{CertificateAuthority, CaConfig, CsrPolicy, CsrRequest, generate_private_key, generate_csr, validate_csr};
//!
//! let ca = CertificateAuthority::generate(&CaConfig::new("Ward CA"))?;
//! let key = generate_private_key()?;
//! let csr = generate_csr(&key, &CsrRequest::new("db-0").dns("db-0.local").ip("127.1.0.1".parse().unwrap()))?;
//! let checked = validate_csr(&csr, false, &CsrPolicy::default())?;
//! let cert = ca.sign(&checked, 90)?;
//! assert!(interfaces::tls_certificates::certificate_matches_key(&cert, &key)?);
//! # Ok::<(), interfaces::tls_certificates::TlsError>(())
//! ```

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

/// What went wrong, naming the input.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A databag value that does not follow the schema.
    #[error("invalid {field} in relation data: {reason}")]
    Databag {
        /// The databag key.
        field: String,
        /// Why.
        reason: String,
    },
    /// A CSR that is refused.
    #[error("certificate signing request refused: {0}")]
    Csr(String),
    /// A certificate that cannot be read.
    #[error("invalid certificate: {0}")]
    Certificate(String),
    /// A key that cannot be read or made.
    #[error("invalid private key: {0}")]
    Key(String),
    /// Signing failed.
    #[error("cannot sign: {0}")]
    Sign(String),
    /// A CA configuration that is refused.
    #[error("invalid CA configuration: {0}")]
    Config(String),
}

type Result<T> = std::result::Result<T, TlsError>;

// ------------------------------------------------------------------ schema

/// One request in a requirer's `certificate_signing_requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedCertificate {
    /// The CSR, PEM.
    pub certificate_signing_request: String,
    /// Whether a CA certificate is asked for. Canonical's model types it `bool | None`
    /// and reads `null` as no, so `null` is read as `false` here too.
    #[serde(deserialize_with = "null_is_false")]
    pub ca: bool,
}

fn null_is_false<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

/// One entry of a provider's `certificates`. The fields are in the order Canonical's
/// library writes them (its `_Certificate` model), which is the order they serialise in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvidedCertificate {
    /// The issuing CA, PEM.
    pub ca: String,
    /// The CSR it answers, PEM.
    pub certificate_signing_request: String,
    /// The certificate, PEM.
    pub certificate: String,
    /// Leaf first, then the CA.
    pub chain: Vec<String>,
    /// Set when the provider revoked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<bool>,
}

/// The requirer's databag key.
pub const REQUESTS_KEY: &str = "certificate_signing_requests";
/// The provider's databag key.
pub const CERTIFICATES_KEY: &str = "certificates";

/// Writes JSON as Python's `json.dumps` does by default (`", "` and `": "`).
pub fn dumps<T: Serialize>(value: &T) -> String {
    struct PythonStyle;
    impl serde_json::ser::Formatter for PythonStyle {
        fn begin_array_value<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            if first {
                Ok(())
            } else {
                w.write_all(b", ")
            }
        }
        fn begin_object_key<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            if first {
                Ok(())
            } else {
                w.write_all(b", ")
            }
        }
        fn begin_object_value<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
        ) -> std::io::Result<()> {
            w.write_all(b": ")
        }
    }
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonStyle);
    value.serialize(&mut ser).expect("schema types serialise");
    String::from_utf8(out).expect("JSON is UTF-8")
}

fn parse_list<T: serde::de::DeserializeOwned>(field: &str, text: &str) -> Result<Vec<T>> {
    serde_json::from_str(text).map_err(|e| TlsError::Databag {
        field: field.into(),
        reason: e.to_string(),
    })
}

/// Parses a requirer's `certificate_signing_requests` value.
pub fn parse_requests(text: &str) -> Result<Vec<RequestedCertificate>> {
    parse_list(REQUESTS_KEY, text)
}

/// Parses a provider's `certificates` value.
pub fn parse_certificates(text: &str) -> Result<Vec<ProvidedCertificate>> {
    parse_list(CERTIFICATES_KEY, text)
}

// ------------------------------------------------------------------ keys and CSRs

/// A new ECDSA P-256 private key, PKCS#8 PEM.
pub fn generate_private_key() -> Result<String> {
    generate_private_key_for(KeyAlgorithm::EcdsaP256)
}

/// The kind of private key to make.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 (`ecdsa-p256`), signing with SHA-256.
    #[default]
    EcdsaP256,
    /// RSA, 2048 bits, e = 65537 (`rsa-2048`), signing PKCS#1 v1.5 with SHA-256: what
    /// Canonical's self-signed-certificates makes.
    Rsa2048,
}

impl KeyAlgorithm {
    /// Every algorithm, by name.
    pub const ALL: [KeyAlgorithm; 2] = [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048];

    /// Its config name: `ecdsa-p256` or `rsa-2048`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
        }
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self> {
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                TlsError::Config(format!(
                    "key algorithm {s:?} is not one of ecdsa-p256, rsa-2048"
                ))
            })
    }
}

/// A new private key of `algorithm`, PKCS#8 PEM.
pub fn generate_private_key_for(algorithm: KeyAlgorithm) -> Result<String> {
    key_pair(algorithm).map(|k| k.serialize_pem())
}

fn key_pair(algorithm: KeyAlgorithm) -> Result<KeyPair> {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => KeyPair::generate().map_err(|e| TlsError::Key(e.to_string())),
        KeyAlgorithm::Rsa2048 => {
            use rsa::pkcs8::EncodePrivateKey;
            // rcgen (on ring) signs with RSA keys but cannot make them.
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
                .map_err(|e| TlsError::Key(format!("cannot make an RSA key: {e}")))?;
            let der = key
                .to_pkcs8_der()
                .map_err(|e| TlsError::Key(format!("cannot encode the RSA key: {e}")))?;
            KeyPair::try_from(der.as_bytes()).map_err(|e| TlsError::Key(e.to_string()))
        }
    }
}

/// What a requirer asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsrRequest {
    /// Subject common name.
    pub common_name: String,
    /// Subject organization.
    pub organization: Option<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
}

impl CsrRequest {
    /// A request for `common_name` (also added as a DNS SAN when it is a valid name).
    pub fn new(common_name: &str) -> Self {
        Self {
            common_name: common_name.into(),
            ..Self::default()
        }
    }
    /// Adds a DNS SAN.
    pub fn dns(mut self, name: &str) -> Self {
        self.dns_names.push(name.into());
        self
    }
    /// Adds an IP SAN.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip_addresses.push(ip);
        self
    }
}

/// A CSR for `request`, signed with `key_pem`, PEM (without a final newline, as
/// Canonical's library writes PEMs).
pub fn generate_csr(key_pem: &str, request: &CsrRequest) -> Result<String> {
    let key = KeyPair::from_pem(key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, request.common_name.as_str());
    if let Some(o) = &request.organization {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    params.distinguished_name = dn;
    for d in &request.dns_names {
        let name = d
            .clone()
            .try_into()
            .map_err(|_| TlsError::Csr(format!("invalid DNS name {d:?}")))?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    for ip in &request.ip_addresses {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map(|pem| pem.trim_end().to_string())
        .map_err(|e| TlsError::Csr(e.to_string()))
}

/// Limits a provider applies to the CSRs it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrPolicy {
    /// Whether `ca: true` requests may be signed.
    pub allow_ca: bool,
    /// Most subject alternative names in one CSR.
    pub max_sans: usize,
}

impl Default for CsrPolicy {
    fn default() -> Self {
        Self {
            allow_ca: false,
            max_sans: 100,
        }
    }
}

/// A CSR whose signature and content passed the checks.
#[derive(Debug)]
pub struct ValidatedCsr {
    /// What rcgen read from the CSR (its signature verified there, once).
    params: CertificateParams,
    public_key: rcgen::PublicKey,
    /// Subject common name.
    pub common_name: String,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ip_addresses: Vec<IpAddr>,
    /// Whether a CA certificate was asked for (and allowed).
    pub is_ca: bool,
    /// The CSR's SubjectPublicKeyInfo, DER.
    pub public_key_info: Vec<u8>,
}

fn valid_dns_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    labels.iter().enumerate().all(|(i, l)| {
        (*l == "*" && i == 0 && labels.len() > 2)
            || (!l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
    })
}

fn pem_der(text: &str, label: &str) -> std::result::Result<Vec<u8>, String> {
    let text = text.trim();
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = text
        .strip_prefix(&begin)
        .and_then(|t| t.strip_suffix(&end))
        .ok_or_else(|| format!("not a PEM {label}"))?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    decode_base64(&b64).ok_or_else(|| format!("PEM {label} is not valid base64"))
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Checks a requirer's CSR: it parses, its self-signature verifies, its names are sane,
/// and a CA certificate is asked for only where `policy` allows.
pub fn validate_csr(pem: &str, ca: bool, policy: &CsrPolicy) -> Result<ValidatedCsr> {
    if pem.len() > 64 * 1024 {
        return Err(TlsError::Csr(format!(
            "{} bytes is too large for a CSR",
            pem.len()
        )));
    }
    let der = pem_der(pem, "CERTIFICATE REQUEST").map_err(TlsError::Csr)?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| TlsError::Csr(format!("does not parse: {e}")))?;
    // rcgen parses the CSR again and verifies its signature; doing the verification only
    // there keeps it to once per CSR, the costliest step of validating and signing.
    let request =
        CertificateSigningRequestParams::from_der(&der.as_slice().into()).map_err(|e| match e {
            rcgen::Error::RingUnspecified => TlsError::Csr("its signature does not verify".into()),
            other => TlsError::Csr(format!("cannot be used: {other}")),
        })?;
    let info = &csr.certification_request_info;
    let common_name = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string();
    if common_name.len() > 64 {
        return Err(TlsError::Csr(format!(
            "common name is {} characters (at most 64)",
            common_name.len()
        )));
    }
    let (mut dns_names, mut ip_addresses) = (Vec::new(), Vec::new());
    let mut count = 0;
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                count += 1;
                if count > policy.max_sans {
                    return Err(TlsError::Csr(format!(
                        "more than {} subject alternative names",
                        policy.max_sans
                    )));
                }
                match name {
                    GeneralName::DNSName(d) => {
                        if !valid_dns_name(d) {
                            return Err(TlsError::Csr(format!("invalid DNS name {d:?}")));
                        }
                        dns_names.push(d.to_string());
                    }
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => ip_addresses
                            .push(IpAddr::from(<[u8; 4]>::try_from(*b).expect("4 bytes"))),
                        16 => ip_addresses
                            .push(IpAddr::from(<[u8; 16]>::try_from(*b).expect("16 bytes"))),
                        n => return Err(TlsError::Csr(format!("an IP address of {n} bytes"))),
                    },
                    other => {
                        return Err(TlsError::Csr(format!(
                            "unsupported subject alternative name {other:?}"
                        )))
                    }
                }
            }
        }
    }
    if common_name.is_empty() && count == 0 {
        return Err(TlsError::Csr(
            "neither a common name nor subject alternative names".into(),
        ));
    }
    if ca && !policy.allow_ca {
        return Err(TlsError::Csr(
            "a CA certificate was requested, which this provider does not issue".into(),
        ));
    }
    let public_key_info = info.subject_pki.raw.to_vec();
    Ok(ValidatedCsr {
        params: request.params,
        public_key: request.public_key,
        common_name,
        dns_names,
        ip_addresses,
        is_ca: ca,
        public_key_info,
    })
}

// ------------------------------------------------------------------ the CA

/// How to make a CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaConfig {
    /// Subject common name.
    pub common_name: String,
    /// Subject organization.
    pub organization: Option<String>,
    /// Subject country (two letters).
    pub country: Option<String>,
    /// Validity in days.
    pub validity_days: u32,
    /// The CA key's algorithm.
    pub key_algorithm: KeyAlgorithm,
}

impl CaConfig {
    /// A CA named `common_name`, valid 365 days, with an ECDSA P-256 key.
    pub fn new(common_name: &str) -> Self {
        Self {
            common_name: common_name.into(),
            organization: None,
            country: None,
            validity_days: 365,
            key_algorithm: KeyAlgorithm::EcdsaP256,
        }
    }
}

/// A certificate authority: its certificate and key, and signing.
pub struct CertificateAuthority {
    cert_pem: String,
    key_pem: String,
    issuer: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("CertificateAuthority")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // non-zero, full length
    SerialNumber::from_slice(&bytes)
}

impl CertificateAuthority {
    /// A new self-signed CA.
    pub fn generate(cfg: &CaConfig) -> Result<Self> {
        if cfg.common_name.trim().is_empty() || cfg.common_name.len() > 64 {
            return Err(TlsError::Config(format!(
                "ca-common-name {:?} must be 1 to 64 characters",
                cfg.common_name
            )));
        }
        if let Some(c) = &cfg.country {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(TlsError::Config(format!(
                    "ca-country {c:?} must be two capital letters"
                )));
            }
        }
        if cfg.validity_days == 0 {
            return Err(TlsError::Config(
                "root-ca-validity must be at least one day".into(),
            ));
        }
        let key = key_pair(cfg.key_algorithm)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cfg.common_name.as_str());
        if let Some(o) = &cfg.organization {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        if let Some(c) = &cfg.country {
            dn.push(DnType::CountryName, c.as_str());
        }
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(cfg.validity_days.into());
        let cert = params
            .self_signed(&key)
            .map_err(|e| TlsError::Sign(e.to_string()))?;
        Ok(Self {
            cert_pem: cert.pem().trim_end().to_string(),
            key_pem: key.serialize_pem(),
            issuer: cert,
            key,
        })
    }

    /// A CA from its stored certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem)
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        // rcgen signs with an issuer object; rebuilding it from the stored certificate
        // keeps the subject and key, which is all an issued certificate refers to.
        let issuer = params
            .self_signed(&key)
            .map_err(|e| TlsError::Sign(e.to_string()))?;
        if !certificate_matches_key(cert_pem, key_pem)? {
            return Err(TlsError::Key(
                "does not belong to the CA certificate".into(),
            ));
        }
        Ok(Self {
            cert_pem: cert_pem.trim().to_string(),
            key_pem: key_pem.into(),
            issuer,
            key,
        })
    }

    /// The CA certificate, PEM without a final newline.
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key, PEM (store it in a secret, nowhere else).
    pub fn private_key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Signs a validated CSR for `validity_days`: subject and SANs from the CSR, a
    /// random serial, AKI and SKI, basic constraints and key usage by CA flag. Returns
    /// the certificate as PEM without a final newline.
    pub fn sign(&self, csr: &ValidatedCsr, validity_days: u32) -> Result<String> {
        let now = time::OffsetDateTime::now_utc();
        // Five minutes back so that a requirer whose clock lags a little accepts it.
        self.sign_between(
            csr,
            now - time::Duration::minutes(5),
            now + time::Duration::days(validity_days.into()),
        )
    }

    /// Signs a validated CSR for an explicit validity window (as [`Self::sign`] does
    /// otherwise); providers with their own clock, and tests of renewal, use it.
    pub fn sign_between(
        &self,
        csr: &ValidatedCsr,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Result<String> {
        if not_after <= not_before {
            return Err(TlsError::Sign(format!(
                "notAfter {not_after} is not after notBefore {not_before}"
            )));
        }
        let mut params = csr.params.clone();
        let p = &mut params;
        p.serial_number = Some(random_serial());
        p.not_before = not_before;
        p.not_after = not_after;
        p.use_authority_key_identifier_extension = true;
        if csr.is_ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            p.extended_key_usages = Vec::new();
        } else {
            // rcgen's ExplicitNoCa writes `cA FALSE` explicitly, which DER forbids (it is
            // the default) and which Python's cryptography, hence Canonical's library,
            // refuses to parse. Write what DER wants instead: BasicConstraints as an empty
            // SEQUENCE, critical, and the subject key identifier rcgen then leaves out.
            p.is_ca = IsCa::NoCa;
            let mut basic =
                rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 19], vec![0x30, 0]);
            basic.set_criticality(true);
            let digest = sha2::Sha256::digest(rcgen::PublicKeyData::der_bytes(&csr.public_key));
            let mut ski = vec![0x04, 20];
            ski.extend_from_slice(&digest[..20]);
            p.custom_extensions = vec![
                rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 14], ski),
                basic,
            ];
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            p.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
        }
        params
            .signed_by(&csr.public_key, &self.issuer, &self.key)
            .map(|c| c.pem().trim_end().to_string())
            .map_err(|e| TlsError::Sign(e.to_string()))
    }
}

fn with_certificate<T>(pem: &str, f: impl FnOnce(&X509Certificate<'_>) -> T) -> Result<T> {
    let der = pem_der(pem, "CERTIFICATE").map_err(TlsError::Certificate)?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| TlsError::Certificate(e.to_string()))?;
    Ok(f(&cert))
}

/// Whether a certificate carries the public key of `key_pem`.
pub fn certificate_matches_key(cert_pem: &str, key_pem: &str) -> Result<bool> {
    let key = KeyPair::from_pem(key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
    let spki = key.public_key_der();
    with_certificate(cert_pem, |c| c.public_key().raw == spki.as_slice())
}

/// Whether a certificate carries the public key of a CSR.
pub fn certificate_matches_csr(cert_pem: &str, csr_pem: &str) -> Result<bool> {
    let der = pem_der(csr_pem, "CERTIFICATE REQUEST").map_err(TlsError::Csr)?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| TlsError::Csr(format!("does not parse: {e}")))?;
    let spki = csr.certification_request_info.subject_pki.raw.to_vec();
    with_certificate(cert_pem, |c| c.public_key().raw == spki.as_slice())
}

/// A certificate's validity window as Unix timestamps: (notBefore, notAfter).
pub fn certificate_validity(cert_pem: &str) -> Result<(i64, i64)> {
    with_certificate(cert_pem, |c| {
        (
            c.validity().not_before.timestamp(),
            c.validity().not_after.timestamp(),
        )
    })
}

/// Whether a certificate says it is a CA (basic constraints `CA:TRUE`).
pub fn certificate_is_ca(cert_pem: &str) -> Result<bool> {
    with_certificate(cert_pem, |c| {
        c.basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca)
    })
}

/// When a requirer should renew, as a Unix timestamp: once `fraction` (0.5 < f ≤ 1,
/// usually 0.9) of the certificate's whole validity, notBefore to notAfter, has passed.
pub fn renewal_due(cert_pem: &str, fraction: f64) -> Result<i64> {
    let (not_before, not_after) = certificate_validity(cert_pem)?;
    let span = (not_after - not_before) as f64;
    Ok(not_before + (span * fraction.clamp(0.0, 1.0)) as i64)
}

/// When a requirer should renew: at 90% of the certificate's remaining lifetime from
/// `now` (as Canonical's library sets its secret's expiry), as a Unix timestamp.
pub fn renewal_time(cert_pem: &str, now: i64) -> Result<i64> {
    let not_after = with_certificate(cert_pem, |c| c.validity().not_after.timestamp())?;
    Ok(now + (not_after - now) * 9 / 10)
}
