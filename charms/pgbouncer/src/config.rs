//! The charm's config validated into PgBouncer settings, and the files rendered from
//! them: each worker's pgbouncer.ini and the auth file. Pure functions, tested here.

use std::collections::BTreeMap;

use charm::{Config, Result};
use interfaces::sql::ident;

/// Where PgBouncer's files live in the workload.
pub const BASE: &str = "/var/lib/pgbouncer";
/// The auth file: the auth user's password, the console users' SCRAM verifiers.
pub const AUTH_FILE: &str = "/var/lib/pgbouncer/userlist.txt";
/// The client-facing certificate, key and CA (from `certificates`).
pub const TLS_CERT: &str = "/var/lib/pgbouncer/tls/cert.pem";
/// See [`TLS_CERT`].
pub const TLS_KEY: &str = "/var/lib/pgbouncer/tls/key.pem";
/// See [`TLS_CERT`].
pub const TLS_CA: &str = "/var/lib/pgbouncer/tls/ca.pem";
/// The CA of the backend's certificate, for verify-full towards PostgreSQL.
pub const BACKEND_CA: &str = "/var/lib/pgbouncer/tls/backend-ca.pem";
/// The most workers the `workers` option allows.
pub const MAX_WORKERS: u32 = 16;

/// When a server connection goes back to the pool.
pub const POOL_MODES: [&str; 3] = ["session", "transaction", "statement"];
/// What `client_tls_sslmode` may be.
pub const CLIENT_TLS_MODES: [&str; 2] = ["prefer", "require"];

/// Settings the config describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// listen_port.
    pub listen_port: u16,
    /// pool_mode.
    pub pool_mode: String,
    /// max_db_connections for the whole unit (0 = unlimited).
    pub max_db_connections: u32,
    /// max_prepared_statements (written only for PgBouncer ≥ 1.21).
    pub max_prepared_statements: u32,
    /// How many PgBouncer processes.
    pub workers: u32,
    /// `prefer` or `require`.
    pub client_tls_sslmode: String,
}

fn int(cfg: &Config, key: &str, min: i64, max: i64, default: i64) -> Result<i64> {
    Ok(cfg.get_int_between(key, min, max)?.unwrap_or(default))
}

fn one_of(cfg: &Config, key: &str, allowed: &[&str], default: &str) -> Result<String> {
    cfg.get_one_of(key, allowed, default)
}

/// The default worker count: the CPUs, clamped to 2..4 (as upstream).
pub fn default_workers(cpus: usize) -> u32 {
    u32::try_from(cpus.clamp(2, 4)).unwrap_or(2)
}

/// Validates the config; `cpus` decides the default worker count. A bad value is an
/// [`Error::InvalidConfig`] naming the option, the value and the rule.
pub fn settings(cfg: &Config, cpus: usize) -> Result<Settings> {
    let workers = match cfg.get_int("workers")? {
        None => default_workers(cpus),
        Some(_) => int(cfg, "workers", 1, i64::from(MAX_WORKERS), 0)? as u32,
    };
    Ok(Settings {
        listen_port: int(cfg, "listen_port", 1, 65535, 6432)? as u16,
        pool_mode: one_of(cfg, "pool_mode", &POOL_MODES, "session")?,
        max_db_connections: int(cfg, "max_db_connections", 0, i64::from(u32::MAX), 100)? as u32,
        max_prepared_statements: int(cfg, "max_prepared_statements", 0, 1000, 100)? as u32,
        workers,
        client_tls_sslmode: one_of(cfg, "client_tls_sslmode", &CLIENT_TLS_MODES, "prefer")?,
    })
}

/// Pool sizes per worker: (max_db_connections, default, min, reserve). With
/// e = ceil(max_db_connections / workers): e, ceil(e/2), ceil(e/4), ceil(e/4); with 0
/// (unlimited): 0, 20, 10, 10.
pub fn pools(s: &Settings) -> (u32, u32, u32, u32) {
    if s.max_db_connections == 0 {
        return (0, 20, 10, 10);
    }
    let e = s.max_db_connections.div_ceil(s.workers.max(1));
    (e, e.div_ceil(2), e.div_ceil(4), e.div_ceil(4))
}

/// PgBouncer's version as `pgbouncer --version` prints it (`PgBouncer 1.18.0`).
pub fn parse_version(out: &str) -> Option<(u32, u32)> {
    let v = out.split_whitespace().nth(1)?;
    let mut it = v.split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// One database PgBouncer serves, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// Its name (on PgBouncer and on the backend).
    pub name: String,
}

