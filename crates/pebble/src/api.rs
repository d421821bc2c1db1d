//! Pebble's HTTP API: routes, access rules and the response envelope.

// Handlers return early with a ready-made error response; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::daemon::{Daemon, VERSION};
use crate::files::{self, FileError, MkdirItem, RemoveItem, WriteItem};
use crate::services::{self, Action};
use crate::util::{parse_duration, parse_rfc3339, rfc3339};

/// Who is calling: the peer's uid on the Unix socket, none over TCP.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The peer's uid (SO_PEERCRED).
    pub uid: Option<u32>,
}

impl Connected<axum::serve::IncomingStream<'_, tokio::net::UnixListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        Peer {
            uid: stream.io().peer_cred().ok().map(|c| c.uid()),
        }
    }
}

impl Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(_: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer { uid: None }
    }
}

type D = State<Arc<Daemon>>;
type P = ConnectInfo<Peer>;
type Q = Query<Vec<(String, String)>>;

fn envelope(code: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn status_text(code: u16) -> &'static str {
    StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// A sync response.
fn sync(result: Value) -> Response {
    sync_code(200, result)
}

fn sync_code(code: u16, result: Value) -> Response {
    envelope(
        code,
        json!({"type": "sync", "status-code": code, "status": status_text(code), "result": result}),
    )
}

fn async_change(change: u64, result: Value) -> Response {
    envelope(
        202,
        json!({"type": "async", "status-code": 202, "status": "Accepted", "change": change.to_string(), "result": result}),
    )
}

/// An error response with Pebble's envelope.
pub fn error(code: u16, message: impl Into<String>, kind: Option<&str>) -> Response {
    let mut result = json!({"message": message.into()});
    if let Some(k) = kind {
        result["kind"] = json!(k);
    }
    envelope(
        code,
        json!({"type": "error", "status-code": code, "status": status_text(code), "result": result}),
    )
}

fn bad(message: impl Into<String>) -> Response {
    error(400, message, None)
}

fn admin(d: &Daemon, peer: &Peer) -> Result<(), Response> {
    match peer.uid {
        Some(uid) if uid == 0 || uid == d.uid => Ok(()),
        _ => Err(error(401, "access denied", Some("login-required"))),
    }
}

fn user(peer: &Peer) -> Result<(), Response> {
    match peer.uid {
        Some(_) => Ok(()),
        None => Err(error(401, "access denied", Some("login-required"))),
    }
}

fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| bad(format!("cannot decode request body: {e}")))
}

/// Values of a query parameter: repeated and/or comma-separated.
fn list_param(q: &[(String, String)], key: &str) -> Vec<String> {
    q.iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The router.
pub fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .route("/v1/system-info", get(system_info))
        .route("/v1/health", get(health))
        .route("/v1/plan", get(plan))
        .route("/v1/layers", post(layers))
        .route("/v1/services", get(services_get).post(services_post))
        .route("/v1/changes", get(changes))
        .route("/v1/changes/{id}", get(change_get).post(change_post))
        .route("/v1/changes/{id}/wait", get(change_wait))
        .route("/v1/files", get(files_get).post(files_post))
        .route("/v1/exec", post(exec))
        .route("/v1/tasks/{task}/websocket/{name}", get(websocket))
        .route("/v1/signals", post(signals))
        .route("/v1/checks", get(checks_get).post(checks_post))
        .route("/v1/notices", get(notices_get).post(notices_post))
        .route("/v1/notices/{id}", get(notice_get))
        .route("/v1/logs", get(logs))
        .fallback(|| async { error(404, "invalid API endpoint requested", None) })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            error(405, format!("method {method:?} not allowed"), None)
        })
        .with_state(d)
}

async fn system_info(State(d): D) -> Response {
    sync(json!({"boot-id": d.boot_id, "version": VERSION}))
}

async fn health(State(d): D, Query(q): Q) -> Response {
    let level = param(&q, "level").filter(|l| !l.is_empty());
    if let Some(l) = level {
        if l != "alive" && l != "ready" {
            return bad(format!("level must be \"alive\" or \"ready\", not {l:?}"));
        }
    }
    let names = list_param(&q, "names");
    let healthy = crate::checks::healthy(&d, level, &names);
    sync_code(if healthy { 200 } else { 502 }, json!({"healthy": healthy}))
}

