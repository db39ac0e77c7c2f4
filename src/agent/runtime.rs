//! The agent's background half: a tokio runtime on its own thread running exactly the server
//! `foolock serve` runs, plus the bridge to the UI (job snapshots out, menu commands in) and
//! notifications.
//!
//! Nothing here ends the runtime but the shutdown token (Quit, a signal) or finding another
//! agent already running:
//! - a config file with an error is shown in the menu, notified once and watched
//!   ([`FileWatch`]: no polling); the server starts as soon as the file is saved fixed;
//! - a failed bind is shown until the user quits.
//!
//! Menu commands are served from start to end, whatever the server's state. While the server
//! runs, [`keep_awake`] holds off idle sleep whenever a lease is held.

use super::keep_awake;
use super::menu::Listening;
use super::notifications::{Message, Notifier};
use super::{Command, UserEvent};
use crate::cli::ServerFlags;
use crate::config::{self, Config, ConfigError, Problem};
use crate::platform::{self, watch::FileWatch};
use crate::server::{self, Server};
use crate::service::LockService;
use crate::store::StoreError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tao::event_loop::EventLoopProxy;
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Where the settings come from: the config file and the flags over it, and the first attempt
/// to read them (made before the UI started, so a bad flag can still end the program).
pub struct Settings {
    pub path: PathBuf,
    pub flags: ServerFlags,
    pub first: Result<Config, ConfigError>,
}

impl Settings {
    /// Reads the file again, with the flags over it.
    fn reload(&self) -> Result<Config, ConfigError> {
        self.flags.apply(Config::load(&self.path)?)
    }
}

/// The runtime's ends of the channels to the UI.
pub struct Links {
    /// Wakes the UI with events.
    pub proxy: EventLoopProxy<UserEvent>,
    /// Menu clicks.
    pub commands: mpsc::UnboundedReceiver<Command>,
    /// When the UI next wants a [`UserEvent::Tick`].
    pub alarm: watch::Receiver<Option<Instant>>,
}

/// Starts the runtime thread. It sends [`UserEvent::Stopped`] as its last act.
pub fn spawn(
    settings: Settings,
    links: Links,
    shutdown: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("foolock-runtime".into())
        .spawn(move || {
            let proxy = links.proxy.clone();
            match tokio::runtime::Runtime::new() {
                Ok(rt) => rt.block_on(main(settings, links, shutdown)),
                Err(err) => {
                    tracing::error!("cannot start the async runtime: {err}");
                    let why = format!("Cannot start: {err}");
                    let _ = proxy.send_event(UserEvent::Listening(Listening::Failed(why)));
                }
            }
            let _ = proxy.send_event(UserEvent::Stopped);
        })
}

async fn main(mut settings: Settings, links: Links, shutdown: CancellationToken) {
    let Links {
        proxy,
        commands,
        alarm,
    } = links;
    tokio::spawn(server::cancel_on_signal(shutdown.clone()));
    tokio::spawn(ring_alarm(alarm, proxy.clone(), shutdown.clone()));
    let notifier = Notifier::new(config::Notifications::default());
    let (service_tx, service) = watch::channel(None);
    let (keep_awake, keep_awake_rx) = watch::channel(false);
    let recheck = Arc::new(Notify::new());
    let control = tokio::spawn(serve_commands(
        Control {
            service,
            notifier: notifier.clone(),
            config_path: settings.path.clone(),
            recheck: recheck.clone(),
            keep_awake: keep_awake.clone(),
        },
        commands,
        shutdown.clone(),
    ));
    let first = std::mem::replace(&mut settings.first, Err(ConfigError::NoHome));
    let config = usable_config(first, &settings, &notifier, &proxy, &recheck, &shutdown).await;
    if let Some(config) = config {
        notifier.set_settings(config.notifications.clone());
        keep_awake.send_replace(config.keep_awake);
        let _ = proxy.send_event(UserEvent::KeepAwake(config.keep_awake));
        let links = ServeLinks {
            notifier: &notifier,
            proxy: &proxy,
            service: &service_tx,
            keep_awake: keep_awake_rx,
        };
        serve(&config, &settings.path, links, &shutdown).await;
    }
    shutdown.cancel();
    let _ = control.await;
}

/// What [`serve`] reports to and hands on.
struct ServeLinks<'a> {
    notifier: &'a Notifier,
    proxy: &'a EventLoopProxy<UserEvent>,
    /// Gets the server once it runs, for the menu's commands.
    service: &'a watch::Sender<Option<Serving>>,
    /// The menu's "Keep awake while jobs are held".
    keep_awake: watch::Receiver<bool>,
}

