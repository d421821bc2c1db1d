//! One module per verb (or pair of verbs that mirror each other). Each takes
//! its parsed arguments and returns `Ok` or a [`CliError`] naming the input
//! and the fix; `main` maps that to the exit code.

mod bootstrap;
mod config;
mod debug_log;
mod deploy;
mod destroy;
mod integrate;
mod pack;
mod resolve;
mod run;
mod secrets;
mod status;
mod units;
mod wait;

use crate::cli::{Cli, Command, ControllerCommand};
use crate::client::Client;
use crate::error::{CliError, Context, Result};
use crate::home::Home;

/// Run the parsed command line.
pub(crate) fn run(cli: Cli) -> Result<()> {
    if let Command::Version = cli.command {
        println!("ward {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    if let Command::Pack { charm_dir, output } = &cli.command {
        return pack::run(charm_dir, output.as_deref());
    }
    let home = Home::resolve()?;
    let daemon = matches!(cli.command, Command::Controller(_));
    let rt = if daemon {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .failed(|| "starting the async runtime".into())?;
    rt.block_on(dispatch(home, cli.command))
}

async fn dispatch(home: Home, cmd: Command) -> Result<()> {
    match cmd {
        Command::Bootstrap { port, substrate } => bootstrap::run(&home, port, substrate).await,
        Command::Controller(ControllerCommand::Run {
            port,
            substrate,
            rocks,
        }) => {
            let settings = home.settings();
            let port = port
                .or(settings.as_ref().map(|s| s.port))
                .unwrap_or(crate::home::DEFAULT_PORT);
            let substrate = substrate
                .or_else(|| {
                    settings
                        .as_ref()
                        .and_then(|s| s.substrate.as_deref())
                        .and_then(crate::cli::SubstrateKind::parse)
                })
                .unwrap_or(crate::cli::SubstrateKind::Auto);
            let rocks = rocks
                .or_else(|| settings.and_then(|s| s.rocks))
                .or_else(crate::charmpkg::project_rocks);
            crate::server::run(home, port, substrate, rocks).await
        }
        Command::Destroy { yes } => destroy::run(&home, yes).await,
        Command::Status { format, watch } => status::run(&client(&home)?, format, watch).await,
        Command::Deploy {
            charm,
            app,
            n,
            config,
        } => deploy::deploy(&home, &charm, app, n, config).await,
        Command::Refresh { app, path } => deploy::refresh(&home, &app, path).await,
        Command::Integrate { a, b } => integrate::integrate(&client(&home)?, &a, &b).await,
        Command::RemoveRelation { a, b } => integrate::remove(&client(&home)?, &a, &b).await,
        Command::AddUnit { app, n } => units::add(&client(&home)?, &app, n).await,
        Command::RemoveUnit { unit } => units::remove_unit(&client(&home)?, &unit).await,
        Command::RemoveApplication { app } => units::remove_app(&client(&home)?, &app).await,
        Command::Config {
            app,
            settings,
            reset,
        } => config::run(&client(&home)?, &app, settings, reset).await,
        Command::Run {
            unit,
            action,
            params,
            format,
            wait,
        } => run::run(&client(&home)?, unit, action, params, format, wait).await,
        Command::Wait { timeout, apps } => wait::run(&client(&home)?, timeout, apps).await,
        Command::Resolve { unit, no_retry } => {
            resolve::run(&client(&home)?, &unit, !no_retry).await
        }
        Command::DebugLog {
            replay,
            include,
            no_tail,
        } => debug_log::run(&client(&home)?, replay, include, no_tail).await,
        Command::Secrets { format } => secrets::list(&client(&home)?, format).await,
        Command::ShowSecret {
            secret,
            reveal,
            format,
        } => secrets::show(&client(&home)?, &secret, reveal, format).await,
        Command::Pack { .. } | Command::Version => Err(CliError::failed("handled above")),
    }
}

fn client(home: &Home) -> Result<Client> {
    Client::new(home)
}

/// Print a value as YAML or JSON.
pub(crate) fn print_data(v: &impl serde::Serialize, format: crate::cli::DataFormat) -> Result<()> {
    let text = match format {
        crate::cli::DataFormat::Json => {
            serde_json::to_string_pretty(v).failed(|| "writing JSON".into())? + "\n"
        }
        crate::cli::DataFormat::Yaml => {
            serde_yaml_ng::to_string(v).failed(|| "writing YAML".into())?
        }
    };
    print!("{text}");
    Ok(())
}

/// Format milliseconds since the epoch the way juju does in status (`24 Nov 2026 23:50:01Z`).
pub(crate) fn juju_time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[day] [month repr:short] [year] [hour]:[minute]:[second]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// Format milliseconds since the epoch as `juju run` timings do (`2026-11-24 23:50:01 +0000 UTC`).
pub(crate) fn juju_timing(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] +0000 UTC"
    );
    t.format(&f).unwrap_or_default()
}

/// Render rows as a juju-style table: columns two spaces apart, the
/// columns in `right` right-aligned, trailing spaces trimmed.
pub(crate) fn table(rows: &[Vec<String>], right: &[usize]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            if right.contains(&i) {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(pad));
            }
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
