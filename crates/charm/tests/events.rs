//! Every event kind parsed from a Juju environment, and the errors for bad ones.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use charm::event::{juju_vars, NoticeEvent, StorageEvent};
use charm::{Error, Event, HookEnv, RelationEvent, RelationId, SecretEvent};

fn base() -> Vec<(String, String)> {
    vec![
        ("JUJU_UNIT_NAME".into(), "pg/2".into()),
        ("JUJU_MODEL_NAME".into(), "prod".into()),
        (
            "JUJU_MODEL_UUID".into(),
            "b2c1c9c4-6f4e-4b8a-9a43-1f2b2d4e5f60".into(),
        ),
        ("JUJU_VERSION".into(), "3.6.1".into()),
        (
            "JUJU_CHARM_DIR".into(),
            "/var/lib/juju/agents/unit-pg-2/charm".into(),
        ),
        ("JUJU_HOOK_NAME".into(), String::new()),
        ("JUJU_CONTEXT_ID".into(), "pg/2-install-123".into()),
        ("PATH".into(), "/usr/bin".into()),
    ]
}

fn parse(extra: &[(&str, &str)]) -> Result<HookEnv, Error> {
    let mut v = base();
    v.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    HookEnv::from_vars(v)
}

fn event(extra: &[(&str, &str)]) -> Event {
    parse(extra).unwrap().event
}

#[test]
fn identity_comes_from_the_environment() {
    let env = parse(&[("JUJU_DISPATCH_PATH", "hooks/install")]).unwrap();
    assert_eq!(env.unit_name, "pg/2");
    assert_eq!(env.app_name, "pg");
    assert_eq!(env.model_name, "prod");
    assert_eq!(env.juju_version, "3.6.1");
    assert_eq!(
        env.charm_dir.as_deref(),
        Some("/var/lib/juju/agents/unit-pg-2/charm")
    );
}

#[test]
fn lifecycle_events_parse() {
    let cases = [
        ("install", Event::Install),
        ("start", Event::Start),
        ("stop", Event::Stop),
        ("remove", Event::Remove),
        ("config-changed", Event::ConfigChanged),
        ("upgrade-charm", Event::UpgradeCharm),
        ("update-status", Event::UpdateStatus),
        ("leader-elected", Event::LeaderElected),
        ("leader-settings-changed", Event::LeaderSettingsChanged),
        ("collect-metrics", Event::CollectMetrics),
        ("pre-series-upgrade", Event::PreSeriesUpgrade),
        ("post-series-upgrade", Event::PostSeriesUpgrade),
    ];
    for (name, want) in cases {
        let path = format!("hooks/{name}");
        assert_eq!(event(&[("JUJU_DISPATCH_PATH", &path)]), want, "{name}");
        assert_eq!(want.juju_name(), name);
    }
}

