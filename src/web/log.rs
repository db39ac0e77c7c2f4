//! The event log behind `/events` and the status page: numbers the lock service's events,
//! keeps the newest in a bounded ring so a client that reconnects with `Last-Event-ID` gets
//! what it missed, and mirrors the table the events describe, so that a snapshot is exactly
//! the state after one numbered event (the engine itself may already be further on).
//!
//! Invariants:
//! - Entries are numbered from 1, one more per entry. When the log falls behind the service
//!   (it missed events), it rebuilds its mirror from the service, empties the ring and skips
//!   one number: no id from before the gap can be resumed, so such a client gets a snapshot.
//! - Ids are `<boot>-<seq>`, `boot` being different in every run, so an id from before a
//!   restart never resumes into the new run's numbering.
//! - Nothing here waits for a subscriber: each has a bounded channel, and one that falls
//!   behind is sent a fresh snapshot instead of what it missed.
//! - Memory is bounded: [`RING`] entries, [`RECENT`] recent events, and the mirror holds only
//!   jobs the engine holds (entries whose grace has ended are dropped).

use super::ServerInfo;
use super::metrics::Metrics;
use crate::engine::{Event, EventKind, LeaseState};
use crate::service::LockService;
use crate::time::{rfc3339_millis, unix_ms};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How many entries a reconnecting client can catch up on before it gets a snapshot instead.
pub const RING: usize = 1024;
/// How many entries a subscriber may fall behind before it is resynchronised.
const LIVE: usize = 256;
/// How many events the page lists.
pub const RECENT: usize = 20;
/// The most events the log takes from the service in one go (renewals among them coalesce).
const BATCH: usize = 256;
/// After taking in a small batch, the log waits this long before it looks again, so that a
/// steady stream of renewals wakes it once per window rather than once per request (a wake
/// cost more than the rest of a renewal's bookkeeping here). The page and the stream lag by
/// at most this much, far less than anyone can see.
const WINDOW: Duration = Duration::from_millis(5);
/// A batch at least this large means events come fast enough to fill batches by themselves;
/// the log then looks again at once, so the service's channel (1 024 events) never fills
/// during a window: that would take 200 000 events a second.
const BUSY: usize = BATCH / 4;

/// A cheap, cloneable handle to the event log.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

struct Inner {
    /// Distinguishes this run's ids from an earlier run's.
    boot: String,
    info: ServerInfo,
    grace: Duration,
    service: LockService,
    metrics: Metrics,
    state: Mutex<State>,
    live: broadcast::Sender<Item>,
    /// The service's events, until [`EventLog::run`] takes them.
    source: Mutex<Option<broadcast::Receiver<Event>>>,
    /// Cancelled when [`EventLog::run`] ends: streams end too, so that open `/events`
    /// connections never hold up a shutdown.
    closed: CancellationToken,
}

struct State {
    /// Number of the newest entry (0 before the first).
    last: u64,
    ring: VecDeque<Arc<Entry>>,
    jobs: BTreeMap<Arc<str>, JobView>,
    /// Jobs whose lease expired, by the end of their grace period, to drop them then.
    grace_ends: BTreeSet<(SystemTime, Arc<str>)>,
    /// Newest first.
    recent: VecDeque<Recent>,
}

/// One numbered message of the stream, serialised once for all subscribers, when the first
/// one needs it: with nobody watching the stream (the usual case) an event costs no JSON.
#[derive(Debug)]
pub struct Entry {
    pub seq: u64,
    /// What a lock event entry says, until it is serialised.
    event: Option<EventEntry>,
    json: OnceLock<String>,
}

impl Entry {
    /// The entry as the stream sends it.
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| {
            self.event
                .as_ref()
                .map(EventEntry::to_json)
                .unwrap_or_default()
        })
    }
}

/// A lock event as an entry of the stream describes it (see [`EventJson`]). The names are the
/// event's, shared with the engine: an entry copies no string.
#[derive(Debug)]
struct EventEntry {
    kind: &'static str,
    job: Arc<str>,
    holder: Arc<str>,
    token: u64,
    at: SystemTime,
    acquired_at: SystemTime,
    expires_at: SystemTime,
    grace_until: SystemTime,
    waiting: usize,
    count: Option<u64>,
    previous: Option<Arc<str>>,
    previous_token: Option<u64>,
    lapsed_ms: Option<u64>,
}

