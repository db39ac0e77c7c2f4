//! The CLI client: `foolock lock` (run a command under a lock) and the one-shot `acquire`,
//! `release`, `status` and `list`, talking to a server over the HTTP API.
//!
//! - [`http`]: the HTTP client, decoding into [`crate::api::wire`] types.
//! - [`settings`]: server, client id and auth token from flags, environment and config.
//! - [`lock`]: the `foolock lock` supervisor (renewals, signals, lost-lock shutdown).
//! - [`output`]: human-readable lines; `--json` prints the server's JSON instead.
//!
//! Exit codes are [`crate::exit::Exit`]; every failure is a [`ClientError`], whose kind
//! [`crate::exit::code_for`] turns into its code.

pub mod http;
#[cfg(unix)]
pub mod lock;
pub mod output;
pub mod settings;

use crate::api::wire::LockReply;
use crate::config::{Config, ConfigError};
use crate::exit::Exit;
use crate::time::{Compact, parse_positive};
use http::{Api, BadServerUrl, HttpError, REQUEST_TIMEOUT, Reply};
use hyper::StatusCode;
use settings::Settings;
use std::ffi::OsString;
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
    /// SIGINT, SIGTERM and SIGHUP are passed on to CMD. CMD runs in its own process group;
    /// if the lock is lost (a renewal is refused, or none succeeded in time) that group gets
    /// SIGTERM, then SIGKILL, before the lease can run out, and foolock exits with 75.
    #[command(after_help = crate::exit::HELP)]
    Lock(LockArgs),
    /// Take (or renew) a job's lock once
    #[command(after_help = crate::exit::HELP)]
    Acquire {
        job: String,
        /// Lease length, e.g. 30s or 5m
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_positive)]
        ttl: Duration,
        #[command(flatten)]
        who: Who,
        #[command(flatten)]
        out: Output,
    },
    /// Release a job's lock, if this client holds it
    #[command(after_help = crate::exit::HELP)]
    Release {
        job: String,
        #[command(flatten)]
        who: Who,
        #[command(flatten)]
        out: Output,
    },
    /// Show who holds a job (or, without JOB, every held job)
    #[command(after_help = crate::exit::HELP)]
    Status {
        job: Option<String>,
        #[command(flatten)]
        server: ServerArg,
        #[command(flatten)]
        out: Output,
    },
    /// List every held job
    #[command(after_help = crate::exit::HELP)]
    List {
        #[command(flatten)]
        server: ServerArg,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// The job to lock
    pub job: String,
    /// Lease length, at least 1s; renewed every ttl/3 while CMD runs
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_lock_ttl)]
    pub ttl: Duration,
    /// How long to wait for a busy job (0 = fail at once, naming the holder)
    #[arg(long, value_name = "DURATION", default_value = "0s",
          value_parser = crate::time::parse_non_negative)]
    pub wait: Duration,
    #[command(flatten)]
    pub who: Who,
    /// The command to run, after `--`
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// The shortest lease `lock` accepts. Below it the safety margin (at least 200 ms, see
/// `lock::Timing`) and the renewal round trips would leave CMD no time to run, or none at all.
pub const MIN_LOCK_TTL: Duration = Duration::from_secs(1);

fn parse_lock_ttl(input: &str) -> Result<Duration, String> {
    let ttl = parse_positive(input)?;
    if ttl < MIN_LOCK_TTL {
        return Err(format!(
            "{input:?} is too short for `foolock lock`: the ttl must be at least {}",
            Compact(MIN_LOCK_TTL)
        ));
    }
    Ok(ttl)
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
    #[arg(long, env = "FOOLOCK_CLIENT", value_name = "ID", hide_env = true)]
    pub client: Option<String>,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct Output {
    /// Print the server's JSON reply instead of a sentence
    #[arg(long)]
    pub json: bool,
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
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND => {
                ClientError::Usage(format!("the server refused the request: {message}"))
            }
            _ => ClientError::Refused(message),
        }
    }
}

/// Runs a client command to completion on a small runtime of its own.
pub fn run(command: ClientCommand, config_path: &Path) -> Result<ExitCode, ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Local(format!("cannot start the async runtime: {e}")))?;
    // `lock` relies on the current-thread runtime: its child is spawned from the main thread,
    // which outlives it (Linux's parent-death signal is tied to the spawning thread).
    runtime.block_on(dispatch(command, config_path))
}

