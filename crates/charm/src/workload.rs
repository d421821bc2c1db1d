//! A workload container as a charm drives it: files, the Pebble layer, services.
//!
//! [`Workload`] is the small surface most charms need; [`PebbleWorkload`] is the real one
//! over the container's Pebble socket, and [`FakeWorkload`] keeps the container in memory
//! so harness tests run every event path without processes.
//!
//! A charm gets its container with [`crate::Context::workload`], which is Pebble under
//! Juju and Ward, and the State's [`crate::testing::Container`] under the harness.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::pebble::{CheckInfo, Client, ExecOptions, ExecOutput, FileInfo, FileOptions, Notice};
use crate::{Error, Result};

/// What a charm does with one workload container.
pub trait Workload: std::fmt::Debug {
    /// Whether the container's Pebble answers.
    fn can_connect(&self) -> bool;
    /// A file's content; `None` when it does not exist (or cannot be read).
    fn pull(&self, path: &str) -> Option<Vec<u8>>;
    /// Writes a file 0600, owned by the workload's user, making parent directories.
    fn push_private(&self, path: &str, content: &[u8]) -> Result<()>;
    /// Adds (combines) a layer.
    fn add_layer(&self, label: &str, yaml: &str) -> Result<()>;
    /// Starts what the plan says should run, restarting changed services.
    fn replan(&self) -> Result<()>;
    /// Restarts services (starts them when stopped).
    fn restart(&self, services: &[&str]) -> Result<()>;
    /// Stops services (stopped ones stay stopped).
    fn stop(&self, services: &[&str]) -> Result<()>;
    /// Runs a command in the container as its workload user and returns its stdout;
    /// a non-zero exit is an error carrying stderr.
    fn exec(&self, argv: &[&str]) -> Result<String>;
    /// A service's current state as Pebble names it (`active`, `inactive`, `error`,
    /// `backoff`); `None` when the service is unknown or Pebble does not answer.
    fn service_status(&self, service: &str) -> Option<String>;
    /// Whether a service is running.
    fn is_running(&self, service: &str) -> bool {
        self.service_status(service).as_deref() == Some("active")
    }
    /// Sends a signal (e.g. `SIGHUP`) to a service.
    fn signal(&self, signal: &str, service: &str) -> Result<()>;
}

/// A container's Pebble over `/charm/containers/<name>/pebble.socket`; private files
/// belong to `owner` (user and group of the same name).
#[derive(Debug)]
pub struct PebbleWorkload {
    client: Client,
    owner: String,
}

