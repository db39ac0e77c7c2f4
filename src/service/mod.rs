//! The lock engine shared by the HTTP handlers, the tray and the timer.
//!
//! One `std::sync::Mutex` guards the engine and the senders of waiting requests; it is never
//! held across an `.await`, so a blocking mutex is cheaper and simpler than tokio's. Events
//! are drained and broadcast under that lock, so subscribers see them in the engine's order;
//! a broadcast send never blocks, so this costs nothing.
//!
//! [`LockService::start`] starts the expiry timer and, with a [`Store`], the writer
//! (`saving.rs`: what must be on disk before a reply); the [`Running`] handle it returns stops
//! both. With a store, every change of holder is numbered under the lock, and the request that
//! made it (or the waiter it was handed to) replies only once it is on disk.

mod saving;

use crate::engine::{
    Denied, Engine, Event, EventKind, Grant, GrantKind, JobLease, Lease, NotHolder, Rules,
    WaitOutcome, WaiterId, Who,
};
use crate::store::Store;
use crate::time::{Clock, Mono, Now};
use saving::{Pending, Saver, note_longer_ttl};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// While leases are held or in grace the timer re-checks at least this often, because
/// tokio's sleep stops while the machine is suspended and would otherwise oversleep after a
/// wake. With only expired leases left (whose deadline is merely forgetting them), oversleeping
/// is harmless, so the timer then sleeps until that deadline and nothing wakes meanwhile.
const TIMER_MAX_SLEEP: Duration = Duration::from_secs(60);

/// How long a reply waits for its grant to reach the disk. A disk that takes longer is stuck;
/// the grant is then undone and the client told it was not granted, rather than holding a job
/// it does not know it holds.
pub(crate) const SAVE_DEADLINE: Duration = Duration::from_secs(10);

/// Why [`LockService::acquire`] or [`LockService::acquire_waiting`] did not grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    #[error(transparent)]
    Denied(Denied),
    #[error("the server is shutting down")]
    Stopped,
    #[error(
        "the grant could not be saved within {}s (the server's disk is not answering), so it \
         was undone: the job was not granted",
        SAVE_DEADLINE.as_secs()
    )]
    NotSaved,
}

/// One job as of one instant, from [`LockService::status`].
#[derive(Debug, Clone)]
pub struct JobStatus {
    pub lease: Option<Lease>,
    /// When it was read.
    pub now: Now,
    /// The newest fencing token issued for any job.
    pub last_token: u64,
    /// Clients queued for the job.
    pub waiting: usize,
}

/// A cheap, cloneable handle to the lock table.
#[derive(Clone)]
pub struct LockService {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// The engine's rules, which never change: read without the lock.
    rules: Rules,
    clock: Arc<dyn Clock>,
    events: broadcast::Sender<Event>,
    /// Wakes the timer task when an earlier deadline may exist.
    timer: Notify,
    /// Bumped when the number of queued waiters changes (queueing and giving up publish no
    /// lock event, yet the status page shows the number).
    waiters: watch::Sender<u64>,
    /// Present when changes are saved: wakes the writer, tells replies what is on disk.
    saver: Option<Saver>,
}

struct State {
    engine: Engine,
    waiters: HashMap<WaiterId, oneshot::Sender<Grant>>,
    timer_target: Option<Mono>,
    /// Whether the timer's current sleep is capped at [`TIMER_MAX_SLEEP`] (it is only while
    /// leases are live); a new live lease must wake an uncapped timer.
    timer_capped: bool,
    /// Queued waiters as of the last change, to tell when the number moves.
    waiting: usize,
    /// What must be saved, and what is on disk.
    pending: Pending,
}

/// The service with its background work running: the expiry timer and, with a store, the
/// writer. [`shutdown`](Self::shutdown) stops both and waits for the final write; dropping
/// the handle only asks them to stop (the writer still makes its final write).
pub struct Running {
    service: LockService,
    stop: CancellationToken,
    timer: Option<tokio::task::JoinHandle<()>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn service(&self) -> &LockService {
        &self.service
    }

