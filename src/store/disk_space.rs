//! The free-space guard of a data directory: a write is refused before it reaches sled while
//! the directory's file system has less free space than the reserve. sled cannot go on after
//! one of its own writes met a full disk (every later write fails until the database is
//! reopened), so the emulator never lets it get there: refused writes change nothing, and
//! writes resume by themselves once space is free again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::StoreError;

/// How long one reading of the free space is trusted. Between readings a busy server writes
/// far less than the smallest sensible reserve.
const FRESH_FOR: Duration = Duration::from_millis(100);

/// The free space of one directory's file system, read at most every [`FRESH_FOR`].
pub(super) struct DiskSpace {
    dir: PathBuf,
    /// Bytes that must stay free; 0 turns the guard off.
    reserve: u64,
    /// Free bytes at the last reading (`u64::MAX` when they could not be read).
    free: AtomicU64,
    /// When the last reading was taken.
    read_at: Mutex<Instant>,
}

impl DiskSpace {
    pub(super) fn new(dir: &Path, reserve: u64) -> Self {
        let space = Self {
            dir: dir.to_path_buf(),
            reserve,
            free: AtomicU64::new(u64::MAX),
            read_at: Mutex::new(Instant::now()),
        };
        space.refresh();
        space
    }

    /// `Ok` when a write may go ahead; [`StoreError::StorageFull`] while the free space is
    /// below the reserve.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        if self.reserve == 0 {
            return Ok(());
        }
        // One thread rereads a stale value; the others use the last one meanwhile.
        if let Ok(mut read_at) = self.read_at.try_lock() {
            if read_at.elapsed() >= FRESH_FOR {
                *read_at = Instant::now();
                drop(read_at);
                self.refresh();
            }
        }
        let free = self.free.load(Ordering::Relaxed);
        if free < self.reserve {
            return Err(StoreError::StorageFull {
                free,
                reserve: self.reserve,
            });
        }
        Ok(())
    }

    fn refresh(&self) {
        if self.reserve == 0 {
            return;
        }
        match available_bytes(&self.dir) {
            Ok(free) => self.free.store(free, Ordering::Relaxed),
            Err(e) => {
                // A guard that cannot read the disk must not stop every write.
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read the free space");
                self.free.store(u64::MAX, Ordering::Relaxed);
            }
        }
    }
}

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
#[cfg(unix)]
fn available_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn available_bytes(_dir: &Path) -> std::io::Result<u64> {
    Ok(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_reserve_never_refuses() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DiskSpace::new(dir.path(), 0).check().is_ok());
    }

    #[test]
    fn a_reserve_beyond_the_disk_refuses_naming_both_figures() {
        let dir = tempfile::tempdir().unwrap();
        let err = DiskSpace::new(dir.path(), u64::MAX - 1)
            .check()
            .unwrap_err();
        let StoreError::StorageFull { free, reserve } = err else {
            panic!("{err}");
        };
        assert!(free < reserve);
        assert_eq!(reserve, u64::MAX - 1);
    }

    #[test]
    fn a_small_reserve_lets_writes_through() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DiskSpace::new(dir.path(), 1).check().is_ok());
    }
}
