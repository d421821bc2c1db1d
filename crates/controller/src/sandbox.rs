//! The local sandbox substrate: each unit's hooks run in a bubblewrap charm sandbox and
//! each of its workload containers in a bubblewrap workload sandbox whose first process is
//! Ward's Pebble (`ward-pebble`), as a Kubernetes pod runs Juju's charm and workload
//! containers. No Docker, no Kubernetes; the network is the host's, and every unit has a
//! loopback address of its own.
//!
//! Unit directory (`<root>/unit-<app>-<n>/`):
//!
//! | path | what |
//! |---|---|
//! | `charm/` | the unit's copy of the charm (`JUJU_CHARM_DIR`, same path inside) |
//! | `containers/<c>/sock/` | bound at `/charm/container` in the workload and at `/charm/containers/<c>` in the charm sandbox: `pebble.socket` |
//! | `containers/<c>/var/`, `run/` | the workload's `/var` (Pebble's state in `var/lib/pebble/default`) and `/run` |
//! | `containers/<c>/passwd`, `group` | the host's, plus the rock's user (uid/gid 584788 `postgres`) |
//! | `containers/<c>/sandbox.pid`, `pebble.log` | the sandbox's pid on the host and Pebble's output |
//! | `storage/<name>/` | storage, bound at each container mount's location |
//!
//! Workload sandboxes outlive the controller: on restart a unit whose Pebble answers is
//! re-adopted; one whose sandbox is gone is started again.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::charmdir::{read_meta, CharmMeta};
use crate::substrate::{
    run_process, unit_tag, BoxFuture, HookInvocation, HookOutput, Substrate, UnitPlacement,
};

/// The uid/gid of the `postgres` user in Canonical's PostgreSQL and PgBouncer rocks.
pub const ROCK_UID: u32 = 584788;

/// How the sandbox substrate is set up.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Units live under `root/unit-<app>-<n>`.
    pub root: PathBuf,
    /// `bwrap`.
    pub bwrap: PathBuf,
    /// The `ward-pebble` binary, bound read-only at `/charm/bin/pebble`.
    pub pebble: PathBuf,
    /// `rocks/`: a container whose resource is `<rock>-image` (or `<rock>`) and that has
    /// `rocks/<rock>/packages.txt` gets that rock's user and directories.
    pub rocks_dir: Option<PathBuf>,
    /// The hook-tool directory and the `ward-jujuc` binary its links point to.
    pub tools: Vec<PathBuf>,
    /// Extra host paths bound read-only into charm sandboxes (a Python interpreter that
    /// lives outside /usr, for instance).
    pub extra_ro_binds: Vec<PathBuf>,
    /// `ward-hook-runner`: with it, each unit keeps one long-lived charm sandbox and hooks
    /// start inside it (a process spawn instead of a new sandbox per hook); without it,
    /// every hook gets a fresh sandbox.
    pub hook_runner: Option<PathBuf>,
}

/// The bubblewrap substrate.
#[derive(Debug, Clone)]
pub struct SandboxSubstrate {
    cfg: SandboxConfig,
}

