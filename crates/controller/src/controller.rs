//! The library API the `ward` CLI and API server call, and the controller's
//! main loop ([`Controller::run`]) that keeps one uniter per unit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{watch, Semaphore};

use crate::charmdir::{self, Role};
use crate::network::AddressBlock;
use crate::store::{self, RelationEndpoint, Store, StoreError, TaskRecord};
use crate::substrate::{ProcessSubstrate, Substrate};
use crate::uniter::state::{Life, Resolved};

/// Errors from the controller API.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The charm could not be read.
    #[error(transparent)]
    Charm(#[from] charmdir::CharmError),
    /// A request that does not make sense (unknown endpoint, bad config…).
    #[error("{0}")]
    Invalid(String),
    /// Filesystem setup failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for an action timed out.
    #[error("timed out waiting for results from: unit {0}")]
    Timeout(String),
    /// The model still had hooks to run when a wait for it to settle ended.
    #[error("the model did not settle within {0:?}")]
    NotSettled(Duration),
    /// No block of unit addresses could be claimed.
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
}

type Result<T, E = ControllerError> = std::result::Result<T, E>;

/// Time source (tests may substitute one).
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        store::now_ms()
    }
}

/// Controller settings.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// `WARD_HOME`: state.db, secrets.key, units/, logs/, tools/.
    pub home: PathBuf,
    /// Model name.
    pub model_name: String,
    /// The `ward-jujuc` binary that every tool name links to.
    pub jujuc_path: PathBuf,
    /// First retry delay of a failed hook (doubles up to 5 minutes).
    pub retry_base: Duration,
    /// Hook processes running at once, across all units.
    pub hook_concurrency: usize,
    /// `JUJU_VERSION` given to charms.
    pub juju_version: String,
    /// Extra environment for every hook (after Juju's own variables).
    pub extra_env: Vec<(String, String)>,
    /// The machine-wide registry of unit address blocks (see [`crate::network`]).
    pub address_registry: PathBuf,
}

impl ControllerConfig {
    /// Defaults for a home directory; `ward-jujuc` is looked for next to the
    /// current executable (or via `WARD_JUJUC`).
    pub fn new(home: impl Into<PathBuf>) -> Self {
        let jujuc_path = std::env::var_os("WARD_JUJUC")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::current_exe()
                    .ok()
                    .and_then(|p| p.parent().map(|d| d.join("ward-jujuc")))
                    .unwrap_or_else(|| "ward-jujuc".into())
            });
        ControllerConfig {
            home: home.into(),
            model_name: "ward".into(),
            jujuc_path,
            retry_base: Duration::from_secs(5),
            hook_concurrency: std::thread::available_parallelism()
                .map(|n| n.get() * 4)
                .unwrap_or(8),
            juju_version: "3.6.0".into(),
            extra_env: Vec::new(),
            address_registry: crate::network::default_registry(),
        }
    }
}

pub(crate) struct Inner {
    pub store: Arc<Store>,
    pub cfg: ControllerConfig,
    pub substrate: Arc<dyn Substrate>,
    pub clock: Arc<dyn Clock>,
    pub model_uuid: String,
    /// This home's unit addresses, `127.B.0.0/16`.
    pub address_block: AddressBlock,
    pub tools_dir: PathBuf,
    pub hook_slots: Semaphore,
    app_watch: Mutex<HashMap<String, watch::Sender<u64>>>,
    units_changed: watch::Sender<u64>,
    /// Units whose uniter is waiting with nothing to do.
    idle: Mutex<HashSet<String>>,
    /// Bumped whenever a unit's uniter goes idle or wakes, so waiters need not poll.
    idle_changed: watch::Sender<u64>,
}

impl Inner {
    /// Record whether a unit's uniter is waiting with nothing to do.
    pub fn set_idle(&self, unit: &str, idle: bool) {
        let mut m = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let changed = if idle {
            m.insert(unit.to_string())
        } else {
            m.remove(unit)
        };
        drop(m);
        if changed {
            self.idle_changed.send_modify(|v| *v += 1);
        }
    }

