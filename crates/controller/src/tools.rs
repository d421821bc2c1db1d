//! The hook tools, run server-side against a hook context: Juju's flag
//! parsing (gnuflag style, interspersed), output formats (`smart`, `yaml`,
//! `json`), exit codes (2 for flag/Init errors, 1 for Run errors), error texts,
//! and the access rules every call is checked against.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::context::{HookContext, SecretChange};
use crate::protocol::{ToolRequest, ToolResponse};
use crate::store::{self, PortRange, Store};

/// Every tool name the client is installed under.
pub const TOOL_NAMES: &[&str] = &[
    "relation-get",
    "relation-set",
    "relation-ids",
    "relation-list",
    "relation-model-get",
    "config-get",
    "is-leader",
    "leader-get",
    "leader-set",
    "status-get",
    "status-set",
    "application-version-set",
    "action-get",
    "action-set",
    "action-log",
    "action-fail",
    "network-get",
    "juju-log",
    "secret-add",
    "secret-get",
    "secret-info-get",
    "secret-set",
    "secret-grant",
    "secret-revoke",
    "secret-remove",
    "secret-ids",
    "open-port",
    "close-port",
    "opened-ports",
    "state-get",
    "state-set",
    "state-delete",
    "storage-get",
    "storage-list",
    "resource-get",
    "goal-state",
    "credential-get",
];

/// `state-set` key limit (bytes), as Juju's quota.
pub const MAX_STATE_KEY: usize = 256;
/// `state-set` value limit (bytes).
pub const MAX_STATE_VALUE: usize = 64 * 1024;
/// Secret content limit (base64 bytes, per value and in total).
pub const MAX_SECRET_CONTENT: usize = 1_000_000;
/// Total size of one relation bag (keys + values).
pub const MAX_BAG: usize = 16 * 1024 * 1024;

/// A tool failure: exit code and message (printed as `ERROR <msg>`).
#[derive(Debug)]
pub(crate) struct ToolError {
    code: u32,
    msg: String,
}

type R<T> = Result<T, ToolError>;

fn usage(msg: impl Into<String>) -> ToolError {
    ToolError {
        code: 2,
        msg: msg.into(),
    }
}

fn fail(msg: impl Into<String>) -> ToolError {
    ToolError {
        code: 1,
        msg: msg.into(),
    }
}

impl From<store::StoreError> for ToolError {
    fn from(e: store::StoreError) -> Self {
        fail(e.to_string())
    }
}

impl From<rusqlite::Error> for ToolError {
    fn from(e: rusqlite::Error) -> Self {
        fail(format!("state store: {e}"))
    }
}

const PERM: &str = "permission denied";
const NOT_LEADER: &str = "this unit is not the leader";

// ---------------------------------------------------------------- flags

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Value,
}

/// Parsed flags and positional arguments.
#[derive(Debug, Default)]
struct Args {
    vals: BTreeMap<&'static str, String>,
    bools: BTreeMap<&'static str, bool>,
    pos: Vec<String>,
}

impl Args {
    fn val(&self, k: &str) -> Option<&str> {
        self.vals.get(k).map(String::as_str)
    }
    fn flag(&self, k: &str) -> bool {
        self.bools.get(k).copied().unwrap_or(false)
    }
}

/// Flag spec entries: `("r|relation", Kind::Value)`; the first alias is the key.
fn parse(args: &[String], spec: &[(&'static str, Kind)]) -> R<Args> {
    let lookup = |name: &str| -> Option<(&'static str, Kind)> {
        spec.iter()
            .find(|(names, _)| names.split('|').any(|n| n == name))
            .map(|(names, k)| (names.split('|').next().unwrap_or(""), *k))
    };
    let mut out = Args::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            out.pos.extend(args[i..].iter().cloned());
            break;
        }
        let (dashes, body) = if let Some(b) = a.strip_prefix("--") {
            ("--", b)
        } else if let Some(b) = a.strip_prefix('-').filter(|b| !b.is_empty()) {
            ("-", b)
        } else {
            out.pos.push(a.clone());
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if (dashes == "-" && name.chars().count() != 1) || name.is_empty() {
            return Err(usage(format!(
                "flag provided but not defined: {dashes}{name}"
            )));
        }
        let Some((key, kind)) = lookup(name) else {
            return Err(usage(format!(
                "flag provided but not defined: {dashes}{name}"
            )));
        };
        match kind {
            Kind::Bool => {
                let v = match inline.as_deref() {
                    None => true,
                    Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
                    Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
                    Some(v) => {
                        return Err(usage(format!(
                            "invalid boolean value {v:?} for flag {dashes}{name}"
                        )))
                    }
                };
                out.bools.insert(key, v);
            }
            Kind::Value => {
                let v = match inline {
                    Some(v) => v,
                    None => {
                        if i >= args.len() {
                            return Err(usage(format!("flag needs an argument: {dashes}{name}")));
                        }
                        i += 1;
                        args[i - 1].clone()
                    }
                };
                out.vals.insert(key, v);
            }
        }
    }
    if let Some(f) = out.vals.get("format") {
        if !matches!(f.as_str(), "smart" | "yaml" | "json") {
            return Err(usage(format!(
                "invalid value {f:?} for option --format: unknown format {f:?}"
            )));
        }
    }
    Ok(out)
}

fn check_empty(pos: &[String]) -> R<()> {
    if pos.is_empty() {
        Ok(())
    } else {
        let quoted: Vec<String> = pos.iter().map(|p| format!("{p:?}")).collect();
        Err(usage(format!("unrecognized args: [{}]", quoted.join(" "))))
    }
}

// ---------------------------------------------------------------- output

fn smart(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) if a.iter().all(|x| x.is_string()) => a
            .iter()
            .filter_map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        other => yaml(other),
    }
}

