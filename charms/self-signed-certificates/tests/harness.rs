//! The charm under the SDK's harness: signing, bad CSRs, CA rotation, config checks,
//! the CA key algorithm (checked with OpenSSL's CLI).

use charm::testing::{Harness, Relation, State};
use charm::{Event, StatusName};
use interfaces::tls_certificates::*;
use self_signed_certificates::{SelfSigned, CA_LABEL};
use serde_json::json;

const CONFIG: &str = include_str!("../../../metadata/self-signed-certificates/config.yaml");

fn harness() -> Harness {
    Harness::new("ssc/0").with_config_yaml(CONFIG).unwrap()
}

fn config(extra: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    let mut m = json!({"ca-common-name": "Ward CA", "root-ca-validity": "365d", "certificate-validity": "90d"}).as_object().unwrap().clone();
    m.extend(extra.as_object().unwrap().clone());
    m
}

fn request(cn: &str) -> (String, String) {
    let key = generate_private_key().unwrap();
    let csr = generate_csr(&key, &CsrRequest::new(cn).dns(cn)).unwrap();
    (
        key,
        dumps(&vec![RequestedCertificate {
            certificate_signing_request: csr.clone(),
            ca: false,
        }]),
    )
}

fn provided(state: &State, rel: u32) -> Vec<ProvidedCertificate> {
    parse_certificates(&state.relation(rel).unwrap().local_app_data[CERTIFICATES_KEY]).unwrap()
}

#[test]
fn signs_every_requirer_unit_and_skips_a_bad_csr_naming_its_unit() {
    let (key0, bag0) = request("pg-0");
    let (_, bag1) = request("pg-1");
    let rel = Relation::new("certificates", 7, "pg")
        .with_remote_unit("pg/0", [(REQUESTS_KEY, bag0.as_str())])
        .with_remote_unit("pg/1", [(REQUESTS_KEY, bag1.as_str())])
        .with_remote_unit(
            "pg/2",
            [(
                REQUESTS_KEY,
                r#"[{"certificate_signing_request": "garbage", "ca": false}]"#,
            )],
        );
    let state = State {
        leader: true,
        config: config(json!({})),
        relations: vec![rel.clone()],
        ..State::default()
    };
    let out = harness().run(&mut SelfSigned::default(), rel.changed(Some("pg/2")), state);
    assert!(out.error.is_none(), "{:?}", out.error);
    let certs = provided(&out.state, 7);
    assert_eq!(certs.len(), 2);
    assert!(
        certificate_matches_key(&certs[0].certificate, &key0).unwrap()
            || certificate_matches_key(&certs[1].certificate, &key0).unwrap()
    );
    assert_eq!(certs[0].chain.len(), 2);
    assert!(
        out.logs
            .iter()
            .any(|(_, m)| m.contains("pg/2") && m.contains("not signing")),
        "{:?}",
        out.logs
    );
    assert_eq!(out.state.unit_status.name, StatusName::Active);
    assert!(
        out.state.unit_status.message.contains("pg/2")
            && out.state.unit_status.message.contains("certificates:7"),
        "the status names the relation and unit: {:?}",
        out.state.unit_status
    );
    let secret = out.state.secret_by_label(CA_LABEL).unwrap();
    assert!(secret.latest_content()["private-key"].contains("PRIVATE KEY"));
    let bag_text: String = out
        .state
        .relation(7)
        .unwrap()
        .local_app_data
        .values()
        .cloned()
        .collect();
    assert!(!bag_text.contains("PRIVATE KEY"), "a key in relation data");

    // A second run keeps the same certificates (nothing re-signed).
    let again = harness().run(
        &mut SelfSigned::default(),
        Event::UpdateStatus,
        out.state.clone(),
    );
    assert_eq!(provided(&again.state, 7), certs);
}

