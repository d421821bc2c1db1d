//! Juju's dispatch environment, parsed once per hook into a typed [`Event`].
//!
//! Juju runs the charm's `dispatch` with `JUJU_DISPATCH_PATH=hooks/<name>` or
//! `actions/<name>` and a set of `JUJU_*` variables; [`HookEnv::from_vars`] reads them
//! all and [`HookEnv::event`] is the event this hook is for.

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::error::{Error, Result};

/// A relation as Juju names it: endpoint and numeric id (`db:7`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelationId {
    /// The endpoint (relation name in the charm's metadata).
    pub endpoint: String,
    /// The relation's id in the model.
    pub id: u32,
}

impl RelationId {
    /// A relation id from its parts.
    pub fn new(endpoint: impl Into<String>, id: u32) -> Self {
        Self {
            endpoint: endpoint.into(),
            id,
        }
    }

    /// Parses `endpoint:id` as Juju prints it (`relation-ids`, `JUJU_RELATION_ID`).
    pub fn parse(s: &str) -> Option<Self> {
        let (ep, id) = s.rsplit_once(':')?;
        if ep.is_empty() {
            return None;
        }
        Some(Self {
            endpoint: ep.to_string(),
            id: id.parse().ok()?,
        })
    }
}

impl std::fmt::Display for RelationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.endpoint, self.id)
    }
}

/// What a relation event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationEvent {
    /// The relation.
    pub relation: RelationId,
    /// The remote application.
    pub remote_app: String,
    /// The remote unit (empty for app-level changes, created and broken).
    pub remote_unit: Option<String>,
    /// For departed: the unit that is leaving (possibly this one).
    pub departing_unit: Option<String>,
}

/// What a secret event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEvent {
    /// The secret's URI.
    pub id: String,
    /// The label this unit knows it by, if any.
    pub label: Option<String>,
    /// The revision concerned (secret-expired and secret-remove).
    pub revision: Option<u32>,
}

/// What a storage event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageEvent {
    /// The storage name from metadata.
    pub name: String,
    /// The instance id, `name/n`.
    pub id: String,
    /// Where it is mounted, when Juju says.
    pub location: Option<String>,
}

/// A Pebble notice as the custom-notice event carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeEvent {
    /// The workload container.
    pub container: String,
    /// The notice's id.
    pub id: String,
    /// The notice's type (`custom`, `change-update`, …).
    pub kind: String,
    /// The notice's key.
    pub key: String,
}

/// Every event Juju dispatches to a charm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `install`
    Install,
    /// `start`
    Start,
    /// `stop`
    Stop,
    /// `remove`
    Remove,
    /// `config-changed`
    ConfigChanged,
    /// `upgrade-charm`
    UpgradeCharm,
    /// `update-status`
    UpdateStatus,
    /// `leader-elected`
    LeaderElected,
    /// `leader-settings-changed`
    LeaderSettingsChanged,
    /// `collect-metrics`
    CollectMetrics,
    /// `pre-series-upgrade`
    PreSeriesUpgrade,
    /// `post-series-upgrade`
    PostSeriesUpgrade,
    /// `<relation>-relation-created`
    RelationCreated(RelationEvent),
    /// `<relation>-relation-joined`
    RelationJoined(RelationEvent),
    /// `<relation>-relation-changed`
    RelationChanged(RelationEvent),
    /// `<relation>-relation-departed`
    RelationDeparted(RelationEvent),
    /// `<relation>-relation-broken`
    RelationBroken(RelationEvent),
    /// `<container>-pebble-ready`
    PebbleReady {
        /// The workload container.
        container: String,
    },
    /// `<container>-pebble-custom-notice`
    PebbleCustomNotice(NoticeEvent),
    /// `<container>-pebble-check-failed`
    PebbleCheckFailed {
        /// The workload container.
        container: String,
        /// The check.
        check: String,
    },
    /// `<container>-pebble-check-recovered`
    PebbleCheckRecovered {
        /// The workload container.
        container: String,
        /// The check.
        check: String,
    },
    /// `<storage>-storage-attached`
    StorageAttached(StorageEvent),
    /// `<storage>-storage-detaching`
    StorageDetaching(StorageEvent),
    /// `secret-changed` (consumers)
    SecretChanged(SecretEvent),
    /// `secret-rotate` (owners)
    SecretRotate(SecretEvent),
    /// `secret-expired` (owners)
    SecretExpired(SecretEvent),
    /// `secret-remove` (owners)
    SecretRemove(SecretEvent),
    /// An action, `actions/<name>`.
    Action {
        /// The action's name.
        name: String,
        /// The task id (`JUJU_ACTION_UUID`).
        id: String,
    },
}

