//! The harness's containers: what a charm does through `Context::workload` lands in the
//! State's `Container`, and the next event sees it.

use charm::pebble::{CheckInfo, ExecOptions, FileOptions};
use charm::testing::{Container, Exec, Harness, Relation, ServiceStatus, State};
use charm::{Charm, Context, Error, Event, Result, Status};

/// A charm driven by a closure, for one-off behaviours.
struct Scripted<F>(F);

impl<F: FnMut(&mut Context<'_>, &Event) -> Result<()>> Charm for Scripted<F> {
    fn handle(&mut self, ctx: &mut Context<'_>, event: &Event) -> Result<()> {
        (self.0)(ctx, event)
    }
}

const LAYER: &str = "summary: app\nservices:\n  app:\n    override: replace\n    command: /bin/app --serve\n    startup: enabled\n  helper:\n    override: replace\n    command: /bin/helper\n";

fn with(container: Container) -> State {
    State {
        containers: vec![container],
        ..State::default()
    }
}

fn run(
    charm: impl FnMut(&mut Context<'_>, &Event) -> Result<()>,
    event: Event,
    state: State,
) -> charm::testing::Output {
    Harness::new("app/0").run(&mut Scripted(charm), event, state)
}

#[test]
fn a_pushed_file_is_pulled_by_the_next_event() {
    let app = Container::new("app");
    let out = run(
        |ctx, _| {
            ctx.workload("app", "app")
                .push_private("/etc/app.conf", b"a=1\n")
        },
        app.pebble_ready(),
        with(app),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let file = &out.state.container("app").unwrap().files["/etc/app.conf"];
    assert_eq!(file.content, b"a=1\n");
    assert_eq!(file.permissions, 0o600);
    assert_eq!((file.user.as_str(), file.group.as_str()), ("app", "app"));

    let out = run(
        |ctx, _| {
            let seen = ctx.workload("app", "app").pull("/etc/app.conf");
            let text = String::from_utf8(seen.unwrap_or_default()).unwrap();
            ctx.set_unit_status(Status::active(text.trim()))
        },
        Event::ConfigChanged,
        out.state,
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.unit_status, Status::active("a=1"));
}

#[test]
fn files_in_the_state_are_readable_and_missing_ones_are_none() {
    let app = Container::new("app").with_file_owned("/srv/index.html", "hi", 0o640, "www", "www");
    let out = run(
        |ctx, _| {
            let w = ctx.workload("app", "app");
            assert_eq!(w.pull("/srv/index.html").as_deref(), Some(&b"hi"[..]));
            assert_eq!(w.pull("/srv/missing"), None);
            Ok(())
        },
        Event::UpdateStatus,
        with(app),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(
        out.state.container("app").unwrap().files["/srv/index.html"].permissions,
        0o640
    );
}

#[test]
fn layer_and_replan_start_the_enabled_services() {
    let app = Container::new("app");
    let out = run(
        |ctx, _| {
            let w = ctx.workload("app", "app");
            w.add_layer("app", LAYER)?;
            assert_eq!(w.service_status("app").as_deref(), Some("inactive"));
            w.replan()
        },
        app.pebble_ready(),
        with(app),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let c = out.state.container("app").unwrap();
    assert_eq!(c.layers.len(), 1);
    assert!(c.is_running("app"));
    assert_eq!(c.service_status("helper"), Some(ServiceStatus::Inactive));
    assert_eq!(c.service_log, vec![("start".into(), "app".into())]);
    assert_eq!(
        c.plan().unwrap()["services"]["app"]["command"],
        "/bin/app --serve"
    );
}

#[test]
fn replan_restarts_only_the_services_whose_definition_changed() {
    let other = "services:\n  other:\n    override: replace\n    command: /bin/other\n    startup: enabled\n";
    let app = Container::new("app")
        .with_layer("app", LAYER)
        .with_layer("other", other)
        .with_service_status("app", ServiceStatus::Active)
        .with_service_status("other", ServiceStatus::Active);
    let out = run(
        |ctx, _| {
            let w = ctx.workload("app", "app");
            w.add_layer(
                "app",
                "services:\n  app:\n    override: merge\n    command: /bin/app --serve --verbose\n",
            )?;
            w.replan()?;
            // Nothing changed since: a second replan is a no-op.
            w.replan()
        },
        Event::ConfigChanged,
        with(app),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let c = out.state.container("app").unwrap();
    assert_eq!(
        c.service_log,
        vec![
            ("stop".to_string(), "app".to_string()),
            ("start".into(), "app".into())
        ]
    );
    assert!(c.is_running("app") && c.is_running("other"));
    // Combined in place: still two layers, the label keeps its position.
    assert_eq!(c.layers.len(), 2);
    assert_eq!(c.layers[0].0, "app");
    let plan = c.plan().unwrap();
    assert_eq!(
        plan["services"]["app"]["command"],
        "/bin/app --serve --verbose"
    );
    assert_eq!(plan["services"]["app"]["startup"], "enabled");
}

#[test]
fn merge_appends_lists_and_merges_environment() {
    let base = "services:\n  app:\n    override: replace\n    command: a\n    after: [db]\n    environment: {A: '1', B: '2'}\n";
    let more =
        "services:\n  app:\n    override: merge\n    after: [cache]\n    environment: {B: '3'}\n";
    let c = Container::new("x")
        .with_layer("base", base)
        .with_layer("more", more);
    let plan = c.plan().unwrap();
    assert_eq!(
        plan["services"]["app"]["after"],
        serde_json::json!(["db", "cache"])
    );
    assert_eq!(
        plan["services"]["app"]["environment"],
        serde_json::json!({"A": "1", "B": "3"})
    );
}

#[test]
fn a_layer_without_override_or_command_is_refused_and_not_added() {
    let app = Container::new("app");
    let out = run(
        |ctx, _| {
            let w = ctx.workload("app", "app");
            let e = w
                .add_layer("bad", "services:\n  app:\n    command: a\n")
                .unwrap_err();
            assert!(e.to_string().contains("must define \"override\""), "{e}");
            let e = w
                .add_layer("bad", "services:\n  app:\n    override: merge\n")
                .unwrap_err();
            assert!(e.to_string().contains("must define \"command\""), "{e}");
            let e = w.add_layer("bad", "services: [").unwrap_err();
            assert!(e.to_string().contains("cannot parse layer YAML"), "{e}");
            Ok(())
        },
        Event::UpdateStatus,
        with(app),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(out.state.container("app").unwrap().layers.is_empty());
}

#[test]
fn exec_returns_the_matching_result_and_is_recorded() {
    let app = Container::new("app")
        .with_exec(Exec::prefix(["psql"]).stdout("prefix"))
        .with_exec(Exec::prefix(["psql", "-c"]).stdout("longer prefix"))
        .with_exec(Exec::exact(["psql", "-c", "select 1"]).stdout("1\n"))
        .with_exec(Exec::prefix(["false"]).exit_code(1).stderr("it broke\n"));
    let out = run(
        |ctx, _| {
            let w = ctx.workload("app", "app");
            assert_eq!(w.exec(&["psql", "-c", "select 1"])?, "1\n");
            assert_eq!(w.exec(&["psql", "-c", "select 2"])?, "longer prefix");
            assert_eq!(w.exec(&["psql", "-l"])?, "prefix");
            let e = w.exec(&["false", "x"]).unwrap_err();
            assert_eq!(e.to_string(), "false failed in the workload: it broke");
            let e = w.exec(&["nope"]).unwrap_err();
            assert!(
                e.to_string().contains("cannot find executable \"nope\""),
                "{e}"
            );
            Ok(())
        },
        Event::UpdateStatus,
        with(app),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let history = &out.state.container("app").unwrap().exec_history;
    assert_eq!(history.len(), 5);
    assert_eq!(history[0].command, vec!["psql", "-c", "select 1"]);
    assert_eq!(history[0].user.as_deref(), Some("app"));
}

#[test]
fn an_unreachable_container_fails_like_a_missing_socket() {
    let app = Container::new("app").unreachable();
    let out = run(
        |ctx, _| {
            let w = ctx.workload("app", "app");
            assert!(!w.can_connect());
            assert_eq!(w.pull("/etc/app.conf"), None);
            assert_eq!(w.service_status("app"), None);
            assert!(w.add_layer("app", LAYER).is_err());
            assert!(w.replan().is_err());
            assert!(w.exec(&["true"]).is_err());
            w.push_private("/etc/app.conf", b"x")
        },
        Event::ConfigChanged,
        with(app),
    );
    let Some(Error::Charm(msg)) = &out.error else {
        panic!("expected a charm error, got {:?}", out.error);
    };
    assert!(msg.starts_with("cannot write /etc/app.conf in the workload: cannot connect to Pebble at /charm/containers/app/pebble.socket"), "{msg}");
    let c = out.state.container("app").unwrap();
    assert!(c.files.is_empty() && c.layers.is_empty() && c.exec_history.is_empty());
}

#[test]
fn a_container_missing_from_the_state_cannot_connect() {
    let out = run(
        |ctx, _| {
            let w = ctx.workload("ghost", "app");
            assert!(!w.can_connect());
            w.replan()
        },
        Event::Start,
        State::default(),
    );
    let msg = out.error.unwrap().to_string();
    assert!(msg.contains("has no container \"ghost\""), "{msg}");
}

#[test]
fn container_changes_survive_a_failed_hook_unlike_relation_data() {
    let rel = Relation::new("db", 1, "client");
    let app = Container::new("app");
    let state = State {
        leader: true,
        relations: vec![rel.clone()],
        containers: vec![app.clone()],
        ..State::default()
    };
    let out = run(
        move |ctx, _| {
            ctx.set_app_data(&rel.id, &[("k".to_string(), "v".to_string())].into())?;
            let w = ctx.workload("app", "app");
            w.push_private("/etc/app.conf", b"x")?;
            w.add_layer("app", LAYER)?;
            w.replan()?;
            Err(Error::charm("later step failed"))
        },
        Event::ConfigChanged,
        state,
    );
    assert!(out.error.is_some());
    assert!(out.state.relation(1).unwrap().local_app_data.is_empty());
    let c = out.state.container("app").unwrap();
    assert!(c.files.contains_key("/etc/app.conf"));
    assert!(c.is_running("app"));
}

#[test]
fn stop_restart_and_signal_follow_pebble() {
    let app = Container::new("app")
        .with_layer("app", LAYER)
        .with_service_status("app", ServiceStatus::Active);
    let out = run(
        |ctx, _| {
            let w = ctx.workload("app", "app");
            w.signal("SIGHUP", "app")?;
            let e = w.signal("SIGHUP", "helper").unwrap_err();
            assert!(e.to_string().contains("service is not running"), "{e}");
            let e = w.stop(&["nope"]).unwrap_err();
            assert!(
                e.to_string().contains("service \"nope\" does not exist"),
                "{e}"
            );
            w.restart(&["helper"])?;
            w.stop(&["app"])?;
            assert!(!w.is_running("app"));
            Ok(())
        },
        Event::UpdateStatus,
        with(app),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let c = out.state.container("app").unwrap();
    assert_eq!(c.signals, vec![("SIGHUP".to_string(), "app".to_string())]);
    assert!(c.is_running("helper"));
    assert_eq!(c.service_status("app"), Some(ServiceStatus::Inactive));
    assert_eq!(
        c.service_log,
        vec![
            ("start".to_string(), "helper".to_string()),
            ("stop".into(), "app".into())
        ]
    );
}

#[test]
fn workload_events_reach_the_charm_with_their_fields() {
    let app = Container::new("app");
    for event in [
        app.pebble_ready(),
        app.custom_notice("7", "example.com/backup-done"),
        app.check_failed("ready"),
        app.check_recovered("ready"),
    ] {
        let expected = event.clone();
        let out = run(
            move |ctx, ev| {
                assert_eq!(ev, &expected);
                assert_eq!(ctx.event(), &expected);
                Ok(())
            },
            event,
            with(app.clone()),
        );
        assert!(out.error.is_none(), "{:?}", out.error);
    }
}

#[test]
fn push_with_options_keeps_permissions_and_owner_and_list_shows_them() {
    let app = Container::new("app").with_file("/srv/site/index.html", "hi");
    let out = run(
        |ctx, _| {
            let c = ctx.container("app", "app");
            let opts = FileOptions {
                make_dirs: true,
                permissions: Some(0o640),
                user: Some("www".into()),
                ..FileOptions::default()
            };
            c.push("/srv/site/css/main.css", b"body{}", &opts)?;
            let listed = c.list_files("/srv/site")?;
            let names: Vec<_> = listed
                .iter()
                .map(|f| (f.name.as_str(), f.kind.as_str()))
                .collect();
            assert_eq!(names, vec![("css", "directory"), ("index.html", "file")]);
            let css = &c.list_files("/srv/site/css/main.css")?[0];
            assert_eq!((css.mode(), css.size), (Some(0o640), Some(6)));
            assert_eq!(
                (css.user.as_deref(), css.group.as_deref()),
                (Some("www"), Some("www"))
            );
            assert!(c.list_files("/nowhere").is_err());
            let e = c
                .push(
                    "/x",
                    b"",
                    &FileOptions {
                        group: Some("g".into()),
                        ..FileOptions::default()
                    },
                )
                .unwrap_err();
            assert!(e.to_string().contains("must specify user"), "{e}");
            Ok(())
        },
        Event::UpdateStatus,
        with(app),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let f = &out.state.container("app").unwrap().files["/srv/site/css/main.css"];
    assert_eq!(
        (f.permissions, f.user.as_str(), f.group.as_str()),
        (0o640, "www", "www")
    );
}

#[test]
fn remove_path_removes_files_and_directories_only_when_recursive() {
    let app = Container::new("app")
        .with_file("/data/a", "1")
        .with_file("/data/sub/b", "2")
        .with_file("/keep", "3");
    let out = run(
        |ctx, _| {
            let c = ctx.container("app", "app");
            let e = c.remove_path("/data", false).unwrap_err();
            assert!(e.to_string().contains("directory not empty"), "{e}");
            assert!(c.remove_path("/missing", false).is_err());
            c.remove_path("/missing", true)?;
            c.remove_path("/data", true)?;
            c.remove_path("/keep", false)
        },
        Event::UpdateStatus,
        with(app),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(out.state.container("app").unwrap().files.is_empty());
}

#[test]
fn exec_with_options_is_recorded_and_returns_any_exit_code() {
    let app = Container::new("app").with_exec(
        Exec::prefix(["pg_dump"])
            .exit_code(3)
            .stdout("partial")
            .stderr(" and an error"),
    );
    let out = run(
        |ctx, _| {
            let c = ctx.container("app", "app");
            let mut opts = ExecOptions::new(["pg_dump", "orders"]);
            opts.environment
                .insert("PGPASSWORD".into(), "s3cret".into());
            opts.stdin = b"input".to_vec();
            opts.working_dir = Some("/tmp".into());
            let out = c.exec_with(&opts)?;
            assert_eq!(out.exit_code, 3);
            assert_eq!(
                (out.stdout_text(), out.stderr_text()),
                ("partial".into(), " and an error".into())
            );
            opts.combine_stderr = true;
            let out = c.exec_with(&opts)?;
            assert_eq!(
                (out.stdout_text(), out.stderr.len()),
                ("partial and an error".into(), 0)
            );
            Ok(())
        },
        Event::UpdateStatus,
        with(app),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let ran = &out.state.container("app").unwrap().exec_history[0];
    assert_eq!(ran.environment["PGPASSWORD"], "s3cret");
    assert_eq!(
        (ran.stdin.as_slice(), ran.working_dir.as_deref()),
        (&b"input"[..], Some("/tmp"))
    );
}

#[test]
fn start_and_plan_follow_the_layers() {
    let app = Container::new("app").with_layer("app", LAYER);
    let out = run(
        |ctx, _| {
            let c = ctx.container("app", "app");
            c.start(&["helper"])?;
            assert!(c.start(&["nope"]).is_err());
            let plan: serde_json::Value = serde_yaml_ng::from_str(&c.plan()?).unwrap();
            assert_eq!(plan["services"]["helper"]["command"], "/bin/helper");
            Ok(())
        },
        Event::UpdateStatus,
        with(app),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let c = out.state.container("app").unwrap();
    assert!(c.is_running("helper") && !c.is_running("app"));
}

#[test]
fn a_check_failed_handler_reads_the_check_and_a_notice_handler_its_notice() {
    let app = Container::new("app")
        .with_check(CheckInfo {
            name: "ready".into(),
            level: Some("ready".into()),
            status: "down".into(),
            failures: 3,
            threshold: 3,
        })
        .with_custom_notice("example.com/backup-done");
    let event = app.check_failed("ready");
    let out = run(
        |ctx, ev| {
            let Event::PebbleCheckFailed { container, check } = ev else {
                panic!("{ev:?}");
            };
            let checks = ctx.container(container, "app").checks()?;
            let c = checks.iter().find(|c| &c.name == check).unwrap();
            ctx.set_unit_status(Status::maintenance(format!("{} is {}", c.name, c.status)))
        },
        event,
        with(app.clone()),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.unit_status, Status::maintenance("ready is down"));

    let out = run(
        |ctx, ev| {
            let Event::PebbleCustomNotice(n) = ev else {
                panic!("{ev:?}");
            };
            let notices = ctx.container(&n.container, "app").notices()?;
            let found = notices.iter().find(|x| x.id == n.id).unwrap();
            ctx.set_unit_status(Status::active(found.key.clone()))
        },
        app.custom_notice("1", "example.com/backup-done"),
        with(app),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(
        out.state.unit_status,
        Status::active("example.com/backup-done")
    );
}

#[test]
fn outside_the_harness_the_workload_is_the_containers_pebble_socket() {
    let mut backend = charm::testing::Memory::new(
        "app/0",
        with(Container::new("ward-no-such-container")),
        serde_json::json!({}),
    );
    let env = charm::HookEnv::from_vars(charm::event::juju_vars("app/0", &Event::Start)).unwrap();
    let ctx = Context::new(&mut backend, env);
    // The State's container is only served while the Harness runs an event.
    let w = ctx.workload("ward-no-such-container", "app");
    assert!(!w.can_connect());
    let e = w.replan().unwrap_err().to_string();
    assert!(
        e.contains("/charm/containers/ward-no-such-container/pebble.socket"),
        "{e}"
    );
}
