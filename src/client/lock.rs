//! `foolock lock`: run a command only while holding a job's lock.
//!
//! The invariant: the command is stopped before anyone else can be granted the job. The
//! lease is renewed every ttl/3. Its end is counted on our own suspend-inclusive clock from
//! the moment we *sent* the last successful acquire or renewal (the server granted it later,
//! so its lease ends no earlier than ours); a safety margin before that end, the command's
//! process group gets SIGTERM, then SIGKILL. A refused renewal stops it at once. Transient
//! failures (timeouts, connection refused, 5xx) are retried until then.
//!
//! A grant at the end of a long-poll happened at some unknown moment of the wait, so before
//! CMD starts it is confirmed by a renewal we time. Only if that renewal cannot get through
//! does the grant's `expires_in_ms`, counted from when its reply arrived, stand in until a
//! renewal succeeds.
//!
//! A lease we may have been granted but will not use (a signal or a transport error cut the
//! request short) is released at once rather than left to expire.

use super::http::{Api, HttpError, REQUEST_TIMEOUT, Reply};
use super::{ClientError, output};
use crate::api::wire::{LockReply, MSG_RENEWED};
use crate::exit::Exit;
use crate::time::{Clock, Compact, Mono, SystemClock};
use hyper::StatusCode;
use std::cell::Cell;
use std::ffi::OsString;
use std::future::Future;
use std::pin::Pin;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Even without a deadline due, wake at least this often: tokio's timers stop while the
/// machine sleeps, our deadline does not.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Waits longer than this are split into several long-polls (the server caps each one).
const MAX_WAIT_CHUNK: Duration = Duration::from_secs(300);

/// How long the release of a lease we will not use may take; it is only a courtesy, the
/// lease expires on its own.
const ABANDON_TIMEOUT: Duration = Duration::from_secs(2);

/// What to run, and under which lock.
#[derive(Debug, Clone)]
pub struct LockRequest {
    pub job: String,
    pub client: String,
    pub ttl: Duration,
    pub wait: Duration,
    pub command: Vec<OsString>,
}

/// The schedule derived from the ttl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Between successful renewals.
    pub renew_every: Duration,
    /// Between attempts after a failed renewal.
    pub retry_every: Duration,
    /// From SIGTERM to SIGKILL.
    pub kill_grace: Duration,
    /// How long before the lease's end (on our clock) SIGTERM is sent: the kill grace plus
    /// as much again for the SIGKILL to land and for clock-rate differences.
    pub margin: Duration,
}

impl Timing {
    pub fn for_ttl(ttl: Duration) -> Timing {
        let tenth = ttl / 10;
        let kill_grace = tenth.clamp(Duration::from_millis(100), Duration::from_secs(5));
        Timing {
            renew_every: ttl / 3,
            retry_every: tenth.clamp(Duration::from_millis(200), Duration::from_secs(2)),
            kill_grace,
            margin: kill_grace + tenth.clamp(Duration::from_millis(100), Duration::from_secs(5)),
        }
    }
}

/// A lease we hold.
#[derive(Debug, Clone, Copy)]
struct Held {
    token: u64,
    /// Until when (our clock) the server surely still holds it for us.
    good_until: Mono,
    /// When the next renewal is due.
    renew_at: Mono,
}

/// How the command's run ended.
enum Ending {
    Exited(ExitStatus),
    /// The lock was lost and CMD was stopped; the reason has been reported.
    Lost {
        status: ExitStatus,
    },
}

/// Acquires, runs, renews, releases. The exit code is the command's, or 75 if the lock
/// was lost, or 128+N if signal N arrived while we were still waiting for the lock.
pub async fn run(api: &Api, req: &LockRequest) -> Result<ExitCode, ClientError> {
    let clock = SystemClock;
    let timing = Timing::for_ttl(req.ttl);
    let mut signals = Signals::install()?;
    // Some(floor) while a lease under our id with a token above `floor` may be ours.
    let may_hold = Cell::new(None);
    let held = tokio::select! {
        // A signal wins over a grant that arrived at the same moment: the user asked to stop.
        biased;
        signo = signals.recv() => {
            // Dropping the long-poll closes its connection: the server forgets a waiter at
            // once. But if it had already granted us the job (the reply was on its way), the
            // lease would sit there until it expired: give it back.
            if let Some(floor) = may_hold.get() {
                abandon(api, req, floor).await;
            }
            eprintln!(
                "foolock: {} while waiting for {}; the command was not started",
                signal_name(signo),
                req.job
            );
            return Ok(ExitCode::from(128 + signo as u8));
        }
        held = acquire(api, req, timing, &clock, &may_hold) => held?,
    };
    let mut running = match spawn(api, req, held.token) {
        Ok(running) => running,
        Err((code, message)) => {
            release(api, req, false).await;
            eprintln!("foolock: {message}");
            return Ok(ExitCode::from(code));
        }
    };
    let ending = supervise(api, req, timing, held, &mut running, &mut signals).await;
    // Anything CMD started and left running in its group must not outlive the lock.
    running.stop_leftovers(timing.kill_grace).await;
    match ending {
        Ok(Ending::Exited(status)) => match release(api, req, false).await {
            // Nothing of ours released it, so it was released or taken over while CMD ran,
            // between two renewals: CMD did not have the lock all along.
            Released::NotHolder => {
                eprintln!(
                    "foolock: lost the lock on {}: {} no longer held it when the command \
                     finished ({}); it was released or taken over while the command ran; \
                     exit code {}",
                    req.job,
                    req.client,
                    describe(status),
                    Exit::LockLost as u8
                );
                Ok(Exit::LockLost.into())
            }
            Released::Yes | Released::Unknown => Ok(ExitCode::from(exit_code(status))),
        },
        Ok(Ending::Lost { status }) => {
            eprintln!(
                "foolock: {}: the command was stopped ({}); exit code {}",
                req.job,
                describe(status),
                Exit::LockLost as u8
            );
            release(api, req, true).await;
            Ok(Exit::LockLost.into())
        }
        Err(e) => {
            release(api, req, false).await;
            Err(e)
        }
    }
}

