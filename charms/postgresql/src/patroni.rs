//! Patroni: its config file, the Pebble layer that runs it, and its REST API.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};

use crate::settings::Settings;

/// Where the storage `pgdata` is mounted in the workload.
pub const STORAGE: &str = "/var/lib/postgresql/data";
/// Patroni's config file (in storage, so it survives the workload's restarts).
pub const CONFIG_PATH: &str = "/var/lib/postgresql/data/patroni.yml";
/// PostgreSQL's data directory.
pub const DATA_DIR: &str = "/var/lib/postgresql/data/pgdata";
/// The script Patroni runs when this member's PostgreSQL starts, restarts or changes role:
/// it records a Pebble custom notice, which Juju (and Ward) turn into a
/// `postgresql-pebble-custom-notice` event. So no hook has to wait for Patroni: the end
/// of a bootstrap, of a join (the copy of the primary) or of a restart brings a hook.
pub const ROLE_CHANGE_SCRIPT: &str = "/var/lib/postgresql/data/role-change.sh";
/// The key of that notice.
pub const ROLE_CHANGE_KEY: &str = "ward.io/postgresql/role-change";
/// The Patroni callbacks that run [`ROLE_CHANGE_SCRIPT`].
pub const CALLBACKS: [&str; 3] = ["on_start", "on_restart", "on_role_change"];

/// The role-change script's content. Patroni calls it with `<callback> <role> <scope>`.
pub fn role_change_script() -> String {
    format!("#!/bin/sh\n# Written by the postgresql charm: Patroni calls it when this member's PostgreSQL starts,\n# restarts or changes role.\nexec /charm/bin/pebble notify {ROLE_CHANGE_KEY} role=\"$2\" callback=\"$1\"\n")
}
/// The script that starts this member's Patroni, joining it to the raft cluster first,
/// and removes members from the raft cluster (pysyncobj's utility protocol), reading the
/// raft password from patroni.yml so it never is in argv.
pub const RAFT_SCRIPT: &str = "/var/lib/postgresql/data/raft-member.py";
/// Patroni's executable: the service runs it through [`RAFT_SCRIPT`].
pub const PATRONI_BIN: &str = "/usr/bin/patroni";

