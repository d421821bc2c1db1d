//! `ward-hook-runner <socket>`: runs inside a unit's long-lived charm sandbox and starts
//! the unit's hooks there, so a hook costs a process spawn instead of a new sandbox.
//! One connection = one hook: read the request, answer the pid, then the exit code and
//! the output. Std-only.

#[path = "../runner_wire.rs"]
#[allow(dead_code)]
mod wire;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode, Stdio};

fn serve(mut conn: UnixStream) -> std::io::Result<()> {
    // Buffered: the request is a few hundred small fields, one read each otherwise.
    let req = wire::Request::read(&mut std::io::BufReader::new(&conn))?;
    let spawned = Command::new(&req.program)
        .args(&req.args)
        .env_clear()
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&req.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            conn.write_all(&0u32.to_be_bytes())?;
            return wire::put(
                &mut conn,
                format!("cannot start {}: {e}", req.program).as_bytes(),
            );
        }
    };
    conn.write_all(&child.id().to_be_bytes())?;
    conn.flush()?;
    // Read both pipes on threads; a daemon the hook left running may keep them open, so
    // after the hook exits take what arrived within 2 s rather than wait for it to die.
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut p) = pipe {
                let mut buf = [0u8; 8192];
                while let Ok(n) = p.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    v.extend_from_slice(&buf[..n]);
                }
            }
            let _ = tx.send(v);
        });
        rx
    };
    let out_rx = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err_rx = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = child.wait()?;
    let grace = std::time::Duration::from_secs(2);
    let stdout = out_rx.recv_timeout(grace).unwrap_or_default();
    let stderr = err_rx.recv_timeout(grace).unwrap_or_default();
    let code = status.code().unwrap_or(if status.signal().is_some() {
        i32::MIN
    } else {
        -1
    });
    let mut answer = Vec::with_capacity(12 + stdout.len() + stderr.len());
    answer.extend_from_slice(&code.to_be_bytes());
    wire::put(&mut answer, &stdout)?;
    wire::put(&mut answer, &stderr)?;
    conn.write_all(&answer)?;
    conn.flush()
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: ward-hook-runner <socket>");
        return ExitCode::from(2);
    };
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ward-hook-runner: cannot listen on {path}: {e}");
            return ExitCode::from(1);
        }
    };
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || {
            match serve(conn) {
                // A connection closed before sending a request: the controller checking
                // that the runner is up.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
                Err(e) => eprintln!("ward-hook-runner: {e}"),
                Ok(()) => {}
            }
        });
    }
    ExitCode::SUCCESS
}
