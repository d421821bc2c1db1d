//! One hook context per running hook: identity, the hook being run, and the
//! changes tools buffered. [`HookContext::commit`] applies them in the hook's
//! commit transaction, only when the hook exited 0.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use rusqlite::{params, Connection};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::charmdir::CharmMeta;
use crate::hook::Hook;
use crate::store::{self, PortRange, Store, StoreError};

/// A secret created or updated by this hook (fields None are unchanged).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SecretChange {
    /// For a new secret: (owner kind, owner).
    pub create: Option<(String, String)>,
    pub label: Option<String>,
    pub description: Option<String>,
    pub expire: Option<i64>,
    pub rotate: Option<String>,
    /// New content (values base64).
    pub content: Option<BTreeMap<String, String>>,
}

/// The action a context runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct ActionState {
    pub id: i64,
    pub params: Value,
    pub results: serde_json::Map<String, Value>,
    pub failed: Option<String>,
}

/// A hook's context.
#[derive(Debug)]
pub(crate) struct HookContext {
    pub id: String,
    pub unit: String,
    pub app: String,
    pub address: String,
    pub model_uuid: String,
    pub model_name: String,
    pub hook: Hook,
    pub charm: CharmMeta,
    pub log_path: PathBuf,
    pub relation_writes: BTreeMap<(i64, String), BTreeMap<String, String>>,
    pub state_writes: BTreeMap<String, Option<String>>,
    pub secret_changes: BTreeMap<String, SecretChange>,
    pub grant_ops: Vec<(String, i64, String, bool)>,
    pub remove_ops: Vec<(String, Option<i64>)>,
    pub port_ops: Vec<(PortRange, bool)>,
    pub action: Option<ActionState>,
    /// leader-set changed the leader settings during this hook.
    pub leader_settings_written: bool,
    /// secret-get changed what this unit tracks (applied at once).
    pub secret_tracking_changed: bool,
    /// Remote units this unit knows in each relation, for relation-list.
    pub known_members: BTreeMap<i64, std::collections::BTreeSet<String>>,
    /// The unit's storage instances: id → (kind, location).
    pub storage: BTreeMap<String, (String, String)>,
}

impl HookContext {
    /// Append a line to the unit's log.
    pub fn log(&self, level: &str, module: &str, msg: &str) {
        let line = format!(
            "unit-{} {} {} {}: {}\n",
            self.unit.replace('/', "-"),
            humantime::format_rfc3339_millis(std::time::SystemTime::now()),
            level,
            module,
            msg
        );
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }

    /// Apply buffered changes. Returns the new versions of this app's own bags
    /// written in peer relations (so this unit is not told about its own write).
    pub fn commit(
        &self,
        tx: &Connection,
        store: &Store,
        now: i64,
    ) -> Result<Vec<(i64, u64)>, StoreError> {
        let mut own_app = Vec::new();
        for ((rel, owner), changes) in &self.relation_writes {
            if store::relation(tx, *rel)?.is_none() {
                continue;
            }
            let is_app = !owner.contains('/');
            let v = store::update_bag(tx, *rel, owner, is_app, changes)?;
            if is_app {
                own_app.push((*rel, v));
            }
        }
        for (k, v) in &self.state_writes {
            store::set_unit_state(tx, &self.unit, k, v.as_deref())?;
        }
        for (id, ch) in &self.secret_changes {
            commit_secret(tx, store, id, ch, now)?;
        }
        for (id, rel, target, grant) in &self.grant_ops {
            if *grant {
                tx.execute("INSERT OR IGNORE INTO secret_grant (secret_id, relation_id, target) VALUES (?1, ?2, ?3)", params![id, rel, target])?;
            } else {
                tx.execute(
                    "DELETE FROM secret_grant WHERE secret_id=?1 AND relation_id=?2 AND target=?3",
                    params![id, rel, target],
                )?;
                // Consumers that lost access stop tracking.
                tx.execute(
                    "DELETE FROM secret_consumer WHERE secret_id=?1 AND (unit=?2 OR unit LIKE ?2 || '/%')",
                    params![id, target],
                )?;
            }
        }
        for (id, rev) in &self.remove_ops {
            match rev {
                None => {
                    tx.execute("DELETE FROM secret WHERE id=?1", params![id])?;
                }
                Some(r) => {
                    tx.execute(
                        "DELETE FROM secret_revision WHERE secret_id=?1 AND revision=?2",
                        params![id, r],
                    )?;
                    let left: i64 = tx.query_row(
                        "SELECT COUNT(*) FROM secret_revision WHERE secret_id=?1",
                        params![id],
                        |r| r.get(0),
                    )?;
                    if left == 0 {
                        tx.execute("DELETE FROM secret WHERE id=?1", params![id])?;
                    }
                }
            }
        }
        for (p, open) in &self.port_ops {
            store::set_port(tx, &self.unit, p, *open)?;
        }
        Ok(own_app)
    }
}