fn yaml(v: &Value) -> String {
    if v.is_null() {
        return String::new();
    }
    serde_yaml_ng::to_string(v)
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

fn format_out(v: &Value, format: Option<&str>, default: &str) -> Vec<u8> {
    let s = match format.unwrap_or(default) {
        "json" => serde_json::to_string(v).unwrap_or_default(),
        "yaml" => yaml(v),
        _ => smart(v),
    };
    if s.is_empty() {
        Vec::new()
    } else {
        format!("{s}\n").into_bytes()
    }
}

const FMT: (&str, Kind) = ("format", Kind::Value);
const OUT: (&str, Kind) = ("o|output", Kind::Value);

// ---------------------------------------------------------------- entry point

/// Run one tool call against a context.
pub(crate) fn run(ctx: &mut HookContext, store: &Store, req: &ToolRequest) -> ToolResponse {
    let tool = String::from_utf8_lossy(&req.tool).into_owned();
    let mut args = Vec::with_capacity(req.args.len());
    for (i, a) in req.args.iter().enumerate() {
        match String::from_utf8(a.clone()) {
            Ok(s) => args.push(s),
            Err(_) => {
                return ToolResponse {
                    code: 2,
                    stdout: Vec::new(),
                    stderr: format!("ERROR argument {} is not valid UTF-8\n", i + 1).into_bytes(),
                };
            }
        }
    }
    if args.iter().any(|a| a == "--help" || a == "-h")
        && !args.iter().take_while(|a| *a != "--").any(|a| a == "--")
    {
        return ToolResponse {
            code: 0,
            stdout: format!("Usage: {tool} [options]\n").into_bytes(),
            stderr: Vec::new(),
        };
    }
    let res = dispatch(&tool, ctx, store, req, &args);
    match res {
        Ok(stdout) => ToolResponse {
            code: 0,
            stdout,
            stderr: Vec::new(),
        },
        Err(e) => ToolResponse {
            code: e.code,
            stdout: Vec::new(),
            stderr: format!("ERROR {}\n", e.msg).into_bytes(),
        },
    }
}

fn dispatch(
    tool: &str,
    ctx: &mut HookContext,
    st: &Store,
    req: &ToolRequest,
    args: &[String],
) -> R<Vec<u8>> {
    match tool {
        "relation-ids" => relation_ids(ctx, st, args),
        "relation-list" => relation_list(ctx, st, args),
        "relation-get" => relation_get(ctx, st, args),
        "relation-set" => relation_set(ctx, st, req, args),
        "relation-model-get" => {
            let a = parse(args, &[FMT, OUT, ("r|relation", Kind::Value)])?;
            relation_arg(ctx, st, a.val("r"))?;
            check_empty(&a.pos)?;
            Ok(format_out(
                &json!({"uuid": ctx.model_uuid}),
                a.val("format"),
                "smart",
            ))
        }
        "config-get" => config_get(ctx, st, args),
        "is-leader" => {
            let a = parse(args, &[FMT, OUT])?;
            check_empty(&a.pos)?;
            Ok(format_out(
                &json!(is_leader(ctx, st)?),
                a.val("format"),
                "smart",
            ))
        }
        "leader-get" => {
            let a = parse(args, &[FMT, OUT])?;
            let s: String = st.read(|c| {
                Ok(c.query_row(
                    "SELECT leader_settings FROM application WHERE name=?1",
                    [&ctx.app],
                    |r| r.get(0),
                )?)
            })?;
            let m: Value = serde_json::from_str(&s).unwrap_or(json!({}));
            let v = match a.pos.as_slice() {
                [] => m,
                [k] => m.get(k).cloned().unwrap_or(Value::Null),
                _ => return Err(usage(format!("unrecognized args: {:?}", &a.pos[1..]))),
            };
            Ok(format_out(&v, a.val("format"), "smart"))
        }
        "leader-set" => leader_set(ctx, st, args),
        "status-get" => status_get(ctx, st, args),
        "status-set" => status_set(ctx, st, args),
        "application-version-set" => {
            let a = parse(args, &[])?;
            let [v] = a.pos.as_slice() else {
                return Err(usage(if a.pos.is_empty() {
                    "no version specified".to_string()
                } else {
                    format!("unrecognized args: {:?}", &a.pos[1..])
                }));
            };
            st.write(|tx| {
                Ok(tx.execute(
                    "UPDATE application SET workload_version=?1 WHERE name=?2",
                    [v, &ctx.app],
                )?)
            })?;
            Ok(Vec::new())
        }
        "action-get" => action_get(ctx, args),
        "action-set" => action_set(ctx, args),
        "action-log" => {
            let a = parse(args, &[])?;
            if a.pos.is_empty() {
                return Err(usage("no message specified"));
            }
            let id = ctx
                .action
                .as_ref()
                .map(|a| a.id)
                .ok_or_else(|| fail("not running an action"))?;
            let msg = a.pos.join(" ");
            st.write(|tx| store::append_task_log(tx, id, &msg, store::now_ms()))?;
            Ok(Vec::new())
        }
        "action-fail" => {
            let a = parse(args, &[])?;
            let act = ctx
                .action
                .as_mut()
                .ok_or_else(|| fail("not running an action"))?;
            let msg = if a.pos.is_empty() {
                "action failed without reason given, check action for errors".to_string()
            } else {
                a.pos.join(" ")
            };
            act.failed = Some(msg);
            Ok(Vec::new())
        }
        "network-get" => network_get(ctx, st, args),
        "juju-log" => {
            let a = parse(
                args,
                &[("l|log-level", Kind::Value), ("debug", Kind::Bool), FMT],
            )?;
            if a.pos.is_empty() {
                return Err(usage("no message specified"));
            }
            let mut level = a.val("l").unwrap_or("INFO").to_uppercase();
            if a.flag("debug") {
                level = "DEBUG".into();
            }
            if !matches!(
                level.as_str(),
                "TRACE" | "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL"
            ) {
                level = "INFO".into();
            }
            let mut msg = a.pos.join(" ");
            if let Some(r) = ctx.hook.relation() {
                msg = format!("{}:{}: {msg}", r.endpoint, r.id);
            }
            ctx.log(&level, &format!("unit.{}.juju-log", ctx.unit), &msg);
            Ok(Vec::new())
        }
        "secret-add" => secret_add(ctx, st, req, args),
        "secret-get" => secret_get(ctx, st, args),
        "secret-info-get" => secret_info_get(ctx, st, args),
        "secret-set" => secret_set(ctx, st, req, args),
        "secret-grant" | "secret-revoke" => secret_grant(ctx, st, args, tool == "secret-grant"),
        "secret-remove" => {
            let a = parse(args, &[("revision", Kind::Value)])?;
            let [id] = a.pos.as_slice() else {
                return Err(usage("missing secret URI"));
            };
            let rev = match a.val("revision") {
                Some(r) => Some(r.parse::<i64>().ok().filter(|r| *r > 0).ok_or_else(|| {
                    usage(format!(
                        "invalid value {r:?} for option --revision: invalid revision"
                    ))
                })?),
                None => None,
            };
            let (sid, _) = owned_for_write(ctx, st, id)?;
            if ctx
                .secret_changes
                .get(&sid)
                .is_some_and(|c| c.create.is_some())
                && rev.is_none()
            {
                ctx.secret_changes.remove(&sid);
            } else {
                ctx.remove_ops.push((sid, rev));
            }
            Ok(Vec::new())
        }
        "secret-ids" => {
            let a = parse(args, &[FMT, OUT])?;
            check_empty(&a.pos)?;
            let leader = is_leader(ctx, st)?;
            let mut ids: BTreeSet<String> = st
                .read(|c| store::owned_secrets(c, &ctx.unit, &ctx.app, leader))?
                .iter()
                .map(|s| s.uri())
                .collect();
            for (id, ch) in &ctx.secret_changes {
                if ch.create.is_some() {
                    ids.insert(format!("secret:{id}"));
                }
            }
            for (id, rev) in &ctx.remove_ops {
                if rev.is_none() {
                    ids.remove(&format!("secret:{id}"));
                }
            }
            Ok(format_out(
                &json!(ids.into_iter().collect::<Vec<_>>()),
                a.val("format"),
                "yaml",
            ))
        }
        "open-port" | "close-port" => {
            let a = parse(args, &[("endpoints", Kind::Value), FMT])?;
            let [spec] = a.pos.as_slice() else {
                return Err(usage("no port or range specified"));
            };
            let (protocol, from, to) = parse_port(spec)?;
            let eps: Vec<String> = match a.val("endpoints") {
                Some(e) if !e.is_empty() => e.split(',').map(String::from).collect(),
                _ => vec!["*".into()],
            };
            for ep in eps {
                if ep != "*" && ctx.charm.endpoint(&ep).is_none() {
                    return Err(fail(format!("endpoint {ep:?} not found")));
                }
                ctx.port_ops.push((
                    PortRange {
                        endpoint: ep,
                        protocol: protocol.clone(),
                        from,
                        to,
                    },
                    tool == "open-port",
                ));
            }
            Ok(Vec::new())
        }
        "opened-ports" => {
            let a = parse(args, &[FMT, OUT, ("endpoints", Kind::Bool)])?;
            check_empty(&a.pos)?;
            let ps = st.read(|c| store::ports(c, &ctx.unit))?;
            let v: Vec<String> = if a.flag("endpoints") {
                let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for p in &ps {
                    by.entry(p.to_string())
                        .or_default()
                        .push(p.endpoint.clone());
                }
                by.into_iter()
                    .map(|(k, eps)| format!("{k} ({})", eps.join(",")))
                    .collect()
            } else {
                ps.iter()
                    .map(|p| p.to_string())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            };
            Ok(format_out(&json!(v), a.val("format"), "smart"))
        }
        "state-get" => {
            let a = parse(args, &[FMT, OUT, ("strict", Kind::Bool)])?;
            let mut m = st.read(|c| store::unit_state(c, &ctx.unit))?;
            for (k, v) in &ctx.state_writes {
                match v {
                    Some(v) => m.insert(k.clone(), v.clone()),
                    None => m.remove(k),
                };
            }
            let v = match a.pos.as_slice() {
                [] => json!(m),
                [k] => match m.get(k) {
                    Some(v) => json!(v),
                    None if a.flag("strict") => return Err(fail(format!("key {k:?} not found"))),
                    None => Value::Null,
                },
                _ => return check_empty(&a.pos[1..]).map(|_| Vec::new()),
            };
            Ok(format_out(&v, a.val("format"), "smart"))
        }
        "state-set" => {
            let a = parse(args, &[("file", Kind::Value)])?;
            let mut pairs = match a.val("file") {
                Some(f) => read_settings_file(req, f)?,
                None => BTreeMap::new(),
            };
            pairs.extend(key_values(&a.pos)?);
            for (k, v) in &pairs {
                if k.len() > MAX_STATE_KEY {
                    return Err(fail(format!(
                        "max allowed key length ({MAX_STATE_KEY}) exceeded"
                    )));
                }
                if v.len() > MAX_STATE_VALUE {
                    return Err(fail(format!(
                        "max allowed value length ({MAX_STATE_VALUE}) exceeded"
                    )));
                }
            }
            for (k, v) in pairs {
                ctx.state_writes.insert(k, Some(v));
            }
            Ok(Vec::new())
        }
        "state-delete" => {
            let a = parse(args, &[])?;
            let [k] = a.pos.as_slice() else {
                return Err(usage(if a.pos.is_empty() {
                    "no key specified".to_string()
                } else {
                    format!("unrecognized args: {:?}", &a.pos[1..])
                }));
            };
            ctx.state_writes.insert(k.clone(), None);
            Ok(Vec::new())
        }
        "storage-list" => {
            let a = parse(args, &[FMT, OUT])?;
            let ids: Vec<&String> = match a.pos.as_slice() {
                [] => ctx.storage.keys().collect(),
                [name] => ctx
                    .storage
                    .keys()
                    .filter(|id| id.split('/').next() == Some(name.as_str()))
                    .collect(),
                _ => return check_empty(&a.pos[1..]).map(|_| Vec::new()),
            };
            Ok(format_out(&json!(ids), a.val("format"), "smart"))
        }
        "storage-get" => {
            let a = parse(args, &[FMT, OUT, ("s", Kind::Value)])?;
            let id = match a.val("s") {
                Some(s) if ctx.storage.contains_key(s) => s.to_string(),
                Some(s) => {
                    return Err(usage(format!(
                        "invalid value {s:?} for option -s: storage instance {s:?} not found"
                    )))
                }
                None => match ctx.hook.storage() {
                    Some(st) => st.id.clone(),
                    None => return Err(usage("no storage instance specified")),
                },
            };
            let (kind, location) = &ctx.storage[&id];
            let v = json!({"kind": kind, "location": location});
            let v = match a.pos.as_slice() {
                [] => v,
                [k] => v
                    .get(k)
                    .cloned()
                    .ok_or_else(|| fail(format!("invalid storage attribute {k:?}")))?,
                _ => return check_empty(&a.pos[1..]).map(|_| Vec::new()),
            };
            Ok(format_out(&v, a.val("format"), "smart"))
        }
        "resource-get" => {
            let a = parse(args, &[])?;
            let [name] = a.pos.as_slice() else {
                return Err(usage("missing required resource name"));
            };
            Err(fail(format!(
                "could not download resource: resource {:?} not found",
                name
            )))
        }
        "goal-state" => goal_state(ctx, st, args),
        "credential-get" => {
            let a = parse(args, &[FMT, OUT])?;
            check_empty(&a.pos)?;
            Err(fail(
                "cannot access cloud credentials: the local substrate has no cloud credential",
            ))
        }
        other => Err(fail(format!("unknown command {other:?}"))),
    }
}

// ---------------------------------------------------------------- helpers

fn is_leader(ctx: &HookContext, st: &Store) -> R<bool> {
    Ok(st.read(|c| store::leader(c, &ctx.app))?.as_deref() == Some(ctx.unit.as_str()))
}

/// Resolve `-r` (or the hook's relation). Unknown: exit 2 as Juju does.
fn relation_arg(ctx: &HookContext, st: &Store, r: Option<&str>) -> R<store::RelationRecord> {
    let id = match r {
        Some(v) => {
            let (ep, num) = match v.rsplit_once(':') {
                Some((ep, n)) => (Some(ep), n),
                None => (None, v),
            };
            let id: i64 = num.trim().parse().map_err(|_| {
                usage(format!(
                    "invalid value {v:?} for option -r: invalid relation id"
                ))
            })?;
            let rel = st.read(|c| store::relation(c, id))?;
            let ok = rel
                .as_ref()
                .and_then(|r| {
                    r.side(&ctx.app)
                        .map(|(mine, _)| ep.is_none_or(|e| e == mine.endpoint))
                })
                .unwrap_or(false);
            if !ok {
                return Err(usage(format!(
                    "invalid value {v:?} for option -r: relation not found"
                )));
            }
            id
        }
        None => match ctx.hook.relation() {
            Some(r) => r.id,
            None => return Err(usage("no relation id specified")),
        },
    };
    st.read(|c| store::relation(c, id))?.ok_or_else(|| {
        usage(format!(
            "invalid value \"{id}\" for option -r: relation not found"
        ))
    })
}

fn valid_app_name(s: &str) -> bool {
    !s.is_empty()
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !s.ends_with('-')
}

fn valid_unit_name(s: &str) -> bool {
    match s.rsplit_once('/') {
        Some((app, n)) => {
            valid_app_name(app) && !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

fn relation_ids(ctx: &HookContext, st: &Store, args: &[String]) -> R<Vec<u8>> {
    let a = parse(args, &[FMT, OUT])?;
    let ep = match a.pos.as_slice() {
        [] => ctx
            .hook
            .relation()
            .map(|r| r.endpoint.clone())
            .ok_or_else(|| usage("no endpoint name specified"))?,
        [e] => e.clone(),
        _ => return check_empty(&a.pos[1..]).map(|_| Vec::new()),
    };
    let rels = st.read(|c| store::relations(c, Some(&ctx.app)))?;
    let broken_now = match &ctx.hook.kind {
        crate::hook::HookKind::RelationBroken(r) => Some(r.id),
        _ => None,
    };
    let mut ids = Vec::new();
    for r in &rels {
        if r.side(&ctx.app).is_none_or(|(m, _)| m.endpoint != ep) || broken_now == Some(r.id) {
            continue;
        }
        // Dying relations stay listed until this unit has broken them.
        let listed = r.life == crate::uniter::state::Life::Alive
            || st.read(|c| store::in_scope(c, r.id, &ctx.unit))?;
        if listed {
            ids.push(format!("{ep}:{}", r.id));
        }
    }
    ids.sort();
    Ok(format_out(&json!(ids), a.val("format"), "smart"))
}

fn relation_list(ctx: &HookContext, st: &Store, args: &[String]) -> R<Vec<u8>> {
    let a = parse(
        args,
        &[FMT, OUT, ("r|relation", Kind::Value), ("app", Kind::Bool)],
    )?;
    let rel = relation_arg(ctx, st, a.val("r"))?;
    check_empty(&a.pos)?;
    let (_, other) = rel.side(&ctx.app).ok_or_else(|| fail(PERM))?;
    if a.flag("app") {
        return Ok(format_out(&json!(other), a.val("format"), "smart"));
    }
    // The units this unit has been told about (joined and not departed), as
    // Juju's context relation lists them; the store's scope when unknown.
    let members: Vec<String> = match ctx.known_members.get(&rel.id) {
        Some(m) => m.iter().cloned().collect(),
        None => st
            .read(|c| store::relation_members(c, rel.id))?
            .into_iter()
            .filter(|m| m != &ctx.unit && m.split('/').next() == Some(other))
            .collect(),
    };
    Ok(format_out(&json!(members), a.val("format"), "smart"))
}

fn relation_get(ctx: &HookContext, st: &Store, args: &[String]) -> R<Vec<u8>> {
    let a = parse(
        args,
        &[FMT, OUT, ("r|relation", Kind::Value), ("app", Kind::Bool)],
    )?;
    let rel = relation_arg(ctx, st, a.val("r"))?;
    let (key, target) = match a.pos.as_slice() {
        [] => (None, None),
        [k] => (Some(k.clone()), None),
        [k, u] => (Some(k.clone()), Some(u.clone())),
        _ => return check_empty(&a.pos[2..]).map(|_| Vec::new()),
    };
    let key = key.filter(|k| k != "-");
    let mut app = a.flag("app");
    let target = match target {
        Some(t) => t,
        // Juju's defaults come from the hook context, whatever -r says.
        None => match ctx.hook.relation() {
            Some(r) if !r.remote_unit.is_empty() && !app => r.remote_unit.clone(),
            Some(r) => {
                app = true;
                r.remote_app.clone()
            }
            None => return Err(usage("no unit or application specified")),
        },
    };
    if !app && !valid_unit_name(&target) {
        if valid_app_name(&target) {
            return Err(usage(format!(
                "expected unit name, got application name {target:?}"
            )));
        }
        return Err(usage(format!("invalid unit name {target:?}")));
    }
    let owner = if app {
        target.split('/').next().unwrap_or("").to_string()
    } else {
        target.clone()
    };
    let owner_app = owner.split('/').next().unwrap_or("");
    // Access: this app must be in the relation; the owner must belong to it.
    if rel.side(&ctx.app).is_none() || !rel.endpoints.iter().any(|e| e.app == owner_app) {
        return Err(fail(PERM));
    }
    if app && owner == ctx.app && !rel.is_peer() && !is_leader(ctx, st)? {
        return Err(fail(PERM));
    }
    let mut data = st.read(|c| store::bag(c, rel.id, &owner))?.0;
    if owner == ctx.unit || owner == ctx.app {
        if let Some(w) = ctx.relation_writes.get(&(rel.id, owner.clone())) {
            for (k, v) in w {
                if v.is_empty() {
                    data.remove(k);
                } else {
                    data.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let v = match key {
        Some(k) => data.get(&k).map(|v| json!(v)).unwrap_or(Value::Null),
        None => json!(data),
    };
    Ok(format_out(&v, a.val("format"), "smart"))
}

/// Parse a YAML/JSON settings file (from the client's attachments or stdin).
fn read_settings_file(req: &ToolRequest, f: &str) -> R<BTreeMap<String, String>> {
    let bytes = if f == "-" {
        req.stdin.clone().unwrap_or_default()
    } else {
        match req.files.iter().find(|(p, _)| p.as_slice() == f.as_bytes()) {
            Some((_, Some(c))) => c.clone(),
            _ => return Err(fail(format!("open {f}: no such file or directory"))),
        }
    };
    let text =
        String::from_utf8(bytes).map_err(|_| fail("invalid settings: input is not valid UTF-8"))?;
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let v: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).map_err(|e| fail(format!("invalid settings: {e}")))?;
    let serde_yaml_ng::Value::Mapping(m) = v else {
        if v.is_null() {
            return Ok(BTreeMap::new());
        }
        return Err(fail("invalid settings: expected a map of strings"));
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let k = match k {
            serde_yaml_ng::Value::String(s) => s,
            other => {
                yaml_scalar(&other).ok_or_else(|| fail("invalid settings: keys must be strings"))?
            }
        };
        let v = match v {
            serde_yaml_ng::Value::Null => String::new(),
            other => yaml_scalar(&other).ok_or_else(|| {
                fail(format!("invalid settings: value of {k:?} must be a string"))
            })?,
        };
        out.insert(k, v);
    }
    Ok(out)
}

fn yaml_scalar(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn key_values(pos: &[String]) -> R<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for p in pos {
        let Some((k, v)) = p.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(usage(format!("expected \"key=value\", got {p:?}")));
        };
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(usage(format!("key {k:?} specified more than once")));
        }
    }
    Ok(out)
}

fn relation_set(
    ctx: &mut HookContext,
    st: &Store,
    req: &ToolRequest,
    args: &[String],
) -> R<Vec<u8>> {
    let a = parse(
        args,
        &[
            FMT,
            ("r|relation", Kind::Value),
            ("app", Kind::Bool),
            ("file", Kind::Value),
        ],
    )?;
    let rel = relation_arg(ctx, st, a.val("r"))?;
    let mut settings = match a.val("file") {
        Some(f) => read_settings_file(req, f)?,
        None => BTreeMap::new(),
    };
    settings.extend(key_values(&a.pos)?);
    let app = a.flag("app");
    if app && !is_leader(ctx, st)? {
        return Err(fail("cannot write relation settings"));
    }
    let owner = if app {
        ctx.app.clone()
    } else {
        ctx.unit.clone()
    };
    let mut current = st.read(|c| store::bag(c, rel.id, &owner))?.0;
    let entry = ctx.relation_writes.entry((rel.id, owner)).or_default();
    for (k, v) in entry.iter() {
        current.insert(k.clone(), v.clone());
    }
    for (k, v) in &settings {
        current.insert(k.clone(), v.clone());
    }
    let size: usize = current
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if size > MAX_BAG {
        return Err(fail(format!(
            "relation settings too large: {size} bytes exceeds the {MAX_BAG} byte limit"
        )));
    }
    entry.extend(settings);
    Ok(Vec::new())
}

fn config_get(ctx: &HookContext, st: &Store, args: &[String]) -> R<Vec<u8>> {
    let a = parse(args, &[FMT, OUT, ("a|all", Kind::Bool)])?;
    let (cfg, _) = st.read(|c| store::app_config(c, &ctx.app))?;
    let mut all: Map<String, Value> = ctx
        .charm
        .config
        .keys()
        .map(|k| (k.clone(), Value::Null))
        .collect();
    for (k, v) in ctx.charm.default_config() {
        all.insert(k, v);
    }
    for (k, v) in cfg {
        all.insert(k, v);
    }
    match a.pos.as_slice() {
        [] => {
            if !a.flag("a") {
                all.retain(|_, v| !v.is_null());
            }
            Ok(format_out(&Value::Object(all), a.val("format"), "smart"))
        }
        [k] => {
            if a.flag("a") {
                return Err(usage(
                    "cannot use argument --all together with key \"".to_string() + k + "\"",
                ));
            }
            Ok(format_out(
                all.get(k).unwrap_or(&Value::Null),
                a.val("format"),
                "smart",
            ))
        }
        _ => check_empty(&a.pos[1..]).map(|_| Vec::new()),
    }
}

fn leader_set(ctx: &mut HookContext, st: &Store, args: &[String]) -> R<Vec<u8>> {
    let a = parse(args, &[("file", Kind::Value)])?;
    let kv = key_values(&a.pos)?;
    if !is_leader(ctx, st)? {
        return Err(fail(format!(
            "cannot write leadership settings: {NOT_LEADER}"
        )));
    }
    let mut changed = false;
    st.write(|tx| {
        let s: String = tx.query_row("SELECT leader_settings FROM application WHERE name=?1", [&ctx.app], |r| r.get(0))?;
        let mut m: BTreeMap<String, String> = serde_json::from_str(&s)?;
        let before = m.clone();
        for (k, v) in &kv {
            if v.is_empty() {
                m.remove(k);
            } else {
                m.insert(k.clone(), v.clone());
            }
        }
        if m != before {
            changed = true;
            tx.execute(
                "UPDATE application SET leader_settings=?1, leader_settings_version=leader_settings_version+1 WHERE name=?2",
                [serde_json::to_string(&m)?, ctx.app.clone()],
            )?;
        }
        Ok(())
    })?;
    ctx.leader_settings_written |= changed;
    Ok(Vec::new())
}

fn status_json(s: &store::StatusInfo, include_data: bool) -> Value {
    let mut m = json!({"status": s.status});
    if include_data {
        m["message"] = json!(s.message);
        m["status-data"] = if s.data.is_null() {
            json!({})
        } else {
            s.data.clone()
        };
    }
    m
}

fn status_get(ctx: &HookContext, st: &Store, args: &[String]) -> R<Vec<u8>> {
    let a = parse(
        args,
        &[
            FMT,
            OUT,
            ("include-data", Kind::Bool),
            ("application", Kind::Bool),
        ],
    )?;
    check_empty(&a.pos)?;
    let inc = a.flag("include-data");
    let plain = !inc && a.val("format").unwrap_or("smart") == "smart";
    let v = if a.flag("application") {
        if !is_leader(ctx, st)? {
            return Err(fail(format!("finding application status: {NOT_LEADER}")));
        }
        let app = st.read(|c| store::status(c, &format!("app:{}", ctx.app)))?;
        if plain {
            json!(app.status)
        } else {
            let mut units = Map::new();
            for u in st.read(|c| store::units(c, Some(&ctx.app)))? {
                let s = st.read(|c| store::status(c, &format!("unit:{}", u.name)))?;
                units.insert(u.name, status_json(&s, inc));
            }
            let mut inner = status_json(&app, inc);
            inner["units"] = Value::Object(units);
            json!({"application-status": inner})
        }
    } else {
        let s = st.read(|c| store::status(c, &format!("unit:{}", ctx.unit)))?;
        if plain {
            json!(s.status)
        } else {
            status_json(&s, inc)
        }
    };
    Ok(format_out(&v, a.val("format"), "smart"))
}

fn status_set(ctx: &HookContext, st: &Store, args: &[String]) -> R<Vec<u8>> {
    let a = parse(args, &[("application", Kind::Bool)])?;
    let Some(status) = a.pos.first() else {
        return Err(usage("invalid args, require <status> [message]"));
    };
    if !matches!(
        status.as_str(),
        "maintenance" | "blocked" | "waiting" | "active"
    ) {
        return Err(usage(format!(
            "invalid status {status:?}, expected one of [maintenance blocked waiting active]"
        )));
    }
    let message = a.pos.get(1).cloned().unwrap_or_default();
    if a.pos.len() > 2 {
        check_empty(&a.pos[2..])?;
    }
    let entity = if a.flag("application") {
        if !is_leader(ctx, st)? {
            return Err(fail(format!("setting application status: {NOT_LEADER}")));
        }
        format!("app:{}", ctx.app)
    } else {
        format!("unit:{}", ctx.unit)
    };
    st.write(|tx| store::set_status(tx, &entity, status, &message, &Value::Null, store::now_ms()))?;
    Ok(Vec::new())
}

fn action_get(ctx: &HookContext, args: &[String]) -> R<Vec<u8>> {
    let a = parse(args, &[FMT, OUT])?;
    let act = ctx
        .action
        .as_ref()
        .ok_or_else(|| fail("not running an action"))?;
    let v = match a.pos.as_slice() {
        [] => act.params.clone(),
        [k] => {
            let mut cur = &act.params;
            for part in k.split('.') {
                cur = match cur.get(part) {
                    Some(v) => v,
                    None => return Ok(Vec::new()),
                };
            }
            cur.clone()
        }
        _ => return check_empty(&a.pos[1..]).map(|_| Vec::new()),
    };
    Ok(format_out(&v, a.val("format"), "smart"))
}

fn valid_action_key(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn action_set(ctx: &mut HookContext, args: &[String]) -> R<Vec<u8>> {
    let a = parse(args, &[])?;
    if a.pos.is_empty() {
        return Err(usage("no key=value pairs specified"));
    }
    let mut pairs = Vec::new();
    for p in &a.pos {
        let Some((k, v)) = p.split_once('=') else {
            return Err(usage(format!(
                "argument {p:?} must be of the form key...=value"
            )));
        };
        let parts: Vec<&str> = k.split('.').collect();
        for part in &parts {
            if !valid_action_key(part) {
                return Err(usage(format!(
                    "key {part:?} must start and end with lowercase alphanumeric, and contain only lowercase alphanumeric, hyphens and periods"
                )));
            }
            if matches!(
                *part,
                "stdout" | "stderr" | "stdout-encoding" | "stderr-encoding"
            ) {
                return Err(usage(format!("cannot set reserved action key {part:?}")));
            }
        }
        pairs.push((
            parts.into_iter().map(String::from).collect::<Vec<_>>(),
            v.to_string(),
        ));
    }
    let act = ctx
        .action
        .as_mut()
        .ok_or_else(|| fail("not running an action"))?;
    for (path, v) in pairs {
        let mut cur = &mut act.results;
        for p in &path[..path.len() - 1] {
            let e = cur.entry(p.clone()).or_insert_with(|| json!({}));
            if !e.is_object() {
                *e = json!({});
            }
            cur = e.as_object_mut().expect("just made an object");
        }
        cur.insert(path[path.len() - 1].clone(), json!(v));
    }
    Ok(Vec::new())
}

fn network_get(ctx: &HookContext, st: &Store, args: &[String]) -> R<Vec<u8>> {
    let a = parse(
        args,
        &[
            FMT,
            OUT,
            ("r|relation", Kind::Value),
            ("primary-address", Kind::Bool),
            ("bind-address", Kind::Bool),
            ("ingress-address", Kind::Bool),
            ("egress-subnets", Kind::Bool),
        ],
    )?;
    if a.val("r").is_some() {
        relation_arg(ctx, st, a.val("r"))?;
    }
    let binding = match a.pos.as_slice() {
        [b] => b.clone(),
        [] => match ctx.hook.relation() {
            Some(r) => r.endpoint.clone(),
            None => return Err(usage("no arguments specified")),
        },
        _ => return check_empty(&a.pos[1..]).map(|_| Vec::new()),
    };
    if ctx.charm.endpoint(&binding).is_none() && binding != "juju-info" {
        return Err(fail(format!(
            "no network config found for binding {binding:?}"
        )));
    }
    let addr = &ctx.address;
    let cidr = format!("{addr}/32");
    let v = if a.flag("bind-address") || a.flag("primary-address") {
        json!(addr)
    } else if a.flag("ingress-address") {
        json!([addr])
    } else if a.flag("egress-subnets") {
        json!([cidr])
    } else {
        json!({
            "bind-addresses": [{"mac-address": "", "interface-name": "lo", "addresses": [{"hostname": "", "value": addr, "cidr": cidr, "address": addr}]}],
            "egress-subnets": [cidr],
            "ingress-addresses": [addr],
        })
    };
    Ok(format_out(&v, a.val("format"), "smart"))
}

fn goal_state(ctx: &HookContext, st: &Store, args: &[String]) -> R<Vec<u8>> {
    let a = parse(args, &[FMT, OUT])?;
    check_empty(&a.pos)?;
    let since = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut units = Map::new();
    for u in st.read(|c| store::units(c, Some(&ctx.app)))? {
        let s = if u.life == crate::uniter::state::Life::Alive {
            "active"
        } else {
            "dying"
        };
        units.insert(u.name, json!({"status": s, "since": since}));
    }
    let mut rels = Map::new();
    for r in st.read(|c| store::relations(c, Some(&ctx.app)))? {
        let Some((mine, other)) = r.side(&ctx.app) else {
            continue;
        };
        let e = rels
            .entry(mine.endpoint.clone())
            .or_insert_with(|| json!({}));
        let status = if r.life == crate::uniter::state::Life::Alive {
            "joined"
        } else {
            "dying"
        };
        e[other] = json!({"status": status, "since": since});
        if other != ctx.app {
            for u in st.read(|c| store::units(c, Some(other)))? {
                e[u.name] = json!({"status": "active", "since": since});
            }
        }
    }
    Ok(format_out(
        &json!({"units": units, "relations": rels}),
        a.val("format"),
        "yaml",
    ))
}

fn parse_port(spec: &str) -> R<(String, u16, u16)> {
    let bad = || {
        usage(format!(
            "expected <port>[/<protocol>] or <from>-<to>[/<protocol>] or icmp, got {spec:?}"
        ))
    };
    if spec == "icmp" {
        return Ok(("icmp".into(), 0, 0));
    }
    let (range, proto) = match spec.split_once('/') {
        Some((r, p)) => (r, p.to_lowercase()),
        None => (spec, "tcp".into()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp") {
        return Err(bad());
    }
    let (from, to) = match range.split_once('-') {
        Some((f, t)) => (
            f.parse::<u16>().map_err(|_| bad())?,
            t.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = range.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if from == 0 || to < from {
        return Err(bad());
    }
    Ok((proto, from, to))
}

// ---------------------------------------------------------------- secrets

/// `secret:<xid>`, `secret://<uuid>/<xid>` or `<xid>` → xid.
fn parse_secret_uri(s: &str) -> R<String> {
    let id = if let Some(rest) = s.strip_prefix("secret://") {
        rest.rsplit('/').next().unwrap_or("")
    } else if let Some(rest) = s.strip_prefix("secret:") {
        rest
    } else {
        s
    };
    if id.len() == 20
        && id
            .bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    {
        Ok(id.to_string())
    } else {
        Err(usage(format!("secret URI {s:?} not valid")))
    }
}

fn new_secret_id() -> String {
    use rand::Rng;
    const ALPHA: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
    let mut rng = rand::thread_rng();
    // xid-like: 20 base32hex characters.
    (0..20)
        .map(|_| ALPHA[rng.gen_range(0..32)] as char)
        .collect()
}

fn valid_secret_key(k: &str) -> bool {
    // ^([a-z](?:-?[a-z0-9]){2,})$
    let b = k.as_bytes();
    if b.is_empty() || !b[0].is_ascii_lowercase() {
        return false;
    }
    let mut groups = 0;
    let mut i = 1;
    while i < b.len() {
        if b[i] == b'-' {
            i += 1;
        }
        if i >= b.len() || !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            return false;
        }
        groups += 1;
        i += 1;
    }
    groups >= 2
}

/// Parse `k=v`, `k#base64=v`, `k#file=/p` (and a `--file` YAML/JSON map)
/// into base64 values, with Juju's key rule and size limits.
fn secret_content(
    req: &ToolRequest,
    pos: &[String],
    file: Option<&str>,
) -> R<BTreeMap<String, String>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut raw: Vec<(String, String)> = Vec::new();
    if let Some(f) = file {
        for (k, v) in read_settings_file(req, f).map_err(|e| usage(e.msg))? {
            raw.push((k, v));
        }
    }
    for p in pos {
        let stripped = p.trim_end_matches('=');
        match stripped.find('=') {
            Some(idx) if idx >= 1 => raw.push((p[..idx].to_string(), p[idx + 1..].to_string())),
            _ => return Err(usage(format!("key value {p:?} not valid"))),
        }
    }
    let mut out = BTreeMap::new();
    let mut total = 0usize;
    for (k, v) in raw {
        let (key, value) = if let Some(key) = k.strip_suffix("#base64") {
            if b64.decode(&v).is_err() {
                return Err(usage(format!("base64 value for key {key:?} not valid")));
            }
            (key.to_string(), v)
        } else if let Some(key) = k.strip_suffix("#file") {
            let content = match req
                .files
                .iter()
                .find(|(path, _)| path.as_slice() == v.as_bytes())
            {
                Some((_, Some(c))) => c.clone(),
                _ => return Err(usage(format!("open {v}: no such file or directory"))),
            };
            (key.to_string(), b64.encode(content))
        } else {
            (k, b64.encode(v.as_bytes()))
        };
        if !valid_secret_key(&key) {
            return Err(usage(format!("key {key:?} not valid")));
        }
        if value.len() > MAX_SECRET_CONTENT {
            return Err(usage(format!(
                "base64 encoded secret content for key {key:?} too large: {} bytes",
                value.len()
            )));
        }
        total += value.len();
        out.insert(key, value);
    }
    if total > MAX_SECRET_CONTENT {
        return Err(usage(format!(
            "base64 encoded secret content too large: {total} bytes"
        )));
    }
    Ok(out)
}

fn parse_expire(s: &str, now: i64) -> R<i64> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0));
    }
    if s.starts_with('-') {
        return Err(usage(format!("negative expire duration {s:?} not valid")));
    }
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(now + d.as_millis() as i64),
        Ok(_) => Err(usage(format!("negative expire duration {s:?} not valid"))),
        Err(_) => Err(usage(format!("expire time or duration {s:?} not valid"))),
    }
}

fn secret_meta_flags() -> Vec<(&'static str, Kind)> {
    vec![
        ("label", Kind::Value),
        ("description", Kind::Value),
        ("expire", Kind::Value),
        ("rotate", Kind::Value),
        ("owner", Kind::Value),
        ("file", Kind::Value),
    ]
}

fn apply_meta(a: &Args, ch: &mut SecretChange) -> R<()> {
    if let Some(r) = a.val("rotate") {
        if r != "never" && store::rotate_interval_ms(r).is_none() {
            return Err(usage(format!("rotate policy {r:?} not valid")));
        }
        ch.rotate = Some(r.to_string());
    }
    if let Some(e) = a.val("expire") {
        ch.expire = Some(parse_expire(e, store::now_ms())?);
    }
    if let Some(d) = a.val("description") {
        ch.description = Some(d.to_string());
    }
    if let Some(l) = a.val("label") {
        ch.label = Some(l.to_string());
    }
    Ok(())
}

fn check_owner_label_free(
    ctx: &HookContext,
    st: &Store,
    owner: &str,
    label: &str,
    except: Option<&str>,
) -> R<()> {
    let existing = st.read(|c| store::secret_by_owner_label(c, owner, label))?;
    let pending = ctx
        .secret_changes
        .iter()
        .find(|(id, ch)| ch.label.as_deref() == Some(label) && Some(id.as_str()) != except)
        .map(|(id, _)| id.clone());
    if existing.is_some_and(|s| Some(s.id.as_str()) != except) || pending.is_some() {
        return Err(fail(format!("secret with label {label:?} already exists")));
    }
    Ok(())
}

fn secret_add(ctx: &mut HookContext, st: &Store, req: &ToolRequest, args: &[String]) -> R<Vec<u8>> {
    let a = parse(args, &secret_meta_flags())?;
    if a.pos.is_empty() && a.val("file").is_none() {
        return Err(usage("missing secret value or filename"));
    }
    let owner_kind = match a.val("owner").unwrap_or("application") {
        "application" => "application",
        "unit" => "unit",
        o => return Err(usage(format!("secret owner {o:?} not valid"))),
    };
    let content = secret_content(req, &a.pos, a.val("file"))?;
    if content.is_empty() {
        return Err(fail("empty secret value not valid"));
    }
    let owner = if owner_kind == "application" {
        if !is_leader(ctx, st)? {
            return Err(fail(NOT_LEADER));
        }
        ctx.app.clone()
    } else {
        ctx.unit.clone()
    };
    if let Some(l) = a.val("label") {
        check_owner_label_free(ctx, st, &owner, l, None)?;
    }
    let mut ch = SecretChange {
        create: Some((owner_kind.into(), owner)),
        content: Some(content),
        ..Default::default()
    };
    apply_meta(&a, &mut ch)?;
    let id = new_secret_id();
    ctx.secret_changes.insert(id.clone(), ch);
    Ok(format!("secret:{id}\n").into_bytes())
}

/// Find a secret this unit owns for writing; enforces owner and leadership.
fn owned_for_write(ctx: &HookContext, st: &Store, uri: &str) -> R<(String, store::SecretRecord)> {
    let id = parse_secret_uri(uri)?;
    if let Some(ch) = ctx.secret_changes.get(&id) {
        if let Some((kind, owner)) = &ch.create {
            let rec = store::SecretRecord {
                id: id.clone(),
                owner_kind: kind.clone(),
                owner: owner.clone(),
                label: ch.label.clone(),
                description: ch.description.clone(),
                rotate_policy: ch.rotate.clone().unwrap_or_else(|| "never".into()),
                next_rotate: None,
                latest_revision: 0,
                created: 0,
                updated: 0,
            };
            return Ok((id, rec));
        }
    }
    let s = st
        .read(|c| store::secret(c, &id))?
        .ok_or_else(|| fail(format!("secret {uri:?} not found")))?;
    let owns = (s.owner_kind == "unit" && s.owner == ctx.unit)
        || (s.owner_kind == "application" && s.owner == ctx.app);
    if !owns {
        return Err(fail(PERM));
    }
    if s.owner_kind == "application" && !is_leader(ctx, st)? {
        return Err(fail(NOT_LEADER));
    }
    Ok((id, s))
}

fn secret_set(ctx: &mut HookContext, st: &Store, req: &ToolRequest, args: &[String]) -> R<Vec<u8>> {
    let a = parse(args, &secret_meta_flags())?;
    let Some((uri, rest)) = a.pos.split_first() else {
        return Err(usage("missing secret URI"));
    };
    let content = secret_content(req, rest, a.val("file"))?;
    let (id, s) = owned_for_write(ctx, st, uri)?;
    if let Some(l) = a.val("label") {
        check_owner_label_free(ctx, st, &s.owner, l, Some(&id))?;
    }
    let ch = ctx.secret_changes.entry(id).or_default();
    apply_meta(&a, ch)?;
    if !content.is_empty() {
        ch.content = Some(content);
    }
    Ok(Vec::new())
}

/// Resolve a secret for reading by id and/or label; returns the xid.
fn lookup_secret(
    ctx: &HookContext,
    st: &Store,
    id: Option<&str>,
    label: Option<&str>,
) -> R<String> {
    if let Some(u) = id {
        return parse_secret_uri(u);
    }
    let label = label.ok_or_else(|| usage("require either a secret URI or label"))?;
    if let Some((id, _)) = ctx
        .secret_changes
        .iter()
        .find(|(_, ch)| ch.label.as_deref() == Some(label))
    {
        return Ok(id.clone());
    }
    // Owner labels (this unit's, then its application's), then consumer labels.
    let found = st.read(|c| {
        if let Some(s) = store::secret_by_owner_label(c, &ctx.unit, label)? {
            return Ok(Some(s.id));
        }
        if let Some(s) = store::secret_by_owner_label(c, &ctx.app, label)? {
            return Ok(Some(s.id));
        }
        store::secret_by_consumer_label(c, &ctx.unit, label)
    })?;
    found.ok_or_else(|| fail(format!("secret with label {label:?} not found")))
}

fn decode_content(m: &BTreeMap<String, String>) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let out: Map<String, Value> = m
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                json!(b64
                    .decode(v)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()),
            )
        })
        .collect();
    Value::Object(out)
}

