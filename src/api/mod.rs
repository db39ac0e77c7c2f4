//! The HTTP API: `/lock` (acquire, renew, release, status), `/locks`, `/healthz`, and the
//! admin action `/admin/force-release` ([`admin`]), and the optional access token in front of
//! all of them and of the status page's stream and metrics ([`auth`]).
//!
//! Handlers only parse the query, call the [`LockService`], and map results to wire types;
//! the rules live in the engine. Each returns `Result<_, ApiError>`: a refusal is an
//! [`ApiError`] (its status and a JSON `error`), while a 409 for a held job is an ordinary
//! reply that names the holder.

pub mod admin;
pub(crate) mod auth;
pub mod error;
pub mod wire;

#[cfg(test)]
mod tests;

use crate::engine::{Denied, Grant, GrantKind, Who, validate_name};
use crate::platform::socket::PeerSocket;
use crate::service::{LockService, WaitError};
use crate::time::{Now, parse_go_duration};
pub use admin::admin_allowed;
use axum::Extension;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::Uri;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
pub use error::{ApiError, ErrorReason, Refusal};
use serde::Serialize;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wire::{LockReply, LockRow, LocksReply, Message};

/// Where a request comes from, attached to every request by the accept loop: the peer's
/// address (the admin rule and the log of refused requests read it) and its socket (a waiting
/// request watches it for a hang-up). One extension rather than two: each is an allocation
/// for every request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    pub(crate) socket: Option<PeerSocket>,
}

#[cfg(test)]
impl Peer {
    /// A peer at `addr` whose socket is not to be watched (tests without a socket).
    pub(crate) fn at(addr: SocketAddr) -> Peer {
        Peer { addr, socket: None }
    }
}

/// Everything the handlers need.
#[derive(Clone)]
pub struct AppState {
    pub service: LockService,
    /// The longest a `POST /lock?wait=` may wait.
    pub max_wait: Duration,
    /// Cancelled when the server shuts down: waiting requests then end at once (503) instead
    /// of holding up the shutdown for up to `max_wait`.
    pub shutdown: CancellationToken,
}

/// How long a request that waits (`wait=`, or for the disk) may take beyond the longest
/// allowed wait before it is cut off with a 408.
pub const REQUEST_SLACK: Duration = Duration::from_secs(30);

/// The state as handlers see it: shared, so each request clones one pointer (cloning the
/// cancellation token itself would take its lock, twice per request).
pub(crate) type App = State<Arc<AppState>>;

/// The API's routes. Requests to other paths get a JSON 404.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/lock",
            get(get_lock)
                .post(post_lock)
                .delete(delete_lock)
                .fallback(method_not_allowed),
        )
        .route("/locks", get(get_locks).fallback(method_not_allowed))
        .route("/healthz", get(healthz).fallback(method_not_allowed))
        .route(
            "/admin/force-release",
            post(admin::force_release).fallback(method_not_allowed),
        )
        .fallback(not_found)
        .with_state(Arc::new(state))
}

/// Runs `work` (a call that may wait for a queue or the disk), cutting it off with a 408 after
/// `max_wait` plus [`REQUEST_SLACK`]. Most calls finish without waiting, so the timer is only
/// armed once `work` has had to wait: a per-request timer wheel entry would cost more than the
/// rest of a renewal's bookkeeping.
pub(crate) fn bounded<F: Future>(app: &AppState, work: F) -> Bounded<F> {
    Bounded {
        work,
        limit: app.max_wait + REQUEST_SLACK,
        timer: None,
    }
}

