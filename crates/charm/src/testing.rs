//! State in, state out: run one event against a charm with no controller and no
//! processes, then assert on the resulting [`State`], as `ops.testing` does.
//!
//! The State holds what the unit sees: config, leadership, relations and their bags,
//! secrets, statuses, ports, storage, stored state, and workload [`Container`]s (files,
//! layers, services, canned command results, checks, notices) that the charm reaches
//! with [`Context::workload`].
//!
//! ```
//! use charm::testing::{Harness, Relation, State};
//! use charm::{Charm, Context, Event, Result, Status};
//!
//! struct Echo;
//! impl Charm for Echo {
//!     fn handle(&mut self, ctx: &mut Context<'_>, event: &Event) -> Result<()> {
//!         if let Event::RelationChanged(r) = event {
//!             let theirs = ctx.remote_app_data(&r.relation)?;
//!             ctx.set_app_data(&r.relation, &theirs)?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let rel = Relation::new("db", 3, "client").with_remote_app_data([("x", "1")]);
//! let state = State { leader: true, relations: vec![rel.clone()], ..State::default() };
//! let out = Harness::new("echo/0").run(&mut Echo, rel.changed(None), state);
//! assert!(out.error.is_none());
//! assert_eq!(out.state.relations[0].local_app_data["x"], "1");
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};
use serde_yaml_ng::{Mapping, Value as Yaml};

use crate::backend::{
    Address, Backend, Bag, BindAddress, LogLevel, Network, Port, SecretInfo, SecretOptions,
    SecretOwner, SecretRead, Status, StorageInfo,
};
use crate::config::ConfigOptions;
use crate::error::{Error, Result};
use crate::event::{juju_vars, Event, HookEnv, RelationEvent, RelationId};
use crate::model::Context;
use crate::pebble::{CheckInfo, ExecOptions, ExecOutput, FileInfo, FileOptions, Notice};
use crate::workload::{ContainerApi, Workload};
use crate::Charm;

/// One relation as this unit sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Relation {
    /// Endpoint and id.
    pub id: RelationId,
    /// The remote application.
    pub remote_app: String,
    /// This application's bag.
    pub local_app_data: Bag,
    /// This unit's bag.
    pub local_unit_data: Bag,
    /// The remote application's bag.
    pub remote_app_data: Bag,
    /// Each remote unit's bag (the units in scope).
    pub remote_units_data: BTreeMap<String, Bag>,
}

fn bag<K: Into<String>, V: Into<String>>(kv: impl IntoIterator<Item = (K, V)>) -> Bag {
    kv.into_iter().map(|(k, v)| (k.into(), v.into())).collect()
}

impl Relation {
    /// A relation on `endpoint` with id `id` to `remote_app`, with no data and no units.
    pub fn new(endpoint: &str, id: u32, remote_app: &str) -> Self {
        Self {
            id: RelationId::new(endpoint, id),
            remote_app: remote_app.into(),
            ..Self::default()
        }
    }

    /// Adds a remote unit with its bag.
    pub fn with_remote_unit<K: Into<String>, V: Into<String>>(
        mut self,
        unit: &str,
        data: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.remote_units_data.insert(unit.into(), bag(data));
        self
    }

    /// Sets the remote application's bag.
    pub fn with_remote_app_data<K: Into<String>, V: Into<String>>(
        mut self,
        data: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.remote_app_data = bag(data);
        self
    }

    /// Sets this application's bag.
    pub fn with_local_app_data<K: Into<String>, V: Into<String>>(
        mut self,
        data: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.local_app_data = bag(data);
        self
    }

    /// Sets this unit's bag.
    pub fn with_local_unit_data<K: Into<String>, V: Into<String>>(
        mut self,
        data: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.local_unit_data = bag(data);
        self
    }

    fn event(&self, remote_unit: Option<&str>, departing: Option<&str>) -> RelationEvent {
        RelationEvent {
            relation: self.id.clone(),
            remote_app: self.remote_app.clone(),
            remote_unit: remote_unit.map(str::to_string),
            departing_unit: departing.map(str::to_string),
        }
    }

    /// `<ep>-relation-created`
    pub fn created(&self) -> Event {
        Event::RelationCreated(self.event(None, None))
    }
    /// `<ep>-relation-joined` for a remote unit.
    pub fn joined(&self, unit: &str) -> Event {
        Event::RelationJoined(self.event(Some(unit), None))
    }
    /// `<ep>-relation-changed`, for a remote unit or (None) the remote app.
    pub fn changed(&self, unit: Option<&str>) -> Event {
        Event::RelationChanged(self.event(unit, None))
    }
    /// `<ep>-relation-departed` for a remote unit.
    pub fn departed(&self, unit: &str) -> Event {
        Event::RelationDeparted(self.event(Some(unit), Some(unit)))
    }
    /// `<ep>-relation-broken`
    pub fn broken(&self) -> Event {
        Event::RelationBroken(self.event(None, None))
    }
}

/// A secret this unit owns or has been granted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Secret {
    /// Its URI.
    pub id: String,
    /// `Some` when this unit (or its app) owns it; `None` for a consumer's view.
    pub owner: Option<SecretOwner>,
    /// The owner's (or the consumer's) label.
    pub label: Option<String>,
    /// The description.
    pub description: Option<String>,
    /// Expiry as given to secret-add/set.
    pub expire: Option<String>,
    /// Rotation policy.
    pub rotate: Option<String>,
    /// Content by revision.
    pub revisions: BTreeMap<u32, Bag>,
    /// The revision a consumer tracks.
    pub tracked: u32,
    /// Grants: relation id → units granted (empty set = the whole remote app).
    pub grants: BTreeMap<u32, BTreeSet<String>>,
    /// Revisions removed with secret-remove.
    pub removed_revisions: Vec<u32>,
    /// Whether the whole secret was removed.
    pub removed: bool,
}

impl Secret {
    /// A secret granted to this unit, at revision 1 with `content`.
    pub fn granted<K: Into<String>, V: Into<String>>(
        id: &str,
        content: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            id: id.into(),
            revisions: [(1, bag(content))].into(),
            tracked: 1,
            ..Self::default()
        }
    }

    /// A secret owned by this unit or its app, at revision 1 with `content`.
    pub fn owned<K: Into<String>, V: Into<String>>(
        id: &str,
        owner: SecretOwner,
        label: Option<&str>,
        content: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            id: id.into(),
            owner: Some(owner),
            label: label.map(str::to_string),
            revisions: [(1, bag(content))].into(),
            tracked: 1,
            ..Self::default()
        }
    }

    /// Adds a newer revision (as the owner would with secret-set).
    pub fn with_revision<K: Into<String>, V: Into<String>>(
        mut self,
        content: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let next = self.latest() + 1;
        self.revisions.insert(next, bag(content));
        self
    }

    /// The latest revision number.
    pub fn latest(&self) -> u32 {
        self.revisions.keys().next_back().copied().unwrap_or(0)
    }

    /// The latest content.
    pub fn latest_content(&self) -> Bag {
        self.revisions
            .values()
            .next_back()
            .cloned()
            .unwrap_or_default()
    }
}