fn io_err(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

impl SandboxSubstrate {
    /// A substrate with this configuration. Fails when `bwrap` or `ward-pebble` is missing,
    /// naming the package or build step that provides it.
    pub fn new(cfg: SandboxConfig) -> std::io::Result<Self> {
        if !cfg.bwrap.is_file() {
            return Err(io_err(format!(
                "bubblewrap is not installed ({} is missing): apt-get install -y bubblewrap",
                cfg.bwrap.display()
            )));
        }
        if !cfg.pebble.is_file() {
            return Err(io_err(format!(
                "ward-pebble not found at {}: build it with `cargo build --release -p pebble`",
                cfg.pebble.display()
            )));
        }
        Ok(SandboxSubstrate { cfg })
    }

    fn rock_for(&self, spec_resource: Option<&str>) -> Option<(String, PathBuf)> {
        let dir = self.cfg.rocks_dir.as_ref()?;
        let resource = spec_resource?;
        let name = resource.strip_suffix("-image").unwrap_or(resource);
        let rock = dir.join(name);
        rock.join("packages.txt")
            .is_file()
            .then(|| (name.to_string(), rock))
    }

    fn start_workload(
        &self,
        place: &UnitPlacement,
        meta: &CharmMeta,
        container: &str,
    ) -> std::io::Result<()> {
        let cdir = place.dir.join("containers").join(container);
        let sock_dir = cdir.join("sock");
        let socket = sock_dir.join("pebble.socket");
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Ok(()); // re-adopted: its Pebble answers
        }
        let spec = meta
            .container_specs
            .get(container)
            .cloned()
            .unwrap_or_default();
        let rock = self.rock_for(spec.resource.as_deref());
        if let Some((name, dir)) = &rock {
            check_packages(name, &dir.join("packages.txt"))?;
        }
        for d in [
            "sock",
            "var/lib/pebble/default/layers",
            "var/log",
            "var/tmp",
            "run",
        ] {
            std::fs::create_dir_all(cdir.join(d))?;
        }
        std::fs::set_permissions(
            cdir.join("var/tmp"),
            std::fs::Permissions::from_mode(0o1777),
        )?;
        let _ = std::os::unix::fs::symlink("/run", cdir.join("var/run"));
        let _ = std::os::unix::fs::symlink("/run/lock", cdir.join("var/lock"));
        let (passwd, group) = user_files(rock.is_some())?;
        write_private(&cdir.join("passwd"), &passwd, 0o644)?;
        write_private(&cdir.join("group"), &group, 0o644)?;
        if rock.is_some() {
            // The rock's state directories, owned by its user (as its overlay makes them).
            for d in [
                "var/lib/postgresql",
                "var/log/postgresql",
                "var/lib/pgbouncer",
                "var/log/pgbouncer",
                "run/postgresql",
                "run/pgbouncer",
            ] {
                let p = cdir.join(d);
                std::fs::create_dir_all(&p)?;
                std::os::unix::fs::chown(&p, Some(ROCK_UID), Some(ROCK_UID))?;
            }
        }
        let mut args: Vec<String> = vec![
            "--unshare-pid".into(),
            "--unshare-ipc".into(),
            "--new-session".into(),
        ];
        args.extend(base_fs());
        args.extend(bind_ro(&cdir.join("passwd"), Path::new("/etc/passwd")));
        args.extend(bind_ro(&cdir.join("group"), Path::new("/etc/group")));
        args.extend(bind_rw(&cdir.join("var"), Path::new("/var")));
        args.extend(bind_rw(&cdir.join("run"), Path::new("/run")));
        for (storage, location) in &spec.mounts {
            let host = place.dir.join("storage").join(storage);
            std::fs::create_dir_all(&host)?;
            if rock.is_some() {
                std::os::unix::fs::chown(&host, Some(ROCK_UID), Some(ROCK_UID))?;
            }
            args.extend(bind_rw(&host, Path::new(location)));
        }
        // /charm and /charm/bin readable by the workload's users (bwrap makes a bind's
        // missing parents 0700), so a service can run `/charm/bin/pebble notify`.
        for dir in ["/charm", "/charm/bin"] {
            args.extend(["--perms".into(), "0755".into(), "--dir".into(), dir.into()]);
        }
        args.extend(bind_rw(&sock_dir, Path::new("/charm/container")));
        args.extend(bind_ro(&self.cfg.pebble, Path::new("/charm/bin/pebble")));
        for (k, v) in [
            ("PEBBLE", "/var/lib/pebble/default"),
            ("PEBBLE_SOCKET", "/charm/container/pebble.socket"),
            ("JUJU_CONTAINER_NAME", container),
            (
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ),
            ("LANG", "C.UTF-8"),
        ] {
            args.extend(["--setenv".to_string(), k.to_string(), v.to_string()]);
        }
        args.extend(["--chdir".into(), "/".into()]);
        args.extend([
            "/charm/bin/pebble".into(),
            "run".into(),
            "--create-dirs".into(),
            "--hold".into(),
            "--verbose".into(),
        ]);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cdir.join("pebble.log"))?;
        let mut child = std::process::Command::new(&self.cfg.bwrap)
            .args(&args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()?;
        std::fs::write(cdir.join("sandbox.pid"), child.id().to_string())?;
        // Reap it when it ends (it outlives us if we go first).
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(())
    }

    /// The unit's long-lived charm sandbox running `ward-hook-runner`; started on first use
    /// (and again after a controller restart: it dies with the controller).
    fn ensure_runner(&self, place: &UnitPlacement, runner: &Path) -> std::io::Result<PathBuf> {
        let socket = place.dir.join("hook-runner.socket");
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Ok(socket);
        }
        let mut args: Vec<String> = vec![
            "--unshare-ipc".into(),
            "--die-with-parent".into(),
            "--new-session".into(),
        ];
        args.extend(base_fs());
        // The unit's own directory: its charm, the hook-tool socket, its runner socket.
        args.extend(bind_rw(&place.dir, &place.dir));
        for p in self.cfg.tools.iter().chain(&self.cfg.extra_ro_binds) {
            if p.exists() {
                args.extend(bind_ro(p, p));
            }
        }
        args.extend(bind_ro(runner, runner));
        if let Ok(entries) = std::fs::read_dir(place.dir.join("containers")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                args.extend(bind_rw(
                    &e.path().join("sock"),
                    &Path::new("/charm/containers").join(name),
                ));
            }
        }
        args.extend([
            "--chdir".into(),
            place.charm_dir.display().to_string(),
            "--".into(),
        ]);
        args.push(runner.display().to_string());
        args.push(socket.display().to_string());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(place.dir.join("hook-runner.log"))?;
        let mut cmd = std::process::Command::new(&self.cfg.bwrap);
        cmd.args(&args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // --die-with-parent is PR_SET_PDEATHSIG, which fires when the *thread* that
        // started bwrap ends: started from a blocking-pool thread, the runner was killed
        // once that thread idled out, mid-hook. Start it from a thread that lives as long
        // as the runner does.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || match cmd.spawn() {
            Ok(mut child) => {
                let _ = tx.send(Ok(child.id()));
                let _ = child.wait();
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        });
        let pid = rx
            .recv()
            .map_err(|_| io_err(format!("the hook runner of {} did not start", place.unit)))??;
        std::fs::write(place.dir.join("hook-runner.pid"), pid.to_string())?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if std::time::Instant::now() > deadline {
                return Err(io_err(format!(
                    "the hook runner of {} did not start",
                    place.unit
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(socket)
    }

    fn charm_sandbox_args(&self, place: &UnitPlacement, run: &HookInvocation) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--unshare-pid".into(),
            "--unshare-ipc".into(),
            "--die-with-parent".into(),
            "--new-session".into(),
        ];
        args.extend(base_fs());
        args.extend(bind_rw(&place.charm_dir, &place.charm_dir));
        for p in self.cfg.tools.iter().chain(&self.cfg.extra_ro_binds) {
            if p.exists() {
                args.extend(bind_ro(p, p));
            }
        }
        // The hook-tool socket for this hook.
        if let Some((_, sock)) = run
            .env
            .iter()
            .find(|(k, _)| k == "JUJU_AGENT_SOCKET_ADDRESS")
        {
            let sock = Path::new(sock);
            if sock.exists() {
                args.extend(bind_rw(sock, sock));
            }
        }
        if let Ok(entries) = std::fs::read_dir(place.dir.join("containers")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                args.extend(bind_rw(
                    &e.path().join("sock"),
                    &Path::new("/charm/containers").join(name),
                ));
            }
        }
        args.extend(["--chdir".into(), run.cwd.display().to_string()]);
        args.push("--".into());
        args.push(run.program.display().to_string());
        args.extend(run.args.iter().cloned());
        args
    }
}