pin_project_lite::pin_project! {
    /// The future [`bounded`] returns. Written out rather than as an `async fn`: the
    /// generated future kept `work` twice and room for its output, three times the size of
    /// `work`, and every handler's future (which axum allocates for every request) carries it.
    pub(crate) struct Bounded<F> {
        #[pin]
        work: F,
        limit: Duration,
        // Boxed: only requests that wait need it.
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F: Future> Future for Bounded<F> {
    type Output = Result<F::Output, ApiError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(done) = this.work.poll(cx) {
            return Poll::Ready(Ok(done));
        }
        // Armed when `work` first has to wait, so the limit counts from then.
        let limit = *this.limit;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(ApiError::Timeout)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A reply's status and its JSON body.
pub(crate) struct Reply<T>(pub StatusCode, pub T);

/// Room for a whole `/lock` reply with ordinary names (about 250 bytes): axum's `Json`
/// starts at 128 bytes and grew its buffer twice for most replies.
const REPLY_CAPACITY: usize = 512;

impl<T: Serialize + 'static> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        json_response(self.0, &self.1, REPLY_CAPACITY)
    }
}

/// `body` serialized by serde_json into a buffer of `capacity` bytes, sent with `status`.
fn json_response<T: Serialize + 'static>(
    status: StatusCode,
    body: &T,
    capacity: usize,
) -> Response {
    // The API's own bodies write their JSON by hand (the same bytes, a quarter of the work).
    let any: &dyn std::any::Any = body;
    let written = json_bytes(capacity, |buf| {
        if let Some(reply) = any.downcast_ref::<LockReply>() {
            reply.write_json(buf);
            Ok(())
        } else if let Some(listing) = any.downcast_ref::<LocksReply>() {
            listing.write_json(buf);
            Ok(())
        } else {
            serde_json::to_writer(buf, body)
        }
    });
    match written {
        Ok(bytes) => json_with_status(status, bytes),
        // Our wire types always serialize; should one not, say so without details.
        Err(err) => {
            tracing::error!("cannot serialize a reply: {err}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Replies up to this size are written into a buffer each thread keeps.
const SCRATCH_KEEP: usize = 4 * REPLY_CAPACITY;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(REPLY_CAPACITY));
}

/// What `write` writes, expected to be about `capacity` bytes. A small reply is written into
/// this thread's buffer and copied out at its exact size: one allocation, where a `Bytes` made
/// from a `Vec` with room to spare needs a second for its own header.
fn json_bytes<E>(
    capacity: usize,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<Bytes, E> {
    if capacity > SCRATCH_KEEP {
        let mut buf = Vec::with_capacity(capacity);
        write(&mut buf)?;
        return Ok(Bytes::from(buf));
    }
    SCRATCH.with_borrow_mut(|buf| {
        buf.clear();
        let written = write(buf).map(|()| Bytes::copy_from_slice(buf));
        // Names can make a reply kilobytes long; keep no more than that of it.
        if buf.capacity() > SCRATCH_KEEP {
            *buf = Vec::with_capacity(REPLY_CAPACITY);
        }
        written
    })
}

/// A JSON reply of `body`, sent with `status`. Built directly: converting the bytes with
/// `into_response` would first set an octet-stream content type, only for it to be replaced.
fn json_with_status(status: StatusCode, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A reply about a lease, written straight from it (see [`wire::LeaseJson`]).
fn lease_reply(status: StatusCode, body: wire::LeaseJson<'_>) -> Response {
    let Ok(bytes) = json_bytes(REPLY_CAPACITY, |buf| {
        body.write_json(buf);
        Ok::<_, std::convert::Infallible>(())
    });
    json_with_status(status, bytes)
}

/// A 409 for `body`, marked with why for the metrics layer.
fn refused(body: wire::LeaseJson<'_>, why: Refusal) -> Response {
    let mut response = lease_reply(StatusCode::CONFLICT, body);
    response.extensions_mut().insert(why);
    response
}

/// Query parameters, first value wins (as Go's `Query().Get`). Unknown ones are ignored. They
/// borrow from the query string unless they had to be decoded: most requests name plain
/// jobs and clients, and copying each would cost more than the rest of parsing. Public so
/// that the fuzz targets and property tests parse queries as the handlers do.
#[derive(Default)]
pub struct Params<'q> {
    client: Option<Cow<'q, str>>,
    job: Option<Cow<'q, str>>,
    ttl: Option<Cow<'q, str>>,
    wait: Option<Cow<'q, str>>,
    run: Option<Cow<'q, str>>,
}

impl<'q> Params<'q> {
    pub fn parse(raw: Option<&'q str>) -> Result<Params<'q>, ApiError> {
        let mut p = Params::default();
        let mut rest = raw.unwrap_or("");
        while !rest.is_empty() {
            // One pass over the pair's bytes: where it ends, where its value starts, and
            // whether either part has anything to decode.
            let bytes = rest.as_bytes();
            let (mut end, mut eq) = (0, None);
            let (mut key_coded, mut value_coded) = (false, false);
            while let Some(&b) = bytes.get(end) {
                match b {
                    b'&' => break,
                    b'=' if eq.is_none() => eq = Some(end),
                    b'+' | b'%' if eq.is_none() => key_coded = true,
                    b'+' | b'%' => value_coded = true,
                    _ => {}
                }
                end += 1;
            }
            // `&` and `=` are ASCII, so every cut below is at a character boundary.
            let pair = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or("");
            let (key, value) = match eq {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, ""),
            };
            let key = if key_coded {
                decode(key)?
            } else {
                Cow::Borrowed(key)
            };
            let slot = match &*key {
                "client" => &mut p.client,
                "job" => &mut p.job,
                "ttl" => &mut p.ttl,
                "wait" => &mut p.wait,
                "run" => &mut p.run,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(if value_coded {
                    decode(value)?
                } else {
                    Cow::Borrowed(value)
                });
            }
        }
        Ok(p)
    }

    /// The job name; absent or empty means `default`, as in the original.
    pub fn job(&self) -> Result<&str, ApiError> {
        let job = match self.job.as_deref() {
            None | Some("") => "default",
            Some(job) => job,
        };
        validate_name(job).map_err(|e| ApiError::InvalidName {
            param: "job",
            reason: e.to_string(),
        })?;
        Ok(job)
    }

    pub fn client(&self) -> Result<&str, ApiError> {
        let client = match self.client.as_deref() {
            None | Some("") => return Err(ApiError::MissingClient),
            Some(c) => c,
        };
        validate_name(client).map_err(|e| ApiError::InvalidName {
            param: "client",
            reason: e.to_string(),
        })?;
        Ok(client)
    }

    /// Which run of the client asks (`run=`, see [`crate::engine::Who`]); absent or empty
    /// means the client as a whole, as in the original API.
    fn run(&self) -> Result<Option<&str>, ApiError> {
        match self.run.as_deref() {
            None | Some("") => Ok(None),
            Some(run) => {
                validate_name(run).map_err(|e| ApiError::InvalidName {
                    param: "run",
                    reason: e.to_string(),
                })?;
                Ok(Some(run))
            }
        }
    }
}

/// Decodes one query component as form data (`+` is a space), refusing invalid UTF-8 rather
/// than silently naming a different job. Borrows when there is nothing to decode.
fn decode(component: &str) -> Result<Cow<'_, str>, ApiError> {
    if !component.bytes().any(|b| b == b'+' || b == b'%') {
        return Ok(Cow::Borrowed(component));
    }
    let spaced = component.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| Cow::Owned(s.into_owned()))
        .map_err(|_| ApiError::InvalidQuery("parameters must be valid UTF-8".into()))
}

// Takes the URI and the peer rather than the whole request: the future axum allocates for
// every request holds what the handler keeps across its await, and at 1 032 bytes or more
// that allocation misses malloc's per-thread cache (a few hundred instructions per request).
async fn post_lock(
    State(app): App,
    uri: Uri,
    peer: Option<Extension<Peer>>,
) -> Result<Response, ApiError> {
    let p = Params::parse(uri.query())?;
    let ask = Ask::read(&p, &app)?;
    // The handler's future is allocated for every request: only what the wait needs lives
    // across it, and the reply is built by a plain function afterwards.
    let (result, now) = if ask.wait.is_zero() {
        bounded(&app, app.service.acquire_at(ask.job, ask.who, ask.ttl)).await?
    } else {
        // Boxed: a long-poll's future is kilobytes, and every request's handler future would
        // otherwise be as large.
        let socket = peer.and_then(|Extension(peer)| peer.socket);
        let result = Box::pin(wait_or_hang_up(&app, socket, &ask)).await?;
        (result, app.service.now())
    };
    lock_reply(ask.job, result, &now)
}

/// What a `POST /lock` asks for.
struct Ask<'a> {
    job: &'a str,
    who: Who<'a>,
    ttl: Duration,
    /// Zero: do not wait.
    wait: Duration,
}

