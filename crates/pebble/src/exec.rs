//! Exec: a command run as a change, its stdio carried over websockets.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::daemon::Daemon;
use crate::state::Status;
use crate::users::{resolve_ids, user_env};
use crate::util::{format_duration, parse_duration};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const WEBSOCKET_WAIT: Duration = Duration::from_secs(5);

/// POST /v1/exec body (ops sends JSON null for unset fields).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExecRequest {
    command: Option<Vec<String>>,
    service_context: Option<String>,
    environment: Option<BTreeMap<String, String>>,
    working_dir: Option<String>,
    timeout: Option<String>,
    user_id: Option<u32>,
    user: Option<String>,
    group_id: Option<u32>,
    group: Option<String>,
    terminal: Option<bool>,
    interactive: Option<bool>,
    split_stderr: Option<bool>,
    #[allow(dead_code)]
    width: Option<u32>,
    #[allow(dead_code)]
    height: Option<u32>,
}

/// An exec request error: (HTTP status, message).
pub type ExecError = (u16, String);

/// Validates the request, creates the change and starts the runner. Returns the change id
/// and the API result (`task-id`, `environment`, `working-dir`).
pub fn start(d: &Arc<Daemon>, req: ExecRequest) -> Result<(u64, Value), ExecError> {
    let command = req.command.unwrap_or_default();
    let Some(program) = command.first().cloned() else {
        return Err((400, "must specify command".into()));
    };
    let timeout = match req.timeout.as_deref() {
        None | Some("") => None,
        Some(t) => Some(parse_duration(t).map_err(|e| (400, format!("invalid timeout: {e}")))?),
    };
    let (mut user_id, mut user, mut group_id, mut group, mut dir) = (
        req.user_id,
        req.user,
        req.group_id,
        req.group,
        req.working_dir,
    );
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), DEFAULT_PATH.into());
    env.insert("LANG".into(), "C.UTF-8".into());
    if let Some(ctx) = &req.service_context {
        let inner = d.lock();
        let Some(svc) = inner.plan.combined.services.get(ctx) else {
            return Err((400, format!("context service {ctx:?} not found")));
        };
        env.extend(svc.environment.clone());
        user_id = user_id.or(svc.user_id);
        user = user.or(svc.user.clone());
        group_id = group_id.or(svc.group_id);
        group = group.or(svc.group.clone());
        dir = dir.or(svc.working_dir.clone());
    }
    let ids =
        resolve_ids(user_id, user.as_deref(), group_id, group.as_deref()).map_err(|e| (400, e))?;
    let uid = ids.map_or_else(|| nix::unistd::getuid().as_raw(), |(u, _)| u);
    for (k, v) in user_env(uid) {
        env.entry(k).or_insert(v);
    }
    env.extend(req.environment.unwrap_or_default());
    let dir = dir.filter(|d| !d.is_empty()).unwrap_or_else(|| {
        env.get("HOME")
            .filter(|h| Path::new(h).is_dir())
            .cloned()
            .unwrap_or_else(|| "/".into())
    });
    let path = look_path(
        &program,
        env.get("PATH").map(String::as_str).unwrap_or(DEFAULT_PATH),
    )
    .ok_or_else(|| (400, format!("cannot find executable {program:?}")))?;
    if req.terminal.unwrap_or(false) {
        return Err((
            500,
            "cannot call exec: terminal mode is not supported by Ward's Pebble".into(),
        ));
    }
    if req.interactive.unwrap_or(false) {
        return Err((
            500,
            "cannot call exec: interactive mode requires a terminal".into(),
        ));
    }
    if !Path::new(&dir).is_dir() {
        return Err((
            500,
            format!("cannot call exec: working directory {dir:?} does not exist"),
        ));
    }
    let split = req.split_stderr.unwrap_or(false);
    let (tx, rx) = mpsc::channel(4);
    let mut inner = d.lock();
    let summary = format!("Execute command {program:?}");
    let (change, tasks) = inner.state.new_change(
        "exec",
        &summary,
        &[("exec".to_string(), summary.clone())],
        Map::new(),
    );
    let task = tasks[0];
    inner.execs.insert(task, tx);
    drop(inner);
    d.bump();
    let result = json!({"task-id": task.to_string(), "environment": env, "working-dir": dir});
    let job = Job {
        path,
        argv: command,
        env,
        dir,
        ids,
        timeout,
        split,
    };
    let d = d.clone();
    tokio::spawn(async move { run(d, change, task, job, rx).await });
    Ok((change, result))
}

fn look_path(program: &str, path: &str) -> Option<String> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(Path::new(program)).then(|| program.to_string());
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| executable(p))
        .map(|p| p.to_string_lossy().to_string())
}

struct Job {
    path: String,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    dir: String,
    ids: Option<(u32, u32)>,
    timeout: Option<Duration>,
    split: bool,
}

fn finish(d: &Arc<Daemon>, change: u64, task: u64, exit_code: i64, error: Option<String>) {
    let mut inner = d.lock();
    inner.execs.remove(&task);
    inner
        .state
        .set_data(change, task, "exit-code", json!(exit_code));
    match error {
        Some(e) => {
            inner.state.log(change, task, "ERROR", &e);
            inner.state.set_status(change, task, Status::Error);
        }
        None => inner.state.set_status(change, task, Status::Done),
    }
    drop(inner);
    d.bump();
}

