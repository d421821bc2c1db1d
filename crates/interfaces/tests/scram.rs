//! A verifier computed by `interfaces::scram` lets a real PostgreSQL 15 log a role in with
//! SCRAM-SHA-256, and refuses a wrong password.
//!
//! The test starts a throwaway cluster (initdb into a temp dir, as `nobody` because
//! PostgreSQL refuses to run as root) on a random 127.0.0.0/8 address and port, and stops
//! it at the end. It is skipped, with the reason printed, only when PostgreSQL 15's
//! binaries are not installed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use interfaces::scram;

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// Runs `argv` as the unprivileged `nobody` (PostgreSQL will not run as root).
fn as_nobody(argv: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .args(argv);
    cmd
}

fn checked(out: Output, what: &str) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A running throwaway cluster; stopped when dropped.
struct Postgres {
    _dir: tempfile::TempDir,
    data: PathBuf,
    socket_dir: PathBuf,
    address: String,
    port: u16,
}

impl Postgres {
    fn start() -> Result<Self> {
        let dir = tempfile::tempdir().context("temp dir")?;
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).context("chown")?;
        let data = dir.path().join("data");
        let socket_dir = dir.path().to_path_buf();
        let initdb = format!("{BIN}/initdb");
        checked(
            as_nobody(&[
                &initdb,
                "-D",
                path(&data)?,
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ])
            .output()
            .context("initdb")?,
            "initdb",
        )?;
        // Only SCRAM over TCP; the Unix socket (inside the 0700 temp dir) trusts postgres
        // so the test can set the role up.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all postgres trust\nhost all all 127.0.0.0/8 scram-sha-256\n",
        )
        .context("pg_hba.conf")?;
        let octet = 2 + (rand::random::<u8>() % 250);
        let address = format!("127.0.91.{octet}");
        let port = TcpListener::bind((address.as_str(), 0))
            .context("pick a port")?
            .local_addr()?
            .port();
        let options = format!(
            "-c listen_addresses={address} -p {port} -k {} -c password_encryption=scram-sha-256 -c fsync=off",
            path(&socket_dir)?
        );
        let pg_ctl = format!("{BIN}/pg_ctl");
        let log = dir.path().join("log");
        let pg = Self {
            data,
            socket_dir,
            address,
            port,
            _dir: dir,
        };
        checked(
            as_nobody(&[
                &pg_ctl,
                "-D",
                path(&pg.data)?,
                "-l",
                path(&log)?,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ])
            .stdin(Stdio::null())
            .output()
            .context("pg_ctl start")?,
            "pg_ctl start",
        )
        .with_context(|| std::fs::read_to_string(&log).unwrap_or_default())?;
        Ok(pg)
    }

    /// Runs `sql` (on stdin) as postgres over the Unix socket.
    fn admin(&self, sql: &str) -> Result<String> {
        use std::io::Write;
        let mut child = Command::new("psql")
            .args(["-h", path(&self.socket_dir)?, "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1"])
            .args(["-tAq", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("psql")?;
        child
            .stdin
            .take()
            .context("psql stdin")?
            .write_all(sql.as_bytes())?;
        checked(child.wait_with_output()?, "psql as postgres")
    }

    /// Logs in over TCP as `user` with `password` (in the environment, never in argv).
    fn login(&self, user: &str, password: &str) -> Result<Output> {
        Command::new("psql")
            .args(["-h", &self.address, "-p", &self.port.to_string()])
            .args(["-U", user, "-d", "postgres", "-w", "-tA"])
            .args(["-c", "SELECT current_user"])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGSERVICE")
            .stdin(Stdio::null())
            .output()
            .context("psql login")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let pg_ctl = format!("{BIN}/pg_ctl");
        if let Some(data) = self.data.to_str() {
            let _ = as_nobody(&[&pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn path(p: &Path) -> Result<&str> {
    p.to_str().context("non-UTF-8 temp path")
}

#[test]
fn a_verifier_made_here_lets_postgresql_15_log_the_role_in() -> Result<()> {
    if !Path::new(BIN).join("initdb").exists() {
        println!("skipped: {BIN}/initdb is not installed");
        return Ok(());
    }
    let started = Instant::now();
    let pg = Postgres::start()?;
    let password = scram::random_password(scram::PASSWORD_LENGTH);
    let verifier = scram::verifier(&password);
    assert!(!verifier.contains(&password));
    pg.admin(&format!(
        "CREATE ROLE alice LOGIN PASSWORD '{verifier}';\n\
         CREATE ROLE bob LOGIN PASSWORD '{}';\n",
        scram::verifier("pa$$ w0rd!'\"\\:@/%"),
    ))?;
    // PostgreSQL keeps a pre-computed verifier as it is.
    let stored = pg.admin("SELECT rolpassword FROM pg_authid WHERE rolname = 'alice';")?;
    assert_eq!(stored.trim(), verifier);

    let ok = pg.login("alice", &password)?;
    assert!(
        ok.status.success(),
        "login refused: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "alice");

    // ASCII punctuation is used as is (SASLprep leaves printable ASCII unchanged).
    let ok = pg.login("bob", "pa$$ w0rd!'\"\\:@/%")?;
    assert!(
        ok.status.success(),
        "login refused: {}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let wrong = pg.login("alice", &format!("{password}x"))?;
    assert!(!wrong.status.success(), "a wrong password was accepted");
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    println!(
        "PostgreSQL started, checked and stopped in {:?}",
        started.elapsed()
    );
    Ok(())
}