impl<'a> Ask<'a> {
    fn read(p: &'a Params<'_>, app: &AppState) -> Result<Ask<'a>, ApiError> {
        let client = p.client()?;
        let run = p.run()?;
        let who = Who { client, run };
        let job = p.job()?;
        let rules = app.service.rules();
        let ttl = match p.ttl.as_deref() {
            None | Some("") => rules.default_ttl,
            Some(text) => {
                let parsed = parse_go_duration(text).map_err(|_| ApiError::InvalidTtl)?;
                // Zero and negative ttls fail the same range check as ones above max_ttl.
                rules.check_ttl(parsed.positive().unwrap_or(Duration::ZERO))?
            }
        };
        let wait = match p.wait.as_deref() {
            None | Some("") => Duration::ZERO,
            Some(text) => {
                let parsed = parse_go_duration(text).map_err(|_| ApiError::InvalidWait)?;
                let range = || ApiError::WaitOutOfRange(app.max_wait);
                if parsed.0 < 0 {
                    return Err(range());
                }
                let wait = Duration::from_nanos(parsed.0 as u64);
                if wait > app.max_wait {
                    return Err(range());
                }
                wait
            }
        };
        Ok(Ask {
            job,
            who,
            ttl,
            wait,
        })
    }
}

/// The reply to a `POST /lock` for `job` that ended with `result`, its remaining times as
/// of `now`.
fn lock_reply(
    job: &str,
    result: Result<Grant, WaitError>,
    now: &Now,
) -> Result<Response, ApiError> {
    let result = match result {
        Ok(grant) => Ok(grant),
        Err(WaitError::Denied(denied)) => Err(denied),
        Err(e @ (WaitError::Stopped | WaitError::NotSaved)) => {
            return Err(ApiError::Unavailable {
                message: e.to_string(),
                retry_after_ms: None,
            });
        }
    };
    let about = |lease, success, error, message| wire::LeaseJson {
        job,
        lease,
        now,
        success: Some(success),
        error,
        message,
        is_expired: None,
        last_token: None,
        waiting: None,
    };
    match result {
        Ok(grant) => {
            let message = match grant.kind {
                GrantKind::Acquired => Message::Acquired,
                GrantKind::Renewed => Message::Renewed,
                GrantKind::TookOver { previous, .. } => {
                    Message::AcquiredFrom(String::from(&*previous))
                }
            };
            let body = about(&grant.lease, true, None, &message);
            Ok(lease_reply(StatusCode::OK, body))
        }
        Err(Denied::Held(lease)) => {
            let body = about(&lease, false, None, &Message::HeldByAnother);
            Ok(refused(body, Refusal::Held))
        }
        Err(Denied::Grace(lease)) => {
            let error = Message::Grace.to_string();
            let body = about(&lease, false, Some(&error), &Message::Grace);
            Ok(refused(body, Refusal::Grace))
        }
        Err(
            denied
            @ (Denied::Full { .. } | Denied::TooManyWaiters { .. } | Denied::TokensExhausted),
        ) => Err(ApiError::Unavailable {
            message: denied.to_string(),
            retry_after_ms: None,
        }),
        Err(denied @ Denied::Quarantined { until }) => Err(ApiError::Unavailable {
            message: denied.to_string(),
            retry_after_ms: Some(
                u64::try_from(now.mono.until(until).as_millis()).unwrap_or(u64::MAX),
            ),
        }),
    }
}

