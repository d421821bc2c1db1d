//! Charm directories: metadata (`metadata.yaml` / `charmcraft.yaml`, plus
//! `config.yaml` and `actions.yaml`), the charm's content hash, and copying a
//! charm into a unit's own (writable) directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Errors reading a charm directory.
#[derive(Debug, thiserror::Error)]
pub enum CharmError {
    /// A file could not be read.
    #[error("reading charm file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A YAML file did not parse.
    #[error("parsing charm file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// Neither metadata.yaml nor charmcraft.yaml with a name.
    #[error("charm at {0} has no metadata.yaml or charmcraft.yaml with a name")]
    NoMetadata(PathBuf),
}

/// The role an endpoint plays in a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `provides:`
    Provider,
    /// `requires:`
    Requirer,
    /// `peers:`
    Peer,
}

impl Role {
    /// The string Juju uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Provider => "provider",
            Role::Requirer => "requirer",
            Role::Peer => "peer",
        }
    }
}

/// One relation endpoint a charm declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Endpoint name.
    pub name: String,
    /// Interface name.
    pub interface: String,
    /// Role.
    pub role: Role,
}

/// One config option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigOption {
    /// `string`, `int`, `float`, `boolean` or `secret`.
    #[serde(rename = "type", default = "default_type")]
    pub kind: String,
    /// Default value, if any.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
}

fn default_type() -> String {
    "string".into()
}

/// What the controller needs to know about a charm.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CharmMeta {
    /// Charm name.
    pub name: String,
    /// Relation endpoints (provides, requires, peers).
    pub endpoints: Vec<Endpoint>,
    /// Workload containers.
    pub containers: Vec<String>,
    /// Config options.
    pub config: BTreeMap<String, ConfigOption>,
    /// Action names and their declared parameter defaults.
    pub actions: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// Storage names and kinds (`filesystem` or `block`).
    #[serde(default)]
    pub storage: BTreeMap<String, String>,
    /// Each container's OCI resource and storage mounts.
    #[serde(default)]
    pub container_specs: BTreeMap<String, ContainerSpec>,
}

/// A workload container as the charm's metadata declares it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The `oci-image` resource it runs (matched against Ward's rocks).
    #[serde(default)]
    pub resource: Option<String>,
    /// `(storage name, location inside the container)`.
    #[serde(default)]
    pub mounts: Vec<(String, String)>,
}

impl CharmMeta {
    /// The endpoint called `name`.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// Default config (options with a default).
    pub fn default_config(&self) -> BTreeMap<String, serde_json::Value> {
        self.config
            .iter()
            .filter_map(|(k, o)| o.default.clone().map(|d| (k.clone(), d)))
            .collect()
    }
}

