//! A file system that loses power: what was written but not made durable is kept in a
//! volatile layer and, at a simulated power cut, dropped or cut to a random prefix; directory
//! entries not yet synced survive only as a random prefix of the order they were made in (a
//! journal keeps metadata in order). Then crash scenarios over it, through the real service
//! and store: every acknowledged change survives a cut between any two file operations, and
//! tokens never go backwards.
//!
//! SIGKILL (the crash test in `tests/crash.rs`) keeps the page cache, so only this can show
//! that the store's fsyncs are needed.

use super::disk::Disk;
use super::{Batching, Loaded, Store};
use crate::engine::{Engine, Found, Grant, GrantKind, Restored, Rules, SavedState, Watermarks};
use crate::service::LockService;
use crate::time::{Clock, SystemClock};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A small xorshift generator: reproducible from the printed seed, no dependency.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A change to the directory's entries since it was last synced. A rename is one change:
/// after a power cut the file has either name, never none or both.
#[derive(Debug, Clone)]
enum EntryChange {
    Link(PathBuf, u64),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf, u64),
}

impl EntryChange {
    fn apply(self, names: &mut BTreeMap<PathBuf, u64>) {
        match self {
            EntryChange::Link(path, inode) => {
                names.insert(path, inode);
            }
            EntryChange::Unlink(path) => {
                names.remove(&path);
            }
            EntryChange::Rename(from, to, inode) => {
                names.remove(&from);
                names.insert(to, inode);
            }
        }
    }
}

/// The files as the program sees them (volatile) and as they would be after a power cut
/// (durable). Files are inodes, so a rename moves data without copying it.
#[derive(Debug, Default, Clone)]
struct Files {
    names: BTreeMap<PathBuf, u64>,
    data: HashMap<u64, Vec<u8>>,
    durable_names: BTreeMap<PathBuf, u64>,
    durable_data: HashMap<u64, Vec<u8>>,
    /// Entry changes not yet made durable, oldest first.
    unsynced: Vec<EntryChange>,
    next_inode: u64,
}

impl Files {
    /// What survives a power cut now.
    fn after_power_cut(&self, rng: &mut Rng) -> Files {
        let mut names = self.durable_names.clone();
        let kept = rng.below(self.unsynced.len() as u64 + 1) as usize;
        for change in &self.unsynced[..kept] {
            change.clone().apply(&mut names);
        }
        let mut data = HashMap::new();
        for inode in names.values() {
            let now = self.data.get(inode).cloned().unwrap_or_default();
            let bytes = match self.durable_data.get(inode) {
                Some(synced) if *synced == now => synced.clone(),
                // Written since its last sync: either none of that reached the platter, or
                // the truncation and some prefix of the new bytes did.
                Some(synced) if rng.below(2) == 0 => synced.clone(),
                _ => now[..rng.below(now.len() as u64 + 1) as usize].to_vec(),
            };
            data.insert(*inode, bytes);
        }
        Files {
            durable_names: names.clone(),
            durable_data: data.clone(),
            names,
            data,
            unsynced: Vec::new(),
            next_inode: self.next_inode,
        }
    }
}

#[derive(Debug)]
struct Machine {
    files: Files,
    /// File operations so far.
    ops: u64,
    /// The power fails instead of this operation.
    cut_at: Option<u64>,
    rng: Rng,
    /// What survived the cut, once the power has failed: from then on every operation fails.
    survived: Option<Files>,
}

/// A [`Disk`] whose power can be cut; clones share one machine.
#[derive(Debug, Clone)]
struct PowerCutDisk(Arc<Mutex<Machine>>);

impl PowerCutDisk {
    fn new(files: Files, rng: Rng) -> Self {
        PowerCutDisk(Arc::new(Mutex::new(Machine {
            files,
            ops: 0,
            cut_at: None,
            rng,
            survived: None,
        })))
    }

    fn machine(&self) -> std::sync::MutexGuard<'_, Machine> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The power fails instead of the `n`th file operation from now.
    fn cut_after(&self, n: u64) {
        let mut m = self.machine();
        m.cut_at = Some(m.ops + n);
    }

