//! Minimal HTTP/1.1 over a Unix socket: one request per connection, the response read
//! to the end, chunked bodies decoded, Pebble's JSON envelope unpacked.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::{Error, Result};

/// A raw response.
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Pebble's JSON envelope.
pub(crate) struct Envelope {
    pub result: Value,
    pub change: Option<String>,
}

pub(crate) fn request(
    socket: &Path,
    timeout: Duration,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response> {
    let conn_err = |source| Error::Connection {
        path: socket.to_path_buf(),
        source,
    };
    let mut s = UnixStream::connect(socket).map_err(conn_err)?;
    s.set_read_timeout(Some(timeout)).map_err(conn_err)?;
    s.set_write_timeout(Some(timeout)).map_err(conn_err)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    let accepts_json = !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("accept"));
    if accepts_json {
        head.push_str("Accept: application/json\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or_default();
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).map_err(conn_err)?;
    s.write_all(body).map_err(conn_err)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(conn_err)?;
    parse_response(&raw).map_err(|reason| Error::Protocol {
        endpoint: path.into(),
        reason,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn parse_response(raw: &[u8]) -> std::result::Result<Response, String> {
    let end = find(raw, b"\r\n\r\n").ok_or("incomplete HTTP response head")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "HTTP head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[end + 4..];
    resp.body = if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)?
    } else if let Some(n) = resp
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        rest.get(..n)
            .ok_or("body shorter than Content-Length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(resp)
}

fn dechunk(mut data: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(data, b"\r\n").ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..eol]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("truncated chunk")?);
        data = data.get(size + 2..).ok_or("truncated chunk")?;
    }
}

pub(crate) fn envelope(method: &str, path: &str, resp: &Response) -> Result<Envelope> {
    let endpoint = path.split('?').next().unwrap_or(path).to_string();
    let ct = resp.header("content-type").unwrap_or_default();
    if !ct.starts_with("application/json") {
        return Err(Error::Protocol {
            endpoint,
            reason: format!("HTTP {} with content type {ct:?}", resp.status),
        });
    }
    let v: Value = serde_json::from_slice(&resp.body).map_err(|e| Error::Protocol {
        endpoint: endpoint.clone(),
        reason: format!("body is not JSON: {e}"),
    })?;
    let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
    if kind == "error" || resp.status >= 400 {
        let result = v.get("result").cloned().unwrap_or(Value::Null);
        return Err(Error::Api {
            method: method.into(),
            endpoint,
            code: resp.status,
            kind: result
                .get("kind")
                .and_then(Value::as_str)
                .map(str::to_string),
            message: result
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
    }
    Ok(Envelope {
        result: v.get("result").cloned().unwrap_or(Value::Null),
        change: v.get("change").and_then(Value::as_str).map(str::to_string),
    })
}

/// Percent-encodes a query value.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' | b',' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A 32-hex-character multipart boundary, as ops uses.
pub(crate) fn boundary() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// One part of a multipart body.
pub(crate) struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub body: Vec<u8>,
}

pub(crate) fn multipart(resp: &Response) -> std::result::Result<Vec<Part>, String> {
    let ct = resp.header("content-type").unwrap_or_default();
    let b = ct
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .ok_or_else(|| format!("not multipart: {ct:?}"))?
        .trim_matches('"');
    let delim = format!("--{b}");
    let mut parts = Vec::new();
    let mut rest = &resp.body[..];
    let start = find(rest, delim.as_bytes()).ok_or("no multipart boundary in body")?;
    rest = &rest[start + delim.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = rest.strip_prefix(b"\r\n").ok_or("malformed multipart")?;
        let head_end = find(rest, b"\r\n\r\n").ok_or("malformed part head")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        rest = &rest[head_end + 4..];
        let next = find(rest, format!("\r\n{delim}").as_bytes()).ok_or("unterminated part")?;
        let body = rest[..next].to_vec();
        rest = &rest[next + 2 + delim.len()..];
        let disp = head
            .split("\r\n")
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .unwrap_or_default();
        let param = |key: &str| {
            disp.split(';')
                .map(str::trim)
                .find_map(|p| p.strip_prefix(&format!("{key}=")))
                .map(|v| v.trim_matches('"').to_string())
        };
        parts.push(Part {
            name: param("name").unwrap_or_default(),
            filename: param("filename"),
            body,
        });
    }
}
