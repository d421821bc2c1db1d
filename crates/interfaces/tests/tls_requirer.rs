//! The tls-certificates requirer under the SDK's harness, against the provider helper:
//! round trip, renewal at 90% and on secret-expired, revoked and withdrawn certificates,
//! app mode (the leader's CSR in the app bag, the key in an app secret).

use std::sync::atomic::{AtomicU32, Ordering};

use charm::testing::{Harness, Relation, State};
use charm::{Charm, Context, Event, SecretEvent, SecretOwner};
use interfaces::tls_certificates::*;
use interfaces::tls_provider::TlsProvider;
use interfaces::tls_requirer::{Issued, Mode, TlsRequirer};

const REL: u32 = 3;
const DAY: i64 = 86_400;

/// A requirer charm that keeps what `reconcile` returned.
#[derive(Default)]
struct Requirer {
    now: Option<i64>,
    issued: Option<Issued>,
}

impl Charm for Requirer {
    fn handle(&mut self, ctx: &mut Context<'_>, _event: &Event) -> charm::Result<()> {
        let mut r = TlsRequirer::new("certificates");
        if let Some(t) = self.now {
            r = r.at_time(t);
        }
        self.issued = r.reconcile(ctx, &CsrRequest::new("db-0").dns("db-0.ward.local"))?;
        Ok(())
    }
}

/// A provider charm on the helper, signing with a given validity window relative to
/// the real clock (days back, days ahead).
struct Provider<'a> {
    ca: &'a CertificateAuthority,
    window: (i64, i64),
}

impl Charm for Provider<'_> {
    fn handle(&mut self, ctx: &mut Context<'_>, _event: &Event) -> charm::Result<()> {
        let now = time::OffsetDateTime::now_utc();
        let (back, ahead) = self.window;
        TlsProvider::new("certificates").reconcile(ctx, self.ca.certificate_pem(), |csr| {
            self.ca.sign_between(
                csr,
                now - time::Duration::days(back),
                now + time::Duration::days(ahead),
            )
        })?;
        Ok(())
    }
}

