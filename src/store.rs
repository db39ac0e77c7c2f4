//! Durable state: the lock table saved as `state.json` in the state directory, so a reboot or
//! crash does not forget who holds which job.
//!
//! The store loads what it finds and writes what it is given; it never calls the service.
//! When to write, and which replies wait for a write, is decided by the service's writer
//! (`service/saving.rs`); what a restart makes of what was found, by
//! [`Engine::after_restart`](crate::engine::Engine::after_restart).
//!
//! Invariants:
//! - The file is replaced atomically (`state.json.partial`, fsync, rename, fsync of the
//!   directory): after a crash it holds either the old state or the new one, never a mix.
//! - A directory with `watermarks.json` has a `state.json` (an empty one is written at the
//!   first start), so a missing state file always means a lost one.
//! - One server at a time uses a directory (`state.lock`, held with flock while the store
//!   lives).
//! - `watermarks.json` beside the state file bounds what `state.json` holds: the longest ttl
//!   among its leases, and a token ceiling at or above its token counter (raised in blocks of
//!   [`TOKEN_BLOCK`], so it costs one extra write per block). If `state.json` is ever lost to
//!   corruption, the quarantine lasts long enough and tokens still never go backwards.
//!
//! Every file operation goes through [`Disk`], so that tests can cut the power between any two
//! of them (`power_cut.rs`).

mod disk;
#[cfg(test)]
mod power_cut;
#[cfg(test)]
mod watched_disk;

use crate::engine::{Found, SavedState, Watermarks};
use disk::{Disk, RealDisk};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

pub const STATE_FILE: &str = "state.json";
/// Held locked (flock) while a server uses the directory.
const LOCK_FILE: &str = "state.lock";
const PARTIAL_SUFFIX: &str = ".partial";
pub const WATERMARKS_FILE: &str = "watermarks.json";
/// How far ahead of the token counter the saved ceiling is raised.
pub const TOKEN_BLOCK: u64 = 1000;

/// Lowering `max_ttl_ms` is never needed for safety, only to keep a future quarantine
/// short; doing it at most this often keeps it from costing a write whenever the table
/// empties.
const LOWER_MAX_TTL_EVERY: Duration = Duration::from_secs(60);

/// Why the store could not be opened. Each is a startup error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("state directory {path} is not writable: {source}")]
    NotWritable { path: PathBuf, source: io::Error },
    #[error("state directory {path} is in use by another foolock server")]
    InUse { path: PathBuf },
    #[error("cannot move unreadable state file {path} aside: {source}")]
    MoveAside { path: PathBuf, source: io::Error },
}

/// What was found in the state directory: what the engine restarts from (see
/// [`Engine::after_restart`](crate::engine::Engine::after_restart)), and why, if the saved
/// table was lost.
#[derive(Debug)]
pub struct Loaded {
    /// No state file and no watermarks is a first start; a readable state file is the saved
    /// table; anything else is a loss, with `watermarks.json` if it can be read.
    pub found: Found,
    /// Set exactly when `found` is [`Found::Lost`].
    pub lost: Option<Lost>,
}

/// Why the saved table was lost.
#[derive(Debug)]
pub struct Lost {
    pub reason: String,
    /// Where the unreadable file was moved; `None` when there was no file.
    pub moved_to: Option<PathBuf>,
}

/// How writes are batched; only benchmarks use anything but the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Batching {
    /// One write covers every change made before its snapshot.
    #[default]
    GroupCommit,
    /// One write (and fsync) per holder change, to measure what group commit saves.
    PerChange,
}

/// The state directory, locked for as long as this lives.
pub struct Store {
    dir: PathBuf,
    disk: Box<dyn Disk>,
    batching: Batching,
    /// The watermarks as on disk.
    on_disk: Watermarks,
    /// When `max_ttl_ms` was last allowed to go down.
    lowered_at: Instant,
    /// Keeps the directory's lock for as long as the store lives.
    _lock: Option<File>,
}

