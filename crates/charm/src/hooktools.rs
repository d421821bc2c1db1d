//! [`HookTools`]: the [`Backend`] that runs Juju's hook tools as processes, with the
//! same argv ops 3.x sends and Juju's output formats.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::backend::{
    Backend, Bag, LogLevel, Network, Port, SecretInfo, SecretOptions, SecretOwner, SecretRead,
    Status, StatusName, StorageInfo,
};
use crate::error::{Error, Result};
use crate::event::RelationId;

/// Runs Juju's hook tools.
#[derive(Debug, Clone, Default)]
pub struct HookTools {
    /// Where the tools are; `None` looks them up on `PATH` as Juju intends.
    pub tools_dir: Option<PathBuf>,
}

impl HookTools {
    /// Tools found on `PATH`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tools found in one directory (tests, or a controller that says where).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            tools_dir: Some(dir.into()),
        }
    }

    fn command(&self, tool: &str) -> Command {
        match &self.tools_dir {
            Some(d) => Command::new(d.join(tool)),
            None => Command::new(tool),
        }
    }

    /// Runs `tool args…`, feeding `stdin`; returns stdout, or the mapped failure.
    fn run(&self, tool: &str, args: &[String], stdin: Option<&[u8]>) -> Result<Vec<u8>> {
        let mut cmd = self.command(tool);
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| Error::ToolSpawn {
            tool: tool.into(),
            source,
        })?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A tool that exits without reading is reported by its exit status below.
            let _ = pipe.write_all(data);
        }
        let out = child
            .wait_with_output()
            .map_err(|source| Error::ToolSpawn {
                tool: tool.into(),
                source,
            })?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(map_failure(
            tool,
            out.status.code().unwrap_or(-1),
            stderr,
            args,
        ))
    }

    fn run_json(&self, tool: &str, args: &[String]) -> Result<Value> {
        let out = self.run(tool, args, None)?;
        parse_json(tool, &out)
    }
}

/// Turns a failed tool's stderr into the typed error ops would raise.
pub(crate) fn map_failure(tool: &str, code: i32, stderr: String, args: &[String]) -> Error {
    let lower = stderr.to_lowercase();
    let target = || args.last().cloned().unwrap_or_default();
    if (tool.starts_with("relation-") || tool.starts_with("network-"))
        && lower.contains("relation not found")
    {
        let rel = args
            .iter()
            .position(|a| a == "-r")
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(target);
        return Error::RelationNotFound { relation: rel };
    }
    if tool.starts_with("secret-") && lower.contains("not found") {
        return Error::SecretNotFound { secret: target() };
    }
    if lower.contains("permission denied")
        || lower.contains("not the leader")
        || lower.contains("cannot write relation settings")
    {
        return Error::PermissionDenied {
            what: format!("{tool}: {stderr}"),
        };
    }
    Error::Model {
        tool: tool.into(),
        code,
        stderr,
    }
}

fn parse_json(tool: &str, out: &[u8]) -> Result<Value> {
    let text = std::str::from_utf8(out).map_err(|e| Error::MalformedToolOutput {
        tool: tool.into(),
        reason: format!("not valid UTF-8: {e}"),
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| Error::MalformedToolOutput {
        tool: tool.into(),
        reason: format!("not JSON ({e}): {:?}", truncate(text, 200)),
    })
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A JSON object of strings (a databag), or a typed error naming the tool.
pub(crate) fn string_map(tool: &str, v: Value) -> Result<Bag> {
    match v {
        Value::Null => Ok(Bag::new()),
        Value::Object(m) => m
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                other => Err(Error::MalformedToolOutput {
                    tool: tool.into(),
                    reason: format!("value of {k:?} is not a string: {other}"),
                }),
            })
            .collect(),
        other => Err(Error::MalformedToolOutput {
            tool: tool.into(),
            reason: format!("expected a JSON object, got {}", kind(&other)),
        }),
    }
}

