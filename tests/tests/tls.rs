//! TLS on the real controller, checked with OpenSSL's CLI:
//!
//! - the self-signed-certificates charm signs a CSR that OpenSSL made in a shell
//!   requirer, rotates its CA on config, and sends it on `send-ca-cert`;
//! - a Rust requirer on `interfaces::tls_requirer` (unit and app mode) gets certificates
//!   with the SANs it asked for;
//! - Canonical's Python library (`charmlibs-interfaces-tls-certificates`, unmodified, in
//!   ops charms) gets a certificate from our CA, and serves our Rust requirer.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use controller::Controller;
use interfaces::tls_certificates::parse_certificates;
use serde_json::json;
use ward_e2e::{assert_no_hook_failed, copy_dir, workload, Model};

const TRUST_METADATA: &str = "name: trust
summary: A shell charm that only needs the CA (certificate_transfer v1).
requires:
  receive-ca-cert:
    interface: certificate_transfer
";

const TRUST_DISPATCH: &str = r#"#!/bin/sh
set -e
case "$JUJU_DISPATCH_PATH" in
  hooks/receive-ca-cert-relation-joined)
    if [ "$(is-leader --format=json)" = "true" ]; then relation-set --app version=1; fi
    ;;
  hooks/receive-ca-cert-relation-changed)
    relation-get --app --format=json - "$JUJU_REMOTE_APP" > provider.json
    n=$(python3 -c 'import json; b = json.load(open("provider.json")); print(len(json.loads(b.get("certificates", "[]"))))')
    if [ "$n" -gt 0 ]; then status-set active "trusting $n CA certificate(s)"; fi
    ;;
esac
"#;

fn settle(ctl: &Controller, what: &str, done: impl FnMut(&Controller) -> bool) {
    ward_e2e::settle(ctl, what, Duration::from_secs(60), done).unwrap_or_else(|e| panic!("{e}"));
}

/// The test Python (WARD_TEST_PYTHON), checked to have Canonical's TLS library.
fn python() -> String {
    let py = std::env::var("WARD_TEST_PYTHON").expect(
        "WARD_TEST_PYTHON must name a Python with ops and charmlibs-interfaces-tls-certificates (scripts/test.sh sets it to .venv/bin/python)",
    );
    let ok = Command::new(&py)
        .args(["-c", "import charmlibs.interfaces.tls_certificates"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{py} lacks charmlibs-interfaces-tls-certificates: run scripts/deps.sh"
    );
    py
}

/// A charm directory under `home`: `tests/charms/<src>`, with `bin` as its dispatch
/// when given (Rust charms).
fn charm(home: &Path, src: &str, bin: Option<&str>) -> std::path::PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("charms")
        .join(src);
    ward_e2e::charm_dir(home, src, &source, bin.map(Path::new)).unwrap()
}

fn ssc_charm(home: &Path) -> std::path::PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata/self-signed-certificates");
    let bin = Path::new(env!("CARGO_BIN_EXE_ssc-charm"));
    ward_e2e::charm_dir(home, "ssc", &source, Some(bin)).unwrap()
}

/// A unit's charm directory under the controller home (the process substrate's layout).
fn unit_charm_dir(ward_home: &Path, unit: &str) -> std::path::PathBuf {
    ward_home
        .join("units")
        .join(format!("unit-{}", unit.replace('/', "-")))
        .join("charm")
}

/// `openssl verify -CAfile ca.pem cert.pem` in `dir` must pass; returns
/// `openssl x509 -text` of cert.pem.
fn verified_text(dir: &Path) -> String {
    let (ok, out) = openssl(dir, &["verify", "-CAfile", "ca.pem", "cert.pem"]);
    assert!(ok, "openssl verify in {}: {out}", dir.display());
    assert!(out.contains("cert.pem: OK"), "{out}");
    let (ok, text) = openssl(dir, &["x509", "-in", "cert.pem", "-noout", "-text"]);
    assert!(ok, "{text}");
    text
}

