//! The store's file operations, behind one seam: the real file system here, and in tests a
//! file system that loses, at a simulated power cut, whatever was not made durable.
//!
//! The operations are the ones crash safety is made of, kept apart so that a test can tell
//! them apart: writing a file is not making it durable (`sync_file`), and renaming or creating
//! a file is not making its directory entry durable (`sync_dir`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// What the store does to files. Paths are in the state directory.
pub trait Disk: Send {
    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()>;
    /// Creates `path`, or truncates it, and writes `bytes`; durable only after [`sync_file`].
    ///
    /// [`sync_file`]: Disk::sync_file
    fn write(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Makes the contents of `path` durable (fsync).
    fn sync_file(&mut self, path: &Path) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to`; durable only after [`sync_dir`].
    ///
    /// [`sync_dir`]: Disk::sync_dir
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&mut self, path: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` durable: files created, renamed or removed in it.
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()>;
    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>>;
    fn exists(&mut self, path: &Path) -> bool;
}

/// The machine's file system.
pub struct RealDisk;

impl Disk for RealDisk {
    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn write(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        File::create(path)?.write_all(bytes)
    }

    fn sync_file(&mut self, path: &Path) -> io::Result<()> {
        // Opened for writing: some systems refuse to flush a file opened read-only.
        // On macOS std's sync_all is F_FULLFSYNC, which also flushes the drive's cache.
        File::options().write(true).open(path)?.sync_all()
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        match File::open(dir).and_then(|d| d.sync_all()) {
            // Some file systems cannot sync a directory; their renames are as durable as it
            // gets.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTSUP)) => Ok(()),
            other => other,
        }
    }

    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn exists(&mut self, path: &Path) -> bool {
        path.exists()
    }
}
