//! Layers and the combined plan: Pebble's strict schema, merge rules, ordering and
//! validation, with Pebble's wording for errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::util::{format_duration, parse_command, parse_duration};

/// A plan or layer format error (HTTP 400 at the API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, FormatError> {
    Err(FormatError(message.into()))
}

/// How a layer's entry combines with the same entry in earlier layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Override {
    /// Merge field by field.
    Merge,
    /// Replace the whole entry.
    Replace,
}

/// Whether a service or check starts by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Startup {
    /// Started by autostart/replan.
    Enabled,
    /// Only started on request.
    Disabled,
}

/// What to do when a service exits or one of its checks fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceAction {
    /// Restart with back-off.
    Restart,
    /// Shut the daemon down (exit 0 on success, 10 on failure).
    Shutdown,
    /// Shut down with exit code 0.
    SuccessShutdown,
    /// Shut down with exit code 10.
    FailureShutdown,
    /// Do nothing.
    Ignore,
}

/// A duration written as a Go duration string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(GoDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// A service entry, in Pebble's field order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Service {
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// Startup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup: Option<Startup>,
    /// Override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#override: Option<Override>,
    /// The command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Start after these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Start before these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<String>,
    /// Also start these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    /// Environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// User id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<u32>,
    /// User name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Group id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<u32>,
    /// Group name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Action on exit code 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_success: Option<ServiceAction>,
    /// Action on a non-zero exit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<ServiceAction>,
    /// Actions when named checks fail.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub on_check_failure: BTreeMap<String, ServiceAction>,
    /// First back-off delay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_delay: Option<GoDuration>,
    /// Back-off multiplier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_factor: Option<f64>,
    /// Back-off ceiling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<GoDuration>,
    /// Time between SIGTERM and SIGKILL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill_delay: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workload: Option<String>,
}

impl Service {
    fn merge(&mut self, other: &Service) {
        macro_rules! take {
            ($($f:ident),*) => {$(
                if let Some(v) = &other.$f { self.$f = Some(v.clone()); }
            )*};
        }
        take!(
            summary,
            description,
            startup,
            r#override,
            command,
            user_id,
            user,
            group_id
        );
        take!(
            group,
            working_dir,
            on_success,
            on_failure,
            backoff_delay,
            backoff_factor
        );
        take!(backoff_limit, kill_delay, workload);
        self.after.extend(other.after.iter().cloned());
        self.before.extend(other.before.iter().cloned());
        self.requires.extend(other.requires.iter().cloned());
        self.environment.extend(other.environment.clone());
        self.on_check_failure.extend(other.on_check_failure.clone());
    }

    /// Back-off delay with its default.
    pub fn backoff_delay(&self) -> Duration {
        self.backoff_delay
            .map_or(Duration::from_millis(500), |d| d.0)
    }

    /// Back-off factor with its default.
    pub fn backoff_factor(&self) -> f64 {
        self.backoff_factor.unwrap_or(2.0)
    }

    /// Back-off limit with its default.
    pub fn backoff_limit(&self) -> Duration {
        self.backoff_limit.map_or(Duration::from_secs(30), |d| d.0)
    }

    /// Kill delay with its default.
    pub fn kill_delay(&self) -> Duration {
        self.kill_delay.map_or(Duration::from_secs(5), |d| d.0)
    }

    /// Startup with its default.
    pub fn startup(&self) -> Startup {
        self.startup.unwrap_or(Startup::Disabled)
    }

    /// The argv to run: base arguments plus the default extra arguments.
    pub fn argv(&self) -> Result<Vec<String>, String> {
        let (mut base, extra) = parse_command(self.command.as_deref().unwrap_or_default())?;
        base.extend(extra);
        Ok(base)
    }
}

/// An HTTP check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// URL to GET.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Extra headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// A TCP check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    /// Port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Host (default localhost).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// An exec check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExecCheck {
    /// Command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Service whose environment, user and working directory are inherited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_context: Option<String>,
    /// Environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// User id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<u32>,
    /// User.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Group id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<u32>,
    /// Group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

/// Check level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Liveness.
    Alive,
    /// Readiness (implies alive).
    Ready,
}

