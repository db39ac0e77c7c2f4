//! Prometheus metrics (`GET /metrics`, text format 0.0.4) through `prometheus-client`.
//!
//! Labels are bounded: outcomes, 4xx reasons, routes and methods come from fixed lists in
//! this file, never from job or client names or raw paths.
//!
//! Cost on the hot path (a renewal): the latency middleware reads the clock twice and
//! observes one pre-resolved histogram, whose counters are per thread (`super::histogram`);
//! grants, renewals, releases and expiries are counted by the event log from the service's
//! events, off the request path. Held jobs and waiters are read from the service only when
//! scraped.

use super::WebState;
use super::histogram::ShardedHistogram;
use crate::api::{ErrorReason, Refusal};
use crate::engine::EventKind;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;
use tower::Service;

/// What happened to a lock request or lease. Grants are `granted` (the job was free) plus
/// `taken_over` (a lapsed lease was replaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Granted,
    Renewed,
    /// Refused: held by another client.
    Conflict,
    /// Refused: the lease is in its grace period, reserved for its holder.
    GraceRefused,
    Released,
    TakenOver,
    ForceReleased,
    Expired,
}

impl Outcome {
    const ALL: [Outcome; 8] = [
        Outcome::Granted,
        Outcome::Renewed,
        Outcome::Conflict,
        Outcome::GraceRefused,
        Outcome::Released,
        Outcome::TakenOver,
        Outcome::ForceReleased,
        Outcome::Expired,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Granted => "granted",
            Outcome::Renewed => "renewed",
            Outcome::Conflict => "conflict",
            Outcome::GraceRefused => "grace_refused",
            Outcome::Released => "released",
            Outcome::TakenOver => "taken_over",
            Outcome::ForceReleased => "force_released",
            Outcome::Expired => "expired",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// The route a request is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Route {
    Lock,
    Locks,
    Healthz,
    Page,
    Assets,
    Events,
    Metrics,
    ForceRelease,
    Other,
}

impl Route {
    const COUNT: usize = 9;

    fn of(path: &str) -> Route {
        match path {
            "/lock" => Route::Lock,
            "/locks" => Route::Locks,
            "/healthz" => Route::Healthz,
            "/" => Route::Page,
            super::page::CSS_PATH | super::page::JS_PATH | super::page::ICON_PATH => Route::Assets,
            "/events" => Route::Events,
            "/metrics" => Route::Metrics,
            "/admin/force-release" => Route::ForceRelease,
            _ => Route::Other,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Route::Lock => "/lock",
            Route::Locks => "/locks",
            Route::Healthz => "/healthz",
            Route::Page => "/",
            Route::Assets => "assets",
            Route::Events => "/events",
            Route::Metrics => "/metrics",
            Route::ForceRelease => "/admin/force-release",
            Route::Other => "other",
        }
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// The methods the API uses; anything else is `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Verb {
    Get,
    Post,
    Delete,
    Other,
}

impl Verb {
    const COUNT: usize = 4;

