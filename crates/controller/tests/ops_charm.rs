//! A Python `ops` charm runs unmodified on the plain-process substrate.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{no_config, Harness};
use serde_json::json;

fn python() -> String {
    std::env::var("WARD_TEST_PYTHON").expect(
        "WARD_TEST_PYTHON must name a Python with ops 3.x installed (scripts/test.sh sets it to .venv/bin/python)",
    )
}

#[test]
fn ops_charms_reach_active_and_share_relation_data_and_a_secret() {
    let py = python();
    let mut h = Harness::new();
    h.crash();
    let mut cfg = common::config(h.home.path(), &h.events);
    cfg.extra_env.push(("WARD_TEST_PYTHON".into(), py));
    h.ctl = controller::Controller::open(cfg).unwrap();
    h.start();
    let charm = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/charms/ops-demo");
    h.ctl.deploy("alpha", &charm, 1, no_config()).unwrap();
    h.ctl.deploy("beta", &charm, 2, no_config()).unwrap();
    let settle = |h: &Harness| {
        h.wait_until("settled", Duration::from_secs(180), |h| {
            h.ctl.is_settled().unwrap()
        })
    };
    settle(&h);
    assert_eq!(
        h.workload("alpha/0"),
        ("active".into(), "ready".into()),
        "log:\n{}",
        h.unit_log("alpha/0")
    );
    let rel = h.ctl.integrate("alpha:feed", "beta:source").unwrap();
    settle(&h);
    for u in ["beta/0", "beta/1"] {
        assert_eq!(
            h.workload(u),
            ("active".into(), "token s3cret greeting hi".into()),
            "log:\n{}",
            h.unit_log(u)
        );
        assert_eq!(h.ctl.relation_data(rel, u).unwrap()["ack"], "s3cret");
    }
    let app = h.ctl.relation_data(rel, "alpha").unwrap();
    assert!(
        app["token-id"].starts_with("secret:") || app["token-id"].starts_with("secret://"),
        "{app:?}"
    );
    assert_eq!(
        h.ctl.relation_data(rel, "alpha/0").unwrap()["note"],
        "hello from alpha/0"
    );
    assert!(
        h.unit_log("alpha/0").contains("installing alpha/0"),
        "juju-log reaches the unit log"
    );
    assert_eq!(h.ctl.status().unwrap().applications[0].version, "1.0");

    // New config → new secret revision → secret-changed on the consumers.
    h.ctl
        .set_config(
            "alpha",
            [
                ("token".to_string(), Some(json!("n3w"))),
                ("greeting".to_string(), Some(json!("hey"))),
            ]
            .into(),
        )
        .unwrap();
    settle(&h);
    for u in ["beta/0", "beta/1"] {
        assert_eq!(
            h.workload(u).1,
            "token n3w greeting hey",
            "log:\n{}",
            h.unit_log(u)
        );
    }
    let t = h
        .block_on(
            h.ctl
                .run_action("beta/1", "get-token", json!({}), Duration::from_secs(60)),
        )
        .unwrap();
    assert_eq!(t.status, "completed", "{t:?}");
    assert_eq!(t.results["token"], "n3w");
    // Removing the relation runs departed and broken through ops without errors.
    h.ctl.remove_relation(rel).unwrap();
    settle(&h);
    assert!(h
        .ctl
        .status()
        .unwrap()
        .relations
        .iter()
        .all(|r| r.kind == "peer"));
    for u in ["alpha/0", "beta/0", "beta/1"] {
        assert!(
            h.unit_log(u).contains("_relation_broken"),
            "{u}: {}",
            h.unit_log(u)
        );
    }
    // And removing a unit runs its teardown.
    h.ctl.remove_unit("beta/1").unwrap();
    h.wait_until("beta/1 gone", Duration::from_secs(120), |h| {
        h.ctl
            .status()
            .unwrap()
            .applications
            .iter()
            .all(|a| a.units.iter().all(|u| u.name != "beta/1"))
    });
    for u in ["alpha/0", "beta/0", "beta/1"] {
        let log = h.unit_log(u);
        assert!(
            !log.contains("Traceback") && !log.contains(" ERROR "),
            "{u} log:\n{log}"
        );
    }
    if std::env::var_os("WARD_TEST_SHOW_LOG").is_some() {
        eprintln!("{}", h.unit_log("beta/0"));
    }
}
