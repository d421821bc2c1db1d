//! Substrates: where a unit lives and how its hooks run. The plain-process
//! substrate gives each unit a directory (with its own writable copy of the
//! charm) and runs hooks as ordinary child processes; a sandboxing substrate
//! (bubblewrap) can implement the same small trait.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

/// A boxed future, for the object-safe trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a unit lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPlacement {
    /// Unit name.
    pub unit: String,
    /// The unit's own directory.
    pub dir: PathBuf,
    /// The unit's charm directory (`JUJU_CHARM_DIR`).
    pub charm_dir: PathBuf,
    /// The unit's address (a 127.x.y.z loopback).
    pub address: String,
}

/// One hook process to run.
#[derive(Debug, Clone)]
pub struct HookInvocation {
    /// Executable (`dispatch`, `hooks/<name>` or `actions/<name>`; `/bin/sh` for exec).
    pub program: PathBuf,
    /// Arguments (none for hooks and actions; `-c <command>` for exec).
    pub args: Vec<String>,
    /// Full environment (the process gets nothing else).
    pub env: Vec<(String, String)>,
    /// Working directory (the charm dir).
    pub cwd: PathBuf,
}

/// How a hook process ended.
#[derive(Debug, Clone, Default)]
pub struct HookOutput {
    /// Exit code, None when killed by a signal.
    pub code: Option<i32>,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
}

/// Provision units, run their hooks, tear them down.
pub trait Substrate: Send + Sync + 'static {
    /// Create the unit's directory and charm copy (idempotent: also on restart).
    fn provision(&self, unit: &str, address: &str, charm: &Path) -> std::io::Result<UnitPlacement>;
    /// Replace the unit's charm with a new revision (upgrade-charm).
    fn refresh_charm(&self, placement: &UnitPlacement, charm: &Path) -> std::io::Result<()>;
    /// Run one hook process to completion. Dropping the future kills it.
    fn run_hook<'a>(
        &'a self,
        placement: &'a UnitPlacement,
        run: HookInvocation,
    ) -> BoxFuture<'a, std::io::Result<HookOutput>>;
    /// Workload containers whose Pebble is ready (none without Pebble).
    fn ready_containers(&self, _placement: &UnitPlacement) -> BTreeSet<String> {
        BTreeSet::new()
    }
    /// Custom notices in the unit's ready containers' Pebble (none without Pebble).
    fn custom_notices(&self, _placement: &UnitPlacement) -> Vec<PebbleNotice> {
        Vec::new()
    }
    /// True while some of the unit's containers are still starting: the uniter then looks
    /// again soon instead of sleeping until the next event.
    fn awaiting_containers(&self, _placement: &UnitPlacement) -> bool {
        false
    }
    /// Remove the unit's resources.
    fn teardown(&self, placement: &UnitPlacement) -> std::io::Result<()>;
}

/// Units as directories under `root`, hooks as plain child processes.
#[derive(Debug, Clone)]
pub struct ProcessSubstrate {
    root: PathBuf,
}

impl ProcessSubstrate {
    /// Units live under `root/unit-<app>-<n>`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProcessSubstrate { root: root.into() }
    }
}

/// Kills a hook's process group when the hook is abandoned before it exits.
pub(crate) struct GroupGuard(Option<u32>);

impl GroupGuard {
    /// Guards the group led by `pid`.
    pub(crate) fn new(pid: u32) -> Self {
        GroupGuard(Some(pid))
    }

    /// The hook ended: nothing to kill.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// `app/0` → `unit-app-0`.
pub fn unit_tag(unit: &str) -> String {
    format!("unit-{}", unit.replace('/', "-"))
}

/// Spawns `cmd`, retrying briefly on ETXTBSY: a charm binary copied into one unit while
/// another unit's hook is being forked can be held open for writing by that fork until
/// it execs (the classic fork/exec race), which makes exec fail with "Text file busy".
async fn spawn_retrying_busy(
    cmd: &mut tokio::process::Command,
) -> std::io::Result<tokio::process::Child> {
    const ETXTBSY: i32 = 26;
    let mut delay = Duration::from_millis(2);
    for _ in 0..8 {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    cmd.spawn()
}

impl Substrate for ProcessSubstrate {
    fn provision(&self, unit: &str, address: &str, charm: &Path) -> std::io::Result<UnitPlacement> {
        let dir = self.root.join(unit_tag(unit));
        let charm_dir = dir.join("charm");
        if !charm_dir.exists() {
            crate::charmdir::copy_dir(charm, &charm_dir)?;
        }
        Ok(UnitPlacement {
            unit: unit.into(),
            dir,
            charm_dir,
            address: address.into(),
        })
    }

    fn refresh_charm(&self, placement: &UnitPlacement, charm: &Path) -> std::io::Result<()> {
        crate::charmdir::copy_dir(charm, &placement.charm_dir)
    }

    fn run_hook<'a>(
        &'a self,
        _placement: &'a UnitPlacement,
        run: HookInvocation,
    ) -> BoxFuture<'a, std::io::Result<HookOutput>> {
        Box::pin(run_process(run))
    }

    fn teardown(&self, placement: &UnitPlacement) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&placement.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Runs one hook process to completion in its own process group, capturing its output.
/// Dropping the future kills the group.
pub(crate) async fn run_process(run: HookInvocation) -> std::io::Result<HookOutput> {
    {
        use tokio::io::AsyncReadExt;
        let mut cmd = tokio::process::Command::new(&run.program);
        cmd.args(&run.args)
            .env_clear()
            .envs(run.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&run.cwd)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // Its own process group, so everything the hook started can be
            // killed if the hook is abandoned (shutdown, crash).
            .process_group(0)
            .kill_on_drop(true);
        let mut child = spawn_retrying_busy(&mut cmd).await?;
        let guard = GroupGuard(child.id());
        let mut out = child.stdout.take();
        let mut err = child.stderr.take();
        let read_out = tokio::spawn(async move {
            let mut v = Vec::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_end(&mut v).await;
            }
            v
        });
        let read_err = tokio::spawn(async move {
            let mut v = Vec::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_end(&mut v).await;
            }
            v
        });
        let status = child.wait().await?;
        std::mem::forget(guard);
        // A daemon the hook left running may hold the pipes open: take what
        // arrived shortly after exit rather than waiting for it to die.
        let grace = std::time::Duration::from_secs(2);
        let stdout = tokio::time::timeout(grace, read_out)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let stderr = tokio::time::timeout(grace, read_err)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        Ok(HookOutput {
            code: status.code(),
            stdout,
            stderr,
        })
    }
}

/// A custom notice in a container's Pebble, as the uniter tracks it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PebbleNotice {
    /// The container.
    pub container: String,
    /// Pebble's notice id.
    pub id: String,
    /// Its key (e.g. `ward.io/postgresql/role-change`).
    pub key: String,
    /// How many times it occurred: a new occurrence is a new event.
    pub occurrences: u32,
}
