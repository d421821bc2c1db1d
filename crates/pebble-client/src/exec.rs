//! Exec: `POST /v1/exec`, then the task's `control`, `stdio` and `stderr` websockets over
//! the same Unix socket, then the change for the exit code.

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

use crate::{Client, Error, Result};

/// What to run and how. Unset fields take Pebble's defaults (the daemon's environment,
/// `$HOME` as working directory, the daemon's user).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// argv; the program is looked up on `PATH`.
    pub command: Vec<String>,
    /// Extra environment (secrets belong here, never in `command`).
    pub environment: BTreeMap<String, String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Killed after this long (the result is then [`Error::Change`] with "timed out").
    pub timeout: Option<Duration>,
    /// User by name.
    pub user: Option<String>,
    /// User by id.
    pub user_id: Option<u32>,
    /// Group by name.
    pub group: Option<String>,
    /// Group by id.
    pub group_id: Option<u32>,
    /// Bytes written to the command's stdin (then EOF).
    pub stdin: Vec<u8>,
    /// Merge stderr into stdout.
    pub combine_stderr: bool,
}

impl ExecOptions {
    /// Options for `argv` with everything else default.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        ExecOptions {
            command: argv.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }
}

/// A finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit code (-1 when Pebble did not report one).
    pub exit_code: i64,
    /// Its stdout (and stderr when combined).
    pub stdout: Vec<u8>,
    /// Its stderr (empty when combined).
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

fn ws_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Protocol {
        endpoint: "/v1/tasks/websocket".into(),
        reason: format!("{what}: {e}"),
    }
}

fn connect(client: &Client, task: &str, name: &str) -> Result<WebSocket<UnixStream>> {
    let stream = UnixStream::connect(client.socket()).map_err(|source| Error::Connection {
        path: client.socket().to_path_buf(),
        source,
    })?;
    let url = format!("ws://localhost/v1/tasks/{task}/websocket/{name}");
    let (ws, _) =
        tungstenite::client::client(url.as_str(), stream).map_err(|e| ws_error(name, e))?;
    Ok(ws)
}

fn is_end(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .ok()
        .is_some_and(|v| v["command"] == "end")
}

/// Reads BINARY frames until `{"command":"end"}` or the socket closes.
fn read_all(ws: &mut WebSocket<UnixStream>) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Binary(data)) => out.extend_from_slice(&data),
            Ok(Message::Text(t)) if is_end(t.as_str()) => break,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out
}

impl Client {
    /// Runs a command in the container and waits for it. A non-zero exit is
    /// [`Error::Exec`] carrying the output; a timeout is [`Error::Change`].
    pub fn exec(&self, opts: &ExecOptions) -> Result<ExecOutput> {
        let body = json!({
            "command": opts.command,
            "environment": opts.environment,
            "working-dir": opts.working_dir,
            "timeout": opts.timeout.map(|t| format!("{:.3}s", t.as_secs_f64())),
            "user-id": opts.user_id,
            "user": opts.user,
            "group-id": opts.group_id,
            "group": opts.group,
            "split-stderr": !opts.combine_stderr,
        });
        let env = self.json("POST", "/v1/exec", Some(&body))?;
        let change = env.change.ok_or_else(|| Error::Protocol {
            endpoint: "/v1/exec".into(),
            reason: "no change id in the answer".into(),
        })?;
        let task = env.result["task-id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::Protocol {
                endpoint: "/v1/exec".into(),
                reason: "no task-id in the answer".into(),
            })?;
        // ops' order: control, stdio, stderr.
        let mut control = connect(self, &task, "control")?;
        let mut stdio = connect(self, &task, "stdio")?;
        let stderr_ws = if opts.combine_stderr {
            None
        } else {
            Some(connect(self, &task, "stderr")?)
        };
        let stderr_reader = stderr_ws.map(|mut ws| std::thread::spawn(move || read_all(&mut ws)));
        // A command may exit, and Pebble close its stdio, before it read its input (or
        // before the end-of-input message): then the write fails, and what the command
        // did is still in its output and its change, so that is what is reported.
        let mut delivered = true;
        for chunk in opts.stdin.chunks(32 * 1024) {
            if stdio.send(Message::Binary(chunk.to_vec())).is_err() {
                delivered = false;
                break;
            }
        }
        if delivered {
            let _ = stdio.send(Message::Text(r#"{"command":"end"}"#.into()));
        }
        let stdout = read_all(&mut stdio);
        let stderr = stderr_reader
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let wait = opts.timeout.map_or(Duration::from_secs(24 * 3600), |t| {
            t + Duration::from_secs(1)
        });
        let result = self.wait_change(&change, wait);
        let _ = stdio.close(None);
        let _ = control.close(None);
        let change = result?;
        let exit_code = change
            .tasks
            .first()
            .and_then(|t| t.data["exit-code"].as_i64())
            .unwrap_or(-1);
        let out = ExecOutput {
            exit_code,
            stdout,
            stderr,
        };
        if exit_code != 0 {
            return Err(Error::Exec {
                command: opts.command.clone(),
                output: Box::new(out),
            });
        }
        Ok(out)
    }
}
