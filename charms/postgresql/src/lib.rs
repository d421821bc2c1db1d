//! Ward's PostgreSQL charm: PostgreSQL 15 managed by Patroni with its raft DCS among the
//! application's units, in the `postgresql` workload container driven through Pebble.
//!
//! - The leader makes the system users' passwords (operator, replication, rewind,
//!   monitoring, backup, and Patroni's own) and keeps them in an application-owned secret
//!   whose id it publishes in the peer relation's application bag.
//! - Every unit publishes its address in its peer bag. The leader bootstraps the cluster;
//!   the others wait until it says the cluster exists, then join (raft partners = peers)
//!   and Patroni makes them streaming replicas.
//! - patroni.yml (0600, owned by postgres) lives in the `pgdata` storage; a change is
//!   pushed and Patroni reloads it (SIGHUP).
//! - Statuses say what the unit waits for, why it is blocked, or its role.

pub mod patroni;
pub mod settings;
pub mod sql;

use charm::pebble::{Client, FileOptions};
use charm::{
    Bag, Charm, Context, Error, Event, LogLevel, Result, SecretOptions, SecretOwner, SecretRead,
    Status,
};
use serde_json::json;

use interfaces::tls_certificates::CsrRequest;
use interfaces::tls_requirer::TlsRequirer;

use crate::patroni::{Member, Passwords};

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
/// Peer application bag key: the address of the unit that bootstrapped the cluster, which
/// every joining unit's raft must have among its partners.
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
/// Peer application bag key: bumped when the system users' passwords change.
pub const USERS_REVISION_KEY: &str = "system-users-revision";
/// Roles a client may ask for in `extra-user-roles`.
pub const ALLOWED_EXTRA_ROLES: [&str; 2] = ["CREATEDB", "CREATEROLE"];

/// How long a hook waits for Patroni to report the unit running after starting it.
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// The charm.
#[derive(Debug, Default)]
pub struct PostgreSql {
    status: Option<Status>,
    /// A password set in this hook (secret writes are only visible after the hook).
    password_override: Option<(String, String)>,
    /// The `database` relation being broken in this hook (no longer served).
    broken: Option<u32>,
    /// Whether this unit serves TLS (set by reconcile).
    tls_on: bool,
    /// The CA of this unit's certificate, for clients' `secret-tls`.
    tls_ca: Option<String>,
}

/// A random password: 32 letters and digits from the OS's generator.
pub fn random_password() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, 32)
}

fn secret_key(user: &str) -> String {
    format!("{user}-password")
}

