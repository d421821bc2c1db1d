//! Ward's PostgreSQL charm: PostgreSQL 15 managed by Patroni with its raft DCS among the
//! application's units, in the `postgresql` workload container driven through Pebble.
//!
//! - The leader makes the system users' passwords (operator, replication, rewind,
//!   monitoring, backup, and Patroni's own) and keeps them in an application-owned secret
//!   whose id it publishes in the peer relation's application bag.
//! - Every unit publishes its address in its peer bag. The leader bootstraps the cluster.
//!   As soon as its Patroni holds the cluster's initialize key in raft (a second or two
//!   after it starts, well before initdb is done) its first hook ends, publishing the
//!   users' secret and its address together; the others then join (raft partners =
//!   peers) while it bootstraps, and Patroni makes them streaming replicas once there is
//!   a primary to copy.
//! - No hook waits for a bootstrap or a join to finish: Patroni's on_start, on_restart
//!   and on_role_change callbacks record a Pebble custom notice, and the hook it brings
//!   finds the member running (the leader then marks the cluster initialised, makes the
//!   roles Patroni does not, and serves clients). Until then the unit says, in
//!   maintenance, how far Patroni is.
//! - patroni.yml (0600, owned by postgres) lives in the `pgdata` storage; a change is
//!   pushed and Patroni reloads it (SIGHUP).
//! - A unit being removed hands the primary role over (Patroni switchover), leaves the
//!   raft cluster while the others can still agree on it, then stops Patroni; the leader
//!   drops a departed member from raft if it could not.
//! - Statuses say what the unit waits for, why it is blocked, or its role.

pub mod fakes;
pub mod patroni;
pub mod settings;
pub mod sql;
pub mod workload;

use charm::{
    Bag, Charm, Context, Error, Event, LogLevel, Result, SecretOptions, SecretRead, Status,
};
use serde_json::json;

use interfaces::pgbouncer_auth;
use interfaces::postgresql_client::{self as client, DatabaseRequest};
use interfaces::postgresql_provider as provider;
use interfaces::tls_requirer::TlsRequirer;

use crate::patroni::{Member, Passwords, PatroniApi, Progress};
use crate::sql::Sql;
use crate::workload::Workload;

/// The peer relation.
pub const PEER: &str = "database-peers";
/// The workload container.
pub const CONTAINER: &str = "postgresql";
/// The label of the application secret holding the system users' passwords.
pub const USERS_LABEL: &str = "postgresql-system-users";
/// Peer application bag key: the id of that secret.
pub const USERS_KEY: &str = "system-users-secret";
/// Peer application bag key: set by the leader once its Patroni bootstrapped the cluster.
pub const INITIALISED_KEY: &str = "cluster-initialised";
/// Peer application bag key: the address of the unit that bootstraps (or bootstrapped) the
/// cluster, which every joining unit's raft must have among its partners. The leader sets
/// it as soon as its Patroni holds the cluster's initialize key in raft, before the
/// bootstrap ends: a unit that joins through that raft then waits, in Patroni, for the
/// primary and copies it; it cannot bootstrap a cluster of its own.
pub const BOOTSTRAP_ADDRESS_KEY: &str = "bootstrap-address";
/// The system users whose passwords the charm keeps.
pub const SYSTEM_USERS: [&str; 6] = [
    "operator",
    "replication",
    "rewind",
    "monitoring",
    "backup",
    "patroni",
];

/// The tls-certificates endpoint.
pub const CERTIFICATES: &str = "certificates";
/// The client endpoint (postgresql_client).
pub const DATABASE: &str = "database";
/// Peer application bag key: set once the monitoring and backup roles exist.
pub const ROLES_KEY: &str = "system-roles-created";
/// Peer unit bag key: changed when Patroni reports a role change of the unit, so that
/// the leader republishes clients' endpoints.
pub const ROLE_CHANGED_KEY: &str = "role-changed";
/// Stored-state key: set once this unit, being removed, has left the cluster; from then on
/// no hook starts Patroni again (the `restart` peer's departed, relation-broken, …).
pub const LEFT_KEY: &str = "left-cluster";
/// Peer application bag key: bumped when the system users' passwords change.
pub const USERS_REVISION_KEY: &str = "system-users-revision";
/// Roles a client may ask for in `extra-user-roles`. No SUPERUSER: PgBouncer gets the
/// auth user and function it needs through `interfaces::pgbouncer_auth` instead.
pub const ALLOWED_EXTRA_ROLES: [&str; 2] = ["CREATEDB", "CREATEROLE"];

/// How long a hook waits for Patroni to flag a restart after a restart-only setting
/// changed (its loop runs every 5 s).
const PENDING_WAIT: std::time::Duration = std::time::Duration::from_secs(12);
/// How long a hook waits for Patroni to report the unit running after starting it.
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(90);
/// How long the leader's hook that first starts Patroni waits for it to hold the cluster's
/// initialize key (raft up, first loop), so that joining units may start (about 2 s).
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// How often a hook asks Patroni how far it is.
const POLL: std::time::Duration = std::time::Duration::from_millis(200);
/// How long a departing primary waits for another member to take over.
const SWITCHOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The charm.
#[derive(Debug)]
pub struct PostgreSql {
    workload: Box<dyn Workload>,
    patroni: Box<dyn PatroniApi>,
    sql: Box<dyn Sql>,
    start_wait: std::time::Duration,
    status: Option<Status>,
    /// A password set in this hook (secret writes are only visible after the hook).
    password_override: Option<(String, String)>,
    /// The `database` relation being broken in this hook (no longer served).
    broken: Option<u32>,
    /// The `certificates` relation is being broken in this hook (its certificate no
    /// longer used, though the relation is still listed).
    certificates_broken: bool,
    /// The peer unit departing in this hook (no longer a raft partner).
    departing: Option<String>,
    /// Whether this unit serves TLS (set by reconcile).
    tls_on: bool,
    /// The CA of this unit's certificate, for clients' `secret-tls`.
    tls_ca: Option<String>,
    /// PostgreSQL's version as Patroni reports it.
    version: Option<String>,
}

impl Default for PostgreSql {
    /// The charm over the real workload: Pebble, Patroni's REST API, psql.
    fn default() -> Self {
        Self::with_backends(
            Box::new(workload::PebbleWorkload::new(CONTAINER, "postgres")),
            Box::new(patroni::Rest::default()),
            Box::new(sql::Psql::new(CONTAINER, "postgres")),
        )
    }
}