impl Event {
    /// The Juju hook or action name (`db-relation-changed`, `backup`).
    pub fn juju_name(&self) -> String {
        match self {
            Event::Install => "install".into(),
            Event::Start => "start".into(),
            Event::Stop => "stop".into(),
            Event::Remove => "remove".into(),
            Event::ConfigChanged => "config-changed".into(),
            Event::UpgradeCharm => "upgrade-charm".into(),
            Event::UpdateStatus => "update-status".into(),
            Event::LeaderElected => "leader-elected".into(),
            Event::LeaderSettingsChanged => "leader-settings-changed".into(),
            Event::CollectMetrics => "collect-metrics".into(),
            Event::PreSeriesUpgrade => "pre-series-upgrade".into(),
            Event::PostSeriesUpgrade => "post-series-upgrade".into(),
            Event::RelationCreated(r) => format!("{}-relation-created", r.relation.endpoint),
            Event::RelationJoined(r) => format!("{}-relation-joined", r.relation.endpoint),
            Event::RelationChanged(r) => format!("{}-relation-changed", r.relation.endpoint),
            Event::RelationDeparted(r) => format!("{}-relation-departed", r.relation.endpoint),
            Event::RelationBroken(r) => format!("{}-relation-broken", r.relation.endpoint),
            Event::PebbleReady { container } => format!("{container}-pebble-ready"),
            Event::PebbleCustomNotice(n) => format!("{}-pebble-custom-notice", n.container),
            Event::PebbleCheckFailed { container, .. } => {
                format!("{container}-pebble-check-failed")
            }
            Event::PebbleCheckRecovered { container, .. } => {
                format!("{container}-pebble-check-recovered")
            }
            Event::StorageAttached(s) => format!("{}-storage-attached", s.name),
            Event::StorageDetaching(s) => format!("{}-storage-detaching", s.name),
            Event::SecretChanged(_) => "secret-changed".into(),
            Event::SecretRotate(_) => "secret-rotate".into(),
            Event::SecretExpired(_) => "secret-expired".into(),
            Event::SecretRemove(_) => "secret-remove".into(),
            Event::Action { name, .. } => name.clone(),
        }
    }

    /// The relation this event is about, if it is a relation event.
    pub fn relation(&self) -> Option<&RelationEvent> {
        match self {
            Event::RelationCreated(r)
            | Event::RelationJoined(r)
            | Event::RelationChanged(r)
            | Event::RelationDeparted(r)
            | Event::RelationBroken(r) => Some(r),
            _ => None,
        }
    }

    /// True for actions.
    pub fn is_action(&self) -> bool {
        matches!(self, Event::Action { .. })
    }
}

/// The dispatch environment of one hook, read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEnv {
    /// This unit, `app/n`.
    pub unit_name: String,
    /// This unit's application.
    pub app_name: String,
    /// The model's name.
    pub model_name: String,
    /// The model's UUID.
    pub model_uuid: String,
    /// Juju's version (`0.0.0` when Juju does not say).
    pub juju_version: String,
    /// The charm directory, if Juju said.
    pub charm_dir: Option<String>,
    /// The event being dispatched.
    pub event: Event,
}

impl HookEnv {
    /// Reads the environment of the current process.
    pub fn from_process() -> Result<Self> {
        Self::from_vars(std::env::vars_os())
    }

