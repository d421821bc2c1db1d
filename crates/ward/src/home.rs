//! `WARD_HOME`: where the controller keeps its state, certificates, credential,
//! pid file and log, and how the CLI finds the controller's port.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CliError, Context, Result};

/// The API port when neither `--port`, `WARD_PORT` nor a bootstrapped home says otherwise.
pub(crate) const DEFAULT_PORT: u16 = 17070;

/// Paths under one `WARD_HOME`.
#[derive(Debug, Clone)]
pub(crate) struct Home {
    pub(crate) root: PathBuf,
}

/// What bootstrap records for later commands (`controller.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Settings {
    /// The API port on 127.0.0.1.
    pub(crate) port: u16,
    /// `sandbox` or `process`, as the daemon resolved it (kept across restarts).
    #[serde(default)]
    pub(crate) substrate: Option<String>,
    /// The rocks directory the sandbox substrate materialises workloads from.
    #[serde(default)]
    pub(crate) rocks: Option<PathBuf>,
}

impl Home {
    /// `WARD_HOME`, else `~/.local/share/ward`.
    pub(crate) fn resolve() -> Result<Home> {
        if let Some(h) = std::env::var_os("WARD_HOME").filter(|h| !h.is_empty()) {
            return Ok(Home { root: h.into() });
        }
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).ok_or_else(|| {
            CliError::usage("neither WARD_HOME nor HOME is set: set WARD_HOME to the directory the controller should use")
        })?;
        Ok(Home {
            root: Path::new(&home).join(".local/share/ward"),
        })
    }

    pub(crate) fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }
    pub(crate) fn ca_key(&self) -> PathBuf {
        self.root.join("ca.key")
    }
    pub(crate) fn server_cert(&self) -> PathBuf {
        self.root.join("server.pem")
    }
    pub(crate) fn server_key(&self) -> PathBuf {
        self.root.join("server.key")
    }
    pub(crate) fn token(&self) -> PathBuf {
        self.root.join("admin.token")
    }
    pub(crate) fn pid_file(&self) -> PathBuf {
        self.root.join("controller.pid")
    }
    pub(crate) fn lock_file(&self) -> PathBuf {
        self.root.join("controller.lock")
    }
    pub(crate) fn log_file(&self) -> PathBuf {
        self.root.join("controller.log")
    }
    pub(crate) fn settings_file(&self) -> PathBuf {
        self.root.join("controller.json")
    }
    pub(crate) fn charms_dir(&self) -> PathBuf {
        self.root.join("charms")
    }

    /// True once bootstrap has made the CA and the credential.
    pub(crate) fn is_bootstrapped(&self) -> bool {
        self.ca_cert().is_file() && self.token().is_file()
    }

    /// The recorded settings, if bootstrap wrote them.
    pub(crate) fn settings(&self) -> Option<Settings> {
        let s = std::fs::read_to_string(self.settings_file()).ok()?;
        serde_json::from_str(&s).ok()
    }

    /// The port the CLI talks to: `WARD_PORT`, else the bootstrapped one, else 17070.
    pub(crate) fn client_port(&self) -> Result<u16> {
        if let Some(p) = env_port()? {
            return Ok(p);
        }
        Ok(self.settings().map(|s| s.port).unwrap_or(DEFAULT_PORT))
    }

    /// The pid recorded by a running (or killed) controller.
    pub(crate) fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Create the home directory, private to this user: mode 0700 even when it
    /// already existed with another mode, and refused when another user owns it
    /// (they could read the credential and the secrets key, or swap files under us).
    pub(crate) fn create(&self) -> Result<()> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        let failed = || format!("creating WARD_HOME {}", self.root.display());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .failed(failed)?;
        let meta = std::fs::symlink_metadata(&self.root).failed(failed)?;
        let me = nix::unistd::geteuid().as_raw();
        if !meta.is_dir() || meta.uid() != me {
            return Err(CliError::usage(format!(
                "WARD_HOME {} is not a directory owned by uid {me} (it is owned by uid {}{}): use a directory of your own",
                self.root.display(),
                meta.uid(),
                if meta.file_type().is_symlink() { ", and is a symbolic link" } else { "" },
            )));
        }
        if meta.mode() & 0o077 != 0 {
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))
                .failed(failed)?;
        }
        Ok(())
    }
}

/// `WARD_PORT`, validated.
pub(crate) fn env_port() -> Result<Option<u16>> {
    match std::env::var("WARD_PORT") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse::<u16>().map(Some).map_err(|_| {
            CliError::usage(format!(
                "WARD_PORT={v:?} is not a port number: set it to 1-65535 or unset it"
            ))
        }),
        _ => Ok(None),
    }
}

/// Write a file atomically with the given mode (0600 for keys and the credential).
pub(crate) fn write_private(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .failed(|| format!("writing {}", tmp.display()))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .failed(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).failed(|| format!("writing {}", path.display()))
}