impl Level {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Alive => "alive",
            Level::Ready => "ready",
        }
    }
}

/// A health check entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Check {
    /// Override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#override: Option<Override>,
    /// Level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// Startup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup: Option<Startup>,
    /// Period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<GoDuration>,
    /// Timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Failures before the check is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// TCP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// Exec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecCheck>,
}

impl Check {
    fn merge(&mut self, other: &Check) {
        macro_rules! take {
            ($($f:ident),*) => {$(
                if let Some(v) = &other.$f { self.$f = Some(v.clone()); }
            )*};
        }
        take!(r#override, level, startup, period, timeout, threshold);
        if let Some(h) = &other.http {
            let mine = self.http.get_or_insert_with(Default::default);
            if h.url.is_some() {
                mine.url = h.url.clone();
            }
            mine.headers.extend(h.headers.clone());
        }
        if let Some(t) = &other.tcp {
            let mine = self.tcp.get_or_insert_with(Default::default);
            if t.port.is_some() {
                mine.port = t.port;
            }
            if t.host.is_some() {
                mine.host = t.host.clone();
            }
        }
        if let Some(e) = &other.exec {
            let mine = self.exec.get_or_insert_with(Default::default);
            take_exec(mine, e);
        }
    }

    /// Period with its default.
    pub fn period(&self) -> Duration {
        self.period.map_or(Duration::from_secs(10), |d| d.0)
    }

    /// Timeout with its default, capped to the period.
    pub fn timeout(&self) -> Duration {
        self.timeout
            .map_or(Duration::from_secs(3), |d| d.0)
            .min(self.period())
    }

    /// Threshold with its default.
    pub fn threshold(&self) -> u32 {
        self.threshold.unwrap_or(3)
    }

    /// Startup with its default (checks start by default).
    pub fn startup(&self) -> Startup {
        self.startup.unwrap_or(Startup::Enabled)
    }

    /// The check's kind for change summaries.
    pub fn kind(&self) -> &'static str {
        if self.http.is_some() {
            "http"
        } else if self.tcp.is_some() {
            "tcp"
        } else {
            "exec"
        }
    }
}

fn take_exec(mine: &mut ExecCheck, e: &ExecCheck) {
    macro_rules! take {
        ($($f:ident),*) => {$(
            if let Some(v) = &e.$f { mine.$f = Some(v.clone()); }
        )*};
    }
    take!(
        command,
        service_context,
        user_id,
        user,
        group_id,
        group,
        working_dir
    );
    mine.environment.extend(e.environment.clone());
}

/// A log target entry (kept and validated; Ward forwards no logs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogTarget {
    /// Override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#override: Option<Override>,
    /// Type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// Location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// One layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Order (not serialised).
    #[serde(skip)]
    pub order: u32,
    /// Label (not serialised).
    #[serde(skip)]
    pub label: String,
    /// Summary.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// Description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Services.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, Service>,
    /// Checks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, Check>,
    /// Log targets.
    #[serde(
        default,
        rename = "log-targets",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub log_targets: BTreeMap<String, LogTarget>,
}

impl Layer {
    /// Parses and validates one layer (Pebble's `ParseLayer`).
    pub fn parse(order: u32, label: &str, yaml: &str) -> Result<Layer, FormatError> {
        let mut layer: Layer = if yaml.trim().is_empty() {
            Layer::default()
        } else {
            serde_yaml_ng::from_str(yaml)
                .map_err(|e| FormatError(format!("cannot parse layer {label:?}: {e}")))?
        };
        layer.order = order;
        layer.label = label.to_string();
        layer.validate()?;
        Ok(layer)
    }

