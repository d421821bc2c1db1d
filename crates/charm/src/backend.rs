//! The boundary between the model and the controller.
//!
//! [`Backend`] has one method per hook tool. [`crate::hooktools::HookTools`] runs Juju's
//! tools as processes; [`crate::testing`] implements it in memory.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::RelationId;

/// A relation databag: string keys to string values.
pub type Bag = BTreeMap<String, String>;

/// The statuses a charm can set (and the two it can only read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusName {
    /// Ready and doing its job.
    Active,
    /// Needs a human.
    Blocked,
    /// Busy with something that will end by itself.
    Maintenance,
    /// Waiting for something outside its control.
    Waiting,
    /// Nothing set yet.
    Unknown,
    /// A hook failed (set only by the controller).
    Error,
}

impl StatusName {
    /// Juju's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusName::Active => "active",
            StatusName::Blocked => "blocked",
            StatusName::Maintenance => "maintenance",
            StatusName::Waiting => "waiting",
            StatusName::Unknown => "unknown",
            StatusName::Error => "error",
        }
    }

    /// Parses Juju's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => StatusName::Active,
            "blocked" => StatusName::Blocked,
            "maintenance" => StatusName::Maintenance,
            "waiting" => StatusName::Waiting,
            "unknown" => StatusName::Unknown,
            "error" => StatusName::Error,
            _ => return None,
        })
    }

    /// Collect-status priority, as in ops: blocked > maintenance > waiting > active.
    pub(crate) fn priority(self) -> u8 {
        match self {
            StatusName::Error => 5,
            StatusName::Blocked => 4,
            StatusName::Maintenance => 3,
            StatusName::Waiting => 2,
            StatusName::Active => 1,
            StatusName::Unknown => 0,
        }
    }
}

/// A status with its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Which status.
    pub name: StatusName,
    /// What a user reads next to it.
    pub message: String,
}

impl Status {
    /// `active` with a message.
    pub fn active(msg: impl Into<String>) -> Self {
        Self {
            name: StatusName::Active,
            message: msg.into(),
        }
    }
    /// `blocked` with a message.
    pub fn blocked(msg: impl Into<String>) -> Self {
        Self {
            name: StatusName::Blocked,
            message: msg.into(),
        }
    }
    /// `maintenance` with a message.
    pub fn maintenance(msg: impl Into<String>) -> Self {
        Self {
            name: StatusName::Maintenance,
            message: msg.into(),
        }
    }
    /// `waiting` with a message.
    pub fn waiting(msg: impl Into<String>) -> Self {
        Self {
            name: StatusName::Waiting,
            message: msg.into(),
        }
    }
    /// `unknown`, as before any status-set.
    pub fn unknown() -> Self {
        Self {
            name: StatusName::Unknown,
            message: String::new(),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(self.name.as_str())
        } else {
            write!(f, "{}: {}", self.name.as_str(), self.message)
        }
    }
}

/// Who owns a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretOwner {
    /// The application (only the leader may create and change it).
    Application,
    /// This unit.
    Unit,
}

impl SecretOwner {
    /// Juju's spelling for `--owner`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretOwner::Application => "application",
            SecretOwner::Unit => "unit",
        }
    }
}

/// Options for creating or updating a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretOptions {
    /// The owner's label.
    pub label: Option<String>,
    /// A description.
    pub description: Option<String>,
    /// When it expires: an RFC 3339 time or a duration such as `24h`.
    pub expire: Option<String>,
    /// The rotation policy (`hourly`, `daily`, `weekly`, `monthly`, …, `never`).
    pub rotate: Option<String>,
}

/// Which revision `secret-get` should return to a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecretRead {
    /// The revision this unit tracks.
    #[default]
    Tracked,
    /// The latest revision, without tracking it.
    Peek,
    /// The latest revision, and track it from now on.
    Refresh,
}

/// What `secret-info-get` tells an owner.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SecretInfo {
    /// The secret's id (filled from the output's key).
    #[serde(default)]
    pub id: String,
    /// The latest revision.
    pub revision: u32,
    /// The owner's label.
    #[serde(default)]
    pub label: Option<String>,
    /// `application` or `unit`.
    #[serde(default)]
    pub owner: Option<String>,
    /// The description.
    #[serde(default)]
    pub description: Option<String>,
    /// When it expires.
    #[serde(default)]
    pub expiry: Option<String>,
    /// The rotation policy.
    #[serde(default)]
    pub rotation: Option<String>,
}

