//! Waiting for a busy job, shared by `foolock lock` and `acquire --wait`: the server-side
//! long-poll (`wait=`), never a client-side polling loop. A wait longer than the server allows
//! (its `max_wait`) becomes several long-polls in a row; a 503 is waited out.
//!
//! [`Waiting`] only decides (how long the next request may wait, what a reply means); the
//! callers send the requests, so each can do its own bookkeeping around them.

use super::http::Reply;
use crate::api::wire::LockReply;
use crate::time::Mono;
use hyper::StatusCode;
use std::time::Duration;

/// Waits longer than this are split into several long-polls (the server caps each one).
pub const MAX_WAIT_CHUNK: Duration = Duration::from_secs(300);

/// One wait for a job, from its start to when it gives up.
#[derive(Debug, Clone, Copy)]
pub struct Waiting {
    give_up: Mono,
    /// The longest wait to ask for in one request: shrinks to the server's cap once known.
    chunk: Duration,
}

/// What to do after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The reply is the answer (a grant, a refusal once the wait is over, an error).
    Done,
    /// Ask again after `pause`.
    Again { pause: Duration },
}

impl Waiting {
    /// A wait of `wait` starting at `now`.
    pub fn new(now: Mono, wait: Duration) -> Waiting {
        Waiting {
            give_up: now + wait,
            chunk: MAX_WAIT_CHUNK,
        }
    }

    /// How long the request sent at `now` may ask the server to wait (zero: do not wait).
    pub fn next_wait(&self, now: Mono) -> Duration {
        now.until(self.give_up).min(self.chunk)
    }

    /// How long is left of the wait at `now`.
    pub fn left(&self, now: Mono) -> Duration {
        now.until(self.give_up)
    }

    /// Judges `reply` to a request sent at `sent` that asked to wait `asked` and came back at
    /// `received`.
    pub fn after(
        &mut self,
        reply: &Reply<LockReply>,
        sent: Mono,
        asked: Duration,
        received: Mono,
    ) -> Next {
        let more = received < self.give_up;
        match reply.status {
            StatusCode::CONFLICT if more => {
                // The long-poll ended without a grant; ask again for what remains. A reply that
                // came back well before its wait would make this a hot loop: pace it.
                let early = received < sent + asked.saturating_sub(Duration::from_secs(1));
                Next::Again {
                    pause: if early {
                        Duration::from_secs(1).min(received.until(self.give_up))
                    } else {
                        Duration::ZERO
                    },
                }
            }
            StatusCode::BAD_REQUEST if !asked.is_zero() => match server_wait_cap(reply) {
                // The server allows shorter waits than we asked for: ask for its longest.
                Some(cap) if !cap.is_zero() && cap < self.chunk => {
                    self.chunk = cap;
                    Next::Again {
                        pause: Duration::ZERO,
                    }
                }
                _ => Next::Done,
            },
            StatusCode::SERVICE_UNAVAILABLE if more => Next::Again {
                pause: unavailable_pause(reply.body.retry_after_ms, received.until(self.give_up)),
            },
            _ => Next::Done,
        }
    }
}

/// The longest wait the server allows, from its refusal of ours (`max_wait_ms`).
fn server_wait_cap(reply: &Reply<LockReply>) -> Option<Duration> {
    reply.body.max_wait_ms.map(Duration::from_millis)
}

/// How long to pause after a 503 with `left` of the wait remaining: the server's hint (or a
/// second), at least 200 ms so we do not hammer it, but never past the end of the wait.
fn unavailable_pause(retry_after_ms: Option<u64>, left: Duration) -> Duration {
    retry_after_ms
        .map_or(Duration::from_secs(1), Duration::from_millis)
        .max(Duration::from_millis(200))
        .min(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: StatusCode, body: LockReply) -> Reply<LockReply> {
        Reply { status, body }
    }

    fn at(secs: u64) -> Mono {
        Mono::from_duration(Duration::from_secs(secs))
    }

    #[test]
    fn waits_longer_than_a_chunk_become_several_long_polls_until_the_end() {
        let mut w = Waiting::new(at(0), Duration::from_secs(700));
        assert_eq!(w.next_wait(at(0)), MAX_WAIT_CHUNK);
        let busy = reply(StatusCode::CONFLICT, LockReply::default());
        let next = w.after(&busy, at(0), MAX_WAIT_CHUNK, at(300));
        assert_eq!(
            next,
            Next::Again {
                pause: Duration::ZERO
            }
        );
        assert_eq!(w.next_wait(at(600)), Duration::from_secs(100));
        // At the end of the wait a refusal is the answer.
        assert_eq!(
            w.after(&busy, at(600), Duration::from_secs(100), at(700)),
            Next::Done
        );
        // A refusal that came back long before its wait is paced, not retried at once.
        let mut w = Waiting::new(at(0), Duration::from_secs(60));
        let next = w.after(&busy, at(0), Duration::from_secs(60), at(2));
        assert_eq!(
            next,
            Next::Again {
                pause: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn wait_cap_is_read_from_max_wait_ms_not_from_the_message() {
        let mut w = Waiting::new(at(0), Duration::from_secs(600));
        let mut body = LockReply::error("wait must be at least 0 and at most 1m30s");
        let refused = |body: &LockReply| reply(StatusCode::BAD_REQUEST, body.clone());
        assert_eq!(
            w.after(&refused(&body), at(0), MAX_WAIT_CHUNK, at(0)),
            Next::Done
        );
        body.max_wait_ms = Some(2_500);
        assert_eq!(
            w.after(&refused(&body), at(0), MAX_WAIT_CHUNK, at(0)),
            Next::Again {
                pause: Duration::ZERO
            }
        );
        assert_eq!(w.next_wait(at(0)), Duration::from_millis(2_500));
        // The same cap again cannot help: it is the answer.
        assert_eq!(
            w.after(&refused(&body), at(0), Duration::from_millis(2_500), at(0)),
            Next::Done
        );
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
