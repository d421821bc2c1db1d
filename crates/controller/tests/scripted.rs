//! End-to-end tests of the controller with scripted (`dispatch` shell) charms.

mod common;

use std::time::Duration;

use common::{charm, no_config, Harness};
use serde_json::json;

const PEERS: &str = "peers:\n  cluster:\n    interface: demo-cluster\n";

#[test]
fn deploy_runs_hooks_in_juju_order_with_one_leader() {
    let h = Harness::new();
    let body = r#"
case "$JUJU_DISPATCH_PATH" in
  hooks/start) status-set active "leader=$(is-leader)" ;;
esac"#;
    let c = charm(
        h.home.path(),
        "demo",
        PEERS,
        "options:\n  greeting:\n    type: string\n    default: hi\n",
        "",
        body,
    );
    h.ctl.deploy("demo", &c, 3, no_config()).unwrap();
    h.settle();
    let leader = h.unit_events("demo/0");
    assert_eq!(
        &leader[..5],
        [
            "install",
            "cluster-relation-created",
            "leader-elected",
            "config-changed",
            "start"
        ],
        "{leader:?}"
    );
    for u in ["demo/1", "demo/2"] {
        let ev = h.unit_events(u);
        assert_eq!(
            &ev[..5],
            [
                "install",
                "cluster-relation-created",
                "leader-settings-changed",
                "config-changed",
                "start"
            ],
            "{u}: {ev:?}"
        );
        // Peer joined then changed for each other unit.
        for other in ["demo/0", "demo/1", "demo/2"].iter().filter(|o| *o != &u) {
            let j = ev
                .iter()
                .position(|e| e == &format!("cluster-relation-joined:{other}"))
                .unwrap_or_else(|| panic!("{u} never joined {other}: {ev:?}"));
            let c = ev
                .iter()
                .position(|e| e == &format!("cluster-relation-changed:{other}"))
                .unwrap();
            assert!(j < c);
        }
    }
    assert_eq!(
        h.workload("demo/0"),
        ("active".into(), "leader=True".into())
    );
    assert_eq!(
        h.workload("demo/1"),
        ("active".into(), "leader=False".into())
    );
    let st = h.ctl.status().unwrap();
    assert_eq!(
        st.applications[0].units.iter().filter(|u| u.leader).count(),
        1
    );
    // Config change → config-changed on every unit, nothing else.
    let before = h.events().len();
    h.ctl
        .set_config("demo", [("greeting".to_string(), Some(json!("yo")))].into())
        .unwrap();
    h.wait_until("config-changed everywhere", Duration::from_secs(20), |h| {
        h.events().len() >= before + 3
    });
    h.settle();
    let new: Vec<String> = h.events()[before..].to_vec();
    assert!(
        new.iter().all(|l| l.contains("hooks/config-changed")),
        "{new:?}"
    );
}

#[test]
fn leadership_moves_when_the_leader_is_removed() {
    let h = Harness::new();
    let c = charm(h.home.path(), "demo", PEERS, "", "", "");
    h.ctl.deploy("demo", &c, 3, no_config()).unwrap();
    h.settle();
    h.ctl.remove_unit("demo/0").unwrap();
    h.wait_until("demo/0 gone", Duration::from_secs(30), |h| {
        h.ctl.status().unwrap().applications[0].units.len() == 2
    });
    h.settle();
    let ev0 = h.unit_events("demo/0");
    let tail: Vec<&String> = ev0.iter().rev().take(2).collect();
    assert_eq!(tail, ["remove", "stop"], "{ev0:?}");
    assert!(h
        .unit_events("demo/1")
        .contains(&"leader-elected".to_string()));
    assert!(h
        .unit_events("demo/2")
        .contains(&"cluster-relation-departed:demo/0".to_string()));
}

const PROV: &str = "provides:\n  db:\n    interface: demo-db\n";
const REQ: &str = "requires:\n  db:\n    interface: demo-db\n";

