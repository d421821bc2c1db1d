//! A blocking client for the Pebble API over its Unix socket, for charms.
//!
//! Charms run for one hook and exit, so this client is synchronous and small: std's
//! `UnixStream`, one HTTP/1.1 request per connection, JSON through serde. Under Juju
//! (and Ward) a container's socket is `/charm/containers/<name>/pebble.socket`.
//!
//! ```no_run
//! use pebble_client::Client;
//!
//! let pebble = Client::for_container("postgresql");
//! let layer = "services:\n  postgresql:\n    override: replace\n    command: postgres -D /data\n    startup: enabled\n";
//! pebble.add_layer("postgresql", layer, true)?;
//! pebble.replan()?;
//! for svc in pebble.services(&[])? {
//!     println!("{} is {}", svc.name, svc.current);
//! }
//! # Ok::<(), pebble_client::Error>(())
//! ```
//!
//! Exec runs a command in the container with its stdio over Pebble's websockets
//! ([`Client::exec`]).

mod exec;
mod http;
mod types;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

pub use exec::{ExecOptions, ExecOutput};
pub use types::{Change, CheckInfo, FileInfo, Notice, ServiceInfo, SystemInfo, Task};

/// What can go wrong talking to Pebble.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be reached (Pebble not up yet: `can_connect` is false).
    #[error("cannot connect to Pebble at {path}: {source}")]
    Connection {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Pebble answered with an error envelope.
    #[error("Pebble {method} {endpoint} failed ({code}{kind}): {message}", kind = kind.as_deref().map(|k| format!(", {k}")).unwrap_or_default())]
    Api {
        /// The request method.
        method: String,
        /// The endpoint.
        endpoint: String,
        /// The HTTP status code.
        code: u16,
        /// Pebble's error kind (`not-found`, `permission-denied`, …), if any.
        kind: Option<String>,
        /// Pebble's message.
        message: String,
    },
    /// Pebble's answer was not what the API specifies.
    #[error("unexpected answer from Pebble {endpoint}: {reason}")]
    Protocol {
        /// The endpoint.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
    /// A change finished in error.
    #[error("change {id} ({kind}) failed: {err}")]
    Change {
        /// The change id.
        id: String,
        /// Its kind.
        kind: String,
        /// Pebble's error text.
        err: String,
    },
    /// A file in a files request failed.
    #[error("{path}: {message} ({kind})")]
    Path {
        /// The path.
        path: String,
        /// Pebble's error kind.
        kind: String,
        /// Pebble's message.
        message: String,
    },
    /// A change did not finish in time.
    #[error("timed out after {0:?} waiting for change {1}")]
    Timeout(Duration, String),
    /// An exec'd command exited non-zero (its output is kept, as in ops' `ExecError`).
    #[error("command {command:?} exited with code {}", output.exit_code)]
    Exec {
        /// The argv.
        command: Vec<String>,
        /// Its exit code and output.
        output: Box<ExecOutput>,
    },
}

/// The client's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Options for [`Client::push`] and [`Client::make_dir`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileOptions {
    /// Create missing parent directories.
    pub make_dirs: bool,
    /// Unix permissions (e.g. `0o600`).
    pub permissions: Option<u32>,
    /// Owner by name.
    pub user: Option<String>,
    /// Owner by id.
    pub user_id: Option<u32>,
    /// Group by name.
    pub group: Option<String>,
    /// Group by id.
    pub group_id: Option<u32>,
}

/// A client for one Pebble socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
}