/// Everything a unit can see of the model, before and after an event.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Whether this unit leads.
    pub leader: bool,
    /// Config values as `config-get` reports them (defaults included).
    pub config: Map<String, Value>,
    /// Relations.
    pub relations: Vec<Relation>,
    /// Secrets owned or granted.
    pub secrets: Vec<Secret>,
    /// This unit's status.
    pub unit_status: Status,
    /// The application's status.
    pub app_status: Status,
    /// The workload version.
    pub workload_version: Option<String>,
    /// Opened ports.
    pub opened_ports: BTreeSet<Port>,
    /// Stored state (state-get/state-set).
    pub stored: Bag,
    /// The unit's address (network-get answers with it for every binding).
    pub address: String,
    /// Storage instances by id.
    pub storage: BTreeMap<String, StorageInfo>,
    /// Workload containers (see [`Container`]).
    pub containers: Vec<Container>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            leader: false,
            config: Map::new(),
            relations: Vec::new(),
            secrets: Vec::new(),
            unit_status: Status::unknown(),
            app_status: Status::unknown(),
            workload_version: None,
            opened_ports: BTreeSet::new(),
            stored: Bag::new(),
            address: "192.0.2.10".into(),
            storage: BTreeMap::new(),
            containers: Vec::new(),
        }
    }
}

impl State {
    /// The relation with this id.
    pub fn relation(&self, id: u32) -> Option<&Relation> {
        self.relations.iter().find(|r| r.id.id == id)
    }

    /// The container with this name.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The secret with this label (owner's or consumer's).
    pub fn secret_by_label(&self, label: &str) -> Option<&Secret> {
        self.secrets
            .iter()
            .find(|s| s.label.as_deref() == Some(label))
    }
}

/// What an action produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActionOutput {
    /// Results set with action-set (flattened keys).
    pub results: BTreeMap<String, String>,
    /// Messages from action-log.
    pub logs: Vec<String>,
    /// The action-fail message, if it failed.
    pub failure: Option<String>,
}

/// The result of one event.
#[derive(Debug)]
pub struct Output {
    /// The state after the event: everything the hook wrote if it succeeded, only
    /// what Juju applies at once (statuses, logs) and what Pebble applied at once
    /// (the containers) if it failed.
    pub state: State,
    /// juju-log lines.
    pub logs: Vec<(LogLevel, String)>,
    /// Every status-set of the unit, in order.
    pub unit_status_history: Vec<Status>,
    /// What the action produced, for actions.
    pub action: Option<ActionOutput>,
    /// The hook's failure, if it failed.
    pub error: Option<Error>,
    /// Every [`Backend`] call the hook made, in order, by method name (`is_leader`,
    /// `status_set`, …): under Juju each is one hook-tool process, so this is what
    /// a hook costs beyond its own work.
    pub backend_calls: Vec<&'static str>,
}

/// Runs events against charms for unit `app/n`.
#[derive(Debug, Clone)]
pub struct Harness {
    unit: String,
    options: ConfigOptions,
}

impl Harness {
    /// A harness for unit `unit` (`app/n`).
    pub fn new(unit: &str) -> Self {
        Self {
            unit: unit.into(),
            options: ConfigOptions::default(),
        }
    }

    /// Declares the charm's config options (`config.yaml` or `charmcraft.yaml` text).
    pub fn with_config_yaml(mut self, yaml: &str) -> Result<Self> {
        self.options = ConfigOptions::from_yaml(yaml)?;
        Ok(self)
    }

    /// Runs one event.
    pub fn run<C: Charm + ?Sized>(&self, charm: &mut C, event: Event, state: State) -> Output {
        self.run_with_params(charm, event, Value::Object(Map::new()), state)
    }

    /// Runs an action with parameters.
    pub fn run_action<C: Charm + ?Sized>(
        &self,
        charm: &mut C,
        name: &str,
        params: Value,
        state: State,
    ) -> Output {
        let event = Event::Action {
            name: name.into(),
            id: "1".into(),
        };
        self.run_with_params(charm, event, params, state)
    }

    fn run_with_params<C: Charm + ?Sized>(
        &self,
        charm: &mut C,
        event: Event,
        params: Value,
        state: State,
    ) -> Output {
        let env = match HookEnv::from_vars(juju_vars(&self.unit, &event)) {
            Ok(env) => env,
            Err(e) => {
                return Output {
                    state,
                    logs: Vec::new(),
                    unit_status_history: Vec::new(),
                    action: None,
                    error: Some(e),
                    backend_calls: Vec::new(),
                }
            }
        };
        let is_action = event.is_action();
        let mut mem = Memory::new(&self.unit, state.clone(), params);
        let mut containers = std::mem::take(&mut mem.state.containers);
        for c in &mut containers {
            c.note_running_definitions();
        }
        let containers: SharedContainers = Arc::new(Mutex::new(containers));
        let result = {
            let _scope = ContainerScope::enter(containers.clone());
            let mut ctx = Context::new(&mut mem, env).with_config_options(self.options.clone());
            crate::dispatch(charm, &mut ctx)
        };
        let containers = std::mem::take(&mut *lock(&containers));
        let (mut final_state, error) = match result {
            Ok(()) => (mem.state.clone(), None),
            Err(e) => {
                // Juju discards a failed hook's buffered writes.
                let mut s = state;
                s.unit_status = mem.state.unit_status.clone();
                s.app_status = mem.state.app_status.clone();
                s.workload_version = mem.state.workload_version.clone();
                (s, Some(e))
            }
        };
        // Pebble applied the hook's container changes as they happened.
        final_state.containers = containers;
        Output {
            state: final_state,
            logs: mem.logs,
            unit_status_history: mem.unit_status_history,
            action: is_action.then_some(mem.action),
            error,
            backend_calls: mem.calls,
        }
    }
}

/// The in-memory backend: enforces the rules Juju's controller enforces.
///
/// It answers the hook tools only; the State's containers are served to
/// [`Context::workload`] while [`Harness`] runs an event.
#[derive(Debug)]
pub struct Memory {
    unit: String,
    app: String,
    /// The model state being changed.
    pub state: State,
    params: Value,
    logs: Vec<(LogLevel, String)>,
    unit_status_history: Vec<Status>,
    action: ActionOutput,
    next_secret: u32,
    calls: Vec<&'static str>,
}

