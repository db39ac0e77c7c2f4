//! The lease keeper of `foolock lock`: acquire (long-polling), confirm, renew, release or
//! abandon a job's lease against the API. It knows nothing of CMD: while CMD runs, [`keep`]
//! renews the lease and tells the flow only one thing, that it was lost and why.
//!
//! Times are on our suspend-inclusive clock, counted from when a request was *sent* (see the
//! parent module's doc for why that makes our idea of the lease's end never later than the
//! server's).

use super::{LockRequest, Timing};
use crate::api::wire::{LeaseState, LockReply, Message};
use crate::client::http::{Api, HttpError, REQUEST_TIMEOUT, Reply};
use crate::client::{ClientError, output};
use crate::time::Compact;
use crate::time::{Clock, Mono, SystemClock};
use hyper::StatusCode;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Even without a deadline due, wake at least this often: tokio's timers stop while the
/// machine sleeps, our deadline does not.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Waits longer than this are split into several long-polls (the server caps each one).
const MAX_WAIT_CHUNK: Duration = Duration::from_secs(300);

/// How long the release of a lease we will not use may take; it is only a courtesy, the
/// lease expires on its own.
const ABANDON_TIMEOUT: Duration = Duration::from_secs(2);

/// A lease we hold.
#[derive(Debug, Clone, Copy)]
pub(super) struct Held {
    pub(super) token: u64,
    /// Until when (our clock) the server surely still holds it for us.
    good_until: Mono,
    /// When the next renewal is due.
    renew_at: Mono,
}

/// Why [`keep`] gave up the lease: the keeper's one message to the flow, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Lost {
    pub(super) why: String,
}

