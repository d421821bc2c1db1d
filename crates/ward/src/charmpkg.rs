//! `.charm` archives (zip, in charmcraft's layout: `metadata.yaml`,
//! `config.yaml`, `actions.yaml`, `manifest.yaml`, `dispatch`, and the rest of
//! the charm's files), and finding the charm a `deploy` argument names.

use std::io::{Cursor, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;

use crate::error::{CliError, Context, Result};

/// Files and directories never packed: runtime state and caches.
const SKIP: &[&str] = &[".unit-state.db", "__pycache__", ".git"];

/// Where a charm argument points.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A charm directory.
    Dir(PathBuf),
    /// A `.charm` file.
    Archive(PathBuf),
}

impl Source {
    /// The archive bytes to upload.
    pub(crate) fn bytes(&self) -> Result<Vec<u8>> {
        match self {
            Source::Dir(d) => Ok(pack_dir(d)?.1),
            Source::Archive(f) => {
                std::fs::read(f).failed(|| format!("reading charm archive {}", f.display()))
            }
        }
    }
}

/// The nearest parent of the current directory whose `Cargo.toml` has `[workspace]`.
pub(crate) fn project_root() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]"))
        })
        .map(Path::to_path_buf)
}

/// The project's `rocks/` directory, if there is one.
pub(crate) fn project_rocks() -> Option<PathBuf> {
    project_root()
        .map(|p| p.join("rocks"))
        .filter(|r| r.is_dir())
}

/// Directories searched for a charm given by name: `$WARD_CHARMS`
/// (colon-separated), else `<project>/target/charms` and `./charms-built`.
pub(crate) fn search_dirs() -> Vec<PathBuf> {
    if let Some(v) = std::env::var_os("WARD_CHARMS").filter(|v| !v.is_empty()) {
        return std::env::split_paths(&v).collect();
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    vec![
        project_root()
            .unwrap_or_else(|| cwd.clone())
            .join("target/charms"),
        cwd.join("charms-built"),
    ]
}

/// Resolve `ward deploy`'s charm argument: an existing path, else a built charm by name.
pub(crate) fn resolve(arg: &str) -> Result<Source> {
    let p = Path::new(arg);
    if p.is_dir() {
        return Ok(Source::Dir(p.to_path_buf()));
    }
    if p.is_file() {
        return Ok(Source::Archive(p.to_path_buf()));
    }
    if arg.contains('/') || arg.ends_with(".charm") {
        return Err(CliError::usage(format!(
            "charm path {arg:?} does not exist: give a charm directory or a .charm file (`ward pack <dir>` makes one)"
        )));
    }
    let dirs = search_dirs();
    for d in &dirs {
        let dir = d.join(arg);
        if dir.join("dispatch").exists() || dir.join("metadata.yaml").is_file() {
            return Ok(Source::Dir(dir));
        }
        let file = d.join(format!("{arg}.charm"));
        if file.is_file() {
            return Ok(Source::Archive(file));
        }
    }
    let looked: Vec<String> = dirs
        .iter()
        .flat_map(|d| {
            [
                d.join(arg).display().to_string() + "/",
                d.join(format!("{arg}.charm")).display().to_string(),
            ]
        })
        .collect();
    Err(CliError::usage(format!(
        "no built charm named {arg:?}: looked in {}. Give the charm's directory or .charm file, \
         or put a built charm (a directory with metadata.yaml and dispatch, or `ward pack`'s .charm) \
         under one of those, or point WARD_CHARMS at where your charms are built",
        looked.join(", ")
    )))
}

fn yaml_to_string(v: &serde_yaml_ng::Value) -> Result<String> {
    serde_yaml_ng::to_string(v).failed(|| "writing YAML".into())
}

/// The generated files charmcraft puts in a `.charm` when the directory lacks them.
fn generated(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    if !dir.join("metadata.yaml").is_file() {
        let craft_path = dir.join("charmcraft.yaml");
        let craft = std::fs::read_to_string(&craft_path).map_err(|_| {
            CliError::usage(format!(
                "{} is not a charm directory: it has neither metadata.yaml nor charmcraft.yaml",
                dir.display()
            ))
        })?;
        let craft: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(&craft).map_err(|e| {
            CliError::usage(format!("{} does not parse: {e}", craft_path.display()))
        })?;
        let mut meta = serde_yaml_ng::Mapping::new();
        for (k, v) in &craft {
            let key = k.as_str().unwrap_or_default();
            match key {
                "config" if !dir.join("config.yaml").exists() => {
                    out.push(("config.yaml".into(), yaml_to_string(v)?));
                }
                "actions" if !dir.join("actions.yaml").exists() => {
                    out.push(("actions.yaml".into(), yaml_to_string(v)?));
                }
                "type" | "bases" | "base" | "build-base" | "platforms" | "parts" | "config"
                | "actions" | "charmhub" | "links" => {}
                _ => {
                    meta.insert(k.clone(), v.clone());
                }
            }
        }
        out.push((
            "metadata.yaml".into(),
            yaml_to_string(&serde_yaml_ng::Value::Mapping(meta))?,
        ));
    }
    if !dir.join("manifest.yaml").is_file() {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        out.push((
            "manifest.yaml".into(),
            format!(
                "charmcraft-version: ward-{}\ncharmcraft-started-at: '{now}'\nbases:\n- name: ubuntu\n  channel: '22.04'\n  architectures:\n  - {}\n",
                env!("CARGO_PKG_VERSION"),
                match std::env::consts::ARCH {
                    "x86_64" => "amd64",
                    "aarch64" => "arm64",
                    other => other,
                }
            ),
        ));
    }
    Ok(out)
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if SKIP.iter().any(|s| name == *s) || name.to_string_lossy().ends_with(".charm") {
            continue;
        }
        let r = rel.join(&name);
        if e.file_type()?.is_dir() {
            walk(root, &r, out)?;
        } else {
            out.push(r);
        }
    }
    Ok(())
}

