//! The client against a stand-in Pebble on a Unix socket that records each request and
//! answers with Pebble's documented envelopes (shared/spec/pebble-and-rocks.md §1).
//! The daemon itself (crates/pebble) will replace this stand-in in integration tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pebble_client::{Client, Error, FileOptions};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

type Answer = (u16, String, Vec<u8>);

struct Fake {
    _dir: tempfile::TempDir,
    client: Client,
    seen: Arc<Mutex<Vec<Req>>>,
}

fn json_answer(status: u16, v: Value) -> Answer {
    (
        status,
        "application/json".into(),
        v.to_string().into_bytes(),
    )
}

fn sync(result: Value) -> Answer {
    json_answer(
        200,
        json!({"type": "sync", "status-code": 200, "status": "OK", "result": result}),
    )
}

fn error(status: u16, kind: &str, message: &str) -> Answer {
    json_answer(
        status,
        json!({"type": "error", "status-code": status, "status": "Bad", "result": {"kind": kind, "message": message}}),
    )
}

fn fake(answer: impl Fn(&Req) -> Answer + Send + 'static) -> Fake {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("pebble.socket");
    let listener = UnixListener::bind(&sock).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let mut r = BufReader::new(conn);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap().to_string(),
                parts.next().unwrap().to_string(),
            );
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                headers.push((k.trim().to_lowercase(), v.trim().to_string()));
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let req = Req {
                method,
                path,
                headers,
                body,
            };
            let (status, ct, body) = answer(&req);
            s2.lock().unwrap().push(req);
            let mut conn = r.into_inner();
            // Chunked, as hyper sends bodies of unknown length.
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            conn.write_all(head.as_bytes()).unwrap();
            for chunk in body.chunks(7) {
                conn.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .unwrap();
                conn.write_all(chunk).unwrap();
                conn.write_all(b"\r\n").unwrap();
            }
            conn.write_all(b"0\r\n\r\n").unwrap();
        }
    });
    Fake {
        client: Client::new(&sock),
        _dir: dir,
        seen,
    }
}

impl Fake {
    fn last(&self) -> Req {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }
    fn body(&self) -> Value {
        serde_json::from_slice(&self.last().body).unwrap()
    }
}

fn change(id: &str, err: Option<&str>) -> Value {
    json!({"id": id, "kind": "replan", "summary": "Replan", "status": if err.is_some() {"Error"} else {"Done"}, "ready": true, "err": err,
           "tasks": [{"id": "1", "kind": "start", "summary": "Start service \"pg\"", "status": "Done", "log": [], "data": {}}]})
}

#[test]
fn layers_plan_and_services() {
    let f = fake(|r| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/v1/layers") => sync(json!(true)),
        ("GET", "/v1/plan?format=yaml") => sync(json!("services:\n  pg:\n    override: replace\n")),
        ("GET", p) if p.starts_with("/v1/services") => sync(
            json!([{"name": "pg", "startup": "enabled", "current": "active", "current-since": "2026-11-24T20:00:00Z"}]),
        ),
        ("POST", "/v1/services") => json_answer(
            202,
            json!({"type": "async", "status-code": 202, "status": "Accepted", "change": "7", "result": null}),
        ),
        ("GET", p) if p.starts_with("/v1/changes/7/wait") => sync(change("7", None)),
        _ => error(404, "not-found", "invalid API endpoint requested"),
    });
    let c = &f.client;
    c.add_layer("pg", "services: {}\n", true).unwrap();
    assert_eq!(
        f.body(),
        json!({"action": "add", "combine": true, "label": "pg", "format": "yaml", "layer": "services: {}\n"})
    );
    assert_eq!(
        f.last()
            .headers
            .iter()
            .find(|(k, _)| k == "accept")
            .unwrap()
            .1,
        "application/json"
    );
    assert!(c.plan().unwrap().contains("override: replace"));
    let svcs = c.services(&["pg", "patroni"]).unwrap();
    assert_eq!(f.last().path, "/v1/services?names=pg,patroni");
    assert!(svcs[0].is_running());
    let ch = c.replan().unwrap();
    assert_eq!(ch.id, "7");
    let waits: Vec<Req> = f
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path.contains("/wait"))
        .cloned()
        .collect();
    assert!(
        waits[0]
            .path
            .starts_with("/v1/changes/7/wait?timeout=4.000s"),
        "{}",
        waits[0].path
    );
    let posted: Value = f
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.path == "/v1/services")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .unwrap();
    assert_eq!(posted, json!({"action": "replan", "services": []}));
}

