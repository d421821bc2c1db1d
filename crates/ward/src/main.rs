//! `ward`: the command line for Ward's controller, the controller daemon
//! itself (`ward controller run`), and, when called by a hook tool's name,
//! the hook-tool client.
//!
//! Layout: [`cli`] is the argument shape; [`commands`] has one module per
//! verb; [`client`] talks to the daemon's HTTPS API, which [`server`] serves
//! (wire types in [`api`]); [`validate`] checks config and action
//! parameters; [`charmpkg`] packs and unpacks `.charm` archives; [`home`] and
//! [`pki`] own `WARD_HOME`, the CA and the admin credential. Exit codes: 0 ok,
//! 1 operation failed, 2 usage or validation error, 3 controller not
//! reachable or not bootstrapped.

mod api;
mod charmpkg;
mod cli;
mod client;
mod commands;
mod error;
mod home;
mod hooktool;
mod pki;
mod server;
mod validate;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    if let Some(code) = hooktool::dispatch_if_tool() {
        return code;
    }
    let cli = cli::Cli::parse();
    // The daemon logs at info by default (into controller.log); the CLI only when asked.
    let daemon = matches!(cli.command, cli::Command::Controller(_));
    if daemon || std::env::var_os("WARD_LOG").is_some() {
        let filter = tracing_subscriber::EnvFilter::try_from_env("WARD_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR {e}");
            ExitCode::from(e.kind.code())
        }
    }
}