/// The raft script's content.
///
/// `raft-member.py run <patroni> <patroni.yml>` is the service's command. A member that
/// is new to a raft cluster (not listed by its partners) first asks the raft leader to
/// add it, waits until the leader lists it (at most 5 s), then runs Patroni in the same
/// process. Why: pysyncobj lets the member whose `host:port` sorts higher open the
/// connection between two members, and drops one from a stranger. Left to Patroni, a new
/// member asks to be added and connects at the same time; when the connection comes
/// first it is dropped and tried again only 5 s later (pysyncobj's
/// connectionRetryTime), and the cluster, which counts the member from the add on,
/// cannot commit meanwhile (a 1-member cluster: not at all). Worse, Patroni stops waiting
/// for the answer to its add after retry_timeout / partners seconds, and pysyncobj 0.3
/// answering on the closed connection kills the leader's raft thread. Added first, the
/// member is let in at once; its add is answered once it is in, on a connection kept
/// open until then. When a member sorts after it, that member opens the connection,
/// which it could not before this one listens: Patroni adds it then, as before. A SIGHUP
/// (patroni.yml changed) before Patroni handles it is held back and sent again once it
/// does, instead of ending the process.
///
/// `raft-member.py remove <host:port>` asks the cluster (through this member's partners
/// first, then this member) to drop that member, and prints `absent` when it is not a
/// member (any more). Exit status 1 when no member answered. pysyncobj's leader refuses
/// to remove itself. When the member to remove is this one and it leads raft, the script
/// pauses this member's Patroni (SIGSTOP, the same user) for 2 s, longer than raft's
/// election timeout, so that another member calls an election, then resumes it (SIGCONT):
/// it steps down on the new term, and the removal goes to the new leader. It tries that
/// up to 5 times.
pub fn raft_member_script() -> String {
    format!(
        r#"# Written by the postgresql charm: starts Patroni, joining its raft cluster first, and
# removes members from that cluster.
import json
import os
import signal
import sys
import threading
import time

from pysyncobj.utility import TcpUtility


def ask(password, node, cmd, timeout):
    return TcpUtility(password, timeout).executeCommand(node, cmd)


def listed(password, node):
    answer = ask(password, node, ["members"], 2)
    if not isinstance(answer, list):
        raise Exception("no members from %s: %s" % (node, answer))
    return answer


def join(config):
    try:
        raft = json.load(open(config))["raft"]
        me, password = raft["self_addr"], raft.get("password")
    except Exception:
        return
    for node in [p for p in raft.get("partner_addrs", []) if p != me]:
        try:
            members = listed(password, node)
        except Exception:
            continue  # not running (yet), or not a member
        addrs = [m["addr"] for m in members]
        leader = next((m["addr"] for m in members if m.get("leader")), None)
        if me in addrs or any(a > me for a in addrs) or leader is None:
            return
        def add():
            # Answered at the commit (or at once, refused): the connection stays open until
            # then, however long that takes.
            try:
                ask(password, leader, ["add", me], 3600)
            except Exception:
                pass

        adding = None
        deadline = time.time() + 5
        while time.time() < deadline:
            if adding is None or not adding.is_alive():
                adding = threading.Thread(target=add, daemon=True)
                adding.start()
            time.sleep(0.1)
            try:
                if me in [m["addr"] for m in listed(password, leader)]:
                    return
            except Exception:
                pass
        return


def run(executable, config):
    import runpy

    # The charm sends SIGHUP when patroni.yml changes. Until Patroni handles it, the
    # default action would end the process (a join cut short); one that comes early is
    # sent again once Patroni handles it.
    early = []
    signal.signal(signal.SIGHUP, lambda signum, frame: early.append(signum))
    hup = signal.getsignal(signal.SIGHUP)

    def again():
        while signal.getsignal(signal.SIGHUP) is hup:
            time.sleep(0.1)
        if early:
            os.kill(os.getpid(), signal.SIGHUP)

    threading.Thread(target=again, daemon=True).start()
    try:
        # Patroni's modules first: the cluster cannot commit from the add until this
        # member's raft is up.
        import patroni.__main__, patroni.api, patroni.ha, patroni.dcs.raft  # noqa
    except Exception:
        pass
    join(config)
    sys.argv = [executable, config]
    runpy.run_path(executable, run_name="__main__")


def patroni_pids():
    pids = []
    for pid in os.listdir("/proc"):
        try:
            cmd = open("/proc/%s/cmdline" % pid, "rb").read().split(b"\0")
        except (OSError, ValueError):
            continue
        if any(c.endswith(b"patroni") for c in cmd) and b"{CONFIG_PATH}" in cmd:
            pids.append(int(pid))
    return pids


def remove(target):
    raft = json.load(open("{CONFIG_PATH}"))["raft"]
    me, password = raft["self_addr"], raft.get("password")
    nodes = [p for p in raft.get("partner_addrs", []) if p not in (me, target)] + [me]

    def step_down():
        # This member leads raft: pause it so that another one calls an election.
        for _ in range(5):
            try:
                leader = ask(password, me, ["status"], 5).get("leader")
                if getattr(leader, "address", leader) != me:
                    return
            except Exception:
                return
            pids = patroni_pids()
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            time.sleep(2)
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
            time.sleep(1)

    errors = []
    for attempt in range(2):
        if target == me:
            step_down()
        for node in nodes:
            try:
                members = ask(password, node, ["members"], 5)
                if target not in [m["addr"] for m in members]:
                    print("absent")
                    sys.exit(0)
                answer = ask(password, node, ["remove", target], 10)
            except Exception as e:  # a member that is down or not a member any more
                errors.append("%s: %s" % (node, e))
                continue
            if str(answer).startswith("SUCCESS"):
                print("removed")
                sys.exit(0)
            errors.append("%s: %s" % (node, answer))
    sys.exit("no raft member removed %s: %s" % (target, "; ".join(errors)))


if sys.argv[1] == "run":
    run(sys.argv[2], sys.argv[3])
elif sys.argv[1] == "remove":
    remove(sys.argv[2])
else:
    sys.exit("unknown command " + sys.argv[1])
"#
    )
}

