//! `ward-jujuc`: the multi-call hook-tool client.
//!
//! Installed (symlinked) under every hook-tool name (`relation-get`,
//! `status-set`, ...). It forwards argv, cwd, stdin and any files named by the
//! arguments to the unit's hook-tool server over `JUJU_AGENT_SOCKET_ADDRESS`
//! and prints the answer. Std-only so a call costs about a process spawn.

#[path = "../protocol.rs"]
#[allow(dead_code)]
mod protocol;

use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut argv: Vec<Vec<u8>> = std::env::args_os().map(|a| a.into_vec()).collect();
    if argv.is_empty() {
        eprintln!("ERROR no tool name");
        return ExitCode::from(2);
    }
    let arg0 = argv.remove(0);
    let mut tool = std::path::Path::new(std::ffi::OsStr::from_bytes(&arg0))
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_default();
    if tool == b"ward-jujuc" || tool == b"jujuc" {
        if argv.is_empty() {
            eprintln!("ERROR usage: ward-jujuc <tool> [args...]");
            return ExitCode::from(2);
        }
        tool = argv.remove(0);
    }
    let (Some(addr), Some(ctx)) = (
        std::env::var_os("JUJU_AGENT_SOCKET_ADDRESS"),
        std::env::var_os("JUJU_CONTEXT_ID"),
    ) else {
        eprintln!("ERROR JUJU_CONTEXT_ID or JUJU_AGENT_SOCKET_ADDRESS not set: not running in a hook context");
        return ExitCode::from(1);
    };
    let tool_str = String::from_utf8_lossy(&tool).into_owned();
    let (paths, need_stdin) = protocol::files_needed(&tool_str, &argv);
    let files = paths
        .into_iter()
        .map(|p| {
            let c = std::fs::read(std::ffi::OsStr::from_bytes(&p)).ok();
            (p, c)
        })
        .collect();
    let stdin = if need_stdin {
        let mut buf = Vec::new();
        if std::io::stdin().read_to_end(&mut buf).is_err() {
            buf.clear();
        }
        Some(buf)
    } else {
        None
    };
    let cwd = std::env::current_dir()
        .map(|p| p.into_os_string().into_vec())
        .unwrap_or_default();
    let req = protocol::ToolRequest {
        context_id: ctx.into_vec(),
        cwd,
        tool,
        args: argv,
        files,
        stdin,
    };
    let resp = match UnixStream::connect(&addr).and_then(|mut s| {
        protocol::write_all(&mut s, &req.encode())?;
        s.shutdown(std::net::Shutdown::Write)?;
        protocol::ToolResponse::decode(&mut s)
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "ERROR cannot reach the unit agent at {}: {e}",
                addr.to_string_lossy()
            );
            return ExitCode::from(1);
        }
    };
    let _ = std::io::stdout().write_all(&resp.stdout);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(&resp.stderr);
    ExitCode::from(resp.code.min(255) as u8)
}