/// Takes the lock, long-polling for up to `req.wait`. Longer waits than the server allows are
/// split into several long-polls; there is never a client-side polling loop. `may_hold` is
/// `Some(floor)` while we may have been granted a lease that is not yet returned as [`Held`]
/// (a request is outstanding, or a grant is being confirmed); see [`abandon`] for `floor`.
async fn acquire(
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
    if reply.body.message.as_deref() != Some(MSG_RENEWED) {
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
/// remaining time from when it arrived stands in, and the supervisor renews at once.
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

/// The longest wait the server allows, from its refusal of ours: `max_wait_ms`, or for
/// servers older than that field, the "wait must be at least 0 and at most 5m0s" message.
fn server_wait_cap(reply: &Reply<LockReply>) -> Option<Duration> {
    if let Some(ms) = reply.body.max_wait_ms {
        return Some(Duration::from_millis(ms));
    }
    let error = reply.body.error.as_deref()?;
    let (_, max) = error.split_once("wait must be at least 0 and at most ")?;
    crate::time::parse_non_negative(max.trim()).ok()
}

/// Gives back a lease we may have been granted but will not use: one quick try, as the
/// server may already be gone. Without it the lease would block the job for ttl + grace.
///
/// The server cannot tell two runs under one client id apart, so release only a lease that
/// was granted after our request was sent (its token is above `floor`, the newest token
/// before it): an older lease under our id belongs to another run and is left alone.
async fn abandon(api: &Api, req: &LockRequest, floor: u64) {
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
    let live = matches!(reply.body.state.as_deref(), Some("held" | "grace"));
    if live && reply.body.holder.as_deref() == Some(req.client.as_str()) {
        return Err(already_held(req));
    }
    Ok(reply.body.last_token)
}

/// Starts CMD in its own process group with the lock's details in its environment.
/// On failure, the exit code a shell would use (126 not executable, 127 not found).
fn spawn(api: &Api, req: &LockRequest, token: u64) -> Result<Running, (u8, String)> {
    let (program, args) = req
        .command
        .split_first()
        .ok_or((2, "no command given".to_owned()))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("FOOLOCK_JOB", &req.job)
        .env("FOOLOCK_CLIENT", &req.client)
        .env("FOOLOCK_TOKEN", token.to_string())
        .env("FOOLOCK_SERVER", api.url())
        // Its own group, so a lost lock stops everything CMD started, not just CMD.
        .process_group(0);
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        // A background process group reading the terminal would be stopped (SIGTTIN) and
        // hang while we keep renewing; EOF is the better failure.
        cmd.stdin(Stdio::null());
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
        let parent = std::process::id() as libc::pid_t;
        unsafe {
            cmd.pre_exec(move || {
                // If foolock itself is killed (SIGKILL), CMD must not run on unlocked.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                if libc::getppid() != parent {
                    libc::_exit(Exit::LockLost as i32);
                }
                Ok(())
            });
        }
    }
    let child = cmd.spawn().map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        };
        (
            code,
            format!("cannot run {}: {e}", program.to_string_lossy()),
        )
    })?;
    // Its pid is its process group's id (process_group(0) above).
    let pgid = child.id().map(|id| id as libc::pid_t);
    Ok(Running { child, pgid })
}

type RenewFuture<'a> =
    Pin<Box<dyn Future<Output = (Mono, Result<Reply<LockReply>, HttpError>)> + 'a>>;

