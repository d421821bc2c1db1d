//! `ward wait`: until the model settles (every agent idle, every watched
//! unit's workload active, or with no status set), with live progress; at the
//! timeout, the reason (units in error, blocked, waiting, or still busy).

use std::time::{Duration, Instant};

use crate::api;
use crate::client::Client;
use crate::error::{CliError, Result};

/// What keeps the model from being done, one line per problem.
fn blockers(s: &api::Status, apps: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for a in apps {
        if !s.applications.iter().any(|x| &x.name == a) {
            out.push(format!("application {a:?} is not deployed"));
        }
    }
    for a in &s.applications {
        let watched = apps.is_empty() || apps.contains(&a.name);
        for u in &a.units {
            let w = &u.workload;
            if watched && matches!(w.status.as_str(), "error" | "blocked") {
                out.push(format!("{} is {}: {}", u.name, w.status, w.message));
            } else if watched && matches!(w.status.as_str(), "waiting" | "maintenance") {
                // Settled hooks are not enough: a charm still on its way (Patroni
                // starting, a replica catching up) says so with these, as Juju's
                // active/idle convention expects.
                out.push(format!("{} is {}: {}", u.name, w.status, w.message));
            } else if u.agent.status != "idle" {
                out.push(format!(
                    "{} agent is {}{}",
                    u.name,
                    u.agent.status,
                    if u.agent.message.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", u.agent.message)
                    }
                ));
            }
        }
    }
    out
}

pub(crate) async fn run(client: &Client, timeout: Duration, apps: Vec<String>) -> Result<()> {
    let start = Instant::now();
    let bar = indicatif::ProgressBar::new_spinner();
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut last = String::new();
    loop {
        let s: api::Status = client.get("/v1/status").await?;
        let b = blockers(&s, &apps);
        let units: Vec<&api::UnitStatus> = s.applications.iter().flat_map(|a| &a.units).collect();
        let idle = units.iter().filter(|u| u.agent.status == "idle").count();
        if s.settled && b.iter().all(|x| x.contains(" agent is ")) && b.is_empty() {
            bar.finish_and_clear();
            eprintln!(
                "Settled in {:.1}s: {} unit(s) idle.",
                start.elapsed().as_secs_f64(),
                units.len()
            );
            return Ok(());
        }
        let line = format!(
            "{idle}/{} units idle{}",
            units.len(),
            b.first().map(|x| format!(" · {x}")).unwrap_or_default()
        );
        if line != last {
            bar.set_message(line.clone());
            if bar.is_hidden() {
                eprintln!("[{:5.1}s] {line}", start.elapsed().as_secs_f64());
            }
            last = line;
        }
        if start.elapsed() >= timeout {
            bar.finish_and_clear();
            let reason = if b.is_empty() {
                "hooks are still pending".to_string()
            } else {
                b.join("; ")
            };
            return Err(CliError::failed(format!(
                "timed out after {} waiting for the model to settle: {reason}. `ward status` and `ward debug-log --replay` show more",
                humantime::format_duration(timeout)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