fn secret_get(ctx: &mut HookContext, st: &Store, args: &[String]) -> R<Vec<u8>> {
    let a = parse(
        args,
        &[
            FMT,
            OUT,
            ("label", Kind::Value),
            ("peek", Kind::Bool),
            ("refresh", Kind::Bool),
        ],
    )?;
    if a.flag("peek") && a.flag("refresh") {
        return Err(usage("specify one of --peek or --refresh but not both"));
    }
    let (id_arg, key) = match a.pos.as_slice() {
        [] => (None, None),
        [i] => (Some(i.as_str()), None),
        [i, k] => (Some(i.as_str()), Some(k.clone())),
        _ => return check_empty(&a.pos[2..]).map(|_| Vec::new()),
    };
    let label = a.val("label");
    let id = lookup_secret(ctx, st, id_arg, label)?;
    let uri = format!("secret:{id}");
    // Pending content from this hook (owner view).
    if let Some(ch) = ctx.secret_changes.get(&id) {
        if let Some(c) = &ch.content {
            return Ok(format_out(&pick(c, key)?, a.val("format"), "yaml"));
        }
    }
    let s = st
        .read(|c| store::secret(c, &id))?
        .ok_or_else(|| fail(format!("secret {uri:?} not found")))?;
    if ctx
        .remove_ops
        .iter()
        .any(|(r, rev)| r == &id && rev.is_none())
    {
        return Err(fail(format!("secret {uri:?} not found")));
    }
    let allowed = st.read(|c| store::may_read_secret(c, &s, &ctx.unit, &ctx.app))?;
    if !allowed {
        return Err(fail(PERM));
    }
    let owner = (s.owner_kind == "unit" && s.owner == ctx.unit)
        || (s.owner_kind == "application" && s.owner == ctx.app);
    let rev = if owner {
        s.latest_revision
    } else {
        let now_tracked = st.read(|c| store::consumer(c, &id, &ctx.unit))?;
        let (new_tracked, rev) = match (now_tracked, a.flag("peek"), a.flag("refresh")) {
            (None, _, _) => (Some(s.latest_revision), s.latest_revision),
            (Some((_, t)), true, _) => (
                if label.is_some() { Some(t) } else { None },
                s.latest_revision,
            ),
            (Some(_), _, true) => (Some(s.latest_revision), s.latest_revision),
            (Some((_, t)), _, _) => (if label.is_some() { Some(t) } else { None }, t),
        };
        if let Some(t) = new_tracked {
            // Tracking and consumer labels are recorded at once, as Juju's
            // GetContent does server-side.
            let l = if id_arg.is_some() { label } else { None };
            st.write(|tx| store::set_consumer(tx, &id, &ctx.unit, l, t))?;
            ctx.secret_tracking_changed = true;
        }
        rev
    };
    let content = st.read(|c| st.secret_content(c, &id, rev))?;
    Ok(format_out(&pick(&content, key)?, a.val("format"), "yaml"))
}