/// Fails if any bag of `rel` holds a private key.
fn assert_no_key_in(ctl: &Controller, rel: i64, owners: &[&str]) {
    for owner in owners {
        let bag = ctl.relation_data(rel, owner).unwrap();
        assert!(
            !bag.values().any(|v| v.contains("PRIVATE KEY")),
            "a private key in {owner}'s bag of relation {rel}"
        );
    }
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_requirer_gets_a_certificate_that_openssl_verifies() {
    let home = tempfile::Builder::new()
        .prefix("wtls")
        .tempdir_in("/tmp")
        .unwrap();
    let charms = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ssc = home.path().join("ssc");
    copy_dir(&charms.join("../metadata/self-signed-certificates"), &ssc).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_ssc-charm"), ssc.join("dispatch")).unwrap();
    let req = home.path().join("req");
    copy_dir(&charms.join("charms/tls-requirer"), &req).unwrap();

    let Model { ctl, rt, .. } = Model::start(
        &home.path().join("ward"),
        Path::new(env!("CARGO_BIN_EXE_e2e-jujuc")),
        &[],
    )
    .unwrap();

    ctl.deploy("self-signed-certificates", &ssc, 1, BTreeMap::new())
        .unwrap();
    ctl.deploy("requirer", &req, 2, BTreeMap::new()).unwrap();
    let rel = ctl
        .integrate("self-signed-certificates", "requirer")
        .unwrap();
    settle(
        &ctl,
        "both requirer units to verify their certificates",
        |c| {
            ["requirer/0", "requirer/1"].iter().all(|u| {
                workload(c, u)
                    == (
                        "active".into(),
                        "certificate verified, issued by CN=self-signed-certificates-operator"
                            .into(),
                    )
            })
        },
    );

    let bag = ctl.relation_data(rel, "self-signed-certificates").unwrap();
    let certs = parse_certificates(&bag["certificates"]).unwrap();
    assert_eq!(certs.len(), 2);
    assert!(
        !bag.values().any(|v| v.contains("PRIVATE KEY")),
        "a private key in relation data"
    );
    let dir = tempfile::tempdir().unwrap();
    for (i, cert) in certs.iter().enumerate() {
        std::fs::write(dir.path().join("ca.pem"), &cert.ca).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &cert.certificate).unwrap();
        let (ok, out) = openssl(dir.path(), &["verify", "-CAfile", "ca.pem", "cert.pem"]);
        assert!(ok, "certificate {i}: {out}");
        let (_, text) = openssl(dir.path(), &["x509", "-in", "cert.pem", "-noout", "-text"]);
        assert!(text.contains("DNS:requirer.ward.local"), "{text}");
        assert!(text.contains("IP Address:127."), "{text}");
    }

    // The CA action answers with the same CA.
    let task = rt
        .block_on(ctl.run_action(
            "self-signed-certificates/0",
            "get-ca-certificate",
            json!({}),
            Duration::from_secs(30),
        ))
        .unwrap();
    assert_eq!(task.status, "completed", "{task:?}");
    assert_eq!(
        task.results["ca-certificate"].as_str().unwrap().trim(),
        certs[0].ca.trim()
    );

    // A CA-changing config rotates the CA; the requirers verify the new certificates.
    ctl.set_config(
        "self-signed-certificates",
        [("ca-common-name".to_string(), Some(json!("Ward CA 2")))].into(),
    )
    .unwrap();
    settle(&ctl, "re-issue under the new CA", |c| {
        let bag = c.relation_data(rel, "self-signed-certificates").unwrap();
        parse_certificates(&bag["certificates"])
            .unwrap()
            .iter()
            .all(|n| n.ca != certs[0].ca)
    });
    settle(&ctl, "requirers to verify again", |c| {
        ["requirer/0", "requirer/1"].iter().all(|u| {
            workload(c, u)
                == (
                    "active".into(),
                    "certificate verified, issued by CN=Ward CA 2".into(),
                )
        })
    });

    // send-ca-cert: a requirer of the certificate_transfer interface says version 1 and
    // gets the current CA in the v1 app bag.
    let trust = home.path().join("trust");
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::write(trust.join("metadata.yaml"), TRUST_METADATA).unwrap();
    std::fs::write(trust.join("dispatch"), TRUST_DISPATCH).unwrap();
    std::fs::set_permissions(
        trust.join("dispatch"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    ctl.deploy("trust", &trust, 1, BTreeMap::new()).unwrap();
    let transfer = ctl.integrate("self-signed-certificates", "trust").unwrap();
    settle(&ctl, "the trusting app to get the CA", |c| {
        workload(c, "trust/0") == ("active".into(), "trusting 1 CA certificate(s)".into())
    });
    let bag = ctl
        .relation_data(transfer, "self-signed-certificates")
        .unwrap();
    assert_eq!(bag["version"], "1");
    let sent: Vec<String> = serde_json::from_str(&bag["certificates"]).unwrap();
    let current = parse_certificates(
        &ctl.relation_data(rel, "self-signed-certificates").unwrap()["certificates"],
    )
    .unwrap()[0]
        .ca
        .clone();
    assert_eq!(sent, vec![current]);
    assert_eq!(
        ctl.relation_data(transfer, "trust").unwrap()["version"],
        "1",
        "the requirer said version 1"
    );

    // Invalid config blocks with the option named, and issues nothing new.
    ctl.set_config(
        "self-signed-certificates",
        [("ca-country".to_string(), Some(json!("Britain")))].into(),
    )
    .unwrap();
    settle(&ctl, "the CA charm to block", |c| {
        workload(c, "self-signed-certificates/0").0 == "blocked"
    });
    assert!(workload(&ctl, "self-signed-certificates/0")
        .1
        .contains("ca-country"));
    assert_no_hook_failed(&ctl);
}

#[test]
fn a_rust_requirer_gets_certificates_with_the_sans_it_asked_for_in_unit_and_app_mode() {
    let home = tempfile::Builder::new()
        .prefix("wtlsr")
        .tempdir_in("/tmp")
        .unwrap();
    let ward_home = home.path().join("ward");
    let ssc = ssc_charm(home.path());
    let req = charm(
        home.path(),
        "tls-rust-requirer",
        Some(env!("CARGO_BIN_EXE_tls-requirer-charm")),
    );
    let Model { ctl, rt: _rt, .. } =
        Model::start(&ward_home, Path::new(env!("CARGO_BIN_EXE_e2e-jujuc")), &[]).unwrap();
    ctl.deploy("ca", &ssc, 1, BTreeMap::new()).unwrap();
    ctl.deploy(
        "rustreq",
        &req,
        2,
        [("extra-san".to_string(), json!("db.ward.test"))].into(),
    )
    .unwrap();
    ctl.deploy(
        "rustapp",
        &req,
        2,
        [
            ("mode".to_string(), json!("app")),
            ("extra-san".to_string(), json!("10.9.8.7")),
        ]
        .into(),
    )
    .unwrap();
    let unit_rel = ctl.integrate("ca", "rustreq").unwrap();
    let app_rel = ctl.integrate("ca", "rustapp").unwrap();
    settle(&ctl, "the Rust requirers to get their certificates", |c| {
        let units = ward_e2e::units(c);
        let msg = |u: &str| {
            units
                .iter()
                .find(|x| x.0 == u)
                .map(|x| (x.1.clone(), x.2.clone()))
                .unwrap_or_default()
        };
        ["rustreq/0", "rustreq/1"]
            .iter()
            .all(|u| msg(u).0 == "active" && msg(u).1.starts_with("certificate issued for 127."))
            && ["rustapp/0", "rustapp/1"]
                .iter()
                .any(|u| msg(u) == ("active".into(), "certificate issued for rustapp".into()))
            && ["rustapp/0", "rustapp/1"]
                .iter()
                .all(|u| msg(u).0 == "active")
    });

    // Unit mode: each unit's CSR in its own bag; CN and IP SAN its address, DNS SANs its
    // name and the extra one.
    for unit in ["rustreq/0", "rustreq/1"] {
        let address = ward_e2e::address(&ctl, unit);
        assert!(address.starts_with("127."), "{unit} address {address:?}");
        assert!(
            ctl.relation_data(unit_rel, unit).unwrap()["certificate_signing_requests"]
                .contains("BEGIN CERTIFICATE REQUEST")
        );
        let text = verified_text(&unit_charm_dir(&ward_home, unit));
        for want in [
            format!("Subject: CN = {address}"),
            format!("IP Address:{address}"),
            format!("DNS:{}", unit.replace('/', "-")),
            "DNS:db.ward.test".to_string(),
            "Issuer: CN = self-signed-certificates-operator".to_string(),
            "CA:FALSE".to_string(),
        ] {
            assert!(text.contains(&want), "{unit}: no {want:?} in\n{text}");
        }
    }
    assert_no_key_in(&ctl, unit_rel, &["ca", "rustreq/0", "rustreq/1"]);

    // App mode: one CSR in the application's bag (by the leader), none in unit bags;
    // the leader's certificate names the application and the extra IP.
    let app_bag = ctl.relation_data(app_rel, "rustapp").unwrap();
    assert!(
        app_bag["certificate_signing_requests"].contains("BEGIN CERTIFICATE REQUEST"),
        "{app_bag:?}"
    );
    for unit in ["rustapp/0", "rustapp/1"] {
        assert!(
            !ctl.relation_data(app_rel, unit)
                .unwrap()
                .contains_key("certificate_signing_requests"),
            "{unit} published a CSR in app mode"
        );
    }
    let leader = ["rustapp/0", "rustapp/1"]
        .into_iter()
        .find(|u| workload(&ctl, u).1 == "certificate issued for rustapp")
        .unwrap();
    let text = verified_text(&unit_charm_dir(&ward_home, leader));
    for want in [
        "Subject: CN = rustapp",
        "DNS:rustapp",
        "IP Address:10.9.8.7",
    ] {
        assert!(text.contains(want), "{leader}: no {want:?} in\n{text}");
    }
    let provided =
        parse_certificates(&ctl.relation_data(app_rel, "ca").unwrap()["certificates"]).unwrap();
    assert_eq!(provided.len(), 1, "one certificate for the application");
    assert_no_key_in(&ctl, app_rel, &["ca", "rustapp", "rustapp/0", "rustapp/1"]);

    // key-algorithm rsa-2048: a new CA with an RSA key; every requirer gets a
    // certificate from it and writes it out.
    let old_ca = provided[0].ca.clone();
    ctl.set_config(
        "ca",
        [("key-algorithm".to_string(), Some(json!("rsa-2048")))].into(),
    )
    .unwrap();
    let dirs: Vec<_> = ["rustreq/0", "rustreq/1", leader]
        .iter()
        .map(|u| unit_charm_dir(&ward_home, u))
        .collect();
    settle(
        &ctl,
        "the requirers to write certificates from the RSA CA",
        |c| {
            let Ok(bag) = c.relation_data(unit_rel, "ca") else {
                return false;
            };
            let Some(new_ca) = bag
                .get("certificates")
                .and_then(|t| parse_certificates(t).ok())
                .and_then(|l| l.first().map(|p| p.ca.clone()))
            else {
                return false;
            };
            new_ca != old_ca
                && dirs.iter().all(|d| {
                    std::fs::read_to_string(d.join("ca.pem"))
                        .is_ok_and(|t| t.trim() == new_ca.trim())
                })
        },
    );
    for dir in &dirs {
        let text = verified_text(dir);
        assert!(
            text.contains("Issuer: CN = self-signed-certificates-operator"),
            "{text}"
        );
        let (_, ca_text) = openssl(dir, &["x509", "-in", "ca.pem", "-noout", "-text"]);
        assert!(
            ca_text.contains("rsaEncryption") && ca_text.contains("Public-Key: (2048 bit)"),
            "{ca_text}"
        );
    }
    assert_no_hook_failed(&ctl);
}

#[test]
fn canonicals_python_requirer_gets_a_certificate_from_our_ca() {
    let py = python();
    let home = tempfile::Builder::new()
        .prefix("wtlsp")
        .tempdir_in("/tmp")
        .unwrap();
    let ward_home = home.path().join("ward");
    let ssc = ssc_charm(home.path());
    let pyreq = charm(home.path(), "tls-ops-requirer", None);
    let Model { ctl, rt: _rt, .. } = Model::start(
        &ward_home,
        Path::new(env!("CARGO_BIN_EXE_e2e-jujuc")),
        &[("WARD_TEST_PYTHON", py.as_str())],
    )
    .unwrap();
    ctl.deploy("ca", &ssc, 1, BTreeMap::new()).unwrap();
    ctl.deploy("pyreq", &pyreq, 1, BTreeMap::new()).unwrap();
    let rel = ctl.integrate("ca", "pyreq").unwrap();
    ward_e2e::settle(
        &ctl,
        "the Python requirer's certificate",
        Duration::from_secs(180),
        |c| {
            workload(c, "pyreq/0")
                == (
                    "active".into(),
                    "certificate issued for pyreq-0.ward.test".into(),
                )
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let address = ward_e2e::address(&ctl, "pyreq/0");
    let dir = unit_charm_dir(&ward_home, "pyreq/0");
    let text = verified_text(&dir);
    for want in [
        "DNS:pyreq-0.ward.test".to_string(),
        "DNS:pyreq-0".to_string(),
        format!("IP Address:{address}"),
        "Issuer: CN = self-signed-certificates-operator".to_string(),
        "Public-Key: (2048 bit)".to_string(),
    ] {
        assert!(text.contains(&want), "no {want:?} in\n{text}");
    }
    // The CA the Python library stored is the one our charm publishes.
    let provided =
        parse_certificates(&ctl.relation_data(rel, "ca").unwrap()["certificates"]).unwrap();
    assert_eq!(provided.len(), 1);
    assert_eq!(
        std::fs::read_to_string(dir.join("ca.pem")).unwrap().trim(),
        provided[0].ca.trim()
    );
    // The bag Canonical's library wrote reads with our parser and writes back byte for
    // byte with our writer.
    let theirs = &ctl.relation_data(rel, "pyreq/0").unwrap()["certificate_signing_requests"];
    let parsed = interfaces::tls_certificates::parse_requests(theirs).unwrap();
    assert_eq!(parsed.len(), 1);
    assert_eq!(&interfaces::tls_certificates::dumps(&parsed), theirs);
    assert_no_key_in(&ctl, rel, &["ca", "pyreq", "pyreq/0"]);
    assert_no_hook_failed(&ctl);
}

#[test]
fn our_rust_requirer_accepts_a_certificate_from_canonicals_python_provider() {
    let py = python();
    let home = tempfile::Builder::new()
        .prefix("wtlsq")
        .tempdir_in("/tmp")
        .unwrap();
    let ward_home = home.path().join("ward");
    let pyprov = charm(home.path(), "tls-ops-provider", None);
    let req = charm(
        home.path(),
        "tls-rust-requirer",
        Some(env!("CARGO_BIN_EXE_tls-requirer-charm")),
    );
    let Model { ctl, rt: _rt, .. } = Model::start(
        &ward_home,
        Path::new(env!("CARGO_BIN_EXE_e2e-jujuc")),
        &[("WARD_TEST_PYTHON", py.as_str())],
    )
    .unwrap();
    ctl.deploy("pyca", &pyprov, 1, BTreeMap::new()).unwrap();
    ctl.deploy(
        "rustreq",
        &req,
        1,
        [("extra-san".to_string(), json!("api.ward.test"))].into(),
    )
    .unwrap();
    let rel = ctl.integrate("pyca", "rustreq").unwrap();
    ward_e2e::settle(
        &ctl,
        "the Rust requirer to accept the Python provider's certificate",
        Duration::from_secs(180),
        |c| {
            workload(c, "rustreq/0")
                .1
                .starts_with("certificate issued for 127.")
                && workload(c, "pyca/0") == ("active".into(), "issued 1 certificate(s)".into())
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let address = ward_e2e::address(&ctl, "rustreq/0");
    let text = verified_text(&unit_charm_dir(&ward_home, "rustreq/0"));
    for want in [
        format!("IP Address:{address}"),
        "DNS:rustreq-0".to_string(),
        "DNS:api.ward.test".to_string(),
        "Issuer: CN = Canonical library CA".to_string(),
    ] {
        assert!(text.contains(&want), "no {want:?} in\n{text}");
    }
    assert_no_key_in(&ctl, rel, &["pyca", "rustreq/0"]);
    assert_no_hook_failed(&ctl);
}
