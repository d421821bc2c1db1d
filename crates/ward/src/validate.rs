//! Checks done before anything is queued: config values against the charm's
//! config options, and action parameters against the JSON schema its
//! `actions.yaml` declares. Every bad key is reported, not just the first.

use std::collections::BTreeMap;
use std::path::Path;

use controller::charmdir::CharmMeta;
use serde_json::{Map, Value};

/// One action as `actions.yaml` (or charmcraft.yaml's `actions:`) declares it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ActionSpec {
    /// The parameters' JSON schema as an object schema.
    pub(crate) schema: Value,
}

/// Split `key=value`.
fn split_kv(s: &str) -> Result<(&str, &str), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v)),
        _ => Err(format!("{s:?} is not key=value")),
    }
}

/// Parse a config value by the option's type (`string`, `int`, `float`,
/// `boolean`, `secret`).
pub(crate) fn parse_config_value(kind: &str, raw: &str) -> Result<Value, String> {
    match kind {
        "int" => raw
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("expected an int, got {raw:?}")),
        "float" => raw
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from)
            .ok_or_else(|| format!("expected a float, got {raw:?}")),
        "boolean" => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "1" | "yes" | "on" => Ok(Value::Bool(true)),
            "false" | "f" | "0" | "no" | "off" => Ok(Value::Bool(false)),
            _ => Err(format!("expected a boolean (true/false), got {raw:?}")),
        },
        _ => Ok(Value::String(raw.to_string())),
    }
}

/// A one-line list of a charm's options and their types, for error messages.
pub(crate) fn describe_options(meta: &CharmMeta) -> String {
    if meta.config.is_empty() {
        return "the charm declares no config options".into();
    }
    let opts: Vec<String> = meta
        .config
        .iter()
        .map(|(k, o)| format!("{k} ({})", o.kind))
        .collect();
    format!("the charm's options are: {}", opts.join(", "))
}

