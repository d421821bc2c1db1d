//! The real `ward-pebble` daemon on a temporary socket, driven with the SDK's client and
//! with Canonical's Python client (tests/pebble_ops_client.py).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pebble_client::Client;
use serde_json::Value;

struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Daemon {
    fn start(extra: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("pebble.socket");
        let child = Command::new(env!("CARGO_BIN_EXE_ward-pebble"))
            .arg("run")
            .arg("--create-dirs")
            .args(extra)
            .env("PEBBLE", dir.path().join("state"))
            .env("PEBBLE_SOCKET", &socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // The socket file appears at bind(), a moment before listen(): wait until it
        // accepts a connection.
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "daemon did not listen on its socket"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Daemon { child, dir, socket }
    }

    fn client(&self) -> Client {
        Client::new(&self.socket)
    }

    fn scratch(&self) -> PathBuf {
        let p = self.dir.path().join("scratch");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// A raw request, for the error paths the typed client never produces.
    fn raw(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let code = out[9..12].parse().unwrap();
        let json = out.split("\r\n\r\n").nth(1).unwrap_or("");
        // Chunked bodies: take the JSON object between the first '{' and the last '}'.
        let json = &json[json.find('{').unwrap_or(0)..=json.rfind('}').unwrap_or(0)];
        (code, serde_json::from_str(json).unwrap_or(Value::Null))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix_kill(self.child.id());
        let _ = self.child.wait();
    }
}

fn nix_kill(pid: u32) -> std::io::Result<()> {
    Command::new("kill")
        .arg(pid.to_string())
        .status()
        .map(|_| ())
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn current(c: &Client, name: &str) -> String {
    c.services(&[name]).unwrap()[0].current.clone()
}

#[test]
fn ops_python_client_drives_the_daemon() {
    let Ok(python) = std::env::var("WARD_TEST_PYTHON") else {
        eprintln!(
            "skipped: WARD_TEST_PYTHON is not set (scripts/test.sh sets it to the venv with ops)"
        );
        return;
    };
    let d = Daemon::start(&["--hold"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/pebble_ops_client.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&d.socket)
        .arg(d.scratch())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ops client script failed:\n{text}");
    assert!(text.contains("all checks passed"), "{text}");
}

#[test]
fn sdk_client_layers_services_and_files() {
    let d = Daemon::start(&["--hold"]);
    let c = d.client();
    assert!(c.can_connect());
    let info = c.system_info().unwrap();
    assert!(!info.version.is_empty());
    c.add_layer(
        "base",
        "services:\n  svc:\n    override: replace\n    command: sleep 1000\n    startup: enabled\n",
        false,
    )
    .unwrap();
    c.add_layer(
        "base",
        "services:\n  svc:\n    override: merge\n    environment:\n      A: b\n",
        true,
    )
    .unwrap();
    let plan = c.plan().unwrap();
    assert!(
        plan.contains("A: b") && plan.contains("command: sleep 1000"),
        "{plan}"
    );
    assert_eq!(current(&c, "svc"), "inactive");
    c.replan().unwrap();
    assert_eq!(current(&c, "svc"), "active");
    // Replan with nothing changed does nothing; a changed plan restarts the service.
    c.replan().unwrap();
    c.add_layer(
        "over",
        "services:\n  svc:\n    override: merge\n    command: sleep 2000\n",
        false,
    )
    .unwrap();
    c.replan().unwrap();
    let out = Command::new("pgrep")
        .args(["-f", "sleep 2000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "the replanned command is running");
    c.stop(&["svc"]).unwrap();
    assert_eq!(current(&c, "svc"), "inactive");

    let file = d.scratch().join("deep/dir/secret.conf");
    c.push(
        file.to_str().unwrap(),
        b"password = x\n",
        &pebble_client::FileOptions {
            make_dirs: true,
            permissions: Some(0o600),
            ..Default::default()
        },
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(c.pull(file.to_str().unwrap()).unwrap(), b"password = x\n");
}

#[test]
fn a_crashing_service_is_restarted_with_backoff() {
    let d = Daemon::start(&["--hold"]);
    let c = d.client();
    let marker = d.scratch().join("starts");
    let layer = format!(
        "services:\n  crashy:\n    override: replace\n    command: sh -c 'echo x >> {}; sleep 1.2; exit 1'\n    backoff-delay: 100ms\n    backoff-limit: 400ms\n",
        marker.display()
    );
    c.add_layer("base", &layer, false).unwrap();
    c.start(&["crashy"]).unwrap();
    // Runs past the okay window, crashes, backs off, comes back: several starts.
    let mut saw_backoff = false;
    wait_for("three starts", Duration::from_secs(15), || {
        saw_backoff |= current(&c, "crashy") == "backoff";
        std::fs::read_to_string(&marker)
            .unwrap_or_default()
            .lines()
            .count()
            >= 3
    });
    assert!(saw_backoff, "the service passed through backoff");
    c.stop(&["crashy"]).unwrap();
    assert_eq!(current(&c, "crashy"), "inactive");
}

#[test]
fn exiting_inside_the_okay_window_fails_the_start_with_pebbles_message() {
    let d = Daemon::start(&["--hold"]);
    let c = d.client();
    c.add_layer(
        "base",
        "services:\n  quick:\n    override: replace\n    command: sh -c 'echo boom; exit 3'\n    on-failure: ignore\n",
        false,
    )
    .unwrap();
    let err = c.start(&["quick"]).unwrap_err().to_string();
    assert!(
        err.contains("Start service \"quick\" (service start attempt: exited quickly with code 3, will do nothing)"),
        "{err}"
    );
    assert_eq!(current(&c, "quick"), "error");
}

#[test]
fn stop_escalates_to_sigkill_for_the_whole_group() {
    let d = Daemon::start(&["--hold"]);
    let c = d.client();
    c.add_layer(
        "base",
        "services:\n  stubborn:\n    override: replace\n    command: sh -c 'trap \"\" TERM; sleep 4321 & wait; sleep 4321'\n    kill-delay: 300ms\n",
        false,
    )
    .unwrap();
    c.start(&["stubborn"]).unwrap();
    let started = Instant::now();
    c.stop(&["stubborn"]).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    wait_for(
        "the group's children to die",
        Duration::from_secs(5),
        || {
            !Command::new("pgrep")
                .args(["-f", "sleep 4321"])
                .output()
                .unwrap()
                .status
                .success()
        },
    );
}

#[test]
fn a_failing_check_goes_down_and_leaves_the_notice_juju_needs() {
    let d = Daemon::start(&["--hold"]);
    let c = d.client();
    let flag = d.scratch().join("healthy");
    std::fs::write(&flag, "").unwrap();
    let layer = format!(
        "checks:\n  probe:\n    override: replace\n    level: ready\n    period: 100ms\n    threshold: 2\n    exec:\n      command: test -e {}\n",
        flag.display()
    );
    c.add_layer("base", &layer, false).unwrap();
    c.replan().unwrap();
    wait_for("check up", Duration::from_secs(5), || {
        let checks = c.checks(None, &[]).unwrap();
        checks[0].status == "up" && checks[0].failures == 0
    });
    std::fs::remove_file(&flag).unwrap();
    wait_for("check down", Duration::from_secs(5), || {
        c.checks(None, &[]).unwrap()[0].status == "down"
    });
    let (code, health) = d.raw("GET", "/v1/health?level=ready", "");
    assert_eq!(
        (code, &health["type"], &health["result"]["healthy"]),
        (502, &Value::from("sync"), &Value::from(false))
    );

    // What Juju's notice loop does: change-update notices, then the change itself.
    let (_, notices) = d.raw("GET", "/v1/notices?types=change-update&users=all", "");
    let failed = notices["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| {
            n["last-data"]["kind"] == "perform-check" && n["last-data"]["check-name"] == "probe"
        })
        .expect("a perform-check change-update notice");
    let key = failed["key"].as_str().unwrap();
    let (_, change) = d.raw("GET", &format!("/v1/changes/{key}"), "");
    assert_eq!(change["result"]["status"], "Error", "{change}");

    std::fs::write(&flag, "").unwrap();
    wait_for("check recovered", Duration::from_secs(5), || {
        c.checks(None, &[]).unwrap()[0].status == "up"
    });
    let (_, notices) = d.raw("GET", "/v1/notices?types=change-update&users=all", "");
    let recover = notices["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["last-data"]["kind"] == "recover-check")
        .expect("a recover-check notice");
    let (_, change) = d.raw(
        "GET",
        &format!("/v1/changes/{}", recover["key"].as_str().unwrap()),
        "",
    );
    assert_eq!(change["result"]["status"], "Done", "{change}");
}

#[test]
fn bad_input_gets_pebbles_error_envelope_and_the_daemon_stays_up() {
    let d = Daemon::start(&["--hold"]);
    let cases = [
        (
            "POST",
            "/v1/layers",
            "this is not json",
            400,
            "cannot decode request body",
        ),
        (
            "POST",
            "/v1/layers",
            r#"{"action":"add","label":"x","format":"yaml","layer":"services:\n  a:\n    override: merge\n    colour: red\n"}"#,
            400,
            "cannot parse layer YAML",
        ),
        (
            "POST",
            "/v1/layers",
            r#"{"action":"add","label":"x","format":"yaml","layer":"services:\n  a:\n    command: x\n"}"#,
            400,
            "layer \"x\" must define \"override\" for service \"a\"",
        ),
        (
            "POST",
            "/v1/exec",
            r#"{"command":["definitely-not-a-binary"]}"#,
            400,
            "cannot find executable \"definitely-not-a-binary\"",
        ),
        (
            "POST",
            "/v1/exec",
            r#"{"command":["true"],"working-dir":"/no/such/dir"}"#,
            500,
            "does not exist",
        ),
        (
            "POST",
            "/v1/files",
            r#"{"action":"write"}"#,
            400,
            "must use multipart",
        ),
        (
            "GET",
            "/v1/files?action=list&path=../etc",
            "",
            400,
            "absolute",
        ),
        (
            "GET",
            "/v1/files?action=list&path=/no/such/thing",
            "",
            404,
            "no such file",
        ),
        (
            "POST",
            "/v1/services",
            r#"{"action":"start"}"#,
            400,
            "must specify services for start action",
        ),
        (
            "POST",
            "/v1/services",
            r#"{"action":"dance","services":["a"]}"#,
            400,
            "invalid action \"dance\"",
        ),
        (
            "POST",
            "/v1/services",
            r#"{"action":"autostart"}"#,
            400,
            "no default services",
        ),
        (
            "GET",
            "/v1/changes/999",
            "",
            404,
            "cannot find change with id \"999\"",
        ),
        ("GET", "/v1/plan?format=json", "", 400, "invalid format"),
        (
            "GET",
            "/v1/nothing-here",
            "",
            404,
            "invalid API endpoint requested",
        ),
    ];
    for (method, path, body, code, message) in cases {
        let (got, v) = d.raw(method, path, body);
        assert_eq!(got, code, "{method} {path}: {v}");
        assert_eq!(v["type"], "error", "{method} {path}: {v}");
        let m = v["result"]["message"].as_str().unwrap_or("");
        assert!(
            m.contains(message),
            "{method} {path}: {m:?} lacks {message:?}"
        );
    }
    let (code, v) = d.raw(
        "POST",
        "/v1/files",
        r#"{"action":"make-dirs","dirs":[{"path":"relative/dir"}]}"#,
    );
    assert_eq!(code, 200);
    assert_eq!(v["result"][0]["error"]["kind"], "generic-file-error", "{v}");
    assert!(d.client().can_connect(), "the daemon is still up");
}

#[test]
fn services_run_as_the_requested_user() {
    if !nix_is_root() {
        eprintln!("skipped: needs root to switch users");
        return;
    }
    let d = Daemon::start(&["--hold"]);
    let c = d.client();
    let out = d.scratch().join("id");
    std::fs::set_permissions(
        d.scratch(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let layer = format!(
        "services:\n  who:\n    override: replace\n    command: sh -c 'id -u > {0}; id -G >> {0}; echo $USER >> {0}; sleep 100'\n    user: nobody\n",
        out.display()
    );
    c.add_layer("base", &layer, false).unwrap();
    c.start(&["who"]).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let uid = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        String::from_utf8_lossy(&uid.stdout).trim()
    );
    assert!(
        !lines.next().unwrap().split(' ').any(|g| g == "0"),
        "root's groups were dropped: {text}"
    );
    assert_eq!(lines.next().unwrap(), "nobody");
    c.stop(&["who"]).unwrap();
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}

#[test]
fn autostart_on_boot_unless_held_and_logs_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let layers = dir.path().join("state/layers");
    std::fs::create_dir_all(&layers).unwrap();
    std::fs::write(
        layers.join("001-base.yaml"),
        "services:\n  talker:\n    override: replace\n    command: sh -c 'echo hello from talker; sleep 100'\n    startup: enabled\n",
    )
    .unwrap();
    let socket = dir.path().join("s.socket");
    let child = Command::new(env!("CARGO_BIN_EXE_ward-pebble"))
        .args(["run"])
        .env("PEBBLE", dir.path().join("state"))
        .env("PEBBLE_SOCKET", &socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Stops the daemon (and so its service) even when an assertion fails first.
    struct Guard(Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Guard(child);
    wait_for("socket", Duration::from_secs(5), || socket.exists());
    let c = Client::new(&socket);
    wait_for("autostart", Duration::from_secs(5), || {
        c.services(&["talker"])
            .map(|s| s[0].current == "active")
            .unwrap_or(false)
    });
    use std::io::{Read, Write};
    let logs = || {
        let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        write!(
            s,
            "GET /v1/logs?services=talker HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let logged = |out: &str| {
        out.contains("\"message\":\"hello from talker\\n\"")
            && out.contains("\"service\":\"talker\"")
    };
    // "active" can come before the service's first line reached the log buffer.
    let started = std::time::Instant::now();
    let mut out = logs();
    while !logged(&out) && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
        out = logs();
    }
    assert!(logged(&out), "{out}");
    // SIGTERM stops the services and the daemon exits 0. Only this daemon's service is
    // looked at: other runs of this test may have talkers of their own.
    let out = Command::new("pgrep")
        .args([
            "-P",
            &child.0.id().to_string(),
            "-f",
            "echo hello from talker",
        ])
        .output()
        .unwrap();
    let talker: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the daemon's talker process");
    Command::new("kill")
        .arg(child.0.id().to_string())
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        !Path::new(&format!("/proc/{talker}")).exists(),
        "the talker ({talker}) outlived the daemon"
    );
}

#[test]
fn sdk_client_exec_with_stdin_environment_exit_codes_and_timeout() {
    use pebble_client::{Error, ExecOptions};
    let d = Daemon::start(&["--hold"]);
    let c = d.client();
    let out = c.exec(&ExecOptions::new(["echo", "hello"])).unwrap();
    assert_eq!(
        (
            out.exit_code,
            out.stdout_text().as_str(),
            out.stderr_text().as_str()
        ),
        (0, "hello\n", "")
    );

    let mut opts = ExecOptions::new(["sh", "-c", "cat; echo \"$SECRET\" >&2; pwd"]);
    opts.stdin = b"line from stdin\n".to_vec();
    opts.environment
        .insert("SECRET".into(), "kept out of argv".into());
    opts.working_dir = Some("/tmp".into());
    let out = c.exec(&opts).unwrap();
    assert_eq!(out.stdout_text(), "line from stdin\n/tmp\n");
    assert_eq!(out.stderr_text(), "kept out of argv\n");

    let mut big = ExecOptions::new(["wc", "-c"]);
    big.stdin = vec![b'x'; 300_000];
    assert_eq!(c.exec(&big).unwrap().stdout_text().trim(), "300000");

    match c.exec(&ExecOptions::new(["sh", "-c", "echo partial; exit 3"])) {
        Err(Error::Exec { output, .. }) => {
            assert_eq!(output.exit_code, 3);
            assert_eq!(output.stdout_text(), "partial\n");
        }
        other => panic!("expected an exec error, got {other:?}"),
    }

    let mut slow = ExecOptions::new(["sleep", "10"]);
    slow.timeout = Some(Duration::from_millis(300));
    let started = Instant::now();
    let err = c.exec(&slow).unwrap_err().to_string();
    assert!(err.contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let err = c
        .exec(&ExecOptions::new(["no-such-program"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot find executable"), "{err}");
}
