//! The tls-certificates library against OpenSSL's CLI and Canonical's databag shape.

use std::path::Path;
use std::process::Command;

use interfaces::tls_certificates::*;

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn issue(ca: &CertificateAuthority, req: &CsrRequest) -> (String, String, String) {
    let key = generate_private_key().unwrap();
    let csr = generate_csr(&key, req).unwrap();
    let checked = validate_csr(&csr, false, &CsrPolicy::default()).unwrap();
    let cert = ca.sign(&checked, 90).unwrap();
    (key, csr, cert)
}

#[test]
fn issued_certificates_verify_with_openssl_and_carry_the_requested_sans() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = CaConfig::new("Ward test CA");
    cfg.organization = Some("Ward".into());
    cfg.country = Some("GB".into());
    let ca = CertificateAuthority::generate(&cfg).unwrap();
    let req = CsrRequest::new("postgresql-0")
        .dns("postgresql-0.ward.local")
        .ip("127.1.0.1".parse().unwrap());
    let (key, csr, cert) = issue(&ca, &req);
    std::fs::write(dir.path().join("ca.pem"), ca.certificate_pem()).unwrap();
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    let (ok, out) = openssl(dir.path(), &["verify", "-CAfile", "ca.pem", "cert.pem"]);
    assert!(ok, "{out}");
    let (_, text) = openssl(dir.path(), &["x509", "-in", "cert.pem", "-noout", "-text"]);
    assert!(text.contains("DNS:postgresql-0.ward.local"), "{text}");
    assert!(text.contains("IP Address:127.1.0.1"), "{text}");
    assert!(
        text.contains("CN = postgresql-0") || text.contains("CN=postgresql-0"),
        "{text}"
    );
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    assert!(text.contains("X509v3 Subject Key Identifier"), "{text}");
    let (_, ca_text) = openssl(dir.path(), &["x509", "-in", "ca.pem", "-noout", "-text"]);
    assert!(
        ca_text.contains("CA:TRUE") && ca_text.contains("Certificate Sign"),
        "{ca_text}"
    );
    assert!(certificate_matches_key(&cert, &key).unwrap());
    assert!(certificate_matches_csr(&cert, &csr).unwrap());
    let other = generate_private_key().unwrap();
    assert!(!certificate_matches_key(&cert, &other).unwrap());
}

#[test]
fn csrs_made_by_openssl_are_signed_including_rsa() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate(&CaConfig::new("Ward test CA")).unwrap();
    for keyspec in [
        &["-newkey", "rsa:2048"][..],
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
    ] {
        let mut args = vec![
            "req",
            "-new",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "r.csr",
            "-subj",
            "/CN=pgbouncer-0",
            "-addext",
            "subjectAltName=DNS:pgbouncer-0,IP:127.1.0.9",
        ];
        args.extend_from_slice(keyspec);
        let (ok, out) = openssl(dir.path(), &args);
        assert!(ok, "{out}");
        let csr = std::fs::read_to_string(dir.path().join("r.csr")).unwrap();
        let checked = validate_csr(&csr, false, &CsrPolicy::default()).unwrap();
        assert_eq!(checked.dns_names, ["pgbouncer-0"]);
        let cert = ca.sign(&checked, 30).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.certificate_pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
        let (ok, out) = openssl(dir.path(), &["verify", "-CAfile", "ca.pem", "cert.pem"]);
        assert!(ok, "{keyspec:?}: {out}");
        let key = std::fs::read_to_string(dir.path().join("k.pem")).unwrap();
        if keyspec[1].starts_with("ec") {
            assert!(certificate_matches_key(&cert, &key).unwrap());
        }
    }
}

#[test]
fn a_stored_ca_keeps_signing_and_a_ca_request_gets_ca_true_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let first = CertificateAuthority::generate(&CaConfig::new("Ward test CA")).unwrap();
    let ca =
        CertificateAuthority::from_pem(first.certificate_pem(), first.private_key_pem()).unwrap();
    let key = generate_private_key().unwrap();
    let csr = generate_csr(&key, &CsrRequest::new("intermediate")).unwrap();
    let refused = validate_csr(&csr, true, &CsrPolicy::default()).unwrap_err();
    assert!(
        refused.to_string().contains("CA certificate was requested"),
        "{refused}"
    );
    let checked = validate_csr(
        &csr,
        true,
        &CsrPolicy {
            allow_ca: true,
            ..CsrPolicy::default()
        },
    )
    .unwrap();
    let cert = ca.sign(&checked, 30).unwrap();
    std::fs::write(dir.path().join("ca.pem"), first.certificate_pem()).unwrap();
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    let (ok, out) = openssl(dir.path(), &["verify", "-CAfile", "ca.pem", "cert.pem"]);
    assert!(ok, "{out}");
    let (_, text) = openssl(dir.path(), &["x509", "-in", "cert.pem", "-noout", "-text"]);
    assert!(text.contains("CA:TRUE"), "{text}");
    // A key that is not the CA's is refused.
    let wrong = generate_private_key().unwrap();
    assert!(CertificateAuthority::from_pem(first.certificate_pem(), &wrong).is_err());
    assert!(
        !format!("{ca:?}").contains("PRIVATE KEY"),
        "Debug must not show the key"
    );
}

