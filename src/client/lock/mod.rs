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
//!
//! Two halves meet only here, in [`run`]: the lease keeper (`lease`: HTTP, no processes)
//! and the supervisor of CMD (`supervisor`: processes and signals, no HTTP). The keeper's
//! one message is "the lease is lost, because …"; the supervisor's is "CMD exited with S".

mod lease;
mod supervisor;

use super::http::Api;
use super::output::Human;
use super::{ClientError, ExitCodes, Say};
use crate::engine::Who;
use crate::time::SystemClock;
use lease::{Held, Released};
use std::cell::Cell;
use std::ffi::OsString;
use std::process::{ExitCode, ExitStatus};
use std::time::Duration;
use supervisor::{Running, Signals, describe, exit_code, signal_name};

/// What to run, and under which lock.
#[derive(Debug, Clone)]
pub struct LockRequest {
    pub job: String,
    pub client: String,
    /// This run's own id (`run=`): the server tells it from other runs under the same client
    /// id, so runs on one machine take turns and never share a lease. See [`new_run_id`].
    pub run: String,
    pub ttl: Duration,
    pub wait: Duration,
    pub command: Vec<OsString>,
    /// Give CMD our stdin (and, on a terminal, make it the foreground job).
    pub stdin: bool,
    pub codes: ExitCodes,
    pub say: Say,
}

impl LockRequest {
    /// Who this run is to the server: our client id, as this run.
    pub fn who(&self) -> Who<'_> {
        Who {
            client: &self.client,
            run: Some(&self.run),
        }
    }
}

/// A run id no other run on this machine has: our pid and the time we started, in
/// nanoseconds. Only needs to differ from the other runs' under the same client id.
pub fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos:x}", std::process::id())
}

/// The schedule derived from the ttl: the one thing both halves share (the supervisor's
/// kill grace is part of the lease keeper's margin).
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

/// How the command's run ended.
enum Ending {
    Exited(ExitStatus),
    /// The lock was lost and CMD was stopped; the reason has been reported.
    Lost {
        status: ExitStatus,
    },
}

/// Acquires, runs, renews, releases. The exit code is the command's, or 75 (or the user's
/// `--failure-exit-code`) if the lock was lost, or 128+N if signal N arrived while we were
/// still waiting for the lock.
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
                lease::abandon(api, req, floor).await;
            }
            eprintln!(
                "foolock: {} while waiting for {}; the command was not started",
                signal_name(signo),
                req.job
            );
            return Ok(ExitCode::from(128 + signo as u8));
        }
        held = lease::acquire(api, req, timing, &clock, &may_hold) => held?,
    };
    let token = held.token.to_string();
    let env = [
        ("FOOLOCK_JOB", req.job.as_str()),
        ("FOOLOCK_CLIENT", req.client.as_str()),
        ("FOOLOCK_TOKEN", token.as_str()),
        ("FOOLOCK_SERVER", api.url()),
    ];
    let mut running = match supervisor::spawn(&req.command, &env, req.stdin) {
        Ok(running) => running,
        Err((code, message)) => {
            lease::release(api, req, false).await;
            eprintln!("foolock: {message}");
            return Ok(ExitCode::from(code));
        }
    };
    let ending = supervise(api, req, timing, held, &mut running, &mut signals).await;
    // Anything CMD started and left running in its group must not outlive the lock.
    running.stop_leftovers(timing.kill_grace).await;
    match ending {
        Ok(Ending::Exited(status)) => match lease::release(api, req, false).await {
            // Nothing of ours released it, so it was released or taken over while CMD ran,
            // between two renewals: CMD did not have the lock all along.
            Released::NotHolder => {
                eprintln!(
                    "foolock: lost the lock on {}: {} no longer held it when the command \
                     finished ({}); it was released or taken over while the command ran",
                    req.job,
                    req.client,
                    describe(status),
                );
                Ok(req.codes.lost())
            }
            Released::Yes | Released::Unknown => Ok(ExitCode::from(exit_code(status))),
        },
        Ok(Ending::Lost { status }) => {
            eprintln!(
                "foolock: {}: the command was stopped ({})",
                req.job,
                describe(status),
            );
            lease::release(api, req, true).await;
            Ok(req.codes.lost())
        }
        Err(e) => {
            lease::release(api, req, false).await;
            Err(e)
        }
    }
}

/// Runs CMD to its end while the lease is kept; passes signals on to it (a second SIGINT, the
/// user's second Ctrl-C, kills its group instead); stops it if the lease is lost.
async fn supervise(
    api: &Api,
    req: &LockRequest,
    timing: Timing,
    held: Held,
    running: &mut Running,
    signals: &mut Signals,
) -> Result<Ending, ClientError> {
    // One future for the whole run, so a signal passed on does not cut a renewal short.
    let keeping = lease::keep(api, req, timing, held);
    tokio::pin!(keeping);
    let mut interrupted = false;
    let lost = loop {
        tokio::select! {
            status = running.wait() => return Ok(Ending::Exited(status?)),
            signo = signals.recv() => {
                if signo == libc::SIGINT && interrupted {
                    running.signal(libc::SIGKILL);
                    eprintln!(
                        "foolock: second interrupt: killed the command and everything it \
                         started (SIGKILL to its process group)"
                    );
                    continue;
                }
                if signo == libc::SIGINT {
                    interrupted = true;
                    req.say.note(
                        "passed the interrupt on to the command; press Ctrl-C again to kill it",
                    );
                }
                running.signal(signo);
            }
            lost = &mut keeping => break lost,
        }
    };
    eprintln!(
        "foolock: lost the lock on {}: {}; stopping the command (SIGTERM, SIGKILL after {})",
        req.job,
        lost.why,
        Human(timing.kill_grace)
    );
    let status = running.stop(timing.kill_grace).await?;
    Ok(Ending::Lost { status })
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
}