/// A random password: 32 letters and digits from the OS's generator.
fn random_password() -> String {
    interfaces::scram::random_password(interfaces::scram::PASSWORD_LENGTH)
}

fn secret_key(user: &str) -> String {
    format!("{user}-password")
}

impl PostgreSql {
    /// The charm over the given workload, Patroni API and SQL runner (fakes in tests).
    pub fn with_backends(
        workload: Box<dyn Workload>,
        patroni: Box<dyn PatroniApi>,
        sql: Box<dyn Sql>,
    ) -> Self {
        Self {
            workload,
            patroni,
            sql,
            start_wait: START_WAIT,
            status: None,
            password_override: None,
            broken: None,
            certificates_broken: false,
            departing: None,
            tls_on: false,
            tls_ca: None,
            version: None,
        }
    }

    /// How long a hook waits for Patroni to report the member running (90 s by default).
    pub fn with_start_wait(mut self, wait: std::time::Duration) -> Self {
        self.start_wait = wait;
        self
    }

    fn peer_app(&self, ctx: &mut Context<'_>) -> Result<Option<(charm::RelationId, Bag)>> {
        match ctx.relation(PEER)? {
            Some(rel) => {
                let bag = ctx.app_data(&rel)?;
                Ok(Some((rel, bag)))
            }
            None => Ok(None),
        }
    }

    /// The leader creates the system users' secret once.
    fn ensure_users(&self, ctx: &mut Context<'_>) -> Result<()> {
        if !ctx.is_leader()? {
            return Ok(());
        }
        let Some((rel, bag)) = self.peer_app(ctx)? else {
            return Ok(());
        };
        if bag.contains_key(USERS_KEY) {
            return Ok(());
        }
        let content: Bag = SYSTEM_USERS
            .iter()
            .map(|u| (secret_key(u), random_password()))
            .collect();
        ctx.publish_app_secret(
            &rel,
            USERS_KEY,
            &content,
            USERS_LABEL,
            "PostgreSQL system users' passwords",
        )?;
        ctx.log(LogLevel::Info, "created the system users' passwords")?;
        Ok(())
    }

    fn passwords(&self, ctx: &mut Context<'_>) -> Result<Option<Bag>> {
        let Some((_, bag)) = self.peer_app(ctx)? else {
            return Ok(None);
        };
        let Some(id) = bag.get(USERS_KEY).cloned() else {
            return Ok(None);
        };
        ctx.get_secret(Some(&id), None, SecretRead::Refresh)
            .map(Some)
    }

    fn address(&self, ctx: &mut Context<'_>) -> Result<String> {
        ctx.bind_address(PEER)
    }

    fn waiting(&mut self, why: &str) -> Result<()> {
        self.status = Some(Status::waiting(why));
        Ok(())
    }

    /// Patroni is on its way: the hook ends here, and Patroni's callback (on_start,
    /// on_restart, on_role_change: a Pebble custom notice) brings the hook that finds it
    /// running.
    fn in_progress(&mut self, what: &str) -> Result<()> {
        self.status = Some(Status::maintenance(what));
        Ok(())
    }

    /// Asks Patroni how far it is until it runs, bootstraps or, unless `claiming`, is on
    /// its way there (waiting for a primary, copying it; or, when `fresh` (just started,
    /// or without data yet), not answering yet), or the wait runs out. `claiming`: the
    /// leader's first start, which waits until Patroni holds the initialize key.
    fn await_patroni(
        &self,
        address: &str,
        fresh: bool,
        claiming: bool,
        initialised: bool,
    ) -> Progress {
        let wait = if claiming {
            self.start_wait.min(CLAIM_WAIT)
        } else {
            self.start_wait
        };
        let deadline = std::time::Instant::now() + wait;
        loop {
            let progress = patroni::progress(self.patroni.as_ref(), address, initialised);
            let done = match &progress {
                Progress::Running(_) | Progress::Bootstrapping => true,
                // Each ends with on_start once PostgreSQL runs.
                Progress::WaitingForPrimary | Progress::Copying => !claiming,
                // Not waited for while Patroni starts for the first time (the API answers
                // once raft is up): a member that ran, stopped or crashed is waited for.
                Progress::Down(_) => fresh && !claiming,
                // A start that follows a role change calls on_role_change before PostgreSQL
                // runs, and nothing after: wait for it (seconds).
                Progress::Starting => false,
            };
            if done || std::time::Instant::now() >= deadline {
                return progress;
            }
            std::thread::sleep(POLL);
        }
    }

