//! The sandbox substrate's hook runner (one bubblewrap sandbox per unit, started on the
//! unit's first hook) under a real bwrap.

use std::path::{Path, PathBuf};
use std::time::Duration;

use controller::substrate::{HookInvocation, UnitPlacement};
use controller::{SandboxConfig, SandboxSubstrate, Substrate};

#[test]
fn the_hook_runner_outlives_the_thread_that_started_it() {
    let dir = tempfile::tempdir().unwrap();
    let unit_dir = dir.path().join("unit-a-0");
    let charm = unit_dir.join("charm");
    std::fs::create_dir_all(&charm).unwrap();
    let substrate = SandboxSubstrate::new(SandboxConfig {
        root: dir.path().to_path_buf(),
        bwrap: PathBuf::from("/usr/bin/bwrap"),
        // Not started here: any file will do.
        pebble: PathBuf::from("/bin/true"),
        rocks_dir: None,
        tools: Vec::new(),
        extra_ro_binds: Vec::new(),
        hook_runner: Some(PathBuf::from(env!("CARGO_BIN_EXE_ward-hook-runner"))),
    })
    .expect("bubblewrap (apt-get install -y bubblewrap)");
    let place = UnitPlacement {
        unit: "a/0".into(),
        dir: unit_dir.clone(),
        charm_dir: charm.clone(),
        address: "127.0.0.1".into(),
    };
    // Blocking-pool threads exit after 50 ms idle: the one that started the runner is
    // gone while the first hook still runs.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_keep_alive(Duration::from_millis(50))
        .build()
        .unwrap();
    let hook = |script: &str| HookInvocation {
        program: PathBuf::from("/bin/sh"),
        args: vec!["-c".into(), script.into()],
        // A hook whose agent socket is in the unit's directory runs in the runner.
        env: vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            (
                "JUJU_AGENT_SOCKET_ADDRESS".into(),
                unit_dir.join("agent.socket").display().to_string(),
            ),
        ],
        cwd: charm.clone(),
    };
    let pid = |d: &Path| std::fs::read_to_string(d.join("hook-runner.pid")).unwrap_or_default();
    let first = rt
        .block_on(substrate.run_hook(&place, hook("sleep 1; echo first")))
        .expect("the first hook ran to its end");
    assert_eq!(String::from_utf8_lossy(&first.stdout).trim(), "first");
    let runner = pid(&unit_dir);
    assert!(!runner.is_empty(), "the hook ran in the unit's runner");
    let second = rt
        .block_on(substrate.run_hook(&place, hook("echo second")))
        .expect("the second hook ran");
    assert_eq!(String::from_utf8_lossy(&second.stdout).trim(), "second");
    assert_eq!(pid(&unit_dir), runner, "the same runner served both hooks");
    if let Ok(p) = runner.trim().parse::<i32>() {
        let _ = std::process::Command::new("kill")
            .arg(p.to_string())
            .status();
    }
}
