//! The API's JSON objects, as Pebble writes them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /v1/system-info`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SystemInfo {
    /// Pebble's version.
    pub version: String,
    /// Changes on every daemon start (Juju watches it).
    #[serde(rename = "boot-id", default)]
    pub boot_id: String,
}

/// One service in `GET /v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ServiceInfo {
    /// Its name.
    pub name: String,
    /// `enabled` or `disabled`.
    pub startup: String,
    /// `active`, `inactive`, `backoff` or `error`.
    pub current: String,
    /// Since when, if known.
    #[serde(rename = "current-since", default)]
    pub current_since: Option<String>,
}

impl ServiceInfo {
    /// Whether it is running.
    pub fn is_running(&self) -> bool {
        self.current == "active"
    }
}

/// A task of a [`Change`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Task {
    /// Its id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// What it does.
    pub summary: String,
    /// Its status.
    pub status: String,
    /// Its last log lines.
    #[serde(default)]
    pub log: Vec<String>,
    /// Extra data (`exit-code` for exec).
    #[serde(default)]
    pub data: Value,
}

/// A change (an asynchronous operation) and its tasks.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Change {
    /// Its id.
    pub id: String,
    /// Its kind (`start`, `replan`, `exec`, …).
    pub kind: String,
    /// What it does.
    pub summary: String,
    /// Its status (`Doing`, `Done`, `Error`, …).
    pub status: String,
    /// Whether it has finished.
    pub ready: bool,
    /// Its error, if it failed.
    #[serde(default)]
    pub err: Option<String>,
    /// Its tasks.
    #[serde(default)]
    pub tasks: Vec<Task>,
}

/// One check in `GET /v1/checks`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct CheckInfo {
    /// Its name.
    pub name: String,
    /// `alive`, `ready` or none.
    #[serde(default)]
    pub level: Option<String>,
    /// `up`, `down` or `inactive`.
    pub status: String,
    /// Consecutive failures.
    #[serde(default)]
    pub failures: u32,
    /// Failures before it is down.
    #[serde(default)]
    pub threshold: u32,
}

/// A notice.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Notice {
    /// Its id.
    pub id: String,
    /// `custom`, `change-update`, `warning`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its key.
    pub key: String,
    /// How many times it occurred.
    #[serde(default)]
    pub occurrences: u32,
    /// Data from the last occurrence.
    #[serde(rename = "last-data", default)]
    pub last_data: std::collections::BTreeMap<String, String>,
}

/// One entry of `GET /v1/files?action=list`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct FileInfo {
    /// Absolute path.
    pub path: String,
    /// Base name.
    pub name: String,
    /// `file`, `directory`, `symlink`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Size of a regular file.
    #[serde(default)]
    pub size: Option<u64>,
    /// Permissions as octal text (`644`).
    pub permissions: String,
    /// Owner.
    #[serde(default)]
    pub user: Option<String>,
    /// Group.
    #[serde(default)]
    pub group: Option<String>,
}

impl FileInfo {
    /// The permissions as a number.
    pub fn mode(&self) -> Option<u32> {
        u32::from_str_radix(&self.permissions, 8).ok()
    }
}
