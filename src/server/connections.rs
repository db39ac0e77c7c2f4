//! The accept loop: every connection is served by hyper in a task of its own, within limits
//! that keep a misbehaving or hostile client on the LAN from taking the server down.
//!
//! - A request head must arrive within [`Limits::header_timeout`] (and an idle kept-alive
//!   connection is closed after as long): the client gets a 408 and the connection closes.
//! - A head larger than [`MAX_HEAD`] gets 431, a URI longer than [`MAX_URI`] 414.
//! - At most [`Limits::max_connections`] connections are open, well under the open-file limit.
//!   At the cap, a new connection takes the place of the oldest one that has no request being
//!   served (idle, or stalled in its head): a flood of stalled connections cannot lock out the
//!   renewals of well-behaved clients, which send a whole request at once. Only when every
//!   connection is busy is a new one refused, at once.
//! - Shutdown is bounded: connections get [`Limits::shutdown_grace`] to finish what they are
//!   serving, then the rest are cut.
//!
//! Nothing here blocks: each connection lives in its own task, and the registry's lock is held
//! only for map updates.

use super::App;
use crate::api::{ApiError, Peer};
use crate::platform::socket::{PeerSocket, send_now};
use crate::web::Metrics;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The largest request head (request line and headers) read; larger gets 431.
pub const MAX_HEAD: usize = 16 * 1024;
/// The longest request URI; longer gets 414. Two names of 256 bytes, percent-encoded, fit
/// several times over.
pub const MAX_URI: usize = 8 * 1024;

/// File descriptors kept free of connections: the state files, the log, the tray's own.
const RESERVED_FDS: u64 = 64;
/// The cap on connections however many files may be open.
const MAX_CONNECTIONS: usize = 4096;

/// The limits one server's connections live under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

