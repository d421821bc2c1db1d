//! A Rust SDK charm (the greeter example) deployed on the real controller, talking to a
//! shell charm through relation data and a granted secret, with an action and a config
//! change: the SDK's hook-tool backend against the controller's hook-tool server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use controller::Controller;
use serde_json::json;
use ward_e2e::{assert_no_hook_failed, copy_dir, settle, workload as unit_status, Model};

fn python() -> String {
    std::env::var("WARD_TEST_PYTHON").expect(
        "WARD_TEST_PYTHON must name a Python with ops 3.x installed (scripts/test.sh sets it to .venv/bin/python)",
    )
}

struct Running {
    ctl: Controller,
    _rt: tokio::runtime::Runtime,
    _home: tempfile::TempDir,
}

/// A controller on a temporary home, and the greeter and listener charm directories.
fn start() -> (Running, PathBuf, PathBuf) {
    let home = tempfile::Builder::new()
        .prefix("we2e")
        .tempdir_in("/tmp")
        .unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("charms");
    let greeter = home.path().join("greeter");
    copy_dir(&src.join("greeter"), &greeter).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_greeter-charm"),
        greeter.join("dispatch"),
    )
    .unwrap();
    let listener = home.path().join("listener");
    copy_dir(&src.join("listener"), &listener).unwrap();
    let py = python();
    let m = Model::start(
        &home.path().join("ward"),
        Path::new(env!("CARGO_BIN_EXE_e2e-jujuc")),
        &[("WARD_TEST_PYTHON", py.as_str())],
    )
    .unwrap();
    (
        Running {
            ctl: m.ctl,
            _rt: m.rt,
            _home: home,
        },
        greeter,
        listener,
    )
}

fn wait_until(ctl: &Controller, what: &str, f: impl FnMut(&Controller) -> bool) {
    settle(ctl, what, Duration::from_secs(60), f).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn rust_sdk_charm_shares_data_and_a_secret_with_another_charm() {
    let (r, greeter, listener) = start();
    let ctl = &r.ctl;
    ctl.deploy("greeter", &greeter, 2, BTreeMap::new()).unwrap();
    ctl.deploy("listener", &listener, 1, BTreeMap::new())
        .unwrap();
    wait_until(ctl, "greeter to wait for a relation", |c| {
        unit_status(c, "greeter/0").0 == "waiting" && unit_status(c, "greeter/1").0 == "waiting"
    });
    assert_eq!(
        unit_status(ctl, "greeter/0").1,
        "waiting for a greetings relation"
    );

    let rel = ctl.integrate("greeter", "listener").unwrap();
    wait_until(ctl, "the listener to hear the greeting", |c| {
        unit_status(c, "listener/0") == ("active".into(), "heard: hello".into())
    });
    let app_bag = ctl.relation_data(rel, "greeter").unwrap();
    assert_eq!(app_bag["greeting"], "hello");
    assert!(
        app_bag["token-secret"].starts_with("secret:"),
        "{app_bag:?}"
    );
    assert!(
        !app_bag.values().any(|v| v.contains("t0k3n")),
        "secret content leaked into relation data"
    );
    let heard = ctl.relation_data(rel, "listener/0").unwrap();
    assert_eq!(heard["heard"], "hello");
    assert_eq!(
        heard["token-length"], "15",
        "the listener read the granted secret"
    );
    for unit in ["greeter/0", "greeter/1"] {
        assert_eq!(unit_status(ctl, unit).0, "active");
        let addr = &ctl.relation_data(rel, unit).unwrap()["address"];
        assert!(
            !addr.is_empty(),
            "{unit} published its address from network-get"
        );
    }

    // An action with parameters, through action-get/action-set/action-log.
    let task = r
        ._rt
        .block_on(ctl.run_action(
            "greeter/0",
            "greet",
            json!({"name": "Ada", "shout": true}),
            Duration::from_secs(30),
        ))
        .unwrap();
    assert_eq!(task.status, "completed", "{task:?}");
    assert_eq!(task.results["greeting"], "HELLO, ADA!");
    assert_eq!(task.results["meta"]["length"], "11");

    // Bad parameters fail the action with the parameter named.
    let task = r
        ._rt
        .block_on(ctl.run_action(
            "greeter/0",
            "greet",
            json!({"name": "Ada", "shout": "loud"}),
            Duration::from_secs(30),
        ))
        .unwrap();
    assert_eq!(task.status, "failed", "{task:?}");
    assert!(task.message.contains("shout"), "{}", task.message);

    // A config change flows through to the other side.
    ctl.set_config(
        "greeter",
        [("greeting".to_string(), Some(json!("hi")))].into(),
    )
    .unwrap();
    wait_until(ctl, "the listener to hear the new greeting", |c| {
        unit_status(c, "listener/0").1 == "heard: hi"
    });

    // Invalid config blocks the greeter, naming the option; nothing crashes.
    ctl.set_config(
        "greeter",
        [("greeting".to_string(), Some(json!("  ")))].into(),
    )
    .unwrap();
    assert_no_hook_failed(ctl);
    wait_until(ctl, "the greeter to block", |c| {
        unit_status(c, "greeter/0").0 == "blocked"
    });
    assert!(unit_status(ctl, "greeter/0").1.contains("greeting"));
}

#[test]
fn python_ops_charm_reads_the_rust_charms_data_and_secret() {
    let (r, greeter, _) = start();
    let ctl = &r.ctl;
    let root = greeter.parent().unwrap().to_path_buf();
    let ops_listener = root.join("ops-listener");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("charms/ops-listener");
    copy_dir(&src, &ops_listener).unwrap();
    ctl.deploy("greeter", &greeter, 1, BTreeMap::new()).unwrap();
    ctl.deploy("ops-listener", &ops_listener, 1, BTreeMap::new())
        .unwrap();
    let rel = ctl
        .integrate("greeter:greetings", "ops-listener:greetings")
        .unwrap();
    wait_until(ctl, "the ops charm to hear the greeting", |c| {
        unit_status(c, "ops-listener/0") == ("active".into(), "heard: hello".into())
    });
    let heard = ctl.relation_data(rel, "ops-listener/0").unwrap();
    assert_eq!(heard["heard"], "hello");
    assert_eq!(
        heard["token-length"], "15",
        "ops read the secret the Rust charm granted"
    );
    assert!(heard["ops-version"].starts_with('3'), "{heard:?}");
    assert_eq!(unit_status(ctl, "greeter/0").0, "active");
    assert_no_hook_failed(ctl);
}