fn read_yaml(path: &Path) -> Result<Option<serde_yaml_ng::Value>, CharmError> {
    match std::fs::read_to_string(path) {
        Ok(s) => serde_yaml_ng::from_str(&s)
            .map(Some)
            .map_err(|e| CharmError::Parse {
                path: path.into(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CharmError::Read {
            path: path.into(),
            source,
        }),
    }
}

fn yaml_to_json(v: &serde_yaml_ng::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn map_keys(v: Option<&serde_yaml_ng::Value>) -> Vec<(String, serde_yaml_ng::Value)> {
    match v {
        Some(serde_yaml_ng::Value::Mapping(m)) => m
            .iter()
            .filter_map(|(k, v)| k.as_str().map(|k| (k.to_string(), v.clone())))
            .collect(),
        _ => Vec::new(),
    }
}

/// Read a charm's metadata from its directory.
pub fn read_meta(dir: &Path) -> Result<CharmMeta, CharmError> {
    let meta = read_yaml(&dir.join("metadata.yaml"))?;
    let craft = read_yaml(&dir.join("charmcraft.yaml"))?;
    let base = meta
        .clone()
        .or_else(|| craft.clone())
        .ok_or_else(|| CharmError::NoMetadata(dir.into()))?;
    let name = base
        .get("name")
        .and_then(|n| n.as_str())
        .ok_or_else(|| CharmError::NoMetadata(dir.into()))?
        .to_string();
    let mut out = CharmMeta {
        name,
        ..Default::default()
    };
    for (key, role) in [
        ("provides", Role::Provider),
        ("requires", Role::Requirer),
        ("peers", Role::Peer),
    ] {
        for (ep, spec) in map_keys(base.get(key)) {
            let interface = spec
                .get("interface")
                .and_then(|i| i.as_str())
                .unwrap_or(&ep)
                .to_string();
            out.endpoints.push(Endpoint {
                name: ep,
                interface,
                role,
            });
        }
    }
    for (name, spec) in map_keys(base.get("containers")) {
        let resource = spec
            .get("resource")
            .and_then(|r| r.as_str())
            .map(str::to_string);
        let mounts = spec
            .get("mounts")
            .and_then(|m| m.as_sequence())
            .map(|seq| {
                seq.iter()
                    .filter_map(|m| {
                        let storage = m.get("storage")?.as_str()?.to_string();
                        let location = m.get("location")?.as_str()?.to_string();
                        Some((storage, location))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.containers.push(name.clone());
        out.container_specs
            .insert(name, ContainerSpec { resource, mounts });
    }
    for (name, spec) in map_keys(base.get("storage")) {
        let kind = spec
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("filesystem")
            .to_string();
        out.storage.insert(name, kind);
    }
    let config = read_yaml(&dir.join("config.yaml"))?
        .or_else(|| craft.as_ref().and_then(|c| c.get("config").cloned()));
    if let Some(cfg) = config {
        for (k, spec) in map_keys(cfg.get("options")) {
            let opt: ConfigOption =
                serde_json::from_value(yaml_to_json(&spec)).unwrap_or(ConfigOption {
                    kind: "string".into(),
                    default: None,
                });
            out.config.insert(k, opt);
        }
    }
    let actions = read_yaml(&dir.join("actions.yaml"))?
        .or_else(|| craft.as_ref().and_then(|c| c.get("actions").cloned()));
    for (name, spec) in map_keys(actions.as_ref()) {
        let mut defaults = BTreeMap::new();
        for (p, pspec) in map_keys(spec.get("params")) {
            if let Some(d) = pspec.get("default") {
                defaults.insert(p, yaml_to_json(d));
            }
        }
        out.actions.insert(name, defaults);
    }
    Ok(out)
}

fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if rel.as_os_str().is_empty() && (name == ".unit-state.db" || name == "__pycache__") {
            continue;
        }
        let r = rel.join(&name);
        let ft = e.file_type()?;
        if ft.is_dir() {
            if name == "__pycache__" {
                continue;
            }
            walk(dir, &r, out)?;
        } else {
            out.push(r);
        }
    }
    Ok(())
}

/// SHA-256 over the charm's files (sorted relative paths and contents): the
/// charm revision's identity, as the archive hash is in Juju.
pub fn hash_dir(dir: &Path) -> Result<String, CharmError> {
    let mut files = Vec::new();
    walk(dir, Path::new(""), &mut files).map_err(|source| CharmError::Read {
        path: dir.into(),
        source,
    })?;
    let mut h = Sha256::new();
    for f in files {
        let p = dir.join(&f);
        h.update(f.to_string_lossy().as_bytes());
        h.update([0]);
        let meta = std::fs::symlink_metadata(&p).map_err(|source| CharmError::Read {
            path: p.clone(),
            source,
        })?;
        if meta.file_type().is_symlink() {
            let t = std::fs::read_link(&p).map_err(|source| CharmError::Read {
                path: p.clone(),
                source,
            })?;
            h.update(t.to_string_lossy().as_bytes());
        } else {
            let c = std::fs::read(&p).map_err(|source| CharmError::Read {
                path: p.clone(),
                source,
            })?;
            h.update((c.len() as u64).to_be_bytes());
            h.update(&c);
        }
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Copy a charm directory into `dest` (created), keeping modes and symlinks.
/// Existing files in `dest` that the charm does not ship (e.g. ops'
/// `.unit-state.db`) are kept.
pub fn copy_dir(src: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let ft = e.file_type()?;
        let to = dest.join(e.file_name());
        if ft.is_dir() {
            copy_dir(&e.path(), &to)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(e.path())?;
            let _ = std::fs::remove_file(&to);
            std::os::unix::fs::symlink(target, &to)?;
        } else {
            std::fs::copy(e.path(), &to)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_metadata_config_and_actions() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("metadata.yaml"),
            "name: demo\nprovides:\n  db:\n    interface: pgsql\nrequires:\n  certs:\n    interface: tls-certificates\npeers:\n  cluster:\n    interface: demo-peers\ncontainers:\n  web: {}\nstorage:\n  data:\n    type: filesystem\n    location: /srv/data\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("config.yaml"),
            "options:\n  port:\n    type: int\n    default: 80\n  name:\n    type: string\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("actions.yaml"),
            "backup:\n  params:\n    dest:\n      type: string\n      default: /tmp\n",
        )
        .unwrap();
        let m = read_meta(d.path()).unwrap();
        assert_eq!(m.name, "demo");
        assert_eq!(m.endpoint("db").unwrap().role, Role::Provider);
        assert_eq!(m.endpoint("certs").unwrap().interface, "tls-certificates");
        assert_eq!(m.endpoint("cluster").unwrap().role, Role::Peer);
        assert_eq!(m.containers, vec!["web"]);
        assert_eq!(m.storage["data"], "filesystem");
        assert_eq!(m.default_config().get("port"), Some(&serde_json::json!(80)));
        assert_eq!(m.actions["backup"]["dest"], serde_json::json!("/tmp"));
        let h1 = hash_dir(d.path()).unwrap();
        std::fs::write(d.path().join("x"), "1").unwrap();
        assert_ne!(h1, hash_dir(d.path()).unwrap());
    }

    #[test]
    fn charmcraft_yaml_alone_is_enough() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("charmcraft.yaml"),
            "name: c\ntype: charm\nconfig:\n  options:\n    a:\n      type: boolean\n      default: true\nactions:\n  go: {}\n",
        )
        .unwrap();
        let m = read_meta(d.path()).unwrap();
        assert_eq!(m.default_config()["a"], serde_json::json!(true));
        assert!(m.actions.contains_key("go"));
        assert!(read_meta(tempfile::tempdir().unwrap().path()).is_err());
    }
}