    /// What survived, once the power has failed.
    fn survived(&self) -> Option<Files> {
        self.machine().survived.clone()
    }

    /// Counts one operation, failing it if the power is (or now goes) out.
    fn operate<T>(&self, op: impl FnOnce(&mut Files) -> io::Result<T>) -> io::Result<T> {
        let mut m = self.machine();
        if m.survived.is_none() && m.cut_at == Some(m.ops) {
            let mut rng = m.rng.clone();
            let survived = m.files.after_power_cut(&mut rng);
            m.rng = rng;
            m.survived = Some(survived);
        }
        if m.survived.is_some() {
            return Err(io::Error::other("the power is out"));
        }
        m.ops += 1;
        op(&mut m.files)
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
}

impl Disk for PowerCutDisk {
    fn create_dir_all(&mut self, _dir: &Path) -> io::Result<()> {
        // One directory, which always exists.
        self.operate(|_| Ok(()))
    }

    fn write(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.operate(|f| {
            let inode = match f.names.get(path) {
                Some(inode) => *inode,
                None => {
                    f.next_inode += 1;
                    let inode = f.next_inode;
                    f.names.insert(path.to_owned(), inode);
                    f.unsynced.push(EntryChange::Link(path.to_owned(), inode));
                    inode
                }
            };
            f.data.insert(inode, bytes.to_vec());
            Ok(())
        })
    }

    fn sync_file(&mut self, path: &Path) -> io::Result<()> {
        self.operate(|f| {
            let inode = *f.names.get(path).ok_or_else(|| not_found(path))?;
            let bytes = f.data.get(&inode).cloned().unwrap_or_default();
            f.durable_data.insert(inode, bytes);
            Ok(())
        })
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.operate(|f| {
            let inode = f.names.remove(from).ok_or_else(|| not_found(from))?;
            f.names.insert(to.to_owned(), inode);
            f.unsynced
                .push(EntryChange::Rename(from.to_owned(), to.to_owned(), inode));
            Ok(())
        })
    }

    fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        self.operate(|f| {
            f.names.remove(path).ok_or_else(|| not_found(path))?;
            f.unsynced.push(EntryChange::Unlink(path.to_owned()));
            Ok(())
        })
    }

    fn sync_dir(&mut self, _dir: &Path) -> io::Result<()> {
        self.operate(|f| {
            for change in std::mem::take(&mut f.unsynced) {
                change.apply(&mut f.durable_names);
            }
            Ok(())
        })
    }

    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        self.operate(|f| {
            let inode = f.names.get(path).ok_or_else(|| not_found(path))?;
            Ok(f.data.get(inode).cloned().unwrap_or_default())
        })
    }

    fn exists(&mut self, path: &Path) -> bool {
        self.operate(|f| Ok(f.names.contains_key(path)))
            .unwrap_or(false)
    }
}

#[test]
fn the_double_drops_what_was_not_made_durable() {
    let dir = Path::new("/state");
    let file = dir.join("f");
    let tmp = dir.join("f.partial");
    // Written and synced, then renamed without a directory sync: the rename may be lost, the
    // data is not.
    let mut lost_rename = 0;
    for seed in 1..50 {
        let mut disk = PowerCutDisk::new(Files::default(), Rng(seed));
        disk.write(&tmp, b"new").unwrap();
        disk.sync_file(&tmp).unwrap();
        disk.sync_dir(dir).unwrap();
        disk.rename(&tmp, &file).unwrap();
        disk.cut_after(0);
        assert!(disk.read(&file).is_err(), "no operation after the cut");
        let after = disk.survived().unwrap();
        let mut again = PowerCutDisk::new(after, Rng(seed));
        match again.read(&file) {
            Ok(bytes) => assert_eq!(bytes, b"new"),
            Err(_) => {
                lost_rename += 1;
                assert_eq!(again.read(&tmp).unwrap(), b"new");
            }
        }
    }
    assert!(lost_rename > 0, "an unsynced rename is sometimes lost");

    // Written, never synced, entry made durable: some prefix of the data, often less.
    let mut short = 0;
    for seed in 1..50 {
        let mut disk = PowerCutDisk::new(Files::default(), Rng(seed));
        disk.write(&file, b"0123456789").unwrap();
        disk.sync_dir(dir).unwrap();
        disk.cut_after(0);
        let _ = disk.exists(&file);
        let mut again = PowerCutDisk::new(disk.survived().unwrap(), Rng(seed));
        let bytes = again.read(&file).unwrap();
        assert!(b"0123456789".starts_with(&bytes));
        short += usize::from(bytes.len() < 10);
    }
    assert!(short > 0, "unsynced data is sometimes cut short");
}