    fn validate(&self) -> Result<(), FormatError> {
        for (name, service) in &self.services {
            if name.is_empty() {
                return err("cannot use empty string as service name");
            }
            if name == "pebble" {
                return err(format!("cannot use reserved service name {name:?}"));
            }
            if name.starts_with('-') {
                return err(format!(
                    "cannot use service name {name:?}: starting with \"-\""
                ));
            }
            for (field, action) in [
                ("on-success", service.on_success),
                ("on-failure", service.on_failure),
            ] {
                match (field, action) {
                    ("on-success", Some(ServiceAction::SuccessShutdown))
                    | ("on-failure", Some(ServiceAction::FailureShutdown)) => {
                        return err(format!(
                            "plan service {name:?} {field} action {:?} invalid",
                            action_name(action)
                        ))
                    }
                    _ => {}
                }
            }
            for (check, action) in &service.on_check_failure {
                if *action == ServiceAction::FailureShutdown {
                    return err(format!(
                        "plan service {name:?} on-check-failure action {:?} invalid for check {check:?}",
                        action_name(Some(*action))
                    ));
                }
            }
            if let Some(f) = service.backoff_factor {
                if f < 1.0 {
                    return err(format!(
                        "plan service {name:?} backoff-factor must be 1.0 or greater, not {f}"
                    ));
                }
            }
            if let Some(cmd) = &service.command {
                parse_command(cmd).map_err(|e| {
                    FormatError(format!("plan service {name:?} command invalid: {e}"))
                })?;
            }
        }
        for (name, check) in &self.checks {
            if name.is_empty() {
                return err("cannot use empty string as check name");
            }
            if let Some(p) = check.period {
                if p.0.is_zero() {
                    return err(format!("plan check {name:?} period must not be zero"));
                }
            }
            if let Some(t) = check.timeout {
                if t.0.is_zero() {
                    return err(format!("plan check {name:?} timeout must not be zero"));
                }
            }
        }
        for (name, target) in &self.log_targets {
            for label in target.labels.keys() {
                if label.starts_with("pebble_") {
                    return err(format!(
                        "log target {name:?}: label {label:?} uses reserved prefix \"pebble_\""
                    ));
                }
            }
        }
        Ok(())
    }
}

fn action_name(a: Option<ServiceAction>) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Combines layers in order into one (Pebble's `CombineLayers`).
pub fn combine(layers: &[Layer]) -> Result<Layer, FormatError> {
    let mut out = Layer::default();
    for layer in layers {
        if !layer.summary.is_empty() {
            out.summary = layer.summary.clone();
        }
        if !layer.description.is_empty() {
            out.description = layer.description.clone();
        }
        for (name, service) in &layer.services {
            match service.r#override {
                Some(Override::Merge) => {
                    out.services.entry(name.clone()).or_default().merge(service);
                }
                Some(Override::Replace) => {
                    out.services.insert(name.clone(), service.clone());
                }
                None => {
                    return err(format!(
                        "layer {:?} must define \"override\" for service {name:?}",
                        layer.label
                    ))
                }
            }
        }
        for (name, check) in &layer.checks {
            match check.r#override {
                Some(Override::Merge) => {
                    out.checks.entry(name.clone()).or_default().merge(check);
                }
                Some(Override::Replace) => {
                    out.checks.insert(name.clone(), check.clone());
                }
                None => {
                    return err(format!(
                        "layer {:?} must define \"override\" for check {name:?}",
                        layer.label
                    ))
                }
            }
        }
        for (name, target) in &layer.log_targets {
            match target.r#override {
                Some(Override::Merge) => {
                    let mine = out.log_targets.entry(name.clone()).or_default();
                    if target.r#type.is_some() {
                        mine.r#type = target.r#type.clone();
                    }
                    if target.location.is_some() {
                        mine.location = target.location.clone();
                    }
                    mine.services.extend(target.services.iter().cloned());
                    mine.labels.extend(target.labels.clone());
                }
                Some(Override::Replace) => {
                    out.log_targets.insert(name.clone(), target.clone());
                }
                None => {
                    return err(format!(
                        "layer {:?} must define \"override\" for log target {name:?}",
                        layer.label
                    ))
                }
            }
        }
    }
    if let Some(last) = layers.last() {
        out.label = last.label.clone();
        out.order = last.order;
    }
    Ok(out)
}

/// The combined plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The combined layer.
    pub combined: Layer,
}

impl Plan {
    /// Combines and validates (Pebble's `Plan.Validate`).
    pub fn new(layers: &[Layer]) -> Result<Plan, FormatError> {
        let combined = combine(layers)?;
        let plan = Plan { combined };
        plan.validate()?;
        Ok(plan)
    }

