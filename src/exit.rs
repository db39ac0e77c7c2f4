//! Process exit codes, shared by every subcommand and documented in `--help` and the README.

use std::process::ExitCode;

/// What a `foolock` process exit code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// Refused: the job is held by someone else, or you do not hold it.
    Refused = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// The server could not be reached.
    Unreachable = 3,
    /// `foolock lock`: the lock was lost while the command ran; the command was stopped.
    LockLost = 75,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// The exit-code table for `--help`.
pub const HELP: &str = "\
Exit codes:
  0   success
  1   refused: the job is held by someone else, or you do not hold it
  2   usage or configuration error
  3   server unreachable
  75  foolock lock: the lock was lost while the command ran (the command was stopped)
  other  foolock lock: the command's own exit code";
