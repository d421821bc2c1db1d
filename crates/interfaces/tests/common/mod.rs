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