/// The read-only host userland every sandbox gets: /usr (with the merged-usr links), /etc
/// without the shadow files, a private /tmp and /dev/shm, /proc and /dev.
fn base_fs() -> Vec<String> {
    let mut a: Vec<String> = bind_ro(Path::new("/usr"), Path::new("/usr"));
    for link in ["bin", "lib", "lib64", "sbin"] {
        let host = Path::new("/").join(link);
        match std::fs::read_link(&host) {
            Ok(target) => a.extend([
                "--symlink".into(),
                target.display().to_string(),
                host.display().to_string(),
            ]),
            Err(_) if host.is_dir() => a.extend(bind_ro(&host, &host)),
            Err(_) => {}
        }
    }
    a.extend(bind_ro(Path::new("/etc"), Path::new("/etc")));
    for secret in [
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/shadow-",
        "/etc/gshadow-",
    ] {
        if Path::new(secret).exists() {
            a.extend(bind_ro(Path::new("/dev/null"), Path::new(secret)));
        }
    }
    a.extend([
        "--proc".into(),
        "/proc".into(),
        "--dev".into(),
        "/dev".into(),
        "--perms".into(),
        "1777".into(),
        "--tmpfs".into(),
        "/tmp".into(),
        // POSIX semaphores and shared memory (Python's multiprocessing, which Patroni's
        // REST API uses for switchover checks) need a writable /dev/shm.
        "--perms".into(),
        "1777".into(),
        "--tmpfs".into(),
        "/dev/shm".into(),
    ]);
    a
}