impl Memory {
    /// A backend for `unit` over `state`, with action parameters `params`.
    pub fn new(unit: &str, state: State, params: Value) -> Self {
        let app = unit.split('/').next().unwrap_or(unit).to_string();
        // New secrets are numbered after those the state already holds, so a secret made
        // in a later run never takes the id of one made in an earlier run.
        let next_secret = state
            .secrets
            .iter()
            .filter_map(|s| s.id.strip_prefix("secret:harness")?.parse::<u32>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        Self {
            unit: unit.into(),
            app,
            state,
            params,
            logs: Vec::new(),
            unit_status_history: Vec::new(),
            action: ActionOutput::default(),
            next_secret,
            calls: Vec::new(),
        }
    }

    fn rel(&mut self, rel: &RelationId) -> Result<&mut Relation> {
        self.state
            .relations
            .iter_mut()
            .find(|r| r.id.id == rel.id && r.id.endpoint == rel.endpoint)
            .ok_or_else(|| Error::RelationNotFound {
                relation: rel.to_string(),
            })
    }

    fn find_secret(&mut self, id: Option<&str>, label: Option<&str>) -> Result<usize> {
        let pos = match (id, label) {
            (Some(id), _) => self
                .state
                .secrets
                .iter()
                .position(|s| s.id == id && !s.removed),
            (None, Some(l)) => self
                .state
                .secrets
                .iter()
                .position(|s| s.label.as_deref() == Some(l) && !s.removed),
            (None, None) => None,
        };
        pos.ok_or_else(|| Error::SecretNotFound {
            secret: id.or(label).unwrap_or_default().to_string(),
        })
    }

    fn owned_secret(&mut self, id: &str) -> Result<usize> {
        let i = self.find_secret(Some(id), None)?;
        match self.state.secrets[i].owner {
            None => Err(Error::PermissionDenied {
                what: format!("secret {id} is not owned by {}", self.unit),
            }),
            Some(SecretOwner::Application) if !self.state.leader => Err(Error::PermissionDenied {
                what: format!("this unit is not the leader (secret {id})"),
            }),
            _ => Ok(i),
        }
    }
}

impl Backend for Memory {
    fn relation_ids(&mut self, endpoint: &str) -> Result<Vec<RelationId>> {
        self.calls.push("relation_ids");
        let mut ids: Vec<RelationId> = self
            .state
            .relations
            .iter()
            .filter(|r| r.id.endpoint == endpoint)
            .map(|r| r.id.clone())
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn relation_list(&mut self, rel: &RelationId) -> Result<Vec<String>> {
        self.calls.push("relation_list");
        Ok(self.rel(rel)?.remote_units_data.keys().cloned().collect())
    }

    fn relation_remote_app(&mut self, rel: &RelationId) -> Result<Option<String>> {
        self.calls.push("relation_remote_app");
        Ok(Some(self.rel(rel)?.remote_app.clone()))
    }

    fn relation_get(&mut self, rel: &RelationId, app: bool, owner: &str) -> Result<Bag> {
        self.calls.push("relation_get");
        let (unit, my_app, leader) = (self.unit.clone(), self.app.clone(), self.state.leader);
        let r = self.rel(rel)?;
        if owner == unit {
            return Ok(r.local_unit_data.clone());
        }
        if owner == my_app && app {
            // Juju lets every unit read its own application's bag in a peer relation
            // (the remote application is this one); elsewhere only the leader may.
            if !leader && r.remote_app != my_app {
                return Err(Error::PermissionDenied {
                    what: format!(
                        "relation-get: only the leader may read its application's bag in {rel}"
                    ),
                });
            }
            return Ok(r.local_app_data.clone());
        }
        if owner == r.remote_app && app {
            return Ok(r.remote_app_data.clone());
        }
        r.remote_units_data
            .get(owner)
            .cloned()
            .ok_or_else(|| Error::Model {
                tool: "relation-get".into(),
                code: 1,
                stderr: format!("ERROR cannot read settings for unit {owner:?} in relation {rel}"),
            })
    }

    fn relation_set(&mut self, rel: &RelationId, app: bool, data: &Bag) -> Result<()> {
        self.calls.push("relation_set");
        let leader = self.state.leader;
        let r = self.rel(rel)?;
        if app && !leader {
            return Err(Error::PermissionDenied {
                what: "relation-set: cannot write relation settings".into(),
            });
        }
        let target = if app {
            &mut r.local_app_data
        } else {
            &mut r.local_unit_data
        };
        for (k, v) in data {
            if v.is_empty() {
                target.remove(k);
            } else {
                target.insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }

    fn config_get(&mut self) -> Result<Map<String, Value>> {
        self.calls.push("config_get");
        Ok(self.state.config.clone())
    }

    fn is_leader(&mut self) -> Result<bool> {
        self.calls.push("is_leader");
        Ok(self.state.leader)
    }

    fn status_get(&mut self, app: bool) -> Result<Status> {
        self.calls.push("status_get");
        if app {
            if !self.state.leader {
                return Err(Error::PermissionDenied {
                    what: "status-get --application: not the leader".into(),
                });
            }
            return Ok(self.state.app_status.clone());
        }
        Ok(self.state.unit_status.clone())
    }

    fn status_set(&mut self, app: bool, status: &Status) -> Result<()> {
        self.calls.push("status_set");
        if app {
            if !self.state.leader {
                return Err(Error::PermissionDenied {
                    what: "status-set --application: not the leader".into(),
                });
            }
            self.state.app_status = status.clone();
        } else {
            self.state.unit_status = status.clone();
            self.unit_status_history.push(status.clone());
        }
        Ok(())
    }

    fn application_version_set(&mut self, version: &str) -> Result<()> {
        self.calls.push("application_version_set");
        self.state.workload_version = Some(version.into());
        Ok(())
    }

    fn juju_log(&mut self, level: LogLevel, message: &str) -> Result<()> {
        self.calls.push("juju_log");
        self.logs.push((level, message.into()));
        Ok(())
    }

    fn action_get(&mut self) -> Result<Value> {
        self.calls.push("action_get");
        Ok(self.params.clone())
    }

    fn action_set(&mut self, results: &BTreeMap<String, String>) -> Result<()> {
        self.calls.push("action_set");
        self.action
            .results
            .extend(results.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(())
    }

    fn action_log(&mut self, message: &str) -> Result<()> {
        self.calls.push("action_log");
        self.action.logs.push(message.into());
        Ok(())
    }

    fn action_fail(&mut self, message: &str) -> Result<()> {
        self.calls.push("action_fail");
        self.action.failure = Some(message.into());
        Ok(())
    }

    fn secret_add(
        &mut self,
        content: &Bag,
        owner: SecretOwner,
        opts: &SecretOptions,
    ) -> Result<String> {
        self.calls.push("secret_add");
        if owner == SecretOwner::Application && !self.state.leader {
            return Err(Error::PermissionDenied {
                what: "secret-add: this unit is not the leader".into(),
            });
        }
        if let Some(l) = &opts.label {
            if self
                .state
                .secrets
                .iter()
                .any(|s| s.label.as_deref() == Some(l) && !s.removed)
            {
                return Err(Error::Model {
                    tool: "secret-add".into(),
                    code: 1,
                    stderr: format!("ERROR secret with label {l:?} already exists"),
                });
            }
        }
        let id = format!("secret:harness{:04}", self.next_secret);
        self.next_secret += 1;
        self.state.secrets.push(Secret {
            id: id.clone(),
            owner: Some(owner),
            label: opts.label.clone(),
            description: opts.description.clone(),
            expire: opts.expire.clone(),
            rotate: opts.rotate.clone(),
            revisions: [(1, content.clone())].into(),
            tracked: 1,
            ..Secret::default()
        });
        Ok(id)
    }

    fn secret_get(
        &mut self,
        id: Option<&str>,
        label: Option<&str>,
        read: SecretRead,
    ) -> Result<Bag> {
        self.calls.push("secret_get");
        let i = self.find_secret(id, label)?;
        let s = &mut self.state.secrets[i];
        if id.is_some() {
            if let Some(l) = label {
                s.label = Some(l.into());
            }
        }
        if s.owner.is_some() {
            return Ok(s.latest_content());
        }
        let rev = match read {
            SecretRead::Tracked => s.tracked,
            SecretRead::Peek => s.latest(),
            SecretRead::Refresh => {
                s.tracked = s.latest();
                s.tracked
            }
        };
        s.revisions
            .get(&rev)
            .cloned()
            .ok_or_else(|| Error::SecretNotFound {
                secret: s.id.clone(),
            })
    }

    fn secret_info_get(&mut self, id: Option<&str>, label: Option<&str>) -> Result<SecretInfo> {
        self.calls.push("secret_info_get");
        let i = self.find_secret(id, label)?;
        let s = &self.state.secrets[i];
        let Some(owner) = s.owner else {
            return Err(Error::SecretNotFound {
                secret: s.id.clone(),
            });
        };
        Ok(SecretInfo {
            id: s.id.clone(),
            revision: s.latest(),
            label: s.label.clone(),
            owner: Some(owner.as_str().into()),
            description: s.description.clone(),
            expiry: s.expire.clone(),
            rotation: s.rotate.clone(),
        })
    }

    fn secret_set(&mut self, id: &str, content: Option<&Bag>, opts: &SecretOptions) -> Result<()> {
        self.calls.push("secret_set");
        let i = self.owned_secret(id)?;
        let s = &mut self.state.secrets[i];
        if let Some(c) = content {
            let next = s.latest() + 1;
            s.revisions.insert(next, c.clone());
        }
        if opts.label.is_some() {
            s.label = opts.label.clone();
        }
        if opts.description.is_some() {
            s.description = opts.description.clone();
        }
        if opts.expire.is_some() {
            s.expire = opts.expire.clone();
        }
        if opts.rotate.is_some() {
            s.rotate = opts.rotate.clone();
        }
        Ok(())
    }

    fn secret_grant(&mut self, id: &str, rel: &RelationId, unit: Option<&str>) -> Result<()> {
        self.calls.push("secret_grant");
        let i = self.owned_secret(id)?;
        let r = self.rel(rel)?;
        if let Some(u) = unit {
            if !r.remote_units_data.contains_key(u) {
                return Err(Error::Model {
                    tool: "secret-grant".into(),
                    code: 1,
                    stderr: format!("ERROR unit {u:?} is not in relation {rel}"),
                });
            }
        }
        let grants = self.state.secrets[i].grants.entry(rel.id).or_default();
        if let Some(u) = unit {
            grants.insert(u.into());
        }
        Ok(())
    }

    fn secret_revoke(&mut self, id: &str, rel: &RelationId, unit: Option<&str>) -> Result<()> {
        self.calls.push("secret_revoke");
        let i = self.owned_secret(id)?;
        self.rel(rel)?;
        let s = &mut self.state.secrets[i];
        match unit {
            Some(u) => {
                if let Some(g) = s.grants.get_mut(&rel.id) {
                    g.remove(u);
                }
            }
            None => {
                s.grants.remove(&rel.id);
            }
        }
        Ok(())
    }

    fn secret_remove(&mut self, id: &str, revision: Option<u32>) -> Result<()> {
        self.calls.push("secret_remove");
        let i = self.owned_secret(id)?;
        let s = &mut self.state.secrets[i];
        match revision {
            Some(r) => {
                if s.revisions.remove(&r).is_none() {
                    return Err(Error::SecretNotFound {
                        secret: format!("{id} revision {r}"),
                    });
                }
                s.removed_revisions.push(r);
            }
            None => s.removed = true,
        }
        Ok(())
    }

    fn secret_ids(&mut self) -> Result<Vec<String>> {
        self.calls.push("secret_ids");
        Ok(self
            .state
            .secrets
            .iter()
            .filter(|s| s.owner.is_some() && !s.removed)
            .map(|s| s.id.clone())
            .collect())
    }

    fn open_port(&mut self, port: Port) -> Result<()> {
        self.calls.push("open_port");
        self.state.opened_ports.insert(port);
        Ok(())
    }

    fn close_port(&mut self, port: Port) -> Result<()> {
        self.calls.push("close_port");
        self.state.opened_ports.remove(&port);
        Ok(())
    }

    fn opened_ports(&mut self) -> Result<Vec<Port>> {
        self.calls.push("opened_ports");
        Ok(self.state.opened_ports.iter().copied().collect())
    }

    fn network_get(&mut self, _binding: &str, rel: Option<&RelationId>) -> Result<Network> {
        self.calls.push("network_get");
        if let Some(r) = rel {
            self.rel(r)?;
        }
        let a = self.state.address.clone();
        Ok(Network {
            bind_addresses: vec![BindAddress {
                interface_name: "lo".into(),
                addresses: vec![Address {
                    value: a.clone(),
                    cidr: format!("{a}/32"),
                    hostname: String::new(),
                }],
            }],
            ingress_addresses: vec![a.clone()],
            egress_subnets: vec![format!("{a}/32")],
        })
    }

    fn storage_list(&mut self, name: &str) -> Result<Vec<String>> {
        self.calls.push("storage_list");
        Ok(self
            .state
            .storage
            .keys()
            .filter(|id| id.split('/').next() == Some(name))
            .cloned()
            .collect())
    }

    fn storage_get(&mut self, id: &str) -> Result<StorageInfo> {
        self.calls.push("storage_get");
        self.state
            .storage
            .get(id)
            .cloned()
            .ok_or_else(|| Error::Model {
                tool: "storage-get".into(),
                code: 2,
                stderr: format!(
                    "ERROR invalid value {id:?} for option -s: storage instance {id:?} not found"
                ),
            })
    }

    fn state_get(&mut self) -> Result<Bag> {
        self.calls.push("state_get");
        Ok(self.state.stored.clone())
    }

    fn state_set(&mut self, data: &Bag) -> Result<()> {
        self.calls.push("state_set");
        self.state
            .stored
            .extend(data.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(())
    }

    fn state_delete(&mut self, key: &str) -> Result<()> {
        self.calls.push("state_delete");
        self.state.stored.remove(key);
        Ok(())
    }
}

// ------------------------------------------------------------------ containers

/// A file in a [`Container`]'s filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFile {
    /// Its content.
    pub content: Vec<u8>,
    /// Permission bits (`0o644`).
    pub permissions: u32,
    /// Owning user.
    pub user: String,
    /// Owning group.
    pub group: String,
}

/// What Pebble reports for a service (`GET /v1/services`, `current`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceStatus {
    /// Starting or running.
    Active,
    /// Never started, or stopped.
    Inactive,
    /// Exited and waiting to be restarted.
    Backoff,
    /// Exited and not restarted.
    Error,
}

impl ServiceStatus {
    /// Pebble's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Active => "active",
            ServiceStatus::Inactive => "inactive",
            ServiceStatus::Backoff => "backoff",
            ServiceStatus::Error => "error",
        }
    }
}

/// A canned answer for commands a charm runs in a [`Container`], matched on the argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// The argv, or its first words when `exact` is false.
    pub command: Vec<String>,
    /// Whether the whole argv must equal `command` (otherwise `command` is a prefix).
    pub exact: bool,
    /// The exit code.
    pub exit_code: i32,
    /// What the command prints on stdout.
    pub stdout: String,
    /// What the command prints on stderr.
    pub stderr: String,
}

impl Exec {
    /// Answers every argv that starts with `prefix`: exit 0, no output.
    pub fn prefix<S: Into<String>>(prefix: impl IntoIterator<Item = S>) -> Self {
        Self {
            command: prefix.into_iter().map(Into::into).collect(),
            exact: false,
            exit_code: 0,
            stdout: String::new(),
            stderr: String::new(),
        }
    }