    /// Stops the timer, then makes the final write and stops the writer.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(timer) = self.timer.take() {
            let _ = timer.await;
        }
        self.service.stop_writer();
        if let Some(writer) = self.writer.take() {
            // The final write blocks on the disk: keep it off the async threads.
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
        self.service.stop_writer();
    }
}

impl LockService {
    /// A service in memory with no timer: deadlines pass only when an operation looks.
    /// For tests of the layers above; the program uses [`start`](Self::start).
    pub fn new(rules: Rules, clock: Arc<dyn Clock>) -> Self {
        Self::build(Engine::new(rules), clock, false)
    }

    /// Starts the service on `engine` (e.g. restored from saved state): its expiry timer and,
    /// with a `store`, the writer that saves every change there. Replies that report a change
    /// of holder wait until it is on disk. Must be called within a tokio runtime.
    pub fn start(engine: Engine, clock: Arc<dyn Clock>, store: Option<Store>) -> Running {
        let service = Self::build(engine, clock, store.is_some());
        let stop = CancellationToken::new();
        let timer = tokio::spawn(service.clone().run_timer(stop.clone()));
        let writer = store.map(|store| {
            let service = service.clone();
            std::thread::Builder::new()
                .name("foolock-store".into())
                .spawn(move || saving::write_loop(service, store))
                .expect("cannot start the state writer thread")
        });
        Running {
            service,
            stop,
            timer: Some(timer),
            writer,
        }
    }

    fn build(engine: Engine, clock: Arc<dyn Clock>, saves: bool) -> Self {
        let (events, _) = broadcast::channel(1024);
        let pending = Pending::new(engine.last_token());
        let rules = engine.rules().clone();
        LockService {
            inner: Arc::new(Inner {
                rules,
                state: Mutex::new(State {
                    engine,
                    waiters: HashMap::new(),
                    timer_target: None,
                    timer_capped: false,
                    waiting: 0,
                    pending,
                }),
                clock,
                events,
                timer: Notify::new(),
                waiters: watch::Sender::new(0),
                saver: saves.then(Saver::new),
            }),
        }
    }

    /// Events from now on. A receiver that falls more than 1024 events behind loses the
    /// oldest (and is told so by `RecvError::Lagged`); subscribers resync from `list`.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Changes whenever the number of queued waiters changes; closed when the service is
    /// dropped.
    pub fn waiters_changed(&self) -> watch::Receiver<u64> {
        self.inner.waiters.subscribe()
    }

    pub fn rules(&self) -> &Rules {
        &self.inner.rules
    }

    pub fn now(&self) -> Now {
        self.inner.clock.now()
    }

