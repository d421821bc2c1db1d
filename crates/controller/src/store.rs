//! The state store: SQLite (WAL, foreign keys, versioned migrations) holding
//! models, charms, applications, units, relations and their data, secrets
//! (content AES-256-GCM encrypted at rest), leadership, config, actions,
//! per-unit stored state, statuses with history, and each uniter's state.
//!
//! Functions over `&Connection` compose into one transaction (a hook's commit
//! is a single `Store::write`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::charmdir::{CharmMeta, Role};
use crate::uniter::state::{
    ConsumedSecret, Life, LocalState, OwnedSecret, RemoteRelation, RemoteState, Resolved,
};

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("state store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file under WARD_HOME could not be used.
    #[error("state store file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Encryption or decryption of secret content failed.
    #[error("secret content encryption: {0}")]
    Crypto(String),
    /// A named entity does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A request that conflicts with current state.
    #[error("{0}")]
    Invalid(String),
    /// A stored JSON value could not be decoded.
    #[error("decoding stored value: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE model (uuid TEXT PRIMARY KEY, name TEXT NOT NULL, config TEXT NOT NULL DEFAULT '{}',
    unit_seq INTEGER NOT NULL DEFAULT 0, relation_seq INTEGER NOT NULL DEFAULT 0);
CREATE TABLE charm (id INTEGER PRIMARY KEY, name TEXT NOT NULL, revision INTEGER NOT NULL,
    sha256 TEXT NOT NULL, path TEXT NOT NULL, meta TEXT NOT NULL, UNIQUE(name, revision));
CREATE TABLE application (name TEXT PRIMARY KEY, charm_id INTEGER NOT NULL REFERENCES charm(id),
    config TEXT NOT NULL DEFAULT '{}', config_version INTEGER NOT NULL DEFAULT 1,
    life TEXT NOT NULL DEFAULT 'alive', next_unit INTEGER NOT NULL DEFAULT 0,
    workload_version TEXT NOT NULL DEFAULT '', leader_settings TEXT NOT NULL DEFAULT '{}',
    leader_settings_version INTEGER NOT NULL DEFAULT 0);
CREATE TABLE unit (name TEXT PRIMARY KEY, app TEXT NOT NULL REFERENCES application(name) ON DELETE CASCADE,
    number INTEGER NOT NULL, life TEXT NOT NULL DEFAULT 'alive', address TEXT NOT NULL,
    resolved TEXT NOT NULL DEFAULT '');
CREATE INDEX unit_app ON unit(app);
CREATE TABLE leadership (app TEXT PRIMARY KEY REFERENCES application(name) ON DELETE CASCADE,
    unit TEXT NOT NULL, since INTEGER NOT NULL);
CREATE TABLE relation (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, life TEXT NOT NULL DEFAULT 'alive');
CREATE TABLE relation_endpoint (relation_id INTEGER NOT NULL REFERENCES relation(id) ON DELETE CASCADE,
    app TEXT NOT NULL, endpoint TEXT NOT NULL, role TEXT NOT NULL, interface TEXT NOT NULL,
    PRIMARY KEY (relation_id, app));
CREATE INDEX relation_endpoint_app ON relation_endpoint(app);
CREATE TABLE relation_member (relation_id INTEGER NOT NULL REFERENCES relation(id) ON DELETE CASCADE,
    unit TEXT NOT NULL REFERENCES unit(name) ON DELETE CASCADE, PRIMARY KEY (relation_id, unit));
CREATE TABLE relation_bag (relation_id INTEGER NOT NULL REFERENCES relation(id) ON DELETE CASCADE,
    owner TEXT NOT NULL, is_app INTEGER NOT NULL, settings TEXT NOT NULL DEFAULT '{}',
    version INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (relation_id, owner));
CREATE TABLE secret (id TEXT PRIMARY KEY, owner_kind TEXT NOT NULL, owner TEXT NOT NULL, label TEXT,
    description TEXT, rotate_policy TEXT NOT NULL DEFAULT 'never', next_rotate INTEGER,
    latest_revision INTEGER NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL);
CREATE UNIQUE INDEX secret_owner_label ON secret(owner, label) WHERE label IS NOT NULL;
CREATE TABLE secret_revision (secret_id TEXT NOT NULL REFERENCES secret(id) ON DELETE CASCADE,
    revision INTEGER NOT NULL, nonce BLOB NOT NULL, content BLOB NOT NULL, checksum TEXT NOT NULL,
    expire INTEGER, created INTEGER NOT NULL, PRIMARY KEY (secret_id, revision));
CREATE TABLE secret_consumer (secret_id TEXT NOT NULL REFERENCES secret(id) ON DELETE CASCADE,
    unit TEXT NOT NULL REFERENCES unit(name) ON DELETE CASCADE, label TEXT,
    tracked_revision INTEGER NOT NULL, PRIMARY KEY (secret_id, unit));
CREATE UNIQUE INDEX secret_consumer_label ON secret_consumer(unit, label) WHERE label IS NOT NULL;
CREATE TABLE secret_grant (secret_id TEXT NOT NULL REFERENCES secret(id) ON DELETE CASCADE,
    relation_id INTEGER NOT NULL REFERENCES relation(id) ON DELETE CASCADE, target TEXT NOT NULL,
    PRIMARY KEY (secret_id, relation_id, target));
CREATE TABLE operation (id INTEGER PRIMARY KEY, summary TEXT NOT NULL, enqueued INTEGER NOT NULL);
CREATE TABLE task (id INTEGER PRIMARY KEY, operation_id INTEGER NOT NULL REFERENCES operation(id) ON DELETE CASCADE,
    unit TEXT NOT NULL, name TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '', results TEXT NOT NULL DEFAULT '{}', log TEXT NOT NULL DEFAULT '[]',
    enqueued INTEGER NOT NULL, started INTEGER, completed INTEGER);
CREATE INDEX task_unit_status ON task(unit, status);
CREATE TABLE unit_state (unit TEXT NOT NULL REFERENCES unit(name) ON DELETE CASCADE, key TEXT NOT NULL,
    value TEXT NOT NULL, PRIMARY KEY (unit, key));
CREATE TABLE status (entity TEXT PRIMARY KEY, status TEXT NOT NULL, message TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}', since INTEGER NOT NULL);
CREATE TABLE status_history (id INTEGER PRIMARY KEY, entity TEXT NOT NULL, status TEXT NOT NULL,
    message TEXT NOT NULL, data TEXT NOT NULL, since INTEGER NOT NULL);
CREATE INDEX status_history_entity ON status_history(entity);
CREATE TABLE uniter_state (unit TEXT PRIMARY KEY REFERENCES unit(name) ON DELETE CASCADE, state TEXT NOT NULL);
CREATE TABLE port (unit TEXT NOT NULL REFERENCES unit(name) ON DELETE CASCADE, endpoint TEXT NOT NULL,
    protocol TEXT NOT NULL, from_port INTEGER NOT NULL, to_port INTEGER NOT NULL,
    PRIMARY KEY (unit, endpoint, protocol, from_port, to_port));