/// What the clients know about one job.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Known {
    /// Released (or never held), and told so, with nothing sent since.
    Free,
    /// `client` was granted it with `token` and has sent no release since.
    Held { client: usize, token: u64 },
    /// A request with no reply yet may have changed it.
    Unsure,
}

const JOBS: usize = 4;
const CLIENTS: usize = 3;

struct Model {
    jobs: [Known; JOBS],
    /// Requests sent for each job and not answered yet: any of them may have changed it.
    in_flight: [usize; JOBS],
    /// The largest token any client was told of.
    max_token: u64,
    violations: Vec<String>,
    acknowledged: usize,
}

impl Model {
    /// Notes a request for job `j` going out; returns the largest token seen before it.
    fn send(&mut self, j: usize) -> u64 {
        self.in_flight[j] += 1;
        self.max_token
    }

    /// After a power cut: the requests that got no reply may have changed their jobs.
    fn unanswered_are_unsure(&mut self) {
        for j in 0..JOBS {
            if self.in_flight[j] > 0 && self.jobs[j] == Known::Free {
                self.jobs[j] = Known::Unsure;
            }
            self.in_flight[j] = 0;
        }
    }

    /// Records a grant to `me` of job `j` made after `seen_before` was the largest token.
    fn granted(&mut self, me: usize, j: usize, grant: &Grant, seen_before: u64) {
        let job = &grant.job;
        if let Known::Held { client, token } = self.jobs[j]
            && client != me
        {
            // Its holder has sent no release (it marks the job unsure first).
            self.violations.push(format!(
                "DOUBLE GRANT: {job} to c{me} ({}) while c{client} holds it ({token})",
                grant.lease.token
            ));
        }
        if grant.kind != GrantKind::Renewed && grant.lease.token <= seen_before {
            self.violations.push(format!(
                "token {} for {job} is not above {seen_before} already handed out",
                grant.lease.token
            ));
        }
        self.max_token = self.max_token.max(grant.lease.token);
        self.jobs[j] = Known::Held {
            client: me,
            token: grant.lease.token,
        };
        self.acknowledged += 1;
    }
}

fn rules() -> Rules {
    Rules {
        // Long enough that no lease ends during the test: every loss is the store's fault.
        default_ttl: Duration::from_secs(3600),
        ..Rules::default()
    }
}