#[test]
fn relation_lifecycle_exchanges_data_and_skips_own_writes() {
    let h = Harness::new();
    let prov = charm(
        h.home.path(),
        "prov",
        PROV,
        "options:\n  greeting:\n    type: string\n    default: hello\n",
        "",
        r#"
case "$JUJU_DISPATCH_PATH" in
  hooks/db-relation-joined)
    relation-set "host=$JUJU_UNIT_NAME"
    if [ "$(is-leader)" = True ]; then relation-set --app app-key=from-prov; fi ;;
  hooks/db-relation-changed)
    v=$(relation-get user "$JUJU_REMOTE_UNIT")
    [ -n "$v" ] && status-set active "got $v" ;;
  hooks/config-changed)
    for r in $(relation-ids db); do relation-set -r "$r" "greeting=$(config-get greeting)"; done ;;
esac"#,
    );
    let req = charm(
        h.home.path(),
        "req",
        REQ,
        "",
        "",
        r#"
case "$JUJU_DISPATCH_PATH" in
  hooks/db-relation-joined) relation-set user=bob; echo "$JUJU_UNIT_NAME list-joined:$(relation-list | tr '\n' ,)" >> "$WARD_TEST_EVENTS.lists" ;;
  hooks/db-relation-departed) echo "$JUJU_UNIT_NAME list-departed:$(relation-list | tr '\n' ,)" >> "$WARD_TEST_EVENTS.lists" ;;
  hooks/db-relation-changed)
    status-set active "host=$(relation-get host "$JUJU_REMOTE_UNIT") app=$(relation-get --app app-key prov) greeting=$(relation-get - "$JUJU_REMOTE_UNIT" --format=json | sed -n 's/.*"greeting":"\([^"]*\)".*/\1/p')" ;;
  hooks/db-relation-broken) status-set blocked "no db: $(relation-ids db | wc -l)" ;;
esac"#,
    );
    h.ctl.deploy("prov", &prov, 1, no_config()).unwrap();
    h.ctl.deploy("req", &req, 1, no_config()).unwrap();
    h.settle();
    let rel = h.ctl.integrate("prov", "req").unwrap();
    h.settle();
    assert_eq!(h.workload("prov/0"), ("active".into(), "got bob".into()));
    assert_eq!(
        h.workload("req/0"),
        (
            "active".into(),
            "host=prov/0 app=from-prov greeting=".into()
        )
    );
    assert_eq!(h.ctl.relation_data(rel, "req/0").unwrap()["user"], "bob");
    assert_eq!(
        h.ctl.relation_data(rel, "req/0").unwrap()["private-address"]
            .split('.')
            .next(),
        Some("127")
    );
    let pe = h.unit_events("prov/0");
    let i = pe.iter().position(|e| e == "db-relation-created").unwrap();
    assert_eq!(pe[i + 1], "db-relation-joined:req/0", "{pe:?}");
    assert_eq!(pe[i + 2], "db-relation-changed:req/0", "{pe:?}");

    // The provider writes: only the requirer hears about it.
    let before = h.events().len();
    h.ctl
        .set_config(
            "prov",
            [("greeting".to_string(), Some(json!("howdy")))].into(),
        )
        .unwrap();
    h.wait_until("greeting reaches req", Duration::from_secs(20), |h| {
        h.workload("req/0").1.ends_with("greeting=howdy")
    });
    h.settle();
    let new: Vec<String> = h.events()[before..].to_vec();
    assert_eq!(
        new,
        [
            "prov/0 hooks/config-changed ",
            "req/0 hooks/db-relation-changed prov/0"
        ]
    );

    h.ctl.remove_relation(rel).unwrap();
    h.settle();
    for (u, other) in [("prov/0", "req/0"), ("req/0", "prov/0")] {
        let ev = h.unit_events(u);
        let n = ev.len();
        assert_eq!(
            &ev[n - 2..],
            [
                format!("db-relation-departed:{other}"),
                "db-relation-broken".to_string()
            ],
            "{u}: {ev:?}"
        );
    }
    assert_eq!(h.workload("req/0"), ("blocked".into(), "no db: 0".into()));
    let lists = std::fs::read_to_string(format!("{}.lists", h.events.display())).unwrap();
    assert_eq!(lists, "req/0 list-joined:prov/0,\nreq/0 list-departed:\n");
    assert!(h.ctl.status().unwrap().relations.is_empty());
}