"#,
    r#"
CREATE TABLE storage_instance (id TEXT PRIMARY KEY, unit TEXT NOT NULL REFERENCES unit(name) ON DELETE CASCADE,
    name TEXT NOT NULL, kind TEXT NOT NULL);
CREATE INDEX storage_instance_unit ON storage_instance(unit);
ALTER TABLE model ADD COLUMN storage_seq INTEGER NOT NULL DEFAULT 0;
"#,
];

/// The SQLite store plus the key that encrypts secret content.
pub struct Store {
    conn: Mutex<Connection>,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.into(),
        source,
    }
}

fn load_or_create_key(path: &Path) -> Result<[u8; 32]> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::read(path) {
        Ok(k) if k.len() == 32 => {
            let mut key = [0u8; 32];
            key.copy_from_slice(&k);
            return Ok(key);
        }
        Ok(_) => {
            return Err(StoreError::Crypto(format!(
                "key file {} is not 32 bytes",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path)(e)),
    }
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(&key).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    Ok(key)
}

impl Store {
    /// Open (creating and migrating) `state.db` and `secrets.key` under `home`.
    pub fn open(home: &Path) -> Result<Store> {
        std::fs::create_dir_all(home).map_err(io_err(home))?;
        let key = load_or_create_key(&home.join("secrets.key"))?;
        let conn = Connection::open(home.join("state.db"))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;",
        )?;
        // Every statement the controller runs is prepared once and reused: parsing
        // SQL was a visible part of a hook's round trip.
        conn.set_prepared_statement_cache_capacity(256);
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(m)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
            tx.commit()?;
        }
        let cipher =
            Aes256Gcm::new_from_slice(&key).map_err(|e| StoreError::Crypto(e.to_string()))?;
        Ok(Store {
            conn: Mutex::new(conn),
            cipher,
        })
    }

    /// Run `f` on the connection.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&c)
    }

    /// Run `f` in one transaction; commit if it returns Ok.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = c.transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Encrypt secret content.
    pub(crate) fn seal(&self, plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain)
            .map_err(|e| StoreError::Crypto(e.to_string()))?;
        Ok((nonce.to_vec(), ct))
    }

    /// Decrypt secret content.
    pub(crate) fn open_sealed(&self, nonce: &[u8], ct: &[u8]) -> Result<Vec<u8>> {
        if nonce.len() != 12 {
            return Err(StoreError::Crypto("bad nonce".into()));
        }
        self.cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|e| StoreError::Crypto(e.to_string()))
    }

    /// Decrypt and decode one secret revision's content (base64 values).
    pub(crate) fn secret_content(
        &self,
        c: &Connection,
        id: &str,
        rev: i64,
    ) -> Result<BTreeMap<String, String>> {
        let (nonce, ct): (Vec<u8>, Vec<u8>) = c
            .prepare_cached(
                "SELECT nonce, content FROM secret_revision WHERE secret_id=?1 AND revision=?2",
            )?
            .query_row(params![id, rev], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("secret \"{id}\" revision {rev}")))?;
        Ok(serde_json::from_slice(&self.open_sealed(&nonce, &ct)?)?)
    }
}

fn life_of(s: &str) -> Life {
    if s == "alive" {
        Life::Alive
    } else {
        Life::Dying
    }
}

// ---------------------------------------------------------------- model

/// Ensure the single model exists; returns (uuid, name).
pub(crate) fn ensure_model(tx: &Connection, name: &str) -> Result<(String, String)> {
    if let Some(m) = tx
        .prepare_cached("SELECT uuid, name FROM model")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
    {
        return Ok(m);
    }
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
    tx.prepare_cached("INSERT INTO model (uuid, name) VALUES (?1, ?2)")?
        .execute(params![uuid, name])?;
    Ok((uuid, name.to_string()))
}

/// Model config as a map.
pub(crate) fn model_config(c: &Connection) -> Result<BTreeMap<String, Value>> {
    let s: String = c
        .prepare_cached("SELECT config FROM model")?
        .query_row([], |r| r.get(0))?;
    Ok(serde_json::from_str(&s)?)
}

/// Set one model config key.
pub(crate) fn set_model_config(tx: &Connection, key: &str, value: Value) -> Result<()> {
    let mut cfg = model_config(tx)?;
    cfg.insert(key.into(), value);
    tx.prepare_cached("UPDATE model SET config=?1")?
        .execute(params![serde_json::to_string(&cfg)?])?;
    Ok(())
}

// ---------------------------------------------------------------- charms and applications

/// Record a charm revision (reused when the same content is already stored).
pub(crate) fn add_charm(
    tx: &Connection,
    meta: &CharmMeta,
    sha256: &str,
    path: &Path,
) -> Result<i64> {
    if let Some(id) = tx
        .prepare_cached("SELECT id FROM charm WHERE name=?1 AND sha256=?2 AND path=?3")?
        .query_row(params![meta.name, sha256, path.to_string_lossy()], |r| {
            r.get(0)
        })
        .optional()?
    {
        return Ok(id);
    }
    let rev: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(revision), 0) + 1 FROM charm WHERE name=?1")?
        .query_row(params![meta.name], |r| r.get(0))?;
    tx.prepare_cached(
        "INSERT INTO charm (name, revision, sha256, path, meta) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        meta.name,
        rev,
        sha256,
        path.to_string_lossy(),
        serde_json::to_string(meta)?
    ])?;
    Ok(tx.last_insert_rowid())
}

/// A stored charm revision.
#[derive(Debug, Clone)]
pub struct CharmRecord {
    /// Row id (the uniter's charm identity).
    pub id: i64,
    /// Revision number per charm name.
    pub revision: i64,
    /// Content hash.
    pub sha256: String,
    /// Source directory.
    pub path: PathBuf,
    /// Parsed metadata.
    pub meta: CharmMeta,
}

/// Load a charm revision.
pub(crate) fn charm(c: &Connection, id: i64) -> Result<CharmRecord> {
    let (revision, sha256, path, meta): (i64, String, String, String) = c
        .prepare_cached("SELECT revision, sha256, path, meta FROM charm WHERE id=?1")?
        .query_row(params![id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("charm {id}")))?;
    Ok(CharmRecord {
        id,
        revision,
        sha256,
        path: path.into(),
        meta: serde_json::from_str(&meta)?,
    })
}

/// The charm an application runs.
pub(crate) fn app_charm(c: &Connection, app: &str) -> Result<CharmRecord> {
    let id: i64 = c
        .prepare_cached("SELECT charm_id FROM application WHERE name=?1")?
        .query_row(params![app], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("application \"{app}\"")))?;
    charm(c, id)
}

/// Create an application row.
pub(crate) fn add_application(
    tx: &Connection,
    name: &str,
    charm_id: i64,
    config: &BTreeMap<String, Value>,
) -> Result<()> {
    let exists: bool = tx
        .prepare_cached("SELECT COUNT(*) FROM application WHERE name=?1")?
        .query_row(params![name], |r| r.get::<_, i64>(0))?
        > 0;
    if exists {
        return Err(StoreError::Invalid(format!(
            "application \"{name}\" already exists"
        )));
    }
    tx.prepare_cached("INSERT INTO application (name, charm_id, config) VALUES (?1, ?2, ?3)")?
        .execute(params![name, charm_id, serde_json::to_string(config)?])?;
    set_status(
        tx,
        &format!("app:{name}"),
        "unknown",
        "",
        &Value::Null,
        now_ms(),
    )?;
    Ok(())
}

