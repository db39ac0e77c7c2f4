//! The agent's background half: a tokio runtime on its own thread running exactly the server
//! `foolock serve` runs, plus the bridge to the UI (job snapshots out, menu commands in) and
//! notifications.
//!
//! A failed bind does not end the runtime: the UI keeps showing the error so the user can open
//! the config file or quit, and the runtime lives until the shutdown token is cancelled.

use super::menu::Listening;
use super::notifications::{Message, Notifier};
use super::{Command, UserEvent};
use crate::config::{self, Config};
use crate::platform;
use crate::server::{self, Server};
use crate::service::LockService;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Instant;
use tao::event_loop::EventLoopProxy;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

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
    config: Config,
    config_path: PathBuf,
    links: Links,
    shutdown: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("foolock-runtime".into())
        .spawn(move || {
            let proxy = links.proxy.clone();
            match tokio::runtime::Runtime::new() {
                Ok(rt) => rt.block_on(main(config, config_path, links, shutdown)),
                Err(err) => {
                    tracing::error!("cannot start the async runtime: {err}");
                    let why = format!("Cannot start: {err}");
                    let _ = proxy.send_event(UserEvent::Listening(Listening::Failed(why)));
                }
            }
            let _ = proxy.send_event(UserEvent::Stopped);
        })
}

async fn main(config: Config, config_path: PathBuf, links: Links, shutdown: CancellationToken) {
    let Links {
        proxy,
        commands,
        alarm,
    } = links;
    tokio::spawn(server::cancel_on_signal(shutdown.clone()));
    tokio::spawn(ring_alarm(alarm, proxy.clone(), shutdown.clone()));
    let notifier = Notifier::new(config.notifications.clone());
    let server = match Server::open(&config).await {
        Ok(server) => server,
        Err(err) => {
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
            serve_commands(None, &notifier, &config_path, commands, &shutdown).await;
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
    let watcher = tokio::spawn(watch_jobs(
        service.clone(),
        notifier.clone(),
        proxy.clone(),
        shutdown.clone(),
    ));
    let control = tokio::spawn({
        let (notifier, shutdown) = (notifier.clone(), shutdown.clone());
        async move {
            serve_commands(Some(&service), &notifier, &config_path, commands, &shutdown).await;
        }
    });
    if let Err(err) = server.run(shutdown.clone()).await {
        tracing::error!("{err:#}");
    }
    shutdown.cancel();
    let _ = watcher.await;
    let _ = control.await;
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

/// Carries out the menu's commands until shutdown. `service` is `None` when the server could
/// not start (there is nothing to release then).
async fn serve_commands(
    service: Option<&LockService>,
    notifier: &Notifier,
    config_path: &std::path::Path,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shutdown: &CancellationToken,
) {
    loop {
        let command = tokio::select! {
            c = commands.recv() => c,
            _ = shutdown.cancelled() => return,
        };
        match command {
            None => return,
            Some(Command::ForceRelease(job)) => {
                // The engine logs and publishes ForceReleased; the watcher notifies.
                let Some(service) = service else { continue };
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
            Some(Command::OpenConfig) => open_config(config_path).await,
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
                        notifier.post(Message {
                            title: "Start at login not changed".into(),
                            body: format!("{err:#}"),
                        });
                    }
                }
            }
        }
    }
}

/// Opens the config file in the user's editor, creating a commented default first.
async fn open_config(path: &std::path::Path) {
    if let Err(err) = config::init_file(path) {
        tracing::error!("cannot create {}: {err}", path.display());
        return;
    }
    let opener = platform::OPENER;
    match tokio::process::Command::from(platform::open_command(path)).spawn() {
        // Reap it in the background; its exit status means nothing to us.
        Ok(mut child) => {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        Err(err) => tracing::error!("cannot run {opener} to open {}: {err}", path.display()),
    }
}