async fn plan(State(d): D, ConnectInfo(peer): P, Query(q): Q) -> Response {
    if let Err(r) = admin(&d, &peer) {
        return r;
    }
    match param(&q, "format") {
        Some("yaml") => sync(json!(d.lock().plan.to_yaml())),
        other => bad(format!("invalid format {:?}", other.unwrap_or(""))),
    }
}

#[derive(Deserialize)]
struct LayersBody {
    action: Option<String>,
    #[serde(default)]
    combine: Option<bool>,
    #[serde(default)]
    inner: Option<bool>,
    label: Option<String>,
    format: Option<String>,
    layer: Option<String>,
}

async fn layers(State(d): D, ConnectInfo(peer): P, body: Bytes) -> Response {
    if let Err(r) = admin(&d, &peer) {
        return r;
    }
    let body: LayersBody = match decode(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if body.action.as_deref() != Some("add") {
        return bad(format!(
            "invalid action {:?}",
            body.action.unwrap_or_default()
        ));
    }
    let label = body.label.unwrap_or_default();
    if label.is_empty() {
        return bad("label must be set");
    }
    if body.format.as_deref() != Some("yaml") {
        return bad(format!(
            "invalid format {:?}",
            body.format.unwrap_or_default()
        ));
    }
    if label.starts_with("pebble-") {
        return bad(format!(
            "cannot use reserved label prefix \"pebble-\" for layer {label:?}"
        ));
    }
    let mut inner = d.lock();
    let _ = body.inner;
    let layer = match crate::plan::Layer::parse(0, &label, body.layer.as_deref().unwrap_or("")) {
        Ok(l) => l,
        Err(e) => return bad(format!("cannot parse layer YAML: {e}")),
    };
    let mut layers = inner.layers.clone();
    match layers.iter().position(|l| l.label == label) {
        Some(i) if body.combine.unwrap_or(false) => {
            let existing = layers[i].clone();
            let combined = match crate::plan::combine(&[existing.clone(), layer]) {
                Ok(c) => c,
                Err(e) => return bad(e.0),
            };
            layers[i] = crate::plan::Layer {
                order: existing.order,
                label: label.clone(),
                ..combined
            };
        }
        Some(_) => return bad(format!("layer {label:?} already exists")),
        None => {
            let order = layers.last().map_or(1000, |l| (l.order / 1000 + 1) * 1000);
            layers.push(crate::plan::Layer { order, ..layer });
        }
    }
    match crate::plan::Plan::new(&layers) {
        Ok(plan) => {
            inner.layers = layers;
            inner.plan = plan;
            sync(json!(true))
        }
        Err(e) => bad(e.0),
    }
}

async fn services_get(State(d): D, ConnectInfo(peer): P, Query(q): Q) -> Response {
    if let Err(r) = user(&peer) {
        return r;
    }
    sync(services::list(&d, &list_param(&q, "names")))
}

#[derive(Deserialize)]
struct ServicesBody {
    action: Option<String>,
    #[serde(default)]
    services: Option<Vec<String>>,
}

async fn services_post(State(d): D, ConnectInfo(peer): P, body: Bytes) -> Response {
    if let Err(r) = admin(&d, &peer) {
        return r;
    }
    let body: ServicesBody = match decode(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let name = body.action.unwrap_or_default();
    let Some(action) = Action::parse(&name) else {
        return bad(format!("invalid action {name:?}"));
    };
    let names = body.services.unwrap_or_default();
    match action {
        Action::Autostart | Action::Replan if !names.is_empty() => {
            return bad(format!("{name} accepts no service names"))
        }
        Action::Start | Action::Stop | Action::Restart if names.is_empty() => {
            return bad(format!("must specify services for {name} action"))
        }
        _ => {}
    }
    match services::request(&d, action, &names) {
        Ok(id) => async_change(id, Value::Null),
        Err((message, kind)) => error(400, message, kind),
    }
}

async fn changes(State(d): D, ConnectInfo(peer): P, Query(q): Q) -> Response {
    if let Err(r) = user(&peer) {
        return r;
    }
    let select = param(&q, "select").unwrap_or("in-progress");
    if !["all", "in-progress", "ready"].contains(&select) {
        return bad("select should be one of: all,in-progress,ready");
    }
    let for_service = param(&q, "for");
    let inner = d.lock();
    let list: Vec<Value> = inner
        .state
        .changes
        .values()
        .filter(|c| match select {
            "in-progress" => c.ready.is_none() && !c.status().ready(),
            "ready" => c.status().ready(),
            _ => true,
        })
        .filter(|c| {
            for_service.is_none_or(|s| {
                c.data
                    .get("service-names")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|n| n == s))
            })
        })
        .map(|c| c.to_json())
        .collect();
    sync(Value::Array(list))
}

