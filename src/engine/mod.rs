//! The lock table: who holds which job, until when, and who waits for it.
//!
//! Pure and synchronous: no I/O, no clocks, no async. Every operation takes a [`Now`] and first
//! advances the table to it, so rules hold at exact instants whatever the caller's timer does.
//!
//! Invariants:
//! - A job has at most one holder. A lease is *held* while `now < expires`, in *grace* while
//!   `expires <= now < grace_until` (only its holder may take it back), and *expired* after.
//! - Fencing tokens come from one counter and strictly increase with every new holder of any
//!   job; a renewal keeps its token.
//! - Waiters exist only for jobs that are held or in grace; the moment a job becomes free to
//!   others, its first waiter gets it (first come, first served).
//! - Memory is bounded: at most `max_jobs` entries (expired ones are evicted first and after
//!   `retention`), at most `max_waiters` waiters, and reads never create entries.

mod event;
mod restore;
mod saved;

#[cfg(test)]
mod tests;

pub use event::{Event, EventKind};
pub use restore::{Found, Restored, unseen_lease_may_run};
pub use saved::{SavedLease, SavedState, Watermarks};

use crate::time::{Compact, Mono, Now};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Policy knobs the engine enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub default_ttl: Duration,
    pub grace: Duration,
    pub max_ttl: Duration,
    pub max_jobs: usize,
    /// How long an expired lease keeps its last holder before it is forgotten.
    pub retention: Duration,
    pub max_waiters: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            default_ttl: Duration::from_secs(30),
            grace: Duration::from_secs(5),
            max_ttl: Duration::from_secs(24 * 3600),
            max_jobs: 10_000,
            retention: Duration::from_secs(24 * 3600),
            max_waiters: 10_000,
        }
    }
}

/// The longest name a job or client may have, in bytes of UTF-8.
pub(crate) const MAX_NAME_BYTES: usize = 256;

/// Why a job or client name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_NAME_BYTES} bytes of UTF-8")]
    TooLong,
    #[error("must not contain control characters")]
    Control,
}

/// Checks a job or client name: 1–256 bytes of UTF-8 without control characters.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        Err(NameError::Empty)
    } else if name.len() > MAX_NAME_BYTES {
        Err(NameError::TooLong)
    } else if name.chars().any(char::is_control) {
        Err(NameError::Control)
    } else {
        Ok(())
    }
}

impl Rules {
    /// Accepts a ttl in `(0, max_ttl]`.
    pub fn check_ttl(&self, ttl: Duration) -> Result<Duration, TtlOutOfRange> {
        if ttl.is_zero() || ttl > self.max_ttl {
            Err(TtlOutOfRange { max: self.max_ttl })
        } else {
            Ok(ttl)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ttl must be greater than 0 and at most {}", Compact(*.max))]
pub struct TtlOutOfRange {
    pub max: Duration,
}

/// Where a lease stands at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseState {
    Held,
    Grace,
    Expired,
}

impl LeaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Held => "held",
            LeaseState::Grace => "grace",
            LeaseState::Expired => "expired",
        }
    }
}

/// Who asks: a client id and, optionally, which run of that client (`run=` in the API).
///
/// The rules: a request *without* a run is the client as a whole, as in the original API (it
/// renews and releases the client's lease whatever run holds it). A request *with* a run is a
/// holder of its own: it renews and releases only a lease granted to that same run, and is
/// treated like another client otherwise (it queues, gets "held", waits out a grace period,
/// and takes over a lapsed lease as a fresh grant with a new token). So two runs on one
/// machine take turns, and a crashed run's lapsed lease is taken over rather than renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who<'a> {
    pub client: &'a str,
    pub run: Option<&'a str>,
}

impl<'a> From<&'a str> for Who<'a> {
    fn from(client: &'a str) -> Who<'a> {
        Who { client, run: None }
    }
}

impl<'a> From<&'a String> for Who<'a> {
    fn from(client: &'a String) -> Who<'a> {
        Who::from(client.as_str())
    }
}

impl Who<'_> {
    /// Whether this requester is `lease`'s holder: the same client, and the same run if it
    /// names one.
    pub fn holds(&self, lease: &Lease) -> bool {
        *lease.holder == *self.client
            && self.run.is_none_or(|run| lease.run.as_deref() == Some(run))
    }
}

