//! remove-unit on the postgresql charm under the sandbox substrate. Three units; the
//! replica's unit leaves Patroni and the raft cluster cleanly and the two left stay
//! active; then the primary's unit hands its role to the last replica before it goes,
//! and writes resume there with every row intact, on a raft cluster of one.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use ward_e2e::{address, assert_no_hook_failed, charm_dir, get_password, settle, workload, Model};

/// psql as operator; the password goes in the environment, never in argv.
fn psql(host: &str, password: &str, sql: &str) -> Result<String, String> {
    ward_e2e::psql(host, "operator", password, "postgres", sql)
}

/// The raft cluster's members as the member at `address` knows them (`host:port`,
/// sorted), through pysyncobj's utility protocol. The raft password goes in the
/// environment of the Python process, never in argv.
fn raft_members(address: &str, password: &str) -> Result<Vec<String>, String> {
    let script = "import os, sys\n\
                  from pysyncobj.utility import TcpUtility\n\
                  members = TcpUtility(os.environ['RAFT_PASSWORD'], 5).executeCommand(sys.argv[1], ['members'])\n\
                  print('\\n'.join(sorted(m['addr'] for m in members)))\n";
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, &format!("{address}:2222")])
        .env("RAFT_PASSWORD", password)
        .output()
        .map_err(|e| format!("cannot run /usr/bin/python3: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// Patroni's members as the member at `address` reports them: (name, role), sorted.
fn patroni_members(address: &str) -> Vec<(String, String)> {
    let mut m: Vec<(String, String)> = postgresql_charm::patroni::members(address)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, role, _)| (name, role))
        .collect();
    m.sort();
    m
}

/// Whether a postmaster runs for the unit at `address` (its command line names it).
fn postmaster_runs(address: &str) -> bool {
    let needle = format!("--listen_addresses={address}");
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten().any(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .map(|c| {
                        let cmd = String::from_utf8_lossy(&c).replace('\0', " ");
                        cmd.contains("bin/postgres") && cmd.contains(&needle)
                    })
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false)
}

fn unit_exists(ctl: &controller::Controller, unit: &str) -> bool {
    ward_e2e::units(ctl).iter().any(|u| u.0 == unit)
}

fn app_status(ctl: &controller::Controller) -> String {
    ctl.status()
        .ok()
        .and_then(|s| {
            s.applications
                .iter()
                .find(|a| a.name == "postgresql")
                .map(|a| a.status.status.clone())
        })
        .unwrap_or_default()
}