impl PostgreSql {
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
        let id = ctx.add_secret(
            &content,
            SecretOwner::Application,
            &SecretOptions {
                label: Some(USERS_LABEL.into()),
                description: Some("PostgreSQL system users' passwords".into()),
                ..Default::default()
            },
        )?;
        let mut data = Bag::new();
        data.insert(USERS_KEY.into(), id);
        ctx.set_app_data(&rel, &data)?;
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
        let net = ctx.network(PEER, None)?;
        net.bind_address()
            .map(str::to_string)
            .or_else(|| net.ingress_addresses.first().cloned())
            .ok_or_else(|| Error::Charm(format!("network-get {PEER} gave no address")))
    }

    fn waiting(&mut self, why: &str) -> Result<()> {
        self.status = Some(Status::waiting(why));
        Ok(())
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
            if let Some(a) = ctx.remote_unit_data(&rel, &unit)?.get("address") {
                peers.push(a.clone());
            }
        }
        if let Some(a) = app_bag.get(BOOTSTRAP_ADDRESS_KEY) {
            if *a != address && !peers.contains(a) {
                peers.push(a.clone());
            }
        }
        peers.sort();
        let leader = ctx.is_leader()?;
        let initialised = app_bag.get(INITIALISED_KEY).is_some_and(|v| v == "true");
        if !leader && !initialised {
            return self.waiting("waiting for the leader to bootstrap the cluster");
        }
        if !leader && !app_bag.contains_key(BOOTSTRAP_ADDRESS_KEY) {
            // Started without the bootstrap member among its raft partners, this unit's raft
            // could form a cluster of its own (or one without quorum).
            return self.waiting("waiting for the address of the bootstrapped member");
        }
        let pebble = Client::for_container(CONTAINER);
        if !pebble.can_connect() {
            return self.waiting("waiting for the postgresql container");
        }
        let tls = self.tls(ctx, &pebble, &address)?;
        self.tls_on = tls;
        let member = Member {
            scope: ctx.app_name(),
            name: ctx.unit_name().replace('/', "-"),
            address: &address,
            peers,
            tls,
        };
        let config = patroni::config(&member, &settings, &passwords);
        let current = pebble.pull(patroni::CONFIG_PATH).ok();
        let changed = current.as_deref() != Some(config.as_bytes());
        if changed {
            pebble
                .push(
                    patroni::CONFIG_PATH,
                    config.as_bytes(),
                    &FileOptions {
                        make_dirs: true,
                        permissions: Some(0o600),
                        user: Some("postgres".into()),
                        group: Some("postgres".into()),
                        ..Default::default()
                    },
                )
                .map_err(|e| Error::Charm(format!("cannot write patroni.yml: {e}")))?;
        }
        pebble
            .add_layer("postgresql", &patroni::layer(&address), true)
            .map_err(|e| Error::Charm(format!("cannot add the Pebble layer: {e}")))?;
        let was_running = pebble
            .services(&["postgresql"])
            .map(|s| s.first().is_some_and(|s| s.current == "active"))
            .unwrap_or(false);
        pebble
            .replan()
            .map_err(|e| Error::Charm(format!("cannot start Patroni: {e}")))?;
        if changed && was_running {
            // Patroni re-reads patroni.yml on SIGHUP.
            let _ = pebble.send_signal("SIGHUP", &["postgresql"]);
        }
        ctx.set_workload_version("15")?;
        let deadline = std::time::Instant::now() + START_WAIT;
        let role = loop {
            match patroni::role(&address) {
                Ok(role) => break Ok(role),
                Err(e) if std::time::Instant::now() >= deadline => break Err(e),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(500)),
            }
        };
        match role {
            Ok(role) => {
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
                    sql::run(&pebble, &address, &passwords.operator, "postgres", &script)?;
                    let mut data = Bag::new();
                    data.insert(ROLES_KEY.into(), "true".into());
                    ctx.set_app_data(&rel, &data)?;
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
                    self.status = Some(if ctx.relation(CERTIFICATES)?.is_none() {
                        Status::blocked("connection_require_tls is set: relate certificates to a tls-certificates provider")
                    } else {
                        Status::waiting("connection_require_tls is set: waiting for a certificate")
                    });
                }
                if leader {
                    self.serve_clients(ctx, &pebble, &address, &passwords.operator)?;
                }
            }
            Err(why) => self.status = Some(Status::waiting(format!("waiting for Patroni: {why}"))),
        }
        Ok(())
    }

    /// TLS from `certificates`: a CSR for this unit's address; once issued, the key,
    /// certificate and CA are written into the workload (0600, owned by postgres) and
    /// PostgreSQL serves TLS. Returns whether the files are in place.
    fn tls(&mut self, ctx: &mut Context<'_>, pebble: &Client, address: &str) -> Result<bool> {
        let ip: std::net::IpAddr = address.parse().map_err(|_| {
            Error::Charm(format!(
                "the unit's address {address:?} is not an IP address"
            ))
        })?;
        let request = CsrRequest::new(address)
            .ip(ip)
            .dns(&ctx.unit_name().replace('/', "-"));
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
            if pebble.pull(&path).ok().as_deref() == Some(content.as_bytes()) {
                continue;
            }
            pebble
                .push(
                    &path,
                    content.as_bytes(),
                    &FileOptions {
                        make_dirs: true,
                        permissions: Some(0o600),
                        user: Some("postgres".into()),
                        group: Some("postgres".into()),
                        ..Default::default()
                    },
                )
                .map_err(|e| Error::Charm(format!("cannot write {path}: {e}")))?;
        }
        Ok(true)
    }

    /// The leader answers every `database` request: a database and a user of the
    /// relation's own, credentials in a secret granted to the relation, endpoints.
    fn serve_clients(
        &mut self,
        ctx: &mut Context<'_>,
        pebble: &Client,
        address: &str,
        operator: &str,
    ) -> Result<()> {
        let rels = ctx.relations(DATABASE)?;
        if rels.is_empty() {
            return Ok(());
        }
        let members = patroni::members(address)
            .map_err(|e| Error::Charm(format!("cannot ask Patroni for the members: {e}")))?;
        let Some(primary) = members
            .iter()
            .find(|m| m.1 == "leader")
            .map(|m| m.2.clone())
        else {
            self.status = Some(Status::waiting("waiting for a primary to serve clients"));
            return Ok(());
        };
        let mut replicas: Vec<String> = members
            .iter()
            .filter(|m| m.1 != "leader")
            .map(|m| format!("{}:{}", m.2, patroni::PG_PORT))
            .collect();
        replicas.sort();
        let endpoints = format!("{primary}:{}", patroni::PG_PORT);
        let read_only = if replicas.is_empty() {
            endpoints.clone()
        } else {
            replicas.join(",")
        };
        for rel in rels {
            if self.broken == Some(rel.id) {
                continue;
            }
            let request = ctx.remote_app_data(&rel)?;
            let Some(database) = request.get("database").cloned() else {
                continue;
            };
            let roles: Vec<String> = request
                .get("extra-user-roles")
                .map(|r| {
                    r.split(',')
                        .map(|x| x.trim().to_uppercase())
                        .filter(|x| !x.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let problem = if !sql::valid_name(&database) {
                Some(format!("database name {database:?} is not allowed (letters, digits, _ and -, at most 63)"))
            } else {
                roles
                    .iter()
                    .find(|r| !ALLOWED_EXTRA_ROLES.contains(&r.as_str()))
                    .map(|r| {
                        format!(
                            "extra-user-roles {r} is not allowed (allowed: {})",
                            ALLOWED_EXTRA_ROLES.join(", ")
                        )
                    })
            };
            if let Some(problem) = problem {
                let remote = ctx.remote_app(&rel)?.unwrap_or_default();
                let msg = format!("{DATABASE}:{} from {remote}: {problem}", rel.id);
                ctx.log(LogLevel::Error, &msg)?;
                self.status = Some(Status::blocked(msg));
                continue;
            }
            let mine = ctx.app_data(&rel)?;
            let mut data = Bag::new();
            if !mine.contains_key("secret-user") {
                let user = format!("relation_id_{}", rel.id);
                let password = interfaces::scram::random_password(32);
                let role_opts = if roles.is_empty() {
                    String::new()
                } else {
                    format!(" {}", roles.join(" "))
                };
                let verifier = interfaces::scram::verifier(&password);
                let (u, db) = (sql::ident(&user), sql::ident(&database));
                let (ul, dl) = (sql::literal(&user), sql::literal(&database));
                let script = format!(
                    "SELECT format('CREATE ROLE %I', {ul}) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {ul})\\gexec\n\
                     ALTER ROLE {u} WITH LOGIN{role_opts} PASSWORD {pw};\n\
                     SELECT format('CREATE DATABASE %I', {dl}) WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {dl})\\gexec\n\
                     GRANT ALL PRIVILEGES ON DATABASE {db} TO {u};\n",
                    pw = sql::literal(&verifier),
                );
                sql::run(pebble, &primary, operator, "postgres", &script)?;
                sql::run(
                    pebble,
                    &primary,
                    operator,
                    &database,
                    &format!("GRANT ALL ON SCHEMA public TO {u};\n"),
                )?;
                let uris = format!("postgresql://{user}:{password}@{endpoints}/{database}");
                let content: Bag = [
                    ("username", user.clone()),
                    ("password", password),
                    ("uris", uris),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                let id = ctx.add_secret(
                    &content,
                    SecretOwner::Application,
                    &SecretOptions {
                        label: Some(format!("{DATABASE}.{}.user.secret", rel.id)),
                        ..Default::default()
                    },
                )?;
                ctx.grant_secret(&id, &rel, None)?;
                data.insert("secret-user".into(), id);
                ctx.log(
                    LogLevel::Info,
                    &format!(
                        "created database {database} and user {user} for {DATABASE}:{}",
                        rel.id
                    ),
                )?;
            }
            if let Some(ca) = self.tls_ca.clone() {
                let content: Bag = [
                    ("tls".to_string(), "True".to_string()),
                    ("tls-ca".to_string(), ca),
                ]
                .into();
                match mine.get("secret-tls") {
                    None => {
                        let id = ctx.add_secret(
                            &content,
                            SecretOwner::Application,
                            &SecretOptions {
                                label: Some(format!("{DATABASE}.{}.tls.secret", rel.id)),
                                ..Default::default()
                            },
                        )?;
                        ctx.grant_secret(&id, &rel, None)?;
                        data.insert("secret-tls".into(), id);
                    }
                    Some(id) => {
                        if ctx.get_secret(Some(id), None, SecretRead::Refresh)? != content {
                            ctx.set_secret(id, &content, &SecretOptions::default())?;
                        }
                    }
                }
            }
            for (k, v) in [
                ("database", database.clone()),
                ("endpoints", endpoints.clone()),
                ("read-only-endpoints", read_only.clone()),
                ("version", "15".to_string()),
                (
                    "tls",
                    if self.tls_on { "True" } else { "False" }.to_string(),
                ),
            ] {
                if mine.get(k) != Some(&v) {
                    data.insert(k.into(), v);
                }
            }
            if !data.is_empty() {
                ctx.set_app_data(&rel, &data)?;
            }
        }
        Ok(())
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
        let Ok(members) = patroni::members(&address) else {
            return Ok(());
        };
        let Some(primary) = members
            .iter()
            .find(|m| m.1 == "leader")
            .map(|m| m.2.clone())
        else {
            return Ok(());
        };
        let pebble = Client::for_container(CONTAINER);
        let user = format!("relation_id_{}", rel.id);
        let u = sql::ident(&user);
        let dbs = sql::run(
            &pebble,
            &primary,
            &operator,
            "postgres",
            &format!(
                "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND EXISTS (SELECT FROM pg_roles WHERE rolname = {});\n",
                sql::literal(&user)
            ),
        )
        .unwrap_or_default();
        for db in dbs.lines().map(str::trim).filter(|d| !d.is_empty()) {
            let _ = sql::run(
                &pebble,
                &primary,
                &operator,
                db,
                &format!("REASSIGN OWNED BY {u} TO operator;\nDROP OWNED BY {u};\n"),
            );
        }
        sql::run(
            &pebble,
            &primary,
            &operator,
            "postgres",
            &format!("DROP ROLE IF EXISTS {u};\n"),
        )?;
        ctx.log(
            LogLevel::Info,
            &format!("dropped user {user} of {DATABASE}:{}", rel.id),
        )?;
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
                let password = p
                    .password
                    .unwrap_or_else(|| interfaces::scram::random_password(32));
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
                let members = patroni::members(&address)
                    .map_err(|e| Error::Charm(format!("cannot ask Patroni: {e}")))?;
                let primary = members
                    .iter()
                    .find(|m| m.1 == "leader")
                    .map(|m| m.2.clone())
                    .ok_or_else(|| Error::Charm("the cluster has no primary right now".into()))?;
                let pebble = Client::for_container(CONTAINER);
                let script = format!(
                    "SELECT format('CREATE ROLE %I LOGIN', {l}) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {l})\\gexec\nALTER ROLE {} WITH PASSWORD {};\n",
                    sql::ident(&p.username),
                    sql::literal(&interfaces::scram::verifier(&password)),
                    l = sql::literal(&p.username),
                );
                sql::run(&pebble, &primary, &operator, "postgres", &script)?;
                secret.insert(secret_key(&p.username), password.clone());
                ctx.set_secret(&id, &secret, &SecretOptions::default())?;
                // This unit's Patroni learns the new password now; the others on the
                // peer relation change below.
                self.password_override = Some((p.username.clone(), password));
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
                ctx.set_results(&json!({"result": format!("password of {} changed", p.username)}))
            }
            "get-primary" => {
                let address = self.address(ctx)?;
                let members = patroni::members(&address)
                    .map_err(|e| Error::Charm(format!("cannot ask Patroni: {e}")))?;
                let primary = members
                    .iter()
                    .find(|(_, role, _)| role == "leader" || role == "master" || role == "primary")
                    .map(|(n, _, _)| patroni::unit_of(n))
                    .ok_or_else(|| Error::Charm("the cluster has no primary right now".into()))?;
                ctx.set_results(&json!({"primary": primary}))
            }
            "promote-to-primary" => {
                let address = self.address(ctx)?;
                let me = ctx.unit_name().replace('/', "-");
                let members = patroni::members(&address)
                    .map_err(|e| Error::Charm(format!("cannot ask Patroni: {e}")))?;
                let leader = members
                    .iter()
                    .find(|(_, role, _)| role == "leader")
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
                let (code, body) = patroni::rest(
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
        match event {
            Event::Action { name, .. } => self.action(ctx, name),
            Event::Remove | Event::Stop => Ok(()),
            Event::RelationBroken(r) if r.relation.endpoint == DATABASE => {
                self.broken = Some(r.relation.id);
                self.drop_client(ctx, &r.relation)?;
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
