//! Scaling, upgrades, removal, timers and owner-side secret events.

mod common;

use std::time::Duration;

use common::{charm, no_config, FakeClock, Harness};
use serde_json::json;

const PROV: &str =
    "provides:\n  db:\n    interface: demo-db\npeers:\n  cluster:\n    interface: c\n";
const REQ: &str = "requires:\n  db:\n    interface: demo-db\n";

#[test]
fn scaling_up_joins_existing_units_and_removing_an_app_breaks_its_relations() {
    let h = Harness::new();
    let p = charm(h.home.path(), "prov", PROV, "", "", "");
    let r = charm(h.home.path(), "req", REQ, "", "", "");
    h.ctl.deploy("prov", &p, 1, no_config()).unwrap();
    h.ctl.deploy("req", &r, 1, no_config()).unwrap();
    h.ctl.integrate("req", "prov").unwrap();
    h.settle();
    let before = h.unit_events("prov/0").len();
    let added = h.ctl.add_unit("req", 1).unwrap();
    assert_eq!(added, ["req/1"]);
    h.settle();
    let new = &h.unit_events("prov/0")[before..];
    assert_eq!(
        new,
        ["db-relation-joined:req/1", "db-relation-changed:req/1"]
    );
    let ev = h.unit_events("req/1");
    assert_eq!(
        &ev[..5],
        [
            "install",
            "db-relation-created",
            "leader-settings-changed",
            "config-changed",
            "start"
        ],
        "{ev:?}"
    );

    h.ctl.remove_application("req").unwrap();
    h.wait_until("req gone", Duration::from_secs(30), |h| {
        h.ctl.status().unwrap().applications.len() == 1
    });
    h.settle();
    let ev = h.unit_events("prov/0");
    let n = ev.len();
    let tail: Vec<&str> = ev[n - 3..].iter().map(String::as_str).collect();
    assert!(
        tail.contains(&"db-relation-departed:req/0")
            && tail.contains(&"db-relation-departed:req/1"),
        "{ev:?}"
    );
    assert_eq!(ev[n - 1], "db-relation-broken");
    for u in ["req/0", "req/1"] {
        let ev = h.unit_events(u);
        let n = ev.len();
        assert_eq!(&ev[n - 2..], ["stop", "remove"], "{u}: {ev:?}");
        assert!(ev.contains(&"db-relation-broken".to_string()));
    }
    let st = h.ctl.status().unwrap();
    assert!(
        st.relations.iter().all(|r| r.kind == "peer"),
        "{:?}",
        st.relations
    );
}

#[test]
fn refresh_runs_upgrade_charm_then_config_changed() {
    let h = Harness::new();
    let c = charm(h.home.path(), "up", "", "", "", "");
    h.ctl.deploy("up", &c, 1, no_config()).unwrap();
    h.settle();
    std::fs::write(c.join("VERSION"), "2").unwrap();
    h.ctl.refresh("up", &c).unwrap();
    h.settle();
    let ev = h.unit_events("up/0");
    assert_eq!(&ev[ev.len() - 2..], ["upgrade-charm", "config-changed"]);
    let st = h.ctl.status().unwrap();
    assert_eq!(st.applications[0].charm_rev, 2);
    assert!(h.home.path().join("units/unit-up-0/charm/VERSION").exists());
}

#[test]
fn update_status_runs_on_the_model_interval() {
    let h = Harness::new();
    let c = charm(h.home.path(), "tick", "", "", "", "");
    h.ctl.deploy("tick", &c, 1, no_config()).unwrap();
    h.settle();
    h.ctl
        .set_model_config("update-status-hook-interval", json!("300ms"))
        .unwrap();
    h.wait_until("two update-status", Duration::from_secs(20), |h| {
        h.unit_events("tick/0")
            .iter()
            .filter(|e| *e == "update-status")
            .count()
            >= 2
    });
}

#[test]
fn owners_get_secret_rotate_expired_and_remove() {
    let clock = FakeClock::starting_now();
    let h = Harness::with_clock(clock.clone());
    let c = charm(
        h.home.path(),
        "keeper",
        "",
        "",
        "",
        r#"
case "$JUJU_DISPATCH_PATH" in
  hooks/install)
    secret-add --owner unit --rotate hourly --label rot key=abc
    secret-add --owner unit --expire 2h --label exp key=abc ;;
  hooks/secret-rotate)
    echo "$JUJU_UNIT_NAME rotate:$JUJU_SECRET_LABEL" >> "$WARD_TEST_EVENTS"
    secret-set "$JUJU_SECRET_ID" key=new ;;
  hooks/secret-expired)
    echo "$JUJU_UNIT_NAME expired:$JUJU_SECRET_LABEL:$JUJU_SECRET_REVISION" >> "$WARD_TEST_EVENTS"
    secret-remove "$JUJU_SECRET_ID" --revision "$JUJU_SECRET_REVISION" ;;
  hooks/secret-remove)
    echo "$JUJU_UNIT_NAME remove:$JUJU_SECRET_LABEL:$JUJU_SECRET_REVISION" >> "$WARD_TEST_EVENTS"
    secret-remove "$JUJU_SECRET_ID" --revision "$JUJU_SECRET_REVISION" ;;