impl PebbleWorkload {
    /// The container `name`, whose private files belong to `owner`.
    pub fn new(name: &str, owner: &str) -> Self {
        Self {
            client: Client::for_container(name),
            owner: owner.into(),
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Workload for PebbleWorkload {
    fn can_connect(&self) -> bool {
        self.client.can_connect()
    }

    fn pull(&self, path: &str) -> Option<Vec<u8>> {
        self.client.pull(path).ok()
    }

    fn push_private(&self, path: &str, content: &[u8]) -> Result<()> {
        self.client
            .push(
                path,
                content,
                &FileOptions {
                    make_dirs: true,
                    permissions: Some(0o600),
                    user: Some(self.owner.clone()),
                    group: Some(self.owner.clone()),
                    ..Default::default()
                },
            )
            .map_err(|e| Error::Charm(format!("cannot write {path} in the workload: {e}")))
    }

    fn add_layer(&self, label: &str, yaml: &str) -> Result<()> {
        self.client
            .add_layer(label, yaml, true)
            .map_err(|e| Error::Charm(format!("cannot add the Pebble layer {label}: {e}")))
    }

    fn replan(&self) -> Result<()> {
        self.client
            .replan()
            .map(|_| ())
            .map_err(|e| Error::Charm(format!("cannot start the workload's services: {e}")))
    }

    fn restart(&self, services: &[&str]) -> Result<()> {
        self.client
            .restart(services)
            .map(|_| ())
            .map_err(|e| Error::Charm(format!("cannot restart {}: {e}", services.join(", "))))
    }

    fn stop(&self, services: &[&str]) -> Result<()> {
        self.client
            .stop(services)
            .map(|_| ())
            .map_err(|e| Error::Charm(format!("cannot stop {}: {e}", services.join(", "))))
    }

    fn exec(&self, argv: &[&str]) -> Result<String> {
        let mut opts = crate::pebble::ExecOptions::new(argv.iter().copied());
        opts.user = Some(self.owner.clone());
        opts.timeout = Some(std::time::Duration::from_secs(60));
        match self.client.exec(&opts) {
            Ok(out) => Ok(out.stdout_text()),
            Err(crate::pebble::Error::Exec { output, .. }) => Err(Error::Charm(format!(
                "{} failed in the workload: {}",
                argv.first().copied().unwrap_or_default(),
                output.stderr_text().trim()
            ))),
            Err(e) => Err(Error::Charm(format!(
                "cannot run {} in the workload: {e}",
                argv.first().copied().unwrap_or_default()
            ))),
        }
    }

    fn service_status(&self, service: &str) -> Option<String> {
        self.client
            .services(&[service])
            .ok()
            .and_then(|s| s.into_iter().next())
            .map(|s| s.current)
    }

    fn signal(&self, signal: &str, service: &str) -> Result<()> {
        self.client
            .send_signal(signal, &[service])
            .map_err(|e| Error::Charm(format!("cannot send {signal} to {service}: {e}")))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock has failed already; keep its state.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A file in a [`FakeWorkload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Its content.
    pub content: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub user: String,
}

/// What a [`FakeWorkload`] holds.
#[derive(Debug, Default)]
pub struct WorkloadState {
    /// Whether Pebble answers.
    pub reachable: bool,
    /// The owner of private files.
    pub owner: String,
    /// Files by path.
    pub files: BTreeMap<String, File>,
    /// Layers added, in order (label, YAML).
    pub layers: Vec<(String, String)>,
    /// How many times replan ran.
    pub replans: usize,
    /// Running services.
    pub running: BTreeSet<String>,
    /// Restarts asked for, in order.
    pub restarts: Vec<String>,
    /// Stops asked for, in order.
    pub stops: Vec<String>,
    /// Commands run, each as its argv joined with spaces.
    pub execs: Vec<String>,
    /// What a command prints, by its argv joined with spaces; others print nothing.
    pub exec_outputs: BTreeMap<String, String>,
    /// Signals sent (signal, service).
    pub signals: Vec<(String, String)>,
}

/// A workload container in memory: a cheap handle onto shared state (keep a clone, give
/// one to the charm, inspect the clone after the hook). `replan` starts every service a
/// layer names.
#[derive(Debug, Clone, Default)]
pub struct FakeWorkload(pub Arc<Mutex<WorkloadState>>);

impl FakeWorkload {
    /// A reachable container whose private files belong to `postgres`.
    pub fn reachable() -> Self {
        let w = Self::default();
        {
            let mut s = lock(&w.0);
            s.reachable = true;
            s.owner = "postgres".into();
        }
        w
    }

    /// The state, to inspect or change.
    pub fn state(&self) -> MutexGuard<'_, WorkloadState> {
        lock(&self.0)
    }
}

/// The service names a layer's YAML declares (the keys under `services:`).
fn layer_services(yaml: &str) -> Vec<String> {
    yaml.lines()
        .skip_while(|l| !l.starts_with("services:"))
        .skip(1)
        .take_while(|l| l.starts_with(' ') || l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim().ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':').trim_matches('"').to_string())
        .collect()
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
        let user = s.owner.clone();
        s.files.insert(
            path.into(),
            File {
                content: content.to_vec(),
                mode: 0o600,
                user,
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
            .flat_map(|(_, yaml)| layer_services(yaml))
            .collect();
        s.running.extend(services);
        Ok(())
    }

    fn restart(&self, services: &[&str]) -> Result<()> {
        let mut s = lock(&self.0);
        for svc in services {
            s.restarts.push((*svc).to_string());
            s.running.insert((*svc).to_string());
        }
        Ok(())
    }

    fn stop(&self, services: &[&str]) -> Result<()> {
        let mut s = lock(&self.0);
        for svc in services {
            s.stops.push((*svc).to_string());
            s.running.remove(*svc);
        }
        Ok(())
    }

    fn exec(&self, argv: &[&str]) -> Result<String> {
        let mut s = lock(&self.0);
        if !s.reachable {
            return Err(Error::Charm("cannot run a command: no Pebble".into()));
        }
        let line = argv.join(" ");
        s.execs.push(line.clone());
        Ok(s.exec_outputs.get(&line).cloned().unwrap_or_default())
    }

    fn service_status(&self, service: &str) -> Option<String> {
        let s = lock(&self.0);
        if !s.reachable {
            return None;
        }
        let known = s
            .layers
            .iter()
            .any(|(_, yaml)| layer_services(yaml).iter().any(|n| n == service));
        if s.running.contains(service) {
            Some("active".into())
        } else if known {
            Some("inactive".into())
        } else {
            None
        }
    }

    fn signal(&self, signal: &str, service: &str) -> Result<()> {
        lock(&self.0).signals.push((signal.into(), service.into()));
        Ok(())
    }
}

/// The rest of Pebble's API a charm uses, beyond [`Workload`]: files with explicit
/// permissions and owner, listing and removing paths, starting services, the plan,
/// commands with options, checks and notices.
pub trait ContainerApi: Workload {
    /// Writes a file; `opts` gives its permissions (default 0644), owner (default the
    /// daemon's user; a user alone implies its group) and whether to make parents.
    fn push(&self, path: &str, content: &[u8], opts: &FileOptions) -> Result<()>;
    /// Describes a file, or lists a directory's entries.
    fn list_files(&self, path: &str) -> Result<Vec<FileInfo>>;
    /// Removes a file, or with `recursive` a directory and everything in it (a
    /// missing path is then not an error).
    fn remove_path(&self, path: &str, recursive: bool) -> Result<()>;
    /// Starts services (started ones stay started).
    fn start(&self, services: &[&str]) -> Result<()>;
    /// The combined plan as YAML.
    fn plan(&self) -> Result<String>;
    /// Runs a command with its options; returns its exit code and output whatever the
    /// code (an error means it could not run).
    fn exec_with(&self, opts: &ExecOptions) -> Result<ExecOutput>;
    /// Every health check and its status.
    fn checks(&self) -> Result<Vec<CheckInfo>>;
    /// The notices Pebble keeps.
    fn notices(&self) -> Result<Vec<Notice>>;
}

impl ContainerApi for PebbleWorkload {
    fn push(&self, path: &str, content: &[u8], opts: &FileOptions) -> Result<()> {
        self.client
            .push(path, content, opts)
            .map_err(|e| Error::Charm(format!("cannot write {path} in the workload: {e}")))
    }

    fn list_files(&self, path: &str) -> Result<Vec<FileInfo>> {
        self.client
            .list_files(path, None, false)
            .map_err(|e| Error::Charm(format!("cannot list {path} in the workload: {e}")))
    }

    fn remove_path(&self, path: &str, recursive: bool) -> Result<()> {
        self.client
            .remove_path(path, recursive)
            .map_err(|e| Error::Charm(format!("cannot remove {path} in the workload: {e}")))
    }

    fn start(&self, services: &[&str]) -> Result<()> {
        self.client
            .start(services)
            .map(|_| ())
            .map_err(|e| Error::Charm(format!("cannot start {}: {e}", services.join(", "))))
    }

    fn plan(&self) -> Result<String> {
        self.client
            .plan()
            .map_err(|e| Error::Charm(format!("cannot read the workload's plan: {e}")))
    }

    fn exec_with(&self, opts: &ExecOptions) -> Result<ExecOutput> {
        let argv0 = opts.command.first().cloned().unwrap_or_default();
        match self.client.exec(opts) {
            Ok(out) => Ok(out),
            Err(crate::pebble::Error::Exec { output, .. }) => Ok(*output),
            Err(e) => Err(Error::Charm(format!(
                "cannot run {argv0} in the workload: {e}"
            ))),
        }
    }

    fn checks(&self) -> Result<Vec<CheckInfo>> {
        self.client
            .checks(None, &[])
            .map_err(|e| Error::Charm(format!("cannot read the workload's checks: {e}")))
    }

    fn notices(&self) -> Result<Vec<Notice>> {
        self.client
            .notices(&[], &[])
            .map_err(|e| Error::Charm(format!("cannot read the workload's notices: {e}")))
    }
}

impl crate::model::Context<'_> {
    /// The workload container `name` (as metadata.yaml's `containers:` declares it),
    /// whose private files belong to `owner`.
    ///
    /// Under Juju or Ward this is a [`PebbleWorkload`] over
    /// `/charm/containers/<name>/pebble.socket`; while [`crate::testing::Harness`] runs
    /// the charm it is the State's [`crate::testing::Container`] of that name, so the
    /// same charm code runs against both. Pebble not answering (or, in the harness, a
    /// container with `can_connect` false or missing from the State) makes every call
    /// fail and [`Workload::can_connect`] false.
    pub fn workload(&self, name: &str, owner: &str) -> Box<dyn Workload> {
        self.container(name, owner)
    }

    /// The same container as [`Context::workload`](crate::Context::workload), with the
    /// rest of Pebble's API ([`ContainerApi`]).
    pub fn container(&self, name: &str, owner: &str) -> Box<dyn ContainerApi> {
        crate::testing::harness_container(name, owner)
            .unwrap_or_else(|| Box::new(PebbleWorkload::new(name, owner)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_replan_starts_the_layer_services() {
        let w = FakeWorkload::reachable();
        w.add_layer(
            "l",
            "summary: x\nservices:\n  pgbouncer_0:\n    override: replace\n    command: a\n  pgbouncer_1:\n    override: replace\n    command: b\n",
        )
        .unwrap();
        assert_eq!(w.service_status("pgbouncer_0").as_deref(), Some("inactive"));
        w.replan().unwrap();
        assert!(w.is_running("pgbouncer_0") && w.is_running("pgbouncer_1"));
        assert_eq!(w.service_status("other"), None);
        w.push_private("/etc/x", b"1").unwrap();
        assert_eq!(w.state().files["/etc/x"].mode, 0o600);
        assert_eq!(w.state().files["/etc/x"].user, "postgres");
    }
}
