//! Runtime wiring for the lock server: bind, load and restore the saved state, start the lock
//! service (its timer and writer), serve the API and the status page ([`app`]), shut down.
//!
//! `foolock serve` and the desktop agent both call [`Server::open`] and [`Server::run`], so they
//! serve exactly the same API.

mod connections;

use crate::api::auth::Auth;
use crate::api::{self, AppState};
use crate::config::{self, Config};
use crate::engine::{Engine, Restored};
use crate::service::{LockService, Running};
use crate::store::{Batching, Loaded, Store};
use crate::time::{Clock, SystemClock};
use crate::web::{self, ServerInfo, WebState};
use anyhow::Context;
use axum::Router;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A bound, not yet serving, lock server.
pub struct Server {
    listener: TcpListener,
    running: Running,
    max_wait: Duration,
    auth: Auth,
    metrics: bool,
}

impl Server {
    /// Loads the saved state, starts the lock service for `config` and binds its address:
    /// everything `foolock serve` and the agent need before serving. A state directory that
    /// cannot be written is an error; one another foolock uses is [`StoreError::InUse`]
    /// (findable with `downcast_ref`).
    ///
    /// [`StoreError::InUse`]: crate::store::StoreError::InUse
    pub async fn open(config: &Config) -> anyhow::Result<Server> {
        // Lock the state directory before binding: a second foolock for the same directory
        // (and so, usually, the same port) is then told "already running", not "port in use",
        // and the agent can bow out quietly. The writer only starts once both succeeded.
        let dir = match &config.state_dir {
            Some(dir) => dir.clone(),
            None => config::default_state_dir()
                .context("cannot find a data directory for saved state; set state_dir")?,
        };
        let (store, loaded) =
            tokio::task::spawn_blocking(move || Store::open(&dir, Batching::default()))
                .await
                .context("state loader failed")??;
        let listener = listen(config).await?;
        let clock = Arc::new(SystemClock);
        let engine = restore(config, &store, loaded, clock.now());
        let running = LockService::start(engine, clock, Some(store));
        // Save at once: a quarantine must outlive a crash, and this proves the disk works.
        running.service().save().await;
        let auth = Auth::new(config.auth_token.as_ref());
        if auth.is_required() {
            tracing::info!("requests need the access token (all but /healthz)");
        }
        Ok(Server {
            listener,
            running,
            max_wait: config.max_wait,
            auth,
            metrics: config.metrics,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn service(&self) -> &LockService {
        self.running.service()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight requests
    /// finish (event streams end at once), and stops the service (its final state write
    /// included).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let service = self.running.service().clone();
        let info = ServerInfo::starting_now(reachable_addrs(self.listener.local_addr()?));
        let web = WebState::new(service.clone(), info, self.metrics);
        let log = tokio::spawn(
            web.log
                .clone()
                .run(shutdown.clone(), Some(service.waiters_changed())),
        );
        let api = AppState {
            service,
            max_wait: self.max_wait,
            shutdown: shutdown.clone(),
        };
        let app = app(api, web.clone(), &self.auth);
        let limits =
            connections::Limits::for_open_files(crate::platform::socket::raise_open_file_limit());
        tracing::debug!(?limits, "connection limits");
        connections::serve(self.listener, app, limits, web.metrics, shutdown.clone()).await;
        shutdown.cancel();
        let _ = log.await;
        self.running.shutdown().await;
        Ok(())
    }
}

/// Everything the server answers: the API, the status page and its event stream, and (if
/// on) the metrics, behind the access token check (if a token is configured), behind (if on)
/// the metrics' timing and counting, which is outermost so that it also times and counts the
/// replies of the layers inside it (401s included). Requests must carry their peer address
/// (an [`api::Peer`]): the admin rule reads it.
pub(crate) fn app(api: AppState, web: WebState, auth: &Auth) -> App {
    // No timeout layer: only requests that wait (`wait=`, the disk) can be slow, and the API
    // bounds those itself (`api::REQUEST_SLACK`), without a timer for every other request.
    let app = auth.protect(api::router(api).merge(web::router(web.clone())));
    web::metrics::Track::new(app, web.serve_metrics.then_some(web.metrics))
}

/// The whole app as [`app`] builds it: a router inside the metrics' timing.
pub(crate) type App = web::metrics::Track<Router>;

/// Binds the configured address. A port in use is a clear error, not a panic.
async fn listen(config: &Config) -> anyhow::Result<TcpListener> {
    TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))
}

/// The engine as the state directory left it (decided by [`Engine::after_restart`]), and a
/// log line saying which.
fn restore(config: &Config, store: &Store, loaded: Loaded, now: crate::time::Now) -> Engine {
    let (engine, restored) = Engine::after_restart(config.rules(), loaded.found, now);
    let path = store.path();
    match restored {
        Restored::Fresh => {
            tracing::info!(path = %path.display(), "no saved state; starting fresh");
        }
        Restored::Saved { leases, skipped } => {
            if skipped > 0 {
                tracing::warn!(skipped, "ignored invalid entries in the saved state");
            }
            tracing::info!(
                path = %path.display(),
                leases,
                last_token = engine.last_token(),
                "restored saved state"
            );
        }
        Restored::Quarantined { length } => {
            let (reason, moved_to) = loaded
                .lost
                .map_or((String::new(), None), |lost| (lost.reason, lost.moved_to));
            let moved =
                moved_to.map_or(String::new(), |to| format!(" (moved to {})", to.display()));
            tracing::error!(
                path = %path.display(),
                "saved state is unusable: {reason}{moved}; refusing new grants for {} so that \
                 leases it may have held can run out",
                crate::time::Compact(length)
            );
        }
    }
    // Only a corrupt or hostile state file gets here; say so now rather than at the last grant.
    let left = u64::MAX - engine.last_token();
    if left < TOKENS_LEFT_WARNING {
        tracing::error!(
            path = %path.display(),
            last_token = engine.last_token(),
            "fencing tokens are nearly used up: {left} left; then only renewals are served. \
             The saved token counter is far beyond any real use: check the state file"
        );
    }
    engine
}

/// Fewer fencing tokens left than this at start is worth an error in the log.
const TOKENS_LEFT_WARNING: u64 = 1 << 32;

/// Cancels `token` on SIGINT or SIGTERM.
pub async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
        _ = token.cancelled() => return,
    }
    tracing::info!("shutting down");
    token.cancel();
}

