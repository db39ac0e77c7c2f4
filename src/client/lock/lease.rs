//! The lease keeper of `foolock lock`: acquire (long-polling), confirm, renew, release or
//! abandon a job's lease against the API. It knows nothing of CMD: while CMD runs, [`keep`]
//! renews the lease and tells the flow only one thing, that it was lost and why.
//!
//! Times are on our suspend-inclusive clock, counted from when a request was *sent* (see the
//! parent module's doc for why that makes our idea of the lease's end never later than the
//! server's).

use super::{LockRequest, Timing};
use crate::api::wire::{LockReply, Message};
use crate::client::ClientError;
use crate::client::http::{Api, HttpError, REQUEST_TIMEOUT, Reply};
use crate::client::oneshot::waiting_line;
use crate::client::output::{self, Human, Style};
use crate::client::wait::{Next, Waiting};
use crate::time::{Clock, Mono, SystemClock};
use hyper::StatusCode;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Even without a deadline due, wake at least this often: tokio's timers stop while the
/// machine sleeps, our deadline does not.
const MAX_SLEEP: Duration = Duration::from_secs(1);

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

/// Takes the lock, long-polling for up to `req.wait` (see [`crate::client::wait`]); there is
/// never a client-side polling loop. On a terminal it says once whom it waits for, and when
/// the job is ours. `may_hold` is `Some(floor)` while we may have been granted a lease that is
/// not yet returned as [`Held`] (a request is outstanding, or a grant is being confirmed); see
/// [`abandon`] for `floor`.
pub(super) async fn acquire(
    api: &Api,
    req: &LockRequest,
    timing: Timing,
    clock: &SystemClock,
    may_hold: &Cell<Option<u64>>,
) -> Result<Held, ClientError> {
    let started = clock.now().mono;
    let mut waiting = Waiting::new(started, req.wait);
    let (floor, current) = precheck(api, req).await?;
    let announced = !req.wait.is_zero() && req.say.notes() && output::is_taken(&current);
    if announced {
        req.say
            .note(waiting_line(&req.job, &current, req.wait, Style::stderr()));
    }
    loop {
        let sent = clock.now().mono;
        let wait = waiting.next_wait(sent);
        may_hold.set(floor);
        let result = api
            .acquire(
                &req.job,
                req.who(),
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
        if reply.status == StatusCode::OK {
            let Some(token) = reply.body.token else {
                if let Some(floor) = floor {
                    abandon(api, req, floor).await;
                }
                return Err(ClientError::Unavailable(
                    "the server's grant carried no token".to_owned(),
                ));
            };
            refuse_own_lease(req, &reply)?;
            let held = if wait.is_zero() {
                Held {
                    token,
                    good_until: sent + req.ttl,
                    renew_at: sent + timing.renew_every,
                }
            } else {
                confirm(api, req, timing, token, &reply, received, floor).await?
            };
            if announced {
                let waited = Human(started.until(clock.now().mono));
                req.say.note(format!("got {} after {waited}", req.job));
            }
            req.say.detail(format!(
                "acquired {} as {} (token {token}, ttl {})",
                req.job,
                req.client,
                Human(req.ttl)
            ));
            return Ok(held);
        }
        match waiting.after(&reply, sent, wait, received) {
            Next::Again { pause } => tokio::time::sleep(pause).await,
            Next::Done if reply.status == StatusCode::CONFLICT => {
                let mut why = output::denial(&req.job, &reply.body, Style::stderr());
                if !req.wait.is_zero() {
                    why.push_str(&format!("; gave up after waiting {}", Human(req.wait)));
                }
                why.push_str(&own_lease_hint(req, &reply.body));
                return Err(ClientError::Refused(why));
            }
            Next::Done => return Err(ClientError::from_reply(&reply)),
        }
    }
}

/// When a refusal names our own client id: the job is held by another run on this machine
/// (or was left by one that was killed), which the user may want to free by hand.
fn own_lease_hint(req: &LockRequest, body: &LockReply) -> String {
    if body.holder.as_deref() != Some(req.client.as_str()) {
        return String::new();
    }
    format!(
        " ({} is this machine's client id: another `foolock lock` run holds it, or one that \
         was killed left it; it ends on its own, or free it now with `foolock release {} \
         --client {}`)",
        req.client, req.job, req.client
    )
}

/// Refuses a first grant that says it *renewed* a lease: every run asks as itself (`run=`), so
/// only a server that does not tell runs apart (older than this client) says so, and then the
/// lease is another run's under our client id. Running now would overlap with it.
fn refuse_own_lease(req: &LockRequest, reply: &Reply<LockReply>) -> Result<(), ClientError> {
    if reply.body.message != Some(Message::Renewed) {
        return Ok(());
    }
    Err(ClientError::Refused(format!(
        "{} is already held by this client id ({}), and this server is too old to tell two \
         runs apart: another `foolock lock` with the same id holds it, or one that was killed \
         left it. Give each concurrent run its own --client, or free it with `foolock release \
         {} --client {}` if nothing is running",
        req.job, req.client, req.job, req.client
    )))
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
        .acquire(&req.job, req.who(), Some(req.ttl), None, timeout)
        .await;
    match judge_renewal(&fallback, result) {
        Renewal::Ok => Ok(Held {
            token,
            good_until: sent + req.ttl,
            renew_at: sent + timing.renew_every,
        }),
        Renewal::Retry(why) => {
            req.say.warn(format!(
                "confirming the grant of {} failed, retrying: {why}",
                req.job
            ));
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

/// Gives back a lease we may have been granted but will not use: one quick try, as the
/// server may already be gone. Without it the lease would block the job for ttl + grace.
///
/// The release names our run, so the server frees only our run's lease. An older server
/// ignores the run, so release only a lease that was granted after our request was sent (its
/// token is above `floor`, the newest token before it): an older lease under our id belongs
/// to another run and is left alone either way.
pub(super) async fn abandon(api: &Api, req: &LockRequest, floor: u64) {
    let Ok(status) = api.status(&req.job).await else {
        return;
    };
    let ours = status.body.holder.as_deref() == Some(req.client.as_str())
        && status.body.token.is_some_and(|t| t > floor);
    if ours {
        let _ = api.release(&req.job, req.who(), ABANDON_TIMEOUT).await;
    }
}

/// Before asking for the job: the newest token issued so far, which tells later whether a
/// lease under our id is ours (`None` from servers that do not report it: then an unused grant
/// is left to expire rather than risk releasing another run's), and the job's status (whom a
/// wait would be for). Another run holding the job under our client id is not refused here:
/// the server queues us behind it like any other device.
async fn precheck(api: &Api, req: &LockRequest) -> Result<(Option<u64>, LockReply), ClientError> {
    let reply = api.status(&req.job).await?;
    Ok((reply.body.last_token, reply.body))
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
                Human(req.ttl),
                Human(now.until(held.good_until)),
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
                    .acquire(&req.job, req.who(), Some(req.ttl), None, timeout)
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
                            req.say.warn(format!("renewed {} again after: {previous}", req.job));
                        } else {
                            req.say.detail(format!("renewed {}", req.job));
                        }
                    }
                    Renewal::Retry(why) => {
                        req.say.warn(format!("renewing {} failed, retrying: {why}", req.job));
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
            .release(&req.job, req.who(), Duration::from_secs(2))
            .await
        {
            Ok(reply) if reply.status.is_success() => {
                req.say.detail(format!("released {}", req.job));
                return Released::Yes;
            }
            Ok(reply) if reply.status == StatusCode::FORBIDDEN && !maybe_released => {
                return Released::NotHolder;
            }
            Ok(reply) if reply.status.is_client_error() => {
                if !lost {
                    req.say.warn(format!(
                        "warning: releasing {} as {} was refused (HTTP {}: {}){}",
                        req.job,
                        req.client,
                        reply.status,
                        reply.body.error.as_deref().unwrap_or("no reason given"),
                        if maybe_released {
                            "; an earlier attempt may have released it"
                        } else {
                            ""
                        }
                    ));
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
    req.say.warn(format!(
        "warning: could not release {} ({last}); it expires on its own within {}",
        req.job,
        Human(req.ttl)
    ));
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
            run: "test-run".to_owned(),
            ttl,
            wait: Duration::ZERO,
            command: Vec::new(),
            stdin: false,
            codes: crate::client::ExitCodes::default(),
            say: crate::client::Say::QUIET,
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

    #[test]
    fn a_first_grant_that_says_renewed_is_another_runs_lease_and_is_refused() {
        // Only a server too old to tell runs apart says "renewed" to a run's first request.
        let req = request(Duration::from_secs(30));
        let grant = |message| Reply {
            status: StatusCode::OK,
            body: LockReply {
                message: Some(message),
                token: Some(3),
                ..LockReply::default()
            },
        };
        assert!(refuse_own_lease(&req, &grant(Message::Acquired)).is_ok());
        match refuse_own_lease(&req, &grant(Message::Renewed)) {
            Err(ClientError::Refused(why)) => {
                assert!(why.contains("too old to tell two runs apart"), "{why}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
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
}
