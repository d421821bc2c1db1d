//! The pgbouncer charm under the SDK's harness, with the in-memory workload and psql:
//! the backend request, the auth user and its function, the rendered files, client
//! relations, config validation, TLS required without a certificate, the backend going
//! away. The real PgBouncer runs in tests/tests/pgbouncer.rs.

use charm::testing::{Harness, Relation, Secret, State};
use charm::workload::FakeWorkload;
use charm::{Event, SecretOwner, StatusName};
use interfaces::sql::FakeSql;
use pgbouncer_charm::{
    digest, PgBouncer, DATABASES_KEY, INTERNAL_KEY, INTERNAL_LABEL, PEER, SERVED_KEY,
};
use serde_json::json;

const CHARMCRAFT: &str = include_str!("../../../metadata/pgbouncer/charmcraft.yaml");
const ME: &str = "127.1.0.9";
const AUTH: &str = "pgbouncer_auth_relation_id_3";

fn harness() -> Harness {
    Harness::new("pgbouncer/0")
        .with_config_yaml(CHARMCRAFT)
        .unwrap()
}

#[derive(Clone)]
struct Fakes {
    workload: FakeWorkload,
    sql: FakeSql,
}

impl Fakes {
    fn new() -> Self {
        let workload = FakeWorkload::reachable();
        workload.state().exec_outputs.insert(
            "pgbouncer --version".into(),
            "PgBouncer 1.18.0\nlibevent 2.1.12-stable\n".into(),
        );
        let sql = FakeSql::default();
        sql.output_for("proname = 'get_auth'", "1\n");
        Self { workload, sql }
    }

    fn charm(&self) -> PgBouncer {
        PgBouncer::with_backends(Box::new(self.workload.clone()), Box::new(self.sql.clone()))
            .with_cpus(2)
    }

    fn file(&self, path: &str) -> String {
        String::from_utf8(self.workload.state().files[path].content.clone()).unwrap()
    }
}

fn backend() -> Relation {
    Relation::new("backend-database", 3, "postgresql").with_remote_app_data([
        ("database", "pgbouncer"),
        ("endpoints", "127.1.0.2:5432"),
        ("read-only-endpoints", "127.1.0.3:5432,127.1.0.4:5432"),
        ("version", "15.18"),
        ("secret-user", "secret:backend-user"),
        ("secret-tls", "secret:backend-tls"),
    ])
}

fn backend_secrets() -> Vec<Secret> {
    vec![
        Secret::granted(
            "secret:backend-user",
            [
                ("username", "relation_id_3"),
                ("password", "backendpw"),
                ("auth-username", AUTH),
                ("auth-password", "authpw-from-the-backend"),
            ],
        ),
        Secret::granted(
            "secret:backend-tls",
            [
                ("tls", "True"),
                ("tls-ca", "-----BEGIN CERTIFICATE-----\nCA\n"),
            ],
        ),
    ]
}

fn internal() -> Secret {
    Secret::owned(
        "secret:internal",
        SecretOwner::Application,
        Some(INTERNAL_LABEL),
        [
            ("admin-password", "d".repeat(32)),
            ("stats-password", "s".repeat(32)),
            ("admin-verifier", "SCRAM-SHA-256$4096:x$y:z".into()),
            ("stats-verifier", "SCRAM-SHA-256$4096:u$v:w".into()),
        ],
    )
}

fn state(leader: bool, relations: Vec<Relation>) -> State {
    let mut secrets = backend_secrets();
    secrets.push(internal());
    State {
        leader,
        relations,
        secrets,
        address: ME.into(),
        ..State::default()
    }
}

fn ready_peers() -> Relation {
    Relation::new(PEER, 0, "pgbouncer").with_local_app_data([(INTERNAL_KEY, "secret:internal")])
}