#[test]
fn secret_lifecycle_grant_get_change_peek_refresh_revoke_remove() {
    let h = Harness::new();
    let owner = charm(
        h.home.path(),
        "owner",
        "provides:\n  s:\n    interface: sec\n",
        "",
        "rotate: {}\nrevoke: {}\nremove: {}\n",
        r#"
case "$JUJU_DISPATCH_PATH" in
  hooks/s-relation-joined)
    if [ "$(is-leader)" = True ]; then
      id=$(secret-add --label mine --description demo password=one)
      secret-grant "$id" -r "$JUJU_RELATION_ID"
      relation-set --app "secret-id=$id"
      state-set "sid=$id"
    fi ;;
  actions/rotate) secret-set "$(state-get sid)" password=two ;;
  actions/revoke) secret-revoke "$(state-get sid)" -r "$(relation-ids s)" ;;
  actions/remove) secret-remove "$(state-get sid)" ;;
  hooks/secret-remove)
    echo "$JUJU_UNIT_NAME secret-remove:$JUJU_SECRET_REVISION" >> "$WARD_TEST_EVENTS"
    secret-remove "$JUJU_SECRET_ID" --revision "$JUJU_SECRET_REVISION" ;;
esac"#,
    );
    let consumer = charm(
        h.home.path(),
        "consumer",
        "requires:\n  s:\n    interface: sec\n",
        "",
        "read: {}\n",
        r#"
case "$JUJU_DISPATCH_PATH" in
  hooks/s-relation-changed)
    id=$(relation-get --app secret-id owner)
    [ -z "$id" ] && exit 0
    state-set "sid=$id"
    status-set active "pw=$(secret-get "$id" password --label theirs)" ;;
  hooks/secret-changed)
    cur=$(secret-get "$JUJU_SECRET_ID" password)
    peek=$(secret-get "$JUJU_SECRET_ID" password --peek)
    cur2=$(secret-get "$JUJU_SECRET_ID" password)
    new=$(secret-get "$JUJU_SECRET_ID" password --refresh)
    again=$(secret-get --label theirs --format=json)
    status-set active "cur=$cur peek=$peek cur2=$cur2 new=$new again=$again label=$JUJU_SECRET_LABEL" ;;
  actions/read)
    out=$(secret-get "$(state-get sid)" password 2>&1)
    action-set "out=$out" ;;
