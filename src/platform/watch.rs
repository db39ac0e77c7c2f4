//! Waiting for a file to change without polling: inotify on Linux, kqueue on macOS. The agent
//! uses it while its config file has an error, to start serving as soon as the file is saved
//! fixed; until something happens in the file's directory the waiting task is never woken.
//!
//! The directory is watched, not just the file: most editors save by writing a new file and
//! renaming it over the old one, which a watch on the old file alone would miss. Wakeups may be
//! spurious (another file in the directory changed); callers re-read the file and compare.

use std::io;
use std::path::{Path, PathBuf};

/// A watch on one file (and the directory entry naming it). Needs a tokio runtime.
pub struct FileWatch {
    os: os::Watch,
}

impl FileWatch {
    /// Starts watching `path`, whose directory must exist. The file itself may be missing.
    pub fn new(path: &Path) -> io::Result<FileWatch> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        Ok(FileWatch {
            os: os::Watch::new(&dir, name, path)?,
        })
    }

    /// Waits until the file may have changed: written, replaced, created, removed or its
    /// permissions changed. An error means the watch is over (e.g. the directory was removed).
    pub async fn changed(&mut self) -> io::Result<()> {
        self.os.changed().await
    }
}

/// `path` as a C string, for the system calls.
#[cfg(any(target_os = "linux", target_os = "macos"))]
fn c_path(path: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

#[cfg(target_os = "linux")]
mod os {
    use std::ffi::{OsStr, OsString};
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use tokio::io::unix::AsyncFd;

    /// What happens in the directory that can change the file: in-place writes end with
    /// `IN_CLOSE_WRITE`, atomic saves with `IN_MOVED_TO`.
    const DIR_EVENTS: u32 = libc::IN_CLOSE_WRITE
        | libc::IN_MOVED_TO
        | libc::IN_MOVED_FROM
        | libc::IN_CREATE
        | libc::IN_DELETE
        | libc::IN_ATTRIB
        | libc::IN_DELETE_SELF
        | libc::IN_MOVE_SELF
        | libc::IN_ONLYDIR;

    /// The end of the watch: the directory went away (the kernel then drops the watch).
    const GONE: u32 = libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_IGNORED;

    pub struct Watch {
        fd: AsyncFd<OwnedFd>,
        name: OsString,
    }

    impl Watch {
        pub fn new(dir: &Path, name: &OsStr, _path: &Path) -> io::Result<Watch> {
            // SAFETY: plain system calls; the fd is owned from here on.
            let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a fresh descriptor nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let dir = super::c_path(dir)?;
            // SAFETY: `dir` is a NUL-terminated path that outlives the call.
            let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), dir.as_ptr(), DIR_EVENTS) };
            if wd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Watch {
                // SAFETY: the descriptor is moved in, so it stays open, and the same, for as
                // long as the AsyncFd lives.
                fd: unsafe { AsyncFd::register(fd) }?,
                name: name.to_owned(),
            })
        }

        pub async fn changed(&mut self) -> io::Result<()> {
            // Room for many events at once; each is a 16-byte header and a padded name.
            let mut buf = [0u8; 4096];
            loop {
                let mut ready = self.fd.readable().await?;
                let read = ready.try_io(|fd| {
                    // SAFETY: `buf` is writable for its whole length.
                    let n =
                        unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(n as usize)
                    }
                });
                let n = match read {
                    Ok(result) => result?,
                    Err(_would_block) => continue,
                };
                match verdict(&buf[..n], &self.name) {
                    Verdict::Changed => return Ok(()),
                    Verdict::Gone => {
                        return Err(io::Error::new(
                            io::ErrorKind::NotFound,
                            "the config file's directory was moved or removed",
                        ));
                    }
                    Verdict::Other => {}
                }
            }
        }
    }

    #[derive(Debug, PartialEq, Eq)]
    pub(super) enum Verdict {
        /// Something happened to the file.
        Changed,
        /// The directory is gone: no more events will come.
        Gone,
        /// Only other files in the directory changed.
        Other,
    }

    /// What a batch of inotify events (as `read` returned them) means for the file `name`.
    pub(super) fn verdict(mut events: &[u8], name: &OsStr) -> Verdict {
        const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
        let mut verdict = Verdict::Other;
        while events.len() >= HEADER {
            // Fields: wd (i32), mask (u32), cookie (u32), len (u32), then `len` name bytes.
            let field = |at: usize| u32::from_ne_bytes(events[at..at + 4].try_into().unwrap());
            let (mask, len) = (field(4), field(12) as usize);
            let end = (HEADER + len).min(events.len());
            let raw = &events[HEADER..end];
            let entry = OsStr::from_bytes(raw.split(|&b| b == 0).next().unwrap_or_default());
            if mask & GONE != 0 {
                return Verdict::Gone;
            }
            if entry == name || mask & libc::IN_Q_OVERFLOW != 0 {
                verdict = Verdict::Changed;
            }
            events = &events[end..];
        }
        verdict
    }
}

