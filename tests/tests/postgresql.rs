//! The postgresql charm under the sandbox substrate: one unit bootstraps a Patroni
//! cluster and becomes the primary; two more join as streaming replicas; rows written on
//! the primary are read on a replica, with the operator password from get-password.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use ward_e2e::{
    address, assert_no_hook_failed, charm_dir, copy_dir, get_password, settle, workload, Model,
};

/// psql as operator; the password goes in the environment, never in argv.
fn psql(host: &str, password: &str, sql: &str) -> Result<String, String> {
    psql_as(host, "operator", password, "postgres", sql)
}

fn psql_as(host: &str, user: &str, password: &str, db: &str, sql: &str) -> Result<String, String> {
    ward_e2e::psql(host, user, password, db, sql)
}

#[test]
fn one_unit_bootstraps_then_replicas_stream_from_it() {
    // WARD_KEEP=1 keeps the model's directory (unit logs, Pebble logs) for a post-mortem.
    let home = tempfile::Builder::new()
        .prefix("wpg")
        .disable_cleanup(std::env::var_os("WARD_KEEP").is_some())
        .tempdir_in("/tmp")
        .unwrap();
    let charm = charm_dir(
        home.path(),
        "postgresql",
        &ward_e2e::project().join("metadata/postgresql"),
        Some(Path::new(env!("CARGO_BIN_EXE_postgresql-charm"))),
    )
    .unwrap();
    let model = Model::start_with(home.path(), &ward_e2e::test_binaries!()).unwrap();
    let ctl = &model.ctl;
    ctl.deploy(
        "postgresql",
        &charm,
        1,
        [("profile".to_string(), json!("testing"))].into(),
    )
    .unwrap();
    settle(ctl, "postgresql/0 primary", Duration::from_secs(120), |c| {
        workload(c, "postgresql/0") == ("active".into(), "Primary".into())
    })
    .unwrap();
    assert_no_hook_failed(ctl);

    let rt = &model.rt;
    let password = get_password(rt, ctl, "postgresql/0", None).unwrap();
    assert_eq!(password.len(), 32);
    let primary = address(ctl, "postgresql/0");
    psql(
        &primary,
        &password,
        "CREATE TABLE ward_e2e (n int); INSERT INTO ward_e2e VALUES (42);",
    )
    .unwrap();
    assert!(
        psql(&primary, "wrong-password", "SELECT 1").is_err(),
        "a wrong password is refused"
    );
    let method = psql(&primary, &password, "SHOW password_encryption").unwrap();
    assert_eq!(method, "scram-sha-256");

    ctl.add_unit("postgresql", 2).unwrap();
    settle(ctl, "two replicas", Duration::from_secs(180), |c| {
        workload(c, "postgresql/1") == ("active".into(), "Replica".into())
            && workload(c, "postgresql/2") == ("active".into(), "Replica".into())
    })
    .unwrap();
    assert_no_hook_failed(ctl);
    let replica = address(ctl, "postgresql/1");
    let mut got = String::new();
    for _ in 0..50 {
        got = psql(&replica, &password, "SELECT n FROM ward_e2e").unwrap_or_default();
        if got == "42" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        got, "42",
        "the row written on the primary is on the replica"
    );
    assert_eq!(
        psql(&replica, &password, "SELECT pg_is_in_recovery()").unwrap(),
        "t"
    );

    let task = rt
        .block_on(ctl.run_action(
            "postgresql/2",
            "get-primary",
            json!({}),
            Duration::from_secs(30),
        ))
        .unwrap();
    assert_eq!(task.results["primary"], "postgresql/0");
    let bad = rt.block_on(ctl.run_action(
        "postgresql/0",
        "get-password",
        json!({"username": "nobody"}),
        Duration::from_secs(30),
    ));
    let failed = match bad {
        Ok(t) => t.status != "completed",
        Err(_) => true,
    };
    assert!(failed, "an unknown username is refused");

    // Synchronous mode by config: Patroni names a synchronous standby, writes still commit.
    ctl.set_config(
        "postgresql",
        [("durability_synchronous_mode".to_string(), Some(json!(true)))].into(),
    )
    .unwrap();
    settle(
        ctl,
        "a synchronous standby",
        Duration::from_secs(60),
        |_| {
            postgresql_charm::patroni::members(&primary)
                .map(|m| m.iter().any(|(_, role, _)| role == "sync_standby"))
                .unwrap_or(false)
        },
    )
    .unwrap();
    psql(
        &primary,
        &password,
        "INSERT INTO ward_e2e VALUES (41); DELETE FROM ward_e2e WHERE n = 41;",
    )
    .unwrap();

    // A client on `database` gets a database and a user of its own, in a granted secret.
    let client = home.path().join("db-client");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("charms/db-client"),
        &client,
    )
    .unwrap();
    ctl.deploy("app", &client, 1, Default::default()).unwrap();
    let rel = ctl
        .integrate("app:database", "postgresql:database")
        .unwrap();
    settle(
        ctl,
        "the client's credentials",
        Duration::from_secs(60),
        |c| workload(c, "app/0").0 == "active",
    )
    .unwrap();
    assert_no_hook_failed(ctl);
    let bag = ctl.relation_data(rel, "postgresql").unwrap();
    assert_eq!(bag["endpoints"], format!("{primary}:5432"));
    assert!(bag["read-only-endpoints"].contains(&replica), "{bag:?}");
    assert!(
        !bag.contains_key("password"),
        "credentials travel in the secret, not the bag"
    );
    let creds = ctl.reveal_secret(&bag["secret-user"], None).unwrap();
    let user = creds["username"].clone();
    assert_eq!(user, format!("relation_id_{rel}"));
    let as_client = |sql: &str| psql_as(&primary, &user, &creds["password"], "appdb", sql);
    as_client("CREATE TABLE things (n int); INSERT INTO things VALUES (1);").unwrap();
    assert_eq!(as_client("SELECT count(*) FROM things").unwrap(), "1");
    assert!(psql_as(
        &primary,
        &user,
        &creds["password"],
        "postgres",
        "CREATE DATABASE nope"
    )
    .is_err());

    // SUPERUSER is refused, with a status naming it, and nothing is created.
    ctl.deploy(
        "greedy",
        &client,
        1,
        [
            ("roles".to_string(), json!("SUPERUSER")),
            ("database".to_string(), json!("greedydb")),
        ]
        .into(),
    )
    .unwrap();
    let greedy = ctl
        .integrate("greedy:database", "postgresql:database")
        .unwrap();
    settle(ctl, "the refusal", Duration::from_secs(60), |c| {
        let (s, m) = workload(c, "postgresql/0");
        s == "blocked" && m.contains("extra-user-roles SUPERUSER is not allowed")
    })
    .unwrap();
    let count = format!("SELECT count(*) FROM pg_roles WHERE rolname = 'relation_id_{greedy}'");
    assert_eq!(psql(&primary, &password, &count).unwrap(), "0");
    assert!(!ctl
        .relation_data(greedy, "postgresql")
        .unwrap()
        .contains_key("secret-user"));
    ctl.remove_relation_between("greedy", "postgresql").unwrap();
    settle(
        ctl,
        "postgresql/0 unblocked",
        Duration::from_secs(60),
        |c| workload(c, "postgresql/0") == ("active".into(), "Primary".into()),
    )
    .unwrap();

    // set-password rotates the operator password: the old one stops working.
    let new_password = "Rotated0Password0For0Ward0Tests0".to_string();
    let task = rt
        .block_on(ctl.run_action(
            "postgresql/0",
            "set-password",
            json!({"username": "operator", "password": new_password}),
            Duration::from_secs(60),
        ))
        .unwrap();
    assert_eq!(task.status, "completed", "{:?}", task.results);
    assert!(
        psql(&primary, &password, "SELECT 1").is_err(),
        "the old password no longer works"
    );
    assert_eq!(psql(&primary, &new_password, "SELECT 1").unwrap(), "1");
    let password = new_password;
    let task = rt
        .block_on(ctl.run_action(
            "postgresql/1",
            "get-password",
            json!({}),
            Duration::from_secs(30),
        ))
        .unwrap();
    assert_eq!(task.results["password"], password.as_str());

    // Removing the client's relation drops its user.
    ctl.remove_relation_between("app", "postgresql").unwrap();
    let role = format!("SELECT count(*) FROM pg_roles WHERE rolname = '{user}'");
    settle(
        ctl,
        "the client's user dropped",
        Duration::from_secs(60),
        |_| psql(&primary, &password, &role).ok().as_deref() == Some("0"),
    )
    .unwrap();

    // kill -9 of the primary's postmaster: Patroni brings writes back and no row is lost.
    let postmaster = find_postmaster(&primary).expect("the primary's postmaster");
    Command::new("kill")
        .args(["-9", &postmaster.to_string()])
        .status()
        .unwrap();
    let killed = std::time::Instant::now();
    let mut resumed = None;
    while killed.elapsed() < Duration::from_secs(90) {
        let writer = ["postgresql/0", "postgresql/1", "postgresql/2"]
            .iter()
            .map(|u| address(ctl, u))
            .find(|a| psql(a, &password, "INSERT INTO ward_e2e VALUES (43)").is_ok());
        if let Some(a) = writer {
            resumed = Some((a, killed.elapsed()));
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (writer, downtime) =
        resumed.expect("writes resumed after the primary's postgres was killed");
    eprintln!("writes resumed on {writer} {downtime:?} after kill -9 of the primary's postgres");
    assert_eq!(
        psql(
            &writer,
            &password,
            "SELECT string_agg(n::text, ',' ORDER BY n) FROM ward_e2e"
        )
        .unwrap(),
        "42,43"
    );

    // TLS from self-signed-certificates: psql with sslmode=verify-full against the CA.
    let ssc = home.path().join("self-signed-certificates");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata/self-signed-certificates"),
        &ssc,
    )
    .unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_ssc-charm"), ssc.join("dispatch")).unwrap();
    ctl.deploy("ca", &ssc, 1, Default::default()).unwrap();
    ctl.integrate("postgresql:certificates", "ca:certificates")
        .unwrap();
    settle(ctl, "certificates issued", Duration::from_secs(120), |c| {
        workload(c, "ca/0").0 == "active"
    })
    .unwrap();
    assert_no_hook_failed(ctl);
    let task = rt
        .block_on(ctl.run_action(
            "ca/0",
            "get-ca-certificate",
            json!({}),
            Duration::from_secs(30),
        ))
        .unwrap();
    let ca = home.path().join("ca.pem");
    std::fs::write(&ca, task.results["ca-certificate"].as_str().unwrap()).unwrap();
    let tls_psql = |host: &str| {
        let out = Command::new("psql")
            .args(["-h", host, "-U", "operator", "-d", "postgres", "-tAq", "-c"])
            .arg("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .env("PGPASSWORD", &password)
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", &ca)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let mut last = (false, String::new(), String::new());
    for _ in 0..300 {
        last = tls_psql(&writer);
        if last.0 && last.1 == "t" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        (last.0, last.1.as_str()),
        (true, "t"),
        "verify-full TLS to {writer}: {}",
        last.2
    );

    // Patroni's REST API serves HTTPS with the unit's certificate (no plain HTTP), and its
    // unsafe endpoints still want the password.
    let ca_pem = std::fs::read_to_string(&ca).unwrap();
    let rest = postgresql_charm::patroni::rest;
    let mut https = None;
    for _ in 0..300 {
        if let Ok((200, body)) = rest(&writer, "GET", "/patroni", None, None, Some(&ca_pem)) {
            https = Some(body);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let body = https.expect("Patroni's API over HTTPS, checked against the CA");
    assert_eq!(body["state"], "running");
    assert!(
        !matches!(
            rest(&writer, "GET", "/patroni", None, None, None),
            Ok((200, _))
        ),
        "no plain HTTP once the unit has a certificate"
    );
    let (code, _) = rest(
        &writer,
        "POST",
        "/restart",
        Some(&json!({})),
        None,
        Some(&ca_pem),
    )
    .unwrap();
    assert_eq!(code, 401, "an unsafe endpoint without the password");
    // The charm still drives Patroni (over HTTPS): a switchover to a replica, with the
    // members checking each other's API against the CA.
    let units = ["postgresql/0", "postgresql/1", "postgresql/2"];
    let replicas: Vec<&str> = units
        .iter()
        .filter(|u| address(ctl, u) != writer)
        .copied()
        .collect();
    // Synchronous mode is on, and Patroni switches over only to the synchronous standby:
    // the other replica's action fails saying so, and the test tries the next one.
    let mut target = None;
    let mut refusals = Vec::new();
    for attempt in 0..30 {
        let candidate = replicas[attempt % replicas.len()];
        let task = rt
            .block_on(ctl.run_action(
                candidate,
                "promote-to-primary",
                json!({"scope": "unit"}),
                Duration::from_secs(60),
            ))
            .unwrap();
        if task.status == "completed" {
            target = Some(candidate);
            break;
        }
        refusals.push(format!("{candidate}: {}", task.message));
        // Right after TLS came on, Patroni may not have the replica streaming yet.
        std::thread::sleep(Duration::from_secs(2));
    }
    let target = target.unwrap_or_else(|| panic!("promote-to-primary over HTTPS: {refusals:#?}"));
    let new_primary = address(ctl, target);
    let mut wrote = false;
    for _ in 0..300 {
        if psql(&new_primary, &password, "INSERT INTO ward_e2e VALUES (44)").is_ok() {
            wrote = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(wrote, "writes on {target} after the switchover");
    let task = rt
        .block_on(ctl.run_action(
            "postgresql/0",
            "get-primary",
            json!({}),
            Duration::from_secs(60),
        ))
        .unwrap();
    assert_eq!(task.results["primary"], target);
    let writer = new_primary;

    let key = home
        .path()
        .join("units/unit-postgresql-0/storage/pgdata/tls/server.key");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!(
        (meta.mode() & 0o777, meta.uid()),
        (0o600, 584788),
        "the key is 0600 and the postgres user's"
    );

    // A client that arrives with TLS on gets the CA in its secret-tls.
    ctl.deploy("app2", &client, 1, Default::default()).unwrap();
    let rel2 = ctl
        .integrate("app2:database", "postgresql:database")
        .unwrap();
    settle(ctl, "app2's credentials", Duration::from_secs(60), |c| {
        workload(c, "app2/0").0 == "active"
    })
    .unwrap();
    let bag = ctl.relation_data(rel2, "postgresql").unwrap();
    assert_eq!(bag["tls"], "True");
    let tls = ctl.reveal_secret(&bag["secret-tls"], None).unwrap();
    assert_eq!(
        tls["tls-ca"].trim(),
        std::fs::read_to_string(&ca).unwrap().trim()
    );

    // The system roles Patroni does not make exist, with the secret's passwords.
    for user in ["monitoring", "backup"] {
        let pw = get_password(rt, ctl, "postgresql/0", Some(user)).unwrap();
        assert_eq!(
            psql_as(&writer, user, &pw, "postgres", "SELECT current_user").unwrap(),
            user
        );
    }
}

/// The postmaster Patroni started for the unit at `address` (its command line names it).
fn find_postmaster(address: &str) -> Option<u32> {
    let needle = format!("--listen_addresses={address}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        (cmd.contains("bin/postgres") && cmd.contains(&needle)).then_some(pid)
    })
}
