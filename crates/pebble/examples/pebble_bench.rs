//! Measures Ward's Pebble: API request latency (against a trivial Unix-socket HTTP
//! responder measured in the same run), RSS with 10 services, and CPU while idle.
//!
//! `cargo run --release -p pebble --example pebble_bench -- <path to ward-pebble>`

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn request(socket: &Path, path: &str) -> Duration {
    let started = Instant::now();
    let mut s = UnixStream::connect(socket).expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    started.elapsed()
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn proc_field(pid: u32, file: &str, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_string())
        .unwrap_or_default()
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields
        .get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
}

fn main() {
    let binary = std::env::args()
        .nth(1)
        .expect("usage: pebble_bench <ward-pebble>");
    let dir = tempfile::tempdir().expect("tempdir");
    let layers = dir.path().join("state/layers");
    std::fs::create_dir_all(&layers).expect("layers");
    let mut layer = String::from("services:\n");
    for i in 0..10 {
        layer.push_str(&format!(
            "  svc{i}:\n    override: replace\n    command: sleep 100000\n    startup: enabled\n"
        ));
    }
    std::fs::write(layers.join("001-bench.yaml"), layer).expect("layer");
    let socket = dir.path().join("pebble.socket");
    let mut child = Command::new(&binary)
        .arg("run")
        .env("PEBBLE", dir.path().join("state"))
        .env("PEBBLE_SOCKET", &socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ward-pebble");
    while !socket.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(1500)); // the okay window of the 10 services

    // Baseline: a trivial HTTP responder on a Unix socket, same client code.
    let base_socket = dir.path().join("baseline.socket");
    let listener = UnixListener::bind(&base_socket).expect("bind baseline");
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.ends_with(b"\r\n\r\n") {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = r#"{"type":"sync","status-code":200,"status":"OK","result":{}}"#;
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes());
        }
    });
    let n = 500;
    let baseline = p50((0..n).map(|_| request(&base_socket, "/")).collect());
    let info = p50((0..n)
        .map(|_| request(&socket, "/v1/system-info"))
        .collect());
    let services = p50((0..n).map(|_| request(&socket, "/v1/services")).collect());

    let pid = child.id();
    let rss = proc_field(pid, "status", "VmRSS:");
    let before = cpu_ticks(pid);
    let idle = Duration::from_secs(5);
    std::thread::sleep(idle);
    let ticks = cpu_ticks(pid) - before;
    let hz = 100.0;
    let cpu_pct = ticks as f64 / hz / idle.as_secs_f64() * 100.0;

    println!("| measure | ward-pebble | baseline | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| GET /v1/system-info p50 | {:.3} ms | {:.3} ms | {:.2}× | < 1 ms |",
        info.as_secs_f64() * 1e3,
        baseline.as_secs_f64() * 1e3,
        info.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "| GET /v1/services p50 (10 services) | {:.3} ms | {:.3} ms | {:.2}× | < 1 ms |",
        services.as_secs_f64() * 1e3,
        baseline.as_secs_f64() * 1e3,
        services.as_secs_f64() / baseline.as_secs_f64()
    );
    println!("| RSS with 10 services | {rss} | | | < 10 MB |");
    println!(
        "| CPU while idle ({}s) | {cpu_pct:.2} % | | | ~0 |",
        idle.as_secs()
    );
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = child.wait();
}