impl Store {
    /// Opens (creating if needed) the state directory, checks it can be written, and loads
    /// the state file. An unreadable or corrupt file is moved aside and reported as lost.
    pub fn open(dir: &Path, batching: Batching) -> Result<(Store, Loaded), StoreError> {
        fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        // Lock first: the write check below uses the file a running server writes.
        let lock = lock_dir(dir)?;
        Store::open_on(Box::new(RealDisk), dir, batching, Some(lock))
    }

    /// [`open`](Self::open) on `disk`, with the directory's lock (if any) already taken.
    fn open_on(
        mut disk: Box<dyn Disk>,
        dir: &Path,
        batching: Batching,
        lock: Option<File>,
    ) -> Result<(Store, Loaded), StoreError> {
        disk.create_dir_all(dir)
            .map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        check_writable(&mut *disk, dir).map_err(|source| StoreError::NotWritable {
            path: dir.to_owned(),
            source,
        })?;
        let loaded = load(&mut *disk, dir)?;
        if loaded.found == Found::Nothing {
            // A state file before any watermarks: otherwise a power cut between the first
            // write's watermarks and its state file would look like a lost table.
            write_state(&mut *disk, dir, &SavedState::default()).map_err(|source| {
                StoreError::NotWritable {
                    path: dir.to_owned(),
                    source,
                }
            })?;
        }
        let on_disk = read_watermarks(&mut *disk, dir).unwrap_or_default();
        let store = Store {
            dir: dir.to_owned(),
            disk,
            batching,
            on_disk,
            lowered_at: Instant::now(),
            _lock: lock,
        };
        Ok((store, loaded))
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// How the writer should batch its writes.
    pub fn batching(&self) -> Batching {
        self.batching
    }

    /// Replaces the state file with `state`, keeping the watermarks above it. `last` (the
    /// final write) lets `max_ttl_ms` come down at once. On failure the directory is
    /// recreated (it may have been removed), so that a retry can succeed.
    pub fn write(&mut self, state: &SavedState, last: bool) -> io::Result<()> {
        let result = self.write_with_watermarks(state, last);
        if result.is_err() {
            let _ = self.disk.create_dir_all(&self.dir);
        }
        result
    }

    fn write_with_watermarks(&mut self, state: &SavedState, last: bool) -> io::Result<()> {
        let max_ttl_ms = max_ttl_ms(state);
        let ceiling = if state.last_token > self.on_disk.token_ceiling {
            // A counter near u64::MAX (a corrupt or hostile file) must not wrap the ceiling
            // below it; the engine refuses grants once the last token is issued.
            state.last_token.saturating_add(TOKEN_BLOCK)
        } else {
            self.on_disk.token_ceiling
        };
        let raised = Watermarks {
            max_ttl_ms: max_ttl_ms.max(self.on_disk.max_ttl_ms),
            token_ceiling: ceiling,
        };
        let lower = last || self.lowered_at.elapsed() >= LOWER_MAX_TTL_EVERY;
        let settled = Watermarks {
            max_ttl_ms: if lower { max_ttl_ms } else { raised.max_ttl_ms },
            token_ceiling: ceiling,
        };
        // The watermarks must never claim less than the state on disk: raise them before the
        // state, lower them after.
        if raised != self.on_disk {
            write_watermarks(&mut *self.disk, &self.dir, raised)?;
            self.on_disk = raised;
        }
        write_state(&mut *self.disk, &self.dir, state)?;
        if settled != self.on_disk {
            write_watermarks(&mut *self.disk, &self.dir, settled)?;
            self.on_disk = settled;
        }
        if lower {
            self.lowered_at = Instant::now();
        }
        Ok(())
    }
}

/// The longest ttl among `state`'s leases, or what is left of its quarantine if longer: a
/// quarantine after losing `state` must outlast both.
fn max_ttl_ms(state: &SavedState) -> u64 {
    state
        .leases
        .iter()
        .map(|l| l.ttl_ms)
        .chain(state.quarantine_left_ms)
        .max()
        .unwrap_or_default()
}

/// Proves the directory takes a new file and an fsync, so a read-only or full disk is a
/// startup error instead of the first grant failing.
fn check_writable(disk: &mut dyn Disk, dir: &Path) -> io::Result<()> {
    let probe = dir.join(format!("{STATE_FILE}{PARTIAL_SUFFIX}"));
    disk.write(&probe, b"{}")?;
    disk.sync_file(&probe)?;
    disk.remove_file(&probe)
}

/// Takes the directory's lock: two servers writing one state file would each overwrite the
/// other's holders.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let not_writable = |source| StoreError::NotWritable {
        path: dir.to_owned(),
        source,
    };
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(not_writable)?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own; the lock ends when the file is closed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = io::Error::last_os_error();
            return Err(if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                StoreError::InUse {
                    path: dir.to_owned(),
                }
            } else {
                not_writable(err)
            });
        }
    }
    Ok(file)
}