/// The CA file Patroni's REST API is served under (HTTPS) in a patroni.yml the charm
/// wrote; `None` for plain HTTP or an unreadable file.
pub fn rest_cafile(config: &[u8]) -> Option<String> {
    let doc: Value = serde_json::from_slice(config).ok()?;
    doc["restapi"]["cafile"].as_str().map(str::to_string)
}

/// The REST API password in a patroni.yml the charm wrote (`None` if it cannot be read).
pub fn rest_password(config: &[u8]) -> Option<String> {
    let doc: Value = serde_json::from_slice(config).ok()?;
    doc["restapi"]["authentication"]["password"]
        .as_str()
        .map(str::to_string)
}
/// PostgreSQL's binaries (Debian 12's PostgreSQL 15).
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// PostgreSQL's port.
pub const PG_PORT: u16 = 5432;
/// Patroni's REST API port.
pub const REST_PORT: u16 = 8008;
/// The raft DCS port.
pub const RAFT_PORT: u16 = 2222;

/// Passwords of the system users (never logged; the file holding them is 0600).
#[derive(Clone)]
pub struct Passwords {
    /// Superuser `operator`.
    pub operator: String,
    /// `replication`.
    pub replication: String,
    /// `rewind`.
    pub rewind: String,
    /// Patroni's REST API (unsafe endpoints) and raft.
    pub patroni: String,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passwords(<redacted>)")
    }
}

/// What one unit's Patroni needs to know.
#[derive(Debug, Clone)]
pub struct Member<'a> {
    /// Cluster (scope) name: the application.
    pub scope: &'a str,
    /// Member name: the unit with `/` as `-`.
    pub name: String,
    /// The unit's address.
    pub address: &'a str,
    /// The other units' addresses.
    pub peers: Vec<String>,
    /// TLS files present (`ssl = on`).
    pub tls: bool,
}

/// Parameters Patroni takes only from its cluster-wide (DCS) config: set in patroni.yml's
/// `postgresql.parameters` they are ignored, so they go in `bootstrap.dcs` and, later,
/// through `PATCH /config`.
pub const DCS_PARAMETERS: [&str; 9] = [
    "max_connections",
    "max_locks_per_transaction",
    "max_worker_processes",
    "max_prepared_transactions",
    "wal_level",
    "track_commit_timestamp",
    "max_wal_senders",
    "max_replication_slots",
    "wal_keep_size",
];

/// The cluster-wide parameters: replication's fixed ones and those of [`DCS_PARAMETERS`]
/// the config sets.
pub fn dcs_parameters(settings: &Settings) -> Value {
    let mut p = serde_json::Map::new();
    p.insert("wal_level".into(), json!("replica"));
    p.insert("hot_standby".into(), json!("on"));
    p.insert("wal_log_hints".into(), json!("on"));
    for (k, v) in &settings.parameters {
        if DCS_PARAMETERS.contains(&k.as_str()) {
            p.insert(k.clone(), json!(v));
        }
    }
    Value::Object(p)
}

