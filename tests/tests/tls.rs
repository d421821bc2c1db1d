//! The self-signed-certificates charm on the real controller signs a CSR that OpenSSL's
//! CLI made in a requirer unit; OpenSSL verifies the result and shows the SANs.

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
