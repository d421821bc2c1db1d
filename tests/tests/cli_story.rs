//! The main story (the one docs/tutorial/getting-started.md tells; tests/tests/docs.rs runs
//! that page's own commands), driven through the real `ward` binary: bootstrap on a temporary WARD_HOME and a free
//! port (bubblewrap sandboxes), deploy PostgreSQL (3 units), PgBouncer, the self-signed CA
//! and a client application (through PgBouncer) by name,
//! integrate them, wait, get-password, psql over TLS with sslmode=verify-full, rotate the
//! operator password with set-password, remove the relation, destroy.
//!
//! The `ward` binary is `$WARD_BIN`, else the one in this test's target directory (built
//! by `cargo test --workspace`) when it is newer than its sources, else it is built here
//! with cargo. The
//! charms are laid out the way scripts/build-charms.sh lays them out, in a temporary
//! directory that WARD_CHARMS points at. WARD_KEEP=1 keeps the temporary directory.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use ward_e2e::{free_port, project, ward_bin};

/// A user's shell: `ward` with WARD_HOME and WARD_PORT set. Dropping it destroys the
/// controller (daemon, workload sandboxes, home) even when the test failed half-way.
struct Shell {
    dir: tempfile::TempDir,
    ward: PathBuf,
    home: PathBuf,
    port: u16,
}

impl Shell {
    fn new() -> Result<Shell> {
        let dir = tempfile::Builder::new()
            .prefix("wardstory")
            .disable_cleanup(std::env::var_os("WARD_KEEP").is_some())
            .tempdir_in("/tmp")?;
        let shell = Shell {
            ward: ward_bin()?,
            home: dir.path().join("home"),
            port: free_port(),
            dir,
        };
        shell.lay_out_charms()?;
        Ok(shell)
    }

