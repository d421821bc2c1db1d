//! The controller daemon (`ward controller run`): the embedded controller's
//! run loop plus its HTTPS API on 127.0.0.1, served with rustls from the
//! certificate bootstrap made, every call checked against the admin token.
//!
//! Layout: [`routes`] maps the API (see [`crate::api`]) onto the controller
//! library; [`logs`] tails unit logs for `debug-log`; this file owns the
//! process: the home lock, the pid file, the TLS accept loop and shutdown.

mod logs;
mod routes;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use controller::{Controller, ControllerConfig};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::SubstrateKind;
use crate::error::{CliError, Context, Result};
use crate::home::{write_private, Home, Settings};

/// The hook-tool client: `ward-jujuc` next to this binary, else `$WARD_JUJUC`,
/// else this binary itself (which acts as the hook tools when called by
/// their names).
pub(crate) fn find_jujuc() -> Result<PathBuf> {
    let exe = std::env::current_exe().failed(|| "finding the ward binary".into())?;
    if let Some(p) = exe
        .parent()
        .map(|d| d.join("ward-jujuc"))
        .filter(|p| p.is_file())
    {
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("WARD_JUJUC").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(CliError::usage(format!(
                "WARD_JUJUC={} does not exist: point it at the ward-jujuc binary (cargo build -p controller --bin ward-jujuc) or unset it",
                p.display()
            )));
        }
        return Ok(p);
    }
    Ok(exe)
}

/// A binary next to this one, else the one an environment variable names.
fn sibling_or_env(name: &str, var: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.parent()
        .map(|d| d.join(name))
        .filter(|p| p.is_file())
        .or_else(|| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .filter(|p| p.is_file())
        })
}

/// The substrate the daemon runs units on: `sandbox` needs bubblewrap
/// (`WARD_BWRAP`, default /usr/bin/bwrap) and `ward-pebble` (next to `ward`,
/// else `WARD_PEBBLE`); `ward-hook-runner` (next to `ward`, else
/// `WARD_HOOK_RUNNER`) keeps one charm sandbox per unit when present.
fn substrate(
    home: &Home,
    kind: SubstrateKind,
    jujuc: &std::path::Path,
    rocks: Option<PathBuf>,
) -> Result<(Arc<dyn controller::Substrate>, &'static str)> {
    let bwrap = std::env::var_os("WARD_BWRAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/bwrap"));
    let pebble = sibling_or_env("ward-pebble", "WARD_PEBBLE");
    let sandbox = match kind {
        SubstrateKind::Process => false,
        SubstrateKind::Sandbox => true,
        SubstrateKind::Auto => bwrap.is_file() && pebble.is_some(),
    };
    if !sandbox {
        let s = controller::ProcessSubstrate::new(home.root.join("units"));
        return Ok((Arc::new(s), "process"));
    }
    let Some(pebble) = pebble else {
        return Err(CliError::usage(
            "the sandbox substrate needs ward-pebble: build it next to ward (`cargo build -p pebble`) or set WARD_PEBBLE; or bootstrap with --substrate process",
        ));
    };
    let extra_ro_binds = std::env::var_os("WARD_SANDBOX_BINDS")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    let s = controller::SandboxSubstrate::new(controller::SandboxConfig {
        root: home.root.join("units"),
        bwrap,
        pebble,
        rocks_dir: rocks,
        tools: vec![home.root.join("tools"), jujuc.to_path_buf()],
        extra_ro_binds,
        hook_runner: sibling_or_env("ward-hook-runner", "WARD_HOOK_RUNNER"),
    })
    .map_err(|e| CliError::usage(format!("{e}; or bootstrap with --substrate process")))?;
    Ok((Arc::new(s), "sandbox"))
}

/// Environment for every hook: the variables named in `WARD_HOOK_ENV`
/// (comma-separated) are passed through from the daemon's environment.
fn hook_env() -> Vec<(String, String)> {
    std::env::var("WARD_HOOK_ENV")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .filter_map(|n| std::env::var(n).ok().map(|v| (n.to_string(), v)))
        .collect()
}

