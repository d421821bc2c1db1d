//! Charm config: the options a charm declares and typed access to their values.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The type of a config option, as Juju declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptionType {
    /// Text.
    String,
    /// A whole number.
    Int,
    /// A number.
    Float,
    /// true or false.
    Boolean,
    /// A secret URI.
    Secret,
}

/// One declared option.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConfigOption {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: OptionType,
    /// Its default, if any.
    #[serde(default)]
    pub default: Option<Value>,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
}

/// The charm's declared config options.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ConfigOptions {
    /// The options by name.
    #[serde(default)]
    pub options: BTreeMap<String, ConfigOption>,
}

impl ConfigOptions {
    /// Parses `config.yaml` (`options:` at the top) or a `charmcraft.yaml` (`config:
    /// options:`) text.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| Error::Metadata {
                path: "config".into(),
                reason: e.to_string(),
            })?;
        let node = match doc.get("config") {
            Some(c) => c.clone(),
            None => doc,
        };
        if node.is_null() {
            return Ok(Self::default());
        }
        serde_yaml_ng::from_value(node).map_err(|e| Error::Metadata {
            path: "config".into(),
            reason: e.to_string(),
        })
    }

    /// Reads the options a charm directory declares (`config.yaml`, else
    /// `charmcraft.yaml`); none declared is an empty set.
    pub fn from_charm_dir(dir: &Path) -> Result<Self> {
        for name in ["config.yaml", "charmcraft.yaml"] {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    return Self::from_yaml(&text).map_err(|e| match e {
                        Error::Metadata { reason, .. } => Error::Metadata {
                            path: path.display().to_string(),
                            reason,
                        },
                        e => e,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::Metadata {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })
                }
            }
        }
        Ok(Self::default())
    }

    /// Checks one value against its option's declared type.
    pub fn check(&self, key: &str, value: &Value) -> Result<()> {
        let Some(opt) = self.options.get(key) else {
            return Err(invalid(key, value, "not a declared config option"));
        };
        let ok = match opt.kind {
            OptionType::String | OptionType::Secret => value.is_string(),
            OptionType::Int => value.is_i64() || value.is_u64(),
            OptionType::Float => value.is_number(),
            OptionType::Boolean => value.is_boolean(),
        };
        if ok {
            Ok(())
        } else {
            Err(invalid(
                key,
                value,
                &format!("expected {:?}", opt.kind).to_lowercase(),
            ))
        }
    }
}

fn invalid(key: &str, value: &Value, reason: &str) -> Error {
    let shown = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Error::InvalidConfig {
        key: key.into(),
        value: shown,
        reason: reason.into(),
    }
}

/// The config values of this hook, checked against the declared options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    values: Map<String, Value>,
    options: ConfigOptions,
}

impl Config {
    /// Values as `config-get` gave them, with the declared options.
    pub fn new(values: Map<String, Value>, options: ConfigOptions) -> Self {
        Self { values, options }
    }

    /// The raw value (declared default included, as Juju reports it).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key).filter(|v| !v.is_null())
    }

    /// All set values.
    pub fn values(&self) -> &Map<String, Value> {
        &self.values
    }

    fn typed<T>(
        &self,
        key: &str,
        f: impl Fn(&Value) -> Option<T>,
        want: &str,
    ) -> Result<Option<T>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        if !self.options.options.is_empty() {
            self.options.check(key, v)?;
        }
        f(v).map(Some)
            .ok_or_else(|| invalid(key, v, &format!("expected {want}")))
    }

    /// A string option (`None` when unset).
    pub fn get_str(&self, key: &str) -> Result<Option<String>> {
        self.typed(key, |v| v.as_str().map(str::to_string), "a string")
    }

    /// An int option (`None` when unset).
    pub fn get_int(&self, key: &str) -> Result<Option<i64>> {
        self.typed(key, Value::as_i64, "an integer")
    }

    /// An int option that must lie in `min..=max` (`None` when unset); outside it is an
    /// [`Error::InvalidConfig`] naming the option, the value and the range.
    pub fn get_int_between(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>> {
        match self.get_int(key)? {
            Some(v) if v < min || v > max => Err(invalid(
                key,
                &Value::from(v),
                &format!("must be between {min} and {max}"),
            )),
            other => Ok(other),
        }
    }

    /// A string option that must be one of `allowed`, `default` when unset; anything
    /// else is an [`Error::InvalidConfig`] naming the option, the value and the choices.
    pub fn get_one_of(&self, key: &str, allowed: &[&str], default: &str) -> Result<String> {
        let v = self.get_str(key)?.unwrap_or_else(|| default.to_string());
        if allowed.contains(&v.as_str()) {
            Ok(v)
        } else {
            Err(invalid(
                key,
                &Value::String(v),
                &format!("must be one of {}", allowed.join(", ")),
            ))
        }
    }

    /// A float option (`None` when unset).
    pub fn get_float(&self, key: &str) -> Result<Option<f64>> {
        self.typed(key, Value::as_f64, "a number")
    }

    /// A boolean option (`None` when unset).
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        self.typed(key, Value::as_bool, "true or false")
    }

    /// Every value checked against the declared options, then deserialised into `T`
    /// (`-` in option names becomes `_`, as ops does).
    pub fn load<T: DeserializeOwned>(&self) -> Result<T> {
        let mut m = Map::new();
        for (k, v) in &self.values {
            if v.is_null() {
                continue;
            }
            if !self.options.options.is_empty() {
                self.options.check(k, v)?;
            }
            m.insert(k.replace('-', "_"), v.clone());
        }
        serde_path_to_error::deserialize(Value::Object(m)).map_err(|e| {
            let key = e.path().to_string();
            let value = self
                .values
                .get(&key)
                .or_else(|| self.values.get(&key.replace('_', "-")))
                .map(|v| v.to_string())
                .unwrap_or_default();
            Error::InvalidConfig {
                key,
                value,
                reason: e.inner().to_string(),
            }
        })
    }
}
