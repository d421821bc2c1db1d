//! SQL against a PostgreSQL server, as charms run it: `psql` through Pebble exec in the
//! unit's workload, the script on stdin and the password in the environment (never in
//! argv). [`FakeSql`] records scripts for harness tests. Also SQL quoting and the names
//! clients may ask for.

use std::sync::{Arc, Mutex, MutexGuard};

use charm::pebble::{Client, Error as PebbleError, ExecOptions};
use charm::{Error, Result};

/// Runs SQL scripts on a PostgreSQL server.
pub trait Sql: std::fmt::Debug {
    /// Runs `script` on `database` at `host` (port 5432) as `user`; returns the rows as
    /// psql prints them unaligned (`-tA`).
    fn run(
        &self,
        host: &str,
        user: &str,
        password: &str,
        database: &str,
        script: &str,
    ) -> Result<String>;
}

/// psql in a workload container, through its Pebble, run as the container's `os_user`.
#[derive(Debug)]
pub struct Psql {
    client: Client,
    os_user: String,
}

impl Psql {
    /// psql in the container `name`, run as `os_user`.
    pub fn new(name: &str, os_user: &str) -> Self {
        Self {
            client: Client::for_container(name),
            os_user: os_user.into(),
        }
    }
}

impl Sql for Psql {
    fn run(
        &self,
        host: &str,
        user: &str,
        password: &str,
        database: &str,
        script: &str,
    ) -> Result<String> {
        let mut opts = ExecOptions::new([
            "psql",
            "-h",
            host,
            "-U",
            user,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-tAq",
            "-f",
            "-",
        ]);
        opts.user = Some(self.os_user.clone());
        opts.environment
            .insert("PGPASSWORD".into(), password.into());
        opts.environment
            .insert("PGCONNECT_TIMEOUT".into(), "10".into());
        opts.stdin = script.as_bytes().to_vec();
        opts.timeout = Some(std::time::Duration::from_secs(60));
        match self.client.exec(&opts) {
            Ok(out) => Ok(out.stdout_text()),
            Err(PebbleError::Exec { output, .. }) => Err(Error::Charm(format!(
                "psql on {host} as {user} failed: {}",
                output.stderr_text().trim()
            ))),
            Err(e) => Err(Error::Charm(format!(
                "cannot run psql in the workload: {e}"
            ))),
        }
    }
}

/// A double-quoted SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A single-quoted SQL literal.
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Database and user names clients may ask for: a letter or underscore, then letters,
/// digits, underscores or hyphens; at most 63 bytes (PostgreSQL's limit).
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One script run through [`FakeSql`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlCall {
    /// Host psql connected to.
    pub host: String,
    /// The user it logged in as.
    pub user: String,
    /// Database.
    pub database: String,
    /// The script.
    pub script: String,
    /// The password used.
    pub password: String,
}

/// What [`FakeSql`] ran and answers.
#[derive(Debug, Default)]
pub struct SqlState {
    /// Scripts run, in order.
    pub calls: Vec<SqlCall>,
    /// Output for scripts containing a key (first match wins); empty otherwise.
    pub outputs: Vec<(String, String)>,
    /// When set, every script fails with this message.
    pub failure: Option<String>,
}

/// psql in memory, recording its scripts: a cheap handle onto shared state.
#[derive(Debug, Clone, Default)]
pub struct FakeSql(pub Arc<Mutex<SqlState>>);

impl FakeSql {
    /// The scripts run so far.
    pub fn calls(&self) -> Vec<SqlCall> {
        lock(&self.0).calls.clone()
    }

    /// Answers `output` to scripts that contain `needle`.
    pub fn output_for(&self, needle: &str, output: &str) {
        lock(&self.0).outputs.push((needle.into(), output.into()));
    }

    /// The state, to inspect or change.
    pub fn state(&self) -> MutexGuard<'_, SqlState> {
        lock(&self.0)
    }
}

impl Sql for FakeSql {
    fn run(
        &self,
        host: &str,
        user: &str,
        password: &str,
        database: &str,
        script: &str,
    ) -> Result<String> {
        let mut s = lock(&self.0);
        s.calls.push(SqlCall {
            host: host.into(),
            user: user.into(),
            database: database.into(),
            script: script.into(),
            password: password.into(),
        });
        if let Some(f) = &s.failure {
            return Err(Error::Charm(format!("psql on {host} failed: {f}")));
        }
        Ok(s.outputs
            .iter()
            .find(|(needle, _)| script.contains(needle.as_str()))
            .map(|(_, out)| out.clone())
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_names() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert!(valid_name("app_db-1"));
        for bad in ["", "1db", "db;drop", "a b", &"x".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn fake_records_and_answers() {
        let sql = FakeSql::default();
        sql.output_for("SELECT 1", "1\n");
        assert_eq!(sql.run("h", "u", "p", "d", "SELECT 1").unwrap(), "1\n");
        assert_eq!(sql.calls()[0].user, "u");
        sql.state().failure = Some("boom".into());
        assert!(sql.run("h", "u", "p", "d", "x").is_err());
    }
}