/// Waits up to `ask.wait` for its job; a 503 if the client hangs up first.
async fn wait_or_hang_up(
    app: &AppState,
    socket: Option<PeerSocket>,
    ask: &Ask<'_>,
) -> Result<Result<Grant, WaitError>, ApiError> {
    let waiting = app
        .service
        .acquire_waiting(ask.job, ask.who, ask.ttl, ask.wait, &app.shutdown);
    // The HTTP layer stops looking for a hang-up while it holds a pipelined request, so
    // watch the socket too: a waiter whose client is gone must leave the queue.
    let hung_up = async {
        match socket {
            Some(socket) => socket.hung_up().await,
            None => std::future::pending().await,
        }
    };
    let waiting = async {
        tokio::select! {
            result = waiting => Some(result),
            () = hung_up => None,
        }
    };
    match bounded(app, waiting).await? {
        Some(result) => Ok(result),
        None => {
            tracing::info!(
                job = ask.job,
                client = ask.who.client,
                "waiting client hung up"
            );
            Err(ApiError::Unavailable {
                message: "the client hung up".into(),
                retry_after_ms: None,
            })
        }
    }
}

async fn delete_lock(State(app): App, uri: Uri) -> Result<Reply<LockReply>, ApiError> {
    let p = Params::parse(uri.query())?;
    let client = p.client()?;
    let run = p.run()?;
    let job = p.job()?;
    let who = Who { client, run };
    bounded(&app, app.service.release(job, who))
        .await?
        .map_err(|_| ApiError::NotHolder)?;
    Ok(Reply(
        StatusCode::OK,
        LockReply {
            success: Some(true),
            job: Some(job.to_owned()),
            message: Some(Message::Released),
            status: Some(Message::Released),
            ..LockReply::default()
        },
    ))
}

