//! The `foolock` binary: parses the command line and dispatches to the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use foolock::cli::ServerFlags;
use foolock::config::{self, Config, ConfigError};
use foolock::exit::{self, Exit};
use foolock::server::{self, Server};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// foolock: take turns on shared jobs (backups, syncs, imports) across your devices.
///
/// With no command, runs the desktop agent: a tray icon plus the lock server.
#[derive(Debug, Parser)]
#[command(name = "foolock", version, after_help = exit::HELP)]
struct Cli {
    /// Config file [env: FOOLOCK_CONFIG] [default: the user's config directory]
    #[arg(
        long,
        global = true,
        env = "FOOLOCK_CONFIG",
        value_name = "PATH",
        hide_env = true
    )]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the desktop agent: tray icon, notifications and the lock server (the default)
    Agent(ServerFlags),
    /// Run the lock server in the foreground, without a tray
    Serve(ServerFlags),
    /// Start foolock at every login (and now); --headless: a systemd user service instead
    Install(foolock::platform::cli::InstallArgs),
    /// Stop starting foolock at login and remove what install set up
    Uninstall(foolock::platform::cli::UninstallArgs),
    /// Show, check or create the config file
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    #[command(flatten)]
    Client(foolock::client::ClientCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the config file's path
    Path,
    /// Check the config file and print the settings in effect
    Check,
    /// Write a commented default config file (never overwrites one)
    Init,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("foolock: {err:#}");
            exit::code_for(&err)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_path = config::resolve_path(cli.config.as_deref())?;
    match cli.command {
        None => run_agent(&config_path, &ServerFlags::default()),
        Some(Command::Agent(flags)) => run_agent(&config_path, &flags),
        Some(Command::Serve(flags)) => {
            let config = load(&config_path, &flags)?;
            serve(config)
        }
        Some(Command::Install(args)) => foolock::platform::cli::run_install(&args),
        Some(Command::Uninstall(args)) => foolock::platform::cli::run_uninstall(&args),
        Some(Command::Config { action }) => config_command(&config_path, action),
        Some(Command::Client(command)) => Ok(foolock::client::run(command, &config_path)?),
    }
}

/// The config file with the flags applied over it.
fn load(path: &Path, flags: &ServerFlags) -> Result<Config, ConfigError> {
    flags.apply(Config::load(path)?)
}

/// `foolock` / `foolock agent`: the tray agent where there is a desktop, else the plain server.
fn run_agent(config_path: &Path, flags: &ServerFlags) -> anyhow::Result<ExitCode> {
    let config = load(config_path, flags)?;
    #[cfg(feature = "tray")]
    match foolock::agent::desktop_unavailable() {
        None => return foolock::agent::run(config_path, config),
        Some(reason) => eprintln!("foolock: {reason}; running without a tray icon"),
    }
    #[cfg(not(feature = "tray"))]
    eprintln!("foolock: built without the desktop agent; running without a tray icon");
    serve(config)
}

/// `foolock serve`: the server in the foreground until SIGINT/SIGTERM.
fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::open(&config).await?;
        let bound = server.local_addr()?;
        println!("{}", server::announcement(bound));
        let shutdown = CancellationToken::new();
        tokio::spawn(server::cancel_on_signal(shutdown.clone()));
        server.run(shutdown).await?;
        Ok(Exit::Ok.into())
    })
}

fn config_command(path: &Path, action: ConfigAction) -> anyhow::Result<ExitCode> {
    match action {
        ConfigAction::Path => println!("{}", path.display()),
        ConfigAction::Check => {
            let config = Config::load(path)?;
            if !path.exists() {
                println!(
                    "# {} does not exist; these are the defaults",
                    path.display()
                );
            } else {
                println!("# {} is valid; settings in effect:", path.display());
            }
            print!("{config}");
        }
        ConfigAction::Init => {
            if config::init_file(path)
                .with_context(|| format!("cannot write {}", path.display()))?
            {
                println!("wrote {}", path.display());
            } else {
                println!("{} already exists; left unchanged", path.display());
            }
        }
    }
    Ok(Exit::Ok.into())
}

/// Logs to stderr; `RUST_LOG` overrides the default `info` level.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
