//! The command line's shape (clap). Values are validated here only as far as
//! their syntax goes; commands turn them into requests.

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Ward: deploy and operate charms on one machine.
#[derive(Debug, Parser)]
#[command(name = "ward", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Output formats of `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatusFormat {
    /// juju-style tables.
    Tabular,
    /// `juju status --format=json` keys.
    Json,
    /// Same keys as JSON, in YAML.
    Yaml,
}

/// Output formats of `run`, `secrets`, `show-secret`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DataFormat {
    /// YAML (the default).
    Yaml,
    /// JSON.
    Json,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 30s, 5m or 1h"))
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start the controller in the background (idempotent).
    Bootstrap {
        /// API port on 127.0.0.1.
        #[arg(long, env = "WARD_PORT")]
        port: Option<u16>,
        /// Where units run (default: the one recorded at the first bootstrap, else auto).
        #[arg(long, value_enum, env = "WARD_SUBSTRATE")]
        substrate: Option<SubstrateKind>,
    },
    /// Stop the controller and its units and remove WARD_HOME's state.
    Destroy {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Show applications, units and relations.
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value = "tabular")]
        format: StatusFormat,
        /// Redraw every second until interrupted.
        #[arg(long)]
        watch: bool,
    },
    /// Deploy a charm (directory, .charm file, or the name of a built charm).
    Deploy {
        /// Charm directory, .charm file, or charm name (looked up under $WARD_CHARMS).
        charm: String,
        /// Application name (default: the charm's name).
        app: Option<String>,
        /// Number of units.
        #[arg(short = 'n', long = "num-units", default_value_t = 1)]
        n: usize,
        /// Config option, `key=value` (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
    },
    /// Relate two applications.
    Integrate {
        /// `app` or `app:endpoint`.
        a: String,
        /// `app` or `app:endpoint`.
        b: String,
    },
    /// Remove the relation between two applications.
    RemoveRelation {
        /// `app` or `app:endpoint`.
        a: String,
        /// `app` or `app:endpoint`.
        b: String,
    },
    /// Add units to an application.
    AddUnit {
        /// Application.
        app: String,
        /// Number of units to add.
        #[arg(short = 'n', long = "num-units", default_value_t = 1)]
        n: usize,
    },
    /// Remove a unit.
    RemoveUnit {
        /// Unit, e.g. `app/1`.
        unit: String,
    },
    /// Remove an application, its relations and units.
    RemoveApplication {
        /// Application.
        app: String,
    },
    /// Show, set or reset an application's config.
    Config {
        /// Application.
        app: String,
        /// `key=value` to set, or one `key` to show its value.
        settings: Vec<String>,
        /// Reset options to their defaults (comma-separated or repeated).
        #[arg(long, value_delimiter = ',', value_name = "KEY")]
        reset: Vec<String>,
    },
    /// Upgrade an application to a new revision of its charm.
    Refresh {
        /// Application.
        app: String,
        /// Charm directory or .charm file (default: the built charm of the same name).
        #[arg(long)]
        path: Option<String>,
    },
    /// Run an action on a unit (`app/leader` for the leader) and wait for its result.
    Run {
        /// Unit, or `app/leader`.
        unit: String,
        /// Action name.
        action: String,
        /// Parameters, `key=value` (values are YAML scalars; dotted keys nest).
        params: Vec<String>,
        /// Output format (default: the results as YAML, like juju's plain output).
        #[arg(long, value_enum)]
        format: Option<DataFormat>,
        /// How long to wait for the result.
        #[arg(long, value_parser = duration, default_value = "10m")]
        wait: Duration,
    },
    /// Wait until the model settles, with live progress.
    Wait {
        /// Give up after this long.
        #[arg(long, value_parser = duration, default_value = "10m")]
        timeout: Duration,
        /// Only these applications must have no unit blocked or in error.
        apps: Vec<String>,
    },
    /// Retry the failed hook of a unit in error.
    Resolve {
        /// Unit.
        unit: String,
        /// Skip the failed hook instead of retrying it.
        #[arg(long)]
        no_retry: bool,
    },
    /// Show hook runs and charm logs.
    DebugLog {
        /// Start from the beginning of every log (default: the last 10 lines).
        #[arg(long)]
        replay: bool,
        /// Only these units or applications (repeatable).
        #[arg(long)]
        include: Vec<String>,
        /// Print what is there and stop instead of following.
        #[arg(long)]
        no_tail: bool,
    },
    /// List secrets (never their content).
    Secrets {
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<DataFormat>,
    },
    /// Show one secret by URI, id or label.
    ShowSecret {
        /// `secret:<id>`, `<id>`, or a label.
        secret: String,
        /// Also show the content.
        #[arg(long)]
        reveal: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "yaml")]
        format: DataFormat,
    },
    /// Pack a charm directory into a .charm file.
    Pack {
        /// The charm directory.
        charm_dir: std::path::PathBuf,
        /// Where to write it (default: ./<name>.charm).
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
    /// Print the version.
    Version,
    /// Controller daemon commands.
    #[command(subcommand)]
    Controller(ControllerCommand),
}

/// `ward controller …`
#[derive(Debug, Subcommand)]
pub(crate) enum ControllerCommand {
    /// Run the controller in the foreground (what `bootstrap` starts).
    Run {
        /// API port on 127.0.0.1.
        #[arg(long, env = "WARD_PORT")]
        port: Option<u16>,
        /// Where units run.
        #[arg(long, value_enum, env = "WARD_SUBSTRATE")]
        substrate: Option<SubstrateKind>,
        /// Rocks directory for the sandbox substrate (default: <project>/rocks).
        #[arg(long, env = "WARD_ROCKS")]
        rocks: Option<std::path::PathBuf>,
    },
}

/// Where units run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SubstrateKind {
    /// `sandbox` when bubblewrap and `ward-pebble` are found, else `process`.
    Auto,
    /// bubblewrap sandboxes, workloads under `ward-pebble` (the design's default).
    Sandbox,
    /// Plain processes, no workload containers.
    Process,
}

impl SubstrateKind {
    /// The name recorded in controller.json.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SubstrateKind::Auto => "auto",
            SubstrateKind::Sandbox => "sandbox",
            SubstrateKind::Process => "process",
        }
    }

    /// Parse a recorded name.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(SubstrateKind::Auto),
            "sandbox" => Some(SubstrateKind::Sandbox),
            "process" => Some(SubstrateKind::Process),
            _ => None,
        }
    }
}
