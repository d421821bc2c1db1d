//! The tls-certificates provider helper and certificate_transfer under the SDK's
//! harness: signing across units and apps, bad CSRs named, withdrawal, idempotence,
//! CA change, limits, and the send-ca-cert bags in both schema versions.

mod common;

use std::collections::BTreeSet;

use charm::testing::{Harness, Relation, State};
use charm::{Charm, Context, Event};
use interfaces::certificate_transfer::{
    provider_app_bag, provider_unit_bag_v0, CertificateTransferProvider,
    CertificateTransferRequirer,
};
use interfaces::tls_certificates::*;
use interfaces::tls_provider::{Report, TlsProvider};

struct Provider<'a> {
    ca: &'a CertificateAuthority,
    limit: Option<usize>,
    report: Option<Report>,
}

impl Charm for Provider<'_> {
    fn handle(&mut self, ctx: &mut Context<'_>, _event: &Event) -> charm::Result<()> {
        let report = TlsProvider::new("certificates")
            .limit(self.limit)
            .reconcile(ctx, self.ca.certificate_pem(), |csr| self.ca.sign(csr, 30))?;
        if let Some(m) = report.status_message() {
            ctx.add_unit_status(charm::Status::active(m));
        }
        self.report = Some(report);
        Ok(())
    }
}

fn provider(ca: &CertificateAuthority) -> Provider<'_> {
    Provider {
        ca,
        limit: None,
        report: None,
    }
}

fn request(cn: &str, ca: bool) -> (String, String) {
    let key = generate_private_key().unwrap();
    let csr = generate_csr(&key, &CsrRequest::new(cn).dns(cn)).unwrap();
    (
        csr.clone(),
        dumps(&vec![RequestedCertificate {
            certificate_signing_request: csr,
            ca,
        }]),
    )
}

fn provided(state: &State) -> Vec<ProvidedCertificate> {
    state.relations[0]
        .local_app_data
        .get(CERTIFICATES_KEY)
        .map(|t| parse_certificates(t).unwrap())
        .unwrap_or_default()
}

fn leader(relations: Vec<Relation>) -> State {
    State {
        leader: true,
        relations,
        ..State::default()
    }
}

#[test]
fn signs_units_and_app_requests_names_a_bad_csr_and_is_idempotent() {
    let ca = CertificateAuthority::generate(&CaConfig::new("Ward CA")).unwrap();
    let (csr0, bag0) = request("db-0", false);
    let (csr_app, bag_app) = request("db", false);
    let rel = Relation::new("certificates", 4, "db")
        .with_remote_unit("db/0", [(REQUESTS_KEY, bag0.as_str())])
        .with_remote_unit(
            "db/1",
            [(
                REQUESTS_KEY,
                r#"[{"certificate_signing_request": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----", "ca": false}]"#,
            )],
        )
        .with_remote_unit("db/2", [(REQUESTS_KEY, "not json")])
        .with_remote_app_data([(REQUESTS_KEY, bag_app.as_str())]);
    let mut p = provider(&ca);
    let out = Harness::new("ca/0").run(&mut p, Event::UpdateStatus, leader(vec![rel]));
    assert!(out.error.is_none(), "{:?}", out.error);
    let certs = provided(&out.state);
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0].certificate_signing_request, csr0);
    assert_eq!(certs[1].certificate_signing_request, csr_app);
    for c in &certs {
        assert_eq!(c.ca, ca.certificate_pem());
        assert_eq!(
            c.chain,
            vec![c.certificate.clone(), ca.certificate_pem().to_string()]
        );
        assert!(c.revoked.is_none());
    }
    let report = p.report.take().unwrap();
    assert_eq!((report.issued, report.refused.len()), (2, 1));
    assert_eq!(report.refused[0].requester, "db/1");
    let status = &out.state.unit_status;
    assert_eq!(status.name, charm::StatusName::Active);
    assert!(
        status.message.contains("db/1") && status.message.contains("certificates:4"),
        "{status:?}"
    );
    assert!(
        out.logs.iter().any(|(_, m)| m.contains("db/1")),
        "{:?}",
        out.logs
    );
    assert!(
        out.logs.iter().any(|(_, m)| m.contains("db/2")),
        "{:?}",
        out.logs
    );

    // Idempotent: nothing re-signed, nothing written.
    let again = Harness::new("ca/0").run(&mut p, Event::UpdateStatus, out.state.clone());
    assert_eq!(provided(&again.state), certs);
    assert_eq!(p.report.take().unwrap().kept, 2);
}

