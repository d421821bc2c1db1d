//! A sidecar charm: it serves a static site from its `web` container, configures the
//! server through a file and a Pebble layer, and reports the server's version.
//!
//! Everything it does to the container goes through [`Context::workload`], so
//! `tests/web.rs` runs it unchanged against the harness's in-memory container.

use charm::{Charm, Context, Event, Result, Status};

/// The workload container, as metadata.yaml's `containers:` names it.
const CONTAINER: &str = "web";
/// The user the server runs as and owns its private files.
const USER: &str = "www-data";
/// Where the server reads its settings.
const SETTINGS: &str = "/etc/web/settings.conf";

/// The charm's config, loaded with serde.
#[derive(serde::Deserialize)]
struct Config {
    port: u16,
    title: String,
}

/// The web charm.
#[derive(Default)]
pub struct Web;

impl Web {
    /// Writes the settings and the layer, then lets Pebble start or restart what changed.
    fn configure(ctx: &mut Context<'_>) -> Result<()> {
        let workload = ctx.workload(CONTAINER, USER);
        if !workload.can_connect() {
            // pebble-ready will come once the container is up.
            return Ok(());
        }
        let cfg: Config = ctx.config()?.load()?;
        let settings = format!("title = {:?}\n", cfg.title);
        if workload.pull(SETTINGS).as_deref() != Some(settings.as_bytes()) {
            workload.push_private(SETTINGS, settings.as_bytes())?;
            if workload.is_running("web") {
                // The server rereads its settings on SIGHUP; no restart needed.
                workload.signal("SIGHUP", "web")?;
            }
        }
        let layer = format!(
            "summary: web\nservices:\n  web:\n    override: replace\n    command: /usr/bin/web --port {} --settings {SETTINGS}\n    startup: enabled\n    user: {USER}\n",
            cfg.port
        );
        workload.add_layer("web", &layer)?;
        workload.replan()?;
        ctx.open_port(charm::Port::tcp(cfg.port))
    }
}

impl Charm for Web {
    fn handle(&mut self, ctx: &mut Context<'_>, event: &Event) -> Result<()> {
        match event {
            Event::PebbleReady { container } if container == CONTAINER => Self::configure(ctx),
            Event::ConfigChanged | Event::UpgradeCharm => Self::configure(ctx),
            Event::Action { name, .. } if name == "version" => {
                let out = ctx
                    .workload(CONTAINER, USER)
                    .exec(&["/usr/bin/web", "--version"])?;
                ctx.set_results(&serde_json::json!({ "version": out.trim() }))
            }
            _ => Ok(()),
        }
    }

    fn collect_unit_status(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        let workload = ctx.workload(CONTAINER, USER);
        if !workload.can_connect() {
            ctx.add_unit_status(Status::waiting("waiting for Pebble in the web container"));
        } else if !workload.is_running("web") {
            ctx.add_unit_status(Status::maintenance("starting the web server"));
        }
        ctx.add_unit_status(Status::active(""));
        Ok(())
    }
}

#[allow(
    dead_code,
    reason = "the tests include this file as a module and do not call main"
)]
fn main() -> std::process::ExitCode {
    charm::run(Web)
}