#[test]
fn a_ca_changing_config_rotates_the_ca_and_reissues() {
    let (_, bag0) = request("pg-0");
    let rel = Relation::new("certificates", 7, "pg")
        .with_remote_unit("pg/0", [(REQUESTS_KEY, bag0.as_str())]);
    let state = State {
        leader: true,
        config: config(json!({})),
        relations: vec![rel.clone()],
        ..State::default()
    };
    let first = harness().run(&mut SelfSigned::default(), Event::ConfigChanged, state);
    let before = provided(&first.state, 7);
    let mut state = first.state.clone();
    state.config = config(json!({"ca-common-name": "Ward CA 2"}));
    let second = harness().run(&mut SelfSigned::default(), Event::ConfigChanged, state);
    assert!(second.error.is_none(), "{:?}", second.error);
    let after = provided(&second.state, 7);
    assert_ne!(before[0].ca, after[0].ca);
    assert_ne!(before[0].certificate, after[0].certificate);
    assert_eq!(
        second.state.secret_by_label(CA_LABEL).unwrap().latest(),
        2,
        "the CA secret got a new revision"
    );
    // The action rotates too.
    let third = harness().run_action(
        &mut SelfSigned::default(),
        "rotate-private-key",
        json!({}),
        second.state.clone(),
    );
    assert!(third.error.is_none(), "{:?}", third.error);
    assert_ne!(provided(&third.state, 7)[0].ca, after[0].ca);
    let ca = harness().run_action(
        &mut SelfSigned::default(),
        "get-ca-certificate",
        json!({}),
        third.state.clone(),
    );
    assert_eq!(
        ca.action.unwrap().results["ca-certificate"],
        provided(&third.state, 7)[0].ca
    );
    let issued = harness().run_action(
        &mut SelfSigned::default(),
        "get-issued-certificates",
        json!({}),
        third.state,
    );
    let text = &issued.action.unwrap().results["certificates"];
    assert_eq!(parse_certificates(text).unwrap().len(), 1);
}

#[test]
fn invalid_config_blocks_naming_the_option_and_issues_nothing() {
    let (_, bag0) = request("pg-0");
    let rel = Relation::new("certificates", 7, "pg")
        .with_remote_unit("pg/0", [(REQUESTS_KEY, bag0.as_str())]);
    for (extra, key) in [
        (json!({"certificate-validity": "300d"}), "root-ca-validity"),
        (json!({"root-ca-validity": "soon"}), "root-ca-validity"),
        (json!({"ca-country": "Britain"}), "ca-country"),
        (json!({"ca-common-name": ""}), "ca-common-name"),
        (json!({"key-algorithm": "dsa-1024"}), "key-algorithm"),
    ] {
        let state = State {
            leader: true,
            config: config(extra),
            relations: vec![rel.clone()],
            ..State::default()
        };
        let out = harness().run(&mut SelfSigned::default(), Event::ConfigChanged, state);
        assert!(out.error.is_none());
        assert_eq!(out.state.unit_status.name, StatusName::Blocked);
        assert!(
            out.state.unit_status.message.contains(key),
            "{}",
            out.state.unit_status.message
        );
        assert!(out.state.relation(7).unwrap().local_app_data.is_empty());
        assert!(out.state.secrets.is_empty());
    }
}

#[test]
fn non_leaders_issue_nothing_and_say_why() {
    let (_, bag0) = request("pg-0");
    let rel = Relation::new("certificates", 7, "pg")
        .with_remote_unit("pg/0", [(REQUESTS_KEY, bag0.as_str())]);
    let state = State {
        leader: false,
        config: config(json!({})),
        relations: vec![rel.clone()],
        ..State::default()
    };
    let out = harness().run(&mut SelfSigned::default(), rel.changed(Some("pg/0")), state);
    assert!(out.state.relation(7).unwrap().local_app_data.is_empty());
    assert_eq!(out.state.unit_status.name, StatusName::Blocked);
}

