//! What must be on disk before a reply, and the thread that puts it there.
//!
//! The service numbers, under its lock, every change that must be durable before anyone is
//! told of it: a change of holder, a renewal that lengthens the ttl (the restore rule only
//! covers the saved ttl), an explicit [`LockService::save`]. Other changes (renewals, expiries)
//! only mark the table dirty and are written within [`LAZY_FLUSH`]: after a restart a lease
//! counts as held until the later of its saved expiry and restart + ttl, so a lost renewal
//! costs nothing. Events go to subscribers; persistence is not one of them, because a reply
//! may have to wait for its change to be on disk.
//!
//! Calls go one way. The writer thread (started by [`LockService::start`]) waits for work,
//! takes a snapshot of the table under the service's lock, hands it to the [`Store`] without
//! the lock, and then tells waiting replies which change is on disk. The store only writes
//! files and knows nothing of the service; the service's mutex is the only lock involved.
//!
//! Invariants:
//! - A change is durable once a write of a snapshot taken after it has finished.
//! - Changes that arrive while a write is under way share the next write (group commit).
//! - While writes fail the writer retries every [`RETRY_AFTER`], and replies keep waiting:
//!   no reply reports a change that is not on disk.

use super::LockService;
use crate::engine::{Denied, Event, Grant, GrantKind, SavedState};
use crate::store::{Batching, Store};
use std::sync::Condvar;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a change that needs no reply to wait for it (a renewal) may stay unwritten.
const LAZY_FLUSH: Duration = Duration::from_secs(1);
/// How long the writer waits before retrying a failed write.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What must be saved, kept in the service's locked state.
#[derive(Default)]
pub(super) struct Pending {
    /// Number of the last change that must be durable before it is acknowledged.
    pub(super) changes: u64,
    /// Set by an operation whose change must be durable although it emits no holder change.
    pub(super) must_save: bool,
    /// When an unwritten lazy change was first recorded.
    dirty_since: Option<Instant>,
    /// Stop after one last write.
    closing: bool,
    /// The last token in the state on disk: leases with a higher token were granted after it.
    written_token: u64,
}

/// The writer's signals, shared with the service when it saves its changes.
pub(super) struct Saver {
    /// Wakes the writer; used with the service's state mutex.
    wake: Condvar,
    /// The highest change number on disk.
    written: watch::Sender<u64>,
}

impl Saver {
    pub(super) fn new() -> Self {
        Saver {
            wake: Condvar::new(),
            written: watch::channel(0).0,
        }
    }

    /// Called under the service's lock with the events an operation produced: numbers the
    /// change if a reply must wait for it, else marks the table dirty. Returns the number.
    pub(super) fn record(
        &self,
        pending: &mut Pending,
        events: &[Event],
        must_save: bool,
    ) -> Option<u64> {
        if must_save || events.iter().any(Event::changes_holder) {
            pending.changes += 1;
            self.wake.notify_one();
            Some(pending.changes)
        } else {
            if !events.is_empty() && pending.dirty_since.is_none() {
                pending.dirty_since = Some(Instant::now());
                self.wake.notify_one();
            }
            None
        }
    }

    /// Waits until change `seq` is on disk.
    pub(super) async fn durable(&self, seq: u64) {
        let mut rx = self.written.subscribe();
        // The sender lives as long as the service, so this only ends once the change is
        // written.
        let _ = rx.wait_for(|written| *written >= seq).await;
    }
}

/// A renewal normally only moves a deadline, which may be saved lazily: after a restart the
/// lease is held for at least its saved ttl. A longer ttl than before must be saved first.
pub(super) fn note_longer_ttl(
    pending: &mut Pending,
    ttl_before: Option<Duration>,
    result: &Result<Grant, Denied>,
) {
    if let (Some(ttl_before), Ok(grant)) = (ttl_before, result)
        && grant.kind == GrantKind::Renewed
        && grant.lease.ttl > ttl_before
    {
        pending.must_save = true;
    }
}

impl Pending {
    /// Nothing is pending yet; every token up to `last_token` is on disk or was never handed
    /// out by this run.
    pub(super) fn new(last_token: u64) -> Self {
        Pending {
            written_token: last_token,
            ..Pending::default()
        }
    }

    /// The change a reply reporting `grant` must wait for, when the operation itself numbered
    /// none (a renewal): a grant made moments ago may still be on its way to disk, and its
    /// holder must not act on it before then.
    pub(super) fn change_for_renewal(&self, grant: &Grant) -> Option<u64> {
        (grant.lease.token > self.written_token).then_some(self.changes)
    }
}

impl LockService {
    /// Asks the writer (if any) to make its final write and stop.
    pub(super) fn stop_writer(&self) {
        if let Some(saver) = &self.inner.saver {
            self.lock().pending.closing = true;
            saver.wake.notify_one();
        }
    }
}

/// The writer thread: writes whenever a change is numbered or the table has been dirty for
/// [`LAZY_FLUSH`], and once more when asked to stop.
pub(super) fn write_loop(service: LockService, mut store: Store) {
    let Some(saver) = service.inner.saver.as_ref() else {
        return;
    };
    loop {
        let closing = {
            let mut state = service.lock();
            loop {
                let p = &state.pending;
                if p.closing || p.changes > *saver.written.borrow() {
                    break;
                }
                let dirty_since = p.dirty_since;
                state = match dirty_since {
                    Some(since) if since.elapsed() >= LAZY_FLUSH => break,
                    Some(since) => {
                        let left = LAZY_FLUSH.saturating_sub(since.elapsed());
                        saver
                            .wake
                            .wait_timeout(state, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                    }
                    None => saver.wake.wait(state).unwrap_or_else(|e| e.into_inner()),
                };
            }
            // Changes made from here on land in this snapshot or mark the table again.
            state.pending.dirty_since = None;
            state.pending.closing
        };
        let (seq, snapshot): (u64, SavedState) =
            service.with_state(|state, now| (state.pending.changes, state.engine.export(now)));
        match store.write(&snapshot, closing) {
            Ok(()) => {
                let covered = match store.batching() {
                    Batching::GroupCommit => seq,
                    Batching::PerChange => (*saver.written.borrow() + 1).min(seq),
                };
                service.lock().pending.written_token = snapshot.last_token;
                // Wake the waiting replies only when the number moves.
                saver.written.send_if_modified(|w| {
                    let before = *w;
                    *w = before.max(covered);
                    *w != before
                });
                if closing {
                    tracing::info!(path = %store.path().display(), "saved final state");
                    return;
                }
            }
            Err(err) => {
                tracing::error!(
                    path = %store.path().display(),
                    "cannot save state (retrying; changes wait until it is saved): {err}"
                );
                // Put back what this write should have covered, then back off.
                let mut state = service.lock();
                state.pending.dirty_since.get_or_insert_with(Instant::now);
                if closing {
                    return;
                }
                let _ = saver
                    .wake
                    .wait_timeout(state, RETRY_AFTER)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}