/// Everything one worker's pgbouncer.ini depends on.
#[derive(Debug, Clone)]
pub struct Render<'a> {
    /// Validated settings.
    pub settings: &'a Settings,
    /// The unit's address (listen_addr).
    pub address: &'a str,
    /// The backend primary, `host:port`.
    pub primary: &'a str,
    /// The backend replicas, `host:port` (the primary when there are none).
    pub replicas: &'a [String],
    /// The databases served.
    pub databases: &'a [String],
    /// The auth user.
    pub auth_user: &'a str,
    /// The console's admin user.
    pub admin_user: &'a str,
    /// The console's stats user.
    pub stats_user: &'a str,
    /// Whether the backend offers TLS with a CA we hold (then verify-full).
    pub backend_tls: bool,
    /// Whether the client-facing certificate is in place.
    pub client_tls: bool,
    /// PgBouncer's (major, minor) version.
    pub version: (u32, u32),
}

fn split_host(endpoint: &str) -> (&str, &str) {
    endpoint.rsplit_once(':').unwrap_or((endpoint, "5432"))
}

/// The `[databases]` section: `<db>` to the primary and `<db>_readonly` to the replicas.
pub fn databases_section(r: &Render<'_>) -> String {
    let mut out = String::from("[databases]\n");
    let (host, port) = split_host(r.primary);
    let ro: Vec<&str> = r.replicas.iter().map(|e| split_host(e).0).collect();
    let ro_port = r.replicas.first().map(|e| split_host(e).1).unwrap_or(port);
    for db in r.databases {
        out.push_str(&format!(
            "{db} = host={host} port={port} dbname={db} auth_user={}\n",
            r.auth_user
        ));
        let ro_hosts = if ro.is_empty() {
            host.to_string()
        } else {
            ro.join(",")
        };
        out.push_str(&format!(
            "{db}_readonly = host={ro_hosts} port={ro_port} dbname={db} auth_user={}\n",
            r.auth_user
        ));
    }
    out
}

/// Worker `i`'s pgbouncer.ini.
pub fn ini(r: &Render<'_>, i: u32) -> String {
    let s = r.settings;
    let (max_db, default_pool, min_pool, reserve_pool) = pools(s);
    let mut out = databases_section(r);
    out.push_str("\n[pgbouncer]\n");
    let mut kv = |k: &str, v: &str| out.push_str(&format!("{k} = {v}\n"));
    kv("listen_addr", r.address);
    kv("listen_port", &s.listen_port.to_string());
    kv("so_reuseport", "1");
    kv("unix_socket_dir", "");
    kv("pidfile", &format!("{BASE}/instance_{i}/pgbouncer.pid"));
    kv("auth_type", "scram-sha-256");
    kv("auth_file", AUTH_FILE);
    kv("auth_user", r.auth_user);
    kv(
        "auth_query",
        &interfaces::pgbouncer_auth::auth_query(r.auth_user),
    );
    kv("admin_users", r.admin_user);
    kv("stats_users", r.stats_user);
    kv("pool_mode", &s.pool_mode);
    kv("max_client_conn", "10000");
    kv("max_db_connections", &max_db.to_string());
    kv("default_pool_size", &default_pool.to_string());
    kv("min_pool_size", &min_pool.to_string());
    kv("reserve_pool_size", &reserve_pool.to_string());
    kv("ignore_startup_parameters", "extra_float_digits,options");
    kv("server_reset_query", "DISCARD ALL");
    // After a failed server login (the backend failing over, or turning TLS on) retry
    // in 3 s rather than PgBouncer's 15 s.
    kv("server_login_retry", "3");
    if r.version >= (1, 21) {
        kv(
            "max_prepared_statements",
            &s.max_prepared_statements.to_string(),
        );
    }
    if r.backend_tls {
        kv("server_tls_sslmode", "verify-full");
        kv("server_tls_ca_file", BACKEND_CA);
    } else {
        kv("server_tls_sslmode", "prefer");
    }
    if r.client_tls {
        kv("client_tls_sslmode", &s.client_tls_sslmode);
        kv("client_tls_key_file", TLS_KEY);
        kv("client_tls_cert_file", TLS_CERT);
        kv("client_tls_ca_file", TLS_CA);
    }
    out
}

/// The auth file: the auth user with its plaintext password (PgBouncer logs in to
/// PostgreSQL as it), the console users with SCRAM verifiers.
pub fn auth_file(users: &BTreeMap<String, String>) -> String {
    users
        .iter()
        .map(|(u, p)| {
            format!(
                "\"{}\" \"{}\"\n",
                u.replace('"', "\"\""),
                p.replace('"', "\"\"")
            )
        })
        .collect()
}

