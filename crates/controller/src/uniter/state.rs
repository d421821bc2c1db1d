//! The uniter's decision: remote state (what the store says) against local
//! state (what this unit has already been told), giving the next hook.
//!
//! Both functions here are pure: [`next_hook`] picks the hook and [`advance`]
//! says what the local state becomes once that hook has committed. The hook's
//! commit transaction stores the advanced local state with its changes, so a
//! crash never loses an event nor replays a committed one.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::hook::{Hook, HookKind, RelationRef, SecretRef, StorageRef};

/// Lifecycle of an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Life {
    /// Running normally.
    #[default]
    Alive,
    /// Being removed.
    Dying,
}

/// How a unit in error was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Resolved {
    /// Not resolved.
    #[default]
    None,
    /// Re-run the failed hook now.
    Retry,
    /// Skip the failed hook.
    NoRetry,
}

/// A relation as the store sees it, from this unit's side.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteRelation {
    /// This unit's endpoint.
    pub endpoint: String,
    /// The other application (own app for peers).
    pub remote_app: String,
    /// Whether this is a peer relation.
    pub peer: bool,
    /// Alive or dying (being removed).
    pub life: Life,
    /// Remote units in scope and their bag versions.
    pub members: BTreeMap<String, u64>,
    /// Version of the remote application's bag.
    pub app_version: u64,
}

/// A secret this unit consumes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumedSecret {
    /// This unit's label for it.
    pub label: String,
    /// Revision this unit tracks.
    pub tracked: i64,
    /// Latest revision.
    pub latest: i64,
}

/// A secret this unit owns (or its app owns and this unit leads).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnedSecret {
    /// Owner label.
    pub label: String,
    /// Next rotation time (ms), if a policy is set.
    pub next_rotate: Option<i64>,
    /// (revision, expiry time ms).
    pub expiries: Vec<(i64, i64)>,
    /// Revisions that are no longer latest and that no consumer tracks.
    pub obsolete: Vec<i64>,
}

/// Everything the store says about one unit that can cause a hook.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteState {
    /// Unit life.
    pub life: Life,
    /// Whether this unit holds leadership.
    pub leader: bool,
    /// Version of the application's leader settings.
    pub leader_settings_version: u64,
    /// Charm revision (charm row id) the application is on.
    pub charm: i64,
    /// Application config version.
    pub config_version: u64,
    /// Workload containers whose Pebble is ready.
    pub ready_containers: BTreeSet<String>,
    /// Custom notices in those containers' Pebble.
    pub notices: Vec<crate::substrate::PebbleNotice>,
    /// Relations this unit's application takes part in, by id.
    pub relations: BTreeMap<i64, RemoteRelation>,
    /// Secrets this unit consumes, by URI.
    pub consumed_secrets: BTreeMap<String, ConsumedSecret>,
    /// Secrets this unit owns (or leads the owner app of), by URI.
    pub owned_secrets: BTreeMap<String, OwnedSecret>,
    /// Pending action tasks (id, name), oldest first.
    pub pending_actions: Vec<(i64, String)>,
    /// Storage instances of the unit: id → storage name.
    pub storage: BTreeMap<String, String>,
    /// How an error was resolved.
    pub resolved: Resolved,
    /// `update-status-hook-interval`, ms.
    pub update_status_interval: i64,
    /// Current time, ms since the epoch.
    pub now: i64,
}

/// What a unit knows of one relation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LocalRelation {
    /// Local endpoint.
    pub endpoint: String,
    /// Remote app.
    pub remote_app: String,
    /// Joined remote units and the bag version last seen (None: joined, changed pending).
    pub members: BTreeMap<String, Option<u64>>,
    /// Remote app bag version last seen.
    pub app_version: u64,
}

/// A hook that failed and waits for a retry or a resolve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedHook {
    /// The hook.
    pub hook: Hook,
    /// How many times it has failed in a row.
    pub attempts: u32,
    /// When to retry automatically (ms).
    pub retry_at: i64,
}