#[test]
fn the_ca_goes_out_on_send_ca_cert_and_follows_rotation() {
    let (_, bag0) = request("pg-0");
    let certs = Relation::new("certificates", 7, "pg")
        .with_remote_unit("pg/0", [(REQUESTS_KEY, bag0.as_str())]);
    let send =
        Relation::new("send-ca-cert", 9, "trusting").with_remote_app_data([("version", "1")]);
    let state = State {
        leader: true,
        config: config(json!({})),
        relations: vec![certs, send],
        ..State::default()
    };
    let out = harness().run(&mut SelfSigned::default(), Event::UpdateStatus, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    let ca = provided(&out.state, 7)[0].ca.clone();
    let bag = &out.state.relation(9).unwrap().local_app_data;
    assert_eq!(bag["version"], "1");
    assert_eq!(
        interfaces::certificate_transfer::parse_provider_data(bag, &[]).unwrap(),
        [ca.clone()].into()
    );
    let rotated = harness().run_action(
        &mut SelfSigned::default(),
        "rotate-private-key",
        json!({}),
        out.state,
    );
    let bag = &rotated.state.relation(9).unwrap().local_app_data;
    let sent = interfaces::certificate_transfer::parse_provider_data(bag, &[]).unwrap();
    assert!(!sent.contains(&ca));
    assert!(sent.contains(&provided(&rotated.state, 7)[0].ca));
}

#[test]
fn certificate_limit_leaves_extra_csrs_waiting() {
    let (_, bag0) = request("pg-0");
    let (_, bag1) = request("pg-1");
    let rel = Relation::new("certificates", 7, "pg")
        .with_remote_unit("pg/0", [(REQUESTS_KEY, bag0.as_str())])
        .with_remote_unit("pg/1", [(REQUESTS_KEY, bag1.as_str())]);
    let state = State {
        leader: true,
        config: config(json!({"certificate-limit": 1})),
        relations: vec![rel],
        ..State::default()
    };
    let out = harness().run(&mut SelfSigned::default(), Event::UpdateStatus, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(provided(&out.state, 7).len(), 1);
}

/// `openssl x509 -noout -text` of a PEM certificate.
fn openssl_text(pem: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["x509", "-in", "c.pem", "-noout", "-text"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `openssl verify -CAfile ca.pem cert.pem` passes.
fn openssl_verifies(ca: &str, cert: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::process::Command::new("openssl")
        .args(["verify", "-CAfile", "ca.pem", "cert.pem"])
        .current_dir(dir.path())
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn key_algorithm_chooses_the_ca_key_and_changing_it_rotates_the_ca_and_reissues() {
    let (_, bag0) = request("pg-0");
    let rel = Relation::new("certificates", 7, "pg")
        .with_remote_unit("pg/0", [(REQUESTS_KEY, bag0.as_str())]);
    let state = State {
        leader: true,
        config: config(json!({})),
        relations: vec![rel],
        ..State::default()
    };
    // The default: ECDSA P-256.
    let first = harness().run(&mut SelfSigned::default(), Event::ConfigChanged, state);
    assert!(first.error.is_none(), "{:?}", first.error);
    let p256 = provided(&first.state, 7);
    let text = openssl_text(&p256[0].ca);
    assert!(
        text.contains("id-ecPublicKey") && text.contains("prime256v1"),
        "{text}"
    );
    assert!(openssl_verifies(&p256[0].ca, &p256[0].certificate));

    // rsa-2048: a new CA with an RSA key; the certificate is re-issued under it.
    let mut state = first.state.clone();
    state.config = config(json!({"key-algorithm": "rsa-2048"}));
    let second = harness().run(&mut SelfSigned::default(), Event::ConfigChanged, state);
    assert!(second.error.is_none(), "{:?}", second.error);
    assert_eq!(second.state.unit_status.name, StatusName::Active);
    let rsa = provided(&second.state, 7);
    assert_ne!(rsa[0].ca, p256[0].ca, "a new CA");
    assert_ne!(rsa[0].certificate, p256[0].certificate, "re-issued");
    let text = openssl_text(&rsa[0].ca);
    assert!(
        text.contains("rsaEncryption") && text.contains("Public-Key: (2048 bit)"),
        "{text}"
    );
    assert!(openssl_verifies(&rsa[0].ca, &rsa[0].certificate));
    assert!(!openssl_verifies(&p256[0].ca, &rsa[0].certificate));
    let ca_secret = second.state.secret_by_label(CA_LABEL).unwrap().clone();
    assert_eq!(ca_secret.latest(), 2);

    // A quiet hook keeps the RSA CA (the stored CA matches the config).
    let again = harness().run(
        &mut SelfSigned::default(),
        Event::UpdateStatus,
        second.state.clone(),
    );
    assert_eq!(provided(&again.state, 7), rsa);

    // An invalid value blocks naming the option and the value, and keeps the CA and
    // the certificates as they were.
    let mut state = second.state.clone();
    state.config = config(json!({"key-algorithm": "ed448"}));
    let third = harness().run(&mut SelfSigned::default(), Event::ConfigChanged, state);
    assert!(third.error.is_none(), "{:?}", third.error);
    assert_eq!(third.state.unit_status.name, StatusName::Blocked);
    let msg = &third.state.unit_status.message;
    assert!(
        msg.contains("key-algorithm") && msg.contains("ed448") && msg.contains("rsa-2048"),
        "{msg}"
    );
    assert_eq!(provided(&third.state, 7), rsa);
    assert_eq!(
        third.state.secret_by_label(CA_LABEL).unwrap().latest(),
        ca_secret.latest()
    );

    // Back to the default: rotates again, to P-256.
    let mut state = third.state;
    state.config = config(json!({"key-algorithm": "ecdsa-p256"}));
    let fourth = harness().run(&mut SelfSigned::default(), Event::ConfigChanged, state);
    let back = provided(&fourth.state, 7);
    assert_ne!(back[0].ca, rsa[0].ca);
    assert!(openssl_text(&back[0].ca).contains("prime256v1"));
    assert!(openssl_verifies(&back[0].ca, &back[0].certificate));
}
