//! Services: spawning, the 1 s okay window, back-off, stopping whole process groups, and
//! the changes the services API returns.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::oneshot;

use crate::daemon::{Daemon, Inner};
use crate::plan::{Service, ServiceAction};
use crate::state::Status;
use crate::users::{resolve_ids, user_env};
use crate::util::now;

const OKAY_DELAY: Duration = Duration::from_secs(1);
const FAIL_DELAY: Duration = Duration::from_secs(5);
const LOG_BYTES: usize = 100 * 1024;

/// A service's process state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvcState {
    /// Inside the okay window.
    Starting,
    /// Up.
    Running,
    /// SIGTERM sent.
    Terminating,
    /// SIGKILL sent.
    Killing,
    /// Stopped.
    Stopped,
    /// Waiting to restart.
    Backoff,
    /// Exited and not restarting.
    Exited,
}

impl SvcState {
    /// The API's `current`.
    pub fn status(self) -> &'static str {
        match self {
            SvcState::Starting | SvcState::Running => "active",
            SvcState::Terminating | SvcState::Killing | SvcState::Stopped => "inactive",
            SvcState::Backoff => "backoff",
            SvcState::Exited => "error",
        }
    }
}

/// Output lines of one service, bounded in bytes.
#[derive(Debug, Default)]
pub struct LogBuffer {
    lines: VecDeque<(OffsetDateTime, String)>,
    bytes: usize,
}

impl LogBuffer {
    fn push(&mut self, line: String) {
        self.bytes += line.len();
        self.lines.push_back((now(), line));
        while self.bytes > LOG_BYTES {
            match self.lines.pop_front() {
                Some((_, l)) => self.bytes -= l.len(),
                None => break,
            }
        }
    }

    /// The buffered lines.
    pub fn lines(&self) -> impl Iterator<Item = &(OffsetDateTime, String)> {
        self.lines.iter()
    }

    fn tail(&self, n: usize) -> Vec<String> {
        let skip = self.lines.len().saturating_sub(n);
        self.lines
            .iter()
            .skip(skip)
            .map(|(_, l)| l.clone())
            .collect()
    }
}

/// What ended a start attempt inside the okay window.
enum StartEnd {
    Exited(i32),
    Stopped,
}

/// One service the daemon has started at least once.
pub struct Svc {
    /// State.
    pub state: SvcState,
    /// When the API status last changed.
    pub since: OffsetDateTime,
    generation: u64,
    pid: Option<i32>,
    /// The config it was started with.
    pub config: Service,
    started: Instant,
    backoff_num: u32,
    backoff: Duration,
    /// Output.
    pub logs: Arc<Mutex<LogBuffer>>,
    start_waiter: Option<oneshot::Sender<StartEnd>>,
    stop_waiters: Vec<oneshot::Sender<()>>,
}

impl Svc {
    fn set_state(&mut self, state: SvcState) {
        if state.status() != self.state.status() {
            self.since = now();
        }
        self.state = state;
    }

    /// The main process id while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Spawns the service's process (state and generation updated by the caller's lock).
fn spawn(d: &Arc<Daemon>, inner: &mut Inner, name: &str, running: bool) -> Result<(), String> {
    let config = inner
        .plan
        .combined
        .services
        .get(name)
        .cloned()
        .ok_or_else(|| format!("service {name:?} does not exist"))?;
    let argv = config.argv()?;
    let Some(program) = argv.first() else {
        return Err("empty command".into());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&argv[1..]);
    let ids = resolve_ids(
        config.user_id,
        config.user.as_deref(),
        config.group_id,
        config.group.as_deref(),
    )?;
    cmd.envs(&config.environment);
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
        for (k, v) in user_env(uid) {
            if !config.environment.contains_key(&k) {
                cmd.env(k, v);
            }
        }
    }
    if let Some(dir) = &config.working_dir {
        cmd.current_dir(dir);
    }
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let pid = child.id().map(|p| p as i32);
    let logs = match inner.services.get(name) {
        Some(s) => s.logs.clone(),
        None => Arc::new(Mutex::new(LogBuffer::default())),
    };
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, name.to_string(), logs.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, name.to_string(), logs.clone()));
    }
    let state = if running {
        SvcState::Running
    } else {
        SvcState::Starting
    };
    let svc = inner
        .services
        .entry(name.to_string())
        .or_insert_with(|| Svc {
            state: SvcState::Stopped,
            since: now(),
            generation: 0,
            pid: None,
            config: config.clone(),
            started: Instant::now(),
            backoff_num: 0,
            backoff: Duration::ZERO,
            logs,
            start_waiter: None,
            stop_waiters: Vec::new(),
        });
    svc.generation += 1;
    svc.pid = pid;
    svc.config = config;
    svc.started = Instant::now();
    svc.set_state(state);
    let generation = svc.generation;
    let d = d.clone();
    let name = name.to_string();
    tokio::spawn(async move {
        let status = child.wait().await;
        let code = status.map(exit_code).unwrap_or(-1);
        on_exit(&d, &name, generation, code);
    });
    Ok(())
}