#[cfg(target_os = "macos")]
mod os {
    use std::ffi::OsStr;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::path::{Path, PathBuf};
    use tokio::io::unix::AsyncFd;

    /// Changes to the directory's entries: a file created, removed or renamed over ours.
    const DIR_EVENTS: u32 = libc::NOTE_WRITE | libc::NOTE_DELETE | libc::NOTE_RENAME;
    /// Changes to the file itself: written in place, permissions, removed or renamed.
    const FILE_EVENTS: u32 = libc::NOTE_WRITE
        | libc::NOTE_EXTEND
        | libc::NOTE_ATTRIB
        | libc::NOTE_DELETE
        | libc::NOTE_RENAME;

    /// A kqueue with the directory and (when it exists) the file registered. The kqueue's own
    /// descriptor becomes readable when an event is pending, so tokio can wait on it.
    pub(crate) struct Watch {
        queue: AsyncFd<OwnedFd>,
        path: PathBuf,
        _dir: OwnedFd,
        /// The file as currently named; reopened after each event, since an atomic save
        /// replaces it with another file.
        file: Option<OwnedFd>,
    }

    impl Watch {
        pub(crate) fn new(dir: &Path, _name: &OsStr, path: &Path) -> io::Result<Watch> {
            // SAFETY: plain system call; the descriptor is owned from here on.
            let queue = unsafe { libc::kqueue() };
            if queue < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `queue` is a fresh descriptor nobody else owns.
            let queue = unsafe { OwnedFd::from_raw_fd(queue) };
            let dir = open_events_only(dir)?;
            register(&queue, &dir, DIR_EVENTS)?;
            let mut watch = Watch {
                // SAFETY: the descriptor is moved in, so it stays open, and the same, for as
                // long as the AsyncFd lives.
                queue: unsafe { AsyncFd::register(queue) }?,
                path: path.to_owned(),
                _dir: dir,
                file: None,
            };
            watch.rearm_file();
            Ok(watch)
        }