    fn of(method: &Method) -> Verb {
        match *method {
            Method::GET | Method::HEAD => Verb::Get,
            Method::POST => Verb::Post,
            Method::DELETE => Verb::Delete,
            _ => Verb::Other,
        }
    }
}

impl EncodeLabelValue for Verb {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Delete => "DELETE",
            Verb::Other => "other",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: Route,
    method: Verb,
}

/// Request latency buckets in seconds: renewals take well under a millisecond, a long-poll
/// up to the server's `max_wait`.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 300.0,
];

/// The request latency histogram: per-thread counters, so workers do not share a lock.
type Latency = ShardedHistogram<{ LATENCY_BUCKETS.len() }>;

/// A cheap, cloneable handle to the metrics.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    outcomes: [Counter; Outcome::ALL.len()],
    client_errors: Family<ReasonLabels, Counter>,
    latency: Family<RouteLabels, Latency, fn() -> Latency>,
    /// Histograms resolved once per route and method, so a request does not hash its labels.
    latency_by_route: [[OnceLock<Latency>; Verb::COUNT]; Route::COUNT],
    held_jobs: Gauge,
    waiters: Gauge,
    connections: Gauge,
    subscribers: Gauge,
    events_missed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::default();
        let outcomes_family = Family::<OutcomeLabels, Counter>::default();
        // Every outcome from the start, so rates work from the first scrape.
        let outcomes = Outcome::ALL.map(|outcome| {
            outcomes_family
                .get_or_create(&OutcomeLabels { outcome })
                .clone()
        });
        registry.register(
            "foolock_lock_outcomes",
            "Lock requests and lease changes by outcome (grants are granted + taken_over)",
            outcomes_family,
        );
        let client_errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "foolock_http_client_errors",
            "Requests answered with a 4xx status, by reason (401s are reason=\"unauthorized\")",
            client_errors.clone(),
        );
        let latency = Family::<RouteLabels, Latency, fn() -> Latency>::new_with_constructor(|| {
            Latency::new(LATENCY_BUCKETS)
        });
        registry.register(
            "foolock_http_request_duration_seconds",
            "Time from request to response head, by route and method",
            latency.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let held_jobs = gauge(
            &mut registry,
            "foolock_held_jobs",
            "Jobs held or in their grace period",
        );
        let waiters = gauge(
            &mut registry,
            "foolock_waiters",
            "Clients waiting for a job (POST /lock?wait=)",
        );
        let connections = gauge(
            &mut registry,
            "foolock_open_connections",
            "Open HTTP connections",
        );
        let subscribers = gauge(
            &mut registry,
            "foolock_sse_subscribers",
            "Open /events streams",
        );
        let events_missed = Counter::default();
        registry.register(
            "foolock_events_missed",
            "Lock events the event log missed because it fell behind (it then resynchronised)",
            events_missed.clone(),
        );
        registry.register(
            "foolock_build",
            "The running version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                outcomes,
                client_errors,
                latency,
                latency_by_route: Default::default(),
                held_jobs,
                waiters,
                connections,
                subscribers,
                events_missed,
            }),
        }
    }

    pub fn outcome(&self, outcome: Outcome, n: u64) {
        let i = Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .expect("ALL lists every outcome");
        self.inner.outcomes[i].inc_by(n);
    }

    /// Counts `n` lock events of `kind` (the event log calls this).
    pub fn lock_event(&self, kind: &EventKind, n: u64) {
        let outcome = match kind {
            EventKind::Acquired => Outcome::Granted,
            EventKind::Renewed => Outcome::Renewed,
            EventKind::Released => Outcome::Released,
            EventKind::ForceReleased => Outcome::ForceReleased,
            EventKind::Expired => Outcome::Expired,
            EventKind::TakenOver { .. } => Outcome::TakenOver,
        };
        self.outcome(outcome, n);
    }

    pub fn events_missed(&self, n: u64) {
        self.inner.events_missed.inc_by(n);
    }

    /// Counts an open `/events` stream while the guard lives.
    pub fn sse_subscriber(&self) -> SubscriberGuard {
        self.inner.subscribers.inc();
        SubscriberGuard(self.inner.subscribers.clone())
    }

    /// Counts one response: its latency, and its reason if it is a 4xx.
    fn response(&self, route: Route, verb: Verb, started: Instant, response: &Response) {
        let slot = &self.inner.latency_by_route[route as usize][verb as usize];
        slot.get_or_init(|| {
            self.inner
                .latency
                .get_or_create(&RouteLabels {
                    route,
                    method: verb,
                })
                .clone()
        })
        .observe(started.elapsed());
        match response.extensions().get::<Refusal>() {
            Some(Refusal::Held) => self.outcome(Outcome::Conflict, 1),
            Some(Refusal::Grace) => self.outcome(Outcome::GraceRefused, 1),
            None => {}
        }
        let status = response.status();
        if status.is_client_error() {
            let reason = response
                .extensions()
                .get::<ErrorReason>()
                .map_or_else(|| reason_for(status), |r| r.0);
            self.inner
                .client_errors
                .get_or_create(&ReasonLabels { reason })
                .inc();
        }
    }

    /// Counts a 4xx that the accept loop answered before the request reached the app (a head
    /// that timed out or was too large, a URI too long), under the reason its status gives.
    pub(crate) fn refused_before_routing(&self, status: StatusCode) {
        self.inner
            .client_errors
            .get_or_create(&ReasonLabels {
                reason: reason_for(status),
            })
            .inc();
    }

    /// The text exposition, with the gauges read from the service just now.
    pub fn encode(&self, held_jobs: usize, waiters: usize) -> String {
        self.inner
            .held_jobs
            .set(i64::try_from(held_jobs).unwrap_or(i64::MAX));
        self.inner
            .waiters
            .set(i64::try_from(waiters).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.inner.registry);
        out
    }

    /// Counts an open connection while the guard lives (the server's accept loop holds one
    /// per connection).
    pub fn open_connection(&self) -> ConnectionGuard {
        self.inner.connections.inc();
        ConnectionGuard(self.inner.connections.clone())
    }
}