fn load(disk: &mut dyn Disk, dir: &Path) -> Result<Loaded, StoreError> {
    let path = dir.join(STATE_FILE);
    let reason = match disk.read(&path) {
        // A lost state file after an earlier run is not a first start: its holders may still
        // be working, and tokens must stay above the ones it handed out.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(if disk.exists(&dir.join(WATERMARKS_FILE)) {
                Loaded {
                    found: Found::Lost(read_watermarks(disk, dir)),
                    lost: Some(Lost {
                        reason: format!(
                            "{STATE_FILE} is missing, but {WATERMARKS_FILE} shows that this \
                             directory held state before"
                        ),
                        moved_to: None,
                    }),
                }
            } else {
                Loaded {
                    found: Found::Nothing,
                    lost: None,
                }
            });
        }
        Err(e) => format!("cannot read it: {e}"),
        Ok(bytes) => match serde_json::from_slice::<SavedState>(&bytes) {
            Ok(state) => {
                return Ok(Loaded {
                    found: Found::Saved(state),
                    lost: None,
                });
            }
            Err(e) => format!("it is not valid saved state: {e}"),
        },
    };
    let moved_to = move_aside(disk, &path).map_err(|source| StoreError::MoveAside {
        path: path.clone(),
        source,
    })?;
    Ok(Loaded {
        found: Found::Lost(read_watermarks(disk, dir)),
        lost: Some(Lost {
            reason,
            moved_to: Some(moved_to),
        }),
    })
}

/// Renames `path` to `<path>.corrupt-<UTC time>` (with a counter if taken) and syncs the
/// directory, so the next write cannot destroy the evidence.
fn move_aside(disk: &mut dyn Disk, path: &Path) -> io::Result<PathBuf> {
    let stamp: String = crate::time::rfc3339(SystemTime::now())
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let base = format!("{}.corrupt-{stamp}", path.display());
    let mut target = PathBuf::from(&base);
    let mut n = 1;
    while disk.exists(&target) {
        n += 1;
        target = PathBuf::from(format!("{base}-{n}"));
    }
    disk.rename(path, &target)?;
    if let Some(dir) = path.parent() {
        disk.sync_dir(dir)?;
    }
    Ok(target)
}

/// Writes `bytes` as `dir/name` atomically and durably: the whole new file is durable before
/// the rename makes it the file, and the rename is durable before this returns.
fn replace_file(disk: &mut dyn Disk, dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let partial = dir.join(format!("{name}{PARTIAL_SUFFIX}"));
    disk.write(&partial, bytes)?;
    disk.sync_file(&partial)?;
    disk.rename(&partial, &dir.join(name))?;
    disk.sync_dir(dir)
}

fn write_state(disk: &mut dyn Disk, dir: &Path, state: &SavedState) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    bytes.push(b'\n');
    replace_file(disk, dir, STATE_FILE, &bytes)
}