impl EventEntry {
    fn to_json(&self) -> String {
        to_json(&EventJson {
            kind: self.kind,
            job: &self.job,
            holder: &self.holder,
            token: self.token,
            at: rfc3339_millis(self.at),
            acquired_at: rfc3339_millis(self.acquired_at),
            expires_at: rfc3339_millis(self.expires_at),
            grace_until: rfc3339_millis(self.grace_until),
            waiting: self.waiting,
            count: self.count,
            previous: self.previous.as_deref(),
            previous_token: self.previous_token,
            lapsed_ms: self.lapsed_ms,
        })
    }
}

/// What the live channel carries.
#[derive(Debug, Clone)]
enum Item {
    Entry(Arc<Entry>),
    /// The log missed events and rebuilt its mirror: subscribers need a snapshot.
    Resync,
}

/// A job held or in its grace period, as the page shows it. The names are shared with the
/// engine's events, so mirroring a change copies no string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    pub job: Arc<str>,
    pub holder: Arc<str>,
    pub token: u64,
    pub acquired_at: SystemTime,
    pub expires_at: SystemTime,
    pub grace_until: SystemTime,
    pub waiting: usize,
}

impl JobView {
    /// Held or in grace as of `now`; `None` once the grace period is over too.
    pub fn state(&self, now: SystemTime) -> Option<LeaseState> {
        if now < self.expires_at {
            Some(LeaseState::Held)
        } else if now < self.grace_until {
            Some(LeaseState::Grace)
        } else {
            None
        }
    }
}

/// One line of the page's "Recent events". Renewals of one lease share a line and count up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recent {
    /// As in the stream: `acquired`, `renewed`, `released`, `force_released`, `expired`,
    /// `taken_over`.
    pub kind: &'static str,
    pub job: Arc<str>,
    pub holder: Arc<str>,
    pub token: u64,
    pub at: SystemTime,
    /// For a takeover: whose lease lapsed.
    pub previous: Option<Arc<str>>,
    /// How many events this line stands for (renewals only; 1 otherwise).
    pub count: u64,
}

/// The state after one numbered entry, for the page and for snapshots.
#[derive(Debug, Clone)]
pub struct View {
    /// The id a client holding this view resumes from.
    pub id: String,
    pub now: SystemTime,
    pub uptime: Duration,
    pub info: ServerInfo,
    /// Jobs held or in grace as of `now`, by name.
    pub jobs: Vec<JobView>,
    /// Newest first.
    pub recent: Vec<Recent>,
}

/// What a subscriber is sent, in order.
#[derive(Debug, Clone)]
pub enum Message {
    /// The whole state; replaces whatever the client had (SSE event `snapshot`).
    Snapshot { id: String, json: String },
    /// The server's description and clock, ahead of the entries a resuming client missed
    /// (SSE event `hello`; it has no id, so it does not move the client's position).
    Hello { json: String },
    /// One change (the SSE default event, `message`).
    Entry { id: String, entry: Arc<Entry> },
}

impl EventLog {
    /// A log that mirrors `service` from now on. Feed it by running [`run`](Self::run).
    pub fn new(service: &LockService, info: ServerInfo, metrics: Metrics) -> EventLog {
        let grace = service.rules().grace;
        let (source, jobs) = seed(service);
        let boot = format!("{:x}", unix_ms(info.started_at));
        let (live, _) = broadcast::channel(LIVE);
        EventLog {
            inner: Arc::new(Inner {
                boot,
                info,
                grace,
                service: service.clone(),
                metrics,
                state: Mutex::new(State {
                    last: 0,
                    ring: VecDeque::new(),
                    jobs,
                    grace_ends: BTreeSet::new(),
                    recent: VecDeque::new(),
                }),
                live,
                source: Mutex::new(Some(source)),
                closed: CancellationToken::new(),
            }),
        }
    }