#[test]
fn relation_events_parse_with_their_units() {
    let rel = |remote_unit: Option<&str>, departing: Option<&str>| RelationEvent {
        relation: RelationId::new("database", 7),
        remote_app: "pgbouncer".into(),
        remote_unit: remote_unit.map(Into::into),
        departing_unit: departing.map(Into::into),
    };
    let common = [
        ("JUJU_RELATION", "database"),
        ("JUJU_RELATION_ID", "database:7"),
        ("JUJU_REMOTE_APP", "pgbouncer"),
    ];
    let with = |path: &str, more: &[(&'static str, &'static str)]| {
        let mut v: Vec<(&str, &str)> = common.to_vec();
        v.push(("JUJU_DISPATCH_PATH", path));
        v.extend_from_slice(more);
        event(&v)
    };
    assert_eq!(
        with("hooks/database-relation-created", &[]),
        Event::RelationCreated(rel(None, None))
    );
    assert_eq!(
        with(
            "hooks/database-relation-joined",
            &[("JUJU_REMOTE_UNIT", "pgbouncer/0")]
        ),
        Event::RelationJoined(rel(Some("pgbouncer/0"), None))
    );
    assert_eq!(
        with(
            "hooks/database-relation-changed",
            &[("JUJU_REMOTE_UNIT", "pgbouncer/0")]
        ),
        Event::RelationChanged(rel(Some("pgbouncer/0"), None))
    );
    assert_eq!(
        with(
            "hooks/database-relation-changed",
            &[("JUJU_REMOTE_UNIT", "")]
        ),
        Event::RelationChanged(rel(None, None))
    );
    assert_eq!(
        with(
            "hooks/database-relation-departed",
            &[
                ("JUJU_REMOTE_UNIT", "pgbouncer/0"),
                ("JUJU_DEPARTING_UNIT", "pgbouncer/0")
            ]
        ),
        Event::RelationDeparted(rel(Some("pgbouncer/0"), Some("pgbouncer/0")))
    );
    assert_eq!(
        with("hooks/database-relation-broken", &[]),
        Event::RelationBroken(rel(None, None))
    );
    // An endpoint with dashes in it.
    let ev = event(&[
        (
            "JUJU_DISPATCH_PATH",
            "hooks/backend-database-relation-changed",
        ),
        ("JUJU_RELATION", "backend-database"),
        ("JUJU_RELATION_ID", "backend-database:12"),
        ("JUJU_REMOTE_APP", "postgresql"),
        ("JUJU_REMOTE_UNIT", "postgresql/1"),
    ]);
    assert_eq!(
        ev.relation().unwrap().relation,
        RelationId::new("backend-database", 12)
    );
}

#[test]
fn workload_events_parse() {
    assert_eq!(
        event(&[
            ("JUJU_DISPATCH_PATH", "hooks/postgresql-pebble-ready"),
            ("JUJU_WORKLOAD_NAME", "postgresql")
        ]),
        Event::PebbleReady {
            container: "postgresql".into()
        }
    );
    assert_eq!(
        event(&[
            (
                "JUJU_DISPATCH_PATH",
                "hooks/postgresql-pebble-custom-notice"
            ),
            ("JUJU_WORKLOAD_NAME", "postgresql"),
            ("JUJU_NOTICE_ID", "4"),
            ("JUJU_NOTICE_TYPE", "custom"),
            ("JUJU_NOTICE_KEY", "ward.dev/backup-done"),
        ]),
        Event::PebbleCustomNotice(NoticeEvent {
            container: "postgresql".into(),
            id: "4".into(),
            kind: "custom".into(),
            key: "ward.dev/backup-done".into()
        })
    );
    for (suffix, failed) in [("failed", true), ("recovered", false)] {
        let path = format!("hooks/postgresql-pebble-check-{suffix}");
        let ev = event(&[
            ("JUJU_DISPATCH_PATH", &path),
            ("JUJU_WORKLOAD_NAME", "postgresql"),
            ("JUJU_PEBBLE_CHECK_NAME", "alive"),
        ]);
        let want = if failed {
            Event::PebbleCheckFailed {
                container: "postgresql".into(),
                check: "alive".into(),
            }
        } else {
            Event::PebbleCheckRecovered {
                container: "postgresql".into(),
                check: "alive".into(),
            }
        };
        assert_eq!(ev, want);
    }
}

#[test]
fn storage_events_parse() {
    let s = StorageEvent {
        name: "pgdata".into(),
        id: "pgdata/0".into(),
        location: Some("/var/lib/postgresql/data".into()),
    };
    for (suffix, attached) in [("attached", true), ("detaching", false)] {
        let path = format!("hooks/pgdata-storage-{suffix}");
        let ev = event(&[
            ("JUJU_DISPATCH_PATH", &path),
            ("JUJU_STORAGE_ID", "pgdata/0"),
            ("JUJU_STORAGE_LOCATION", "/var/lib/postgresql/data"),
            ("JUJU_STORAGE_KIND", "filesystem"),
        ]);
        let want = if attached {
            Event::StorageAttached(s.clone())
        } else {
            Event::StorageDetaching(s.clone())
        };
        assert_eq!(ev, want);
    }
}