    /// target/charms/<name>/ as scripts/build-charms.sh makes it: the Juju declarations
    /// from metadata/<name>/ and the charm binary as `dispatch`.
    fn lay_out_charms(&self) -> Result<()> {
        for (name, bin) in [
            ("postgresql", env!("CARGO_BIN_EXE_postgresql-charm")),
            ("pgbouncer", env!("CARGO_BIN_EXE_pgbouncer-charm")),
            ("self-signed-certificates", env!("CARGO_BIN_EXE_ssc-charm")),
        ] {
            let dir = self.dir.path().join("charms").join(name);
            ward_e2e::copy_dir(&project().join("metadata").join(name), &dir)?;
            std::fs::copy(bin, dir.join("dispatch"))?;
        }
        Ok(())
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.ward);
        c.args(args)
            .env("WARD_HOME", &self.home)
            .env("WARD_PORT", self.port.to_string())
            .env("WARD_CHARMS", self.dir.path().join("charms"))
            .env("WARD_ROCKS", project().join("rocks"))
            .env("WARD_PEBBLE", env!("CARGO_BIN_EXE_e2e-pebble"))
            .env("WARD_HOOK_RUNNER", env!("CARGO_BIN_EXE_e2e-hook-runner"))
            .env("WARD_RETRY_BASE_MS", "300")
            .env_remove("WARD_SUBSTRATE")
            .env_remove("WARD_JUJUC")
            .current_dir(self.dir.path());
        c
    }

    /// `ward <args>`, which must succeed; returns stdout.
    fn ward(&self, args: &[&str]) -> Result<String> {
        let started = Instant::now();
        let o: Output = self.cmd(args).output().context("running ward")?;
        // Echoed like a terminal session, passwords redacted.
        let shown: String = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| match l.split_once("password") {
                Some((head, _)) => format!("{head}password<redacted>\n"),
                None => format!("{l}\n"),
            })
            .collect();
        eprintln!(
            "$ ward {} ({:.1}s)\n{shown}{}",
            args.join(" "),
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&o.stderr)
        );
        if !o.status.success() {
            bail!(
                "ward {args:?} exited {:?}\n{}",
                o.status.code(),
                self.logs()
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    fn json(&self, args: &[&str]) -> Result<Value> {
        serde_json::from_str(&self.ward(args)?).context("ward's JSON output")
    }

    /// `ward run <unit> <action> [k=v...] --format json`: the action's results.
    fn action(&self, unit: &str, action: &str, params: &[&str]) -> Result<Value> {
        let mut args = vec!["run", unit, action];
        args.extend_from_slice(params);
        args.extend_from_slice(&["--format", "json"]);
        let out = self.json(&args)?;
        let task = out
            .as_object()
            .and_then(|m| m.values().next())
            .context("ward run printed no task")?;
        Ok(task["results"].clone())
    }

    /// `ward run <unit> <action> [k=v...]` as a user types it: the results as YAML, one
    /// `key: value` line each; returns the value of `key`.
    fn action_value(&self, unit: &str, action: &str, params: &[&str], key: &str) -> Result<String> {
        let mut args = vec!["run", unit, action];
        args.extend_from_slice(params);
        let out = self.ward(&args)?;
        let prefix = format!("{key}: ");
        out.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
            .with_context(|| format!("ward run {unit} {action} printed no {key}: {out}"))
    }

    fn address(&self, unit: &str) -> Result<String> {
        let app = unit.split('/').next().unwrap_or_default();
        let s = self.json(&["status", "--format", "json"])?;
        s["applications"][app]["units"][unit]["address"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no address for {unit} in {s:#}"))
    }

    fn logs(&self) -> String {
        let mut s = std::fs::read_to_string(self.home.join("controller.log")).unwrap_or_default();
        if let Ok(rd) = std::fs::read_dir(self.home.join("logs")) {
            for e in rd.flatten() {
                s.push_str(&format!("--- {}\n", e.path().display()));
                s.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        s
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        if !self.home.exists() {
            return;
        }
        let destroyed = self
            .cmd(&["destroy", "--yes"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !destroyed {
            // The CLI could not do it: stop what it would have stopped.
            if let Ok(pid) = std::fs::read_to_string(self.home.join("controller.pid")) {
                let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            }
            controller::sandbox::stop_all(&self.home.join("units"));
        }
    }
}

/// psql with a libpq connection string, the password in the environment (never argv).
fn psql(conn: &str, password: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([conn, "-tAq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .map_err(|e| format!("cannot run psql (apt-get install -y postgresql-client-15): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[test]
fn a_user_deploys_postgresql_with_tls_rotates_a_password_and_tears_it_down() -> Result<()> {
    let sh = Shell::new()?;

    let out = sh.ward(&["bootstrap", "--substrate", "sandbox"])?;
    assert!(out.contains("sandbox substrate"), "{out}");

    sh.ward(&[
        "deploy",
        "postgresql",
        "-n",
        "3",
        "--config",
        "profile=testing",
    ])?;
    sh.ward(&["deploy", "pgbouncer"])?;
    sh.ward(&["deploy", "self-signed-certificates"])?;
    sh.ward(&[
        "integrate",
        "postgresql:certificates",
        "self-signed-certificates:certificates",
    ])?;
    sh.ward(&[
        "integrate",
        "pgbouncer:certificates",
        "self-signed-certificates:certificates",
    ])?;
    sh.ward(&[
        "integrate",
        "pgbouncer:backend-database",
        "postgresql:database",
    ])?;
    // A stand-in for the user's application, on PgBouncer.
    let client = project().join("tests/charms/db-client");
    sh.ward(&[
        "deploy",
        client.to_str().context("path")?,
        "myapp",
        "--config",
        "database=myapp",
    ])?;
    sh.ward(&["integrate", "myapp:database", "pgbouncer:database"])?;
    sh.ward(&["wait", "--timeout", "5m"])?;
    sh.ward(&["status"])?;
    let s = sh.json(&["status", "--format", "json"])?;
    let units = s["applications"]["postgresql"]["units"]
        .as_object()
        .context("postgresql units")?;
    assert_eq!(units.len(), 3, "{s:#}");
    for (name, u) in units {
        assert_eq!(u["workload-status"]["current"], "active", "{name}: {s:#}");
        assert_eq!(u["juju-status"]["current"], "idle", "{name}: {s:#}");
    }

    let password = sh.action_value("postgresql/leader", "get-password", &[], "password")?;
    let ca = sh.action("self-signed-certificates/leader", "get-ca-certificate", &[])?
        ["ca-certificate"]
        .as_str()
        .context("no CA certificate")?
        .to_string();
    let ca_path = sh.dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca)?;
    let primary = sh.action_value("postgresql/leader", "get-primary", &[], "primary")?;
    let host = sh.address(&primary)?;
    let conn = format!(
        "host={host} port=5432 user=operator dbname=postgres sslmode=verify-full sslrootcert={}",
        ca_path.display()
    );
    let tls = psql(
        &conn,
        &password,
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .map_err(anyhow::Error::msg)
    .with_context(|| format!("psql \"{conn}\"\n{}", sh.logs()))?;
    assert_eq!(tls, "t", "the connection is TLS");
    psql(
        &conn,
        &password,
        "CREATE TABLE story (v text); INSERT INTO story VALUES ('before rotation')",
    )
    .map_err(anyhow::Error::msg)?;

    // The application's credentials, from the secret PgBouncer granted it; psql through
    // PgBouncer with verify-full.
    let secrets = sh.json(&["secrets", "--format", "json"])?;
    let secret = secrets
        .as_object()
        .context("secrets")?
        .iter()
        .find(|(_, s)| {
            s["label"]
                .as_str()
                .is_some_and(|l| l.starts_with("database.") && l.ends_with(".user.secret"))
                && s["access"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|g| g["target"].as_str().is_some_and(|t| t.starts_with("myapp")))
                })
        })
        .map(|(id, _)| id.clone())
        .with_context(|| format!("no secret granted to myapp: {secrets:#}"))?;
    let shown = sh.json(&["show-secret", &secret, "--reveal", "--format", "json"])?;
    let content = &shown[&secret]["content"];
    let (app_user, app_password) = (
        content["username"]
            .as_str()
            .context("username")?
            .to_string(),
        content["password"]
            .as_str()
            .context("password")?
            .to_string(),
    );
    let pgb = sh.address("pgbouncer/0")?;
    let via_pgbouncer = format!(
        "host={pgb} port=6432 user={app_user} dbname=myapp sslmode=verify-full sslrootcert={}",
        ca_path.display()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let through = loop {
        match psql(&via_pgbouncer, &app_password, "SELECT current_user") {
            Ok(u) => break u,
            Err(e) if Instant::now() > deadline => {
                bail!("psql \"{via_pgbouncer}\": {e}\n{}", sh.logs())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    assert_eq!(through, app_user);

    // Rotate the operator's password: the new one works, the old one no longer does.
    let new = sh.action_value(
        "postgresql/leader",
        "set-password",
        &["username=operator"],
        "password",
    )?;
    assert_ne!(new, password);
    sh.ward(&["wait", "--timeout", "5m"])?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let row = loop {
        match psql(&conn, &new, "SELECT v FROM story") {
            Ok(row) => break row,
            Err(e) if Instant::now() > deadline => bail!("the new password is refused: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    assert_eq!(row, "before rotation");
    let old = psql(&conn, &password, "SELECT 1").expect_err("the old password still works");
    assert!(old.contains("password authentication failed"), "{old}");

    // Refresh postgresql to a new revision (the same charm, rebuilt into a new archive):
    // upgrade-charm runs unit by unit and the data stays.
    let rebuilt = sh.dir.path().join("postgresql-rebuilt");
    ward_e2e::copy_dir(&sh.dir.path().join("charms/postgresql"), &rebuilt)?;
    std::fs::write(
        rebuilt.join("REBUILT"),
        "a new archive, so a new revision\n",
    )?;
    sh.ward(&[
        "refresh",
        "postgresql",
        "--path",
        rebuilt.to_str().context("path")?,
    ])?;
    sh.ward(&["wait", "--timeout", "5m"])?;
    let s = sh.json(&["status", "--format", "json"])?;
    assert_eq!(s["applications"]["postgresql"]["charm-rev"], 2, "{s:#}");
    let primary = sh.action_value("postgresql/leader", "get-primary", &[], "primary")?;
    let conn = format!(
        "host={} port=5432 user=operator dbname=postgres sslmode=verify-full sslrootcert={}",
        sh.address(&primary)?,
        ca_path.display()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let row = loop {
        match psql(&conn, &new, "SELECT v FROM story") {
            Ok(row) => break row,
            Err(e) if Instant::now() > deadline => bail!("after refresh: {e}\n{}", sh.logs()),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    assert_eq!(row, "before rotation", "the data survived the refresh");

    // Remove the relation: the model settles without it.
    sh.ward(&[
        "remove-relation",
        "postgresql:certificates",
        "self-signed-certificates:certificates",
    ])?;
    sh.ward(&["wait", "--timeout", "5m"])?;
    let s = sh.json(&["status", "--format", "json"])?;
    assert!(
        s["applications"]["postgresql"]["relations"]["certificates"].is_null(),
        "{s:#}"
    );

    sh.ward(&["destroy", "--yes"])?;
    assert!(!sh.home.exists(), "destroy removes WARD_HOME");
    Ok(())
}
