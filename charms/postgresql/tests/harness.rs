//! The postgresql charm under the SDK's harness. The first tests need no workload (system
//! users, peer data, waiting and blocked statuses, config validation, get-password); the
//! rest run with the in-memory workload, Patroni API and psql of
//! `postgresql_charm::fakes` (patroni.yml and the layer, bootstrap, the `database`
//! relation, set-password, promote-to-primary). The real workload runs in
//! tests/tests/postgresql.rs.

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
        (json!({"synchronous_node_count": "most"}), "invalid config synchronous_node_count=most: must be \"all\", \"majority\" or a positive number"),
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

// ---------------------------------------------------------------- with a workload
//
// The workload, Patroni's REST API and psql are the in-memory fakes of
// `postgresql_charm::fakes`: the charm pushes files and layers, asks Patroni and runs SQL
// exactly as it does for real, and the test inspects what it did.

use std::time::Duration;

use postgresql_charm::fakes::{FakePatroni, FakeSql, FakeWorkload};
use postgresql_charm::{patroni, BOOTSTRAP_ADDRESS_KEY, ROLES_KEY};

const ME: &str = "127.1.0.1";
const PEER_ADDRESS: &str = "127.1.0.2";

struct Fakes {
    workload: FakeWorkload,
    patroni: FakePatroni,
    sql: FakeSql,
}

impl Fakes {
    /// A reachable workload whose Patroni has not started (answers nothing yet).
    fn not_started() -> Self {
        Self {
            workload: FakeWorkload::reachable(),
            patroni: FakePatroni::default(),
            sql: FakeSql::default(),
        }
    }

    /// This unit (postgresql/0 at ME) is the primary; postgresql/1 a replica.
    fn primary() -> Self {
        Self {
            workload: FakeWorkload::reachable(),
            patroni: FakePatroni::running(
                "primary",
                &[
                    ("postgresql-0", "leader", ME),
                    ("postgresql-1", "replica", PEER_ADDRESS),
                ],
            ),
            sql: FakeSql::default(),
        }
    }

    fn charm(&self) -> PostgreSql {
        PostgreSql::with_backends(
            Box::new(self.workload.clone()),
            Box::new(self.patroni.clone()),
            Box::new(self.sql.clone()),
        )
        .with_start_wait(Duration::from_millis(10))
    }
}

/// The peer relation of a bootstrapped cluster: users made, roles made, initialised.
fn bootstrapped_peers() -> Relation {
    peers()
        .with_local_app_data([
            (USERS_KEY, "secret:users"),
            (INITIALISED_KEY, "true"),
            (BOOTSTRAP_ADDRESS_KEY, ME),
            (ROLES_KEY, "true"),
        ])
        .with_local_unit_data([("address", ME)])
        .with_remote_unit("postgresql/1", [("address", PEER_ADDRESS)])
}

fn leader_state(relations: Vec<Relation>) -> State {
    State {
        leader: true,
        relations,
        secrets: vec![users_secret()],
        address: ME.into(),
        ..State::default()
    }
}

fn pebble_ready() -> Event {
    Event::PebbleReady {
        container: "postgresql".into(),
    }
}

#[test]
fn pebble_ready_pushes_a_private_patroni_yml_and_the_layer_then_bootstraps() {
    let fakes = Fakes::primary();
    let peer = peers()
        .with_local_app_data([(USERS_KEY, "secret:users")])
        .with_remote_unit("postgresql/1", [("address", PEER_ADDRESS)]);
    let out =
        harness("postgresql/0").run(&mut fakes.charm(), pebble_ready(), leader_state(vec![peer]));
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(
        out.unit_status_history.first(),
        Some(&charm::Status::maintenance(
            "bootstrapping the cluster: Patroni runs initdb"
        )),
        "{:?}",
        out.unit_status_history
    );

    let w = fakes.workload.state();
    let file = &w.files[patroni::CONFIG_PATH];
    assert_eq!(file.mode, 0o600);
    assert_eq!(file.user, "postgres");
    let yml: serde_json::Value = serde_json::from_slice(&file.content).expect("patroni.yml");
    assert_eq!(yml["scope"], "postgresql");
    assert_eq!(yml["name"], "postgresql-0");
    assert_eq!(yml["raft"]["self_addr"], format!("{ME}:2222"));
    assert_eq!(yml["restapi"]["listen"], format!("{ME}:8008"));
    assert_eq!(yml["postgresql"]["listen"], format!("{ME}:5432"));
    assert_eq!(
        yml["postgresql"]["data_dir"],
        "/var/lib/postgresql/data/pgdata"
    );
    assert_eq!(
        yml["postgresql"]["parameters"]["password_encryption"],
        "scram-sha-256"
    );
    assert_eq!(
        yml["postgresql"]["basebackup"],
        json!([{"checkpoint": "fast"}])
    );
    // Replicas retry streaming every second, not every 5 s: in synchronous mode writes
    // wait for them after a failover.
    assert_eq!(
        yml["postgresql"]["parameters"]["wal_retrieve_retry_interval"],
        "1s"
    );
    assert_eq!(
        yml["postgresql"]["authentication"]["superuser"]["username"],
        "operator"
    );
    assert_eq!(
        yml["postgresql"]["authentication"]["superuser"]["password"],
        "o".repeat(32)
    );
    let hba: Vec<String> = serde_json::from_value(yml["postgresql"]["pg_hba"].clone()).unwrap();
    assert!(hba.iter().all(|l| l.ends_with("scram-sha-256")), "{hba:?}");
    assert!(
        hba.iter()
            .any(|l| l.contains("replication replication 127.0.0.0/8")),
        "peers connect from 127.0.0.1: {hba:?}"
    );
    // The peer's address is a raft partner.
    assert_eq!(
        yml["raft"]["partner_addrs"],
        json!([format!("{PEER_ADDRESS}:2222")])
    );

    let (label, layer) = &w.layers[0];
    assert_eq!(label, "postgresql");
    // Patroni runs through the raft script, which first joins a new member to the raft
    // cluster (see patroni::raft_member_script).
    assert!(
        layer.contains("command: /usr/bin/python3 /var/lib/postgresql/data/raft-member.py run /usr/bin/patroni /var/lib/postgresql/data/patroni.yml"),
        "{layer}"
    );
    let script = &w.files[patroni::RAFT_SCRIPT];
    assert_eq!((script.mode, script.user.as_str()), (0o600, "postgres"));
    assert!(layer.contains("user: postgres"), "{layer}");
    assert!(
        layer.contains(&format!("url: http://{ME}:8008/health")),
        "{layer}"
    );
    assert!(w.running.contains("postgresql"));
    drop(w);

    // Bootstrapped: the cluster is marked initialised with this member's address, and the
    // roles Patroni does not make exist, with verifiers (never the passwords) in the SQL.
    let bag = &out.state.relation(0).unwrap().local_app_data;
    assert_eq!(bag[INITIALISED_KEY], "true");
    assert_eq!(bag[BOOTSTRAP_ADDRESS_KEY], ME);
    assert_eq!(bag[ROLES_KEY], "true");
    let calls = fakes.sql.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].script.contains("GRANT pg_monitor TO monitoring"));
    assert!(calls[0].script.contains("'SCRAM-SHA-256$4096:"));
    assert!(
        !calls[0].script.contains(&"m".repeat(32)),
        "a password in SQL"
    );
    assert_eq!(calls[0].password, "o".repeat(32));
    assert_eq!(out.state.unit_status, charm::Status::active("Primary"));
    assert_eq!(out.state.workload_version.as_deref(), Some("15.14"));
    for (_, line) in &out.logs {
        for secret in ["o", "r", "w", "m", "b", "p"] {
            assert!(
                !line.contains(&secret.repeat(32)),
                "a password was logged: {line}"
            );
        }
    }
}