/// A port (or range) to open, as `open-port` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Port {
    /// A TCP port or range.
    Tcp(u16, u16),
    /// A UDP port or range.
    Udp(u16, u16),
    /// ICMP.
    Icmp,
}

impl Port {
    /// One TCP port.
    pub fn tcp(p: u16) -> Self {
        Port::Tcp(p, p)
    }

    /// Parses `80/tcp`, `8000-8999/udp`, `icmp` or a bare `80` (TCP).
    pub fn parse(s: &str) -> Option<Self> {
        if s == "icmp" {
            return Some(Port::Icmp);
        }
        let (range, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        let (a, b) = match range.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => {
                let p = range.parse().ok()?;
                (p, p)
            }
        };
        if a == 0 || a > b {
            return None;
        }
        match proto {
            "tcp" => Some(Port::Tcp(a, b)),
            "udp" => Some(Port::Udp(a, b)),
            _ => None,
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b, p) = match self {
            Port::Icmp => return f.write_str("icmp"),
            Port::Tcp(a, b) => (a, b, "tcp"),
            Port::Udp(a, b) => (a, b, "udp"),
        };
        if a == b {
            write!(f, "{a}/{p}")
        } else {
            write!(f, "{a}-{b}/{p}")
        }
    }
}

/// What `network-get` says about a binding.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
pub struct Network {
    /// Addresses to bind to, per interface.
    #[serde(rename = "bind-addresses", default)]
    pub bind_addresses: Vec<BindAddress>,
    /// Addresses other units reach this one on.
    #[serde(rename = "ingress-addresses", default)]
    pub ingress_addresses: Vec<String>,
    /// Subnets this unit's traffic leaves from.
    #[serde(rename = "egress-subnets", default)]
    pub egress_subnets: Vec<String>,
}

impl Network {
    /// The first bind address, the one a workload usually listens on.
    pub fn bind_address(&self) -> Option<&str> {
        self.bind_addresses
            .iter()
            .flat_map(|b| b.addresses.iter())
            .map(|a| a.value.as_str())
            .next()
    }
}

/// One interface in [`Network`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
pub struct BindAddress {
    /// The interface's name.
    #[serde(rename = "interface-name", default)]
    pub interface_name: String,
    /// Its addresses.
    #[serde(default)]
    pub addresses: Vec<Address>,
}

/// One address in [`BindAddress`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
pub struct Address {
    /// The address.
    pub value: String,
    /// Its CIDR.
    #[serde(default)]
    pub cidr: String,
    /// A hostname, when there is one.
    #[serde(default)]
    pub hostname: String,
}

/// What `storage-get` says about an instance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct StorageInfo {
    /// `filesystem` or `block`.
    pub kind: String,
    /// Where it is.
    pub location: String,
}

/// `juju-log` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LogLevel {
    /// TRACE
    Trace,
    /// DEBUG
    Debug,
    /// INFO
    Info,
    /// WARNING
    Warning,
    /// ERROR
    Error,
}

impl LogLevel {
    /// Juju's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }
}

