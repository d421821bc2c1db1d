//! Deploy N units (default 1,000) of a no-op charm and time how long they take
//! to settle (install → leader-elected/leader-settings-changed →
//! config-changed → start → idle). Prints a table with the controller's peak
//! RSS and, as a baseline measured in the same run, the cost of spawning the
//! same hook process directly.
//!
//! `cargo run --release -p controller --example settle_bench -- [units]`

use std::time::{Duration, Instant};

use anyhow::Context;
use controller::{Controller, ControllerConfig};

fn proc_status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// (user+sys of this process, user+sys of waited-for children), seconds.
fn cpu_times() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // After ")": state(0) ... utime(11) stime(12) cutime(13) cstime(14), in clock ticks.
    let tick = 100.0;
    let get = |i: usize| f.get(i).copied().unwrap_or(0.0) / tick;
    (get(11) + get(12), get(13) + get(14))
}

fn main() -> anyhow::Result<()> {
    let units: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()
        .context("units must be a number")?
        .unwrap_or(1000);
    let home = tempfile::Builder::new()
        .prefix("ward-bench")
        .tempdir_in("/tmp")?;
    let charm = home.path().join("noop");
    std::fs::create_dir_all(&charm)?;
    std::fs::write(charm.join("metadata.yaml"), "name: noop\n")?;
    let dispatch = charm.join("dispatch");
    std::fs::write(&dispatch, "#!/bin/sh\nexit 0\n")?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dispatch, std::fs::Permissions::from_mode(0o755))?;

    // Baseline: spawn + wait of the same hook process, sequentially.
    let n_base = 200;
    let t = Instant::now();
    for _ in 0..n_base {
        std::process::Command::new(&dispatch).status()?;
    }
    let spawn_cost = t.elapsed() / n_base;

    let mut cfg = ControllerConfig::new(home.path().join("home"));
    let exe = std::env::current_exe()?;
    let jujuc = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("ward-jujuc"))
        .filter(|p| p.exists());
    if let Some(p) = &jujuc {
        cfg.jujuc_path = p.clone();
    }
    let ctl = Controller::open(cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = ctl.clone();
    rt.spawn(async move {
        runner
            .run(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let (cpu0, child0) = cpu_times();
    let start = Instant::now();
    ctl.deploy("noop", &charm, units, Default::default())?;
    let deployed = start.elapsed();
    let mut settled = None;
    while start.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_millis(250));
        if ctl.is_settled()? {
            settled = Some(start.elapsed());
            break;
        }
    }
    let settled = settled.context("units did not settle within 10 minutes")?;
    let (cpu1, child1) = cpu_times();
    let st = ctl.status()?;
    let started = st.applications[0]
        .units
        .iter()
        .filter(|u| u.agent.status == "idle" && u.workload.status == "unknown")
        .count();
    let hooks = units * 4;

    // Hook-tool call cost: one unit calls `is-leader` N times in its install hook.
    let calls = 300;
    let tool_cost = if jujuc.is_some() {
        let tc = home.path().join("toolcalls");
        std::fs::create_dir_all(&tc)?;
        std::fs::write(tc.join("metadata.yaml"), "name: toolcalls\n")?;
        let out = home.path().join("toolcalls.out");
        let script = format!(
            "#!/bin/sh\n[ \"$JUJU_DISPATCH_PATH\" = hooks/install ] || exit 0\ns=$(date +%s%N)\ni=0\nwhile [ $i -lt {calls} ]; do is-leader >/dev/null; i=$((i+1)); done\ne=$(date +%s%N)\necho $((e-s)) > {}\n",
            out.display()
        );
        std::fs::write(tc.join("dispatch"), script)?;
        std::fs::set_permissions(tc.join("dispatch"), std::fs::Permissions::from_mode(0o755))?;
        ctl.deploy("toolcalls", &tc, 1, Default::default())?;
        let t = Instant::now();
        while !out.exists() && t.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::read_to_string(&out)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .map(|ns| ns / calls as f64 / 1e6)
    } else {
        None
    };
    let _ = stop_tx.send(());
    rt.shutdown_timeout(Duration::from_secs(10));

    let rss_mb = proc_status_kb("VmHWM:") as f64 / 1024.0;
    println!("| metric | value |");
    println!("|---|---|");
    println!("| units | {units} |");
    println!("| units idle after start | {started} |");
    println!("| hooks run (install, leader-*, config-changed, start) | {hooks} |");
    println!(
        "| deploy call (store writes) | {:.2} s |",
        deployed.as_secs_f64()
    );
    println!(
        "| deploy → all settled | {:.2} s (target < 60 s) |",
        settled.as_secs_f64()
    );
    println!(
        "| hooks per second | {:.0} |",
        hooks as f64 / settled.as_secs_f64()
    );
    println!("| controller peak RSS (VmHWM) | {rss_mb:.1} MB (target < 100 MB) |");
    println!("| controller CPU (user+sys) | {:.2} s |", cpu1 - cpu0);
    println!(
        "| hook processes CPU (user+sys) | {:.2} s |",
        child1 - child0
    );
    println!(
        "| baseline: one hook process spawn+wait | {:.3} ms |",
        spawn_cost.as_secs_f64() * 1000.0
    );
    match tool_cost {
        Some(ms) => {
            println!("| one hook-tool call (`is-leader` via ward-jujuc) | {ms:.3} ms |");
            println!("| tool call / spawn baseline | {:.2} |", ms / (spawn_cost.as_secs_f64() * 1000.0));
        }
        None => println!("| one hook-tool call | not measured: build ward-jujuc first (cargo build --release -p controller --bins) |"),
    }
    println!(
        "| settle time / (hooks × spawn baseline) | {:.2} |",
        settled.as_secs_f64() / (hooks as f64 * spawn_cost.as_secs_f64())
    );
    anyhow::ensure!(
        started == units,
        "only {started} of {units} units settled idle"
    );
    Ok(())
}