#[test]
fn without_a_backend_the_unit_is_blocked_and_nothing_runs() {
    let fakes = Fakes::new();
    let out = harness().run(
        &mut fakes.charm(),
        Event::Install,
        state(true, vec![Relation::new(PEER, 0, "pgbouncer")]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.unit_status.name, StatusName::Blocked);
    assert_eq!(
        out.state.unit_status.message,
        "waiting for backend database relation to initialise"
    );
    assert!(fakes.workload.state().layers.is_empty());
}

#[test]
fn the_leader_asks_the_backend_and_waits_for_its_answer() {
    let fakes = Fakes::new();
    let rel = Relation::new("backend-database", 3, "postgresql");
    let out = harness().run(
        &mut fakes.charm(),
        rel.created(),
        state(true, vec![Relation::new(PEER, 0, "pgbouncer"), rel]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let asked = &out.state.relation(3).unwrap().local_app_data;
    assert_eq!(asked["database"], "pgbouncer");
    assert_eq!(asked["extra-user-roles"], "CREATEDB,CREATEROLE");
    assert_eq!(asked["auth-function"], "true");
    assert_eq!(
        out.state.unit_status.message,
        "backend database relation not ready"
    );
}

#[test]
fn backend_credentials_make_the_internal_users_and_the_files() {
    let fakes = Fakes::new();
    let out = harness().run(
        &mut fakes.charm(),
        backend().changed(None),
        State {
            secrets: backend_secrets(),
            ..state(true, vec![Relation::new(PEER, 0, "pgbouncer"), backend()])
        },
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    // The internal secret: console users' passwords and SCRAM verifiers.
    let secret = out
        .state
        .secret_by_label(INTERNAL_LABEL)
        .expect("internal secret");
    let content = secret.latest_content();
    assert_eq!(content["admin-password"].len(), 32);
    assert!(content["admin-verifier"].starts_with("SCRAM-SHA-256$4096:"));
    // No SQL: the backend made the auth user and its function.
    assert!(fakes.sql.calls().is_empty());
    // Files: 0600, owned by postgres; the auth file holds the auth user's password.
    let w = fakes.workload.state();
    for (path, f) in &w.files {
        assert_eq!(f.mode, 0o600, "{path}");
        assert_eq!(f.user, "postgres", "{path}");
    }
    drop(w);
    let auth = fakes.file("/var/lib/pgbouncer/userlist.txt");
    assert!(auth.contains(&format!("\"{AUTH}\" \"authpw-from-the-backend\"")));
    assert!(auth.contains("\"pgbouncer_admin_pgbouncer\" \"SCRAM-SHA-256$"));
    assert!(!auth.contains(&content["admin-password"]));
    let ini = fakes.file("/var/lib/pgbouncer/instance_0/pgbouncer.ini");
    assert!(ini.contains("listen_addr = 127.1.0.9\n"));
    assert!(ini.contains("auth_type = scram-sha-256\n"));
    assert!(ini.contains(&format!(
        "auth_query = SELECT username, password FROM \"{AUTH}\".get_auth($1)"
    )));
    assert!(ini.contains("server_tls_sslmode = verify-full\n"));
    assert!(!ini.contains("md5"));
    assert!(
        !ini.contains("authpw-from-the-backend"),
        "no password in pgbouncer.ini"
    );
    assert_eq!(
        fakes.file("/var/lib/pgbouncer/tls/backend-ca.pem"),
        "-----BEGIN CERTIFICATE-----\nCA\n"
    );
    assert!(fakes.workload.is_running_fake("pgbouncer_1"));
    assert_eq!(out.state.unit_status.name, StatusName::Active);
    assert_eq!(out.state.workload_version.as_deref(), Some("1.18.0"));
    for (_, line) in &out.logs {
        assert!(!line.contains("authpw"), "password logged: {line}");
    }
}

#[test]
fn a_backend_without_the_auth_user_is_not_ready() {
    let fakes = Fakes::new();
    let mut st = state(true, vec![ready_peers(), backend()]);
    st.secrets[0] = Secret::granted(
        "secret:backend-user",
        [("username", "relation_id_3"), ("password", "backendpw")],
    );
    let out = harness().run(&mut fakes.charm(), Event::UpdateStatus, st);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.unit_status.name, StatusName::Blocked);
    assert!(out
        .state
        .unit_status
        .message
        .starts_with("backend database relation not ready: no auth user yet"));
    assert!(fakes.workload.state().layers.is_empty());
}

trait Running {
    fn is_running_fake(&self, svc: &str) -> bool;
}
impl Running for FakeWorkload {
    fn is_running_fake(&self, svc: &str) -> bool {
        self.state().running.contains(svc)
    }
}

#[test]
fn a_non_leader_waits_for_the_leader_then_serves_the_same() {
    let fakes = Fakes::new();
    let out = harness().run(
        &mut fakes.charm(),
        backend().changed(None),
        state(false, vec![Relation::new(PEER, 0, "pgbouncer"), backend()]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.unit_status.name, StatusName::Waiting);
    assert!(fakes.sql.calls().is_empty());
    let out = harness().run(
        &mut fakes.charm(),
        Event::UpdateStatus,
        state(false, vec![ready_peers(), backend()]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(fakes.sql.calls().is_empty(), "only the leader runs SQL");
    assert_eq!(out.state.unit_status.name, StatusName::Active);
    assert!(fakes.workload.is_running_fake("pgbouncer_0"));
}

fn client(id: u32, data: &[(&str, &str)]) -> Relation {
    Relation::new("database", id, "app").with_remote_app_data(data.iter().copied())
}

#[test]
fn a_client_gets_a_database_a_user_and_pgbouncer_endpoints() {
    let fakes = Fakes::new();
    let rel = client(7, &[("database", "appdb")]);
    let out = harness().run(
        &mut fakes.charm(),
        rel.changed(None),
        state(true, vec![ready_peers(), backend(), rel]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let calls = fakes.sql.calls();
    assert!(calls[0].script.contains("CREATE DATABASE %I"));
    assert!(calls[0].script.contains("'relation_id_7'"));
    assert!(calls[0]
        .script
        .contains("GRANT \"relation_id_7\" TO \"relation_id_3\""));
    assert_eq!(calls[1].database, "appdb");
    assert!(calls[1].script.contains("proname = 'get_auth'"));
    let peer = &out.state.relation(0).unwrap().local_app_data;
    assert_eq!(peer[DATABASES_KEY], json!({"7": "appdb"}).to_string());
    let ini = fakes.file("/var/lib/pgbouncer/instance_1/pgbouncer.ini");
    assert!(ini.contains(&format!(
        "appdb = host=127.1.0.2 port=5432 dbname=appdb auth_user={AUTH}\n"
    )));
    assert!(ini.contains("appdb_readonly = host=127.1.0.3,127.1.0.4 port=5432"));
    // One unit: the answer goes out in the same hook.
    let answer = &out.state.relation(7).unwrap().local_app_data;
    assert_eq!(answer["database"], "appdb");
    assert_eq!(answer["endpoints"], "127.1.0.9:6432");
    assert_eq!(answer["version"], "15.18");
    let secret_id = &answer["secret-user"];
    let secret = out
        .state
        .secrets
        .iter()
        .find(|s| &s.id == secret_id)
        .unwrap();
    let content = secret.latest_content();
    assert_eq!(content["username"], "relation_id_7");
    assert!(content["uris"].starts_with("postgresql://relation_id_7:"));
    assert!(content["uris"].ends_with("@127.1.0.9:6432/appdb"));
    assert!(!answer.values().any(|v| v.contains(&content["password"])));
    // The verifier sent to PostgreSQL is of that password.
    assert!(!calls[0].script.contains(&content["password"]));
    assert_eq!(
        out.state.relation(0).unwrap().local_unit_data[SERVED_KEY],
        digest(&json!({"7": "appdb"}).to_string())
    );
}

#[test]
fn the_answer_waits_until_every_unit_serves_the_database() {
    let fakes = Fakes::new();
    let rel = client(7, &[("database", "appdb")]);
    let peers = ready_peers().with_remote_unit("pgbouncer/1", [("address", "127.1.0.10")]);
    let out = harness().run(
        &mut fakes.charm(),
        rel.changed(None),
        state(true, vec![peers.clone(), backend(), rel.clone()]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(out.state.relation(7).unwrap().local_app_data.is_empty());
    assert_eq!(out.state.unit_status.name, StatusName::Waiting);
    // The peer reports serving the map: the answer lists both units.
    let mut st = out.state.clone();
    let served = digest(&json!({"7": "appdb"}).to_string());
    st.relations[0] = st.relations[0].clone().with_remote_unit(
        "pgbouncer/1",
        [("address", "127.1.0.10"), (SERVED_KEY, served.as_str())],
    );
    let out = harness().run(&mut fakes.charm(), peers.changed(Some("pgbouncer/1")), st);
    assert!(out.error.is_none(), "{:?}", out.error);
    let answer = &out.state.relation(7).unwrap().local_app_data;
    assert_eq!(answer["endpoints"], "127.1.0.10:6432,127.1.0.9:6432");
    assert_eq!(out.state.unit_status.name, StatusName::Active);
}

#[test]
fn a_bad_client_request_is_refused_naming_it() {
    let fakes = Fakes::new();
    let rel = client(
        7,
        &[("database", "appdb"), ("extra-user-roles", "SUPERUSER")],
    );
    let out = harness().run(
        &mut fakes.charm(),
        rel.changed(None),
        state(true, vec![ready_peers(), backend(), rel]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.unit_status.name, StatusName::Blocked);
    assert_eq!(
        out.state.unit_status.message,
        "database:7 from app: extra-user-roles SUPERUSER is not allowed (allowed: CREATEDB, CREATEROLE)"
    );
    assert!(fakes.sql.calls().is_empty());
    assert!(out.state.relation(7).unwrap().local_app_data.is_empty());
}

#[test]
fn invalid_config_blocks_naming_the_option_and_keeps_the_files() {
    for (key, value, message) in [
        (
            "pool_mode",
            json!("sometimes"),
            "invalid config pool_mode=sometimes: must be one of session, transaction, statement",
        ),
        (
            "listen_port",
            json!(70000),
            "invalid config listen_port=70000: must be between 1 and 65535",
        ),
    ] {
        let fakes = Fakes::new();
        let mut st = state(true, vec![ready_peers(), backend()]);
        st.config.insert(key.into(), value);
        let out = harness().run(&mut fakes.charm(), Event::ConfigChanged, st);
        assert_eq!(out.state.unit_status.name, StatusName::Blocked, "{key}");
        assert_eq!(out.state.unit_status.message, message);
        assert!(fakes.workload.state().files.is_empty(), "nothing rendered");
    }
}

#[test]
fn a_pool_mode_change_reloads_the_workers_without_restarting_them() {
    let fakes = Fakes::new();
    let out = harness().run(
        &mut fakes.charm(),
        Event::ConfigChanged,
        state(true, vec![ready_peers(), backend()]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let mut st = out.state.clone();
    st.config.insert("pool_mode".into(), json!("transaction"));
    let out = harness().run(&mut fakes.charm(), Event::ConfigChanged, st);
    assert!(out.error.is_none(), "{:?}", out.error);
    let ini = fakes.file("/var/lib/pgbouncer/instance_0/pgbouncer.ini");
    assert!(ini.contains("pool_mode = transaction\n"));
    let w = fakes.workload.state();
    assert_eq!(
        w.signals,
        [
            ("SIGHUP".to_string(), "pgbouncer_0".to_string()),
            ("SIGHUP".to_string(), "pgbouncer_1".to_string())
        ]
    );
    assert!(w.restarts.is_empty());
    // The layer is unchanged, so replan restarts nothing.
    assert_eq!(w.layers[0].1, w.layers[1].1);
}

#[test]
fn fewer_workers_stop_the_extra_ones() {
    let fakes = Fakes::new();
    let mut st = state(true, vec![ready_peers(), backend()]);
    st.config.insert("workers".into(), json!(3));
    let out = harness().run(&mut fakes.charm(), Event::ConfigChanged, st);
    assert!(fakes.workload.is_running_fake("pgbouncer_2"));
    let mut st = out.state.clone();
    st.config.insert("workers".into(), json!(1));
    let out = harness().run(&mut fakes.charm(), Event::ConfigChanged, st);
    assert!(out.error.is_none(), "{:?}", out.error);
    let w = fakes.workload.state();
    assert!(w.running.contains("pgbouncer_0"));
    assert!(!w.running.contains("pgbouncer_1") && !w.running.contains("pgbouncer_2"));
    assert!(w.layers.last().unwrap().1.contains("startup: disabled"));
}

#[test]
fn tls_required_without_certificates_serves_nobody() {
    let fakes = Fakes::new();
    let mut st = state(true, vec![ready_peers(), backend()]);
    st.config
        .insert("client_tls_sslmode".into(), json!("require"));
    let out = harness().run(&mut fakes.charm(), Event::ConfigChanged, st);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.unit_status.name, StatusName::Blocked);
    assert_eq!(
        out.state.unit_status.message,
        "client_tls_sslmode=require: relate certificates to a tls-certificates provider"
    );
    assert!(fakes.workload.state().running.is_empty());
}

#[test]
fn removing_the_backend_blocks_stops_and_forgets() {
    let fakes = Fakes::new();
    let out = harness().run(
        &mut fakes.charm(),
        Event::ConfigChanged,
        state(true, vec![ready_peers(), backend()]),
    );
    assert!(fakes.workload.is_running_fake("pgbouncer_0"));
    let out = harness().run(&mut fakes.charm(), backend().broken(), out.state);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.unit_status.name, StatusName::Blocked);
    assert_eq!(
        out.state.unit_status.message,
        "waiting for backend database relation to initialise"
    );
    assert!(fakes.workload.state().running.is_empty());
    assert_eq!(fakes.file("/var/lib/pgbouncer/userlist.txt"), "");
    assert!(
        fakes.sql.calls().is_empty(),
        "the backend drops the auth user"
    );
}

#[test]
fn a_departed_client_loses_its_user() {
    let fakes = Fakes::new();
    let rel = client(7, &[("database", "appdb")]);
    let peers = ready_peers().with_local_app_data([
        (INTERNAL_KEY, "secret:internal"),
        (DATABASES_KEY, r#"{"7":"appdb"}"#),
    ]);
    let out = harness().run(
        &mut fakes.charm(),
        rel.broken(),
        state(true, vec![peers, backend(), rel]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    let scripts: Vec<String> = fakes.sql.calls().into_iter().map(|c| c.script).collect();
    assert!(scripts
        .iter()
        .any(|s| s.contains("DROP ROLE IF EXISTS \"relation_id_7\"")));
    assert_eq!(
        out.state.relation(0).unwrap().local_app_data[DATABASES_KEY],
        "{}"
    );
}

#[test]
fn a_revoked_backend_secret_while_the_relation_goes_blocks_without_failing() {
    let fakes = Fakes::new();
    let out = harness().run(
        &mut fakes.charm(),
        Event::ConfigChanged,
        state(true, vec![ready_peers(), backend()]),
    );
    assert!(fakes.workload.is_running_fake("pgbouncer_0"));
    // The backend revoked its secrets before this unit's departed hook ran.
    let mut st = out.state.clone();
    st.secrets.retain(|s| !s.id.starts_with("secret:backend"));
    let out = harness().run(&mut fakes.charm(), backend().departed("postgresql/0"), st);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.unit_status.name, StatusName::Blocked);
    assert_eq!(
        out.state.unit_status.message,
        "backend database relation not ready"
    );
    assert!(fakes.workload.state().running.is_empty());
}

#[test]
fn a_database_without_the_auth_function_is_refused() {
    let fakes = Fakes::new();
    fakes.sql.state().outputs.clear();
    let rel = client(7, &[("database", "olddb")]);
    let out = harness().run(
        &mut fakes.charm(),
        rel.changed(None),
        state(true, vec![ready_peers(), backend(), rel]),
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.state.unit_status.name, StatusName::Blocked);
    assert_eq!(
        out.state.unit_status.message,
        "Failed to initialize relation database"
    );
    assert!(out
        .logs
        .iter()
        .any(|(_, l)| l.contains("database olddb has no pgbouncer_auth_relation_id_3.get_auth")));
    assert!(out.state.relation(7).unwrap().local_app_data.is_empty());
    assert!(!out
        .state
        .relation(0)
        .unwrap()
        .local_app_data
        .contains_key(DATABASES_KEY));
}
