//! End-to-end tests for Ward; the tests live in `tests/tests/`, the charms they deploy
//! in `tests/charms/`. This library holds what the tests and `ward-demo` share: copying
//! charm directories, running a controller on a temporary home, and waiting for a model
//! to settle with every unit's log at hand when it does not.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use controller::{Controller, ControllerConfig};

/// Copies a charm directory (recursively).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()))?;
        } else {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// Lays out a charm directory to deploy: `source` (metadata.yaml and friends) copied to
/// `home/name`, with `binary` as its `dispatch` when given.
pub fn charm_dir(
    home: &Path,
    name: &str,
    source: &Path,
    binary: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    use anyhow::Context as _;
    let dir = home.join(name);
    copy_dir(source, &dir).with_context(|| format!("copying charm {}", source.display()))?;
    if let Some(bin) = binary {
        std::fs::copy(bin, dir.join("dispatch"))
            .with_context(|| format!("copying {} as {name}'s dispatch", bin.display()))?;
    }
    Ok(dir)
}

/// The ward-e2e binaries a sandboxed model runs: the hook-tool client, the workload
/// manager every container starts, and the long-lived hook runner.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `e2e-jujuc` (ward-jujuc).
    pub jujuc: PathBuf,
    /// `e2e-pebble` (ward-pebble).
    pub pebble: PathBuf,
    /// `e2e-hook-runner` (ward-hook-runner).
    pub hook_runner: PathBuf,
    /// Where the charm binaries (`postgresql-charm`, …) are.
    pub dir: PathBuf,
}

impl Binaries {
    /// The binaries next to the running executable (the bench binaries), with a hint to
    /// build them when one is missing.
    pub fn next_to_current_exe() -> anyhow::Result<Binaries> {
        use anyhow::Context as _;
        let dir = std::env::current_exe()?
            .parent()
            .context("the running executable has no directory")?
            .to_path_buf();
        let b = Binaries {
            jujuc: dir.join("e2e-jujuc"),
            pebble: dir.join("e2e-pebble"),
            hook_runner: dir.join("e2e-hook-runner"),
            dir,
        };
        for p in [&b.jujuc, &b.pebble, &b.hook_runner] {
            b.need(p)?;
        }
        Ok(b)
    }

    /// A charm (or other) binary built beside these, e.g. `postgresql-charm`.
    pub fn charm(&self, name: &str) -> anyhow::Result<PathBuf> {
        let p = self.dir.join(name);
        self.need(&p)?;
        Ok(p)
    }

    fn need(&self, p: &Path) -> anyhow::Result<()> {
        if !p.is_file() {
            anyhow::bail!(
                "{} is missing: build with `cargo build --release -p ward-e2e --bins`",
                p.display()
            );
        }
        Ok(())
    }
}

/// The ward-e2e binaries as Cargo built them for this integration test
/// (`CARGO_BIN_EXE_*`), as a [`Binaries`].
#[macro_export]
macro_rules! test_binaries {
    () => {{
        let jujuc = std::path::PathBuf::from(env!("CARGO_BIN_EXE_e2e-jujuc"));
        $crate::Binaries {
            dir: jujuc.parent().expect("binary directory").to_path_buf(),
            jujuc,
            pebble: env!("CARGO_BIN_EXE_e2e-pebble").into(),
            hook_runner: env!("CARGO_BIN_EXE_e2e-hook-runner").into(),
        }
    }};
}

/// A controller running on its own runtime over a state directory.
pub struct Model {
    /// The controller.
    pub ctl: Controller,
    /// Its runtime (for `run_action` and friends).
    pub rt: tokio::runtime::Runtime,
    /// With the sandbox substrate: stops the workload sandboxes when the model is dropped
    /// (they outlive controllers by design).
    pub sandboxes: Option<Sandboxes>,
}

/// The units' root of a sandboxed model; dropping it stops every workload sandbox there.
#[derive(Debug)]
pub struct Sandboxes(PathBuf);

impl Drop for Sandboxes {
    fn drop(&mut self) {
        controller::sandbox::stop_all(&self.0);
    }
}

impl Model {
    /// Opens a controller on `home` with the hook-tool client at `jujuc` and extra
    /// environment for every hook, and starts its run loop.
    pub fn start(home: &Path, jujuc: &Path, extra_env: &[(&str, &str)]) -> anyhow::Result<Model> {
        let mut cfg = ControllerConfig::new(home);
        cfg.jujuc_path = PathBuf::from(jujuc);
        cfg.retry_base = Duration::from_millis(300);
        cfg.extra_env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        Self::run(Controller::open(cfg)?)
    }