fn find_change(d: &Daemon, id: &str) -> Result<Value, Response> {
    let inner = d.lock();
    id.parse::<u64>()
        .ok()
        .and_then(|n| inner.state.changes.get(&n))
        .map(|c| c.to_json())
        .ok_or_else(|| {
            error(
                404,
                format!("cannot find change with id {id:?}"),
                Some("not-found"),
            )
        })
}

async fn change_get(State(d): D, ConnectInfo(peer): P, Path(id): Path<String>) -> Response {
    if let Err(r) = user(&peer) {
        return r;
    }
    match find_change(&d, &id) {
        Ok(c) => sync(c),
        Err(r) => r,
    }
}

async fn change_post(
    State(d): D,
    ConnectInfo(peer): P,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = admin(&d, &peer) {
        return r;
    }
    let body: Value = match decode(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let change = match find_change(&d, &id) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if body["action"] != "abort" {
        return bad(format!(
            "change action {:?} is unsupported",
            body["action"].as_str().unwrap_or("")
        ));
    }
    if change["ready"] == true {
        return bad(format!("cannot abort change {id} with nothing pending"));
    }
    bad(format!(
        "cannot abort change {id}: aborting is not supported by Ward's Pebble"
    ))
}

async fn change_wait(
    State(d): D,
    ConnectInfo(peer): P,
    Path(id): Path<String>,
    Query(q): Q,
) -> Response {
    if let Err(r) = user(&peer) {
        return r;
    }
    let timeout = match param(&q, "timeout").filter(|t| !t.is_empty()) {
        Some(t) => match parse_duration(t) {
            Ok(t) => Some(t),
            Err(e) => return bad(format!("invalid timeout: {e}")),
        },
        None => None,
    };
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut rx = d.subscribe();
    loop {
        match find_change(&d, &id) {
            Ok(c) if c["ready"] == true => return sync(c),
            Ok(_) => {}
            Err(r) => return r,
        }
        let changed = match deadline {
            Some(dl) => tokio::time::timeout_at(dl, rx.changed()).await.is_ok(),
            None => rx.changed().await.is_ok(),
        };
        if !changed {
            let t = timeout
                .map(crate::util::format_duration)
                .unwrap_or_default();
            return error(504, format!("timed out waiting for change after {t}"), None);
        }
    }
}

async fn files_get(State(d): D, ConnectInfo(peer): P, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = admin(&d, &peer) {
        return r;
    }
    match param(&q, "action") {
        Some("read") => {
            let accept = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !accept.contains("multipart/form-data") {
                return bad("must accept multipart/form-data");
            }
            read_response(&list_param_raw(&q, "path"))
        }
        Some("list") => {
            let Some(path) = param(&q, "path") else {
                return bad("must specify path");
            };
            let itself = param(&q, "itself") == Some("true");
            match files::list(path, param(&q, "pattern").filter(|p| !p.is_empty()), itself) {
                Ok(v) => sync(v),
                Err(e) => error(e.http_status(), e.message, Some(e.kind)),
            }
        }
        other => bad(format!("invalid action {:?}", other.unwrap_or(""))),
    }
}

fn list_param_raw(q: &[(String, String)], key: &str) -> Vec<String> {
    q.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

fn read_response(paths: &[String]) -> Response {
    let boundary = format!("{:032x}", rand::random::<u128>());
    let mut body = Vec::new();
    let mut results = Vec::new();
    for path in paths {
        match files::read_file(path) {
            Ok(content) => {
                body.extend_from_slice(
                    format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                        path.replace('"', "%22")
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(&content);
                body.extend_from_slice(b"\r\n");
                results.push(json!({"path": path}));
            }
            Err(e) => results.push(json!({"path": path, "error": e.to_json()})),
        }
    }
    let response = json!({"type": "sync", "status-code": 200, "status": "OK", "result": results});
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"response\"\r\nContent-Type: application/json\r\n\r\n{response}\r\n--{boundary}--\r\n"
        )
        .as_bytes(),
    );
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )],
        body,
    )
        .into_response()
}