/// A job's current holder and the terms of its lease.
///
/// The names are shared (`Arc<str>`): a lease is copied into every grant, event and listing,
/// and a renewal, the most frequent operation, then copies pointers instead of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The client id: the machine's name, as the tray and status show it.
    pub holder: Arc<str>,
    /// The run of the holder's that was granted the lease (`run=` in the API), if it said.
    /// Two runs under one client id are two holders; see [`Who`].
    pub run: Option<Arc<str>>,
    pub token: u64,
    pub ttl: Duration,
    /// Wall-clock time of the grant to this holder (renewals keep it), for display.
    pub acquired_at: SystemTime,
    pub expires: Mono,
    pub grace_until: Mono,
}

impl Lease {
    pub fn state(&self, now: Mono) -> LeaseState {
        if now < self.expires {
            LeaseState::Held
        } else if now < self.grace_until {
            LeaseState::Grace
        } else {
            LeaseState::Expired
        }
    }
}

/// A job name with its lease, as listed by [`Engine::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLease {
    /// Shared with the table's entry.
    pub job: Arc<str>,
    pub lease: Lease,
}

/// How a client came to hold a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantKind {
    /// The job was free.
    Acquired,
    /// The client already held it; the lease was extended.
    Renewed,
    /// The previous holder's lease had expired past its grace period.
    TookOver {
        previous: Arc<str>,
        /// How long ago the previous lease expired.
        lapsed_for: Duration,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Shared with the table's entry.
    pub job: Arc<str>,
    pub kind: GrantKind,
    pub lease: Lease,
}

/// Why a client was not granted a job. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("held by another client")]
    Held(Lease),
    #[error("grace period active")]
    Grace(Lease),
    #[error("too many jobs: at most {max_jobs} can be held at once")]
    Full { max_jobs: usize },
    #[error("too many clients waiting: at most {max_waiters} can wait at once")]
    TooManyWaiters { max_waiters: usize },
    #[error(
        "the server lost its saved state and refuses new grants until its old leases have surely expired"
    )]
    Quarantined { until: Mono },
    /// The last fencing token (`u64::MAX`) has been issued: a new grant would need a larger
    /// one. Only a corrupt or hostile state file gets a counter this high.
    #[error(
        "this server has issued its last fencing token ({}) and cannot grant to a new holder; \
         its saved state holds an impossible token counter (see the server's log)",
        u64::MAX
    )]
    TokensExhausted,
}

/// The caller of [`Engine::release`] does not hold the job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client does not hold the lock")]
pub struct NotHolder;

/// Identifies a queued waiter, see [`Engine::acquire_or_wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaiterId(u64);

/// The result of [`Engine::acquire_or_wait`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    Granted(Grant),
    Denied(Denied),
    /// The job is busy; the waiter will show up in [`Engine::take_woken`] once granted.
    Queued(WaiterId),
}

/// A queued waiter that was granted its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Woken {
    pub waiter: WaiterId,
    pub grant: Grant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Held,
    Grace,
    Expired,
}

#[derive(Debug)]
struct Entry {
    /// The job's name, shared with its keys in the table and the deadline sets: moving a
    /// deadline copies a pointer, not the name.
    name: Arc<str>,
    lease: Lease,
    /// The phase the table has processed; `deadline()` is when it ends.
    phase: Phase,
    /// Where the entry sits in the deadline set: at or before `deadline()`. A renewal that
    /// moves the deadline later leaves it where it was (see `Engine::advance`).
    scheduled: Mono,
}

impl Entry {
    /// A new holder's entry, not yet in the deadline set.
    fn held(name: Arc<str>, lease: Lease) -> Entry {
        Entry {
            name,
            scheduled: lease.expires,
            lease,
            phase: Phase::Held,
        }
    }

    /// When the phase the table has processed ends.
    fn deadline(&self, retention: Duration) -> Mono {
        match self.phase {
            Phase::Held => self.lease.expires,
            Phase::Grace => self.lease.grace_until,
            Phase::Expired => self.lease.grace_until + retention,
        }
    }
}

#[derive(Debug)]
struct Waiter {
    id: WaiterId,
    client: String,
    run: Option<String>,
    ttl: Duration,
}

/// Time the suspend-inclusive clock may run ahead of the awake clock before we call it sleep.
const SLEEP_THRESHOLD: Duration = Duration::from_secs(1);

