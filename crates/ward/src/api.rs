//! The controller's HTTPS API: request and response bodies shared by the
//! daemon and the CLI. Every route is under `/v1` and needs
//! `Authorization: Bearer <admin token>`.
//!
//! | route | body → answer |
//! |---|---|
//! | `GET /v1/health` | → [`Health`] |
//! | `GET /v1/status` | → [`Status`] |
//! | `POST /v1/charms` | zip bytes (a `.charm`) → [`Uploaded`] |
//! | `POST /v1/deploy` | [`Deploy`] → [`Units`] |
//! | `POST /v1/add-unit` | [`AddUnit`] → [`Units`] |
//! | `POST /v1/remove-unit` | [`UnitRef`] → `{}` |
//! | `POST /v1/remove-application` | [`AppRef`] → `{}` |
//! | `POST /v1/integrate`, `/v1/remove-relation` | [`Relate`] → [`Related`] / `{}` |
//! | `POST /v1/config` | [`ConfigChange`] → [`Config`] |
//! | `POST /v1/refresh` | [`Refresh`] → `{}` |
//! | `POST /v1/run` | [`Run`] → [`Task`] |
//! | `POST /v1/resolve` | [`Resolve`] → `{}` |
//! | `GET /v1/secrets` | → `[`[`Secret`]`]` |
//! | `POST /v1/show-secret` | [`ShowSecret`] → [`SecretDetail`] |
//! | `GET /v1/logs?replay=&include=&follow=` | → a stream of log lines |
//!
//! Errors answer 400 (bad input), 404 (unknown entity), 401 (credential),
//! 500 (the operation failed) with an [`ApiError`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ApiError {
    /// What failed, naming the input.
    pub(crate) error: String,
    /// Every problem found (validation lists each bad key).
    #[serde(default)]
    pub(crate) details: Vec<String>,
    /// How to fix it.
    #[serde(default)]
    pub(crate) fix: Option<String>,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Health {
    pub(crate) version: String,
    pub(crate) pid: u32,
    pub(crate) model: String,
    /// `sandbox` or `process`.
    #[serde(default)]
    pub(crate) substrate: String,
}

/// A status value with its message and time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StatusInfo {
    pub(crate) status: String,
    pub(crate) message: String,
    #[serde(default)]
    pub(crate) since: i64,
}

/// A unit in [`Status`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UnitStatus {
    pub(crate) name: String,
    pub(crate) leader: bool,
    pub(crate) life: String,
    pub(crate) address: String,
    pub(crate) workload: StatusInfo,
    pub(crate) agent: StatusInfo,
    pub(crate) ports: Vec<String>,
}

/// An application in [`Status`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AppStatus {
    pub(crate) name: String,
    pub(crate) charm: String,
    pub(crate) charm_rev: i64,
    pub(crate) version: String,
    pub(crate) status: StatusInfo,
    pub(crate) units: Vec<UnitStatus>,
}

/// A relation in [`Status`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RelationStatus {
    pub(crate) id: i64,
    pub(crate) endpoints: Vec<String>,
    pub(crate) interface: String,
    pub(crate) kind: String,
    pub(crate) life: String,
}

/// `GET /v1/status`: the controller's snapshot plus whether it has settled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Status {
    pub(crate) model: String,
    pub(crate) model_uuid: String,
    pub(crate) applications: Vec<AppStatus>,
    pub(crate) relations: Vec<RelationStatus>,
    /// Every uniter idle, nothing pending, no unit in error.
    pub(crate) settled: bool,
    /// Controller clock (ms since the epoch).
    pub(crate) time_ms: i64,
    /// The `JUJU_VERSION` charms see.
    pub(crate) juju_version: String,
}

/// `POST /v1/charms` answer: the stored charm's id (content hash) and name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Uploaded {
    pub(crate) id: String,
    pub(crate) name: String,
}

/// `POST /v1/deploy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Deploy {
    /// Application name; the charm's name when absent.
    pub(crate) app: Option<String>,
    /// An [`Uploaded`] id.
    pub(crate) charm: String,
    pub(crate) units: usize,
    /// `key=value` settings, typed by the charm's options.
    #[serde(default)]
    pub(crate) config: Vec<String>,
}

/// Unit names created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Units {
    pub(crate) app: String,
    pub(crate) units: Vec<String>,
}

/// `POST /v1/add-unit`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AddUnit {
    pub(crate) app: String,
    pub(crate) n: usize,
}

/// A unit name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UnitRef {
    pub(crate) unit: String,
}

/// An application name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AppRef {
    pub(crate) app: String,
}

/// `POST /v1/integrate` and `/v1/remove-relation`: `app` or `app:endpoint` each.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Relate {
    pub(crate) a: String,
    pub(crate) b: String,
}

/// The new relation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Related {
    pub(crate) id: i64,
}

/// `POST /v1/config`: settings to apply (none: just read).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConfigChange {
    pub(crate) app: String,
    /// `key=value`.
    #[serde(default)]
    pub(crate) set: Vec<String>,
    /// Keys back to their defaults.
    #[serde(default)]
    pub(crate) reset: Vec<String>,
}

/// One option in [`Config`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConfigSetting {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) default: Option<Value>,
    /// `user` or `default`.
    pub(crate) source: String,
}

/// An application's effective config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Config {
    pub(crate) application: String,
    pub(crate) charm: String,
    pub(crate) settings: BTreeMap<String, ConfigSetting>,
    /// Whether this request changed anything.
    pub(crate) changed: bool,
}

/// `POST /v1/refresh`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Refresh {
    pub(crate) app: String,
    /// An [`Uploaded`] id.
    pub(crate) charm: String,
}

/// `POST /v1/run`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Run {
    /// A unit, or `app/leader`.
    pub(crate) unit: String,
    pub(crate) action: String,
    /// `key=value`, values parsed as YAML.
    #[serde(default)]
    pub(crate) params: Vec<String>,
    /// How long to wait for a result before answering with the task as it is.
    pub(crate) wait_ms: u64,
}

/// An action's task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Task {
    pub(crate) id: i64,
    pub(crate) unit: String,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) message: String,
    pub(crate) results: Value,
    pub(crate) log: Vec<(i64, String)>,
    pub(crate) enqueued: i64,
    pub(crate) started: Option<i64>,
    pub(crate) completed: Option<i64>,
}

/// `POST /v1/resolve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Resolve {
    pub(crate) unit: String,
    pub(crate) retry: bool,
}

/// A secret, without its content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Secret {
    pub(crate) uri: String,
    pub(crate) owner_kind: String,
    pub(crate) owner: String,
    pub(crate) label: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) rotation: String,
    pub(crate) revision: i64,
    pub(crate) updated: i64,
    pub(crate) grants: Vec<(i64, String)>,
}

/// `POST /v1/show-secret`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ShowSecret {
    /// URI, id, or owner label.
    pub(crate) secret: String,
    pub(crate) reveal: bool,
}

/// A secret and, when revealed, its content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SecretDetail {
    pub(crate) secret: Secret,
    pub(crate) content: Option<BTreeMap<String, String>>,
}