#[test]
fn remove_unit_shrinks_the_cluster_and_removing_the_primary_fails_over() {
    // WARD_KEEP=1 keeps the model's directory (unit logs, Pebble logs) for a post-mortem.
    let home = tempfile::Builder::new()
        .prefix("wpgscale")
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
    settle(ctl, "postgresql/0 primary", Duration::from_secs(180), |c| {
        workload(c, "postgresql/0") == ("active".into(), "Primary".into())
    })
    .unwrap();
    ctl.add_unit("postgresql", 2).unwrap();
    settle(ctl, "two replicas", Duration::from_secs(300), |c| {
        workload(c, "postgresql/1") == ("active".into(), "Replica".into())
            && workload(c, "postgresql/2") == ("active".into(), "Replica".into())
    })
    .unwrap();
    assert_no_hook_failed(ctl);

    let password = |user: &str| get_password(&model.rt, ctl, "postgresql/1", Some(user)).unwrap();
    let operator = password("operator");
    let raft_password = password("patroni");
    let [a0, a1, a2] = ["postgresql/0", "postgresql/1", "postgresql/2"].map(|u| address(ctl, u));
    let raft = |a: &str| format!("{a}:2222");
    let mut three = vec![raft(&a0), raft(&a1), raft(&a2)];
    three.sort();
    assert_eq!(raft_members(&a0, &raft_password).unwrap(), three);
    assert_eq!(patroni_members(&a0).len(), 3);
    psql(
        &a0,
        &operator,
        "CREATE TABLE scale (n int); INSERT INTO scale SELECT generate_series(1, 100);",
    )
    .unwrap();

    // A replica's unit goes: Patroni and raft forget it, its PostgreSQL stops, and the
    // two units left are active.
    let t = Instant::now();
    ctl.remove_unit("postgresql/2").unwrap();
    let mut two = vec![raft(&a0), raft(&a1)];
    two.sort();
    settle(
        ctl,
        "postgresql/2 removed and forgotten",
        Duration::from_secs(300),
        |c| {
            !unit_exists(c, "postgresql/2")
                && patroni_members(&a0)
                    .iter()
                    .map(|m| m.0.as_str())
                    .collect::<Vec<_>>()
                    == ["postgresql-0", "postgresql-1"]
                && raft_members(&a0, &raft_password).ok().as_ref() == Some(&two)
                && workload(c, "postgresql/0") == ("active".into(), "Primary".into())
                && workload(c, "postgresql/1") == ("active".into(), "Replica".into())
                && app_status(c) == "active"
        },
    )
    .unwrap();
    eprintln!(
        "postgresql/2 (a replica) removed and forgotten in {:?}",
        t.elapsed()
    );
    assert!(!postmaster_runs(&a2), "postgresql/2's PostgreSQL stopped");
    assert_eq!(raft_members(&a1, &raft_password).unwrap(), two);
    psql(
        &a0,
        &operator,
        "INSERT INTO scale SELECT generate_series(101, 110);",
    )
    .unwrap();

    // The primary's unit goes: it switches over to postgresql/1 first, which takes writes
    // alone (raft has one member left, so it still has a majority).
    let log0 = ctl.unit_log_path("postgresql/0");
    let t = Instant::now();
    ctl.remove_unit("postgresql/0").unwrap();
    let mut resumed = false;
    settle(
        ctl,
        "postgresql/0 removed, postgresql/1 the primary",
        Duration::from_secs(300),
        |c| {
            if !resumed {
                resumed = psql(&a1, &operator, "INSERT INTO scale VALUES (111)").is_ok();
                if resumed {
                    eprintln!(
                        "writes on postgresql/1 {:?} after remove-unit postgresql/0",
                        t.elapsed()
                    );
                }
            }
            resumed
                && !unit_exists(c, "postgresql/0")
                && patroni_members(&a1) == [("postgresql-1".to_string(), "leader".to_string())]
                && raft_members(&a1, &raft_password).ok() == Some(vec![raft(&a1)])
                && workload(c, "postgresql/1") == ("active".into(), "Primary".into())
                && app_status(c) == "active"
        },
    )
    .unwrap();
    eprintln!(
        "postgresql/0 (the primary) removed and forgotten in {:?}",
        t.elapsed()
    );
    let log = std::fs::read_to_string(&log0).unwrap_or_default();
    for line in log.lines() {
        if line.contains("before leaving") || line.contains("raft") {
            eprintln!("postgresql/0: {line}");
        }
    }
    assert_eq!(
        log.matches("stopped Patroni").count(),
        1,
        "Patroni stopped once and stayed stopped:\n{log}"
    );
    assert!(!postmaster_runs(&a0), "postgresql/0's PostgreSQL stopped");
    assert_eq!(
        psql(&a1, &operator, "SELECT count(*), sum(n) FROM scale").unwrap(),
        "111|6216",
        "every row written before and after the removals is there"
    );
    assert_eq!(
        psql(&a1, &operator, "SELECT pg_is_in_recovery()").unwrap(),
        "f"
    );
    assert_no_hook_failed(ctl);
    let task = model
        .rt
        .block_on(ctl.run_action(
            "postgresql/1",
            "get-primary",
            json!({}),
            Duration::from_secs(60),
        ))
        .unwrap();
    assert_eq!(task.results["primary"], "postgresql/1");

    // The member that bootstrapped the cluster is gone: the leader now gives joining units
    // its own address, and the cluster grows again from it.
    let peer = ctl
        .status()
        .unwrap()
        .relations
        .iter()
        .find(|r| r.kind == "peer")
        .map(|r| r.id)
        .expect("the peer relation");
    assert_eq!(
        ctl.relation_data(peer, "postgresql").unwrap()["bootstrap-address"],
        a1
    );
    ctl.add_unit("postgresql", 1).unwrap();
    settle(
        ctl,
        "postgresql/3 a replica",
        Duration::from_secs(300),
        |c| workload(c, "postgresql/3") == ("active".into(), "Replica".into()),
    )
    .unwrap();
    let a3 = address(ctl, "postgresql/3");
    let mut rows = String::new();
    for _ in 0..100 {
        rows = psql(&a3, &operator, "SELECT count(*) FROM scale").unwrap_or_default();
        if rows == "111" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(rows, "111", "the new replica has every row");
    let mut again = vec![raft(&a1), raft(&a3)];
    again.sort();
    assert_eq!(raft_members(&a1, &raft_password).unwrap(), again);
    assert_no_hook_failed(ctl);
}