#[test]
fn a_second_hook_changes_nothing_and_sends_no_reload() {
    let fakes = Fakes::primary();
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        Event::UpdateStatus,
        leader_state(vec![bootstrapped_peers()]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let state = out.state.clone();
    let out = harness("postgresql/0").run(&mut fakes.charm(), Event::UpdateStatus, state.clone());
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state, state);
    assert!(fakes.workload.state().signals.is_empty());
    assert!(fakes.sql.calls().is_empty(), "the roles exist already");
}

/// A charm whose hooks would wait a minute for Patroni if they waited at all.
fn patient(fakes: &Fakes) -> PostgreSql {
    fakes.charm().with_start_wait(Duration::from_secs(60))
}

fn patroni_gets(fakes: &Fakes) -> usize {
    fakes
        .patroni
        .calls()
        .iter()
        .filter(|c| c.method == "GET" && c.path == "/patroni")
        .count()
}

/// postgresql/1 (at PEER_ADDRESS), with the peer bag `app` and postgresql/0 at ME.
fn follower_state(app: &[(&str, &str)]) -> State {
    let peer = peers()
        .with_local_app_data(app.iter().copied())
        .with_remote_unit("postgresql/0", [("address", ME)]);
    State {
        leader: false,
        relations: vec![peer],
        secrets: vec![users_secret()],
        address: PEER_ADDRESS.into(),
        ..State::default()
    }
}

#[test]
fn a_joining_unit_ends_its_hooks_while_patroni_joins_then_says_replica() {
    let fakes = Fakes::not_started();
    let state = follower_state(&[
        (USERS_KEY, "secret:users"),
        (INITIALISED_KEY, "true"),
        (BOOTSTRAP_ADDRESS_KEY, ME),
        (ROLES_KEY, "true"),
    ]);
    // Patroni just started: its API answers once raft is up, and its on_start callback
    // brings the hook that finds it running. This one does not wait.
    let out = harness("postgresql/1").run(&mut patient(&fakes), pebble_ready(), state);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(
        out.state.unit_status,
        charm::Status::maintenance("joining the cluster: Patroni starts")
    );
    assert_eq!(patroni_gets(&fakes), 1, "the hook asked Patroni once");
    assert!(fakes.workload.state().running.contains("postgresql"));
    let yml: serde_json::Value =
        serde_json::from_slice(&fakes.workload.state().files[patroni::CONFIG_PATH].content)
            .unwrap();
    assert_eq!(yml["raft"]["partner_addrs"], json!([format!("{ME}:2222")]));

    // Later hooks while it joins say how far it is, without waiting either.
    let state = out.state;
    for (answer, message) in [
        (
            json!({"state": "stopped", "role": "uninitialized"}),
            "joining the cluster: waiting for the primary",
        ),
        (
            json!({"state": "creating replica", "role": "uninitialized"}),
            "joining the cluster: Patroni copies the primary's data",
        ),
    ] {
        fakes.patroni.answer("GET", "/patroni", 200, answer);
        let before = patroni_gets(&fakes);
        let out =
            harness("postgresql/1").run(&mut patient(&fakes), Event::UpdateStatus, state.clone());
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.state.unit_status, charm::Status::maintenance(message));
        assert_eq!(patroni_gets(&fakes) - before, 1, "{message}: no waiting");
    }

    // Not answering, and no data yet: still starting.
    let down = Fakes {
        patroni: FakePatroni::default(),
        workload: fakes.workload.clone(),
        sql: FakeSql::default(),
    };
    let out = harness("postgresql/1").run(&mut patient(&down), Event::UpdateStatus, state.clone());
    assert_eq!(
        out.state.unit_status,
        charm::Status::maintenance("joining the cluster: Patroni starts")
    );
    assert_eq!(patroni_gets(&down), 1);

    // The on_start notice: running.
    let running = Fakes {
        patroni: FakePatroni::running(
            "replica",
            &[
                ("postgresql-0", "leader", ME),
                ("postgresql-1", "replica", PEER_ADDRESS),
            ],
        ),
        workload: fakes.workload.clone(),
        sql: FakeSql::default(),
    };
    let out = harness("postgresql/1").run(&mut running.charm(), notice("1"), state);
    assert_eq!(out.state.unit_status, charm::Status::active("Replica"));
    assert!(running.sql.calls().is_empty(), "a replica runs no SQL");
}

#[test]
fn a_member_that_ran_and_stopped_answering_is_waited_for() {
    let fakes = Fakes::not_started();
    let state = follower_state(&[
        (USERS_KEY, "secret:users"),
        (INITIALISED_KEY, "true"),
        (BOOTSTRAP_ADDRESS_KEY, ME),
    ]);
    // Patroni runs (started by an earlier hook) and has run before: it has data.
    let out = harness("postgresql/1").run(&mut fakes.charm(), pebble_ready(), state);
    assert!(out.error.is_none(), "{:?}", out.error);
    fakes.workload.state().files.insert(
        format!("{}/PG_VERSION", patroni::DATA_DIR),
        postgresql_charm::fakes::File {
            content: b"15\n".to_vec(),
            mode: 0o600,
            user: "postgres".into(),
        },
    );
    let state = out.state;
    let out = harness("postgresql/1").run(
        &mut fakes.charm().with_start_wait(Duration::from_millis(300)),
        Event::UpdateStatus,
        state,
    );
    assert_eq!(out.state.unit_status.name, StatusName::Waiting);
    assert!(
        out.state
            .unit_status
            .message
            .starts_with("waiting for Patroni: Patroni's API is not answering"),
        "{}",
        out.state.unit_status.message
    );
    assert!(
        patroni_gets(&fakes) > 1,
        "the hook asked again until its wait ran out"
    );
}

/// The custom notice Patroni's callbacks record (on_start, on_restart, on_role_change).
fn notice(id: &str) -> Event {
    Event::PebbleCustomNotice(charm::event::NoticeEvent {
        container: "postgresql".into(),
        id: id.into(),
        kind: "custom".into(),
        key: patroni::ROLE_CHANGE_KEY.into(),
    })
}

