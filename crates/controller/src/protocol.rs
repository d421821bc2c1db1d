//! Wire format between the `ward-jujuc` client and the hook-tool server.
//!
//! Std-only on purpose: the client binary includes this file directly so a tool
//! call costs about one process spawn. Every integer is a big-endian `u32`;
//! every blob is a length followed by its bytes.
//!
//! Request: `WJC1`, context id, cwd, tool name, argc + args, file count +
//! (path, content) pairs, stdin flag (`u32` 0/1) + stdin.
//! Response: exit code, stdout, stderr.

use std::io::{self, Read, Write};

/// Magic bytes that open every request.
pub const MAGIC: &[u8; 4] = b"WJC1";
/// Largest blob either side accepts (args, files, stdin, output).
pub const MAX_BLOB: usize = 32 * 1024 * 1024;

/// One hook-tool invocation as sent by the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolRequest {
    /// `JUJU_CONTEXT_ID` of the calling hook.
    pub context_id: Vec<u8>,
    /// Working directory of the caller.
    pub cwd: Vec<u8>,
    /// Tool name (argv[0] basename), e.g. `relation-get`.
    pub tool: Vec<u8>,
    /// Arguments after the tool name, raw bytes (may be non-UTF-8).
    pub args: Vec<Vec<u8>>,
    /// Files the client read on the server's behalf: (path as given, content or None if unreadable).
    pub files: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Standard input, when the tool was asked to read it.
    pub stdin: Option<Vec<u8>>,
}

/// The server's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolResponse {
    /// Process exit code for the client.
    pub code: u32,
    /// Bytes for the client's stdout.
    pub stdout: Vec<u8>,
    /// Bytes for the client's stderr.
    pub stderr: Vec<u8>,
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_blob(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

fn get_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn get_blob(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let n = get_u32(r)? as usize;
    if n > MAX_BLOB {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "blob too large"));
    }
    let mut v = vec![0u8; n];
    r.read_exact(&mut v)?;
    Ok(v)
}

impl ToolRequest {
    /// Serialise the request.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(MAGIC);
        put_blob(&mut out, &self.context_id);
        put_blob(&mut out, &self.cwd);
        put_blob(&mut out, &self.tool);
        put_u32(&mut out, self.args.len() as u32);
        for a in &self.args {
            put_blob(&mut out, a);
        }
        put_u32(&mut out, self.files.len() as u32);
        for (p, c) in &self.files {
            put_blob(&mut out, p);
            match c {
                Some(c) => {
                    put_u32(&mut out, 1);
                    put_blob(&mut out, c);
                }
                None => put_u32(&mut out, 0),
            }
        }
        match &self.stdin {
            Some(s) => {
                put_u32(&mut out, 1);
                put_blob(&mut out, s);
            }
            None => put_u32(&mut out, 0),
        }
        out
    }

    /// Parse a request from a reader.
    pub fn decode(r: &mut impl Read) -> io::Result<Self> {
        let mut magic = [0u8; 4];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad magic"));
        }
        let context_id = get_blob(r)?;
        let cwd = get_blob(r)?;
        let tool = get_blob(r)?;
        let argc = get_u32(r)? as usize;
        if argc > 65536 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "too many args"));
        }
        let mut args = Vec::with_capacity(argc);
        for _ in 0..argc {
            args.push(get_blob(r)?);
        }
        let nfiles = get_u32(r)? as usize;
        if nfiles > 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "too many files"));
        }
        let mut files = Vec::with_capacity(nfiles);
        for _ in 0..nfiles {
            let p = get_blob(r)?;
            let c = if get_u32(r)? == 1 {
                Some(get_blob(r)?)
            } else {
                None
            };
            files.push((p, c));
        }
        let stdin = if get_u32(r)? == 1 {
            Some(get_blob(r)?)
        } else {
            None
        };
        Ok(ToolRequest {
            context_id,
            cwd,
            tool,
            args,
            files,
            stdin,
        })
    }
}

