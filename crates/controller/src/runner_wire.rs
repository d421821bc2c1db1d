//! The wire format between the controller and `ward-hook-runner`, the process that starts
//! hooks inside a unit's long-lived charm sandbox. Std-only: the runner includes this
//! file. Every field is a u32 length (big-endian) and its bytes.
//!
//! - request: program, cwd, `args` count then each arg, `env` count then key and value;
//! - answer 1: the hook's pid (u32), as soon as it started (0 = it could not start,
//!   followed by the error text as one field);
//! - answer 2: exit code as i32 (i32::MIN when killed by a signal), stdout, stderr.

use std::io::{Read, Write};

/// One hook to start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Executable.
    pub program: String,
    /// Working directory.
    pub cwd: String,
    /// Arguments.
    pub args: Vec<String>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
}

/// Writes one length-prefixed field.
pub fn put(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("field too long"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(bytes)
}

/// Reads one length-prefixed field (at most 256 MiB).
pub fn get(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 256 << 20 {
        return Err(std::io::Error::other("field too long"));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

fn get_string(r: &mut impl Read) -> std::io::Result<String> {
    String::from_utf8(get(r)?).map_err(|_| std::io::Error::other("field is not UTF-8"))
}

fn get_count(r: &mut impl Read) -> std::io::Result<usize> {
    let mut n = [0u8; 4];
    r.read_exact(&mut n)?;
    Ok(u32::from_be_bytes(n) as usize)
}

impl Request {
    /// Sends the request.
    pub fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        put(w, self.program.as_bytes())?;
        put(w, self.cwd.as_bytes())?;
        w.write_all(&(self.args.len() as u32).to_be_bytes())?;
        for a in &self.args {
            put(w, a.as_bytes())?;
        }
        w.write_all(&(self.env.len() as u32).to_be_bytes())?;
        for (k, v) in &self.env {
            put(w, k.as_bytes())?;
            put(w, v.as_bytes())?;
        }
        w.flush()
    }

    /// Reads a request.
    pub fn read(r: &mut impl Read) -> std::io::Result<Request> {
        let program = get_string(r)?;
        let cwd = get_string(r)?;
        let n = get_count(r)?;
        let mut args = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            args.push(get_string(r)?);
        }
        let n = get_count(r)?;
        let mut env = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            env.push((get_string(r)?, get_string(r)?));
        }
        Ok(Request {
            program,
            cwd,
            args,
            env,
        })
    }
}
