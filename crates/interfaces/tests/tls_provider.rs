//! The tls-certificates provider helper and certificate_transfer under the SDK's
//! harness: signing across units and apps, bad CSRs named, withdrawal, idempotence,
//! CA change, limits, and the send-ca-cert bags in both schema versions.

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
