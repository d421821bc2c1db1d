//! Hooks: what the uniter decided to run, its Juju name and its environment.

use serde::{Deserialize, Serialize};

/// The kind of a hook (or action) run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HookKind {
    /// `install`
    Install,
    /// `leader-elected`
    LeaderElected,
    /// `leader-settings-changed`
    LeaderSettingsChanged,
    /// `config-changed`
    ConfigChanged,
    /// `start`
    Start,
    /// `upgrade-charm`
    UpgradeCharm,
    /// `update-status`
    UpdateStatus,
    /// `stop`
    Stop,
    /// `remove`
    Remove,
    /// `<c>-pebble-ready`
    PebbleReady {
        /// Container (workload) name.
        workload: String,
    },
    /// `<c>-pebble-custom-notice`
    PebbleCustomNotice {
        /// Container (workload) name.
        workload: String,
        /// Notice id.
        id: String,
        /// Notice key.
        key: String,
    },
    /// `<ep>-relation-created`
    RelationCreated(RelationRef),
    /// `<ep>-relation-joined`
    RelationJoined(RelationRef),
    /// `<ep>-relation-changed`
    RelationChanged(RelationRef),
    /// `<ep>-relation-departed`
    RelationDeparted(RelationRef),
    /// `<ep>-relation-broken`
    RelationBroken(RelationRef),
    /// `secret-changed` (consumer)
    SecretChanged(SecretRef),
    /// `secret-rotate` (owner)
    SecretRotate(SecretRef),
    /// `secret-expired` (owner)
    SecretExpired(SecretRef),
    /// `secret-remove` (owner)
    SecretRemove(SecretRef),
    /// `<name>-storage-attached`
    StorageAttached(StorageRef),
    /// `<name>-storage-detaching`
    StorageDetaching(StorageRef),
    /// An action task.
    Action {
        /// Task id.
        id: i64,
        /// Action name.
        name: String,
    },
}

/// The relation a relation hook is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationRef {
    /// Relation id.
    pub id: i64,
    /// Local endpoint name.
    pub endpoint: String,
    /// Remote application.
    pub remote_app: String,
    /// Remote unit, empty when none (app data change, created, broken).
    pub remote_unit: String,
    /// For departed: this unit is the one leaving (it is being removed), so
    /// `JUJU_DEPARTING_UNIT` names it rather than the remote unit, as in Juju.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub self_departing: bool,
}

/// The storage instance a storage hook is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageRef {
    /// Instance id, `<name>/<n>`.
    pub id: String,
    /// Storage name from metadata.
    pub name: String,
}

/// The secret a secret hook is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    /// `secret:<xid>`
    pub uri: String,
    /// The label this unit knows it by (may be empty).
    pub label: String,
    /// Revision for expired/remove, 0 otherwise.
    pub revision: i64,
}

/// A hook the uniter runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// What kind.
    #[serde(flatten)]
    pub kind: HookKind,
}

impl From<HookKind> for Hook {
    fn from(kind: HookKind) -> Self {
        Hook { kind }
    }
}

impl Hook {
    /// Juju's hook name (`db-relation-changed`), or the action name for actions.
    pub fn name(&self) -> String {
        use HookKind::*;
        match &self.kind {
            Install => "install".into(),
            LeaderElected => "leader-elected".into(),
            LeaderSettingsChanged => "leader-settings-changed".into(),
            ConfigChanged => "config-changed".into(),
            Start => "start".into(),
            UpgradeCharm => "upgrade-charm".into(),
            UpdateStatus => "update-status".into(),
            Stop => "stop".into(),
            Remove => "remove".into(),
            PebbleReady { workload } => format!("{workload}-pebble-ready"),
            PebbleCustomNotice { workload, .. } => format!("{workload}-pebble-custom-notice"),
            RelationCreated(r) => format!("{}-relation-created", r.endpoint),
            RelationJoined(r) => format!("{}-relation-joined", r.endpoint),
            RelationChanged(r) => format!("{}-relation-changed", r.endpoint),
            RelationDeparted(r) => format!("{}-relation-departed", r.endpoint),
            RelationBroken(r) => format!("{}-relation-broken", r.endpoint),
            SecretChanged(_) => "secret-changed".into(),
            SecretRotate(_) => "secret-rotate".into(),
            SecretExpired(_) => "secret-expired".into(),
            SecretRemove(_) => "secret-remove".into(),
            StorageAttached(s) => format!("{}-storage-attached", s.name),
            StorageDetaching(s) => format!("{}-storage-detaching", s.name),
            Action { name, .. } => name.clone(),
        }
    }

    /// The storage instance this hook concerns.
    pub fn storage(&self) -> Option<&StorageRef> {
        match &self.kind {
            HookKind::StorageAttached(s) | HookKind::StorageDetaching(s) => Some(s),
            _ => None,
        }
    }

    /// `hooks/<name>` or `actions/<name>`.
    pub fn dispatch_path(&self) -> String {
        match &self.kind {
            HookKind::Action { name, .. } => format!("actions/{name}"),
            _ => format!("hooks/{}", self.name()),
        }
    }