impl Limits {
    /// Limits for a process that may have `open_files` files open (`None`: unknown). Half of
    /// what is left after a reserve goes to connections: a long-poll may use a second
    /// descriptor to watch its client.
    pub fn for_open_files(open_files: Option<u64>) -> Limits {
        let max_connections = open_files.map_or(MAX_CONNECTIONS, |n| {
            usize::try_from(n.saturating_sub(RESERVED_FDS) / 2)
                .unwrap_or(usize::MAX)
                .clamp(16, MAX_CONNECTIONS)
        });
        Limits {
            header_timeout: Duration::from_secs(10),
            max_connections,
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

/// What the accept loop knows of one open connection.
struct Entry {
    /// Requests being served on it.
    busy: Arc<AtomicUsize>,
    /// Closes it at once.
    ends: Ends,
}

/// The open connections, oldest first.
#[derive(Default)]
struct Registry {
    open: Mutex<BTreeMap<u64, Entry>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes room for one more connection under `cap`: closes the oldest one serving no
    /// request. False if every one is busy.
    fn make_room(&self, cap: usize) -> bool {
        let mut open = self.lock();
        if open.len() < cap {
            return true;
        }
        let idle = open
            .iter()
            .find(|(_, e)| e.busy.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id);
        match idle.and_then(|id| open.remove(&id)) {
            Some(entry) => {
                entry.ends.cut();
                true
            }
            None => false,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then closes every connection
/// within the grace period. Returns once all are closed. Open connections are counted in
/// `metrics`.
pub async fn serve(
    listener: TcpListener,
    app: App,
    limits: Limits,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let registry = Arc::new(Registry::default());
    let tracker = TaskTracker::new();
    let graceful = CancellationToken::new();
    let mut refusals = Refusals::default();
    let mut next_id = 0u64;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, most likely: let some close before trying again.
                    refusals.note(&format!("cannot accept a connection: {err}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        if !registry.make_room(limits.max_connections) {
            refusals.note(&format!(
                "refused a connection from {peer}: all {} connections are serving requests",
                limits.max_connections
            ));
            drop(stream);
            continue;
        }
        next_id += 1;
        let id = next_id;
        let entry = Entry {
            busy: Arc::new(AtomicUsize::new(0)),
            ends: Ends::under(&graceful),
        };
        let (busy, ends) = (entry.busy.clone(), entry.ends.clone());
        registry.lock().insert(id, entry);
        let (app, registry) = (app.clone(), registry.clone());
        let open = metrics.open_connection();
        let metrics = metrics.clone();
        tracker.spawn(async move {
            let _open = open;
            serve_connection(stream, peer, app, busy, limits, metrics, ends).await;
            registry.lock().remove(&id);
        });
    }
    drop(listener);
    tracker.close();
    graceful.cancel();
    if tokio::time::timeout(limits.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        let open: Vec<Entry> = std::mem::take(&mut *registry.lock())
            .into_values()
            .collect();
        tracing::info!(
            connections = open.len(),
            "closing connections still open after {}s",
            limits.shutdown_grace.as_secs_f64()
        );
        for entry in open {
            entry.ends.cut();
        }
        tracker.wait().await;
    }
}

/// How a connection is told to end: finish what it serves, or stop now (`cut`). Either
/// cancels `stop`, the one token a connection watches while it serves: its task polls every
/// token it waits on each time a request wakes it, and one costs half of two.
#[derive(Clone)]
struct Ends {
    /// Cancelled by either end; a child of the server's graceful shutdown.
    stop: CancellationToken,
    cut: CancellationToken,
}

impl Ends {
    /// The ends of a new connection of a server that shuts down with `graceful`.
    fn under(graceful: &CancellationToken) -> Ends {
        Ends {
            stop: graceful.child_token(),
            cut: CancellationToken::new(),
        }
    }

    fn cut(&self) {
        self.cut.cancel();
        self.stop.cancel();
    }
}

/// One connection, until it closes, is cut, or is asked to finish.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: App,
    busy: Arc<AtomicUsize>,
    limits: Limits,
    metrics: Metrics,
    Ends { stop, cut }: Ends,
) {
    let _ = stream.set_nodelay(true);
    let socket = peer_socket(&stream);
    let refusals = metrics.clone();
    let app = app.for_connection();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        // Checked here, where the metrics can be borrowed: the request's future would need a
        // handle of its own, one more count both workers write for every request.
        let too_long = uri_too_long(&request);
        if too_long {
            metrics.refused_before_routing(StatusCode::URI_TOO_LONG);
        }
        let (app, busy) = (app.clone(), busy.clone());
        async move {
            let _serving = Serving::start(busy);
            Ok::<_, Infallible>(if too_long {
                ApiError::UriTooLong(MAX_URI).into_response()
            } else {
                handle(app, request, peer, socket).await
            })
        }
    });
    let head = Arc::new(HeadDeadline::default());
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(HeadTimer(head.clone()))
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD)
        // Otherwise hyper reads the socket while each request is in flight, to notice a
        // hang-up; the request still holds the read buffer then, so every request allocated a
        // new 8 KiB one. Nothing needs hyper to notice: a waiting request watches its socket
        // itself, and the rest finish in moments, their reply failing if the client is gone.
        .half_close(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let watchdog = watchdog(head);
    tokio::pin!(watchdog);
    // Biased: the connection is polled first, so the watchdog sees the deadline of a head
    // hyper has just started waiting for.
    tokio::select! {
        biased;
        result = connection.as_mut() => {
            match result {
                Err(e) if e.is_timeout() => {
                    // The head did not arrive in time (or the connection sat idle): say so.
                    send_now(
                        socket,
                        b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
                    );
                    refusals.refused_before_routing(StatusCode::REQUEST_TIMEOUT);
                }
                // hyper answered it with 431 itself.
                Err(e) if e.is_parse_too_large() => {
                    refusals.refused_before_routing(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
                }
                _ => {}
            }
            return;
        }
        () = &mut watchdog => {}
        _ = stop.cancelled() => if cut.is_cancelled() {
            return;
        },
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        biased;
        _ = connection => {}
        () = &mut watchdog => {}
        _ = cut.cancelled() => {}
    }
}

/// The deadline of the request head hyper is waiting for on one connection, if any, as
/// nanoseconds after `base` plus one (0: none).
struct HeadDeadline {
    base: Instant,
    due: AtomicU64,
}

impl Default for HeadDeadline {
    fn default() -> Self {
        HeadDeadline {
            base: Instant::now(),
            due: AtomicU64::new(0),
        }
    }
}

impl HeadDeadline {
    fn encode(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX - 1)
            + 1
    }

    fn get(&self) -> Option<Instant> {
        match self.due.load(Ordering::Relaxed) {
            0 => None,
            n => Some(self.base + Duration::from_nanos(n - 1)),
        }
    }
}

/// hyper's header read timeout without a tokio timer per request. hyper asks its timer for a
/// new sleep each time it starts reading a request head and drops it once the head is in; on
/// a kept-alive connection the next head is not there yet, so with tokio's timer every request
/// added an entry to the timer wheel and removed it again (about a thousand instructions, more
/// than the rest of reading the head). Here a head's sleep only records its deadline and says
/// whether it has passed; the connection's one [`watchdog`] timer wakes the connection at that
/// deadline, and is re-armed only when it fires: about once per `header_timeout`, not per
/// request.
#[derive(Clone)]
struct HeadTimer(Arc<HeadDeadline>);

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HeadSleep {
            deadline,
            due: self.0.encode(deadline),
            head: self.0.clone(),
            polled: false,
        })
    }
}

/// One head's timeout: ready once its deadline has passed. Polled by hyper on the
/// connection's task, which the [`watchdog`] wakes at the deadline.
struct HeadSleep {
    deadline: Instant,
    /// `deadline` as `HeadDeadline` records it.
    due: u64,
    head: Arc<HeadDeadline>,
    polled: bool,
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let this = self.get_mut();
        // hyper polls a head's sleep first as it makes it, one header timeout before its
        // deadline: only later polls (the watchdog's wake-up among them) need the clock. Were
        // the first one late, the watchdog would wake the connection again at once.
        if std::mem::replace(&mut this.polled, true) && Instant::now() >= this.deadline {
            return std::task::Poll::Ready(());
        }
        this.head.due.store(this.due, Ordering::Relaxed);
        std::task::Poll::Pending
    }
}

