//! The CLI client: `foolock lock` (run a command under a lock) and the one-shot `acquire`,
//! `release`, `status` and `list`, talking to a server over the HTTP API.
//!
//! - [`http`]: the HTTP client, decoding into [`crate::api::wire`] types.
//! - [`settings`]: server, client id and auth token from flags, environment and config.
//! - [`lock`]: the `foolock lock` supervisor (renewals, signals, lost-lock shutdown).
//! - [`oneshot`]: `acquire`, `release`, `status`, `list`.
//! - [`wait`]: long-polling for a busy job, shared by `lock` and `acquire --wait`.
//! - [`output`]: human-readable lines; `--json` prints the server's JSON instead.
//!
//! Exit codes are [`crate::exit::Exit`]; every failure is a [`ClientError`], whose kind
//! [`crate::exit::code_for`] turns into its code, unless the user chose another with `-E` or
//! `--failure-exit-code` ([`ExitCodes`]).

pub mod http;
#[cfg(unix)]
pub mod lock;
pub mod oneshot;
pub mod output;
pub mod settings;
pub mod wait;

use crate::api::wire::LockReply;
use crate::config::{Config, ConfigError};
use crate::engine::validate_name;
use crate::exit::{Exit, WithCode};
use crate::time::{parse_non_negative, parse_positive};
use http::{Api, BadServerUrl, HttpError, Reply};
use hyper::StatusCode;
use output::Human;
use settings::Settings;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// The lease length `lock` and `acquire` ask for unless told otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// The client subcommands, flattened into `foolock`'s own.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Run a command while holding a job's lock; release it when the command exits
    ///
    /// Acquires JOB (waiting up to --wait), runs CMD with FOOLOCK_JOB, FOOLOCK_CLIENT,
    /// FOOLOCK_TOKEN and FOOLOCK_SERVER set, renews the lease every ttl/3 and releases it
    /// when CMD exits, exiting with CMD's exit code (128+N if a signal N ended it).
    /// SIGINT, SIGTERM and SIGHUP are passed on to CMD; a second Ctrl-C kills CMD's process
    /// group (SIGKILL). CMD runs in its own process group; if the lock is lost (a renewal is
    /// refused, or none succeeded in time) that group gets SIGTERM, then SIGKILL, before the
    /// lease can run out, and foolock exits with 75. Another run of `foolock lock` on this
    /// machine waits its turn like any other device.
    #[command(after_help = crate::exit::HELP)]
    Lock(LockArgs),
    /// Take (or renew) a job's lock once, waiting up to --wait for a busy one
    #[command(after_help = crate::exit::HELP)]
    Acquire(AcquireArgs),
    /// Release a job's lock, if this client holds it
    #[command(after_help = crate::exit::HELP)]
    Release {
        #[arg(value_parser = parse_job)]
        job: String,
        #[command(flatten)]
        who: Who,
        #[command(flatten)]
        out: Output,
    },
    /// Show who holds a job (or, without JOB, every held job); exit 0 if held, 1 if free
    #[command(after_help = crate::exit::HELP)]
    Status {
        #[arg(value_parser = parse_job)]
        job: Option<String>,
        /// Without JOB: also list free jobs whose lapsed lease the server remembers
        #[arg(long, conflicts_with = "job")]
        all: bool,
        #[command(flatten)]
        server: ServerArg,
        #[command(flatten)]
        out: Output,
    },
    /// Free a job whatever its holder, as the tray's Force release does
    ///
    /// For a headless server: only allowed from the server's own machine. The holder's next
    /// renewal is refused, so its `foolock lock` stops its command and exits 75.
    #[command(after_help = crate::exit::HELP)]
    ForceRelease {
        #[arg(value_parser = parse_job)]
        job: String,
        #[command(flatten)]
        server: ServerArg,
        #[command(flatten)]
        out: Output,
    },
    /// List every held job
    #[command(after_help = crate::exit::HELP)]
    List {
        /// Also list free jobs whose lapsed lease the server remembers
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        server: ServerArg,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// The job to lock
    #[arg(value_parser = parse_job)]
    pub job: String,
    /// Lease length, at least 1s; renewed every ttl/3 while CMD runs
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_lock_ttl)]
    pub ttl: Duration,
    /// How long to wait for a busy job (0 = fail at once, naming the holder)
    #[arg(short, long, value_name = "DURATION", default_value = "0s",
          value_parser = parse_non_negative)]
    pub wait: Duration,
    /// Give CMD this terminal's input (CMD becomes the terminal's foreground job, so Ctrl-C
    /// reaches it directly); without it, CMD reads nothing from a terminal
    #[arg(long, visible_alias = "pass-stdin")]
    pub stdin: bool,
    #[command(flatten)]
    pub who: Who,
    #[command(flatten)]
    pub codes: ExitCodes,
    #[command(flatten)]
    pub talk: Talk,
    /// The command to run, after `--`
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, clap::Args)]
pub struct AcquireArgs {
    #[arg(value_parser = parse_job)]
    pub job: String,
    /// Lease length, e.g. 30s or 5m
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_positive)]
    pub ttl: Duration,
    /// How long to wait for a busy job (0 = fail at once, naming the holder)
    #[arg(short, long, value_name = "DURATION", default_value = "0s",
          value_parser = parse_non_negative)]
    pub wait: Duration,
    #[command(flatten)]
    pub who: Who,
    #[command(flatten)]
    pub codes: ExitCodes,
    #[command(flatten)]
    pub talk: Talk,
    #[command(flatten)]
    pub out: Output,
}

