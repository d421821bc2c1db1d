//! The main job without the CLI: the embedded controller with the bubblewrap sandbox
//! substrate deploys PostgreSQL (3 units: Patroni with its raft DCS, one primary, two
//! streaming replicas), PgBouncer and the self-signed certificate authority, integrates
//! them (certificates for both, PgBouncer's backend-database), waits with visible progress
//! until every unit is active/idle, runs get-password,
//! and proves the cluster with psql over TLS (sslmode=verify-full against the CA) and
//! scram-sha-256: a row written on the primary is read on a replica.
//!
//! `ward-demo <project-root>`: the in-process variant of scripts/quickstart.sh (which
//! drives the `ward` CLI instead), used by bench/ to time the stack without the CLI and
//! daemon in the way. The workloads are stopped when it ends, so running it again is
//! safe; its units get an address block of their own (controller::network), so it can
//! run beside a `ward` controller.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use controller::Controller;
use serde_json::json;
use ward_e2e::{charm_dir, get_password, units, Binaries, Model};

fn psql(host: &str, password: &str, sql: &str) -> anyhow::Result<String> {
    ward_e2e::psql(host, "operator", password, "postgres", sql)
        .map_err(|e| anyhow::anyhow!("psql on {host} failed: {e}"))
}

fn run() -> anyhow::Result<()> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: ward-demo <project-root>")?,
    );
    let bins = Binaries::next_to_current_exe()?;
    let home = tempfile::Builder::new()
        .prefix("ward-demo")
        .tempdir_in("/tmp")?;
    let charm = |name: &str, bin: &str| -> anyhow::Result<PathBuf> {
        charm_dir(
            home.path(),
            name,
            &root.join("metadata").join(name),
            Some(&bins.charm(bin)?),
        )
    };
    let postgresql = charm("postgresql", "postgresql-charm")?;
    let ssc = charm("self-signed-certificates", "ssc-charm")?;
    let pgbouncer = charm("pgbouncer", "pgbouncer-charm")?;
    let Model { ctl, rt, sandboxes } = Model::start_as_ward(&home.path().join("ward"), &bins)?;
    let result = demo(&ctl, &rt, &postgresql, &ssc, &pgbouncer);
    println!("== stopping the workloads");
    drop(sandboxes);
    result
}

fn demo(
    ctl: &Controller,
    rt: &tokio::runtime::Runtime,
    postgresql: &Path,
    ssc: &Path,
    pgbouncer: &Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    println!("== deploying postgresql (3 units), pgbouncer and self-signed-certificates");
    ctl.deploy(
        "postgresql",
        postgresql,
        3,
        [("profile".to_string(), json!("testing"))].into(),
    )?;
    ctl.deploy("pgbouncer", pgbouncer, 1, Default::default())?;
    ctl.deploy("self-signed-certificates", ssc, 1, Default::default())?;
    ctl.integrate(
        "postgresql:certificates",
        "self-signed-certificates:certificates",
    )?;
    ctl.integrate(
        "pgbouncer:certificates",
        "self-signed-certificates:certificates",
    )?;
    ctl.integrate("pgbouncer:backend-database", "postgresql:database")?;
    println!(
        "== integrated postgresql:certificates, pgbouncer:certificates, pgbouncer:backend-database"
    );
    let mut last = String::new();
    loop {
        let now = units(ctl);
        let line: Vec<String> = now
            .iter()
            .map(|(n, s, m, _)| format!("{n}: {s} {m}"))
            .collect();
        let line = line.join(" | ");
        if line != last {
            println!("  [{:>5.1}s] {line}", started.elapsed().as_secs_f64());
            last = line.clone();
        }
        let all_active = now.len() == 5 && now.iter().all(|(_, s, _, _)| s == "active");
        if all_active && ctl.is_settled()? {
            break;
        }
        // PgBouncer says blocked until its backend answers; only an error stops the demo
        // early, and whatever is still blocked is in the timeout's message.
        if let Some((n, s, m, _)) = now.iter().find(|(_, s, _, _)| s == "error") {
            bail!("{n} is {s}: {m}");
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!("not active/idle after 3 minutes: {line}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    println!(
        "== active/idle after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let password = get_password(rt, ctl, "postgresql/0", None)?;
    let all = units(ctl);
    let primary = all
        .iter()
        .find(|u| u.2 == "Primary")
        .context("no primary")?
        .clone();
    let replica = all
        .iter()
        .find(|u| u.2 == "Replica")
        .context("no replica")?
        .clone();
    println!(
        "== get-password: the operator password ({} characters) is in the app secret",
        password.len()
    );
    let ca = rt.block_on(ctl.run_action(
        "self-signed-certificates/0",
        "get-ca-certificate",
        json!({}),
        Duration::from_secs(60),
    ))?;
    let ca_path = std::env::temp_dir().join("ward-demo-ca.pem");
    std::fs::write(
        &ca_path,
        ca.results["ca-certificate"]
            .as_str()
            .context("no CA certificate")?,
    )?;
    // Every psql below checks the server's certificate against the CA and its address.
    std::env::set_var("PGSSLMODE", "verify-full");
    std::env::set_var("PGSSLROOTCERT", &ca_path);
    println!(
        "   connect:  PGPASSWORD=<password> psql \"host={} user=operator dbname=postgres sslmode=verify-full sslrootcert={}\"",
        primary.3,
        ca_path.display()
    );
    let tls_ready = Instant::now();
    while psql(&primary.3, &password, "SELECT 1").is_err()
        || psql(&replica.3, &password, "SELECT 1").is_err()
    {
        if tls_ready.elapsed() > Duration::from_secs(90) {
            bail!(
                "TLS with verify-full is not up on {} and {} after 90 s",
                primary.0,
                replica.0
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    psql(&primary.3, &password, "CREATE TABLE IF NOT EXISTS ward_demo (at timestamptz); INSERT INTO ward_demo VALUES (now());")?;
    let mut seen = String::new();
    for _ in 0..50 {
        seen = psql(&replica.3, &password, "SELECT count(*) FROM ward_demo").unwrap_or_default();
        if seen == "1" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if seen != "1" {
        bail!(
            "the row written on {} did not reach {}",
            primary.0,
            replica.0
        );
    }
    let version = psql(&primary.3, &password, "SHOW server_version")?;
    println!(
        "== psql (TLS, verify-full): wrote a row on {} ({}), read it on {} ({}); PostgreSQL {version}, password_encryption {}",
        primary.0,
        primary.3,
        replica.0,
        replica.3,
        psql(&primary.3, &password, "SHOW password_encryption")?
    );
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