async fn get_lock(State(app): App, request: Request) -> Result<Response, ApiError> {
    let p = Params::parse(request.uri().query())?;
    let job = p.job()?;
    let status = app.service.status(job);
    let (lease, now) = (status.lease, status.now);
    let body = match lease {
        Some(lease) => {
            let body = wire::LeaseJson {
                job,
                lease: &lease,
                now: &now,
                success: Some(true),
                error: None,
                message: &Message::Held,
                is_expired: Some(now.mono >= lease.expires),
                last_token: Some(status.last_token),
                waiting: Some(status.waiting),
            };
            return Ok(lease_reply(StatusCode::OK, body));
        }
        None => LockReply {
            job: Some(job.to_owned()),
            holder: Some(String::new()),
            message: Some(Message::Free),
            // The original reports a job nobody holds as expired; scripts test for it.
            is_expired: Some(true),
            ..LockReply::default()
        },
    };
    Ok(Reply(
        StatusCode::OK,
        LockReply {
            success: Some(true),
            last_token: Some(status.last_token),
            waiting: Some(status.waiting),
            ..body
        },
    )
    .into_response())
}

/// The most rows one page of `GET /locks?limit=` holds.
pub(crate) const MAX_PAGE: usize = 1000;

/// `GET /locks`: every job, sorted by name. With `limit=N` (at most [`MAX_PAGE`]) only the
/// first N after the job named by `after=`, and `next` when more follow: at `max_jobs` the
/// whole table can be megabytes, more than a client wants in one reply.
async fn get_locks(State(app): App, request: Request) -> Result<Response, ApiError> {
    let (mut limit, mut after) = (None, None);
    for pair in request.uri().query().unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match &*decode(key)? {
            "limit" if limit.is_none() => {
                limit = Some(
                    decode(value)?
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or_else(|| {
                            ApiError::InvalidQuery(format!(
                                "limit must be a number from 1 to {MAX_PAGE}"
                            ))
                        })?,
                );
            }
            "after" if after.is_none() => after = Some(decode(value)?),
            _ => {}
        }
    }
    let (all, now) = app.service.list();
    // `list` is sorted by name.
    let start = after.map_or(0, |after| all.partition_point(|j| *j.job <= *after));
    let mut rest = all.into_iter().skip(start);
    let locks: Vec<LockRow> = rest
        .by_ref()
        .take(limit.unwrap_or(usize::MAX))
        .map(|j| LockRow::new(String::from(&*j.job), j.lease, &now))
        .collect();
    let next = match rest.next() {
        Some(_) => locks.last().map(|row| row.job.clone()),
        None => None,
    };
    let rows = locks.len();
    // A row with ordinary names takes about 160 bytes.
    Ok(json_response(
        StatusCode::OK,
        &LocksReply { locks, next },
        16 + rows * 192,
    ))
}

async fn healthz() -> Reply<serde_json::Value> {
    Reply(StatusCode::OK, serde_json::json!({ "status": "ok" }))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}
