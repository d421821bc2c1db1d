//! SQL against the primary. [`Psql`] runs `psql` through Pebble exec in this unit's
//! workload, the script on stdin and the operator password in the environment (never in
//! argv); [`crate::fakes::FakeSql`] records scripts for harness tests.

use charm::pebble::{Client, Error as PebbleError, ExecOptions};
use charm::{Error, Result};

/// Runs SQL scripts as the `operator` superuser.
pub trait Sql: std::fmt::Debug {
    /// Runs `script` on `database` at `host` as operator; returns the rows as psql prints
    /// them unaligned (`-tA`).
    fn run(
        &self,
        host: &str,
        operator_password: &str,
        database: &str,
        script: &str,
    ) -> Result<String>;
}

/// psql in the `postgresql` container, through its Pebble.
#[derive(Debug)]
pub struct Psql {
    client: Client,
}

impl Psql {
    /// psql in the container `name`.
    pub fn new(name: &str) -> Self {
        Self {
            client: Client::for_container(name),
        }
    }
}

impl Sql for Psql {
    fn run(
        &self,
        host: &str,
        operator_password: &str,
        database: &str,
        script: &str,
    ) -> Result<String> {
        run(&self.client, host, operator_password, database, script)
    }
}

/// Runs `script` on `database` at `host` as operator through `pebble`; returns psql's output.
pub fn run(
    pebble: &Client,
    host: &str,
    operator_password: &str,
    database: &str,
    script: &str,
) -> Result<String> {
    let mut opts = ExecOptions::new([
        "psql",
        "-h",
        host,
        "-U",
        "operator",
        "-d",
        database,
        "-v",
        "ON_ERROR_STOP=1",
        "-tAq",
        "-f",
        "-",
    ]);
    opts.user = Some("postgres".into());
    opts.environment
        .insert("PGPASSWORD".into(), operator_password.into());
    opts.environment
        .insert("PGCONNECT_TIMEOUT".into(), "10".into());
    opts.stdin = script.as_bytes().to_vec();
    opts.timeout = Some(std::time::Duration::from_secs(60));
    match pebble.exec(&opts) {
        Ok(out) => Ok(out.stdout_text()),
        Err(PebbleError::Exec { output, .. }) => Err(Error::Charm(format!(
            "psql on {host} failed: {}",
            output.stderr_text().trim()
        ))),
        Err(e) => Err(Error::Charm(format!(
            "cannot run psql in the workload: {e}"
        ))),
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
}