/// What this unit has been told: persisted with every hook commit.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LocalState {
    /// `install` ran.
    pub installed: bool,
    /// Last known leadership.
    pub leader: bool,
    /// Leader settings version seen (non-leaders).
    pub leader_settings_version: Option<u64>,
    /// Charm revision installed.
    pub charm: i64,
    /// Config version seen.
    pub config_version: u64,
    /// `config-changed` owed after `upgrade-charm`.
    pub config_pending: bool,
    /// `start` ran.
    pub started: bool,
    /// `stop` ran.
    pub stopped: bool,
    /// `remove` ran.
    pub removed: bool,
    /// Containers told pebble-ready.
    pub containers: BTreeSet<String>,
    /// Custom notices told (`<container>/<notice id>` → occurrences).
    pub notices_seen: BTreeMap<String, u32>,
    /// Storage instances told storage-attached (id → name).
    pub storage: BTreeMap<String, String>,
    /// Relations created and not yet broken.
    pub relations: BTreeMap<i64, LocalRelation>,
    /// Relations already broken (never recreated).
    pub broken: BTreeSet<i64>,
    /// Consumed secrets: latest revision already notified by secret-changed.
    pub secrets_notified: BTreeMap<String, i64>,
    /// Owned secrets: `uri/rev` expiry notifications and when they fired.
    pub expire_fired: BTreeMap<String, i64>,
    /// Owned secrets: `uri/rev` remove notifications fired.
    pub remove_fired: BTreeSet<String>,
    /// When update-status last ran (or start), ms.
    pub last_update_status: i64,
    /// The failing hook, while in error.
    pub error: Option<FailedHook>,
}

/// How long before an unanswered `secret-expired` fires again.
pub const EXPIRE_RETRY_MS: i64 = 5 * 60 * 1000;

fn rel(id: i64, r: &RemoteRelation, remote_unit: &str) -> RelationRef {
    RelationRef {
        id,
        endpoint: r.endpoint.clone(),
        remote_app: r.remote_app.clone(),
        remote_unit: remote_unit.into(),
        self_departing: false,
    }
}

fn lrel(id: i64, r: &LocalRelation, remote_unit: &str) -> RelationRef {
    RelationRef {
        id,
        endpoint: r.endpoint.clone(),
        remote_app: r.remote_app.clone(),
        remote_unit: remote_unit.into(),
        self_departing: false,
    }
}

/// Teardown of one local relation: departed for each member, then broken.
/// `self_departing` when this unit is the one leaving (it is dying), not the relation.
fn teardown_relation(
    id: i64,
    l: &LocalRelation,
    peer: bool,
    self_departing: bool,
) -> Option<HookKind> {
    if let Some(u) = l.members.keys().next() {
        return Some(HookKind::RelationDeparted(RelationRef {
            self_departing,
            ..lrel(id, l, u)
        }));
    }
    if peer {
        return None;
    }
    Some(HookKind::RelationBroken(lrel(id, l, "")))
}

/// Pick the next hook this unit must run, or None when it is idle.
pub fn next_hook(remote: &RemoteState, local: &LocalState) -> Option<Hook> {
    next_kind(remote, local).map(Hook::from)
}

