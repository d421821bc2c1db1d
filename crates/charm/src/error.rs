//! The SDK's errors: one enum, whose variants name the input that caused them.

use std::fmt;

/// Everything that can go wrong between a charm and its controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Juju environment variable the event needs is not set.
    #[error("environment variable {name} is not set")]
    MissingEnv {
        /// The variable.
        name: String,
    },
    /// A Juju environment variable holds something that cannot be parsed.
    #[error("environment variable {name}={value:?} is malformed: {reason}")]
    MalformedEnv {
        /// The variable.
        name: String,
        /// Its value (lossily decoded if it was not UTF-8).
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// `JUJU_DISPATCH_PATH` names an event this SDK does not know.
    #[error("unknown event {name:?} (from JUJU_DISPATCH_PATH={dispatch_path:?})")]
    UnknownEvent {
        /// The event name taken from the path.
        name: String,
        /// The whole dispatch path.
        dispatch_path: String,
    },
    /// A hook tool could not be started at all.
    #[error("cannot run hook tool {tool}: {source}")]
    ToolSpawn {
        /// The tool.
        tool: String,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// A hook tool printed something that is not in the format Juju uses.
    #[error("hook tool {tool} printed malformed output: {reason}")]
    MalformedToolOutput {
        /// The tool.
        tool: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The relation does not exist (or no longer exists).
    #[error("relation {relation} not found")]
    RelationNotFound {
        /// The relation, as `endpoint:id` or the text that was looked up.
        relation: String,
    },
    /// The secret does not exist or this unit may not see it.
    #[error("secret {secret} not found")]
    SecretNotFound {
        /// The secret id or label.
        secret: String,
    },
    /// The controller (or the SDK, before asking it) refused the operation.
    #[error("permission denied: {what}")]
    PermissionDenied {
        /// What was attempted.
        what: String,
    },
    /// Any other failure reported by a hook tool.
    #[error("hook tool {tool} failed (exit {code}): {stderr}")]
    Model {
        /// The tool.
        tool: String,
        /// Its exit code.
        code: i32,
        /// What it printed on standard error.
        stderr: String,
    },
    /// A config value does not fit the charm's declared options or the charm's rules.
    #[error("invalid config {key}={value}: {reason}")]
    InvalidConfig {
        /// The option.
        key: String,
        /// The value given (never a secret's content).
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// Action parameters that do not fit what the charm expects.
    #[error("invalid action parameters: {reason}")]
    InvalidParams {
        /// Why they are refused.
        reason: String,
    },
    /// A value the SDK refuses before any tool runs (bad key, reserved name, …).
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// What kind of input.
        what: String,
        /// Why it is refused.
        reason: String,
    },
    /// The charm's metadata, config or actions declaration cannot be read.
    #[error("cannot read charm metadata {path}: {reason}")]
    Metadata {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A charm's own failure, with its message.
    #[error("{0}")]
    Charm(String),
}

impl Error {
    /// A charm-defined failure with a message.
    pub fn charm(msg: impl fmt::Display) -> Self {
        Error::Charm(msg.to_string())
    }
}

/// The SDK's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