/// Renders patroni.yml (JSON is YAML).
pub fn config(member: &Member<'_>, settings: &Settings, pw: &Passwords) -> String {
    let mut parameters = serde_json::Map::new();
    for (k, v) in &settings.parameters {
        if !DCS_PARAMETERS.contains(&k.as_str()) {
            parameters.insert(k.clone(), json!(v));
        }
    }
    parameters.insert("password_encryption".into(), json!("scram-sha-256"));
    parameters.insert(
        "unix_socket_directories".into(),
        json!("/var/run/postgresql"),
    );
    parameters.insert("log_destination".into(), json!("stderr"));
    // A replica whose primary went away retries streaming every this often (PostgreSQL's
    // default is 5 s). In synchronous mode commits on the restarted or promoted primary
    // wait for a synchronous standby to stream again, so this bounds the write gap.
    parameters.insert("wal_retrieve_retry_interval".into(), json!("1s"));
    if member.tls {
        parameters.insert("ssl".into(), json!("on"));
        parameters.insert(
            "ssl_cert_file".into(),
            json!(format!("{STORAGE}/tls/server.crt")),
        );
        parameters.insert(
            "ssl_key_file".into(),
            json!(format!("{STORAGE}/tls/server.key")),
        );
        parameters.insert("ssl_ca_file".into(), json!(format!("{STORAGE}/tls/ca.crt")));
    }
    // With a certificate in place every TCP connection must use TLS (as upstream).
    let host = if member.tls { "hostssl" } else { "host" };
    // scram-sha-256 only: no trust, no md5, no peer over the network. Peers reach each
    // other from 127.0.0.1 on one machine (their source address is not bound).
    let mut pg_hba = vec![
        "local all all scram-sha-256".to_string(),
        format!("{host} replication replication 127.0.0.0/8 scram-sha-256"),
        format!("{host} replication replication 0.0.0.0/0 scram-sha-256"),
    ];
    if settings.require_tls && !member.tls {
        // TLS required but no certificate yet: only the charm's own users (operator for
        // the charm and Patroni, rewind for pg_rewind) get in over TCP; clients wait.
        pg_hba.push(format!(
            "{host} all operator,rewind,monitoring,backup 0.0.0.0/0 scram-sha-256"
        ));
    } else {
        pg_hba.push(format!("{host} all all 0.0.0.0/0 scram-sha-256"));
    }
    let dcs = json!({
        // Patroni's rule: ttl >= loop_wait + 2 * retry_timeout, and ttl is at least 20. A
        // 2 s loop notices a dead postmaster (and an expired leader key) five times as
        // fast as the default 10 s, for writes back within 10 s.
        "ttl": 20,
        "loop_wait": 2,
        "retry_timeout": 5,
        "maximum_lag_on_failover": settings.maximum_lag_on_failover,
        "synchronous_mode": settings.synchronous_mode,
        "synchronous_mode_strict": settings.synchronous_mode && settings.synchronous_mode_strict && !member.peers.is_empty(),
        "synchronous_node_count": settings.synchronous_node_count.resolve(member.peers.len() + 1),
        "postgresql": {"use_pg_rewind": true, "parameters": dcs_parameters(settings)},
    });
    let raft_partners: Vec<String> = member
        .peers
        .iter()
        .map(|p| format!("{p}:{RAFT_PORT}"))
        .collect();
    let mut restapi = json!({
        "listen": format!("{}:{REST_PORT}", member.address),
        "connect_address": format!("{}:{REST_PORT}", member.address),
        "authentication": {"username": "patroni", "password": pw.patroni},
    });
    if member.tls {
        // HTTPS only, with the unit's certificate. `cafile` is also the CA Patroni checks
        // the other members' REST APIs against (it asks them before a failover).
        restapi["certfile"] = json!(format!("{STORAGE}/tls/server.crt"));
        restapi["keyfile"] = json!(format!("{STORAGE}/tls/server.key"));
        restapi["cafile"] = json!(format!("{STORAGE}/tls/ca.crt"));
    }
    let doc = json!({
        "scope": member.scope,
        "name": member.name,
        "log": {"level": "INFO"},
        "restapi": restapi,
        "raft": {
            "data_dir": format!("{STORAGE}/raft"),
            "self_addr": format!("{}:{RAFT_PORT}", member.address),
            // Without it pysyncobj listens on 0.0.0.0, and the units' raft ports collide.
            "bind_addr": format!("{}:{RAFT_PORT}", member.address),
            "partner_addrs": raft_partners,
            "password": pw.patroni,
        },
        "bootstrap": {
            "dcs": dcs,
            "initdb": [{"encoding": "UTF8"}, "data-checksums"],
            "pg_hba": pg_hba.clone(),
        },
        "postgresql": {
            "listen": format!("{}:{PG_PORT}", member.address),
            "connect_address": format!("{}:{PG_PORT}", member.address),
            "data_dir": DATA_DIR,
            "bin_dir": BIN_DIR,
            "pgpass": "/tmp/pgpass",
            "authentication": {
                "superuser": {"username": "operator", "password": pw.operator},
                "replication": {"username": "replication", "password": pw.replication},
                "rewind": {"username": "rewind", "password": pw.rewind},
            },
            "parameters": parameters,
            "pg_hba": pg_hba,
            // The charm hears of a role change at once (not at the next update-status), so
            // clients' endpoints follow a failover; and of the end of a bootstrap, a join or
            // a restart, so that no hook waits for them.
            "callbacks": CALLBACKS
                .iter()
                .map(|c| (c.to_string(), json!(format!("/bin/sh {ROLE_CHANGE_SCRIPT}"))))
                .collect::<serde_json::Map<_, _>>(),
            // A new replica's pg_basebackup asks for an immediate checkpoint: a spread one
            // after a burst of writes (CREATE DATABASE, say) takes minutes (as upstream).
            "basebackup": [{"checkpoint": "fast"}],
        },
        "watchdog": {"mode": "off"},
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// The Pebble layer: Patroni as the `postgresql` service, and a readiness check on its
/// REST API: `GET /health` over plain HTTP, or, once the API serves HTTPS (`tls`), a TCP
/// connection (Pebble's HTTP checks cannot be given the CA).
pub fn layer(address: &str, tls: bool) -> String {
    let check = if tls {
        format!("    tcp:\n      host: {address}\n      port: {REST_PORT}\n")
    } else {
        format!("    http:\n      url: http://{address}:{REST_PORT}/health\n")
    };
    format!(
        "summary: postgresql + patroni layer\nservices:\n  postgresql:\n    override: replace\n    summary: PostgreSQL managed by Patroni\n    command: /usr/bin/python3 {RAFT_SCRIPT} run {PATRONI_BIN} {CONFIG_PATH}\n    startup: enabled\n    user: postgres\n    group: postgres\n    environment:\n      PATRONI_LOG_LEVEL: INFO\nchecks:\n  postgresql:\n    override: replace\n    level: ready\n    period: 10s\n    threshold: 3\n{check}"
    )
}

/// The layer a leaving unit adds over [`layer`] before it stops Patroni: nothing (a replan,
/// Patroni exiting) starts it again.
pub fn stopped_layer() -> String {
    "summary: postgresql leaving the cluster\nservices:\n  postgresql:\n    override: merge\n    startup: disabled\n    on-success: ignore\n    on-failure: ignore\n".to_string()
}

/// A TLS client over `tcp` that trusts only the CA certificates in `ca_pem` and checks
/// that the server's certificate is for `address` (an IP address SAN).
fn tls_stream(
    address: &str,
    tcp: TcpStream,
    ca_pem: &str,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    let bad = |what: &str, e: &dyn std::fmt::Display| std::io::Error::other(format!("{what}: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| bad("unreadable CA certificate for Patroni's API", &e))?;
        roots
            .add(cert)
            .map_err(|e| bad("unusable CA certificate for Patroni's API", &e))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad("TLS setup", &e))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from(address.to_string())
        .map_err(|e| bad(&format!("bad address {address}"), &e))?;
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
        .map_err(|e| bad("TLS setup", &e))?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// Reads a whole HTTP/1.1 `Connection: close` response. A TLS peer that closes without
/// close_notify (Python's servers do) ends the response too.
fn read_response(s: &mut dyn Read) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {
                return Ok(out)
            }
            Err(e) => return Err(e),
        }
    }
}

/// A GET (or POST with a body) to Patroni's REST API; returns (status, JSON body). With
/// `ca` (PEM) the API is reached over HTTPS and must present a certificate from that CA.
pub fn rest(
    address: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    password: Option<&str>,
    ca: Option<&str>,
) -> std::io::Result<(u16, Value)> {
    let addr: SocketAddr = format!("{address}:{REST_PORT}")
        .parse()
        .map_err(|e| std::io::Error::other(format!("bad address {address}: {e}")))?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls;
    let mut plain;
    let s: &mut dyn ReadWrite = match ca {
        Some(ca) => {
            tls = tls_stream(address, tcp, ca)?;
            &mut tls
        }
        None => {
            plain = tcp;
            &mut plain
        }
    };
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n", payload.len());
    if body.is_some() {
        req.push_str("Content-Type: application/json\r\n");
    }
    if let Some(pw) = password {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("patroni:{pw}"));
        req.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&payload);
    s.write_all(req.as_bytes())?;
    s.flush()?;
    let out = read_response(s)?;
    let text = String::from_utf8_lossy(&out);
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let json = serde_json::from_str(body.trim())
        .unwrap_or_else(|_| Value::String(body.trim().to_string()));
    Ok((code, json))
}

/// A byte stream both ways (plain TCP or TLS over it).
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Patroni's REST API (port 8008 of a member). [`Rest`] is the real one;
/// [`crate::fakes::FakePatroni`] answers from a table in harness tests.
pub trait PatroniApi: std::fmt::Debug {
    /// One request; returns (HTTP status, JSON body or the body as a string).
    fn request(
        &self,
        address: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        password: Option<&str>,
    ) -> std::io::Result<(u16, Value)>;

    /// From now on, reach the API over HTTPS trusting the CA in `ca` (PEM), or over plain
    /// HTTP with `None`.
    fn use_ca(&self, ca: Option<&str>);
}

/// The real API over TCP (the charm shares the units' loopback network), HTTPS once
/// given a CA.
#[derive(Debug, Default)]
pub struct Rest {
    ca: std::sync::Mutex<Option<String>>,
}

impl PatroniApi for Rest {
    fn request(
        &self,
        address: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        password: Option<&str>,
    ) -> std::io::Result<(u16, Value)> {
        let ca = self.ca.lock().unwrap_or_else(|e| e.into_inner()).clone();
        rest(address, method, path, body, password, ca.as_deref())
    }

    fn use_ca(&self, ca: Option<&str>) {
        *self.ca.lock().unwrap_or_else(|e| e.into_inner()) = ca.map(str::to_string);
    }
}

/// A running member's role and PostgreSQL version, from `GET /patroni`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// `primary` or `replica`.
    pub role: String,
    /// PostgreSQL's version, e.g. `15.14`, when Patroni reports it.
    pub version: Option<String>,
}