fn string_list(tool: &str, v: Value) -> Result<Vec<String>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(Error::MalformedToolOutput {
                    tool: tool.into(),
                    reason: format!("list item is not a string: {other}"),
                }),
            })
            .collect(),
        other => Err(Error::MalformedToolOutput {
            tool: tool.into(),
            reason: format!("expected a JSON list, got {}", kind(&other)),
        }),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn s(x: impl Into<String>) -> String {
    x.into()
}

fn secret_opts_args(args: &mut Vec<String>, opts: &SecretOptions) {
    if let Some(l) = &opts.label {
        args.extend([s("--label"), l.clone()]);
    }
    if let Some(d) = &opts.description {
        args.extend([s("--description"), d.clone()]);
    }
    if let Some(e) = &opts.expire {
        args.extend([s("--expire"), e.clone()]);
    }
    if let Some(r) = &opts.rotate {
        args.extend([s("--rotate"), r.clone()]);
    }
}

/// Secret values go to the tool through 0600 files that live only as long as the call,
/// never through argv.
struct ContentFiles {
    dir: PathBuf,
    args: Vec<String>,
}

static FILE_SEQ: AtomicU64 = AtomicU64::new(0);

impl ContentFiles {
    fn write(content: &Bag) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "ward-secret-{}-{nanos}-{}",
            std::process::id(),
            FILE_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let io = |e: std::io::Error| Error::InvalidInput {
            what: "secret content".into(),
            reason: format!("cannot write a temporary file for it: {e}"),
        };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io)?;
        let mut files = ContentFiles {
            dir,
            args: Vec::new(),
        };
        for (i, (key, value)) in content.iter().enumerate() {
            check_secret_key(key)?;
            let path = files.dir.join(format!("v{i}"));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
            f.write_all(value.as_bytes()).map_err(io)?;
            files.args.push(format!("{key}#file={}", path.display()));
        }
        Ok(files)
    }
}

impl Drop for ContentFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Secret keys as Juju accepts them: lowercase letters, digits and `-`, at least 3 long.
pub(crate) fn check_secret_key(key: &str) -> Result<()> {
    let ok = key.len() >= 3
        && key
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !key.starts_with('-')
        && !key.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            what: "secret key".into(),
            reason: format!(
                "{key:?} must be at least 3 lowercase letters, digits or '-', not starting or ending with '-'"
            ),
        })
    }
}

fn status_from(tool: &str, v: &Value) -> Result<Status> {
    let name = v.get("status").and_then(Value::as_str).unwrap_or("unknown");
    let name = StatusName::parse(name).ok_or_else(|| Error::MalformedToolOutput {
        tool: tool.into(),
        reason: format!("unknown status {name:?}"),
    })?;
    let message = v
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Ok(Status { name, message })
}

impl Backend for HookTools {
    fn relation_ids(&mut self, endpoint: &str) -> Result<Vec<RelationId>> {
        let tool = "relation-ids";
        let v = self.run_json(tool, &[s(endpoint), s("--format=json")])?;
        string_list(tool, v)?
            .into_iter()
            .map(|r| {
                RelationId::parse(&r).ok_or_else(|| Error::MalformedToolOutput {
                    tool: tool.into(),
                    reason: format!("{r:?} is not <endpoint>:<id>"),
                })
            })
            .collect()
    }

    fn relation_list(&mut self, rel: &RelationId) -> Result<Vec<String>> {
        let tool = "relation-list";
        let v = self.run_json(tool, &[s("--format=json"), s("-r"), rel.to_string()])?;
        string_list(tool, v)
    }

    fn relation_remote_app(&mut self, rel: &RelationId) -> Result<Option<String>> {
        let tool = "relation-list";
        let v = self.run_json(
            tool,
            &[s("--format=json"), s("-r"), rel.to_string(), s("--app")],
        )?;
        match v {
            Value::Null => Ok(None),
            Value::String(a) if a.is_empty() => Ok(None),
            Value::String(a) => Ok(Some(a)),
            other => Err(Error::MalformedToolOutput {
                tool: tool.into(),
                reason: format!("expected the application's name, got {}", kind(&other)),
            }),
        }
    }