fn next_kind(remote: &RemoteState, local: &LocalState) -> Option<HookKind> {
    if local.removed {
        return None;
    }
    if remote.life == Life::Dying {
        if local.installed {
            for (id, l) in &local.relations {
                let peer = remote.relations.get(id).map(|r| r.peer).unwrap_or(false);
                if let Some(h) = teardown_relation(*id, l, peer, true) {
                    return Some(h);
                }
            }
            if local.started && !local.stopped {
                return Some(HookKind::Stop);
            }
        }
        if let Some((id, name)) = local.storage.iter().next() {
            return Some(HookKind::StorageDetaching(StorageRef {
                id: id.clone(),
                name: name.clone(),
            }));
        }
        return Some(HookKind::Remove);
    }
    if let Some(f) = &local.error {
        if remote.resolved == Resolved::Retry || remote.now >= f.retry_at {
            return Some(f.hook.kind.clone());
        }
        return remote
            .pending_actions
            .first()
            .filter(|_| local.installed)
            .map(|(id, name)| HookKind::Action {
                id: *id,
                name: name.clone(),
            });
    }
    // Storage is attached before install (machine charms) and whenever added.
    if let Some((id, name)) = remote
        .storage
        .iter()
        .find(|(id, _)| !local.storage.contains_key(*id))
    {
        return Some(HookKind::StorageAttached(StorageRef {
            id: id.clone(),
            name: name.clone(),
        }));
    }
    if !local.installed {
        return Some(HookKind::Install);
    }
    for (id, r) in &remote.relations {
        if r.life == Life::Alive && !local.relations.contains_key(id) && !local.broken.contains(id)
        {
            return Some(HookKind::RelationCreated(rel(*id, r, "")));
        }
    }
    if remote.leader && !local.leader {
        return Some(HookKind::LeaderElected);
    }
    if !remote.leader
        && (local.leader || local.leader_settings_version != Some(remote.leader_settings_version))
    {
        return Some(HookKind::LeaderSettingsChanged);
    }
    if local.charm != remote.charm {
        return Some(HookKind::UpgradeCharm);
    }
    if local.config_pending || local.config_version != remote.config_version {
        return Some(HookKind::ConfigChanged);
    }
    if !local.started {
        return Some(HookKind::Start);
    }
    if let Some(c) = remote
        .ready_containers
        .iter()
        .find(|c| !local.containers.contains(*c))
    {
        return Some(HookKind::PebbleReady {
            workload: c.clone(),
        });
    }
    if let Some(n) = remote.notices.iter().find(|n| {
        local.containers.contains(&n.container)
            && local.notices_seen.get(&format!("{}/{}", n.container, n.id)) != Some(&n.occurrences)
    }) {
        return Some(HookKind::PebbleCustomNotice {
            workload: n.container.clone(),
            id: n.id.clone(),
            key: n.key.clone(),
        });
    }
    if let Some((id, name)) = remote.pending_actions.first() {
        return Some(HookKind::Action {
            id: *id,
            name: name.clone(),
        });
    }
    for (id, l) in &local.relations {
        let Some(r) = remote.relations.get(id).filter(|r| r.life == Life::Alive) else {
            let peer = remote.relations.get(id).map(|r| r.peer).unwrap_or(false);
            match teardown_relation(*id, l, peer, false) {
                Some(h) => return Some(h),
                None => continue,
            }
        };
        if let Some(u) = l.members.keys().find(|u| !r.members.contains_key(*u)) {
            return Some(HookKind::RelationDeparted(rel(*id, r, u)));
        }
        // After joined, the next hook for that relation is changed for the same unit.
        if let Some((u, _)) = l
            .members
            .iter()
            .find(|(u, seen)| seen.is_none() && r.members.contains_key(*u))
        {
            return Some(HookKind::RelationChanged(rel(*id, r, u)));
        }
        if let Some(u) = r.members.keys().find(|u| !l.members.contains_key(*u)) {
            return Some(HookKind::RelationJoined(rel(*id, r, u)));
        }
        if let Some((u, _)) = l.members.iter().find(|(u, seen)| match seen {
            None => true,
            Some(v) => r.members.get(*u).is_some_and(|rv| rv > v),
        }) {
            return Some(HookKind::RelationChanged(rel(*id, r, u)));
        }
        if r.app_version > l.app_version {
            return Some(HookKind::RelationChanged(rel(*id, r, "")));
        }
    }
    for (uri, s) in &remote.consumed_secrets {
        let seen = local
            .secrets_notified
            .get(uri)
            .copied()
            .unwrap_or(0)
            .max(s.tracked);
        if s.latest > seen {
            return Some(HookKind::SecretChanged(SecretRef {
                uri: uri.clone(),
                label: s.label.clone(),
                revision: 0,
            }));
        }
    }
    for (uri, s) in &remote.owned_secrets {
        if s.next_rotate.is_some_and(|t| t <= remote.now) {
            return Some(HookKind::SecretRotate(SecretRef {
                uri: uri.clone(),
                label: s.label.clone(),
                revision: 0,
            }));
        }
        for (rev, at) in &s.expiries {
            let key = format!("{uri}/{rev}");
            let due = match local.expire_fired.get(&key) {
                None => *at <= remote.now,
                Some(fired) => fired + EXPIRE_RETRY_MS <= remote.now,
            };
            if due {
                return Some(HookKind::SecretExpired(SecretRef {
                    uri: uri.clone(),
                    label: s.label.clone(),
                    revision: *rev,
                }));
            }
        }
        for rev in &s.obsolete {
            if !local.remove_fired.contains(&format!("{uri}/{rev}")) {
                return Some(HookKind::SecretRemove(SecretRef {
                    uri: uri.clone(),
                    label: s.label.clone(),
                    revision: *rev,
                }));
            }
        }
    }
    if remote.update_status_interval > 0
        && remote.now >= local.last_update_status + remote.update_status_interval
    {
        return Some(HookKind::UpdateStatus);
    }
    None
}

