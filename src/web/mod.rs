//! What a browser or a monitoring system sees: the status page (`GET /`), its event stream
//! (`GET /events`, Server-Sent Events) and Prometheus metrics (`GET /metrics`).
//!
//! - [`log`]: numbers the lock service's events, keeps a bounded ring of them for clients that
//!   reconnect, and mirrors the table they describe (what the page and snapshots show).
//! - [`sse`]: the `/events` handler over a [`log::Subscription`].
//! - [`page`]: the server-rendered page and its embedded assets. Its "Force release" posts to
//!   the API's `/admin/force-release` (see [`crate::api::admin`], whose rule it shares).
//! - [`metrics`]: the Prometheus registry, the latency/4xx middleware and the connection count.
//!
//! Everything here only reads the lock service and subscribes to its events. Nothing here can
//! slow the service down: every buffer between them is bounded and a subscriber that falls
//! behind is resynchronised from a snapshot instead of being waited for.

mod histogram;
pub mod log;
pub mod metrics;
pub mod page;
pub mod sse;

#[cfg(test)]
mod tests;

use crate::service::LockService;
use axum::Router;
use axum::routing::get;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

pub use log::EventLog;
pub use metrics::Metrics;

/// Paths served without the access token when one is configured: the page (which shows no
/// locks to a caller without it, and asks for it) and its assets. `/events` and `/metrics`
/// need the token.
pub const PUBLIC_PATHS: [&str; 4] = ["/", page::CSS_PATH, page::JS_PATH, page::ICON_PATH];

/// Everything the page, the stream and the metrics need.
#[derive(Clone)]
pub struct WebState {
    pub service: LockService,
    pub log: EventLog,
    pub metrics: Metrics,
    /// Whether `/metrics` is served (config `metrics`); when not, it is a 404 and the server
    /// installs no metrics middleware.
    pub serve_metrics: bool,
}

impl WebState {
    /// Subscribes a new event log to `service` (call [`EventLog::run`] on `log` to feed it).
    pub fn new(service: LockService, info: ServerInfo, serve_metrics: bool) -> WebState {
        let metrics = Metrics::new();
        let log = EventLog::new(&service, info, metrics.clone());
        WebState {
            service,
            log,
            metrics,
            serve_metrics,
        }
    }
}

/// What the page says about the server itself.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// Where other devices can reach the server (see [`crate::server::reachable_addrs`]).
    pub addrs: Vec<SocketAddr>,
    pub version: &'static str,
    /// When the server started, on the wall clock (for display) and monotonic (for uptime,
    /// which a wall-clock change must not move).
    pub started_at: SystemTime,
    pub started: Instant,
}

impl ServerInfo {
    /// A server reachable at `addrs`, starting now.
    pub fn starting_now(addrs: Vec<SocketAddr>) -> ServerInfo {
        ServerInfo {
            addrs,
            version: env!("CARGO_PKG_VERSION"),
            started_at: SystemTime::now(),
            started: Instant::now(),
        }
    }
}

/// The page, its assets, the event stream and (if on) the metrics. Meant to be merged into the
/// API's router; it has no fallback of its own.
pub fn router(state: WebState) -> Router {
    let router = Router::new()
        .route(
            "/",
            get(page::status_page).fallback(page::method_not_allowed),
        )
        .route(page::CSS_PATH, get(page::css))
        .route(page::JS_PATH, get(page::js))
        .route(page::ICON_PATH, get(page::icon))
        .route(
            "/events",
            get(sse::events).fallback(page::method_not_allowed),
        );
    let router = if state.serve_metrics {
        router.route(
            "/metrics",
            get(metrics::scrape).fallback(page::method_not_allowed),
        )
    } else {
        router
    };
    router.with_state(state)
}