    /// Reads a dispatch environment from `(name, value)` pairs.
    ///
    /// Variables that are not UTF-8 are refused when the event needs them, with
    /// [`Error::MalformedEnv`] naming the variable.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let vars: BTreeMap<OsString, OsString> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let env = Vars(&vars);
        let unit_name = env.required("JUJU_UNIT_NAME")?;
        let app_name = match unit_name.split_once('/') {
            Some((app, n)) if !app.is_empty() && n.parse::<u32>().is_ok() => app.to_string(),
            _ => {
                return Err(malformed(
                    "JUJU_UNIT_NAME",
                    &unit_name,
                    "expected <application>/<number>",
                ))
            }
        };
        let model_name = env.required("JUJU_MODEL_NAME")?;
        let model_uuid = env.required("JUJU_MODEL_UUID")?;
        let juju_version = env
            .optional("JUJU_VERSION")?
            .unwrap_or_else(|| "0.0.0".into());
        let charm_dir = match env.optional("JUJU_CHARM_DIR")? {
            Some(d) => Some(d),
            None => env.optional("CHARM_DIR")?,
        };
        let event = parse_event(&env)?;
        Ok(Self {
            unit_name,
            app_name,
            model_name,
            model_uuid,
            juju_version,
            charm_dir,
            event,
        })
    }
}

struct Vars<'a>(&'a BTreeMap<OsString, OsString>);

impl Vars<'_> {
    fn optional(&self, name: &str) -> Result<Option<String>> {
        match self.0.get(std::ffi::OsStr::new(name)) {
            None => Ok(None),
            Some(v) => match v.to_str() {
                Some("") => Ok(None),
                Some(s) => Ok(Some(s.to_string())),
                None => Err(malformed(name, &v.to_string_lossy(), "not valid UTF-8")),
            },
        }
    }

    fn required(&self, name: &str) -> Result<String> {
        self.optional(name)?
            .ok_or_else(|| Error::MissingEnv { name: name.into() })
    }
}