esac"#,
    );
    h.ctl.deploy("owner", &owner, 1, no_config()).unwrap();
    h.ctl.deploy("consumer", &consumer, 1, no_config()).unwrap();
    h.ctl.integrate("owner:s", "consumer:s").unwrap();
    h.settle();
    assert_eq!(h.workload("consumer/0"), ("active".into(), "pw=one".into()));
    let secrets = h.ctl.secrets().unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!(
        (
            secrets[0].owner.as_str(),
            secrets[0].label.as_deref(),
            secrets[0].revision
        ),
        ("owner", Some("mine"), 1)
    );
    // Content is encrypted at rest: the plaintext (nor its base64) is not in the database file.
    let db = std::fs::read(h.home.path().join("state.db")).unwrap();
    let wal = std::fs::read(h.home.path().join("state.db-wal")).unwrap_or_default();
    for hay in [&db, &wal] {
        assert!(
            !hay.windows(4).any(|w| w == b"b25l"),
            "base64 of 'one' found at rest"
        );
    }

    let t = h
        .block_on(
            h.ctl
                .run_action("owner/0", "rotate", json!({}), Duration::from_secs(20)),
        )
        .unwrap();
    assert_eq!(t.status, "completed", "{t:?}");
    h.settle();
    assert_eq!(
        h.workload("consumer/0").1,
        r#"cur=one peek=two cur2=one new=two again={"password":"two"} label=theirs"#
    );
    // Revision 1 is no longer tracked by anyone: the owner is told to remove it.
    assert!(
        h.events().iter().any(|l| l == "owner/0 secret-remove:1"),
        "{:?}",
        h.events()
    );
    assert_eq!(h.ctl.secrets().unwrap()[0].revision, 2);
    let uri = h.ctl.secrets().unwrap()[0].uri.clone();
    assert_eq!(h.ctl.reveal_secret(&uri, None).unwrap()["password"], "two");
    assert!(
        h.ctl.reveal_secret(&uri, Some(1)).is_err(),
        "revision 1 was removed by its owner"
    );

    h.block_on(
        h.ctl
            .run_action("owner/0", "revoke", json!({}), Duration::from_secs(20)),
    )
    .unwrap();
    h.settle();
    let t = h
        .block_on(
            h.ctl
                .run_action("consumer/0", "read", json!({}), Duration::from_secs(20)),
        )
        .unwrap();
    assert_eq!(t.results["out"], "ERROR permission denied");

    h.block_on(
        h.ctl
            .run_action("owner/0", "remove", json!({}), Duration::from_secs(20)),
    )
    .unwrap();
    h.settle();
    assert!(h.ctl.secrets().unwrap().is_empty());
    let t = h
        .block_on(
            h.ctl
                .run_action("consumer/0", "read", json!({}), Duration::from_secs(20)),
        )
        .unwrap();
    assert!(
        t.results["out"].as_str().unwrap().contains("not found"),
        "{t:?}"
    );
}

#[test]
fn failing_hook_discards_its_changes_and_retries_until_it_succeeds() {
    let h = Harness::new();
    let fail_flag = format!("{}.fail", h.events.display());
    std::fs::write(&fail_flag, "").unwrap();
    let c = charm(
        h.home.path(),
        "flaky",
        PEERS,
        "options:\n  color:\n    type: string\n    default: red\n",
        "",
        r#"
case "$JUJU_DISPATCH_PATH" in
  hooks/config-changed)
    relation-set -r "$(relation-ids cluster)" "color=$(config-get color)"
    state-set "color=$(config-get color)"
    status-set maintenance "painting $(config-get color)"
    [ -e "$WARD_TEST_EVENTS.fail" ] && exit 3 ;;
esac"#,
    );
    h.ctl.deploy("flaky", &c, 1, no_config()).unwrap();
    h.wait_until("error", Duration::from_secs(20), |h| {
        h.workload("flaky/0").0 == "error"
    });
    assert_eq!(h.workload("flaky/0").1, "hook failed: \"config-changed\"");
    let rel = h.ctl.status().unwrap().relations[0].id;
    assert!(!h
        .ctl
        .relation_data(rel, "flaky/0")
        .unwrap()
        .contains_key("color"));
    let st = h.ctl.status().unwrap();
    assert_eq!(
        st.applications[0].units[0].agent.data["hook"],
        "config-changed"
    );
    // status-set applied at once even though the hook failed (as in Juju).
    assert!(h
        .ctl
        .status_history("unit:flaky/0")
        .unwrap()
        .iter()
        .any(|s| s.message == "painting red"));
    // No start while in error.
    assert!(!h.unit_events("flaky/0").contains(&"start".to_string()));
    std::fs::remove_file(&fail_flag).unwrap();
    h.settle();
    assert_eq!(h.ctl.relation_data(rel, "flaky/0").unwrap()["color"], "red");
    let ev = h.unit_events("flaky/0");
    assert!(ev.iter().filter(|e| *e == "config-changed").count() >= 2);
    assert_eq!(ev.last().unwrap(), "start");
    assert_eq!(
        h.ctl.resolve("flaky/0", true).unwrap_err().to_string(),
        "unit \"flaky/0\" is not in an error state"
    );

    // Resolve without retry skips the failed hook; its changes never land.
    std::fs::write(&fail_flag, "").unwrap();
    h.ctl
        .set_config("flaky", [("color".to_string(), Some(json!("blue")))].into())
        .unwrap();
    h.wait_until("error again", Duration::from_secs(20), |h| {
        h.workload("flaky/0").0 == "error"
    });
    h.ctl.resolve("flaky/0", false).unwrap();
    h.settle();
    assert_eq!(h.ctl.relation_data(rel, "flaky/0").unwrap()["color"], "red");
    assert_eq!(
        h.ctl.status().unwrap().applications[0].units[0]
            .agent
            .status,
        "idle"
    );
}

