//! The lock engine shared by the HTTP handlers, the tray and the timer.
//!
//! One `std::sync::Mutex` guards the engine and the senders of waiting requests; it is never
//! held across an `.await`, so a blocking mutex is cheaper and simpler than tokio's. Every
//! change is published on a broadcast channel after the lock is dropped from the engine's
//! point of view (events are drained under the lock, so their order is the engine's order).

use crate::engine::{
    Clock, Denied, Engine, Event, EventKind, Grant, JobLease, Lease, Mono, NotHolder, Now, Rules,
    WaitOutcome, WaiterId,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, oneshot};
use tokio_util::sync::CancellationToken;

/// While deadlines are pending the timer re-checks at least this often, because tokio's
/// sleep stops while the machine is suspended and would otherwise oversleep after a wake.
const TIMER_MAX_SLEEP: Duration = Duration::from_secs(60);

/// A cheap, cloneable handle to the lock table.
#[derive(Clone)]
pub struct LockService {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    events: broadcast::Sender<Event>,
    /// Wakes the timer task when an earlier deadline may exist.
    timer: Notify,
}

struct State {
    engine: Engine,
    waiters: HashMap<WaiterId, oneshot::Sender<Grant>>,
    timer_target: Option<Mono>,
}

impl LockService {
    pub fn new(rules: Rules, clock: Arc<dyn Clock>) -> Self {
        Self::from_engine(Engine::new(rules), clock)
    }

