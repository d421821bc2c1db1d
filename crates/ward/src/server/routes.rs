//! The API routes: each turns a request into controller library calls,
//! validating input first so nothing bad is ever queued.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use controller::{Controller, ControllerError};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api;
use crate::home::Home;
use crate::validate;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) ctl: Controller,
    pub(crate) home: Home,
    pub(crate) token: Arc<String>,
    pub(crate) juju_version: String,
    pub(crate) substrate: &'static str,
}

/// An error answer with its HTTP status.
#[derive(Debug)]
pub(crate) struct Fail {
    status: StatusCode,
    body: api::ApiError,
}

impl Fail {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Fail {
            status,
            body: api::ApiError {
                error: error.into(),
                details: Vec::new(),
                fix: None,
            },
        }
    }
    fn bad(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }
    fn not_found(error: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error)
    }
    fn internal(error: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, error)
    }
    fn details(mut self, d: Vec<String>) -> Self {
        self.body.details = d;
        self
    }
    fn fix(mut self, f: impl Into<String>) -> Self {
        self.body.fix = Some(f.into());
        self
    }
}

impl From<ControllerError> for Fail {
    fn from(e: ControllerError) -> Self {
        use controller::store::StoreError;
        let msg = e.to_string();
        match &e {
            ControllerError::Invalid(m) if m.contains("not found") => Fail::not_found(msg),
            ControllerError::Invalid(_) | ControllerError::Charm(_) => Fail::bad(msg),
            ControllerError::Store(StoreError::NotFound(_)) => Fail::not_found(msg),
            ControllerError::Store(StoreError::Invalid(_)) => Fail::bad(msg),
            ControllerError::Timeout(_) | ControllerError::NotSettled(_) => {
                Fail::new(StatusCode::GATEWAY_TIMEOUT, msg)
            }
            _ => Fail::internal(msg),
        }
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

type Answer<T> = Result<Json<T>, Fail>;

/// A JSON body whose decoding errors answer 400 with our error shape.
struct Body2<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body2<T> {
    type Rejection = Fail;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| Fail::bad(format!("reading the request body: {e}")))?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(Body2)
            .map_err(|e| Fail::bad(format!("bad request body at {}: {}", e.path(), e.inner())))
    }
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timing.
fn same(a: &[u8], b: &[u8]) -> bool {
    let ha = Sha256::digest(a);
    let hb = Sha256::digest(b);
    ha.iter()
        .zip(hb.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| same(t.trim().as_bytes(), st.token.as_bytes()));
    if !ok {
        tracing::warn!(method = %req.method(), path = %req.uri().path(), "api call without the admin credential");
        return Fail::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin credential",
        )
        .fix("send `Authorization: Bearer <token>` with the token in WARD_HOME/admin.token")
        .into_response();
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if path == "/v1/status" || path == "/v1/health" {
        tracing::debug!(%method, %path, status, ms, "api");
    } else {
        tracing::info!(%method, %path, status, ms, "api");
    }
    resp
}

/// The API router (every route needs the admin token).
pub(crate) fn router(st: AppState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/status", get(status))
        .route(
            "/v1/charms",
            post(upload).layer(DefaultBodyLimit::max(1 << 30)),
        )
        .route("/v1/deploy", post(deploy))
        .route("/v1/add-unit", post(add_unit))
        .route("/v1/remove-unit", post(remove_unit))
        .route("/v1/remove-application", post(remove_application))
        .route("/v1/integrate", post(integrate))
        .route("/v1/remove-relation", post(remove_relation))
        .route("/v1/config", post(config))
        .route("/v1/refresh", post(refresh))
        .route("/v1/run", post(run))
        .route("/v1/resolve", post(resolve))
        .route("/v1/secrets", get(secrets))
        .route("/v1/show-secret", post(show_secret))
        .route("/v1/logs", get(logs))
        .fallback(|| async { Fail::not_found("no such API route") })
        .layer(middleware::from_fn_with_state(st.clone(), auth))
        .with_state(st)
}

async fn health(State(st): State<AppState>) -> Answer<api::Health> {
    Ok(Json(api::Health {
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        model: st.ctl.status()?.model,
        substrate: st.substrate.to_string(),
    }))
}

/// The snapshot fields of the controller's status, as the API re-exports them.
#[derive(Deserialize)]
struct Snapshot {
    model: String,
    model_uuid: String,
    applications: Vec<api::AppStatus>,
    relations: Vec<api::RelationStatus>,
}

fn snapshot(ctl: &Controller) -> Result<Snapshot, Fail> {
    let v = serde_json::to_value(ctl.status()?).map_err(|e| Fail::internal(e.to_string()))?;
    serde_json::from_value(v).map_err(|e| Fail::internal(format!("status shape: {e}")))
}

async fn status(State(st): State<AppState>) -> Answer<api::Status> {
    let settled = st.ctl.is_settled()?;
    let s = snapshot(&st.ctl)?;
    Ok(Json(api::Status {
        model: s.model,
        model_uuid: s.model_uuid,
        applications: s.applications,
        relations: s.relations,
        settled,
        time_ms: controller::store::now_ms(),
        juju_version: st.juju_version.clone(),
    }))
}

impl AppState {
    /// The unpacked directory of an uploaded charm.
    fn charm_dir(&self, id: &str) -> Result<PathBuf, Fail> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Fail::bad(format!("charm id {id:?} is not an upload id")));
        }
        let d = self.home.charms_dir().join(id);
        if !d.is_dir() {
            return Err(Fail::not_found(format!("charm {id} was never uploaded"))
                .fix("POST the .charm to /v1/charms first"));
        }
        Ok(d)
    }

    /// The charm directory an application runs (read from the state store).
    fn app_charm_dir(&self, app: &str) -> Result<PathBuf, Fail> {
        use rusqlite::OptionalExtension;
        let db = self.home.root.join("state.db");
        let c = rusqlite::Connection::open_with_flags(
            &db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Fail::internal(format!("opening {}: {e}", db.display())))?;
        let _ = c.busy_timeout(Duration::from_secs(5));
        let path: Option<String> = c
            .query_row(
                "SELECT c.path FROM application a JOIN charm c ON c.id = a.charm_id WHERE a.name = ?1",
                [app],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| Fail::internal(format!("reading the state store: {e}")))?;
        path.map(PathBuf::from).ok_or_else(|| {
            Fail::not_found(format!("application {app:?} not found"))
                .fix("`ward status` lists the applications")
        })
    }

    fn unit_exists(&self, unit: &str) -> Result<bool, Fail> {
        Ok(snapshot(&self.ctl)?
            .applications
            .iter()
            .flat_map(|a| &a.units)
            .any(|u| u.name == unit))
    }
}

