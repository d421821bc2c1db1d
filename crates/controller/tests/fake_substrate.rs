//! The uniter against a recording fake substrate: no processes are spawned.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use controller::substrate::{BoxFuture, HookInvocation, HookOutput, UnitPlacement};
use controller::{Controller, Substrate, SystemClock};

/// Records every hook run; fails `install` a set number of times.
#[derive(Default)]
struct Recorder {
    runs: Mutex<Vec<(String, String)>>,
    install_failures: Mutex<u32>,
    root: std::path::PathBuf,
    ready: Mutex<BTreeSet<String>>,
    fail_always: Mutex<Option<String>>,
    /// When set, each hook takes this long; concurrency is recorded.
    slow: Mutex<Option<Duration>>,
    active: Mutex<std::collections::HashMap<String, usize>>,
    max_per_unit: Mutex<usize>,
    max_total: Mutex<usize>,
}

impl Substrate for Recorder {
    fn provision(&self, unit: &str, address: &str, charm: &Path) -> std::io::Result<UnitPlacement> {
        let dir = self.root.join(unit.replace('/', "-"));
        let charm_dir = dir.join("charm");
        if !charm_dir.exists() {
            controller::charmdir::copy_dir(charm, &charm_dir)?;
        }
        Ok(UnitPlacement {
            unit: unit.into(),
            dir,
            charm_dir,
            address: address.into(),
        })
    }
    fn refresh_charm(&self, _p: &UnitPlacement, _charm: &Path) -> std::io::Result<()> {
        Ok(())
    }
    fn run_hook<'a>(
        &'a self,
        p: &'a UnitPlacement,
        run: HookInvocation,
    ) -> BoxFuture<'a, std::io::Result<HookOutput>> {
        Box::pin(async move {
            let env = |k: &str| {
                run.env
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let path = env("JUJU_DISPATCH_PATH");
            self.runs
                .lock()
                .unwrap()
                .push((p.unit.clone(), path.clone()));
            let slow = *self.slow.lock().unwrap();
            if let Some(d) = slow {
                {
                    let mut a = self.active.lock().unwrap();
                    *a.entry(p.unit.clone()).or_default() += 1;
                    let per = a[&p.unit];
                    let total: usize = a.values().sum();
                    let mut m = self.max_per_unit.lock().unwrap();
                    *m = (*m).max(per);
                    let mut t = self.max_total.lock().unwrap();
                    *t = (*t).max(total);
                }
                tokio::time::sleep(d).await;
                *self.active.lock().unwrap().get_mut(&p.unit).unwrap() -= 1;
            }
            if self.fail_always.lock().unwrap().as_deref() == Some(path.as_str()) {
                return Ok(HookOutput {
                    code: Some(1),
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                });
            }
            let mut fails = self.install_failures.lock().unwrap();
            if path == "hooks/install" && *fails > 0 {
                *fails -= 1;
                return Ok(HookOutput {
                    code: Some(1),
                    stdout: Vec::new(),
                    stderr: b"boom".to_vec(),
                });
            }
            Ok(HookOutput {
                code: Some(0),
                stdout: Vec::new(),
                stderr: Vec::new(),
            })
        })
    }
    fn ready_containers(&self, _p: &UnitPlacement) -> BTreeSet<String> {
        self.ready.lock().unwrap().clone()
    }
    fn teardown(&self, _p: &UnitPlacement) -> std::io::Result<()> {
        Ok(())
    }
}

fn setup(
    failures: u32,
    with_dispatch: bool,
) -> (
    tempfile::TempDir,
    Controller,
    Arc<Recorder>,
    tokio::runtime::Runtime,
    std::path::PathBuf,
) {
    let home = tempfile::Builder::new()
        .prefix("wf")
        .tempdir_in("/tmp")
        .unwrap();
    let rec = Arc::new(Recorder {
        install_failures: Mutex::new(failures),
        root: home.path().join("fake"),
        ..Default::default()
    });
    let mut cfg = common::config(home.path(), &home.path().join("events"));
    cfg.retry_base = Duration::from_millis(50);
    let ctl = Controller::with_substrate(cfg, rec.clone(), Arc::new(SystemClock)).unwrap();
    let charm = home.path().join("charm");
    std::fs::create_dir_all(&charm).unwrap();
    std::fs::write(
        charm.join("metadata.yaml"),
        "name: fake\ncontainers:\n  web: {}\n",
    )
    .unwrap();
    std::fs::write(charm.join("actions.yaml"), "go: {}\n").unwrap();
    if with_dispatch {
        std::fs::write(charm.join("dispatch"), "never run").unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let c = ctl.clone();
    rt.spawn(async move { c.run(std::future::pending()).await });
    (home, ctl, rec, rt, charm)
}

fn wait(ctl: &Controller) {
    let t = std::time::Instant::now();
    while !ctl.is_settled().unwrap() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "not settled: {:?}",
            ctl.status().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn failed_install_is_retried_with_backoff_and_nothing_else_runs_meanwhile() {
    let (_home, ctl, rec, _rt, charm) = setup(2, true);
    ctl.deploy("fake", &charm, 1, Default::default()).unwrap();
    wait(&ctl);
    let runs: Vec<String> = rec
        .runs
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p)| p.clone())
        .collect();
    assert_eq!(
        runs,
        [
            "hooks/install",
            "hooks/install",
            "hooks/install",
            "hooks/leader-elected",
            "hooks/config-changed",
            "hooks/start"
        ]
    );
    let hist = ctl.status_history("agent:fake/0").unwrap();
    assert_eq!(hist.iter().filter(|s| s.status == "error").count(), 2);
    assert!(hist.iter().any(|s| s.message == "hook failed: \"install\""));
    assert!(ctl.uniter_state("fake/0").unwrap().started);
}

