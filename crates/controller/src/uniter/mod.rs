//! The uniter: one loop per unit. Each turn reads the remote state from the
//! store, asks [`state::next_hook`] what to run, runs it through the
//! substrate with a fresh hook context, and commits the hook's buffered
//! changes together with the advanced local state in one transaction.

pub mod state;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use tracing::Instrument;

use crate::context::{ActionState, HookContext};
use crate::controller::Inner;
use crate::hook::{Hook, HookKind};
use crate::store::{self, StoreError};
use crate::substrate::{unit_tag, HookInvocation, UnitPlacement};
use state::{advance, next_hook, next_wakeup, FailedHook, LocalState, RemoteState, Resolved};

/// Task name of `Controller::exec` commands (not a charm action).
pub const EXEC_TASK: &str = "juju-exec";

/// Run the uniter of `unit` until the unit is removed or `stop` turns true.
pub(crate) async fn run_unit(inner: Arc<Inner>, unit: String, mut stop: watch::Receiver<bool>) {
    let span = tracing::info_span!("uniter", unit = %unit);
    async move {
        if let Err(e) = unit_loop(&inner, &unit, &mut stop).await {
            tracing::error!(error = %e, "uniter stopped");
        }
    }
    .instrument(span)
    .await
}

fn placement(inner: &Inner, unit: &str) -> Result<Option<UnitPlacement>, StoreError> {
    let Some(u) = inner.store.read(|c| store::unit(c, unit))? else {
        return Ok(None);
    };
    let ch = inner.store.read(|c| store::app_charm(c, &u.app))?;
    inner
        .substrate
        .provision(unit, &u.address, &ch.path)
        .map(Some)
        .map_err(|source| StoreError::Io {
            path: ch.path.clone(),
            source,
        })
}

/// How often a unit with workload containers looks for new Pebble custom notices.
const NOTICE_POLL_MS: u64 = 1000;

async fn unit_loop(
    inner: &Arc<Inner>,
    unit: &str,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let app = unit.split('/').next().unwrap_or("").to_string();
    let mut rx = inner.subscribe(&app);
    let Some(place) = placement(inner, unit)? else {
        return Ok(());
    };
    let mut local = inner.store.read(|c| store::uniter_state(c, unit))?;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        rx.borrow_and_update();
        let now = inner.clock.now_ms();
        let ready = inner.substrate.ready_containers(&place);
        let Some(mut remote) = inner
            .store
            .read(|c| store::remote_state(c, unit, now, &ready))?
        else {
            let _ = inner.substrate.teardown(&place);
            return Ok(());
        };
        if !ready.is_empty() {
            remote.notices = inner.substrate.custom_notices(&place);
        }
        if let (Some(f), Resolved::NoRetry) = (&local.error, remote.resolved) {
            // `resolved --no-retry`: the failed hook counts as done, with no changes.
            let next = advance(&local, &f.hook, &remote);
            inner.store.write(|tx| {
                store::save_uniter_state(tx, unit, &next)?;
                store::set_resolved(tx, unit, Resolved::None)?;
                store::set_status(tx, &format!("agent:{unit}"), "idle", "", &Value::Null, now)
            })?;
            local = next;
            continue;
        }
        match next_hook(&remote, &local) {
            Some(hook) => {
                let removed = matches!(hook.kind, HookKind::Remove);
                let run = run_hook(inner, unit, &app, &place, hook, &remote, &local);
                tokio::select! {
                    r = run => local = r?,
                    _ = stop.changed() => return Ok(()),
                }
                if removed && local.removed {
                    let _ = inner.substrate.teardown(&place);
                    return Ok(());
                }
            }
            None => {
                // Look again at the next timer, and at least hourly.
                let mut wake = next_wakeup(&remote, &local)
                    .map(|t| t.saturating_sub(now).clamp(0, 3_600_000) as u64 + 5)
                    .unwrap_or(3_600_000);
                if inner.substrate.awaiting_containers(&place) {
                    // A workload's Pebble is still starting: look again soon for pebble-ready.
                    wake = wake.min(100);
                } else if !ready.is_empty() {
                    // Look for new custom notices in the workloads' Pebble every second.
                    wake = wake.min(NOTICE_POLL_MS);
                }
                let sleep = tokio::time::sleep(Duration::from_millis(wake));
                inner.set_idle(unit, true);
                tokio::select! {
                    _ = rx.changed() => {}
                    _ = sleep => {}
                    _ = stop.changed() => {}
                }
                inner.set_idle(unit, false);
            }
        }
    }
}

