//! The daemon's shared state and lifecycle.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::WebSocket;
use tokio::sync::{mpsc, watch};

use crate::checks::CheckRun;
use crate::plan::{read_layers_dir, FormatError, Layer, Plan};
use crate::services::Svc;
use crate::state::State;

/// Everything behind the daemon's lock.
pub struct Inner {
    /// Layers in order.
    pub layers: Vec<Layer>,
    /// The combined plan.
    pub plan: Plan,
    /// Services that were ever started.
    pub services: BTreeMap<String, Svc>,
    /// Running checks.
    pub checks: BTreeMap<String, CheckRun>,
    /// Changes and notices.
    pub state: State,
    /// Exec tasks waiting for their websockets, by task id.
    pub execs: HashMap<u64, mpsc::Sender<(String, WebSocket)>>,
}

/// The daemon.
pub struct Daemon {
    inner: Mutex<Inner>,
    bump: watch::Sender<u64>,
    /// Random id of this daemon run (Juju fires pebble-ready when it changes).
    pub boot_id: String,
    /// `$PEBBLE`.
    pub dir: PathBuf,
    /// The daemon's uid (peers with it or root are admins).
    pub uid: u32,
    /// Set when a service action asks the daemon to exit, with the exit code.
    pub exit: watch::Sender<Option<i32>>,
}

/// Pebble's version string for system-info.
pub const VERSION: &str = concat!("v1.32.1-ward", env!("CARGO_PKG_VERSION"));

impl Daemon {
    /// Opens the daemon on `$PEBBLE` (reading `layers/`).
    pub fn new(dir: &Path) -> Result<Arc<Daemon>, FormatError> {
        let layers = read_layers_dir(&dir.join("layers"))?;
        let plan = Plan::new(&layers)?;
        let (bump, _) = watch::channel(0);
        let (exit, _) = watch::channel(None);
        Ok(Arc::new(Daemon {
            inner: Mutex::new(Inner {
                layers,
                plan,
                services: BTreeMap::new(),
                checks: BTreeMap::new(),
                state: State::default(),
                execs: HashMap::new(),
            }),
            bump,
            boot_id: random_uuid(),
            dir: dir.to_path_buf(),
            uid: nix::unistd::getuid().as_raw(),
            exit,
        }))
    }

    /// Locks the state. A panic while holding the lock (a bug) must not take every later
    /// request down with it, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes everyone waiting on changes or notices.
    pub fn bump(&self) {
        self.bump.send_modify(|v| *v += 1);
    }

    /// Subscribes to wake-ups.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.bump.subscribe()
    }
}

/// A random version-4 UUID.
pub fn random_uuid() -> String {
    let b: [u8; 16] = rand::random();
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-4{:01x}{:02x}-{:01x}{:01x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6] & 0x0f, b[7], 8 | (b[8] & 0x3), b[8] >> 4, b[9],
        b[10], b[11], b[12], b[13], b[14], b[15]
    )
}