async fn pump(stream: impl AsyncRead + Unpin, name: String, logs: Arc<Mutex<LogBuffer>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        println!("{} [{name}] {line}", crate::util::rfc3339(now()));
        logs.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }
}

fn on_exit(d: &Arc<Daemon>, name: &str, generation: u64, code: i32) {
    let mut inner = d.lock();
    let Some(svc) = inner.services.get_mut(name) else {
        return;
    };
    if svc.generation != generation {
        return;
    }
    svc.pid = None;
    match svc.state {
        SvcState::Terminating | SvcState::Killing => {
            svc.set_state(SvcState::Stopped);
            for w in svc.stop_waiters.drain(..) {
                let _ = w.send(());
            }
        }
        SvcState::Starting => {
            if let Some(w) = svc.start_waiter.take() {
                let _ = w.send(StartEnd::Exited(code));
            }
            exited(d, &mut inner, name, code);
        }
        SvcState::Running => exited(d, &mut inner, name, code),
        _ => {}
    }
    drop(inner);
    d.bump();
}

/// The action a service takes on exiting with `code`.
fn exit_action(config: &Service, code: i32) -> ServiceAction {
    if code == 0 {
        config.on_success.unwrap_or(ServiceAction::Restart)
    } else {
        config.on_failure.unwrap_or(ServiceAction::Restart)
    }
}

fn action_verb(action: ServiceAction) -> &'static str {
    match action {
        ServiceAction::Restart => "restart",
        ServiceAction::Ignore => "do nothing",
        _ => "shut down",
    }
}

fn exited(d: &Arc<Daemon>, inner: &mut Inner, name: &str, code: i32) {
    let Some(svc) = inner.services.get_mut(name) else {
        return;
    };
    let action = exit_action(&svc.config, code);
    eprintln!("Service {name:?} stopped unexpectedly with code {code}");
    match action {
        ServiceAction::Restart => backoff(d, svc, name),
        ServiceAction::Ignore => svc.set_state(if code == 0 {
            SvcState::Stopped
        } else {
            SvcState::Exited
        }),
        ServiceAction::Shutdown => {
            svc.set_state(SvcState::Exited);
            let _ = d.exit.send(Some(if code == 0 { 0 } else { 10 }));
        }
        ServiceAction::SuccessShutdown => {
            svc.set_state(SvcState::Exited);
            let _ = d.exit.send(Some(0));
        }
        ServiceAction::FailureShutdown => {
            svc.set_state(SvcState::Exited);
            let _ = d.exit.send(Some(10));
        }
    }
}

/// Puts a service into back-off and schedules its restart.
fn backoff(d: &Arc<Daemon>, svc: &mut Svc, name: &str) {
    let config = &svc.config;
    if svc.started.elapsed() >= config.backoff_limit() {
        svc.backoff_num = 0;
    }
    let delay = if svc.backoff_num == 0 {
        config.backoff_delay()
    } else {
        svc.backoff
            .mul_f64(config.backoff_factor())
            .min(config.backoff_limit())
    };
    svc.backoff_num += 1;
    svc.backoff = delay;
    let jitter = delay.mul_f64(rand::random::<f64>() * 0.1);
    svc.set_state(SvcState::Backoff);
    svc.generation += 1;
    let generation = svc.generation;
    eprintln!("Service {name:?} on-exit action is restart, waiting ~{delay:?} before restart (backoff {})", svc.backoff_num);
    let d = d.clone();
    let name = name.to_string();
    tokio::spawn(async move {
        tokio::time::sleep(delay + jitter).await;
        let mut inner = d.lock();
        let current = inner.services.get(&name).map(|s| (s.state, s.generation));
        if current != Some((SvcState::Backoff, generation)) {
            return;
        }
        if let Err(e) = spawn(&d, &mut inner, &name, true) {
            eprintln!("Cannot restart service {name:?}: {e}");
            if let Some(svc) = inner.services.get_mut(&name) {
                svc.set_state(SvcState::Exited);
            }
        }
        drop(inner);
        d.bump();
    });
}