    fn validate(&self) -> Result<(), FormatError> {
        let services = &self.combined.services;
        for (name, service) in services {
            if service.command.as_deref().unwrap_or("").trim().is_empty() {
                return err(format!("plan must define \"command\" for service {name:?}"));
            }
            for dep in service
                .after
                .iter()
                .chain(&service.before)
                .chain(&service.requires)
            {
                if !services.contains_key(dep) {
                    return err(format!(
                        "service {name:?} depends on undefined service {dep:?}"
                    ));
                }
            }
            for check in service.on_check_failure.keys() {
                if !self.combined.checks.contains_key(check) {
                    return err(format!(
                        "plan service {name:?} on-check-failure check {check:?} unknown"
                    ));
                }
            }
        }
        for (name, check) in &self.combined.checks {
            let kinds = [
                check.http.is_some(),
                check.tcp.is_some(),
                check.exec.is_some(),
            ];
            let count = kinds.iter().filter(|k| **k).count();
            if count == 0 {
                return err(format!(
                    "plan must specify one of \"http\", \"tcp\" or \"exec\" for check {name:?}"
                ));
            }
            if count > 1 {
                return err(format!("plan must specify only one of \"http\", \"tcp\" or \"exec\" for check {name:?}"));
            }
            if let Some(h) = &check.http {
                if h.url.as_deref().unwrap_or("").is_empty() {
                    return err(format!("plan must set \"url\" for http check {name:?}"));
                }
            }
            if let Some(t) = &check.tcp {
                if t.port.unwrap_or(0) == 0 {
                    return err(format!("plan must set \"port\" for tcp check {name:?}"));
                }
            }
            if let Some(e) = &check.exec {
                let cmd = e.command.as_deref().unwrap_or("");
                if cmd.trim().is_empty() {
                    return err(format!("plan must set \"command\" for exec check {name:?}"));
                }
                crate::util::shlex_split(cmd).map_err(|m| {
                    FormatError(format!("plan check {name:?} command invalid: {m}"))
                })?;
                if let Some(ctx) = &e.service_context {
                    if !services.contains_key(ctx) {
                        return err(format!(
                            "plan check {name:?} service context specifies non-existent service {ctx:?}"
                        ));
                    }
                }
            }
        }
        for (name, target) in &self.combined.log_targets {
            if target.r#type.is_none() {
                return err(format!("plan must define \"type\" for log target {name:?}"));
            }
            if target.location.is_none() {
                return err(format!(
                    "plan must define \"location\" for log target {name:?}"
                ));
            }
            for s in &target.services {
                let s = s.strip_prefix('-').unwrap_or(s);
                if s != "all" && !services.contains_key(s) {
                    return err(format!(
                        "log target {name:?} specifies unknown service {s:?}"
                    ));
                }
            }
        }
        let all: Vec<String> = services.keys().cloned().collect();
        self.start_order(&all)?;
        Ok(())
    }

    /// Services to start for `names` (adding `requires`), in dependency order.
    pub fn start_order(&self, names: &[String]) -> Result<Vec<String>, FormatError> {
        self.order(names, false)
    }

    /// Services to stop for `names` (adding their dependents), in reverse dependency order.
    pub fn stop_order(&self, names: &[String]) -> Result<Vec<String>, FormatError> {
        self.order(names, true)
    }

    fn order(&self, names: &[String], stop: bool) -> Result<Vec<String>, FormatError> {
        let services = &self.combined.services;
        // Collect the closure over `requires` (or reverse requires when stopping).
        let mut wanted = BTreeSet::new();
        let mut queue: Vec<String> = names.to_vec();
        while let Some(name) = queue.pop() {
            if !services.contains_key(&name) {
                return err(format!("service {name:?} does not exist"));
            }
            if !wanted.insert(name.clone()) {
                continue;
            }
            if stop {
                for (other, svc) in services {
                    if svc.requires.contains(&name) {
                        queue.push(other.clone());
                    }
                }
            } else {
                queue.extend(services[&name].requires.iter().cloned());
            }
        }
        // Edges: a before b when b.after has a or a.before has b.
        let mut predecessors: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for name in &wanted {
            predecessors.entry(name).or_default();
        }
        for name in &wanted {
            let svc = &services[name];
            for a in &svc.after {
                if wanted.contains(a) {
                    predecessors.entry(name).or_default().insert(a);
                }
            }
            for b in &svc.before {
                if wanted.contains(b) {
                    predecessors.entry(b).or_default().insert(name);
                }
            }
        }
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        while done.len() < wanted.len() {
            let ready: Vec<&str> = predecessors
                .iter()
                .filter(|(n, preds)| !done.contains(*n) && preds.iter().all(|p| done.contains(p)))
                .map(|(n, _)| *n)
                .collect();
            if ready.is_empty() {
                let left: Vec<&str> = predecessors
                    .keys()
                    .filter(|n| !done.contains(*n))
                    .copied()
                    .collect();
                return err(format!(
                    "services in before/after loop: {}",
                    left.join(", ")
                ));
            }
            for n in ready {
                done.insert(n);
                order.push(n.to_string());
            }
        }
        if stop {
            order.reverse();
        }
        Ok(order)
    }

    /// Groups services into lanes: services linked by `requires` share a lane.
    pub fn lanes(&self, ordered: &[String]) -> Vec<Vec<String>> {
        let services = &self.combined.services;
        let mut lane_of: BTreeMap<String, usize> = BTreeMap::new();
        let mut lanes: Vec<Vec<String>> = Vec::new();
        for name in ordered {
            let linked = lane_of.iter().find_map(|(other, lane)| {
                let a = services
                    .get(name)
                    .is_some_and(|s| s.requires.contains(other));
                let b = services
                    .get(other)
                    .is_some_and(|s| s.requires.contains(name));
                (a || b).then_some(*lane)
            });
            match linked {
                Some(lane) => {
                    lanes[lane].push(name.clone());
                    lane_of.insert(name.clone(), lane);
                }
                None => {
                    lane_of.insert(name.clone(), lanes.len());
                    lanes.push(vec![name.clone()]);
                }
            }
        }
        lanes
    }

    /// The plan as YAML (Pebble's top-level order: services, checks, log-targets).
    pub fn to_yaml(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            services: &'a BTreeMap<String, Service>,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            checks: &'a BTreeMap<String, Check>,
            #[serde(rename = "log-targets", skip_serializing_if = "BTreeMap::is_empty")]
            log_targets: &'a BTreeMap<String, LogTarget>,
        }
        let out = Out {
            services: &self.combined.services,
            checks: &self.combined.checks,
            log_targets: &self.combined.log_targets,
        };
        let text = serde_yaml_ng::to_string(&out).unwrap_or_default();
        if text.trim() == "{}" {
            "{}\n".into()
        } else {
            text
        }
    }
}