fn new_context_id(unit: &str, hook: &Hook) -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{unit}-{}-{n}", hook.name())
}

fn socket_path(inner: &Inner, place: &UnitPlacement) -> std::path::PathBuf {
    let p = place.dir.join("agent.socket");
    if p.as_os_str().len() < 100 {
        return p;
    }
    use sha2::Digest;
    let h = sha2::Sha256::digest(inner.cfg.home.as_os_str().as_encoded_bytes());
    let dir = std::env::temp_dir().join(&format!("ward-{:x}", h)[..16]);
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("{}.socket", unit_tag(&place.unit)))
}

fn hook_program(place: &UnitPlacement, hook: &Hook) -> Option<std::path::PathBuf> {
    let d = place.charm_dir.join("dispatch");
    if d.is_file() {
        return Some(d);
    }
    let p = place.charm_dir.join(hook.dispatch_path());
    p.is_file().then_some(p)
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site; splitting hides the hook's flow"
)]
async fn run_hook(
    inner: &Arc<Inner>,
    unit: &str,
    app: &str,
    place: &UnitPlacement,
    hook: Hook,
    remote: &RemoteState,
    local: &LocalState,
) -> Result<LocalState, StoreError> {
    let _permit = inner.hook_slots.acquire().await.ok();
    let name = hook.name();
    let span = tracing::info_span!("hook", hook = %name, relation = hook.relation().map(|r| r.id));
    let st = &inner.store;
    let now = inner.clock.now_ms();
    let ch = st.read(|c| store::app_charm(c, app))?;
    // Statuses the uniter sets itself, before the hook.
    st.write(|tx| {
        let w = store::status(tx, &format!("unit:{unit}"))?;
        match &hook.kind {
            HookKind::Install if w.status == "waiting" || w.status == "unknown" => {
                store::set_status(
                    tx,
                    &format!("unit:{unit}"),
                    "maintenance",
                    "installing charm software",
                    &Value::Null,
                    now,
                )?
            }
            HookKind::Stop => store::set_status(
                tx,
                &format!("unit:{unit}"),
                "maintenance",
                "stopping charm software",
                &Value::Null,
                now,
            )?,
            HookKind::Remove => store::set_status(
                tx,
                &format!("unit:{unit}"),
                "maintenance",
                "cleaning up prior to charm deletion",
                &Value::Null,
                now,
            )?,
            _ => {}
        }
        if let HookKind::Action { id, .. } = &hook.kind {
            store::start_task(tx, *id, now)?;
            store::set_status(
                tx,
                &format!("agent:{unit}"),
                "executing",
                &format!("running action {name}"),
                &Value::Null,
                now,
            )?;
        } else if !matches!(hook.kind, HookKind::UpdateStatus) {
            store::set_status(
                tx,
                &format!("agent:{unit}"),
                "executing",
                &format!("running {name} hook"),
                &Value::Null,
                now,
            )?;
        }
        Ok(())
    })?;
    if let HookKind::UpgradeCharm = hook.kind {
        inner
            .substrate
            .refresh_charm(place, &ch.path)
            .map_err(|source| StoreError::Io {
                path: ch.path.clone(),
                source,
            })?;
    }
    let action = match &hook.kind {
        HookKind::Action { id, .. } => {
            let t = st
                .read(|c| store::task(c, *id))?
                .ok_or_else(|| StoreError::NotFound(format!("task {id}")))?;
            Some(ActionState {
                id: *id,
                params: t.params,
                ..Default::default()
            })
        }
        _ => None,
    };
    // Filesystem storage lives in the unit's directory on this substrate.
    let mut storage = std::collections::BTreeMap::new();
    for (id, _name, kind) in st.read(|c| store::unit_storage(c, unit))? {
        let dir = place.dir.join("storage").join(id.replace('/', "-"));
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        storage.insert(id, (kind, dir.display().to_string()));
    }
    let ctx_id = new_context_id(unit, &hook);
    let u = st
        .read(|c| store::unit(c, unit))?
        .ok_or_else(|| StoreError::NotFound(format!("unit {unit}")))?;
    let ctx = Arc::new(Mutex::new(HookContext {
        id: ctx_id.clone(),
        unit: unit.into(),
        app: app.into(),
        address: u.address.clone(),
        model_uuid: inner.model_uuid.clone(),
        model_name: inner.cfg.model_name.clone(),
        hook: hook.clone(),
        charm: ch.meta.clone(),
        log_path: inner
            .cfg
            .home
            .join("logs")
            .join(format!("{}.log", unit_tag(unit))),
        relation_writes: Default::default(),
        state_writes: Default::default(),
        secret_changes: Default::default(),
        grant_ops: Default::default(),
        remove_ops: Default::default(),
        port_ops: Default::default(),
        action,
        leader_settings_written: false,
        secret_tracking_changed: false,
        known_members: known_members(local, &hook),
        storage: storage.clone(),
    }));
    // `juju-exec`: a command run in a hook context, serialised with hooks.
    let exec_command = match (
        &hook.kind,
        &ctx.lock().unwrap_or_else(|p| p.into_inner()).action,
    ) {
        (HookKind::Action { name, .. }, Some(a)) if name == EXEC_TASK => a
            .params
            .get("command")
            .and_then(|c| c.as_str())
            .map(String::from),
        _ => None,
    };
    let program = match &exec_command {
        Some(_) => Some(std::path::PathBuf::from("/bin/sh")),
        None => hook_program(place, &hook),
    };
    let outcome = match &program {
        None => None,
        Some(program) => {
            let sock = socket_path(inner, place);
            let _server = crate::server::serve(&sock, ctx.clone(), inner.store.clone()).map_err(
                |source| StoreError::Io {
                    path: sock.clone(),
                    source,
                },
            )?;
            let mut env = hook_env(inner, unit, place, &hook, &ctx_id, &sock);
            if let Some((kind, location)) = hook.storage().and_then(|h| storage.get(&h.id)) {
                env.push(("JUJU_STORAGE_LOCATION".into(), location.clone()));
                env.push(("JUJU_STORAGE_KIND".into(), kind.clone()));
            }
            let mut args = Vec::new();
            if let Some(cmd) = &exec_command {
                env.retain(|(k, _)| k != "JUJU_DISPATCH_PATH" && !k.starts_with("JUJU_ACTION_"));
                args = vec!["-c".to_string(), cmd.clone()];
            }
            let inv = HookInvocation {
                program: program.clone(),
                args,
                env,
                cwd: place.charm_dir.clone(),
            };
            let started = std::time::Instant::now();
            let out = inner
                .substrate
                .run_hook(place, inv)
                .instrument(span.clone())
                .await;
            tracing::debug!(parent: &span, elapsed_ms = started.elapsed().as_millis() as u64, "hook finished");
            Some(out)
        }
    };
    let ctx = ctx.lock().unwrap_or_else(|p| p.into_inner());
    let now = inner.clock.now_ms();
    let (code, stdout, stderr) = match outcome {
        None => (None, Vec::new(), Vec::new()),
        Some(Ok(o)) => (Some(o.code), o.stdout, o.stderr),
        Some(Err(e)) => (
            Some(Some(126)),
            Vec::new(),
            format!(
                "cannot run {}: {e}\n",
                program
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )
            .into_bytes(),
        ),
    };
    for line in String::from_utf8_lossy(&stdout).lines() {
        ctx.log("DEBUG", &format!("unit.{unit}.{name}"), line);
    }
    for line in String::from_utf8_lossy(&stderr).lines() {
        ctx.log("WARNING", &format!("unit.{unit}.{name}"), line);
    }
    if code == Some(None) {
        // Killed by a signal: nothing committed, the hook runs again.
        return Ok(local.clone());
    }
    let exit = code.map(|c| c.unwrap_or(1));
    let missing = exit.is_none();
    if missing && action_id(&hook).is_none() {
        ctx.log(
            "INFO",
            &format!("unit.{unit}.uniter"),
            &format!("skipped {name:?} hook (missing)"),
        );
    }
    let success = exit.unwrap_or(0) == 0 && !(missing && action_id(&hook).is_some());
    let retrying = local.error.is_some();

    if let (Some(act), Some(id)) = (&ctx.action, action_id(&hook)) {
        // Actions: results always recorded; other changes only on success.
        let mut results = Value::Object(act.results.clone());
        results["return-code"] = json!(exit.unwrap_or(0));
        for (k, bytes) in [("stdout", &stdout), ("stderr", &stderr)] {
            if !bytes.is_empty() {
                match std::str::from_utf8(bytes) {
                    Ok(s) => results[k] = json!(s),
                    Err(_) => {
                        use base64::Engine as _;
                        results[k] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
                        results[format!("{k}-encoding")] = json!("base64");
                    }
                }
            }
        }
        let (status, message) = if missing {
            (
                "failed".to_string(),
                format!("action not implemented on unit {unit:?}"),
            )
        } else if !success {
            (
                "failed".to_string(),
                act.failed
                    .clone()
                    .unwrap_or_else(|| format!("exit status {}", exit.unwrap_or(1))),
            )
        } else if let Some(m) = &act.failed {
            ("failed".to_string(), m.clone())
        } else {
            ("completed".to_string(), String::new())
        };
        // An action run while the unit is in error leaves the error in place.
        let next = if local.error.is_some() {
            local.clone()
        } else {
            advance(local, &hook, remote)
        };
        let res = st.write(|tx| {
            if success {
                ctx.commit(tx, st, now)?;
            }
            store::finish_task(tx, id, &status, &message, &results, now)?;
            store::set_status(
                tx,
                &format!("agent:{unit}"),
                if local.error.is_some() {
                    "error"
                } else {
                    "idle"
                },
                &agent_msg(local),
                &Value::Null,
                now,
            )?;
            store::save_uniter_state(tx, unit, &next)
        });
        if let Err(e) = res {
            st.write(|tx| {
                store::finish_task(
                    tx,
                    id,
                    "failed",
                    "committing requested changes failed",
                    &json!({"return-code": 1, "stderr": e.to_string()}),
                    now,
                )
            })?;
        }
        after_commit(inner, app, &ctx, &hook, success);
        return Ok(next);
    }

    if success {
        let mut next = advance(local, &hook, remote);
        let committed = st.write(|tx| {
            let own_app_versions = ctx.commit(tx, st, now)?;
            for (rel, v) in own_app_versions {
                if let Some(lr) = next.relations.get_mut(&rel) {
                    if remote.relations.get(&rel).is_some_and(|r| r.peer) {
                        lr.app_version = lr.app_version.max(v);
                    }
                }
            }
            hook_effects(tx, unit, &u.address, &hook, &ctx, now)?;
            if matches!(hook.kind, HookKind::Remove) {
                store::delete_unit(tx, unit)?;
                return Ok(());
            }
            let w = store::status(tx, &format!("unit:{unit}"))?;
            if matches!(hook.kind, HookKind::Start)
                && (w.status == "maintenance" && w.message == "installing charm software"
                    || w.status == "waiting" && w.message == "agent initialising")
            {
                store::set_status(
                    tx,
                    &format!("unit:{unit}"),
                    "unknown",
                    "",
                    &Value::Null,
                    now,
                )?;
            }
            if matches!(hook.kind, HookKind::Stop) && w.message == "stopping charm software" {
                store::set_status(
                    tx,
                    &format!("unit:{unit}"),
                    "maintenance",
                    "",
                    &Value::Null,
                    now,
                )?;
            }
            store::set_status(tx, &format!("agent:{unit}"), "idle", "", &Value::Null, now)?;
            if retrying {
                store::set_resolved(tx, unit, Resolved::None)?;
            }
            store::save_uniter_state(tx, unit, &next)
        });
        match committed {
            Ok(()) => {
                after_commit(inner, app, &ctx, &hook, true);
                return Ok(next);
            }
            Err(e) => {
                ctx.log(
                    "ERROR",
                    &format!("unit.{unit}.uniter"),
                    &format!("committing {name:?} hook changes failed: {e}"),
                );
            }
        }
    }
    // Failure: nothing buffered is applied; the unit goes into error and retries.
    let attempts = local
        .error
        .as_ref()
        .filter(|f| f.hook == hook)
        .map(|f| f.attempts + 1)
        .unwrap_or(1);
    let delay = state::retry_delay(inner.cfg.retry_base.as_millis() as i64, attempts);
    // Model config `automatically-retry-hooks=false`: wait for `resolve`.
    let auto_retry = st
        .read(store::model_config)?
        .get("automatically-retry-hooks")
        .and_then(|v| v.as_bool().or_else(|| v.as_str().map(|s| s != "false")))
        .unwrap_or(true);
    let mut next = local.clone();
    next.error = Some(FailedHook {
        hook: hook.clone(),
        attempts,
        retry_at: if auto_retry { now + delay } else { i64::MAX },
    });
    let mut data = json!({"hook": name});
    if let Some(r) = hook.relation() {
        data["relation-id"] = json!(r.id);
        if !r.remote_unit.is_empty() {
            data["remote-unit"] = json!(r.remote_unit);
        }
    }
    if let Some(s) = hook.secret() {
        data["secret-uri"] = json!(s.uri);
        data["secret-label"] = json!(s.label);
    }
    ctx.log(
        "ERROR",
        &format!("unit.{unit}.uniter"),
        &format!("hook {name:?} failed: exit status {}", exit.unwrap_or(1)),
    );
    after_commit(inner, app, &ctx, &hook, false);
    st.write(|tx| {
        store::set_status(
            tx,
            &format!("agent:{unit}"),
            "error",
            &format!("hook failed: {name:?}"),
            &data,
            now,
        )?;
        store::set_resolved(tx, unit, Resolved::None)?;
        store::save_uniter_state(tx, unit, &next)
    })?;
    Ok(next)
}