    fn relation_get(&mut self, rel: &RelationId, app: bool, owner: &str) -> Result<Bag> {
        let tool = "relation-get";
        let mut args = vec![s("--format=json"), s("-r"), rel.to_string()];
        if app {
            args.push(s("--app"));
        }
        args.extend([s("-"), s(owner)]);
        let v = self.run_json(tool, &args)?;
        string_map(tool, v)
    }

    fn relation_set(&mut self, rel: &RelationId, app: bool, data: &Bag) -> Result<()> {
        let mut args = vec![s("-r"), rel.to_string()];
        if app {
            args.push(s("--app"));
        }
        args.extend([s("--file"), s("-")]);
        let body = serde_json::to_vec(data).expect("a map of strings serialises");
        self.run("relation-set", &args, Some(&body)).map(drop)
    }

    fn config_get(&mut self) -> Result<serde_json::Map<String, Value>> {
        let tool = "config-get";
        match self.run_json(tool, &[s("--format=json")])? {
            Value::Null => Ok(Default::default()),
            Value::Object(m) => Ok(m),
            other => Err(Error::MalformedToolOutput {
                tool: tool.into(),
                reason: format!("expected a JSON object, got {}", kind(&other)),
            }),
        }
    }

    fn is_leader(&mut self) -> Result<bool> {
        let tool = "is-leader";
        match self.run_json(tool, &[s("--format=json")])? {
            Value::Bool(b) => Ok(b),
            other => Err(Error::MalformedToolOutput {
                tool: tool.into(),
                reason: format!("expected true or false, got {other}"),
            }),
        }
    }

    fn status_get(&mut self, app: bool) -> Result<Status> {
        let tool = "status-get";
        let v = self.run_json(
            tool,
            &[
                s("--include-data"),
                s("--format=json"),
                format!("--application={app}"),
            ],
        )?;
        if app {
            let inner = v.get("application-status").cloned().unwrap_or(v);
            status_from(tool, &inner)
        } else {
            status_from(tool, &v)
        }
    }

    fn status_set(&mut self, app: bool, status: &Status) -> Result<()> {
        let flag = if app {
            "--application=True"
        } else {
            "--application=False"
        };
        let mut args = vec![s(flag), s(status.name.as_str())];
        if !status.message.is_empty() {
            args.extend([s("--"), status.message.clone()]);
        }
        self.run("status-set", &args, None).map(drop)
    }

    fn application_version_set(&mut self, version: &str) -> Result<()> {
        self.run("application-version-set", &[s("--"), s(version)], None)
            .map(drop)
    }

    fn juju_log(&mut self, level: LogLevel, message: &str) -> Result<()> {
        let args = [s("--log-level"), s(level.as_str()), s("--"), s(message)];
        self.run("juju-log", &args, None).map(drop)
    }

    fn action_get(&mut self) -> Result<Value> {
        Ok(match self.run_json("action-get", &[s("--format=json")])? {
            Value::Null => Value::Object(Default::default()),
            v => v,
        })
    }