fn read_meta(dir: &std::path::Path) -> Result<controller::charmdir::CharmMeta, Fail> {
    controller::charmdir::read_meta(dir).map_err(|e| Fail::bad(e.to_string()))
}

async fn upload(State(st): State<AppState>, body: Bytes) -> Answer<api::Uploaded> {
    let sha = Sha256::digest(&body);
    let id: String = sha.iter().take(12).map(|b| format!("{b:02x}")).collect();
    let dir = st.home.charms_dir().join(&id);
    if !dir.is_dir() {
        let tmp = st
            .home
            .charms_dir()
            .join(format!(".tmp-{id}-{:016x}", rand::random::<u64>()));
        let _ = std::fs::remove_dir_all(&tmp);
        let unpacked = crate::charmpkg::unpack(&body, &tmp).map_err(|e| {
            Fail::bad(e.to_string()).fix("upload a .charm made by `ward pack` or charmcraft")
        });
        let checked = unpacked.and_then(|_| {
            let meta = read_meta(&tmp)?;
            if !tmp.join("dispatch").is_file() {
                return Err(
                    Fail::bad(format!("charm {:?} has no dispatch file", meta.name))
                        .fix("a charm needs an executable `dispatch` at its top level"),
                );
            }
            Ok(())
        });
        if let Err(e) = checked {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &dir)
            .or_else(|e| if dir.is_dir() { Ok(()) } else { Err(e) })
            .map_err(|e| Fail::internal(format!("storing the charm in {}: {e}", dir.display())))?;
    }
    let meta = read_meta(&dir)?;
    Ok(Json(api::Uploaded {
        id,
        name: meta.name,
    }))
}