/// Checksum of secret content, as Juju compares revisions.
pub(crate) fn content_checksum(content: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in content {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    format!("{:x}", h.finalize())
}

fn commit_secret(
    tx: &Connection,
    store: &Store,
    id: &str,
    ch: &SecretChange,
    now: i64,
) -> Result<(), StoreError> {
    if let Some((kind, owner)) = &ch.create {
        let next_rotate = ch
            .rotate
            .as_deref()
            .and_then(store::rotate_interval_ms)
            .map(|i| now + i);
        tx.execute(
            "INSERT INTO secret (id, owner_kind, owner, label, description, rotate_policy, next_rotate, latest_revision, created, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?8)",
            params![id, kind, owner, ch.label, ch.description, ch.rotate.clone().unwrap_or_else(|| "never".into()), next_rotate, now],
        )?;
    } else {
        if store::secret(tx, id)?.is_none() {
            return Ok(());
        }
        if let Some(l) = &ch.label {
            tx.execute(
                "UPDATE secret SET label=?2, updated=?3 WHERE id=?1",
                params![id, l, now],
            )?;
        }
        if let Some(d) = &ch.description {
            tx.execute(
                "UPDATE secret SET description=?2, updated=?3 WHERE id=?1",
                params![id, d, now],
            )?;
        }
        if let Some(r) = &ch.rotate {
            let next = store::rotate_interval_ms(r).map(|i| now + i);
            tx.execute(
                "UPDATE secret SET rotate_policy=?2, next_rotate=?3, updated=?4 WHERE id=?1",
                params![id, r, next, now],
            )?;
        }
    }
    let s = store::secret(tx, id)?.ok_or_else(|| StoreError::NotFound(format!("secret {id}")))?;
    if let Some(content) = &ch.content {
        let sum = content_checksum(content);
        let latest_sum: Option<String> = tx
            .query_row(
                "SELECT checksum FROM secret_revision WHERE secret_id=?1 AND revision=?2",
                params![id, s.latest_revision],
                |r| r.get(0),
            )
            .ok();
        if latest_sum.as_deref() != Some(sum.as_str()) {
            let rev = s.latest_revision + 1;
            let (nonce, ct) = store.seal(&serde_json::to_vec(content)?)?;
            tx.execute(
                "INSERT INTO secret_revision (secret_id, revision, nonce, content, checksum, expire, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![id, rev, nonce, ct, sum, ch.expire, now],
            )?;
            tx.execute(
                "UPDATE secret SET latest_revision=?2, updated=?3 WHERE id=?1",
                params![id, rev, now],
            )?;
            // The owner's units track the latest revision they wrote.
            return Ok(());
        }
    }
    if let Some(e) = ch.expire {
        tx.execute(
            "UPDATE secret_revision SET expire=?3 WHERE secret_id=?1 AND revision=?2",
            params![id, s.latest_revision, e],
        )?;
    }
    Ok(())
}