#[test]
fn actions_return_results_logs_and_failures() {
    let h = Harness::new();
    let c = charm(
        h.home.path(),
        "act",
        "",
        "",
        "greet:\n  params:\n    name:\n      type: string\n      default: world\nbroken: {}\n",
        r#"
case "$JUJU_DISPATCH_PATH" in
  actions/greet)
    action-log "greeting $(action-get name)"
    action-set "result.text=hello $(action-get name)" count=1
    echo out; echo err >&2 ;;
  actions/broken) action-set partial=yes; action-fail "it broke" ;;
esac"#,
    );
    h.ctl.deploy("act", &c, 1, no_config()).unwrap();
    h.settle();
    let t = h
        .block_on(h.ctl.run_action(
            "act/0",
            "greet",
            json!({"name": "bob"}),
            Duration::from_secs(20),
        ))
        .unwrap();
    assert_eq!(t.status, "completed");
    assert_eq!(
        t.results,
        json!({"result": {"text": "hello bob"}, "count": "1", "return-code": 0, "stdout": "out\n", "stderr": "err\n"})
    );
    assert_eq!(t.log.len(), 1);
    assert_eq!(t.log[0].1, "greeting bob");
    assert!(t.started.is_some() && t.completed.is_some());
    let t = h
        .block_on(
            h.ctl
                .run_action("act/0", "greet", json!(null), Duration::from_secs(20)),
        )
        .unwrap();
    assert_eq!(t.results["result"]["text"], "hello world");
    let t = h
        .block_on(
            h.ctl
                .run_action("act/0", "broken", json!({}), Duration::from_secs(20)),
        )
        .unwrap();
    assert_eq!(
        (t.status.as_str(), t.message.as_str()),
        ("failed", "it broke")
    );
    assert_eq!(t.results["partial"], "yes");
    // A failed action does not put the unit in error.
    assert_eq!(
        h.ctl.status().unwrap().applications[0].units[0]
            .agent
            .status,
        "idle"
    );
    assert!(h.ctl.enqueue_action("act/0", "nope", json!({})).is_err());
    // exec: a command in a hook context; changes commit on exit 0.
    let t = h
        .block_on(h.ctl.exec(
            "act/0",
            "is-leader; state-set via=exec; echo \"[$JUJU_DISPATCH_PATH]\"",
            Duration::from_secs(20),
        ))
        .unwrap();
    assert_eq!(
        (t.status.as_str(), t.results["stdout"].as_str()),
        ("completed", Some("True\n[]\n")),
        "{t:?}"
    );
    let t = h
        .block_on(
            h.ctl
                .exec("act/0", "state-get via; exit 3", Duration::from_secs(20)),
        )
        .unwrap();
    assert_eq!(
        (
            t.status.as_str(),
            t.results["return-code"].as_i64(),
            t.results["stdout"].as_str()
        ),
        ("failed", Some(3), Some("exec\n"))
    );
    assert_eq!(
        h.ctl.status().unwrap().applications[0].units[0]
            .agent
            .status,
        "idle"
    );
    let tasks = h.ctl.tasks(Some("act/0")).unwrap();
    assert_eq!(tasks.len(), 5);
    assert_eq!(tasks[2].name, "broken", "newest first");
}