/// The Pebble layer: one service per worker; services beyond `workers` (up to
/// `previous`) are disabled. The listen address and port are in each service's
/// environment so that changing them restarts the workers on replan.
pub fn layer(s: &Settings, address: &str, previous: u32) -> String {
    let mut out = String::from("summary: pgbouncer workers\nservices:\n");
    for i in 0..s.workers.max(previous) {
        let enabled = i < s.workers;
        out.push_str(&format!(
            "  pgbouncer_{i}:\n    override: replace\n    summary: pgbouncer worker {i}\n    command: pgbouncer {BASE}/instance_{i}/pgbouncer.ini\n    startup: {}\n    user: postgres\n    group: postgres\n    environment:\n      PGB_LISTEN: \"{address}:{}\"\n",
            if enabled { "enabled" } else { "disabled" },
            s.listen_port
        ));
    }
    out
}

/// The SQL that makes a client's user and database on the backend, and makes the
/// backend user a member of the client's user (so that it can drop what the user owns
/// when the client goes: REASSIGN OWNED needs it without SUPERUSER).
pub fn client_script(
    user: &str,
    database: &str,
    roles: &[String],
    verifier: &str,
    backend_user: &str,
) -> String {
    format!(
        "{}GRANT {} TO {};\n",
        interfaces::postgresql_provider::create_client_script(user, database, roles, verifier),
        ident(user),
        ident(backend_user)
    )
}

/// Roles a client of PgBouncer may ask for in `extra-user-roles`.
pub const ALLOWED_EXTRA_ROLES: [&str; 2] = ["CREATEDB", "CREATEROLE"];

/// Checks a client's database name and extra roles; returns the roles (upper-cased) or
/// why the request is refused.
pub fn check_request(
    request: &interfaces::postgresql_client::DatabaseRequest,
) -> std::result::Result<Vec<String>, String> {
    interfaces::postgresql_provider::check_request(request, &ALLOWED_EXTRA_ROLES, &["_readonly"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Settings {
        Settings {
            listen_port: 6432,
            pool_mode: "session".into(),
            max_db_connections: 100,
            max_prepared_statements: 100,
            workers: 2,
            client_tls_sslmode: "prefer".into(),
        }
    }

    #[test]
    fn pools_split_across_workers() {
        assert_eq!(pools(&s()), (50, 25, 13, 13));
        let mut u = s();
        u.max_db_connections = 0;
        assert_eq!(pools(&u), (0, 20, 10, 10));
        assert_eq!(default_workers(1), 2);
        assert_eq!(default_workers(8), 4);
    }

    #[test]
    fn version_and_ini() {
        assert_eq!(
            parse_version("PgBouncer 1.18.0\nlibevent 2.1.12"),
            Some((1, 18))
        );
        assert_eq!(parse_version("garbage"), None);
        let replicas = vec!["127.1.0.3:5432".to_string(), "127.1.0.4:5432".to_string()];
        let dbs = vec!["app".to_string()];
        let settings = s();
        let r = Render {
            settings: &settings,
            address: "127.1.0.9",
            primary: "127.1.0.2:5432",
            replicas: &replicas,
            databases: &dbs,
            auth_user: "pgbouncer_auth_relation_id_1",
            admin_user: "pgbouncer_admin_pgbouncer",
            stats_user: "pgbouncer_stats_pgbouncer",
            backend_tls: true,
            client_tls: false,
            version: (1, 18),
        };
        let ini = ini(&r, 1);
        assert!(ini.contains(
            "app = host=127.1.0.2 port=5432 dbname=app auth_user=pgbouncer_auth_relation_id_1\n"
        ));
        assert!(ini.contains("app_readonly = host=127.1.0.3,127.1.0.4 port=5432"));
        assert!(ini.contains("listen_addr = 127.1.0.9\n"));
        assert!(ini.contains("auth_type = scram-sha-256\n"));
        assert!(ini.contains("server_tls_sslmode = verify-full\n"));
        assert!(ini.contains("pidfile = /var/lib/pgbouncer/instance_1/pgbouncer.pid\n"));
        assert!(!ini.contains("max_prepared_statements"));
        assert!(!ini.contains("client_tls"));
        assert!(!ini.contains("md5"));
        let r2 = Render {
            version: (1, 21),
            client_tls: true,
            ..r
        };
        let ini2 = super::ini(&r2, 0);
        assert!(ini2.contains("max_prepared_statements = 100\n"));
        assert!(ini2.contains("client_tls_sslmode = prefer\n"));
    }

    #[test]
    fn layer_disables_extra_workers() {
        let l = layer(&s(), "127.0.0.5", 3);
        assert!(l.contains("pgbouncer_0:") && l.contains("pgbouncer_2:"));
        assert_eq!(l.matches("startup: enabled").count(), 2);
        assert_eq!(l.matches("startup: disabled").count(), 1);
        assert!(l.contains("PGB_LISTEN: \"127.0.0.5:6432\""));
    }

    #[test]
    fn auth_file_quotes() {
        let users: BTreeMap<String, String> = [("a\"b".to_string(), "p".to_string())].into();
        assert_eq!(auth_file(&users), "\"a\"\"b\" \"p\"\n");
    }
}
