//! The `foolock` binary: parses the command line and dispatches to the library.

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use foolock::cli::ServerFlags;
use foolock::config::{self, Config, ConfigError};
use foolock::exit::{self, CouldNotStart, Exit};
use foolock::server::{self, Server};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// `foolock --version`: the package version, the commit and the day it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FOOLOCK_GIT_COMMIT"),
    ", built ",
    env!("FOOLOCK_BUILD_DATE"),
    ")"
);

/// Take turns on shared jobs (backups, syncs, imports) across your devices.
///
/// With no command, runs the desktop agent: a tray icon plus the lock server. Where there is
/// no display, it says how to run the server or use one instead (unless started at login).
#[derive(Debug, Parser)]
#[command(name = "foolock", version = VERSION, after_help = exit::HELP)]
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

    /// Started by the login item or a service: run the server even without a display
    #[arg(long, hide = true)]
    autostart: bool,

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
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell
    ///
    /// For example `foolock completions bash > ~/.local/share/bash-completion/completions/foolock`
    /// or `foolock completions zsh > "${fpath[1]}/_foolock"`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), for packaging
    #[command(hide = true)]
    Man,
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
    // An exported but empty FOOLOCK_CLIENT means "not set", as for the other settings; only an
    // explicit `--client ""` is refused.
    if std::env::var_os("FOOLOCK_CLIENT").is_some_and(|v| v.is_empty()) {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::remove_var("FOOLOCK_CLIENT") };
    }
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
    let explicit = cli.config.as_deref().map(config::expand_home).transpose()?;
    let config_path = config::resolve_path(explicit.as_deref())?;
    match cli.command {
        None if !cli.autostart && std::io::stdin().is_terminal() => {
            // Someone typed plain `foolock`: a tray if there is a display to show it on, else
            // say what it would do rather than quietly serve the LAN from this machine.
            match why_no_tray() {
                Some(reason) => Ok(explain_plain_foolock(&reason)),
                None => run_agent(&config_path, &ServerFlags::default()),
            }
        }
        None => run_agent(&config_path, &ServerFlags::default()),
        Some(Command::Agent(flags)) => run_agent(&config_path, &flags),
        Some(Command::Serve(flags)) => {
            let config = load(&config_path, &flags)?;
            serve(config)
        }
        Some(Command::Install(args)) => {
            foolock::platform::cli::run_install(&args, explicit.as_deref())
        }
        Some(Command::Uninstall(args)) => foolock::platform::cli::run_uninstall(&args),
        Some(Command::Config { action }) => config_command(&config_path, action),
        Some(Command::Client(command)) => foolock::client::run(command, &config_path),
        Some(Command::Completions { shell }) => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "foolock", &mut script);
            write_stdout(&script)
        }
        Some(Command::Man) => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .context("cannot render the man page")?;
            write_stdout(&page)
        }
    }
}

/// Writes generated text to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::from(e).context("cannot write to stdout"))
        }
        _ => Ok(Exit::Ok.into()),
    }
}

/// Why this process cannot show a tray icon, if it cannot.
fn why_no_tray() -> Option<String> {
    #[cfg(feature = "tray")]
    return foolock::agent::desktop_unavailable().map(|why| format!("there is {why}"));
    #[cfg(not(feature = "tray"))]
    Some("this foolock was built without the desktop agent (tray icon)".to_owned())
}

/// Plain `foolock` typed at a terminal where no tray can be shown: what it would have done and
/// how to do it, or what else the user may have meant. Exits 2, as for other usage errors.
fn explain_plain_foolock(reason: &str) -> ExitCode {
    eprintln!(
        "foolock: {reason}, so `foolock` alone has nothing to show here.
It would run the lock server that your other devices use (on 0.0.0.0:8080 by default).
To run the server on this machine:
  foolock serve                   now, in this terminal (Ctrl-C stops it)
  foolock install --headless      as a service that starts with this machine
To use a server that runs elsewhere:
  export FOOLOCK_SERVER=http://SERVER:8080
  foolock lock JOB -- COMMAND     run COMMAND while holding JOB's lock
  foolock status                  who holds what
See `foolock --help` for everything."
    );
    Exit::Usage.into()
}

/// The config file with the flags applied over it.
fn load(path: &Path, flags: &ServerFlags) -> Result<Config, ConfigError> {
    flags.apply(Config::load(path)?)
}

/// `foolock` / `foolock agent`: the tray agent where there is a desktop, else the plain server.
/// Only the tray agent survives a config file with an error (it shows it in the menu).
fn run_agent(config_path: &Path, flags: &ServerFlags) -> anyhow::Result<ExitCode> {
    #[cfg(feature = "tray")]
    let why = match foolock::agent::desktop_unavailable() {
        None => return foolock::agent::run(config_path, flags),
        Some(reason) => reason,
    };
    #[cfg(not(feature = "tray"))]
    let why = "built without the desktop agent";
    let config = load(config_path, flags)?;
    eprintln!("foolock: {why}; running without a tray icon");
    serve(config)
}

/// `foolock serve`: the server in the foreground until SIGINT/SIGTERM.
fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::open(&config).await.map_err(CouldNotStart)?;
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
