//! The harness's in-memory backend keeps Juju's rules: transactions, secrets, relations.

use charm::testing::{Harness, Relation, Secret, State};
use charm::{
    Bag, Charm, Context, Error, Event, Result, SecretOptions, SecretOwner, SecretRead, Status,
};

/// A charm driven by a closure, for one-off behaviours.
struct Scripted<F>(F);

impl<F: FnMut(&mut Context<'_>, &Event) -> Result<()>> Charm for Scripted<F> {
    fn handle(&mut self, ctx: &mut Context<'_>, event: &Event) -> Result<()> {
        (self.0)(ctx, event)
    }
}

fn bag(kv: &[(&str, &str)]) -> Bag {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn with_rel(leader: bool) -> (State, Relation) {
    let rel = Relation::new("database", 5, "client")
        .with_remote_unit("client/0", [("ip", "10.0.0.9")])
        .with_remote_app_data([("database", "orders")]);
    (
        State {
            leader,
            relations: vec![rel.clone()],
            ..State::default()
        },
        rel,
    )
}

#[test]
fn a_failing_hook_discards_its_writes_but_keeps_its_status() {
    let (state, rel) = with_rel(true);
    let mut charm = Scripted(|ctx: &mut Context<'_>, ev: &Event| {
        let r = ev.relation().unwrap().relation.clone();
        ctx.set_app_data(&r, &bag(&[("endpoints", "a:5432")]))?;
        ctx.store(&bag(&[("seen", "1")]))?;
        ctx.set_unit_status(Status::maintenance("creating database"))?;
        Err(Error::charm("database server unreachable"))
    });
    let out = Harness::new("pg/0").run(&mut charm, rel.changed(Some("client/0")), state);
    assert!(matches!(&out.error, Some(Error::Charm(m)) if m.contains("unreachable")));
    assert!(out.state.relation(5).unwrap().local_app_data.is_empty());
    assert!(out.state.stored.is_empty());
    assert_eq!(
        out.state.unit_status,
        Status::maintenance("creating database")
    );
    assert!(out
        .logs
        .iter()
        .any(|(_, m)| m.contains("database-relation-changed failed")));
}

#[test]
fn relation_reads_follow_juju_rules() {
    let (state, rel) = with_rel(false);
    let mut charm = Scripted(|ctx: &mut Context<'_>, ev: &Event| {
        let r = ev.relation().unwrap().relation.clone();
        assert_eq!(ctx.remote_app_data(&r)?["database"], "orders");
        assert_eq!(ctx.remote_unit_data(&r, "client/0")?["ip"], "10.0.0.9");
        assert_eq!(ctx.relation_units(&r)?, ["client/0"]);
        // A non-leader cannot read its own application's bag.
        assert!(matches!(
            ctx.app_data(&r),
            Err(Error::PermissionDenied { .. })
        ));
        // An unknown relation is a typed error.
        let ghost = charm::RelationId::new("database", 99);
        assert!(matches!(
            ctx.unit_data(&ghost),
            Err(Error::RelationNotFound { .. })
        ));
        Ok(())
    });
    let out = Harness::new("pg/1").run(&mut charm, rel.joined("client/0"), state);
    assert!(out.error.is_none(), "{:?}", out.error);
}

#[test]
fn secret_lifecycle_for_owner_and_consumer() {
    let (state, rel) = with_rel(true);
    let mut charm = Scripted(|ctx: &mut Context<'_>, ev: &Event| {
        let r = ev.relation().unwrap().relation.clone();
        let opts = SecretOptions {
            label: Some("creds".into()),
            ..Default::default()
        };
        let id = ctx.add_secret(
            &bag(&[("password", "one")]),
            SecretOwner::Application,
            &opts,
        )?;
        ctx.grant_secret(&id, &r, None)?;
        ctx.set_secret(&id, &bag(&[("password", "two")]), &SecretOptions::default())?;
        assert_eq!(ctx.secret_info(None, Some("creds"))?.revision, 2);
        ctx.set_app_data(&r, &bag(&[("secret-user", &id)]))?;
        // Consumer view of a granted secret: tracked vs peek vs refresh.
        assert_eq!(
            ctx.get_secret(Some("secret:theirs"), None, SecretRead::Tracked)?["ca"],
            "old"
        );
        assert_eq!(
            ctx.get_secret(Some("secret:theirs"), None, SecretRead::Peek)?["ca"],
            "new"
        );
        assert_eq!(
            ctx.get_secret(Some("secret:theirs"), Some("their-ca"), SecretRead::Tracked)?["ca"],
            "old"
        );
        assert_eq!(
            ctx.get_secret(None, Some("their-ca"), SecretRead::Refresh)?["ca"],
            "new"
        );
        // Consumers cannot see an owner's metadata or change the secret.
        assert!(matches!(
            ctx.secret_info(Some("secret:theirs"), None),
            Err(Error::SecretNotFound { .. })
        ));
        assert!(matches!(
            ctx.set_secret(
                "secret:theirs",
                &bag(&[("cert", "x")]),
                &SecretOptions::default()
            ),
            Err(Error::PermissionDenied { .. })
        ));
        assert!(matches!(
            ctx.get_secret(Some("secret:missing"), None, SecretRead::Tracked),
            Err(Error::SecretNotFound { .. })
        ));
        Ok(())
    });
    let mut state = state;
    state
        .secrets
        .push(Secret::granted("secret:theirs", [("ca", "old")]).with_revision([("ca", "new")]));
    let out = Harness::new("pg/0").run(&mut charm, rel.changed(None), state);
    assert!(out.error.is_none(), "{:?}", out.error);
    let mine = out.state.secret_by_label("creds").unwrap();
    assert_eq!(mine.latest_content()["password"], "two");
    assert!(mine.grants.contains_key(&5));
    assert_eq!(
        out.state.relation(5).unwrap().local_app_data["secret-user"],
        mine.id
    );
    let theirs = out
        .state
        .secrets
        .iter()
        .find(|s| s.id == "secret:theirs")
        .unwrap();
    assert_eq!(
        (theirs.tracked, theirs.label.as_deref()),
        (2, Some("their-ca"))
    );

    // Revoke and remove in a later hook.
    let id = mine.id.clone();
    let mut charm = Scripted(move |ctx: &mut Context<'_>, ev: &Event| {
        let r = ev.relation().unwrap().relation.clone();
        ctx.revoke_secret(&id, &r, None)?;
        ctx.remove_secret(&id, None)
    });
    let out2 = Harness::new("pg/0").run(&mut charm, rel.broken(), out.state);
    assert!(out2.error.is_none(), "{:?}", out2.error);
    let mine = out2.state.secret_by_label("creds").unwrap();
    assert!(mine.grants.is_empty() && mine.removed);
}

