//! The hook-tool server: one Unix socket per unit, bound while that unit runs
//! a hook, serving the one context of that hook.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::context::HookContext;
use crate::protocol::{self, ToolRequest, ToolResponse, MAX_BLOB};
use crate::store::Store;

/// A running server; dropping it stops accepting and removes the socket.
pub(crate) struct ToolServer {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ToolServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serve `ctx` on `path` until dropped.
pub(crate) fn serve(
    path: &Path,
    ctx: Arc<Mutex<HookContext>>,
    store: Arc<Store>,
) -> std::io::Result<ToolServer> {
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    // Only the controller's user (the hooks run as it) may talk to the unit agent.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let Ok(std_stream) = stream.into_std() else {
                continue;
            };
            let ctx = ctx.clone();
            let store = store.clone();
            tokio::task::spawn_blocking(move || handle(std_stream, &ctx, &store));
        }
    });
    Ok(ToolServer {
        path: path.to_path_buf(),
        task,
    })
}

fn handle(mut s: std::os::unix::net::UnixStream, ctx: &Mutex<HookContext>, store: &Store) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(60)));
    let mut buf = Vec::new();
    let resp = match (&mut s).take((MAX_BLOB * 4) as u64).read_to_end(&mut buf) {
        Ok(_) => match ToolRequest::decode(&mut buf.as_slice()) {
            Ok(req) => {
                let mut c = ctx.lock().unwrap_or_else(|p| p.into_inner());
                if req.context_id != c.id.as_bytes() {
                    ToolResponse {
                        code: 1,
                        stdout: Vec::new(),
                        stderr: format!(
                            "ERROR bad request: unknown context {:?}\n",
                            String::from_utf8_lossy(&req.context_id)
                        )
                        .into_bytes(),
                    }
                } else {
                    let r = crate::tools::run(&mut c, store, &req);
                    tracing::debug!(unit = %c.unit, tool = %String::from_utf8_lossy(&req.tool), code = r.code, "hook tool");
                    r
                }
            }
            Err(e) => ToolResponse {
                code: 1,
                stdout: Vec::new(),
                stderr: format!("ERROR bad request: {e}\n").into_bytes(),
            },
        },
        Err(e) => ToolResponse {
            code: 1,
            stdout: Vec::new(),
            stderr: format!("ERROR bad request: {e}\n").into_bytes(),
        },
    };
    let _ = protocol::write_all(&mut s, &resp.encode());
}