/// The line `foolock serve` and the agent print first: where they listen and where other
/// devices should point their clients. Scripts and tests read the address from its start
/// (`foolock listening on ADDR;`). Bound to loopback, it says that only this machine can
/// connect, and how to let the LAN in, rather than send other devices to 127.0.0.1.
pub fn announcement(bound: SocketAddr) -> String {
    if bound.ip().is_loopback() {
        return format!(
            "foolock listening on {bound}; only this machine can connect (to let other devices \
             in, listen on the LAN: --listen :{port}, or listen = \":{port}\" in the config file)",
            port = bound.port()
        );
    }
    let urls: Vec<String> = reachable_addrs(bound)
        .iter()
        .filter(|a| !a.ip().is_loopback())
        .map(|a| format!("http://{a}"))
        .collect();
    if urls.is_empty() {
        return format!(
            "foolock listening on {bound}; this machine has no network address other devices \
             could use yet (only this machine can connect for now)"
        );
    }
    format!(
        "foolock listening on {bound}; other devices can use {}",
        urls.join(", ")
    )
}

/// The status page's address for a browser on this machine: loopback when the server listens
/// on every address (so the page also offers this machine's admin controls), else `bound`.
pub fn local_page_url(bound: SocketAddr) -> String {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/", SocketAddr::new(ip, bound.port()))
}

/// The addresses to reach a server bound to `bound` at: the machine's non-loopback IPv4
/// addresses when bound to the unspecified address (127.0.0.1 if it has none), else `bound`.
pub(crate) fn reachable_addrs(bound: SocketAddr) -> Vec<SocketAddr> {
    if !bound.ip().is_unspecified() {
        return vec![bound];
    }
    let mut addrs: Vec<SocketAddr> = interface_addrs()
        .into_iter()
        .filter(|ip| !ip.is_loopback() && (bound.is_ipv6() || ip.is_ipv4()))
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80))
        .map(|ip| SocketAddr::new(ip, bound.port()))
        .collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        addrs.push(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), bound.port()));
    }
    addrs
}

/// Every address configured on this machine's interfaces.
#[cfg(unix)]
fn interface_addrs() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free exactly once.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null() && (ifa.ifa_flags & libc::IFF_UP as libc::c_uint) != 0 {
                match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        out.push(IpAddr::from(
                            u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                        ));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

#[cfg(not(unix))]
fn interface_addrs() -> Vec<IpAddr> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_bind_address_is_reported_as_is() {
        let a: SocketAddr = "192.168.1.20:9999".parse().unwrap();
        assert_eq!(reachable_addrs(a), vec![a]);
    }

    #[test]
    fn the_local_page_url_uses_loopback_for_an_unspecified_bind() {
        let url = |a: &str| local_page_url(a.parse().unwrap());
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080/");
        assert_eq!(url("[::]:8080"), "http://[::1]:8080/");
        assert_eq!(url("192.168.1.20:9000"), "http://192.168.1.20:9000/");
        assert_eq!(url("[fd00::2]:9000"), "http://[fd00::2]:9000/");
    }

    #[test]
    fn a_loopback_bind_never_sends_other_devices_to_127_0_0_1() {
        let a: SocketAddr = "127.0.0.1:9999".parse().unwrap();
        let line = announcement(a);
        assert!(
            line.starts_with("foolock listening on 127.0.0.1:9999;"),
            "{line}"
        );
        assert!(line.contains("only this machine can connect"), "{line}");
        assert!(line.contains("--listen :9999"), "{line}");
        assert!(!line.contains("http://127.0.0.1"), "{line}");
    }

    #[test]
    fn unspecified_bind_lists_non_loopback_ipv4_with_port() {
        let addrs = reachable_addrs("0.0.0.0:8080".parse().unwrap());
        for a in addrs {
            assert_eq!(a.port(), 8080);
            assert!(a.is_ipv4());
        }
    }
}
