//! Health checks: perform-check and recover-check changes, thresholds, and the
//! on-check-failure actions of services.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::daemon::{Daemon, Inner};
use crate::plan::{Check, ServiceAction, Startup};
use crate::state::Status;

/// One check's runtime record.
pub struct CheckRun {
    /// The config it runs with.
    pub config: Check,
    /// Successes since the last failure streak.
    pub successes: u64,
    /// Consecutive failures.
    pub failures: u32,
    /// Current change (perform-check or recover-check).
    pub change_id: Option<u64>,
    /// Previous change.
    pub prev_change_id: Option<u64>,
    /// Running (false = stopped: status inactive).
    pub active: bool,
    generation: u64,
}

/// Starts, restarts or stops check runners to match the plan (on replan and startup).
pub fn replan(d: &Arc<Daemon>, inner: &mut Inner) {
    let plan = inner.plan.combined.checks.clone();
    inner.checks.retain(|name, run| {
        if plan.get(name) == Some(&run.config) {
            true
        } else {
            run.generation += 1;
            false
        }
    });
    for (name, config) in plan {
        if inner.checks.contains_key(&name) {
            continue;
        }
        let active = config.startup() == Startup::Enabled;
        inner.checks.insert(
            name.clone(),
            CheckRun {
                config,
                successes: 0,
                failures: 0,
                change_id: None,
                prev_change_id: None,
                active,
                generation: 0,
            },
        );
        if active {
            launch(d, inner, &name);
        }
    }
}

/// Starts or stops named checks; returns the ones that changed.
pub fn set_active(d: &Arc<Daemon>, names: &[String], active: bool) -> Result<Vec<String>, String> {
    let mut inner = d.lock();
    for n in names {
        if !inner.plan.combined.checks.contains_key(n) {
            return Err(format!("cannot find check {n:?}"));
        }
    }
    if inner.checks.len() != inner.plan.combined.checks.len() {
        replan(d, &mut inner);
    }
    let mut changed = Vec::new();
    for n in names {
        let Some(run) = inner.checks.get_mut(n) else {
            continue;
        };
        if run.active == active {
            continue;
        }
        run.active = active;
        run.generation += 1;
        run.failures = 0;
        changed.push(n.clone());
        if active {
            launch(d, &mut inner, n);
        } else if let Some(run) = inner.checks.get_mut(n) {
            if let Some(id) = run.change_id.take() {
                run.prev_change_id = Some(id);
                finish_change(&mut inner, id, Status::Done);
            }
        }
    }
    changed.sort();
    Ok(changed)
}

fn finish_change(inner: &mut Inner, id: u64, status: Status) {
    let tasks: Vec<u64> = inner
        .state
        .changes
        .get(&id)
        .map(|c| {
            c.tasks
                .iter()
                .filter(|t| !t.status.ready())
                .map(|t| t.id)
                .collect()
        })
        .unwrap_or_default();
    for t in tasks {
        inner.state.set_status(id, t, status);
    }
}

fn new_check_change(inner: &mut Inner, name: &str, recover: bool) -> Option<(u64, u64)> {
    let run = inner.checks.get(name)?;
    let kind = if recover {
        "recover-check"
    } else {
        "perform-check"
    };
    let verb = if recover { "Recover" } else { "Perform" };
    let summary = format!("{verb} {} check {name:?}", run.config.kind());
    let mut data = Map::new();
    data.insert("check-name".into(), json!(name));
    let (id, tasks) =
        inner
            .state
            .new_change(kind, &summary, &[(kind.to_string(), summary.clone())], data);
    let task = *tasks.first()?;
    inner.state.set_status(id, task, Status::Doing);
    let run = inner.checks.get_mut(name)?;
    run.prev_change_id = run.change_id.replace(id);
    Some((id, task))
}

fn launch(d: &Arc<Daemon>, inner: &mut Inner, name: &str) {
    let Some(run) = inner.checks.get_mut(name) else {
        return;
    };
    run.generation += 1;
    let generation = run.generation;
    if new_check_change(inner, name, false).is_none() {
        return;
    }
    let d = d.clone();
    let name = name.to_string();
    tokio::spawn(async move { runner(d, name, generation).await });
}

