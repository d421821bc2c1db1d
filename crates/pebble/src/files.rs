//! The files API: read (multipart), list, write (multipart), make-dirs, remove.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::users::{group_name, resolve_ids, user_name};
use crate::util::rfc3339;

/// A file error with Pebble's kind.
#[derive(Debug, Clone)]
pub struct FileError {
    /// Message.
    pub message: String,
    /// `not-found`, `permission-denied` or `generic-file-error`.
    pub kind: &'static str,
}

impl FileError {
    fn from_io(e: &std::io::Error, what: &str) -> FileError {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => "not-found",
            std::io::ErrorKind::PermissionDenied => "permission-denied",
            _ => "generic-file-error",
        };
        FileError {
            message: format!("{what}: {}", go_error(e)),
            kind,
        }
    }

    fn generic(message: String) -> FileError {
        FileError {
            message,
            kind: "generic-file-error",
        }
    }

    /// As the JSON `error` object.
    pub fn to_json(&self) -> Value {
        json!({"message": self.message, "kind": self.kind})
    }

    /// The HTTP status for a single-path request.
    pub fn http_status(&self) -> u16 {
        match self.kind {
            "not-found" => 404,
            "permission-denied" => 403,
            _ => 400,
        }
    }
}

/// An OS error as Go prints it ("no such file or directory"), without Rust's "(os error N)".
pub fn go_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Checks that a path from a request is absolute and normalised.
pub fn check_path(path: &str) -> Result<PathBuf, FileError> {
    if !path.starts_with('/') {
        return Err(FileError::generic(format!(
            "paths must be absolute, got {path:?}"
        )));
    }
    if path.split('/').any(|c| c == ".." || c == ".") {
        return Err(FileError::generic(format!(
            "paths must be clean, got {path:?}"
        )));
    }
    Ok(PathBuf::from(path))
}

/// Reads one file for `action=read`.
pub fn read_file(path: &str) -> Result<Vec<u8>, FileError> {
    let p = check_path(path)?;
    let meta =
        std::fs::metadata(&p).map_err(|e| FileError::from_io(&e, &format!("stat {path}")))?;
    if !meta.is_file() {
        return Err(FileError::generic(format!(
            "can only read a regular file: {path:?}"
        )));
    }
    std::fs::read(&p).map_err(|e| FileError::from_io(&e, &format!("open {path}")))
}

/// A file's entry for `action=list`.
fn info(path: &Path, name: &str) -> Result<Value, FileError> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| FileError::from_io(&e, &format!("stat {}", path.display())))?;
    let ft = meta.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_file() {
        "file"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_fifo() {
        "named-pipe"
    } else if ft.is_block_device() || ft.is_char_device() {
        "device"
    } else {
        "unknown"
    };
    let modified = time::OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    )
    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let mut out = json!({
        "path": path.to_string_lossy(),
        "name": name,
        "type": kind,
        "permissions": format!("{:03o}", meta.mode() & 0o777),
        "last-modified": rfc3339(modified),
        "user-id": meta.uid(),
        "group-id": meta.gid(),
    });
    if ft.is_file() {
        out["size"] = json!(meta.len());
    }
    if let Some(u) = user_name(meta.uid()) {
        out["user"] = json!(u);
    }
    if let Some(g) = group_name(meta.gid()) {
        out["group"] = json!(g);
    }
    Ok(out)
}

/// `action=list`.
pub fn list(path: &str, pattern: Option<&str>, itself: bool) -> Result<Value, FileError> {
    let p = check_path(path)?;
    let meta =
        std::fs::metadata(&p).map_err(|e| FileError::from_io(&e, &format!("stat {path}")))?;
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "/".into());
    if !meta.is_dir() || itself {
        return Ok(Value::Array(vec![info(&p, &name)?]));
    }
    let mut entries: Vec<_> = std::fs::read_dir(&p)
        .map_err(|e| FileError::from_io(&e, &format!("open {path}")))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| pattern.is_none_or(|pat| glob(pat, n)))
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for n in entries {
        if let Ok(v) = info(&p.join(&n), &n) {
            out.push(v);
        }
    }
    Ok(Value::Array(out))
}

/// Shell glob on a name: `*`, `?`, `[…]`, `\` escapes.
pub fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(close) = p.iter().skip(1).position(|c| *c == ']') else {
                    return !n.is_empty() && n[0] == '[' && go(&p[1..], &n[1..]);
                };
                let set = &p[1..=close];
                let Some(&c) = n.first() else { return false };
                let (negate, set) = match set.first() {
                    Some('^') | Some('!') => (true, &set[1..]),
                    _ => (false, set),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != negate && go(&p[close + 2..], &n[1..])
            }
            Some('\\') if p.len() > 1 => !n.is_empty() && n[0] == p[1] && go(&p[2..], &n[1..]),
            Some(c) => !n.is_empty() && n[0] == *c && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// Ownership fields shared by write and make-dirs.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Owner {
    user_id: Option<u32>,
    user: Option<String>,
    group_id: Option<u32>,
    group: Option<String>,
}

impl Owner {
    fn ids(&self) -> Result<Option<(u32, u32)>, FileError> {
        resolve_ids(
            self.user_id,
            self.user.as_deref(),
            self.group_id,
            self.group.as_deref(),
        )
        .map_err(FileError::generic)
    }
}

