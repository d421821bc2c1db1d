//! In-memory stand-ins for the workload, Patroni's REST API and psql, so that harness
//! tests drive every event path without processes. Each is a cheap handle onto shared
//! state: keep a clone, give one to the charm, inspect the clone after the hook.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use charm::{Error, Result};
use serde_json::{json, Value};

use crate::patroni::PatroniApi;
use crate::sql::Sql;
use crate::workload::Workload;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock has failed already; keep its state.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A file in the fake workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Its content.
    pub content: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub user: String,
}

/// What the fake workload holds.
#[derive(Debug, Default)]
pub struct WorkloadState {
    /// Whether Pebble answers.
    pub reachable: bool,
    /// Files by path.
    pub files: BTreeMap<String, File>,
    /// Layers added, in order (label, YAML).
    pub layers: Vec<(String, String)>,
    /// How many times replan ran.
    pub replans: usize,
    /// Running services.
    pub running: BTreeSet<String>,
    /// Signals sent (signal, service).
    pub signals: Vec<(String, String)>,
}

/// A workload container in memory. `replan` starts every service a layer names.
#[derive(Debug, Clone, Default)]
pub struct FakeWorkload(pub Arc<Mutex<WorkloadState>>);

impl FakeWorkload {
    /// A reachable container.
    pub fn reachable() -> Self {
        let w = Self::default();
        lock(&w.0).reachable = true;
        w
    }

    /// The state, to inspect or change.
    pub fn state(&self) -> MutexGuard<'_, WorkloadState> {
        lock(&self.0)
    }
}

impl Workload for FakeWorkload {
    fn can_connect(&self) -> bool {
        lock(&self.0).reachable
    }

    fn pull(&self, path: &str) -> Option<Vec<u8>> {
        lock(&self.0).files.get(path).map(|f| f.content.clone())
    }

    fn push_private(&self, path: &str, content: &[u8]) -> Result<()> {
        let mut s = lock(&self.0);
        if !s.reachable {
            return Err(Error::Charm(format!("cannot write {path}: no Pebble")));
        }
        s.files.insert(
            path.into(),
            File {
                content: content.to_vec(),
                mode: 0o600,
                user: "postgres".into(),
            },
        );
        Ok(())
    }

    fn add_layer(&self, label: &str, yaml: &str) -> Result<()> {
        lock(&self.0).layers.push((label.into(), yaml.into()));
        Ok(())
    }

    fn replan(&self) -> Result<()> {
        let mut s = lock(&self.0);
        s.replans += 1;
        let services: Vec<String> = s
            .layers
            .iter()
            .flat_map(|(_, yaml)| {
                yaml.lines()
                    .skip_while(|l| !l.starts_with("services:"))
                    .skip(1)
                    .take_while(|l| l.starts_with(' '))
                    .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
                    .map(|l| l.trim().trim_end_matches(':').to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        s.running.extend(services);
        Ok(())
    }

    fn is_running(&self, service: &str) -> bool {
        lock(&self.0).running.contains(service)
    }

    fn signal(&self, signal: &str, service: &str) -> Result<()> {
        lock(&self.0).signals.push((signal.into(), service.into()));
        Ok(())
    }
}

/// One request Patroni received.
#[derive(Debug, Clone, PartialEq)]
pub struct PatroniCall {
    /// Member address.
    pub address: String,
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// JSON body.
    pub body: Option<Value>,
    /// Whether basic auth was sent.
    pub authenticated: bool,
}

/// What the fake Patroni answers and what it was asked.
#[derive(Debug, Default)]
pub struct PatroniState {
    /// Answers by (method, path); unknown requests fail as a refused connection.
    pub answers: BTreeMap<(String, String), (u16, Value)>,
    /// Every request, in order.
    pub calls: Vec<PatroniCall>,
}

/// Patroni's REST API answering from a table.
#[derive(Debug, Clone, Default)]
pub struct FakePatroni(pub Arc<Mutex<PatroniState>>);

impl FakePatroni {
    /// A cluster whose members are (name, role, host), this member running as `role`
    /// (`primary` or `replica`), PostgreSQL 15.14, and a DCS config that matches the
    /// charm's defaults.
    pub fn running(role: &str, members: &[(&str, &str, &str)]) -> Self {
        let p = Self::default();
        let patroni_role = if role == "primary" {
            "master"
        } else {
            "replica"
        };
        p.answer(
            "GET",
            "/patroni",
            200,
            json!({"state": "running", "role": patroni_role, "server_version": 150014}),
        );
        let members: Vec<Value> = members
            .iter()
            .map(|(name, role, host)| json!({"name": name, "role": role, "host": host, "port": 5432, "state": "running"}))
            .collect();
        p.answer("GET", "/cluster", 200, json!({ "members": members }));
        p.answer(
            "GET",
            "/config",
            200,
            json!({"synchronous_mode": false, "synchronous_mode_strict": false, "synchronous_node_count": 1, "maximum_lag_on_failover": 1048576}),
        );
        p.answer("PATCH", "/config", 200, json!({}));
        p.answer(
            "POST",
            "/switchover",
            200,
            json!("Successfully switched over"),
        );
        p
    }

    /// Sets the answer to `method path`.
    pub fn answer(&self, method: &str, path: &str, code: u16, body: Value) {
        lock(&self.0)
            .answers
            .insert((method.into(), path.into()), (code, body));
    }

    /// The requests made so far.
    pub fn calls(&self) -> Vec<PatroniCall> {
        lock(&self.0).calls.clone()
    }
}

impl PatroniApi for FakePatroni {
    fn request(
        &self,
        address: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        password: Option<&str>,
    ) -> std::io::Result<(u16, Value)> {
        let mut s = lock(&self.0);
        s.calls.push(PatroniCall {
            address: address.into(),
            method: method.into(),
            path: path.into(),
            body: body.cloned(),
            authenticated: password.is_some(),
        });
        s.answers
            .get(&(method.to_string(), path.to_string()))
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    }
}

/// One script run through the fake psql.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlCall {
    /// Host psql connected to.
    pub host: String,
    /// Database.
    pub database: String,
    /// The script.
    pub script: String,
    /// The operator password used.
    pub password: String,
}

/// What the fake psql ran and answers.
#[derive(Debug, Default)]
pub struct SqlState {
    /// Scripts run, in order.
    pub calls: Vec<SqlCall>,
    /// Output for scripts containing a key (first match wins); empty otherwise.
    pub outputs: Vec<(String, String)>,
    /// When set, every script fails with this message.
    pub failure: Option<String>,
}

/// psql recording its scripts.
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
}

impl Sql for FakeSql {
    fn run(
        &self,
        host: &str,
        operator_password: &str,
        database: &str,
        script: &str,
    ) -> Result<String> {
        let mut s = lock(&self.0);
        s.calls.push(SqlCall {
            host: host.into(),
            database: database.into(),
            script: script.into(),
            password: operator_password.into(),
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