    /// Answers exactly `argv`: exit 0, no output.
    pub fn exact<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        Self {
            exact: true,
            ..Self::prefix(argv)
        }
    }

    /// Prints `stdout`.
    pub fn stdout(mut self, stdout: impl Into<String>) -> Self {
        self.stdout = stdout.into();
        self
    }

    /// Prints `stderr`.
    pub fn stderr(mut self, stderr: impl Into<String>) -> Self {
        self.stderr = stderr.into();
        self
    }

    /// Exits with `code`.
    pub fn exit_code(mut self, code: i32) -> Self {
        self.exit_code = code;
        self
    }

    fn matches(&self, argv: &[&str]) -> bool {
        let n = self.command.len();
        let fits = if self.exact {
            argv.len() == n
        } else {
            argv.len() >= n
        };
        fits && self.command.iter().zip(argv).all(|(a, b)| a == b)
    }
}

/// One workload container as its Pebble would show it: reachability, filesystem,
/// layers, services and canned command results.
///
/// A charm reaches it with [`Context::workload`] while [`Harness::run`] runs; what the
/// charm does to it (files pushed, layers added, services started by replan, signals,
/// commands run) is in [`Output::state`] afterwards, failed hook or not, because Pebble
/// applies its changes at once rather than at the end of the hook.
///
/// ```
/// use charm::testing::{Container, Exec, Harness, State};
/// use charm::{Charm, Context, Event, Result};
///
/// struct Web;
/// impl Charm for Web {
///     fn handle(&mut self, ctx: &mut Context<'_>, event: &Event) -> Result<()> {
///         if let Event::PebbleReady { container } = event {
///             let w = ctx.workload(container, "www-data");
///             w.push_private("/etc/web.conf", b"port = 8080\n")?;
///             w.add_layer("web", "services:\n  web:\n    override: replace\n    command: web\n    startup: enabled\n")?;
///             w.replan()?;
///         }
///         Ok(())
///     }
/// }
///
/// let web = Container::new("web").with_exec(Exec::prefix(["web", "--version"]).stdout("1.2"));
/// let state = State { containers: vec![web.clone()], ..State::default() };
/// let out = Harness::new("web/0").run(&mut Web, web.pebble_ready(), state);
/// let web = out.state.container("web").unwrap();
/// assert_eq!(web.files["/etc/web.conf"].permissions, 0o600);
/// assert!(web.is_running("web"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Its name, as metadata.yaml's `containers:` declares it.
    pub name: String,
    /// Whether Pebble answers; when false every call fails as if the socket were missing.
    pub can_connect: bool,
    /// Regular files by absolute path.
    pub files: BTreeMap<String, ContainerFile>,
    /// Layers in plan order, as (label, YAML); adding with an existing label combines
    /// into it in place, as Pebble does.
    pub layers: Vec<(String, String)>,
    /// Service statuses; a service in the plan and not here is `inactive`.
    pub services: BTreeMap<String, ServiceStatus>,
    /// The definition (YAML) each active service was started with: replan restarts the
    /// services whose definition in the plan differs.
    pub started_with: BTreeMap<String, String>,
    /// What Pebble did to services, in order, as (`start`|`stop`, service).
    pub service_log: Vec<(String, String)>,
    /// Canned command results; an exact match wins, then the longest prefix.
    pub execs: Vec<Exec>,
    /// Commands the charm ran, in order, with their options ([`Workload::exec`] runs
    /// as the owner given to [`Context::workload`] with a 60 s timeout).
    pub exec_history: Vec<ExecOptions>,
    /// Signals sent, in order, as (signal, service).
    pub signals: Vec<(String, String)>,
    /// Health checks as `GET /v1/checks` reports them.
    pub checks: Vec<CheckInfo>,
    /// Notices as `GET /v1/notices` reports them.
    pub notices: Vec<Notice>,
}

