//! Process exit codes, shared by every subcommand and documented in `--help` and the README,
//! and [`code_for`], the one place an error that ends a command becomes one.

use crate::client::ClientError;
use crate::config::ConfigError;
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
    /// `foolock serve` (or the agent without a display) could not start: its address is in
    /// use or cannot be bound, or its state directory cannot be used.
    CouldNotStart = 4,
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
  0   success (status: the job is held)
  1   refused: the job is held by someone else, or you do not hold it (status: it is free)
  2   usage or configuration error
  3   server unreachable, or not serving grants right now
  4   serve: could not start (address in use, state directory unusable)
  75  foolock lock: the lock was lost while the command ran (the command was stopped)
  other  foolock lock: the command's own exit code
-E N and --failure-exit-code N move 1 and 2/3/75 for lock and acquire.";

/// A failure that ends the process with a code the user chose (`-E`, `--failure-exit-code`)
/// instead of the one its kind has. Displays as the failure itself.
#[derive(Debug)]
pub struct WithCode {
    pub code: u8,
    pub error: anyhow::Error,
}

impl std::fmt::Display for WithCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if f.alternate() {
            write!(f, "{:#}", self.error)
        } else {
            write!(f, "{}", self.error)
        }
    }
}

impl std::error::Error for WithCode {}

/// `foolock serve` could not start: the address or the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("could not start: {0:#}")]
pub struct CouldNotStart(pub anyhow::Error);

/// The exit code for the error that ended a command: the one the user chose, if they did;
/// bad settings are usage errors; a server that cannot start says so; a client command's
/// error says which kind it is; anything else (a file cannot be written) is a plain failure.
pub fn code_for(err: &anyhow::Error) -> ExitCode {
    if let Some(chosen) = err.downcast_ref::<WithCode>() {
        return ExitCode::from(chosen.code);
    }
    if err.downcast_ref::<CouldNotStart>().is_some() {
        return Exit::CouldNotStart.into();
    }
    if let Some(err) = err.downcast_ref::<ClientError>() {
        return match err {
            ClientError::Config(_) | ClientError::Url(_) | ClientError::Usage(_) => {
                Exit::Usage.into()
            }
            ClientError::Http(_) | ClientError::Unavailable(_) => Exit::Unreachable.into(),
            ClientError::Refused(_) => Exit::Refused.into(),
            ClientError::Local(_) => ExitCode::FAILURE,
        };
    }
    if err.downcast_ref::<ConfigError>().is_some() {
        return Exit::Usage.into();
    }
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::anyhow;

    fn code(err: impl Into<anyhow::Error>) -> ExitCode {
        code_for(&err.into())
    }

    #[test]
    fn bad_settings_from_the_file_or_a_flag_are_usage_errors() {
        let flag = ConfigError::Flag {
            flag: "grace-period".into(),
            problem: "must be between 0s and 1m".into(),
        };
        assert_eq!(code(flag), Exit::Usage.into());
        assert_eq!(code(ConfigError::NoHome), Exit::Usage.into());
        let in_client = ClientError::Config(ConfigError::NoHome);
        assert_eq!(code(in_client), Exit::Usage.into());
    }

    #[test]
    fn client_errors_map_to_refused_unreachable_usage_or_failure() {
        let code = |e: ClientError| code(e);
        assert_eq!(
            code(ClientError::Refused("held".into())),
            Exit::Refused.into()
        );
        let busy = ClientError::Unavailable("503".into());
        assert_eq!(code(busy), Exit::Unreachable.into());
        assert_eq!(code(ClientError::Usage("bad".into())), Exit::Usage.into());
        let local = ClientError::Local("cannot start".into());
        assert_eq!(code(local), ExitCode::FAILURE);
    }

    #[test]
    fn a_server_that_cannot_start_and_a_chosen_code_have_their_own_codes() {
        let bind = CouldNotStart(anyhow!("cannot listen on 0.0.0.0:8080: address in use"));
        assert_eq!(code(bind), Exit::CouldNotStart.into());
        let chosen = WithCode {
            code: 200,
            error: ClientError::Refused("held".into()).into(),
        };
        assert_eq!(chosen.to_string(), "held");
        assert_eq!(code(chosen), ExitCode::from(200));
    }

    #[test]
    fn any_other_error_is_a_plain_failure_even_with_context() {
        assert_eq!(code(anyhow!("cannot bind")), ExitCode::FAILURE);
        let wrapped = anyhow::Error::from(ConfigError::NoHome).context("while starting");
        assert_eq!(code_for(&wrapped), Exit::Usage.into());
    }
}