    /// Takes the service's events until `shutdown` is cancelled, then ends every stream.
    /// `waiters` changes whenever the number of queued waiters does (queueing and giving up
    /// publish no lock event); without it, waiter counts are refreshed only when read. Only
    /// the first call does anything.
    pub async fn run(self, shutdown: CancellationToken, mut waiters: Option<watch::Receiver<u64>>) {
        let taken = lock(&self.inner.source).take();
        let Some(mut source) = taken else {
            return;
        };
        let mut batch = Vec::with_capacity(BATCH);
        // Made once: a fresh one per event would register with the token each time.
        let stopped = shutdown.cancelled();
        tokio::pin!(stopped);
        let mut open = true;
        while open {
            let waiters_changed = async {
                match waiters.as_mut() {
                    Some(w) => w.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            let first = tokio::select! {
                received = source.recv() => received,
                watching = waiters_changed => {
                    if watching {
                        self.refresh_waiters();
                    } else {
                        waiters = None;
                    }
                    continue;
                }
                _ = &mut stopped => break,
            };
            let mut received = Some(first);
            while let Some(r) = received {
                match r {
                    Ok(event) => batch.push(event),
                    Err(RecvError::Lagged(missed)) => {
                        self.record(&mut batch);
                        tracing::warn!(missed, "the event log fell behind; resynchronising");
                        self.inner.metrics.events_missed(missed);
                        source = self.resync();
                    }
                    Err(RecvError::Closed) => {
                        open = false;
                        break;
                    }
                }
                received = if batch.len() >= BATCH {
                    None
                } else {
                    match source.try_recv() {
                        Ok(event) => Some(Ok(event)),
                        Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                        Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
                        Err(TryRecvError::Empty) => None,
                    }
                };
            }
            let taken = batch.len();
            self.record(&mut batch);
            if open && taken < BUSY {
                // While the log sleeps it is not waiting on the channel, so the service's sends
                // wake nobody: the window's events are taken in one batch afterwards.
                tokio::select! {
                    () = tokio::time::sleep(WINDOW) => {}
                    () = &mut stopped => break,
                }
            }
        }
        self.inner.closed.cancel();
    }

    /// A subscriber positioned after `last_event_id` if the log still has everything since
    /// then, or else starting with a snapshot.
    pub fn subscribe(&self, last_event_id: Option<&str>) -> Subscription {
        self.refresh_waiters();
        let state = self.state();
        // Subscribed under the same lock as entries are sent under: nothing is missed or
        // repeated between the replay (or snapshot) and the live entries.
        let rx = self.inner.live.subscribe();
        let pending = match self.missed_since(&state, last_event_id) {
            Some(missed) => {
                let mut pending = VecDeque::with_capacity(missed.len() + 1);
                pending.push_back(Message::Hello {
                    json: self.hello_json(),
                });
                pending.extend(missed.into_iter().map(|entry| Message::Entry {
                    id: self.id(entry.seq),
                    entry,
                }));
                pending
            }
            None => VecDeque::from([self.snapshot_locked(&state)]),
        };
        let sent = state.last;
        drop(state);
        Subscription {
            log: self.clone(),
            rx,
            pending,
            sent,
            _counted: self.inner.metrics.sse_subscriber(),
        }
    }

    /// The state as of the newest entry, with fresh waiter counts.
    pub fn view(&self) -> View {
        self.refresh_waiters();
        self.view_locked(&self.state())
    }

    /// The id of entry `seq` of this run.
    pub fn id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.inner.boot)
    }

    /// Reads the waiter count of every job in the mirror and publishes those that changed.
    /// Queueing and giving up a wait publish no engine event, so readers call this before
    /// they show counts.
    pub fn refresh_waiters(&self) {
        let names: Vec<Arc<str>> = self.state().jobs.keys().cloned().collect();
        if names.is_empty() {
            return;
        }
        let counts: Vec<usize> = self
            .inner
            .service
            .with_engine(|engine, _| names.iter().map(|j| engine.waiting_for(j)).collect());
        let mut state = self.state();
        let at = SystemTime::now();
        for (job, waiting) in names.iter().zip(counts) {
            let Some(view) = state.jobs.get_mut(&**job) else {
                continue;
            };
            if view.waiting != waiting {
                view.waiting = waiting;
                let json = to_json(&WaitingJson {
                    kind: "waiting",
                    job,
                    at: rfc3339_millis(at),
                    waiting,
                });
                self.push(&mut state, None, OnceLock::from(json));
            }
        }
    }

