//! The workload container as the charm uses it: files, the Pebble layer, the service.
//! [`Pebble`] is the real one (the container's Pebble socket); [`crate::fakes`] has an
//! in-memory one for harness tests.

use charm::pebble::{Client, FileOptions};
use charm::{Error, Result};

/// What the charm does with the `postgresql` container.
pub trait Workload: std::fmt::Debug {
    /// Whether the container's Pebble answers.
    fn can_connect(&self) -> bool;
    /// A file's content; `None` when it does not exist (or cannot be read).
    fn pull(&self, path: &str) -> Option<Vec<u8>>;
    /// Writes a file 0600, owned by postgres, making parent directories.
    fn push_private(&self, path: &str, content: &[u8]) -> Result<()>;
    /// Adds (combines) a layer.
    fn add_layer(&self, label: &str, yaml: &str) -> Result<()>;
    /// Starts what the plan says should run, restarting changed services.
    fn replan(&self) -> Result<()>;
    /// Whether a service is running.
    fn is_running(&self, service: &str) -> bool;
    /// Sends a signal (e.g. `SIGHUP`) to a service.
    fn signal(&self, signal: &str, service: &str) -> Result<()>;
}

/// The container's Pebble over `/charm/containers/<name>/pebble.socket`.
#[derive(Debug)]
pub struct Pebble {
    client: Client,
}

impl Pebble {
    /// The container `name`.
    pub fn new(name: &str) -> Self {
        Self {
            client: Client::for_container(name),
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Workload for Pebble {
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
                    user: Some("postgres".into()),
                    group: Some("postgres".into()),
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
            .map_err(|e| Error::Charm(format!("cannot start Patroni: {e}")))
    }

    fn is_running(&self, service: &str) -> bool {
        self.client
            .services(&[service])
            .map(|s| s.first().is_some_and(|s| s.current == "active"))
            .unwrap_or(false)
    }

    fn signal(&self, signal: &str, service: &str) -> Result<()> {
        self.client
            .send_signal(signal, &[service])
            .map_err(|e| Error::Charm(format!("cannot send {signal} to {service}: {e}")))
    }
}