    fn reconcile(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        let settings = settings::settings(ctx.config()?, settings::unit_memory_mb())?;
        self.ensure_users(ctx)?;
        let Some(secret) = self.passwords(ctx)? else {
            return self.waiting("waiting for the leader to create the system users");
        };
        let mut secret = secret;
        if let Some((user, password)) = &self.password_override {
            secret.insert(secret_key(user), password.clone());
        }
        let pw = |user: &str| secret.get(&secret_key(user)).cloned().unwrap_or_default();
        let passwords = Passwords {
            operator: pw("operator"),
            replication: pw("replication"),
            rewind: pw("rewind"),
            patroni: pw("patroni"),
        };
        let address = self.address(ctx)?;
        let Some((rel, app_bag)) = self.peer_app(ctx)? else {
            return self.waiting("waiting for the peer relation");
        };
        if ctx.unit_data(&rel)?.get("address") != Some(&address) {
            let mut mine = Bag::new();
            mine.insert("address".into(), address.clone());
            ctx.set_unit_data(&rel, &mine)?;
        }
        let mut peers = Vec::new();
        for unit in ctx.relation_units(&rel)? {
            if self.departing.as_ref() == Some(&unit) {
                continue;
            }
            if let Some(a) = ctx.remote_unit_data(&rel, &unit)?.get("address") {
                peers.push(a.clone());
            }
        }
        let leader = ctx.is_leader()?;
        let initialised = app_bag.get(INITIALISED_KEY).is_some_and(|v| v == "true");
        if let Some(a) = app_bag.get(BOOTSTRAP_ADDRESS_KEY) {
            if *a != address && !peers.contains(a) {
                if leader && initialised {
                    // The member that bootstrapped the cluster was removed: joining units
                    // find the cluster through this one (the leader is a member) instead.
                    let mut data = Bag::new();
                    data.insert(BOOTSTRAP_ADDRESS_KEY.into(), address.clone());
                    ctx.set_app_data(&rel, &data)?;
                } else {
                    peers.push(a.clone());
                }
            }
        }
        peers.retain(|p| *p != address);
        peers.sort();
        peers.dedup();
        if !leader && !app_bag.contains_key(BOOTSTRAP_ADDRESS_KEY) {
            // Started without the bootstrap member among its raft partners, this unit's raft
            // could form a cluster of its own (or one without quorum). The leader publishes
            // the address once its Patroni holds the cluster's initialize key.
            return self.waiting(if initialised {
                "waiting for the address of the bootstrapped member"
            } else {
                "waiting for the leader to bootstrap the cluster"
            });
        }
        if !self.workload.can_connect() {
            return self.waiting("waiting for the postgresql container");
        }
        let tls = self.tls(ctx, &address)?;
        self.tls_on = tls;
        let units = peers.len() + 1;
        let member = Member {
            scope: ctx.app_name(),
            name: ctx.unit_name().replace('/', "-"),
            address: &address,
            peers,
            tls,
        };
        for (path, script) in [
            (patroni::ROLE_CHANGE_SCRIPT, patroni::role_change_script()),
            // The service's command.
            (patroni::RAFT_SCRIPT, patroni::raft_member_script()),
        ] {
            if self.workload.pull(path).as_deref() != Some(script.as_bytes()) {
                self.workload.push_private(path, script.as_bytes())?;
            }
        }
        let config = patroni::config(&member, &settings, &passwords);
        let current = self.workload.pull(patroni::CONFIG_PATH);
        let changed = current.as_deref() != Some(config.as_bytes());
        if changed {
            self.workload
                .push_private(patroni::CONFIG_PATH, config.as_bytes())?;
        }
        self.workload
            .add_layer("postgresql", &patroni::layer(&address, tls))?;
        let was_running = self.workload.is_running("postgresql");
        self.workload.replan()?;
        let started = !was_running && self.workload.is_running("postgresql");
        let starting = if leader && !initialised {
            "bootstrapping the cluster: Patroni runs initdb"
        } else {
            "joining the cluster: Patroni starts"
        };
        if started {
            let event = ctx.event().juju_name();
            ctx.log(LogLevel::Info, &format!("started Patroni ({event})"))?;
            // Said at once (status-set is not held back to the end of the hook): the
            // leader's hook waits a moment for its Patroni to claim the bootstrap.
            ctx.set_unit_status(Status::maintenance(starting))?;
        }
        if changed && was_running {
            // Patroni re-reads patroni.yml on SIGHUP.
            let _ = self.workload.signal("SIGHUP", "postgresql");
        }
        // The API serves HTTPS from the reload on (the status loop below waits for it).
        self.patroni
            .use_ca(if tls { self.tls_ca.as_deref() } else { None });
        // The leader's first start: the units waiting to join may start once its Patroni
        // holds the cluster's initialize key, long before the bootstrap ends.
        let claiming = leader && !initialised && !app_bag.contains_key(BOOTSTRAP_ADDRESS_KEY);
        // Without a data directory this member has never run, and the leader of a cluster
        // not initialised yet is bootstrapping it: a Patroni that does not answer (its
        // raft joining; its API switching to HTTPS on a reload) is on its way, and
        // on_start comes after that.
        let fresh = started
            || (leader && !initialised)
            || self
                .workload
                .pull(&format!("{}/PG_VERSION", patroni::DATA_DIR))
                .is_none();
        let status = match self.await_patroni(&address, fresh, claiming, initialised) {
            Progress::Running(status) => Ok(status),
            Progress::Bootstrapping => {
                if claiming {
                    let mut data = Bag::new();
                    data.insert(BOOTSTRAP_ADDRESS_KEY.into(), address.clone());
                    ctx.set_app_data(&rel, &data)?;
                    ctx.log(
                        LogLevel::Info,
                        "Patroni holds the cluster's initialize key: units may join while it bootstraps",
                    )?;
                }
                return self.in_progress("bootstrapping the cluster: Patroni runs initdb");
            }
            Progress::WaitingForPrimary => {
                return self.in_progress("joining the cluster: waiting for the primary")
            }
            Progress::Copying => {
                return self.in_progress("joining the cluster: Patroni copies the primary's data")
            }
            Progress::Starting => return self.in_progress("starting PostgreSQL"),
            // Starting: the API answers once raft is up; the notice comes after that.
            Progress::Down(_) if fresh => return self.in_progress(starting),
            Progress::Down(why) => Err(why),
        };
        match status {
            Ok(status) => {
                let role = status.role;
                self.version = status.version;
                ctx.set_workload_version(self.version.as_deref().unwrap_or("15"))?;
                if leader {
                    // Not fatal: right after patroni.yml changed (a new Patroni password)
                    // Patroni may not have reloaded yet; the next hook tries again. A
                    // failed hook would also throw away what it wrote, secrets included.
                    match self.apply_dynamic_config(&address, &settings, units, &passwords.patroni)
                    {
                        Ok(params_changed) => {
                            match self.restart_pending(&address, &passwords.patroni, params_changed)
                            {
                                Ok(restarted) if !restarted.is_empty() => ctx.log(
                                    LogLevel::Info,
                                    &format!(
                                        "restarted PostgreSQL for new settings, one member at a time: {}",
                                        restarted.join(", ")
                                    ),
                                )?,
                                Ok(_) => {}
                                Err(e) => ctx.log(
                                    LogLevel::Warning,
                                    &format!("PostgreSQL restart for new settings not done yet: {e}"),
                                )?,
                            }
                        }
                        Err(e) => ctx.log(
                            LogLevel::Warning,
                            &format!("Patroni's cluster settings not applied yet: {e}"),
                        )?,
                    }
                }
                if leader && role == "primary" && !app_bag.contains_key(ROLES_KEY) {
                    // The roles Patroni does not make: monitoring (pg_monitor) and backup.
                    let script = format!(
                        "SELECT format('CREATE ROLE %I LOGIN', 'monitoring') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'monitoring')\\gexec\n\
                         ALTER ROLE monitoring WITH LOGIN PASSWORD {};\nGRANT pg_monitor TO monitoring;\n\
                         SELECT format('CREATE ROLE %I LOGIN', 'backup') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'backup')\\gexec\n\
                         ALTER ROLE backup WITH LOGIN REPLICATION PASSWORD {};\nGRANT pg_read_all_data TO backup;\n",
                        sql::literal(&interfaces::scram::verifier(&pw("monitoring"))),
                        sql::literal(&interfaces::scram::verifier(&pw("backup"))),
                    );
                    // Not fatal either: PostgreSQL may not take connections yet right after
                    // Patroni reports it running; the next hook tries again.
                    match self.sql.run(
                        &address,
                        "operator",
                        &passwords.operator,
                        "postgres",
                        &script,
                    ) {
                        Ok(_) => {
                            let mut data = Bag::new();
                            data.insert(ROLES_KEY.into(), "true".into());
                            ctx.set_app_data(&rel, &data)?;
                        }
                        Err(e) => ctx.log(
                            LogLevel::Warning,
                            &format!("monitoring and backup roles not made yet: {e}"),
                        )?,
                    }
                }
                if leader && !initialised && role == "primary" {
                    let mut data = Bag::new();
                    data.insert(INITIALISED_KEY.into(), "true".into());
                    data.insert(BOOTSTRAP_ADDRESS_KEY.into(), address.clone());
                    ctx.set_app_data(&rel, &data)?;
                }
                let label = if role == "primary" {
                    "Primary"
                } else {
                    "Replica"
                };
                self.status = Some(Status::active(label));
                if settings.require_tls && !tls {
                    self.status = Some(
                        if ctx.relation(CERTIFICATES)?.is_none() || self.certificates_broken {
                            Status::blocked("connection_require_tls is set: relate certificates to a tls-certificates provider")
                        } else {
                            Status::waiting(
                                "connection_require_tls is set: waiting for a certificate",
                            )
                        },
                    );
                }
                if leader {
                    // Not fatal: a failed hook would also throw away what this hook
                    // wrote (in the first one, the system users' secret Patroni has
                    // just bootstrapped with). The client's relation says why instead.
                    if let Err(e) = self.serve_clients(ctx, &address, &passwords.operator) {
                        let msg = format!("cannot serve {DATABASE} clients yet: {e}");
                        ctx.log(LogLevel::Error, &msg)?;
                        self.status = Some(Status::waiting(msg));
                    }
                }
            }
            Err(why) => self.status = Some(Status::waiting(format!("waiting for Patroni: {why}"))),
        }
        Ok(())
    }

