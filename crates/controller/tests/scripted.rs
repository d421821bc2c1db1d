//! End-to-end tests of the controller with scripted (`dispatch` shell) charms.

mod common;

use std::time::Duration;

use common::{charm, no_config, Harness};
use serde_json::json;

const PEERS: &str = "peers:\n  cluster:\n    interface: demo-cluster\n";

#[test]
fn deploy_runs_hooks_in_juju_order_with_one_leader() {
    let h = Harness::new();
    let body = r#"
case "$JUJU_DISPATCH_PATH" in
  hooks/start) status-set active "leader=$(is-leader)" ;;
esac"#;
    let c = charm(
        h.home.path(),
        "demo",
        PEERS,
        "options:\n  greeting:\n    type: string\n    default: hi\n",
        "",
        body,
    );
    h.ctl.deploy("demo", &c, 3, no_config()).unwrap();
    h.settle();
    let leader = h.unit_events("demo/0");
    assert_eq!(
        &leader[..5],
        [
            "install",
            "cluster-relation-created",
            "leader-elected",
            "config-changed",
            "start"
        ],
        "{leader:?}"
    );
    for u in ["demo/1", "demo/2"] {
        let ev = h.unit_events(u);
        assert_eq!(
            &ev[..5],
            [
                "install",
                "cluster-relation-created",
                "leader-settings-changed",
                "config-changed",
                "start"
            ],
            "{u}: {ev:?}"
        );
        // Peer joined then changed for each other unit.
        for other in ["demo/0", "demo/1", "demo/2"].iter().filter(|o| *o != &u) {
            let j = ev
                .iter()
                .position(|e| e == &format!("cluster-relation-joined:{other}"))
                .unwrap_or_else(|| panic!("{u} never joined {other}: {ev:?}"));
            let c = ev
                .iter()
                .position(|e| e == &format!("cluster-relation-changed:{other}"))
                .unwrap();
            assert!(j < c);
        }
    }
    assert_eq!(
        h.workload("demo/0"),
        ("active".into(), "leader=True".into())
    );
    assert_eq!(
        h.workload("demo/1"),
        ("active".into(), "leader=False".into())
    );
    let st = h.ctl.status().unwrap();
    assert_eq!(
        st.applications[0].units.iter().filter(|u| u.leader).count(),
        1
    );
    // Config change → config-changed on every unit, nothing else.
    let before = h.events().len();
    h.ctl
        .set_config("demo", [("greeting".to_string(), Some(json!("yo")))].into())
        .unwrap();
    h.wait_until("config-changed everywhere", Duration::from_secs(20), |h| {
        h.events().len() >= before + 3
    });
    h.settle();
    let new: Vec<String> = h.events()[before..].to_vec();
    assert!(
        new.iter().all(|l| l.contains("hooks/config-changed")),
        "{new:?}"
    );
}

#[test]
fn leadership_moves_when_the_leader_is_removed() {
    let h = Harness::new();
    let c = charm(h.home.path(), "demo", PEERS, "", "", "");
    h.ctl.deploy("demo", &c, 3, no_config()).unwrap();
    h.settle();
    h.ctl.remove_unit("demo/0").unwrap();
    h.wait_until("demo/0 gone", Duration::from_secs(30), |h| {
        h.ctl.status().unwrap().applications[0].units.len() == 2
    });
    h.settle();
    let ev0 = h.unit_events("demo/0");
    let tail: Vec<&String> = ev0.iter().rev().take(2).collect();
    assert_eq!(tail, ["remove", "stop"], "{ev0:?}");
    assert!(h
        .unit_events("demo/1")
        .contains(&"leader-elected".to_string()));
    assert!(h
        .unit_events("demo/2")
        .contains(&"cluster-relation-departed:demo/0".to_string()));
}
