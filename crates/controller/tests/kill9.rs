//! A real `kill -9` of the controller process in the middle of a hook.
//!
//! The test binary re-runs itself as the controller child (selected by an
//! environment variable), so the crash is a true SIGKILL of a process that
//! holds the store open, not a simulated shutdown.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use controller::Controller;

const CHILD_ENV: &str = "WARD_KILL9_CHILD_HOME";
const TEST_NAME: &str = "kill_9_of_the_controller_mid_hook_keeps_all_or_nothing";

fn charm_dir(home: &Path) -> PathBuf {
    common::charm(
        home,
        "crashy",
        "peers:\n  cluster:\n    interface: c\n",
        "",
        "",
        r#"
case "$JUJU_DISPATCH_PATH" in
  hooks/config-changed)
    relation-set -r "$(relation-ids cluster)" k=v1
    state-set k=v1
    if [ ! -e "$WARD_TEST_EVENTS.restarted" ]; then echo $$ > "$WARD_TEST_EVENTS.inhook"; sleep 30; fi ;;
esac"#,
    )
}

/// The child: a controller on the given home, deploying once, running until killed.
fn child_main(home: &Path) {
    let events = home.join("events.log");
    let ctl = Controller::open(common::config(home, &events)).unwrap();
    if ctl.status().unwrap().applications.is_empty() {
        ctl.deploy("crashy", &charm_dir(home), 1, Default::default())
            .unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(ctl.run(std::future::pending()));
}

fn spawn_child(home: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, home)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn kill_9_of_the_controller_mid_hook_keeps_all_or_nothing() {
    if let Some(home) = std::env::var_os(CHILD_ENV) {
        child_main(Path::new(&home));
        return;
    }
    let home = tempfile::Builder::new()
        .prefix("wk")
        .tempdir_in("/tmp")
        .unwrap();
    let events = home.path().join("events.log");
    std::fs::write(&events, "").unwrap();
    let inhook = home.path().join("events.log.inhook");
    let mut child = spawn_child(home.path());
    wait_for("the hook to be in flight", Duration::from_secs(30), || {
        inhook.exists()
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The orphaned hook process keeps running, as it would under Juju; stop it.
    if let Ok(pid) = std::fs::read_to_string(&inhook)
        .unwrap()
        .trim()
        .parse::<i32>()
    {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }

    // Inspect the store as the crash left it: nothing of the interrupted hook.
    let ctl = Controller::open(common::config(home.path(), &events)).unwrap();
    let rel = ctl.status().unwrap().relations[0].id;
    assert!(!ctl
        .relation_data(rel, "crashy/0")
        .unwrap()
        .contains_key("k"));
    let before = ctl.uniter_state("crashy/0").unwrap();
    assert!(before.installed && !before.started);

    std::fs::write(home.path().join("events.log.restarted"), "").unwrap();
    let mut child = spawn_child(home.path());
    wait_for("start after restart", Duration::from_secs(30), || {
        ctl.uniter_state("crashy/0").unwrap().started
    });
    child.kill().unwrap();
    child.wait().unwrap();

    let ev: Vec<String> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap_or("").to_string())
        .collect();
    assert_eq!(
        ev,
        [
            "hooks/install",
            "hooks/cluster-relation-created",
            "hooks/leader-elected",
            "hooks/config-changed",
            "hooks/config-changed",
            "hooks/start"
        ]
    );
    assert_eq!(ctl.relation_data(rel, "crashy/0").unwrap()["k"], "v1");
}
