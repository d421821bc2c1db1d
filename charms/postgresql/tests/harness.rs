//! The postgresql charm under the SDK's harness: the paths that need no workload (system
//! users, peer data, waiting and blocked statuses, config validation, actions). The
//! workload paths run for real in tests/tests/postgresql.rs.

use charm::testing::{Harness, Relation, Secret, State};
use charm::{Event, SecretOwner, StatusName};
use postgresql_charm::{PostgreSql, INITIALISED_KEY, PEER, USERS_KEY, USERS_LABEL};
use serde_json::json;

const CHARMCRAFT: &str = include_str!("../../../metadata/postgresql/charmcraft.yaml");

fn harness(unit: &str) -> Harness {
    Harness::new(unit).with_config_yaml(CHARMCRAFT).unwrap()
}

fn peers() -> Relation {
    Relation::new(PEER, 0, "postgresql")
}

fn users_secret() -> Secret {
    Secret::owned(
        "secret:users",
        SecretOwner::Application,
        Some(USERS_LABEL),
        [
            ("operator-password", "o".repeat(32)),
            ("replication-password", "r".repeat(32)),
            ("rewind-password", "w".repeat(32)),
            ("monitoring-password", "m".repeat(32)),
            ("backup-password", "b".repeat(32)),
            ("patroni-password", "p".repeat(32)),
        ],
    )
}

#[test]
fn the_leader_creates_the_system_users_secret_and_publishes_its_id() {
    let state = State {
        leader: true,
        relations: vec![peers()],
        address: "127.1.0.1".into(),
        ..State::default()
    };
    let out = harness("postgresql/0").run(&mut PostgreSql::default(), Event::LeaderElected, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    let secret = out
        .state
        .secret_by_label(USERS_LABEL)
        .expect("the system users' secret");
    assert_eq!(secret.owner, Some(SecretOwner::Application));
    let content = secret.latest_content();
    for user in [
        "operator",
        "replication",
        "rewind",
        "monitoring",
        "backup",
        "patroni",
    ] {
        let pw = &content[&format!("{user}-password")];
        assert_eq!(pw.len(), 32, "{user}");
        assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(
            out.logs.iter().all(|(_, m)| !m.contains(pw.as_str())),
            "a password was logged"
        );
    }
    let peer = out.state.relation(0).unwrap();
    assert_eq!(peer.local_app_data[USERS_KEY], secret.id);
    assert_eq!(peer.local_unit_data["address"], "127.1.0.1");
    // No workload container here: the unit says what it waits for.
    assert_eq!(out.state.unit_status.name, StatusName::Waiting);
    assert_eq!(
        out.state.unit_status.message,
        "waiting for the postgresql container"
    );
}

#[test]
fn a_second_leader_elected_keeps_the_existing_passwords() {
    let peer = peers().with_local_app_data([(USERS_KEY, "secret:users")]);
    let state = State {
        leader: true,
        relations: vec![peer],
        secrets: vec![users_secret()],
        ..State::default()
    };
    let out = harness("postgresql/0").run(&mut PostgreSql::default(), Event::LeaderElected, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.secrets.len(), 1);
    assert_eq!(out.state.secrets[0].latest(), 1);
}

#[test]
fn a_follower_waits_for_the_users_then_for_the_bootstrap() {
    let state = State {
        leader: false,
        relations: vec![peers()],
        ..State::default()
    };
    let out = harness("postgresql/1").run(&mut PostgreSql::default(), Event::Install, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(
        out.state.unit_status.message,
        "waiting for the leader to create the system users"
    );
    assert!(
        out.state.secrets.is_empty(),
        "a non-leader creates no secret"
    );

    let peer = peers()
        .with_local_app_data([(USERS_KEY, "secret:users")])
        .with_remote_unit("postgresql/0", [("address", "127.1.0.1")]);
    let state = State {
        leader: false,
        relations: vec![peer.clone()],
        secrets: vec![users_secret()],
        address: "127.1.0.2".into(),
        ..State::default()
    };
    let out = harness("postgresql/1").run(
        &mut PostgreSql::default(),
        peer.changed(Some("postgresql/0")),
        state,
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.unit_status.name, StatusName::Waiting);
    assert_eq!(
        out.state.unit_status.message,
        "waiting for the leader to bootstrap the cluster"
    );
    assert_eq!(
        out.state.relation(0).unwrap().local_unit_data["address"],
        "127.1.0.2"
    );

    let peer = peer.with_local_app_data([
        (USERS_KEY, "secret:users"),
        (INITIALISED_KEY, "true"),
        (postgresql_charm::BOOTSTRAP_ADDRESS_KEY, "127.1.0.1"),
    ]);
    let state = State {
        leader: false,
        relations: vec![peer.clone()],
        secrets: vec![users_secret()],
        ..State::default()
    };
    let out = harness("postgresql/1").run(&mut PostgreSql::default(), peer.changed(None), state);
    assert_eq!(
        out.state.unit_status.message,
        "waiting for the postgresql container"
    );
}

#[test]
fn invalid_config_blocks_naming_the_option_and_value() {
    for (config, message) in [
        (json!({"profile": "fast"}), "invalid config profile=fast: must be one of production, testing"),
        (
            json!({"durability_synchronous_commit": "sometimes"}),
            "invalid config durability_synchronous_commit=sometimes: must be one of on, remote_apply, remote_write",
        ),
        (json!({"experimental_max_connections": 5}), "invalid config experimental_max_connections=5: must be between 10 and 262143"),
        (json!({"durability_synchronous_commit": "off"}), "invalid config durability_synchronous_commit=off: must be one of on, remote_apply, remote_write"),
        (json!({"synchronous_node_count": "most"}), "invalid config synchronous_node_count=most: must be \"all\" or a positive number"),
        (
            json!({"profile_limit_memory": 256, "memory_shared_buffers": 65536}),
            "invalid config memory_shared_buffers=65536: more than 40% of the unit's memory (256 MB)",
        ),
    ] {
        let state = State {
            leader: true,
            relations: vec![peers()],
            config: config.as_object().unwrap().clone(),
            ..State::default()
        };
        let out = harness("postgresql/0").run(&mut PostgreSql::default(), Event::ConfigChanged, state);
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.state.unit_status.name, StatusName::Blocked, "{config}");
        assert_eq!(out.state.unit_status.message, message);
        assert!(out.state.secrets.is_empty(), "nothing is created while the config is invalid");
    }
}

#[test]
fn get_password_answers_for_system_users_and_refuses_others() {
    let peer = peers().with_local_app_data([(USERS_KEY, "secret:users")]);
    let state = State {
        leader: true,
        relations: vec![peer.clone()],
        secrets: vec![users_secret()],
        ..State::default()
    };
    let out = harness("postgresql/0").run_action(
        &mut PostgreSql::default(),
        "get-password",
        json!({}),
        state.clone(),
    );
    let action = out.action.expect("action output");
    assert_eq!(action.failure, None);
    assert_eq!(action.results["password"], "o".repeat(32));

    let out = harness("postgresql/0").run_action(
        &mut PostgreSql::default(),
        "get-password",
        json!({"username": "replication"}),
        state.clone(),
    );
    assert_eq!(out.action.unwrap().results["password"], "r".repeat(32));

    let out = harness("postgresql/0").run_action(
        &mut PostgreSql::default(),
        "get-password",
        json!({"username": "alice"}),
        state,
    );
    let failure = out.action.unwrap().failure.expect("refused");
    assert!(
        failure.contains("\"alice\"") && failure.contains("not a system user"),
        "{failure}"
    );
}