/// The lock table. See the module docs for its invariants.
#[derive(Debug)]
pub struct Engine {
    rules: Rules,
    jobs: HashMap<Arc<str>, Entry>,
    /// `(entry.scheduled, job)` for every entry, so the first is at or before the end of the
    /// soonest phase: the timer sleeps until then.
    deadlines: BTreeSet<(Mono, Arc<str>)>,
    /// `(instant it expired, job)` for expired entries, oldest first: evicted first.
    expired: BTreeSet<(Mono, Arc<str>)>,
    last_token: u64,
    waiters: HashMap<String, VecDeque<Waiter>>,
    waiter_jobs: HashMap<WaiterId, String>,
    last_waiter: u64,
    quarantine_until: Option<Mono>,
    last_seen: Option<(Mono, Duration)>,
    events: Vec<Event>,
    woken: Vec<Woken>,
}

impl Engine {
    pub fn new(rules: Rules) -> Self {
        Engine {
            rules,
            jobs: HashMap::new(),
            deadlines: BTreeSet::new(),
            expired: BTreeSet::new(),
            last_token: 0,
            waiters: HashMap::new(),
            waiter_jobs: HashMap::new(),
            last_waiter: 0,
            quarantine_until: None,
            last_seen: None,
            events: Vec::new(),
            woken: Vec::new(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The most recently issued fencing token (0 before the first grant).
    pub fn last_token(&self) -> u64 {
        self.last_token
    }

    /// The number of jobs with a recorded holder (held, in grace or expired).
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// The number of jobs held or in their grace period, as of the last [`advance`](Self::advance).
    pub fn live_jobs(&self) -> usize {
        self.jobs.len() - self.expired.len()
    }

    /// Acquires or renews `job` for `client`; see the module docs for the rules.
    pub fn acquire<'a>(
        &mut self,
        job: &str,
        who: impl Into<Who<'a>>,
        ttl: Duration,
        now: Now,
    ) -> Result<Grant, Denied> {
        self.advance(now);
        self.try_grant(job, who.into(), ttl, now)
    }

    /// Like [`acquire`](Self::acquire), but when the job is busy (held or in grace) the client
    /// joins the job's queue instead of being refused.
    pub fn acquire_or_wait<'a>(
        &mut self,
        job: &str,
        who: impl Into<Who<'a>>,
        ttl: Duration,
        now: Now,
    ) -> WaitOutcome {
        self.advance(now);
        let who = who.into();
        match self.try_grant(job, who, ttl, now) {
            Ok(grant) => WaitOutcome::Granted(grant),
            Err(Denied::Held(_) | Denied::Grace(_))
                if self.waiter_jobs.len() < self.rules.max_waiters =>
            {
                self.last_waiter += 1;
                let id = WaiterId(self.last_waiter);
                self.waiters
                    .entry(job.to_owned())
                    .or_default()
                    .push_back(Waiter {
                        id,
                        client: who.client.to_owned(),
                        run: who.run.map(str::to_owned),
                        ttl,
                    });
                self.waiter_jobs.insert(id, job.to_owned());
                WaitOutcome::Queued(id)
            }
            Err(Denied::Held(_) | Denied::Grace(_)) => {
                WaitOutcome::Denied(Denied::TooManyWaiters {
                    max_waiters: self.rules.max_waiters,
                })
            }
            Err(denied) => WaitOutcome::Denied(denied),
        }
    }

    /// Removes a waiter from its queue. Returns false if it is not queued (already granted,
    /// or unknown).
    pub fn cancel_wait(&mut self, id: WaiterId) -> bool {
        let Some(job) = self.waiter_jobs.remove(&id) else {
            return false;
        };
        if let Some(queue) = self.waiters.get_mut(&job) {
            queue.retain(|w| w.id != id);
            if queue.is_empty() {
                self.waiters.remove(&job);
            }
        }
        true
    }

    /// The number of queued waiters across all jobs.
    pub fn waiting(&self) -> usize {
        self.waiter_jobs.len()
    }

    /// The number of clients waiting for `job`.
    pub fn waiting_for(&self, job: &str) -> usize {
        self.waiters.get(job).map_or(0, VecDeque::len)
    }

    /// Releases `job` if `who` holds it (in any state; see [`Who`] for runs). The job is free
    /// at once: no grace.
    pub fn release<'a>(
        &mut self,
        job: &str,
        who: impl Into<Who<'a>>,
        now: Now,
    ) -> Result<Lease, NotHolder> {
        self.advance(now);
        let who = who.into();
        match self.jobs.get(job) {
            Some(entry) if who.holds(&entry.lease) => {}
            _ => return Err(NotHolder),
        }
        Ok(self.free(job, EventKind::Released, now))
    }