/// Runs the server for `config` until shutdown; if it cannot start, shows why and waits for
/// Quit (or returns at once if another agent is already running).
async fn serve(
    config: &Config,
    config_path: &Path,
    links: ServeLinks<'_>,
    shutdown: &CancellationToken,
) {
    let ServeLinks {
        notifier,
        proxy,
        service: service_tx,
        keep_awake: keep_awake_switch,
    } = links;
    let server = match Server::open(config).await {
        Ok(server) => server,
        Err(err) => {
            if let Some(dir) = already_running(&err) {
                // Quietly: the first agent's icon is the one the user wants. No tray was shown
                // (the UI creates it on the first `Listening`), and exit status 0 keeps
                // launchd's KeepAlive from starting this one again.
                eprintln!(
                    "foolock: already running (another foolock uses {}); this one exits",
                    dir.display()
                );
                return;
            }
            tracing::error!("{err:#}");
            // E.g. "Cannot listen on 0.0.0.0:8080: Address in use", or the state directory's
            // problem: the outermost context says what failed, the root cause why.
            let what = err.to_string();
            let why = err.root_cause().to_string();
            let mut header = if why == what {
                what
            } else {
                format!("{what}: {why}")
            };
            if let Some(first) = header.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            notifier.post(Message {
                title: "foolock cannot accept locks".into(),
                body: format!(
                    "{header}. Fix it in {} (or stop the other program), then restart foolock.",
                    config_path.display()
                ),
            });
            let _ = proxy.send_event(UserEvent::Listening(Listening::Failed(header)));
            shutdown.cancelled().await;
            return;
        }
    };

    let bound = match server.local_addr() {
        Ok(bound) => bound,
        Err(err) => {
            tracing::error!("cannot read the bound address: {err}");
            return;
        }
    };
    // Same first line as `foolock serve`: scripts and tests read the port from it.
    println!("{}", server::announcement(bound));
    let _ = proxy.send_event(UserEvent::Listening(Listening::On(
        server::reachable_addrs(bound),
    )));

    let service = server.service().clone();
    service_tx.send_replace(Some(Serving {
        service: service.clone(),
        page: server::local_page_url(bound),
    }));
    let awake = tokio::spawn(keep_awake::run(
        service.clone(),
        keep_awake_switch,
        shutdown.clone(),
    ));
    let watcher = tokio::spawn(watch_jobs(
        service,
        notifier.clone(),
        proxy.clone(),
        shutdown.clone(),
    ));
    if let Err(err) = server.run(shutdown.clone()).await {
        tracing::error!("{err:#}");
    }
    shutdown.cancel();
    let _ = watcher.await;
    let _ = awake.await;
}

/// The config to serve with: `first` if it loaded. Otherwise the error is shown in the menu,
/// logged and notified (once), and the file watched and read again whenever it changes (or
/// the UI asks, [`Command::CheckConfig`]) until it loads. `None` if shutdown comes first.
async fn usable_config(
    first: Result<Config, ConfigError>,
    settings: &Settings,
    notifier: &Notifier,
    proxy: &EventLoopProxy<UserEvent>,
    recheck: &Notify,
    shutdown: &CancellationToken,
) -> Option<Config> {
    let mut loaded = first;
    let mut shown: Option<Problem> = None;
    let mut watch: Option<FileWatch> = None;
    let mut can_watch = true;
    loop {
        let err = match loaded {
            Ok(config) => {
                if shown.is_some() {
                    tracing::info!("the config file is fixed; starting the server");
                }
                return Some(config);
            }
            Err(err) => err,
        };
        if watch.is_none() && can_watch {
            match FileWatch::new(&settings.path) {
                Ok(w) => watch = Some(w),
                Err(e) => {
                    can_watch = false;
                    tracing::warn!(
                        "cannot watch {} ({e}); restart foolock once it is fixed",
                        settings.path.display()
                    );
                }
            }
        }
        let problem = err.problem();
        if shown.as_ref() != Some(&problem) {
            tracing::error!("not serving until the config file is fixed: {err}");
            if shown.is_none() {
                let then = if can_watch {
                    "Fix it and save it: foolock then starts serving."
                } else {
                    "Fix it, then restart foolock."
                };
                notifier.post(Message {
                    title: "foolock is not serving: the config file has an error".into(),
                    body: format!("{} {then}", one_line(&problem)),
                });
            }
            let listening = Listening::BadConfig {
                problem: problem.clone(),
                reloads: can_watch,
            };
            let _ = proxy.send_event(UserEvent::Listening(listening));
            shown = Some(problem);
        }
        let changed = async {
            match watch.as_mut() {
                Some(watch) => watch.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = changed => if let Err(e) = result {
                tracing::warn!(
                    "stopped watching {} ({e}); restart foolock once it is fixed",
                    settings.path.display()
                );
                (watch, can_watch) = (None, false);
            },
            _ = recheck.notified() => {}
            _ = shutdown.cancelled() => return None,
        }
        loaded = settings.reload();
    }
}

/// A config problem in one line: `FILE, line 2, key `grace`: unknown field …`.
fn one_line(problem: &Problem) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(path) = &problem.path {
        parts.push(path.display().to_string());
    }
    parts.extend(problem.location());
    if parts.is_empty() {
        problem.problem.clone()
    } else {
        format!("{}: {}", parts.join(", "), problem.problem)
    }
}