/// One client's requests until it is stopped (aborted at the power cut).
async fn client(service: LockService, me: usize, mut rng: Rng, model: Arc<Mutex<Model>>) {
    let name = format!("c{me}");
    let stop = tokio_util::sync::CancellationToken::new();
    let ttl = Duration::from_secs(3600);
    loop {
        let j = rng.below(JOBS as u64) as usize;
        let job = format!("job{j}");
        let release = rng.below(2) == 0;
        let (known, seen_before) = {
            let mut m = model.lock().unwrap();
            let known = m.jobs[j];
            let mine = matches!(known, Known::Held { client, .. } if client == me);
            if (mine && release) || matches!(known, Known::Free | Known::Unsure) {
                m.jobs[j] = Known::Unsure;
            }
            (known, m.send(j))
        };
        match known {
            Known::Held { client, token } if client == me && release => {
                let released = service.release(&job, &name).await;
                let mut m = model.lock().unwrap();
                m.in_flight[j] -= 1;
                match released {
                    Ok(lease) if lease.token == token => {
                        if m.jobs[j] == Known::Unsure {
                            m.jobs[j] = Known::Free;
                        }
                        m.acknowledged += 1;
                    }
                    other => m.violations.push(format!(
                        "{name} held {job} ({token}) but its release got {other:?}"
                    )),
                }
            }
            Known::Held { client, token } if client == me => {
                let renewed = service.acquire(&job, &name, ttl).await;
                let mut m = model.lock().unwrap();
                m.in_flight[j] -= 1;
                match renewed {
                    Ok(grant) if grant.lease.token == token => m.acknowledged += 1,
                    other => m
                        .violations
                        .push(format!("{name} renewing {job} ({token}) got {other:?}")),
                }
            }
            _ => {
                // Some wait in line, so grants also come from releases handing the job over
                // (each reply waits for its own grant to be on disk).
                let granted = if rng.below(6) == 0 {
                    let wait = Duration::from_millis(2 + rng.below(8));
                    service
                        .acquire_waiting(&job, &name, ttl, wait, &stop)
                        .await
                        .map_err(|e| format!("{e}"))
                } else {
                    service
                        .acquire(&job, &name, ttl)
                        .await
                        .map_err(|e| format!("{e}"))
                };
                let mut m = model.lock().unwrap();
                m.in_flight[j] -= 1;
                // Refused: another client's grant may not have reached the model yet.
                if let Ok(grant) = granted {
                    m.granted(me, j, &grant, seen_before);
                }
            }
        }
        tokio::task::yield_now().await;
    }
}

/// Right after a restart: every acknowledged holder holds its job with its token, every
/// acknowledged release stayed released, and the token counter is above every token a client
/// was told of.
fn check_restart(engine: &mut Engine, restored: Restored, m: &mut Model, round: usize) {
    if let Restored::Quarantined { .. } = restored {
        m.violations.push(format!(
            "round {round}: the saved table was lost (quarantine) after a power cut"
        ));
        return;
    }
    let now = SystemClock.now();
    for (j, known) in m.jobs.iter().enumerate() {
        let job = format!("job{j}");
        let lease = engine.get(&job, now);
        let holder = lease.as_ref().map(|l| (String::from(&*l.holder), l.token));
        match known {
            Known::Held { client, token } if holder != Some((format!("c{client}"), *token)) => {
                m.violations.push(format!(
                    "round {round}: {job} was granted to c{client} ({token}) but after the \
                     cut it is {holder:?}"
                ));
            }
            Known::Free if holder.is_some() => m.violations.push(format!(
                "round {round}: {job} was released but after the cut it is {holder:?}"
            )),
            _ => {}
        }
    }
    if engine.last_token() < m.max_token {
        m.violations.push(format!(
            "round {round}: tokens went back to {} below {} already handed out",
            engine.last_token(),
            m.max_token
        ));
    }
}