fn requirer_state() -> State {
    State {
        relations: vec![Relation::new("certificates", REL, "ca")],
        ..State::default()
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn requested(state: &State) -> Vec<RequestedCertificate> {
    parse_requests(&state.relation(REL).unwrap().local_unit_data[REQUESTS_KEY]).unwrap()
}

/// Runs the provider (leader of `ca`) over the requirer unit's bag and copies its
/// answer into the requirer's view of the provider's app bag.
fn provide(req: &mut State, ca: &CertificateAuthority, window: (i64, i64)) {
    let bag = req.relation(REL).unwrap().local_unit_data.clone();
    let mut theirs = Relation::new("certificates", REL, "db").with_remote_unit("db/0", bag);
    theirs.local_app_data = req.relation(REL).unwrap().remote_app_data.clone();
    let state = State {
        leader: true,
        relations: vec![theirs],
        ..State::default()
    };
    let out = Harness::new("ca/0").run(&mut Provider { ca, window }, Event::UpdateStatus, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    let answer = out.state.relation(REL).unwrap().local_app_data.clone();
    req.relations[0].remote_app_data = answer;
}

fn run(req: &mut Requirer, event: Event, state: State) -> State {
    let out = Harness::new("db/0").run(req, event, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    unique_secret_ids(out.state)
}

/// The harness numbers new secrets from 1 in every run, so a secret made in a later run
/// would share its id with one made earlier; give each a lasting id of its own.
fn unique_secret_ids(mut state: State) -> State {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    for s in &mut state.secrets {
        if s.id.starts_with("secret:harness") {
            s.id = format!("secret:kept{:04}", NEXT.fetch_add(1, Ordering::Relaxed));
        }
    }
    state
}

#[test]
fn round_trip_stores_the_certificate_in_a_secret_that_expires_at_renewal_time() {
    let ca = CertificateAuthority::generate(&CaConfig::new("Ward CA")).unwrap();
    let mut charm = Requirer::default();
    let mut state = run(&mut charm, Event::UpdateStatus, requirer_state());
    assert!(charm.issued.is_none());
    let asked = requested(&state);
    assert_eq!(asked.len(), 1);
    assert!(!asked[0].ca);
    // Canonical's shape, byte for byte.
    assert!(state.relation(REL).unwrap().local_unit_data[REQUESTS_KEY]
        .starts_with("[{\"certificate_signing_request\": \"-----BEGIN CERTIFICATE REQUEST-----"));

    provide(&mut state, &ca, (0, 90));
    let state = run(&mut charm, Event::UpdateStatus, state);
    let issued = charm.issued.clone().expect("a certificate");
    assert!(certificate_matches_key(&issued.certificate, &issued.private_key).unwrap());
    assert_eq!(issued.ca, ca.certificate_pem());
    assert_eq!(issued.chain.len(), 2);
    let secret = state.secret_by_label("certificates-certificate").unwrap();
    assert_eq!(
        secret.latest_content()["certificate"],
        issued.certificate,
        "the certificate in its secret"
    );
    let expire = secret.expire.clone().expect("an expiry");
    let (nb, na) = certificate_validity(&issued.certificate).unwrap();
    assert_eq!(issued.renew_at, nb + (na - nb) * 9 / 10);
    let t = time::OffsetDateTime::from_unix_timestamp(issued.renew_at).unwrap();
    assert!(
        expire.starts_with(&format!(
            "{:04}-{:02}-{:02}T",
            t.year(),
            u8::from(t.month()),
            t.day()
        )),
        "{expire}"
    );

    // Nothing changes on a quiet hook.
    let again = run(&mut charm, Event::UpdateStatus, state.clone());
    assert_eq!(charm.issued.as_ref(), Some(&issued));
    assert_eq!(again, state);
}

#[test]
fn renews_with_the_same_key_once_ninety_percent_of_the_validity_has_passed() {
    let ca = CertificateAuthority::generate(&CaConfig::new("Ward CA")).unwrap();
    let mut charm = Requirer::default();
    let mut state = run(&mut charm, Event::UpdateStatus, requirer_state());
    // 95 of 100 days gone.
    provide(&mut state, &ca, (95, 5));
    let state = run(&mut charm, Event::UpdateStatus, state);
    let old = charm
        .issued
        .clone()
        .expect("the certificate is used until renewed");
    // That hook stored it; the next one sees it is due (the clock runs on).
    let old_csr = requested(&state)[0].clone();
    let mut state = run(&mut charm, Event::UpdateStatus, state);
    let new_csr = requested(&state)[0].clone();
    assert_ne!(old_csr, new_csr, "a new CSR replaces the old one");
    assert_eq!(requested(&state).len(), 1);
    assert_eq!(
        charm.issued.as_ref(),
        Some(&old),
        "the old certificate is served while the new one is on its way"
    );
    // The provider answers the new CSR and withdraws the old certificate.
    provide(&mut state, &ca, (0, 90));
    let certs = parse_certificates(&state.relations[0].remote_app_data[CERTIFICATES_KEY]).unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(
        certs[0].certificate_signing_request,
        new_csr.certificate_signing_request
    );
    let state = run(&mut charm, Event::UpdateStatus, state);
    let new = charm.issued.clone().unwrap();
    assert_ne!(
        new.certificate, old.certificate,
        "callers see a new certificate"
    );
    assert_eq!(new.private_key, old.private_key, "same key");
    assert!(new.renew_at > now() + 80 * DAY);
    let secret = state.secret_by_label("certificates-certificate").unwrap();
    assert_eq!(secret.latest_content()["certificate"], new.certificate);
    assert_eq!(secret.revisions.len(), 1, "the expired revision is removed");

    // A fixed clock past the renewal time renews as well.
    let mut later = Requirer {
        now: Some(new.renew_at + 1),
        issued: None,
    };
    let before = requested(&state)[0].clone();
    let state = run(&mut later, Event::UpdateStatus, state);
    assert_ne!(requested(&state)[0], before);
}

#[test]
fn secret_expired_for_the_certificate_renews_once() {
    let ca = CertificateAuthority::generate(&CaConfig::new("Ward CA")).unwrap();
    let mut charm = Requirer::default();
    let mut state = run(&mut charm, Event::UpdateStatus, requirer_state());
    provide(&mut state, &ca, (0, 90));
    let state = run(&mut charm, Event::UpdateStatus, state);
    let old = charm.issued.clone().unwrap();
    let secret = state
        .secret_by_label("certificates-certificate")
        .unwrap()
        .clone();
    let before = requested(&state)[0].clone();
    let expired = Event::SecretExpired(SecretEvent {
        id: secret.id.clone(),
        label: secret.label.clone(),
        revision: Some(secret.latest()),
    });
    let state = run(&mut charm, expired.clone(), state);
    let after = requested(&state)[0].clone();
    assert_ne!(before, after, "secret-expired posts a new CSR");
    assert_eq!(charm.issued.as_ref(), Some(&old));
    // Juju repeats the event until the revision goes; a repeat does not renew again.
    let state = run(&mut charm, expired, state);
    assert_eq!(requested(&state)[0], after);
    // Unrelated secrets' expiry does nothing.
    let other = Event::SecretExpired(SecretEvent {
        id: "secret:other".into(),
        label: Some("something-else".into()),
        revision: Some(1),
    });
    let state = run(&mut charm, other, state);
    assert_eq!(requested(&state)[0], after);
}

#[test]
fn a_revoked_or_withdrawn_certificate_makes_the_requirer_ask_again() {
    let ca = CertificateAuthority::generate(&CaConfig::new("Ward CA")).unwrap();
    let mut charm = Requirer::default();
    let mut state = run(&mut charm, Event::UpdateStatus, requirer_state());
    provide(&mut state, &ca, (0, 90));
    let mut state = run(&mut charm, Event::UpdateStatus, state);
    assert!(charm.issued.is_some());

    // Revoked: the certificate is dropped at once and a fresh CSR goes out.
    let csr1 = requested(&state)[0].clone();
    let mut certs =
        parse_certificates(&state.relations[0].remote_app_data[CERTIFICATES_KEY]).unwrap();
    certs[0].revoked = Some(true);
    state.relations[0]
        .remote_app_data
        .insert(CERTIFICATES_KEY.into(), dumps(&certs));
    let mut state = run(&mut charm, Event::UpdateStatus, state);
    assert!(charm.issued.is_none(), "a revoked certificate is not used");
    assert!(state
        .secret_by_label("certificates-certificate")
        .is_none_or(|s| s.removed));
    let csr2 = requested(&state)[0].clone();
    assert_ne!(csr1, csr2);

    // The provider answers; the requirer is served again.
    provide(&mut state, &ca, (0, 90));
    let mut state = run(&mut charm, Event::UpdateStatus, state);
    let second = charm.issued.clone().expect("re-issued");

    // Withdrawn: the provider no longer lists it while our CSR is still out.
    state.relations[0]
        .remote_app_data
        .insert(CERTIFICATES_KEY.into(), "[]".into());
    let state = run(&mut charm, Event::UpdateStatus, state);
    assert!(charm.issued.is_none());
    assert_ne!(requested(&state)[0], csr2, "asked again");
    let mut state = state;
    provide(&mut state, &ca, (0, 90));
    run(&mut charm, Event::UpdateStatus, state);
    let third = charm.issued.clone().expect("re-issued");
    assert_ne!(third.certificate, second.certificate);
    assert_eq!(third.private_key, second.private_key);
}

#[test]
fn a_certificate_for_another_key_or_a_ca_certificate_is_refused() {
    let ca = CertificateAuthority::generate(&CaConfig::new("Ward CA")).unwrap();
    let mut charm = Requirer::default();
    let mut state = run(&mut charm, Event::UpdateStatus, requirer_state());
    let csr = requested(&state)[0].certificate_signing_request.clone();
    // Signed for someone else's key but labelled with our CSR.
    let other_key = generate_private_key().unwrap();
    let other_csr = generate_csr(&other_key, &CsrRequest::new("db-0")).unwrap();
    let checked = validate_csr(&other_csr, false, &CsrPolicy::default()).unwrap();
    let wrong = ca.sign(&checked, 90).unwrap();
    // Our key, but a CA certificate.
    let ours = validate_csr(
        &csr,
        true,
        &CsrPolicy {
            allow_ca: true,
            ..CsrPolicy::default()
        },
    )
    .unwrap();
    let as_ca = ca.sign(&ours, 90).unwrap();
    for cert in [wrong, as_ca] {
        let entry = ProvidedCertificate {
            chain: vec![cert.clone(), ca.certificate_pem().into()],
            certificate: cert,
            certificate_signing_request: csr.clone(),
            ca: ca.certificate_pem().into(),
            revoked: None,
        };
        state.relations[0]
            .remote_app_data
            .insert(CERTIFICATES_KEY.into(), dumps(&vec![entry]));
        state = run(&mut charm, Event::UpdateStatus, state);
        assert!(charm.issued.is_none());
        assert!(state
            .secret_by_label("certificates-certificate")
            .is_none_or(|s| s.removed));
    }
}

/// An app-mode requirer charm.
#[derive(Default)]
struct AppRequirer {
    issued: Option<Issued>,
}

impl Charm for AppRequirer {
    fn handle(&mut self, ctx: &mut Context<'_>, _event: &Event) -> charm::Result<()> {
        self.issued = TlsRequirer::new("certificates")
            .mode(Mode::App)
            .reconcile(ctx, &CsrRequest::new("db").dns("db.ward.local"))?;
        Ok(())
    }
}

fn app_requested(state: &State) -> Vec<RequestedCertificate> {
    parse_requests(&state.relation(REL).unwrap().local_app_data[REQUESTS_KEY]).unwrap()
}

/// As [`provide`], for a requirer whose CSRs are in its application bag.
fn provide_app(req: &mut State, ca: &CertificateAuthority) {
    let bag = req.relation(REL).unwrap().local_app_data.clone();
    let mut theirs = Relation::new("certificates", REL, "db").with_remote_app_data(bag);
    theirs.local_app_data = req.relation(REL).unwrap().remote_app_data.clone();
    let state = State {
        leader: true,
        relations: vec![theirs],
        ..State::default()
    };
    let out = Harness::new("ca/0").run(
        &mut Provider {
            ca,
            window: (0, 90),
        },
        Event::UpdateStatus,
        state,
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    req.relations[0].remote_app_data = out.state.relation(REL).unwrap().local_app_data.clone();
}

fn run_app(unit: &str, charm: &mut AppRequirer, event: Event, state: State) -> State {
    let out = Harness::new(unit).run(charm, event, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    unique_secret_ids(out.state)
}

#[test]
fn app_mode_the_leader_asks_in_the_app_bag_with_an_app_owned_key() {
    let ca = CertificateAuthority::generate(&CaConfig::new("Ward CA")).unwrap();
    let mut charm = AppRequirer::default();
    let leader = State {
        leader: true,
        ..requirer_state()
    };
    let mut state = run_app("db/0", &mut charm, Event::UpdateStatus, leader);
    assert!(charm.issued.is_none());
    let rel = state.relation(REL).unwrap();
    assert!(
        !rel.local_unit_data.contains_key(REQUESTS_KEY),
        "no CSR in the unit bag in app mode"
    );
    let asked = app_requested(&state);
    assert_eq!(asked.len(), 1);
    assert!(!asked[0].ca);
    assert!(rel.local_app_data[REQUESTS_KEY]
        .starts_with("[{\"certificate_signing_request\": \"-----BEGIN CERTIFICATE REQUEST-----"));
    let key = state
        .secret_by_label("certificates-app-private-key")
        .unwrap();
    assert_eq!(key.owner, Some(SecretOwner::Application));
    assert!(state.secret_by_label("certificates-private-key").is_none());

    provide_app(&mut state, &ca);
    let state = run_app("db/0", &mut charm, Event::UpdateStatus, state);
    let issued = charm
        .issued
        .clone()
        .expect("the leader gets the certificate");
    assert!(certificate_matches_key(&issued.certificate, &issued.private_key).unwrap());
    let cert = state
        .secret_by_label("certificates-app-certificate")
        .unwrap();
    assert_eq!(cert.owner, Some(SecretOwner::Application));
    assert_eq!(cert.latest_content()["certificate"], issued.certificate);
    assert!(cert.expire.is_some(), "expires at the renewal time");

    // Another unit, not the leader: nothing, and nothing written.
    let follower = State {
        leader: false,
        ..state.clone()
    };
    let mut other = AppRequirer::default();
    let out = Harness::new("db/1").run(&mut other, Event::UpdateStatus, follower.clone());
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(other.issued.is_none());
    assert_eq!(out.state, follower);

    // A new leader picks up the application's key and certificate.
    let mut new_leader = AppRequirer::default();
    let moved = run_app("db/1", &mut new_leader, Event::LeaderElected, state.clone());
    let taken = new_leader.issued.clone().expect("the new leader has it");
    assert_eq!(taken.certificate, issued.certificate);
    assert_eq!(taken.private_key, issued.private_key);
    assert_eq!(app_requested(&moved), app_requested(&state));

    // Renewal on secret-expired posts a new CSR in the app bag, same key.
    let expired = Event::SecretExpired(SecretEvent {
        id: cert.id.clone(),
        label: cert.label.clone(),
        revision: Some(cert.latest()),
    });
    let before = app_requested(&state);
    let mut state = run_app("db/0", &mut charm, expired, state);
    let after = app_requested(&state);
    assert_eq!(after.len(), 1);
    assert_ne!(before, after, "secret-expired posts a new CSR");
    provide_app(&mut state, &ca);
    run_app("db/0", &mut charm, Event::UpdateStatus, state);
    let renewed = charm.issued.clone().unwrap();
    assert_ne!(renewed.certificate, issued.certificate);
    assert_eq!(renewed.private_key, issued.private_key);
}

#[test]
fn unit_and_app_mode_keep_apart_on_one_endpoint_name() {
    // Unit mode is unchanged by app mode's existence: its labels and bag.
    let mut charm = Requirer::default();
    let state = run(&mut charm, Event::UpdateStatus, requirer_state());
    assert_eq!(requested(&state).len(), 1);
    assert!(!state
        .relation(REL)
        .unwrap()
        .local_app_data
        .contains_key(REQUESTS_KEY));
    let key = state.secret_by_label("certificates-private-key").unwrap();
    assert_eq!(key.owner, Some(SecretOwner::Unit));
    assert_eq!(
        TlsRequirer::new("certificates").certificate_label(),
        "certificates-certificate"
    );
    assert_eq!(
        TlsRequirer::new("certificates")
            .mode(Mode::App)
            .certificate_label(),
        "certificates-app-certificate"
    );
}

#[test]
fn a_provider_bag_that_does_not_parse_is_logged_and_the_certificate_kept() {
    let ca = CertificateAuthority::generate(&CaConfig::new("Ward CA")).unwrap();
    let mut charm = Requirer::default();
    let mut state = run(&mut charm, Event::UpdateStatus, requirer_state());
    provide(&mut state, &ca, (0, 90));
    let mut state = run(&mut charm, Event::UpdateStatus, state);
    let issued = charm.issued.clone().unwrap();
    let csr = requested(&state);
    state.relations[0]
        .remote_app_data
        .insert(CERTIFICATES_KEY.into(), "{not json".into());
    let out = Harness::new("db/0").run(&mut charm, Event::UpdateStatus, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(
        charm.issued.as_ref(),
        Some(&issued),
        "the certificate stays in use"
    );
    assert_eq!(requested(&out.state), csr, "no new CSR");
    assert!(
        out.logs
            .iter()
            .any(|(_, m)| m.contains("certificates:3") && m.contains("ignoring")),
        "{:?}",
        out.logs
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Whatever the provider writes (any text, or entries naming our CSR with arbitrary
    /// certificate, CA and chain), the requirer neither panics nor fails the hook, and
    /// never accepts it.
    #[test]
    fn any_provider_bag_is_survived(text in ".{0,200}", cert in ".{0,200}", ca in ".{0,80}") {
        let mut charm = Requirer::default();
        let mut state = run(&mut charm, Event::UpdateStatus, requirer_state());
        let csr = requested(&state)[0].certificate_signing_request.clone();
        for bag in [
            text.clone(),
            dumps(&vec![ProvidedCertificate {
                ca: ca.clone(),
                certificate_signing_request: csr.clone(),
                certificate: cert.clone(),
                chain: vec![cert.clone(), ca.clone()],
                revoked: None,
            }]),
            dumps(&vec![ProvidedCertificate {
                ca: ca.clone(),
                certificate_signing_request: csr.clone(),
                certificate: format!("-----BEGIN CERTIFICATE-----\n{cert}\n-----END CERTIFICATE-----"),
                chain: Vec::new(),
                revoked: Some(false),
            }]),
        ] {
            state.relations[0].remote_app_data.insert(CERTIFICATES_KEY.into(), bag);
            let out = Harness::new("db/0").run(&mut charm, Event::UpdateStatus, state.clone());
            proptest::prop_assert!(out.error.is_none(), "{:?}", out.error);
            proptest::prop_assert!(charm.issued.is_none());
            state = unique_secret_ids(out.state);
        }
    }
}