#[test]
fn controller_crash_mid_hook_loses_nothing_and_replays_nothing() {
    let mut h = Harness::new();
    let c = charm(
        h.home.path(),
        "crashy",
        PEERS,
        "",
        "",
        r#"
case "$JUJU_DISPATCH_PATH" in
  hooks/config-changed)
    relation-set -r "$(relation-ids cluster)" k=v1
    state-set k=v1
    if [ ! -e "$WARD_TEST_EVENTS.restarted" ]; then touch "$WARD_TEST_EVENTS.inhook"; sleep 30; fi ;;
esac"#,
    );
    h.ctl.deploy("crashy", &c, 1, no_config()).unwrap();
    let inhook = format!("{}.inhook", h.events.display());
    h.wait_until("hook in flight", Duration::from_secs(20), |_| {
        std::path::Path::new(&inhook).exists()
    });
    let rel = h.ctl.status().unwrap().relations[0].id;
    h.crash();
    // Nothing of the interrupted hook is in the store.
    assert!(!h
        .ctl
        .relation_data(rel, "crashy/0")
        .unwrap()
        .contains_key("k"));
    std::fs::write(format!("{}.restarted", h.events.display()), "").unwrap();
    h.reopen();
    h.settle();
    let ev = h.unit_events("crashy/0");
    assert_eq!(
        ev,
        [
            "install",
            "cluster-relation-created",
            "leader-elected",
            "config-changed",
            "config-changed",
            "start"
        ]
    );
    assert_eq!(h.ctl.relation_data(rel, "crashy/0").unwrap()["k"], "v1");
}

#[test]
fn malformed_and_oversized_tool_input_gets_juju_errors() {
    let h = Harness::new();
    let body = r#"
case "$JUJU_DISPATCH_PATH" in
  hooks/install)
    out="$WARD_TEST_EVENTS.tools"
    big="$WARD_TEST_EVENTS.big"
    t() { name="$1"; shift; "$@" > "$out.o" 2>&1; echo "$name rc=$? $(head -c 200 "$out.o" | tr '\n' '|')" >> "$out"; }
    t badflag relation-get --bogus
    t norel relation-get
    t unknownrel relation-ids --format=xml cluster
    t relnotfound relation-list -r 99
    t relnotfound2 relation-list -r cluster:99
    t badstatus status-set fancy
    t kv relation-set -r "$(relation-ids cluster)" novalue
    t nonutf8 relation-ids "$(printf 'a\377')"
    t longkey state-set "$(head -c 300 /dev/zero | tr '\0' k)=v"
    head -c 70000 /dev/zero | tr '\0' a > "$big"
    t bigvalue sh -c "printf 'k: ' | cat - '$big' | state-set --file -"
    head -c 800000 /dev/urandom > "$big"
    t bigsecret secret-add --owner unit "blob#file=$big"
    t badkey secret-add --owner unit "Bad_Key=1"
    t empty secret-add --owner unit
    t notleaderapp relation-get --app - crashy
    t peekrefresh secret-get secret:0123456789abcdefghij --peek --refresh
    t nosecret secret-get secret:0123456789abcdefghij
    t badyaml relation-set -r "$(relation-ids cluster)" --file - < /dev/null
    t badyaml2 sh -c "echo '[1, 2' | relation-set -r \"$(relation-ids cluster)\" --file -"
    t actionget action-get
    t badport open-port 99999/tcp
    t goodport open-port 8080
    t network network-get nosuch
    t json config-get --format=json
    t help relation-get --help
    t sgkey sh -c 'id=$(secret-add --owner unit key=val); secret-get "$id" key; secret-get "$id" key#base64; secret-get "$id" nokey'
    t badutf8 sh -c "printf 'k: \\377\\n' | relation-set -r $(relation-ids cluster) --file -"
    t hugebag sh -c "{ printf 'k: '; head -c 17000000 /dev/zero | tr '\\0' a; echo; } > $out.huge; relation-set -r $(relation-ids cluster) --file $out.huge"
    t dupkey relation-set -r "$(relation-ids cluster)" a=1 a=2
    t badexpire secret-add --owner unit --expire soon key=val
    t badrotate secret-add --owner unit --rotate sometimes key=val
    t badowner secret-add --owner model key=val
    t fromfile sh -c "printf 'token: abc\n' > $out.yaml; secret-add --owner unit --file $out.yaml >/dev/null && secret-get --label nope 2>&1; echo ok"
    t appname relation-get -r "$(relation-ids cluster)" - tooly
    t badunit relation-get -r "$(relation-ids cluster)" - 'x/y'
    ;;
