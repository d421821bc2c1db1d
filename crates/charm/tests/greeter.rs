//! The example charm under the state-in/state-out harness, and the model's rules.

#[path = "../examples/greeter.rs"]
mod greeter;

use charm::testing::{Harness, Relation, Secret, State};
use charm::{Error, Event, SecretOwner, Status, StatusName};
use greeter::Greeter;
use serde_json::json;

const CONFIG: &str = "options:\n  greeting:\n    type: string\n    default: hello\n";

fn harness(unit: &str) -> Harness {
    Harness::new(unit).with_config_yaml(CONFIG).unwrap()
}

fn state(leader: bool, greeting: &str) -> State {
    let rel =
        Relation::new("greetings", 4, "listener").with_remote_unit("listener/0", [("hi", "there")]);
    State {
        leader,
        config: json!({ "greeting": greeting }).as_object().unwrap().clone(),
        relations: vec![rel],
        ..State::default()
    }
}

#[test]
fn leader_publishes_greeting_token_and_address() {
    let s = state(true, "hello");
    let rel = s.relations[0].clone();
    let out = harness("greeter/0").run(&mut Greeter, rel.changed(Some("listener/0")), s);
    assert!(out.error.is_none(), "{:?}", out.error);
    let r = out.state.relation(4).unwrap();
    assert_eq!(r.local_app_data["greeting"], "hello");
    assert_eq!(r.local_unit_data["address"], "192.0.2.10");
    let token_id = &r.local_app_data["token-secret"];
    let secret = out.state.secret_by_label("greeter-token").unwrap();
    assert_eq!(&secret.id, token_id);
    assert_eq!(secret.owner, Some(SecretOwner::Application));
    assert!(
        secret.grants.contains_key(&4),
        "token granted to the relation"
    );
    assert!(
        !r.local_app_data.values().any(|v| v.contains("t0k3n")),
        "secret content in relation data"
    );
    assert_eq!(out.state.unit_status, Status::active(""));
    assert_eq!(out.state.app_status, Status::active(""));
}

#[test]
fn non_leader_writes_only_its_unit_bag() {
    let s = state(false, "hello");
    let rel = s.relations[0].clone();
    let out = harness("greeter/1").run(&mut Greeter, rel.changed(Some("listener/0")), s);
    assert!(out.error.is_none(), "{:?}", out.error);
    let r = out.state.relation(4).unwrap();
    assert!(r.local_app_data.is_empty());
    assert_eq!(r.local_unit_data["address"], "192.0.2.10");
    assert!(out.state.secrets.is_empty());
    assert_eq!(
        out.state.app_status.name,
        StatusName::Unknown,
        "app status is the leader's"
    );
}

#[test]
fn invalid_config_blocks_with_the_key_and_writes_nothing() {
    let out = harness("greeter/0").run(&mut Greeter, Event::ConfigChanged, state(true, "  "));
    assert!(out.error.is_none(), "invalid config is not a hook failure");
    assert_eq!(out.state.unit_status.name, StatusName::Blocked);
    assert!(
        out.state.unit_status.message.contains("greeting"),
        "{}",
        out.state.unit_status.message
    );
    assert!(out.state.relation(4).unwrap().local_app_data.is_empty());
}

#[test]
fn config_of_the_wrong_type_names_the_option() {
    let mut s = state(true, "x");
    s.config.insert("greeting".into(), json!(42));
    let out = harness("greeter/0").run(&mut Greeter, Event::ConfigChanged, s);
    assert_eq!(out.state.unit_status.name, StatusName::Blocked);
    assert!(
        out.state.unit_status.message.contains("greeting=42"),
        "{}",
        out.state.unit_status.message
    );
}

#[test]
fn action_results_are_flattened_and_logged() {
    let out = harness("greeter/0").run_action(
        &mut Greeter,
        "greet",
        json!({"name": "Ada", "shout": true}),
        state(true, "hello"),
    );
    let action = out.action.unwrap();
    assert_eq!(action.results["greeting"], "HELLO, ADA!");
    assert_eq!(action.results["meta.length"], "11");
    assert_eq!(action.logs, ["greeting composed"]);
    assert!(action.failure.is_none());
}

#[test]
fn bad_action_params_fail_the_action_with_a_reason() {
    let out = harness("greeter/0").run_action(
        &mut Greeter,
        "greet",
        json!({"shout": "loud"}),
        state(true, "hello"),
    );
    assert!(
        matches!(out.error, Some(Error::InvalidParams { .. })),
        "{:?}",
        out.error
    );
    let failure = out.action.unwrap().failure.unwrap();
    assert!(failure.contains("\"shout\""), "{failure}");
}

#[test]
fn consumer_tracks_a_new_revision_on_secret_changed() {
    let mut s = state(false, "hello");
    s.secrets
        .push(Secret::granted("secret:peer", [("token", "a")]).with_revision([("token", "b")]));
    let ev = Event::SecretChanged(charm::SecretEvent {
        id: "secret:peer".into(),
        label: None,
        revision: None,
    });
    let out = harness("greeter/1").run(&mut Greeter, ev, s);
    assert!(out.error.is_none());
    assert_eq!(out.state.secrets[0].tracked, 2);
}

#[test]
fn waiting_without_a_relation_and_most_severe_status_wins() {
    let s = State {
        leader: true,
        config: json!({"greeting": "hi"}).as_object().unwrap().clone(),
        ..State::default()
    };
    let out = harness("greeter/0").run(&mut Greeter, Event::UpdateStatus, s);
    assert_eq!(
        out.state.unit_status,
        Status::waiting("waiting for a greetings relation")
    );
}