/// Reads `$PEBBLE/layers` (`NNN-label.yaml`, one level of `NNN-label.d/`).
pub fn read_layers_dir(dir: &Path) -> Result<Vec<Layer>, FormatError> {
    let mut layers = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(layers),
        Err(e) => return err(format!("cannot read layers directory: {e}")),
    };
    let mut names: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        let name = name.to_string_lossy().to_string();
        let Some((order, label, is_dir)) = layer_file_name(&name) else {
            continue;
        };
        if is_dir {
            let mut inner: Vec<_> = std::fs::read_dir(dir.join(&name))
                .map_err(|e| FormatError(format!("cannot read layers directory: {e}")))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect();
            inner.sort();
            for sub in inner {
                let Some((sub_order, sub_label, false)) = layer_file_name(&sub) else {
                    continue;
                };
                let text = std::fs::read_to_string(dir.join(&name).join(&sub))
                    .map_err(|e| FormatError(format!("cannot read layer file: {e}")))?;
                layers.push(Layer::parse(
                    order * 1000 + sub_order,
                    &format!("{label}/{sub_label}"),
                    &text,
                )?);
            }
        } else {
            let text = std::fs::read_to_string(dir.join(&name))
                .map_err(|e| FormatError(format!("cannot read layer file: {e}")))?;
            layers.push(Layer::parse(order * 1000, &label, &text)?);
        }
    }
    Ok(layers)
}

fn layer_file_name(name: &str) -> Option<(u32, String, bool)> {
    let (stem, is_dir) = if let Some(s) = name.strip_suffix(".yaml") {
        (s, false)
    } else if let Some(s) = name.strip_suffix(".d") {
        (s, true)
    } else {
        return None;
    };
    let (digits, label) = stem.split_at_checked(3)?;
    let label = label.strip_prefix('-')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !valid_label(label) {
        return None;
    }
    Some((digits.parse().ok()?, label.to_string(), is_dir))
}