#[test]
fn bad_csrs_are_refused_with_a_reason() {
    let key = generate_private_key().unwrap();
    let good = generate_csr(&key, &CsrRequest::new("db-0").dns("db-0")).unwrap();
    let p = CsrPolicy::default();
    let err = validate_csr("not a csr", false, &p).unwrap_err();
    assert!(err.to_string().contains("PEM"), "{err}");
    // Flip one byte of the signature (the DER's tail).
    let der_b64: String = good.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut chars: Vec<char> = der_b64.chars().collect();
    let i = chars.len() - 6;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        chars.iter().collect::<String>()
    );
    let err = validate_csr(&tampered, false, &p).unwrap_err();
    assert!(matches!(err, TlsError::Csr(_)), "{err}");
    let mut many = CsrRequest::new("x");
    for i in 0..150 {
        many = many.dns(&format!("n{i}.example.com"));
    }
    let err = validate_csr(&generate_csr(&key, &many).unwrap(), false, &p).unwrap_err();
    assert!(err.to_string().contains("more than 100"), "{err}");
    let err = validate_csr(
        &generate_csr(&key, &CsrRequest::new("x").dns("bad_name!.example")).unwrap(),
        false,
        &p,
    )
    .unwrap_err();
    assert!(err.to_string().contains("invalid DNS name"), "{err}");
    let err = validate_csr(
        &generate_csr(&key, &CsrRequest::new("x").dns("a.*.example.com")).unwrap(),
        false,
        &p,
    )
    .unwrap_err();
    assert!(err.to_string().contains("invalid DNS name"), "{err}");
    assert!(validate_csr(
        &generate_csr(&key, &CsrRequest::new("x").dns("*.example.com")).unwrap(),
        false,
        &p
    )
    .is_ok());
}

#[test]
fn databags_match_the_python_library_byte_for_byte() {
    let reqs = vec![RequestedCertificate {
        certificate_signing_request:
            "-----BEGIN CERTIFICATE REQUEST-----\nMII\n-----END CERTIFICATE REQUEST-----".into(),
        ca: false,
    }];
    // json.dumps([{"certificate_signing_request": csr, "ca": False}])
    assert_eq!(
        dumps(&reqs),
        r#"[{"certificate_signing_request": "-----BEGIN CERTIFICATE REQUEST-----\nMII\n-----END CERTIFICATE REQUEST-----", "ca": false}]"#
    );
    assert_eq!(parse_requests(&dumps(&reqs)).unwrap(), reqs);
    // `"ca": null` reads as false, as Canonical's `bool | None` model reads it; a
    // missing `ca` is refused, as there (the field has no default).
    assert_eq!(
        parse_requests(r#"[{"certificate_signing_request": "R", "ca": null}]"#).unwrap(),
        vec![RequestedCertificate {
            certificate_signing_request: "R".into(),
            ca: false
        }]
    );
    assert!(parse_requests(r#"[{"certificate_signing_request": "R"}]"#).is_err());
    let certs = vec![ProvidedCertificate {
        certificate: "C".into(),
        certificate_signing_request: "R".into(),
        ca: "A".into(),
        chain: vec!["C".into(), "A".into()],
        revoked: None,
    }];
    assert_eq!(
        dumps(&certs),
        r#"[{"ca": "A", "certificate_signing_request": "R", "certificate": "C", "chain": ["C", "A"]}]"#
    );
    let err = parse_certificates(r#"[{"certificate": 1}]"#).unwrap_err();
    assert!(err.to_string().contains("certificates"), "{err}");
    assert!(parse_requests("not json").is_err());
}

#[test]
fn renewal_is_due_at_ninety_percent_of_the_remaining_lifetime() {
    let ca = CertificateAuthority::generate(&CaConfig::new("Ward test CA")).unwrap();
    let (_, _, cert) = issue(&ca, &CsrRequest::new("x").dns("x"));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let due = renewal_time(&cert, now).unwrap();
    let days = (due - now) as f64 / 86400.0;
    assert!((80.9..81.1).contains(&days), "{days}");
}

#[test]
fn invalid_ca_config_is_refused_naming_the_option() {
    let mut cfg = CaConfig::new("");
    assert!(CertificateAuthority::generate(&cfg)
        .unwrap_err()
        .to_string()
        .contains("ca-common-name"));
    cfg = CaConfig::new("ok");
    cfg.country = Some("Britain".into());
    assert!(CertificateAuthority::generate(&cfg)
        .unwrap_err()
        .to_string()
        .contains("ca-country"));
}

proptest::proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in ".{0,300}") {
        let _ = validate_csr(&s, false, &CsrPolicy::default());
        let _ = validate_csr(&format!("-----BEGIN CERTIFICATE REQUEST-----\n{s}\n-----END CERTIFICATE REQUEST-----"), false, &CsrPolicy::default());
        let _ = parse_requests(&s);
        let _ = certificate_matches_key(&s, &s);
    }
}