impl Container {
    /// A reachable container with nothing in it.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            can_connect: true,
            files: BTreeMap::new(),
            layers: Vec::new(),
            services: BTreeMap::new(),
            started_with: BTreeMap::new(),
            service_log: Vec::new(),
            execs: Vec::new(),
            exec_history: Vec::new(),
            signals: Vec::new(),
            checks: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// Makes Pebble unreachable (the container is still starting).
    pub fn unreachable(mut self) -> Self {
        self.can_connect = false;
        self
    }

    /// Adds a file, 0644 and owned by root.
    pub fn with_file(self, path: &str, content: impl Into<Vec<u8>>) -> Self {
        self.with_file_owned(path, content, 0o644, "root", "root")
    }

    /// Adds a file with its permissions and owner.
    pub fn with_file_owned(
        mut self,
        path: &str,
        content: impl Into<Vec<u8>>,
        permissions: u32,
        user: &str,
        group: &str,
    ) -> Self {
        self.files.insert(
            path.into(),
            ContainerFile {
                content: content.into(),
                permissions,
                user: user.into(),
                group: group.into(),
            },
        );
        self
    }

    /// Adds a layer (as if a previous hook had added it).
    pub fn with_layer(mut self, label: &str, yaml: &str) -> Self {
        self.layers.push((label.into(), yaml.into()));
        self
    }

    /// Sets a service's status (as if it were already running, stopped or failing).
    pub fn with_service_status(mut self, service: &str, status: ServiceStatus) -> Self {
        self.services.insert(service.into(), status);
        self
    }

    /// Adds a canned command result.
    pub fn with_exec(mut self, exec: Exec) -> Self {
        self.execs.push(exec);
        self
    }

    /// Adds a health check's status.
    pub fn with_check(mut self, check: CheckInfo) -> Self {
        self.checks.push(check);
        self
    }

