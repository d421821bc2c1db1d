//! Errors the CLI reports and the exit code each maps to.

use std::fmt;

/// What kind of failure ended a command; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The operation was tried and failed (action failed, wait timed out…): exit 1.
    Failed,
    /// Bad usage or input rejected by validation: exit 2.
    Usage,
    /// No controller to talk to (not bootstrapped, not running, wrong CA): exit 3.
    Unreachable,
}

impl Kind {
    /// The process exit code.
    pub(crate) fn code(self) -> u8 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::Unreachable => 3,
        }
    }
}

/// A CLI error: what failed, naming the input, and how to fix it.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) kind: Kind,
    pub(crate) message: String,
}

impl CliError {
    /// An operation that failed (exit 1).
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        CliError {
            kind: Kind::Failed,
            message: message.into(),
        }
    }

    /// Bad input (exit 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError {
            kind: Kind::Usage,
            message: message.into(),
        }
    }

    /// No reachable controller (exit 3).
    pub(crate) fn unreachable(message: impl Into<String>) -> Self {
        CliError {
            kind: Kind::Unreachable,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Result of a CLI command.
pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;

/// Attach "what was being done" to I/O-ish errors as a failed operation.
pub(crate) trait Context<T> {
    /// Map the error to [`Kind::Failed`] with `what` in front.
    fn failed(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn failed(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| CliError::failed(format!("{}: {e}", what())))
    }
}