    /// Frees `job` whatever its holder, with no grace period. Returns the removed lease.
    pub fn force_release(&mut self, job: &str, now: Now) -> Option<Lease> {
        self.advance(now);
        self.jobs.get(job)?;
        Some(self.free(job, EventKind::ForceReleased, now))
    }

    /// Removes `job`'s lease with no grace period, reports `why`, and hands the job to its
    /// first waiter.
    fn free(&mut self, job: &str, why: EventKind, now: Now) -> Lease {
        let (name, lease) = self.remove(job);
        self.emit(why, &name, &lease, now);
        self.serve_waiters(&name, now);
        lease
    }

    /// The lease recorded for `job`, if any. Never creates an entry.
    pub fn get(&mut self, job: &str, now: Now) -> Option<Lease> {
        self.advance(now);
        self.jobs.get(job).map(|e| e.lease.clone())
    }

    /// Every job with a recorded holder, sorted by job name.
    pub fn list(&mut self, now: Now) -> Vec<JobLease> {
        let mut all = self.leases(now);
        all.sort_unstable_by(|a, b| a.job.cmp(&b.job));
        all
    }

    /// Every job with a recorded holder, in no particular order (for callers that sort
    /// later, outside a lock).
    pub fn leases(&mut self, now: Now) -> Vec<JobLease> {
        self.advance(now);
        self.jobs
            .iter()
            .map(|(job, e)| JobLease {
                job: Arc::clone(job),
                lease: e.lease.clone(),
            })
            .collect()
    }

    /// The lease recorded for `job` as the table last saw it (before any
    /// [`advance`](Self::advance)), without copying it.
    pub fn peek(&self, job: &str) -> Option<&Lease> {
        self.jobs.get(job).map(|e| &e.lease)
    }

    /// When the table next needs advancing: at or before the next instant it changes by
    /// itself (a lease expires, a grace period ends, an expired entry is forgotten). It may
    /// be early: after a renewal it stays at the old deadline, and advancing then changes
    /// nothing but this. `None` when nothing is pending: nothing needs to wake.
    pub fn next_deadline(&self) -> Option<Mono> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Refuses every grant until `until`; see [`Denied::Quarantined`].
    pub fn quarantine(&mut self, until: Mono) {
        self.quarantine_until = Some(until);
    }

    pub fn quarantined_until(&self, now: Mono) -> Option<Mono> {
        self.quarantine_until.filter(|until| now < *until)
    }

    /// Events since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Events not yet taken, oldest first.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Takes the events out like [`take_events`](Self::take_events) but keeps their buffer for
    /// the next ones (the service drains after every operation).
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// Waiters granted since the last call.
    pub fn take_woken(&mut self) -> Vec<Woken> {
        std::mem::take(&mut self.woken)
    }

    /// Brings the table to `now`: notices sleep, ends phases whose deadline passed (emitting
    /// `Expired`, serving waiters, evicting old entries). Every operation calls it first.
    pub fn advance(&mut self, now: Now) {
        self.notice_sleep(now);
        let retention = self.rules.retention;
        // Look before taking: most calls find nothing due.
        while self
            .deadlines
            .first()
            .is_some_and(|(at, _)| *at <= now.mono)
        {
            let Some((at, job)) = self.deadlines.pop_first() else {
                break;
            };
            let Some(entry) = self.jobs.get_mut(&*job) else {
                continue;
            };
            let due = entry.deadline(retention);
            if due != at {
                // Renewed since it was scheduled: its phase ends later. Back in at the real
                // deadline, which this loop reaches again if that has passed too.
                entry.scheduled = due;
                self.deadlines.insert((due, job));
                continue;
            }
            match entry.phase {
                Phase::Held => {
                    entry.phase = Phase::Grace;
                    let lease = entry.lease.clone();
                    self.emit(EventKind::Expired, &job, &lease, now);
                    self.schedule(&job);
                }
                Phase::Grace => {
                    entry.phase = Phase::Expired;
                    let expired_at = entry.lease.expires;
                    self.expired.insert((expired_at, job.clone()));
                    self.schedule(&job);
                    self.serve_waiters(&job, now);
                }
                Phase::Expired => {
                    self.remove(&job);
                }
            }
        }
    }

