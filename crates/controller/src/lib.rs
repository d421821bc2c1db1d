//! Ward's embedded controller: a faithful Juju substrate for charms.
//!
//! Layout:
//! - [`store`]: the SQLite state store (WAL, migrations, encrypted secrets);
//! - [`charmdir`]: charm metadata and content hashing;
//! - [`hook`]: hook names and their Juju environment;
//! - [`uniter`]: per-unit loop; [`uniter::state`] holds the pure
//!   `next_hook(remote, local)` decision;
//! - [`context`] and [`tools`]: one hook context per running hook, and the
//!   hook tools (Juju flag parsing, output formats, access rules);
//! - [`server`]: the per-unit Unix-socket hook-tool server; [`protocol`] is the
//!   wire format shared with the `ward-jujuc` client binary;
//! - [`substrate`]: where units live and hooks run (plain processes here);
//! - [`controller`]: the library API (`deploy`, `integrate`, `run_action`, …)
//!   and `Controller::run`.
//!
//! ```no_run
//! use controller::{Controller, ControllerConfig};
//! # async fn demo() -> Result<(), controller::ControllerError> {
//! let ctl = Controller::open(ControllerConfig::new("/var/lib/ward"))?;
//! let runner = ctl.clone();
//! tokio::spawn(async move { runner.run(std::future::pending()).await });
//! ctl.deploy("postgresql", "charms/postgresql".as_ref(), 3, Default::default())?;
//! let rel = ctl.integrate("pgbouncer:backend-database", "postgresql")?;
//! let task = ctl
//!     .run_action("postgresql/0", "get-password", serde_json::json!({}), std::time::Duration::from_secs(60))
//!     .await?;
//! println!("{rel} {:?} {:?}", task.results, ctl.status()?);
//! # Ok(()) }
//! ```

#![allow(
    dead_code,
    reason = "store API is wired to the uniter in the next layer"
)]

pub mod charmdir;
pub(crate) mod context;
pub mod controller;
pub mod hook;
pub mod network;
pub mod protocol;
pub mod runner_wire;
pub mod sandbox;
pub(crate) mod server;
pub mod store;
pub mod substrate;
pub mod tools;
pub mod uniter;

pub use controller::{
    Clock, Controller, ControllerConfig, ControllerError, StatusSnapshot, SystemClock,
};
pub use sandbox::{SandboxConfig, SandboxSubstrate};
pub use substrate::{ProcessSubstrate, Substrate};
