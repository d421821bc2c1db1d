//! Ward's charm SDK: write Juju charms in Rust.
//!
//! A charm is a binary that Juju (or Ward) runs as `dispatch` for every event. It
//! reaches its controller only through Juju's hook tools, Juju's environment and the
//! Pebble API, so the same binary runs under Juju on Kubernetes and under `ward`.
//!
//! - [`event`]: the dispatch environment parsed once into a typed [`Event`].
//! - [`model`]: [`Context`], the model a handler sees (config, leadership, relations and
//!   their databags, secrets, statuses, actions, ports, network, storage, stored state),
//!   with Juju's rules checked before any tool runs.
//! - [`backend`]: the [`Backend`] trait, one method per hook tool;
//!   [`hooktools::HookTools`] runs the real tools, [`testing`] keeps everything in memory.
//! - [`pebble`]: the client for the workload containers' Pebble.
//! - [`workload`]: a workload container as a charm drives it; [`Context::workload`] and
//!   [`Context::container`] reach it through Pebble under Juju and Ward, and through the
//!   State's [`testing::Container`] under the harness.
//!
//! ```no_run
//! use charm::{Charm, Context, Event, Result, Status};
//!
//! #[derive(Default)]
//! struct Greeter;
//!
//! impl Charm for Greeter {
//!     fn handle(&mut self, ctx: &mut Context<'_>, event: &Event) -> Result<()> {
//!         if let Event::RelationJoined(r) = event {
//!             let greeting = ctx.config()?.get_str("greeting")?.unwrap_or_default();
//!             ctx.set_unit_data(&r.relation, &[("greeting".into(), greeting)].into())?;
//!         }
//!         Ok(())
//!     }
//!
//!     fn collect_unit_status(&mut self, ctx: &mut Context<'_>) -> Result<()> {
//!         ctx.add_unit_status(Status::active(""));
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     charm::run(Greeter)
//! }
//! ```

pub mod backend;
pub mod config;
pub mod error;
pub mod event;
pub mod hooktools;
pub mod model;
pub mod testing;
pub mod workload;

/// The Pebble client, re-exported so charms reach their workload containers.
pub use pebble_client as pebble;

pub use backend::{
    Backend, Bag, LogLevel, Port, SecretOptions, SecretOwner, SecretRead, Status, StatusName,
};
pub use config::{Config, ConfigOptions};
pub use error::{Error, Result};
pub use event::{Event, HookEnv, NoticeEvent, RelationEvent, RelationId, SecretEvent};
pub use model::Context;
pub use workload::{ContainerApi, Workload};

/// A charm: one handler for every event, plus optional status collection.
pub trait Charm {
    /// Handles one event. An error fails the hook (Juju retries it), except
    /// [`Error::InvalidConfig`], which becomes a blocked status naming the option.
    fn handle(&mut self, ctx: &mut Context<'_>, event: &Event) -> Result<()>;

    /// Adds candidate unit statuses with [`Context::add_unit_status`] after every event.
    fn collect_unit_status(&mut self, _ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }

    /// Adds candidate application statuses with [`Context::add_app_status`].
    ///
    /// Called on every unit after every event; the most severe candidate is set only
    /// when this unit leads (only the leader may set the application status). The SDK
    /// asks `is-leader` only when there is a candidate and the hook has not asked
    /// already, so a charm without an application status pays for no leadership
    /// check. Unlike Python `ops`, which emits `collect-app-status` on the leader
    /// only, work that must happen on the leader alone checks [`Context::is_leader`].
    fn collect_app_status(&mut self, _ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }
}

/// Runs `charm` for the event in `ctx`: the handler, then collect-status.
///
/// Returns an error when the hook should fail (non-zero exit).
pub fn dispatch<C: Charm + ?Sized>(charm: &mut C, ctx: &mut Context<'_>) -> Result<()> {
    let event = ctx.event().clone();
    match charm.handle(ctx, &event) {
        Ok(()) => {}
        Err(Error::InvalidConfig { key, value, reason }) if !event.is_action() => {
            let msg = format!("invalid config {key}={value}: {reason}");
            ctx.log(LogLevel::Error, &msg)?;
            ctx.set_unit_status(Status::blocked(msg))?;
            return Ok(());
        }
        Err(e) => {
            let msg = e.to_string();
            if event.is_action() {
                // The user running the action sees why; the hook still fails so that
                // nothing it buffered is committed.
                let _ = ctx.action_fail(&msg);
            }
            let _ = ctx.log(
                LogLevel::Error,
                &format!("{} failed: {msg}", event.juju_name()),
            );
            return Err(e);
        }
    }
    charm.collect_app_status(ctx)?;
    if let Some(s) = most_severe(&ctx.app_statuses) {
        // Each hook tool is a process: leadership is asked only when there is an
        // application status to set (and at most once per hook).
        if ctx.is_leader()? {
            ctx.set_app_status(s)?;
        }
    }
    charm.collect_unit_status(ctx)?;
    if let Some(s) = most_severe(&ctx.unit_statuses) {
        ctx.set_unit_status(s)?;
    }
    Ok(())
}

fn most_severe(statuses: &[Status]) -> Option<Status> {
    let mut best: Option<&Status> = None;
    for s in statuses {
        if best.is_none_or(|b| s.name.priority() > b.name.priority()) {
            best = Some(s);
        }
    }
    best.cloned()
}

/// The charm binary's `main`: reads Juju's environment, runs the charm against the
/// real hook tools and returns the hook's exit code.
pub fn run<C: Charm>(mut charm: C) -> std::process::ExitCode {
    let env = match HookEnv::from_process() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("ERROR {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut tools = hooktools::HookTools::new();
    let mut ctx = Context::new(&mut tools, env);
    match dispatch(&mut charm, &mut ctx) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