    /// Adds a custom notice with `key`, numbered after the notices already there; use
    /// [`Container::custom_notice`] with its id for the event.
    pub fn with_custom_notice(mut self, key: &str) -> Self {
        let id = (self.notices.len() + 1).to_string();
        self.notices.push(Notice {
            id,
            kind: "custom".into(),
            key: key.into(),
            occurrences: 1,
            last_data: BTreeMap::new(),
        });
        self
    }

    /// `<container>-pebble-ready`
    pub fn pebble_ready(&self) -> Event {
        Event::PebbleReady {
            container: self.name.clone(),
        }
    }

    /// `<container>-pebble-custom-notice` for the custom notice `id` with `key`.
    pub fn custom_notice(&self, id: &str, key: &str) -> Event {
        Event::PebbleCustomNotice(crate::event::NoticeEvent {
            container: self.name.clone(),
            id: id.into(),
            kind: "custom".into(),
            key: key.into(),
        })
    }

    /// `<container>-pebble-check-failed`
    pub fn check_failed(&self, check: &str) -> Event {
        Event::PebbleCheckFailed {
            container: self.name.clone(),
            check: check.into(),
        }
    }

    /// `<container>-pebble-check-recovered`
    pub fn check_recovered(&self, check: &str) -> Event {
        Event::PebbleCheckRecovered {
            container: self.name.clone(),
            check: check.into(),
        }
    }

    /// The combined plan (every layer merged in order, as `GET /v1/plan` shows it).
    pub fn plan(&self) -> Result<Value> {
        let plan = self.combined()?;
        serde_json::to_value(Yaml::Mapping(plan)).map_err(|e| Error::InvalidInput {
            what: format!("the plan of container {}", self.name),
            reason: e.to_string(),
        })
    }

    /// A service's status as Pebble reports it; `None` when neither the plan nor
    /// [`Container::services`] knows it.
    pub fn service_status(&self, service: &str) -> Option<ServiceStatus> {
        if let Some(s) = self.services.get(service) {
            return Some(*s);
        }
        let in_plan = self
            .combined()
            .ok()
            .and_then(|p| section(&p, "services").map(|s| s.contains_key(service)))
            .unwrap_or(false);
        in_plan.then_some(ServiceStatus::Inactive)
    }

    /// Whether a service is active.
    pub fn is_running(&self, service: &str) -> bool {
        self.service_status(service) == Some(ServiceStatus::Active)
    }

    fn combined(&self) -> Result<Mapping> {
        let mut plan = Mapping::new();
        for (label, yaml) in &self.layers {
            combine(&mut plan, &parse_layer(label, yaml)?);
        }
        Ok(plan)
    }

    fn service_definitions(&self) -> Result<BTreeMap<String, String>> {
        let plan = self.combined()?;
        let mut out = BTreeMap::new();
        if let Some(services) = section(&plan, "services") {
            for (name, def) in services {
                let name = name.as_str().unwrap_or_default().to_string();
                out.insert(name, serde_yaml_ng::to_string(def).unwrap_or_default());
            }
        }
        Ok(out)
    }

    /// Records the plan's definition for active services a test put in the State, so
    /// that replan only restarts them when the charm changes their definition.
    fn note_running_definitions(&mut self) {
        let Ok(defs) = self.service_definitions() else {
            return;
        };
        for (name, status) in &self.services {
            if *status == ServiceStatus::Active && !self.started_with.contains_key(name) {
                if let Some(d) = defs.get(name) {
                    self.started_with.insert(name.clone(), d.clone());
                }
            }
        }
    }

    fn add_layer(&mut self, label: &str, yaml: &str) -> Result<()> {
        let new = parse_layer(label, yaml)?;
        let mut layers = self.layers.clone();
        match layers.iter_mut().find(|(l, _)| l == label) {
            Some((_, existing)) => {
                let mut merged = parse_layer(label, existing)?;
                combine(&mut merged, &new);
                *existing = serde_yaml_ng::to_string(&Yaml::Mapping(merged)).map_err(|e| {
                    Error::InvalidInput {
                        what: format!("layer {label:?}"),
                        reason: e.to_string(),
                    }
                })?;
            }
            None => layers.push((label.into(), yaml.into())),
        }
        let candidate = Container {
            layers,
            ..Container::new(&self.name)
        };
        let plan = candidate.combined()?;
        if let Some(services) = section(&plan, "services") {
            for (name, def) in services {
                if def.get("command").and_then(Yaml::as_str).is_none() {
                    return Err(Error::InvalidInput {
                        what: format!("layer {label:?}"),
                        reason: format!(
                            "plan must define \"command\" for service {:?}",
                            name.as_str().unwrap_or_default()
                        ),
                    });
                }
            }
        }
        self.layers = candidate.layers;
        Ok(())
    }

    fn start(&mut self, service: &str, definition: Option<String>) {
        self.services
            .insert(service.to_string(), ServiceStatus::Active);
        self.service_log.push(("start".into(), service.into()));
        if let Some(d) = definition {
            self.started_with.insert(service.into(), d);
        }
    }

    fn stop(&mut self, service: &str) {
        if self.services.get(service) == Some(&ServiceStatus::Active) {
            self.service_log.push(("stop".into(), service.into()));
        }
        self.services
            .insert(service.to_string(), ServiceStatus::Inactive);
        self.started_with.remove(service);
    }