/// The whole (decoded) content, one decoded value, or `key#base64` raw.
fn pick(content: &BTreeMap<String, String>, key: Option<String>) -> R<Value> {
    let Some(k) = key else {
        return Ok(decode_content(content));
    };
    let (name, raw) = match k.strip_suffix("#base64") {
        Some(n) => (n.to_string(), true),
        None => (k.clone(), false),
    };
    let v = content
        .get(&name)
        .ok_or_else(|| fail(format!("secret key {name:?} not found")))?;
    if raw {
        return Ok(json!(v));
    }
    Ok(decode_content(&BTreeMap::from([(name.clone(), v.clone())]))[&name].clone())
}

fn secret_info_get(ctx: &HookContext, st: &Store, args: &[String]) -> R<Vec<u8>> {
    let a = parse(args, &[FMT, OUT, ("label", Kind::Value)])?;
    if !a.pos.is_empty() && a.val("label").is_some() {
        return Err(usage("specify either a secret URI or label but not both"));
    }
    let id = lookup_secret(ctx, st, a.pos.first().map(String::as_str), a.val("label"))?;
    let uri = format!("secret:{id}");
    let s = match ctx.secret_changes.get(&id).filter(|c| c.create.is_some()) {
        Some(_) => owned_for_write(ctx, st, &uri).map(|(_, s)| s).ok(),
        None => st.read(|c| store::secret(c, &id))?,
    };
    let s = s.ok_or_else(|| fail(format!("secret {uri:?} not found")))?;
    let owns = (s.owner_kind == "unit" && s.owner == ctx.unit)
        || (s.owner_kind == "application" && s.owner == ctx.app);
    if !owns {
        return Err(fail(format!("secret {uri:?} not found")));
    }
    let mut m = json!({"revision": s.latest_revision.max(1), "owner": s.owner_kind});
    if let Some(l) = &s.label {
        m["label"] = json!(l);
    }
    if let Some(d) = &s.description {
        m["description"] = json!(d);
    }
    if s.rotate_policy != "never" {
        m["rotation"] = json!(s.rotate_policy);
        if let Some(t) = s.next_rotate {
            m["rotates"] = json!(fmt_time(t));
        }
    }
    let revs = st.read(|c| store::secret_revisions(c, &id))?;
    if let Some((_, Some(e))) = revs.iter().find(|(r, _)| *r == s.latest_revision) {
        m["expiry"] = json!(fmt_time(*e));
    }
    let grants = st.read(|c| store::secret_grants(c, &id))?;
    if !grants.is_empty() {
        m["access"] = json!(grants.iter().map(|(r, t)| json!({"target": if t.contains('/') { format!("unit-{}", t.replace('/', "-")) } else { format!("application-{t}") }, "scope": format!("relation-{r}"), "role": "view"})).collect::<Vec<_>>());
    }
    Ok(format_out(&json!({ id: m }), a.val("format"), "yaml"))
}

