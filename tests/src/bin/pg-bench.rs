//! PostgreSQL on the sandbox substrate: deploy → active for 1 and for 3 units, and write
//! downtime when the primary dies, measured by a write loop (the gap between the last
//! acknowledged insert before the kill and the first after), without and with Patroni's
//! synchronous mode, counting acknowledged rows that are missing afterwards.
//!
//! `pg-bench`; bench/run.sh runs it. Two kills: the primary's postmaster alone (Patroni
//! restarts it in place) and the primary's Patroni with its postmaster (a replica takes
//! over once the leader key expires).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use controller::Controller;
use serde_json::json;
use ward_e2e::{copy_dir, psql, units, Model};

fn wait_active(ctl: &Controller, n: usize, timeout: Duration) -> anyhow::Result<()> {
    let t = Instant::now();
    loop {
        let u = units(ctl);
        if u.len() == n && u.iter().all(|x| x.1 == "active") && ctl.is_settled()? {
            return Ok(());
        }
        if t.elapsed() > timeout {
            bail!("not active after {timeout:?}: {u:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Bins {
    jujuc: PathBuf,
    pebble: PathBuf,
    runner: PathBuf,
    charm: PathBuf,
}

fn model(bins: &Bins, root: &Path) -> anyhow::Result<(tempfile::TempDir, Model, PathBuf)> {
    let home = tempfile::Builder::new()
        .prefix("pg-bench")
        .tempdir_in("/tmp")?;
    let charm = home.path().join("postgresql");
    copy_dir(&root.join("metadata/postgresql"), &charm)?;
    std::fs::copy(&bins.charm, charm.join("dispatch"))?;
    let m = Model::start_sandboxed(home.path(), &bins.jujuc, &bins.pebble, Some(&bins.runner))?;
    Ok((home, m, charm))
}

fn pids_matching(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            String::from_utf8_lossy(&cmd)
                .replace('\0', " ")
                .contains(needle)
                .then_some(pid)
        })
        .collect()
}

/// (downtime, acknowledged rows lost, whether writes resumed on another unit)
fn failover(
    bins: &Bins,
    root: &Path,
    sync: bool,
    kill_patroni: bool,
) -> anyhow::Result<(Duration, usize, bool)> {
    let (_home, m, charm) = model(bins, root)?;
    let ctl = &m.ctl;
    ctl.deploy(
        "postgresql",
        &charm,
        3,
        [("profile".to_string(), json!("testing"))].into(),
    )?;
    wait_active(ctl, 3, Duration::from_secs(180))?;
    let primary = units(ctl)
        .into_iter()
        .find(|u| u.2 == "Primary")
        .context("no primary")?;
    if sync {
        ctl.set_config(
            "postgresql",
            [("durability_synchronous_mode".to_string(), Some(json!(true)))].into(),
        )?;
        let t = Instant::now();
        while !postgresql_charm::patroni::members(&primary.3)?
            .iter()
            .any(|m| m.1 == "sync_standby")
        {
            if t.elapsed() > Duration::from_secs(60) {
                bail!("no synchronous standby after 60 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let task = m.rt.block_on(ctl.run_action(
        &primary.0,
        "get-password",
        json!({}),
        Duration::from_secs(30),
    ))?;
    let password = task.results["password"]
        .as_str()
        .context("no password")?
        .to_string();
    psql(
        &primary.3,
        "operator",
        &password,
        "postgres",
        "CREATE TABLE bench (n int)",
    )
    .map_err(anyhow::Error::msg)?;
    let addresses: Vec<String> = units(ctl).into_iter().map(|u| u.3).collect();
    // (row, when it was acknowledged, by which address)
    let acked = Arc::new(Mutex::new(Vec::<(u64, Instant, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, password) = (acked.clone(), stop.clone(), password.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                // Whichever unit accepts writes (the primary; replicas refuse).
                for a in &addresses {
                    if psql(
                        a,
                        "operator",
                        &password,
                        "postgres",
                        &format!("INSERT INTO bench VALUES ({n})"),
                    )
                    .is_ok()
                    {
                        acked.lock().unwrap_or_else(|p| p.into_inner()).push((
                            n,
                            Instant::now(),
                            a.clone(),
                        ));
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let needle = format!("--listen_addresses={}", primary.3);
    let mut victims = pids_matching(&needle);
    if kill_patroni {
        let unit_storage = format!("unit-{}", primary.0.replace('/', "-"));
        for pid in pids_matching("patroni /var/lib/postgresql/data/patroni.yml") {
            let mounts =
                std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
            if mounts.contains(&unit_storage) {
                victims.push(pid);
            }
        }
    }
    let killed = Instant::now();
    for pid in &victims {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let (downtime, moved) = loop {
        let first_after = acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(_, t, _)| *t > killed)
            .map(|x| (x.1, x.2.clone()));
        if let Some((t, by)) = first_after {
            let last_before = acked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|(_, t, _)| *t <= killed)
                .map(|x| x.1)
                .next_back()
                .unwrap_or(killed);
            break (t - last_before, by != primary.3);
        }
        if Instant::now() > deadline {
            bail!("writes did not resume within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    let acked: Vec<u64> = acked
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|x| x.0)
        .collect();
    let mut present = String::new();
    for u in units(ctl) {
        if let Ok(out) = psql(
            &u.3,
            "operator",
            &password,
            "postgres",
            "SELECT string_agg(n::text, ',') FROM bench",
        ) {
            if u.2 == "Primary" {
                present = out;
            }
        }
    }
    let present: std::collections::BTreeSet<u64> =
        present.split(',').filter_map(|s| s.parse().ok()).collect();
    let lost = acked.iter().filter(|n| !present.contains(n)).count();
    Ok((downtime, lost, moved))
}

fn run() -> anyhow::Result<()> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: pg-bench <project-root>")?,
    );
    let dir = std::env::current_exe()?
        .parent()
        .context("no binary directory")?
        .to_path_buf();
    let bins = Bins {
        jujuc: dir.join("e2e-jujuc"),
        pebble: dir.join("e2e-pebble"),
        runner: dir.join("e2e-hook-runner"),
        charm: dir.join("postgresql-charm"),
    };
    println!("| measure | value | target |");
    println!("|---|---|---|");
    for n in [1usize, 3] {
        let (_home, m, charm) = model(&bins, &root)?;
        let t = Instant::now();
        m.ctl.deploy(
            "postgresql",
            &charm,
            n,
            [("profile".to_string(), json!("testing"))].into(),
        )?;
        wait_active(&m.ctl, n, Duration::from_secs(180))?;
        let target = if n == 3 { "< 15 s" } else { "" };
        println!(
            "| deploy → active/idle, {n} unit(s) | {:.1} s | {target} |",
            t.elapsed().as_secs_f64()
        );
    }
    for (sync, kill_patroni) in [(false, false), (true, false), (false, true), (true, true)] {
        let (downtime, lost, moved) = failover(&bins, &root, sync, kill_patroni)?;
        let what = if kill_patroni {
            "Patroni + postmaster"
        } else {
            "postmaster"
        };
        let mode = if sync { "synchronous" } else { "asynchronous" };
        println!(
            "| kill -9 of the primary's {what}, {mode}: write gap / acknowledged rows lost | {:.1} s / {lost} ({}) | < 10 s / 0 in sync mode |",
            downtime.as_secs_f64(),
            if moved {
                "writes resumed on another unit: failover"
            } else {
                "writes resumed on the same unit: restarted in place"
            }
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pg-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