/// What relation-list shows during `hook`: joined members, with the joining
/// unit added for joined and the departing one gone for departed.
fn known_members(
    local: &LocalState,
    hook: &Hook,
) -> std::collections::BTreeMap<i64, BTreeSet<String>> {
    let mut m: std::collections::BTreeMap<i64, BTreeSet<String>> = local
        .relations
        .iter()
        .map(|(id, lr)| (*id, lr.members.keys().cloned().collect()))
        .collect();
    match &hook.kind {
        HookKind::RelationJoined(r) => {
            m.entry(r.id).or_default().insert(r.remote_unit.clone());
        }
        HookKind::RelationDeparted(r) => {
            if let Some(s) = m.get_mut(&r.id) {
                s.remove(&r.remote_unit);
            }
        }
        HookKind::RelationCreated(r) => {
            m.entry(r.id).or_default();
        }
        _ => {}
    }
    m
}

fn agent_msg(local: &LocalState) -> String {
    local
        .error
        .as_ref()
        .map(|f| format!("hook failed: {:?}", f.hook.name()))
        .unwrap_or_default()
}

fn action_id(h: &Hook) -> Option<i64> {
    h.action_id()
}

/// Store effects that belong to the hook itself (scope, rotation schedule).
fn hook_effects(
    tx: &rusqlite::Connection,
    unit: &str,
    address: &str,
    hook: &Hook,
    ctx: &HookContext,
    now: i64,
) -> Result<(), StoreError> {
    match &hook.kind {
        HookKind::RelationCreated(r)
            if store::relation(tx, r.id)?.is_some_and(|rel| rel.life == state::Life::Alive) =>
        {
            store::enter_scope(tx, r.id, unit, address)?;
        }
        HookKind::RelationBroken(r) => store::leave_scope(tx, r.id, unit)?,
        HookKind::RelationDeparted(r) if r.remote_unit.is_empty() => {
            store::leave_scope(tx, r.id, unit)?
        }
        HookKind::SecretRotate(s) => {
            let id = s.uri.trim_start_matches("secret:");
            if let Some(sec) = store::secret(tx, id)? {
                let rotated = ctx
                    .secret_changes
                    .get(id)
                    .is_some_and(|c| c.content.is_some());
                let next = if rotated {
                    store::rotate_interval_ms(&sec.rotate_policy).map(|i| now + i)
                } else {
                    Some(now + state::EXPIRE_RETRY_MS)
                };
                tx.execute(
                    "UPDATE secret SET next_rotate=?2 WHERE id=?1",
                    rusqlite::params![id, next],
                )?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Wake the uniters this hook's commit concerns.
fn after_commit(inner: &Inner, app: &str, ctx: &HookContext, hook: &Hook, committed: bool) {
    if ctx.secret_tracking_changed {
        // A consumer now tracks another revision: owners may have one to remove.
        inner.notify_all();
    }
    if !committed {
        return;
    }
    let mut apps: BTreeSet<String> = BTreeSet::new();
    let scope_change = matches!(
        hook.kind,
        HookKind::RelationCreated(_) | HookKind::RelationBroken(_) | HookKind::Remove
    );
    if !ctx.relation_writes.is_empty() || scope_change {
        apps.extend(inner.related_apps(app));
    }
    if !ctx.secret_changes.is_empty() || !ctx.grant_ops.is_empty() || !ctx.remove_ops.is_empty() {
        inner.notify_all();
        return;
    }
    if matches!(hook.kind, HookKind::Remove) {
        inner.notify_all();
        return;
    }
    // leader-set applied at once; wake the followers now that the hook is done.
    if ctx.leader_settings_written {
        apps.insert(app.to_string());
    }
    inner.notify(apps.iter().map(String::as_str));
}

fn hook_env(
    inner: &Inner,
    unit: &str,
    place: &UnitPlacement,
    hook: &Hook,
    ctx_id: &str,
    sock: &std::path::Path,
) -> Vec<(String, String)> {
    let charm_dir = place.charm_dir.display().to_string();
    let path = format!(
        "{}:{}",
        inner.tools_dir.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
    );
    let mut env: Vec<(String, String)> = vec![
        ("JUJU_DISPATCH_PATH".into(), hook.dispatch_path()),
        ("JUJU_UNIT_NAME".into(), unit.into()),
        ("JUJU_MODEL_NAME".into(), inner.cfg.model_name.clone()),
        ("JUJU_MODEL_UUID".into(), inner.model_uuid.clone()),
        ("JUJU_VERSION".into(), inner.cfg.juju_version.clone()),
        ("JUJU_CHARM_DIR".into(), charm_dir.clone()),
        ("CHARM_DIR".into(), charm_dir),
        ("JUJU_CONTEXT_ID".into(), ctx_id.into()),
        (
            "JUJU_AGENT_SOCKET_ADDRESS".into(),
            sock.display().to_string(),
        ),
        ("JUJU_AGENT_SOCKET_NETWORK".into(), "unix".into()),
        ("JUJU_API_ADDRESSES".into(), String::new()),
        ("JUJU_MACHINE_ID".into(), String::new()),
        ("JUJU_PRINCIPAL_UNIT".into(), String::new()),
        ("JUJU_AVAILABILITY_ZONE".into(), String::new()),
        ("CLOUD_API_VERSION".into(), String::new()),
        ("JUJU_CHARM_HTTP_PROXY".into(), String::new()),
        ("JUJU_CHARM_HTTPS_PROXY".into(), String::new()),
        ("JUJU_CHARM_FTP_PROXY".into(), String::new()),
        ("JUJU_CHARM_NO_PROXY".into(), String::new()),
        ("APT_LISTCHANGES_FRONTEND".into(), "none".into()),
        ("DEBIAN_FRONTEND".into(), "noninteractive".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("TERM".into(), "tmux-256color".into()),
        ("HOME".into(), place.dir.display().to_string()),
        ("PATH".into(), path),
    ];
    env.extend(hook.env(unit));
    env.extend(inner.cfg.extra_env.iter().cloned());
    env
}
