//! A disk that counts the state file's writes and can hold them up, and tests over it, through
//! the real service and store, of when the service writes: renewals are saved lazily (about
//! one write a second, however often they come), an idle server writes nothing, and a renewal
//! of a grant still on its way to disk is answered only once that grant is saved.

use super::disk::Disk;
use super::{Batching, STATE_FILE, Store};
use crate::engine::{Engine, Rules};
use crate::service::{LockService, Running};
use crate::time::SystemClock;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Watch {
    /// Times the state file was replaced.
    state_writes: u64,
    /// While set, replacing the state file waits.
    held: bool,
    /// Writes of the state file waiting because of `held`.
    waiting: u64,
}

/// Files in memory; clones share the counters.
#[derive(Clone, Default)]
struct WatchedDisk {
    files: Arc<Mutex<HashMap<PathBuf, Vec<u8>>>>,
    watch: Arc<(Mutex<Watch>, Condvar)>,
}

impl WatchedDisk {
    fn watch(&self) -> MutexGuard<'_, Watch> {
        self.watch.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state_writes(&self) -> u64 {
        self.watch().state_writes
    }

    fn waiting(&self) -> u64 {
        self.watch().waiting
    }

    /// From now on, writes of the state file wait for [`let_go`](Self::let_go).
    fn hold(&self) {
        self.watch().held = true;
    }

    fn let_go(&self) {
        self.watch().held = false;
        self.watch.1.notify_all();
    }

    fn files(&self) -> MutexGuard<'_, HashMap<PathBuf, Vec<u8>>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
}

impl Disk for WatchedDisk {
    fn create_dir_all(&mut self, _: &Path) -> io::Result<()> {
        Ok(())
    }

    fn write(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.files().insert(path.to_owned(), bytes.to_vec());
        Ok(())
    }

    fn sync_file(&mut self, path: &Path) -> io::Result<()> {
        match self.files().contains_key(path) {
            true => Ok(()),
            false => Err(not_found(path)),
        }
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        if to.file_name().is_some_and(|name| name == STATE_FILE) {
            let mut watch = self.watch();
            watch.waiting += 1;
            while watch.held {
                watch = self.watch.1.wait(watch).unwrap_or_else(|e| e.into_inner());
            }
            watch.waiting -= 1;
            watch.state_writes += 1;
        }
        let mut files = self.files();
        let bytes = files.remove(from).ok_or_else(|| not_found(from))?;
        files.insert(to.to_owned(), bytes);
        Ok(())
    }

    fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        self.files()
            .remove(path)
            .map(drop)
            .ok_or_else(|| not_found(path))
    }

    fn sync_dir(&mut self, _: &Path) -> io::Result<()> {
        Ok(())
    }

    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        self.files()
            .get(path)
            .cloned()
            .ok_or_else(|| not_found(path))
    }

    fn exists(&mut self, path: &Path) -> bool {
        self.files().contains_key(path)
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// A service saving to a fresh directory on a watched disk.
fn start() -> (Running, WatchedDisk) {
    let disk = WatchedDisk::default();
    let (store, _) = Store::open_on(
        Box::new(disk.clone()),
        Path::new("/state"),
        Batching::GroupCommit,
        None,
    )
    .expect("the store opens");
    let engine = Engine::new(Rules::default());
    let running = LockService::start(engine, Arc::new(SystemClock), Some(store));
    (running, disk)
}

/// Waits (at most 10 s) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what} within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_are_saved_about_once_a_second_however_often_they_come() {
    // A renewal needs no write before its reply (a restart holds a lease for its saved ttl
    // anyway), so holders renewing often cost the disk about one write a second, not one
    // each; but a renewal is on disk within about a second even while more keep coming.
    let (running, disk) = start();
    let service = running.service().clone();
    service.acquire("j", "a", HOUR).await.unwrap();
    let granted = disk.state_writes();

    let first = Instant::now();
    while disk.state_writes() == granted {
        assert!(
            first.elapsed() < Duration::from_secs(10),
            "renewals ten times a second were not saved for 10 s"
        );
        service.acquire("j", "a", HOUR).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let before = disk.state_writes();
    let started = Instant::now();
    let mut renewals = 0;
    while started.elapsed() < Duration::from_secs(2) {
        service.acquire("j", "a", HOUR).await.unwrap();
        renewals += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each lazy write comes a second after the first change it covers, and that change came
    // after the previous write began: a window of `elapsed` seconds holds about that many
    // writes, fewer on a loaded machine; two more allow for writes slowed down by the load.
    let writes = disk.state_writes() - before;
    let bound = started.elapsed().as_secs() + 2;
    assert!(
        writes <= bound,
        "{renewals} renewals made {writes} writes in {:?}",
        started.elapsed()
    );
    running.shutdown().await;
}

#[tokio::test]
async fn an_idle_server_does_not_write() {
    let (running, disk) = start();
    let service = running.service().clone();
    service.acquire("j", "a", HOUR).await.unwrap();
    let saved = disk.state_writes();
    // Nothing happens from here on, so nothing may be written (a lease of an hour does not
    // expire meanwhile).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(disk.state_writes(), saved, "writes while nothing changed");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_of_a_grant_still_on_its_way_to_disk_waits_until_it_is_saved() {
    // A client that retries a grant whose reply it did not get (a timeout, say) renews it.
    // Until the grant is on disk a crash would forget it, so that renewal must not tell the
    // client it holds the job any sooner than the grant's own reply would.
    let (running, disk) = start();
    let service = running.service().clone();
    // Some changes saved before, so the grant's is not the first.
    service.acquire("other", "b", HOUR).await.unwrap();
    service.release("other", "b").await.unwrap();
    disk.hold();
    let grant = tokio::spawn({
        let service = service.clone();
        async move { service.acquire("j", "a", HOUR).await }
    });
    until("the grant's write reaches the disk", || disk.waiting() == 1).await;
    let mut renewal = tokio::spawn({
        let service = service.clone();
        async move { service.acquire("j", "a", HOUR).await }
    });
    // Neither can be answered while the disk holds the write; half a second shows a reply
    // that does not wait.
    let early = tokio::time::timeout(Duration::from_millis(500), &mut renewal).await;
    assert!(
        early.is_err(),
        "renewal answered before the grant was saved: {early:?}"
    );
    assert!(!grant.is_finished(), "grant answered before it was saved");
    disk.let_go();
    let grant = grant.await.unwrap().expect("granted once saved");
    let renewal = renewal.await.unwrap().expect("renewed once saved");
    assert_eq!(renewal.lease.token, grant.lease.token);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_disk_holds_up_new_grants_but_not_renewals_of_saved_ones() {
    // `foolock lock` renews with a timeout: a disk busy saving someone else's grant must not
    // make a holder already on disk miss its renewals.
    let (running, disk) = start();
    let service = running.service().clone();
    service.acquire("mine", "a", HOUR).await.unwrap();
    disk.hold();
    let other = tokio::spawn({
        let service = service.clone();
        async move { service.acquire("theirs", "b", HOUR).await }
    });
    until("b's grant's write reaches the disk", || disk.waiting() == 1).await;
    let renewed = tokio::time::timeout(Duration::from_secs(5), service.acquire("mine", "a", HOUR))
        .await
        .expect("the renewal is answered while the disk is busy");
    assert_eq!(&*renewed.unwrap().lease.holder, "a");
    assert!(
        !other.is_finished(),
        "b's grant answered before it was saved"
    );
    disk.let_go();
    other.await.unwrap().expect("granted once saved");
    running.shutdown().await;
}