fn bad_config(app: &str, meta: &controller::charmdir::CharmMeta, problems: Vec<String>) -> Fail {
    Fail::bad(format!(
        "invalid config for application {app:?} (charm {:?})",
        meta.name
    ))
    .details(problems)
    .fix(validate::describe_options(meta))
}

async fn deploy(State(st): State<AppState>, Body2(req): Body2<api::Deploy>) -> Answer<api::Units> {
    let dir = st.charm_dir(&req.charm)?;
    let meta = read_meta(&dir)?;
    let app = req.app.clone().unwrap_or_else(|| meta.name.clone());
    if req.units > 1000 {
        return Err(Fail::bad(format!(
            "-n {} is more than 1000 units",
            req.units
        )));
    }
    if snapshot(&st.ctl)?
        .applications
        .iter()
        .any(|a| a.name == app)
    {
        return Err(Fail::bad(format!("application {app:?} already exists")).fix(
            "choose another name (`ward deploy <charm> <name>`) or `ward refresh` the existing one",
        ));
    }
    let changes = validate::config_changes(&meta, &req.config, &[])
        .map_err(|p| bad_config(&app, &meta, p))?;
    let config = changes
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    let units = st.ctl.deploy(&app, &dir, req.units, config).map_err(|e| {
        let invalid_name =
            matches!(&e, ControllerError::Invalid(m) if m.starts_with("invalid application name"));
        let f = Fail::from(e);
        if invalid_name {
            f.fix("application names are lowercase letters, digits and '-', not starting with '-'")
        } else {
            f
        }
    })?;
    Ok(Json(api::Units { app, units }))
}

async fn add_unit(
    State(st): State<AppState>,
    Body2(req): Body2<api::AddUnit>,
) -> Answer<api::Units> {
    st.app_charm_dir(&req.app)?;
    if req.n == 0 || req.n > 1000 {
        return Err(Fail::bad(format!(
            "-n {} must be between 1 and 1000",
            req.n
        )));
    }
    let units = st.ctl.add_unit(&req.app, req.n)?;
    Ok(Json(api::Units {
        app: req.app,
        units,
    }))
}

async fn remove_unit(State(st): State<AppState>, Body2(req): Body2<api::UnitRef>) -> Answer<Value> {
    if !st.unit_exists(&req.unit)? {
        return Err(Fail::not_found(format!("unit {:?} not found", req.unit))
            .fix("`ward status` lists the units"));
    }
    st.ctl.remove_unit(&req.unit)?;
    Ok(Json(Value::Object(Default::default())))
}

async fn remove_application(
    State(st): State<AppState>,
    Body2(req): Body2<api::AppRef>,
) -> Answer<Value> {
    st.app_charm_dir(&req.app)?;
    st.ctl.remove_application(&req.app)?;
    Ok(Json(Value::Object(Default::default())))
}

/// Check both applications exist; returns a description of their endpoints
/// for error messages.
fn check_endpoint_apps(st: &AppState, specs: &[&str]) -> Result<String, Fail> {
    let mut parts = Vec::new();
    for s in specs {
        let app = s.split(':').next().unwrap_or(s);
        let meta = read_meta(&st.app_charm_dir(app)?)?;
        let eps: Vec<String> = meta
            .endpoints
            .iter()
            .filter(|e| e.role != controller::charmdir::Role::Peer)
            .map(|e| format!("{app}:{} ({} {})", e.name, e.role.as_str(), e.interface))
            .collect();
        parts.push(if eps.is_empty() {
            format!("{app} has no relation endpoints")
        } else {
            format!("{app} has {}", eps.join(", "))
        });
    }
    Ok(parts.join("; "))
}

