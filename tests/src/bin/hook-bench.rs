//! Hook dispatch under one controller: a Rust no-op charm (SDK) against the equivalent
//! Python `ops` charm, on the plain-process and the bubblewrap substrates. Each sample is
//! one config change to one unit, timed from `set_config` until the model is settled
//! again: the config-changed hook with the hook tools it runs (the Rust charm runs
//! `status-set`; `ops` runs `juju-log` twice, `is-leader` and `status-set`). The two
//! charms' samples alternate, so that load that comes and goes weighs on both alike.
//!
//! `hook-bench <project-root> <python-with-ops> [samples]`; bench/run.sh runs it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use controller::{
    Controller, ControllerConfig, SandboxConfig, SandboxSubstrate, Substrate, SystemClock,
};
use serde_json::json;
use tokio::runtime::Runtime;
use ward_e2e::copy_dir;

/// Waits on the controller's idle notifications, so that the wait itself takes no CPU
/// from the hooks being measured (2-core machines).
fn settle(rt: &Runtime, ctl: &Controller, timeout: Duration) -> anyhow::Result<()> {
    Ok(rt.block_on(ctl.wait_settled(timeout))?)
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One sample: a config change to `app`, timed until the model is settled again.
fn sample(rt: &Runtime, ctl: &Controller, app: &str, n: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    // set_config records the change before it returns, so the model is unsettled
    // until the unit's uniter has run config-changed and gone idle again.
    ctl.set_config(app, [("n".to_string(), Some(json!(n)))].into())?;
    if ctl.is_settled()? {
        bail!("{app}: the config change left nothing to run");
    }
    settle(rt, ctl, Duration::from_secs(60))?;
    Ok(started.elapsed())
}

/// p50 of each app's samples, taken in turn (one of each app per round), so that load
/// that comes and goes on the machine weighs on every app alike.
fn measure(
    rt: &Runtime,
    ctl: &Controller,
    apps: &[&str],
    samples: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = vec![Vec::new(); apps.len()];
    for i in 1..=samples {
        for (app, t) in apps.iter().zip(&mut times) {
            t.push(sample(rt, ctl, app, i)?);
        }
    }
    Ok(times.into_iter().map(p50).collect())
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(
        args.next()
            .context("usage: hook-bench <project-root> <python> [samples]")?,
    );
    let python = std::path::absolute(
        args.next()
            .context("usage: hook-bench <project-root> <python> [samples]")?,
    )?;
    let samples: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(30);
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("no binary directory")?
        .to_path_buf();
    let jujuc = bin_dir.join("e2e-jujuc");
    let home = tempfile::Builder::new()
        .prefix("hook-bench")
        .tempdir_in("/tmp")?;
    let charms = root.join("tests/charms");
    let rust = home.path().join("noop");
    copy_dir(&charms.join("noop"), &rust)?;
    std::fs::copy(bin_dir.join("noop-charm"), rust.join("dispatch"))?;
    let py = home.path().join("ops-noop");
    copy_dir(&charms.join("ops-noop"), &py)?;
    // The interpreter behind the venv, bound read-only into charm sandboxes.
    let real = std::fs::canonicalize(&python).with_context(|| {
        format!(
            "{}: no Python with ops there (scripts/deps.sh makes .venv)",
            python.display()
        )
    })?;
    let prefix = real
        .parent()
        .and_then(Path::parent)
        .context("python has no prefix")?
        .to_path_buf();
    let venv = python
        .parent()
        .and_then(Path::parent)
        .context("python has no venv")?
        .to_path_buf();

    println!("| charm | substrate | config-changed p50 ({samples} samples) |");
    println!("|---|---|---|");
    let mut rows = Vec::new();
    // HOOK_BENCH_ONLY=<substrate label> measures one substrate (for profiling).
    let only = std::env::var("HOOK_BENCH_ONLY").ok();
    for (sandboxed, runner) in [(false, false), (true, false), (true, true)] {
        let label = match (sandboxed, runner) {
            (false, _) => "process",
            (true, false) => "bubblewrap, sandbox per hook",
            (true, true) => "bubblewrap, long-lived sandbox",
        };
        if only.as_deref().is_some_and(|o| o != label) {
            continue;
        }
        let ward_home = home.path().join(label.replace([' ', ','], ""));
        let mut cfg = ControllerConfig::new(&ward_home);
        cfg.jujuc_path = jujuc.clone();
        cfg.extra_env
            .push(("WARD_TEST_PYTHON".into(), python.display().to_string()));
        let substrate: Arc<dyn Substrate> = if sandboxed {
            Arc::new(SandboxSubstrate::new(SandboxConfig {
                root: ward_home.join("units"),
                bwrap: PathBuf::from("/usr/bin/bwrap"),
                pebble: bin_dir.join("e2e-pebble"),
                rocks_dir: None,
                tools: vec![ward_home.join("tools"), jujuc.clone()],
                extra_ro_binds: vec![venv.clone(), prefix.clone()],
                hook_runner: runner.then(|| bin_dir.join("e2e-hook-runner")),
            })?)
        } else {
            Arc::new(controller::ProcessSubstrate::new(ward_home.join("units")))
        };
        let ctl = Controller::with_substrate(cfg, substrate, Arc::new(SystemClock))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let c = ctl.clone();
        rt.spawn(async move { c.run(std::future::pending()).await });
        ctl.deploy("noop", &rust, 1, Default::default())?;
        ctl.deploy("ops-noop", &py, 1, Default::default())?;
        settle(&rt, &ctl, Duration::from_secs(120))?;
        // HOOK_BENCH_RUST_ONLY=1 skips the Python charm's samples (for profiling).
        let (r, p) = if std::env::var_os("HOOK_BENCH_RUST_ONLY").is_some() {
            (measure(&rt, &ctl, &["noop"], samples)?[0], Duration::ZERO)
        } else {
            let t = measure(&rt, &ctl, &["noop", "ops-noop"], samples)?;
            (t[0], t[1])
        };
        println!("| Rust (SDK) | {label} | {:.2} ms |", r.as_secs_f64() * 1e3);
        println!(
            "| Python (ops 3.9) | {label} | {:.2} ms |",
            p.as_secs_f64() * 1e3
        );
        rows.push((label, r, p));
        drop(rt);
    }
    println!();
    println!("| substrate | Python / Rust | target |");
    println!("|---|---|---|");
    for (label, r, p) in rows {
        println!(
            "| {label} | {:.1}× | ≥ 50× |",
            p.as_secs_f64() / r.as_secs_f64()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hook-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