#[test]
fn the_leader_publishes_its_address_once_patroni_holds_the_initialize_key_and_ends_the_hook() {
    let fakes = Fakes::not_started();
    fakes.patroni.answer(
        "GET",
        "/patroni",
        200,
        json!({"state": "initializing new cluster", "role": "uninitialized"}),
    );
    let peer = peers().with_local_app_data([(USERS_KEY, "secret:users")]);
    let out = harness("postgresql/0").run(
        &mut patient(&fakes),
        pebble_ready(),
        leader_state(vec![peer]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    // Joining units may start now: they find the cluster through this member's raft,
    // which holds the initialize key, and wait for its primary there.
    let bag = &out.state.relation(0).unwrap().local_app_data;
    assert_eq!(bag[BOOTSTRAP_ADDRESS_KEY], ME);
    assert_eq!(bag[USERS_KEY], "secret:users");
    assert!(
        !bag.contains_key(INITIALISED_KEY),
        "not bootstrapped yet: {bag:?}"
    );
    assert!(!bag.contains_key(ROLES_KEY));
    assert_eq!(
        out.state.unit_status,
        charm::Status::maintenance("bootstrapping the cluster: Patroni runs initdb")
    );
    assert_eq!(patroni_gets(&fakes), 1, "the hook ended at once");
    assert!(fakes.sql.calls().is_empty());
    // Later hooks while it bootstraps do not wait either.
    let state = out.state;
    let out = harness("postgresql/0").run(&mut patient(&fakes), Event::UpdateStatus, state.clone());
    assert_eq!(
        out.state.unit_status,
        charm::Status::maintenance("bootstrapping the cluster: Patroni runs initdb")
    );
    assert_eq!(patroni_gets(&fakes), 2);

    // Its API not answering mid-bootstrap (switching to HTTPS on a reload, say), with
    // initdb's data in place: still bootstrapping, and nothing waits for it.
    let down = Fakes {
        patroni: FakePatroni::default(),
        workload: fakes.workload.clone(),
        sql: FakeSql::default(),
    };
    fakes.workload.state().files.insert(
        format!("{}/PG_VERSION", patroni::DATA_DIR),
        postgresql_charm::fakes::File {
            content: b"15\n".to_vec(),
            mode: 0o600,
            user: "postgres".into(),
        },
    );
    let out = harness("postgresql/0").run(&mut patient(&down), Event::UpdateStatus, state.clone());
    assert_eq!(
        out.state.unit_status,
        charm::Status::maintenance("bootstrapping the cluster: Patroni runs initdb")
    );
    assert_eq!(patroni_gets(&down), 1);

    // Post-bootstrap: PostgreSQL runs as a primary, but Patroni has not taken the leader
    // key yet (it makes its users first). Still bootstrapping.
    fakes.patroni.answer(
        "GET",
        "/patroni",
        200,
        json!({"state": "running", "role": "master", "cluster_unlocked": true, "server_version": 150014}),
    );
    let out = harness("postgresql/0").run(&mut patient(&fakes), Event::UpdateStatus, state.clone());
    assert_eq!(
        out.state.unit_status,
        charm::Status::maintenance("bootstrapping the cluster: Patroni runs initdb")
    );
    assert!(!out
        .state
        .relation(0)
        .unwrap()
        .local_app_data
        .contains_key(INITIALISED_KEY));

    // The on_start notice at the end of the bootstrap finishes the work.
    let done = Fakes {
        patroni: FakePatroni::running("primary", &[("postgresql-0", "leader", ME)]),
        workload: fakes.workload.clone(),
        sql: FakeSql::default(),
    };
    let out = harness("postgresql/0").run(&mut done.charm(), notice("25"), state);
    assert!(out.error.is_none(), "{:?}", out.error);
    let bag = &out.state.relation(0).unwrap().local_app_data;
    assert_eq!(bag[INITIALISED_KEY], "true");
    assert_eq!(bag[BOOTSTRAP_ADDRESS_KEY], ME);
    assert_eq!(bag[ROLES_KEY], "true");
    assert_eq!(out.state.unit_status, charm::Status::active("Primary"));
}

#[test]
fn a_leader_whose_patroni_does_not_claim_the_bootstrap_publishes_no_address() {
    // Patroni's API does not answer within the wait: joining units must not start.
    let fakes = Fakes::not_started();
    let peer = peers().with_local_app_data([(USERS_KEY, "secret:users")]);
    let out =
        harness("postgresql/0").run(&mut fakes.charm(), pebble_ready(), leader_state(vec![peer]));
    assert!(out.error.is_none(), "{:?}", out.error);
    let bag = &out.state.relation(0).unwrap().local_app_data;
    assert!(!bag.contains_key(BOOTSTRAP_ADDRESS_KEY), "{bag:?}");
    assert_eq!(
        out.state.unit_status,
        charm::Status::maintenance("bootstrapping the cluster: Patroni runs initdb")
    );
    // Nor while it waits for a primary in someone else's cluster.
    fakes.patroni.answer(
        "GET",
        "/patroni",
        200,
        json!({"state": "stopped", "role": "uninitialized"}),
    );
    let out = harness("postgresql/0").run(&mut fakes.charm(), Event::UpdateStatus, out.state);
    assert!(!out
        .state
        .relation(0)
        .unwrap()
        .local_app_data
        .contains_key(BOOTSTRAP_ADDRESS_KEY));
}

#[test]
fn a_unit_joins_once_the_bootstrap_address_is_published_before_the_bootstrap_ends() {
    // Users and the bootstrap member's address, not initialised yet: start Patroni.
    let fakes = Fakes::not_started();
    let state = follower_state(&[(USERS_KEY, "secret:users"), (BOOTSTRAP_ADDRESS_KEY, ME)]);
    let out = harness("postgresql/1").run(&mut patient(&fakes), pebble_ready(), state);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(fakes.workload.state().running.contains("postgresql"));
    assert_eq!(
        out.state.unit_status,
        charm::Status::maintenance("joining the cluster: Patroni starts")
    );
    // Without the address it waits, whatever else the bag says.
    let fakes = Fakes::not_started();
    let state = follower_state(&[(USERS_KEY, "secret:users"), (INITIALISED_KEY, "true")]);
    let out = harness("postgresql/1").run(&mut patient(&fakes), pebble_ready(), state);
    assert!(!fakes.workload.state().running.contains("postgresql"));
    assert_eq!(
        out.state.unit_status,
        charm::Status::waiting("waiting for the address of the bootstrapped member")
    );
}

fn client(data: &[(&str, &str)]) -> Relation {
    Relation::new("database", 5, "app").with_remote_app_data(data.iter().copied())
}

#[test]
fn a_database_request_gets_a_user_database_secret_and_endpoints() {
    let fakes = Fakes::primary();
    let rel = client(&[("database", "mydb"), ("extra-user-roles", "createdb")]);
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        rel.changed(None),
        leader_state(vec![bootstrapped_peers(), rel]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);

    let secret = out
        .state
        .secret_by_label("database.5.user.secret")
        .expect("the user secret");
    assert_eq!(secret.owner, Some(SecretOwner::Application));
    assert!(secret.grants.contains_key(&5), "granted to the relation");
    let creds = secret.latest_content();
    assert_eq!(creds["username"], "relation_id_5");
    let password = &creds["password"];
    assert_eq!(password.len(), 32);
    assert_eq!(
        creds["uris"],
        format!("postgresql://relation_id_5:{password}@{ME}:5432/mydb")
    );
    assert_eq!(
        creds["read-only-uris"],
        format!("postgresql://relation_id_5:{password}@{PEER_ADDRESS}:5432/mydb")
    );

    let bag = &out.state.relation(5).unwrap().local_app_data;
    assert_eq!(bag["secret-user"], secret.id);
    assert_eq!(bag["database"], "mydb");
    assert_eq!(bag["endpoints"], format!("{ME}:5432"));
    assert_eq!(bag["read-only-endpoints"], format!("{PEER_ADDRESS}:5432"));
    assert_eq!(bag["version"], "15.14");
    assert_eq!(bag["tls"], "False");
    assert!(
        !bag.contains_key("password"),
        "the password is only in the secret"
    );
    let tls = out
        .state
        .secret_by_label("database.5.tls.secret")
        .expect("tls secret");
    assert_eq!(tls.latest_content()["tls"], "False");
    assert_eq!(bag["secret-tls"], tls.id);

    let calls = fakes.sql.calls();
    let create = &calls[0].script;
    assert_eq!(calls[0].host, ME, "SQL goes to the primary");
    assert!(create.contains("CREATE DATABASE %I', 'mydb'"), "{create}");
    assert!(
        create.contains(
            "ALTER ROLE \"relation_id_5\" WITH LOGIN CREATEDB PASSWORD 'SCRAM-SHA-256$4096:"
        ),
        "{create}"
    );
    assert!(
        calls.iter().all(|c| !c.script.contains(password.as_str())),
        "the password reached SQL"
    );
    assert!(out.logs.iter().all(|(_, l)| !l.contains(password.as_str())));
    assert_eq!(out.state.unit_status, charm::Status::active("Primary"));

    // The next hook keeps the user and its password: no SQL, no new secret revision.
    let state = out.state.clone();
    let before = fakes.sql.calls().len();
    let out = harness("postgresql/0").run(&mut fakes.charm(), Event::UpdateStatus, state.clone());
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(fakes.sql.calls().len(), before);
    assert_eq!(out.state, state);
}

#[test]
fn plain_fields_for_a_client_that_asks_for_no_secrets() {
    let fakes = Fakes::primary();
    let rel = client(&[
        ("database", "mydb"),
        ("requested-secrets", "[\"password\"]"),
    ]);
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        rel.changed(None),
        leader_state(vec![bootstrapped_peers(), rel]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let bag = &out.state.relation(5).unwrap().local_app_data;
    assert_eq!(bag["username"], "relation_id_5");
    assert!(!bag.contains_key("password"));
    let secret = out.state.secret_by_label("database.5.user.secret").unwrap();
    assert_eq!(
        secret.latest_content().keys().collect::<Vec<_>>(),
        ["password"]
    );
}

#[test]
fn superuser_in_extra_user_roles_is_refused_and_nothing_is_made() {
    let fakes = Fakes::primary();
    let rel = client(&[
        ("database", "mydb"),
        ("extra-user-roles", "createdb,SUPERUSER"),
    ]);
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        rel.changed(None),
        leader_state(vec![bootstrapped_peers(), rel]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.unit_status.name, StatusName::Blocked);
    assert_eq!(
        out.state.unit_status.message,
        "database:5 from app: extra-user-roles SUPERUSER is not allowed (allowed: CREATEDB, CREATEROLE)"
    );
    assert!(fakes.sql.calls().is_empty());
    assert!(out.state.relation(5).unwrap().local_app_data.is_empty());
    assert_eq!(out.state.secrets.len(), 1, "only the system users' secret");
}

#[test]
fn bad_database_names_and_malformed_requests_are_refused_naming_them() {
    for (data, message) in [
        (
            vec![("database", "my db;")],
            "database:5 from app: database name \"my db;\" is not allowed (letters, digits, _ and -, at most 63, starting with a letter or _)",
        ),
        (
            vec![("database", "ok"), ("requested-secrets", "password")],
            "database:5 from app: postgresql_client field requested-secrets=\"password\": must be a JSON list of field names (expected value at line 1 column 1)",
        ),
    ] {
        let fakes = Fakes::primary();
        let rel = client(&data);
        let out = harness("postgresql/0").run(
            &mut fakes.charm(),
            rel.changed(None),
            leader_state(vec![bootstrapped_peers(), rel]),
        );
        assert_eq!(out.state.unit_status, charm::Status::blocked(message));
        assert!(fakes.sql.calls().is_empty());
    }
}

#[test]
fn a_broken_database_relation_drops_the_user() {
    let fakes = Fakes::primary();
    fakes.sql.output_for("SELECT datname", "mydb\n");
    let rel = client(&[("database", "mydb")]).with_local_app_data([("secret-user", "secret:u5")]);
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        rel.broken(),
        leader_state(vec![bootstrapped_peers(), rel]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let scripts: Vec<(String, String)> = fakes
        .sql
        .calls()
        .into_iter()
        .map(|c| (c.database, c.script))
        .collect();
    assert!(scripts.contains(&(
        "mydb".to_string(),
        "REASSIGN OWNED BY \"relation_id_5\" TO operator;\nDROP OWNED BY \"relation_id_5\";\n"
            .to_string()
    )));
    assert_eq!(
        scripts.last().unwrap(),
        &(
            "postgres".to_string(),
            "DROP ROLE IF EXISTS \"relation_id_5\";\nDROP ROLE IF EXISTS \"pgbouncer_auth_relation_id_5\";\n".to_string()
        )
    );
}

#[test]
fn set_password_rotates_the_secret_and_sets_a_verifier_on_the_primary() {
    let fakes = Fakes::primary();
    let new = "NewOperatorPassword0123456789abc";
    let out = harness("postgresql/0").run_action(
        &mut fakes.charm(),
        "set-password",
        json!({"username": "operator", "password": new}),
        leader_state(vec![bootstrapped_peers()]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let action = out.action.unwrap();
    assert_eq!(action.failure, None);
    assert_eq!(action.results["password"], new);

    let secret = out.state.secret_by_label(USERS_LABEL).unwrap();
    assert_eq!(secret.latest(), 2);
    assert_eq!(secret.latest_content()["operator-password"], new);
    assert_eq!(
        secret.latest_content()["replication-password"],
        "r".repeat(32)
    );

    let calls = fakes.sql.calls();
    let alter = calls
        .iter()
        .find(|c| {
            c.script
                .contains("ALTER ROLE \"operator\" WITH PASSWORD 'SCRAM-SHA-256$4096:")
        })
        .expect("ALTER ROLE with a verifier");
    assert_eq!(
        alter.password,
        "o".repeat(32),
        "connected with the old password"
    );
    assert!(calls.iter().all(|c| !c.script.contains(new)));
    // This unit's Patroni gets the new password at once; the peers on the bag change.
    let yml: serde_json::Value =
        serde_json::from_slice(&fakes.workload.state().files[patroni::CONFIG_PATH].content)
            .unwrap();
    assert_eq!(
        yml["postgresql"]["authentication"]["superuser"]["password"],
        new
    );
    assert_eq!(
        out.state.relation(0).unwrap().local_app_data[postgresql_charm::USERS_REVISION_KEY],
        "1"
    );

    // A random one when none is given.
    let out = harness("postgresql/0").run_action(
        &mut fakes.charm(),
        "set-password",
        json!({"username": "monitoring"}),
        leader_state(vec![bootstrapped_peers()]),
    );
    let made = out.action.unwrap().results["password"].clone();
    assert_eq!(made.len(), 32);
    assert_eq!(
        out.state
            .secret_by_label(USERS_LABEL)
            .unwrap()
            .latest_content()["monitoring-password"],
        made
    );
}

#[test]
fn set_password_is_refused_off_the_leader_and_for_unknown_users() {
    let fakes = Fakes::primary();
    let mut state = leader_state(vec![bootstrapped_peers()]);
    let out = harness("postgresql/0").run_action(
        &mut fakes.charm(),
        "set-password",
        json!({"username": "mallory"}),
        state.clone(),
    );
    let failure = out.action.unwrap().failure.expect("refused");
    assert!(failure.contains("\"mallory\""), "{failure}");
    state.leader = false;
    let out = harness("postgresql/0").run_action(
        &mut fakes.charm(),
        "set-password",
        json!({"username": "operator"}),
        state,
    );
    let failure = out.action.unwrap().failure.expect("refused");
    assert!(failure.contains("leader"), "{failure}");
    assert!(fakes.sql.calls().is_empty());
}

#[test]
fn promote_to_primary_asks_patroni_for_a_switchover_to_this_unit() {
    let fakes = Fakes {
        patroni: FakePatroni::running(
            "replica",
            &[
                ("postgresql-0", "leader", ME),
                ("postgresql-1", "replica", PEER_ADDRESS),
            ],
        ),
        ..Fakes::primary()
    };
    let mut state = leader_state(vec![bootstrapped_peers()]);
    state.address = PEER_ADDRESS.into();
    let out = harness("postgresql/1").run_action(
        &mut fakes.charm(),
        "promote-to-primary",
        json!({}),
        state.clone(),
    );
    assert_eq!(out.action.unwrap().failure, None);
    let call = fakes
        .patroni
        .calls()
        .into_iter()
        .find(|c| c.path == "/switchover")
        .expect("a switchover");
    assert_eq!(call.method, "POST");
    assert!(call.authenticated);
    assert_eq!(
        call.body,
        Some(json!({"leader": "postgresql-0", "candidate": "postgresql-1"}))
    );

    let out = harness("postgresql/0").run_action(
        &mut fakes.charm(),
        "get-primary",
        json!({}),
        state.clone(),
    );
    assert_eq!(out.action.unwrap().results["primary"], "postgresql/0");

    fakes.patroni.answer(
        "POST",
        "/switchover",
        412,
        json!("candidate name does not match with sync_standby"),
    );
    let out = harness("postgresql/1").run_action(
        &mut fakes.charm(),
        "promote-to-primary",
        json!({}),
        state,
    );
    let failure = out.action.unwrap().failure.expect("refused");
    assert!(failure.contains("412"), "{failure}");
}

#[test]
fn synchronous_mode_from_config_is_patched_into_patronis_dcs() {
    let fakes = Fakes::primary();
    let mut state = leader_state(vec![bootstrapped_peers()]);
    state.config =
        json!({"durability_synchronous_mode": true, "synchronous_node_count": "majority"})
            .as_object()
            .unwrap()
            .clone();
    let out = harness("postgresql/0").run(&mut fakes.charm(), Event::ConfigChanged, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    let patch = fakes
        .patroni
        .calls()
        .into_iter()
        .find(|c| c.method == "PATCH")
        .expect("PATCH /config");
    assert_eq!(patch.path, "/config");
    assert!(patch.authenticated);
    // Two units: one synchronous replica, strict as configured by default.
    assert_eq!(
        patch.body,
        Some(json!({
            "synchronous_mode": true,
            "synchronous_mode_strict": true,
            "synchronous_node_count": 1,
            "maximum_lag_on_failover": 1048576,
            // Cluster-wide parameters go through the DCS too (Patroni ignores them in
            // patroni.yml's postgresql.parameters).
            "postgresql": {"parameters": {
                "hot_standby": "on",
                "max_connections": "200",
                "wal_level": "replica",
                "wal_log_hints": "on",
            }},
        }))
    );
    let yml: serde_json::Value =
        serde_json::from_slice(&fakes.workload.state().files[patroni::CONFIG_PATH].content)
            .unwrap();
    assert_eq!(yml["bootstrap"]["dcs"]["synchronous_mode"], true);
    assert_eq!(
        yml["bootstrap"]["dcs"]["postgresql"]["parameters"]["max_connections"],
        "200"
    );
    assert!(yml["postgresql"]["parameters"]
        .get("max_connections")
        .is_none());
}

#[test]
fn a_certificate_from_certificates_turns_tls_on_for_postgresql_and_clients() {
    use interfaces::tls_certificates::{
        dumps, parse_requests, validate_csr, CaConfig, CertificateAuthority, CsrPolicy,
        ProvidedCertificate,
    };
    let fakes = Fakes::primary();
    let certs = Relation::new("certificates", 9, "ssc");
    let db = client(&[("database", "mydb")]);
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        certs.joined("ssc/0"),
        leader_state(vec![bootstrapped_peers(), certs, db]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(fakes
        .workload
        .state()
        .files
        .keys()
        .all(|p| !p.contains("/tls/")));
    let requests = &out.state.relation(9).unwrap().local_unit_data["certificate_signing_requests"];
    let csr = parse_requests(requests).unwrap()[0]
        .certificate_signing_request
        .clone();
    assert_eq!(
        out.state.relation(5).unwrap().local_app_data["tls"],
        "False"
    );

    // The provider signs the CSR; the unit's address is in it.
    let ca = CertificateAuthority::generate(&CaConfig::new("Test CA")).unwrap();
    let checked = validate_csr(&csr, false, &CsrPolicy::default()).unwrap();
    let cert = ca.sign(&checked, 30).unwrap();
    let answer = dumps(&vec![ProvidedCertificate {
        certificate: cert.clone(),
        certificate_signing_request: csr,
        ca: ca.certificate_pem().to_string(),
        chain: vec![cert.clone(), ca.certificate_pem().to_string()],
        revoked: None,
    }]);
    let mut state = out.state.clone();
    let rel = state.relations.iter_mut().find(|r| r.id.id == 9).unwrap();
    rel.remote_app_data.insert("certificates".into(), answer);
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        Relation::new("certificates", 9, "ssc").changed(None),
        state,
    );
    assert!(out.error.is_none(), "{:?}", out.error);

    let w = fakes.workload.state();
    for name in ["server.crt", "server.key", "ca.crt"] {
        let f = &w.files[&format!("/var/lib/postgresql/data/tls/{name}")];
        assert_eq!((f.mode, f.user.as_str()), (0o600, "postgres"), "{name}");
    }
    assert_eq!(
        w.files["/var/lib/postgresql/data/tls/server.crt"].content,
        cert.as_bytes()
    );
    let yml: serde_json::Value =
        serde_json::from_slice(&w.files[patroni::CONFIG_PATH].content).unwrap();
    assert_eq!(yml["postgresql"]["parameters"]["ssl"], "on");
    let hba: Vec<String> = serde_json::from_value(yml["postgresql"]["pg_hba"].clone()).unwrap();
    for line in &hba {
        assert!(
            line.starts_with("local ") || line.starts_with("hostssl "),
            "{line}"
        );
    }
    // patroni.yml changed under a running Patroni: it is told to reload.
    assert!(w
        .signals
        .contains(&("SIGHUP".to_string(), "postgresql".to_string())));
    // Patroni's REST API serves HTTPS with the same certificate, still with a password
    // for the unsafe endpoints; the readiness check becomes a TCP one.
    let restapi = &yml["restapi"];
    assert_eq!(
        restapi["certfile"],
        "/var/lib/postgresql/data/tls/server.crt"
    );
    assert_eq!(
        restapi["keyfile"],
        "/var/lib/postgresql/data/tls/server.key"
    );
    assert_eq!(restapi["cafile"], "/var/lib/postgresql/data/tls/ca.crt");
    assert_eq!(restapi["authentication"]["username"], "patroni");
    let (_, layer) = w.layers.last().unwrap();
    assert!(
        layer.contains(&format!("tcp:\n      host: {ME}\n      port: 8008")),
        "{layer}"
    );
    assert!(!layer.contains("http://"), "{layer}");
    drop(w);
    let calls = fakes.patroni.calls();
    assert!(!calls[0].https, "plain HTTP before the certificate");
    assert!(calls.last().unwrap().https, "HTTPS after it");
    assert_eq!(
        fakes.patroni.0.lock().unwrap().ca.as_deref(),
        Some(ca.certificate_pem())
    );
    // The next hook (an action, say) reaches the API over HTTPS from the start: the charm
    // reads how from the patroni.yml in place.
    fakes.patroni.0.lock().unwrap().ca = None;
    let before = fakes.patroni.calls().len();
    let primary = harness("postgresql/0").run_action(
        &mut fakes.charm(),
        "get-primary",
        json!({}),
        out.state.clone(),
    );
    assert_eq!(primary.action.unwrap().results["primary"], "postgresql/0");
    assert!(fakes.patroni.calls()[before..].iter().all(|c| c.https));
    let bag = &out.state.relation(5).unwrap().local_app_data;
    assert_eq!(bag["tls"], "True");
    let tls = out
        .state
        .secret_by_label("database.5.tls.secret")
        .unwrap()
        .latest_content();
    assert_eq!(tls["tls"], "True");
    assert_eq!(tls["tls-ca"], ca.certificate_pem());
}

#[test]
fn require_tls_without_a_certificate_keeps_clients_out_and_says_why() {
    let fakes = Fakes::primary();
    let mut state = leader_state(vec![bootstrapped_peers()]);
    state.config = json!({"connection_require_tls": true})
        .as_object()
        .unwrap()
        .clone();
    let out = harness("postgresql/0").run(&mut fakes.charm(), Event::ConfigChanged, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.unit_status.name, StatusName::Blocked);
    assert!(out
        .state
        .unit_status
        .message
        .contains("relate certificates"));
    let yml: serde_json::Value =
        serde_json::from_slice(&fakes.workload.state().files[patroni::CONFIG_PATH].content)
            .unwrap();
    let hba: Vec<String> = serde_json::from_value(yml["postgresql"]["pg_hba"].clone()).unwrap();
    assert!(
        !hba.iter().any(|l| l.contains(" all all 0.0.0.0/0")),
        "{hba:?}"
    );
    assert!(
        hba.iter()
            .any(|l| l.starts_with("host all operator,rewind")),
        "{hba:?}"
    );
}

#[test]
fn patroni_refusing_the_settings_change_does_not_fail_the_hook() {
    let fakes = Fakes::primary();
    fakes
        .patroni
        .answer("PATCH", "/config", 401, json!("not authenticated"));
    let mut state = leader_state(vec![bootstrapped_peers()]);
    state.config = json!({"durability_synchronous_mode": true})
        .as_object()
        .unwrap()
        .clone();
    let out = harness("postgresql/0").run(&mut fakes.charm(), Event::ConfigChanged, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(out
        .logs
        .iter()
        .any(|(_, l)| l.contains("Patroni refused the config change (401)")));
    assert_eq!(out.state.unit_status, charm::Status::active("Primary"));
}

#[test]
fn a_requirer_asking_for_the_auth_function_gets_the_auth_user_in_its_secret() {
    let fakes = Fakes::primary();
    let rel = client(&[
        ("database", "pgbouncer"),
        ("extra-user-roles", "CREATEDB,CREATEROLE"),
        ("auth-function", "true"),
    ]);
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        rel.changed(None),
        leader_state(vec![bootstrapped_peers(), rel]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let creds = out
        .state
        .secret_by_label("database.5.user.secret")
        .expect("the user secret")
        .latest_content();
    assert_eq!(creds["auth-username"], "pgbouncer_auth_relation_id_5");
    let auth_password = &creds["auth-password"];
    assert_eq!(auth_password.len(), 32);
    let bag = &out.state.relation(5).unwrap().local_app_data;
    assert!(!bag.values().any(|v| v.contains(auth_password.as_str())));
    let calls = fakes.sql.calls();
    let auth = calls
        .iter()
        .find(|c| c.script.contains("NOSUPERUSER"))
        .expect("the auth user is made");
    assert!(auth.script.contains("PASSWORD 'SCRAM-SHA-256$4096:"));
    let installed: Vec<&str> = calls
        .iter()
        .filter(|c| c.script.contains("SECURITY DEFINER"))
        .map(|c| c.database.as_str())
        .collect();
    assert_eq!(installed, ["template1", "postgres", "pgbouncer"]);
    assert!(calls.iter().all(|c| c.user == "operator"));
    assert!(calls
        .iter()
        .all(|c| !c.script.contains(auth_password.as_str())));
    // A second hook makes nothing again.
    let before = fakes.sql.calls().len();
    let out = harness("postgresql/0").run(&mut fakes.charm(), Event::UpdateStatus, out.state);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(fakes.sql.calls()[before..]
        .iter()
        .all(|c| !c.script.contains("SECURITY DEFINER")));
}

#[test]
fn a_client_that_cannot_be_served_yet_does_not_lose_the_new_system_users() {
    // The first hook of a fresh leader makes the system users' secret and bootstraps
    // Patroni with it; a client's SQL failing in that hook must not fail the hook (a
    // failed hook would discard the secret Patroni now uses).
    let fakes = Fakes::primary();
    fakes.sql.state().failure = Some("database \"x\" does not exist".into());
    let rel = client(&[("database", "mydb")]);
    // Nor may the monitoring and backup roles' SQL failing (PostgreSQL not taking
    // connections yet), which runs in that hook too.
    let peer = peers().with_local_unit_data([("address", ME)]);
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        pebble_ready(),
        State {
            leader: true,
            relations: vec![peer, rel],
            address: ME.into(),
            ..State::default()
        },
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(out.state.secret_by_label(USERS_LABEL).is_some());
    assert!(!out
        .state
        .relation(0)
        .unwrap()
        .local_app_data
        .contains_key(ROLES_KEY));
    assert_eq!(out.state.unit_status.name, StatusName::Waiting);
    assert!(out
        .state
        .unit_status
        .message
        .starts_with("cannot serve database clients yet: psql on"));
}

#[test]
fn a_restart_only_setting_restarts_members_one_at_a_time_replicas_first() {
    let fakes = Fakes::primary();
    fakes.patroni.answer(
        "GET",
        "/patroni",
        200,
        json!({"state": "running", "role": "master", "server_version": 150014, "pending_restart": true}),
    );
    fakes
        .patroni
        .answer("POST", "/restart", 200, json!("restarted successfully"));
    let mut state = leader_state(vec![bootstrapped_peers()]);
    state.config = json!({"experimental_max_connections": 300})
        .as_object()
        .unwrap()
        .clone();
    let out = harness("postgresql/0").run(&mut fakes.charm(), Event::ConfigChanged, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    let restarts: Vec<String> = fakes
        .patroni
        .calls()
        .into_iter()
        .filter(|c| c.method == "POST" && c.path == "/restart")
        .map(|c| {
            assert!(c.authenticated);
            c.address
        })
        .collect();
    assert_eq!(restarts, [PEER_ADDRESS.to_string(), ME.to_string()]);
    assert!(out.logs.iter().any(|(_, l)| l.contains(
        "restarted PostgreSQL for new settings, one member at a time: postgresql/1, postgresql/0"
    )));
}

/// The leader's fakes with Patroni's DCS config as the charm's defaults want it (no
/// settings change in the hook).
fn settled_primary() -> Fakes {
    let fakes = Fakes::primary();
    fakes.patroni.answer(
        "GET",
        "/config",
        200,
        json!({
            "synchronous_mode": false, "synchronous_mode_strict": false,
            "synchronous_node_count": 1, "maximum_lag_on_failover": 1048576,
            "postgresql": {"parameters": {
                "hot_standby": "on", "max_connections": 200, "wal_level": "replica",
                "wal_log_hints": "on",
            }},
        }),
    );
    fakes
}

#[test]
fn the_leader_asks_each_member_about_restarts_only_when_one_is_pending() {
    // Steady state: no member's entry in GET /cluster says pending_restart, so no member
    // is asked (a joining member can take seconds to answer).
    let fakes = settled_primary();
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        Event::UpdateStatus,
        leader_state(vec![bootstrapped_peers()]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(
        !fakes
            .patroni
            .calls()
            .iter()
            .any(|c| c.address == PEER_ADDRESS),
        "{:?}",
        fakes.patroni.calls()
    );
    assert!(
        !fakes.patroni.calls().iter().any(|c| c.method == "PATCH"),
        "no settings change"
    );
    // A member flagged there is asked, and restarted.
    let fakes = settled_primary();
    fakes.patroni.answer(
        "GET",
        "/cluster",
        200,
        json!({"members": [
            {"name": "postgresql-0", "role": "leader", "host": ME},
            {"name": "postgresql-1", "role": "replica", "host": PEER_ADDRESS, "pending_restart": true},
        ]}),
    );
    fakes.patroni.answer(
        "GET",
        "/patroni",
        200,
        json!({"state": "running", "role": "master", "server_version": 150014, "pending_restart": true}),
    );
    fakes
        .patroni
        .answer("POST", "/restart", 200, json!("restarted successfully"));
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        Event::UpdateStatus,
        leader_state(vec![bootstrapped_peers()]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(fakes
        .patroni
        .calls()
        .iter()
        .any(|c| c.method == "POST" && c.path == "/restart" && c.address == PEER_ADDRESS));
}

#[test]
fn a_role_change_notice_on_a_non_leader_pokes_the_leader_through_the_peer_relation() {
    let fakes = Fakes::primary();
    let event = Event::PebbleCustomNotice(charm::NoticeEvent {
        container: "postgresql".into(),
        id: "3".into(),
        kind: "custom".into(),
        key: "ward.io/postgresql/role-change".into(),
    });
    let state = State {
        leader: false,
        relations: vec![bootstrapped_peers()],
        secrets: vec![users_secret()],
        address: ME.into(),
        ..State::default()
    };
    let out = harness("postgresql/0").run(&mut fakes.charm(), event, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    let mine = &out.state.relation(0).unwrap().local_unit_data;
    assert!(mine["role-changed"].starts_with("3@"), "{mine:?}");
    // Patroni calls the script on a role change; the script records the notice.
    let w = fakes.workload.state();
    let script = String::from_utf8(w.files[patroni::ROLE_CHANGE_SCRIPT].content.clone()).unwrap();
    assert!(script.contains("/charm/bin/pebble notify ward.io/postgresql/role-change"));
    let yml: serde_json::Value =
        serde_json::from_slice(&w.files[patroni::CONFIG_PATH].content).unwrap();
    // ...and when PostgreSQL starts or restarts: the end of a bootstrap, a join or a
    // restart brings a hook, so that no hook waits for one.
    for callback in ["on_role_change", "on_start", "on_restart"] {
        assert_eq!(
            yml["postgresql"]["callbacks"][callback],
            format!("/bin/sh {}", patroni::ROLE_CHANGE_SCRIPT),
            "{callback}"
        );
    }
}

/// Every event that only reconciles (the charm compares what is with what should be,
/// whatever woke it) leaves a bootstrapped primary the same: patroni.yml and the layer in
/// place, Patroni running, the unit active as the primary, nothing failing.
#[test]
fn every_reconciling_event_leaves_the_primary_active() {
    use charm::event::{SecretEvent, StorageEvent};
    let peer = bootstrapped_peers();
    let db = client(&[("database", "mydb")]);
    let certs = Relation::new("certificates", 9, "ssc");
    let storage = StorageEvent {
        name: "pgdata".into(),
        id: "pgdata/0".into(),
        location: Some("/var/lib/postgresql/data".into()),
    };
    let events = [
        Event::Install,
        Event::Start,
        Event::ConfigChanged,
        Event::LeaderElected,
        Event::LeaderSettingsChanged,
        Event::UpgradeCharm,
        Event::UpdateStatus,
        pebble_ready(),
        Event::PebbleCheckFailed {
            container: "postgresql".into(),
            check: "postgresql".into(),
        },
        Event::PebbleCheckRecovered {
            container: "postgresql".into(),
            check: "postgresql".into(),
        },
        Event::StorageAttached(storage),
        // On the leader a role change only reconciles (clients' endpoints follow).
        Event::PebbleCustomNotice(charm::event::NoticeEvent {
            container: "postgresql".into(),
            id: "7".into(),
            kind: "custom".into(),
            key: patroni::ROLE_CHANGE_KEY.into(),
        }),
        Event::SecretChanged(SecretEvent {
            id: "secret:users".into(),
            label: Some(USERS_LABEL.into()),
            revision: None,
        }),
        peer.created(),
        peer.joined("postgresql/1"),
        peer.changed(Some("postgresql/1")),
        peer.changed(None),
        db.created(),
        db.joined("app/0"),
        db.changed(Some("app/0")),
        db.departed("app/0"),
        certs.created(),
        certs.joined("ssc/0"),
        certs.changed(Some("ssc/0")),
    ];
    for event in events {
        let name = event.juju_name();
        let fakes = Fakes::primary();
        let out = harness("postgresql/0").run(
            &mut fakes.charm(),
            event,
            leader_state(vec![peer.clone(), db.clone(), certs.clone()]),
        );
        assert!(out.error.is_none(), "{name}: {:?}", out.error);
        assert_eq!(
            out.state.unit_status,
            charm::Status::active("Primary"),
            "{name}"
        );
        let w = fakes.workload.state();
        assert!(w.files.contains_key(patroni::CONFIG_PATH), "{name}");
        assert!(w.running.contains("postgresql"), "{name}");
        assert!(w.stops.is_empty(), "{name} stopped Patroni");
        assert!(w.execs.is_empty(), "{name} changed raft: {:?}", w.execs);
    }
}

/// The departed event a unit being removed sees: the remote unit is the other end, the
/// departing unit is this one.
fn leaving(unit: &str, remote: &str) -> Event {
    Event::RelationDeparted(charm::RelationEvent {
        relation: peers().id,
        remote_app: "postgresql".into(),
        remote_unit: Some(remote.into()),
        departing_unit: Some(unit.into()),
    })
}

fn raft_remove(address: &str) -> String {
    format!(
        "/usr/bin/python3 {} remove {address}:2222",
        patroni::RAFT_SCRIPT
    )
}

#[test]
fn a_removed_primary_switches_over_then_leaves_raft_then_stops_patroni() {
    let fakes = Fakes::primary();
    let state = leader_state(vec![bootstrapped_peers()]);
    let out = harness("postgresql/0").run(&mut fakes.charm(), Event::UpdateStatus, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    let before = fakes.patroni.calls().len();
    // Being removed, the unit is no longer the leader.
    let state = State {
        leader: false,
        ..out.state
    };
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        leaving("postgresql/0", "postgresql/1"),
        state.clone(),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let calls = fakes.patroni.calls();
    let switchover = calls[before..]
        .iter()
        .find(|c| c.method == "POST")
        .expect("a switchover");
    assert_eq!(switchover.path, "/switchover");
    assert_eq!(switchover.body, Some(json!({"leader": "postgresql-0"})));
    assert!(
        switchover.authenticated,
        "unsafe endpoints need the password"
    );
    let w = fakes.workload.state();
    assert_eq!(w.execs, [raft_remove(ME)]);
    let script = &w.files[patroni::RAFT_SCRIPT];
    assert_eq!((script.mode, script.user.as_str()), (0o600, "postgres"));
    assert!(
        !String::from_utf8_lossy(&script.content).contains(&"p".repeat(32)),
        "the raft password stays in patroni.yml"
    );
    assert_eq!(w.stops, ["postgresql"]);
    assert!(!w.running.contains("postgresql"));
    let (_, last) = w.layers.last().unwrap();
    assert!(last.contains("startup: disabled"), "{last}");
    assert!(last.contains("on-failure: ignore"), "{last}");
    drop(w);
    // The fake keeps this member the primary: the unit says so and leaves anyway.
    assert!(
        out.logs
            .iter()
            .any(|(_, m)| m.starts_with("no switchover before leaving")),
        "{:?}",
        out.logs
    );
    assert_eq!(
        out.state.unit_status,
        charm::Status::maintenance("left the cluster, being removed")
    );

    assert_eq!(out.state.stored[postgresql_charm::LEFT_KEY], "true");

    // Later teardown hooks do nothing more: not the other relations' departed or broken
    // (which would reconcile and start Patroni again), not storage-detaching.
    let storage = Event::StorageDetaching(charm::event::StorageEvent {
        name: "pgdata".into(),
        id: "pgdata/0".into(),
        location: None,
    });
    let restart = Relation::new("restart", 3, "postgresql");
    let db = client(&[("database", "mydb")]);
    let mut later = out.state.clone();
    later.relations.push(restart.clone());
    later.relations.push(db.clone());
    for event in [
        leaving("postgresql/0", "postgresql/2"),
        Event::RelationDeparted(charm::RelationEvent {
            relation: restart.id.clone(),
            remote_app: "postgresql".into(),
            remote_unit: Some("postgresql/1".into()),
            departing_unit: Some("postgresql/0".into()),
        }),
        db.departed("app/0"),
        db.broken(),
        Event::Stop,
        storage,
        Event::Remove,
    ] {
        let name = event.juju_name();
        let out = harness("postgresql/0").run(&mut fakes.charm(), event, later.clone());
        assert!(out.error.is_none(), "{name}: {:?}", out.error);
        assert_eq!(
            out.state.unit_status,
            charm::Status::maintenance("left the cluster, being removed"),
            "{name}"
        );
    }
    let w = fakes.workload.state();
    assert_eq!(w.execs.len(), 1);
    assert_eq!(w.stops.len(), 1);
    assert_eq!(w.replans, 1, "nothing started Patroni again");
    assert_eq!(
        fakes
            .patroni
            .calls()
            .iter()
            .filter(|c| c.method == "POST")
            .count(),
        1
    );
}

#[test]
fn a_removed_replica_leaves_raft_and_stops_without_a_switchover() {
    let fakes = Fakes {
        workload: FakeWorkload::reachable(),
        patroni: FakePatroni::running(
            "replica",
            &[
                ("postgresql-0", "leader", ME),
                ("postgresql-1", "replica", PEER_ADDRESS),
            ],
        ),
        sql: FakeSql::default(),
    };
    let peer = peers()
        .with_local_app_data(bootstrapped_peers().local_app_data)
        .with_local_unit_data([("address", PEER_ADDRESS)])
        .with_remote_unit("postgresql/0", [("address", ME)]);
    let state = State {
        leader: false,
        relations: vec![peer],
        secrets: vec![users_secret()],
        address: PEER_ADDRESS.into(),
        ..State::default()
    };
    let out = harness("postgresql/1").run(&mut fakes.charm(), Event::UpdateStatus, state);
    assert_eq!(out.state.unit_status, charm::Status::active("Replica"));
    let out = harness("postgresql/1").run(
        &mut fakes.charm(),
        leaving("postgresql/1", "postgresql/0"),
        out.state,
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(fakes.patroni.calls().iter().all(|c| c.method == "GET"));
    let w = fakes.workload.state();
    assert_eq!(w.execs, [raft_remove(PEER_ADDRESS)]);
    assert_eq!(w.stops, ["postgresql"]);
}

#[test]
fn a_lone_unit_detaching_its_storage_stops_patroni_without_touching_raft() {
    let fakes = Fakes {
        patroni: FakePatroni::running("primary", &[("postgresql-0", "leader", ME)]),
        ..Fakes::primary()
    };
    let peer = peers()
        .with_local_app_data(bootstrapped_peers().local_app_data)
        .with_local_unit_data([("address", ME)]);
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        Event::UpdateStatus,
        leader_state(vec![peer]),
    );
    let before = fakes.patroni.calls().len();
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        Event::StorageDetaching(charm::event::StorageEvent {
            name: "pgdata".into(),
            id: "pgdata/0".into(),
            location: None,
        }),
        out.state,
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(fakes.patroni.calls()[before..]
        .iter()
        .all(|c| c.method == "GET"));
    let w = fakes.workload.state();
    assert!(w.execs.is_empty(), "{:?}", w.execs);
    assert_eq!(w.stops, ["postgresql"]);
}

#[test]
fn stop_and_remove_alone_leave_the_workload_alone() {
    for event in [Event::Stop, Event::Remove] {
        let fakes = Fakes::primary();
        let out = harness("postgresql/0").run(
            &mut fakes.charm(),
            event,
            leader_state(vec![bootstrapped_peers()]),
        );
        assert!(out.error.is_none(), "{:?}", out.error);
        let w = fakes.workload.state();
        assert!(w.files.is_empty() && w.stops.is_empty() && w.replans == 0);
        assert!(fakes.patroni.calls().is_empty());
    }
}

#[test]
fn the_leader_drops_a_departed_members_raft_entry_once_its_patroni_is_gone() {
    let third = "127.1.0.3";
    let peer = bootstrapped_peers().with_remote_unit("postgresql/2", [("address", third)]);
    let departed = peer.departed("postgresql/2");

    // Its Patroni still answers: it hands over and leaves by itself.
    let fakes = Fakes::primary();
    fakes.workload.state().running.insert("postgresql".into());
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        departed.clone(),
        leader_state(vec![peer.clone()]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(fakes.workload.state().execs.is_empty());
    // The departing unit is no raft partner any more.
    let yml: serde_json::Value =
        serde_json::from_slice(&fakes.workload.state().files[patroni::CONFIG_PATH].content)
            .unwrap();
    assert_eq!(
        yml["raft"]["partner_addrs"],
        json!([format!("{PEER_ADDRESS}:2222")])
    );

    // Gone: the leader removes it from raft.
    let fakes = Fakes::primary();
    fakes.workload.state().running.insert("postgresql".into());
    fakes.patroni.down(third);
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        departed,
        leader_state(vec![peer.clone()]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(fakes.workload.state().execs, [raft_remove(third)]);
    assert_eq!(out.state.unit_status, charm::Status::active("Primary"));

    // A non-leader leaves it to the leader.
    let fakes = Fakes::primary();
    fakes.workload.state().running.insert("postgresql".into());
    fakes.patroni.down(third);
    let state = State {
        leader: false,
        ..leader_state(vec![peer.clone()])
    };
    let out = harness("postgresql/0").run(&mut fakes.charm(), peer.departed("postgresql/2"), state);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(fakes.workload.state().execs.is_empty());
}

#[test]
fn a_new_leader_gives_joining_units_its_own_address_once_the_bootstrap_member_left() {
    // postgresql/1 leads now; postgresql/0, which bootstrapped the cluster, is gone.
    let fakes = Fakes {
        workload: FakeWorkload::reachable(),
        patroni: FakePatroni::running("primary", &[("postgresql-1", "leader", PEER_ADDRESS)]),
        sql: FakeSql::default(),
    };
    let peer = peers()
        .with_local_app_data(bootstrapped_peers().local_app_data)
        .with_local_unit_data([("address", PEER_ADDRESS)]);
    let state = State {
        address: PEER_ADDRESS.into(),
        ..leader_state(vec![peer.clone()])
    };
    let out = harness("postgresql/1").run(&mut fakes.charm(), Event::LeaderElected, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(
        out.state.relation(0).unwrap().local_app_data[BOOTSTRAP_ADDRESS_KEY],
        PEER_ADDRESS
    );
    let yml: serde_json::Value =
        serde_json::from_slice(&fakes.workload.state().files[patroni::CONFIG_PATH].content)
            .unwrap();
    assert_eq!(yml["raft"]["partner_addrs"], json!([]), "no dead partner");
    assert_eq!(out.state.unit_status, charm::Status::active("Primary"));

    // A follower keeps the bootstrap member as a partner until the leader says otherwise.
    let fakes = Fakes {
        patroni: FakePatroni::running("replica", &[("postgresql-0", "leader", ME)]),
        ..Fakes::primary()
    };
    let state = State {
        leader: false,
        address: PEER_ADDRESS.into(),
        ..leader_state(vec![peer])
    };
    let out = harness("postgresql/1").run(&mut fakes.charm(), Event::UpdateStatus, state);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(
        out.state.relation(0).unwrap().local_app_data[BOOTSTRAP_ADDRESS_KEY],
        ME
    );
}

#[test]
fn a_broken_certificates_relation_turns_tls_off() {
    let fakes = Fakes::primary();
    let certs = Relation::new("certificates", 9, "ssc");
    let out = harness("postgresql/0").run(
        &mut fakes.charm(),
        certs.broken(),
        leader_state(vec![bootstrapped_peers(), certs]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let yml: serde_json::Value =
        serde_json::from_slice(&fakes.workload.state().files[patroni::CONFIG_PATH].content)
            .unwrap();
    assert_eq!(
        yml["postgresql"]["parameters"]["ssl"],
        serde_json::Value::Null
    );
    assert_eq!(out.state.unit_status, charm::Status::active("Primary"));

    // With TLS required, the unit is blocked and says what to do.
    let fakes = Fakes::primary();
    let mut state = leader_state(vec![bootstrapped_peers(), certs_rel()]);
    state
        .config
        .insert("connection_require_tls".into(), json!(true));
    let out = harness("postgresql/0").run(&mut fakes.charm(), certs_rel().broken(), state);
    assert_eq!(out.state.unit_status.name, StatusName::Blocked);
    assert_eq!(
        out.state.unit_status.message,
        "connection_require_tls is set: relate certificates to a tls-certificates provider"
    );
}

fn certs_rel() -> Relation {
    Relation::new("certificates", 9, "ssc")
}

#[test]
fn get_primary_names_the_primary_unit_or_says_there_is_none() {
    let fakes = Fakes::primary();
    let state = State {
        leader: false,
        ..leader_state(vec![bootstrapped_peers()])
    };
    let out = harness("postgresql/0").run_action(
        &mut fakes.charm(),
        "get-primary",
        json!({}),
        state.clone(),
    );
    let action = out.action.unwrap();
    assert_eq!(action.failure, None);
    assert_eq!(action.results["primary"], "postgresql/0");

    let fakes = Fakes {
        patroni: FakePatroni::running("replica", &[("postgresql-1", "replica", PEER_ADDRESS)]),
        ..Fakes::primary()
    };
    let out =
        harness("postgresql/0").run_action(&mut fakes.charm(), "get-primary", json!({}), state);
    let failure = out.action.unwrap().failure.unwrap_or_default();
    assert!(
        failure.contains("the cluster has no primary right now"),
        "{failure}"
    );
}
