//! pgbench -S (select-only) with many clients through PgBouncer vs straight to
//! PostgreSQL, measured in the same run against the same one-unit postgresql, as the
//! client user PgBouncer made. Prints a table and the ratio (target ≥ 1.0).
//!
//! `pgbouncer-bench <project root> [clients] [seconds] [max_db_connections]`; bench/run.sh
//! runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use controller::Controller;
use serde_json::json;
use ward_e2e::{address, charm_dir, Binaries, Model};

fn all_active(ctl: &Controller, units: &[&str]) -> bool {
    let Ok(s) = ctl.status() else { return false };
    units.iter().all(|name| {
        s.applications
            .iter()
            .flat_map(|a| &a.units)
            .any(|u| u.name == *name && u.workload.status == "active")
    })
}

/// Runs pgbench; returns its standard output.
fn pgbench_out(
    host: &str,
    port: u16,
    user: &str,
    pw: &str,
    args: &[&str],
) -> anyhow::Result<String> {
    let out = Command::new("pgbench")
        .args(["-h", host, "-p", &port.to_string(), "-U", user])
        .args(args)
        .arg("appdb")
        .env("PGPASSWORD", pw)
        .output()
        .context("running pgbench (apt-get install postgresql-contrib or postgresql-15)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!(
            "pgbench {args:?} on {host}:{port} failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

/// Runs pgbench; returns transactions per second (without connection time).
fn pgbench(host: &str, port: u16, user: &str, pw: &str, args: &[&str]) -> anyhow::Result<f64> {
    let text = pgbench_out(host, port, user, pw, args)?;
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no tps in pgbench's output: {text}"))
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let root = PathBuf::from(
        args.get(1)
            .context("usage: pgbouncer-bench <project root> [clients] [seconds]")?,
    );
    let clients: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let seconds: u32 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(15);
    // Server connections PgBouncer may open for the database (all workers together): a
    // few per core is what a pooler is for.
    let pool: i64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(16);
    let bins = Binaries::next_to_current_exe()?;
    let home = tempfile::Builder::new()
        .prefix("pgb-bench")
        .tempdir_in("/tmp")?;
    let lay = |name: &str, meta: &Path, binary: Option<&str>| -> anyhow::Result<PathBuf> {
        let bin = binary.map(|b| bins.charm(b)).transpose()?;
        charm_dir(home.path(), name, meta, bin.as_deref())
    };
    let pg = lay(
        "postgresql",
        &root.join("metadata/postgresql"),
        Some("postgresql-charm"),
    )?;
    let pgb = lay(
        "pgbouncer",
        &root.join("metadata/pgbouncer"),
        Some("pgbouncer-charm"),
    )?;
    let client = lay("db-client", &root.join("tests/charms/db-client"), None)?;
    let model = Model::start_with(home.path(), &bins)?;
    let ctl = &model.ctl;
    let max = (clients + 120).to_string();
    ctl.deploy(
        "postgresql",
        &pg,
        1,
        [
            ("profile".to_string(), json!("testing")),
            (
                "experimental_max_connections".to_string(),
                json!(max.parse::<i64>()?),
            ),
        ]
        .into(),
    )?;
    ctl.deploy(
        "pgbouncer",
        &pgb,
        1,
        [
            ("pool_mode".to_string(), json!("transaction")),
            ("max_db_connections".to_string(), json!(pool)),
        ]
        .into(),
    )?;
    ctl.deploy(
        "app",
        &client,
        1,
        [("database".to_string(), json!("appdb"))].into(),
    )?;
    ctl.integrate("pgbouncer:backend-database", "postgresql:database")?;
    let rel = ctl.integrate("app:database", "pgbouncer:database")?;
    let t = Instant::now();
    while !all_active(ctl, &["postgresql/0", "pgbouncer/0", "app/0"]) {
        if t.elapsed() > Duration::from_secs(180) {
            bail!("not active after 180 s: {:?}", ctl.status()?);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let bag = ctl.relation_data(rel, "pgbouncer")?;
    let creds = ctl.reveal_secret(bag.get("secret-user").context("no secret-user")?, None)?;
    let (user, pw) = (creds["username"].clone(), creds["password"].clone());
    let (pg_addr, pgb_addr) = (address(ctl, "postgresql/0"), address(ctl, "pgbouncer/0"));
    let secs = seconds.to_string();
    let c = clients.to_string();
    let max = ward_e2e::psql(&pg_addr, &user, &pw, "appdb", "SHOW max_connections")
        .map_err(|e| anyhow::anyhow!("psql: {e}"))?;
    if max.parse::<u32>().unwrap_or(0) < clients + 10 {
        bail!("PostgreSQL has max_connections = {max}, too few for {clients} clients");
    }
    pgbench_out(&pg_addr, 5432, &user, &pw, &["-i", "-q", "-s", "10"])?;
    let run = |host: &str, port: u16| {
        pgbench(
            host,
            port,
            &user,
            &pw,
            &["-S", "-n", "-c", &c, "-j", "2", "-T", &secs],
        )
    };
    // Warm both paths, then measure direct, PgBouncer, direct again (the mean of the two
    // direct runs is the baseline, so drift within the run does not favour either side).
    run(&pg_addr, 5432)?;
    let d1 = run(&pg_addr, 5432)?;
    let b = run(&pgb_addr, 6432)?;
    let d2 = run(&pg_addr, 5432)?;
    let direct = (d1 + d2) / 2.0;
    println!("| path | clients | tps (pgbench -S, {seconds} s) |");
    println!("|---|---|---|");
    println!("| direct to PostgreSQL (mean of 2) | {clients} | {direct:.0} |");
    println!("| through PgBouncer (2 workers, transaction pooling, max_db_connections={pool}) | {clients} | {b:.0} |");
    println!(
        "| **ratio PgBouncer / direct** | | **{:.2}** (target ≥ 1.0) |",
        b / direct
    );
    let json = json!({"clients": clients, "seconds": seconds, "max_db_connections": pool, "direct_tps": direct, "pgbouncer_tps": b, "ratio": b / direct});
    std::fs::create_dir_all(root.join("bench/results"))?;
    std::fs::write(root.join("bench/results/pgbouncer.json"), json.to_string())?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgbouncer-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
