//! `ward destroy`: stop the daemon (and so its units' hooks) and remove
//! WARD_HOME's state.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{CliError, Context, Result};
use crate::home::Home;

/// Files only a Ward home has: we never delete a directory without one.
const MARKERS: &[&str] = &["state.db", "ca.pem", "controller.json", "admin.token"];

async fn wait_unlocked(home: &Home, within: Duration) -> Result<bool> {
    let t = Instant::now();
    while t.elapsed() < within {
        if crate::server::try_lock(home)?.is_some() {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(false)
}

pub(crate) async fn run(home: &Home, yes: bool) -> Result<()> {
    if !home.root.exists() {
        println!(
            "Nothing to destroy: WARD_HOME={} does not exist.",
            home.root.display()
        );
        return Ok(());
    }
    if !MARKERS.iter().any(|m| home.root.join(m).exists()) {
        return Err(CliError::usage(format!(
            "WARD_HOME={} does not look like a Ward controller's home (none of {}): refusing to delete it; check WARD_HOME",
            home.root.display(),
            MARKERS.join(", ")
        )));
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::usage(format!(
                "destroy deletes every application, unit and secret in WARD_HOME={}: pass --yes to confirm (stdin is not a terminal)",
                home.root.display()
            )));
        }
        print!(
            "This stops the controller and deletes WARD_HOME={} with every application, unit and secret. Continue? [y/N] ",
            home.root.display()
        );
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Err(CliError::failed("destroy cancelled; nothing was changed"));
        }
    }
    if crate::server::try_lock(home)?.is_none() {
        let pid = home.pid().ok_or_else(|| {
            CliError::failed(format!(
                "a controller holds {} but wrote no pid file; stop it by hand",
                home.lock_file().display()
            ))
        })?;
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        if !wait_unlocked(home, Duration::from_secs(25)).await? {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            if !wait_unlocked(home, Duration::from_secs(5)).await? {
                return Err(CliError::failed(format!(
                    "controller pid {pid} did not stop; kill it and run destroy again"
                )));
            }
        }
    }
    // Workload sandboxes outlive their controller by design (it re-adopts
    // them on restart); destroy ends them too.
    controller::sandbox::stop_all(&home.root.join("units"));
    controller::network::release(&home.root, &controller::network::default_registry());
    std::fs::remove_dir_all(&home.root)
        .failed(|| format!("removing WARD_HOME {}", home.root.display()))?;
    println!("Controller destroyed; removed {}.", home.root.display());
    Ok(())
}