/// Starts one service, waiting out the okay window. `Ok(Some(msg))` is an INFO log line.
pub async fn start(d: &Arc<Daemon>, name: &str) -> Result<Option<String>, String> {
    let rx = {
        let mut inner = d.lock();
        if !inner.plan.combined.services.contains_key(name) {
            return Err(format!("service {name:?} does not exist"));
        }
        if let Some(svc) = inner.services.get_mut(name) {
            match svc.state {
                SvcState::Starting | SvcState::Running => {
                    return Ok(Some(format!("Service {name:?} already started.")))
                }
                SvcState::Terminating | SvcState::Killing => {
                    return Err(format!("cannot start service while {}", "terminating"))
                }
                _ => {
                    svc.backoff_num = 0;
                    svc.generation += 1;
                }
            }
        }
        if let Err(e) = spawn(d, &mut inner, name, false) {
            if let Some(svc) = inner.services.get_mut(name) {
                svc.set_state(SvcState::Stopped);
            }
            return Err(format!("cannot start service: {e}"));
        }
        let (tx, rx) = oneshot::channel();
        if let Some(svc) = inner.services.get_mut(name) {
            svc.start_waiter = Some(tx);
        }
        rx
    };
    d.bump();
    tokio::select! {
        _ = tokio::time::sleep(OKAY_DELAY) => {
            let mut inner = d.lock();
            if let Some(svc) = inner.services.get_mut(name) {
                svc.start_waiter = None;
                if svc.state == SvcState::Starting {
                    svc.set_state(SvcState::Running);
                }
            }
            drop(inner);
            d.bump();
            Ok(None)
        }
        end = rx => match end {
            Ok(StartEnd::Exited(code)) => {
                let inner = d.lock();
                let (action, output) = inner.services.get(name).map(|s| {
                    let logs = s.logs.lock().unwrap_or_else(|p| p.into_inner()).tail(20);
                    (exit_action(&s.config, code), logs)
                }).unwrap_or((ServiceAction::Restart, Vec::new()));
                let mut msg = format!(
                    "service start attempt: exited quickly with code {code}, will {}",
                    action_verb(action)
                );
                if !output.is_empty() {
                    msg.push_str(&format!("\nMost recent service output:\n    {}", output.join("\n    ")));
                }
                Err(msg)
            }
            Ok(StartEnd::Stopped) => Err("stopped before the 1s okay delay".into()),
            Err(_) => Ok(None),
        }
    }
}

/// Stops one service: SIGTERM to its group, SIGKILL after kill-delay.
pub async fn stop(d: &Arc<Daemon>, name: &str) -> Result<Option<String>, String> {
    let (rx, kill_delay) = {
        let mut inner = d.lock();
        let Some(svc) = inner.services.get_mut(name) else {
            return Ok(Some(format!("Service {name:?} has never been started.")));
        };
        match svc.state {
            SvcState::Stopped => return Ok(Some(format!("Service {name:?} already stopped."))),
            SvcState::Terminating | SvcState::Killing => {}
            SvcState::Backoff | SvcState::Exited => {
                svc.generation += 1;
                svc.set_state(SvcState::Stopped);
                drop(inner);
                d.bump();
                return Ok(None);
            }
            SvcState::Starting | SvcState::Running => {
                if let Some(w) = svc.start_waiter.take() {
                    let _ = w.send(StartEnd::Stopped);
                }
                if let Some(pid) = svc.pid {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
                }
                svc.set_state(SvcState::Terminating);
                let generation = svc.generation;
                let delay = svc.config.kill_delay();
                let d2 = d.clone();
                let n = name.to_string();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let mut inner = d2.lock();
                    if let Some(svc) = inner.services.get_mut(&n) {
                        if svc.generation == generation && svc.state == SvcState::Terminating {
                            if let Some(pid) = svc.pid {
                                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                            }
                            svc.set_state(SvcState::Killing);
                        }
                    }
                });
            }
        }
        let (tx, rx) = oneshot::channel();
        svc.stop_waiters.push(tx);
        (rx, svc.config.kill_delay())
    };
    d.bump();
    match tokio::time::timeout(kill_delay + FAIL_DELAY, rx).await {
        Ok(_) => Ok(None),
        Err(_) => {
            Err("cannot stop service: process still running after SIGTERM and SIGKILL".into())
        }
    }
}