/// Keeps the lease while CMD runs; passes signals on; stops CMD if the lease is lost.
async fn supervise(
    api: &Api,
    req: &LockRequest,
    timing: Timing,
    mut held: Held,
    running: &mut Running,
    signals: &mut Signals,
) -> Result<Ending, ClientError> {
    let clock = SystemClock;
    let mut renewal: Option<RenewFuture<'_>> = None;
    let mut last_failure: Option<String> = None;
    let lost = loop {
        let now = clock.now().mono;
        let stop_at = held.good_until - timing.margin;
        if now >= stop_at {
            break format!(
                "no renewal succeeded in time (lease of {} ends in {} on this machine's clock; \
                 last error: {})",
                Compact(req.ttl),
                Compact(now.until(held.good_until)),
                last_failure.as_deref().unwrap_or("none")
            );
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
            status = running.child.wait() => return Ok(Ending::Exited(status.map_err(wait_error)?)),
            signo = signals.recv() => running.signal(signo),
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
                    Renewal::Lost(why) => break why,
                }
            }
            _ = tokio::time::sleep(nap) => {}
        }
    };
    drop(renewal);
    eprintln!(
        "foolock: lost the lock on {}: {lost}; stopping the command (SIGTERM, SIGKILL after {})",
        req.job,
        Compact(timing.kill_grace)
    );
    let status = running.stop(timing.kill_grace).await?;
    Ok(Ending::Lost { status })
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

/// CMD, running in its own process group.
struct Running {
    child: Child,
    /// None only if the child was already reaped when we asked.
    pgid: Option<libc::pid_t>,
}

impl Running {
    /// Sends `signo` to CMD's whole process group.
    fn signal(&self, signo: i32) {
        if let Some(pgid) = self.pgid {
            // SAFETY: plain syscall; a group that is already gone just yields ESRCH.
            unsafe {
                libc::kill(-pgid, signo);
            }
        }
    }

    /// Whether any process of CMD's group is still around.
    fn group_alive(&self) -> bool {
        // SAFETY: kill with signal 0 only checks that the group exists.
        self.pgid
            .is_some_and(|pgid| unsafe { libc::kill(-pgid, 0) == 0 })
    }

    /// SIGTERM to the group, SIGKILL after `grace`; returns how CMD ended.
    async fn stop(&mut self, grace: Duration) -> Result<ExitStatus, ClientError> {
        self.signal(libc::SIGTERM);
        if let Ok(status) = tokio::time::timeout(grace, self.child.wait()).await {
            return status.map_err(wait_error);
        }
        self.signal(libc::SIGKILL);
        if self.pgid.is_none() {
            let _ = self.child.start_kill();
        }
        self.child.wait().await.map_err(wait_error)
    }

    /// After CMD has exited: processes it left in its group get SIGTERM, then SIGKILL.
    async fn stop_leftovers(&self, grace: Duration) {
        if !self.group_alive() {
            return;
        }
        self.signal(libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while self.group_alive() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.group_alive() {
            self.signal(libc::SIGKILL);
        }
    }
}

fn wait_error(e: std::io::Error) -> ClientError {
    ClientError::Local(format!("cannot wait for the command: {e}"))
}

/// What the final release found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Released {
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
async fn release(api: &Api, req: &LockRequest, lost: bool) -> Released {
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

/// The shell's convention: the exit code, or 128+N for death by signal N.
fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signo)) => 128u8.wrapping_add(signo as u8),
        (None, None) => 1,
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("it exited with {code}"),
        (None, Some(signo)) => format!("it ended by {}", signal_name(signo)),
        (None, None) => "it ended".to_owned(),
    }
}

fn signal_name(signo: i32) -> &'static str {
    match signo {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGKILL => "SIGKILL",
        _ => "a signal",
    }
}

/// The signals `foolock lock` passes on to CMD. Installed before acquiring, so a signal
/// while waiting cancels the wait instead of killing us mid-request.
struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> Result<Signals, ClientError> {
        let make = |kind| {
            signal(kind).map_err(|e| ClientError::Local(format!("cannot handle signals: {e}")))
        };
        Ok(Signals {
            int: make(SignalKind::interrupt())?,
            term: make(SignalKind::terminate())?,
            hup: make(SignalKind::hangup())?,
        })
    }

    /// The next signal's number. Cancel-safe.
    async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
            _ = self.hup.recv() => libc::SIGHUP,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_stops_the_command_well_inside_the_lease() {
        let t = Timing::for_ttl(Duration::from_secs(30));
        assert_eq!(t.renew_every, Duration::from_secs(10));
        assert_eq!(t.kill_grace, Duration::from_secs(3));
        assert_eq!(t.margin, Duration::from_secs(6));
        assert_eq!(t.retry_every, Duration::from_secs(2));

        for ttl in [1, 3, 10, 30, 300, 3600].map(Duration::from_secs) {
            let t = Timing::for_ttl(ttl);
            // SIGKILL lands before the lease ends, with slack to spare.
            assert!(t.kill_grace < t.margin && t.margin < ttl, "{ttl:?}");
            // At least one retry fits between a failed renewal and the stop.
            assert!(t.renew_every + t.retry_every < ttl - t.margin, "{ttl:?}");
        }
    }

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGTERM)), 128 + 15);
    }

    #[test]
    fn wait_cap_is_read_from_max_wait_ms_and_from_older_servers_message() {
        let mut body = LockReply::error("wait must be at least 0 and at most 1m30s");
        let reply = |body: &LockReply| Reply {
            status: StatusCode::BAD_REQUEST,
            body: body.clone(),
        };
        assert_eq!(
            server_wait_cap(&reply(&body)),
            Some(Duration::from_secs(90))
        );
        // The field wins over the message.
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