    /// Subscribe to changes that concern an application.
    pub fn subscribe(&self, app: &str) -> watch::Receiver<u64> {
        let mut m = self.app_watch.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(app.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wake the uniters of these applications.
    pub fn notify<'a>(&self, apps: impl IntoIterator<Item = &'a str>) {
        let m = self.app_watch.lock().unwrap_or_else(|p| p.into_inner());
        for a in apps {
            if let Some(tx) = m.get(a) {
                tx.send_modify(|v| *v += 1);
            }
        }
    }

    /// Wake every uniter.
    pub fn notify_all(&self) {
        let m = self.app_watch.lock().unwrap_or_else(|p| p.into_inner());
        for tx in m.values() {
            tx.send_modify(|v| *v += 1);
        }
    }

    /// Applications related to `app` (and itself).
    pub fn related_apps(&self, app: &str) -> Vec<String> {
        let mut out = vec![app.to_string()];
        if let Ok(rels) = self.store.read(|c| store::relations(c, Some(app))) {
            for r in rels {
                for e in r.endpoints {
                    if !out.contains(&e.app) {
                        out.push(e.app);
                    }
                }
            }
        }
        out
    }
}

/// The embedded controller.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("home", &self.inner.cfg.home)
            .finish()
    }
}

/// A unit in a status snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct UnitStatus {
    /// Unit name.
    pub name: String,
    /// Whether it leads its application.
    pub leader: bool,
    /// alive / dying.
    pub life: String,
    /// Address.
    pub address: String,
    /// Workload status (`error` while the agent is in error).
    pub workload: store::StatusInfo,
    /// Agent status: allocating, executing, idle, error.
    pub agent: store::StatusInfo,
    /// Opened ports.
    pub ports: Vec<String>,
}

/// An application in a status snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    /// Name.
    pub name: String,
    /// Charm name.
    pub charm: String,
    /// Charm revision.
    pub charm_rev: i64,
    /// Workload version.
    pub version: String,
    /// Application status.
    pub status: store::StatusInfo,
    /// Units.
    pub units: Vec<UnitStatus>,
}

/// A relation in a status snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct RelationStatus {
    /// Id.
    pub id: i64,
    /// `app:ep` per side, the provider's first.
    pub endpoints: Vec<String>,
    /// Interface.
    pub interface: String,
    /// regular or peer.
    pub kind: String,
    /// alive / dying.
    pub life: String,
}

/// What `ward status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusSnapshot {
    /// Model name.
    pub model: String,
    /// Model UUID.
    pub model_uuid: String,
    /// Applications.
    pub applications: Vec<AppStatus>,
    /// Relations.
    pub relations: Vec<RelationStatus>,
}

/// A secret in `ward secrets` (never its content).
#[derive(Debug, Clone, Serialize)]
pub struct SecretSummary {
    /// `secret:<xid>`.
    pub uri: String,
    /// `application` or `unit`.
    pub owner_kind: String,
    /// Owner name.
    pub owner: String,
    /// Owner label.
    pub label: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Rotation policy.
    pub rotation: String,
    /// Latest revision.
    pub revision: i64,
    /// Last update (ms).
    pub updated: i64,
    /// Grants: (relation id, target).
    pub grants: Vec<(i64, String)>,
}

fn life_str(l: Life) -> String {
    match l {
        Life::Alive => "alive".into(),
        Life::Dying => "dying".into(),
    }
}

impl Controller {
    /// Open the store under `cfg.home` and prepare the tools directory, with the plain-process substrate.
    pub fn open(cfg: ControllerConfig) -> Result<Controller> {
        let substrate = Arc::new(ProcessSubstrate::new(cfg.home.join("units")));
        Self::with_substrate(cfg, substrate, Arc::new(SystemClock))
    }