/// `150014` → `15.14` (PostgreSQL 10 and later number versions major * 10000 + minor).
pub fn version_string(server_version: i64) -> String {
    format!("{}.{}", server_version / 10000, server_version % 10000)
}

/// This member's status; `Err` says why it is not a running primary or replica.
pub fn status(api: &dyn PatroniApi, address: &str) -> Result<MemberStatus, String> {
    match api.request(address, "GET", "/patroni", None, None) {
        Ok((_, v)) => member_status(&v),
        Err(e) => Err(format!("Patroni's API is not answering ({e})")),
    }
}

/// A `GET /patroni` answer as a running member's status, or why it is not one.
fn member_status(v: &Value) -> Result<MemberStatus, String> {
    let state = v["state"].as_str().unwrap_or("");
    let role = v["role"].as_str().unwrap_or("");
    let version = v["server_version"].as_i64().map(version_string);
    let role = match (state, role) {
        ("running", "master" | "primary") => "primary",
        ("running", "replica" | "standby_leader" | "sync_standby") => "replica",
        (s, _) if !s.is_empty() => return Err(s.replace('_', " ")),
        _ => return Err("Patroni answered without a state".into()),
    };
    Ok(MemberStatus {
        role: role.into(),
        version,
    })
}

/// This member's role as Patroni reports it: `primary`, `replica`, or why it is neither.
pub fn role(address: &str) -> Result<String, String> {
    status(&Rest::default(), address).map(|s| s.role)
}

