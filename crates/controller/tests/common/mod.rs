//! Shared helpers for the controller's integration tests.
#![allow(dead_code, reason = "each test binary uses a subset")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use controller::{Controller, ControllerConfig};

/// A controller on a temp WARD_HOME, running on its own runtime thread.
pub struct Harness {
    pub home: tempfile::TempDir,
    pub ctl: Controller,
    pub events: PathBuf,
    pub rt: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub fn config(home: &Path, events: &Path) -> ControllerConfig {
    let mut cfg = ControllerConfig::new(home);
    cfg.jujuc_path = PathBuf::from(env!("CARGO_BIN_EXE_ward-jujuc"));
    cfg.retry_base = Duration::from_millis(300);
    cfg.hook_concurrency = 8;
    cfg.extra_env
        .push(("WARD_TEST_EVENTS".into(), events.display().to_string()));
    cfg
}

impl Harness {
    pub fn new() -> Harness {
        let home = tempfile::Builder::new()
            .prefix("wt")
            .tempdir_in("/tmp")
            .unwrap();
        let events = home.path().join("events.log");
        std::fs::write(&events, "").unwrap();
        let ctl = Controller::open(config(home.path(), &events)).unwrap();
        let mut h = Harness {
            home,
            ctl,
            events,
            rt: None,
            stop: None,
        };
        h.start();
        h
    }

    /// Start (or restart) the controller's run loop on a fresh runtime.
    pub fn start(&mut self) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let ctl = self.ctl.clone();
        rt.spawn(async move {
            ctl.run(async {
                let _ = rx.await;
            })
            .await
        });
        self.rt = Some(rt);
        self.stop = Some(tx);
    }

    /// Drop the runtime abruptly (as a crash would), killing in-flight hooks.
    pub fn crash(&mut self) {
        self.stop = None;
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }

    /// Reopen the store from disk with a new Controller and start it.
    pub fn reopen(&mut self) {
        self.ctl = Controller::open(config(self.home.path(), &self.events)).unwrap();
        self.start();
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().unwrap().block_on(f)
    }

    /// All events logged by test charms: lines "unit dispatch-path remote".
    pub fn events(&self) -> Vec<String> {
        std::fs::read_to_string(&self.events)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    /// Events of one unit, as "hooks/x[:remote]".
    pub fn unit_events(&self, unit: &str) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|l| {
                let mut p = l.split(' ');
                (p.next() == Some(unit)).then(|| {
                    let path = p
                        .next()
                        .unwrap_or("")
                        .trim_start_matches("hooks/")
                        .to_string();
                    match p.next() {
                        Some(r) if !r.is_empty() => format!("{path}:{r}"),
                        _ => path,
                    }
                })
            })
            .collect()
    }

    pub fn wait_until(&self, what: &str, timeout: Duration, mut f: impl FnMut(&Harness) -> bool) {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "timed out waiting for {what}\nevents:\n{}\nstatus: {:#?}",
            self.events().join("\n"),
            self.ctl.status().ok()
        );
    }

    pub fn settle(&self) {
        self.wait_until("settled", Duration::from_secs(60), |h| {
            h.ctl.is_settled().unwrap()
        });
    }

    pub fn unit_log(&self, unit: &str) -> String {
        std::fs::read_to_string(self.ctl.unit_log_path(unit)).unwrap_or_default()
    }

    pub fn workload(&self, unit: &str) -> (String, String) {
        let s = self.ctl.status().unwrap();
        for a in s.applications {
            for u in a.units {
                if u.name == unit {
                    return (u.workload.status, u.workload.message);
                }
            }
        }
        panic!("no unit {unit}");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// Write a charm: metadata.yaml, optional config/actions, and a `dispatch` shell
/// script whose body runs after logging the event.
pub fn charm(
    root: &Path,
    name: &str,
    metadata: &str,
    config: &str,
    actions: &str,
    body: &str,
) -> PathBuf {
    let dir = root.join(format!("charm-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("metadata.yaml"),
        format!("name: {name}\n{metadata}"),
    )
    .unwrap();
    if !config.is_empty() {
        std::fs::write(dir.join("config.yaml"), config).unwrap();
    }
    if !actions.is_empty() {
        std::fs::write(dir.join("actions.yaml"), actions).unwrap();
    }
    let script = format!(
        "#!/bin/sh\necho \"$JUJU_UNIT_NAME $JUJU_DISPATCH_PATH $JUJU_REMOTE_UNIT\" >> \"$WARD_TEST_EVENTS\"\n{body}\nexit 0\n"
    );
    let p = dir.join("dispatch");
    std::fs::write(&p, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

pub fn no_config() -> BTreeMap<String, serde_json::Value> {
    BTreeMap::new()
}

/// A clock tests move by hand.
#[derive(Debug, Default)]
pub struct FakeClock(pub std::sync::atomic::AtomicI64);

impl FakeClock {
    pub fn starting_now() -> std::sync::Arc<FakeClock> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        std::sync::Arc::new(FakeClock(std::sync::atomic::AtomicI64::new(now)))
    }
    pub fn advance(&self, d: Duration) {
        self.0
            .fetch_add(d.as_millis() as i64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl controller::Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Harness {
    /// Replace the controller with one using `clock`.
    pub fn with_clock(clock: std::sync::Arc<FakeClock>) -> Harness {
        let mut h = Harness::new();
        h.crash();
        let cfg = config(h.home.path(), &h.events);
        let sub = std::sync::Arc::new(controller::ProcessSubstrate::new(
            h.home.path().join("units"),
        ));
        h.ctl = Controller::with_substrate(cfg, sub, clock).unwrap();
        h.start();
        h
    }
}