    /// Pebble's replan: stop active services whose definition changed or left the
    /// plan, then start those still in it plus every `startup: enabled` service.
    fn replan(&mut self) -> Result<()> {
        let defs = self.service_definitions()?;
        let plan = self.combined()?;
        let enabled: BTreeSet<String> = section(&plan, "services")
            .map(|s| {
                s.iter()
                    .filter(|(_, d)| d.get("startup").and_then(Yaml::as_str) == Some("enabled"))
                    .filter_map(|(n, _)| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let active: Vec<String> = self
            .services
            .iter()
            .filter(|(_, s)| **s == ServiceStatus::Active)
            .map(|(n, _)| n.clone())
            .collect();
        let mut to_start = enabled.clone();
        for name in active {
            let changed = match (defs.get(&name), self.started_with.get(&name)) {
                (Some(now), Some(then)) => now != then,
                (None, _) => true,
                (Some(_), None) => false,
            };
            if changed {
                self.stop(&name);
                if defs.contains_key(&name) {
                    to_start.insert(name);
                }
            }
        }
        for name in to_start {
            if !self.is_running(&name) {
                self.start(&name, defs.get(&name).cloned());
            }
        }
        Ok(())
    }

    fn check_services(&self, action: &str, services: &[&str]) -> Result<BTreeMap<String, String>> {
        let defs = self.service_definitions()?;
        if let Some(missing) = services.iter().find(|s| !defs.contains_key(**s)) {
            return Err(Error::Charm(format!(
                "cannot {action} services: service {missing:?} does not exist"
            )));
        }
        Ok(defs)
    }
}

fn section<'a>(plan: &'a Mapping, name: &str) -> Option<&'a Mapping> {
    plan.get(name).and_then(Yaml::as_mapping)
}

fn parse_layer(label: &str, yaml: &str) -> Result<Mapping> {
    let invalid = |reason: String| Error::InvalidInput {
        what: format!("layer {label:?}"),
        reason,
    };
    let doc: Yaml = serde_yaml_ng::from_str(yaml)
        .map_err(|e| invalid(format!("cannot parse layer YAML: {e}")))?;
    let layer = match doc {
        Yaml::Mapping(m) => m,
        Yaml::Null => Mapping::new(),
        _ => return Err(invalid("cannot parse layer YAML: not a mapping".into())),
    };
    for (kind, key) in [
        ("service", "services"),
        ("check", "checks"),
        ("log target", "log-targets"),
    ] {
        for (name, entry) in section(&layer, key).into_iter().flatten() {
            if !matches!(
                entry.get("override").and_then(Yaml::as_str),
                Some("merge" | "replace")
            ) {
                return Err(invalid(format!(
                    "layer {label:?} must define \"override\" for {kind} {:?}",
                    name.as_str().unwrap_or_default()
                )));
            }
        }
    }
    Ok(layer)
}

/// Pebble's `CombineLayers` for one more layer: `replace` swaps an entry, `merge`
/// overrides scalars, appends lists (`after`, `requires`, …) and merges maps
/// (`environment`, …) key by key.
fn combine(plan: &mut Mapping, layer: &Mapping) {
    for (key, value) in layer {
        let is_section = matches!(key.as_str(), Some("services" | "checks" | "log-targets"));
        let Some(entries) = value.as_mapping().filter(|_| is_section) else {
            plan.insert(key.clone(), value.clone());
            continue;
        };
        let target = plan
            .entry(key.clone())
            .or_insert_with(|| Yaml::Mapping(Mapping::new()));
        if !target.is_mapping() {
            *target = Yaml::Mapping(Mapping::new());
        }
        let Yaml::Mapping(target) = target else {
            continue;
        };
        for (name, entry) in entries {
            let replace = entry.get("override").and_then(Yaml::as_str) == Some("replace");
            match (target.get_mut(name), entry.as_mapping()) {
                (Some(Yaml::Mapping(old)), Some(new)) if !replace => {
                    for (k, v) in new {
                        match (old.get_mut(k), v) {
                            (Some(Yaml::Sequence(a)), Yaml::Sequence(b)) => {
                                a.extend(b.iter().cloned())
                            }
                            (Some(Yaml::Mapping(a)), Yaml::Mapping(b)) => {
                                for (k2, v2) in b {
                                    a.insert(k2.clone(), v2.clone());
                                }
                            }
                            _ => {
                                old.insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
                _ => {
                    target.insert(name.clone(), entry.clone());
                }
            }
        }
    }
}

type SharedContainers = Arc<Mutex<Vec<Container>>>;

thread_local! {
    /// The containers of the State a [`Harness`] is running on this thread, if any.
    static HARNESS_CONTAINERS: RefCell<Option<SharedContainers>> = const { RefCell::new(None) };
}

/// Makes the State's containers what [`Context::workload`] returns on this thread
/// until dropped (also when the charm panics).
struct ContainerScope {
    previous: Option<SharedContainers>,
}

impl ContainerScope {
    fn enter(containers: SharedContainers) -> Self {
        let previous = HARNESS_CONTAINERS.with(|c| c.borrow_mut().replace(containers));
        Self { previous }
    }
}

impl Drop for ContainerScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        HARNESS_CONTAINERS.with(|c| *c.borrow_mut() = previous);
    }
}

/// The harness's workload for container `name`, when a [`Harness`] is running on this
/// thread.
pub(crate) fn harness_container(name: &str, owner: &str) -> Option<Box<dyn ContainerApi>> {
    let containers = HARNESS_CONTAINERS.with(|c| c.borrow().clone())?;
    Some(Box::new(ContainerWorkload {
        containers,
        name: name.into(),
        owner: owner.into(),
    }))
}

fn lock(m: &Mutex<Vec<Container>>) -> MutexGuard<'_, Vec<Container>> {
    // A charm that panicked while holding the lock has failed its test already.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A [`Workload`] and [`ContainerApi`] over one of the State's containers.
#[derive(Debug)]
struct ContainerWorkload {
    containers: SharedContainers,
    name: String,
    owner: String,
}

impl ContainerWorkload {
    /// Runs `f` on the container when Pebble answers; otherwise the error a missing
    /// socket gives [`crate::workload::PebbleWorkload`].
    fn with<T>(&self, f: impl FnOnce(&mut Container) -> Result<T>) -> Result<T> {
        let mut containers = lock(&self.containers);
        let known = containers.iter().any(|c| c.name == self.name);
        match containers
            .iter_mut()
            .find(|c| c.name == self.name && c.can_connect)
        {
            Some(c) => f(c),
            None => Err(Error::Charm(self.unreachable(known).to_string())),
        }
    }

    fn unreachable(&self, known: bool) -> crate::pebble::Error {
        let path = crate::pebble::Client::for_container(&self.name)
            .socket()
            .to_path_buf();
        let why = if known {
            "no such file or directory (can_connect is false in the harness State)".to_string()
        } else {
            format!(
                "no such file or directory (the harness State has no container {:?})",
                self.name
            )
        };
        crate::pebble::Error::Connection {
            path,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, why),
        }
    }

    fn context(&self, what: String) -> impl Fn(Error) -> Error {
        move |e| match e {
            Error::Charm(m) => Error::Charm(format!("{what}: {m}")),
            other => Error::Charm(format!("{what}: {other}")),
        }
    }
}

impl Workload for ContainerWorkload {
    fn can_connect(&self) -> bool {
        self.with(|_| Ok(())).is_ok()
    }

    fn pull(&self, path: &str) -> Option<Vec<u8>> {
        self.with(|c| Ok(c.files.get(path).map(|f| f.content.clone())))
            .ok()
            .flatten()
    }

    fn push_private(&self, path: &str, content: &[u8]) -> Result<()> {
        self.with(|c| {
            c.files.insert(
                path.into(),
                ContainerFile {
                    content: content.to_vec(),
                    permissions: 0o600,
                    user: self.owner.clone(),
                    group: self.owner.clone(),
                },
            );
            Ok(())
        })
        .map_err(self.context(format!("cannot write {path} in the workload")))
    }

    fn add_layer(&self, label: &str, yaml: &str) -> Result<()> {
        self.with(|c| c.add_layer(label, yaml))
            .map_err(self.context(format!("cannot add the Pebble layer {label}")))
    }

    fn replan(&self) -> Result<()> {
        self.with(Container::replan)
            .map_err(self.context("cannot start the workload's services".into()))
    }

    fn restart(&self, services: &[&str]) -> Result<()> {
        self.with(|c| {
            let defs = c.check_services("restart", services)?;
            for s in services {
                c.stop(s);
            }
            for s in services {
                c.start(s, defs.get(*s).cloned());
            }
            Ok(())
        })
        .map_err(self.context(format!("cannot restart {}", services.join(", "))))
    }

    fn stop(&self, services: &[&str]) -> Result<()> {
        self.with(|c| {
            c.check_services("stop", services)?;
            for s in services {
                c.stop(s);
            }
            Ok(())
        })
        .map_err(self.context(format!("cannot stop {}", services.join(", "))))
    }

    fn exec(&self, argv: &[&str]) -> Result<String> {
        let mut opts = ExecOptions::new(argv.iter().copied());
        opts.user = Some(self.owner.clone());
        opts.timeout = Some(std::time::Duration::from_secs(60));
        let out = self.exec_with(&opts)?;
        if out.exit_code != 0 {
            return Err(Error::Charm(format!(
                "{} failed in the workload: {}",
                argv.first().copied().unwrap_or_default(),
                out.stderr_text().trim()
            )));
        }
        Ok(out.stdout_text())
    }

    fn service_status(&self, service: &str) -> Option<String> {
        self.with(|c| Ok(c.service_status(service)))
            .ok()
            .flatten()
            .map(|s| s.as_str().to_string())
    }

    fn signal(&self, signal: &str, service: &str) -> Result<()> {
        self.with(|c| {
            if !c.is_running(service) {
                return Err(Error::Charm(format!(
                    "cannot send signal to {service:?}: service is not running"
                )));
            }
            c.signals.push((signal.into(), service.into()));
            Ok(())
        })
        .map_err(self.context(format!("cannot send {signal} to {service}")))
    }
}

impl ContainerWorkload {
    fn file_info(path: &str, kind: &str, f: Option<&ContainerFile>) -> FileInfo {
        FileInfo {
            path: path.into(),
            name: path.rsplit('/').next().unwrap_or_default().into(),
            kind: kind.into(),
            size: f.map(|f| f.content.len() as u64),
            permissions: format!("{:03o}", f.map_or(0o755, |f| f.permissions)),
            user: Some(f.map_or("root", |f| f.user.as_str()).into()),
            group: Some(f.map_or("root", |f| f.group.as_str()).into()),
        }
    }
}

/// The paths under directory `dir` (which ends with `/`).
fn under<'a>(c: &'a Container, dir: &'a str) -> impl Iterator<Item = &'a String> + 'a {
    c.files.keys().filter(move |p| p.starts_with(dir))
}

fn as_dir(path: &str) -> String {
    format!("{}/", path.trim_end_matches('/'))
}

impl ContainerApi for ContainerWorkload {
    fn push(&self, path: &str, content: &[u8], opts: &FileOptions) -> Result<()> {
        self.with(|c| {
            if opts.group.is_some() && opts.user.is_none() {
                return Err(Error::Charm("must specify user, not just group".into()));
            }
            let user = opts.user.clone().unwrap_or_else(|| "root".into());
            let group = opts.group.clone().unwrap_or_else(|| user.clone());
            c.files.insert(
                path.into(),
                ContainerFile {
                    content: content.to_vec(),
                    permissions: opts.permissions.unwrap_or(0o644),
                    user,
                    group,
                },
            );
            Ok(())
        })
        .map_err(self.context(format!("cannot write {path} in the workload")))
    }