fn parse_perm(p: Option<&str>, default: u32) -> Result<u32, FileError> {
    match p {
        None | Some("") => Ok(default),
        Some(text) => {
            if text.len() < 3 || text.len() > 4 {
                return Err(FileError::generic(format!(
                    "permissions must be a 3- or 4-digit octal string, got {text:?}"
                )));
            }
            u32::from_str_radix(text, 8).map_err(|_| {
                FileError::generic(format!(
                    "permissions must be a 3- or 4-digit octal string, got {text:?}"
                ))
            })
        }
    }
}

fn make_parents(dir: &Path, ids: Option<(u32, u32)>) -> Result<(), FileError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    for d in missing.iter().rev() {
        std::fs::create_dir(d)
            .map_err(|e| FileError::from_io(&e, &format!("mkdir {}", d.display())))?;
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755));
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(d, Some(uid), Some(gid))
                .map_err(|e| FileError::from_io(&e, &format!("chown {}", d.display())))?;
        }
    }
    Ok(())
}

/// Write metadata for one file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WriteItem {
    /// Path.
    pub path: String,
    #[serde(default)]
    make_dirs: Option<bool>,
    #[serde(default)]
    permissions: Option<String>,
    #[serde(flatten)]
    owner: Owner,
}

/// Writes one file atomically (temp file + rename).
pub fn write_file(item: &WriteItem, content: &[u8]) -> Result<(), FileError> {
    let p = check_path(&item.path)?;
    let perm = parse_perm(item.permissions.as_deref(), 0o644)?;
    let ids = item.owner.ids()?;
    let parent = p.parent().unwrap_or(Path::new("/"));
    if item.make_dirs.unwrap_or(false) {
        make_parents(parent, ids)?;
    }
    let tmp = parent.join(format!(
        ".{}.pebble-{:08x}",
        p.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_compat(perm)
            .open(&tmp)
            .map_err(|e| FileError::from_io(&e, &format!("open {}", item.path)))?;
        f.write_all(content)
            .map_err(|e| FileError::from_io(&e, &format!("write {}", item.path)))?;
        f.sync_all()
            .map_err(|e| FileError::from_io(&e, &format!("sync {}", item.path)))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(perm))
            .map_err(|e| FileError::from_io(&e, &format!("chmod {}", item.path)))?;
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))
                .map_err(|e| FileError::from_io(&e, &format!("chown {}", item.path)))?;
        }
        std::fs::rename(&tmp, &p)
            .map_err(|e| FileError::from_io(&e, &format!("rename {}", item.path)))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

trait ModeCompat {
    fn mode_compat(&mut self, mode: u32) -> &mut Self;
}

impl ModeCompat for std::fs::OpenOptions {
    fn mode_compat(&mut self, mode: u32) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        // Created with no group/other bits first so the content is never readable by others
        // before the final permissions (and owner) are set.
        self.mode(mode & 0o700)
    }
}

/// One make-dirs entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MkdirItem {
    /// Path.
    pub path: String,
    #[serde(default)]
    make_parents: Option<bool>,
    #[serde(default)]
    permissions: Option<String>,
    #[serde(flatten)]
    owner: Owner,
}

/// make-dirs for one entry.
pub fn make_dir(item: &MkdirItem) -> Result<(), FileError> {
    let p = check_path(&item.path)?;
    let perm = parse_perm(item.permissions.as_deref(), 0o755)?;
    let ids = item.owner.ids()?;
    if item.make_parents.unwrap_or(false) {
        if let Some(parent) = p.parent() {
            make_parents(parent, ids)?;
        }
        if p.is_dir() {
            return Ok(());
        }
    }
    std::fs::create_dir(&p).map_err(|e| FileError::from_io(&e, &format!("mkdir {}", item.path)))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(perm))
        .map_err(|e| FileError::from_io(&e, &format!("chmod {}", item.path)))?;
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(&p, Some(uid), Some(gid))
            .map_err(|e| FileError::from_io(&e, &format!("chown {}", item.path)))?;
    }
    Ok(())
}

/// One remove entry.
#[derive(Debug, Deserialize)]
pub struct RemoveItem {
    /// Path.
    pub path: String,
    #[serde(default)]
    recursive: Option<bool>,
}

/// remove for one entry.
pub fn remove(item: &RemoveItem) -> Result<(), FileError> {
    let p = check_path(&item.path)?;
    if item.recursive.unwrap_or(false) {
        match std::fs::symlink_metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(FileError::from_io(&e, &format!("remove {}", item.path))),
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p)
                .map_err(|e| FileError::from_io(&e, &format!("remove {}", item.path))),
            Ok(_) => std::fs::remove_file(&p)
                .map_err(|e| FileError::from_io(&e, &format!("remove {}", item.path))),
        }
    } else {
        let meta = std::fs::symlink_metadata(&p)
            .map_err(|e| FileError::from_io(&e, &format!("remove {}", item.path)))?;
        if meta.is_dir() {
            std::fs::remove_dir(&p)
        } else {
            std::fs::remove_file(&p)
        }
        .map_err(|e| FileError::from_io(&e, &format!("remove {}", item.path)))
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("*.yaml", "a.yaml"));
        assert!(!glob("*.yaml", "a.yml"));
        assert!(glob("a?c", "abc"));
        assert!(glob("[a-c]x", "bx"));
        assert!(!glob("[!a-c]x", "bx"));
        assert!(glob("*", ""));
    }
}