fn fmt_time(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn secret_grant(ctx: &mut HookContext, st: &Store, args: &[String], grant: bool) -> R<Vec<u8>> {
    let a = parse(
        args,
        &[
            ("r|relation", Kind::Value),
            ("unit", Kind::Value),
            ("app|application", Kind::Value),
        ],
    )?;
    let Some((uri, rest)) = a.pos.split_first() else {
        return Err(usage("missing secret URI"));
    };
    parse_secret_uri(uri)?;
    let rel = relation_arg(ctx, st, a.val("r"))?;
    let (_, other) = rel.side(&ctx.app).ok_or_else(|| fail(PERM))?;
    let other = other.to_string();
    let target = match a.val("unit") {
        Some(u) => {
            if !valid_unit_name(u) {
                return Err(usage(format!("unit {u:?} not valid")));
            }
            if u.split('/').next() != Some(other.as_str()) {
                return Err(usage(format!(
                    "cannot specify unit {u:?} in relation to application {other:?}"
                )));
            }
            u.to_string()
        }
        None => other.clone(),
    };
    check_empty(rest)?;
    let (id, _) = owned_for_write(ctx, st, uri)?;
    if grant && !target.contains('/') {
        let existing = st.read(|c| store::secret_grants(c, &id))?;
        let unit_level = existing
            .iter()
            .any(|(rid, t)| *rid == rel.id && t.starts_with(&format!("{other}/")))
            || ctx.grant_ops.iter().any(|(i, rid, t, g)| {
                i == &id && *rid == rel.id && *g && t.starts_with(&format!("{other}/"))
            });
        if unit_level {
            return Err(fail("any unit level grants need to be revoked before granting access to the corresponding application"));
        }
    }
    ctx.grant_ops.push((id, rel.id, target, grant));
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags_parse_like_gnuflag() {
        let spec = [FMT, ("r|relation", Kind::Value), ("app", Kind::Bool)];
        let a = parse(
            &s(&["--format=json", "-r", "db:1", "-", "x/0", "--app"]),
            &spec,
        )
        .unwrap();
        assert_eq!(a.val("format"), Some("json"));
        assert_eq!(a.val("r"), Some("db:1"));
        assert!(a.flag("app"));
        assert_eq!(a.pos, s(&["-", "x/0"]));
        let e = parse(&s(&["--nope"]), &spec).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (2, "flag provided but not defined: --nope")
        );
        assert_eq!(
            parse(&s(&["-r"]), &spec).unwrap_err().msg,
            "flag needs an argument: -r"
        );
        assert!(parse(&s(&["--format", "xml"]), &spec)
            .unwrap_err()
            .msg
            .contains("unknown format \"xml\""));
        assert!(!parse(&s(&["--app=False"]), &spec).unwrap().flag("app"));
        let a = parse(&s(&["--", "--app", "-x"]), &spec).unwrap();
        assert_eq!(a.pos, s(&["--app", "-x"]));
    }

    #[test]
    fn smart_format() {
        assert_eq!(smart(&json!(true)), "True");
        assert_eq!(smart(&json!(["a", "b"])), "a\nb");
        assert_eq!(smart(&json!({"k": "v"})), "k: v");
        assert_eq!(format_out(&Value::Null, None, "smart"), Vec::<u8>::new());
        assert_eq!(
            format_out(&json!({"a": "1"}), Some("json"), "smart"),
            b"{\"a\":\"1\"}\n"
        );
    }

    #[test]
    fn secret_keys_and_uris() {
        assert!(valid_secret_key("password"));
        assert!(valid_secret_key("tls-key"));
        assert!(!valid_secret_key("ab"));
        assert!(!valid_secret_key("Password"));
        assert!(!valid_secret_key("a--b"));
        assert!(!valid_secret_key("abc-"));
        let id = new_secret_id();
        assert_eq!(parse_secret_uri(&format!("secret:{id}")).unwrap(), id);
        assert_eq!(
            parse_secret_uri(&format!("secret://0a1b/{id}")).unwrap(),
            id
        );
        assert_eq!(parse_secret_uri(&id).unwrap(), id);
        assert!(parse_secret_uri("secret:nope").is_err());
    }

    #[test]
    fn ports_parse() {
        assert_eq!(parse_port("80").unwrap(), ("tcp".into(), 80, 80));
        assert_eq!(
            parse_port("8000-8999/udp").unwrap(),
            ("udp".into(), 8000, 8999)
        );
        assert_eq!(parse_port("icmp").unwrap().0, "icmp");
        assert!(parse_port("99999").is_err());
        assert!(parse_port("80/sctp").is_err());
        assert!(parse_port("90-80").is_err());
    }

    #[test]
    fn action_keys() {
        assert!(valid_action_key("result"));
        assert!(valid_action_key("a-1"));
        assert!(!valid_action_key("A"));
        assert!(!valid_action_key("-a"));
        assert!(!valid_action_key(""));
    }
}