fn results(items: Vec<(String, Result<(), FileError>)>) -> Response {
    sync(Value::Array(
        items
            .into_iter()
            .map(|(path, r)| match r {
                Ok(()) => json!({"path": path}),
                Err(e) => json!({"path": path, "error": e.to_json()}),
            })
            .collect(),
    ))
}

async fn files_post(State(d): D, ConnectInfo(peer): P, headers: HeaderMap, body: Body) -> Response {
    if let Err(r) = admin(&d, &peer) {
        return r;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if content_type.starts_with("multipart/form-data") {
        return write_multipart(&content_type, body).await;
    }
    let bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return bad(format!("cannot read request body: {e}")),
    };
    let v: Value = match decode(&bytes) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match v["action"].as_str().unwrap_or("") {
        "make-dirs" => {
            let items: Vec<MkdirItem> = match serde_json::from_value(v["dirs"].clone()) {
                Ok(i) => i,
                Err(e) => return bad(format!("cannot decode request body: {e}")),
            };
            results(
                items
                    .iter()
                    .map(|i| (i.path.clone(), files::make_dir(i)))
                    .collect(),
            )
        }
        "remove" => {
            let items: Vec<RemoveItem> = match serde_json::from_value(v["paths"].clone()) {
                Ok(i) => i,
                Err(e) => return bad(format!("cannot decode request body: {e}")),
            };
            results(
                items
                    .iter()
                    .map(|i| (i.path.clone(), files::remove(i)))
                    .collect(),
            )
        }
        "write" => bad("must use multipart with \"write\" action"),
        other => bad(format!("invalid action {other:?}")),
    }
}

async fn write_multipart(content_type: &str, body: Body) -> Response {
    let boundary = match multer::parse_boundary(content_type) {
        Ok(b) => b,
        Err(e) => return bad(format!("invalid boundary: {e}")),
    };
    // Read the whole body before answering: replying while the client is still sending
    // (the chunked terminator after the closing boundary) makes it see a broken pipe.
    let bytes = match axum::body::to_bytes(body, 1 << 30).await {
        Ok(b) => b,
        Err(e) => return bad(format!("cannot read request body: {e}")),
    };
    let stream =
        futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes) });
    let mut form = multer::Multipart::new(stream, boundary);
    let first = match form.next_field().await {
        Ok(Some(f)) => f,
        Ok(None) => return bad("must include a \"request\" field"),
        Err(e) => return bad(format!("cannot read multipart body: {e}")),
    };
    if first.name() != Some("request") {
        return bad("first multipart field must be \"request\"");
    }
    let meta = match first.bytes().await {
        Ok(b) => b,
        Err(e) => return bad(format!("cannot read request field: {e}")),
    };
    #[derive(Deserialize)]
    struct WriteRequest {
        action: String,
        files: Vec<WriteItem>,
    }
    let req: WriteRequest = match decode(&meta) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.action != "write" {
        return bad(format!(
            "multipart action must be \"write\", got {:?}",
            req.action
        ));
    }
    let mut done: BTreeMap<String, Result<(), FileError>> = BTreeMap::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return bad(format!("cannot read multipart body: {e}")),
        };
        if field.name() != Some("files") {
            return bad(format!(
                "field name must be \"files\", got {:?}",
                field.name().unwrap_or("")
            ));
        }
        let path = field.file_name().unwrap_or("").to_string();
        let Some(item) = req.files.iter().find(|f| f.path == path) else {
            return bad(format!("no metadata for path {path:?}"));
        };
        let content = match field.bytes().await {
            Ok(b) => b,
            Err(e) => return bad(format!("cannot read file content: {e}")),
        };
        let result = files::write_file(item, &content);
        done.insert(path, result);
    }
    results(
        req.files
            .iter()
            .map(|f| {
                let r = done.remove(&f.path).unwrap_or_else(|| {
                    Err(FileError {
                        message: format!("no file content for path {:?}", f.path),
                        kind: "generic-file-error",
                    })
                });
                (f.path.clone(), r)
            })
            .collect(),
    )
}

