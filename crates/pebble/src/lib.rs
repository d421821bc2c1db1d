//! Ward's Pebble: a workload manager compatible with Canonical's Pebble API.
//!
//! Every workload container of a Ward unit runs the `ward-pebble` binary as its entry
//! point (`ward-pebble run --hold --create-dirs`), serving Pebble's HTTP API on a Unix
//! socket; charms drive it with the SDK's client or with `ops.pebble.Client`. The daemon
//! holds the layers and the combined plan, runs services as process groups with Pebble's
//! lifecycle (1 s okay window, back-off, kill-delay), runs checks and records changes,
//! tasks and notices the way Juju expects them (pebble-ready from `boot-id`, check events
//! from `change-update` notices).
//!
//! See `docs/reference/pebble.md` for what is supported and where Ward differs.

pub mod api;
pub mod checks;
pub mod daemon;
pub mod exec;
pub mod files;
pub mod plan;
pub mod services;
pub mod state;
pub mod users;
pub mod util;

use std::path::{Path, PathBuf};

pub use daemon::Daemon;

/// How to run the daemon.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `$PEBBLE`: layers in `layers/`.
    pub dir: PathBuf,
    /// The API socket.
    pub socket: PathBuf,
    /// Optional TCP address for the open endpoints (health, system-info).
    pub http: Option<String>,
    /// Do not autostart `startup: enabled` services.
    pub hold: bool,
    /// Create `$PEBBLE` and its layers directory when missing.
    pub create_dirs: bool,
}

/// Errors starting the daemon.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The layers on disk are invalid.
    #[error("cannot load layers: {0}")]
    Layers(#[from] plan::FormatError),
    /// A filesystem or socket error.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Io { what, source }
}

/// Runs the daemon until SIGTERM/SIGINT (or a service's shutdown action); returns the exit
/// code.
pub async fn run(opts: RunOptions) -> Result<i32, RunError> {
    if opts.create_dirs {
        std::fs::create_dir_all(opts.dir.join("layers"))
            .map_err(io(format!("cannot create {}", opts.dir.display())))?;
    }
    copy_once(&opts.dir)?;
    let d = Daemon::new(&opts.dir)?;
    let listener = bind_socket(&opts.socket)?;
    let app = api::router(d.clone());
    let server = {
        let app = app.clone();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<api::Peer>(),
            )
            .await
        })
    };
    if let Some(addr) = &opts.http {
        let addr = if addr.starts_with(':') {
            format!("0.0.0.0{addr}")
        } else {
            addr.clone()
        };
        let tcp = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(io(format!("cannot listen on {addr}")))?;
        tokio::spawn(async move {
            axum::serve(tcp, app.into_make_service_with_connect_info::<api::Peer>()).await
        });
    }
    {
        let mut inner = d.lock();
        checks::replan(&d, &mut inner);
    }
    if !opts.hold {
        let _ = services::request(&d, services::Action::Autostart, &[]);
    }
    eprintln!(
        "Started daemon (Ward's Pebble {}), API on {}",
        daemon::VERSION,
        opts.socket.display()
    );
    let mut exit = d.exit.subscribe();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io("cannot watch SIGTERM"))?;
    let (code, why) = tokio::select! {
        _ = term.recv() => (0, "SIGTERM"),
        _ = tokio::signal::ctrl_c() => (0, "SIGINT"),
        c = exit.wait_for(|c| c.is_some()) => (c.map(|c| c.unwrap_or(0)).unwrap_or(0), "a service's shutdown action"),
    };
    eprintln!("Stopping services ({why}) and exiting with code {code}");
    services::stop_all(&d).await;
    server.abort();
    let _ = std::fs::remove_file(&opts.socket);
    Ok(code)
}

fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener, RunError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(io(format!("cannot create {}", parent.display())))?;
    }
    // A socket left by an earlier run is replaced; anything else at the path is an error.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(io(format!("cannot listen on {}", path.display())))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(io("cannot chmod socket"))?;
    Ok(listener)
}

/// `PEBBLE_COPY_ONCE`: copy a rock's default layers into an empty `$PEBBLE` once.
fn copy_once(dir: &Path) -> Result<(), RunError> {
    let Some(src) = std::env::var_os("PEBBLE_COPY_ONCE") else {
        return Ok(());
    };
    let src = PathBuf::from(src).join("layers");
    let dst = dir.join("layers");
    let empty = std::fs::read_dir(&dst)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true);
    if !empty || !src.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(&dst).map_err(io(format!("cannot create {}", dst.display())))?;
    for entry in std::fs::read_dir(&src)
        .map_err(io(format!("cannot read {}", src.display())))?
        .flatten()
    {
        if entry.path().is_file() {
            std::fs::copy(entry.path(), dst.join(entry.file_name()))
                .map_err(io("cannot copy layer"))?;
        }
    }
    Ok(())
}

/// Records a custom notice with `key` and `data` through the daemon at `socket`, as
/// `pebble notify` does; returns the notice's id.
pub fn notify(
    socket: &std::path::Path,
    key: &str,
    data: &[(&str, &str)],
) -> Result<String, pebble_client::Error> {
    pebble_client::Client::new(socket).notify(key, data)
}