/// Runs `rounds` power cuts at random file operations under clients working through the real
/// service and store, and returns the violations found.
async fn power_cuts(seed: u64, rounds: usize) -> (Vec<String>, usize) {
    let dir = Path::new("/state");
    let mut rng = Rng(seed);
    let model = Arc::new(Mutex::new(Model {
        jobs: [Known::Free; JOBS],
        in_flight: [0; JOBS],
        max_token: 0,
        violations: Vec::new(),
        acknowledged: 0,
    }));
    let mut files = Files::default();
    for round in 0..rounds {
        let disk = PowerCutDisk::new(files.clone(), Rng(rng.next() | 1));
        let (store, Loaded { found, .. }) =
            Store::open_on(Box::new(disk.clone()), dir, Batching::GroupCommit, None)
                .expect("the store opens");
        let (mut engine, restored) = Engine::after_restart(rules(), found, SystemClock.now());
        {
            let mut m = model.lock().unwrap();
            check_restart(&mut engine, restored, &mut m, round);
            // A lost table (quarantine) refuses every grant: no writes, so no cut would come.
            if !m.violations.is_empty() {
                let acknowledged = m.acknowledged;
                return (std::mem::take(&mut m.violations), acknowledged);
            }
        }
        // The power fails within the next few writes (each is a dozen file operations).
        disk.cut_after(1 + rng.below(60));
        let running = LockService::start(engine, Arc::new(SystemClock), Some(store));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|me| {
                let rng = Rng(rng.next() | 1);
                tokio::spawn(client(
                    running.service().clone(),
                    me,
                    rng,
                    Arc::clone(&model),
                ))
            })
            .collect();
        // The clients keep the writer busy, so the cut comes within milliseconds; a store that
        // stopped writing must fail the test, not hang it.
        let survived = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Some(survived) = disk.survived() {
                    break survived;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("round {round}: the store made no file operation for 30 s"));
        for c in clients {
            c.abort();
            let _ = c.await;
        }
        running.shutdown().await;
        model.lock().unwrap().unanswered_are_unsure();
        files = survived;
    }
    // A last restart checks the last round.
    let disk = PowerCutDisk::new(files, Rng(1));
    let (_, Loaded { found, .. }) =
        Store::open_on(Box::new(disk), dir, Batching::GroupCommit, None).expect("opens");
    let (mut engine, restored) = Engine::after_restart(rules(), found, SystemClock.now());
    let mut m = model.lock().unwrap();
    check_restart(&mut engine, restored, &mut m, rounds);
    let acknowledged = m.acknowledged;
    (std::mem::take(&mut m.violations), acknowledged)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_change_survives_a_power_cut_and_tokens_never_go_backwards() {
    // POWER_CUT_SEED=n runs the rounds a failure printed again.
    let seed = std::env::var("POWER_CUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1;
    eprintln!("power cut seed {seed} (POWER_CUT_SEED={seed} repeats it)");
    let rounds = 150;
    let (violations, acknowledged) = power_cuts(seed, rounds).await;
    eprintln!("{rounds} power cuts, {acknowledged} acknowledged changes");
    assert!(violations.is_empty(), "seed {seed}: {violations:#?}");
    assert!(
        acknowledged > rounds,
        "seed {seed}: the clients did too little ({acknowledged} acknowledged changes)"
    );
}

/// A disk that reads (an empty directory, or one holding `state_file`) but refuses every
/// write, like a full or read-only file system on which the lock file already exists.
#[derive(Default)]
struct Refusing {
    state_file: Option<Vec<u8>>,
}

impl Disk for Refusing {
    fn create_dir_all(&mut self, _: &Path) -> io::Result<()> {
        Ok(())
    }
    fn write(&mut self, _: &Path, _: &[u8]) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::StorageFull))
    }
    fn sync_file(&mut self, path: &Path) -> io::Result<()> {
        Err(not_found(path))
    }
    fn rename(&mut self, from: &Path, _: &Path) -> io::Result<()> {
        Err(not_found(from))
    }
    fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        Err(not_found(path))
    }
    fn sync_dir(&mut self, _: &Path) -> io::Result<()> {
        Ok(())
    }
    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        match &self.state_file {
            Some(bytes) if path.ends_with(super::STATE_FILE) => Ok(bytes.clone()),
            _ => Err(not_found(path)),
        }
    }
    fn exists(&mut self, path: &Path) -> bool {
        self.state_file.is_some() && path.ends_with(super::STATE_FILE)
    }
}

#[test]
fn a_directory_that_takes_no_writes_is_refused_when_opened() {
    let opened = Store::open_on(
        Box::new(Refusing::default()),
        Path::new("/state"),
        Batching::GroupCommit,
        None,
    );
    assert!(
        matches!(opened, Err(super::StoreError::NotWritable { .. })),
        "{:?}",
        opened.err()
    );
}

#[test]
fn a_directory_with_saved_state_that_takes_no_writes_is_refused_when_opened() {
    // A disk gone read-only or full since the last run: reading the saved table works, and
    // nothing needs writing to load it, but the first grant could not be saved. Better a
    // startup error than a server that refuses every grant.
    let saved = serde_json::to_vec(&lease_of(60_000, 3)).unwrap();
    let opened = Store::open_on(
        Box::new(Refusing {
            state_file: Some(saved),
        }),
        Path::new("/state"),
        Batching::GroupCommit,
        None,
    );
    assert!(
        matches!(opened, Err(super::StoreError::NotWritable { .. })),
        "{:?}",
        opened.err()
    );
}

