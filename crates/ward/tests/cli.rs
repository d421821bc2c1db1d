//! The real `ward` binary against a real controller daemon on a temporary
//! WARD_HOME and a free port: bootstrap, deploy (a Rust SDK charm, shell
//! charms, and the Python ops charm), integrate, config, actions, refresh,
//! scaling, wait, status JSON, kill -9 of the daemon and restart, destroy;
//! the API's credential check and the CLI's CA pinning.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

const WARD: &str = env!("CARGO_BIN_EXE_ward");

/// A controller home on a free port; kills its daemon when dropped.
struct Ward {
    dir: tempfile::TempDir,
    home: PathBuf,
    port: u16,
    env: Vec<(String, String)>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Ward {
    fn new() -> Ward {
        let dir = tempfile::Builder::new()
            .prefix("wardcli")
            .tempdir_in("/tmp")
            .unwrap();
        let home = dir.path().join("home");
        Ward {
            home,
            port: free_port(),
            env: vec![
                ("WARD_RETRY_BASE_MS".into(), "300".into()),
                // The sandbox substrate has its own test; the rest runs on plain processes
                // (the Python ops charm's venv lives outside the sandbox's /usr).
                ("WARD_SUBSTRATE".into(), "process".into()),
            ],
            dir,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(WARD);
        c.args(args)
            .env("WARD_HOME", &self.home)
            .env("WARD_PORT", self.port.to_string())
            .env_remove("WARD_CHARMS")
            .env_remove("WARD_JUJUC")
            .current_dir(self.dir.path());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run ward")
    }

    /// Run and require exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "ward {args:?} failed ({:?})\nstdout: {}\nstderr: {}\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Run and require this exit code; returns stderr.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let o = self.run(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(
            o.status.code(),
            Some(code),
            "ward {args:?}: stdout {} stderr {err}",
            String::from_utf8_lossy(&o.stdout)
        );
        err
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--format", "json"])).expect("status json")
    }