#[test]
fn secret_events_parse() {
    let id = "secret://b2c1c9c4-6f4e-4b8a-9a43-1f2b2d4e5f60/cu3r7vvmp25c7b2cnlr0";
    let ev = |name: &str, rev: Option<&str>| {
        let path = format!("hooks/secret-{name}");
        let mut v = vec![
            ("JUJU_DISPATCH_PATH", path.as_str()),
            ("JUJU_SECRET_ID", id),
            ("JUJU_SECRET_LABEL", "tls"),
        ];
        if let Some(r) = rev {
            v.push(("JUJU_SECRET_REVISION", r));
        }
        event(&v)
    };
    let s = |rev| SecretEvent {
        id: id.into(),
        label: Some("tls".into()),
        revision: rev,
    };
    assert_eq!(ev("changed", None), Event::SecretChanged(s(None)));
    assert_eq!(ev("rotate", None), Event::SecretRotate(s(None)));
    assert_eq!(ev("expired", Some("3")), Event::SecretExpired(s(Some(3))));
    assert_eq!(ev("remove", Some("2")), Event::SecretRemove(s(Some(2))));
}

#[test]
fn actions_parse() {
    let ev = event(&[
        ("JUJU_DISPATCH_PATH", "actions/get-password"),
        ("JUJU_ACTION_NAME", "get-password"),
        ("JUJU_ACTION_UUID", "17"),
        ("JUJU_ACTION_TAG", "action-17"),
    ]);
    assert_eq!(
        ev,
        Event::Action {
            name: "get-password".into(),
            id: "17".into()
        }
    );
    assert!(ev.is_action());
}

#[test]
fn every_event_round_trips_through_juju_vars() {
    let rel = RelationEvent {
        relation: RelationId::new("db", 3),
        remote_app: "app".into(),
        remote_unit: Some("app/1".into()),
        departing_unit: Some("app/1".into()),
    };
    let secret = SecretEvent {
        id: "secret:abc".into(),
        label: Some("l".into()),
        revision: Some(2),
    };
    let events = vec![
        Event::Install,
        Event::UpdateStatus,
        Event::RelationCreated(RelationEvent {
            remote_unit: None,
            departing_unit: None,
            ..rel.clone()
        }),
        Event::RelationJoined(RelationEvent {
            departing_unit: None,
            ..rel.clone()
        }),
        Event::RelationChanged(RelationEvent {
            departing_unit: None,
            ..rel.clone()
        }),
        Event::RelationDeparted(rel.clone()),
        Event::RelationBroken(RelationEvent {
            remote_unit: None,
            departing_unit: None,
            ..rel
        }),
        Event::PebbleReady {
            container: "c".into(),
        },
        Event::PebbleCheckFailed {
            container: "c".into(),
            check: "up".into(),
        },
        Event::StorageAttached(StorageEvent {
            name: "data".into(),
            id: "data/1".into(),
            location: None,
        }),
        Event::SecretChanged(SecretEvent {
            revision: None,
            ..secret.clone()
        }),
        Event::SecretExpired(secret.clone()),
        Event::SecretRemove(secret),
        Event::Action {
            name: "backup".into(),
            id: "9".into(),
        },
    ];
    for ev in events {
        let env = HookEnv::from_vars(juju_vars("u/0", &ev)).unwrap();
        assert_eq!(env.event, ev);
    }
}

#[test]
fn missing_variables_are_named() {
    let err = HookEnv::from_vars(Vec::<(String, String)>::new()).unwrap_err();
    assert!(
        matches!(&err, Error::MissingEnv { name } if name == "JUJU_UNIT_NAME"),
        "{err}"
    );
    let err = parse(&[]).unwrap_err();
    assert!(
        matches!(&err, Error::MissingEnv { name } if name == "JUJU_DISPATCH_PATH"),
        "{err}"
    );
    let err = parse(&[
        ("JUJU_DISPATCH_PATH", "hooks/db-relation-joined"),
        ("JUJU_RELATION", "db"),
        ("JUJU_RELATION_ID", "db:1"),
        ("JUJU_REMOTE_APP", "x"),
    ])
    .unwrap_err();
    assert!(
        matches!(&err, Error::MissingEnv { name } if name == "JUJU_REMOTE_UNIT"),
        "{err}"
    );
    let err = parse(&[
        ("JUJU_DISPATCH_PATH", "hooks/secret-expired"),
        ("JUJU_SECRET_ID", "secret:x"),
    ])
    .unwrap_err();
    assert!(
        matches!(&err, Error::MissingEnv { name } if name == "JUJU_SECRET_REVISION"),
        "{err}"
    );
    let err = parse(&[("JUJU_DISPATCH_PATH", "actions/backup")]).unwrap_err();
    assert!(
        matches!(&err, Error::MissingEnv { name } if name == "JUJU_ACTION_UUID"),
        "{err}"
    );
}