#[test]
fn certificates_whose_csr_vanished_are_withdrawn_and_a_new_ca_reissues() {
    let ca = CertificateAuthority::generate(&CaConfig::new("Ward CA")).unwrap();
    let (_, bag0) = request("db-0", false);
    let (csr1, bag1) = request("db-1", false);
    let rel = Relation::new("certificates", 4, "db")
        .with_remote_unit("db/0", [(REQUESTS_KEY, bag0.as_str())])
        .with_remote_unit("db/1", [(REQUESTS_KEY, bag1.as_str())]);
    let mut p = provider(&ca);
    let out = Harness::new("ca/0").run(&mut p, Event::UpdateStatus, leader(vec![rel]));
    assert_eq!(provided(&out.state).len(), 2);
    // db/0 departs.
    let mut state = out.state.clone();
    state.relations[0].remote_units_data.remove("db/0");
    let out = Harness::new("ca/0").run(&mut p, Event::UpdateStatus, state);
    let certs = provided(&out.state);
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].certificate_signing_request, csr1);
    assert_eq!(p.report.take().unwrap().withdrawn, 1);

    // Another CA: the remaining certificate is re-issued by it.
    let ca2 = CertificateAuthority::generate(&CaConfig::new("Ward CA 2")).unwrap();
    let mut p2 = provider(&ca2);
    let out2 = Harness::new("ca/0").run(&mut p2, Event::UpdateStatus, out.state.clone());
    let re = provided(&out2.state);
    assert_eq!(re[0].ca, ca2.certificate_pem());
    assert_ne!(re[0].certificate, certs[0].certificate);

    // revoke_all marks everything; the next reconcile re-issues.
    struct Revoke;
    impl Charm for Revoke {
        fn handle(&mut self, ctx: &mut Context<'_>, _: &Event) -> charm::Result<()> {
            TlsProvider::new("certificates").revoke_all(ctx)
        }
    }
    let revoked = Harness::new("ca/0").run(&mut Revoke, Event::UpdateStatus, out2.state);
    assert!(provided(&revoked.state)
        .iter()
        .all(|c| c.revoked == Some(true)));
    let out3 = Harness::new("ca/0").run(&mut p2, Event::UpdateStatus, revoked.state);
    let fresh = provided(&out3.state);
    assert!(fresh[0].revoked.is_none());
    assert_ne!(fresh[0].certificate, re[0].certificate);
}

#[test]
fn ca_requests_follow_the_policy_and_limits_leave_the_rest_waiting() {
    let ca = CertificateAuthority::generate(&CaConfig::new("Ward CA")).unwrap();
    let (_, bag0) = request("int-ca", true);
    let (_, bag1) = request("db-1", false);
    let rel = Relation::new("certificates", 4, "db")
        .with_remote_unit("db/0", [(REQUESTS_KEY, bag0.as_str())])
        .with_remote_unit("db/1", [(REQUESTS_KEY, bag1.as_str())]);
    // Default: CA requests are signed as CA certificates (as upstream).
    let out = Harness::new("ca/0").run(
        &mut provider(&ca),
        Event::UpdateStatus,
        leader(vec![rel.clone()]),
    );
    let certs = provided(&out.state);
    assert!(certificate_is_ca(&certs[0].certificate).unwrap());
    assert!(!certificate_is_ca(&certs[1].certificate).unwrap());

    // A policy without CA requests refuses it, naming db/0.
    struct Strict<'a>(&'a CertificateAuthority, Option<Report>);
    impl Charm for Strict<'_> {
        fn handle(&mut self, ctx: &mut Context<'_>, _: &Event) -> charm::Result<()> {
            self.1 = Some(
                TlsProvider::new("certificates")
                    .policy(CsrPolicy::default())
                    .reconcile(ctx, self.0.certificate_pem(), |c| self.0.sign(c, 30))?,
            );
            Ok(())
        }
    }
    let mut strict = Strict(&ca, None);
    let out = Harness::new("ca/0").run(&mut strict, Event::UpdateStatus, leader(vec![rel.clone()]));
    assert_eq!(provided(&out.state).len(), 1);
    let report = strict.1.unwrap();
    assert_eq!(report.refused[0].requester, "db/0");
    assert!(
        report.refused[0].reason.contains("CA"),
        "{:?}",
        report.refused
    );

    // A limit of one: the second CSR waits.
    let mut limited = Provider {
        ca: &ca,
        limit: Some(1),
        report: None,
    };
    let out = Harness::new("ca/0").run(&mut limited, Event::UpdateStatus, leader(vec![rel]));
    assert_eq!(provided(&out.state).len(), 1);
    assert_eq!(limited.report.unwrap().over_limit, 1);
}

