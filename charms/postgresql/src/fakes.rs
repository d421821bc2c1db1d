//! In-memory stand-ins for the workload, Patroni's REST API and psql, so that harness
//! tests drive every event path without processes. Each is a cheap handle onto shared
//! state: keep a clone, give one to the charm, inspect the clone after the hook.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};

use crate::patroni::PatroniApi;
pub use charm::workload::{FakeWorkload, File, WorkloadState};
pub use interfaces::sql::{FakeSql, SqlCall, SqlState};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock has failed already; keep its state.
    m.lock().unwrap_or_else(|e| e.into_inner())
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
    /// Whether it went over HTTPS (the charm had given a CA).
    pub https: bool,
}

/// What the fake Patroni answers and what it was asked.
#[derive(Debug, Default)]
pub struct PatroniState {
    /// Answers by (method, path); unknown requests fail as a refused connection.
    pub answers: BTreeMap<(String, String), (u16, Value)>,
    /// Every request, in order.
    pub calls: Vec<PatroniCall>,
    /// Members whose API does not answer (refused connections), by address.
    pub down: std::collections::BTreeSet<String>,
    /// The CA the charm gave for HTTPS, if any.
    pub ca: Option<String>,
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

    /// Makes the member at `address` stop answering (its Patroni is gone).
    pub fn down(&self, address: &str) {
        lock(&self.0).down.insert(address.into());
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
        let https = s.ca.is_some();
        s.calls.push(PatroniCall {
            address: address.into(),
            method: method.into(),
            path: path.into(),
            body: body.cloned(),
            authenticated: password.is_some(),
            https,
        });
        if s.down.contains(address) {
            return Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        }
        s.answers
            .get(&(method.to_string(), path.to_string()))
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    }

    fn use_ca(&self, ca: Option<&str>) {
        lock(&self.0).ca = ca.map(str::to_string);
    }
}