    /// Wraps an engine prepared elsewhere (e.g. restored from saved state).
    pub fn from_engine(engine: Engine, clock: Arc<dyn Clock>) -> Self {
        let (events, _) = broadcast::channel(1024);
        LockService {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    engine,
                    waiters: HashMap::new(),
                    timer_target: None,
                }),
                clock,
                events,
                timer: Notify::new(),
            }),
        }
    }

    /// Events from now on. A receiver that falls more than 1024 events behind loses the
    /// oldest (and is told so by `RecvError::Lagged`); subscribers resync from `list`.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    pub fn rules(&self) -> Rules {
        self.lock().engine.rules().clone()
    }

    pub fn now(&self) -> Now {
        self.inner.clock.now()
    }

    /// Acquires or renews at once.
    pub fn acquire(&self, job: &str, client: &str, ttl: Duration) -> Result<Grant, Denied> {
        self.with_engine(|engine, now| engine.acquire(job, client, ttl, now))
    }

    /// Acquires, waiting up to `wait` for a busy job. Waiters are served in arrival order. If
    /// the returned future is dropped (the client disconnected) the waiter is forgotten, and a
    /// grant that raced with the drop is released again, so nobody holds a lock unknowingly.
    pub async fn acquire_waiting(
        &self,
        job: &str,
        client: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Grant, Denied> {
        let (tx, rx) = oneshot::channel();
        let outcome = self.with_state(|state, now| {
            let outcome = state.engine.acquire_or_wait(job, client, ttl, now);
            if let WaitOutcome::Queued(id) = outcome {
                state.waiters.insert(id, tx);
            }
            outcome
        });
        let id = match outcome {
            WaitOutcome::Granted(grant) => return Ok(grant),
            WaitOutcome::Denied(denied) => return Err(denied),
            WaitOutcome::Queued(id) => id,
        };
        let mut guard = WaitGuard {
            service: self,
            id,
            job,
            client,
            rx: Some(rx),
        };
        let rx = guard.rx.as_mut().expect("set above");
        if let Ok(Ok(grant)) = tokio::time::timeout(wait, rx).await {
            guard.rx = None;
            return Ok(grant);
        }
        // Timed out: leave the queue, unless the grant arrived in the meantime.
        let granted = self.with_state(|state, _| {
            if state.engine.cancel_wait(id) {
                state.waiters.remove(&id);
                None
            } else {
                guard.rx.take().and_then(|mut rx| rx.try_recv().ok())
            }
        });
        guard.rx = None;
        match granted {
            Some(grant) => Ok(grant),
            None => self.acquire(job, client, ttl),
        }
    }

    pub fn release(&self, job: &str, client: &str) -> Result<Lease, NotHolder> {
        self.with_engine(|engine, now| engine.release(job, client, now))
    }

    /// Frees `job` whatever its holder (the tray's "Force release").
    pub fn force_release(&self, job: &str) -> Option<Lease> {
        self.with_engine(|engine, now| engine.force_release(job, now))
    }

    /// The lease recorded for `job`, with the instant it was read at.
    pub fn status(&self, job: &str) -> (Option<Lease>, Now) {
        self.with_engine(|engine, now| (engine.get(job, now), now))
    }

    /// Every job with a recorded holder, sorted by name, with the instant it was read at.
    pub fn list(&self) -> (Vec<JobLease>, Now) {
        self.with_engine(|engine, now| (engine.list(now), now))
    }

    /// Runs `f` on the engine at the current instant, then publishes what changed.
    pub fn with_engine<T>(&self, f: impl FnOnce(&mut Engine, Now) -> T) -> T {
        self.with_state(|state, now| f(&mut state.engine, now))
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State, Now) -> T) -> T {
        let mut state = self.lock();
        // Read the clock under the lock so the engine sees time in order.
        let now = self.inner.clock.now();
        let result = f(&mut state, now);
        self.settle(&mut state, now);
        result
    }

    /// Hands grants to woken waiters, publishes events and re-arms the timer.
    fn settle(&self, state: &mut State, now: Now) {
        loop {
            let woken = state.engine.take_woken();
            if woken.is_empty() {
                break;
            }
            for w in woken {
                let delivered = state
                    .waiters
                    .remove(&w.waiter)
                    .is_some_and(|tx| tx.send(w.grant.clone()).is_ok());
                if !delivered {
                    // Its request is gone: undo the grant (which may wake the next waiter).
                    let _ = state
                        .engine
                        .release(&w.grant.job, &w.grant.lease.holder, now);
                }
            }
        }
        for event in state.engine.take_events() {
            log_event(&event);
            // No receivers is fine: nobody is listening yet.
            let _ = self.inner.events.send(event);
        }
        let next = state.engine.next_deadline();
        if next != state.timer_target
            && next.is_some_and(|n| state.timer_target.is_none_or(|t| n < t))
        {
            self.inner.timer.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the engine half-updated in a way that
        // breaks its invariants worse than refusing service would, so keep going.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Advances the table at each deadline (expiry, end of grace, eviction) so events fire on
    /// time and waiters are served. Sleeps without waking while nothing is pending.
    pub async fn run_timer(self, shutdown: CancellationToken) {
        loop {
            let sleep_for = {
                let mut state = self.lock();
                let next = state.engine.next_deadline();
                state.timer_target = next;
                next.map(|at| self.now().mono.until(at).min(TIMER_MAX_SLEEP))
            };
            match sleep_for {
                Some(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => self.with_engine(|engine, now| engine.advance(now)),
                        _ = self.inner.timer.notified() => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
                None => {
                    tokio::select! {
                        _ = self.inner.timer.notified() => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        }
    }
}

/// Forgets a queued waiter whose request went away; releases a grant that raced with it.
struct WaitGuard<'a> {
    service: &'a LockService,
    id: WaiterId,
    job: &'a str,
    client: &'a str,
    rx: Option<oneshot::Receiver<Grant>>,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        self.service.with_state(|state, now| {
            if state.engine.cancel_wait(self.id) {
                state.waiters.remove(&self.id);
            } else if let Ok(grant) = rx.try_recv() {
                tracing::info!(
                    job = self.job,
                    client = self.client,
                    "waiter disconnected; releasing its grant"
                );
                let _ = state.engine.release(&grant.job, &grant.lease.holder, now);
            }
        });
    }
}

fn log_event(event: &Event) {
    let (job, holder, token) = (&event.job, &event.holder, event.token);
    match &event.kind {
        EventKind::Renewed => tracing::debug!(job, holder, token, "renewed"),
        EventKind::Acquired => tracing::info!(job, holder, token, "acquired"),
        EventKind::Released => tracing::info!(job, holder, token, "released"),
        EventKind::ForceReleased => tracing::warn!(job, holder, token, "force released"),
        EventKind::Expired => tracing::info!(job, holder, token, "lease expired"),
        EventKind::TakenOver {
            previous,
            lapsed_for,
            ..
        } => tracing::warn!(
            job,
            holder,
            token,
            previous,
            lapsed_ms = lapsed_for.as_millis() as u64,
            "taken over after lapsed lease"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SystemClock;
    use std::time::Instant;

    #[tokio::test]
    async fn expiry_event_fires_at_the_deadline_without_a_request() {
        let service = LockService::new(
            Rules {
                grace: Duration::from_secs(1),
                ..Rules::default()
            },
            Arc::new(SystemClock),
        );
        let shutdown = CancellationToken::new();
        tokio::spawn(service.clone().run_timer(shutdown.clone()));
        let mut events = service.subscribe();
        let started = Instant::now();
        service
            .acquire("j", "a", Duration::from_millis(500))
            .unwrap();
        assert_eq!(events.recv().await.unwrap().kind, EventKind::Acquired);
        let expired = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("expiry event within 5 s")
            .unwrap();
        assert_eq!(expired.kind, EventKind::Expired);
        assert!(started.elapsed() >= Duration::from_millis(500));
        shutdown.cancel();
    }

    #[tokio::test]
    async fn waiter_is_served_by_the_timer_when_grace_ends() {
        let service = LockService::new(
            Rules {
                grace: Duration::from_secs(1),
                ..Rules::default()
            },
            Arc::new(SystemClock),
        );
        let shutdown = CancellationToken::new();
        tokio::spawn(service.clone().run_timer(shutdown.clone()));
        service
            .acquire("j", "a", Duration::from_millis(300))
            .unwrap();
        let grant = service
            .acquire_waiting("j", "b", Duration::from_secs(10), Duration::from_secs(10))
            .await
            .expect("granted after grace");
        assert_eq!(grant.lease.holder, "b");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn dropped_waiter_is_forgotten() {
        let service = LockService::new(Rules::default(), Arc::new(SystemClock));
        service.acquire("j", "a", Duration::from_secs(60)).unwrap();
        let waiting =
            service.acquire_waiting("j", "b", Duration::from_secs(10), Duration::from_secs(60));
        // Poll it once so it queues, then drop it as a disconnecting client would.
        let _ = tokio::time::timeout(Duration::from_millis(100), waiting).await;
        assert_eq!(service.with_engine(|e, _| e.waiting()), 0);
        service.release("j", "a").unwrap();
        assert!(
            service.status("j").0.is_none(),
            "nobody was granted the job"
        );
    }
}