esac"#,
    );
    h.ctl.deploy("keeper", &c, 1, no_config()).unwrap();
    h.settle();
    assert_eq!(
        h.ctl.secrets().unwrap().len(),
        2,
        "{}",
        h.unit_log("keeper/0")
    );
    clock.advance(Duration::from_secs(3 * 3600));
    h.ctl.wake_all();
    h.settle();
    let ev = h.unit_events("keeper/0");
    assert_eq!(
        ev.iter().filter(|e| *e == "rotate:rot").count(),
        1,
        "{ev:?}"
    );
    assert!(ev.contains(&"expired:exp:1".to_string()), "{ev:?}");
    assert!(ev.contains(&"remove:rot:1".to_string()), "{ev:?}");
    let secrets = h.ctl.secrets().unwrap();
    assert_eq!(
        secrets.len(),
        1,
        "the expired secret's only revision was removed"
    );
    assert_eq!(
        (secrets[0].label.as_deref(), secrets[0].revision),
        (Some("rot"), 2)
    );
}

#[test]
fn a_hook_that_leaves_a_daemon_running_still_completes() {
    let h = Harness::new();
    let c = charm(
        h.home.path(),
        "daemon",
        "",
        "",
        "",
        "case \"$JUJU_DISPATCH_PATH\" in hooks/install) sleep 40 & ;; esac",
    );
    let t = std::time::Instant::now();
    h.ctl.deploy("daemon", &c, 1, no_config()).unwrap();
    h.settle();
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "settling waited for the daemon: {:?}",
        t.elapsed()
    );
    assert_eq!(h.unit_events("daemon/0").last().unwrap(), "start");
}

#[test]
fn api_rejects_bad_requests_with_clear_errors() {
    let h = Harness::new();
    let c = charm(
        h.home.path(),
        "cfg",
        PROV,
        "options:\n  port:\n    type: int\n    default: 80\n",
        "",
        "",
    );
    let r = charm(h.home.path(), "req", REQ, "", "", "");
    let err = h
        .ctl
        .deploy("cfg", &c, 1, [("port".to_string(), json!("eighty"))].into())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "option \"port\" expected int, got \"eighty\""
    );
    assert!(h.ctl.deploy("Bad_Name", &c, 1, no_config()).is_err());
    h.ctl.deploy("cfg", &c, 1, no_config()).unwrap();
    assert_eq!(
        h.ctl
            .deploy("cfg", &c, 1, no_config())
            .unwrap_err()
            .to_string(),
        "application \"cfg\" already exists"
    );
    assert_eq!(
        h.ctl
            .set_config("cfg", [("nope".to_string(), Some(json!(1)))].into())
            .unwrap_err()
            .to_string(),
        "unknown option \"nope\""
    );
    assert_eq!(h.ctl.config("cfg").unwrap()["port"], (json!(80), false));
    assert!(h
        .ctl
        .set_config("cfg", [("port".to_string(), Some(json!(81)))].into())
        .unwrap());
    assert_eq!(h.ctl.config("cfg").unwrap()["port"], (json!(81), true));
    assert!(
        !h.ctl
            .set_config("cfg", [("port".to_string(), Some(json!(81)))].into())
            .unwrap(),
        "no change, no config-changed"
    );
    h.ctl.deploy("req", &r, 1, no_config()).unwrap();
    assert!(
        h.ctl.integrate("cfg:cluster", "req").is_err(),
        "peers cannot be integrated"
    );
    h.ctl.integrate("cfg", "req:db").unwrap();
    assert!(h
        .ctl
        .integrate("cfg", "req")
        .unwrap_err()
        .to_string()
        .contains("already exists"));
    h.settle();
    h.ctl.remove_relation_between("req", "cfg:db").unwrap();
    h.settle();
    assert!(h
        .ctl
        .status()
        .unwrap()
        .relations
        .iter()
        .all(|r| r.kind == "peer"));
    assert!(h.ctl.remove_relation_between("req", "cfg").is_err());
}

#[test]
fn filesystem_storage_is_attached_before_install_and_detached_on_removal() {
    let h = Harness::new();
    let c = charm(
        h.home.path(),
        "stor",
        "storage:\n  data:\n    type: filesystem\n    location: /srv/data\n",
        "",
        "",
        r#"
case "$JUJU_DISPATCH_PATH" in
  hooks/data-storage-attached)
    loc=$(storage-get location)
    touch "$loc/written"
    echo "$JUJU_UNIT_NAME attached:$JUJU_STORAGE_ID:$(storage-list data):$JUJU_STORAGE_KIND:$(storage-get -s "$JUJU_STORAGE_ID" kind)" >> "$WARD_TEST_EVENTS" ;;
esac"#,
    );
    h.ctl.deploy("stor", &c, 2, no_config()).unwrap();
    h.settle();
    let ev = h.unit_events("stor/1");
    assert_eq!(
        &ev[..3],
        [
            "data-storage-attached",
            "attached:data/1:data/1:filesystem:filesystem",
            "install"
        ],
        "{ev:?}"
    );
    assert!(h
        .home
        .path()
        .join("units/unit-stor-0/storage/data-0/written")
        .exists());
    h.ctl.remove_unit("stor/1").unwrap();
    h.wait_until("stor/1 gone", Duration::from_secs(30), |h| {
        h.ctl.status().unwrap().applications[0].units.len() == 1
    });
    let ev = h.unit_events("stor/1");
    assert_eq!(
        &ev[ev.len() - 3..],
        ["stop", "data-storage-detaching", "remove"],
        "{ev:?}"
    );
}