/// The shortest lease `lock` accepts. Below it the safety margin (at least 200 ms, see
/// `lock::Timing`) and the renewal round trips would leave CMD no time to run, or none at all.
pub(crate) const MIN_LOCK_TTL: Duration = Duration::from_secs(1);

fn parse_lock_ttl(input: &str) -> Result<Duration, String> {
    let ttl = parse_positive(input)?;
    if ttl < MIN_LOCK_TTL {
        return Err(format!(
            "{input:?} is too short for `foolock lock`: the ttl must be at least {}",
            Human(MIN_LOCK_TTL)
        ));
    }
    Ok(ttl)
}

/// A job name as the server accepts it: 1–256 bytes, no control characters. An empty name
/// is refused here rather than silently meaning the server's `default` job.
fn parse_job(input: &str) -> Result<String, String> {
    validate_name(input)
        .map(|()| input.to_owned())
        .map_err(|e| format!("a job name {e}"))
}

/// A client id, checked like a job name. `--client ""` is refused rather than quietly falling
/// back to the hostname.
fn parse_client(input: &str) -> Result<String, String> {
    validate_name(input)
        .map(|()| input.to_owned())
        .map_err(|e| format!("a client id {e}"))
}

/// Which server to talk to.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArg {
    /// Server URL [env: FOOLOCK_SERVER] [config: server] [default: http://localhost:8080]
    #[arg(long, env = "FOOLOCK_SERVER", value_name = "URL", hide_env = true)]
    pub server: Option<String>,
}

/// The server, and who we are to it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Who {
    #[command(flatten)]
    pub server: ServerArg,
    /// Client id [env: FOOLOCK_CLIENT] [config: client] [default: the hostname's first
    /// label, lower-cased]
    #[arg(long, env = "FOOLOCK_CLIENT", value_name = "ID", hide_env = true,
          value_parser = parse_client)]
    pub client: Option<String>,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct Output {
    /// Print the server's JSON reply on stdout instead of a sentence
    #[arg(long)]
    pub json: bool,
}

/// How much `lock` and `acquire` say on stderr besides errors.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Talk {
    /// Say nothing but errors (no waiting messages, no warnings)
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also say when the lock is taken, renewed and released, on a terminal or not
    #[arg(short, long)]
    pub verbose: bool,
}