fn bind_ro(host: &Path, inside: &Path) -> Vec<String> {
    vec![
        "--ro-bind".into(),
        host.display().to_string(),
        inside.display().to_string(),
    ]
}

fn bind_rw(host: &Path, inside: &Path) -> Vec<String> {
    vec![
        "--bind".into(),
        host.display().to_string(),
        inside.display().to_string(),
    ]
}

fn write_private(path: &Path, content: &str, mode: u32) -> std::io::Result<()> {
    std::fs::write(path, content)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// The host's passwd and group, with the rock's `postgres` user (584788) in place of any
/// host `postgres` entry.
fn user_files(rock: bool) -> std::io::Result<(String, String)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let group = std::fs::read_to_string("/etc/group")?;
    if !rock {
        return Ok((passwd, group));
    }
    let keep = |text: &str| -> String {
        text.lines()
            .filter(|l| !l.starts_with("postgres:"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let mut p = keep(&passwd);
    p.push_str(&format!(
        "postgres:x:{ROCK_UID}:{ROCK_UID}::/var/lib/postgresql:/bin/false\n"
    ));
    let mut g = keep(&group);
    g.push_str(&format!("postgres:x:{ROCK_UID}:\n"));
    Ok((p, g))
}

/// Refuses a rock whose Debian packages are missing, naming them and the command that
/// installs them. Installs nothing.
pub fn check_packages(rock: &str, list: &Path) -> std::io::Result<()> {
    let text = std::fs::read_to_string(list)?;
    let wanted: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|pkg| {
            std::process::Command::new("dpkg-query")
                .args(["-W", "-f", "${db:Status-Abbrev}", pkg])
                .output()
                .map(|o| !String::from_utf8_lossy(&o.stdout).starts_with("ii"))
                .unwrap_or(true)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(io_err(format!(
        "the {rock} rock needs Debian packages that are not installed: {}\ninstall them with: apt-get install -y {}",
        missing.join(" "),
        missing.join(" ")
    )))
}

/// Pids whose parent is `pid`, from /proc.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
}

/// Stops a workload sandbox: SIGTERM to its Pebble (which stops the services with their
/// kill-delays), then SIGKILL to whatever is left after `grace`.
fn stop_sandbox(pid: u32, grace: std::time::Duration) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let is_bwrap = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/comm"))
            .map(|c| c.trim() == "bwrap")
            .unwrap_or(false)
    };
    if !alive(pid) || !is_bwrap(pid) {
        return;
    }
    // bwrap (outer) → bwrap (the namespace's init) → pebble.
    for inner in children(pid) {
        for p in children(inner) {
            let _ = kill(Pid::from_raw(p as i32), Signal::SIGTERM);
        }
    }
    let deadline = std::time::Instant::now() + grace;
    while alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if alive(pid) {
        for inner in children(pid) {
            let _ = kill(Pid::from_raw(inner as i32), Signal::SIGKILL);
        }
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}

/// Runs one hook through the unit's runner; dropping the future kills the hook's group.
async fn run_in_runner(
    mut conn: tokio::net::UnixStream,
    run: HookInvocation,
) -> std::io::Result<HookOutput> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = crate::runner_wire::Request {
        program: run.program.display().to_string(),
        cwd: run.cwd.display().to_string(),
        args: run.args,
        env: run.env,
    };
    let mut buf = Vec::new();
    req.write(&mut buf)?;
    conn.write_all(&buf).await?;
    let pid = conn.read_u32().await?;
    if pid == 0 {
        let len = conn.read_u32().await? as usize;
        let mut msg = vec![0u8; len.min(1 << 20)];
        conn.read_exact(&mut msg).await?;
        return Err(io_err(String::from_utf8_lossy(&msg).into_owned()));
    }
    let guard = crate::substrate::GroupGuard::new(pid);
    let code = conn.read_i32().await?;
    let stdout = read_field(&mut conn).await?;
    let stderr = read_field(&mut conn).await?;
    guard.disarm();
    Ok(HookOutput {
        code: (code != i32::MIN).then_some(code),
        stdout,
        stderr,
    })
}

async fn read_field(conn: &mut tokio::net::UnixStream) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let len = conn.read_u32().await? as usize;
    if len > 256 << 20 {
        return Err(io_err("hook output too long".into()));
    }
    let mut v = vec![0u8; len];
    conn.read_exact(&mut v).await?;
    Ok(v)
}

