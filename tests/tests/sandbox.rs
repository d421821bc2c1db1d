//! The bubblewrap substrate: a charm with a workload container whose entry point is
//! ward-pebble. The workload runs as the rock's uid 584788 with a read-only /usr and its
//! storage bound in; the charm's hooks cannot see the controller's state, its secrets key
//! or another unit's directory; removing a unit stops its sandbox.

use std::path::Path;
use std::time::Duration;

use controller::Controller;
use serde_json::json;
use ward_e2e::{assert_no_hook_failed, copy_dir, settle, workload, Model};

fn status_is(ctl: &Controller, unit: &str, status: &str, prefix: &str) -> bool {
    let (s, m) = workload(ctl, unit);
    s == status && m.starts_with(prefix)
}

#[test]
fn workloads_run_sandboxed_as_the_rock_user_and_charms_see_only_their_own_unit() {
    if !Path::new("/usr/bin/bwrap").exists() {
        panic!("bubblewrap is not installed: apt-get install -y bubblewrap (scripts/deps.sh does)");
    }
    let home = tempfile::Builder::new()
        .prefix("wsb")
        .tempdir_in("/tmp")
        .unwrap();
    let charm = home.path().join("sandboxed");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("charms/sandboxed"),
        &charm,
    )
    .unwrap();
    let model = Model::start_with(home.path(), &ward_e2e::test_binaries!()).unwrap();
    let ctl = &model.ctl;
    ctl.deploy("sb", &charm, 2, Default::default()).unwrap();
    settle(ctl, "both workloads up", Duration::from_secs(60), |c| {
        status_is(c, "sb/0", "active", "workload up")
            && status_is(c, "sb/1", "active", "workload up")
    })
    .unwrap();
    assert_no_hook_failed(ctl);

    let storage = home.path().join("units/unit-sb-0/storage/data");
    let read = |f: &str| {
        std::fs::read_to_string(storage.join(f))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    settle(
        ctl,
        "the probe service's report",
        Duration::from_secs(10),
        |_| !read("usr").is_empty(),
    )
    .unwrap();
    assert_eq!(
        read("uid"),
        "584788",
        "the workload runs as the rock's postgres user"
    );
    assert_eq!(read("usr"), "ro", "/usr is read-only in the workload");

    // What the charm can see from its sandbox: its own charm dir, nothing of the controller.
    let own = home.path().join("units/unit-sb-0/charm/dispatch");
    let probes = [
        home.path().join("state.db"),
        home.path().join("secrets.key"),
        home.path().join("units/unit-sb-1/charm/dispatch"),
        own.clone(),
    ];
    for p in &probes[..3] {
        assert!(p.exists(), "{} exists on the host", p.display());
    }
    let probe: Vec<String> = probes.iter().map(|p| p.display().to_string()).collect();
    ctl.set_config(
        "sb",
        [("probe".to_string(), Some(json!(probe.join(" "))))].into(),
    )
    .unwrap();
    let expected = format!("visible: {}", own.display());
    settle(ctl, "the probe report", Duration::from_secs(30), |c| {
        status_is(c, "sb/0", "maintenance", "visible:")
    })
    .unwrap();
    assert_eq!(workload(ctl, "sb/0").1, expected);

    // Removing a unit stops its sandbox and removes its directory.
    let pid: u32 = std::fs::read_to_string(
        home.path()
            .join("units/unit-sb-1/containers/workload/sandbox.pid"),
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    ctl.remove_unit("sb/1").unwrap();
    settle(ctl, "sb/1 gone", Duration::from_secs(60), |_| {
        !home.path().join("units/unit-sb-1").exists()
    })
    .unwrap();
    let gone = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
    };
    assert!(gone(pid), "the sandbox of sb/1 was stopped");
    ctl.remove_application("sb").unwrap();
    settle(ctl, "sb gone", Duration::from_secs(60), |_| {
        !home.path().join("units/unit-sb-0").exists()
    })
    .unwrap();
}