impl Talk {
    pub fn say(self) -> Say {
        Say {
            level: if self.quiet {
                Level::Quiet
            } else if self.verbose {
                Level::Verbose
            } else if std::io::stderr().is_terminal() {
                Level::Terminal
            } else {
                Level::Plain
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Quiet,
    /// stderr is not a terminal: warnings only (logs stay quiet).
    Plain,
    /// A person is watching: also say what we are waiting for, and when it is ours.
    Terminal,
    Verbose,
}

/// Messages on stderr, at the level the user chose ([`Talk`]). Errors are not sent through
/// here: they are always printed.
#[derive(Debug, Clone, Copy)]
pub struct Say {
    level: Level,
}

impl Say {
    /// Only errors.
    pub const QUIET: Say = Say {
        level: Level::Quiet,
    };

    /// Something went wrong but we carry on (a renewal failed and is retried).
    pub fn warn(&self, message: impl std::fmt::Display) {
        if self.level >= Level::Plain {
            eprintln!("foolock: {message}");
        }
    }

    /// What a person at a terminal wants to know: waiting for whom, and when it is ours.
    pub fn note(&self, message: impl std::fmt::Display) {
        if self.level >= Level::Terminal {
            eprintln!("foolock: {message}");
        }
    }

    /// Detail for `-v`: each grant, renewal and release.
    pub fn detail(&self, message: impl std::fmt::Display) {
        if self.level >= Level::Verbose {
            eprintln!("foolock: {message}");
        }
    }

    /// Whether [`Say::note`] prints anything.
    pub fn notes(&self) -> bool {
        self.level >= Level::Terminal
    }
}

/// `-E` and `--failure-exit-code`: the exit codes that tell a busy job and foolock's own
/// failures from CMD's exit code.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct ExitCodes {
    /// Exit with N when the job is held by someone else (instead of 1)
    #[arg(short = 'E', long, value_name = "N")]
    pub conflict_exit_code: Option<u8>,
    /// Exit with N when foolock itself fails: bad settings, the server unreachable or
    /// refusing service, the lock lost while CMD ran (instead of 2, 3 or 75)
    #[arg(long, value_name = "N")]
    pub failure_exit_code: Option<u8>,
}

impl ExitCodes {
    /// The code for a lost lock (`foolock lock`).
    pub fn lost(self) -> ExitCode {
        self.failure_exit_code
            .map_or(Exit::LockLost.into(), ExitCode::from)
    }

    /// The code for "held by someone else".
    pub fn conflict(self) -> ExitCode {
        self.conflict_exit_code
            .map_or(Exit::Refused.into(), ExitCode::from)
    }

    /// `err` with the code the user chose for its kind, if any.
    fn apply(self, err: ClientError) -> anyhow::Error {
        let chosen = match err {
            ClientError::Refused(_) => self.conflict_exit_code,
            _ => self.failure_exit_code,
        };
        match chosen {
            Some(code) => WithCode {
                code,
                error: err.into(),
            }
            .into(),
            None => err.into(),
        }
    }
}

/// A client command that failed; [`crate::exit::code_for`] gives its exit code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Url(#[from] BadServerUrl),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The server answered but will not serve us now (503, 5xx).
    #[error("{0}")]
    Unavailable(String),
    /// Held by someone else, or not ours to release.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Local(String),
}

impl ClientError {
    /// The error for a reply that is neither success nor "someone else holds it".
    fn from_reply(reply: &Reply<LockReply>) -> ClientError {
        let message = reply
            .body
            .error
            .clone()
            .or_else(|| reply.body.message.as_ref().map(ToString::to_string))
            .unwrap_or_else(|| format!("HTTP {}", reply.status));
        match reply.status {
            s if s.is_server_error() => {
                ClientError::Unavailable(format!("the server refused: {message}"))
            }
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => ClientError::Usage(format!(
                "the server URL does not lead to a foolock server's API ({}: {message}); check \
                 its path",
                reply.status
            )),
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => {
                ClientError::Usage(format!("the server refused the request: {message}"))
            }
            _ => ClientError::Refused(message),
        }
    }
}

/// Runs a client command to completion on a small runtime of its own.
pub fn run(command: ClientCommand, config_path: &Path) -> anyhow::Result<ExitCode> {
    let codes = match &command {
        ClientCommand::Lock(args) => args.codes,
        ClientCommand::Acquire(args) => args.codes,
        _ => ExitCodes::default(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Local(format!("cannot start the async runtime: {e}")))
        .map_err(|e| codes.apply(e))?;
    // `lock` relies on the current-thread runtime: its child is spawned from the main thread,
    // which outlives it (Linux's parent-death signal is tied to the spawning thread).
    runtime
        .block_on(dispatch(command, config_path))
        .map_err(|e| codes.apply(e))
}

/// What every command needs to talk to its server.
pub struct Connection {
    pub api: Api,
    pub settings: Settings,
}

async fn dispatch(command: ClientCommand, config_path: &Path) -> Result<ExitCode, ClientError> {
    let config = Config::load(config_path)?;
    let auth_token = std::env::var("FOOLOCK_AUTH_TOKEN").ok();
    let connect = |server: &ServerArg, client: Option<&str>| -> Result<Connection, ClientError> {
        let settings = Settings::resolve(
            server.server.as_deref(),
            client,
            auth_token.as_deref(),
            &config,
        );
        let api = Api::new(&settings.server, settings.auth_token.clone())?;
        Ok(Connection { api, settings })
    };
    match command {
        #[cfg(unix)]
        ClientCommand::Lock(args) => {
            let conn = connect(&args.who.server, args.who.client.as_deref())?;
            lock::run(
                &conn.api,
                &lock::LockRequest {
                    job: args.job,
                    client: conn.settings.client,
                    run: lock::new_run_id(),
                    ttl: args.ttl,
                    wait: args.wait,
                    command: args.command,
                    stdin: args.stdin,
                    codes: args.codes,
                    say: args.talk.say(),
                },
            )
            .await
        }
        // Process groups and signal forwarding are Unix notions.
        #[cfg(not(unix))]
        ClientCommand::Lock(_) => Err(ClientError::Usage(
            "foolock lock is only available on macOS and Linux".to_owned(),
        )),
        ClientCommand::Acquire(args) => {
            let conn = connect(&args.who.server, args.who.client.as_deref())?;
            oneshot::acquire(&conn, &args).await
        }
        ClientCommand::Release { job, who, out } => {
            let conn = connect(&who.server, who.client.as_deref())?;
            oneshot::release(&conn, &job, out.json).await
        }
        ClientCommand::Status {
            job: Some(job),
            server,
            out,
            ..
        } => {
            let conn = connect(&server, None)?;
            oneshot::status(&conn, &job, out.json).await
        }
        ClientCommand::Status {
            job: None,
            all,
            server,
            out,
        } => {
            let conn = connect(&server, None)?;
            oneshot::list(&conn, all, out.json, true).await
        }
        ClientCommand::ForceRelease { job, server, out } => {
            let conn = connect(&server, None)?;
            oneshot::force_release(&conn, &job, out.json).await
        }
        ClientCommand::List { all, server, out } => {
            let conn = connect(&server, None)?;
            oneshot::list(&conn, all, out.json, false).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: ClientCommand,
    }

    fn parse(args: &[&str]) -> Result<ClientCommand, String> {
        Cli::try_parse_from(std::iter::once("foolock").chain(args.iter().copied()))
            .map(|cli| cli.command)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn empty_job_names_and_client_ids_are_usage_errors() {
        for args in [
            &["acquire", ""][..],
            &["release", ""],
            &["status", ""],
            &["lock", "", "--", "true"],
            &["acquire", "job", "--client", ""],
            &["lock", "job", "--client", "", "--", "true"],
            &["acquire", "bad\nname"],
        ] {
            let err = parse(args).expect_err(&format!("{args:?} must be refused"));
            assert!(
                err.contains("job name") || err.contains("client id"),
                "{args:?}: {err}"
            );
        }
        assert!(parse(&["acquire", "job", "--client", "desk"]).is_ok());
    }

    #[test]
    fn exit_codes_move_only_what_the_user_asked_for() {
        let codes = ExitCodes {
            conflict_exit_code: Some(200),
            failure_exit_code: Some(201),
        };
        let code = |e: ClientError| crate::exit::code_for(&codes.apply(e));
        assert_eq!(
            code(ClientError::Refused("held".into())),
            ExitCode::from(200)
        );
        assert_eq!(code(ClientError::Usage("bad".into())), ExitCode::from(201));
        assert_eq!(
            code(ClientError::Unavailable("503".into())),
            ExitCode::from(201)
        );
        assert_eq!(codes.lost(), ExitCode::from(201));
        let default = ExitCodes::default();
        let code = |e: ClientError| crate::exit::code_for(&default.apply(e));
        assert_eq!(
            code(ClientError::Refused("held".into())),
            Exit::Refused.into()
        );
        assert_eq!(default.lost(), Exit::LockLost.into());
        assert_eq!(default.conflict(), Exit::Refused.into());
    }

    #[test]
    fn a_404_or_405_from_the_server_means_the_url_is_wrong_a_usage_error() {
        let reply = |status| Reply {
            status,
            body: LockReply::error("not found"),
        };
        for status in [StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED] {
            let err = ClientError::from_reply(&reply(status));
            assert!(matches!(err, ClientError::Usage(_)), "{err}");
            assert!(err.to_string().contains("path"), "{err}");
        }
    }
}