fn write_watermarks(disk: &mut dyn Disk, dir: &Path, marks: Watermarks) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(&marks).map_err(io::Error::other)?;
    bytes.push(b'\n');
    replace_file(disk, dir, WATERMARKS_FILE, &bytes)
}

fn read_watermarks(disk: &mut dyn Disk, dir: &Path) -> Option<Watermarks> {
    serde_json::from_slice(&disk.read(&dir.join(WATERMARKS_FILE)).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SavedLease;

    fn state(token: u64, ttl_ms: u64) -> SavedState {
        SavedState {
            last_token: token,
            leases: vec![SavedLease {
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
    fn a_store_keeps_the_batching_it_was_opened_with() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), Batching::PerChange).unwrap();
        assert_eq!(store.batching(), Batching::PerChange);
    }

    #[test]
    fn an_unreadable_state_file_is_a_loss_not_a_first_start() {
        // A directory where the file should be: reading it fails with something other than
        // "not found", and no watermarks say the directory held state before.
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(STATE_FILE)).unwrap();
        let (_, loaded) = Store::open(dir.path(), Batching::default()).unwrap();
        assert_eq!(loaded.found, Found::Lost(None));
        let lost = loaded.lost.expect("a loss is reported");
        assert!(lost.reason.contains("cannot read it"), "{}", lost.reason);
        assert!(lost.moved_to.is_some_and(|to| to.is_dir()));
        assert!(!dir.path().join(STATE_FILE).exists());
    }

    #[test]
    fn files_moved_aside_in_one_second_get_numbered_names_without_colons() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        // Three in a row, until all three fall in one second (almost always the first try).
        let names = loop {
            let names: Vec<String> = (0..3)
                .map(|_| {
                    fs::write(&path, b"bad").unwrap();
                    let to = move_aside(&mut RealDisk, &path).unwrap();
                    to.file_name().unwrap().to_str().unwrap().to_owned()
                })
                .collect();
            if names[2].starts_with(&names[0]) {
                break names;
            }
        };
        // state.json.corrupt-20261201T030405Z: no ':' (not allowed in names everywhere).
        let stamp = names[0].strip_prefix("state.json.corrupt-").unwrap();
        assert_eq!(stamp.len(), "20261201T030405Z".len(), "{stamp}");
        assert!(
            stamp
                .chars()
                .all(|c| c.is_ascii_digit() || c == 'T' || c == 'Z'),
            "{stamp}"
        );
        assert_eq!(names[1], format!("{}-2", names[0]));
        assert_eq!(names[2], format!("{}-3", names[0]));
    }

    #[test]
    fn a_state_directory_removed_while_running_is_made_again_for_the_retry() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("state");
        let (mut store, _) = Store::open(&dir, Batching::default()).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert!(store.write(&state(1, 1000), false).is_err());
        store
            .write(&state(1, 1000), false)
            .expect("the retry succeeds");
        assert!(dir.join(STATE_FILE).exists());
    }

    #[test]
    fn the_real_disk_reports_what_it_cannot_sync() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert!(RealDisk.sync_file(&missing).is_err());
        assert!(RealDisk.sync_dir(&missing).is_err());
        assert!(RealDisk.sync_dir(dir.path()).is_ok());
    }

    #[test]
    fn missing_file_is_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let (_, loaded) = Store::open(&dir.path().join("new"), Batching::default()).unwrap();
        assert_eq!(loaded.found, Found::Nothing);
        assert!(loaded.lost.is_none());
    }

    #[test]
    fn written_state_loads_back_and_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        write_state(&mut RealDisk, dir.path(), &state(7, 5000)).unwrap();
        let (_, loaded) = Store::open(dir.path(), Batching::default()).unwrap();
        assert_eq!(loaded.found, Found::Saved(state(7, 5000)));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            !names.iter().any(|n| n.ends_with(PARTIAL_SUFFIX)),
            "{names:?}"
        );
    }

    #[test]
    fn a_state_dir_is_used_by_one_store_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = Store::open(dir.path(), Batching::default()).unwrap();
        assert!(matches!(
            Store::open(dir.path(), Batching::default()),
            Err(StoreError::InUse { .. })
        ));
        drop(first);
        assert!(Store::open(dir.path(), Batching::default()).is_ok());
    }

    #[test]
    fn truncated_file_is_moved_aside_with_the_max_ttl_kept() {
        let dir = tempfile::tempdir().unwrap();
        write_state(&mut RealDisk, dir.path(), &state(7, 5000)).unwrap();
        let marks = Watermarks {
            max_ttl_ms: 90_000,
            token_ceiling: 1007,
        };
        write_watermarks(&mut RealDisk, dir.path(), marks).unwrap();
        let full = fs::read(dir.path().join(STATE_FILE)).unwrap();
        fs::write(dir.path().join(STATE_FILE), &full[..full.len() / 2]).unwrap();
        let (_, loaded) = Store::open(dir.path(), Batching::default()).unwrap();
        assert_eq!(loaded.found, Found::Lost(Some(marks)));
        assert!(!dir.path().join(STATE_FILE).exists());
        let moved_to = loaded
            .lost
            .and_then(|lost| lost.moved_to)
            .expect("the file was moved aside");
        assert_eq!(fs::read(&moved_to).unwrap(), &full[..full.len() / 2]);
        let name = moved_to.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("state.json.corrupt-2"), "{name}");
        assert!(name.ends_with('Z'), "{name}");
    }

    #[test]
    fn deleted_state_file_after_an_earlier_run_is_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let marks = Watermarks {
            max_ttl_ms: 60_000,
            token_ceiling: 1002,
        };
        write_watermarks(&mut RealDisk, dir.path(), marks).unwrap();
        let (_, loaded) = Store::open(dir.path(), Batching::default()).unwrap();
        assert_eq!(loaded.found, Found::Lost(Some(marks)));
        let lost = loaded.lost.expect("a loss is reported");
        assert_eq!(lost.moved_to, None);
        assert!(lost.reason.contains("missing"), "{}", lost.reason);
    }

    #[test]
    fn writes_raise_the_watermarks_first_and_the_last_write_lowers_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(dir.path(), Batching::default()).unwrap();
        store.write(&state(1, 60_000), false).unwrap();
        let on_disk: SavedState = serde_json::from_slice(&fs::read(store.path()).unwrap()).unwrap();
        assert_eq!(on_disk, state(1, 60_000));
        let marks = read_watermarks(&mut RealDisk, dir.path()).unwrap();
        assert_eq!(marks.max_ttl_ms, 60_000);
        assert_eq!(marks.token_ceiling, 1 + TOKEN_BLOCK);

        store.write(&state(2, 1000), false).unwrap();
        let marks = read_watermarks(&mut RealDisk, dir.path()).unwrap();
        assert_eq!(marks.max_ttl_ms, 60_000, "not lowered on every write");

        store.write(&state(2, 1000), true).unwrap();
        let on_disk: SavedState = serde_json::from_slice(&fs::read(store.path()).unwrap()).unwrap();
        assert_eq!(on_disk.last_token, 2);
        let marks = read_watermarks(&mut RealDisk, dir.path()).unwrap();
        assert_eq!(
            marks.max_ttl_ms, 1000,
            "lowered once the long lease is gone"
        );
        assert_eq!(
            marks.token_ceiling,
            1 + TOKEN_BLOCK,
            "still above the counter"
        );
    }

    #[test]
    fn a_saved_quarantine_counts_towards_the_max_ttl_watermark() {
        let mut saved = state(1, 1000);
        saved.quarantine_left_ms = Some(90_000);
        assert_eq!(max_ttl_ms(&saved), 90_000);
    }
}