    /// Patroni keeps the cluster-wide settings in its DCS: `bootstrap.dcs` only seeds them,
    /// so later config changes go through `PATCH /config`.
    fn apply_dynamic_config(
        &mut self,
        address: &str,
        settings: &settings::Settings,
        units: usize,
        patroni_pw: &str,
    ) -> Result<bool> {
        let (code, current) = self
            .patroni
            .request(address, "GET", "/config", None, None)
            .map_err(|e| Error::Charm(format!("cannot read Patroni's config: {e}")))?;
        if code != 200 {
            return Err(Error::Charm(format!(
                "Patroni's GET /config answered {code}"
            )));
        }
        // Strict mode with no replica would refuse every write.
        let strict = settings.synchronous_mode && settings.synchronous_mode_strict && units > 1;
        let node_count = settings.synchronous_node_count.resolve(units);
        let dcs_params = patroni::dcs_parameters(settings);
        let wanted = json!({
            "synchronous_mode": settings.synchronous_mode,
            "synchronous_mode_strict": strict,
            "synchronous_node_count": node_count,
            "maximum_lag_on_failover": settings.maximum_lag_on_failover,
            "postgresql": {"parameters": dcs_params},
        });
        let current_params = &current["postgresql"]["parameters"];
        let params_differ = dcs_params.as_object().is_some_and(|w| {
            w.iter().any(|(k, v)| {
                current_params
                    .get(k)
                    .map(|c| c.to_string().trim_matches('"').to_string())
                    != Some(v.to_string().trim_matches('"').to_string())
            })
        });
        let differs = params_differ
            || wanted.as_object().is_some_and(|w| {
                w.iter()
                    .filter(|(k, _)| *k != "postgresql")
                    .any(|(k, v)| current.get(k).unwrap_or(&serde_json::Value::Null) != v)
            });
        if !differs {
            return Ok(false);
        }
        let (code, body) = self
            .patroni
            .request(address, "PATCH", "/config", Some(&wanted), Some(patroni_pw))
            .map_err(|e| Error::Charm(format!("cannot change Patroni's config: {e}")))?;
        if code != 200 {
            return Err(Error::Charm(format!(
                "Patroni refused the config change ({code}): {body}"
            )));
        }
        Ok(params_differ)
    }