    /// A controller whose units run in bubblewrap sandboxes (`SandboxSubstrate`), with
    /// `pebble` as each workload container's entry point and the project's rocks.
    /// `hook_runner` (`ward-hook-runner`) keeps one charm sandbox per unit; without it
    /// every hook gets a fresh sandbox.
    pub fn start_sandboxed(
        home: &Path,
        jujuc: &Path,
        pebble: &Path,
        hook_runner: Option<&Path>,
    ) -> anyhow::Result<Model> {
        let mut cfg = ControllerConfig::new(home);
        cfg.retry_base = Duration::from_millis(300);
        Self::start_sandboxed_cfg(cfg, jujuc, pebble, hook_runner)
    }

    /// [`Model::start_sandboxed`] with a set of [`Binaries`] and a long-lived hook runner
    /// per unit, as `ward` runs units; failed hooks are retried quickly for tests.
    pub fn start_with(home: &Path, bins: &Binaries) -> anyhow::Result<Model> {
        Self::start_sandboxed(home, &bins.jujuc, &bins.pebble, Some(&bins.hook_runner))
    }

    /// [`Model::start_with`] keeping the controller's default retry delay of failed hooks,
    /// as `ward` has it: for benchmarks that stand for what a user sees.
    pub fn start_as_ward(home: &Path, bins: &Binaries) -> anyhow::Result<Model> {
        let cfg = ControllerConfig::new(home);
        Self::start_sandboxed_cfg(cfg, &bins.jujuc, &bins.pebble, Some(&bins.hook_runner))
    }

    fn start_sandboxed_cfg(
        mut cfg: ControllerConfig,
        jujuc: &Path,
        pebble: &Path,
        hook_runner: Option<&Path>,
    ) -> anyhow::Result<Model> {
        let home = cfg.home.clone();
        cfg.jujuc_path = PathBuf::from(jujuc);
        let rocks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rocks");
        let substrate = controller::SandboxSubstrate::new(controller::SandboxConfig {
            root: home.join("units"),
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            pebble: pebble.to_path_buf(),
            rocks_dir: Some(rocks),
            tools: vec![home.join("tools"), jujuc.to_path_buf()],
            extra_ro_binds: Vec::new(),
            hook_runner: hook_runner.map(Path::to_path_buf),
        })?;
        let mut model = Self::run(Controller::with_substrate(
            cfg,
            std::sync::Arc::new(substrate),
            std::sync::Arc::new(controller::SystemClock),
        )?)?;
        model.sandboxes = Some(Sandboxes(home.join("units")));
        Ok(model)
    }

    fn run(ctl: Controller) -> anyhow::Result<Model> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let c = ctl.clone();
        rt.spawn(async move { c.run(std::future::pending()).await });
        Ok(Model {
            ctl,
            rt,
            sandboxes: None,
        })
    }
}

/// A unit's workload status and message (empty if there is no such unit).
pub fn workload(ctl: &Controller, unit: &str) -> (String, String) {
    let s = ctl.status().expect("status");
    s.applications
        .iter()
        .flat_map(|a| &a.units)
        .find(|u| u.name == unit)
        .map(|u| (u.workload.status.clone(), u.workload.message.clone()))
        .unwrap_or_default()
}

/// A unit's address (empty if there is no such unit, or the status cannot be read).
pub fn address(ctl: &Controller, unit: &str) -> String {
    ctl.status()
        .ok()
        .and_then(|s| {
            s.applications
                .iter()
                .flat_map(|a| &a.units)
                .find(|u| u.name == unit)
                .map(|u| u.address.clone())
        })
        .unwrap_or_default()
}