    /// Applies a batch of the service's events, oldest first.
    /// Takes the events out of `batch`, which keeps its buffer for the next ones.
    fn record(&self, batch: &mut Vec<Event>) {
        if batch.is_empty() {
            return;
        }
        // Waiter counts change with grants and releases, never with a renewal, so only those
        // read the engine (renewals are the hot path: they allocate nothing here).
        let waiting: Vec<Option<usize>> = if batch.iter().all(|e| e.kind == EventKind::Renewed) {
            Vec::new()
        } else {
            self.inner.service.with_engine(|engine, _| {
                batch
                    .iter()
                    .map(|e| (e.kind != EventKind::Renewed).then(|| engine.waiting_for(&e.job)))
                    .collect()
            })
        };
        let mut state = self.state();
        let mut waiting = waiting.into_iter();
        let mut events = batch
            .drain(..)
            .map(|event| (event, waiting.next().flatten()))
            .peekable();
        while let Some((mut event, waiting)) = events.next() {
            // Renewals of one lease in a row become one entry that counts them: a stream
            // reader needs the newest deadline, not every step to it.
            let mut count = 1;
            if event.kind == EventKind::Renewed {
                while let Some((next, _)) = events.next_if(|(next, _)| {
                    next.kind == EventKind::Renewed
                        && next.job == event.job
                        && next.token == event.token
                }) {
                    event = next;
                    count += 1;
                }
            }
            self.apply(&mut state, event, waiting, count);
        }
    }

    /// Applies one event (standing for `count` renewals in a row) to the mirror and the
    /// recent list, and publishes it. `waiting` is the job's waiter count after it, if read.
    fn apply(&self, state: &mut State, event: Event, waiting: Option<usize>, count: u64) {
        self.inner.metrics.lock_event(&event.kind, count);
        // Forget jobs whose grace period ended before this event.
        while let Some((end, _)) = state.grace_ends.first()
            && *end <= event.at
        {
            let (end, job) = state.grace_ends.pop_first().expect("just seen");
            if state.jobs.get(&job).is_some_and(|j| j.grace_until == end) {
                state.jobs.remove(&job);
            }
        }
        let grace_until = event.expires_at + self.inner.grace;
        let waiting = waiting
            .or_else(|| state.jobs.get(&*event.job).map(|j| j.waiting))
            .unwrap_or(0);
        // The hot path: a renewal only moves the deadlines of a job the mirror has already.
        let renewed_in_place = event.kind == EventKind::Renewed
            && match state.jobs.get_mut(&*event.job) {
                Some(view) if view.token == event.token => {
                    view.expires_at = event.expires_at;
                    view.grace_until = grace_until;
                    view.waiting = waiting;
                    true
                }
                _ => false,
            };
        if !renewed_in_place {
            match &event.kind {
                EventKind::Released | EventKind::ForceReleased => {
                    state.jobs.remove(&*event.job);
                }
                EventKind::Acquired
                | EventKind::Renewed
                | EventKind::TakenOver { .. }
                | EventKind::Expired => {
                    if event.kind == EventKind::Expired {
                        state
                            .grace_ends
                            .insert((grace_until, Arc::clone(&event.job)));
                    }
                    state.jobs.insert(
                        Arc::clone(&event.job),
                        JobView {
                            job: Arc::clone(&event.job),
                            holder: Arc::clone(&event.holder),
                            token: event.token,
                            acquired_at: event.acquired_at,
                            expires_at: event.expires_at,
                            grace_until,
                            waiting,
                        },
                    );
                }
            }
        }
        let (previous, previous_token, lapsed_ms) = match &event.kind {
            EventKind::TakenOver {
                previous,
                previous_token,
                lapsed_for,
            } => (
                Some(previous),
                Some(*previous_token),
                Some(u64::try_from(lapsed_for.as_millis()).unwrap_or(u64::MAX)),
            ),
            _ => (None, None, None),
        };
        let renewed = event.kind == EventKind::Renewed;
        let entry = EventEntry {
            kind: event.kind.name(),
            job: Arc::clone(&event.job),
            holder: Arc::clone(&event.holder),
            token: event.token,
            at: event.at,
            acquired_at: event.acquired_at,
            expires_at: event.expires_at,
            grace_until,
            waiting,
            count: renewed.then_some(count),
            previous: previous.cloned(),
            previous_token,
            lapsed_ms,
        };
        let mut total = count;
        if renewed
            && let Some(i) = state
                .recent
                .iter()
                .position(|r| r.kind == "renewed" && r.job == event.job && r.token == event.token)
        {
            total += state.recent.remove(i).map_or(0, |r| r.count);
        }
        let previous = previous.cloned();
        state.recent.push_front(Recent {
            kind: event.kind.name(),
            job: event.job,
            holder: event.holder,
            token: event.token,
            at: event.at,
            previous,
            count: total,
        });
        state.recent.truncate(RECENT);
        self.push(state, Some(entry), OnceLock::new());
    }

