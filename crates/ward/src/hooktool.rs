//! The hook tools (`relation-get`, `status-set`, …) when no `ward-jujuc` is
//! installed: `ward` called by a tool's name forwards the call to the unit's
//! hook-tool server, exactly as `ward-jujuc` does.

use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use controller::protocol;

/// If this process was started under a hook tool's name, run the tool and
/// return its exit code.
pub(crate) fn dispatch_if_tool() -> Option<ExitCode> {
    let arg0 = std::env::args_os().next()?;
    let name = std::path::Path::new(&arg0)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    if !controller::tools::TOOL_NAMES.contains(&name.as_str()) {
        return None;
    }
    let args: Vec<Vec<u8>> = std::env::args_os().skip(1).map(|a| a.into_vec()).collect();
    Some(call(name.into_bytes(), args))
}

fn call(tool: Vec<u8>, argv: Vec<Vec<u8>>) -> ExitCode {
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
    let stdin = need_stdin.then(|| {
        let mut buf = Vec::new();
        if std::io::stdin().read_to_end(&mut buf).is_err() {
            buf.clear();
        }
        buf
    });
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