    /// Acquires or renews at once; a grant is on disk before this returns. A new grant that
    /// cannot be saved within [`SAVE_DEADLINE`], or whose caller goes away before it is
    /// saved, is undone.
    pub async fn acquire<'a>(
        &self,
        job: &str,
        who: impl Into<Who<'a>>,
        ttl: Duration,
    ) -> Result<Grant, WaitError> {
        self.acquire_at(job, who, ttl).await.0
    }

    /// [`acquire`](Self::acquire), also returning an instant the answer still holds at, for
    /// its reply's remaining times: the one the engine decided at, unless the grant then
    /// waited for the disk (read again after the wait). Most renewals wait for nothing; for
    /// them this saves three of ten clock reads (under load, `clock_gettime` was 2.8% of a
    /// renewal's `perf` samples against the ceiling's 0.4%).
    pub async fn acquire_at<'a>(
        &self,
        job: &str,
        who: impl Into<Who<'a>>,
        ttl: Duration,
    ) -> (Result<Grant, WaitError>, Now) {
        let who = who.into();
        let ((result, renewal, now), seq) = self.with_state_seq(|state, now| {
            let ttl_before = state.engine.peek(job).map(|lease| lease.ttl);
            let result = state.engine.acquire(job, who, ttl, now);
            note_longer_ttl(&mut state.pending, ttl_before, &result);
            // Under the same lock: the change a renewal's reply must wait for, if any.
            let renewal = match &result {
                Ok(grant) => state.pending.change_for_renewal(grant),
                Err(_) => None,
            };
            (result, renewal, now)
        });
        let grant = match result {
            Ok(grant) => grant,
            Err(denied) => return (Err(WaitError::Denied(denied)), now),
        };
        match (&self.inner.saver, seq.or(renewal)) {
            // Most renewals wait for nothing; boxing the wait keeps their future (which the
            // HTTP layer allocates and moves for every request) small.
            (Some(_), Some(seq)) => {
                let result = Box::pin(self.deliver(grant, Some(seq))).await;
                (result, self.now())
            }
            _ => (Ok(grant), now),
        }
    }

    /// Waits until change `seq` (the one that made `grant`, if any) is on disk, at most
    /// [`SAVE_DEADLINE`]. A new holder's grant that misses the deadline, or whose future is
    /// dropped first, is released again: nobody may hold a job without having been told so.
    /// (A renewal has nothing to undo.)
    async fn deliver(&self, grant: Grant, seq: Option<u64>) -> Result<Grant, WaitError> {
        // Most renewals wait for nothing: no guard and no timer for them.
        let (Some(saver), Some(seq)) = (&self.inner.saver, seq) else {
            return Ok(grant);
        };
        let mut unsaved = UnsavedGrant {
            service: self,
            grant: Some(grant),
        };
        let saved = tokio::time::timeout(SAVE_DEADLINE, saver.durable(seq))
            .await
            .is_ok();
        if saved {
            Ok(unsaved.grant.take().expect("still set"))
        } else {
            // `unsaved` undoes the grant as it drops.
            Err(WaitError::NotSaved)
        }
    }

    /// Acquires, waiting up to `wait` for a busy job. Waiters are served in arrival order. If
    /// the returned future is dropped (the client disconnected) the waiter is forgotten, and a
    /// grant that raced with the drop is released again, so nobody holds a lock unknowingly.
    /// When `stop` is cancelled (the server is shutting down) a queued waiter leaves the
    /// queue at once and gets [`WaitError::Stopped`], unless it was granted first.
    pub async fn acquire_waiting<'a>(
        &self,
        job: &str,
        who: impl Into<Who<'a>>,
        ttl: Duration,
        wait: Duration,
        stop: &CancellationToken,
    ) -> Result<Grant, WaitError> {
        let who = who.into();
        let (tx, rx) = oneshot::channel();
        let ((outcome, renewal), seq) = self.with_state_seq(|state, now| {
            let ttl_before = state.engine.peek(job).map(|lease| lease.ttl);
            let outcome = state.engine.acquire_or_wait(job, who, ttl, now);
            let mut renewal = None;
            match &outcome {
                WaitOutcome::Queued(id) => {
                    state.waiters.insert(*id, tx);
                }
                WaitOutcome::Granted(grant) => {
                    note_longer_ttl(&mut state.pending, ttl_before, &Ok(grant.clone()));
                    renewal = state.pending.change_for_renewal(grant);
                }
                WaitOutcome::Denied(_) => {}
            }
            (outcome, renewal)
        });
        let id = match outcome {
            WaitOutcome::Granted(grant) => return self.deliver(grant, seq.or(renewal)).await,
            WaitOutcome::Denied(denied) => return Err(WaitError::Denied(denied)),
            WaitOutcome::Queued(id) => id,
        };
        let mut guard = WaitGuard {
            service: self,
            id,
            job,
            who,
            rx: Some(rx),
            unsaved: None,
        };
        let rx = guard.rx.as_mut().expect("set above");
        let waited = tokio::select! {
            waited = tokio::time::timeout(wait, rx) => waited.ok().and_then(Result::ok),
            _ = stop.cancelled() => None,
        };
        if let Some(grant) = waited {
            guard.rx = None;
            return guard.save_grant(grant).await;
        }
        // Timed out or stopped: leave the queue, unless the grant arrived in the meantime.
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
            Some(grant) => guard.save_grant(grant).await,
            None if stop.is_cancelled() => Err(WaitError::Stopped),
            None => self.acquire(job, who, ttl).await,
        }
    }

    /// Releases `job` held by `who` (see [`Who`] for runs); the release is on disk before this
    /// returns.
    pub async fn release<'a>(
        &self,
        job: &str,
        who: impl Into<Who<'a>>,
    ) -> Result<Lease, NotHolder> {
        let who = who.into();
        let (result, seq) = self.with_state_seq(|state, now| state.engine.release(job, who, now));
        self.durable(seq).await;
        result
    }

    /// Frees `job` whatever its holder (the tray's "Force release"); on disk before this
    /// returns.
    pub async fn force_release(&self, job: &str) -> Option<Lease> {
        let (result, seq) = self.with_state_seq(|state, now| state.engine.force_release(job, now));
        self.durable(seq).await;
        result
    }

    /// Writes the whole state now and waits until it is on disk (no-op without a store).
    pub async fn save(&self) {
        let ((), seq) = self.with_state_seq(|state, _| state.pending.must_save = true);
        self.durable(seq).await;
    }

    /// Waits until change `seq` (if any) is on disk.
    async fn durable(&self, seq: Option<u64>) {
        if let (Some(saver), Some(seq)) = (&self.inner.saver, seq) {
            saver.durable(seq).await;
        }
    }

    /// What `GET /lock` reports about `job`.
    pub fn status(&self, job: &str) -> JobStatus {
        self.with_engine(|engine, now| JobStatus {
            lease: engine.get(job, now),
            now,
            last_token: engine.last_token(),
            waiting: engine.waiting_for(job),
        })
    }

    /// Every job with a recorded holder, sorted by name, with the instant it was read at.
    /// Sorted after the lock is released, so a long listing holds up other requests less.
    pub fn list(&self) -> (Vec<JobLease>, Now) {
        let (mut all, now) = self.with_engine(|engine, now| (engine.leases(now), now));
        all.sort_unstable_by(|a, b| a.job.cmp(&b.job));
        (all, now)
    }

    /// Runs `f` on the engine at the current instant, then publishes what changed. Crate-only:
    /// a change made here would skip the wait for it to be on disk.
    pub(crate) fn with_engine<T>(&self, f: impl FnOnce(&mut Engine, Now) -> T) -> T {
        self.with_state(|state, now| f(&mut state.engine, now))
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State, Now) -> T) -> T {
        self.with_state_seq(f).0
    }

    /// Like `with_state`, also returning the number of the change it made that must be on
    /// disk before anyone is told, if it made one.
    fn with_state_seq<T>(&self, f: impl FnOnce(&mut State, Now) -> T) -> (T, Option<u64>) {
        let mut state = self.lock();
        // Read the clock under the lock so the engine sees time in order.
        let now = self.inner.clock.now();
        let result = f(&mut state, now);
        let seq = self.settle(&mut state, now);
        (result, seq)
    }

    /// Hands grants to woken waiters, publishes events, tells the writer what to save and
    /// re-arms the timer. Returns the number given to a change that must be durable.
    fn settle(&self, state: &mut State, now: Now) -> Option<u64> {
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
                        .release(&w.grant.job, &*w.grant.lease.holder, now);
                }
            }
        }
        let must_save = std::mem::take(&mut state.pending.must_save);
        let seq = match &self.inner.saver {
            Some(saver) => saver.record(&mut state.pending, state.engine.events(), must_save),
            None => None,
        };
        for event in state.engine.drain_events() {
            log_event(&event);
            // No receivers is fine: nobody is listening yet.
            let _ = self.inner.events.send(event);
        }
        let waiting = state.engine.waiting();
        if waiting != state.waiting {
            state.waiting = waiting;
            self.inner.waiters.send_modify(|n| *n += 1);
        }
        let next = state.engine.next_deadline();
        let earlier = next.is_some_and(|n| state.timer_target.is_none_or(|t| n < t));
        let uncapped_but_live = !state.timer_capped && state.engine.live_jobs() > 0;
        if earlier || uncapped_but_live {
            self.inner.timer.notify_one();
        }
        seq
    }

    /// Releases without waiting for the disk (for drop guards, which cannot wait).
    fn release_now(&self, job: &str, who: Who<'_>) -> Result<Lease, NotHolder> {
        self.with_engine(|engine, now| engine.release(job, who, now))
    }

    /// Releases `grant` if its holder still holds it under its token (without waiting).
    fn release_unsaved(&self, grant: &Grant) {
        self.with_engine(|engine, now| {
            if engine
                .peek(&grant.job)
                .is_some_and(|l| l.token == grant.lease.token)
            {
                let holder = Who {
                    client: &grant.lease.holder,
                    run: grant.lease.run.as_deref(),
                };
                let _ = engine.release(&grant.job, holder, now);
            }
        });
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the engine half-updated in a way that
        // breaks its invariants worse than refusing service would, so keep going.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Advances the table at each deadline (expiry, end of grace, eviction) so events fire on
    /// time and waiters are served. Sleeps without waking while nothing is pending.
    async fn run_timer(self, shutdown: CancellationToken) {
        loop {
            let sleep_for = {
                let mut state = self.lock();
                let next = state.engine.next_deadline();
                state.timer_target = next;
                let live = state.engine.live_jobs() > 0;
                state.timer_capped = live;
                next.map(|at| {
                    let until = self.now().mono.until(at);
                    if live {
                        until.min(TIMER_MAX_SLEEP)
                    } else {
                        until
                    }
                })
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

/// A grant on its way to disk: released again if dropped before it is taken out (its reply
/// was abandoned, or the disk missed the deadline).
struct UnsavedGrant<'a> {
    service: &'a LockService,
    grant: Option<Grant>,
}

impl Drop for UnsavedGrant<'_> {
    fn drop(&mut self) {
        let Some(grant) = self.grant.take() else {
            return;
        };
        if grant.kind == GrantKind::Renewed {
            return;
        }
        tracing::warn!(
            job = &*grant.job,
            holder = &*grant.lease.holder,
            token = grant.lease.token,
            "a grant was not saved before its reply was given up; releasing it"
        );
        self.service.release_unsaved(&grant);
    }
}

/// Forgets a queued waiter whose request went away; releases a grant that raced with it or
/// that was still being saved when the request went away.
struct WaitGuard<'a> {
    service: &'a LockService,
    id: WaiterId,
    job: &'a str,
    who: Who<'a>,
    rx: Option<oneshot::Receiver<Grant>>,
    unsaved: Option<Grant>,
}

impl WaitGuard<'_> {
    /// Waits until a grant handed to this waiter is on disk. The grant was numbered when it
    /// was handed over, before we could take the lock, so wait for everything numbered so
    /// far; if the request goes away meanwhile, or the disk does not answer within
    /// [`SAVE_DEADLINE`], `drop` releases the grant.
    async fn save_grant(&mut self, grant: Grant) -> Result<Grant, WaitError> {
        self.unsaved = Some(grant.clone());
        let seq = self.service.lock().pending.changes;
        let durable = self.service.durable(Some(seq));
        if tokio::time::timeout(SAVE_DEADLINE, durable).await.is_err() {
            return Err(WaitError::NotSaved);
        }
        self.unsaved = None;
        Ok(grant)
    }
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if let Some(grant) = self.unsaved.take() {
            tracing::info!(
                job = self.job,
                client = self.who.client,
                "waiter disconnected; releasing its grant"
            );
            let _ = self.service.release_now(&grant.job, self.who);
            return;
        }
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        self.service.with_state(|state, now| {
            if state.engine.cancel_wait(self.id) {
                state.waiters.remove(&self.id);
            } else if let Ok(grant) = rx.try_recv() {
                tracing::info!(
                    job = self.job,
                    client = self.who.client,
                    "waiter disconnected; releasing its grant"
                );
                let _ = state.engine.release(&grant.job, self.who, now);
            }
        });
    }
}

fn log_event(event: &Event) {
    let (job, holder, token) = (&*event.job, &*event.holder, event.token);
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
            previous = &**previous,
            lapsed_ms = lapsed_for.as_millis() as u64,
            "taken over after lapsed lease"
        ),
    }
}

#[cfg(test)]
mod tests;