async fn integrate(
    State(st): State<AppState>,
    Body2(req): Body2<api::Relate>,
) -> Answer<api::Related> {
    let endpoints = check_endpoint_apps(&st, &[&req.a, &req.b])?;
    let id = st.ctl.integrate(&req.a, &req.b).map_err(|e| {
        Fail::from(e).fix(format!(
            "{endpoints}: a provider and a requirer of the same interface relate"
        ))
    })?;
    Ok(Json(api::Related { id }))
}

async fn remove_relation(
    State(st): State<AppState>,
    Body2(req): Body2<api::Relate>,
) -> Answer<Value> {
    check_endpoint_apps(&st, &[&req.a, &req.b])?;
    st.ctl
        .remove_relation_between(&req.a, &req.b)
        .map_err(|e| {
            Fail::from(e).fix("`ward status` lists the relations (Integration provider / Requirer)")
        })?;
    Ok(Json(Value::Object(Default::default())))
}

async fn config(
    State(st): State<AppState>,
    Body2(req): Body2<api::ConfigChange>,
) -> Answer<api::Config> {
    let dir = st.app_charm_dir(&req.app)?;
    let meta = read_meta(&dir)?;
    let changes = validate::config_changes(&meta, &req.set, &req.reset)
        .map_err(|p| bad_config(&req.app, &meta, p))?;
    let changed = if changes.is_empty() {
        false
    } else {
        st.ctl.set_config(&req.app, changes)?
    };
    let settings = st
        .ctl
        .config(&req.app)?
        .into_iter()
        .map(|(k, (value, user))| {
            let opt = meta.config.get(&k);
            let setting = api::ConfigSetting {
                kind: opt
                    .map(|o| o.kind.clone())
                    .unwrap_or_else(|| "string".into()),
                value,
                default: opt.and_then(|o| o.default.clone()),
                source: if user { "user" } else { "default" }.into(),
            };
            (k, setting)
        })
        .collect();
    Ok(Json(api::Config {
        application: req.app,
        charm: meta.name,
        settings,
        changed,
    }))
}

async fn refresh(State(st): State<AppState>, Body2(req): Body2<api::Refresh>) -> Answer<Value> {
    let current = read_meta(&st.app_charm_dir(&req.app)?)?;
    let dir = st.charm_dir(&req.charm)?;
    let meta = read_meta(&dir)?;
    if meta.name != current.name {
        return Err(Fail::bad(format!(
            "application {:?} runs charm {:?}, not {:?}",
            req.app, current.name, meta.name
        ))
        .fix("refresh takes a new revision of the same charm; deploy a different charm as a new application"));
    }
    st.ctl.refresh(&req.app, &dir)?;
    Ok(Json(Value::Object(Default::default())))
}

fn task_view(t: controller::store::TaskRecord) -> api::Task {
    api::Task {
        id: t.id,
        unit: t.unit,
        name: t.name,
        status: t.status,
        message: t.message,
        results: t.results,
        log: t.log,
        enqueued: t.enqueued,
        started: t.started,
        completed: t.completed,
    }
}