/// One method per Juju hook tool. Implementations report failures with the typed
/// [`Error`] variants (relation not found, secret not found, permission denied).
pub trait Backend {
    /// `relation-ids <endpoint>`
    fn relation_ids(&mut self, endpoint: &str) -> Result<Vec<RelationId>>;
    /// `relation-list -r <rel>`: remote units in scope.
    fn relation_list(&mut self, rel: &RelationId) -> Result<Vec<String>>;
    /// `relation-list -r <rel> --app`: the remote application.
    fn relation_remote_app(&mut self, rel: &RelationId) -> Result<Option<String>>;
    /// `relation-get -r <rel> [--app] - <unit-or-app>`
    fn relation_get(&mut self, rel: &RelationId, app: bool, owner: &str) -> Result<Bag>;
    /// `relation-set -r <rel> [--app] --file -`; an empty value deletes its key.
    fn relation_set(&mut self, rel: &RelationId, app: bool, data: &Bag) -> Result<()>;
    /// `config-get`: the options whose value is set.
    fn config_get(&mut self) -> Result<serde_json::Map<String, serde_json::Value>>;
    /// `is-leader`
    fn is_leader(&mut self) -> Result<bool>;
    /// `status-get [--application]`
    fn status_get(&mut self, app: bool) -> Result<Status>;
    /// `status-set [--application] <status> -- <message>`
    fn status_set(&mut self, app: bool, status: &Status) -> Result<()>;
    /// `application-version-set -- <version>`
    fn application_version_set(&mut self, version: &str) -> Result<()>;
    /// `juju-log --log-level <level> -- <message>`
    fn juju_log(&mut self, level: LogLevel, message: &str) -> Result<()>;
    /// `action-get`
    fn action_get(&mut self) -> Result<serde_json::Value>;
    /// `action-set k=v …` with keys already flattened with `.`.
    fn action_set(&mut self, results: &BTreeMap<String, String>) -> Result<()>;
    /// `action-log -- <message>`
    fn action_log(&mut self, message: &str) -> Result<()>;
    /// `action-fail -- <message>`
    fn action_fail(&mut self, message: &str) -> Result<()>;
    /// `secret-add`: returns the new secret's URI.
    fn secret_add(
        &mut self,
        content: &Bag,
        owner: SecretOwner,
        opts: &SecretOptions,
    ) -> Result<String>;
    /// `secret-get <id> | --label <l>`
    fn secret_get(
        &mut self,
        id: Option<&str>,
        label: Option<&str>,
        read: SecretRead,
    ) -> Result<Bag>;
    /// `secret-info-get <id> | --label <l>`
    fn secret_info_get(&mut self, id: Option<&str>, label: Option<&str>) -> Result<SecretInfo>;
    /// `secret-set <id>`: new content (a new revision) and/or metadata.
    fn secret_set(&mut self, id: &str, content: Option<&Bag>, opts: &SecretOptions) -> Result<()>;
    /// `secret-grant --relation <id> [--unit <u>] <secret>`
    fn secret_grant(&mut self, id: &str, rel: &RelationId, unit: Option<&str>) -> Result<()>;
    /// `secret-revoke --relation <id> [--unit <u>] <secret>`
    fn secret_revoke(&mut self, id: &str, rel: &RelationId, unit: Option<&str>) -> Result<()>;
    /// `secret-remove <id> [--revision N]`
    fn secret_remove(&mut self, id: &str, revision: Option<u32>) -> Result<()>;
    /// `secret-ids`
    fn secret_ids(&mut self) -> Result<Vec<String>>;
    /// `open-port <port>`
    fn open_port(&mut self, port: Port) -> Result<()>;
    /// `close-port <port>`
    fn close_port(&mut self, port: Port) -> Result<()>;
    /// `opened-ports`
    fn opened_ports(&mut self) -> Result<Vec<Port>>;
    /// `network-get <binding> [-r <rel>]`
    fn network_get(&mut self, binding: &str, rel: Option<&RelationId>) -> Result<Network>;
    /// `storage-list <name>`
    fn storage_list(&mut self, name: &str) -> Result<Vec<String>>;
    /// `storage-get -s <id>`
    fn storage_get(&mut self, id: &str) -> Result<StorageInfo>;
    /// `state-get`
    fn state_get(&mut self) -> Result<Bag>;
    /// `state-set --file -`
    fn state_set(&mut self, data: &Bag) -> Result<()>;
    /// `state-delete <key>`
    fn state_delete(&mut self, key: &str) -> Result<()>;
}

/// Checks an action result key as ops does before `action-set`.
pub(crate) fn check_action_key(key: &str) -> Result<()> {
    const RESERVED: [&str; 4] = ["stdout", "stderr", "stdout-encoding", "stderr-encoding"];
    let top = key.split('.').next().unwrap_or(key);
    if RESERVED.contains(&top) {
        return Err(Error::InvalidInput {
            what: "action result key".into(),
            reason: format!("{key:?} is reserved by Juju"),
        });
    }
    let b = key.as_bytes();
    let ok_char = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let valid = !b.is_empty()
        && ok_char(&b[0])
        && ok_char(&b[b.len() - 1])
        && b.iter().all(|c| ok_char(c) || *c == b'-' || *c == b'.');
    if !valid {
        return Err(Error::InvalidInput {
            what: "action result key".into(),
            reason: format!(
                "{key:?} must be lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
            ),
        });
    }
    Ok(())
}