/// Sends a signal to a service's main process.
pub fn signal(d: &Arc<Daemon>, name: &str, sig: Signal) -> Result<(), String> {
    let inner = d.lock();
    let pid = inner
        .services
        .get(name)
        .filter(|s| matches!(s.state, SvcState::Starting | SvcState::Running))
        .and_then(|s| s.pid);
    match pid {
        Some(pid) => nix::sys::signal::kill(Pid::from_raw(pid), sig)
            .map_err(|e| format!("cannot send signal to {name:?}: {e}")),
        None => Err(format!(
            "cannot send signal to {name:?}: service is not running"
        )),
    }
}

/// A check's failure asks a service to restart (on-check-failure: restart).
pub async fn restart_for_check(d: &Arc<Daemon>, name: &str) {
    let running = d
        .lock()
        .services
        .get(name)
        .is_some_and(|s| matches!(s.state, SvcState::Starting | SvcState::Running));
    if running {
        let _ = stop(d, name).await;
    }
    let mut inner = d.lock();
    let dd = d.clone();
    if let Some(svc) = inner.services.get_mut(name) {
        if matches!(svc.state, SvcState::Stopped | SvcState::Exited) {
            backoff(&dd, svc, name);
        }
    }
}

/// The kinds of service requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start.
    Start,
    /// Stop.
    Stop,
    /// Restart.
    Restart,
    /// Start the default services.
    Autostart,
    /// Bring processes in line with the plan.
    Replan,
}

impl Action {
    /// Parses the API's action name.
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "start" => Action::Start,
            "stop" => Action::Stop,
            "restart" => Action::Restart,
            "autostart" => Action::Autostart,
            "replan" => Action::Replan,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Autostart => "autostart",
            Action::Replan => "replan",
        }
    }
}

fn summary(verb: &str, names: &[String]) -> String {
    match names {
        [] => format!("{verb} - no services"),
        [one] => format!("{verb} service {one:?}"),
        [first, rest @ ..] => format!("{verb} service {first:?} and {} more", rest.len()),
    }
}

/// Creates the change for a services request and runs it in the background.
/// Errors are the API's 400 messages.
pub fn request(
    d: &Arc<Daemon>,
    action: Action,
    names: &[String],
) -> Result<u64, (String, Option<&'static str>)> {
    let mut inner = d.lock();
    let plan = inner.plan.clone();
    let fail =
        |e: crate::plan::FormatError| (format!("cannot {} services: {e}", action.name()), None);
    let is_active = |inner: &Inner, n: &str| {
        inner
            .services
            .get(n)
            .is_some_and(|s| matches!(s.state, SvcState::Starting | SvcState::Running))
    };
    let enabled: Vec<String> = plan
        .combined
        .services
        .iter()
        .filter(|(_, s)| s.startup() == crate::plan::Startup::Enabled)
        .map(|(n, _)| n.clone())
        .collect();
    let (stops, starts, verb) = match action {
        Action::Start => (Vec::new(), plan.start_order(names).map_err(fail)?, "Start"),
        Action::Stop => (plan.stop_order(names).map_err(fail)?, Vec::new(), "Stop"),
        Action::Restart => {
            let stops: Vec<String> = plan
                .stop_order(names)
                .map_err(fail)?
                .into_iter()
                .filter(|n| is_active(&inner, n))
                .collect();
            (stops, plan.start_order(names).map_err(fail)?, "Restart")
        }
        Action::Autostart => {
            if enabled.is_empty() {
                return Err(("no default services".into(), Some("no-default-services")));
            }
            (
                Vec::new(),
                plan.start_order(&enabled).map_err(fail)?,
                "Autostart",
            )
        }
        Action::Replan => {
            let mut stale: Vec<String> = inner
                .services
                .iter()
                .filter(|(n, s)| {
                    matches!(
                        s.state,
                        SvcState::Starting | SvcState::Running | SvcState::Backoff
                    ) && plan.combined.services.get(*n) != Some(&s.config)
                })
                .map(|(n, _)| n.clone())
                .collect();
            let gone: Vec<String> = stale
                .iter()
                .filter(|n| !plan.combined.services.contains_key(*n))
                .cloned()
                .collect();
            stale.retain(|n| plan.combined.services.contains_key(n));
            let mut stops = plan.stop_order(&stale).map_err(fail)?;
            stops.extend(gone);
            stops.retain(|n| {
                inner
                    .services
                    .get(n)
                    .is_some_and(|s| s.state != SvcState::Stopped)
            });
            let mut want = enabled.clone();
            want.extend(stale.iter().cloned());
            let starts: Vec<String> = plan
                .start_order(&want)
                .map_err(fail)?
                .into_iter()
                .filter(|n| stops.contains(n) || !is_active(&inner, n))
                .collect();
            (stops, starts, "Replan")
        }
    };
    let mut all: Vec<String> = stops.clone();
    for s in &starts {
        if !all.contains(s) {
            all.push(s.clone());
        }
    }
    let mut tasks: Vec<(String, String)> = stops
        .iter()
        .map(|n| ("stop".to_string(), format!("Stop service {n:?}")))
        .collect();
    tasks.extend(
        starts
            .iter()
            .map(|n| ("start".to_string(), format!("Start service {n:?}"))),
    );
    let mut data = Map::new();
    data.insert("service-names".into(), json!(all));
    let (id, task_ids) = inner
        .state
        .new_change(action.name(), &summary(verb, &all), &tasks, data);
    if matches!(action, Action::Replan) {
        crate::checks::replan(d, &mut inner);
    }
    drop(inner);
    d.bump();
    let stop_tasks: Vec<(u64, String)> = task_ids.iter().copied().zip(stops).collect();
    let start_tasks: Vec<(u64, String)> = task_ids[stop_tasks.len()..]
        .iter()
        .copied()
        .zip(starts)
        .collect();
    let lanes: Vec<Vec<(u64, String)>> = plan
        .lanes(
            &start_tasks
                .iter()
                .map(|(_, n)| n.clone())
                .collect::<Vec<_>>(),
        )
        .into_iter()
        .map(|lane| {
            lane.into_iter()
                .filter_map(|n| start_tasks.iter().find(|(_, s)| *s == n).cloned())
                .collect()
        })
        .collect();
    let d = d.clone();
    tokio::spawn(async move {
        let mut ok = true;
        for (task, name) in &stop_tasks {
            ok &= run_task(&d, id, *task, name, false, !ok).await;
        }
        let runs = lanes.into_iter().map(|lane| {
            let d = d.clone();
            let held = !ok;
            async move {
                let mut failed = held;
                for (task, name) in lane {
                    failed = !run_task(&d, id, task, &name, true, failed).await || failed;
                }
            }
        });
        futures_util::future::join_all(runs).await;
    });
    Ok(id)
}