async fn runner(d: Arc<Daemon>, name: String, generation: u64) {
    loop {
        let Some(config) = current(&d, &name, generation) else {
            return;
        };
        tokio::time::sleep(config.period()).await;
        if current(&d, &name, generation).is_none() {
            return;
        }
        let result = tokio::time::timeout(config.timeout(), perform(&d, &config))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "check timed out after {}",
                    crate::util::format_duration(config.timeout())
                ))
            });
        let mut inner = d.lock();
        let Some(run) = inner.checks.get_mut(&name) else {
            return;
        };
        if run.generation != generation {
            return;
        }
        let Some(change) = run.change_id else { return };
        let task = inner
            .state
            .changes
            .get(&change)
            .and_then(|c| c.tasks.first())
            .map(|t| (t.id, t.kind.clone()));
        let Some((task, kind)) = task else { return };
        let Some(run) = inner.checks.get_mut(&name) else {
            return;
        };
        let threshold = run.config.threshold();
        let mut failed_now = false;
        match result {
            Ok(()) => {
                run.successes += 1;
                run.failures = 0;
                if kind == "recover-check" {
                    inner.state.set_status(change, task, Status::Done);
                    new_check_change(&mut inner, &name, false);
                }
            }
            Err(e) => {
                run.failures += 1;
                let failures = run.failures;
                if kind == "perform-check" && failures >= threshold {
                    inner.state.log(change, task, "ERROR", &e);
                    inner.state.set_status(change, task, Status::Error);
                    new_check_change(&mut inner, &name, true);
                    failed_now = true;
                } else {
                    let msg = format!("{e} (failure {failures}/{threshold})");
                    inner.state.log(change, task, "WARNING", &msg);
                }
            }
        }
        let actions: Vec<(String, ServiceAction)> = if failed_now {
            inner
                .plan
                .combined
                .services
                .iter()
                .filter_map(|(s, cfg)| cfg.on_check_failure.get(&name).map(|a| (s.clone(), *a)))
                .collect()
        } else {
            Vec::new()
        };
        drop(inner);
        d.bump();
        for (service, action) in actions {
            match action {
                ServiceAction::Restart => {
                    let d = d.clone();
                    tokio::spawn(
                        async move { crate::services::restart_for_check(&d, &service).await },
                    );
                }
                ServiceAction::Shutdown | ServiceAction::FailureShutdown => {
                    let _ = d.exit.send(Some(11));
                }
                ServiceAction::SuccessShutdown => {
                    let _ = d.exit.send(Some(0));
                }
                ServiceAction::Ignore => {}
            }
        }
    }
}

fn current(d: &Arc<Daemon>, name: &str, generation: u64) -> Option<Check> {
    let inner = d.lock();
    let run = inner.checks.get(name)?;
    (run.generation == generation && run.active).then(|| run.config.clone())
}

async fn perform(d: &Arc<Daemon>, check: &Check) -> Result<(), String> {
    if let Some(http) = &check.http {
        return http_check(http.url.as_deref().unwrap_or(""), &http.headers).await;
    }
    if let Some(tcp) = &check.tcp {
        let host = tcp.host.as_deref().unwrap_or("localhost");
        let port = tcp.port.unwrap_or(0);
        return TcpStream::connect((host, port))
            .await
            .map(|_| ())
            .map_err(|e| format!("dial tcp {host}:{port}: {e}"));
    }
    if let Some(exec) = &check.exec {
        let argv = crate::util::shlex_split(exec.command.as_deref().unwrap_or(""))?;
        let Some(program) = argv.first() else {
            return Err("empty command".into());
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&argv[1..]);
        let mut env = std::collections::BTreeMap::new();
        let (mut user_id, mut user, mut group_id, mut group, mut dir) = (
            exec.user_id,
            exec.user.clone(),
            exec.group_id,
            exec.group.clone(),
            exec.working_dir.clone(),
        );
        if let Some(ctx) = &exec.service_context {
            let inner = d.lock();
            if let Some(svc) = inner.plan.combined.services.get(ctx) {
                env.extend(svc.environment.clone());
                user_id = user_id.or(svc.user_id);
                user = user.or(svc.user.clone());
                group_id = group_id.or(svc.group_id);
                group = group.or(svc.group.clone());
                dir = dir.or(svc.working_dir.clone());
            }
        }
        env.extend(exec.environment.clone());
        cmd.envs(&env);
        if let Some((uid, gid)) =
            crate::users::resolve_ids(user_id, user.as_deref(), group_id, group.as_deref())?
        {
            cmd.uid(uid).gid(gid);
        }
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
        let out = cmd
            .output()
            .await
            .map_err(|e| format!("cannot run {program:?}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&out.stdout).to_string();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "exit status {}; {}",
            out.status.code().unwrap_or(-1),
            tail.join("; ")
        ));
    }
    Err("check has no type".into())
}