esac"#;
    let c = charm(
        h.home.path(),
        "tooly",
        PEERS,
        "options:\n  a:\n    type: int\n    default: 3\n",
        "",
        body,
    );
    h.ctl.deploy("tooly", &c, 1, no_config()).unwrap();
    h.settle();
    let out = std::fs::read_to_string(format!("{}.tools", h.events.display())).unwrap();
    let get = |name: &str| -> String {
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .to_string()
    };
    assert_eq!(
        get("badflag"),
        "badflag rc=2 ERROR flag provided but not defined: --bogus|"
    );
    assert_eq!(get("norel"), "norel rc=2 ERROR no relation id specified|");
    assert!(get("unknownrel").contains("rc=2 ERROR invalid value \"xml\" for option --format"));
    assert_eq!(
        get("relnotfound"),
        "relnotfound rc=2 ERROR invalid value \"99\" for option -r: relation not found|"
    );
    assert_eq!(
        get("relnotfound2"),
        "relnotfound2 rc=2 ERROR invalid value \"cluster:99\" for option -r: relation not found|"
    );
    assert_eq!(get("badstatus"), "badstatus rc=2 ERROR invalid status \"fancy\", expected one of [maintenance blocked waiting active]|");
    assert_eq!(
        get("kv"),
        "kv rc=2 ERROR expected \"key=value\", got \"novalue\"|"
    );
    assert_eq!(
        get("nonutf8"),
        "nonutf8 rc=2 ERROR argument 1 is not valid UTF-8|"
    );
    assert_eq!(
        get("longkey"),
        "longkey rc=1 ERROR max allowed key length (256) exceeded|"
    );
    assert_eq!(
        get("bigvalue"),
        "bigvalue rc=1 ERROR max allowed value length (65536) exceeded|"
    );
    assert!(
        get("bigsecret").contains(
            "rc=2 ERROR base64 encoded secret content for key \"blob\" too large: 1066668 bytes"
        ),
        "{}",
        get("bigsecret")
    );
    assert_eq!(
        get("badkey"),
        "badkey rc=2 ERROR key \"Bad_Key\" not valid|"
    );
    assert_eq!(
        get("empty"),
        "empty rc=2 ERROR missing secret value or filename|"
    );
    assert_eq!(
        get("peekrefresh"),
        "peekrefresh rc=2 ERROR specify one of --peek or --refresh but not both|"
    );
    assert!(get("nosecret").contains("rc=1 ERROR secret \"secret:0123456789abcdefghij\" not found"));
    assert_eq!(get("badyaml"), "badyaml rc=0 ");
    assert!(
        get("badyaml2").starts_with("badyaml2 rc=1 ERROR invalid settings"),
        "{}",
        get("badyaml2")
    );
    assert_eq!(
        get("actionget"),
        "actionget rc=1 ERROR not running an action|"
    );
    assert!(get("badport").starts_with("badport rc=2 ERROR expected <port>"));
    assert_eq!(get("goodport"), "goodport rc=0 ");
    assert_eq!(
        get("network"),
        "network rc=1 ERROR no network config found for binding \"nosuch\"|"
    );
    assert_eq!(get("json"), "json rc=0 {\"a\":3}|");
    assert!(get("help").starts_with("help rc=0 Usage"));
    assert_eq!(
        get("dupkey"),
        "dupkey rc=2 ERROR key \"a\" specified more than once|"
    );
    assert_eq!(
        get("badexpire"),
        "badexpire rc=2 ERROR expire time or duration \"soon\" not valid|"
    );
    assert_eq!(
        get("badrotate"),
        "badrotate rc=2 ERROR rotate policy \"sometimes\" not valid|"
    );
    assert_eq!(
        get("badowner"),
        "badowner rc=2 ERROR secret owner \"model\" not valid|"
    );
    assert!(get("fromfile").ends_with("|ok|"), "{}", get("fromfile"));
    assert_eq!(
        get("appname"),
        "appname rc=2 ERROR expected unit name, got application name \"tooly\"|"
    );
    assert_eq!(
        get("badunit"),
        "badunit rc=2 ERROR invalid unit name \"x/y\"|"
    );
    assert_eq!(
        h.ctl.status().unwrap().applications[0].units[0].ports,
        ["8080/tcp"]
    );
}