/// A 4xx reason from the status alone.
fn reason_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        _ => "other",
    }
}

/// Decrements the SSE subscriber gauge when dropped.
#[derive(Debug)]
pub struct SubscriberGuard(Gauge);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Times every request and counts 4xx replies and refusals: `Track::new(app, metrics)`, around
/// the whole app rather than as a `Router::layer`, which would wrap every route on its own and
/// so clone one more boxed service and box one more future for every request. With no metrics
/// (`metrics = false`) it only passes requests on.
#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    /// Cloned for every request (the app, then its timing): see [`Track::for_connection`].
    metrics: Option<Arc<Metrics>>,
}

impl<S> Track<S> {
    pub fn new(inner: S, metrics: Option<Metrics>) -> Track<S> {
        Track {
            inner,
            metrics: metrics.map(Arc::new),
        }
    }

    /// A copy for one connection, with a metrics handle of its own: the handle is cloned for
    /// every request, and one shared by all connections would have both workers update its
    /// reference count, one cache line, for every request.
    pub fn for_connection(&self) -> Track<S>
    where
        S: Clone,
    {
        Track {
            inner: self.inner.clone(),
            metrics: self.metrics.as_deref().cloned().map(Arc::new),
        }
    }
}

impl<S> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Tracked<S::Future> {
        let timing = self.metrics.as_ref().map(|metrics| Timing {
            metrics: metrics.clone(),
            route: Route::of(request.uri().path()),
            verb: Verb::of(request.method()),
            started: Instant::now(),
        });
        Tracked {
            inner: self.inner.call(request),
            timing,
        }
    }
}

/// What [`Tracked`] needs to count a response.
struct Timing {
    metrics: Arc<Metrics>,
    route: Route,
    verb: Verb,
    started: Instant,
}

/// A request's future, counted when it yields its response.
pub struct Tracked<F> {
    inner: F,
    timing: Option<Timing>,
}

impl<F, E> Future for Tracked<F>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let result = std::task::ready!(Pin::new(&mut this.inner).poll(cx));
        if let (Ok(response), Some(t)) = (&result, &this.timing) {
            t.metrics.response(t.route, t.verb, t.started, response);
        }
        Poll::Ready(result)
    }
}

/// `GET /metrics`.
pub async fn scrape(State(web): State<WebState>) -> Response {
    let (held, waiters) = web
        .service
        .with_engine(|engine, _| (engine.live_jobs(), engine.waiting()));
    let body = web.metrics.encode(held, waiters);
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        body,
    )
        .into_response()
}

/// Decrements the open connection gauge when dropped.
#[derive(Debug)]
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