    /// The machine slept if the suspend-inclusive clock ran ahead of the awake clock since
    /// our last look. Leases that ran out while it slept could not be renewed (their holders
    /// could not reach us), so each gets one fresh grace window before others may take it.
    fn notice_sleep(&mut self, now: Now) {
        let previous = self.last_seen.replace((now.mono, now.awake));
        let Some((mono0, awake0)) = previous else {
            return;
        };
        let slept = mono0
            .until(now.mono)
            .saturating_sub(now.awake.saturating_sub(awake0));
        if slept <= SLEEP_THRESHOLD || self.rules.grace.is_zero() {
            return;
        }
        let fresh_grace = now.mono + self.rules.grace;
        let affected: Vec<Arc<str>> = self
            .jobs
            .iter()
            .filter(|(_, e)| {
                e.phase != Phase::Expired
                    && e.lease.grace_until > mono0
                    && e.lease.expires <= now.mono
                    && e.lease.grace_until < fresh_grace
            })
            .map(|(job, _)| job.clone())
            .collect();
        for job in affected {
            self.unschedule(&job);
            let entry = self.jobs.get_mut(&job).expect("listed above");
            entry.lease.grace_until = fresh_grace;
            self.schedule(&job);
        }
    }

    fn try_grant(
        &mut self,
        job: &str,
        who: Who<'_>,
        ttl: Duration,
        now: Now,
    ) -> Result<Grant, Denied> {
        if let Some(until) = self.quarantined_until(now.mono) {
            return Err(Denied::Quarantined { until });
        }
        let (name, previous) = match self.jobs.get_mut(job) {
            Some(entry) if who.holds(&entry.lease) => {
                // Renewal is the most frequent change: one lookup, and the deadline set is
                // left alone unless the lease now ends sooner than where the entry sits in it;
                // a later deadline is found when the earlier one comes (`advance`).
                if entry.phase == Phase::Expired {
                    self.expired
                        .remove(&(entry.lease.expires, Arc::clone(&entry.name)));
                }
                entry.lease.ttl = ttl;
                entry.lease.expires = now.mono + ttl;
                entry.lease.grace_until = entry.lease.expires + self.rules.grace;
                entry.phase = Phase::Held;
                let at = entry.lease.expires.min(entry.scheduled);
                if at != entry.scheduled {
                    let mut key = (entry.scheduled, Arc::clone(&entry.name));
                    self.deadlines.remove(&key);
                    key.0 = at;
                    entry.scheduled = at;
                    self.deadlines.insert(key);
                }
                let lease = entry.lease.clone();
                let name = Arc::clone(&entry.name);
                self.emit(EventKind::Renewed, &name, &lease, now);
                return Ok(Grant {
                    job: name,
                    kind: GrantKind::Renewed,
                    lease,
                });
            }
            Some(entry) => match entry.lease.state(now.mono) {
                LeaseState::Held => return Err(Denied::Held(entry.lease.clone())),
                LeaseState::Grace => return Err(Denied::Grace(entry.lease.clone())),
                LeaseState::Expired if self.tokens_exhausted() => {
                    return Err(Denied::TokensExhausted);
                }
                LeaseState::Expired => {
                    let (name, old) = self.remove(job);
                    (name, Some(old))
                }
            },
            None => {
                if self.tokens_exhausted() {
                    return Err(Denied::TokensExhausted);
                }
                if self.jobs.len() >= self.rules.max_jobs && !self.evict_oldest_expired() {
                    return Err(Denied::Full {
                        max_jobs: self.rules.max_jobs,
                    });
                }
                (Arc::from(job), None)
            }
        };
        Ok(self.grant_new(name, who, ttl, previous, now))
    }