async fn exec(State(d): D, ConnectInfo(peer): P, body: Bytes) -> Response {
    if let Err(r) = admin(&d, &peer) {
        return r;
    }
    let req = match decode(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match crate::exec::start(&d, req) {
        Ok((change, result)) => async_change(change, result),
        Err((code, message)) => error(code, message, None),
    }
}

async fn websocket(
    State(d): D,
    ConnectInfo(peer): P,
    Path((task, name)): Path<(String, String)>,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(r) = admin(&d, &peer) {
        return r;
    }
    if !["control", "stdio", "stderr"].contains(&name.as_str()) {
        return error(
            404,
            format!("invalid websocket name {name:?}"),
            Some("not-found"),
        );
    }
    let tx = task
        .parse::<u64>()
        .ok()
        .and_then(|t| d.lock().execs.get(&t).cloned());
    let Some(tx) = tx else {
        return error(
            404,
            format!("cannot find task with id {task:?}"),
            Some("not-found"),
        );
    };
    ws.on_upgrade(move |socket| async move {
        let _ = tx.send((name, socket)).await;
    })
}

#[derive(Deserialize)]
struct SignalsBody {
    signal: Option<String>,
    #[serde(default)]
    services: Option<Vec<String>>,
}

async fn signals(State(d): D, ConnectInfo(peer): P, body: Bytes) -> Response {
    if let Err(r) = admin(&d, &peer) {
        return r;
    }
    let body: SignalsBody = match decode(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let name = body.signal.unwrap_or_default();
    let Ok(sig) = name.parse::<nix::sys::signal::Signal>() else {
        return bad(format!("invalid signal name {name:?}"));
    };
    let services = body.services.unwrap_or_default();
    if services.is_empty() {
        return bad("must specify one or more services");
    }
    let errors: Vec<String> = services
        .iter()
        .filter_map(|s| services::signal(&d, s, sig).err())
        .collect();
    if errors.is_empty() {
        sync(json!(true))
    } else {
        error(500, errors.join("; "), None)
    }
}

async fn checks_get(State(d): D, ConnectInfo(peer): P, Query(q): Q) -> Response {
    if let Err(r) = user(&peer) {
        return r;
    }
    let level = param(&q, "level").filter(|l| !l.is_empty());
    if let Some(l) = level {
        if l != "alive" && l != "ready" {
            return bad(format!("level must be \"alive\" or \"ready\", not {l:?}"));
        }
    }
    sync(crate::checks::list(&d, level, &list_param(&q, "names")))
}

async fn checks_post(State(d): D, ConnectInfo(peer): P, body: Bytes) -> Response {
    if let Err(r) = admin(&d, &peer) {
        return r;
    }
    let v: Value = match decode(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let names: Vec<String> = v["checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let active = match v["action"].as_str() {
        Some("start") => true,
        Some("stop") => false,
        other => return bad(format!("invalid action {:?}", other.unwrap_or(""))),
    };
    if names.is_empty() {
        return bad("must specify checks");
    }
    match crate::checks::set_active(&d, &names, active) {
        Ok(changed) => {
            d.bump();
            sync(json!({"changed": changed}))
        }
        Err(e) => bad(e),
    }
}

fn notice_visible(n: &crate::state::Notice, uid: u32, all: bool, user_id: Option<u32>) -> bool {
    if all {
        return true;
    }
    match user_id {
        Some(want) => n.user_id == Some(want) || n.user_id.is_none(),
        None => n.user_id.is_none() || n.user_id == Some(uid),
    }
}

async fn notices_get(State(d): D, ConnectInfo(peer): P, Query(q): Q) -> Response {
    let Some(uid) = peer.uid else {
        return error(
            403,
            "cannot determine UID of request, so cannot retrieve notices",
            None,
        );
    };
    let is_admin = uid == 0 || uid == d.uid;
    let all = param(&q, "users") == Some("all");
    let user_id = match param(&q, "user-id") {
        Some(s) => match s.parse::<u32>() {
            Ok(u) => Some(u),
            Err(_) => return bad(format!("invalid user-id {s:?}")),
        },
        None => None,
    };
    if (all || user_id.is_some()) && !is_admin {
        return error(
            403,
            "only admins may use the \"users\" or \"user-id\" filters",
            None,
        );
    }
    if all && user_id.is_some() {
        return bad("cannot use both \"users\" and \"user-id\" parameters");
    }
    let types = list_param(&q, "types");
    let keys = list_param(&q, "keys");
    let known = ["change-update", "custom", "warning"];
    if !types.is_empty() && types.iter().all(|t| !known.contains(&t.as_str())) {
        return sync(json!([]));
    }
    let after = match param(&q, "after").filter(|a| !a.is_empty()) {
        Some(a) => match parse_rfc3339(a) {
            Ok(t) => Some(t),
            Err(e) => return bad(format!("invalid \"after\" timestamp: {e}")),
        },
        None => None,
    };
    let timeout = match param(&q, "timeout").filter(|t| !t.is_empty()) {
        Some(t) => match parse_duration(t) {
            Ok(t) => Some(t),
            Err(e) => return bad(format!("invalid timeout: {e}")),
        },
        None => None,
    };
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut rx = d.subscribe();
    loop {
        let found: Vec<Value> = {
            let inner = d.lock();
            let mut list: Vec<&crate::state::Notice> = inner
                .state
                .notices
                .values()
                .filter(|n| notice_visible(n, uid, all, user_id))
                .filter(|n| types.is_empty() || types.contains(&n.r#type))
                .filter(|n| keys.is_empty() || keys.contains(&n.key))
                .filter(|n| after.is_none_or(|a| n.last_repeated > a))
                .collect();
            list.sort_by_key(|n| n.last_repeated);
            list.into_iter().map(|n| n.to_json()).collect()
        };
        if !found.is_empty() || deadline.is_none() {
            return sync(Value::Array(found));
        }
        let Some(dl) = deadline else {
            return sync(json!([]));
        };
        if tokio::time::timeout_at(dl, rx.changed()).await.is_err() {
            return sync(json!([]));
        }
    }
}

fn valid_custom_key(key: &str) -> bool {
    // ^[a-z0-9]+(-[a-z0-9]+)*(\.[a-z0-9]+(-[a-z0-9]+)*)+(/[a-z0-9]+(-[a-z0-9]+)*)+$
    let words_ok = |s: &str| {
        !s.is_empty()
            && s.split('-').all(|w| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
    };
    let mut parts = key.split('/');
    let Some(domain) = parts.next() else {
        return false;
    };
    let rest: Vec<&str> = parts.collect();
    let labels: Vec<&str> = domain.split('.').collect();
    key.len() <= 256
        && labels.len() >= 2
        && labels.iter().all(|l| words_ok(l))
        && !rest.is_empty()
        && rest.iter().all(|p| words_ok(p))
}

async fn notices_post(State(d): D, ConnectInfo(peer): P, body: Bytes) -> Response {
    let Some(uid) = peer.uid else {
        return error(
            403,
            "cannot determine UID of request, so cannot create notice",
            None,
        );
    };
    let v: Value = match decode(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if v["action"] != "add" {
        return bad(format!(
            "invalid action {:?}",
            v["action"].as_str().unwrap_or("")
        ));
    }
    if v["type"] != "custom" {
        return bad(format!(
            "invalid type {:?} (can only add \"custom\" notices)",
            v["type"].as_str().unwrap_or("")
        ));
    }
    let key = v["key"].as_str().unwrap_or("");
    if !valid_custom_key(key) {
        return bad(format!("invalid key {key:?}"));
    }
    let repeat_after = match v["repeat-after"].as_str().filter(|s| !s.is_empty()) {
        Some(r) => match parse_duration(r) {
            Ok(r) => Some(r),
            Err(e) => return bad(format!("invalid repeat-after: {e}")),
        },
        None => None,
    };
    let mut data = BTreeMap::new();
    if let Some(obj) = v["data"].as_object() {
        for (k, val) in obj {
            let Some(s) = val.as_str() else {
                return bad(format!("data value for key {k:?} must be a string"));
            };
            data.insert(k.clone(), s.to_string());
        }
    }
    if serde_json::to_string(&data).map(|s| s.len()).unwrap_or(0) > 4096 {
        return bad("total size of data must be 4096 bytes or less");
    }
    let id = d
        .lock()
        .state
        .add_notice(Some(uid), "custom", key, data, repeat_after);
    d.bump();
    sync(json!({"id": id.to_string()}))
}

async fn notice_get(State(d): D, ConnectInfo(peer): P, Path(id): Path<String>) -> Response {
    let Some(uid) = peer.uid else {
        return error(
            403,
            "cannot determine UID of request, so cannot retrieve notice",
            None,
        );
    };
    let inner = d.lock();
    let notice = id
        .parse::<u64>()
        .ok()
        .and_then(|n| inner.state.notices.get(&n));
    match notice {
        None => error(
            404,
            format!("cannot find notice with ID {id:?}"),
            Some("not-found"),
        ),
        Some(n) if !(uid == 0 || uid == d.uid || n.user_id.is_none() || n.user_id == Some(uid)) => {
            error(
                403,
                "not allowed to access notice",
                Some("permission-denied"),
            )
        }
        Some(n) => sync(n.to_json()),
    }
}

async fn logs(State(d): D, ConnectInfo(peer): P, Query(q): Q) -> Response {
    if let Err(r) = user(&peer) {
        return r;
    }
    let services = list_param(&q, "services");
    let follow = param(&q, "follow") == Some("true");
    let n: i64 = match param(&q, "n") {
        Some(s) => match s.parse() {
            Ok(n) if n >= -1 => n,
            _ => return bad(format!("n must be -1, 0 or a positive integer, got {s:?}")),
        },
        None if follow => 0,
        None => 30,
    };
    let collect = move |since: Option<time::OffsetDateTime>| {
        let inner = d.lock();
        let mut lines: Vec<(time::OffsetDateTime, String, String)> = Vec::new();
        for (name, svc) in &inner.services {
            if !services.is_empty()
                && !services.contains(name)
                && !services.iter().any(|s| s == "all")
            {
                continue;
            }
            let logs = svc.logs.lock().unwrap_or_else(|p| p.into_inner());
            for (t, line) in logs.lines() {
                if since.is_none_or(|s| *t > s) {
                    lines.push((*t, name.clone(), line.clone()));
                }
            }
        }
        lines.sort_by_key(|l| l.0);
        lines
    };
    let mut lines = collect(None);
    if n >= 0 {
        let skip = lines.len().saturating_sub(n as usize);
        lines.drain(..skip);
    }
    let to_line = |(t, s, m): &(time::OffsetDateTime, String, String)| {
        let mut l =
            json!({"time": rfc3339(*t), "service": s, "message": format!("{m}\n")}).to_string();
        l.push('\n');
        l
    };
    let initial: String = lines.iter().map(to_line).collect();
    if !follow {
        return ([(header::CONTENT_TYPE, "application/x-ndjson")], initial).into_response();
    }
    let last = lines.last().map(|l| l.0).unwrap_or_else(crate::util::now);
    let stream = futures_util::stream::once(async move {
        Ok::<_, std::convert::Infallible>(Bytes::from(initial))
    })
    .chain(futures_util::stream::unfold(last, move |mut last| {
        let collect = collect.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let new = collect(Some(last));
                if let Some(l) = new.last() {
                    last = l.0;
                    let text: String = new.iter().map(to_line).collect();
                    return Some((Ok(Bytes::from(text)), last));
                }
            }
        }
    }));
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}