async fn run_task(
    d: &Arc<Daemon>,
    change: u64,
    task: u64,
    name: &str,
    start_it: bool,
    hold: bool,
) -> bool {
    if hold {
        d.lock().state.set_status(change, task, Status::Hold);
        d.bump();
        return false;
    }
    d.lock().state.set_status(change, task, Status::Doing);
    d.bump();
    let result = if start_it {
        start(d, name).await
    } else {
        stop(d, name).await
    };
    let mut inner = d.lock();
    let ok = match result {
        Ok(info) => {
            if let Some(info) = info {
                inner.state.log(change, task, "INFO", &info);
            }
            inner.state.set_status(change, task, Status::Done);
            true
        }
        Err(e) => {
            // Pebble logs the service's last output apart from the error itself, so that the
            // change's `err` carries only the reason.
            let (reason, output) = match e.split_once("\nMost recent service output:") {
                Some((r, o)) => (
                    r.to_string(),
                    Some(format!("Most recent service output:{o}")),
                ),
                None => (e, None),
            };
            if let Some(output) = output {
                inner.state.log(change, task, "INFO", &output);
            }
            inner.state.log(change, task, "ERROR", &reason);
            inner.state.set_status(change, task, Status::Error);
            false
        }
    };
    drop(inner);
    d.bump();
    ok
}

/// The API view of services, sorted by name.
pub fn list(d: &Arc<Daemon>, names: &[String]) -> Value {
    let inner = d.lock();
    let mut out = Vec::new();
    for (name, config) in &inner.plan.combined.services {
        if !names.is_empty() && !names.contains(name) {
            continue;
        }
        let startup = match config.startup() {
            crate::plan::Startup::Enabled => "enabled",
            crate::plan::Startup::Disabled => "disabled",
        };
        let mut entry = json!({"name": name, "startup": startup, "current": "inactive"});
        if let Some(svc) = inner.services.get(name) {
            entry["current"] = json!(svc.state.status());
            entry["current-since"] = json!(crate::util::rfc3339(svc.since));
        }
        out.push(entry);
    }
    Value::Array(out)
}

/// Stops every service (daemon shutdown).
pub async fn stop_all(d: &Arc<Daemon>) {
    let names: Vec<String> = d.lock().services.keys().cloned().collect();
    let stops = names.iter().map(|n| stop(d, n));
    futures_util::future::join_all(stops).await;
}