    fn list_files(&self, path: &str) -> Result<Vec<FileInfo>> {
        self.with(|c| {
            if let Some(f) = c.files.get(path) {
                return Ok(vec![Self::file_info(path, "file", Some(f))]);
            }
            let dir = as_dir(path);
            let mut entries = BTreeMap::new();
            for p in under(c, &dir) {
                let rest = &p[dir.len()..];
                match rest.split_once('/') {
                    None => entries.insert(p.clone(), Self::file_info(p, "file", c.files.get(p))),
                    Some((sub, _)) => {
                        let sub = format!("{dir}{sub}");
                        entries.insert(sub.clone(), Self::file_info(&sub, "directory", None))
                    }
                };
            }
            if entries.is_empty() && path != "/" {
                return Err(Error::Charm(format!(
                    "stat {path}: no such file or directory (not-found)"
                )));
            }
            Ok(entries.into_values().collect())
        })
        .map_err(self.context(format!("cannot list {path} in the workload")))
    }

    fn remove_path(&self, path: &str, recursive: bool) -> Result<()> {
        self.with(|c| {
            if c.files.remove(path).is_some() {
                return Ok(());
            }
            let dir = as_dir(path);
            let inside: Vec<String> = under(c, &dir).cloned().collect();
            match (inside.is_empty(), recursive) {
                (_, true) => {
                    for p in inside {
                        c.files.remove(&p);
                    }
                    Ok(())
                }
                (true, false) => Err(Error::Charm(format!(
                    "remove {path}: no such file or directory (not-found)"
                ))),
                (false, false) => Err(Error::Charm(format!(
                    "remove {path}: directory not empty (generic-file-error)"
                ))),
            }
        })
        .map_err(self.context(format!("cannot remove {path} in the workload")))
    }

    fn start(&self, services: &[&str]) -> Result<()> {
        self.with(|c| {
            let defs = c.check_services("start", services)?;
            for s in services {
                if !c.is_running(s) {
                    c.start(s, defs.get(*s).cloned());
                }
            }
            Ok(())
        })
        .map_err(self.context(format!("cannot start {}", services.join(", "))))
    }

    fn plan(&self) -> Result<String> {
        self.with(|c| {
            serde_yaml_ng::to_string(&Yaml::Mapping(c.combined()?)).map_err(|e| {
                Error::InvalidInput {
                    what: format!("the plan of container {}", c.name),
                    reason: e.to_string(),
                }
            })
        })
        .map_err(self.context("cannot read the workload's plan".into()))
    }

    fn exec_with(&self, opts: &ExecOptions) -> Result<ExecOutput> {
        let argv: Vec<&str> = opts.command.iter().map(String::as_str).collect();
        let argv0 = argv.first().copied().unwrap_or_default();
        let exec = self
            .with(|c| {
                if argv.is_empty() {
                    return Err(Error::Charm("no command given".into()));
                }
                c.exec_history.push(opts.clone());
                let best = c
                    .execs
                    .iter()
                    .filter(|e| e.matches(&argv))
                    .max_by_key(|e| (e.exact, e.command.len()))
                    .cloned();
                best.ok_or_else(|| {
                    Error::Charm(format!(
                        "cannot find executable {argv0:?} (no Exec in the harness State matches {argv:?})"
                    ))
                })
            })
            .map_err(self.context(format!("cannot run {argv0} in the workload")))?;
        let (mut stdout, mut stderr) = (exec.stdout.into_bytes(), exec.stderr.into_bytes());
        if opts.combine_stderr {
            stdout.append(&mut stderr);
        }
        Ok(ExecOutput {
            exit_code: i64::from(exec.exit_code),
            stdout,
            stderr,
        })
    }

    fn checks(&self) -> Result<Vec<CheckInfo>> {
        self.with(|c| Ok(c.checks.clone()))
            .map_err(self.context("cannot read the workload's checks".into()))
    }

    fn notices(&self) -> Result<Vec<Notice>> {
        self.with(|c| Ok(c.notices.clone()))
            .map_err(self.context("cannot read the workload's notices".into()))
    }
}