#[test]
fn malformed_variables_are_named_with_their_value() {
    let err = parse(&[
        ("JUJU_DISPATCH_PATH", "hooks/db-relation-changed"),
        ("JUJU_RELATION", "db"),
        ("JUJU_RELATION_ID", "db:seven"),
        ("JUJU_REMOTE_APP", "x"),
    ])
    .unwrap_err();
    assert!(
        matches!(&err, Error::MalformedEnv { name, value, .. } if name == "JUJU_RELATION_ID" && value == "db:seven"),
        "{err}"
    );
    let err = parse(&[
        ("JUJU_DISPATCH_PATH", "hooks/db-relation-changed"),
        ("JUJU_RELATION", "cache"),
        ("JUJU_RELATION_ID", "cache:1"),
        ("JUJU_REMOTE_APP", "x"),
    ])
    .unwrap_err();
    assert!(
        matches!(&err, Error::MalformedEnv { name, .. } if name == "JUJU_RELATION"),
        "{err}"
    );
    let mut v = base();
    v.retain(|(k, _)| k != "JUJU_UNIT_NAME");
    v.push(("JUJU_UNIT_NAME".into(), "no-number".into()));
    v.push(("JUJU_DISPATCH_PATH".into(), "hooks/install".into()));
    let err = HookEnv::from_vars(v).unwrap_err();
    assert!(
        matches!(&err, Error::MalformedEnv { name, .. } if name == "JUJU_UNIT_NAME"),
        "{err}"
    );
    let err = parse(&[
        ("JUJU_DISPATCH_PATH", "hooks/secret-remove"),
        ("JUJU_SECRET_ID", "s"),
        ("JUJU_SECRET_REVISION", "-1"),
    ])
    .unwrap_err();
    assert!(
        matches!(&err, Error::MalformedEnv { name, .. } if name == "JUJU_SECRET_REVISION"),
        "{err}"
    );
}

#[test]
fn unknown_events_are_typed_errors() {
    for path in [
        "hooks/frobnicate",
        "hooks/",
        "elsewhere/install",
        "hooks/secret-bogus",
    ] {
        let err = parse(&[("JUJU_DISPATCH_PATH", path)]).unwrap_err();
        assert!(
            matches!(&err, Error::UnknownEvent { dispatch_path, .. } if dispatch_path == path),
            "{path}: {err}"
        );
        assert!(err.to_string().contains(path));
    }
}

#[test]
fn non_utf8_variables_are_refused_by_name() {
    let mut v: Vec<(OsString, OsString)> = base()
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    v.push((
        "JUJU_DISPATCH_PATH".into(),
        OsString::from_vec(b"hooks/inst\xffall".to_vec()),
    ));
    let err = HookEnv::from_vars(v).unwrap_err();
    assert!(
        matches!(&err, Error::MalformedEnv { name, .. } if name == "JUJU_DISPATCH_PATH"),
        "{err}"
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_environments_never_panic(path in ".{0,40}", rel in ".{0,20}", id in ".{0,12}", unit in ".{0,12}") {
        let _ = parse(&[
            ("JUJU_DISPATCH_PATH", &path),
            ("JUJU_RELATION", &rel),
            ("JUJU_RELATION_ID", &id),
            ("JUJU_REMOTE_APP", &unit),
            ("JUJU_REMOTE_UNIT", &unit),
            ("JUJU_WORKLOAD_NAME", &rel),
            ("JUJU_STORAGE_ID", &id),
            ("JUJU_SECRET_ID", &id),
            ("JUJU_SECRET_REVISION", &id),
        ]);
    }
}
