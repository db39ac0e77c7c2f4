//! What a browser or a monitoring system sees: the status page (`GET /`), its event stream
//! (`GET /events`, Server-Sent Events), Prometheus metrics (`GET /metrics`) and the page's
//! "Force release" (`POST /force-release`).
//!
//! - [`log`]: numbers the lock service's events, keeps a bounded ring of them for clients that
//!   reconnect, and mirrors the table they describe (what the page and snapshots show).
//! - [`sse`]: the `/events` handler over a [`log::Subscription`].
//! - [`page`]: the server-rendered page, its embedded assets and the force-release handler.
//! - [`access`]: who may force-release (the rule the CLI shares).
//! - [`metrics`]: the Prometheus registry, the latency/4xx middleware and the connection count.
//!
//! Everything here only reads the lock service and subscribes to its events, except the
//! force release, which calls the service like the tray's menu item does. Nothing here can
//! slow the service down: every buffer between them is bounded and a subscriber that falls
//! behind is resynchronised from a snapshot instead of being waited for.

pub mod access;
pub mod log;
pub mod metrics;
pub mod page;
pub mod sse;

#[cfg(test)]
mod tests;

use crate::service::LockService;
use axum::Router;
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

pub use log::EventLog;
pub use metrics::Metrics;

/// Everything the page, the stream and the metrics need.
#[derive(Clone)]
pub struct WebState {
    pub service: LockService,
    pub log: EventLog,
    pub metrics: Metrics,
}

impl WebState {
    /// Subscribes a new event log to `service` (call [`EventLog::run`] on `log` to feed it).
    pub fn new(service: LockService, info: ServerInfo) -> WebState {
        let metrics = Metrics::new();
        let log = EventLog::new(&service, info, metrics.clone());
        WebState {
            service,
            log,
            metrics,
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

/// The page, its assets, the event stream, the metrics and the force release. Meant to be
/// merged into the API's router; it has no fallback of its own.
pub fn router(state: WebState) -> Router {
    Router::new()
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
        )
        .route(
            "/metrics",
            get(metrics::scrape).fallback(page::method_not_allowed),
        )
        .route(
            "/force-release",
            post(page::force_release).fallback(page::method_not_allowed),
        )
        .with_state(state)
}