async fn run(
    d: Arc<Daemon>,
    change: u64,
    task: u64,
    job: Job,
    mut rx: mpsc::Receiver<(String, WebSocket)>,
) {
    d.lock().state.set_status(change, task, Status::Doing);
    d.bump();
    let mut sockets: BTreeMap<String, WebSocket> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + WEBSOCKET_WAIT;
    let need_stderr = job.split;
    while !(sockets.contains_key("stdio")
        && sockets.contains_key("control")
        && (!need_stderr || sockets.contains_key("stderr")))
    {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((name, ws))) => {
                sockets.insert(name, ws);
            }
            _ => break,
        }
    }
    let (Some(stdio), true) = (
        sockets.remove("stdio"),
        !need_stderr || sockets.contains_key("stderr"),
    ) else {
        finish(
            &d,
            change,
            task,
            -1,
            Some("timeout waiting for websocket connections".into()),
        );
        return;
    };
    let stderr_ws = sockets.remove("stderr");
    let control = sockets.remove("control");

    let mut cmd = tokio::process::Command::new(&job.path);
    cmd.arg0(&job.argv[0])
        .args(&job.argv[1..])
        .env_clear()
        .envs(&job.env)
        .current_dir(&job.dir)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some((uid, gid)) = job.ids {
        cmd.uid(uid).gid(gid);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            finish(
                &d,
                change,
                task,
                -1,
                Some(format!("cannot start command: {e}")),
            );
            return;
        }
    };
    let pid = child.id().map(|p| p as i32);

    let (stdio_sink, mut stdio_stream) = stdio.split();
    let stdio_tx = writer(stdio_sink);
    // stdin: BINARY frames until {"command":"end"} or close.
    let mut stdin = child.stdin.take();
    let stdin_task = tokio::spawn(async move {
        while let Some(Ok(msg)) = stdio_stream.next().await {
            match msg {
                Message::Binary(data) => {
                    if let Some(s) = stdin.as_mut() {
                        if s.write_all(&data).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Message::Text(t) if is_end(t.as_str()) => {
                    stdin = None;
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        drop(stdin);
    });
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut pumps = Vec::new();
    match stderr_ws {
        Some(ws) => {
            let (sink, mut stream) = ws.split();
            let tx = writer(sink);
            tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
            pumps.push(tokio::spawn(pump_all(
                vec![stdout.map(boxed)],
                stdio_tx.clone(),
            )));
            pumps.push(tokio::spawn(pump_all(vec![stderr.map(boxed)], tx)));
        }
        None => {
            pumps.push(tokio::spawn(pump_all(
                vec![stdout.map(boxed), stderr.map(boxed)],
                stdio_tx.clone(),
            )));
        }
    }
    // control: signals; closed when the process exits.
    let (control_done_tx, control_done_rx) = tokio::sync::oneshot::channel::<()>();
    let control_task = control.map(|ws| tokio::spawn(control_loop(ws, pid, control_done_rx)));

    let waited = match job.timeout {
        Some(t) => tokio::time::timeout(t, child.wait()).await,
        None => Ok(child.wait().await),
    };
    let (code, error) = match waited {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            (
                i64::from(
                    status
                        .code()
                        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
                ),
                None,
            )
        }
        Ok(Err(e)) => (-1, Some(format!("cannot wait for command: {e}"))),
        Err(_) => {
            if let Some(pid) = pid {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.wait().await;
            let t = job.timeout.map(format_duration).unwrap_or_default();
            (-1, Some(format!("timed out after {t}")))
        }
    };
    for p in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    stdin_task.abort();
    let _ = control_done_tx.send(());
    if let Some(c) = control_task {
        let _ = tokio::time::timeout(Duration::from_secs(1), c).await;
    }
    drop(stdio_tx);
    finish(&d, change, task, code, error);
}

fn is_end(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("command").and_then(Value::as_str).map(|c| c == "end"))
        .unwrap_or(false)
}

type Reader = Box<dyn AsyncRead + Unpin + Send>;

fn boxed<R: AsyncRead + Unpin + Send + 'static>(r: R) -> Reader {
    Box::new(r)
}

/// A task owning a websocket's sink, fed by a channel; it closes the socket when every
/// sender is gone.
fn writer(mut sink: futures_util::stream::SplitSink<WebSocket, Message>) -> mpsc::Sender<Message> {
    let (tx, mut rx) = mpsc::channel::<Message>(16);
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    });
    tx
}

/// Copies readers into BINARY frames, then sends `{"command":"end"}`.
async fn pump_all(readers: Vec<Option<Reader>>, tx: mpsc::Sender<Message>) {
    let runs = readers.into_iter().flatten().map(|mut r| {
        let tx = tx.clone();
        async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx
                            .send(Message::Binary(buf[..n].to_vec().into()))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        }
    });
    futures_util::future::join_all(runs).await;
    let _ = tx.send(Message::Text(r#"{"command":"end"}"#.into())).await;
}

async fn control_loop(
    mut ws: WebSocket,
    pid: Option<i32>,
    mut done: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut done => {
                let _ = ws.send(Message::Close(None)).await;
                return;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    if v["command"] == "signal" {
                        let name = v["signal"]["name"].as_str().unwrap_or("");
                        if let (Ok(sig), Some(pid)) = (name.parse::<Signal>(), pid) {
                            let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
                        }
                    }
                }
                Some(Ok(Message::Close(_))) => return,
                None | Some(Err(_)) => {
                    // An abnormal control close kills the command (Pebble's rule) unless it
                    // has already finished.
                    if let Some(pid) = pid {
                        if done.try_recv().is_err() {
                            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                        }
                    }
                    return;
                }
                _ => {}
            }
        }
    }
}
