use super::*;
use crate::time::SystemClock;
use std::time::Instant;

/// A service in memory with a 1 s grace period and its timer running.
fn service_with_timer() -> Running {
    let rules = Rules {
        grace: Duration::from_secs(1),
        ..Rules::default()
    };
    LockService::start(Engine::new(rules), Arc::new(SystemClock), None)
}

/// A service saving to a new state directory.
fn service_with_store(dir: &std::path::Path) -> Running {
    let (store, _) = Store::open(dir, crate::store::Batching::default()).unwrap();
    let engine = Engine::new(Rules::default());
    LockService::start(engine, Arc::new(SystemClock), Some(store))
}

/// What a restart would find in `dir` (while no service uses it).
fn saved_in(dir: &std::path::Path) -> crate::engine::SavedState {
    let (_, loaded) = Store::open(dir, crate::store::Batching::default()).unwrap();
    match loaded.found {
        crate::engine::Found::Saved(state) => state,
        other => panic!("expected saved state, found {other:?}"),
    }
}

fn saved_jobs(dir: &std::path::Path) -> Vec<String> {
    let state: crate::engine::SavedState =
        serde_json::from_slice(&std::fs::read(dir.join(crate::store::STATE_FILE)).unwrap())
            .unwrap();
    state.leases.into_iter().map(|l| l.job).collect()
}

#[tokio::test]
async fn dropping_the_running_service_stops_its_writer_and_frees_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let running = service_with_store(dir.path());
    running
        .service()
        .acquire("j", "a", Duration::from_secs(60))
        .await
        .unwrap();
    drop(running);
    // The writer makes its final write and lets go of the directory's lock.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Store::open(dir.path(), crate::store::Batching::default()).is_err() {
        assert!(Instant::now() < deadline, "the directory is still in use");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(saved_jobs(dir.path()), ["j"]);
}

#[tokio::test]
async fn grants_and_releases_are_on_disk_when_they_return() {
    let dir = tempfile::tempdir().unwrap();
    let running = service_with_store(dir.path());
    let service = running.service().clone();
    service
        .acquire("j", "a", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(saved_jobs(dir.path()), ["j"]);
    service.release("j", "a").await.unwrap();
    assert!(saved_jobs(dir.path()).is_empty());
    running.shutdown().await;
}

#[tokio::test]
async fn a_grant_reports_the_instant_it_was_decided_at_unless_it_waited_for_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let running = service_with_store(dir.path());
    let service = running.service().clone();
    let ttl = Duration::from_secs(60);
    // A new holder waits for its write (a file, an fsync, a rename): the instant is read
    // after that, so less than the whole ttl is left by then.
    let (granted, after_write) = service.acquire_at("j", "a", ttl).await;
    let granted = granted.unwrap();
    assert!(after_write.mono.until(granted.lease.expires) < ttl);
    // A renewal waits for nothing: the instant is the one its deadline was counted from.
    let (renewed, decided) = service.acquire_at("j", "a", ttl).await;
    let renewed = renewed.unwrap();
    assert_eq!(renewed.kind, GrantKind::Renewed);
    assert_eq!(decided.mono.until(renewed.lease.expires), ttl);
    running.shutdown().await;
}

#[tokio::test]
async fn with_one_write_per_change_each_change_is_on_disk_before_its_reply() {
    // The benchmarks' batching: a write covers only the oldest change not yet written, so
    // changes made together are acknowledged one write after another.
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), crate::store::Batching::PerChange).unwrap();
    let engine = Engine::new(Rules::default());
    let running = LockService::start(engine, Arc::new(SystemClock), Some(store));
    let mut changes = tokio::task::JoinSet::new();
    for i in 0..5 {
        let service = running.service().clone();
        let dir = dir.path().to_owned();
        changes.spawn(async move {
            let job = format!("j{i}");
            service
                .acquire(&job, "a", Duration::from_secs(60))
                .await
                .unwrap();
            assert!(
                saved_jobs(&dir).contains(&job),
                "{job} replied before saved"
            );
        });
    }
    let all = tokio::time::timeout(Duration::from_secs(20), changes.join_all());
    all.await.expect("every change is written in turn");
    assert_eq!(saved_jobs(dir.path()).len(), 5);
    running.shutdown().await;
}