/// The state file and watermarks among `files`, as a restart would read them.
fn read_back(files: &Files) -> (Option<SavedState>, Option<Watermarks>) {
    let mut disk = PowerCutDisk::new(files.clone(), Rng(1));
    let dir = Path::new("/state");
    let state = disk.read(&dir.join(super::STATE_FILE)).ok().map(|bytes| {
        serde_json::from_slice(&bytes).expect("the state file is whole or absent, never torn")
    });
    let marks = disk
        .read(&dir.join(super::WATERMARKS_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    (state, marks)
}

fn lease_of(ttl_ms: u64, token: u64) -> SavedState {
    SavedState {
        last_token: token,
        leases: vec![crate::engine::SavedLease {
            job: "j".into(),
            holder: "a".into(),
            run: None,
            token,
            ttl_ms,
            acquired_at_ms: 1,
            expires_at_ms: 2,
        }],
        quarantine_until_ms: None,
        quarantine_left_ms: None,
    }
}

#[test]
fn watermarks_never_claim_less_than_the_state_file_whenever_the_power_fails() {
    // A long lease with a new token (the watermarks go up), then a short one in the final
    // write (they come down): cut the power before each file operation of the second write,
    // many times over, and read back what a restart would find.
    let dir = Path::new("/state");
    let writes = [(lease_of(600_000, 5), false), (lease_of(1_000, 6), true)];
    for seed in 1..40 {
        for cut in 0.. {
            let disk = PowerCutDisk::new(Files::default(), Rng(seed));
            let (mut store, _) =
                Store::open_on(Box::new(disk.clone()), dir, Batching::GroupCommit, None).unwrap();
            disk.cut_after(cut);
            let mut finished = true;
            for (state, last) in &writes {
                finished &= store.write(state, *last).is_ok();
            }
            let files = disk
                .survived()
                .unwrap_or_else(|| disk.machine().files.clone());
            let (state, marks) = read_back(&files);
            if let Some(state) = state {
                // No watermarks bound nothing: only the empty state file of a first start
                // may be without them.
                let marks = marks.unwrap_or_default();
                let longest = state.leases.iter().map(|l| l.ttl_ms).max().unwrap_or(0);
                assert!(
                    marks.token_ceiling >= state.last_token && marks.max_ttl_ms >= longest,
                    "seed {seed}, cut {cut}: {marks:?} below {state:?}"
                );
            }
            if finished {
                break;
            }
        }
    }
}

#[test]
fn a_power_cut_during_the_first_write_to_a_fresh_directory_loses_nothing() {
    // The first write raises the watermarks before the state file exists: were the power to
    // fail between the two, a restart would find watermarks without a state file, take the
    // table for lost and refuse every grant for the longest ttl.
    let dir = Path::new("/state");
    for seed in 1..20 {
        for cut in 0.. {
            let disk = PowerCutDisk::new(Files::default(), Rng(seed));
            let (mut store, _) =
                Store::open_on(Box::new(disk.clone()), dir, Batching::GroupCommit, None).unwrap();
            disk.cut_after(cut);
            let finished = store.write(&lease_of(600_000, 1), false).is_ok();
            let files = disk
                .survived()
                .unwrap_or_else(|| disk.machine().files.clone());
            let (_, loaded) = Store::open_on(
                Box::new(PowerCutDisk::new(files, Rng(seed))),
                dir,
                Batching::GroupCommit,
                None,
            )
            .unwrap();
            assert!(
                !matches!(loaded.found, Found::Lost(_)),
                "seed {seed}, cut {cut}: {:?}",
                loaded.lost
            );
            if finished {
                break;
            }
        }
    }
}

#[test]
fn a_fresh_directory_is_a_first_start_on_the_double() {
    let disk = PowerCutDisk::new(Files::default(), Rng(7));
    let (_, loaded) = Store::open_on(
        Box::new(disk),
        Path::new("/state"),
        Batching::GroupCommit,
        None,
    )
    .unwrap();
    assert_eq!(loaded.found, Found::Nothing);
}
