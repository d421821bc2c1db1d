//! What the interface tests share: running a script with the test Python.

use std::io::Write;

/// Runs `script` with the Python at `py`, feeding `input` as JSON on stdin and reading
/// JSON from stdout; panics with the script's stderr when it fails.
pub fn run_python(py: &str, script: &str, input: serde_json::Value) -> serde_json::Value {
    let mut child = std::process::Command::new(py)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from python")
}

/// A requirer charm asking for `db-0`'s certificate (its DNS name and address) on the
/// `certificates` endpoint, in unit or app mode; keeps what it was issued.
pub struct Requirer {
    /// Unit or app mode.
    pub mode: interfaces::tls_requirer::Mode,
    /// The certificate and key, once accepted.
    pub issued: Option<interfaces::tls_requirer::Issued>,
}

impl Requirer {
    /// A requirer in `mode` with nothing issued yet.
    pub fn new(mode: interfaces::tls_requirer::Mode) -> Self {
        Requirer { mode, issued: None }
    }
}

impl charm::Charm for Requirer {
    fn handle(&mut self, ctx: &mut charm::Context<'_>, _: &charm::Event) -> charm::Result<()> {
        self.issued = interfaces::tls_requirer::TlsRequirer::new("certificates")
            .mode(self.mode)
            .reconcile(
                ctx,
                &interfaces::tls_certificates::CsrRequest::new("db-0")
                    .dns("db-0.ward.local")
                    .ip("127.1.0.3".parse().unwrap()),
            )?;
        Ok(())
    }
}