struct Sender(BTreeSet<String>);
impl Charm for Sender {
    fn handle(&mut self, ctx: &mut Context<'_>, _: &Event) -> charm::Result<()> {
        CertificateTransferProvider::new("send-ca-cert").publish(ctx, &self.0)
    }
}

struct Receiver(Vec<BTreeSet<String>>);
impl Charm for Receiver {
    fn handle(&mut self, ctx: &mut Context<'_>, _: &Event) -> charm::Result<()> {
        self.0 = CertificateTransferRequirer::new("receive-ca-cert")
            .certificates(ctx)?
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        Ok(())
    }
}

#[test]
fn send_ca_cert_writes_v1_and_v0_for_requirers_that_did_not_say_version_1() {
    let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----".to_string();
    let certs: BTreeSet<String> = [ca.clone()].into();
    let v1 = Relation::new("send-ca-cert", 8, "app1").with_remote_app_data([("version", "1")]);
    let v0 = Relation::new("send-ca-cert", 9, "app0");
    let out = Harness::new("ca/0").run(
        &mut Sender(certs.clone()),
        Event::UpdateStatus,
        leader(vec![v1, v0]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    for r in &out.state.relations {
        assert_eq!(r.local_app_data["version"], "1");
        assert_eq!(
            r.local_app_data["certificates"],
            format!("[{}]", serde_json::to_string(&ca).unwrap())
        );
    }
    let r8 = out.state.relation(8).unwrap();
    assert!(r8.local_unit_data.is_empty());
    let r9 = out.state.relation(9).unwrap();
    assert_eq!(r9.local_unit_data["version"], "0");
    assert_eq!(
        r9.local_unit_data["ca"],
        serde_json::to_string(&ca).unwrap()
    );
    assert_eq!(
        r9.local_unit_data["chain"],
        format!("[{}]", serde_json::to_string(&ca).unwrap())
    );
    // Idempotent, and non-leaders write nothing.
    let again = Harness::new("ca/0").run(
        &mut Sender(certs.clone()),
        Event::UpdateStatus,
        out.state.clone(),
    );
    assert_eq!(again.state, out.state);
    let mut follower = leader(vec![Relation::new("send-ca-cert", 8, "app1")]);
    follower.leader = false;
    let out = Harness::new("ca/1").run(&mut Sender(certs.clone()), Event::UpdateStatus, follower);
    assert!(out.state.relations[0].local_app_data.is_empty());

    // The requirer says version 1 and reads v1, or v0 from the provider's units.
    let from_v1 =
        Relation::new("receive-ca-cert", 2, "ca").with_remote_app_data(provider_app_bag(&certs));
    let from_v0 = Relation::new("receive-ca-cert", 3, "ca")
        .with_remote_unit("ca/0", provider_unit_bag_v0(&certs));
    let mut rx = Receiver(Vec::new());
    let out =
        Harness::new("app/0").run(&mut rx, Event::UpdateStatus, leader(vec![from_v1, from_v0]));
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(rx.0, vec![certs.clone(), certs]);
    assert!(out
        .state
        .relations
        .iter()
        .all(|r| r.local_app_data["version"] == "1"));
}

/// Runs `script` with the test Python (WARD_TEST_PYTHON, with `cryptography`), feeding
/// `input` as JSON on stdin and reading JSON from stdout; `None` when there is none.
fn python(script: &str, input: serde_json::Value) -> Option<serde_json::Value> {
    let py = std::env::var("WARD_TEST_PYTHON").ok()?;
    Some(common::run_python(&py, script, input))
}

/// A requirer as Canonical's v4 library makes one: RSA 2048, CN + x500UniqueIdentifier
/// (uuid4) + O, SANs, SHA-256, the bag written with json.dumps.
const PY_REQUIRER: &str = r#"
import json, sys, uuid, ipaddress
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([
    x509.NameAttribute(NameOID.COMMON_NAME, "pg-0.ward.local"),
    x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, str(uuid.uuid4())),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ward"),
])
sans = x509.SubjectAlternativeName({x509.DNSName("pg-0.ward.local"), x509.IPAddress(ipaddress.ip_address("127.1.0.9"))})
csr = x509.CertificateSigningRequestBuilder().subject_name(name).add_extension(sans, critical=False).sign(key, hashes.SHA256())
pem = csr.public_bytes(serialization.Encoding.PEM).decode().strip()
bag = json.dumps([{"certificate_signing_request": pem, "ca": False}])
print(json.dumps({"bag": bag, "csr": pem, "key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()}))
"#;

/// Reads our provider's bag as Canonical's library would and checks the certificate.
const PY_CHECK: &str = r#"
import json, sys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
inp = json.load(sys.stdin)
certs = json.loads(inp["bag"])
assert len(certs) == 1, certs
c = certs[0]
assert c["certificate_signing_request"].strip() == inp["csr"].strip()
cert = x509.load_pem_x509_certificate(c["certificate"].encode())
ca = x509.load_pem_x509_certificate(c["ca"].encode())
cert.verify_directly_issued_by(ca)
key = serialization.load_pem_private_key(inp["key"].encode(), None)
assert cert.public_key().public_numbers() == key.public_key().public_numbers()
sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
assert "pg-0.ward.local" in sans.get_values_for_type(x509.DNSName)
assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
assert cert.subject.get_attributes_for_oid(NameOID.X500_UNIQUE_IDENTIFIER)
assert [x.public_bytes(serialization.Encoding.PEM) for x in map(lambda p: x509.load_pem_x509_certificate(p.encode()), c["chain"])][0] == cert.public_bytes(serialization.Encoding.PEM)
print(json.dumps({"ok": True}))
"#;

#[test]
fn a_csr_made_as_canonicals_library_makes_it_is_signed_and_reads_back_in_python() {
    let Some(req) = python(PY_REQUIRER, serde_json::json!({})) else {
        eprintln!("skipped: WARD_TEST_PYTHON is not set");
        return;
    };
    let ca = CertificateAuthority::generate(&CaConfig::new("Ward CA")).unwrap();
    let rel = Relation::new("certificates", 4, "pg")
        .with_remote_unit("pg/0", [(REQUESTS_KEY, req["bag"].as_str().unwrap())]);
    let mut p = provider(&ca);
    let out = Harness::new("ca/0").run(&mut p, Event::UpdateStatus, leader(vec![rel]));
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(p.report.unwrap().refused.is_empty());
    let bag = &out.state.relations[0].local_app_data[CERTIFICATES_KEY];
    let check = python(
        PY_CHECK,
        serde_json::json!({"bag": bag, "csr": req["csr"], "key": req["key"]}),
    )
    .unwrap();
    assert_eq!(check["ok"], true);
}

/// A provider as Canonical's library signs: issuer = the CA's subject, random serial,
/// SANs copied, BasicConstraints(ca=False), SHA-256; answers every CSR in the bag.
const PY_PROVIDER: &str = r#"
import json, sys, datetime
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
inp = json.load(sys.stdin)
now = datetime.datetime.now(datetime.timezone.utc)
ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "python CA")])
ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
      .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365))
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
      .sign(ca_key, hashes.SHA256()))
ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode().strip()
out = []
for r in json.loads(inp["bag"]):
    csr = x509.load_pem_x509_csr(r["certificate_signing_request"].encode())
    assert csr.is_signature_valid
    b = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject).public_key(csr.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=90))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    b = b.add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
    cert = b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode().strip()
    out.append({"certificate": cert, "certificate_signing_request": r["certificate_signing_request"], "ca": ca_pem, "chain": [cert, ca_pem]})