/// Every unit as (name, workload status, message, address); empty if the status cannot
/// be read.
pub fn units(ctl: &Controller) -> Vec<(String, String, String, String)> {
    ctl.status()
        .map(|s| {
            s.applications
                .iter()
                .flat_map(|a| &a.units)
                .map(|u| {
                    (
                        u.name.clone(),
                        u.workload.status.clone(),
                        u.workload.message.clone(),
                        u.address.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every unit's log and every relation's application bags, for failure messages.
pub fn dump(ctl: &Controller) -> String {
    let status = ctl.status().expect("status");
    let mut out = format!("{status:#?}\n");
    for u in status.applications.iter().flat_map(|a| &a.units) {
        let log = std::fs::read_to_string(ctl.unit_log_path(&u.name)).unwrap_or_default();
        out.push_str(&format!("--- {} log:\n{log}\n", u.name));
    }
    for r in &status.relations {
        for e in &r.endpoints {
            let app = e.split(':').next().unwrap_or_default();
            out.push_str(&format!(
                "--- relation {} bag of {app}: {:?}\n",
                r.id,
                ctl.relation_data(r.id, app)
            ));
        }
    }
    out
}

/// Waits (up to `timeout`) until `done` holds and every uniter is idle.
pub fn settle(
    ctl: &Controller,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&Controller) -> bool,
) -> anyhow::Result<()> {
    let t = Instant::now();
    while !(done(ctl) && ctl.is_settled()?) {
        if t.elapsed() > timeout {
            anyhow::bail!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                dump(ctl)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Fails if any unit was ever in error (a retried hook failure would otherwise hide).
pub fn assert_no_hook_failed(ctl: &Controller) {
    for u in ctl
        .status()
        .expect("status")
        .applications
        .iter()
        .flat_map(|a| &a.units)
    {
        let history = ctl
            .status_history(&format!("agent:{}", u.name))
            .expect("history");
        let errors: Vec<_> = history.iter().filter(|h| h.status == "error").collect();
        assert!(errors.is_empty(), "{} was in error: {errors:?}", u.name);
    }
}

/// What the postgresql charm's `get-password` action on `unit` answers for `user` (the
/// operator's when `None`), as a user runs it.
pub fn get_password(
    rt: &tokio::runtime::Runtime,
    ctl: &Controller,
    unit: &str,
    user: Option<&str>,
) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let params = match user {
        Some(u) => serde_json::json!({ "username": u }),
        None => serde_json::json!({}),
    };
    let task =
        rt.block_on(ctl.run_action(unit, "get-password", params, Duration::from_secs(60)))?;
    Ok(task.results["password"]
        .as_str()
        .with_context(|| {
            format!(
                "get-password on {unit} gave no password: {:?}",
                task.results
            )
        })?
        .to_string())
}

/// Runs one SQL string with psql as `user` on `db` at `host`: the password goes in the
/// environment, never in argv. Returns the unaligned, tuples-only output.
pub fn psql(host: &str, user: &str, password: &str, db: &str, sql: &str) -> Result<String, String> {
    let out = std::process::Command::new("psql")
        .args([
            "-h",
            host,
            "-U",
            user,
            "-d",
            db,
            "-tAq",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .map_err(|e| format!("cannot run psql (apt-get install -y postgresql-client-15): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

/// The project's root directory (the workspace).
pub fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("project root")
}

/// The newest modification time of the files under `dir`.
fn newest(dir: &Path) -> Option<std::time::SystemTime> {
    let mut out = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let t = if e.file_type().ok()?.is_dir() {
            newest(&e.path())
        } else {
            e.metadata().and_then(|m| m.modified()).ok()
        };
        out = out.max(t);
    }
    out
}

/// The `ward` binary for a test that drives the CLI: `$WARD_BIN`, else the one in the
/// running test's profile directory (`cargo test --workspace` builds it there) when it is
/// newer than the sources it is built from, else built there with cargo.
pub fn ward_bin() -> anyhow::Result<PathBuf> {
    use anyhow::Context as _;
    if let Some(p) = std::env::var_os("WARD_BIN").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test binary has no target directory")?;
    let ward = profile_dir.join("ward");
    let built = ward.metadata().and_then(|m| m.modified()).ok();
    let sources = ["crates/ward", "crates/controller", "Cargo.lock"]
        .iter()
        .filter_map(|p| {
            let p = project().join(p);
            if p.is_dir() {
                newest(&p)
            } else {
                p.metadata().and_then(|m| m.modified()).ok()
            }
        })
        .max();
    if built.is_some() && built >= sources {
        return Ok(ward);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = profile_dir.parent().context("no target directory")?;
    let mut build = std::process::Command::new(cargo);
    build
        .args(["build", "--quiet", "-p", "ward", "--bin", "ward"])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(project());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().context("running cargo build -p ward")?;
    anyhow::ensure!(status.success(), "cargo build -p ward --bin ward failed");
    Ok(ward)
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
