//! Ward's PgBouncer charm: connection pooling in front of the postgresql charm.
//!
//! - **backend-database**: the leader asks PostgreSQL for database `pgbouncer` with
//!   `extra-user-roles: SUPERUSER` (as upstream). With that user it makes the auth user
//!   `pgbouncer_auth_<backend user>` (LOGIN only, a SCRAM verifier) and installs
//!   `<auth user>.get_auth()` (SECURITY DEFINER over pg_authid) in every database served.
//!   Clients log in with scram-sha-256 through `auth_query`; PgBouncer reaches
//!   PostgreSQL as them by SCRAM pass-through. No md5 anywhere.
//! - The app secret (id in the peer app bag) holds the auth user's password and the
//!   console users' passwords and verifiers. The auth file, 0600 and owned by postgres in
//!   the workload, is the only place the auth user's password is written as a file.
//! - **database**: per client relation the leader makes a user `relation_id_<id>` and
//!   its database on the backend, adds the database to the peer app bag's map, waits
//!   until every unit serves it, then answers with PgBouncer's endpoints and credentials
//!   in a secret granted to the relation.
//! - N workers (Pebble services `pgbouncer_<i>`) share `listen_port` with so_reuseport.
//!   A config change re-renders and reloads them (SIGHUP); the port or worker count
//!   restarts them.

pub mod config;

use std::collections::BTreeMap;

use charm::workload::{PebbleWorkload, Workload};
use charm::{Bag, Charm, Context, Error, Event, LogLevel, RelationId, Result, SecretRead, Status};
use interfaces::pgbouncer_auth;
use interfaces::postgresql_client::{self as client, DatabaseRequest, ProviderData, SecretGroup};
use interfaces::postgresql_provider as provider;
use interfaces::sql::{ident, literal, Psql, Sql};
use interfaces::tls_requirer::TlsRequirer;

use crate::config::{Render, Settings};

/// The peer relation.
pub const PEER: &str = "pgb-peers";
/// The workload container.
pub const CONTAINER: &str = "pgbouncer";
/// The backend endpoint (requires postgresql_client).
pub const BACKEND: &str = "backend-database";
/// The client endpoint (provides postgresql_client).
pub const DATABASE: &str = "database";
/// The tls-certificates endpoint.
pub const CERTIFICATES: &str = "certificates";
/// The database asked of the backend for PgBouncer itself.
pub const BACKEND_DB: &str = "pgbouncer";
/// Label of the app secret with the auth and console users' passwords.
pub const INTERNAL_LABEL: &str = "pgbouncer-internal";
/// Peer app bag key: the id of that secret.
pub const INTERNAL_KEY: &str = "internal-secret";
/// Peer app bag key: the databases served, JSON `{"<relation id>": "<database>"}`.
pub const DATABASES_KEY: &str = "databases";
/// Peer unit bag key: a digest of the databases map this unit serves.
pub const SERVED_KEY: &str = "databases-served";
/// Peer unit bag key: the unit's address.
pub const ADDRESS_KEY: &str = "address";

/// The charm.
#[derive(Debug)]
pub struct PgBouncer {
    workload: Box<dyn Workload>,
    sql: Box<dyn Sql>,
    cpus: usize,
    status: Option<Status>,
    /// Problems found in this hook (a refused client, say): they outrank `status`.
    problems: Vec<Status>,
    /// A relation being broken in this hook.
    broken: Option<(String, u32)>,
    /// Passwords of client users made in this hook (secrets written in a hook are only
    /// readable after it), by relation id.
    pending: BTreeMap<u32, String>,
}

impl Default for PgBouncer {
    /// The charm over the real workload (Pebble) and psql in it.
    fn default() -> Self {
        Self::with_backends(
            Box::new(PebbleWorkload::new(CONTAINER, "postgres")),
            Box::new(Psql::new(CONTAINER, "postgres")),
        )
    }
}

/// What the backend gave.
#[derive(Debug, Clone)]
struct Backend {
    user: String,
    password: String,
    auth_user: String,
    auth_password: String,
    primary: String,
    replicas: Vec<String>,
    version: String,
    tls_ca: Option<String>,
}

