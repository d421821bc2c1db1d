//! The self-signed-certificates charm on the real controller signs a CSR that OpenSSL's
//! CLI made in a requirer unit; OpenSSL verifies the result and shows the SANs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use controller::{Controller, ControllerConfig};
use interfaces::tls_certificates::parse_certificates;
use serde_json::json;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn settle(ctl: &Controller, what: &str, mut done: impl FnMut(&Controller) -> bool) {
    let t = Instant::now();
    while !(done(ctl) && ctl.is_settled().unwrap()) {
        if t.elapsed() > Duration::from_secs(60) {
            let mut logs = String::new();
            for u in ctl
                .status()
                .unwrap()
                .applications
                .iter()
                .flat_map(|a| &a.units)
            {
                logs.push_str(&format!(
                    "--- {}\n{}\n",
                    u.name,
                    std::fs::read_to_string(ctl.unit_log_path(&u.name)).unwrap_or_default()
                ));
            }
            panic!(
                "timed out waiting for {what}: {:#?}\n{logs}",
                ctl.status().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn workload(ctl: &Controller, unit: &str) -> (String, String) {
    let s = ctl.status().unwrap();
    let u = s
        .applications
        .iter()
        .flat_map(|a| &a.units)
        .find(|u| u.name == unit)
        .unwrap();
    (u.workload.status.clone(), u.workload.message.clone())
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
    copy_dir(&charms.join("../metadata/self-signed-certificates"), &ssc);
    std::fs::copy(env!("CARGO_BIN_EXE_ssc-charm"), ssc.join("dispatch")).unwrap();
    let req = home.path().join("req");
    copy_dir(&charms.join("charms/tls-requirer"), &req);

    let mut cfg = ControllerConfig::new(home.path().join("ward"));
    cfg.jujuc_path = PathBuf::from(env!("CARGO_BIN_EXE_e2e-jujuc"));
    cfg.retry_base = Duration::from_millis(300);
    let ctl = Controller::open(cfg).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let c = ctl.clone();
    rt.spawn(async move { c.run(std::future::pending()).await });

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
}