    /// The relation this hook concerns.
    pub fn relation(&self) -> Option<&RelationRef> {
        use HookKind::*;
        match &self.kind {
            RelationCreated(r) | RelationJoined(r) | RelationChanged(r) | RelationDeparted(r)
            | RelationBroken(r) => Some(r),
            _ => None,
        }
    }

    /// The secret this hook concerns.
    pub fn secret(&self) -> Option<&SecretRef> {
        use HookKind::*;
        match &self.kind {
            SecretChanged(s) | SecretRotate(s) | SecretExpired(s) | SecretRemove(s) => Some(s),
            _ => None,
        }
    }

    /// The action task id, for actions.
    pub fn action_id(&self) -> Option<i64> {
        match &self.kind {
            HookKind::Action { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// Hook-specific environment variables (spec §1.2), beyond the common ones.
    pub fn env(&self, unit: &str) -> Vec<(String, String)> {
        let mut env = Vec::new();
        let mut push = |k: &str, v: String| env.push((k.to_string(), v));
        match &self.kind {
            HookKind::Action { id, name } => {
                push("JUJU_HOOK_NAME", String::new());
                push("JUJU_ACTION_NAME", name.clone());
                push("JUJU_ACTION_UUID", id.to_string());
                push("JUJU_ACTION_TAG", format!("action-{id}"));
            }
            _ => push("JUJU_HOOK_NAME", self.name()),
        }
        if let Some(r) = self.relation() {
            push("JUJU_RELATION", r.endpoint.clone());
            push("JUJU_RELATION_ID", format!("{}:{}", r.endpoint, r.id));
            push("JUJU_REMOTE_APP", r.remote_app.clone());
            push("JUJU_REMOTE_UNIT", r.remote_unit.clone());
            if let HookKind::RelationDeparted(_) = self.kind {
                // The departing unit is the remote one, or this unit when it is
                // itself leaving (only its own teardown sees that).
                let departing = if r.self_departing || r.remote_unit.is_empty() {
                    unit.to_string()
                } else {
                    r.remote_unit.clone()
                };
                push("JUJU_DEPARTING_UNIT", departing);
            }
        }
        if let Some(s) = self.secret() {
            push("JUJU_SECRET_ID", s.uri.clone());
            push("JUJU_SECRET_LABEL", s.label.clone());
            if s.revision > 0 {
                push("JUJU_SECRET_REVISION", s.revision.to_string());
            }
        }
        if let Some(st) = self.storage() {
            push("JUJU_STORAGE_ID", st.id.clone());
        }
        if let HookKind::PebbleReady { workload } = &self.kind {
            push("JUJU_WORKLOAD_NAME", workload.clone());
        }
        if let HookKind::PebbleCustomNotice { workload, id, key } = &self.kind {
            push("JUJU_WORKLOAD_NAME", workload.clone());
            push("JUJU_NOTICE_ID", id.clone());
            push("JUJU_NOTICE_TYPE", "custom".into());
            push("JUJU_NOTICE_KEY", key.clone());
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_env_follow_juju() {
        let r = RelationRef {
            id: 3,
            endpoint: "db".into(),
            remote_app: "pg".into(),
            remote_unit: "pg/1".into(),
            self_departing: false,
        };
        let h: Hook = HookKind::RelationDeparted(r.clone()).into();
        assert_eq!(h.name(), "db-relation-departed");
        assert_eq!(h.dispatch_path(), "hooks/db-relation-departed");
        let env = h.env("app/0");
        assert!(env.contains(&("JUJU_RELATION_ID".into(), "db:3".into())));
        assert!(env.contains(&("JUJU_DEPARTING_UNIT".into(), "pg/1".into())));
        // A unit being removed departs its relations itself: the remote unit is the
        // other end, the departing unit is this one.
        let leaving: Hook = HookKind::RelationDeparted(RelationRef {
            self_departing: true,
            ..r
        })
        .into();
        let env = leaving.env("app/0");
        assert!(env.contains(&("JUJU_REMOTE_UNIT".into(), "pg/1".into())));
        assert!(env.contains(&("JUJU_DEPARTING_UNIT".into(), "app/0".into())));
        let a: Hook = HookKind::Action {
            id: 7,
            name: "backup".into(),
        }
        .into();
        assert_eq!(a.dispatch_path(), "actions/backup");
        assert!(a
            .env("x/0")
            .contains(&("JUJU_HOOK_NAME".into(), String::new())));
        assert!(a
            .env("x/0")
            .contains(&("JUJU_ACTION_TAG".into(), "action-7".into())));
        let s: Hook = HookKind::SecretChanged(SecretRef {
            uri: "secret:abc".into(),
            label: String::new(),
            revision: 0,
        })
        .into();
        assert!(!s
            .env("x/0")
            .iter()
            .any(|(k, _)| k == "JUJU_SECRET_REVISION"));
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Hook>(&j).unwrap(), s);
    }
}