#[test]
fn a_failed_change_and_api_errors_are_typed() {
    let f = fake(|r| match r.path.as_str() {
        "/v1/services" => json_answer(
            202,
            json!({"type": "async", "status-code": 202, "status": "Accepted", "change": "9", "result": null}),
        ),
        p if p.starts_with("/v1/changes/9/wait") => sync(change(
            "9",
            Some("cannot perform the following tasks:\n- Start service \"pg\" (exited quickly)"),
        )),
        "/v1/layers" => error(400, "", "cannot parse layer YAML: yaml: line 1"),
        _ => error(404, "not-found", "nope"),
    });
    let err = f.client.start(&["pg"]).unwrap_err();
    assert!(
        matches!(&err, Error::Change { id, err, .. } if id == "9" && err.contains("exited quickly")),
        "{err}"
    );
    let err = f.client.add_layer("x", ":", false).unwrap_err();
    assert!(
        matches!(&err, Error::Api { code: 400, message, .. } if message.contains("cannot parse layer YAML")),
        "{err}"
    );
}

#[test]
fn wait_change_retries_on_504() {
    let calls = Arc::new(Mutex::new(0));
    let c2 = calls.clone();
    let f = fake(move |r| {
        if r.path.starts_with("/v1/changes/3/wait") {
            let mut n = c2.lock().unwrap();
            *n += 1;
            if *n < 3 {
                return error(504, "", "timed out waiting for change after 4s");
            }
            return sync(change("3", None));
        }
        error(404, "not-found", "nope")
    });
    f.client.wait_change("3", Duration::from_secs(20)).unwrap();
    assert_eq!(*calls.lock().unwrap(), 3);
}