#[cfg(test)]
mod prop {
    //! Whatever a charm sends, a tool answers with exit 0, 1 or 2 and never panics.

    use super::*;
    use crate::charmdir::{CharmMeta, Endpoint, Role};
    use crate::hook::{HookKind, RelationRef};
    use proptest::prelude::*;

    fn fixture() -> (tempfile::TempDir, Store, HookContext) {
        let d = tempfile::tempdir().unwrap();
        let st = Store::open(d.path()).unwrap();
        let meta = CharmMeta {
            name: "demo".into(),
            endpoints: vec![
                Endpoint {
                    name: "db".into(),
                    interface: "pg".into(),
                    role: Role::Requirer,
                },
                Endpoint {
                    name: "cluster".into(),
                    interface: "c".into(),
                    role: Role::Peer,
                },
            ],
            ..Default::default()
        };
        let rel = st
            .write(|tx| {
                store::ensure_model(tx, "m")?;
                let ch = store::add_charm(tx, &meta, "x", std::path::Path::new("/c"))?;
                store::add_application(tx, "demo", ch, &BTreeMap::new())?;
                store::add_unit(tx, "demo", crate::network::AddressBlock::new(1).unwrap())?;
                store::add_unit(tx, "demo", crate::network::AddressBlock::new(1).unwrap())?;
                let id = store::add_relation(
                    tx,
                    &[store::RelationEndpoint {
                        app: "demo".into(),
                        endpoint: "cluster".into(),
                        role: Role::Peer,
                        interface: "c".into(),
                    }],
                )?;
                store::enter_scope(tx, id, "demo/0", "127.0.0.1")?;
                store::enter_scope(tx, id, "demo/1", "127.0.0.2")?;
                Ok(id)
            })
            .unwrap();
        let ctx = HookContext {
            id: "ctx".into(),
            unit: "demo/0".into(),
            app: "demo".into(),
            address: "127.0.0.1".into(),
            model_uuid: "u".into(),
            model_name: "m".into(),
            hook: HookKind::RelationChanged(RelationRef {
                id: rel,
                endpoint: "cluster".into(),
                remote_app: "demo".into(),
                remote_unit: "demo/1".into(),
                self_departing: false,
            })
            .into(),
            charm: meta,
            log_path: d.path().join("log"),
            relation_writes: Default::default(),
            state_writes: Default::default(),
            secret_changes: Default::default(),
            grant_ops: Default::default(),
            remove_ops: Default::default(),
            port_ops: Default::default(),
            action: Some(crate::context::ActionState {
                id: 1,
                params: json!({"a": {"b": "c"}}),
                ..Default::default()
            }),
            leader_settings_written: false,
            secret_tracking_changed: false,
            known_members: Default::default(),
            storage: [(
                "data/0".to_string(),
                ("filesystem".to_string(), "/srv".to_string()),
            )]
            .into(),
        };
        (d, st, ctx)
    }

    fn arg() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"-".to_vec()),
            Just(b"--".to_vec()),
            Just(b"-r".to_vec()),
            Just(b"--app".to_vec()),
            Just(b"--format=json".to_vec()),
            Just(b"--file".to_vec()),
            Just(b"cluster:0".to_vec()),
            Just(b"demo/1".to_vec()),
            Just(b"secret:0123456789abcdefghij".to_vec()),
            Just(b"key#file=/nope".to_vec()),
            Just(b"k=v".to_vec()),
            "[a-z=.#:/ -]{0,12}".prop_map(|s| s.into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn tools_never_panic(tool in proptest::sample::select(TOOL_NAMES), args in proptest::collection::vec(arg(), 0..6), stdin in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))) {
            let (_d, st, mut ctx) = fixture();
            let req = ToolRequest { context_id: b"ctx".to_vec(), tool: tool.as_bytes().to_vec(), args, stdin, ..Default::default() };
            let resp = run(&mut ctx, &st, &req);
            prop_assert!(resp.code <= 2, "{tool}: {resp:?}");
            if resp.code != 0 {
                prop_assert!(resp.stderr.starts_with(b"ERROR "), "{tool}: {resp:?}");
            }
        }
    }
}