#[tokio::test]
async fn shutdown_makes_the_final_write_and_frees_the_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let running = service_with_store(dir.path());
    let service = running.service().clone();
    service
        .acquire("long", "a", Duration::from_secs(600))
        .await
        .unwrap();
    service.release("long", "a").await.unwrap();
    service
        .acquire("short", "a", Duration::from_secs(1))
        .await
        .unwrap();
    running.shutdown().await;
    let saved = saved_in(dir.path());
    assert_eq!(saved.last_token, 2);
    let marks: crate::engine::Watermarks = serde_json::from_slice(
        &std::fs::read(dir.path().join(crate::store::WATERMARKS_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        marks.max_ttl_ms, 1000,
        "the final write lowers the watermark"
    );
}

#[tokio::test]
async fn expiry_event_fires_at_the_deadline_without_a_request() {
    let running = service_with_timer();
    let service = running.service().clone();
    let mut events = service.subscribe();
    let started = Instant::now();
    service
        .acquire("j", "a", Duration::from_millis(500))
        .await
        .unwrap();
    let acquired = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("the grant's event at once")
        .unwrap();
    assert_eq!(acquired.kind, EventKind::Acquired);
    let expired = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("expiry event within 5 s")
        .unwrap();
    assert_eq!(expired.kind, EventKind::Expired);
    assert!(started.elapsed() >= Duration::from_millis(500));
    running.shutdown().await;
}

#[tokio::test]
async fn a_lease_ending_before_the_one_the_timer_sleeps_for_expires_on_time() {
    let running = service_with_timer();
    let service = running.service().clone();
    let mut events = service.subscribe();
    service
        .acquire("long", "a", Duration::from_secs(60))
        .await
        .unwrap();
    // Once the timer sleeps until the long lease's end, a shorter lease must wake it.
    while service.lock().timer_target.is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    service
        .acquire("short", "b", Duration::from_millis(500))
        .await
        .unwrap();
    let expired = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = events.recv().await.unwrap();
            if event.kind == EventKind::Expired {
                break event;
            }
        }
    })
    .await
    .expect("the short lease expires within seconds, not when the long one ends");
    assert_eq!(&*expired.job, "short");
    running.shutdown().await;
}

#[tokio::test]
async fn the_waiter_count_is_announced_when_it_changes_and_only_then() {
    let service = LockService::new(Rules::default(), Arc::new(SystemClock));
    let mut changes = service.waiters_changed();
    changes.borrow_and_update();
    service
        .acquire("j", "a", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(!changes.has_changed().unwrap(), "a grant moved no waiter");
    let stop = CancellationToken::new();
    let waiting = service.acquire_waiting(
        "j",
        "b",
        Duration::from_secs(10),
        Duration::from_secs(60),
        &stop,
    );
    let watching = async {
        tokio::time::timeout(Duration::from_secs(5), changes.changed())
            .await
            .expect("b's queueing is announced")
            .unwrap();
        assert_eq!(service.status("j").waiting, 1);
        changes.borrow_and_update();
        service.release("j", "a").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), changes.changed())
            .await
            .expect("b's leaving the queue is announced")
            .unwrap();
    };
    let (granted, ()) = tokio::join!(waiting, watching);
    assert_eq!(&*granted.unwrap().lease.holder, "b");
}

#[tokio::test]
async fn waiter_is_served_by_the_timer_when_grace_ends() {
    let running = service_with_timer();
    let service = running.service().clone();
    service
        .acquire("j", "a", Duration::from_millis(300))
        .await
        .unwrap();
    // Nothing but the timer notices the end of the grace period (1.3 s from now): the
    // wait is far longer, so a waiter served only when it runs out fails the timeout.
    let stop = CancellationToken::new();
    let waiting = service.acquire_waiting(
        "j",
        "b",
        Duration::from_secs(10),
        Duration::from_secs(60),
        &stop,
    );
    let grant = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("served by the timer, not at the end of the wait")
        .expect("granted after grace");
    assert_eq!(&*grant.lease.holder, "b");
    running.shutdown().await;
}