print(json.dumps({"bag": json.dumps(out)}))
"#;

#[test]
fn our_requirer_csr_is_signed_by_a_python_provider_and_its_answer_accepted() {
    let mut charm = common::Requirer::new(interfaces::tls_requirer::Mode::Unit);
    let state = State {
        relations: vec![Relation::new("certificates", 5, "ca")],
        ..State::default()
    };
    let out = Harness::new("db/0").run(&mut charm, Event::UpdateStatus, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    let bag = out.state.relations[0].local_unit_data[REQUESTS_KEY].clone();
    let Some(answer) = python(PY_PROVIDER, serde_json::json!({ "bag": bag })) else {
        eprintln!("skipped: WARD_TEST_PYTHON is not set");
        return;
    };
    let mut state = out.state;
    state.relations[0].remote_app_data = [(
        CERTIFICATES_KEY.to_string(),
        answer["bag"].as_str().unwrap().to_string(),
    )]
    .into();
    let out = Harness::new("db/0").run(&mut charm, Event::UpdateStatus, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    let issued = charm
        .issued
        .expect("the Python provider's certificate is accepted");
    assert!(certificate_matches_key(&issued.certificate, &issued.private_key).unwrap());
    assert!(issued.ca.contains("BEGIN CERTIFICATE"));
}