#[test]
fn pebble_ready_follows_start_when_the_substrate_reports_a_ready_container() {
    let (_home, ctl, rec, _rt, charm) = setup(0, true);
    rec.ready.lock().unwrap().insert("web".into());
    ctl.deploy("fake", &charm, 1, Default::default()).unwrap();
    wait(&ctl);
    let runs: Vec<String> = rec
        .runs
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p)| p.clone())
        .collect();
    assert_eq!(runs.last().unwrap(), "hooks/web-pebble-ready");
}

#[test]
fn missing_hooks_count_as_success_but_a_missing_action_fails() {
    let (_home, ctl, rec, rt, charm) = setup(0, false);
    ctl.deploy("fake", &charm, 1, Default::default()).unwrap();
    wait(&ctl);
    assert!(rec.runs.lock().unwrap().is_empty());
    assert!(ctl.uniter_state("fake/0").unwrap().started);
    let log = std::fs::read_to_string(ctl.unit_log_path("fake/0")).unwrap();
    assert!(log.contains("skipped \"install\" hook (missing)"), "{log}");
    let t = rt
        .block_on(ctl.run_action(
            "fake/0",
            "go",
            serde_json::json!({}),
            Duration::from_secs(10),
        ))
        .unwrap();
    assert_eq!(
        (t.status.as_str(), t.message.as_str()),
        ("failed", "action not implemented on unit \"fake/0\"")
    );
}

#[test]
fn an_action_on_a_unit_in_error_runs_and_the_error_stays() {
    let (_home, ctl, rec, rt, charm) = setup(0, true);
    *rec.fail_always.lock().unwrap() = Some("hooks/config-changed".into());
    ctl.deploy("fake", &charm, 1, Default::default()).unwrap();
    let t = std::time::Instant::now();
    while ctl.uniter_state("fake/0").unwrap().error.is_none() {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    let task = rt
        .block_on(ctl.run_action(
            "fake/0",
            "go",
            serde_json::json!({}),
            Duration::from_secs(10),
        ))
        .unwrap();
    assert_eq!(task.status, "completed");
    let st = ctl.uniter_state("fake/0").unwrap();
    assert_eq!(
        st.error.map(|e| e.hook.name()),
        Some("config-changed".to_string())
    );
    assert!(!st.started);
}

#[test]
fn one_hook_at_a_time_per_unit_and_units_in_parallel() {
    let (_home, ctl, rec, _rt, charm) = setup(0, true);
    *rec.slow.lock().unwrap() = Some(Duration::from_millis(40));
    ctl.deploy("fake", &charm, 6, Default::default()).unwrap();
    wait(&ctl);
    assert_eq!(*rec.max_per_unit.lock().unwrap(), 1);
    assert!(
        *rec.max_total.lock().unwrap() > 1,
        "units should run hooks concurrently"
    );
    assert_eq!(rec.runs.lock().unwrap().len(), 6 * 4);
}

#[test]
fn without_automatic_retries_a_failed_hook_waits_for_resolve() {
    let (_home, ctl, rec, _rt, charm) = setup(1, true);
    ctl.set_model_config("automatically-retry-hooks", serde_json::json!(false))
        .unwrap();
    ctl.deploy("fake", &charm, 1, Default::default()).unwrap();
    let t = std::time::Instant::now();
    while ctl.uniter_state("fake/0").unwrap().error.is_none() {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rec.runs.lock().unwrap().len(), 1, "no automatic retry");
    ctl.resolve("fake/0", true).unwrap();
    wait(&ctl);
    assert_eq!(rec.runs.lock().unwrap().len(), 5);
}

#[test]
fn wait_settled_returns_once_every_hook_ran_and_times_out_while_hooks_run() {
    let (_home, ctl, rec, rt, charm) = setup(0, true);
    *rec.slow.lock().unwrap() = Some(Duration::from_millis(300));
    ctl.deploy("fake", &charm, 2, Default::default()).unwrap();
    // Four hooks of 300 ms each per unit are still to run.
    let early = rt.block_on(ctl.wait_settled(Duration::from_millis(100)));
    assert!(
        matches!(early, Err(controller::ControllerError::NotSettled(_))),
        "{early:?}"
    );
    *rec.slow.lock().unwrap() = None;
    rt.block_on(ctl.wait_settled(Duration::from_secs(20)))
        .unwrap();
    assert!(ctl.is_settled().unwrap());
    assert_eq!(rec.runs.lock().unwrap().len(), 2 * 4);
}
