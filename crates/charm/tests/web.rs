//! The sidecar example charm under the harness: pebble-ready configures the container,
//! config changes restart or signal the server, the action runs a command in it.

#[path = "../examples/web.rs"]
mod web;

use charm::testing::{Container, Exec, Harness, ServiceStatus, State};
use charm::{Port, Status, StatusName};
use serde_json::json;
use web::Web;

const CONFIG: &str = "options:\n  port:\n    type: int\n    default: 8080\n  title:\n    type: string\n    default: Hello\n";

fn harness() -> Harness {
    Harness::new("web/0").with_config_yaml(CONFIG).unwrap()
}

fn state(container: Container, port: u16, title: &str) -> State {
    State {
        config: json!({ "port": port, "title": title })
            .as_object()
            .unwrap()
            .clone(),
        containers: vec![container],
        ..State::default()
    }
}

#[test]
fn pebble_ready_writes_settings_adds_the_layer_and_starts_the_server() {
    let web = Container::new("web");
    let out = harness().run(&mut Web, web.pebble_ready(), state(web, 8080, "Hello"));
    assert!(out.error.is_none(), "{:?}", out.error);
    let c = out.state.container("web").unwrap();
    let settings = &c.files["/etc/web/settings.conf"];
    assert_eq!(settings.content, b"title = \"Hello\"\n");
    assert_eq!(
        (settings.permissions, settings.user.as_str()),
        (0o600, "www-data")
    );
    assert_eq!(c.layers[0].0, "web");
    assert_eq!(
        c.plan().unwrap()["services"]["web"]["command"],
        "/usr/bin/web --port 8080 --settings /etc/web/settings.conf"
    );
    assert_eq!(c.service_status("web"), Some(ServiceStatus::Active));
    assert!(out.state.opened_ports.contains(&Port::tcp(8080)));
    assert_eq!(out.state.unit_status, Status::active(""));
}

#[test]
fn a_new_port_restarts_the_server_and_a_new_title_only_signals_it() {
    let web = Container::new("web");
    let first = harness().run(&mut Web, web.pebble_ready(), state(web, 8080, "Hello"));
    assert!(first.error.is_none(), "{:?}", first.error);

    // State out becomes state in; only the config changes.
    let mut s = first.state.clone();
    s.config = state(Container::new("web"), 9090, "Hello").config;
    s.containers[0].service_log.clear();
    let out = harness().run(&mut Web, charm::Event::ConfigChanged, s);
    assert!(out.error.is_none(), "{:?}", out.error);
    let c = out.state.container("web").unwrap();
    assert_eq!(
        c.service_log,
        vec![
            ("stop".to_string(), "web".to_string()),
            ("start".into(), "web".into())
        ]
    );
    assert!(c.signals.is_empty());

    let mut s = first.state;
    s.config = state(Container::new("web"), 8080, "Bonjour").config;
    s.containers[0].service_log.clear();
    let out = harness().run(&mut Web, charm::Event::ConfigChanged, s);
    assert!(out.error.is_none(), "{:?}", out.error);
    let c = out.state.container("web").unwrap();
    assert!(c.service_log.is_empty(), "{:?}", c.service_log);
    assert_eq!(c.signals, vec![("SIGHUP".to_string(), "web".to_string())]);
    assert_eq!(
        c.files["/etc/web/settings.conf"].content,
        b"title = \"Bonjour\"\n"
    );
}

#[test]
fn before_pebble_answers_the_charm_waits() {
    let web = Container::new("web").unreachable();
    let out = harness().run(
        &mut Web,
        charm::Event::ConfigChanged,
        state(web, 8080, "Hello"),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.unit_status.name, StatusName::Waiting);
    assert!(out.state.container("web").unwrap().layers.is_empty());
}

#[test]
fn the_version_action_runs_the_server_binary() {
    let web = Container::new("web")
        .with_exec(Exec::exact(["/usr/bin/web", "--version"]).stdout("web 2.4.1\n"));
    let out = harness().run_action(&mut Web, "version", json!({}), state(web, 8080, "Hello"));
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.action.unwrap().results["version"], "web 2.4.1");
}

#[test]
fn a_failing_command_fails_the_action_with_its_stderr() {
    let web = Container::new("web").with_exec(
        Exec::prefix(["/usr/bin/web"])
            .exit_code(2)
            .stderr("bad flag\n"),
    );
    let out = harness().run_action(&mut Web, "version", json!({}), state(web, 8080, "Hello"));
    assert!(out.error.is_some());
    let failure = out.action.unwrap().failure.unwrap();
    assert!(failure.contains("bad flag"), "{failure}");
}