impl hyper::rt::Sleep for HeadSleep {}

impl Drop for HeadSleep {
    fn drop(&mut self) {
        // The head is in (or hyper replaced this sleep): nothing to wake the connection for.
        let _ = self
            .head
            .due
            .compare_exchange(self.due, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Wakes its connection's task when the head it waits for is due, so that hyper polls the
/// head's [`HeadSleep`] and finds its deadline passed. Never completes. Polled after the
/// connection (a biased `select!`), so it sees a deadline recorded in the same poll.
async fn watchdog(head: Arc<HeadDeadline>) {
    let mut alarm: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    // The deadline the connection was last woken for, so that a head hyper is not polling
    // (it never is past its deadline for long) cannot make this spin.
    let mut woken_for = None;
    std::future::poll_fn(move |cx| {
        let Some(due) = head.get() else {
            return std::task::Poll::Pending;
        };
        let due = tokio::time::Instant::from_std(due);
        let alarm = alarm.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        // Set for a later head only once it has fired for an earlier one: deadlines only
        // move later, so it fires at or before every head's deadline.
        if alarm.is_elapsed() || alarm.deadline() > due {
            alarm.as_mut().reset(due);
        }
        if alarm.as_mut().poll(cx).is_ready() && woken_for != Some(due) {
            // Already due: poll the connection again at once, once.
            woken_for = Some(due);
            cx.waker().wake_by_ref();
        }
        std::task::Poll::Pending
    })
    .await
}

/// Whether the request's URI is longer than [`MAX_URI`].
fn uri_too_long<B>(request: &hyper::Request<B>) -> bool {
    request
        .uri()
        .path_and_query()
        .is_some_and(|p| p.as_str().len() > MAX_URI)
}

/// One request: the peer's address and socket for the handlers, then the API.
async fn handle(
    app: App,
    mut request: hyper::Request<Incoming>,
    peer: SocketAddr,
    socket: PeerSocket,
) -> axum::response::Response {
    request.extensions_mut().insert(Peer {
        addr: peer,
        socket: Some(socket),
    });
    match app.oneshot(request.map(axum::body::Body::new)).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(unix)]
fn peer_socket(stream: &TcpStream) -> PeerSocket {
    use std::os::fd::AsRawFd;
    PeerSocket(stream.as_raw_fd())
}

#[cfg(not(unix))]
fn peer_socket(_stream: &TcpStream) -> PeerSocket {
    PeerSocket()
}

/// Counts a request as being served for as long as it lives.
struct Serving(Arc<AtomicUsize>);

impl Serving {
    fn start(busy: Arc<AtomicUsize>) -> Serving {
        busy.fetch_add(1, Ordering::AcqRel);
        Serving(busy)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Logs refused connections at most once a second, with a count of the rest.
#[derive(Default)]
struct Refusals {
    last: Option<Instant>,
    unlogged: u64,
}

impl Refusals {
    fn note(&mut self, what: &str) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            self.unlogged += 1;
            return;
        }
        self.last = Some(Instant::now());
        let more = std::mem::take(&mut self.unlogged);
        if more > 0 {
            tracing::warn!("{what} ({more} more since the last report)");
        } else {
            tracing::warn!("{what}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_stay_well_under_the_open_file_limit() {
        assert_eq!(Limits::for_open_files(Some(256)).max_connections, 96);
        assert_eq!(Limits::for_open_files(Some(20_000)).max_connections, 4096);
        assert_eq!(Limits::for_open_files(Some(10)).max_connections, 16);
        assert_eq!(Limits::for_open_files(None).max_connections, 4096);
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let registry = Registry::default();
        let graceful = CancellationToken::new();
        let entry = |busy: usize| Entry {
            busy: Arc::new(AtomicUsize::new(busy)),
            ends: Ends::under(&graceful),
        };
        let cuts: Vec<_> = [1, 0, 0]
            .into_iter()
            .enumerate()
            .map(|(id, busy)| {
                let e = entry(busy);
                let ends = e.ends.clone();
                registry.lock().insert(id as u64, e);
                ends
            })
            .collect();
        let cut = |i: usize| (cuts[i].cut.is_cancelled(), cuts[i].stop.is_cancelled());
        assert!(registry.make_room(4), "under the cap");
        assert!(registry.make_room(3));
        assert_eq!(cut(0), (false, false), "busy connections are kept");
        assert_eq!(cut(1), (true, true), "the oldest idle one goes");
        assert_eq!(cut(2), (false, false));
        graceful.cancel();
        assert_eq!(
            cut(2),
            (false, true),
            "a graceful end stops, but does not cut"
        );
        registry
            .lock()
            .get(&2)
            .unwrap()
            .busy
            .store(1, Ordering::Release);
        assert!(!registry.make_room(2), "all busy: refuse the new one");
    }
}