#[test]
fn access_rules_hold_whatever_the_charm_sends() {
    let h = Harness::new();
    let prov = charm(
        h.home.path(),
        "prov",
        "provides:\n  db:\n    interface: demo-db\npeers:\n  cluster:\n    interface: c\n",
        "",
        "",
        r#"
out="$WARD_TEST_EVENTS.access"
t() { name="$1"; shift; "$@" > "$out.$$" 2>&1; echo "$JUJU_UNIT_NAME $name rc=$? $(tr '\n' '|' < "$out.$$")" >> "$out"; }
case "$JUJU_DISPATCH_PATH" in
  hooks/db-relation-joined)
    if [ "$(is-leader)" = True ]; then
      id=$(secret-add --label private only=mine)
      relation-set --app "ungranted=$id" "peer-rel=$(relation-ids cluster)"
    else
      t appset relation-set --app x=y
      t appget relation-get --app - prov
      t appsecret secret-add --label nope key=val
      t statusapp status-set --application active
    fi ;;
esac"#,
    );
    let req = charm(
        h.home.path(),
        "req",
        REQ,
        "",
        "",
        r#"
out="$WARD_TEST_EVENTS.access"
t() { name="$1"; shift; "$@" > "$out.$$" 2>&1; echo "$JUJU_UNIT_NAME $name rc=$? $(tr '\n' '|' < "$out.$$")" >> "$out"; }
case "$JUJU_DISPATCH_PATH" in
  hooks/db-relation-changed)
    id=$(relation-get --app ungranted prov)
    [ -z "$id" ] && exit 0
    t ungranted secret-get "$id"
    t foreignrel relation-get -r "$(relation-get --app peer-rel prov)" - prov/0
    t remoteapp relation-get --app - prov ;;
esac"#,
    );
    h.ctl.deploy("prov", &prov, 2, no_config()).unwrap();
    h.ctl.deploy("req", &req, 1, no_config()).unwrap();
    h.ctl.integrate("prov", "req").unwrap();
    h.settle();
    let out = std::fs::read_to_string(format!("{}.access", h.events.display())).unwrap();
    let get = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .to_string()
    };
    assert_eq!(
        get("prov/1 appset"),
        "prov/1 appset rc=1 ERROR cannot write relation settings|"
    );
    assert_eq!(
        get("prov/1 appget"),
        "prov/1 appget rc=1 ERROR permission denied|"
    );
    assert_eq!(
        get("prov/1 appsecret"),
        "prov/1 appsecret rc=1 ERROR this unit is not the leader|"
    );
    assert!(
        get("prov/1 statusapp").contains("rc=1 ERROR")
            && get("prov/1 statusapp").contains("not the leader")
    );
    assert_eq!(
        get("req/0 ungranted"),
        "req/0 ungranted rc=1 ERROR permission denied|"
    );
    assert!(
        get("req/0 foreignrel").contains("rc=2 ERROR invalid value")
            && get("req/0 foreignrel").contains("relation not found")
    );
    assert!(
        get("req/0 remoteapp").starts_with("req/0 remoteapp rc=0 peer-rel: cluster:"),
        "{}",
        get("req/0 remoteapp")
    );
}
