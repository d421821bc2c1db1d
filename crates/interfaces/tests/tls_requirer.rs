//! The tls-certificates requirer under the SDK's harness, against the provider helper:
//! round trip, renewal at 90% and on secret-expired, revoked and withdrawn certificates.

use std::sync::atomic::{AtomicU32, Ordering};

use charm::testing::{Harness, Relation, State};
use charm::{Charm, Context, Event, SecretEvent};
use interfaces::tls_certificates::*;
use interfaces::tls_provider::TlsProvider;
use interfaces::tls_requirer::{Issued, TlsRequirer};

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
