//! Our tls-certificates bags against Canonical's Python library itself
//! (`charmlibs-interfaces-tls-certificates`, installed by `scripts/deps.sh` into the
//! venv that `WARD_TEST_PYTHON` names): the requirer bag is byte for byte what the
//! library publishes for the same CSR, and the provider bag is byte for byte what the
//! library writes back after loading it, with the certificate matching the requirer's
//! key by the library's own checks.
//!
//! The library writes its bags through `_RequirerData` / `_ProviderApplicationData`
//! (private names, the models its `TLSCertificatesRequiresV4` and
//! `TLSCertificatesProvidesV4` dump); if a release renames them these tests fail
//! loudly rather than pass without comparing.

mod common;

use charm::testing::{Harness, Relation, State};
use charm::{Charm, Context, Event};
use interfaces::tls_certificates::*;
use interfaces::tls_provider::TlsProvider;
use interfaces::tls_requirer::Mode;

/// Runs `script` with the test Python, feeding `input` as JSON on stdin and reading JSON
/// from stdout.
fn python(script: &str, input: serde_json::Value) -> serde_json::Value {
    let py = std::env::var("WARD_TEST_PYTHON").expect(
        "WARD_TEST_PYTHON must name a Python with charmlibs-interfaces-tls-certificates (scripts/test.sh sets it to .venv/bin/python; scripts/deps.sh installs it)",
    );
    common::run_python(&py, script, input)
}

/// What the library's requirer publishes for each CSR in a bag: `_request_certificate`
/// writes `str(csr).strip()` through `_RequirerData(...).dump(...)`.
const LIBRARY_REQUIRER_BAG: &str = r#"
import json, sys
from charmlibs.interfaces.tls_certificates import CertificateSigningRequest
from charmlibs.interfaces.tls_certificates._tls_certificates import _CertificateSigningRequest, _RequirerData
ours = json.loads(json.load(sys.stdin)["bag"])
theirs = _RequirerData(certificate_signing_requests=[
    _CertificateSigningRequest(
        certificate_signing_request=str(CertificateSigningRequest.from_string(r["certificate_signing_request"])).strip(),
        ca=r["ca"],
    )
    for r in ours
]).dump({})
print(json.dumps(theirs))
"#;

#[test]
fn our_requirer_bag_is_byte_for_byte_what_canonicals_library_publishes() {
    for mode in [Mode::Unit, Mode::App] {
        let state = State {
            leader: true,
            relations: vec![Relation::new("certificates", 5, "ca")],
            ..State::default()
        };
        let out =
            Harness::new("db/0").run(&mut common::Requirer::new(mode), Event::UpdateStatus, state);
        assert!(out.error.is_none(), "{:?}", out.error);
        let rel = &out.state.relations[0];
        let bag = match mode {
            Mode::Unit => &rel.local_unit_data,
            Mode::App => &rel.local_app_data,
        };
        let ours = bag[REQUESTS_KEY].clone();
        let theirs = python(LIBRARY_REQUIRER_BAG, serde_json::json!({ "bag": ours }));
        assert_eq!(
            theirs,
            serde_json::json!({ REQUESTS_KEY: ours }),
            "{mode:?} mode"
        );
    }
}

/// Makes a requirer CSR with the library (RSA key, CN + x500UniqueIdentifier, SANs) and
/// returns its bag, as `TLSCertificatesRequiresV4` publishes it, and the key.
const LIBRARY_REQUIRER: &str = r#"
import json, sys
from charmlibs.interfaces.tls_certificates import CertificateRequestAttributes, PrivateKey
from charmlibs.interfaces.tls_certificates._tls_certificates import _CertificateSigningRequest, _RequirerData
key = PrivateKey.generate()
attrs = CertificateRequestAttributes(common_name="pg-0.ward.test", sans_dns=["pg-0", "pg-0.ward.test"], sans_ip=["127.1.0.9"])
csr = attrs.generate_csr(private_key=key)
bag = _RequirerData(certificate_signing_requests=[
    _CertificateSigningRequest(certificate_signing_request=str(csr).strip(), ca=False)
]).dump({})
print(json.dumps({"bag": bag, "key": str(key)}))
"#;