/// Application names.
pub(crate) fn applications(c: &Connection) -> Result<Vec<String>> {
    let mut st = c.prepare_cached("SELECT name FROM application ORDER BY name")?;
    let v = st
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(v)
}

/// Application config (user-set values only) and its version.
pub(crate) fn app_config(c: &Connection, app: &str) -> Result<(BTreeMap<String, Value>, u64)> {
    let (s, v): (String, i64) = c
        .prepare_cached("SELECT config, config_version FROM application WHERE name=?1")?
        .query_row(params![app], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("application \"{app}\"")))?;
    Ok((serde_json::from_str(&s)?, v as u64))
}

/// Replace config values (None resets to default); bumps the version when it changed.
pub(crate) fn update_app_config(
    tx: &Connection,
    app: &str,
    changes: &BTreeMap<String, Option<Value>>,
) -> Result<bool> {
    let (mut cfg, _) = app_config(tx, app)?;
    let before = cfg.clone();
    for (k, v) in changes {
        match v {
            Some(v) => cfg.insert(k.clone(), v.clone()),
            None => cfg.remove(k),
        };
    }
    if cfg == before {
        return Ok(false);
    }
    tx.prepare_cached(
        "UPDATE application SET config=?1, config_version=config_version+1 WHERE name=?2",
    )?
    .execute(params![serde_json::to_string(&cfg)?, app])?;
    Ok(true)
}

/// Point an application at a new charm revision.
pub(crate) fn set_app_charm(tx: &Connection, app: &str, charm_id: i64) -> Result<()> {
    tx.prepare_cached("UPDATE application SET charm_id=?1 WHERE name=?2")?
        .execute(params![charm_id, app])?;
    Ok(())
}

/// Add a unit to an application, with the next address of `block`; returns its name.
pub(crate) fn add_unit(
    tx: &Connection,
    app: &str,
    block: crate::network::AddressBlock,
) -> Result<String> {
    let n: i64 = tx
        .prepare_cached("SELECT next_unit FROM application WHERE name=?1 AND life='alive'")?
        .query_row(params![app], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("application \"{app}\"")))?;
    tx.prepare_cached("UPDATE application SET next_unit=next_unit+1 WHERE name=?1")?
        .execute(params![app])?;
    tx.prepare_cached("UPDATE model SET unit_seq=unit_seq+1")?
        .execute([])?;
    let seq: i64 = tx
        .prepare_cached("SELECT unit_seq FROM model")?
        .query_row([], |r| r.get(0))?;
    let address = block.unit_address(seq);
    let name = format!("{app}/{n}");
    tx.prepare_cached("INSERT INTO unit (name, app, number, address) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![name, app, n, address])?;
    let now = now_ms();
    set_status(
        tx,
        &format!("unit:{name}"),
        "waiting",
        "agent initialising",
        &Value::Null,
        now,
    )?;
    set_status(
        tx,
        &format!("agent:{name}"),
        "allocating",
        "",
        &Value::Null,
        now,
    )?;
    let charm_id: i64 = tx
        .prepare_cached("SELECT charm_id FROM application WHERE name=?1")?
        .query_row(params![app], |r| r.get(0))?;
    for (sname, kind) in charm(tx, charm_id)?.meta.storage {
        let seq: i64 = tx
            .prepare_cached("SELECT storage_seq FROM model")?
            .query_row([], |r| r.get(0))?;
        tx.prepare_cached("UPDATE model SET storage_seq=storage_seq+1")?
            .execute([])?;
        tx.prepare_cached(
            "INSERT INTO storage_instance (id, unit, name, kind) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![format!("{sname}/{seq}"), name, sname, kind])?;
    }
    elect_leader(tx, app)?;
    Ok(name)
}

/// Give leadership to the lowest-numbered alive unit if the app has no alive leader.
pub(crate) fn elect_leader(tx: &Connection, app: &str) -> Result<Option<String>> {
    let current: Option<String> = tx
        .prepare_cached("SELECT l.unit FROM leadership l JOIN unit u ON u.name=l.unit WHERE l.app=?1 AND u.life='alive'")?
        .query_row(
            params![app],
            |r| r.get(0),
        )
        .optional()?;
    if current.is_some() {
        return Ok(current);
    }
    let next: Option<String> = tx
        .prepare_cached(
            "SELECT name FROM unit WHERE app=?1 AND life='alive' ORDER BY number LIMIT 1",
        )?
        .query_row(params![app], |r| r.get(0))
        .optional()?;
    if let Some(u) = &next {
        tx.prepare_cached("INSERT INTO leadership (app, unit, since) VALUES (?1, ?2, ?3) ON CONFLICT(app) DO UPDATE SET unit=?2, since=?3")?
        .execute(
            params![app, u, now_ms()],
        )?;
    }
    Ok(next)
}

/// The leader of an application.
pub(crate) fn leader(c: &Connection, app: &str) -> Result<Option<String>> {
    Ok(
        c.prepare_cached("SELECT unit FROM leadership WHERE app=?1")?
            .query_row(params![app], |r| r.get(0))
            .optional()?,
    )
}

/// One unit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRecord {
    /// `app/n`
    pub name: String,
    /// Application.
    pub app: String,
    /// Unit number.
    pub number: i64,
    /// Alive or dying.
    pub life: Life,
    /// Its loopback address.
    pub address: String,
}

/// Load a unit.
pub(crate) fn unit(c: &Connection, name: &str) -> Result<Option<UnitRecord>> {
    Ok(
        c.prepare_cached("SELECT name, app, number, life, address FROM unit WHERE name=?1")?
            .query_row(params![name], unit_row)
            .optional()?,
    )
}

/// A `unit` row selected as `name, app, number, life, address`.
fn unit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UnitRecord> {
    Ok(UnitRecord {
        name: r.get(0)?,
        app: r.get(1)?,
        number: r.get(2)?,
        life: life_of(&r.get::<_, String>(3)?),
        address: r.get(4)?,
    })
}

/// All units, or one application's.
pub(crate) fn units(c: &Connection, app: Option<&str>) -> Result<Vec<UnitRecord>> {
    let mut st = c.prepare_cached("SELECT name, app, number, life, address FROM unit WHERE (?1 IS NULL OR app=?1) ORDER BY app, number")?;
    let v = st
        .query_map(params![app], unit_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(v)
}

/// Mark a unit dying: it leaves every relation's scope (so the others see
/// departed) and loses leadership.
pub(crate) fn set_unit_dying(tx: &Connection, name: &str) -> Result<()> {
    let app: String = tx
        .prepare_cached("SELECT app FROM unit WHERE name=?1")?
        .query_row(params![name], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("unit \"{name}\"")))?;
    tx.prepare_cached("UPDATE unit SET life='dying' WHERE name=?1")?
        .execute(params![name])?;
    tx.prepare_cached("DELETE FROM relation_member WHERE unit=?1")?
        .execute(params![name])?;
    tx.prepare_cached("DELETE FROM leadership WHERE app=?1 AND unit=?2")?
        .execute(params![app, name])?;
    elect_leader(tx, &app)?;
    Ok(())
}