    /// Grants the job `name` to a new holder; `previous` is the lapsed lease it replaces.
    /// A job that changes hands keeps its name's allocation.
    fn grant_new(
        &mut self,
        name: Arc<str>,
        who: Who<'_>,
        ttl: Duration,
        previous: Option<Lease>,
        now: Now,
    ) -> Grant {
        // Callers check `tokens_exhausted` first: a wrapped token would break fencing.
        self.last_token = self
            .last_token
            .checked_add(1)
            .expect("callers check that a token is left");
        let expires = now.mono + ttl;
        let lease = Lease {
            holder: Arc::from(who.client),
            run: who.run.map(Arc::from),
            token: self.last_token,
            ttl,
            acquired_at: now.wall,
            expires,
            grace_until: expires + self.rules.grace,
        };
        self.jobs.insert(
            Arc::clone(&name),
            Entry::held(Arc::clone(&name), lease.clone()),
        );
        self.schedule(&name);
        let kind = match previous {
            Some(old) => {
                let lapsed_for = old.expires.until(now.mono);
                self.emit(
                    EventKind::TakenOver {
                        previous: old.holder.clone(),
                        previous_token: old.token,
                        lapsed_for,
                    },
                    &name,
                    &lease,
                    now,
                );
                GrantKind::TookOver {
                    previous: old.holder,
                    lapsed_for,
                }
            }
            None => {
                self.emit(EventKind::Acquired, &name, &lease, now);
                GrantKind::Acquired
            }
        };
        Grant {
            job: name,
            kind,
            lease,
        }
    }

    /// Whether the last fencing token has been issued. Waiters then stay queued until their
    /// wait ends, and new holders are refused ([`Denied::TokensExhausted`]).
    pub(crate) fn tokens_exhausted(&self) -> bool {
        self.last_token == u64::MAX
    }

    /// Grants a job that just became free to others to its first waiter, if any.
    fn serve_waiters(&mut self, job: &Arc<str>, now: Now) {
        if self.tokens_exhausted() {
            return;
        }
        let Some(queue) = self.waiters.get_mut(&**job) else {
            return;
        };
        let Some(waiter) = queue.pop_front() else {
            return;
        };
        if queue.is_empty() {
            self.waiters.remove(&**job);
        }
        self.waiter_jobs.remove(&waiter.id);
        let previous = self.jobs.contains_key(&**job).then(|| self.remove(job).1);
        let who = Who {
            client: &waiter.client,
            run: waiter.run.as_deref(),
        };
        let grant = self.grant_new(Arc::clone(job), who, waiter.ttl, previous, now);
        self.woken.push(Woken {
            waiter: waiter.id,
            grant,
        });
    }

    /// Makes room for one entry by forgetting the expired lease that expired longest ago.
    fn evict_oldest_expired(&mut self) -> bool {
        let Some((_, job)) = self.expired.first().cloned() else {
            return false;
        };
        self.remove(&job);
        true
    }

    /// Takes `job`'s entry out of the table; returns its name and lease.
    fn remove(&mut self, job: &str) -> (Arc<str>, Lease) {
        self.unschedule(job);
        let entry = self
            .jobs
            .remove(job)
            .expect("caller checked the entry exists");
        let key = (entry.lease.expires, entry.name);
        self.expired.remove(&key);
        (key.1, entry.lease)
    }

    /// Puts `job` into the deadline set at the end of its phase (it must not be there).
    fn schedule(&mut self, job: &str) {
        let entry = self
            .jobs
            .get_mut(job)
            .expect("caller checked the entry exists");
        entry.scheduled = entry.deadline(self.rules.retention);
        self.deadlines
            .insert((entry.scheduled, Arc::clone(&entry.name)));
    }

    /// Takes `job` off the deadline set. The expired set is not touched: the callers that
    /// move an entry out of the expired phase (`remove`, a renewal in `try_grant`) take it out
    /// there themselves.
    fn unschedule(&mut self, job: &str) {
        if let Some(entry) = self.jobs.get(job) {
            self.deadlines
                .remove(&(entry.scheduled, Arc::clone(&entry.name)));
        }
    }

    /// Records an event about `lease` of the job `name` (the entry's, so no name is copied).
    fn emit(&mut self, kind: EventKind, name: &Arc<str>, lease: &Lease, now: Now) {
        self.events.push(Event {
            kind,
            job: Arc::clone(name),
            holder: Arc::clone(&lease.holder),
            token: lease.token,
            at: now.wall,
            acquired_at: lease.acquired_at,
            expires_at: now.wall_at(lease.expires),
        });
    }
}