/// Loads our provider bag with the library and dumps it again; checks the certificate
/// against the requirer's CSR and key with the library's own methods.
const LIBRARY_READS_PROVIDER_BAG: &str = r#"
import json, sys
from charmlibs.interfaces.tls_certificates import CertificateSigningRequest, PrivateKey
from charmlibs.interfaces.tls_certificates._tls_certificates import _ProviderApplicationData
inp = json.load(sys.stdin)
data = _ProviderApplicationData.load({"certificates": inp["bag"]})
[cert] = [c.to_provider_certificate(relation_id=1) for c in data.certificates]
csr = CertificateSigningRequest.from_string(inp["csr"])
key = PrivateKey.from_string(inp["key"])
print(json.dumps({
    "dumped": data.dump({}),
    "csr_matches": cert.certificate_signing_request == csr and csr.matches_certificate(cert.certificate),
    "key_matches": cert.certificate.matches_private_key(key),
    "is_ca": cert.certificate.is_ca,
    "sans_dns": sorted(cert.certificate.sans_dns or []),
    "sans_ip": sorted(cert.certificate.sans_ip or []),
    "revoked": cert.revoked,
}))
"#;

struct Provider<'a>(&'a CertificateAuthority);

impl Charm for Provider<'_> {
    fn handle(&mut self, ctx: &mut Context<'_>, _event: &Event) -> charm::Result<()> {
        TlsProvider::new("certificates")
            .reconcile(ctx, self.0.certificate_pem(), |csr| self.0.sign(csr, 30))?;
        Ok(())
    }
}

#[test]
fn our_provider_bag_is_byte_for_byte_what_canonicals_library_writes_back() {
    let req = python(LIBRARY_REQUIRER, serde_json::json!({}));
    let requests = req["bag"][REQUESTS_KEY].as_str().unwrap();
    let csr = parse_requests(requests).unwrap()[0]
        .certificate_signing_request
        .clone();
    let ca = CertificateAuthority::generate(&CaConfig::new("Ward CA")).unwrap();
    let rel =
        Relation::new("certificates", 4, "pg").with_remote_unit("pg/0", [(REQUESTS_KEY, requests)]);
    let state = State {
        leader: true,
        relations: vec![rel],
        ..State::default()
    };
    let out = Harness::new("ca/0").run(&mut Provider(&ca), Event::UpdateStatus, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    let ours = out.state.relations[0].local_app_data[CERTIFICATES_KEY].clone();
    let read = python(
        LIBRARY_READS_PROVIDER_BAG,
        serde_json::json!({ "bag": ours, "csr": csr, "key": req["key"] }),
    );
    assert_eq!(
        read["dumped"],
        serde_json::json!({ CERTIFICATES_KEY: ours })
    );
    assert_eq!(read["csr_matches"], true);
    assert_eq!(read["key_matches"], true);
    assert_eq!(read["is_ca"], false);
    assert_eq!(
        read["sans_dns"],
        serde_json::json!(["pg-0", "pg-0.ward.test"])
    );
    assert_eq!(read["sans_ip"], serde_json::json!(["127.1.0.9"]));
    assert_eq!(read["revoked"], serde_json::Value::Null);

    // Revoked, as `revoke_all_certificates` writes it.
    let revoke = Harness::new("ca/0").run(&mut Revoker, Event::UpdateStatus, out.state);
    assert!(revoke.error.is_none(), "{:?}", revoke.error);
    let revoked = revoke.state.relations[0].local_app_data[CERTIFICATES_KEY].clone();
    let read = python(
        LIBRARY_READS_PROVIDER_BAG,
        serde_json::json!({ "bag": revoked, "csr": csr, "key": req["key"] }),
    );
    assert_eq!(
        read["dumped"],
        serde_json::json!({ CERTIFICATES_KEY: revoked })
    );
    assert_eq!(read["revoked"], true);
}

struct Revoker;

impl Charm for Revoker {
    fn handle(&mut self, ctx: &mut Context<'_>, _event: &Event) -> charm::Result<()> {
        TlsProvider::new("certificates").revoke_all(ctx)
    }
}