    /// Open with a given substrate and clock.
    pub fn with_substrate(
        cfg: ControllerConfig,
        substrate: Arc<dyn Substrate>,
        clock: Arc<dyn Clock>,
    ) -> Result<Controller> {
        let store = Arc::new(Store::open(&cfg.home)?);
        let (uuid, _) = store.write(|tx| store::ensure_model(tx, &cfg.model_name))?;
        let address_block = crate::network::claim(&cfg.home, &cfg.address_registry)?;
        let tools_dir = cfg.home.join("tools");
        let io = |what: &str| {
            let what = what.to_string();
            move |source| ControllerError::Io { what, source }
        };
        std::fs::create_dir_all(&tools_dir).map_err(io("creating the tools directory"))?;
        std::fs::create_dir_all(cfg.home.join("logs"))
            .map_err(io("creating the logs directory"))?;
        if !cfg.jujuc_path.is_file() {
            tracing::warn!(path = %cfg.jujuc_path.display(), "ward-jujuc not found: hook tools will fail (set WARD_JUJUC)");
        }
        for name in crate::tools::TOOL_NAMES {
            let link = tools_dir.join(name);
            if std::fs::read_link(&link).ok().as_deref() != Some(cfg.jujuc_path.as_path()) {
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&cfg.jujuc_path, &link)
                    .map_err(io(&format!("linking hook tool {name}")))?;
            }
        }
        let inner = Inner {
            store,
            hook_slots: Semaphore::new(cfg.hook_concurrency.max(1)),
            cfg,
            substrate,
            clock,
            model_uuid: uuid,
            address_block,
            tools_dir,
            app_watch: Mutex::new(HashMap::new()),
            units_changed: watch::channel(0).0,
            idle_changed: watch::channel(0).0,
            idle: Mutex::new(HashSet::new()),
        };
        Ok(Controller {
            inner: Arc::new(inner),
        })
    }

    /// The model UUID.
    pub fn model_uuid(&self) -> &str {
        &self.inner.model_uuid
    }

    /// The state store (for inspection).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// This home's block of unit addresses (see [`crate::network`]).
    pub fn address_block(&self) -> AddressBlock {
        self.inner.address_block
    }

    /// The unit log file of a unit (hook output and juju-log).
    pub fn unit_log_path(&self, unit: &str) -> PathBuf {
        self.inner
            .cfg
            .home
            .join("logs")
            .join(format!("{}.log", crate::substrate::unit_tag(unit)))
    }

    fn units_changed(&self) {
        self.inner.units_changed.send_modify(|v| *v += 1);
    }

    /// Run uniters for every unit until `shutdown` resolves. In-flight hook
    /// processes are killed on shutdown; their hooks run again next time.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut running: HashSet<String> = HashSet::new();
        let mut tasks = tokio::task::JoinSet::new();
        let mut changed = self.inner.units_changed.subscribe();
        loop {
            changed.borrow_and_update();
            if let Ok(us) = self.inner.store.read(|c| store::units(c, None)) {
                for u in us {
                    if running.insert(u.name.clone()) {
                        let inner = self.inner.clone();
                        let stop = stop_rx.clone();
                        let name = u.name.clone();
                        tasks.spawn(async move {
                            crate::uniter::run_unit(inner, name.clone(), stop).await;
                            name
                        });
                    }
                }
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = changed.changed() => {}
                Some(Ok(done)) = tasks.join_next(), if !tasks.is_empty() => {
                    // A removed unit's uniter ends for good; one that failed
                    // (store or substrate error) is restarted after a pause.
                    running.remove(&done);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        let _ = stop_tx.send(true);
        tasks.shutdown().await;
    }

    /// Deploy `app` from a charm directory with `n` units and config overrides.
    pub fn deploy(
        &self,
        app: &str,
        charm_dir: &Path,
        n: usize,
        config: BTreeMap<String, Value>,
    ) -> Result<Vec<String>> {
        if app.is_empty()
            || !app
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            || app.starts_with('-')
        {
            return Err(ControllerError::Invalid(format!(
                "invalid application name {app:?}"
            )));
        }
        let charm_dir = charm_dir
            .canonicalize()
            .map_err(|source| ControllerError::Io {
                what: format!("charm directory {}", charm_dir.display()),
                source,
            })?;
        let meta = charmdir::read_meta(&charm_dir)?;
        Self::check_config(
            &meta,
            &config
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
        )?;
        let sha = charmdir::hash_dir(&charm_dir)?;
        let block = self.inner.address_block;
        let units = self.inner.store.write(|tx| {
            let id = store::add_charm(tx, &meta, &sha, &charm_dir)?;
            store::add_application(tx, app, id, &config)?;
            let peers: Vec<_> = meta
                .endpoints
                .iter()
                .filter(|e| e.role == Role::Peer)
                .collect();
            for p in peers {
                store::add_relation(
                    tx,
                    &[RelationEndpoint {
                        app: app.into(),
                        endpoint: p.name.clone(),
                        role: Role::Peer,
                        interface: p.interface.clone(),
                    }],
                )?;
            }
            (0..n)
                .map(|_| store::add_unit(tx, app, block))
                .collect::<Result<Vec<_>, _>>()
        })?;
        self.units_changed();
        Ok(units)
    }

    /// Add `n` units.
    pub fn add_unit(&self, app: &str, n: usize) -> Result<Vec<String>> {
        let block = self.inner.address_block;
        let units = self.inner.store.write(|tx| {
            (0..n)
                .map(|_| store::add_unit(tx, app, block))
                .collect::<Result<Vec<_>, _>>()
        })?;
        self.inner
            .notify(self.inner.related_apps(app).iter().map(String::as_str));
        self.units_changed();
        Ok(units)
    }

    /// Remove a unit (it runs departed, broken, stop, remove).
    pub fn remove_unit(&self, unit: &str) -> Result<()> {
        let app = unit.split('/').next().unwrap_or("").to_string();
        let related = self.inner.related_apps(&app);
        self.inner
            .store
            .write(|tx| store::set_unit_dying(tx, unit))?;
        self.inner.notify(related.iter().map(String::as_str));
        Ok(())
    }

    /// Remove an application: relations, then units.
    pub fn remove_application(&self, app: &str) -> Result<()> {
        let related = self.inner.related_apps(app);
        self.inner.store.write(|tx| store::set_app_dying(tx, app))?;
        self.inner.notify(related.iter().map(String::as_str));
        Ok(())
    }

    fn resolve_endpoint(
        &self,
        spec: &str,
    ) -> Result<(String, charmdir::CharmMeta, Option<String>)> {
        let (app, ep) = match spec.split_once(':') {
            Some((a, e)) => (a.to_string(), Some(e.to_string())),
            None => (spec.to_string(), None),
        };
        let ch = self.inner.store.read(|c| store::app_charm(c, &app))?;
        Ok((app, ch.meta, ep))
    }

    /// Integrate two applications (`app` or `app:endpoint` each); returns the relation id.
    pub fn integrate(&self, a: &str, b: &str) -> Result<i64> {
        let (app_a, meta_a, ep_a) = self.resolve_endpoint(a)?;
        let (app_b, meta_b, ep_b) = self.resolve_endpoint(b)?;
        let mut candidates = Vec::new();
        for ea in meta_a
            .endpoints
            .iter()
            .filter(|e| e.role != Role::Peer && ep_a.as_ref().is_none_or(|n| *n == e.name))
        {
            for eb in meta_b
                .endpoints
                .iter()
                .filter(|e| e.role != Role::Peer && ep_b.as_ref().is_none_or(|n| *n == e.name))
            {
                let compatible = ea.interface == eb.interface
                    && matches!(
                        (ea.role, eb.role),
                        (Role::Provider, Role::Requirer) | (Role::Requirer, Role::Provider)
                    );
                if compatible {
                    candidates.push((ea.clone(), eb.clone()));
                }
            }
        }
        let (ea, eb) = match candidates.len() {
            0 => {
                return Err(ControllerError::Invalid(format!(
                    "no relations found between {a:?} and {b:?}"
                )))
            }
            1 => candidates.remove(0),
            _ => {
                let names: Vec<String> = candidates
                    .iter()
                    .map(|(x, y)| format!("{app_a}:{} {app_b}:{}", x.name, y.name))
                    .collect();
                return Err(ControllerError::Invalid(format!(
                    "ambiguous relation: {a:?} {b:?} could refer to {}",
                    names.join("; ")
                )));
            }
        };
        let id = self.inner.store.write(|tx| {
            store::add_relation(
                tx,
                &[
                    RelationEndpoint {
                        app: app_a.clone(),
                        endpoint: ea.name.clone(),
                        role: ea.role,
                        interface: ea.interface.clone(),
                    },
                    RelationEndpoint {
                        app: app_b.clone(),
                        endpoint: eb.name.clone(),
                        role: eb.role,
                        interface: eb.interface.clone(),
                    },
                ],
            )
        })?;
        self.inner.notify([app_a.as_str(), app_b.as_str()]);
        Ok(id)
    }

    /// Remove a relation by id.
    pub fn remove_relation(&self, id: i64) -> Result<()> {
        let rel = self
            .inner
            .store
            .read(|c| store::relation(c, id))?
            .ok_or_else(|| ControllerError::Invalid(format!("relation {id} not found")))?;
        if rel.is_peer() {
            return Err(ControllerError::Invalid(format!(
                "cannot remove peer relation {}",
                rel.key
            )));
        }
        self.inner
            .store
            .write(|tx| store::set_relation_dying(tx, id))?;
        self.inner
            .notify(rel.endpoints.iter().map(|e| e.app.as_str()));
        Ok(())
    }

    fn check_config(
        meta: &charmdir::CharmMeta,
        changes: &BTreeMap<String, Option<Value>>,
    ) -> Result<()> {
        for (k, v) in changes {
            let opt = meta
                .config
                .get(k)
                .ok_or_else(|| ControllerError::Invalid(format!("unknown option {k:?}")))?;
            if let Some(v) = v {
                let ok = match opt.kind.as_str() {
                    "int" => v.is_i64() || v.is_u64(),
                    "float" => v.is_number(),
                    "boolean" => v.is_boolean(),
                    _ => v.is_string(),
                };
                if !ok {
                    return Err(ControllerError::Invalid(format!(
                        "option {k:?} expected {}, got {v}",
                        opt.kind
                    )));
                }
            }
        }
        Ok(())
    }

    /// Remove the relation between two applications (`app` or `app:endpoint` each).
    pub fn remove_relation_between(&self, a: &str, b: &str) -> Result<()> {
        let matches = |spec: &str, e: &RelationEndpoint| match spec.split_once(':') {
            Some((app, ep)) => e.app == app && e.endpoint == ep,
            None => e.app == spec,
        };
        let rels = self.inner.store.read(|c| store::relations(c, None))?;
        let found: Vec<_> = rels
            .iter()
            .filter(|r| {
                !r.is_peer()
                    && r.endpoints.iter().any(|e| matches(a, e))
                    && r.endpoints.iter().any(|e| matches(b, e))
            })
            .collect();
        match found.as_slice() {
            [r] => self.remove_relation(r.id),
            [] => Err(ControllerError::Invalid(format!(
                "relation {a:?} {b:?} not found"
            ))),
            _ => Err(ControllerError::Invalid(format!(
                "ambiguous relation {a:?} {b:?}: give the endpoints"
            ))),
        }
    }

    /// A secret's decoded content (`show-secret --reveal`); the latest revision unless one is given.
    pub fn reveal_secret(
        &self,
        uri: &str,
        revision: Option<i64>,
    ) -> Result<BTreeMap<String, String>> {
        use base64::Engine as _;
        let id = uri.rsplit(['/', ':']).next().unwrap_or(uri).to_string();
        let st = &self.inner.store;
        let s = st
            .read(|c| store::secret(c, &id))?
            .ok_or_else(|| ControllerError::Invalid(format!("secret {uri:?} not found")))?;
        let content =
            st.read(|c| st.secret_content(c, &id, revision.unwrap_or(s.latest_revision)))?;
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(content
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    b64.decode(v)
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default(),
                )
            })
            .collect())
    }

    /// Set (Some) or reset (None) config options; config-changed follows when anything changed.
    pub fn set_config(&self, app: &str, changes: BTreeMap<String, Option<Value>>) -> Result<bool> {
        let ch = self.inner.store.read(|c| store::app_charm(c, app))?;
        Self::check_config(&ch.meta, &changes)?;
        let changed = self
            .inner
            .store
            .write(|tx| store::update_app_config(tx, app, &changes))?;
        if changed {
            self.inner.notify([app]);
        }
        Ok(changed)
    }

    /// Make every uniter look at its state again now (e.g. after the clock moved).
    pub fn wake_all(&self) {
        self.inner.notify_all();
    }

    /// Set a model config key (e.g. `update-status-hook-interval`).
    pub fn set_model_config(&self, key: &str, value: Value) -> Result<()> {
        self.inner
            .store
            .write(|tx| store::set_model_config(tx, key, value))?;
        self.inner.notify_all();
        Ok(())
    }

    /// Refresh an application to a new charm directory (upgrade-charm).
    pub fn refresh(&self, app: &str, charm_dir: &Path) -> Result<()> {
        let charm_dir = charm_dir
            .canonicalize()
            .map_err(|source| ControllerError::Io {
                what: format!("charm directory {}", charm_dir.display()),
                source,
            })?;
        let meta = charmdir::read_meta(&charm_dir)?;
        let sha = charmdir::hash_dir(&charm_dir)?;
        self.inner.store.write(|tx| {
            let id = store::add_charm(tx, &meta, &sha, &charm_dir)?;
            store::set_app_charm(tx, app, id)
        })?;
        self.inner.notify([app]);
        Ok(())
    }

    /// Enqueue an action on a unit; returns the task id.
    pub fn enqueue_action(&self, unit: &str, name: &str, params: Value) -> Result<i64> {
        let u = self
            .inner
            .store
            .read(|c| store::unit(c, unit))?
            .ok_or_else(|| ControllerError::Invalid(format!("unit {unit:?} not found")))?;
        let ch = self.inner.store.read(|c| store::app_charm(c, &u.app))?;
        let Some(defaults) = ch.meta.actions.get(name) else {
            return Err(ControllerError::Invalid(format!(
                "action {name:?} not defined on unit {unit:?}"
            )));
        };
        let mut p = serde_json::Map::new();
        for (k, v) in defaults {
            p.insert(k.clone(), v.clone());
        }
        match params {
            Value::Object(m) => p.extend(m),
            Value::Null => {}
            other => {
                return Err(ControllerError::Invalid(format!(
                    "action parameters must be a map, got {other}"
                )))
            }
        }
        let (_, task) = self.inner.store.write(|tx| {
            store::enqueue_action(tx, unit, name, &Value::Object(p), self.inner.clock.now_ms())
        })?;
        self.inner.notify([u.app.as_str()]);
        Ok(task)
    }

    /// An application's effective config: every option with its value (user
    /// set, else the charm default, else null) and whether the user set it.
    pub fn config(&self, app: &str) -> Result<BTreeMap<String, (Value, bool)>> {
        let ch = self.inner.store.read(|c| store::app_charm(c, app))?;
        let (user, _) = self.inner.store.read(|c| store::app_config(c, app))?;
        Ok(ch
            .meta
            .config
            .iter()
            .map(|(k, o)| match user.get(k) {
                Some(v) => (k.clone(), (v.clone(), true)),
                None => (k.clone(), (o.default.clone().unwrap_or(Value::Null), false)),
            })
            .collect())
    }

    /// Tasks of a unit (or all), newest first.
    pub fn tasks(&self, unit: Option<&str>) -> Result<Vec<TaskRecord>> {
        let ids: Vec<i64> = self.inner.store.read(|c| {
            let mut st =
                c.prepare("SELECT id FROM task WHERE ?1 IS NULL OR unit=?1 ORDER BY id DESC")?;
            let v = st
                .query_map([unit], |r| r.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok(v)
        })?;
        ids.into_iter().map(|id| self.task(id)).collect()
    }

    /// Run a shell command in a unit's hook context (`juju exec`): hook tools
    /// work, changes commit if it exits 0, and it never runs alongside a hook.
    /// Results carry `return-code`, `stdout` and `stderr`.
    pub async fn exec(&self, unit: &str, command: &str, timeout: Duration) -> Result<TaskRecord> {
        let u = self
            .inner
            .store
            .read(|c| store::unit(c, unit))?
            .ok_or_else(|| ControllerError::Invalid(format!("unit {unit:?} not found")))?;
        let params = serde_json::json!({ "command": command });
        let (_, id) = self.inner.store.write(|tx| {
            store::enqueue_action(
                tx,
                unit,
                crate::uniter::EXEC_TASK,
                &params,
                self.inner.clock.now_ms(),
            )
        })?;
        self.inner.notify([u.app.as_str()]);
        self.wait_task(id, timeout).await
    }

    /// A task's current record.
    pub fn task(&self, id: i64) -> Result<TaskRecord> {
        self.inner
            .store
            .read(|c| store::task(c, id))?
            .ok_or_else(|| ControllerError::Invalid(format!("task {id} not found")))
    }

    /// Wait until a task completes or fails.
    pub async fn wait_task(&self, id: i64, timeout: Duration) -> Result<TaskRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let t = self.task(id)?;
            if matches!(t.status.as_str(), "completed" | "failed" | "aborted") {
                return Ok(t);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ControllerError::Timeout(t.unit));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Enqueue an action and wait for its result.
    pub async fn run_action(
        &self,
        unit: &str,
        name: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<TaskRecord> {
        let id = self.enqueue_action(unit, name, params)?;
        self.wait_task(id, timeout).await
    }

    /// Mark a unit in error resolved: retry the failed hook, or skip it.
    pub fn resolve(&self, unit: &str, retry: bool) -> Result<()> {
        if self.inner.store.read(|c| store::unit(c, unit))?.is_none() {
            return Err(ControllerError::Invalid(format!("unit {unit:?} not found")));
        }
        if self
            .inner
            .store
            .read(|c| store::uniter_state(c, unit))?
            .error
            .is_none()
        {
            return Err(ControllerError::Invalid(format!(
                "unit {unit:?} is not in an error state"
            )));
        }
        let r = if retry {
            Resolved::Retry
        } else {
            Resolved::NoRetry
        };
        let app = unit.split('/').next().unwrap_or("");
        self.inner
            .store
            .write(|tx| store::set_resolved(tx, unit, r))?;
        self.inner.notify([app]);
        Ok(())
    }

    /// Everything `ward status` shows.
    pub fn status(&self) -> Result<StatusSnapshot> {
        let s = &self.inner.store;
        s.read(|c| {
            let (uuid, model): (String, String) =
                c.query_row("SELECT uuid, name FROM model", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            let mut apps = Vec::new();
            for a in store::applications(c)? {
                let ch = store::app_charm(c, &a)?;
                let version: String = c.query_row(
                    "SELECT workload_version FROM application WHERE name=?1",
                    [&a],
                    |r| r.get(0),
                )?;
                let leader = store::leader(c, &a)?;
                let mut units = Vec::new();
                for u in store::units(c, Some(&a))? {
                    let mut workload = store::status(c, &format!("unit:{}", u.name))?;
                    let agent = store::status(c, &format!("agent:{}", u.name))?;
                    if agent.status == "error" {
                        workload = agent.clone();
                    }
                    let ports = store::ports(c, &u.name)?
                        .iter()
                        .map(|p| p.to_string())
                        .collect();
                    units.push(UnitStatus {
                        leader: leader.as_deref() == Some(u.name.as_str()),
                        life: life_str(u.life),
                        address: u.address,
                        name: u.name,
                        workload,
                        agent,
                        ports,
                    });
                }
                let mut status = store::status(c, &format!("app:{a}"))?;
                if status.status == "unknown" {
                    // As Juju: without a leader-set status, the app shows its
                    // units' most severe workload status.
                    let rank = |s: &str| match s {
                        "error" => 6,
                        "blocked" => 5,
                        "maintenance" => 4,
                        "waiting" => 3,
                        "active" => 2,
                        "terminated" => 1,
                        _ => 0,
                    };
                    if let Some(u) = units.iter().max_by_key(|u| rank(&u.workload.status)) {
                        if rank(&u.workload.status) > 0 {
                            status = u.workload.clone();
                        }
                    }
                }
                apps.push(AppStatus {
                    name: a,
                    charm: ch.meta.name,
                    charm_rev: ch.revision,
                    version,
                    status,
                    units,
                });
            }
            let relations = store::relations(c, None)?
                .into_iter()
                .map(|r| RelationStatus {
                    id: r.id,
                    // The provider first, as `juju status` lists "Integration provider".
                    endpoints: {
                        let mut eps: Vec<_> = r.endpoints.iter().collect();
                        eps.sort_by_key(|e| e.role != crate::charmdir::Role::Provider);
                        eps.iter()
                            .map(|e| format!("{}:{}", e.app, e.endpoint))
                            .collect()
                    },
                    interface: r
                        .endpoints
                        .first()
                        .map(|e| e.interface.clone())
                        .unwrap_or_default(),
                    kind: if r.is_peer() {
                        "peer".into()
                    } else {
                        "regular".into()
                    },
                    life: life_str(r.life),
                })
                .collect();
            Ok(StatusSnapshot {
                model,
                model_uuid: uuid,
                applications: apps,
                relations,
            })
        })
        .map_err(Into::into)
    }

    /// All secrets, without content.
    pub fn secrets(&self) -> Result<Vec<SecretSummary>> {
        Ok(self.inner.store.read(|c| {
            store::secrets(c)?
                .into_iter()
                .map(|s| {
                    Ok(SecretSummary {
                        uri: s.uri(),
                        grants: store::secret_grants(c, &s.id)?,
                        owner_kind: s.owner_kind,
                        owner: s.owner,
                        label: s.label,
                        description: s.description,
                        rotation: s.rotate_policy,
                        revision: s.latest_revision,
                        updated: s.updated,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })?)
    }

    /// Status history of a unit's workload (`unit:<u>`), agent (`agent:<u>`) or app (`app:<a>`).
    pub fn status_history(&self, entity: &str) -> Result<Vec<store::StatusInfo>> {
        Ok(self
            .inner
            .store
            .read(|c| store::status_history(c, entity))?)
    }

    /// The persisted uniter state of a unit (what it has been told).
    pub fn uniter_state(&self, unit: &str) -> Result<crate::uniter::state::LocalState> {
        Ok(self.inner.store.read(|c| store::uniter_state(c, unit))?)
    }

    /// Relation data of one bag (`owner` is a unit or application name).
    pub fn relation_data(&self, relation: i64, owner: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.inner.store.read(|c| store::bag(c, relation, owner))?.0)
    }

    /// True when every unit is idle: its uniter waits with nothing to run, it
    /// is not in error, and all its actions finished.
    pub fn is_settled(&self) -> Result<bool> {
        self.settled_now()
    }

    /// Waits until the model is settled (see [`Controller::is_settled`]), waking only
    /// when a uniter goes idle or wakes rather than polling the store.
    pub async fn wait_settled(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.inner.idle_changed.subscribe();
        loop {
            rx.borrow_and_update();
            if self.settled_now()? {
                return Ok(());
            }
            // A hook may also be pending with every uniter still idle (the change was
            // written but not yet seen): look again shortly even without a wake-up.
            let step = Duration::from_millis(50)
                .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            if tokio::time::timeout(step, rx.changed()).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return Err(ControllerError::NotSettled(timeout));
            }
        }
    }

    fn settled_now(&self) -> Result<bool> {
        let now = self.inner.clock.now_ms();
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Ok(self.inner.store.read(|c| {
            for u in store::units(c, None)? {
                if !idle.contains(&u.name) {
                    return Ok(false);
                }
                let Some(mut r) = store::remote_state(c, &u.name, now, &Default::default())? else {
                    continue;
                };
                r.update_status_interval = 0;
                let l = store::uniter_state(c, &u.name)?;
                if l.error.is_some() || crate::uniter::state::next_hook(&r, &l).is_some() {
                    return Ok(false);
                }
            }
            Ok(true)
        })?)
    }
}