/// Takes the lock, long-polling for up to `req.wait`. Longer waits than the server allows are
/// split into several long-polls; there is never a client-side polling loop. `may_hold` is
/// `Some(floor)` while we may have been granted a lease that is not yet returned as [`Held`]
/// (a request is outstanding, or a grant is being confirmed); see [`abandon`] for `floor`.
pub(super) async fn acquire(
    api: &Api,
    req: &LockRequest,
    timing: Timing,
    clock: &SystemClock,
    may_hold: &Cell<Option<u64>>,
) -> Result<Held, ClientError> {
    let give_up = clock.now().mono + req.wait;
    let floor = precheck(api, req).await?;
    let mut chunk = MAX_WAIT_CHUNK;
    loop {
        let sent = clock.now().mono;
        let wait = sent.until(give_up).min(chunk);
        may_hold.set(floor);
        let result = api
            .acquire(
                &req.job,
                &req.client,
                Some(req.ttl),
                (!wait.is_zero()).then_some(wait),
                wait + REQUEST_TIMEOUT,
            )
            .await;
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => {
                // The server may have granted it before the reply was lost or timed out.
                if let Some(floor) = floor {
                    abandon(api, req, floor).await;
                }
                return Err(e.into());
            }
        };
        let received = clock.now().mono;
        may_hold.set(floor.filter(|_| reply.status == StatusCode::OK));
        match reply.status {
            StatusCode::OK => {
                let Some(token) = reply.body.token else {
                    if let Some(floor) = floor {
                        abandon(api, req, floor).await;
                    }
                    return Err(ClientError::Unavailable(
                        "the server's grant carried no token".to_owned(),
                    ));
                };
                refuse_own_lease(req, &reply)?;
                if wait.is_zero() {
                    return Ok(Held {
                        token,
                        good_until: sent + req.ttl,
                        renew_at: sent + timing.renew_every,
                    });
                }
                return confirm(api, req, timing, token, &reply, received, floor).await;
            }
            StatusCode::CONFLICT if received < give_up => {
                // The wait chunk ended without a grant; ask again for what remains. A reply
                // that came back well before its wait would make this a hot loop: pace it.
                if received < sent + wait.saturating_sub(Duration::from_secs(1)) {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            StatusCode::CONFLICT => {
                return Err(ClientError::Refused(output::denial(&req.job, &reply.body)));
            }
            StatusCode::BAD_REQUEST if !wait.is_zero() => {
                let Some(cap) = server_wait_cap(&reply) else {
                    return Err(ClientError::from_reply(&reply));
                };
                if cap.is_zero() || cap >= chunk {
                    return Err(ClientError::from_reply(&reply));
                }
                chunk = cap;
            }
            StatusCode::SERVICE_UNAVAILABLE if received < give_up => {
                let left = received.until(give_up);
                tokio::time::sleep(unavailable_pause(reply.body.retry_after_ms, left)).await;
            }
            _ => return Err(ClientError::from_reply(&reply)),
        }
    }
}

/// How long to pause after a 503 with `left` of the wait remaining: the server's hint (or a
/// second), at least 200 ms so we do not hammer it, but never past the end of the wait.
fn unavailable_pause(retry_after_ms: Option<u64>, left: Duration) -> Duration {
    retry_after_ms
        .map_or(Duration::from_secs(1), Duration::from_millis)
        .max(Duration::from_millis(200))
        .min(left)
}

/// Refuses a grant that renewed a lease our client id already held: another `foolock lock`
/// on this machine, or one that was killed. Running now would overlap with it.
fn refuse_own_lease(req: &LockRequest, reply: &Reply<LockReply>) -> Result<(), ClientError> {
    if reply.body.message != Some(Message::Renewed) {
        return Ok(());
    }
    Err(already_held(req))
}

fn already_held(req: &LockRequest) -> ClientError {
    ClientError::Refused(format!(
        "{} is already held by this client id ({}): another `foolock lock` with the same \
         id, or a lease left behind by one that was killed. Give each concurrent run its \
         own --client, or `foolock release {}` if nothing is running",
        req.job, req.client, req.job
    ))
}

/// Confirms a long-poll grant with a renewal we time, so the lease's end counts from a known
/// send time (see the module doc). If the renewal cannot get through, the grant's own
/// remaining time from when it arrived stands in, and [`keep`] renews at once.
async fn confirm(
    api: &Api,
    req: &LockRequest,
    timing: Timing,
    token: u64,
    reply: &Reply<LockReply>,
    received: Mono,
    floor: Option<u64>,
) -> Result<Held, ClientError> {
    let clock = SystemClock;
    let left = reply
        .body
        .expires_in_ms
        .map_or(Duration::ZERO, |ms| Duration::from_millis(ms.max(0) as u64))
        .min(req.ttl);
    let sent = clock.now().mono;
    let fallback = Held {
        token,
        good_until: received + left,
        renew_at: sent,
    };
    let timeout = sent
        .until(fallback.good_until - timing.margin)
        .min(REQUEST_TIMEOUT)
        .max(Duration::from_millis(100));
    let result = api
        .acquire(&req.job, &req.client, Some(req.ttl), None, timeout)
        .await;
    match judge_renewal(&fallback, result) {
        Renewal::Ok => Ok(Held {
            token,
            good_until: sent + req.ttl,
            renew_at: sent + timing.renew_every,
        }),
        Renewal::Retry(why) => {
            eprintln!(
                "foolock: confirming the grant of {} failed, retrying: {why}",
                req.job
            );
            Ok(fallback)
        }
        Renewal::Lost(why) => {
            // A fresh lease under our id is ours to give back; anyone else's is untouched.
            if let Some(floor) = floor {
                abandon(api, req, floor).await;
            }
            Err(ClientError::Refused(format!(
                "{} was lost right after it was granted: {why}; the command was not started",
                req.job
            )))
        }
    }
}

/// The longest wait the server allows, from its refusal of ours (`max_wait_ms`).
fn server_wait_cap(reply: &Reply<LockReply>) -> Option<Duration> {
    reply.body.max_wait_ms.map(Duration::from_millis)
}

/// Gives back a lease we may have been granted but will not use: one quick try, as the
/// server may already be gone. Without it the lease would block the job for ttl + grace.
///
/// The server cannot tell two runs under one client id apart, so release only a lease that
/// was granted after our request was sent (its token is above `floor`, the newest token
/// before it): an older lease under our id belongs to another run and is left alone.
pub(super) async fn abandon(api: &Api, req: &LockRequest, floor: u64) {
    let Ok(status) = api.status(&req.job).await else {
        return;
    };
    let ours = status.body.holder.as_deref() == Some(req.client.as_str())
        && status.body.token.is_some_and(|t| t > floor);
    if ours {
        let _ = api.release(&req.job, &req.client, ABANDON_TIMEOUT).await;
    }
}

/// Before asking for the job: refuses at once if our client id already holds it (another run
/// of `foolock lock`, or one that was killed), and returns the newest token issued so far,
/// which tells later whether a lease under our id is ours. `None` from servers that do not
/// report it: then an unused grant is left to expire rather than risk releasing another run's.
async fn precheck(api: &Api, req: &LockRequest) -> Result<Option<u64>, ClientError> {
    let reply = api.status(&req.job).await?;
    let live = matches!(reply.body.state, Some(LeaseState::Held | LeaseState::Grace));
    if live && reply.body.holder.as_deref() == Some(req.client.as_str()) {
        return Err(already_held(req));
    }
    Ok(reply.body.last_token)
}

type RenewFuture<'a> =
    Pin<Box<dyn Future<Output = (Mono, Result<Reply<LockReply>, HttpError>)> + 'a>>;

/// Keeps the lease while CMD runs: renews it every `renew_every`, retries a failed renewal
/// every `retry_every`, and returns only when it is lost: a renewal was refused, or none
/// succeeded before `margin` ahead of the lease's end. Drop the future to stop keeping it.
pub(super) async fn keep(api: &Api, req: &LockRequest, timing: Timing, mut held: Held) -> Lost {
    let clock = SystemClock;
    let mut renewal: Option<RenewFuture<'_>> = None;
    let mut last_failure: Option<String> = None;
    loop {
        let now = clock.now().mono;
        let stop_at = held.good_until - timing.margin;
        if now >= stop_at {
            let why = format!(
                "no renewal succeeded in time (lease of {} ends in {} on this machine's clock; \
                 last error: {})",
                Compact(req.ttl),
                Compact(now.until(held.good_until)),
                last_failure.as_deref().unwrap_or("none")
            );
            return Lost { why };
        }
        if renewal.is_none() && now >= held.renew_at {
            let timeout = timing
                .renew_every
                .min(now.until(stop_at))
                .max(Duration::from_millis(100));
            renewal = Some(Box::pin(async move {
                let reply = api
                    .acquire(&req.job, &req.client, Some(req.ttl), None, timeout)
                    .await;
                (now, reply)
            }));
        }
        let wake = if renewal.is_none() {
            held.renew_at.min(stop_at)
        } else {
            stop_at
        };
        let nap = now.until(wake).clamp(Duration::from_millis(1), MAX_SLEEP);
        tokio::select! {
            (sent, result) = async { renewal.as_mut().expect("guarded").await }, if renewal.is_some() => {
                renewal = None;
                match judge_renewal(&held, result) {
                    Renewal::Ok => {
                        held.good_until = sent + req.ttl;
                        held.renew_at = sent + timing.renew_every;
                        if let Some(previous) = last_failure.take() {
                            eprintln!("foolock: renewed {} again after: {previous}", req.job);
                        }
                    }
                    Renewal::Retry(why) => {
                        eprintln!("foolock: renewing {} failed, retrying: {why}", req.job);
                        held.renew_at = clock.now().mono + timing.retry_every;
                        last_failure = Some(why);
                    }
                    Renewal::Lost(why) => return Lost { why },
                }
            }
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

enum Renewal {
    Ok,
    Retry(String),
    Lost(String),
}

fn judge_renewal(held: &Held, result: Result<Reply<LockReply>, HttpError>) -> Renewal {
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => return Renewal::Retry(e.to_string()),
    };
    let body = &reply.body;
    match reply.status {
        StatusCode::OK => match body.token {
            Some(t) if t == held.token => Renewal::Ok,
            other => Renewal::Lost(format!(
                "the lease lapsed and was granted afresh (token {} became {})",
                held.token,
                other.map_or("none".to_owned(), |t| t.to_string())
            )),
        },
        StatusCode::CONFLICT => Renewal::Lost(format!(
            "renewal refused: held by {}",
            body.holder.as_deref().unwrap_or("another client")
        )),
        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => Renewal::Retry(format!(
            "HTTP {s}: {}",
            body.error.as_deref().unwrap_or("server error")
        )),
        s => Renewal::Lost(format!(
            "renewal refused (HTTP {s}: {})",
            body.error.as_deref().unwrap_or("no reason given")
        )),
    }
}

/// What the final release found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Released {
    Yes,
    /// The server said we did not hold the job, and no earlier attempt of ours can have
    /// released it: someone else released or took it.
    NotHolder,
    /// Unreachable, or refused after an attempt that may have released it already.
    Unknown,
}

/// Releases the job, retrying briefly if the server is momentarily unreachable. A lease we
/// cannot release expires on its own. After a lost lock one quick try is enough: the server
/// was unreachable or the job is someone else's already.
pub(super) async fn release(api: &Api, req: &LockRequest, lost: bool) -> Released {
    let mut last = String::new();
    // Whether an attempt that got no usable reply may still have reached the server: a
    // "not the holder" after that proves nothing.
    let mut maybe_released = false;
    let attempts = if lost { 1 } else { 3 };
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match api
            .release(&req.job, &req.client, Duration::from_secs(2))
            .await
        {
            Ok(reply) if reply.status.is_success() => return Released::Yes,
            Ok(reply) if reply.status == StatusCode::FORBIDDEN && !maybe_released => {
                return Released::NotHolder;
            }
            Ok(reply) if reply.status.is_client_error() => {
                if !lost {
                    eprintln!(
                        "foolock: warning: releasing {} as {} was refused (HTTP {}: {}){}",
                        req.job,
                        req.client,
                        reply.status,
                        reply.body.error.as_deref().unwrap_or("no reason given"),
                        if maybe_released {
                            "; an earlier attempt may have released it"
                        } else {
                            ""
                        }
                    );
                }
                return Released::Unknown;
            }
            Ok(reply) => last = format!("HTTP {}", reply.status),
            Err(e) => {
                maybe_released = true;
                last = e.to_string();
            }
        }
    }
    eprintln!(
        "foolock: warning: could not release {} ({last}); it expires on its own within {}",
        req.job,
        Compact(req.ttl)
    );
    Released::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::server::Server;
    use tokio_util::sync::CancellationToken;

    fn request(ttl: Duration) -> LockRequest {
        LockRequest {
            job: "job".to_owned(),
            client: "laptop".to_owned(),
            ttl,
            wait: Duration::ZERO,
            command: Vec::new(),
        }
    }

    #[test]
    fn renewals_are_kept_retried_on_server_trouble_and_lost_on_refusal_or_a_new_token() {
        let held = Held {
            token: 7,
            good_until: Mono::default(),
            renew_at: Mono::default(),
        };
        let reply = |status, body| Ok(Reply { status, body });
        let with_token = |token| LockReply {
            token: Some(token),
            ..LockReply::default()
        };
        let held_by = |holder: &str| LockReply {
            holder: Some(holder.to_owned()),
            ..LockReply::default()
        };
        let judge = |result| match judge_renewal(&held, result) {
            Renewal::Ok => "ok".to_owned(),
            Renewal::Retry(why) => format!("retry: {why}"),
            Renewal::Lost(why) => format!("lost: {why}"),
        };

        assert_eq!(judge(reply(StatusCode::OK, with_token(7))), "ok");
        assert_eq!(
            judge(reply(StatusCode::OK, with_token(9))),
            "lost: the lease lapsed and was granted afresh (token 7 became 9)"
        );
        assert_eq!(
            judge(reply(StatusCode::CONFLICT, held_by("thief"))),
            "lost: renewal refused: held by thief"
        );
        assert!(
            judge(reply(StatusCode::SERVICE_UNAVAILABLE, LockReply::default()))
                .starts_with("retry: HTTP 503")
        );
        assert!(
            judge(reply(StatusCode::REQUEST_TIMEOUT, LockReply::default()))
                .starts_with("retry: HTTP 408")
        );
        assert_eq!(
            judge(reply(
                StatusCode::FORBIDDEN,
                LockReply::error("wrong token")
            )),
            "lost: renewal refused (HTTP 403 Forbidden: wrong token)"
        );
        let timeout = HttpError::Timeout {
            server: "http://nas:8080".to_owned(),
            after: Duration::from_secs(2),
        };
        assert_eq!(
            judge(Err(timeout)),
            "retry: no reply from http://nas:8080 within 2s"
        );
    }

    #[tokio::test]
    async fn keep_gives_the_lease_up_before_its_end_when_no_renewal_gets_through() {
        // A port nobody listens on: every renewal is refused a connection.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let api = Api::new(&format!("http://127.0.0.1:{port}"), None).expect("valid URL");
        let req = request(Duration::from_secs(3));
        let timing = Timing::for_ttl(req.ttl);
        let now = SystemClock.now().mono;
        let held = Held {
            token: 1,
            good_until: now + req.ttl,
            renew_at: now,
        };
        let lost = keep(&api, &req, timing, held).await;
        assert!(
            lost.why.starts_with("no renewal succeeded in time"),
            "{}",
            lost.why
        );
        assert!(lost.why.contains("cannot reach"), "{}", lost.why);
    }

    #[tokio::test]
    async fn keep_reports_the_lease_lost_once_another_client_holds_the_job() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config {
            listen: ([127, 0, 0, 1], 0).into(),
            state_dir: Some(dir.path().to_owned()),
            ..Config::default()
        };
        let server = Server::open(&config).await.expect("server starts");
        let addr = server.local_addr().expect("bound");
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn(server.run(shutdown.clone()));
        let api = Api::new(&format!("http://{addr}"), None).expect("valid URL");
        let req = request(Duration::from_secs(3));
        let timing = Timing::for_ttl(req.ttl);

        let held = acquire(&api, &req, timing, &SystemClock, &Cell::new(None))
            .await
            .expect("granted");
        // Someone frees the job under our id and another client takes it.
        let freed = api.release("job", "laptop", REQUEST_TIMEOUT).await;
        assert!(freed.expect("reply").status.is_success());
        let taken = api
            .acquire(
                "job",
                "thief",
                Some(Duration::from_secs(60)),
                None,
                REQUEST_TIMEOUT,
            )
            .await;
        assert_eq!(taken.expect("reply").status, StatusCode::OK);

        let lost = keep(&api, &req, timing, held).await;
        assert_eq!(lost.why, "renewal refused: held by thief");
        // And the final release leaves the thief's lease alone.
        assert_eq!(release(&api, &req, true).await, Released::NotHolder);

        shutdown.cancel();
        serving
            .await
            .expect("joined")
            .expect("server stopped cleanly");
    }

    #[test]
    fn wait_cap_is_read_from_max_wait_ms_not_from_the_message() {
        let mut body = LockReply::error("wait must be at least 0 and at most 1m30s");
        let reply = |body: &LockReply| Reply {
            status: StatusCode::BAD_REQUEST,
            body: body.clone(),
        };
        assert_eq!(server_wait_cap(&reply(&body)), None);
        body.max_wait_ms = Some(2_500);
        assert_eq!(
            server_wait_cap(&reply(&body)),
            Some(Duration::from_millis(2_500))
        );
        assert_eq!(server_wait_cap(&reply(&LockReply::error("bad ttl"))), None);
    }

    #[test]
    fn unavailable_pause_never_panics_and_never_outlasts_the_wait() {
        let ms = Duration::from_millis;
        assert_eq!(unavailable_pause(None, Duration::from_secs(60)), ms(1000));
        assert_eq!(unavailable_pause(Some(5), Duration::from_secs(60)), ms(200));
        assert_eq!(unavailable_pause(Some(3000), ms(2500)), ms(2500));
        // Less than the 200 ms floor left: the wait's end wins (this used to panic).
        assert_eq!(unavailable_pause(None, ms(90)), ms(90));
        assert_eq!(unavailable_pause(Some(0), Duration::ZERO), Duration::ZERO);
    }
}
