//! What Ward can run today, end to end on this machine: the embedded controller
//! deploys the SDK's Rust example charm and a Canonical `ops` charm, relates them,
//! waits until they settle, runs an action and prints the model.
//!
//! `ward-demo <charms-dir> <python-with-ops>`; scripts/quickstart.sh runs it. It will
//! give way to `ward deploy postgresql …` when the CLI and the database charms land.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use controller::{Controller, ControllerConfig};
use ward_e2e::copy_dir;

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(charms), Some(python)) = (args.next(), args.next()) else {
        bail!("usage: ward-demo <charms-dir> <python-with-ops>");
    };
    let charms = PathBuf::from(charms);
    // Hooks run in the unit's charm directory: make the interpreter's path absolute
    // (without resolving symlinks, which would step out of the venv).
    let python = std::path::absolute(&python)
        .with_context(|| format!("no Python at {python}"))?
        .display()
        .to_string();
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("no binary directory")?
        .to_path_buf();
    let jujuc = bin_dir.join("e2e-jujuc");
    let greeter_bin = bin_dir.join("greeter-charm");
    for b in [&jujuc, &greeter_bin] {
        if !b.is_file() {
            bail!(
                "{} is missing: build with `cargo build --release -p ward-e2e`",
                b.display()
            );
        }
    }
    let home = tempfile::Builder::new().prefix("ward-demo").tempdir()?;
    let greeter = home.path().join("greeter");
    copy_dir(&charms.join("greeter"), &greeter)?;
    std::fs::copy(&greeter_bin, greeter.join("dispatch"))?;
    let listener = home.path().join("ops-listener");
    copy_dir(&charms.join("ops-listener"), &listener)?;

    let mut cfg = ControllerConfig::new(home.path().join("ward"));
    cfg.jujuc_path = jujuc;
    cfg.extra_env.push(("WARD_TEST_PYTHON".into(), python));
    let ctl = Controller::open(cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let c = ctl.clone();
    rt.spawn(async move { c.run(std::future::pending()).await });

    let t0 = Instant::now();
    println!("deploying greeter (Rust SDK charm, 3 units) and ops-listener (Python ops charm)");
    ctl.deploy("greeter", &greeter, 3, BTreeMap::new())?;
    ctl.deploy("ops-listener", &listener, 1, BTreeMap::new())?;
    ctl.integrate("greeter", "ops-listener")?;
    let mut last = String::new();
    loop {
        let s = ctl.status()?;
        let line: Vec<String> = s
            .applications
            .iter()
            .flat_map(|a| &a.units)
            .map(|u| format!("{} {}/{}", u.name, u.workload.status, u.agent.status))
            .collect();
        let line = line.join("  ");
        if line != last {
            println!("  {:>5.1}s  {line}", t0.elapsed().as_secs_f64());
            last = line;
        }
        let all_active = s
            .applications
            .iter()
            .flat_map(|a| &a.units)
            .all(|u| u.workload.status == "active");
        if all_active && ctl.is_settled()? {
            break;
        }
        if let Some(u) = s
            .applications
            .iter()
            .flat_map(|a| &a.units)
            .find(|u| u.agent.status == "error")
        {
            let log = std::fs::read_to_string(ctl.unit_log_path(&u.name)).unwrap_or_default();
            bail!("{} is in error: {}\n{log}", u.name, u.agent.message);
        }
        if t0.elapsed() > Duration::from_secs(120) {
            bail!("not settled after 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("settled in {:.1}s\n", t0.elapsed().as_secs_f64());
    println!(
        "{:<16} {:<10} {:<8} {:<12} message",
        "unit", "workload", "agent", "address"
    );
    for a in &ctl.status()?.applications {
        for u in &a.units {
            let name = if u.leader {
                format!("{}*", u.name)
            } else {
                u.name.clone()
            };
            println!(
                "{name:<16} {:<10} {:<8} {:<12} {}",
                u.workload.status, u.agent.status, u.address, u.workload.message
            );
        }
    }
    let leader = ctl
        .status()?
        .applications
        .iter()
        .find(|a| a.name == "greeter")
        .and_then(|a| a.units.iter().find(|u| u.leader))
        .map(|u| u.name.clone())
        .context("no greeter leader")?;
    let task = rt.block_on(ctl.run_action(
        &leader,
        "greet",
        serde_json::json!({"name": "Ward"}),
        Duration::from_secs(30),
    ))?;
    println!(
        "\naction greet on {leader}: {} -> {}",
        task.status, task.results["greeting"]
    );
    if task.status != "completed" {
        bail!("the action failed: {}", task.message);
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ward-demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}