/// When, at the latest, the uniter must look again even if nothing changes
/// (retry, rotation, expiry, update-status), ms.
pub fn next_wakeup(remote: &RemoteState, local: &LocalState) -> Option<i64> {
    let mut t: Vec<i64> = Vec::new();
    if let Some(f) = &local.error {
        t.push(f.retry_at);
    } else if local.started && remote.life == Life::Alive && remote.update_status_interval > 0 {
        t.push(local.last_update_status + remote.update_status_interval);
    }
    for (uri, s) in &remote.owned_secrets {
        t.extend(s.next_rotate);
        for (rev, at) in &s.expiries {
            match local.expire_fired.get(&format!("{uri}/{rev}")) {
                None => t.push(*at),
                Some(f) => t.push(f + EXPIRE_RETRY_MS),
            }
        }
    }
    t.into_iter().min()
}

/// The local state once `hook` has committed successfully.
pub fn advance(local: &LocalState, hook: &Hook, remote: &RemoteState) -> LocalState {
    let mut l = local.clone();
    l.error = None;
    match &hook.kind {
        HookKind::Install => {
            l.installed = true;
            l.charm = remote.charm;
        }
        HookKind::LeaderElected => l.leader = true,
        HookKind::LeaderSettingsChanged => {
            l.leader = false;
            l.leader_settings_version = Some(remote.leader_settings_version);
        }
        HookKind::UpgradeCharm => {
            l.charm = remote.charm;
            l.config_pending = true;
        }
        HookKind::ConfigChanged => {
            l.config_version = remote.config_version;
            l.config_pending = false;
        }
        HookKind::Start => {
            l.started = true;
            l.last_update_status = remote.now;
        }
        HookKind::UpdateStatus => l.last_update_status = remote.now,
        HookKind::Stop => l.stopped = true,
        HookKind::Remove => l.removed = true,
        HookKind::PebbleReady { workload } => {
            l.containers.insert(workload.clone());
            // Notices that existed before pebble-ready are not events of their own.
            for n in remote.notices.iter().filter(|n| &n.container == workload) {
                l.notices_seen
                    .insert(format!("{}/{}", n.container, n.id), n.occurrences);
            }
        }
        HookKind::PebbleCustomNotice { workload, id, .. } => {
            let occurrences = remote
                .notices
                .iter()
                .find(|n| &n.container == workload && &n.id == id)
                .map_or(0, |n| n.occurrences);
            l.notices_seen
                .insert(format!("{workload}/{id}"), occurrences);
        }
        HookKind::RelationCreated(r) => {
            l.relations.insert(
                r.id,
                LocalRelation {
                    endpoint: r.endpoint.clone(),
                    remote_app: r.remote_app.clone(),
                    ..Default::default()
                },
            );
        }
        HookKind::RelationJoined(r) => {
            if let Some(lr) = l.relations.get_mut(&r.id) {
                lr.members.insert(r.remote_unit.clone(), None);
            }
        }
        HookKind::RelationChanged(r) => {
            if let Some(lr) = l.relations.get_mut(&r.id) {
                let rr = remote.relations.get(&r.id);
                if !r.remote_unit.is_empty() {
                    let v = rr
                        .and_then(|rr| rr.members.get(&r.remote_unit))
                        .copied()
                        .unwrap_or(0);
                    lr.members.insert(r.remote_unit.clone(), Some(v));
                }
                // A unit's changed hook sees all current data, app bag included.
                lr.app_version = rr
                    .map(|rr| rr.app_version)
                    .unwrap_or(lr.app_version)
                    .max(lr.app_version);
            }
        }
        HookKind::RelationDeparted(r) => {
            if let Some(lr) = l.relations.get_mut(&r.id) {
                lr.members.remove(&r.remote_unit);
            }
        }
        HookKind::RelationBroken(r) => {
            l.relations.remove(&r.id);
            l.broken.insert(r.id);
        }
        HookKind::SecretChanged(s) => {
            let latest = remote
                .consumed_secrets
                .get(&s.uri)
                .map(|c| c.latest)
                .unwrap_or(0);
            l.secrets_notified.insert(s.uri.clone(), latest);
        }
        HookKind::SecretRotate(_) => {}
        HookKind::SecretExpired(s) => {
            l.expire_fired
                .insert(format!("{}/{}", s.uri, s.revision), remote.now);
        }
        HookKind::SecretRemove(s) => {
            l.remove_fired.insert(format!("{}/{}", s.uri, s.revision));
        }
        HookKind::StorageAttached(st) => {
            l.storage.insert(st.id.clone(), st.name.clone());
        }
        HookKind::StorageDetaching(st) => {
            l.storage.remove(&st.id);
        }
        HookKind::Action { .. } => {}
    }
    // While dying, peer relations end silently once their members departed.
    if remote.life == Life::Dying {
        l.relations.retain(|id, lr| {
            !(remote.relations.get(id).is_some_and(|r| r.peer) && lr.members.is_empty())
        });
    }
    l
}