/// Turn `key=value` settings and reset keys into changes, or every problem found.
pub(crate) fn config_changes(
    meta: &CharmMeta,
    set: &[String],
    reset: &[String],
) -> Result<BTreeMap<String, Option<Value>>, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for s in set {
        let (k, v) = match split_kv(s) {
            Ok(kv) => kv,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        match meta.config.get(k) {
            None => problems.push(format!("{k}: unknown option")),
            Some(opt) => match parse_config_value(&opt.kind, v) {
                Ok(v) => {
                    out.insert(k.to_string(), Some(v));
                }
                Err(e) => problems.push(format!("{k}: {e}")),
            },
        }
    }
    for k in reset {
        let k = k.trim();
        if !meta.config.contains_key(k) {
            problems.push(format!("{k}: unknown option (cannot reset)"));
        } else if out.contains_key(k) {
            problems.push(format!("{k}: both set and reset"));
        } else {
            out.insert(k.to_string(), None);
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn read_yaml(path: &Path) -> Option<serde_yaml_ng::Value> {
    let s = std::fs::read_to_string(path).ok()?;
    serde_yaml_ng::from_str(&s).ok()
}

/// Every action a charm directory declares, with its parameter schema.
pub(crate) fn read_actions(dir: &Path) -> BTreeMap<String, ActionSpec> {
    let doc = read_yaml(&dir.join("actions.yaml")).or_else(|| {
        read_yaml(&dir.join("charmcraft.yaml")).and_then(|c| c.get("actions").cloned())
    });
    let Some(doc) = doc else {
        return BTreeMap::new();
    };
    let doc: Value = serde_json::to_value(doc).unwrap_or(Value::Null);
    let mut out = BTreeMap::new();
    if let Value::Object(actions) = doc {
        for (name, spec) in actions {
            let props = spec
                .get("params")
                .cloned()
                .unwrap_or(Value::Object(Map::new()));
            let mut schema = Map::new();
            schema.insert("type".into(), "object".into());
            schema.insert("properties".into(), props);
            if let Some(r) = spec.get("required") {
                schema.insert("required".into(), r.clone());
            }
            if let Some(a) = spec.get("additionalProperties") {
                schema.insert("additionalProperties".into(), a.clone());
            }
            out.insert(
                name,
                ActionSpec {
                    schema: Value::Object(schema),
                },
            );
        }
    }
    out
}

/// A one-line list of an action's parameters, for error messages.
pub(crate) fn describe_params(spec: &ActionSpec) -> String {
    let required: Vec<&str> = spec
        .schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let props = spec.schema.get("properties").and_then(Value::as_object);
    match props {
        Some(p) if !p.is_empty() => {
            let v: Vec<String> = p
                .iter()
                .map(|(k, s)| {
                    let ty = match s.get("type") {
                        Some(Value::String(t)) => t.clone(),
                        Some(other) => other.to_string(),
                        None => "any".into(),
                    };
                    let req = if required.contains(&k.as_str()) {
                        ", required"
                    } else {
                        ""
                    };
                    format!("{k} ({ty}{req})")
                })
                .collect();
            format!("its parameters are: {}", v.join(", "))
        }
        _ => "it declares no parameters".into(),
    }
}

/// Insert `v` at a dotted path, making maps on the way.
fn insert_path(m: &mut Map<String, Value>, path: &[&str], v: Value) -> Result<(), String> {
    match path {
        [] => Ok(()),
        [last] => {
            m.insert(last.to_string(), v);
            Ok(())
        }
        [first, rest @ ..] => match m
            .entry(first.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
        {
            Value::Object(inner) => insert_path(inner, rest, v),
            _ => Err(format!("{first} is already a value, not a map")),
        },
    }
}

/// The schema of a (possibly nested) property, following `properties`.
fn property_schema<'a>(schema: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut s = schema;
    for p in path {
        s = s.get("properties")?.get(*p)?;
    }
    Some(s)
}

fn wants_only_string(schema: Option<&Value>) -> bool {
    matches!(schema.and_then(|s| s.get("type")), Some(Value::String(t)) if t == "string")
}

/// Build action parameters from `key=value` arguments: values are YAML
/// (like juju), dotted keys nest; a value for a `string` parameter stays the
/// text given even when it looks like a number or a boolean.
pub(crate) fn action_params(spec: &ActionSpec, raw: &[String]) -> Result<Value, Vec<String>> {
    let mut root = Map::new();
    let mut problems = Vec::new();
    for s in raw {
        let (k, v) = match split_kv(s) {
            Ok(kv) => kv,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let path: Vec<&str> = k.split('.').collect();
        if path.iter().any(|p| p.is_empty()) {
            problems.push(format!("{k}: empty key segment"));
            continue;
        }
        let value = if wants_only_string(property_schema(&spec.schema, &path)) || v.is_empty() {
            Value::String(v.to_string())
        } else {
            match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(v) {
                Ok(y) => serde_json::to_value(y).unwrap_or_else(|_| Value::String(v.into())),
                Err(_) => Value::String(v.to_string()),
            }
        };
        if let Err(e) = insert_path(&mut root, &path, value) {
            problems.push(format!("{k}: {e}"));
        }
    }
    // Defaults count for `required`, as the controller merges them in.
    if let Some(props) = spec.schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            if let Some(d) = s.get("default") {
                root.entry(k.clone()).or_insert_with(|| d.clone());
            }
        }
    }
    let params = Value::Object(root);
    check(&spec.schema, &params, "", &mut problems);
    if problems.is_empty() {
        Ok(params)
    } else {
        Err(problems)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_type(v: &Value, ty: &str) -> bool {
    match ty {
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(57).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s
    }
}

/// Check `v` against a JSON schema subset: type, enum, const, minimum,
/// maximum, exclusiveMinimum/Maximum, minLength/maxLength, properties,
/// required, additionalProperties, items, minItems/maxItems.
pub(crate) fn check(schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    let name = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    let here = if path.is_empty() { "parameters" } else { path };
    let Some(schema) = schema.as_object() else {
        return;
    };
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.is_empty() && !types.iter().any(|t| is_type(v, t)) {
            out.push(format!(
                "{here}: expected {}, got {} {}",
                types.join(" or "),
                type_name(v),
                show(v)
            ));
            return;
        }
    }
    if let Some(Value::Array(options)) = schema.get("enum") {
        if !options.contains(v) {
            let opts: Vec<String> = options.iter().map(show).collect();
            out.push(format!(
                "{here}: {} is not one of {}",
                show(v),
                opts.join(", ")
            ));
        }
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            out.push(format!("{here}: must be {}", show(c)));
        }
    }
    if let Some(x) = v.as_f64() {
        let num = |k: &str| schema.get(k).and_then(Value::as_f64);
        if let Some(m) = num("minimum").filter(|m| x < *m) {
            out.push(format!("{here}: {x} is less than the minimum {m}"));
        }
        if let Some(m) = num("maximum").filter(|m| x > *m) {
            out.push(format!("{here}: {x} is more than the maximum {m}"));
        }
        if let Some(m) = num("exclusiveMinimum").filter(|m| x <= *m) {
            out.push(format!("{here}: {x} must be more than {m}"));
        }
        if let Some(m) = num("exclusiveMaximum").filter(|m| x >= *m) {
            out.push(format!("{here}: {x} must be less than {m}"));
        }
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if let Some(m) = schema
            .get("minLength")
            .and_then(Value::as_u64)
            .filter(|m| len < *m)
        {
            out.push(format!("{here}: shorter than {m} characters"));
        }
        if let Some(m) = schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .filter(|m| len > *m)
        {
            out.push(format!("{here}: longer than {m} characters"));
        }
    }
    if let Value::Array(items) = v {
        let n = items.len() as u64;
        if let Some(m) = schema
            .get("minItems")
            .and_then(Value::as_u64)
            .filter(|m| n < *m)
        {
            out.push(format!("{here}: fewer than {m} items"));
        }
        if let Some(m) = schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .filter(|m| n > *m)
        {
            out.push(format!("{here}: more than {m} items"));
        }
        if let Some(item) = schema.get("items") {
            for (i, it) in items.iter().enumerate() {
                check(item, it, &name(&i.to_string()), out);
            }
        }
    }
    if let Value::Object(m) = v {
        let props = schema.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(req)) = schema.get("required") {
            for r in req.iter().filter_map(Value::as_str) {
                if !m.contains_key(r) {
                    out.push(format!("{}: required parameter missing", name(r)));
                }
            }
        }
        for (k, val) in m {
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(s, val, &name(k), out),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        out.push(format!("{}: unknown parameter (not allowed)", name(k)))
                    }
                    Some(s @ Value::Object(_)) => check(s, val, &name(k), out),
                    _ => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(yaml: &str) -> ActionSpec {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("actions.yaml"), yaml).unwrap();
        read_actions(d.path()).remove("act").unwrap()
    }

    fn kv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn params_are_yaml_scalars_but_strings_stay_text() {
        let s = spec("act:\n  params:\n    name: {type: string}\n    n: {type: integer}\n    on: {type: boolean}\n");
        let p = action_params(&s, &kv(&["name=123", "n=5", "on=true", "extra.deep=x"])).unwrap();
        assert_eq!(
            p,
            json!({"name": "123", "n": 5, "on": true, "extra": {"deep": "x"}})
        );
    }

    #[test]
    fn every_bad_param_is_named() {
        let s = spec(
            "act:\n  params:\n    level: {type: integer, minimum: 1, maximum: 5}\n    mode: {type: string, enum: [fast, slow]}\n    name: {type: string}\n  required: [name]\n  additionalProperties: false\n",
        );
        let e = action_params(&s, &kv(&["level=9", "mode=medium", "bogus=1", "nokv"])).unwrap_err();
        let all = e.join("\n");
        for needle in ["level", "mode", "bogus", "name: required", "nokv"] {
            assert!(all.contains(needle), "{needle} missing from {all}");
        }
        assert_eq!(e.len(), 5, "{all}");
    }

    #[test]
    fn defaults_satisfy_required() {
        let s = spec("act:\n  params:\n    name: {type: string, default: x}\n  required: [name]\n");
        assert_eq!(action_params(&s, &[]).unwrap(), json!({"name": "x"}));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_settings_never_panic(
            kvs in proptest::collection::vec("[a-z.=]{0,6}(=.{0,12})?", 0..6)
        ) {
            let s = spec(
                "act:\n  params:\n    a: {type: integer, minimum: 0}\n    b: {type: object, properties: {c: {type: string}}}\n  additionalProperties: false\n",
            );
            let _ = action_params(&s, &kvs);
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join("metadata.yaml"), "name: c\n").unwrap();
            std::fs::write(d.path().join("config.yaml"), "options:\n  a: {type: int}\n  b: {type: boolean}\n").unwrap();
            let meta = controller::charmdir::read_meta(d.path()).unwrap();
            let _ = config_changes(&meta, &kvs, &kvs);
        }
    }

    #[test]
    fn config_values_follow_option_types() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("metadata.yaml"), "name: c\n").unwrap();
        std::fs::write(
            d.path().join("config.yaml"),
            "options:\n  port: {type: int}\n  ratio: {type: float}\n  on: {type: boolean}\n  name: {type: string}\n",
        )
        .unwrap();
        let meta = controller::charmdir::read_meta(d.path()).unwrap();
        let ok = config_changes(
            &meta,
            &kv(&["port=5", "ratio=0.5", "on=false", "name=7"]),
            &kv(&[]),
        )
        .unwrap();
        assert_eq!(ok["port"], Some(json!(5)));
        assert_eq!(ok["name"], Some(json!("7")));
        let e = config_changes(
            &meta,
            &kv(&["port=x", "nope=1", "on=maybe"]),
            &kv(&["gone"]),
        )
        .unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e.iter().any(|p| p.starts_with("port:")));
        assert!(e.iter().any(|p| p.starts_with("nope:")));
        assert!(e.iter().any(|p| p.starts_with("gone:")));
    }
}