#[test]
fn app_status_is_collected_on_the_leader_only_and_most_severe_wins() {
    struct Statuses;
    impl Charm for Statuses {
        fn handle(&mut self, _: &mut Context<'_>, _: &Event) -> Result<()> {
            Ok(())
        }
        fn collect_unit_status(&mut self, ctx: &mut Context<'_>) -> Result<()> {
            ctx.add_unit_status(Status::active("ready"));
            ctx.add_unit_status(Status::waiting("for peers"));
            ctx.add_unit_status(Status::blocked("first blocked"));
            ctx.add_unit_status(Status::maintenance("busy"));
            ctx.add_unit_status(Status::blocked("second blocked"));
            Ok(())
        }
        fn collect_app_status(&mut self, ctx: &mut Context<'_>) -> Result<()> {
            ctx.add_app_status(Status::waiting("app waits"));
            Ok(())
        }
    }
    let out = Harness::new("x/0").run(
        &mut Statuses,
        Event::UpdateStatus,
        State {
            leader: true,
            ..State::default()
        },
    );
    assert_eq!(out.state.unit_status, Status::blocked("first blocked"));
    assert_eq!(out.state.app_status, Status::waiting("app waits"));
    let out = Harness::new("x/1").run(&mut Statuses, Event::UpdateStatus, State::default());
    assert_eq!(out.state.app_status, Status::unknown());
    assert_eq!(out.backend_calls, ["is_leader", "status_set"]);
}

#[test]
fn a_charm_without_an_app_status_never_asks_for_leadership() {
    struct UnitOnly;
    impl Charm for UnitOnly {
        fn handle(&mut self, _: &mut Context<'_>, _: &Event) -> Result<()> {
            Ok(())
        }
        fn collect_unit_status(&mut self, ctx: &mut Context<'_>) -> Result<()> {
            ctx.add_unit_status(Status::active(""));
            Ok(())
        }
    }
    for leader in [true, false] {
        let out = Harness::new("x/0").run(
            &mut UnitOnly,
            Event::ConfigChanged,
            State {
                leader,
                ..State::default()
            },
        );
        assert!(out.error.is_none(), "{:?}", out.error);
        // One hook tool per hook: status-set.
        assert_eq!(out.backend_calls, ["status_set"]);
        assert_eq!(out.state.unit_status, Status::active(""));
        assert_eq!(out.state.app_status, Status::unknown());
    }
    // A handler that asked already: the answer is reused, not asked again.
    let mut asks = Scripted(|ctx: &mut Context<'_>, _: &Event| {
        ctx.is_leader()?;
        Ok(())
    });
    let out = Harness::new("x/0").run(&mut asks, Event::UpdateStatus, State::default());
    assert_eq!(out.backend_calls, ["is_leader"]);
}

#[test]
fn stored_state_ports_and_storage_round_trip() {
    let mut charm = Scripted(|ctx: &mut Context<'_>, _: &Event| {
        ctx.store(&bag(&[("initialised", "yes")]))?;
        ctx.open_port(charm::Port::tcp(5432))?;
        let ids = ctx.storage("pgdata")?;
        assert_eq!(
            ctx.storage_info(&ids[0])?.location,
            "/var/lib/postgresql/data"
        );
        let too_big = "x".repeat(70 * 1024);
        assert!(matches!(
            ctx.store(&bag(&[("k", &too_big)])),
            Err(Error::InvalidInput { .. })
        ));
        Ok(())
    });
    let mut state = State::default();
    state.storage.insert(
        "pgdata/0".into(),
        charm::backend::StorageInfo {
            kind: "filesystem".into(),
            location: "/var/lib/postgresql/data".into(),
        },
    );
    let out = Harness::new("pg/0").run(&mut charm, Event::Start, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.stored["initialised"], "yes");
    assert!(out.state.opened_ports.contains(&charm::Port::tcp(5432)));
}

#[test]
fn secrets_made_in_later_runs_get_new_ids() {
    let mut charm = Scripted(|ctx: &mut Context<'_>, _: &Event| {
        let n = ctx.secret_ids()?.len();
        ctx.add_secret(
            &bag(&[("count", &n.to_string())]),
            SecretOwner::Application,
            &SecretOptions {
                label: Some(format!("s{n}")),
                ..Default::default()
            },
        )?;
        Ok(())
    });
    let leader = State {
        leader: true,
        ..State::default()
    };
    let first = Harness::new("app/0").run(&mut charm, Event::UpdateStatus, leader);
    assert!(first.error.is_none(), "{:?}", first.error);
    let second = Harness::new("app/0").run(&mut charm, Event::UpdateStatus, first.state);
    assert!(second.error.is_none(), "{:?}", second.error);
    let ids: Vec<&str> = second.state.secrets.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "{ids:?}");
}