/// Retry delay after `attempts` consecutive failures: base, doubling, capped at 5 minutes.
pub fn retry_delay(base_ms: i64, attempts: u32) -> i64 {
    let cap = 5 * 60 * 1000;
    let shift = attempts.saturating_sub(1).min(20);
    (base_ms.saturating_mul(1i64 << shift)).min(cap.max(base_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settle(remote: &RemoteState, mut local: LocalState) -> (Vec<String>, LocalState) {
        let mut names = Vec::new();
        for _ in 0..100 {
            match next_hook(remote, &local) {
                Some(h) => {
                    let label = match h.relation() {
                        Some(r) if !r.remote_unit.is_empty() => {
                            format!("{}:{}", h.name(), r.remote_unit)
                        }
                        _ => h.name(),
                    };
                    names.push(label);
                    local = advance(&local, &h, remote);
                }
                None => return (names, local),
            }
        }
        panic!("did not settle: {names:?}");
    }

    fn base() -> RemoteState {
        RemoteState {
            charm: 1,
            config_version: 1,
            leader_settings_version: 0,
            now: 1000,
            update_status_interval: 300_000,
            ..Default::default()
        }
    }

    #[test]
    fn deploy_order_for_leader_and_follower() {
        let mut r = base();
        r.leader = true;
        let (names, l) = settle(&r, LocalState::default());
        assert_eq!(
            names,
            ["install", "leader-elected", "config-changed", "start"]
        );
        assert!(l.started);
        r.leader = false;
        let (names, _) = settle(&base(), LocalState::default());
        assert_eq!(
            names,
            [
                "install",
                "leader-settings-changed",
                "config-changed",
                "start"
            ]
        );
        let _ = r;
    }

    #[test]
    fn peers_and_containers_at_deploy() {
        let mut r = base();
        r.leader = true;
        r.ready_containers.insert("web".into());
        r.relations.insert(
            0,
            RemoteRelation {
                endpoint: "cluster".into(),
                remote_app: "a".into(),
                peer: true,
                ..Default::default()
            },
        );
        let (names, _) = settle(&r, LocalState::default());
        assert_eq!(
            names,
            [
                "install",
                "cluster-relation-created",
                "leader-elected",
                "config-changed",
                "start",
                "web-pebble-ready"
            ]
        );
    }

    #[test]
    fn custom_notices_fire_once_per_occurrence_after_pebble_ready() {
        let mut r = base();
        r.ready_containers.insert("postgresql".into());
        let notice = |occurrences| crate::substrate::PebbleNotice {
            container: "postgresql".into(),
            id: "7".into(),
            key: "ward.io/postgresql/role-change".into(),
            occurrences,
        };
        // A notice that was there before pebble-ready is not an event of its own.
        r.notices = vec![notice(1)];
        let (names, l) = settle(&r, LocalState::default());
        assert_eq!(
            names.last().map(String::as_str),
            Some("postgresql-pebble-ready")
        );
        assert!(!names.iter().any(|n| n.contains("custom-notice")));
        // A new occurrence fires once, with Juju's environment.
        r.notices = vec![notice(2)];
        let hook = next_hook(&r, &l).expect("a hook");
        assert_eq!(hook.name(), "postgresql-pebble-custom-notice");
        let env: BTreeMap<String, String> = hook.env("postgresql/0").into_iter().collect();
        assert_eq!(env["JUJU_NOTICE_ID"], "7");
        assert_eq!(env["JUJU_NOTICE_TYPE"], "custom");
        assert_eq!(env["JUJU_NOTICE_KEY"], "ward.io/postgresql/role-change");
        assert_eq!(env["JUJU_WORKLOAD_NAME"], "postgresql");
        let (names, l) = settle(&r, l);
        assert_eq!(names, ["postgresql-pebble-custom-notice"]);
        assert_eq!(settle(&r, l).0, Vec::<String>::new());
    }

    #[test]
    fn relation_lifecycle() {
        let r0 = base();
        let (_, l) = settle(&r0, LocalState::default());
        let mut r = r0.clone();
        let mut rr = RemoteRelation {
            endpoint: "db".into(),
            remote_app: "pg".into(),
            ..Default::default()
        };
        r.relations.insert(4, rr.clone());
        let (names, l) = settle(&r, l);
        assert_eq!(names, ["db-relation-created"]);
        rr.members.insert("pg/0".into(), 1);
        rr.members.insert("pg/1".into(), 1);
        r.relations.insert(4, rr.clone());
        let (names, l) = settle(&r, l);
        assert_eq!(
            names,
            [
                "db-relation-joined:pg/0",
                "db-relation-changed:pg/0",
                "db-relation-joined:pg/1",
                "db-relation-changed:pg/1"
            ]
        );
        rr.members.insert("pg/1".into(), 2);
        rr.app_version = 3;
        r.relations.insert(4, rr.clone());
        let (names, l) = settle(&r, l);
        assert_eq!(
            names,
            ["db-relation-changed:pg/1"],
            "app change folded into the unit change"
        );
        rr.app_version = 4;
        r.relations.insert(4, rr.clone());
        let (names, l) = settle(&r, l);
        assert_eq!(names, ["db-relation-changed"]);
        rr.life = Life::Dying;
        r.relations.insert(4, rr.clone());
        let (names, l) = settle(&r, l);
        assert_eq!(
            names,
            [
                "db-relation-departed:pg/0",
                "db-relation-departed:pg/1",
                "db-relation-broken"
            ]
        );
        r.relations.clear();
        assert_eq!(settle(&r, l).0, Vec::<String>::new());
    }

    #[test]
    fn relation_removed_entirely_still_breaks() {
        let mut r = base();
        let mut rr = RemoteRelation {
            endpoint: "db".into(),
            remote_app: "pg".into(),
            ..Default::default()
        };
        rr.members.insert("pg/0".into(), 1);
        r.relations.insert(1, rr);
        let (_, l) = settle(&r, LocalState::default());
        r.relations.clear();
        assert_eq!(
            settle(&r, l).0,
            ["db-relation-departed:pg/0", "db-relation-broken"]
        );
    }

    #[test]
    fn upgrade_then_config_changed_and_leadership_changes() {
        let mut r = base();
        r.leader = true;
        let (_, l) = settle(&r, LocalState::default());
        r.charm = 2;
        let (names, l) = settle(&r, l);
        assert_eq!(names, ["upgrade-charm", "config-changed"]);
        r.config_version = 2;
        let (names, l) = settle(&r, l);
        assert_eq!(names, ["config-changed"]);
        r.leader = false;
        r.leader_settings_version = 5;
        let (names, l) = settle(&r, l);
        assert_eq!(names, ["leader-settings-changed"]);
        r.leader = true;
        assert_eq!(settle(&r, l).0, ["leader-elected"]);
    }

    #[test]
    fn teardown_order() {
        let mut r = base();
        let mut rr = RemoteRelation {
            endpoint: "db".into(),
            remote_app: "pg".into(),
            ..Default::default()
        };
        rr.members.insert("pg/0".into(), 1);
        r.relations.insert(1, rr);
        r.relations.insert(
            2,
            RemoteRelation {
                endpoint: "peers".into(),
                remote_app: "a".into(),
                peer: true,
                ..Default::default()
            },
        );
        r.relations
            .get_mut(&2)
            .unwrap()
            .members
            .insert("a/1".into(), 1);
        let (_, l) = settle(&r, LocalState::default());
        r.life = Life::Dying;
        let (names, l) = settle(&r, l);
        assert_eq!(
            names,
            [
                "db-relation-departed:pg/0",
                "db-relation-broken",
                "peers-relation-departed:a/1",
                "stop",
                "remove"
            ]
        );
        assert!(l.removed);
        let mut never = base();
        never.life = Life::Dying;
        assert_eq!(settle(&never, LocalState::default()).0, ["remove"]);
    }

    #[test]
    fn a_dying_unit_is_the_departing_unit_of_its_departed_hooks() {
        let mut r = base();
        let mut rr = RemoteRelation {
            endpoint: "peers".into(),
            remote_app: "a".into(),
            peer: true,
            ..Default::default()
        };
        rr.members.insert("a/1".into(), 1);
        r.relations.insert(2, rr.clone());
        let (_, l) = settle(&r, LocalState::default());

        // The other unit leaves: it is the departing one.
        let mut gone = r.clone();
        gone.relations.get_mut(&2).unwrap().members.clear();
        let h = next_hook(&gone, &l).unwrap();
        assert_eq!(h.name(), "peers-relation-departed");
        assert!(h
            .env("a/0")
            .contains(&("JUJU_DEPARTING_UNIT".into(), "a/1".into())));

        // This unit is removed: it departs a/1's scope itself, so it is the departing one
        // (charms tell their own removal from a peer leaving this way).
        let mut dying = r.clone();
        dying.life = Life::Dying;
        let h = next_hook(&dying, &l).unwrap();
        assert_eq!(h.name(), "peers-relation-departed");
        let env = h.env("a/0");
        assert!(env.contains(&("JUJU_REMOTE_UNIT".into(), "a/1".into())));
        assert!(env.contains(&("JUJU_DEPARTING_UNIT".into(), "a/0".into())));
    }

    #[test]
    fn failed_hook_waits_for_retry_or_resolve_and_actions_still_run() {
        let r = base();
        let l = LocalState {
            error: Some(FailedHook {
                hook: HookKind::Install.into(),
                attempts: 1,
                retry_at: 5000,
            }),
            ..Default::default()
        };
        assert_eq!(next_hook(&r, &l), None);
        let mut r2 = r.clone();
        r2.now = 5000;
        assert_eq!(next_hook(&r2, &l).unwrap().name(), "install");
        let mut r3 = r.clone();
        r3.resolved = Resolved::Retry;
        assert_eq!(next_hook(&r3, &l).unwrap().name(), "install");
        assert_eq!(next_wakeup(&r, &l), Some(5000));
        let (_, mut l) = settle(&r, LocalState::default());
        l.error = Some(FailedHook {
            hook: HookKind::ConfigChanged.into(),
            attempts: 1,
            retry_at: 5000,
        });
        let mut ra = r.clone();
        ra.pending_actions.push((3, "go".into()));
        assert_eq!(next_hook(&ra, &l).unwrap().name(), "go");
    }

    #[test]
    fn secrets_for_consumers_and_owners() {
        let mut r = base();
        let (_, l) = settle(&r, LocalState::default());
        r.consumed_secrets.insert(
            "secret:a".into(),
            ConsumedSecret {
                label: "x".into(),
                tracked: 1,
                latest: 1,
            },
        );
        let (names, l) = settle(&r, l);
        assert!(names.is_empty());
        r.consumed_secrets.get_mut("secret:a").unwrap().latest = 2;
        let (names, l) = settle(&r, l);
        assert_eq!(names, ["secret-changed"]);
        r.owned_secrets.insert(
            "secret:b".into(),
            OwnedSecret {
                label: String::new(),
                next_rotate: None,
                expiries: vec![(1, 900)],
                obsolete: vec![1],
            },
        );
        let (names, l) = settle(&r, l);
        assert_eq!(names, ["secret-expired", "secret-remove"]);
        let mut later = r.clone();
        later.now += EXPIRE_RETRY_MS;
        assert_eq!(next_hook(&later, &l).unwrap().name(), "secret-expired");
        r.owned_secrets.get_mut("secret:b").unwrap().next_rotate = Some(500);
        assert_eq!(next_hook(&r, &l).unwrap().name(), "secret-rotate");
    }

    #[test]
    fn storage_attached_before_install_and_detaching_after_stop() {
        let mut r = base();
        r.storage.insert("data/0".into(), "data".into());
        let (names, l) = settle(&r, LocalState::default());
        assert_eq!(&names[..2], ["data-storage-attached", "install"]);
        r.life = Life::Dying;
        let (names, _) = settle(&r, l);
        assert_eq!(names, ["stop", "data-storage-detaching", "remove"]);
    }

    #[test]
    fn update_status_on_interval() {
        let mut r = base();
        let (_, l) = settle(&r, LocalState::default());
        assert_eq!(next_wakeup(&r, &l), Some(1000 + 300_000));
        r.now += 300_000;
        assert_eq!(settle(&r, l).0, ["update-status"]);
    }

    #[test]
    fn retry_backoff_doubles_to_five_minutes() {
        assert_eq!(retry_delay(5000, 1), 5000);
        assert_eq!(retry_delay(5000, 2), 10000);
        assert_eq!(retry_delay(5000, 30), 300_000);
    }
}