fn random_password() -> String {
    interfaces::scram::random_password(interfaces::scram::PASSWORD_LENGTH)
}

/// The fields of one secret group of the backend's answer: the secret's content, or the
/// plain bag when the backend sent no secret for it. `None` when the secret cannot be
/// read (revoked while the relation is being removed).
fn group_fields(
    ctx: &mut Context<'_>,
    data: &ProviderData,
    group: SecretGroup,
    bag: &Bag,
) -> Result<Option<Bag>> {
    match data.secrets.get(&group) {
        Some(id) => match ctx.get_secret(Some(id), None, SecretRead::Refresh) {
            Ok(content) => Ok(Some(content)),
            Err(Error::PermissionDenied { .. } | Error::SecretNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        },
        None => Ok(Some(bag.clone())),
    }
}

/// A short, stable digest of the databases map (FNV-1a, hex).
pub fn digest(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl PgBouncer {
    /// The charm over the given workload and SQL runner (fakes in tests).
    pub fn with_backends(workload: Box<dyn Workload>, sql: Box<dyn Sql>) -> Self {
        Self {
            workload,
            sql,
            cpus: std::thread::available_parallelism().map_or(2, |n| n.get()),
            status: None,
            problems: Vec::new(),
            broken: None,
            pending: BTreeMap::new(),
        }
    }

    /// Sets the CPU count the default worker count derives from.
    pub fn with_cpus(mut self, cpus: usize) -> Self {
        self.cpus = cpus;
        self
    }

    fn is_broken(&self, endpoint: &str, rel: &RelationId) -> bool {
        self.broken
            .as_ref()
            .is_some_and(|(e, id)| e == endpoint && *id == rel.id)
    }

    fn set(&mut self, status: Status) {
        self.status = Some(status);
    }

    fn address(&self, ctx: &mut Context<'_>) -> Result<String> {
        ctx.bind_address(PEER)
    }

    /// The backend relation's answer, once complete; sets a status when it is not.
    fn backend(&mut self, ctx: &mut Context<'_>) -> Result<Option<(RelationId, Backend)>> {
        let Some(rel) = ctx.relation(BACKEND)? else {
            self.set(Status::blocked(
                "waiting for backend database relation to initialise",
            ));
            return Ok(None);
        };
        if self.is_broken(BACKEND, &rel) {
            self.set(Status::blocked(
                "waiting for backend database relation to initialise",
            ));
            return Ok(None);
        }
        let bag = ctx.remote_app_data(&rel)?;
        let data = match ProviderData::parse(&bag) {
            Ok(Some(d)) => d,
            Ok(None) => {
                self.set(Status::blocked("backend database relation not ready"));
                return Ok(None);
            }
            Err(e) => {
                self.set(Status::blocked(format!("{BACKEND}: {e}")));
                return Ok(None);
            }
        };
        // While the relation is being removed the backend may already have revoked its
        // secrets: the backend is then as good as gone.
        let (Some(user_fields), Some(tls_fields)) = (
            group_fields(ctx, &data, SecretGroup::User, &bag)?,
            group_fields(ctx, &data, SecretGroup::Tls, &bag)?,
        ) else {
            self.set(Status::blocked("backend database relation not ready"));
            return Ok(None);
        };
        let Ok(creds) = client::Credentials::from_fields(&user_fields) else {
            self.set(Status::blocked("backend database relation not ready"));
            return Ok(None);
        };
        let (Some(auth_user), Some(auth_password)) = (
            user_fields.get(pgbouncer_auth::AUTH_USERNAME).cloned(),
            user_fields.get(pgbouncer_auth::AUTH_PASSWORD).cloned(),
        ) else {
            self.set(Status::blocked(
                "backend database relation not ready: no auth user yet (the backend must be Ward's postgresql charm)",
            ));
            return Ok(None);
        };

        let tls = client::TlsInfo::from_fields(&tls_fields).unwrap_or_default();
        let Some(primary) = data.endpoints.first().cloned() else {
            self.set(Status::blocked("backend database relation not ready"));
            return Ok(None);
        };
        let replicas = if data.read_only_endpoints.is_empty() {
            vec![primary.clone()]
        } else {
            data.read_only_endpoints.clone()
        };
        Ok(Some((
            rel,
            Backend {
                user: creds.username,
                password: creds.password,
                auth_user,
                auth_password,
                primary,
                replicas,
                version: data.version,
                tls_ca: if tls.enabled { tls.ca } else { None },
            },
        )))
    }

    /// The leader asks the backend for PgBouncer's database and user.
    fn request_backend(&self, ctx: &mut Context<'_>) -> Result<()> {
        let Some(rel) = ctx.relation(BACKEND)? else {
            return Ok(());
        };
        if self.is_broken(BACKEND, &rel) || !ctx.is_leader()? {
            return Ok(());
        }
        let mut wanted = DatabaseRequest::new(BACKEND_DB)
            .with_extra_user_roles(["CREATEDB", "CREATEROLE"])
            .to_bag();
        wanted.insert(pgbouncer_auth::AUTH_FUNCTION_KEY.into(), "true".into());
        let mine = ctx.app_data(&rel)?;
        let diff: Bag = wanted
            .into_iter()
            .filter(|(k, v)| mine.get(k) != Some(v))
            .collect();
        if !diff.is_empty() {
            ctx.set_app_data(&rel, &diff)?;
        }
        Ok(())
    }

    fn peer(&self, ctx: &mut Context<'_>) -> Result<Option<(RelationId, Bag)>> {
        match ctx.relation(PEER)? {
            Some(rel) => {
                let bag = ctx.app_data(&rel)?;
                Ok(Some((rel, bag)))
            }
            None => Ok(None),
        }
    }

    /// The leader makes the internal secret once.
    fn ensure_internal(&self, ctx: &mut Context<'_>, rel: &RelationId, bag: &Bag) -> Result<()> {
        if bag.contains_key(INTERNAL_KEY) || !ctx.is_leader()? {
            return Ok(());
        }
        let (admin, stats) = (random_password(), random_password());
        let content: Bag = [
            (
                "admin-verifier".to_string(),
                interfaces::scram::verifier(&admin),
            ),
            (
                "stats-verifier".to_string(),
                interfaces::scram::verifier(&stats),
            ),
            ("admin-password".to_string(), admin),
            ("stats-password".to_string(), stats),
        ]
        .into();
        ctx.publish_app_secret(
            rel,
            INTERNAL_KEY,
            &content,
            INTERNAL_LABEL,
            "PgBouncer's console users",
        )?;
        Ok(())
    }

    fn databases(bag: &Bag) -> BTreeMap<String, String> {
        bag.get(DATABASES_KEY)
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default()
    }

    fn run_sql(&self, backend: &Backend, database: &str, script: &str) -> Result<String> {
        let host = backend
            .primary
            .rsplit_once(':')
            .map_or(backend.primary.as_str(), |(h, _)| h);
        self.sql
            .run(host, &backend.user, &backend.password, database, script)
    }

    /// The leader makes users and databases for new clients and records them in the map.
    fn ensure_clients(
        &mut self,
        ctx: &mut Context<'_>,
        peer: &RelationId,
        bag: &Bag,
        backend: &Backend,
    ) -> Result<BTreeMap<String, String>> {
        let mut map = Self::databases(bag);
        let auth_user = backend.auth_user.clone();
        let mut changed = false;
        let rels = ctx.relations(DATABASE)?;
        let live: Vec<String> = rels
            .iter()
            .filter(|r| !self.is_broken(DATABASE, r))
            .map(|r| r.id.to_string())
            .collect();
        let before = map.len();
        map.retain(|id, _| live.contains(id));
        changed |= map.len() != before;
        for rel in rels {
            if self.is_broken(DATABASE, &rel) {
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
            let roles = match config::check_request(&request) {
                Ok(r) => r,
                Err(problem) => {
                    self.refuse(ctx, &rel, &problem)?;
                    continue;
                }
            };
            let key = rel.id.to_string();
            if map.get(&key) == Some(&request.database) {
                continue;
            }
            let user = provider::client_user(rel.id);
            let password = provider::existing_password(ctx, &rel)?.unwrap_or_else(random_password);
            let made = self
                .run_sql(
                    backend,
                    "postgres",
                    &config::client_script(
                        &user,
                        &request.database,
                        &roles,
                        &interfaces::scram::verifier(&password),
                        &backend.user,
                    ),
                )
                .and_then(|_| {
                    self.run_sql(
                        backend,
                        &request.database,
                        &format!(
                            "GRANT ALL ON SCHEMA public TO {};\n{}",
                            ident(&user),
                            pgbouncer_auth::function_exists_query(&auth_user)
                        ),
                    )
                })
                .and_then(|found| {
                    if found.trim() == "1" {
                        Ok(())
                    } else {
                        Err(Error::Charm(format!(
                            "database {} has no {auth_user}.get_auth (it existed before the backend installed the function in template1)",
                            request.database
                        )))
                    }
                });
            if let Err(e) = made {
                ctx.log(
                    LogLevel::Error,
                    &format!(
                        "cannot make database {} for {DATABASE}:{}: {e}",
                        request.database, rel.id
                    ),
                )?;
                self.problems
                    .push(Status::blocked("Failed to initialize relation database"));
                continue;
            }
            // Keep the password for the answer (made once, reused across hooks).
            self.pending.insert(rel.id, password);
            map.insert(key, request.database.clone());
            changed = true;
            ctx.log(
                LogLevel::Info,
                &format!(
                    "made database {} and user {user} for {DATABASE}:{}",
                    request.database, rel.id
                ),
            )?;
        }
        if changed {
            let mut data = Bag::new();
            data.insert(
                DATABASES_KEY.into(),
                serde_json::to_string(&map).unwrap_or_default(),
            );
            ctx.set_app_data(peer, &data)?;
        }
        Ok(map)
    }

    fn refuse(&mut self, ctx: &mut Context<'_>, rel: &RelationId, problem: &str) -> Result<()> {
        let remote = ctx.remote_app(rel)?.unwrap_or_default();
        let msg = format!("{DATABASE}:{} from {remote}: {problem}", rel.id);
        ctx.log(LogLevel::Error, &msg)?;
        self.problems.push(Status::blocked(msg));
        Ok(())
    }

    /// TLS towards clients: a CSR for the unit's address; once issued, the files.
    fn client_tls(&mut self, ctx: &mut Context<'_>, address: &str) -> Result<Option<String>> {
        let request = interfaces::tls_requirer::unit_address_request(ctx.unit_name(), address)?;
        let Some(issued) = TlsRequirer::new(CERTIFICATES).reconcile(ctx, &request)? else {
            return Ok(None);
        };
        self.push_if_changed(config::TLS_CERT, issued.certificate.as_bytes())?;
        self.push_if_changed(config::TLS_KEY, issued.private_key.as_bytes())?;
        self.push_if_changed(config::TLS_CA, issued.ca.as_bytes())?;
        Ok(Some(issued.ca))
    }

    /// Writes a file 0600 (owned by postgres) unless it already holds `content`;
    /// returns whether it wrote.
    fn push_if_changed(&self, path: &str, content: &[u8]) -> Result<bool> {
        if self.workload.pull(path).as_deref() == Some(content) {
            return Ok(false);
        }
        self.workload.push_private(path, content)?;
        Ok(true)
    }

    fn version(&self, ctx: &mut Context<'_>) -> Result<(u32, u32)> {
        let stored = ctx.stored()?;
        if let Some(v) = stored
            .get("pgbouncer-version")
            .and_then(|v| config::parse_version(v))
        {
            return Ok(v);
        }
        let out = self.workload.exec(&["pgbouncer", "--version"])?;
        let v = config::parse_version(&out).ok_or_else(|| {
            Error::Charm(format!(
                "cannot read PgBouncer's version from {:?}",
                out.trim()
            ))
        })?;
        let line = out.lines().next().unwrap_or_default().to_string();
        ctx.store(&[("pgbouncer-version".to_string(), line.clone())].into())?;
        ctx.set_workload_version(line.trim_start_matches("PgBouncer ").trim())?;
        Ok(v)
    }

    /// Stops every worker (no backend, or TLS required and missing).
    fn stop_workers(&self) -> Result<()> {
        if !self.workload.can_connect() {
            return Ok(());
        }
        let running: Vec<String> = (0..config::MAX_WORKERS)
            .map(|i| format!("pgbouncer_{i}"))
            .filter(|s| self.workload.is_running(s))
            .collect();
        if !running.is_empty() {
            let names: Vec<&str> = running.iter().map(String::as_str).collect();
            self.workload.stop(&names)?;
        }
        Ok(())
    }

    fn reconcile(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        let settings = config::settings(ctx.config()?, self.cpus)?;
        let address = self.address(ctx)?;
        let Some((peer, bag)) = self.peer(ctx)? else {
            self.set(Status::waiting("waiting for the peer relation"));
            return Ok(());
        };
        if ctx.unit_data(&peer)?.get(ADDRESS_KEY) != Some(&address) {
            ctx.set_unit_data(&peer, &[(ADDRESS_KEY.to_string(), address.clone())].into())?;
        }
        self.request_backend(ctx)?;
        let Some((_, backend)) = self.backend(ctx)? else {
            self.stop_workers()?;
            return Ok(());
        };
        self.ensure_internal(ctx, &peer, &bag)?;
        let bag = ctx.app_data(&peer)?;
        let Some(secret_id) = bag.get(INTERNAL_KEY).cloned() else {
            self.set(Status::waiting(
                "waiting for the leader to make PgBouncer's users",
            ));
            return Ok(());
        };
        let secret = ctx.get_secret(Some(&secret_id), None, SecretRead::Refresh)?;
        let leader = ctx.is_leader()?;
        let auth_user = backend.auth_user.clone();
        let map = if leader {
            self.ensure_clients(ctx, &peer, &bag, &backend)?
        } else {
            Self::databases(&bag)
        };
        if !self.workload.can_connect() {
            self.set(Status::waiting("PgBouncer container currently unavailable"));
            return Ok(());
        }
        let tls_ca = self.client_tls(ctx, &address)?;
        if settings.client_tls_sslmode == "require" && tls_ca.is_none() {
            self.stop_workers()?;
            self.set(if ctx.relation(CERTIFICATES)?.is_none() {
                Status::blocked(
                    "client_tls_sslmode=require: relate certificates to a tls-certificates provider",
                )
            } else {
                Status::waiting("client_tls_sslmode=require: waiting for a certificate")
            });
            return Ok(());
        }
        let version = self.version(ctx)?;
        let mut changed = false;
        if let Some(ca) = &backend.tls_ca {
            changed |= self.push_if_changed(config::BACKEND_CA, ca.as_bytes())?;
        }
        let app = ctx.app_name().to_string();
        let admin_user = format!("pgbouncer_admin_{}", app.replace('-', "_"));
        let stats_user = format!("pgbouncer_stats_{}", app.replace('-', "_"));
        let users: BTreeMap<String, String> = [
            (auth_user.clone(), backend.auth_password.clone()),
            (
                admin_user.clone(),
                secret.get("admin-verifier").cloned().unwrap_or_default(),
            ),
            (
                stats_user.clone(),
                secret.get("stats-verifier").cloned().unwrap_or_default(),
            ),
        ]
        .into();
        changed |= self.push_if_changed(config::AUTH_FILE, config::auth_file(&users).as_bytes())?;
        let mut databases: Vec<String> = map.values().cloned().collect();
        databases.sort();
        databases.dedup();
        let render = Render {
            settings: &settings,
            address: &address,
            primary: &backend.primary,
            replicas: &backend.replicas,
            databases: &databases,
            auth_user: &auth_user,
            admin_user: &admin_user,
            stats_user: &stats_user,
            backend_tls: backend.tls_ca.is_some(),
            client_tls: tls_ca.is_some(),
            version,
        };
        for i in 0..settings.workers {
            let path = format!("{}/instance_{i}/pgbouncer.ini", config::BASE);
            changed |= self.push_if_changed(&path, config::ini(&render, i).as_bytes())?;
        }
        // Workers beyond the count (after `workers` went down) are disabled and stopped.
        let mut previous = settings.workers;
        while previous < config::MAX_WORKERS
            && self
                .workload
                .service_status(&format!("pgbouncer_{previous}"))
                .is_some()
        {
            previous += 1;
        }
        let running_before: Vec<bool> = (0..settings.workers)
            .map(|i| self.workload.is_running(&format!("pgbouncer_{i}")))
            .collect();
        self.workload
            .add_layer(CONTAINER, &config::layer(&settings, &address, previous))?;
        self.workload.replan()?;
        let extra: Vec<String> = (settings.workers..previous)
            .map(|i| format!("pgbouncer_{i}"))
            .filter(|s| self.workload.is_running(s))
            .collect();
        if !extra.is_empty() {
            let names: Vec<&str> = extra.iter().map(String::as_str).collect();
            self.workload.stop(&names)?;
        }
        if changed {
            for (i, was) in running_before.iter().enumerate() {
                if *was {
                    // PgBouncer re-reads pgbouncer.ini and the auth file on SIGHUP; idle
                    // clients stay connected.
                    self.workload.signal("SIGHUP", &format!("pgbouncer_{i}"))?;
                }
            }
        }
        let served = digest(&serde_json::to_string(&map).unwrap_or_default());
        if ctx.unit_data(&peer)?.get(SERVED_KEY) != Some(&served) {
            ctx.set_unit_data(&peer, &[(SERVED_KEY.to_string(), served.clone())].into())?;
        }
        for i in 0..settings.workers {
            let svc = format!("pgbouncer_{i}");
            match self.workload.service_status(&svc) {
                Some(s) if s == "active" => {}
                Some(s) => {
                    self.set(Status::blocked(format!(
                        "PgBouncer service {svc} not running: service status = {s}"
                    )));
                    return Ok(());
                }
                None => {
                    self.set(Status::waiting("pgbouncer not running"));
                    return Ok(());
                }
            }
        }
        ctx.open_port(charm::Port::tcp(settings.listen_port))?;
        self.set(Status::active(""));
        if leader {
            self.answer_clients(ctx, &peer, &settings, &map, &served, &backend, tls_ca)?;
        }
        Ok(())
    }

    /// The leader answers clients whose database every unit serves.
    #[allow(clippy::too_many_arguments)]
    fn answer_clients(
        &mut self,
        ctx: &mut Context<'_>,
        peer: &RelationId,
        settings: &Settings,
        map: &BTreeMap<String, String>,
        served: &str,
        backend: &Backend,
        tls_ca: Option<String>,
    ) -> Result<()> {
        let mut addresses = vec![self.address(ctx)?];
        let mut converged = true;
        for unit in ctx.relation_units(peer)? {
            let data = ctx.remote_unit_data(peer, &unit)?;
            let Some(a) = data.get(ADDRESS_KEY) else {
                continue;
            };
            if data.get(SERVED_KEY).map(String::as_str) != Some(served) {
                converged = false;
            }
            addresses.push(a.clone());
        }
        if !converged {
            if !ctx.relations(DATABASE)?.is_empty() {
                self.set(Status::waiting(
                    "waiting for every unit to serve the new databases",
                ));
            }
            return Ok(());
        }
        addresses.sort();
        addresses.dedup();
        let endpoints: Vec<String> = addresses
            .iter()
            .map(|a| format!("{a}:{}", settings.listen_port))
            .collect();
        let joined = endpoints.join(",");
        for rel in ctx.relations(DATABASE)? {
            if self.is_broken(DATABASE, &rel) {
                continue;
            }
            let Some(database) = map.get(&rel.id.to_string()).cloned() else {
                continue;
            };
            let Ok(Some(request)) = DatabaseRequest::parse(&ctx.remote_app_data(&rel)?) else {
                continue;
            };
            let user = provider::client_user(rel.id);
            let password = match self.pending.get(&rel.id) {
                Some(p) => p.clone(),
                None => match provider::existing_password(ctx, &rel)? {
                    Some(p) => p,
                    None => {
                        // Made in an earlier hook whose password was never handed out
                        // (secrets are written only with the answer): a fresh one.
                        let p = random_password();
                        self.run_sql(
                            backend,
                            "postgres",
                            &format!(
                                "ALTER ROLE {} WITH PASSWORD {};\n",
                                ident(&user),
                                literal(&interfaces::scram::verifier(&p))
                            ),
                        )?;
                        p
                    }
                },
            };
            let answer = provider::Answer {
                credentials: client::Credentials {
                    username: user.clone(),
                    password: password.clone(),
                    uris: Some(client::uri(&user, &password, &joined, &database)),
                    read_only_uris: Some(client::uri(
                        &user,
                        &password,
                        &joined,
                        &format!("{database}_readonly"),
                    )),
                },
                tls: client::TlsInfo {
                    enabled: tls_ca.is_some(),
                    ca: tls_ca.clone(),
                },
                data: ProviderData {
                    database,
                    endpoints: endpoints.clone(),
                    read_only_endpoints: endpoints.clone(),
                    version: backend.version.clone(),
                    secrets: Default::default(),
                },
                extra_user_fields: Bag::new(),
            };
            provider::publish(ctx, DATABASE, &rel, &request, &answer)?;
        }
        Ok(())
    }

    /// The leader drops a departed client's user on the backend (its database stays).
    fn drop_client(&mut self, ctx: &mut Context<'_>, rel: &RelationId) -> Result<()> {
        if !ctx.is_leader()? {
            return Ok(());
        }
        let Some((_, backend)) = self.backend(ctx)? else {
            return Ok(());
        };
        let Some((_, bag)) = self.peer(ctx)? else {
            return Ok(());
        };
        let user = provider::client_user(rel.id);
        let u = ident(&user);
        if let Some(db) = Self::databases(&bag).get(&rel.id.to_string()) {
            let _ = self.run_sql(
                &backend,
                db,
                &provider::drop_owned_script(&user, &ident(&backend.user)),
            );
        }
        self.run_sql(&backend, "postgres", &format!("DROP ROLE IF EXISTS {u};\n"))?;
        ctx.log(
            LogLevel::Info,
            &format!("dropped user {user} of {DATABASE}:{}", rel.id),
        )?;
        Ok(())
    }

    /// The backend went away (its postgresql drops the auth user and function): every
    /// unit stops serving and forgets the auth file's content.
    fn backend_gone(&mut self, ctx: &mut Context<'_>, rel: &RelationId) -> Result<()> {
        let leader = ctx.is_leader()?;
        self.broken = Some((BACKEND.into(), rel.id));
        self.stop_workers()?;
        if self.workload.can_connect() {
            self.workload.push_private(config::AUTH_FILE, b"")?;
        }
        if leader {
            if let Some((peer, bag)) = self.peer(ctx)? {
                let mut data = Bag::new();
                for k in [DATABASES_KEY] {
                    if bag.contains_key(k) {
                        data.insert(k.into(), String::new());
                    }
                }
                if !data.is_empty() {
                    ctx.set_app_data(&peer, &data)?;
                }
            }
        }
        self.set(Status::blocked(
            "waiting for backend database relation to initialise",
        ));
        Ok(())
    }
}

impl Charm for PgBouncer {
    fn handle(&mut self, ctx: &mut Context<'_>, event: &Event) -> Result<()> {
        match event {
            Event::Remove | Event::Stop => Ok(()),
            Event::RelationBroken(r) if r.relation.endpoint == BACKEND => {
                self.backend_gone(ctx, &r.relation)
            }
            Event::RelationBroken(r) if r.relation.endpoint == DATABASE => {
                self.broken = Some((DATABASE.into(), r.relation.id));
                self.drop_client(ctx, &r.relation)?;
                self.reconcile(ctx)
            }
            Event::Action { name, .. } => Err(Error::InvalidParams {
                reason: format!("unknown action {name:?}: the pgbouncer charm has no actions"),
            }),
            _ => self.reconcile(ctx),
        }
    }

    fn collect_unit_status(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        if let Some(s) = self.status.clone() {
            ctx.add_unit_status(s);
        }
        for s in self.problems.clone() {
            ctx.add_unit_status(s);
        }
        Ok(())
    }
}