    fn pid(&self) -> i32 {
        std::fs::read_to_string(self.home.join("controller.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn logs(&self) -> String {
        let mut s = std::fs::read_to_string(self.home.join("controller.log")).unwrap_or_default();
        if let Ok(rd) = std::fs::read_dir(self.home.join("logs")) {
            for e in rd.flatten() {
                s.push_str(&format!("--- {}\n", e.path().display()));
                s.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        s
    }

    /// Poll `status --format json` until `f` holds.
    fn until(&self, what: &str, timeout: Duration, f: impl Fn(&Value) -> bool) -> Value {
        let t = Instant::now();
        loop {
            let s = self.status();
            if f(&s) {
                return s;
            }
            assert!(
                t.elapsed() < timeout,
                "timed out waiting for {what}: {s:#}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Ward {
    fn drop(&mut self) {
        if let Ok(p) = std::fs::read_to_string(self.home.join("controller.pid")) {
            if let Ok(pid) = p.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Whether a process runs (a zombie waiting for its reaper does not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn unit<'a>(s: &'a Value, name: &str) -> &'a Value {
    let app = name.split('/').next().unwrap();
    &s["applications"][app]["units"][name]
}

fn workload(s: &Value, name: &str) -> (String, String) {
    let w = &unit(s, name)["workload-status"];
    (
        w["current"].as_str().unwrap_or_default().to_string(),
        w["message"].as_str().unwrap_or_default().to_string(),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn test_charms() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/charms")
}

/// The greeter charm dir: tests/charms/greeter plus the SDK example binary as dispatch.
fn greeter(at: &Path) -> PathBuf {
    let target = Path::new(WARD).parent().unwrap();
    // Built by `cargo test -p ward` (an example here), or by ward-e2e in a workspace build.
    let bin = [
        target.join("examples/greeter-charm"),
        target.join("greeter-charm"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .unwrap_or_else(|| target.join("examples/greeter-charm"));
    assert!(
        bin.is_file(),
        "{} is missing: `cargo test -p ward` builds it (or `cargo build -p ward --example greeter-charm`)",
        bin.display()
    );
    let dir = at.join("greeter");
    copy_dir(&test_charms().join("greeter"), &dir);
    std::fs::copy(&bin, dir.join("dispatch")).unwrap();
    dir
}

/// A shell charm that logs every hook, with config options and an action.
fn hooklog_charm(at: &Path, revision: &str) -> PathBuf {
    let dir = at.join("hooklog");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("metadata.yaml"),
        "name: hooklog\nsummary: logs its hooks\nrequires:\n  greetings:\n    interface: greeting\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("config.yaml"),
        "options:\n  colour: {type: string, default: blue}\n  size: {type: int, default: 3}\n  ratio: {type: float}\n  loud: {type: boolean, default: false}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("actions.yaml"),
        "add:\n  description: adds\n  params:\n    a: {type: integer, minimum: 0}\n    b: {type: integer}\n    op: {type: string, enum: [plus, minus]}\n  required: [a, b]\n  additionalProperties: false\nfail: {}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("dispatch"),
        format!(
            "#!/bin/sh\n# revision {revision}\njuju-log \"ran $JUJU_DISPATCH_PATH\"\ncase \"$JUJU_DISPATCH_PATH\" in\n  actions/add) action-set \"sum=$(( $(action-get a) + $(action-get b) ))\" ;;\n  actions/fail) action-fail \"asked to fail\" ;;\n  *) c=$(config-get colour)\n     [ \"$c\" = crash ] && exit 3\n     if [ \"$c\" = none ]; then status-set blocked \"colour must not be none\"; else status-set active \"colour $c rev {revision}\"; fi ;;\nesac\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(dir.join("dispatch"), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn a_model_lives_through_the_cli_and_a_controller_kill() {
    let mut w = Ward::new();
    let python = std::env::var("WARD_TEST_PYTHON")
        .ok()
        .filter(|p| !p.is_empty());
    if let Some(py) = &python {
        w.env.push(("WARD_TEST_PYTHON".into(), py.clone()));
        w.env
            .push(("WARD_HOOK_ENV".into(), "WARD_TEST_PYTHON".into()));
    } else {
        eprintln!("WARD_TEST_PYTHON is unset: skipping the Python ops charm part");
    }
    let charms = w.dir.path().join("charms");
    let greeter = greeter(&charms);
    let hooklog = hooklog_charm(&charms, "1");

    // Bootstrap, twice (the second says so and succeeds).
    let out = w.ok(&["bootstrap"]);
    assert!(out.contains(&format!("127.0.0.1:{}", w.port)), "{out}");
    assert!(w.ok(&["bootstrap"]).contains("already running"));
    let mode = std::fs::metadata(w.home.join("admin.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Deploy: a Rust SDK charm from a directory, a shell charm from a packed
    // .charm, another shell charm by name from WARD_CHARMS.
    w.ok(&["deploy", greeter.to_str().unwrap(), "-n", "2"]);
    let packed = w.dir.path().join("hooklog.charm");
    w.ok(&[
        "pack",
        hooklog.to_str().unwrap(),
        "-o",
        packed.to_str().unwrap(),
    ]);
    w.ok(&[
        "deploy",
        packed.to_str().unwrap(),
        "hl",
        "--config",
        "colour=red",
        "--config",
        "size=7",
    ]);
    let built = w.dir.path().join("built");
    copy_dir(&test_charms().join("listener"), &built.join("listener"));
    w.env
        .push(("WARD_CHARMS".into(), built.display().to_string()));
    let mut c = w.cmd(&["deploy", "listener"]);
    c.env("WARD_CHARMS", &built);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = w.fails(2, &["deploy", "no-such-charm"]);
    assert!(
        err.contains("no-such-charm") && err.contains(&built.display().to_string()),
        "{err}"
    );
    if python.is_some() {
        let ops = w.dir.path().join("ops-listener");
        copy_dir(&test_charms().join("ops-listener"), &ops);
        w.ok(&["deploy", ops.to_str().unwrap()]);
    }

    // Integrate and wait until everyone has heard the greeting.
    w.ok(&["integrate", "greeter", "listener:greetings"]);
    w.ok(&["integrate", "greeter:greetings", "hl"]);
    if python.is_some() {
        w.ok(&["integrate", "greeter", "ops-listener"]);
    }
    let err = w.fails(2, &["integrate", "hl", "listener"]);
    assert!(
        err.contains("listener:greetings (requirer greeting)"),
        "the fix lists the endpoints: {err}"
    );
    let err = w.fails(2, &["deploy", hooklog.to_str().unwrap(), "Bad_Name"]);
    assert!(
        err.contains("Bad_Name") && err.contains("lowercase"),
        "{err}"
    );
    w.ok(&["wait", "--timeout", "120s"]);
    let s = w.status();
    assert_eq!(
        workload(&s, "listener/0"),
        ("active".into(), "heard: hello".into())
    );
    if python.is_some() {
        assert_eq!(
            workload(&s, "ops-listener/0"),
            ("active".into(), "heard: hello".into())
        );
    }
    assert_eq!(
        workload(&s, "hl/0"),
        ("active".into(), "colour red rev 1".into())
    );
    // juju status --format=json keys.
    for key in ["model", "machines", "applications", "controller"] {
        assert!(s.get(key).is_some(), "status has no {key}: {s:#}");
    }
    let g = &s["applications"]["greeter"];
    assert_eq!(g["charm-name"], "greeter");
    assert_eq!(g["charm-rev"], 1);
    assert_eq!(g["application-status"]["current"], "active");
    assert_eq!(
        g["relations"]["greetings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["interface"] == "greeting")
            .count(),
        if python.is_some() { 3 } else { 2 },
        "{g:#}"
    );
    let units = g["units"].as_object().unwrap();
    assert_eq!(units.len(), 2);
    let leaders = units.values().filter(|u| u["leader"] == true).count();
    assert_eq!(leaders, 1);
    for u in units.values() {
        assert_eq!(u["juju-status"]["current"], "idle");
        assert!(u["workload-status"]["message"].is_string());
        assert!(u["address"].as_str().unwrap().starts_with("127."));
    }
    let table = w.ok(&["status"]);
    for col in [
        "App", "Version", "Status", "Scale", "Charm", "Rev", "Unit", "Workload", "Agent",
        "Address", "Ports", "Message",
    ] {
        assert!(table.contains(col), "{col} missing from\n{table}");
    }
    assert!(table.contains("greeter/"), "{table}");

    // Config: set, show, reset; bad input names every bad key with exit 2.
    w.ok(&["config", "greeter", "greeting=hi"]);
    assert_eq!(w.ok(&["config", "greeter", "greeting"]).trim(), "hi");
    w.ok(&["wait", "--timeout", "60s"]);
    assert_eq!(workload(&w.status(), "listener/0").1, "heard: hi");
    w.ok(&["config", "greeter", "--reset", "greeting"]);
    w.ok(&["wait", "--timeout", "60s"]);
    assert_eq!(workload(&w.status(), "listener/0").1, "heard: hello");
    let shown: Value = serde_yaml_ng::from_str(&w.ok(&["config", "hl"])).unwrap();
    assert_eq!(shown["settings"]["size"]["value"], 7);
    assert_eq!(shown["settings"]["size"]["source"], "user");
    assert_eq!(shown["settings"]["colour"]["default"], "blue");
    let err = w.fails(
        2,
        &[
            "config",
            "hl",
            "size=big",
            "nope=1",
            "loud=perhaps",
            "ratio=0.5",
        ],
    );
    for key in ["size", "nope", "loud"] {
        assert!(err.contains(key), "{key} not named in: {err}");
    }
    assert!(
        !err.contains("- ratio"),
        "a good value is no problem: {err}"
    );
    assert!(
        err.contains("colour (string)"),
        "the fix lists the options: {err}"
    );
    assert_eq!(
        w.ok(&["config", "hl", "ratio"]).trim(),
        "",
        "nothing was applied"
    );
    w.fails(
        2,
        &[
            "deploy",
            hooklog.to_str().unwrap(),
            "hl2",
            "--config",
            "size=x",
        ],
    );
    assert!(w.status()["applications"].get("hl2").is_none());

    // wait: at its timeout, exit 1 naming what is blocked or in error.
    w.ok(&["config", "hl", "colour=none"]);
    let err = w.fails(1, &["wait", "--timeout", "2s", "hl"]);
    assert!(
        err.contains("hl/0 is blocked: colour must not be none"),
        "{err}"
    );
    w.ok(&["config", "hl", "colour=crash"]);
    w.until("hl/0 to be in error", Duration::from_secs(30), |s| {
        workload(s, "hl/0").0 == "error"
    });
    let err = w.fails(1, &["wait", "--timeout", "1s"]);
    assert!(err.contains("hl/0"), "{err}");
    w.ok(&["config", "hl", "colour=red"]);
    w.ok(&["wait", "--timeout", "60s"]);
    assert_eq!(workload(&w.status(), "hl/0").1, "colour red rev 1");
    let err = w.fails(2, &["resolve", "hl/0"]);
    assert!(err.contains("not in an error state"), "{err}");

    // Actions: juju run's JSON shape; bad params rejected with exit 2 before queueing.
    let out = w.ok(&[
        "run",
        "greeter/leader",
        "greet",
        "name=Ada",
        "shout=true",
        "--format",
        "json",
    ]);
    let r: Value = serde_json::from_str(&out).unwrap();
    let (u, t) = r.as_object().unwrap().iter().next().unwrap();
    assert!(u.starts_with("greeter/"), "{r:#}");
    assert_eq!(t["status"], "completed");
    assert_eq!(t["unit"], u.as_str());
    assert!(t["id"].is_string());
    assert_eq!(t["results"]["greeting"], "HELLO, ADA!");
    assert_eq!(t["results"]["return-code"], 0);
    for k in ["enqueued", "started", "completed"] {
        assert!(t["timing"][k].as_str().unwrap().ends_with("UTC"), "{t:#}");
    }
    let y: Value =
        serde_yaml_ng::from_str(&w.ok(&["run", "hl/0", "add", "a=2", "b=40", "--format", "yaml"]))
            .unwrap();
    assert_eq!(y["hl/0"]["results"]["sum"], "42");
    let err = w.fails(2, &["run", "greeter/0", "greet", "shout=maybe"]);
    assert!(err.contains("shout") && err.contains("name"), "{err}");
    let err = w.fails(2, &["run", "hl/0", "add", "a=-1", "b=x", "op=times", "c=1"]);
    for key in ["a:", "b:", "op:", "c:"] {
        assert!(err.contains(key), "{key} not named in: {err}");
    }
    let err = w.fails(2, &["run", "hl/0", "nosuch"]);
    assert!(err.contains("add") && err.contains("fail"), "{err}");
    let err = w.fails(1, &["run", "hl/0", "fail"]);
    assert!(err.contains("asked to fail"), "{err}");

    // Refresh to a new revision: upgrade-charm runs.
    let v2 = hooklog_charm(&w.dir.path().join("v2"), "2");
    let out = w.ok(&["refresh", "hl", "--path", v2.to_str().unwrap()]);
    assert!(out.contains("revision 2"), "{out}");
    w.ok(&["wait", "--timeout", "60s"]);
    let s = w.status();
    assert_eq!(s["applications"]["hl"]["charm-rev"], 2);
    assert_eq!(workload(&s, "hl/0").1, "colour red rev 2");
    let log = w.ok(&["debug-log", "--replay", "--no-tail", "--include", "hl"]);
    assert!(log.contains("ran hooks/upgrade-charm"), "{log}");
    assert!(!log.contains("unit-greeter-"), "include filters: {log}");

    // Scale out and in.
    assert!(w.ok(&["add-unit", "greeter"]).contains("greeter/2"));
    w.ok(&["wait", "--timeout", "60s"]);
    assert_eq!(
        w.status()["applications"]["greeter"]["units"]
            .as_object()
            .unwrap()
            .len(),
        3
    );
    w.ok(&["remove-unit", "greeter/2"]);
    w.until("greeter/2 to go", Duration::from_secs(60), |s| {
        unit(s, "greeter/2").is_null()
    });
    w.fails(2, &["remove-unit", "greeter/9"]);

    // kill -9 the daemon right after a change; bootstrap again; nothing lost.
    w.ok(&["config", "greeter", "greeting=bye"]);
    let pid = w.pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let err = w.fails(3, &["status"]);
    assert!(err.contains("ward bootstrap"), "{err}");
    w.ok(&["bootstrap"]);
    assert_ne!(w.pid(), pid);
    w.ok(&["wait", "--timeout", "120s"]);
    let s = w.status();
    assert_eq!(workload(&s, "listener/0").1, "heard: bye");
    assert_eq!(
        s["applications"]["greeter"]["units"]
            .as_object()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(s["applications"]["hl"]["charm-rev"], 2);
    assert_eq!(w.ok(&["config", "hl", "size"]).trim(), "7");

    // Secrets: listed without content; revealed on request.
    let list = w.ok(&["secrets"]);
    assert!(
        list.contains("greeter-token") && !list.contains("t0k3n"),
        "{list}"
    );
    let shown = w.ok(&["show-secret", "greeter-token"]);
    assert!(!shown.contains("t0k3n"), "{shown}");
    let shown: Value = serde_json::from_str(&w.ok(&[
        "show-secret",
        "greeter-token",
        "--reveal",
        "--format",
        "json",
    ]))
    .unwrap();
    let (_, sec) = shown.as_object().unwrap().iter().next().unwrap();
    assert_eq!(sec["content"]["token"], "t0k3n-for-peers");

    // Relations and applications go away.
    w.ok(&["remove-relation", "greeter", "hl"]);
    w.ok(&["remove-application", "hl"]);
    w.until("hl to go", Duration::from_secs(60), |s| {
        s["applications"].get("hl").is_none()
    });

    // Destroy: asks unless --yes; stops the daemon; removes the home.
    w.fails(2, &["destroy"]);
    let pid = w.pid();
    w.ok(&["destroy", "--yes"]);
    assert!(!w.home.exists());
    assert!(!alive(pid), "daemon {pid} still running");
    w.fails(3, &["status"]);
}

#[test]
fn the_api_wants_the_token_and_the_cli_wants_the_pinned_ca() {
    let a = Ward::new();
    a.ok(&["bootstrap"]);
    let ca = std::fs::read(a.home.join("ca.pem")).unwrap();
    let token = std::fs::read_to_string(a.home.join("admin.token")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{}/v1/status", a.port);
    let code = |req: reqwest::RequestBuilder| {
        rt.block_on(async { req.send().await.unwrap().status().as_u16() })
    };
    assert_eq!(code(http.get(&url)), 401);
    assert_eq!(code(http.get(&url).bearer_auth("not-the-token")), 401);
    assert_eq!(
        code(
            http.post(format!("https://127.0.0.1:{}/v1/deploy", a.port))
                .json(&serde_json::json!({}))
        ),
        401
    );
    assert_eq!(code(http.get(&url).bearer_auth(token.trim())), 200);

    // Another controller's home (its own CA) pointed at a's port: refused.
    let b = Ward::new();
    b.ok(&["bootstrap"]);
    let mut c = b.cmd(&["status"]);
    c.env("WARD_PORT", a.port.to_string());
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("certificate"), "{err}");
    b.ok(&["destroy", "--yes"]);
    a.ok(&["destroy", "--yes"]);
}

#[test]
fn without_a_controller_commands_say_how_to_get_one() {
    let w = Ward::new();
    let err = w.fails(3, &["status"]);
    assert!(
        err.contains("ward bootstrap") && err.contains("WARD_HOME"),
        "{err}"
    );
    w.fails(3, &["add-unit", "x"]);
    let err = w.fails(2, &["deploy", "./nowhere/charm"]);
    assert!(err.contains("nowhere"), "{err}");
    w.fails(2, &["run", "x/0", "act", "--wait", "soon"]);
    w.fails(2, &["frobnicate"]);
    assert!(w.ok(&["version"]).starts_with("ward "));
    assert!(w.ok(&["destroy", "--yes"]).contains("Nothing to destroy"));
}

#[test]
fn ward_alone_serves_as_the_hook_tools_and_debug_log_follows() {
    // A copy of `ward` with no `ward-jujuc` beside it: hooks run the tools through
    // `ward` itself (multi-call).
    let w = Ward::new();
    let bin = w.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let ward = bin.join("ward");
    std::fs::copy(WARD, &ward).unwrap();
    let run = |args: &[&str]| {
        let mut c = Command::new(&ward);
        c.args(args)
            .env("WARD_HOME", &w.home)
            .env("WARD_PORT", w.port.to_string())
            .env("WARD_RETRY_BASE_MS", "300")
            .env("WARD_SUBSTRATE", "process")
            .env_remove("WARD_JUJUC")
            .current_dir(w.dir.path());
        c
    };
    let ok = |args: &[&str]| {
        let o = run(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            w.logs()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    ok(&["bootstrap"]);
    let charm = hooklog_charm(&w.dir.path().join("charms"), "1");
    ok(&["deploy", charm.to_str().unwrap(), "-n", "2"]);
    ok(&["wait", "--timeout", "60s"]);
    let s = w.status();
    assert_eq!(
        workload(&s, "hooklog/1"),
        ("active".into(), "colour blue rev 1".into())
    );
    let target = std::fs::read_link(w.home.join("tools/status-set")).unwrap();
    assert_eq!(target, ward, "the tools link to the ward binary");

    // debug-log follows: a change shows up while it runs.
    let mut follow = run(&["debug-log", "--include", "hooklog/0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    ok(&["config", "hooklog", "colour=green"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen: Vec<String> = Vec::new();
    let changed = |seen: &[String]| {
        seen.iter()
            .filter(|l| l.contains("ran hooks/config-changed"))
            .count()
    };
    while Instant::now() < deadline && changed(&seen) < 2 {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        changed(&seen) >= 2,
        "the follow saw the new config-changed: {seen:#?}"
    );
    assert!(
        seen.iter().all(|l| l.starts_with("unit-hooklog-0 ")),
        "{seen:#?}"
    );
    ok(&["destroy", "--yes"]);
}

#[test]
fn the_sandbox_substrate_runs_a_workload_and_destroy_stops_it() {
    let pebble = Path::new(WARD).parent().unwrap().join("ward-pebble");
    let pebble = if pebble.is_file() {
        pebble
    } else if let Some(p) = std::env::var_os("WARD_PEBBLE").map(PathBuf::from) {
        p
    } else {
        eprintln!(
            "skipping: no ward-pebble next to {WARD} and WARD_PEBBLE unset (cargo build -p pebble)"
        );
        return;
    };
    if !Path::new("/usr/bin/bwrap").is_file() {
        eprintln!("skipping: bubblewrap is not installed");
        return;
    }
    let mut w = Ward::new();
    w.env.retain(|(k, _)| k != "WARD_SUBSTRATE");
    w.env
        .push(("WARD_PEBBLE".into(), pebble.display().to_string()));
    w.env.push((
        "WARD_ROCKS".into(),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../rocks")
            .display()
            .to_string(),
    ));
    let out = w.ok(&["bootstrap", "--substrate", "sandbox"]);
    assert!(out.contains("sandbox substrate"), "{out}");
    let charm = w.dir.path().join("sandboxed");
    copy_dir(&test_charms().join("sandboxed"), &charm);
    w.ok(&["deploy", charm.to_str().unwrap()]);
    w.until("the workload to come up", Duration::from_secs(90), |s| {
        workload(s, "sandboxed/0") == ("active".into(), "workload up".into())
    });
    let pid_file = w
        .home
        .join("units/unit-sandboxed-0/containers/workload/sandbox.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    // A restart re-adopts the running workload; switching substrate is refused.
    w.fails(2, &["bootstrap", "--substrate", "process"]);
    w.ok(&["destroy", "--yes"]);
    assert!(!alive(pid), "the workload sandbox {pid} outlived destroy");
}

/// Run `script` as the unprivileged user `nobody` (needs root and setpriv).
fn as_nobody(script: &str) -> Option<Output> {
    if !nix::unistd::geteuid().is_root() || !Path::new("/usr/bin/setpriv").exists() {
        return None;
    }
    let args = [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        "sh",
        "-c",
        script,
    ];
    Some(
        Command::new("/usr/bin/setpriv")
            .args(args)
            .output()
            .unwrap(),
    )
}

#[test]
fn a_home_made_open_before_bootstrap_is_private_after_it() {
    let w = Ward::new();
    // Others may reach the home's parent, so only the home's own mode keeps them out.
    std::fs::set_permissions(w.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(&w.home).unwrap();
    std::fs::set_permissions(&w.home, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(w.home.join("controller.log"), "from an older Ward\n").unwrap();
    std::fs::set_permissions(
        w.home.join("controller.log"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    w.ok(&["bootstrap"]);
    let mode = |p: &str| {
        std::fs::metadata(w.home.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700, "WARD_HOME");
    for private in ["controller.log", "admin.token", "secrets.key"] {
        assert_eq!(mode(private), 0o600, "{private}");
    }
    if let Some(out) = as_nobody(&format!("cat {}", w.home.join("admin.token").display())) {
        assert!(
            !out.status.success(),
            "another local user read the credential"
        );
    }
    w.ok(&["destroy", "--yes"]);
}

#[test]
fn a_home_owned_by_another_user_is_refused() {
    if as_nobody("true").is_none() {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    let w = Ward::new();
    std::fs::create_dir_all(&w.home).unwrap();
    nix::unistd::chown(&w.home, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let err = w.fails(2, &["bootstrap"]);
    assert!(
        err.contains("WARD_HOME") && err.contains("owned by uid 65534"),
        "{err}"
    );
}