    /// Restarts, one member at a time (replicas first, the primary last), the members
    /// Patroni says need it for settings that only take effect on restart. After a
    /// change of those settings (`just_changed`) it first gives Patroni's loop a moment to
    /// notice. Otherwise, when no member's entry in `GET /cluster` says `pending_restart`,
    /// it asks no member (that was one request per member in every leader hook, seconds
    /// when one answered slowly, as a joining member does). Returns the members
    /// restarted.
    fn restart_pending(
        &self,
        address: &str,
        patroni_pw: &str,
        just_changed: bool,
    ) -> Result<Vec<String>> {
        let pending = |host: &str| {
            self.patroni
                .request(host, "GET", "/patroni", None, None)
                .map(|(_, v)| v["pending_restart"].as_bool() == Some(true))
                .unwrap_or(false)
        };
        if just_changed {
            let deadline = std::time::Instant::now() + self.start_wait.min(PENDING_WAIT);
            while !pending(address) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
        let (_, cluster) = self
            .patroni
            .request(address, "GET", "/cluster", None, None)
            .map_err(|e| Error::Charm(format!("cannot ask Patroni for the members: {e}")))?;
        let flagged = cluster["members"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m["pending_restart"].as_bool() == Some(true))
        });
        if !just_changed && !flagged {
            return Ok(Vec::new());
        }
        let mut members = patroni::members_of(&cluster);
        members.sort_by_key(|m| patroni::is_primary_role(&m.1));
        let mut restarted = Vec::new();
        for (name, _, host) in members {
            if host.is_empty() || !pending(&host) {
                continue;
            }
            let (code, body) = self
                .patroni
                .request(
                    &host,
                    "POST",
                    "/restart",
                    Some(&json!({})),
                    Some(patroni_pw),
                )
                .map_err(|e| Error::Charm(format!("cannot ask {name} to restart: {e}")))?;
            if code != 200 {
                return Err(Error::Charm(format!(
                    "Patroni refused to restart {name} ({code}): {body}"
                )));
            }
            restarted.push(patroni::unit_of(&name));
        }
        Ok(restarted)
    }

    /// TLS from `certificates`: a CSR for this unit's address; once issued, the key,
    /// certificate and CA are written into the workload (0600, owned by postgres) and
    /// PostgreSQL serves TLS. Returns whether the files are in place.
    fn tls(&mut self, ctx: &mut Context<'_>, address: &str) -> Result<bool> {
        if self.certificates_broken {
            // PostgreSQL goes back to plain TCP (pg_hba `host`); the old files stay
            // unused in storage until a new certificate replaces them.
            return Ok(false);
        }
        let request = interfaces::tls_requirer::unit_address_request(ctx.unit_name(), address)?;
        let Some(issued) = TlsRequirer::new(CERTIFICATES).reconcile(ctx, &request)? else {
            return Ok(false);
        };
        self.tls_ca = Some(issued.ca.clone());
        for (name, content) in [
            ("server.crt", issued.certificate.as_str()),
            ("server.key", issued.private_key.as_str()),
            ("ca.crt", issued.ca.as_str()),
        ] {
            let path = format!("{}/tls/{name}", patroni::STORAGE);
            if self.workload.pull(&path).as_deref() == Some(content.as_bytes()) {
                continue;
            }
            self.workload.push_private(&path, content.as_bytes())?;
        }
        Ok(true)
    }

    /// Refuses a client's request: logged, and the leader is blocked naming the relation,
    /// the client and the reason. Nothing is created for it.
    fn refuse(
        &mut self,
        ctx: &mut Context<'_>,
        rel: &charm::RelationId,
        problem: &str,
    ) -> Result<()> {
        let remote = ctx.remote_app(rel)?.unwrap_or_default();
        let msg = format!("{DATABASE}:{} from {remote}: {problem}", rel.id);
        ctx.log(LogLevel::Error, &msg)?;
        self.status = Some(Status::blocked(msg));
        Ok(())
    }

    /// The leader answers every `database` request: a database and a user of the
    /// relation's own, credentials in secrets granted to the relation, endpoints.
    fn serve_clients(
        &mut self,
        ctx: &mut Context<'_>,
        address: &str,
        operator: &str,
    ) -> Result<()> {
        let rels = ctx.relations(DATABASE)?;
        if rels.is_empty() {
            return Ok(());
        }
        let members = patroni::cluster(self.patroni.as_ref(), address)
            .map_err(|e| Error::Charm(format!("cannot ask Patroni for the members: {e}")))?;
        let Some(primary) = members
            .iter()
            .find(|m| patroni::is_primary_role(&m.1))
            .map(|m| m.2.clone())
        else {
            self.status = Some(Status::waiting("waiting for a primary to serve clients"));
            return Ok(());
        };
        let mut replicas: Vec<String> = members
            .iter()
            .filter(|m| !patroni::is_primary_role(&m.1) && !m.2.is_empty())
            .map(|m| format!("{}:{}", m.2, patroni::PG_PORT))
            .collect();
        replicas.sort();
        let endpoints = format!("{primary}:{}", patroni::PG_PORT);
        let read_only = if replicas.is_empty() {
            vec![endpoints.clone()]
        } else {
            replicas
        };
        let version = self.version.clone().unwrap_or_else(|| "15".into());
        for rel in rels {
            if self.broken == Some(rel.id) {
                continue;
            }
            let request = match DatabaseRequest::parse(&ctx.remote_app_data(&rel)?) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    self.refuse(ctx, &rel, &e.to_string())?;
                    continue;
                }
            };
            let roles = match check_request(&request) {
                Ok(roles) => roles,
                Err(problem) => {
                    self.refuse(ctx, &rel, &problem)?;
                    continue;
                }
            };
            let database = request.database.clone();
            let user = provider::client_user(rel.id);
            let existing = provider::existing_password(ctx, &rel)?;
            let password = match existing {
                Some(p) => p,
                None => {
                    let password = random_password();
                    let script = provider::create_client_script(
                        &user,
                        &database,
                        &roles,
                        &interfaces::scram::verifier(&password),
                    );
                    self.sql
                        .run(&primary, "operator", operator, "postgres", &script)?;
                    self.sql.run(
                        &primary,
                        "operator",
                        operator,
                        &database,
                        &format!("GRANT ALL ON SCHEMA public TO {};\n", sql::ident(&user)),
                    )?;
                    ctx.log(
                        LogLevel::Info,
                        &format!(
                            "created database {database} and user {user} for {DATABASE}:{}",
                            rel.id
                        ),
                    )?;
                    password
                }
            };
            let wants_auth = ctx
                .remote_app_data(&rel)?
                .get(pgbouncer_auth::AUTH_FUNCTION_KEY)
                .is_some_and(|v| v == "true");
            let mut extra_user_fields = Bag::new();
            if wants_auth {
                let auth_user = pgbouncer_auth::auth_user_for(&user);
                let auth_password = match provider::existing_user_field(
                    ctx,
                    &rel,
                    pgbouncer_auth::AUTH_PASSWORD,
                )? {
                    Some(p) => p,
                    None => {
                        let p = random_password();
                        self.install_auth(&primary, operator, &auth_user, &p, &database)?;
                        ctx.log(
                            LogLevel::Info,
                            &format!(
                                "created auth user {auth_user} and its function for {DATABASE}:{}",
                                rel.id
                            ),
                        )?;
                        p
                    }
                };
                extra_user_fields.insert(pgbouncer_auth::AUTH_USERNAME.into(), auth_user);
                extra_user_fields.insert(pgbouncer_auth::AUTH_PASSWORD.into(), auth_password);
            }
            let answer = provider::Answer {
                credentials: client::Credentials {
                    username: user.clone(),
                    password: password.clone(),
                    uris: Some(client::uri(&user, &password, &endpoints, &database)),
                    read_only_uris: Some(client::uri(
                        &user,
                        &password,
                        &read_only.join(","),
                        &database,
                    )),
                },
                tls: client::TlsInfo {
                    enabled: self.tls_on,
                    ca: self.tls_ca.clone(),
                },
                data: client::ProviderData {
                    database: database.clone(),
                    endpoints: vec![endpoints.clone()],
                    read_only_endpoints: read_only.clone(),
                    version: version.clone(),
                    secrets: Default::default(),
                },
                extra_user_fields,
            };
            provider::publish(ctx, DATABASE, &rel, &request, &answer)?;
        }
        Ok(())
    }

    /// Makes the pgbouncer auth user (a SCRAM verifier of `password`) and installs its
    /// function in template1, postgres and `database` (see `interfaces::pgbouncer_auth`).
    fn install_auth(
        &self,
        primary: &str,
        operator: &str,
        auth_user: &str,
        password: &str,
        database: &str,
    ) -> Result<()> {
        self.sql.run(
            primary,
            "operator",
            operator,
            "postgres",
            &pgbouncer_auth::auth_user_script(auth_user, &interfaces::scram::verifier(password)),
        )?;
        let mut dbs = vec!["template1", "postgres", database];
        dbs.dedup();
        for db in dbs {
            self.sql.run(
                primary,
                "operator",
                operator,
                db,
                &pgbouncer_auth::auth_function_script(auth_user),
            )?;
        }
        Ok(())
    }

    /// The primary's address, from Patroni.
    fn primary(&self, address: &str) -> Result<Option<String>> {
        let members = patroni::cluster(self.patroni.as_ref(), address)
            .map_err(|e| Error::Charm(format!("cannot ask Patroni for the members: {e}")))?;
        Ok(members
            .into_iter()
            .find(|m| patroni::is_primary_role(&m.1))
            .map(|m| m.2))
    }

    /// The leader drops a departed client's user (what it owned goes to operator).
    fn drop_client(&mut self, ctx: &mut Context<'_>, rel: &charm::RelationId) -> Result<()> {
        if !ctx.is_leader()? {
            return Ok(());
        }
        let Some(secret) = self.passwords(ctx)? else {
            return Ok(());
        };
        let operator = secret
            .get(&secret_key("operator"))
            .cloned()
            .unwrap_or_default();
        let address = self.address(ctx)?;
        let Ok(Some(primary)) = self.primary(&address) else {
            return Ok(());
        };
        let user = provider::client_user(rel.id);
        let u = sql::ident(&user);
        let dbs = self
            .sql.run(
                &primary,
                "operator",
                &operator,
                "postgres",
                &format!(
                    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND EXISTS (SELECT FROM pg_roles WHERE rolname = {});\n",
                    sql::literal(&user)
                ),
            )
            .unwrap_or_default();
        for db in dbs.lines().map(str::trim).filter(|d| !d.is_empty()) {
            let _ = self.sql.run(
                &primary,
                "operator",
                &operator,
                db,
                &provider::drop_owned_script(&user, "operator"),
            );
        }
        let auth_user = pgbouncer_auth::auth_user_for(&user);
        let a = sql::ident(&auth_user);
        let all_dbs = self
            .sql
            .run(
                &primary,
                "operator",
                &operator,
                "postgres",
                &format!(
                    "SELECT datname FROM pg_database WHERE datallowconn AND EXISTS (SELECT FROM pg_roles WHERE rolname = {});\n",
                    sql::literal(&auth_user)
                ),
            )
            .unwrap_or_default();
        for db in all_dbs.lines().map(str::trim).filter(|d| !d.is_empty()) {
            let _ = self.sql.run(
                &primary,
                "operator",
                &operator,
                db,
                &format!(
                    "{}DROP OWNED BY {a};\n",
                    pgbouncer_auth::remove_function_script(&auth_user)
                ),
            );
        }
        self.sql.run(
            &primary,
            "operator",
            &operator,
            "postgres",
            &format!("DROP ROLE IF EXISTS {u};\nDROP ROLE IF EXISTS {a};\n"),
        )?;
        ctx.log(
            LogLevel::Info,
            &format!("dropped user {user} of {DATABASE}:{}", rel.id),
        )?;
        Ok(())
    }

    /// This unit is being removed (its first peer `relation-departed`, or `pgdata`
    /// detaching when it had no peers): a primary hands its role to a replica, the member
    /// leaves the raft cluster while the others can still agree on that (two members
    /// cannot once one is gone), then Patroni stops. Later teardown hooks find it stopped
    /// and do nothing. Neither the switchover nor the raft change failing stops the
    /// removal: Patroni fails over when this member stops, and the leader drops the member
    /// from raft once it is gone.
    fn leave(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        let mut left = Bag::new();
        left.insert(LEFT_KEY.into(), "true".into());
        ctx.store(&left)?;
        self.status = Some(Status::maintenance("left the cluster, being removed"));
        if !self.workload.can_connect() || !self.workload.is_running("postgresql") {
            return Ok(());
        }
        let address = self.address(ctx)?;
        let me = ctx.unit_name().replace('/', "-");
        let password = self
            .workload
            .pull(patroni::CONFIG_PATH)
            .and_then(|c| patroni::rest_password(&c));
        let members = patroni::cluster(self.patroni.as_ref(), &address).unwrap_or_default();
        let others = members.iter().filter(|m| m.0 != me).count();
        let primary = members
            .iter()
            .any(|m| m.0 == me && patroni::is_primary_role(&m.1));
        if primary && others > 0 {
            match self.switchover(&address, &me, password.as_deref()) {
                Ok(new) => ctx.log(
                    LogLevel::Info,
                    &format!("switched over to {} before leaving", patroni::unit_of(&new)),
                )?,
                Err(e) => ctx.log(
                    LogLevel::Warning,
                    &format!("no switchover before leaving ({e}); Patroni fails over when this member stops"),
                )?,
            }
        }
        if others > 0 {
            let target = format!("{address}:{}", patroni::RAFT_PORT);
            match self.raft_remove(&target) {
                Ok(out) => ctx.log(
                    LogLevel::Info,
                    &format!("left the raft cluster ({target}: {})", out.trim()),
                )?,
                Err(e) => ctx.log(
                    LogLevel::Warning,
                    &format!("could not leave the raft cluster yet ({e}); the leader removes this member once it is gone"),
                )?,
            }
        }
        self.workload
            .add_layer("postgresql", &patroni::stopped_layer())?;
        self.workload.stop(&["postgresql"])?;
        let event = ctx.event().juju_name();
        ctx.log(
            LogLevel::Info,
            &format!("stopped Patroni ({event}): this unit left the cluster"),
        )?;
        Ok(())
    }

    /// Asks Patroni to hand the primary role from `me` to the best replica, and waits until
    /// another member is the primary; returns its name.
    fn switchover(&self, address: &str, me: &str, password: Option<&str>) -> Result<String> {
        let (code, body) = self
            .patroni
            .request(
                address,
                "POST",
                "/switchover",
                Some(&json!({ "leader": me })),
                password,
            )
            .map_err(|e| Error::Charm(format!("cannot ask Patroni to switch over: {e}")))?;
        // 503: Patroni stopped waiting for the outcome; the switchover may still happen.
        if code != 200 && code != 503 {
            return Err(Error::Charm(format!(
                "Patroni refused the switchover ({code}): {body}"
            )));
        }
        let deadline = std::time::Instant::now() + self.start_wait.min(SWITCHOVER_WAIT);
        loop {
            if let Ok(members) = patroni::cluster(self.patroni.as_ref(), address) {
                if let Some(m) = members
                    .iter()
                    .find(|m| m.0 != me && patroni::is_primary_role(&m.1))
                {
                    return Ok(m.0.clone());
                }
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Charm(format!(
                    "no other member became the primary within {:?}",
                    self.start_wait.min(SWITCHOVER_WAIT)
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    /// The CA Patroni's REST API is served under (HTTPS), from the patroni.yml and the CA
    /// file in the workload; `None` for plain HTTP.
    fn rest_ca(&self) -> Option<String> {
        let config = self.workload.pull(patroni::CONFIG_PATH)?;
        let cafile = patroni::rest_cafile(&config)?;
        let ca = self.workload.pull(&cafile)?;
        String::from_utf8(ca).ok()
    }

    /// Removes the raft member at `target` (`host:port`) through this unit's workload.
    fn raft_remove(&self, target: &str) -> Result<String> {
        let script = patroni::raft_member_script();
        if self.workload.pull(patroni::RAFT_SCRIPT).as_deref() != Some(script.as_bytes()) {
            self.workload
                .push_private(patroni::RAFT_SCRIPT, script.as_bytes())?;
        }
        self.workload
            .exec(&["/usr/bin/python3", patroni::RAFT_SCRIPT, "remove", target])
    }

    /// Another unit left: the leader makes sure its member is out of the raft cluster, so
    /// that a later removal still finds a majority. A member whose Patroni still answers
    /// is left alone: it hands over and leaves by itself (removing it first would take
    /// the primary's DCS away before its switchover).
    fn forget_member(
        &mut self,
        ctx: &mut Context<'_>,
        rel: &charm::RelationId,
        departing: &str,
    ) -> Result<()> {
        if !ctx.is_leader()?
            || !self.workload.can_connect()
            || !self.workload.is_running("postgresql")
        {
            return Ok(());
        }
        let Some(gone) = ctx
            .remote_unit_data(rel, departing)
            .ok()
            .and_then(|b| b.get("address").cloned())
        else {
            return Ok(());
        };
        if self
            .patroni
            .request(&gone, "GET", "/patroni", None, None)
            .is_ok()
        {
            return Ok(());
        }
        let target = format!("{gone}:{}", patroni::RAFT_PORT);
        match self.raft_remove(&target) {
            Ok(out) => ctx.log(
                LogLevel::Info,
                &format!("{departing} left: raft member {target} {}", out.trim()),
            )?,
            Err(e) => ctx.log(
                LogLevel::Warning,
                &format!("{departing} left but its raft member {target} was not removed: {e}"),
            )?,
        }
        Ok(())
    }

    fn action(&mut self, ctx: &mut Context<'_>, name: &str) -> Result<()> {
        match name {
            "get-password" => {
                #[derive(serde::Deserialize)]
                struct P {
                    #[serde(default = "operator")]
                    username: String,
                }
                fn operator() -> String {
                    "operator".into()
                }
                let p: P = ctx.action_params()?;
                if !SYSTEM_USERS.contains(&p.username.as_str()) {
                    return Err(Error::InvalidParams {
                        reason: format!(
                            "username {:?} is not a system user (one of {})",
                            p.username,
                            SYSTEM_USERS.join(", ")
                        ),
                    });
                }
                let Some(secret) = self.passwords(ctx)? else {
                    return Err(Error::Charm(
                        "the system users are not created yet; try again when the leader is up"
                            .into(),
                    ));
                };
                let password = secret
                    .get(&secret_key(&p.username))
                    .cloned()
                    .unwrap_or_default();
                ctx.set_results(&json!({"password": password}))
            }
            "set-password" => {
                #[derive(serde::Deserialize)]
                struct P {
                    username: String,
                    password: Option<String>,
                }
                let p: P = ctx.action_params()?;
                if !SYSTEM_USERS.contains(&p.username.as_str()) || p.username == "patroni" {
                    return Err(Error::InvalidParams {
                        reason: format!(
                            "username {:?} is not a system user whose password can be set (one of operator, replication, rewind, monitoring, backup)",
                            p.username
                        ),
                    });
                }
                if !ctx.is_leader()? {
                    return Err(Error::Charm("set-password must run on the leader (ward run postgresql/leader set-password …)".into()));
                }
                let password = p.password.unwrap_or_else(random_password);
                if password.is_empty() || password.len() > 256 {
                    return Err(Error::InvalidParams {
                        reason: "password must be 1 to 256 characters".into(),
                    });
                }
                let Some((rel, bag)) = self.peer_app(ctx)? else {
                    return Err(Error::Charm("the peer relation is not there yet".into()));
                };
                let Some(id) = bag.get(USERS_KEY).cloned() else {
                    return Err(Error::Charm("the system users are not created yet".into()));
                };
                let mut secret = ctx.get_secret(Some(&id), None, SecretRead::Refresh)?;
                let operator = secret
                    .get(&secret_key("operator"))
                    .cloned()
                    .unwrap_or_default();
                let address = self.address(ctx)?;
                let primary = self
                    .primary(&address)?
                    .ok_or_else(|| Error::Charm("the cluster has no primary right now".into()))?;
                let script = format!(
                    "SELECT format('CREATE ROLE %I LOGIN', {l}) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {l})\\gexec\nALTER ROLE {} WITH PASSWORD {};\n",
                    sql::ident(&p.username),
                    sql::literal(&interfaces::scram::verifier(&password)),
                    l = sql::literal(&p.username),
                );
                self.sql
                    .run(&primary, "operator", &operator, "postgres", &script)?;
                secret.insert(secret_key(&p.username), password.clone());
                ctx.set_secret(&id, &secret, &SecretOptions::default())?;
                // This unit's Patroni learns the new password now; the others on the
                // peer relation change below.
                self.password_override = Some((p.username.clone(), password.clone()));
                self.reconcile(ctx)?;
                let revision = bag
                    .get(USERS_REVISION_KEY)
                    .and_then(|r| r.parse::<u64>().ok())
                    .unwrap_or(0)
                    + 1;
                let mut data = Bag::new();
                data.insert(USERS_REVISION_KEY.into(), revision.to_string());
                ctx.set_app_data(&rel, &data)?;
                ctx.log(
                    LogLevel::Info,
                    &format!("rotated the password of {}", p.username),
                )?;
                ctx.set_results(&json!({
                    "result": format!("password of {} changed", p.username),
                    "password": password,
                }))
            }
            "get-primary" => {
                let address = self.address(ctx)?;
                let members = patroni::cluster(self.patroni.as_ref(), &address)
                    .map_err(|e| Error::Charm(format!("cannot ask Patroni: {e}")))?;
                let primary = members
                    .iter()
                    .find(|(_, role, _)| patroni::is_primary_role(role))
                    .map(|(n, _, _)| patroni::unit_of(n))
                    .ok_or_else(|| Error::Charm("the cluster has no primary right now".into()))?;
                ctx.set_results(&json!({"primary": primary}))
            }
            "promote-to-primary" => {
                let address = self.address(ctx)?;
                let me = ctx.unit_name().replace('/', "-");
                let members = patroni::cluster(self.patroni.as_ref(), &address)
                    .map_err(|e| Error::Charm(format!("cannot ask Patroni: {e}")))?;
                let leader = members
                    .iter()
                    .find(|(_, role, _)| patroni::is_primary_role(role))
                    .map(|(n, _, _)| n.clone())
                    .ok_or_else(|| {
                        Error::Charm("the cluster has no primary to switch over from".into())
                    })?;
                if leader == me {
                    return Err(Error::Charm(format!(
                        "{} is already the primary",
                        ctx.unit_name()
                    )));
                }
                let secret = self.passwords(ctx)?.unwrap_or_default();
                let pw = secret.get(&secret_key("patroni")).cloned();
                let (code, body) = self
                    .patroni
                    .request(
                        &address,
                        "POST",
                        "/switchover",
                        Some(&json!({"leader": leader, "candidate": me})),
                        pw.as_deref(),
                    )
                    .map_err(|e| Error::Charm(format!("cannot ask Patroni to switch over: {e}")))?;
                if code != 200 {
                    return Err(Error::Charm(format!(
                        "Patroni refused the switchover ({code}): {body}"
                    )));
                }
                ctx.set_results(&json!({"result": format!("{} is the primary", ctx.unit_name())}))
            }
            other => Err(Error::InvalidParams {
                reason: format!("unknown action {other:?}"),
            }),
        }
    }
}

impl Charm for PostgreSql {
    fn handle(&mut self, ctx: &mut Context<'_>, event: &Event) -> Result<()> {
        if !event.is_action() && ctx.stored()?.get(LEFT_KEY).is_some_and(|v| v == "true") {
            self.status = Some(Status::maintenance("left the cluster, being removed"));
            return Ok(());
        }
        // Patroni's API is reached the way the patroni.yml in place serves it.
        let ca = self.rest_ca();
        self.patroni.use_ca(ca.as_deref());
        match event {
            Event::Action { name, .. } => self.action(ctx, name),
            // Under Kubernetes `stop` also comes when a pod is only restarted: leaving
            // the cluster waits for what only removal brings.
            Event::Remove | Event::Stop => Ok(()),
            // This unit is being removed: the first relation it departs says so.
            Event::RelationDeparted(r) if r.departing_unit.as_deref() == Some(ctx.unit_name()) => {
                self.leave(ctx)
            }
            Event::StorageDetaching(_) => self.leave(ctx),
            Event::RelationDeparted(r) if r.relation.endpoint == PEER => {
                if let Some(departing) = r.departing_unit.clone() {
                    self.forget_member(ctx, &r.relation, &departing)?;
                    self.departing = Some(departing);
                }
                self.reconcile(ctx)
            }
            Event::RelationBroken(r) if r.relation.endpoint == CERTIFICATES => {
                self.certificates_broken = true;
                self.reconcile(ctx)
            }
            Event::RelationBroken(r) if r.relation.endpoint == DATABASE => {
                self.broken = Some(r.relation.id);
                self.drop_client(ctx, &r.relation)?;
                self.reconcile(ctx)
            }
            Event::PebbleCustomNotice(n) if n.key == patroni::ROLE_CHANGE_KEY => {
                // Patroni changed this member's role. The leader republishes clients'
                // endpoints in reconcile; another unit tells it through the peer relation.
                if !ctx.is_leader()? {
                    if let Some(rel) = ctx.relation(PEER)? {
                        let mut data = Bag::new();
                        // A new value each time (a repeated notice keeps its id).
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis());
                        data.insert(ROLE_CHANGED_KEY.into(), format!("{}@{now}", n.id));
                        ctx.set_unit_data(&rel, &data)?;
                    }
                }
                self.reconcile(ctx)
            }
            _ => self.reconcile(ctx),
        }
    }

    fn collect_unit_status(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        if let Some(s) = self.status.clone() {
            ctx.add_unit_status(s);
        }
        Ok(())
    }
}

/// Checks a client's request against what Ward allows: the database name, and the
/// extra roles (upper-cased) within [`ALLOWED_EXTRA_ROLES`].
pub fn check_request(request: &DatabaseRequest) -> std::result::Result<Vec<String>, String> {
    provider::check_request(request, &ALLOWED_EXTRA_ROLES, &[])
}