/// Pebble's layer label syntax for files: `[a-z](-?[a-z0-9]){2,}`.
fn valid_label(label: &str) -> bool {
    let b = label.as_bytes();
    if b.len() < 3 || !b[0].is_ascii_lowercase() || label.ends_with('-') || label.contains("--") {
        return false;
    }
    b.iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(order: u32, label: &str, yaml: &str) -> Layer {
        Layer::parse(order, label, yaml).unwrap()
    }

    #[test]
    fn merge_appends_lists_and_merges_maps_replace_swaps() {
        let base = layer(
            1000,
            "base",
            "services:\n  a:\n    override: replace\n    command: sleep 1\n    after: [b]\n    environment: {X: '1', Y: '2'}\n  b:\n    override: replace\n    command: sleep 2\n",
        );
        let over = layer(
            2000,
            "over",
            "services:\n  a:\n    override: merge\n    startup: enabled\n    environment: {Y: '3'}\n    after: [b]\n  b:\n    override: replace\n    command: sleep 3\n",
        );
        let plan = Plan::new(&[base, over]).unwrap();
        let a = &plan.combined.services["a"];
        assert_eq!(a.command.as_deref(), Some("sleep 1"));
        assert_eq!(a.startup(), Startup::Enabled);
        assert_eq!(a.after, vec!["b", "b"]);
        assert_eq!(a.environment["X"], "1");
        assert_eq!(a.environment["Y"], "3");
        assert_eq!(
            plan.combined.services["b"].command.as_deref(),
            Some("sleep 3")
        );
        assert_eq!(plan.start_order(&["a".into()]).unwrap(), vec!["a"]);
        assert_eq!(
            plan.start_order(&["a".into(), "b".into()]).unwrap(),
            vec!["b", "a"]
        );
        assert!(plan.to_yaml().starts_with(
            "services:\n  a:\n    startup: enabled\n    override: merge\n    command: sleep 1\n"
        ));
    }

    #[test]
    fn strict_schema_and_pebble_messages() {
        let e = Layer::parse(
            1,
            "x",
            "services:\n  a:\n    override: merge\n    comand: x\n",
        )
        .unwrap_err();
        assert!(e.0.starts_with("cannot parse layer \"x\": "), "{e}");
        assert!(e.0.contains("comand"), "{e}");
        assert!(Layer::parse(1, "x", "bogus: 1\n").is_err());
        assert!(Layer::parse(
            1,
            "x",
            "services:\n  a:\n    override: merge\n    kill-delay: 5\n"
        )
        .is_err());
        let l = layer(1, "x", "services:\n  a:\n    command: x\n");
        assert_eq!(
            Plan::new(&[l]).unwrap_err().0,
            "layer \"x\" must define \"override\" for service \"a\""
        );
        let l = layer(1, "x", "services:\n  a:\n    override: replace\n");
        assert_eq!(
            Plan::new(&[l]).unwrap_err().0,
            "plan must define \"command\" for service \"a\""
        );
        let l = layer(
            1,
            "x",
            "services:\n  a:\n    override: replace\n    command: x\n    after: [b]\n  b:\n    override: replace\n    command: y\n    after: [a]\n",
        );
        assert_eq!(
            Plan::new(&[l]).unwrap_err().0,
            "services in before/after loop: a, b"
        );
        assert!(Layer::parse(
            1,
            "x",
            "services:\n  pebble:\n    override: replace\n    command: x\n"
        )
        .is_err());
    }

    #[test]
    fn layer_file_names() {
        assert_eq!(
            layer_file_name("001-base.yaml"),
            Some((1, "base".into(), false))
        );
        assert_eq!(
            layer_file_name("010-my-app.d"),
            Some((10, "my-app".into(), true))
        );
        assert_eq!(layer_file_name("1-base.yaml"), None);
        assert_eq!(layer_file_name("001-ab.yaml"), None);
        assert_eq!(layer_file_name("001-Base.yaml"), None);
    }
}