/// Pack a charm directory; returns the charm's name and the archive bytes.
/// The same files give the same bytes (timestamps are fixed).
pub(crate) fn pack_dir(dir: &Path) -> Result<(String, Vec<u8>)> {
    if !dir.is_dir() {
        return Err(CliError::usage(format!(
            "charm directory {} does not exist",
            dir.display()
        )));
    }
    let dispatch = dir.join("dispatch");
    match std::fs::metadata(&dispatch) {
        Ok(m) if m.permissions().mode() & 0o111 != 0 => {}
        Ok(_) => {
            return Err(CliError::usage(format!(
                "{} is not executable: `chmod +x` it",
                dispatch.display()
            )))
        }
        Err(_) => {
            return Err(CliError::usage(format!(
                "{} has no dispatch: a charm needs an executable `dispatch` (charmcraft's script, or the charm binary itself)",
                dir.display()
            )))
        }
    }
    let gen = generated(dir)?;
    let meta_src = gen
        .iter()
        .find(|(n, _)| n == "metadata.yaml")
        .map(|(_, c)| c.clone());
    let meta_text = match meta_src {
        Some(m) => m,
        None => std::fs::read_to_string(dir.join("metadata.yaml"))
            .failed(|| format!("reading {}", dir.join("metadata.yaml").display()))?,
    };
    let name = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&meta_text)
        .ok()
        .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_string))
        .ok_or_else(|| {
            CliError::usage(format!(
                "{}: metadata has no `name:`; add the charm's name",
                dir.display()
            ))
        })?;

    let mut files = Vec::new();
    walk(dir, Path::new(""), &mut files).failed(|| format!("reading {}", dir.display()))?;
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let base = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (n, content) in &gen {
        w.start_file(n.as_str(), base.unix_permissions(0o644))
            .failed(|| format!("packing {n}"))?;
        w.write_all(content.as_bytes())
            .failed(|| format!("packing {n}"))?;
    }
    for rel in files {
        let p = dir.join(&rel);
        let name = rel.to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&p).failed(|| format!("reading {}", p.display()))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&p).failed(|| format!("reading {}", p.display()))?;
            w.add_symlink(name.as_str(), target.to_string_lossy(), base)
                .failed(|| format!("packing {}", p.display()))?;
            continue;
        }
        let content = std::fs::read(&p).failed(|| format!("reading {}", p.display()))?;
        w.start_file(
            name.as_str(),
            base.unix_permissions(meta.permissions().mode() & 0o777),
        )
        .failed(|| format!("packing {}", p.display()))?;
        w.write_all(&content)
            .failed(|| format!("packing {}", p.display()))?;
    }
    let bytes = w
        .finish()
        .failed(|| format!("packing {}", dir.display()))?
        .into_inner();
    Ok((name, bytes))
}