fn tls_config(home: &Home) -> Result<rustls::ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(home.server_cert())
        .and_then(|it| it.collect::<std::result::Result<_, _>>())
        .failed(|| format!("reading {}", home.server_cert().display()))?;
    let key = PrivateKeyDer::from_pem_file(home.server_key())
        .failed(|| format!("reading {}", home.server_key().display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .failed(|| "setting up TLS".into())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .failed(|| "loading the server certificate".into())
}

/// Holds the home's lock for the daemon's lifetime; a second daemon (or a
/// `bootstrap` checking) sees it taken. Released by the kernel on any exit,
/// `kill -9` included.
pub(crate) fn try_lock(home: &Home) -> Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(home.lock_file())
        .failed(|| format!("opening {}", home.lock_file().display()))?;
    match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(CliError::failed(format!(
            "locking {}: {e}",
            home.lock_file().display()
        ))),
    }
}

/// Run the controller in the foreground until SIGTERM or SIGINT.
pub(crate) async fn run(
    home: Home,
    port: u16,
    kind: SubstrateKind,
    rocks: Option<PathBuf>,
) -> Result<()> {
    home.create()?;
    crate::pki::ensure(&home)?;
    let Some(_lock) = try_lock(&home)? else {
        return Err(CliError::usage(format!(
            "a controller is already running for WARD_HOME={} (pid {}): use it, or `ward destroy` it first",
            home.root.display(),
            home.pid().map(|p| p.to_string()).unwrap_or_else(|| "unknown".into())
        )));
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
        CliError::failed(format!(
            "cannot listen on 127.0.0.1:{port}: {e}; choose another port with --port or WARD_PORT"
        ))
    })?;
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(&home)?));

    let mut cfg = ControllerConfig::new(&home.root);
    cfg.jujuc_path = find_jujuc()?;
    cfg.extra_env = hook_env();
    if let Some(ms) = std::env::var("WARD_RETRY_BASE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        cfg.retry_base = Duration::from_millis(ms);
    }
    let juju_version = cfg.juju_version.clone();
    let (sub, sub_name) = substrate(&home, kind, &cfg.jujuc_path, rocks.clone())?;
    let ctl = Controller::with_substrate(cfg, sub, Arc::new(controller::SystemClock))
        .failed(|| format!("opening the controller state in {}", home.root.display()))?;

    write_private(
        &home.settings_file(),
        serde_json::to_string(&Settings {
            port,
            substrate: Some(sub_name.to_string()),
            rocks,
        })
        .unwrap_or_default()
        .as_bytes(),
        0o644,
    )?;
    write_private(
        &home.pid_file(),
        std::process::id().to_string().as_bytes(),
        0o644,
    )?;
    let token = crate::pki::read_token(&home)?;
    let block = ctl.address_block();

    let (stop_tx, stop_rx) = watch::channel(false);
    let runner = {
        let ctl = ctl.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            ctl.run(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
        })
    };
    let app = routes::router(routes::AppState {
        ctl,
        home: home.clone(),
        token: Arc::new(token),
        juju_version,
        substrate: sub_name,
    });
    eprintln!(
        "ward controller listening on https://127.0.0.1:{port} (WARD_HOME={}, pid {}, {sub_name} substrate, unit addresses {block})",
        home.root.display(),
        std::process::id()
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .failed(|| "installing the SIGTERM handler".into())?;
    let connections = Arc::new(tokio::sync::Semaphore::new(256));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            accepted = listener.accept() => {
                let Ok((tcp, _peer)) = accepted else { continue };
                // Small request/answer exchanges: Nagle plus delayed ACKs would add 40 ms.
                let _ = tcp.set_nodelay(true);
                let Ok(permit) = connections.clone().acquire_owned().await else { break };
                let tls = tls.clone();
                let svc = TowerToHyperService::new(app.clone());
                let mut stop = stop_rx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await else {
                        return;
                    };
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.wait_for(|s| *s) => {}
                    }
                });
            }
        }
    }
    eprintln!("ward controller stopping");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(20), runner).await;
    let _ = std::fs::remove_file(home.pid_file());
    Ok(())
}
