//! `keep_awake`: while at least one lease is held, the agent holds an idle-sleep inhibitor
//! ([`platform::awake`]), so the referee does not doze off while other devices still need it to
//! renew and release. It is released as soon as nothing is held (or the menu switches it off).
//!
//! Driven by the lock service's events and the menu's switch only: it sleeps on them and never
//! wakes on a timer. A lease running out arrives as the engine's `Expired` event (its timer
//! runs anyway), so the inhibitor goes with the last held lease.

use crate::engine::{JobLease, LeaseState};
use crate::platform::awake::{self, Inhibitor};
use crate::service::LockService;
use crate::time::Mono;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// Whether the machine should be kept awake for `jobs` at `now`: some lease is held (not
/// lapsed into its grace period or beyond).
pub fn wanted(jobs: &[JobLease], now: Mono) -> bool {
    jobs.iter().any(|j| j.lease.state(now) == LeaseState::Held)
}

/// Holds the inhibitor whenever `switch` is on and a lease is held, until shutdown.
pub async fn run(
    service: LockService,
    mut switch: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    let mut events = service.subscribe();
    let mut held: Option<Inhibitor> = None;
    // Set after a failed attempt, so a missing logind costs one try (and one log line) per
    // stretch of held jobs, not one per lock event.
    let mut tried = false;
    loop {
        let (jobs, now) = service.list();
        let want = *switch.borrow_and_update() && wanted(&jobs, now.mono);
        if !want {
            tried = false;
            if held.take().is_some() {
                tracing::info!("no job held: idle sleep allowed again");
            }
        } else if held.is_none() && !tried {
            tried = true;
            match awake::prevent_idle_sleep(awake::REASON).await {
                Ok(inhibitor) => {
                    tracing::info!("jobs are held: holding off idle sleep");
                    held = Some(inhibitor);
                }
                Err(err) => tracing::warn!("cannot hold off idle sleep: {err:#}"),
            }
        }
        tokio::select! {
            event = events.recv() => match event {
                // A lag only means missed events; the next `list` is current regardless.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            changed = switch.changed() => if changed.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
        // A burst of events needs one look, not one each.
        while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = events.try_recv() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Lease;
    use std::time::{Duration, SystemTime};

    fn lease(expires: u64, grace: u64) -> JobLease {
        let expires = Mono::from_duration(Duration::from_secs(expires));
        JobLease {
            job: "backup".into(),
            lease: Lease {
                holder: "laptop1".into(),
                run: None,
                token: 1,
                ttl: Duration::from_secs(30),
                acquired_at: SystemTime::UNIX_EPOCH,
                expires,
                grace_until: expires + Duration::from_secs(grace),
            },
        }
    }

    #[test]
    fn only_a_lease_still_running_keeps_the_machine_awake() {
        let at = |secs| Mono::from_duration(Duration::from_secs(secs));
        assert!(!wanted(&[], at(0)));
        assert!(wanted(&[lease(30, 5)], at(29)));
        // In its grace period, or past it, the lease no longer counts.
        assert!(!wanted(&[lease(30, 5)], at(31)));
        assert!(!wanted(&[lease(30, 5)], at(40)));
        assert!(wanted(&[lease(30, 5), lease(60, 0)], at(31)));
    }
}
