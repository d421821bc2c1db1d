//! State in, state out: run one event against a charm with no controller and no
//! processes, then assert on the resulting [`State`], as `ops.testing` does.
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

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::backend::{
    Address, Backend, Bag, BindAddress, LogLevel, Network, Port, SecretInfo, SecretOptions,
    SecretOwner, SecretRead, Status, StorageInfo,
};
use crate::config::ConfigOptions;
use crate::error::{Error, Result};
use crate::event::{juju_vars, Event, HookEnv, RelationEvent, RelationId};
use crate::model::Context;
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
        }
    }
}

impl State {
    /// The relation with this id.
    pub fn relation(&self, id: u32) -> Option<&Relation> {
        self.relations.iter().find(|r| r.id.id == id)
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
    /// what Juju applies at once (statuses, logs) if it failed.
    pub state: State,
    /// juju-log lines.
    pub logs: Vec<(LogLevel, String)>,
    /// Every status-set of the unit, in order.
    pub unit_status_history: Vec<Status>,
    /// What the action produced, for actions.
    pub action: Option<ActionOutput>,
    /// The hook's failure, if it failed.
    pub error: Option<Error>,
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
                }
            }
        };
        let is_action = event.is_action();
        let mut mem = Memory::new(&self.unit, state.clone(), params);
        let result = {
            let mut ctx = Context::new(&mut mem, env).with_config_options(self.options.clone());
            crate::dispatch(charm, &mut ctx)
        };
        let (final_state, error) = match result {
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
        Output {
            state: final_state,
            logs: mem.logs,
            unit_status_history: mem.unit_status_history,
            action: is_action.then_some(mem.action),
            error,
        }
    }
}

/// The in-memory backend: enforces the rules Juju's controller enforces.
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
}

impl Memory {
    /// A backend for `unit` over `state`, with action parameters `params`.
    pub fn new(unit: &str, state: State, params: Value) -> Self {
        let app = unit.split('/').next().unwrap_or(unit).to_string();
        Self {
            unit: unit.into(),
            app,
            state,
            params,
            logs: Vec::new(),
            unit_status_history: Vec::new(),
            action: ActionOutput::default(),
            next_secret: 1,
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
        Ok(self.rel(rel)?.remote_units_data.keys().cloned().collect())
    }

    fn relation_remote_app(&mut self, rel: &RelationId) -> Result<Option<String>> {
        Ok(Some(self.rel(rel)?.remote_app.clone()))
    }

    fn relation_get(&mut self, rel: &RelationId, app: bool, owner: &str) -> Result<Bag> {
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
        Ok(self.state.config.clone())
    }

    fn is_leader(&mut self) -> Result<bool> {
        Ok(self.state.leader)
    }

    fn status_get(&mut self, app: bool) -> Result<Status> {
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
        self.state.workload_version = Some(version.into());
        Ok(())
    }

    fn juju_log(&mut self, level: LogLevel, message: &str) -> Result<()> {
        self.logs.push((level, message.into()));
        Ok(())
    }

    fn action_get(&mut self) -> Result<Value> {
        Ok(self.params.clone())
    }

    fn action_set(&mut self, results: &BTreeMap<String, String>) -> Result<()> {
        self.action
            .results
            .extend(results.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(())
    }

    fn action_log(&mut self, message: &str) -> Result<()> {
        self.action.logs.push(message.into());
        Ok(())
    }

    fn action_fail(&mut self, message: &str) -> Result<()> {
        self.action.failure = Some(message.into());
        Ok(())
    }

    fn secret_add(
        &mut self,
        content: &Bag,
        owner: SecretOwner,
        opts: &SecretOptions,
    ) -> Result<String> {
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
        Ok(self
            .state
            .secrets
            .iter()
            .filter(|s| s.owner.is_some() && !s.removed)
            .map(|s| s.id.clone())
            .collect())
    }

    fn open_port(&mut self, port: Port) -> Result<()> {
        self.state.opened_ports.insert(port);
        Ok(())
    }

    fn close_port(&mut self, port: Port) -> Result<()> {
        self.state.opened_ports.remove(&port);
        Ok(())
    }

    fn opened_ports(&mut self) -> Result<Vec<Port>> {
        Ok(self.state.opened_ports.iter().copied().collect())
    }

    fn network_get(&mut self, _binding: &str, rel: Option<&RelationId>) -> Result<Network> {
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
        Ok(self
            .state
            .storage
            .keys()
            .filter(|id| id.split('/').next() == Some(name))
            .cloned()
            .collect())
    }

    fn storage_get(&mut self, id: &str) -> Result<StorageInfo> {
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
        Ok(self.state.stored.clone())
    }

    fn state_set(&mut self, data: &Bag) -> Result<()> {
        self.state
            .stored
            .extend(data.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(())
    }

    fn state_delete(&mut self, key: &str) -> Result<()> {
        self.state.stored.remove(key);
        Ok(())
    }
}
