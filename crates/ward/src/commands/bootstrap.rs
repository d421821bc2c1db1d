//! `ward bootstrap`: make the CA and credential, start the daemon in the
//! background, wait until its API answers.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::api;
use crate::cli::SubstrateKind;
use crate::client::Client;
use crate::error::{CliError, Context, Result};
use crate::home::{Home, DEFAULT_PORT};

/// The last lines of the controller log, for error messages.
pub(crate) fn log_tail(home: &Home) -> String {
    let text = std::fs::read_to_string(home.log_file()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

pub(crate) async fn run(
    home: &Home,
    port: Option<u16>,
    substrate: Option<SubstrateKind>,
) -> Result<()> {
    home.create()?;
    let home = Home {
        root: home
            .root
            .canonicalize()
            .failed(|| format!("resolving WARD_HOME {}", home.root.display()))?,
    };
    let settings = home.settings();
    let port = port
        .or(settings.as_ref().map(|s| s.port))
        .unwrap_or(DEFAULT_PORT);
    let recorded = settings
        .as_ref()
        .and_then(|s| s.substrate.as_deref())
        .and_then(SubstrateKind::parse);
    if let (Some(want), Some(had)) = (substrate, recorded) {
        if want != had && want != SubstrateKind::Auto && home.root.join("state.db").exists() {
            return Err(CliError::usage(format!(
                "WARD_HOME={} runs its units on the {} substrate; it cannot switch to {} with units in place: `ward destroy` first or use another WARD_HOME",
                home.root.display(),
                had.as_str(),
                want.as_str()
            )));
        }
    }
    let substrate = recorded.or(substrate).unwrap_or(SubstrateKind::Auto);
    let rocks = std::env::var_os("WARD_ROCKS")
        .map(std::path::PathBuf::from)
        .or(settings.and_then(|s| s.rocks))
        .or_else(crate::charmpkg::project_rocks);
    match crate::server::try_lock(&home)? {
        None => {
            let pid = home
                .pid()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "?".into());
            let at = home.settings().map(|s| s.port).unwrap_or(port);
            println!(
                "A controller is already running for WARD_HOME={} (pid {pid}, https://127.0.0.1:{at}); nothing to do.",
                home.root.display()
            );
            return Ok(());
        }
        Some(lock) => drop(lock),
    }
    crate::pki::ensure(&home)?;
    crate::server::find_jujuc()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(home.log_file())
        .failed(|| format!("opening {}", home.log_file().display()))?;
    // A log from an older Ward may have been made 0644: it can hold charm output.
    log.set_permissions(std::fs::Permissions::from_mode(0o600))
        .failed(|| format!("securing {}", home.log_file().display()))?;
    let log2 = log
        .try_clone()
        .failed(|| format!("opening {}", home.log_file().display()))?;
    let exe = std::env::current_exe().failed(|| "finding the ward binary".into())?;
    let mut child = std::process::Command::new(exe)
        .args([
            "controller",
            "run",
            "--port",
            &port.to_string(),
            "--substrate",
            substrate.as_str(),
        ])
        .args(
            rocks
                .iter()
                .flat_map(|r| [std::ffi::OsString::from("--rocks"), r.clone().into()]),
        )
        .env("WARD_HOME", &home.root)
        .env_remove("WARD_PORT")
        .env_remove("WARD_SUBSTRATE")
        .env_remove("WARD_ROCKS")
        .current_dir(&home.root)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .failed(|| "starting the controller daemon".into())?;

    let client = Client::at(&home, port)?;
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(CliError::failed(format!(
                "the controller exited ({status}) before answering; its log ({}) ends with:\n{}",
                home.log_file().display(),
                log_tail(&home)
            )));
        }
        match client.get::<api::Health>("/v1/health").await {
            Ok(h) => {
                println!(
                    "Controller running on https://127.0.0.1:{port} (pid {}, WARD_HOME={}, model {:?}, {} substrate)",
                    h.pid,
                    home.root.display(),
                    h.model,
                    h.substrate
                );
                return Ok(());
            }
            Err(e) if started.elapsed() > Duration::from_secs(30) => {
                return Err(CliError::failed(format!(
                    "the controller did not answer within 30 s ({e}); its log ({}) ends with:\n{}",
                    home.log_file().display(),
                    log_tail(&home)
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