fn malformed(name: &str, value: &str, reason: &str) -> Error {
    Error::MalformedEnv {
        name: name.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

const RELATION_SUFFIXES: [&str; 5] = [
    "-relation-created",
    "-relation-joined",
    "-relation-changed",
    "-relation-departed",
    "-relation-broken",
];

fn parse_event(env: &Vars<'_>) -> Result<Event> {
    let path = env.required("JUJU_DISPATCH_PATH")?;
    let (dir, name) = match path.rsplit_once('/') {
        Some((dir, name)) => (dir.rsplit('/').next().unwrap_or(dir), name),
        None => ("", path.as_str()),
    };
    let unknown = || Error::UnknownEvent {
        name: name.to_string(),
        dispatch_path: path.clone(),
    };
    if name.is_empty() {
        return Err(unknown());
    }
    if dir == "actions" {
        let id = match env.optional("JUJU_ACTION_UUID")? {
            Some(id) => id,
            None => {
                return Err(Error::MissingEnv {
                    name: "JUJU_ACTION_UUID".into(),
                })
            }
        };
        if let Some(declared) = env.optional("JUJU_ACTION_NAME")? {
            if declared != name {
                return Err(malformed(
                    "JUJU_ACTION_NAME",
                    &declared,
                    &format!("does not match the dispatch path's action {name:?}"),
                ));
            }
        }
        return Ok(Event::Action {
            name: name.to_string(),
            id,
        });
    }
    if dir != "hooks" && !dir.is_empty() {
        return Err(unknown());
    }
    let simple = match name {
        "install" => Some(Event::Install),
        "start" => Some(Event::Start),
        "stop" => Some(Event::Stop),
        "remove" => Some(Event::Remove),
        "config-changed" => Some(Event::ConfigChanged),
        "upgrade-charm" => Some(Event::UpgradeCharm),
        "update-status" => Some(Event::UpdateStatus),
        "leader-elected" => Some(Event::LeaderElected),
        "leader-settings-changed" => Some(Event::LeaderSettingsChanged),
        "collect-metrics" => Some(Event::CollectMetrics),
        "pre-series-upgrade" => Some(Event::PreSeriesUpgrade),
        "post-series-upgrade" => Some(Event::PostSeriesUpgrade),
        _ => None,
    };
    if let Some(ev) = simple {
        return Ok(ev);
    }
    if let Some(kind) = name
        .strip_prefix("secret-")
        .filter(|k| matches!(*k, "changed" | "rotate" | "expired" | "remove"))
    {
        let id = env.required("JUJU_SECRET_ID")?;
        let label = env.optional("JUJU_SECRET_LABEL")?;
        let revision = match env.optional("JUJU_SECRET_REVISION")? {
            Some(r) => Some(
                r.parse::<u32>()
                    .map_err(|_| malformed("JUJU_SECRET_REVISION", &r, "expected a number"))?,
            ),
            None => None,
        };
        let needs_revision = matches!(kind, "expired" | "remove");
        if needs_revision && revision.is_none() {
            return Err(Error::MissingEnv {
                name: "JUJU_SECRET_REVISION".into(),
            });
        }
        let ev = SecretEvent {
            id,
            label,
            revision,
        };
        return match kind {
            "changed" => Ok(Event::SecretChanged(ev)),
            "rotate" => Ok(Event::SecretRotate(ev)),
            "expired" => Ok(Event::SecretExpired(ev)),
            "remove" => Ok(Event::SecretRemove(ev)),
            _ => Err(unknown()),
        };
    }
    for suffix in RELATION_SUFFIXES {
        if let Some(endpoint) = name.strip_suffix(suffix) {
            return relation_event(env, endpoint, suffix);
        }
    }
    for (suffix, kind) in [
        ("-pebble-ready", 0),
        ("-pebble-custom-notice", 1),
        ("-pebble-check-failed", 2),
        ("-pebble-check-recovered", 3),
    ] {
        if let Some(container) = name.strip_suffix(suffix) {
            let workload = env.required("JUJU_WORKLOAD_NAME")?;
            if workload != container {
                return Err(malformed(
                    "JUJU_WORKLOAD_NAME",
                    &workload,
                    &format!("does not match the hook's container {container:?}"),
                ));
            }
            let container = container.to_string();
            return Ok(match kind {
                0 => Event::PebbleReady { container },
                1 => Event::PebbleCustomNotice(NoticeEvent {
                    container,
                    id: env.required("JUJU_NOTICE_ID")?,
                    kind: env.required("JUJU_NOTICE_TYPE")?,
                    key: env.required("JUJU_NOTICE_KEY")?,
                }),
                2 => Event::PebbleCheckFailed {
                    container,
                    check: env.required("JUJU_PEBBLE_CHECK_NAME")?,
                },
                _ => Event::PebbleCheckRecovered {
                    container,
                    check: env.required("JUJU_PEBBLE_CHECK_NAME")?,
                },
            });
        }
    }
    for (suffix, attached) in [("-storage-attached", true), ("-storage-detaching", false)] {
        if let Some(storage) = name.strip_suffix(suffix) {
            let id = env.required("JUJU_STORAGE_ID")?;
            match id.split_once('/') {
                Some((n, i)) if n == storage && i.parse::<u32>().is_ok() => {}
                _ => {
                    return Err(malformed(
                        "JUJU_STORAGE_ID",
                        &id,
                        &format!("expected {storage}/<number>"),
                    ))
                }
            }
            let ev = StorageEvent {
                name: storage.to_string(),
                id,
                location: env.optional("JUJU_STORAGE_LOCATION")?,
            };
            return Ok(if attached {
                Event::StorageAttached(ev)
            } else {
                Event::StorageDetaching(ev)
            });
        }
    }
    Err(unknown())
}

fn relation_event(env: &Vars<'_>, endpoint: &str, suffix: &str) -> Result<Event> {
    let declared = env.required("JUJU_RELATION")?;
    if declared != endpoint {
        return Err(malformed(
            "JUJU_RELATION",
            &declared,
            &format!("does not match the hook's endpoint {endpoint:?}"),
        ));
    }
    let raw_id = env.required("JUJU_RELATION_ID")?;
    // Juju sends `endpoint:id`; ops keeps the text after the last colon.
    let id = raw_id
        .rsplit(':')
        .next()
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| malformed("JUJU_RELATION_ID", &raw_id, "expected <endpoint>:<number>"))?;
    let remote_app = env.required("JUJU_REMOTE_APP")?;
    let remote_unit = env.optional("JUJU_REMOTE_UNIT")?;
    let per_unit = matches!(suffix, "-relation-joined" | "-relation-departed");
    if per_unit && remote_unit.is_none() {
        return Err(Error::MissingEnv {
            name: "JUJU_REMOTE_UNIT".into(),
        });
    }
    let departing_unit = env.optional("JUJU_DEPARTING_UNIT")?;
    if suffix == "-relation-departed" && departing_unit.is_none() {
        return Err(Error::MissingEnv {
            name: "JUJU_DEPARTING_UNIT".into(),
        });
    }
    let ev = RelationEvent {
        relation: RelationId::new(endpoint, id),
        remote_app,
        remote_unit,
        departing_unit,
    };
    Ok(match suffix {
        "-relation-created" => Event::RelationCreated(ev),
        "-relation-joined" => Event::RelationJoined(ev),
        "-relation-changed" => Event::RelationChanged(ev),
        "-relation-departed" => Event::RelationDeparted(ev),
        _ => Event::RelationBroken(ev),
    })
}

/// The `JUJU_*` variables Juju would set for `event` on `unit` (used by the testing
/// harness and by tests; the reverse of [`HookEnv::from_vars`]).
pub fn juju_vars(unit: &str, event: &Event) -> Vec<(String, String)> {
    let mut v = vec![
        ("JUJU_UNIT_NAME".to_string(), unit.to_string()),
        ("JUJU_MODEL_NAME".into(), "ward".into()),
        (
            "JUJU_MODEL_UUID".into(),
            "00000000-0000-4000-8000-000000000000".into(),
        ),
        ("JUJU_VERSION".into(), "3.6.0".into()),
    ];
    let name = event.juju_name();
    match event {
        Event::Action { id, .. } => {
            v.push(("JUJU_DISPATCH_PATH".into(), format!("actions/{name}")));
            v.push(("JUJU_ACTION_NAME".into(), name.clone()));
            v.push(("JUJU_ACTION_UUID".into(), id.clone()));
        }
        _ => v.push(("JUJU_DISPATCH_PATH".into(), format!("hooks/{name}"))),
    }
    match event {
        Event::RelationCreated(r)
        | Event::RelationJoined(r)
        | Event::RelationChanged(r)
        | Event::RelationDeparted(r)
        | Event::RelationBroken(r) => {
            v.push(("JUJU_RELATION".into(), r.relation.endpoint.clone()));
            v.push(("JUJU_RELATION_ID".into(), r.relation.to_string()));
            v.push(("JUJU_REMOTE_APP".into(), r.remote_app.clone()));
            if let Some(u) = &r.remote_unit {
                v.push(("JUJU_REMOTE_UNIT".into(), u.clone()));
            }
            if let Some(u) = &r.departing_unit {
                v.push(("JUJU_DEPARTING_UNIT".into(), u.clone()));
            }
        }
        Event::PebbleReady { container } => {
            v.push(("JUJU_WORKLOAD_NAME".into(), container.clone()))
        }
        Event::PebbleCustomNotice(n) => {
            v.push(("JUJU_WORKLOAD_NAME".into(), n.container.clone()));
            v.push(("JUJU_NOTICE_ID".into(), n.id.clone()));
            v.push(("JUJU_NOTICE_TYPE".into(), n.kind.clone()));
            v.push(("JUJU_NOTICE_KEY".into(), n.key.clone()));
        }
        Event::PebbleCheckFailed { container, check }
        | Event::PebbleCheckRecovered { container, check } => {
            v.push(("JUJU_WORKLOAD_NAME".into(), container.clone()));
            v.push(("JUJU_PEBBLE_CHECK_NAME".into(), check.clone()));
        }
        Event::StorageAttached(s) | Event::StorageDetaching(s) => {
            v.push(("JUJU_STORAGE_ID".into(), s.id.clone()));
            if let Some(l) = &s.location {
                v.push(("JUJU_STORAGE_LOCATION".into(), l.clone()));
            }
        }
        Event::SecretChanged(s)
        | Event::SecretRotate(s)
        | Event::SecretExpired(s)
        | Event::SecretRemove(s) => {
            v.push(("JUJU_SECRET_ID".into(), s.id.clone()));
            v.push((
                "JUJU_SECRET_LABEL".into(),
                s.label.clone().unwrap_or_default(),
            ));
            if let Some(r) = s.revision {
                v.push(("JUJU_SECRET_REVISION".into(), r.to_string()));
            }
        }
        _ => {}
    }
    v
}