    /// Numbers and publishes an entry: a lock event (serialised when first sent), or `json`.
    fn push(&self, state: &mut State, event: Option<EventEntry>, json: OnceLock<String>) {
        state.last += 1;
        let entry = Arc::new(Entry {
            seq: state.last,
            event,
            json,
        });
        if state.ring.len() == RING {
            state.ring.pop_front();
        }
        state.ring.push_back(Arc::clone(&entry));
        // No subscribers is fine; a full channel drops its oldest for the slowest reader.
        let _ = self.inner.live.send(Item::Entry(entry));
    }

    /// Rebuilds the mirror after missed events; returns a new subscription to the service.
    fn resync(&self) -> broadcast::Receiver<Event> {
        let (source, jobs) = seed(&self.inner.service);
        let mut state = self.state();
        state.jobs = jobs;
        state.grace_ends.clear();
        state.ring.clear();
        state.last += 1;
        let _ = self.inner.live.send(Item::Resync);
        source
    }

    /// The entries after `last_event_id`, or `None` when they are not all in the ring (or
    /// the id is not one of this run's).
    fn missed_since(&self, state: &State, last_event_id: Option<&str>) -> Option<Vec<Arc<Entry>>> {
        let (boot, seq) = last_event_id?.trim().split_once('-')?;
        if boot != self.inner.boot {
            return None;
        }
        let seq: u64 = seq.parse().ok()?;
        if seq == state.last {
            return Some(Vec::new());
        }
        let first = state.ring.front()?.seq;
        if seq > state.last || seq + 1 < first {
            return None;
        }
        Some(state.ring.iter().filter(|e| e.seq > seq).cloned().collect())
    }

    fn snapshot_locked(&self, state: &State) -> Message {
        let view = self.view_locked(state);
        Message::Snapshot {
            id: view.id.clone(),
            json: view.to_json(),
        }
    }

    fn view_locked(&self, state: &State) -> View {
        let now = SystemTime::now();
        View {
            id: self.id(state.last),
            now,
            uptime: self.inner.info.started.elapsed(),
            info: self.inner.info.clone(),
            jobs: state
                .jobs
                .values()
                .filter(|j| j.state(now).is_some())
                .cloned()
                .collect(),
            recent: state.recent.iter().cloned().collect(),
        }
    }