async fn dispatch(command: ClientCommand, config_path: &Path) -> Result<ExitCode, ClientError> {
    let config = Config::load(config_path)?;
    let auth_token = std::env::var("FOOLOCK_AUTH_TOKEN").ok();
    let connect =
        |server: &ServerArg, client: Option<&str>| -> Result<(Api, Settings), ClientError> {
            let settings = Settings::resolve(
                server.server.as_deref(),
                client,
                auth_token.as_deref(),
                &config,
            );
            let api = Api::new(&settings.server, settings.auth_token.clone())?;
            Ok((api, settings))
        };
    match command {
        #[cfg(unix)]
        ClientCommand::Lock(args) => {
            let (api, settings) = connect(&args.who.server, args.who.client.as_deref())?;
            lock::run(
                &api,
                &lock::LockRequest {
                    job: args.job,
                    client: settings.client,
                    ttl: args.ttl,
                    wait: args.wait,
                    command: args.command,
                },
            )
            .await
        }
        // Process groups and signal forwarding are Unix notions.
        #[cfg(not(unix))]
        ClientCommand::Lock(_) => Err(ClientError::Usage(
            "foolock lock is only available on macOS and Linux".to_owned(),
        )),
        ClientCommand::Acquire { job, ttl, who, out } => {
            let (api, settings) = connect(&who.server, who.client.as_deref())?;
            let reply = json_on_error(
                out.json,
                api.acquire(&job, &settings.client, Some(ttl), None, REQUEST_TIMEOUT)
                    .await,
            )?;
            match reply.status {
                StatusCode::OK => {
                    print(out.json, &reply.body, || {
                        output::granted(&job, &settings.client, &reply.body)
                    });
                    Ok(Exit::Ok.into())
                }
                StatusCode::CONFLICT => {
                    print(out.json, &reply.body, || output::denial(&job, &reply.body));
                    Ok(Exit::Refused.into())
                }
                _ => Err(json_error(out.json, ClientError::from_reply(&reply))),
            }
        }
        ClientCommand::Release { job, who, out } => {
            let (api, settings) = connect(&who.server, who.client.as_deref())?;
            let reply = json_on_error(
                out.json,
                api.release(&job, &settings.client, REQUEST_TIMEOUT).await,
            )?;
            match reply.status {
                StatusCode::OK => {
                    print(out.json, &reply.body, || format!("released {job}"));
                    Ok(Exit::Ok.into())
                }
                StatusCode::FORBIDDEN | StatusCode::CONFLICT => {
                    print(out.json, &reply.body, || {
                        format!("{} does not hold {job}; nothing released", settings.client)
                    });
                    Ok(Exit::Refused.into())
                }
                _ => Err(json_error(out.json, ClientError::from_reply(&reply))),
            }
        }
        ClientCommand::Status {
            job: Some(job),
            server,
            out,
        } => {
            let (api, _) = connect(&server, None)?;
            let reply = json_on_error(out.json, api.status(&job).await)?;
            if reply.status != StatusCode::OK {
                return Err(json_error(out.json, ClientError::from_reply(&reply)));
            }
            print(out.json, &reply.body, || output::status(&job, &reply.body));
            Ok(Exit::Ok.into())
        }
        ClientCommand::Status {
            job: None,
            server,
            out,
        }
        | ClientCommand::List { server, out } => {
            let (api, _) = connect(&server, None)?;
            let reply = json_on_error(out.json, api.list().await)?;
            if out.json {
                println!("{}", to_json(&reply.body));
            } else {
                print!("{}", output::table(&reply.body.locks));
            }
            Ok(Exit::Ok.into())
        }
    }
}

/// Prints the reply as JSON or as the sentence `human` makes.
fn print(json: bool, body: &LockReply, human: impl FnOnce() -> String) {
    if json {
        println!("{}", to_json(body));
    } else {
        println!("{}", human());
    }
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// With `--json`, a failure is also reported as `{"success":false,"error":…}` on stdout so a
/// script parsing stdout always gets JSON.
fn json_error(json: bool, err: ClientError) -> ClientError {
    if json {
        let mut body = LockReply::error(err.to_string());
        body.success = Some(false);
        println!("{}", to_json(&body));
    }
    err
}

fn json_on_error<T>(json: bool, result: Result<T, HttpError>) -> Result<T, ClientError> {
    result.map_err(|e| json_error(json, e.into()))
}