/// The state directory another foolock holds, if that is why the server could not open.
fn already_running(err: &anyhow::Error) -> Option<&Path> {
    match err.downcast_ref::<StoreError>()? {
        StoreError::InUse { path } => Some(path),
        _ => None,
    }
}

/// Sends [`UserEvent::Tick`] when the UI's alarm time comes; sleeps without waking while no
/// alarm is set (no job shown).
async fn ring_alarm(
    mut alarm: watch::Receiver<Option<Instant>>,
    proxy: EventLoopProxy<UserEvent>,
    shutdown: CancellationToken,
) {
    loop {
        let at = *alarm.borrow_and_update();
        if let Some(at) = at {
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {
                    if proxy.send_event(UserEvent::Tick).is_err() {
                        return;
                    }
                    // The UI redraws and sets the next alarm (or clears it).
                }
                _ = alarm.changed() => continue,
                _ = shutdown.cancelled() => return,
            }
        }
        tokio::select! {
            changed = alarm.changed() => if changed.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Sends the UI a fresh snapshot after every change (and one at start), and posts the
/// notifications events deserve. Bursts of events are coalesced into one snapshot.
async fn watch_jobs(
    service: LockService,
    notifier: Notifier,
    proxy: EventLoopProxy<UserEvent>,
    shutdown: CancellationToken,
) {
    let mut events = service.subscribe();
    loop {
        let (jobs, _) = service.list();
        if proxy.send_event(UserEvent::Jobs(jobs)).is_err() {
            return;
        }
        let first = tokio::select! {
            e = events.recv() => e,
            _ = shutdown.cancelled() => return,
        };
        let mut next = Some(first);
        while let Some(received) = next {
            match received {
                Ok(event) => notifier.event(&event),
                // Missed events cannot be notified any more; the snapshot below resyncs.
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "tray fell behind the lock events");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
            next = match events.try_recv() {
                Ok(event) => Some(Ok(event)),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    Some(Err(broadcast::error::RecvError::Lagged(n)))
                }
                Err(_) => None,
            };
        }
    }
}

/// The running server, as the menu's commands need it.
struct Serving {
    service: LockService,
    /// The status page's URL.
    page: String,
}

/// What the menu's commands act on.
struct Control {
    /// The server once it runs (`None` before, or if it never does).
    service: watch::Receiver<Option<Serving>>,
    notifier: Notifier,
    config_path: PathBuf,
    /// Asks [`usable_config`] to read the config file again.
    recheck: Arc<Notify>,
    /// The "Keep awake while jobs are held" switch.
    keep_awake: watch::Sender<bool>,
}

/// Carries out the menu's commands until shutdown.
async fn serve_commands(
    control: Control,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shutdown: CancellationToken,
) {
    let Control {
        service,
        notifier,
        config_path,
        recheck,
        keep_awake,
    } = control;
    loop {
        let command = tokio::select! {
            c = commands.recv() => c,
            _ = shutdown.cancelled() => return,
        };
        match command {
            None => return,
            Some(Command::ForceRelease(job)) => {
                // The engine logs and publishes ForceReleased; the watcher notifies.
                let Some(service) = service.borrow().as_ref().map(|s| s.service.clone()) else {
                    continue;
                };
                // A click racing with Quit must not wait for a write the closing store may not
                // make. `biased` polls the release first, so the change itself is always made
                // (on the first poll); only the wait for the disk is given up.
                tokio::select! {
                    biased;
                    freed = service.force_release(&job) => if freed.is_none() {
                        tracing::info!(job, "force release: the job was already free");
                    },
                    _ = shutdown.cancelled() => return,
                }
            }
            Some(Command::PauseNotifications(paused)) => notifier.set_paused(paused),
            Some(Command::KeepAwake(on)) => {
                tracing::info!(on, "keep awake while jobs are held");
                keep_awake.send_replace(on);
            }
            // Not awaited here: `xdg-open` may only return when the editor it started exits.
            Some(Command::OpenConfig) => {
                tokio::spawn(open_config(config_path.clone(), notifier.clone()));
            }
            Some(Command::CheckConfig) => recheck.notify_one(),
            Some(Command::OpenStatusPage) => match service.borrow().as_ref() {
                Some(serving) => {
                    tokio::spawn(open_page(serving.page.clone(), notifier.clone()));
                }
                None => tracing::warn!("no status page: the server is not running"),
            },
            Some(Command::StartAtLogin(enabled)) => {
                // Writes a file or two; keep it off the runtime's worker threads.
                let result =
                    tokio::task::spawn_blocking(move || platform::set_start_at_login(enabled))
                        .await
                        .unwrap_or_else(|e| Err(anyhow::anyhow!("login item task failed: {e}")));
                match result {
                    Ok(()) => tracing::info!(enabled, "start at login"),
                    Err(err) => {
                        tracing::error!("cannot change start at login: {err:#}");
                        notifier.alert(Message {
                            title: "Start at login not changed".into(),
                            body: format!("{err:#}"),
                        });
                    }
                }
            }
        }
    }
}

/// Opens the config file in the user's editor, creating a commented default first. A failure
/// (no opener, or the opener exiting non-zero, e.g. `xdg-open` finding no app) is logged and
/// notified: a click that silently does nothing is the worst outcome.
async fn open_config(path: PathBuf, notifier: Notifier) {
    let result = match config::init_file(&path) {
        Ok(_) => run_opener(platform::open_command(&path)).await,
        Err(err) => Err(format!("cannot create it: {err}")),
    };
    if let Err(why) = result {
        tracing::error!("cannot open {}: {why}", path.display());
        notifier.alert(Message {
            title: "Cannot open the config file".into(),
            body: format!("{why}. Open {} in a text editor.", path.display()),
        });
    }
}

/// Opens the status page in the default browser; a failure is logged and notified.
async fn open_page(url: String, notifier: Notifier) {
    if let Err(why) = run_opener(platform::browse_command(&url)).await {
        tracing::error!("cannot open {url}: {why}");
        notifier.alert(Message {
            title: "Cannot open the status page".into(),
            body: format!("{why}. Open {url} in a browser."),
        });
    }
}

/// How much of the opener's stderr is kept for the message: its last line is what matters.
const STDERR_TAIL: usize = 4096;

/// Runs the platform's opener (`command`, from [`platform::open_command`] or
/// [`platform::browse_command`]) and waits for its verdict.
async fn run_opener(command: std::process::Command) -> Result<(), String> {
    let opener = platform::OPENER;
    let mut command = tokio::process::Command::from(command);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {opener}: {e}"))?;
    // Read to the end even after the opener is gone: it may hand this pipe on to the editor or
    // browser it starts, which must never block (or die of SIGPIPE) writing to it.
    let mut tail = tokio::spawn(read_tail(child.stderr.take()));
    let status = child
        .wait()
        .await
        .map_err(|e| format!("cannot wait for {opener}: {e}"))?;
    if status.success() {
        return Ok(());
    }
    // A failed opener has normally started nothing that keeps its stderr open; if it did, the
    // message does without it rather than wait for that program to end.
    let said = tokio::time::timeout(Duration::from_secs(2), &mut tail)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    Err(platform::open_failure(status, &said).unwrap_or_else(|| format!("{opener} failed")))
}

/// Everything `pipe` yields until it closes, keeping only the last [`STDERR_TAIL`] bytes.
async fn read_tail(pipe: Option<tokio::process::ChildStderr>) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let (mut kept, mut chunk) = (Vec::new(), [0u8; 1024]);
    while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
        kept.extend_from_slice(&chunk[..n]);
        let excess = kept.len().saturating_sub(STDERR_TAIL);
        kept.drain(..excess);
    }
    kept
}