    fn action_set(&mut self, results: &BTreeMap<String, String>) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        let args: Vec<String> = results.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.run("action-set", &args, None).map(drop)
    }

    fn action_log(&mut self, message: &str) -> Result<()> {
        self.run("action-log", &[s("--"), s(message)], None)
            .map(drop)
    }

    fn action_fail(&mut self, message: &str) -> Result<()> {
        self.run("action-fail", &[s("--"), s(message)], None)
            .map(drop)
    }

    fn secret_add(
        &mut self,
        content: &Bag,
        owner: SecretOwner,
        opts: &SecretOptions,
    ) -> Result<String> {
        let files = ContentFiles::write(content)?;
        let mut args = Vec::new();
        secret_opts_args(&mut args, opts);
        args.extend([s("--owner"), s(owner.as_str())]);
        args.extend(files.args.iter().cloned());
        let out = self.run("secret-add", &args, None)?;
        let id = String::from_utf8_lossy(&out).trim().to_string();
        if id.is_empty() {
            return Err(Error::MalformedToolOutput {
                tool: "secret-add".into(),
                reason: "printed no secret id".into(),
            });
        }
        Ok(id)
    }

    fn secret_get(
        &mut self,
        id: Option<&str>,
        label: Option<&str>,
        read: SecretRead,
    ) -> Result<Bag> {
        let tool = "secret-get";
        let mut args = vec![s("--format=json")];
        if let Some(id) = id {
            args.push(s(id));
        }
        if let Some(l) = label {
            args.extend([s("--label"), s(l)]);
        }
        match read {
            SecretRead::Tracked => {}
            SecretRead::Peek => args.push(s("--peek")),
            SecretRead::Refresh => args.push(s("--refresh")),
        }
        let v = self.run_json(tool, &args).map_err(|e| match e {
            Error::SecretNotFound { .. } => Error::SecretNotFound {
                secret: id.or(label).unwrap_or_default().to_string(),
            },
            e => e,
        })?;
        string_map(tool, v)
    }

    fn secret_info_get(&mut self, id: Option<&str>, label: Option<&str>) -> Result<SecretInfo> {
        let tool = "secret-info-get";
        let mut args = vec![s("--format=json")];
        match (id, label) {
            (Some(id), _) => args.push(s(id)),
            (None, Some(l)) => args.extend([s("--label"), s(l)]),
            (None, None) => {
                return Err(Error::InvalidInput {
                    what: "secret".into(),
                    reason: "give an id or a label".into(),
                })
            }
        }
        let v = self.run_json(tool, &args)?;
        let Value::Object(m) = v else {
            return Err(Error::MalformedToolOutput {
                tool: tool.into(),
                reason: format!("expected an object keyed by secret id, got {}", kind(&v)),
            });
        };
        let (key, info) = m
            .into_iter()
            .next()
            .ok_or_else(|| Error::MalformedToolOutput {
                tool: tool.into(),
                reason: "empty answer".into(),
            })?;
        let mut info: SecretInfo =
            serde_json::from_value(info).map_err(|e| Error::MalformedToolOutput {
                tool: tool.into(),
                reason: e.to_string(),
            })?;
        // Juju keys the answer by the bare id; give callers the URI form secret-add
        // printed, so ids compare equal whichever tool they came from.
        info.id = if key.starts_with("secret:") {
            key
        } else {
            format!("secret:{key}")
        };
        Ok(info)
    }

    fn secret_set(&mut self, id: &str, content: Option<&Bag>, opts: &SecretOptions) -> Result<()> {
        let files = match content {
            Some(c) => Some(ContentFiles::write(c)?),
            None => None,
        };
        let mut args = Vec::new();
        secret_opts_args(&mut args, opts);
        args.push(s(id));
        if let Some(f) = &files {
            args.extend(f.args.iter().cloned());
        }
        self.run("secret-set", &args, None).map(drop)
    }

    fn secret_grant(&mut self, id: &str, rel: &RelationId, unit: Option<&str>) -> Result<()> {
        let mut args = vec![s("--relation"), rel.id.to_string()];
        if let Some(u) = unit {
            args.extend([s("--unit"), s(u)]);
        }
        args.push(s(id));
        self.run("secret-grant", &args, None).map(drop)
    }

    fn secret_revoke(&mut self, id: &str, rel: &RelationId, unit: Option<&str>) -> Result<()> {
        let mut args = vec![s("--relation"), rel.id.to_string()];
        if let Some(u) = unit {
            args.extend([s("--unit"), s(u)]);
        }
        args.push(s(id));
        self.run("secret-revoke", &args, None).map(drop)
    }

    fn secret_remove(&mut self, id: &str, revision: Option<u32>) -> Result<()> {
        let mut args = vec![s(id)];
        if let Some(r) = revision {
            args.extend([s("--revision"), r.to_string()]);
        }
        self.run("secret-remove", &args, None).map(drop)
    }

    fn secret_ids(&mut self) -> Result<Vec<String>> {
        let v = self.run_json("secret-ids", &[s("--format=json")])?;
        string_list("secret-ids", v)
    }

    fn open_port(&mut self, port: Port) -> Result<()> {
        self.run("open-port", &[port.to_string()], None).map(drop)
    }

    fn close_port(&mut self, port: Port) -> Result<()> {
        self.run("close-port", &[port.to_string()], None).map(drop)
    }

    fn opened_ports(&mut self) -> Result<Vec<Port>> {
        let tool = "opened-ports";
        let v = self.run_json(tool, &[s("--format=json")])?;
        string_list(tool, v)?
            .into_iter()
            .map(|p| {
                Port::parse(&p).ok_or_else(|| Error::MalformedToolOutput {
                    tool: tool.into(),
                    reason: format!("{p:?} is not a port"),
                })
            })
            .collect()
    }

    fn network_get(&mut self, binding: &str, rel: Option<&RelationId>) -> Result<Network> {
        let tool = "network-get";
        let mut args = vec![s("--format=json")];
        if let Some(r) = rel {
            args.extend([s("-r"), r.to_string()]);
        }
        args.push(s(binding));
        let v = self.run_json(tool, &args)?;
        serde_json::from_value(v).map_err(|e| Error::MalformedToolOutput {
            tool: tool.into(),
            reason: e.to_string(),
        })
    }

    fn storage_list(&mut self, name: &str) -> Result<Vec<String>> {
        let v = self.run_json("storage-list", &[s("--format=json"), s(name)])?;
        string_list("storage-list", v)
    }

    fn storage_get(&mut self, id: &str) -> Result<StorageInfo> {
        let tool = "storage-get";
        let v = self.run_json(tool, &[s("--format=json"), s("-s"), s(id)])?;
        serde_json::from_value(v).map_err(|e| Error::MalformedToolOutput {
            tool: tool.into(),
            reason: e.to_string(),
        })
    }

    fn state_get(&mut self) -> Result<Bag> {
        let v = self.run_json("state-get", &[s("--format=json")])?;
        string_map("state-get", v)
    }

    fn state_set(&mut self, data: &Bag) -> Result<()> {
        let body = serde_json::to_vec(data).expect("a map of strings serialises");
        self.run("state-set", &[s("--file"), s("-")], Some(&body))
            .map(drop)
    }

    fn state_delete(&mut self, key: &str) -> Result<()> {
        self.run("state-delete", &[s(key)], None).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Whatever bytes a tool prints, parsing a databag from them returns a value or
        /// a typed error naming the tool; it never panics.
        #[test]
        fn arbitrary_tool_output_never_panics(out in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            match parse_json("relation-get", &out).and_then(|v| string_map("relation-get", v)) {
                Ok(_) => {}
                Err(Error::MalformedToolOutput { tool, .. }) => proptest::prop_assert_eq!(tool, "relation-get"),
                Err(e) => proptest::prop_assert!(false, "unexpected error {e}"),
            }
        }

        /// Any JSON object of strings round-trips as a databag.
        #[test]
        fn string_objects_parse_as_bags(bag in proptest::collection::btree_map(".{0,8}", ".{0,16}", 0..6)) {
            let text = serde_json::to_vec(&bag).unwrap();
            let parsed = parse_json("relation-get", &text).and_then(|v| string_map("relation-get", v));
            proptest::prop_assert_eq!(parsed.unwrap(), bag);
        }
    }
}
