//! The hook-tool backend against fake tools: exact argv, output parsing, error mapping.
//!
//! Each test installs a small shell script under every tool name in its own temporary
//! directory. The script records its argv (one line per call, fields separated by
//! `|`) and stdin, copies files named by `k#file=…` arguments, and replays canned
//! output, stderr and exit code from files the test writes.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use charm::backend::{LogLevel, SecretOptions, SecretOwner, SecretRead};
use charm::hooktools::HookTools;
use charm::{Backend, Error, Port, RelationId, Status};

const TOOLS: &[&str] = &[
    "relation-ids",
    "relation-list",
    "relation-get",
    "relation-set",
    "config-get",
    "is-leader",
    "status-get",
    "status-set",
    "application-version-set",
    "juju-log",
    "action-get",
    "action-set",
    "action-log",
    "action-fail",
    "secret-add",
    "secret-get",
    "secret-info-get",
    "secret-set",
    "secret-grant",
    "secret-revoke",
    "secret-remove",
    "secret-ids",
    "open-port",
    "close-port",
    "opened-ports",
    "network-get",
    "storage-list",
    "storage-get",
    "state-get",
    "state-set",
    "state-delete",
];

const SCRIPT: &str = r#"#!/bin/sh
d=$(dirname "$0"); t=$(basename "$0")
line="$t"; for a in "$@"; do line="$line|$a"; done
printf '%s\n' "$line" >> "$d/calls"
cat > "$d/stdin.$t"
for a in "$@"; do
  case "$a" in *'#file='*) k=${a%%#file=*}; f=${a#*#file=}; cp "$f" "$d/copied.$k"; stat -c %a "$f" > "$d/mode.$k";; esac
done
[ -f "$d/out.$t" ] && cat "$d/out.$t"
[ -f "$d/err.$t" ] && cat "$d/err.$t" >&2
[ -f "$d/code.$t" ] && exit "$(cat "$d/code.$t")"
exit 0
"#;

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for t in TOOLS {
            let p = dir.path().join(t);
            std::fs::write(&p, SCRIPT).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self { dir }
    }
    fn tools(&self) -> HookTools {
        HookTools::in_dir(self.dir.path())
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn out(&self, tool: &str, text: &[u8]) {
        std::fs::write(self.path(&format!("out.{tool}")), text).unwrap();
    }
    fn fail(&self, tool: &str, code: i32, stderr: &str) {
        std::fs::write(self.path(&format!("code.{tool}")), code.to_string()).unwrap();
        std::fs::write(self.path(&format!("err.{tool}")), stderr).unwrap();
    }
    fn calls(&self) -> Vec<String> {
        read(&self.path("calls"))
            .lines()
            .map(str::to_string)
            .collect()
    }
    fn last(&self) -> String {
        self.calls().pop().unwrap_or_default()
    }
    fn stdin(&self, tool: &str) -> String {
        read(&self.path(&format!("stdin.{tool}")))
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn rel() -> RelationId {
    RelationId::new("db", 3)
}

fn bag(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn relation_tools_send_ops_argv_and_parse_json() {
    let f = Fake::new();
    let mut t = f.tools();
    f.out("relation-ids", br#"["db:3","db:10"]"#);
    assert_eq!(
        t.relation_ids("db").unwrap(),
        vec![rel(), RelationId::new("db", 10)]
    );
    assert_eq!(f.last(), "relation-ids|db|--format=json");

    f.out("relation-list", br#"["client/0","client/1"]"#);
    assert_eq!(t.relation_list(&rel()).unwrap(), ["client/0", "client/1"]);
    assert_eq!(f.last(), "relation-list|--format=json|-r|db:3");

    f.out("relation-list", br#""client""#);
    assert_eq!(
        t.relation_remote_app(&rel()).unwrap().as_deref(),
        Some("client")
    );
    assert_eq!(f.last(), "relation-list|--format=json|-r|db:3|--app");

    f.out(
        "relation-get",
        br#"{"database":"app","extra-user-roles":"admin"}"#,
    );
    let got = t.relation_get(&rel(), true, "client").unwrap();
    assert_eq!(
        got,
        bag(&[("database", "app"), ("extra-user-roles", "admin")])
    );
    assert_eq!(
        f.last(),
        "relation-get|--format=json|-r|db:3|--app|-|client"
    );
    t.relation_get(&rel(), false, "client/0").unwrap();
    assert_eq!(f.last(), "relation-get|--format=json|-r|db:3|-|client/0");

    t.relation_set(
        &rel(),
        true,
        &bag(&[("endpoints", "10.0.0.1:5432"), ("old", "")]),
    )
    .unwrap();
    assert_eq!(f.last(), "relation-set|-r|db:3|--app|--file|-");
    let sent: serde_json::Value = serde_json::from_str(&f.stdin("relation-set")).unwrap();
    assert_eq!(
        sent,
        serde_json::json!({"endpoints": "10.0.0.1:5432", "old": ""})
    );
}

#[test]
fn config_leader_status_and_log_tools() {
    let f = Fake::new();
    let mut t = f.tools();
    f.out(
        "config-get",
        br#"{"port":5432,"profile":"testing","tls":true}"#,
    );
    let c = t.config_get().unwrap();
    assert_eq!(c["port"], 5432);
    assert_eq!(f.last(), "config-get|--format=json");

    f.out("is-leader", b"true\n");
    assert!(t.is_leader().unwrap());
    assert_eq!(f.last(), "is-leader|--format=json");

    t.status_set(false, &Status::blocked("bad config: port"))
        .unwrap();
    assert_eq!(
        f.last(),
        "status-set|--application=False|blocked|--|bad config: port"
    );
    t.status_set(true, &Status::active("")).unwrap();
    assert_eq!(f.last(), "status-set|--application=True|active");

    f.out(
        "status-get",
        br#"{"status":"waiting","message":"for the primary","status-data":{}}"#,
    );
    assert_eq!(
        t.status_get(false).unwrap(),
        Status::waiting("for the primary")
    );
    assert_eq!(
        f.last(),
        "status-get|--include-data|--format=json|--application=false"
    );
    f.out(
        "status-get",
        br#"{"application-status":{"status":"active","message":"","units":{}}}"#,
    );
    assert_eq!(t.status_get(true).unwrap(), Status::active(""));

    t.juju_log(LogLevel::Warning, "disk nearly full").unwrap();
    assert_eq!(f.last(), "juju-log|--log-level|WARNING|--|disk nearly full");
    t.application_version_set("15.4").unwrap();
    assert_eq!(f.last(), "application-version-set|--|15.4");
}

#[test]
fn action_tools() {
    let f = Fake::new();
    let mut t = f.tools();
    f.out("action-get", br#"{"username":"operator"}"#);
    assert_eq!(t.action_get().unwrap()["username"], "operator");
    assert_eq!(f.last(), "action-get|--format=json");
    t.action_set(&bag(&[("password", "x"), ("a.b", "c")]))
        .unwrap();
    assert_eq!(f.last(), "action-set|a.b=c|password=x");
    t.action_log("halfway").unwrap();
    assert_eq!(f.last(), "action-log|--|halfway");
    t.action_fail("no such user").unwrap();
    assert_eq!(f.last(), "action-fail|--|no such user");
}

#[test]
fn secret_values_travel_in_private_files_not_argv() {
    let f = Fake::new();
    let mut t = f.tools();
    f.out("secret-add", b"secret:cu3r7vvmp25c7b2cnlr0\n");
    let opts = SecretOptions {
        label: Some("tls".into()),
        expire: Some("24h".into()),
        ..Default::default()
    };
    let id = t
        .secret_add(
            &bag(&[("private-key", "-----BEGIN KEY-----s3cr3t")]),
            SecretOwner::Unit,
            &opts,
        )
        .unwrap();
    assert_eq!(id, "secret:cu3r7vvmp25c7b2cnlr0");
    let call = f.last();
    assert!(
        call.starts_with("secret-add|--label|tls|--expire|24h|--owner|unit|private-key#file="),
        "{call}"
    );
    assert!(!call.contains("s3cr3t"), "secret value in argv: {call}");
    assert_eq!(
        read(&f.path("copied.private-key")),
        "-----BEGIN KEY-----s3cr3t"
    );
    assert_eq!(read(&f.path("mode.private-key")).trim(), "600");
    let file = call.rsplit_once("#file=").unwrap().1;
    assert!(
        !Path::new(file).exists(),
        "temporary secret file left behind: {file}"
    );

    t.secret_set(
        "secret:x",
        Some(&bag(&[("password", "n3w")])),
        &SecretOptions::default(),
    )
    .unwrap();
    let call = f.last();
    assert!(
        call.starts_with("secret-set|secret:x|password#file="),
        "{call}"
    );
    assert!(!call.contains("n3w"));

    f.out("secret-get", br#"{"password":"abc"}"#);
    assert_eq!(
        t.secret_get(Some("secret:x"), None, SecretRead::Peek)
            .unwrap(),
        bag(&[("password", "abc")])
    );
    assert_eq!(f.last(), "secret-get|--format=json|secret:x|--peek");
    t.secret_get(Some("secret:x"), Some("db-creds"), SecretRead::Refresh)
        .unwrap();
    assert_eq!(
        f.last(),
        "secret-get|--format=json|secret:x|--label|db-creds|--refresh"
    );
    t.secret_get(None, Some("db-creds"), SecretRead::Tracked)
        .unwrap();
    assert_eq!(f.last(), "secret-get|--format=json|--label|db-creds");

    f.out(
        "secret-info-get",
        br#"{"cu3r7":{"revision":4,"label":"tls","owner":"unit","expiry":"2026-12-01T00:00:00Z"}}"#,
    );
    let info = t.secret_info_get(None, Some("tls")).unwrap();
    assert_eq!((info.id.as_str(), info.revision), ("secret:cu3r7", 4));
    assert_eq!(f.last(), "secret-info-get|--format=json|--label|tls");

    t.secret_grant("secret:x", &rel(), Some("client/0"))
        .unwrap();
    assert_eq!(
        f.last(),
        "secret-grant|--relation|3|--unit|client/0|secret:x"
    );
    t.secret_revoke("secret:x", &rel(), None).unwrap();
    assert_eq!(f.last(), "secret-revoke|--relation|3|secret:x");
    t.secret_remove("secret:x", Some(2)).unwrap();
    assert_eq!(f.last(), "secret-remove|secret:x|--revision|2");
    f.out("secret-ids", br#"["secret:x"]"#);
    assert_eq!(t.secret_ids().unwrap(), ["secret:x"]);
}

#[test]
fn bad_secret_keys_are_refused_before_any_tool_runs() {
    let f = Fake::new();
    let mut t = f.tools();
    let err = t
        .secret_add(
            &bag(&[("Bad_Key", "v")]),
            SecretOwner::Unit,
            &SecretOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(f.calls().is_empty());
}

#[test]
fn ports_network_storage_and_state_tools() {
    let f = Fake::new();
    let mut t = f.tools();
    t.open_port(Port::tcp(5432)).unwrap();
    assert_eq!(f.last(), "open-port|5432/tcp");
    t.close_port(Port::Udp(8000, 8999)).unwrap();
    assert_eq!(f.last(), "close-port|8000-8999/udp");
    f.out("opened-ports", br#"["5432/tcp","icmp"]"#);
    assert_eq!(t.opened_ports().unwrap(), vec![Port::tcp(5432), Port::Icmp]);

    f.out("network-get", br#"{"bind-addresses":[{"mac-address":"","interface-name":"lo","addresses":[{"hostname":"","value":"127.0.5.7","cidr":"127.0.5.7/32"}]}],"egress-subnets":["127.0.5.7/32"],"ingress-addresses":["127.0.5.7"]}"#);
    let n = t.network_get("database", Some(&rel())).unwrap();
    assert_eq!(n.bind_address(), Some("127.0.5.7"));
    assert_eq!(f.last(), "network-get|--format=json|-r|db:3|database");

    f.out("storage-list", br#"["pgdata/0"]"#);
    assert_eq!(t.storage_list("pgdata").unwrap(), ["pgdata/0"]);
    f.out(
        "storage-get",
        br#"{"kind":"filesystem","location":"/var/lib/postgresql/data"}"#,
    );
    assert_eq!(
        t.storage_get("pgdata/0").unwrap().location,
        "/var/lib/postgresql/data"
    );
    assert_eq!(f.last(), "storage-get|--format=json|-s|pgdata/0");

    f.out("state-get", br#"{"k":"v"}"#);
    assert_eq!(t.state_get().unwrap(), bag(&[("k", "v")]));
    t.state_set(&bag(&[("k", "w")])).unwrap();
    assert_eq!(f.last(), "state-set|--file|-");
    assert_eq!(f.stdin("state-set"), r#"{"k":"w"}"#);
    t.state_delete("k").unwrap();
    assert_eq!(f.last(), "state-delete|k");
}

#[test]
fn failures_map_to_typed_errors() {
    let f = Fake::new();
    let mut t = f.tools();
    f.fail(
        "relation-get",
        2,
        "ERROR invalid value \"db:9\" for option -r: relation not found\n",
    );
    let err = t
        .relation_get(&RelationId::new("db", 9), false, "x/0")
        .unwrap_err();
    assert!(
        matches!(&err, Error::RelationNotFound { relation } if relation == "db:9"),
        "{err}"
    );

    f.fail("secret-get", 1, "ERROR secret \"secret:nope\" not found\n");
    let err = t
        .secret_get(Some("secret:nope"), None, SecretRead::Tracked)
        .unwrap_err();
    assert!(
        matches!(&err, Error::SecretNotFound { secret } if secret == "secret:nope"),
        "{err}"
    );

    f.fail("relation-set", 1, "ERROR cannot write relation settings\n");
    let err = t
        .relation_set(&rel(), true, &bag(&[("a", "b")]))
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");

    f.fail("secret-set", 1, "ERROR permission denied\n");
    let err = t
        .secret_set("secret:x", None, &SecretOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");

    f.fail("status-set", 2, "ERROR invalid status \"bogus\"\n");
    let err = t.status_set(false, &Status::active("x")).unwrap_err();
    assert!(
        matches!(&err, Error::Model { tool, code: 2, stderr } if tool == "status-set" && stderr.contains("invalid status")),
        "{err}"
    );

    let mut missing = HookTools::in_dir("/nonexistent/tools");
    let err = missing.is_leader().unwrap_err();
    assert!(
        matches!(&err, Error::ToolSpawn { tool, .. } if tool == "is-leader"),
        "{err}"
    );
}

#[test]
fn malformed_output_is_a_typed_error_naming_the_tool() {
    let f = Fake::new();
    let mut t = f.tools();
    f.out("relation-get", b"{not json");
    let err = t.relation_get(&rel(), false, "x/0").unwrap_err();
    assert!(
        matches!(&err, Error::MalformedToolOutput { tool, .. } if tool == "relation-get"),
        "{err}"
    );

    f.out("relation-get", br#"{"port":5432}"#);
    let err = t.relation_get(&rel(), false, "x/0").unwrap_err();
    assert!(err.to_string().contains("\"port\""), "{err}");

    f.out("relation-get", b"{\"k\":\"\xff\xfe\"}");
    let err = t.relation_get(&rel(), false, "x/0").unwrap_err();
    assert!(
        matches!(&err, Error::MalformedToolOutput { reason, .. } if reason.contains("UTF-8")),
        "{err}"
    );

    f.out("is-leader", b"\"yes\"");
    assert!(matches!(
        t.is_leader().unwrap_err(),
        Error::MalformedToolOutput { .. }
    ));

    f.out("relation-ids", br#"["db"]"#);
    assert!(matches!(
        t.relation_ids("db").unwrap_err(),
        Error::MalformedToolOutput { .. }
    ));
}

// ------------------------------------------------------------------ the model's rules

fn ctx_env(unit: &str, event: charm::Event) -> charm::HookEnv {
    charm::HookEnv::from_vars(charm::event::juju_vars(unit, &event)).unwrap()
}

#[test]
fn non_leader_app_bag_write_is_refused_before_any_tool_runs() {
    let f = Fake::new();
    f.out("is-leader", b"false");
    let mut t = f.tools();
    let mut ctx = charm::Context::new(&mut t, ctx_env("pg/1", charm::Event::ConfigChanged));
    let err = ctx
        .set_app_data(&rel(), &bag(&[("endpoints", "x")]))
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    let err = ctx
        .set_data(&rel(), "client", &bag(&[("k", "v")]))
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    let err = ctx
        .add_secret(
            &bag(&[("password", "p")]),
            SecretOwner::Application,
            &SecretOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert_eq!(
        f.calls(),
        ["is-leader|--format=json"],
        "only the (cached) leadership check ran"
    );

    ctx.set_data(&rel(), "pg/1", &bag(&[("address", "127.0.0.2")]))
        .unwrap();
    assert_eq!(f.last(), "relation-set|-r|db:3|--file|-");
}

#[test]
fn action_only_tools_and_bad_result_keys_are_refused_up_front() {
    let f = Fake::new();
    let mut t = f.tools();
    let mut ctx = charm::Context::new(&mut t, ctx_env("pg/0", charm::Event::Start));
    let err = ctx.set_results(&serde_json::json!({"a": "b"})).unwrap_err();
    assert!(
        err.to_string().contains("only available in actions"),
        "{err}"
    );
    drop(ctx);
    let ev = charm::Event::Action {
        name: "get-password".into(),
        id: "1".into(),
    };
    let mut ctx = charm::Context::new(&mut t, ctx_env("pg/0", ev));
    for bad in [
        serde_json::json!({"stdout": "x"}),
        serde_json::json!({"Bad_Key": "x"}),
        serde_json::json!("flat"),
    ] {
        assert!(
            matches!(
                ctx.set_results(&bad).unwrap_err(),
                Error::InvalidInput { .. }
            ),
            "{bad}"
        );
    }
    assert!(f.calls().is_empty());
    ctx.set_results(&serde_json::json!({"password": "x", "nested": {"n": 1}}))
        .unwrap();
    assert_eq!(f.last(), "action-set|nested.n=1|password=x");
}