/// Where a member is on its way to running, from `GET /patroni`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// PostgreSQL runs as the primary or a replica.
    Running(MemberStatus),
    /// This member bootstraps a new cluster: it won the cluster's initialize key in the
    /// DCS (initdb, its first start, and Patroni's post-bootstrap before it takes the
    /// leader key). Anyone joining through its raft waits for it instead of bootstrapping.
    Bootstrapping,
    /// A member without data waiting for a primary to copy from.
    WaitingForPrimary,
    /// Copying the primary's data (pg_basebackup).
    Copying,
    /// PostgreSQL starting or restarting.
    Starting,
    /// Anything else, as Patroni says it (stopped, start failed, crashed…), or why the API
    /// did not answer.
    Down(String),
}

/// This member's progress. `initialised`: whether the cluster is known to be
/// bootstrapped (a running primary without the leader key is then just running).
pub fn progress(api: &dyn PatroniApi, address: &str, initialised: bool) -> Progress {
    let v = match api.request(address, "GET", "/patroni", None, None) {
        Ok((_, v)) => v,
        Err(e) => return Progress::Down(format!("Patroni's API is not answering ({e})")),
    };
    let state = v["state"].as_str().unwrap_or("");
    let role = v["role"].as_str().unwrap_or("");
    let unlocked = v["cluster_unlocked"].as_bool() == Some(true);
    match (state, role) {
        ("initializing new cluster" | "running custom bootstrap script", _) => {
            Progress::Bootstrapping
        }
        // Post-bootstrap: PostgreSQL runs, Patroni makes its users, then takes the lock.
        ("running" | "starting", "master" | "primary") if unlocked && !initialised => {
            Progress::Bootstrapping
        }
        ("creating replica", _) => Progress::Copying,
        ("stopped", "uninitialized") => Progress::WaitingForPrimary,
        ("starting" | "restarting", _) => Progress::Starting,
        _ => match member_status(&v) {
            Ok(s) => Progress::Running(s),
            Err(why) => Progress::Down(why),
        },
    }
}

/// The cluster's members as Patroni reports them: (name, role, host).
pub fn cluster(
    api: &dyn PatroniApi,
    address: &str,
) -> std::io::Result<Vec<(String, String, String)>> {
    let (_, v) = api.request(address, "GET", "/cluster", None, None)?;
    Ok(members_of(&v))
}

/// The members in a `GET /cluster` answer: (name, role, host).
pub fn members_of(cluster: &Value) -> Vec<(String, String, String)> {
    cluster["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m["name"].as_str().unwrap_or("").to_string(),
                        m["role"].as_str().unwrap_or("").to_string(),
                        m["host"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The cluster's members over the real API: (name, role, host).
pub fn members(address: &str) -> std::io::Result<Vec<(String, String, String)>> {
    cluster(&Rest::default(), address)
}

/// Whether a role from `GET /cluster` is the primary's.
pub fn is_primary_role(role: &str) -> bool {
    matches!(role, "leader" | "master" | "primary")
}

/// `postgresql-0` → `postgresql/0`.
pub fn unit_of(member: &str) -> String {
    match member.rsplit_once('-') {
        Some((app, n)) => format!("{app}/{n}"),
        None => member.to_string(),
    }
}