/// A plain-HTTP GET expecting a 2xx answer.
async fn http_check(
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("unsupported URL {url:?} (Ward's checks speak plain http)"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut stream = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("Get {url:?}: {e}"))?;
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: pebble\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| format!("Get {url:?}: {e}"))?;
    let mut buf = vec![0u8; 1024];
    let mut got = 0;
    while got < buf.len() {
        let n = stream
            .read(&mut buf[got..])
            .await
            .map_err(|e| format!("Get {url:?}: {e}"))?;
        if n == 0 {
            break;
        }
        got += n;
        if buf[..got].windows(2).any(|w| w == b"\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..got]);
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Get {url:?}: malformed HTTP response"))?;
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(format!("non-20x status code {code}"))
    }
}

/// The API view of checks.
pub fn list(d: &Arc<Daemon>, level: Option<&str>, names: &[String]) -> Value {
    // Checks are registered on replan; plan checks not yet replanned are listed as inactive.
    let mut inner = d.lock();
    let mut out = Vec::new();
    let plan = inner.plan.combined.checks.clone();
    for (name, config) in &plan {
        if !names.is_empty() && !names.contains(name) {
            continue;
        }
        let lvl = config.level.map(|l| l.as_str());
        if let Some(want) = level {
            if lvl != Some(want) {
                continue;
            }
        }
        let run = inner.checks.get_mut(name);
        let (status, successes, failures, change, prev) = match run {
            Some(r) if r.active => (
                if r.failures >= r.config.threshold() {
                    "down"
                } else {
                    "up"
                },
                r.successes,
                r.failures,
                r.change_id,
                r.prev_change_id,
            ),
            Some(r) => (
                "inactive",
                r.successes,
                r.failures,
                r.change_id,
                r.prev_change_id,
            ),
            None => ("inactive", 0, 0, None, None),
        };
        let mut entry = json!({
            "name": name,
            "startup": if config.startup() == Startup::Enabled { "enabled" } else { "disabled" },
            "status": status,
            "successes": successes,
            "threshold": config.threshold(),
        });
        if let Some(l) = lvl {
            entry["level"] = json!(l);
        }
        if failures > 0 {
            entry["failures"] = json!(failures);
        }
        if let Some(c) = change {
            entry["change-id"] = json!(c.to_string());
        }
        if let Some(c) = prev {
            entry["prev-change-id"] = json!(c.to_string());
        }
        out.push(entry);
    }
    Value::Array(out)
}

/// Health: false when any matching active check is down. `ready` also counts alive checks.
pub fn healthy(d: &Arc<Daemon>, level: Option<&str>, names: &[String]) -> bool {
    let inner = d.lock();
    inner.checks.iter().all(|(name, run)| {
        if !names.is_empty() && !names.contains(name) {
            return true;
        }
        let lvl = run.config.level.map(|l| l.as_str());
        let counted = match level {
            None => true,
            Some("alive") => lvl == Some("alive"),
            Some(_) => matches!(lvl, Some("alive") | Some("ready") | None),
        };
        !(counted && run.active && run.failures >= run.config.threshold())
    })
}