/// Remove a unit for good (after its `remove` hook), and its application when
/// that was the last unit of a dying application.
pub(crate) fn delete_unit(tx: &Connection, name: &str) -> Result<()> {
    let app: Option<String> = tx
        .prepare_cached("SELECT app FROM unit WHERE name=?1")?
        .query_row(params![name], |r| r.get(0))
        .optional()?;
    tx.prepare_cached("DELETE FROM secret WHERE owner_kind='unit' AND owner=?1")?
        .execute(params![name])?;
    // Actions that never ran on a removed unit end as aborted.
    tx.prepare_cached("UPDATE task SET status='aborted', message='unit removed', completed=?2 WHERE unit=?1 AND status IN ('pending', 'running')")?
        .execute(
        params![name, now_ms()],
    )?;
    tx.prepare_cached("DELETE FROM status WHERE entity IN (?1, ?2)")?
        .execute(params![format!("unit:{name}"), format!("agent:{name}")])?;
    tx.prepare_cached("DELETE FROM unit WHERE name=?1")?
        .execute(params![name])?;
    cleanup_relations(tx)?;
    if let Some(app) = app {
        let (life, left): (String, i64) = tx.prepare_cached("SELECT life, (SELECT COUNT(*) FROM unit WHERE app=?1) FROM application WHERE name=?1")?
        .query_row(
            params![app],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if life != "alive" && left == 0 {
            delete_application(tx, &app)?;
        }
    }
    Ok(())
}

fn delete_application(tx: &Connection, app: &str) -> Result<()> {
    tx.prepare_cached("DELETE FROM secret WHERE owner_kind='application' AND owner=?1")?
        .execute(params![app])?;
    tx.prepare_cached(
        "DELETE FROM relation WHERE id IN (SELECT relation_id FROM relation_endpoint WHERE app=?1)",
    )?
    .execute(params![app])?;
    tx.prepare_cached("DELETE FROM status WHERE entity=?1")?
        .execute(params![format!("app:{app}")])?;
    tx.prepare_cached("DELETE FROM application WHERE name=?1")?
        .execute(params![app])?;
    Ok(())
}

/// Mark an application and all its units dying, and its relations dying.
pub(crate) fn set_app_dying(tx: &Connection, app: &str) -> Result<Vec<String>> {
    let n = tx
        .prepare_cached("UPDATE application SET life='dying' WHERE name=?1")?
        .execute(params![app])?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("application \"{app}\"")));
    }
    let us: Vec<String> = units(tx, Some(app))?.into_iter().map(|u| u.name).collect();
    for u in &us {
        set_unit_dying(tx, u)?;
    }
    tx.prepare_cached("UPDATE relation SET life='dying' WHERE id IN (SELECT relation_id FROM relation_endpoint WHERE app=?1)")?
        .execute( params![app])?;
    if us.is_empty() {
        delete_application(tx, app)?;
    }
    cleanup_relations(tx)?;
    Ok(us)
}

// ---------------------------------------------------------------- relations

/// One side of a relation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationEndpoint {
    /// Application.
    pub app: String,
    /// Endpoint name.
    pub endpoint: String,
    /// Role.
    pub role: Role,
    /// Interface.
    pub interface: String,
}

/// A relation with its endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationRecord {
    /// Relation id.
    pub id: i64,
    /// `app:ep app:ep` (sorted), or `app:ep` for peers.
    pub key: String,
    /// Alive or dying.
    pub life: Life,
    /// One (peer) or two endpoints.
    pub endpoints: Vec<RelationEndpoint>,
}

impl RelationRecord {
    /// The endpoint of `app` and the other application (itself for peers).
    pub fn side<'a>(&'a self, app: &'a str) -> Option<(&'a RelationEndpoint, &'a str)> {
        let mine = self.endpoints.iter().find(|e| e.app == app)?;
        let other = self
            .endpoints
            .iter()
            .find(|e| e.app != app)
            .map(|e| e.app.as_str())
            .unwrap_or(app);
        Some((mine, other))
    }

    /// Whether this is a peer relation.
    pub fn is_peer(&self) -> bool {
        self.endpoints.len() == 1
    }
}

/// Create a relation (id from the sequence); fails if it exists.
pub(crate) fn add_relation(tx: &Connection, eps: &[RelationEndpoint]) -> Result<i64> {
    let mut keys: Vec<String> = eps
        .iter()
        .map(|e| format!("{}:{}", e.app, e.endpoint))
        .collect();
    keys.sort();
    let key = keys.join(" ");
    let exists: Option<String> = tx
        .prepare_cached("SELECT life FROM relation WHERE key=?1")?
        .query_row(params![key], |r| r.get(0))
        .optional()?;
    if exists.is_some() {
        return Err(StoreError::Invalid(format!(
            "relation {key} already exists"
        )));
    }
    // Juju numbers relations from 0 and never reuses an id.
    let id: i64 = tx
        .prepare_cached("SELECT relation_seq FROM model")?
        .query_row([], |r| r.get(0))?;
    tx.prepare_cached("UPDATE model SET relation_seq=relation_seq+1")?
        .execute([])?;
    tx.prepare_cached("INSERT INTO relation (id, key) VALUES (?1, ?2)")?
        .execute(params![id, key])?;
    for e in eps {
        tx.prepare_cached("INSERT INTO relation_endpoint (relation_id, app, endpoint, role, interface) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(
            params![id, e.app, e.endpoint, e.role.as_str(), e.interface],
        )?;
    }
    Ok(id)
}

fn role_of(s: &str) -> Role {
    match s {
        "provider" => Role::Provider,
        "requirer" => Role::Requirer,
        _ => Role::Peer,
    }
}

