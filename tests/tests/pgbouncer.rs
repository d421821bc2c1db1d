//! The pgbouncer charm under the sandbox substrate, in front of a two-unit postgresql:
//! a client charm's credentials work through PgBouncer (scram-sha-256 by auth_query);
//! a pool_mode change reloads PgBouncer without dropping an idle client; with TLS,
//! psql with sslmode=verify-full through PgBouncer succeeds and, with
//! client_tls_sslmode=require, a plain connection is refused; after a switchover the
//! clients reach the new primary through PgBouncer; removing the backend blocks.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use ward_e2e::{address, assert_no_hook_failed, charm_dir, settle, workload, Model};

/// Lays out a charm directory: metadata from `metadata` (or a test charm dir), the
/// binary (if any) as dispatch.
/// psql through PgBouncer (port 6432) with extra libpq environment.
fn psql_env(
    host: &str,
    user: &str,
    password: &str,
    db: &str,
    sql: &str,
    env: &[(&str, &str)],
) -> Result<String, String> {
    let mut cmd = Command::new("psql");
    cmd.args(["-h", host, "-p", "6432", "-U", user, "-d", db, "-tAq", "-v"])
        .arg("ON_ERROR_STOP=1")
        .args(["-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

/// Retries `f` for up to `secs` seconds until it returns Ok.
fn eventually<T>(secs: u64, mut f: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

#[test]
fn clients_reach_postgresql_through_pgbouncer() {
    let home = tempfile::Builder::new()
        .prefix("wpgb")
        .disable_cleanup(std::env::var_os("WARD_KEEP").is_some())
        .tempdir_in("/tmp")
        .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pg = charm_dir(
        home.path(),
        "postgresql",
        &root.join("../metadata/postgresql"),
        Some(Path::new(env!("CARGO_BIN_EXE_postgresql-charm"))),
    )
    .unwrap();
    let pgb = charm_dir(
        home.path(),
        "pgbouncer",
        &root.join("../metadata/pgbouncer"),
        Some(Path::new(env!("CARGO_BIN_EXE_pgbouncer-charm"))),
    )
    .unwrap();
    let ssc = charm_dir(
        home.path(),
        "self-signed-certificates",
        &root.join("../metadata/self-signed-certificates"),
        Some(Path::new(env!("CARGO_BIN_EXE_ssc-charm"))),
    )
    .unwrap();
    let client = charm_dir(
        home.path(),
        "db-client",
        &root.join("charms/db-client"),
        None,
    )
    .unwrap();
    let model = Model::start_with(home.path(), &ward_e2e::test_binaries!()).unwrap();
    let ctl = &model.ctl;
    let rt = &model.rt;
    // No update-status help: a switchover reaches PgBouncer through Patroni's role-change
    // callback, a Pebble custom notice, and the postgresql leader's next hook.
    ctl.deploy(
        "postgresql",
        &pg,
        2,
        [("profile".to_string(), json!("testing"))].into(),
    )
    .unwrap();
    ctl.deploy("pgbouncer", &pgb, 1, Default::default())
        .unwrap();
    ctl.deploy(
        "app",
        &client,
        1,
        [("database".to_string(), json!("appdb"))].into(),
    )
    .unwrap();
    ctl.integrate("pgbouncer:backend-database", "postgresql:database")
        .unwrap();
    let rel = ctl.integrate("app:database", "pgbouncer:database").unwrap();
    settle(ctl, "everything active", Duration::from_secs(180), |c| {
        workload(c, "postgresql/0").0 == "active"
            && workload(c, "postgresql/1").0 == "active"
            && workload(c, "pgbouncer/0").0 == "active"
            && workload(c, "app/0").0 == "active"
    })
    .unwrap();
    assert_no_hook_failed(ctl);

    // The client's credentials, from the secret PgBouncer granted it.
    let pgb_addr = address(ctl, "pgbouncer/0");
    let bag = ctl.relation_data(rel, "pgbouncer").unwrap();
    assert_eq!(bag["endpoints"], format!("{pgb_addr}:6432"));
    assert!(!bag.contains_key("password"));
    let creds = ctl.reveal_secret(&bag["secret-user"], None).unwrap();
    let (user, password) = (creds["username"].clone(), creds["password"].clone());
    assert_eq!(user, format!("relation_id_{rel}"));
    let through = |db: &str, sql: &str| psql_env(&pgb_addr, &user, &password, db, sql, &[]);
    eventually(30, || through("appdb", "SELECT 1")).unwrap();
    through(
        "appdb",
        "CREATE TABLE things (n int); INSERT INTO things VALUES (1);",
    )
    .unwrap();
    assert_eq!(
        through("appdb", "SELECT count(*) FROM things").unwrap(),
        "1"
    );
    assert!(
        psql_env(&pgb_addr, &user, "wrong", "appdb", "SELECT 1", &[]).is_err(),
        "a wrong password is refused"
    );
    // The read-only database reaches a replica.
    let ro = eventually(30, || {
        through("appdb_readonly", "SELECT pg_is_in_recovery()").and_then(|r| {
            if r == "t" {
                Ok(r)
            } else {
                Err(r)
            }
        })
    });
    assert_eq!(ro.as_deref(), Ok("t"));
    // No plaintext password in pgbouncer.ini; the auth file is 0600 and postgres'.
    let lib = home
        .path()
        .join("units/unit-pgbouncer-0/containers/pgbouncer/var/lib/pgbouncer");
    let ini = std::fs::read_to_string(lib.join("instance_0/pgbouncer.ini")).unwrap();
    assert!(ini.contains("auth_type = scram-sha-256"), "{ini}");
    assert!(!ini.contains(&password));
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(lib.join("userlist.txt")).unwrap();
        assert_eq!((meta.mode() & 0o777, meta.uid()), (0o600, 584788));
    }

    // An idle client stays connected across a pool_mode change (a reload, not a restart).
    let mut held = Command::new("psql")
        .args([
            "-h", &pgb_addr, "-p", "6432", "-U", &user, "-d", "appdb", "-tAq",
        ])
        .env("PGPASSWORD", &password)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut held_in = held.stdin.take().unwrap();
    let mut held_out = BufReader::new(held.stdout.take().unwrap());
    let mut ask = |sql: &str| -> String {
        writeln!(held_in, "{sql}").unwrap();
        held_in.flush().unwrap();
        let mut line = String::new();
        held_out.read_line(&mut line).unwrap();
        line.trim().to_string()
    };
    let pid_before = ask("SELECT pg_backend_pid();");
    assert!(pid_before.parse::<u32>().is_ok(), "{pid_before}");
    ctl.set_config(
        "pgbouncer",
        [("pool_mode".to_string(), Some(json!("transaction")))].into(),
    )
    .unwrap();
    settle(ctl, "pool_mode applied", Duration::from_secs(60), |_| {
        std::fs::read_to_string(lib.join("instance_0/pgbouncer.ini"))
            .is_ok_and(|i| i.contains("pool_mode = transaction"))
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        ask("SELECT 41 + 1;"),
        "42",
        "the idle client is still connected"
    );
    drop(held_in);
    let _ = held.wait();
    assert_eq!(
        through("appdb", "SELECT count(*) FROM things").unwrap(),
        "1"
    );

    // An invalid pool_mode blocks naming it; PgBouncer keeps serving.
    ctl.set_config(
        "pgbouncer",
        [("pool_mode".to_string(), Some(json!("sometimes")))].into(),
    )
    .unwrap();
    settle(ctl, "blocked on pool_mode", Duration::from_secs(60), |c| {
        workload(c, "pgbouncer/0")
            == (
                "blocked".into(),
                "invalid config pool_mode=sometimes: must be one of session, transaction, statement"
                    .into(),
            )
    })
    .unwrap();
    assert_eq!(through("appdb", "SELECT 1").unwrap(), "1");
    ctl.set_config("pgbouncer", [("pool_mode".to_string(), None)].into())
        .unwrap();
    settle(
        ctl,
        "pgbouncer active again",
        Duration::from_secs(60),
        |c| workload(c, "pgbouncer/0").0 == "active",
    )
    .unwrap();

    // TLS: certificates for PostgreSQL and PgBouncer from one CA.
    ctl.deploy("ca", &ssc, 1, Default::default()).unwrap();
    ctl.integrate("postgresql:certificates", "ca:certificates")
        .unwrap();
    ctl.integrate("pgbouncer:certificates", "ca:certificates")
        .unwrap();
    settle(ctl, "certificates issued", Duration::from_secs(120), |c| {
        workload(c, "ca/0").0 == "active"
            && ctl
                .relation_data(rel, "pgbouncer")
                .is_ok_and(|b| b.get("tls").map(String::as_str) == Some("True"))
    })
    .unwrap();
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
    let ca_s = ca.to_string_lossy().to_string();
    let verified = eventually(60, || {
        psql_env(
            &pgb_addr,
            &user,
            &password,
            "appdb",
            "SELECT count(*) FROM things",
            &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &ca_s)],
        )
    });
    assert_eq!(
        verified.as_deref(),
        Ok("1"),
        "verify-full through PgBouncer"
    );
    // PgBouncer reaches PostgreSQL over TLS too (verify-full with the backend's CA).
    settle(ctl, "server TLS", Duration::from_secs(120), |_| {
        std::fs::read_to_string(lib.join("instance_0/pgbouncer.ini"))
            .is_ok_and(|i| i.contains("server_tls_sslmode = verify-full"))
    })
    .unwrap();
    let server_ssl = eventually(30, || {
        through(
            "appdb",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )
        .and_then(|r| if r == "t" { Ok(r) } else { Err(r) })
    });
    assert_eq!(
        server_ssl.as_deref(),
        Ok("t"),
        "PgBouncer to PostgreSQL over TLS"
    );

    ctl.set_config(
        "pgbouncer",
        [("client_tls_sslmode".to_string(), Some(json!("require")))].into(),
    )
    .unwrap();
    let refused = eventually(60, || {
        match psql_env(
            &pgb_addr,
            &user,
            &password,
            "appdb",
            "SELECT 1",
            &[("PGSSLMODE", "disable")],
        ) {
            Err(e) => Ok(e),
            Ok(_) => Err("a plain connection was accepted".to_string()),
        }
    });
    assert!(refused.is_ok(), "{refused:?}");
    assert!(
        refused.as_ref().is_ok_and(|e| e.contains("SSL required")),
        "{refused:?}"
    );
    // (A worker whose server login failed while PostgreSQL was turning TLS on waits
    // server_login_retry before trying again.)
    let secured = eventually(30, || {
        psql_env(
            &pgb_addr,
            &user,
            &password,
            "appdb",
            "SELECT 1",
            &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &ca_s)],
        )
    });
    assert_eq!(secured.as_deref(), Ok("1"));
    let tls_env = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", ca_s.as_str()),
    ];
    let secure = |db: &str, sql: &str| psql_env(&pgb_addr, &user, &password, db, sql, &tls_env);
    assert_no_hook_failed(ctl);

    // Switchover: PgBouncer follows the new primary.
    let before = eventually(30, || secure("appdb", "SELECT inet_server_addr()")).unwrap();
    let old_primary = address(ctl, "postgresql/0");
    let new_unit = if before.starts_with(&old_primary) {
        "postgresql/1"
    } else {
        "postgresql/0"
    };
    let new_primary = address(ctl, new_unit);
    let task = rt
        .block_on(ctl.run_action(
            new_unit,
            "promote-to-primary",
            json!({"scope": "unit"}),
            Duration::from_secs(60),
        ))
        .unwrap();
    assert_eq!(task.status, "completed", "{:?}", task.results);
    let switched = std::time::Instant::now();
    let followed = eventually(120, || {
        secure(
            "appdb",
            "INSERT INTO things VALUES (2); SELECT inet_server_addr()",
        )
        .and_then(|a| {
            if a.starts_with(&new_primary) {
                Ok(a)
            } else {
                Err(a)
            }
        })
    });
    assert!(
        followed.is_ok(),
        "writes through PgBouncer reach {new_primary}: {followed:?}"
    );
    eprintln!(
        "PgBouncer followed the switchover to {new_primary} in {:?}",
        switched.elapsed()
    );
    assert!(secure("appdb", "SELECT count(*) FROM things")
        .unwrap()
        .parse::<u32>()
        .is_ok_and(|n| n >= 2));

    // Removing the backend: blocked, no hook error.
    ctl.remove_relation_between("pgbouncer", "postgresql")
        .unwrap();
    settle(ctl, "pgbouncer blocked", Duration::from_secs(60), |c| {
        workload(c, "pgbouncer/0")
            == (
                "blocked".into(),
                "waiting for backend database relation to initialise".into(),
            )
    })
    .unwrap();
    assert_no_hook_failed(ctl);
}