async fn run(State(st): State<AppState>, Body2(req): Body2<api::Run>) -> Answer<api::Task> {
    let unit = match req.unit.strip_suffix("/leader") {
        Some(app) => {
            let snap = snapshot(&st.ctl)?;
            let a = snap
                .applications
                .iter()
                .find(|a| a.name == app)
                .ok_or_else(|| {
                    Fail::not_found(format!("application {app:?} not found"))
                        .fix("`ward status` lists the applications")
                })?;
            a.units
                .iter()
                .find(|u| u.leader)
                .map(|u| u.name.clone())
                .ok_or_else(|| {
                    Fail::new(
                        StatusCode::CONFLICT,
                        format!("application {app:?} has no leader yet"),
                    )
                    .fix("wait for a unit to come up (`ward wait`) and try again")
                })?
        }
        None => req.unit.clone(),
    };
    let app = unit.split('/').next().unwrap_or_default();
    if !st.unit_exists(&unit)? {
        return Err(Fail::not_found(format!("unit {unit:?} not found"))
            .fix("`ward status` lists the units; `app/leader` names an application's leader"));
    }
    let dir = st.app_charm_dir(app)?;
    let actions = validate::read_actions(&dir);
    let Some(spec) = actions.get(&req.action) else {
        let names: Vec<&str> = actions.keys().map(String::as_str).collect();
        return Err(Fail::bad(format!(
            "action {:?} is not defined by the charm of {unit}",
            req.action
        ))
        .fix(if names.is_empty() {
            "the charm declares no actions".to_string()
        } else {
            format!("its actions are: {}", names.join(", "))
        }));
    };
    let params = validate::action_params(spec, &req.params).map_err(|p| {
        Fail::bad(format!(
            "invalid parameters for action {:?} on {unit}",
            req.action
        ))
        .details(p)
        .fix(validate::describe_params(spec))
    })?;
    let id = st.ctl.enqueue_action(&unit, &req.action, params)?;
    let wait = Duration::from_millis(req.wait_ms.min(24 * 3600 * 1000));
    let t = match st.ctl.wait_task(id, wait).await {
        Ok(t) => t,
        Err(ControllerError::Timeout(_)) => st.ctl.task(id)?,
        Err(e) => return Err(e.into()),
    };
    Ok(Json(task_view(t)))
}

async fn resolve(State(st): State<AppState>, Body2(req): Body2<api::Resolve>) -> Answer<Value> {
    st.ctl
        .resolve(&req.unit, req.retry)
        .map_err(|e| Fail::from(e).fix("`ward status` shows which units are in error"))?;
    Ok(Json(Value::Object(Default::default())))
}

fn secret_list(ctl: &Controller) -> Result<Vec<api::Secret>, Fail> {
    let v = serde_json::to_value(ctl.secrets()?).map_err(|e| Fail::internal(e.to_string()))?;
    serde_json::from_value(v).map_err(|e| Fail::internal(format!("secrets shape: {e}")))
}

async fn secrets(State(st): State<AppState>) -> Answer<Vec<api::Secret>> {
    Ok(Json(secret_list(&st.ctl)?))
}

async fn show_secret(
    State(st): State<AppState>,
    Body2(req): Body2<api::ShowSecret>,
) -> Answer<api::SecretDetail> {
    let all = secret_list(&st.ctl)?;
    let want = req.secret.trim();
    let id_of = |uri: &str| uri.rsplit(['/', ':']).next().unwrap_or(uri).to_string();
    let by_id: Vec<&api::Secret> = all
        .iter()
        .filter(|s| s.uri == want || id_of(&s.uri) == id_of(want))
        .collect();
    let found: Vec<&api::Secret> = if by_id.is_empty() {
        all.iter()
            .filter(|s| s.label.as_deref() == Some(want))
            .collect()
    } else {
        by_id
    };
    let s = match found.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(
                Fail::not_found(format!("no secret with URI, id or label {want:?}"))
                    .fix("`ward secrets` lists them"),
            )
        }
        many => {
            let uris: Vec<&str> = many.iter().map(|s| s.uri.as_str()).collect();
            return Err(Fail::bad(format!(
                "label {want:?} names {} secrets: {}",
                many.len(),
                uris.join(", ")
            ))
            .fix("give the secret's URI instead"));
        }
    };
    let content = if req.reveal {
        Some(st.ctl.reveal_secret(&s.uri, None)?)
    } else {
        None
    };
    Ok(Json(api::SecretDetail { secret: s, content }))
}

#[derive(Deserialize)]
struct LogQuery {
    #[serde(default)]
    replay: bool,
    #[serde(default)]
    include: String,
    #[serde(default = "yes")]
    follow: bool,
}

fn yes() -> bool {
    true
}

async fn logs(State(st): State<AppState>, Query(q): Query<LogQuery>) -> Response {
    let include: Vec<String> = q
        .include
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let tail = super::logs::Tail::new(st.home.root.join("logs"), include, q.replay, q.follow);
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(tail.stream()),
    )
        .into_response()
}