/// Load relations (all, or those an application takes part in).
pub(crate) fn relations(c: &Connection, app: Option<&str>) -> Result<Vec<RelationRecord>> {
    let mut st = c.prepare_cached(
        "SELECT r.id, r.key, r.life FROM relation r WHERE ?1 IS NULL OR r.id IN (SELECT relation_id FROM relation_endpoint WHERE app=?1) ORDER BY r.id",
    )?;
    let rows = st
        .query_map(params![app], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut est = c.prepare_cached("SELECT app, endpoint, role, interface FROM relation_endpoint WHERE relation_id=?1 ORDER BY app")?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, key, life) in rows {
        let endpoints = est
            .query_map(params![id], |r| {
                Ok(RelationEndpoint {
                    app: r.get(0)?,
                    endpoint: r.get(1)?,
                    role: role_of(&r.get::<_, String>(2)?),
                    interface: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        out.push(RelationRecord {
            id,
            key,
            life: life_of(&life),
            endpoints,
        });
    }
    Ok(out)
}

/// One relation.
pub(crate) fn relation(c: &Connection, id: i64) -> Result<Option<RelationRecord>> {
    Ok(relations(c, None)?.into_iter().find(|r| r.id == id))
}

/// Mark a relation dying.
pub(crate) fn set_relation_dying(tx: &Connection, id: i64) -> Result<()> {
    tx.prepare_cached("UPDATE relation SET life='dying' WHERE id=?1")?
        .execute(params![id])?;
    cleanup_relations(tx)?;
    Ok(())
}

/// Delete dying relations nobody is in scope of any more.
pub(crate) fn cleanup_relations(tx: &Connection) -> Result<()> {
    tx.prepare_cached("DELETE FROM relation WHERE life='dying' AND NOT EXISTS (SELECT 1 FROM relation_member m WHERE m.relation_id=relation.id)")?
        .execute(
        [],
    )?;
    Ok(())
}

/// Units in scope of a relation.
pub(crate) fn relation_members(c: &Connection, id: i64) -> Result<Vec<String>> {
    let mut st =
        c.prepare_cached("SELECT unit FROM relation_member WHERE relation_id=?1 ORDER BY unit")?;
    let v = st
        .query_map(params![id], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(v)
}

/// Whether a unit is in scope.
pub(crate) fn in_scope(c: &Connection, id: i64, unit: &str) -> Result<bool> {
    Ok(
        c.prepare_cached("SELECT COUNT(*) FROM relation_member WHERE relation_id=?1 AND unit=?2")?
            .query_row(params![id, unit], |r| r.get::<_, i64>(0))?
            > 0,
    )
}

/// Enter a relation's scope, seeding the unit bag with its addresses.
pub(crate) fn enter_scope(tx: &Connection, id: i64, unit: &str, address: &str) -> Result<()> {
    tx.prepare_cached("INSERT OR IGNORE INTO relation_member (relation_id, unit) VALUES (?1, ?2)")?
        .execute(params![id, unit])?;
    let mut seed = BTreeMap::new();
    seed.insert("private-address".to_string(), address.to_string());
    seed.insert("ingress-address".to_string(), address.to_string());
    seed.insert("egress-subnets".to_string(), format!("{address}/32"));
    update_bag(tx, id, unit, false, &seed)?;
    Ok(())
}

/// Leave a relation's scope.
pub(crate) fn leave_scope(tx: &Connection, id: i64, unit: &str) -> Result<()> {
    tx.prepare_cached("DELETE FROM relation_member WHERE relation_id=?1 AND unit=?2")?
        .execute(params![id, unit])?;
    cleanup_relations(tx)?;
    Ok(())
}

/// A bag's settings and version.
pub(crate) fn bag(c: &Connection, id: i64, owner: &str) -> Result<(BTreeMap<String, String>, u64)> {
    let row: Option<(String, i64)> = c
        .prepare_cached(
            "SELECT settings, version FROM relation_bag WHERE relation_id=?1 AND owner=?2",
        )?
        .query_row(params![id, owner], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match row {
        Some((s, v)) => Ok((serde_json::from_str(&s)?, v as u64)),
        None => Ok((BTreeMap::new(), 0)),
    }
}

/// Merge changes into a bag (`""` deletes); bumps the version if anything changed.
/// Returns the new version.
pub(crate) fn update_bag(
    tx: &Connection,
    id: i64,
    owner: &str,
    is_app: bool,
    changes: &BTreeMap<String, String>,
) -> Result<u64> {
    let (mut s, v) = bag(tx, id, owner)?;
    let before = s.clone();
    for (k, val) in changes {
        if val.is_empty() {
            s.remove(k);
        } else {
            s.insert(k.clone(), val.clone());
        }
    }
    if s == before && v > 0 {
        return Ok(v);
    }
    let nv = v + 1;
    tx.prepare_cached("INSERT INTO relation_bag (relation_id, owner, is_app, settings, version) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(relation_id, owner) DO UPDATE SET settings=?4, version=?5")?
        .execute(
        params![id, owner, is_app as i64, serde_json::to_string(&s)?, nv as i64],
    )?;
    Ok(nv)
}

// ---------------------------------------------------------------- statuses

/// A status value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// Status name.
    pub status: String,
    /// Message.
    pub message: String,
    /// Extra data.
    pub data: Value,
    /// Since (ms).
    pub since: i64,
}

/// Set a status (`unit:<u>`, `agent:<u>`, `app:<a>`), appending history when it changed.
pub(crate) fn set_status(
    tx: &Connection,
    entity: &str,
    status: &str,
    message: &str,
    data: &Value,
    now: i64,
) -> Result<()> {
    let data_s = if data.is_null() {
        "{}".to_string()
    } else {
        serde_json::to_string(data)?
    };
    let cur: Option<(String, String, String)> = tx
        .prepare_cached("SELECT status, message, data FROM status WHERE entity=?1")?
        .query_row(params![entity], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    if cur
        .as_ref()
        .is_some_and(|(s, m, d)| s == status && m == message && *d == data_s)
    {
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT INTO status (entity, status, message, data, since) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(entity) DO UPDATE SET status=?2, message=?3, data=?4, since=?5",
    )?
    .execute(params![entity, status, message, data_s, now])?;
    tx.prepare_cached("INSERT INTO status_history (entity, status, message, data, since) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![entity, status, message, data_s, now])?;
    Ok(())
}

/// Read a status.
pub(crate) fn status(c: &Connection, entity: &str) -> Result<StatusInfo> {
    let row: Option<(String, String, String, i64)> = c
        .prepare_cached("SELECT status, message, data, since FROM status WHERE entity=?1")?
        .query_row(params![entity], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    Ok(match row {
        Some((status, message, data, since)) => StatusInfo {
            status,
            message,
            data: serde_json::from_str(&data)?,
            since,
        },
        None => StatusInfo {
            status: "unknown".into(),
            message: String::new(),
            data: Value::Object(Default::default()),
            since: 0,
        },
    })
}

/// Status history of an entity, oldest first.
pub(crate) fn status_history(c: &Connection, entity: &str) -> Result<Vec<StatusInfo>> {
    let mut st = c.prepare_cached(
        "SELECT status, message, data, since FROM status_history WHERE entity=?1 ORDER BY id",
    )?;
    let v = st
        .query_map(params![entity], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    v.into_iter()
        .map(|(status, message, data, since)| {
            Ok(StatusInfo {
                status,
                message,
                data: serde_json::from_str(&data)?,
                since,
            })
        })
        .collect()
}

// ---------------------------------------------------------------- actions

/// An action task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Task id.
    pub id: i64,
    /// Operation id.
    pub operation: i64,
    /// Unit.
    pub unit: String,
    /// Action name.
    pub name: String,
    /// Parameters.
    pub params: Value,
    /// pending, running, completed, failed, aborted.
    pub status: String,
    /// Failure message.
    pub message: String,
    /// Results (nested map with return-code, stdout, stderr).
    pub results: Value,
    /// action-log messages (ms, message).
    pub log: Vec<(i64, String)>,
    /// Enqueued (ms).
    pub enqueued: i64,
    /// Started (ms).
    pub started: Option<i64>,
    /// Completed (ms).
    pub completed: Option<i64>,
}

/// Enqueue an operation with one task; returns (operation, task).
pub(crate) fn enqueue_action(
    tx: &Connection,
    unit: &str,
    name: &str,
    params_v: &Value,
    now: i64,
) -> Result<(i64, i64)> {
    tx.prepare_cached("INSERT INTO operation (summary, enqueued) VALUES (?1, ?2)")?
        .execute(params![
            format!("{name} run on unit-{}", unit.replace('/', "-")),
            now
        ])?;
    let op = tx.last_insert_rowid();
    tx.prepare_cached("INSERT INTO task (operation_id, unit, name, params, status, enqueued) VALUES (?1, ?2, ?3, ?4, 'pending', ?5)")?
        .execute(
        params![op, unit, name, serde_json::to_string(params_v)?, now],
    )?;
    Ok((op, tx.last_insert_rowid()))
}

/// Load a task.
pub(crate) fn task(c: &Connection, id: i64) -> Result<Option<TaskRecord>> {
    let row = c
        .prepare_cached("SELECT id, operation_id, unit, name, params, status, message, results, log, enqueued, started, completed FROM task WHERE id=?1")?
        .query_row(
            params![id],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, Option<i64>>(10)?,
                    r.get::<_, Option<i64>>(11)?,
                ))
            },
        )
        .optional()?;
    let Some((
        id,
        operation,
        unit,
        name,
        p,
        status,
        message,
        results,
        log,
        enqueued,
        started,
        completed,
    )) = row
    else {
        return Ok(None);
    };
    Ok(Some(TaskRecord {
        id,
        operation,
        unit,
        name,
        params: serde_json::from_str(&p)?,
        status,
        message,
        results: serde_json::from_str(&results)?,
        log: serde_json::from_str(&log)?,
        enqueued,
        started,
        completed,
    }))
}

/// Mark a task running.
pub(crate) fn start_task(tx: &Connection, id: i64, now: i64) -> Result<()> {
    tx.prepare_cached("UPDATE task SET status='running', started=?2 WHERE id=?1")?
        .execute(params![id, now])?;
    Ok(())
}

/// Append an action-log message.
pub(crate) fn append_task_log(tx: &Connection, id: i64, msg: &str, now: i64) -> Result<()> {
    let log: String = tx
        .prepare_cached("SELECT log FROM task WHERE id=?1")?
        .query_row(params![id], |r| r.get(0))?;
    let mut v: Vec<(i64, String)> = serde_json::from_str(&log)?;
    v.push((now, msg.to_string()));
    tx.prepare_cached("UPDATE task SET log=?2 WHERE id=?1")?
        .execute(params![id, serde_json::to_string(&v)?])?;
    Ok(())
}

/// Finish a task.
pub(crate) fn finish_task(
    tx: &Connection,
    id: i64,
    status: &str,
    message: &str,
    results: &Value,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "UPDATE task SET status=?2, message=?3, results=?4, completed=?5 WHERE id=?1",
    )?
    .execute(params![
        id,
        status,
        message,
        serde_json::to_string(results)?,
        now
    ])?;
    Ok(())
}

// ---------------------------------------------------------------- unit state, uniter state, ports

/// A unit's `state-get` map.
pub(crate) fn unit_state(c: &Connection, unit: &str) -> Result<BTreeMap<String, String>> {
    let mut st = c.prepare_cached("SELECT key, value FROM unit_state WHERE unit=?1")?;
    let v = st
        .query_map(params![unit], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<BTreeMap<String, String>, _>>()?;
    Ok(v)
}

/// Set (Some) or delete (None) a `state-set` key.
pub(crate) fn set_unit_state(
    tx: &Connection,
    unit: &str,
    key: &str,
    value: Option<&str>,
) -> Result<()> {
    match value {
        Some(v) => tx.prepare_cached("INSERT INTO unit_state (unit, key, value) VALUES (?1, ?2, ?3) ON CONFLICT(unit, key) DO UPDATE SET value=?3")?
        .execute(
            params![unit, key, v],
        )?,
        None => tx.prepare_cached("DELETE FROM unit_state WHERE unit=?1 AND key=?2")?
        .execute( params![unit, key])?,
    };
    Ok(())
}

/// A unit's persisted uniter state.
pub(crate) fn uniter_state(c: &Connection, unit: &str) -> Result<LocalState> {
    let s: Option<String> = c
        .prepare_cached("SELECT state FROM uniter_state WHERE unit=?1")?
        .query_row(params![unit], |r| r.get(0))
        .optional()?;
    Ok(match s {
        Some(s) => serde_json::from_str(&s)?,
        None => LocalState::default(),
    })
}

/// Persist a unit's uniter state.
pub(crate) fn save_uniter_state(tx: &Connection, unit: &str, l: &LocalState) -> Result<()> {
    tx.prepare_cached("INSERT INTO uniter_state (unit, state) VALUES (?1, ?2) ON CONFLICT(unit) DO UPDATE SET state=?2")?
        .execute(params![unit, serde_json::to_string(l)?])?;
    Ok(())
}

/// An opened port range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRange {
    /// Endpoint (`*` for all).
    pub endpoint: String,
    /// tcp, udp or icmp.
    pub protocol: String,
    /// First port.
    pub from: u16,
    /// Last port.
    pub to: u16,
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.protocol == "icmp" {
            f.write_str("icmp")
        } else if self.from == self.to {
            write!(f, "{}/{}", self.from, self.protocol)
        } else {
            write!(f, "{}-{}/{}", self.from, self.to, self.protocol)
        }
    }
}

/// Opened ports of a unit.
pub(crate) fn ports(c: &Connection, unit: &str) -> Result<Vec<PortRange>> {
    let mut st = c.prepare_cached("SELECT endpoint, protocol, from_port, to_port FROM port WHERE unit=?1 ORDER BY protocol, from_port")?;
    let v = st
        .query_map(params![unit], |r| {
            Ok(PortRange {
                endpoint: r.get(0)?,
                protocol: r.get(1)?,
                from: r.get(2)?,
                to: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(v)
}

/// Open or close a port range.
pub(crate) fn set_port(tx: &Connection, unit: &str, p: &PortRange, open: bool) -> Result<()> {
    if open {
        tx.prepare_cached("INSERT OR IGNORE INTO port (unit, endpoint, protocol, from_port, to_port) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(
            params![unit, p.endpoint, p.protocol, p.from, p.to],
        )?;
    } else {
        tx.prepare_cached("DELETE FROM port WHERE unit=?1 AND endpoint=?2 AND protocol=?3 AND from_port=?4 AND to_port=?5")?
        .execute(
            params![unit, p.endpoint, p.protocol, p.from, p.to],
        )?;
    }
    Ok(())
}

/// A unit's storage instances: (id `name/n`, name, kind).
pub(crate) fn unit_storage(c: &Connection, unit: &str) -> Result<Vec<(String, String, String)>> {
    let mut st =
        c.prepare_cached("SELECT id, name, kind FROM storage_instance WHERE unit=?1 ORDER BY id")?;
    let v = st
        .query_map(params![unit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(v)
}

/// Resolve request of a unit.
pub(crate) fn set_resolved(tx: &Connection, unit: &str, r: Resolved) -> Result<()> {
    let s = match r {
        Resolved::None => "",
        Resolved::Retry => "retry",
        Resolved::NoRetry => "no-retry",
    };
    tx.prepare_cached("UPDATE unit SET resolved=?2 WHERE name=?1")?
        .execute(params![unit, s])?;
    Ok(())
}

// ---------------------------------------------------------------- secrets

/// A secret's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// The xid (20 chars).
    pub id: String,
    /// `application` or `unit`.
    pub owner_kind: String,
    /// Owner app or unit name.
    pub owner: String,
    /// Owner label.
    pub label: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Rotation policy.
    pub rotate_policy: String,
    /// Next rotation (ms).
    pub next_rotate: Option<i64>,
    /// Latest revision.
    pub latest_revision: i64,
    /// Created (ms).
    pub created: i64,
    /// Updated (ms).
    pub updated: i64,
}

impl SecretRecord {
    /// `secret:<xid>`
    pub fn uri(&self) -> String {
        format!("secret:{}", self.id)
    }
}

const SECRET_COLS: &str = "id, owner_kind, owner, label, description, rotate_policy, next_rotate, latest_revision, created, updated";

fn secret_row(r: &rusqlite::Row) -> rusqlite::Result<SecretRecord> {
    Ok(SecretRecord {
        id: r.get(0)?,
        owner_kind: r.get(1)?,
        owner: r.get(2)?,
        label: r.get(3)?,
        description: r.get(4)?,
        rotate_policy: r.get(5)?,
        next_rotate: r.get(6)?,
        latest_revision: r.get(7)?,
        created: r.get(8)?,
        updated: r.get(9)?,
    })
}

/// Load a secret by xid.
pub(crate) fn secret(c: &Connection, id: &str) -> Result<Option<SecretRecord>> {
    Ok(c.query_row(
        &format!("SELECT {SECRET_COLS} FROM secret WHERE id=?1"),
        params![id],
        secret_row,
    )
    .optional()?)
}

/// All secrets (for listing).
pub(crate) fn secrets(c: &Connection) -> Result<Vec<SecretRecord>> {
    let mut st = c.prepare(&format!(
        "SELECT {SECRET_COLS} FROM secret ORDER BY created, id"
    ))?;
    let v = st
        .query_map([], secret_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(v)
}

/// Secrets owned by a unit or, when it leads, its application.
pub(crate) fn owned_secrets(
    c: &Connection,
    unit: &str,
    app: &str,
    leader: bool,
) -> Result<Vec<SecretRecord>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {SECRET_COLS} FROM secret WHERE (owner_kind='unit' AND owner=?1) OR (owner_kind='application' AND owner=?2 AND ?3) ORDER BY created, id"
    ))?;
    let v = st
        .query_map(params![unit, app, leader], secret_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(v)
}

/// Find an owned secret by owner label.
pub(crate) fn secret_by_owner_label(
    c: &Connection,
    owner: &str,
    label: &str,
) -> Result<Option<SecretRecord>> {
    Ok(c.query_row(
        &format!("SELECT {SECRET_COLS} FROM secret WHERE owner=?1 AND label=?2"),
        params![owner, label],
        secret_row,
    )
    .optional()?)
}

/// A consumer's record of a secret: (label, tracked revision).
pub(crate) fn consumer(
    c: &Connection,
    id: &str,
    unit: &str,
) -> Result<Option<(Option<String>, i64)>> {
    Ok(c.prepare_cached(
        "SELECT label, tracked_revision FROM secret_consumer WHERE secret_id=?1 AND unit=?2",
    )?
    .query_row(params![id, unit], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()?)
}

/// The secret a consumer knows by `label`.
pub(crate) fn secret_by_consumer_label(
    c: &Connection,
    unit: &str,
    label: &str,
) -> Result<Option<String>> {
    Ok(
        c.prepare_cached("SELECT secret_id FROM secret_consumer WHERE unit=?1 AND label=?2")?
            .query_row(params![unit, label], |r| r.get(0))
            .optional()?,
    )
}

/// Create or update a consumer's tracking and label.
pub(crate) fn set_consumer(
    tx: &Connection,
    id: &str,
    unit: &str,
    label: Option<&str>,
    tracked: i64,
) -> Result<()> {
    if let Some(l) = label {
        tx.prepare_cached(
            "UPDATE secret_consumer SET label=NULL WHERE unit=?1 AND label=?2 AND secret_id<>?3",
        )?
        .execute(params![unit, l, id])?;
    }
    tx.prepare_cached("INSERT INTO secret_consumer (secret_id, unit, label, tracked_revision) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(secret_id, unit) DO UPDATE SET label=COALESCE(?3, label), tracked_revision=?4")?
        .execute(
        params![id, unit, label, tracked],
    )?;
    Ok(())
}

/// Whether `unit` (of `app`) may read a secret: owner, owner's app unit, or granted via a live relation.
pub(crate) fn may_read_secret(
    c: &Connection,
    s: &SecretRecord,
    unit: &str,
    app: &str,
) -> Result<bool> {
    if (s.owner_kind == "unit" && s.owner == unit)
        || (s.owner_kind == "application" && s.owner == app)
    {
        return Ok(true);
    }
    Ok(c.prepare_cached(
        "SELECT COUNT(*) FROM secret_grant g JOIN relation r ON r.id=g.relation_id
         WHERE g.secret_id=?1 AND (g.target=?2 OR g.target=?3) AND r.life='alive'",
    )?
    .query_row(params![s.id, unit, app], |r| r.get::<_, i64>(0))?
        > 0)
}

/// Grants of a secret: (relation id, target).
pub(crate) fn secret_grants(c: &Connection, id: &str) -> Result<Vec<(i64, String)>> {
    let mut st = c.prepare_cached("SELECT relation_id, target FROM secret_grant WHERE secret_id=?1 ORDER BY relation_id, target")?;
    let v = st
        .query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(v)
}

/// Revisions of a secret: (revision, expire).
pub(crate) fn secret_revisions(c: &Connection, id: &str) -> Result<Vec<(i64, Option<i64>)>> {
    let mut st = c.prepare_cached(
        "SELECT revision, expire FROM secret_revision WHERE secret_id=?1 ORDER BY revision",
    )?;
    let v = st
        .query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(v)
}

/// Milliseconds of a rotation policy.
pub fn rotate_interval_ms(policy: &str) -> Option<i64> {
    let h = 3_600_000i64;
    Some(match policy {
        "hourly" => h,
        "daily" => 24 * h,
        "weekly" => 7 * 24 * h,
        "monthly" => 30 * 24 * h,
        "quarterly" => 90 * 24 * h,
        "yearly" => 365 * 24 * h,
        _ => return None,
    })
}

// ---------------------------------------------------------------- remote state

/// Everything the uniter of `unit` needs to decide its next hook; None when the unit is gone.
pub(crate) fn remote_state(
    c: &Connection,
    name: &str,
    now: i64,
    ready: &BTreeSet<String>,
) -> Result<Option<RemoteState>> {
    let row: Option<(String, String, String)> = c
        .prepare_cached("SELECT app, life, resolved FROM unit WHERE name=?1")?
        .query_row(params![name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((app, life, resolved)) = row else {
        return Ok(None);
    };
    let (charm, config_version, lsv): (i64, i64, i64) = c
        .prepare_cached("SELECT charm_id, config_version, leader_settings_version FROM application WHERE name=?1")?
        .query_row(params![app], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let is_leader = leader(c, &app)?.as_deref() == Some(name);
    let interval = model_config(c)?
        .get("update-status-hook-interval")
        .and_then(|v| v.as_str().map(String::from))
        .and_then(|s| humantime::parse_duration(&s).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(5 * 60 * 1000);
    let mut rs = RemoteState {
        life: life_of(&life),
        leader: is_leader,
        leader_settings_version: lsv as u64,
        charm,
        config_version: config_version as u64,
        ready_containers: ready.clone(),
        resolved: match resolved.as_str() {
            "retry" => Resolved::Retry,
            "no-retry" => Resolved::NoRetry,
            _ => Resolved::None,
        },
        update_status_interval: interval,
        now,
        ..Default::default()
    };
    for r in relations(c, Some(&app))? {
        let Some((mine, other)) = r.side(&app) else {
            continue;
        };
        let mut rr = RemoteRelation {
            endpoint: mine.endpoint.clone(),
            remote_app: other.to_string(),
            peer: r.is_peer(),
            life: r.life,
            ..Default::default()
        };
        for m in relation_members(c, r.id)? {
            let m_app = m.split('/').next().unwrap_or("");
            if m == name || (m_app != other) {
                continue;
            }
            rr.members.insert(m.clone(), bag(c, r.id, &m)?.1);
        }
        rr.app_version = bag(c, r.id, other)?.1;
        rs.relations.insert(r.id, rr);
    }
    let mut st = c.prepare_cached(
        "SELECT c.secret_id, COALESCE(c.label, ''), c.tracked_revision, s.latest_revision FROM secret_consumer c JOIN secret s ON s.id=c.secret_id WHERE c.unit=?1",
    )?;
    for row in st.query_map(params![name], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })? {
        let (id, label, tracked, latest) = row?;
        rs.consumed_secrets.insert(
            format!("secret:{id}"),
            ConsumedSecret {
                label,
                tracked,
                latest,
            },
        );
    }
    for s in owned_secrets(c, name, &app, is_leader)? {
        let mut os = OwnedSecret {
            label: s.label.clone().unwrap_or_default(),
            next_rotate: s.next_rotate,
            ..Default::default()
        };
        for (rev, exp) in secret_revisions(c, &s.id)? {
            if let Some(e) = exp {
                os.expiries.push((rev, e));
            }
            if rev < s.latest_revision {
                let tracked: i64 = c
                    .prepare_cached("SELECT COUNT(*) FROM secret_consumer WHERE secret_id=?1 AND tracked_revision=?2")?
                    .query_row(params![s.id, rev], |r| r.get(0))?;
                if tracked == 0 {
                    os.obsolete.push(rev);
                }
            }
        }
        rs.owned_secrets.insert(s.uri(), os);
    }
    rs.storage = unit_storage(c, name)?
        .into_iter()
        .map(|(id, n, _)| (id, n))
        .collect();
    let mut st = c.prepare_cached(
        "SELECT id, name FROM task WHERE unit=?1 AND status='pending' ORDER BY id",
    )?;
    rs.pending_actions = st
        .query_map(params![name], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(rs))
}

/// Wall-clock time in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> CharmMeta {
        CharmMeta {
            name: "demo".into(),
            ..Default::default()
        }
    }

    #[test]
    fn migrates_and_reopens_and_key_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        {
            let s = Store::open(d.path()).unwrap();
            s.write(|tx| ensure_model(tx, "m")).unwrap();
        }
        let s = Store::open(d.path()).unwrap();
        let v: i64 = s
            .read(|c| {
                Ok(c.prepare_cached("PRAGMA user_version")?
                    .query_row([], |r| r.get(0))?)
            })
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        let mode = std::fs::metadata(d.path().join("secrets.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let jm: String = s
            .read(|c| {
                Ok(c.prepare_cached("PRAGMA journal_mode")?
                    .query_row([], |r| r.get(0))?)
            })
            .unwrap();
        assert_eq!(jm, "wal");
    }

    #[test]
    fn units_leadership_and_removal() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.write(|tx| {
            ensure_model(tx, "m")?;
            let ch = add_charm(tx, &meta(), "abc", Path::new("/c"))?;
            add_application(tx, "a", ch, &BTreeMap::new())?;
            for _ in 0..3 {
                add_unit(tx, "a", crate::network::AddressBlock::new(1).unwrap())?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(s.read(|c| leader(c, "a")).unwrap().as_deref(), Some("a/0"));
        s.write(|tx| set_unit_dying(tx, "a/0")).unwrap();
        assert_eq!(s.read(|c| leader(c, "a")).unwrap().as_deref(), Some("a/1"));
        s.write(|tx| delete_unit(tx, "a/0")).unwrap();
        assert_eq!(s.read(|c| units(c, Some("a"))).unwrap().len(), 2);
        let us = s.write(|tx| set_app_dying(tx, "a")).unwrap();
        for u in us {
            s.write(|tx| delete_unit(tx, &u)).unwrap();
        }
        assert!(s.read(applications).unwrap().is_empty());
    }

    #[test]
    fn secret_content_is_encrypted_at_rest() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let (n, ct) = s.seal(b"{\"password\":\"aHVudGVyMg==\"}").unwrap();
        assert!(!ct.windows(6).any(|w| w == b"aHVudG"));
        assert_eq!(
            s.open_sealed(&n, &ct).unwrap(),
            b"{\"password\":\"aHVudGVyMg==\"}"
        );
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(s.open_sealed(&n, &bad).is_err());
    }

    #[test]
    fn bags_version_only_on_change() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.write(|tx| {
            ensure_model(tx, "m")?;
            let id = add_relation(
                tx,
                &[RelationEndpoint {
                    app: "a".into(),
                    endpoint: "p".into(),
                    role: Role::Peer,
                    interface: "i".into(),
                }],
            )?;
            assert_eq!(id, 0);
            let mut ch = BTreeMap::new();
            ch.insert("k".to_string(), "v".to_string());
            assert_eq!(update_bag(tx, id, "a/0", false, &ch)?, 1);
            assert_eq!(update_bag(tx, id, "a/0", false, &ch)?, 1);
            ch.insert("k".into(), String::new());
            assert_eq!(update_bag(tx, id, "a/0", false, &ch)?, 2);
            assert!(bag(tx, id, "a/0")?.0.is_empty());
            Ok(())
        })
        .unwrap();
    }
}