    fn hello_json(&self) -> String {
        to_json(&HelloJson {
            now: rfc3339_millis(SystemTime::now()),
            server: ServerJson::new(&self.inner.info, self.inner.info.started.elapsed()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }
}

/// Subscribes to `service` and reads its table in one step (under the engine's lock, which
/// events are published under), so the table is exactly the state before the first event
/// received.
fn seed(service: &LockService) -> (broadcast::Receiver<Event>, BTreeMap<Arc<str>, JobView>) {
    service.with_engine(|engine, now| {
        let source = service.subscribe();
        let jobs = engine
            .list(now)
            .into_iter()
            .filter(|j| j.lease.state(now.mono) != LeaseState::Expired)
            .map(|j| {
                let view = JobView {
                    waiting: engine.waiting_for(&j.job),
                    holder: j.lease.holder,
                    token: j.lease.token,
                    acquired_at: j.lease.acquired_at,
                    expires_at: now.wall_at(j.lease.expires),
                    grace_until: now.wall_at(j.lease.grace_until),
                    job: Arc::clone(&j.job),
                };
                (j.job, view)
            })
            .collect();
        (source, jobs)
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here leaves the state half-changed across a panic that matters more than
    // keeping the page up.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A client of the stream: the messages it missed or a snapshot, then every new entry.
pub struct Subscription {
    log: EventLog,
    rx: broadcast::Receiver<Item>,
    pending: VecDeque<Message>,
    /// The newest entry this subscriber has (entries at or below it are skipped).
    sent: u64,
    _counted: super::metrics::SubscriberGuard,
}

impl Subscription {
    /// The next message; `None` once the log has stopped (the server is shutting down).
    pub async fn next(&mut self) -> Option<Message> {
        if let Some(message) = self.pending.pop_front() {
            return Some(message);
        }
        loop {
            let received = tokio::select! {
                r = self.rx.recv() => r,
                _ = self.log.inner.closed.cancelled() => return None,
            };
            match received {
                Ok(Item::Entry(entry)) if entry.seq <= self.sent => {}
                Ok(Item::Entry(entry)) => {
                    self.sent = entry.seq;
                    return Some(Message::Entry {
                        id: self.log.id(entry.seq),
                        entry,
                    });
                }
                Ok(Item::Resync) | Err(RecvError::Lagged(_)) => {
                    let state = self.log.state();
                    self.sent = state.last;
                    return Some(self.log.snapshot_locked(&state));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

fn to_json(value: &impl Serialize) -> String {
    // Room for an event's entry (about 350 bytes), so the buffer is not grown five times.
    let mut json = Vec::with_capacity(512);
    // Plain structs of strings and numbers always serialise, into UTF-8.
    match serde_json::to_writer(&mut json, value) {
        Ok(()) => String::from_utf8(json).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

impl View {
    /// The view without anything about locks or addresses, for a caller that has not shown
    /// the access token: the page then asks for it and fetches the rest with it.
    pub fn redacted(mut self) -> View {
        self.jobs.clear();
        self.recent.clear();
        self.info.addrs.clear();
        self
    }

    /// The snapshot as JSON (the `snapshot` event's data, and the page's initial state).
    pub fn to_json(&self) -> String {
        to_json(&SnapshotJson {
            id: &self.id,
            now: rfc3339_millis(self.now),
            server: ServerJson::new(&self.info, self.uptime),
            jobs: self.jobs.iter().map(JobJson::new).collect(),
            recent: self.recent.iter().map(RecentJson::new).collect(),
        })
    }
}

#[derive(Serialize)]
struct SnapshotJson<'a> {
    id: &'a str,
    now: String,
    server: ServerJson,
    jobs: Vec<JobJson<'a>>,
    recent: Vec<RecentJson<'a>>,
}

#[derive(Serialize)]
struct HelloJson {
    now: String,
    server: ServerJson,
}

#[derive(Serialize)]
struct ServerJson {
    version: &'static str,
    addrs: Vec<String>,
    started_at: String,
    uptime_ms: u64,
}

impl ServerJson {
    fn new(info: &ServerInfo, uptime: Duration) -> ServerJson {
        ServerJson {
            version: info.version,
            addrs: info.addrs.iter().map(ToString::to_string).collect(),
            started_at: rfc3339_millis(info.started_at),
            uptime_ms: u64::try_from(uptime.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

#[derive(Serialize)]
struct JobJson<'a> {
    job: &'a str,
    holder: &'a str,
    token: u64,
    acquired_at: String,
    expires_at: String,
    grace_until: String,
    waiting: usize,
}

impl<'a> JobJson<'a> {
    fn new(j: &'a JobView) -> JobJson<'a> {
        JobJson {
            job: &j.job,
            holder: &j.holder,
            token: j.token,
            acquired_at: rfc3339_millis(j.acquired_at),
            expires_at: rfc3339_millis(j.expires_at),
            grace_until: rfc3339_millis(j.grace_until),
            waiting: j.waiting,
        }
    }
}

#[derive(Serialize)]
struct RecentJson<'a> {
    kind: &'static str,
    job: &'a str,
    holder: &'a str,
    token: u64,
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<&'a str>,
    count: u64,
}

impl<'a> RecentJson<'a> {
    fn new(r: &'a Recent) -> RecentJson<'a> {
        RecentJson {
            kind: r.kind,
            job: &r.job,
            holder: &r.holder,
            token: r.token,
            at: rfc3339_millis(r.at),
            previous: r.previous.as_deref(),
            count: r.count,
        }
    }
}

/// One lock event in the stream.
#[derive(Serialize)]
struct EventJson<'a> {
    kind: &'static str,
    job: &'a str,
    holder: &'a str,
    token: u64,
    at: String,
    acquired_at: String,
    expires_at: String,
    grace_until: String,
    /// Clients queued for the job just after the event.
    waiting: usize,
    /// Renewals in a row of this lease that this entry stands for.
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_token: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lapsed_ms: Option<u64>,
}

/// A change of a job's waiter count.
#[derive(Serialize)]
struct WaitingJson<'a> {
    kind: &'static str,
    job: &'a str,
    at: String,
    waiting: usize,
}