/// Stops every workload sandbox under a units root (`<root>/*/containers/*/sandbox.pid`):
/// for tests and `ward destroy`, which must not leave workloads behind.
pub fn stop_all(root: &Path) {
    let Ok(units) = std::fs::read_dir(root) else {
        return;
    };
    for unit in units.flatten() {
        let Ok(containers) = std::fs::read_dir(unit.path().join("containers")) else {
            continue;
        };
        for c in containers.flatten() {
            if let Some(pid) = std::fs::read_to_string(c.path().join("sandbox.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
            {
                stop_sandbox(pid, std::time::Duration::from_secs(20));
            }
        }
    }
}

impl Substrate for SandboxSubstrate {
    fn provision(&self, unit: &str, address: &str, charm: &Path) -> std::io::Result<UnitPlacement> {
        let dir = self.cfg.root.join(unit_tag(unit));
        let charm_dir = dir.join("charm");
        if !charm_dir.exists() {
            crate::charmdir::copy_dir(charm, &charm_dir)?;
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let place = UnitPlacement {
            unit: unit.into(),
            dir,
            charm_dir,
            address: address.into(),
        };
        let meta = read_meta(&place.charm_dir).map_err(|e| io_err(e.to_string()))?;
        for container in &meta.containers {
            self.start_workload(&place, &meta, container)?;
        }
        Ok(place)
    }

    fn refresh_charm(&self, placement: &UnitPlacement, charm: &Path) -> std::io::Result<()> {
        crate::charmdir::copy_dir(charm, &placement.charm_dir)
    }

    fn run_hook<'a>(
        &'a self,
        placement: &'a UnitPlacement,
        run: HookInvocation,
    ) -> BoxFuture<'a, std::io::Result<HookOutput>> {
        let agent_inside = run
            .env
            .iter()
            .find(|(k, _)| k == "JUJU_AGENT_SOCKET_ADDRESS")
            .is_some_and(|(_, v)| Path::new(v).starts_with(&placement.dir));
        let runner_socket = placement.dir.join("hook-runner.socket");
        if let (Some(runner), true, true) = (
            self.cfg.hook_runner.clone(),
            agent_inside,
            runner_socket.as_os_str().len() < 100,
        ) {
            return Box::pin(async move {
                // The runner is usually up already: connect straight away, and start it
                // only when nothing listens (a probe connection would cost the runner a
                // thread and a log line per hook).
                let conn = match tokio::net::UnixStream::connect(&runner_socket).await {
                    Ok(c) => c,
                    Err(_) => {
                        let me = self.clone();
                        let place = placement.clone();
                        let socket =
                            tokio::task::spawn_blocking(move || me.ensure_runner(&place, &runner))
                                .await
                                .map_err(|e| io_err(e.to_string()))??;
                        tokio::net::UnixStream::connect(&socket).await?
                    }
                };
                run_in_runner(conn, run).await
            });
        }
        let args = self.charm_sandbox_args(placement, &run);
        let wrapped = HookInvocation {
            program: self.cfg.bwrap.clone(),
            args,
            env: run.env,
            cwd: run.cwd,
        };
        Box::pin(run_process(wrapped))
    }

    fn ready_containers(&self, placement: &UnitPlacement) -> BTreeSet<String> {
        let mut ready = BTreeSet::new();
        let Ok(entries) = std::fs::read_dir(placement.dir.join("containers")) else {
            return ready;
        };
        for e in entries.flatten() {
            if std::os::unix::net::UnixStream::connect(e.path().join("sock/pebble.socket")).is_ok()
            {
                ready.insert(e.file_name().to_string_lossy().to_string());
            }
        }
        ready
    }

    fn custom_notices(&self, placement: &UnitPlacement) -> Vec<crate::substrate::PebbleNotice> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(placement.dir.join("containers")) else {
            return out;
        };
        for e in entries.flatten() {
            let sock = e.path().join("sock/pebble.socket");
            if !sock.exists() {
                continue;
            }
            let container = e.file_name().to_string_lossy().to_string();
            let client = pebble_client::Client::new(&sock);
            if let Ok(notices) = client.notices_all_users(&["custom"], &[]) {
                out.extend(notices.into_iter().map(|n| crate::substrate::PebbleNotice {
                    container: container.clone(),
                    id: n.id,
                    key: n.key,
                    occurrences: n.occurrences,
                }));
            }
        }
        out
    }

    fn awaiting_containers(&self, placement: &UnitPlacement) -> bool {
        let Ok(entries) = std::fs::read_dir(placement.dir.join("containers")) else {
            return false;
        };
        entries.flatten().any(|e| {
            std::os::unix::net::UnixStream::connect(e.path().join("sock/pebble.socket")).is_err()
        })
    }

    fn teardown(&self, placement: &UnitPlacement) -> std::io::Result<()> {
        if let Some(pid) = std::fs::read_to_string(placement.dir.join("hook-runner.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Ok(entries) = std::fs::read_dir(placement.dir.join("containers")) {
            for e in entries.flatten() {
                if let Some(pid) = std::fs::read_to_string(e.path().join("sandbox.pid"))
                    .ok()
                    .and_then(|p| p.trim().parse::<u32>().ok())
                {
                    stop_sandbox(pid, std::time::Duration::from_secs(20));
                }
            }
        }
        match std::fs::remove_dir_all(&placement.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