#[test]
fn files_push_pull_list_make_dir_remove() {
    let f = fake(|r| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/v1/files") => {
            let ct = r
                .headers
                .iter()
                .find(|(k, _)| k == "content-type")
                .unwrap()
                .1
                .clone();
            if ct.starts_with("multipart/form-data") {
                sync(json!([{"path": "/etc/pg/key.pem"}]))
            } else {
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                if v["action"] == "remove" {
                    sync(
                        json!([{"path": "/missing", "error": {"kind": "not-found", "message": "no such file"}}]),
                    )
                } else {
                    sync(json!([{"path": "/srv/data"}]))
                }
            }
        }
        ("GET", p) if p.starts_with("/v1/files?action=read") => {
            let b = "0123456789abcdef0123456789abcdef";
            let body = format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"/etc/pg/cert.pem\"\r\n\r\nCERT\r\nDATA\r\n--{b}\r\nContent-Type: application/json\r\nContent-Disposition: form-data; name=\"response\"\r\n\r\n{}\r\n--{b}--\r\n",
                json!({"type": "sync", "status-code": 200, "status": "OK", "result": [{"path": "/etc/pg/cert.pem"}]})
            );
            (
                200,
                format!("multipart/form-data; boundary={b}"),
                body.into_bytes(),
            )
        }
        ("GET", p) if p.starts_with("/v1/files?action=list") => sync(json!([
            {"path": "/etc/pg/key.pem", "name": "key.pem", "type": "file", "size": 241, "permissions": "600", "last-modified": "2026-11-24T20:00:00Z", "user-id": 584788, "user": "postgres", "group-id": 584788, "group": "postgres"}
        ])),
        _ => error(404, "not-found", "nope"),
    });
    let c = &f.client;
    let opts = FileOptions {
        make_dirs: true,
        permissions: Some(0o600),
        user: Some("postgres".into()),
        group: Some("postgres".into()),
        ..Default::default()
    };
    c.push("/etc/pg/key.pem", b"-----BEGIN PRIVATE KEY-----\n", &opts)
        .unwrap();
    let req = f.last();
    let ct = &req
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .unwrap()
        .1;
    let boundary = ct
        .split("boundary=\"")
        .nth(1)
        .unwrap()
        .trim_end_matches('"');
    assert_eq!(boundary.len(), 32);
    let body = String::from_utf8(req.body.clone()).unwrap();
    assert!(
        body.contains(r#""permissions":"600""#)
            && body.contains(r#""make-dirs":true"#)
            && body.contains(r#""user":"postgres""#),
        "{body}"
    );
    assert!(
        body.contains("filename=\"/etc/pg/key.pem\"\r\n\r\n-----BEGIN PRIVATE KEY-----\n\r\n--"),
        "{body}"
    );

    assert_eq!(c.pull("/etc/pg/cert.pem").unwrap(), b"CERT\r\nDATA");
    assert_eq!(
        f.last()
            .headers
            .iter()
            .find(|(k, _)| k == "accept")
            .unwrap()
            .1,
        "multipart/form-data"
    );

    let files = c.list_files("/etc/pg", Some("*.pem"), false).unwrap();
    assert_eq!(
        f.last().path,
        "/v1/files?action=list&path=/etc/pg&pattern=%2A.pem"
    );
    assert_eq!(
        (files[0].mode(), files[0].user.as_deref()),
        (Some(0o600), Some("postgres"))
    );

    c.make_dir(
        "/srv/data",
        &FileOptions {
            make_dirs: true,
            permissions: Some(0o750),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        f.body(),
        json!({"action": "make-dirs", "dirs": [{"path": "/srv/data", "make-parents": true, "permissions": "750"}]})
    );
    let err = c.remove_path("/missing", true).unwrap_err();
    assert!(
        matches!(&err, Error::Path { kind, .. } if kind == "not-found"),
        "{err}"
    );
}

#[test]
fn checks_notices_signals_and_connection_errors() {
    let f = fake(|r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", p) if p.starts_with("/v1/checks") => sync(
            json!([{"name": "alive", "level": "alive", "startup": "enabled", "status": "down", "failures": 3, "threshold": 3}]),
        ),
        ("POST", "/v1/notices") => sync(json!({"id": "42"})),
        ("GET", p) if p.starts_with("/v1/notices") => sync(
            json!([{"id": "42", "type": "custom", "key": "ward.dev/backup", "occurrences": 2, "last-data": {"k": "v"}, "user-id": 0, "first-occurred": "x", "last-occurred": "x", "last-repeated": "x"}]),
        ),
        ("POST", "/v1/signals") => sync(json!(true)),
        ("GET", "/v1/system-info") => sync(json!({"version": "1.32.1", "boot-id": "b00t"})),
        _ => error(404, "not-found", "nope"),
    });
    let c = &f.client;
    let checks = c.checks(Some("alive"), &["alive"]).unwrap();
    assert_eq!(f.last().path, "/v1/checks?level=alive&names=alive");
    assert_eq!((checks[0].status.as_str(), checks[0].failures), ("down", 3));
    assert_eq!(c.notify("ward.dev/backup", &[("k", "v")]).unwrap(), "42");
    assert_eq!(
        f.body(),
        json!({"action": "add", "type": "custom", "key": "ward.dev/backup", "data": {"k": "v"}})
    );
    let n = c.notices(&["custom"], &["ward.dev/backup"]).unwrap();
    assert_eq!((n[0].occurrences, n[0].last_data["k"].as_str()), (2, "v"));
    c.send_signal("SIGHUP", &["pgbouncer-0"]).unwrap();
    assert_eq!(
        f.body(),
        json!({"signal": "SIGHUP", "services": ["pgbouncer-0"]})
    );
    assert!(c.can_connect());
    assert_eq!(c.system_info().unwrap().boot_id, "b00t");

    let gone = Client::new("/nonexistent/pebble.socket");
    assert!(!gone.can_connect());
    assert!(matches!(
        gone.services(&[]).unwrap_err(),
        Error::Connection { .. }
    ));
}

#[test]
fn a_non_json_answer_is_a_protocol_error() {
    let f = fake(|_| (200, "text/html".into(), b"<html>".to_vec()));
    assert!(matches!(
        f.client.services(&[]).unwrap_err(),
        Error::Protocol { .. }
    ));
}