impl ToolResponse {
    /// Serialise the response.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.stdout.len() + self.stderr.len());
        put_u32(&mut out, self.code);
        put_blob(&mut out, &self.stdout);
        put_blob(&mut out, &self.stderr);
        out
    }

    /// Parse a response.
    pub fn decode(r: &mut impl Read) -> io::Result<Self> {
        let code = get_u32(r)?;
        let stdout = get_blob(r)?;
        let stderr = get_blob(r)?;
        Ok(ToolResponse {
            code,
            stdout,
            stderr,
        })
    }
}

/// Which argument values name files the client must read for the server:
/// `--file X` for relation-set/state-set (`-` means stdin) and `k#file=/p` for
/// secret-add/secret-set. Returns (paths to read, whether stdin is needed).
pub fn files_needed(tool: &str, args: &[Vec<u8>]) -> (Vec<Vec<u8>>, bool) {
    let mut paths = Vec::new();
    let mut stdin = false;
    match tool {
        "relation-set" | "state-set" => {
            let mut i = 0;
            while i < args.len() {
                let a = &args[i];
                if a.as_slice() == b"--" {
                    break;
                }
                let val = if a.as_slice() == b"--file" {
                    i += 1;
                    args.get(i).cloned()
                } else {
                    a.strip_prefix(b"--file=".as_slice()).map(|v| v.to_vec())
                };
                if let Some(v) = val {
                    if v.as_slice() == b"-" {
                        stdin = true;
                    } else {
                        paths.push(v);
                    }
                }
                i += 1;
            }
        }
        "secret-add" | "secret-set" => {
            let mut i = 0;
            while i < args.len() {
                let a = &args[i];
                if a.as_slice() == b"--file" {
                    i += 1;
                    paths.extend(args.get(i).cloned());
                } else if let Some(v) = a.strip_prefix(b"--file=".as_slice()) {
                    paths.push(v.to_vec());
                } else if let Some(pos) = find(a, b"#file=") {
                    paths.push(a[pos + 6..].to_vec());
                }
                i += 1;
            }
        }
        _ => {}
    }
    (paths, stdin)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Write a whole message and flush.
pub fn write_all(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    w.write_all(bytes)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore};

    #[test]
    fn round_trips() {
        let req = ToolRequest {
            context_id: b"ctx".to_vec(),
            cwd: b"/tmp".to_vec(),
            tool: b"relation-set".to_vec(),
            args: vec![b"--file".to_vec(), b"-".to_vec(), vec![0xff, 0xfe]],
            files: vec![
                (b"/a".to_vec(), Some(b"x".to_vec())),
                (b"/b".to_vec(), None),
            ],
            stdin: Some(b"k: v".to_vec()),
        };
        assert_eq!(
            ToolRequest::decode(&mut req.encode().as_slice()).unwrap(),
            req
        );
        let resp = ToolResponse {
            code: 2,
            stdout: b"o".to_vec(),
            stderr: b"ERROR e\n".to_vec(),
        };
        assert_eq!(
            ToolResponse::decode(&mut resp.encode().as_slice()).unwrap(),
            resp
        );
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        let mut rng = rand::thread_rng();
        let good = ToolRequest {
            tool: b"is-leader".to_vec(),
            ..Default::default()
        }
        .encode();
        for n in 0..good.len() {
            assert!(ToolRequest::decode(&mut &good[..n]).is_err());
        }
        for _ in 0..2000 {
            let len = rng.gen_range(0..64);
            let mut b = vec![0u8; len];
            rng.fill_bytes(&mut b);
            if rng.gen_bool(0.5) && b.len() >= 4 {
                b[..4].copy_from_slice(MAGIC);
            }
            let _ = ToolRequest::decode(&mut b.as_slice());
        }
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(ToolRequest::decode(&mut huge.as_slice()).is_err());
    }

    #[test]
    fn files_needed_by_tool() {
        let a = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(
            files_needed("relation-set", &a(&["-r", "1", "--file", "-"])),
            (vec![], true)
        );
        assert_eq!(
            files_needed("state-set", &a(&["--file=/x.yaml"])),
            (a(&["/x.yaml"]), false)
        );
        assert_eq!(
            files_needed("secret-add", &a(&["--label", "l", "tls-key#file=/t/k"])),
            (a(&["/t/k"]), false)
        );
        assert_eq!(
            files_needed("relation-get", &a(&["-", "u/0"])),
            (vec![], false)
        );
    }
}