impl Client {
    /// A client for the socket at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            socket: path.into(),
            timeout: Duration::from_secs(5),
        }
    }

    /// The client for a workload container, as Juju mounts its socket in the charm.
    pub fn for_container(name: &str) -> Self {
        Self::new(
            Path::new("/charm/containers")
                .join(name)
                .join("pebble.socket"),
        )
    }

    /// Per-request I/O timeout (default 5 s, as ops).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Result<http::Envelope> {
        let body = body.map(|b| serde_json::to_vec(b).expect("JSON values serialise"));
        let resp = http::request(
            &self.socket,
            self.timeout,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_deref(),
        )?;
        http::envelope(method, path, &resp)
    }

    fn result<T: serde::de::DeserializeOwned>(&self, endpoint: &str, v: Value) -> Result<T> {
        serde_json::from_value(v).map_err(|e| Error::Protocol {
            endpoint: endpoint.into(),
            reason: e.to_string(),
        })
    }

    /// `GET /v1/system-info`; succeeds exactly when the container can be reached.
    pub fn system_info(&self) -> Result<SystemInfo> {
        let env = self.json("GET", "/v1/system-info", None)?;
        self.result("/v1/system-info", env.result)
    }

    /// Whether Pebble answers (ops' `Container.can_connect`).
    pub fn can_connect(&self) -> bool {
        self.system_info().is_ok()
    }

    /// Adds (or with `combine`, merges into) the layer labelled `label`.
    pub fn add_layer(&self, label: &str, yaml: &str, combine: bool) -> Result<()> {
        let body = json!({"action": "add", "combine": combine, "label": label, "format": "yaml", "layer": yaml});
        self.json("POST", "/v1/layers", Some(&body)).map(drop)
    }

    /// The combined plan as YAML.
    pub fn plan(&self) -> Result<String> {
        let env = self.json("GET", "/v1/plan?format=yaml", None)?;
        match env.result {
            Value::String(s) => Ok(s),
            other => Err(Error::Protocol {
                endpoint: "/v1/plan".into(),
                reason: format!("expected YAML text, got {other}"),
            }),
        }
    }

    /// Services, all or the named ones.
    pub fn services(&self, names: &[&str]) -> Result<Vec<ServiceInfo>> {
        let mut path = "/v1/services".to_string();
        if !names.is_empty() {
            path.push_str(&format!("?names={}", http::encode(&names.join(","))));
        }
        let env = self.json("GET", &path, None)?;
        self.result("/v1/services", env.result)
    }

    fn services_action(&self, action: &str, names: &[&str]) -> Result<Change> {
        let body = json!({"action": action, "services": names});
        let env = self.json("POST", "/v1/services", Some(&body))?;
        let id = env.change.ok_or_else(|| Error::Protocol {
            endpoint: "/v1/services".into(),
            reason: "async answer without a change id".into(),
        })?;
        self.wait_change(&id, Duration::from_secs(30))
    }

    /// Starts services and waits for the change.
    pub fn start(&self, names: &[&str]) -> Result<Change> {
        self.services_action("start", names)
    }

    /// Stops services and waits for the change.
    pub fn stop(&self, names: &[&str]) -> Result<Change> {
        self.services_action("stop", names)
    }

    /// Restarts services and waits for the change.
    pub fn restart(&self, names: &[&str]) -> Result<Change> {
        self.services_action("restart", names)
    }

    /// Brings running services in line with the plan and starts enabled ones.
    pub fn replan(&self) -> Result<Change> {
        self.services_action("replan", &[])
    }

    /// Sends a signal (`SIGHUP`, …) to services' main processes.
    pub fn send_signal(&self, signal: &str, names: &[&str]) -> Result<()> {
        let body = json!({"signal": signal, "services": names});
        self.json("POST", "/v1/signals", Some(&body)).map(drop)
    }

    /// A change by id.
    pub fn change(&self, id: &str) -> Result<Change> {
        let path = format!("/v1/changes/{}", http::encode(id));
        let env = self.json("GET", &path, None)?;
        self.result(&path, env.result)
    }

    /// Waits until a change is ready; a change in error is [`Error::Change`].
    pub fn wait_change(&self, id: &str, timeout: Duration) -> Result<Change> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(timeout, id.into()));
            }
            // Ask Pebble to hold the request a little less than our own I/O timeout.
            let slice = left.min(
                self.timeout
                    .saturating_sub(Duration::from_secs(1))
                    .max(Duration::from_secs(1)),
            );
            let path = format!(
                "/v1/changes/{}/wait?timeout={:.3}s",
                http::encode(id),
                slice.as_secs_f64()
            );
            match self.json("GET", &path, None) {
                Ok(env) => {
                    let change: Change = self.result(&path, env.result)?;
                    if let Some(err) = &change.err {
                        return Err(Error::Change {
                            id: change.id.clone(),
                            kind: change.kind.clone(),
                            err: err.clone(),
                        });
                    }
                    return Ok(change);
                }
                Err(Error::Api { code: 504, .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Health checks, all or those of a level (`alive`, `ready`) and names.
    pub fn checks(&self, level: Option<&str>, names: &[&str]) -> Result<Vec<CheckInfo>> {
        let mut q = Vec::new();
        if let Some(l) = level {
            q.push(format!("level={}", http::encode(l)));
        }
        for n in names {
            q.push(format!("names={}", http::encode(n)));
        }
        let path = if q.is_empty() {
            "/v1/checks".to_string()
        } else {
            format!("/v1/checks?{}", q.join("&"))
        };
        let env = self.json("GET", &path, None)?;
        Ok(match env.result {
            Value::Null => Vec::new(),
            v => self.result("/v1/checks", v)?,
        })
    }

    /// Records a custom notice (`key` like `example.com/thing`); returns its id.
    pub fn notify(&self, key: &str, data: &[(&str, &str)]) -> Result<String> {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let body = json!({"action": "add", "type": "custom", "key": key, "data": data});
        let env = self.json("POST", "/v1/notices", Some(&body))?;
        env.result
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::Protocol {
                endpoint: "/v1/notices".into(),
                reason: "no notice id".into(),
            })
    }

    /// Notices, optionally filtered by types and keys.
    pub fn notices(&self, types: &[&str], keys: &[&str]) -> Result<Vec<Notice>> {
        self.notices_of(types, keys, false)
    }

    /// Notices of every user (`users=all`; Pebble allows it to admins only), optionally
    /// filtered by types and keys: what Juju watches to emit custom-notice events.
    pub fn notices_all_users(&self, types: &[&str], keys: &[&str]) -> Result<Vec<Notice>> {
        self.notices_of(types, keys, true)
    }

    fn notices_of(&self, types: &[&str], keys: &[&str], all_users: bool) -> Result<Vec<Notice>> {
        let mut q = Vec::new();
        if all_users {
            q.push("users=all".to_string());
        }
        if !types.is_empty() {
            q.push(format!("types={}", http::encode(&types.join(","))));
        }
        if !keys.is_empty() {
            q.push(format!("keys={}", http::encode(&keys.join(","))));
        }
        let path = if q.is_empty() {
            "/v1/notices".to_string()
        } else {
            format!("/v1/notices?{}", q.join("&"))
        };
        let env = self.json("GET", &path, None)?;
        Ok(match env.result {
            Value::Null => Vec::new(),
            v => self.result("/v1/notices", v)?,
        })
    }

    /// Lists a directory (or, with `itself`, describes the path).
    pub fn list_files(
        &self,
        path: &str,
        pattern: Option<&str>,
        itself: bool,
    ) -> Result<Vec<FileInfo>> {
        let mut p = format!("/v1/files?action=list&path={}", http::encode(path));
        if let Some(g) = pattern {
            p.push_str(&format!("&pattern={}", http::encode(g)));
        }
        if itself {
            p.push_str("&itself=true");
        }
        let env = self.json("GET", &p, None)?;
        self.result("/v1/files", env.result)
    }

    /// Creates a directory.
    pub fn make_dir(&self, path: &str, opts: &FileOptions) -> Result<()> {
        let mut d = json!({"path": path, "make-parents": opts.make_dirs});
        ownership(&mut d, opts);
        let env = self.json(
            "POST",
            "/v1/files",
            Some(&json!({"action": "make-dirs", "dirs": [d]})),
        )?;
        file_errors(env.result)
    }

    /// Removes a path (recursively if asked).
    pub fn remove_path(&self, path: &str, recursive: bool) -> Result<()> {
        let body = json!({"action": "remove", "paths": [{"path": path, "recursive": recursive}]});
        let env = self.json("POST", "/v1/files", Some(&body))?;
        file_errors(env.result)
    }

    /// Writes a file atomically (multipart, as ops does).
    pub fn push(&self, path: &str, content: &[u8], opts: &FileOptions) -> Result<()> {
        let mut meta = json!({"path": path, "make-dirs": opts.make_dirs});
        ownership(&mut meta, opts);
        let request = json!({"action": "write", "files": [meta]});
        let boundary = http::boundary();
        let mut body = Vec::with_capacity(content.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: application/json\r\nContent-Disposition: form-data; name=\"request\"\r\n\r\n{request}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{path}\"\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let ct = format!("multipart/form-data; boundary=\"{boundary}\"");
        let resp = http::request(
            &self.socket,
            self.timeout,
            "POST",
            "/v1/files",
            &[("Content-Type", &ct)],
            Some(&body),
        )?;
        let env = http::envelope("POST", "/v1/files", &resp)?;
        file_errors(env.result)
    }

    /// Reads a file.
    pub fn pull(&self, path: &str) -> Result<Vec<u8>> {
        let endpoint = format!("/v1/files?action=read&path={}", http::encode(path));
        let resp = http::request(
            &self.socket,
            self.timeout,
            "GET",
            &endpoint,
            &[("Accept", "multipart/form-data")],
            None,
        )?;
        if resp.status != 200 {
            http::envelope("GET", "/v1/files", &resp)?;
        }
        let parts = http::multipart(&resp).map_err(|reason| Error::Protocol {
            endpoint: "/v1/files".into(),
            reason,
        })?;
        let response =
            parts
                .iter()
                .find(|p| p.name == "response")
                .ok_or_else(|| Error::Protocol {
                    endpoint: "/v1/files".into(),
                    reason: "no \"response\" part".into(),
                })?;
        let env: Value = serde_json::from_slice(&response.body).map_err(|e| Error::Protocol {
            endpoint: "/v1/files".into(),
            reason: e.to_string(),
        })?;
        file_errors(env.get("result").cloned().unwrap_or(Value::Null))?;
        parts
            .into_iter()
            .find(|p| p.name == "files" && p.filename.as_deref() == Some(path))
            .map(|p| p.body)
            .ok_or_else(|| Error::Protocol {
                endpoint: "/v1/files".into(),
                reason: format!("no content for {path}"),
            })
    }
}

fn ownership(v: &mut Value, opts: &FileOptions) {
    let m = v.as_object_mut().expect("an object");
    if let Some(p) = opts.permissions {
        m.insert("permissions".into(), json!(format!("{p:03o}")));
    }
    if let Some(u) = &opts.user {
        m.insert("user".into(), json!(u));
    }
    if let Some(u) = opts.user_id {
        m.insert("user-id".into(), json!(u));
    }
    if let Some(g) = &opts.group {
        m.insert("group".into(), json!(g));
    }
    if let Some(g) = opts.group_id {
        m.insert("group-id".into(), json!(g));
    }
}

/// The first per-path error in a files answer, if any.
fn file_errors(result: Value) -> Result<()> {
    let Value::Array(items) = result else {
        return Ok(());
    };
    for item in items {
        if let Some(err) = item.get("error") {
            return Err(Error::Path {
                path: item
                    .get("path")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into(),
                kind: err
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("generic-file-error")
                    .into(),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into(),
            });
        }
    }
    Ok(())
}
