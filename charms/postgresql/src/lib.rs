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

use charm::pebble::{Client, FileOptions};
use charm::{
    Bag, Charm, Context, Error, Event, LogLevel, Result, SecretOptions, SecretOwner, SecretRead,
    Status,
};
use serde_json::json;

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

/// How long a hook waits for Patroni to report the unit running after starting it.
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// The charm.
#[derive(Debug, Default)]
pub struct PostgreSql {
    status: Option<Status>,
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
        let member = Member {
            scope: ctx.app_name(),
            name: ctx.unit_name().replace('/', "-"),
            address: &address,
            peers,
            tls: false,
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
            }
            Err(why) => self.status = Some(Status::waiting(format!("waiting for Patroni: {why}"))),
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