        pub(crate) async fn changed(&mut self) -> io::Result<()> {
            loop {
                let mut ready = self.queue.readable().await?;
                let mut events = [empty_event(); 8];
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: `events` is writable for the count given; a zero timeout only
                // collects what is pending.
                let n = unsafe {
                    libc::kevent(
                        self.queue.get_ref().as_raw_fd(),
                        std::ptr::null(),
                        0,
                        events.as_mut_ptr(),
                        events.len() as libc::c_int,
                        &zero,
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                ready.clear_ready();
                if n > 0 {
                    self.rearm_file();
                    return Ok(());
                }
            }
        }

        /// Watches whatever file now has the path (none, if it is gone).
        fn rearm_file(&mut self) {
            // Closing the old descriptor removes its registration.
            self.file = open_events_only(&self.path)
                .ok()
                .filter(|file| register(self.queue.get_ref(), file, FILE_EVENTS).is_ok());
        }
    }

    fn empty_event() -> libc::kevent {
        libc::kevent {
            ident: 0,
            filter: 0,
            flags: 0,
            fflags: 0,
            data: 0,
            udata: std::ptr::null_mut(),
        }
    }

    /// Opens `path` only to watch it: `O_EVTONLY` does not keep its volume from unmounting.
    fn open_events_only(path: &Path) -> io::Result<OwnedFd> {
        let path = super::c_path(path)?;
        // SAFETY: `path` is NUL-terminated and outlives the call.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_EVTONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Adds `fd` to `queue` for the vnode events `fflags`, cleared once reported.
    fn register(queue: &OwnedFd, fd: &OwnedFd, fflags: u32) -> io::Result<()> {
        let change = libc::kevent {
            ident: fd.as_raw_fd() as libc::uintptr_t,
            filter: libc::EVFILT_VNODE,
            flags: libc::EV_ADD | libc::EV_CLEAR,
            fflags,
            data: 0,
            udata: std::ptr::null_mut(),
        };
        // SAFETY: one change in, no events out, so no timeout is needed.
        let rc = unsafe {
            libc::kevent(
                queue.as_raw_fd(),
                &change,
                1,
                std::ptr::null_mut(),
                0,
                std::ptr::null(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod os {
    use std::ffi::OsStr;
    use std::io;
    use std::path::Path;

    /// No watch on this OS: the agent then says to restart foolock after fixing the file.
    pub(crate) enum Watch {}

    impl Watch {
        pub(crate) fn new(_dir: &Path, _name: &OsStr, _path: &Path) -> io::Result<Watch> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "watching files is not supported on this OS",
            ))
        }

        pub(crate) async fn changed(&mut self) -> io::Result<()> {
            match *self {}
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::Duration;

    /// One raw inotify event for `name` with `mask`, padded as the kernel pads it.
    fn event(mask: u32, name: &str) -> Vec<u8> {
        let mut padded = name.as_bytes().to_vec();
        if !padded.is_empty() {
            padded.resize(name.len().div_ceil(16) * 16, 0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&1i32.to_ne_bytes());
        out.extend_from_slice(&mask.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&(padded.len() as u32).to_ne_bytes());
        out.extend_from_slice(&padded);
        out
    }

    #[test]
    fn only_events_about_the_file_or_its_directory_count() {
        use os::{Verdict, verdict};
        let name = std::ffi::OsStr::new("config.toml");
        let swap = event(libc::IN_CLOSE_WRITE, ".config.toml.swp");
        assert_eq!(verdict(&swap, name), Verdict::Other);
        let mut batch = swap.clone();
        batch.extend(event(libc::IN_MOVED_TO, "config.toml"));
        assert_eq!(verdict(&batch, name), Verdict::Changed);
        assert_eq!(
            verdict(&event(libc::IN_DELETE_SELF, ""), name),
            Verdict::Gone
        );
        assert_eq!(
            verdict(&event(libc::IN_Q_OVERFLOW, ""), name),
            Verdict::Changed
        );
    }

    /// Waits for the next change, failing the test if none comes within a few seconds.
    async fn next(watch: &mut FileWatch) {
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("a change was reported")
            .expect("the watch still works");
    }

    #[tokio::test]
    async fn in_place_writes_atomic_saves_and_chmod_are_all_seen() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "a").unwrap();
        let mut watch = FileWatch::new(&path).unwrap();

        std::fs::write(&path, "b").unwrap();
        next(&mut watch).await;
        let partial = dir.path().join("config.toml.new");
        std::fs::write(&partial, "c").unwrap();
        std::fs::rename(&partial, &path).unwrap();
        next(&mut watch).await;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        next(&mut watch).await;
    }

    #[tokio::test]
    async fn other_files_in_the_directory_do_not_wake_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let mut watch = FileWatch::new(&path).unwrap();
        std::fs::write(dir.path().join(".config.toml.swp"), "x").unwrap();
        let early = tokio::time::timeout(Duration::from_secs(1), watch.changed()).await;
        assert!(early.is_err(), "woken by another file");
        // The file itself appearing is a change.
        std::fs::write(&path, "x").unwrap();
        next(&mut watch).await;
    }

    #[tokio::test]
    async fn removing_the_directory_ends_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("foolock");
        std::fs::create_dir(&sub).unwrap();
        let mut watch = FileWatch::new(&sub.join("config.toml")).unwrap();
        std::fs::remove_dir(&sub).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("the end was reported");
        assert!(ended.is_err());
    }
}