/// Errors unpacking an uploaded archive.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnpackError {
    /// Not a zip archive, or a broken one.
    #[error("not a valid .charm (zip) archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    /// An entry that would land outside the charm directory.
    #[error("archive entry {0:?} points outside the charm directory")]
    Escapes(String),
    /// Writing the charm failed.
    #[error("writing {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Unpack a `.charm` archive into `dest` (which must not exist).
pub(crate) fn unpack(bytes: &[u8], dest: &Path) -> std::result::Result<(), UnpackError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UnpackError::Io { path, source }
    };
    let mut a = zip::ZipArchive::new(Cursor::new(bytes))?;
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    for i in 0..a.len() {
        let mut f = a.by_index(i)?;
        let raw_name = f.name().to_string();
        let rel = f
            .enclosed_name()
            .ok_or_else(|| UnpackError::Escapes(raw_name.clone()))?;
        let out = dest.join(&rel);
        if f.is_dir() {
            std::fs::create_dir_all(&out).map_err(io(&out))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        if f.is_symlink() {
            let mut target = String::new();
            f.read_to_string(&mut target).map_err(io(&out))?;
            let t = Path::new(&target);
            if t.is_absolute() || t.components().any(|c| c == std::path::Component::ParentDir) {
                return Err(UnpackError::Escapes(raw_name));
            }
            std::os::unix::fs::symlink(t, &out).map_err(io(&out))?;
            continue;
        }
        let mut file = std::fs::File::create(&out).map_err(io(&out))?;
        std::io::copy(&mut f, &mut file).map_err(io(&out))?;
        let mode = f.unix_mode().unwrap_or(0o644) & 0o777;
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(mode | 0o400))
            .map_err(io(&out))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_then_unpack_keeps_files_modes_and_generates_the_layout() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("c");
        std::fs::create_dir_all(c.join("src")).unwrap();
        std::fs::write(
            c.join("charmcraft.yaml"),
            "name: demo\ntype: charm\nsummary: s\nconfig:\n  options:\n    a: {type: int}\nactions:\n  go: {}\n",
        )
        .unwrap();
        std::fs::write(c.join("dispatch"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(c.join("dispatch"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::write(c.join("src/charm.py"), "x").unwrap();
        let (name, bytes) = pack_dir(&c).unwrap();
        assert_eq!(name, "demo");
        assert_eq!(pack_dir(&c).unwrap().1.len(), bytes.len());
        let out = d.path().join("out");
        unpack(&bytes, &out).unwrap();
        for f in [
            "metadata.yaml",
            "config.yaml",
            "actions.yaml",
            "manifest.yaml",
            "dispatch",
            "src/charm.py",
        ] {
            assert!(out.join(f).is_file(), "{f}");
        }
        let mode = std::fs::metadata(out.join("dispatch"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        let meta = controller::charmdir::read_meta(&out).unwrap();
        assert_eq!(meta.name, "demo");
        assert!(meta.config.contains_key("a"));
        assert!(meta.actions.contains_key("go"));
    }

    #[test]
    fn a_charm_without_dispatch_is_refused_naming_the_fix() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("metadata.yaml"), "name: x\n").unwrap();
        let e = pack_dir(d.path()).unwrap_err();
        assert!(e.message.contains("dispatch"), "{e}");
    }

    #[test]
    fn garbage_is_not_a_charm() {
        let d = tempfile::tempdir().unwrap();
        assert!(unpack(b"not a zip", &d.path().join("x")).is_err());
    }
}