#[tokio::test]
async fn a_queued_waiter_is_told_the_server_is_stopping_when_it_shuts_down() {
    let service = LockService::new(Rules::default(), Arc::new(SystemClock));
    service
        .acquire("j", "a", Duration::from_secs(60))
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let waiting = service.acquire_waiting(
        "j",
        "b",
        Duration::from_secs(10),
        Duration::from_secs(60),
        &stop,
    );
    let stopping = async {
        while service.with_engine(|e, _| e.waiting()) == 0 {
            tokio::task::yield_now().await;
        }
        stop.cancel();
    };
    let (result, ()) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(waiting, stopping)
    })
    .await
    .expect("the waiter leaves at once");
    assert_eq!(result, Err(WaitError::Stopped));
    assert_eq!(service.with_engine(|e, _| e.waiting()), 0, "left the queue");
}

#[tokio::test]
async fn dropped_waiter_is_forgotten() {
    let service = LockService::new(Rules::default(), Arc::new(SystemClock));
    service
        .acquire("j", "a", Duration::from_secs(60))
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let waiting = service.acquire_waiting(
        "j",
        "b",
        Duration::from_secs(10),
        Duration::from_secs(60),
        &stop,
    );
    // Poll it once so it queues, then drop it as a disconnecting client would.
    let _ = tokio::time::timeout(Duration::from_millis(100), waiting).await;
    assert_eq!(service.with_engine(|e, _| e.waiting()), 0);
    service.release("j", "a").await.unwrap();
    assert!(
        service.status("j").lease.is_none(),
        "nobody was granted the job"
    );
}

/// A writer for the log that keeps what is written, to read it back.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines that contain `what`.
    fn lines_with(&self, what: &str) -> Vec<String> {
        let text = self.text();
        text.lines()
            .filter(|l| l.contains(what))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test]
async fn every_grant_release_expiry_and_takeover_is_logged_with_job_holder_and_token() {
    // The README's promise for the server log: it is where an operator finds out who held a
    // job and when.
    let log = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // This runtime has one thread, so every event of the test goes to this subscriber.
    let _logging = tracing::subscriber::set_default(subscriber);
    // tracing caches per call site whether anyone wants its events. A site another test
    // thread was registering just as this subscriber arrived can keep "nobody" (seen here as
    // a missing line when the whole suite runs in parallel); asking again puts it right.
    tracing_core::callsite::rebuild_interest_cache();
    let rules = Rules {
        grace: Duration::ZERO,
        ..Rules::default()
    };
    let service = LockService::new(rules, Arc::new(SystemClock));
    let hour = Duration::from_secs(3600);

    service.acquire("built", "alice", hour).await.unwrap();
    service.release("built", "alice").await.unwrap();
    service.acquire("forced", "bob", hour).await.unwrap();
    service.force_release("forced").await.unwrap();
    service
        .acquire("lapsed", "carol", Duration::from_millis(100))
        .await
        .unwrap();
    // Once carol's lease has run out (a look at the job notices), dave takes it over (no
    // grace here).
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.lines_with("lease expired").is_empty() {
        assert!(Instant::now() < deadline, "carol's lease never ran out");
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The expiry's call site is first hit here, after a wait in which another test may
        // have registered it with no subscriber in sight: ask again before each look.
        tracing_core::callsite::rebuild_interest_cache();
        service.status("lapsed");
    }
    tracing_core::callsite::rebuild_interest_cache();
    service.acquire("lapsed", "dave", hour).await.unwrap();

    for (what, job, holder, token) in [
        ("acquired", "built", "alice", 1),
        ("released", "built", "alice", 1),
        ("acquired", "forced", "bob", 2),
        ("force released", "forced", "bob", 2),
        ("acquired", "lapsed", "carol", 3),
        ("lease expired", "lapsed", "carol", 3),
        ("taken over after lapsed lease", "lapsed", "dave", 4),
    ] {
        let lines = log.lines_with(&format!("job=\"{job}\" holder=\"{holder}\" token={token}"));
        assert!(
            lines.iter().any(|l| l.contains(what)),
            "no {what:?} for {job} by {holder}:\n{}",
            log.text()
        );
    }
    let takeover = log.lines_with("taken over");
    assert!(takeover[0].contains("previous=\"carol\""), "{takeover:?}");
}
