//! [`Context`]: what a handler sees of the model during one hook, with Juju's rules
//! checked before any tool runs.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::backend::{
    check_action_key, Backend, Bag, LogLevel, Network, Port, SecretInfo, SecretOptions,
    SecretOwner, SecretRead, Status, StorageInfo,
};
use crate::config::{Config, ConfigOptions};
use crate::error::{Error, Result};
use crate::event::{Event, HookEnv, RelationId};

/// The model as one hook sees it.
pub struct Context<'a> {
    backend: &'a mut dyn Backend,
    env: HookEnv,
    options: Option<ConfigOptions>,
    leader: Option<bool>,
    config: Option<Config>,
    pub(crate) unit_statuses: Vec<Status>,
    pub(crate) app_statuses: Vec<Status>,
}

impl<'a> Context<'a> {
    /// A context over `backend` for the hook described by `env`. Config options are
    /// read from the charm directory when first needed, unless given with
    /// [`Context::with_config_options`].
    pub fn new(backend: &'a mut dyn Backend, env: HookEnv) -> Self {
        Self {
            backend,
            env,
            options: None,
            leader: None,
            config: None,
            unit_statuses: Vec::new(),
            app_statuses: Vec::new(),
        }
    }

    /// Uses these declared config options instead of reading the charm directory.
    pub fn with_config_options(mut self, options: ConfigOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// The event being handled.
    pub fn event(&self) -> &Event {
        &self.env.event
    }

    /// The dispatch environment.
    pub fn env(&self) -> &HookEnv {
        &self.env
    }

    /// This unit's name, `app/n`.
    pub fn unit_name(&self) -> &str {
        &self.env.unit_name
    }

    /// This unit's application.
    pub fn app_name(&self) -> &str {
        &self.env.app_name
    }

    /// The raw backend, for what the model does not wrap.
    pub fn backend(&mut self) -> &mut dyn Backend {
        self.backend
    }

    // ------------------------------------------------------------ leadership, config

    /// Whether this unit leads its application (asked once per hook).
    pub fn is_leader(&mut self) -> Result<bool> {
        if let Some(l) = self.leader {
            return Ok(l);
        }
        let l = self.backend.is_leader()?;
        self.leader = Some(l);
        Ok(l)
    }

    /// The config, checked against the charm's declared options.
    pub fn config(&mut self) -> Result<&Config> {
        if self.config.is_none() {
            let options = match self.options.take() {
                Some(o) => o,
                None => match &self.env.charm_dir {
                    Some(d) => ConfigOptions::from_charm_dir(Path::new(d))?,
                    None => ConfigOptions::default(),
                },
            };
            let values = self.backend.config_get()?;
            self.config = Some(Config::new(values, options));
        }
        Ok(self.config.as_ref().expect("set above"))
    }

    // ------------------------------------------------------------ relations

    /// The relations on an endpoint.
    pub fn relations(&mut self, endpoint: &str) -> Result<Vec<RelationId>> {
        self.backend.relation_ids(endpoint)
    }

    /// The one relation on an endpoint, if any (for `limit: 1` endpoints).
    pub fn relation(&mut self, endpoint: &str) -> Result<Option<RelationId>> {
        Ok(self.relations(endpoint)?.into_iter().next())
    }

    /// Remote units in the relation.
    pub fn relation_units(&mut self, rel: &RelationId) -> Result<Vec<String>> {
        self.backend.relation_list(rel)
    }

    /// The remote application of a relation (from the event when it is this relation's).
    pub fn remote_app(&mut self, rel: &RelationId) -> Result<Option<String>> {
        if let Some(r) = self.env.event.relation() {
            if &r.relation == rel {
                return Ok(Some(r.remote_app.clone()));
            }
        }
        self.backend.relation_remote_app(rel)
    }

    /// A remote unit's bag.
    pub fn remote_unit_data(&mut self, rel: &RelationId, unit: &str) -> Result<Bag> {
        self.backend.relation_get(rel, false, unit)
    }

    /// The remote application's bag (empty when the remote app is not known yet).
    pub fn remote_app_data(&mut self, rel: &RelationId) -> Result<Bag> {
        match self.remote_app(rel)? {
            Some(app) => self.backend.relation_get(rel, true, &app),
            None => Ok(Bag::new()),
        }
    }

    /// This unit's own bag.
    pub fn unit_data(&mut self, rel: &RelationId) -> Result<Bag> {
        let unit = self.env.unit_name.clone();
        self.backend.relation_get(rel, false, &unit)
    }

    /// This application's bag (readable by every unit of it).
    pub fn app_data(&mut self, rel: &RelationId) -> Result<Bag> {
        let app = self.env.app_name.clone();
        self.backend.relation_get(rel, true, &app)
    }

    /// Updates this unit's bag: each key is set, an empty value deletes it.
    pub fn set_unit_data(&mut self, rel: &RelationId, data: &Bag) -> Result<()> {
        check_bag(data)?;
        self.backend.relation_set(rel, false, data)
    }

    /// Updates this application's bag. Only the leader may; others are refused
    /// before any tool runs.
    pub fn set_app_data(&mut self, rel: &RelationId, data: &Bag) -> Result<()> {
        check_bag(data)?;
        if !self.is_leader()? {
            return Err(Error::PermissionDenied {
                what: format!("only the leader may write the application databag of {rel}"),
            });
        }
        self.backend.relation_set(rel, true, data)
    }

    /// Writes the bag owned by `owner` (this unit's or this app's name); any other
    /// owner is refused: remote bags are read-only.
    pub fn set_data(&mut self, rel: &RelationId, owner: &str, data: &Bag) -> Result<()> {
        if owner == self.env.unit_name {
            self.set_unit_data(rel, data)
        } else if owner == self.env.app_name {
            self.set_app_data(rel, data)
        } else {
            Err(Error::PermissionDenied {
                what: format!(
                    "the databag of {owner} in {rel} belongs to another unit or application"
                ),
            })
        }
    }

    // ------------------------------------------------------------ secrets

    /// Creates a secret; an application-owned one needs leadership.
    pub fn add_secret(
        &mut self,
        content: &Bag,
        owner: SecretOwner,
        opts: &SecretOptions,
    ) -> Result<String> {
        if content.is_empty() {
            return Err(Error::InvalidInput {
                what: "secret content".into(),
                reason: "a secret needs at least one key".into(),
            });
        }
        for k in content.keys() {
            crate::hooktools::check_secret_key(k)?;
        }
        if owner == SecretOwner::Application && !self.is_leader()? {
            return Err(Error::PermissionDenied {
                what: "only the leader may create an application-owned secret".into(),
            });
        }
        self.backend.secret_add(content, owner, opts)
    }

    /// A secret's content by id (or by the label this unit gave it).
    pub fn get_secret(
        &mut self,
        id: Option<&str>,
        label: Option<&str>,
        read: SecretRead,
    ) -> Result<Bag> {
        if id.is_none() && label.is_none() {
            return Err(Error::InvalidInput {
                what: "secret".into(),
                reason: "give an id or a label".into(),
            });
        }
        self.backend.secret_get(id, label, read)
    }

    /// A secret's metadata (owners only).
    pub fn secret_info(&mut self, id: Option<&str>, label: Option<&str>) -> Result<SecretInfo> {
        self.backend.secret_info_get(id, label)
    }

    /// A new revision of a secret this unit (or, as leader, its app) owns.
    pub fn set_secret(&mut self, id: &str, content: &Bag, opts: &SecretOptions) -> Result<()> {
        for k in content.keys() {
            crate::hooktools::check_secret_key(k)?;
        }
        self.backend.secret_set(id, Some(content), opts)
    }

    /// Changes a secret's metadata only.
    pub fn set_secret_options(&mut self, id: &str, opts: &SecretOptions) -> Result<()> {
        self.backend.secret_set(id, None, opts)
    }

    /// Lets a relation's remote application (or one unit of it) read the secret.
    pub fn grant_secret(&mut self, id: &str, rel: &RelationId, unit: Option<&str>) -> Result<()> {
        self.backend.secret_grant(id, rel, unit)
    }

    /// Takes a grant back.
    pub fn revoke_secret(&mut self, id: &str, rel: &RelationId, unit: Option<&str>) -> Result<()> {
        self.backend.secret_revoke(id, rel, unit)
    }

    /// Removes a secret, or one revision of it.
    pub fn remove_secret(&mut self, id: &str, revision: Option<u32>) -> Result<()> {
        self.backend.secret_remove(id, revision)
    }

    /// The secrets this unit (and its app) owns.
    pub fn secret_ids(&mut self) -> Result<Vec<String>> {
        self.backend.secret_ids()
    }

    // ------------------------------------------------------------ status

    /// Sets this unit's status now.
    pub fn set_unit_status(&mut self, status: Status) -> Result<()> {
        check_settable(&status)?;
        self.backend.status_set(false, &status)
    }

    /// Sets the application's status now (leader only).
    pub fn set_app_status(&mut self, status: Status) -> Result<()> {
        check_settable(&status)?;
        if !self.is_leader()? {
            return Err(Error::PermissionDenied {
                what: "only the leader may set the application status".into(),
            });
        }
        self.backend.status_set(true, &status)
    }

    /// Offers a candidate unit status; after the event the most severe one wins
    /// (blocked > maintenance > waiting > active; the first added on a tie).
    pub fn add_unit_status(&mut self, status: Status) {
        self.unit_statuses.push(status);
    }

    /// Offers a candidate application status (set only if this unit leads).
    pub fn add_app_status(&mut self, status: Status) {
        self.app_statuses.push(status);
    }

    /// Sets the workload version shown in status.
    pub fn set_workload_version(&mut self, version: &str) -> Result<()> {
        self.backend.application_version_set(version)
    }

    /// Writes to the unit's log (`ward debug-log`, `juju debug-log`).
    pub fn log(&mut self, level: LogLevel, message: &str) -> Result<()> {
        self.backend.juju_log(level, message)
    }

    // ------------------------------------------------------------ actions

    /// The action's parameters, deserialised into `T`; `-` becomes `_` in names.
    pub fn action_params<T: DeserializeOwned>(&mut self) -> Result<T> {
        self.require_action("action-get")?;
        let v = self.backend.action_get()?;
        let v = underscore_keys(v);
        serde_path_to_error::deserialize(v).map_err(|e| Error::InvalidParams {
            reason: format!("parameter {:?}: {}", e.path().to_string(), e.inner()),
        })
    }

    /// The action's raw parameters.
    pub fn action_params_raw(&mut self) -> Result<Value> {
        self.require_action("action-get")?;
        self.backend.action_get()
    }

    /// Sets action results from a JSON object; nested objects become dotted keys.
    pub fn set_results(&mut self, results: &Value) -> Result<()> {
        self.require_action("action-set")?;
        let mut flat = BTreeMap::new();
        flatten("", results, &mut flat)?;
        for k in flat.keys() {
            check_action_key(k)?;
        }
        self.backend.action_set(&flat)
    }

    /// Logs progress for the user running the action.
    pub fn action_log(&mut self, message: &str) -> Result<()> {
        self.require_action("action-log")?;
        self.backend.action_log(message)
    }

    /// Marks the action failed with a message.
    pub fn action_fail(&mut self, message: &str) -> Result<()> {
        self.require_action("action-fail")?;
        self.backend.action_fail(message)
    }

    fn require_action(&self, tool: &str) -> Result<()> {
        if self.env.event.is_action() {
            Ok(())
        } else {
            Err(Error::InvalidInput {
                what: tool.into(),
                reason: format!(
                    "only available in actions, not in {}",
                    self.env.event.juju_name()
                ),
            })
        }
    }

    // ------------------------------------------------------------ ports, network, storage, state

    /// Opens a port (applied when the hook succeeds).
    pub fn open_port(&mut self, port: Port) -> Result<()> {
        self.backend.open_port(port)
    }

    /// Closes a port.
    pub fn close_port(&mut self, port: Port) -> Result<()> {
        self.backend.close_port(port)
    }

    /// Ports opened by earlier hooks.
    pub fn opened_ports(&mut self) -> Result<Vec<Port>> {
        self.backend.opened_ports()
    }

    /// Network details of a binding (an endpoint name), optionally for one relation.
    pub fn network(&mut self, binding: &str, rel: Option<&RelationId>) -> Result<Network> {
        self.backend.network_get(binding, rel)
    }

    /// The leader's way to share an application-wide secret with its units: makes an
    /// application-owned secret with `content`, `label` and `description`, and writes its
    /// id under `key` in the application bag of the peer relation `peer`. Returns the id.
    /// Only the leader may call it (both steps need leadership).
    pub fn publish_app_secret(
        &mut self,
        peer: &RelationId,
        key: &str,
        content: &Bag,
        label: &str,
        description: &str,
    ) -> Result<String> {
        let id = self.add_secret(
            content,
            SecretOwner::Application,
            &SecretOptions {
                label: Some(label.into()),
                description: Some(description.into()),
                ..Default::default()
            },
        )?;
        let mut data = Bag::new();
        data.insert(key.into(), id.clone());
        self.set_app_data(peer, &data)?;
        Ok(id)
    }

    /// This unit's address on a binding: network-get's bind address, else its first
    /// ingress address; an error naming the binding when there is neither.
    pub fn bind_address(&mut self, binding: &str) -> Result<String> {
        let net = self.network(binding, None)?;
        net.bind_address()
            .map(str::to_string)
            .or_else(|| net.ingress_addresses.first().cloned())
            .ok_or_else(|| Error::Charm(format!("network-get {binding} gave no address")))
    }

    /// Storage instances of a storage name.
    pub fn storage(&mut self, name: &str) -> Result<Vec<String>> {
        self.backend.storage_list(name)
    }

    /// Where a storage instance is.
    pub fn storage_info(&mut self, id: &str) -> Result<StorageInfo> {
        self.backend.storage_get(id)
    }

    /// Controller-side stored state of this unit.
    pub fn stored(&mut self) -> Result<Bag> {
        self.backend.state_get()
    }

    /// Sets stored state keys (applied when the hook succeeds).
    pub fn store(&mut self, data: &Bag) -> Result<()> {
        for (k, v) in data {
            if k.len() > 256 || v.len() > 64 * 1024 {
                return Err(Error::InvalidInput {
                    what: "stored state".into(),
                    reason: format!(
                        "key {k:?}: keys are at most 256 bytes and values at most 64 KiB"
                    ),
                });
            }
        }
        self.backend.state_set(data)
    }

    /// Deletes a stored state key.
    pub fn unstore(&mut self, key: &str) -> Result<()> {
        self.backend.state_delete(key)
    }
}

fn check_settable(status: &Status) -> Result<()> {
    use crate::backend::StatusName;
    match status.name {
        StatusName::Active
        | StatusName::Blocked
        | StatusName::Maintenance
        | StatusName::Waiting => Ok(()),
        other => Err(Error::InvalidInput {
            what: "status".into(),
            reason: format!("a charm cannot set {:?}", other.as_str()),
        }),
    }
}

fn check_bag(data: &Bag) -> Result<()> {
    for k in data.keys() {
        if k.is_empty() || k.contains('=') || k.chars().any(char::is_whitespace) {
            return Err(Error::InvalidInput {
                what: "relation data key".into(),
                reason: format!("{k:?} must be non-empty, without '=' or whitespace"),
            });
        }
    }
    Ok(())
}

fn underscore_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k.replace('-', "_"), underscore_keys(v)))
                .collect(),
        ),
        other => other,
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) -> Result<()> {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out)?;
            }
            Ok(())
        }
        _ if prefix.is_empty() => Err(Error::InvalidInput {
            what: "action results".into(),
            reason: "expected a JSON object".into(),
        }),
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
            Ok(())
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
            Ok(())
        }
    }
}
