//! The byte-level event log: the [`EventLog`] trait (one append-only stream per tenant, key =
//! sequence number, appended in batches), the sled engine, an in-memory engine, batched
//! records and group commit. It stores and returns opaque encoded records and snapshots; what
//! they mean is the codec's business ([`crate::codec`]). It knows nothing of events, HTTP or
//! actors.

mod batch;
pub(crate) mod bytes;
mod disk_space;
mod group_commit;
mod memory_log;
mod sled_log;

use std::path::PathBuf;

pub use batch::RecordBatch;
pub use group_commit::CommitStats;
pub use memory_log::MemoryEventLog;
pub use sled_log::{event_key, SledEventLog, EVENTS_TREE, SNAPSHOTS_TREE};

/// Called once the events appended before it was handed over are durable, or with the reason
/// they may not be.
pub type DurableCallback = Box<dyn FnOnce(Result<(), String>) + Send>;

/// What can go wrong below the tenant actors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the data directory {} is locked by another process (is a server running on it?)", .path.display())]
    Locked { path: PathBuf },
    #[error("storage engine error: {}", describe(.0))]
    Engine(sled::Error),
    #[error("the data directory {} cannot be opened: {}", .path.display(), describe(.error))]
    Open { path: PathBuf, error: sled::Error },
    #[error("tenant {tenant}: append expected seq {expected}, got {got}")]
    OutOfOrder {
        tenant: String,
        expected: u64,
        got: u64,
    },
    #[error("tenant {tenant}: seq {seq} is already written (a second writer?)")]
    AlreadyWritten { tenant: String, seq: u64 },
    #[error("tenant {tenant}: the record key {key:?} is not a big-endian u64 sequence number")]
    BadKey { tenant: String, key: Vec<u8> },
    #[error("tenant {tenant}: the stored batch holding seq {seq} is damaged: {reason}")]
    BadBatch {
        tenant: String,
        seq: u64,
        reason: &'static str,
    },
    /// The data directory's disk has less free space than the reserve: nothing was written.
    #[error(
        "the data directory's disk has {free} bytes free, below the reserve of {reserve} bytes"
    )]
    StorageFull { free: u64, reserve: u64 },
    #[error("a lock guarding the in-memory log was poisoned")]
    Poisoned,
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        Self::Engine(error)
    }
}

/// A sled error in plain words. sled keeps a failed write's I/O error as its `Debug` text
/// (`Os { code: 28, kind: StorageFull, .. }`); that is read back into the system's own words
/// (`No space left on device (os error 28)`).
pub(crate) fn describe(error: &sled::Error) -> String {
    match error {
        sled::Error::Io(io) => {
            let text = io.to_string();
            let code = text
                .strip_prefix("Os { code: ")
                .and_then(|rest| rest.split(',').next())
                .and_then(|code| code.parse::<i32>().ok());
            code.map_or(text, |code| {
                std::io::Error::from_raw_os_error(code).to_string()
            })
        }
        sled::Error::Corruption { at, .. } => match at {
            Some(at) => format!(
                "the data is damaged (corrupted data at byte {} of its log)",
                at.lid()
            ),
            None => "the data is damaged (corrupted data)".to_owned(),
        },
        other => other.to_string(),
    }
}

/// How a log makes an appended event durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Durable (as far as this log promises) once `append` returns: in-memory, or relaxed sled.
    /// The tenant actor answers before it appends and writes behind (docs/adr/0008).
    OnAppend,
    /// Durable only after a flush: wait with [`EventLog::when_durable`].
    GroupCommit,
}

/// Visits one record (seq, encoded bytes) of a scan; returns whether to go on.
pub type Visit<'a> = dyn FnMut(u64, &[u8]) -> Result<bool, StoreError> + 'a;

/// A set of per-tenant event streams.
pub trait EventLog: Send + Sync {
    /// Every tenant that has a stream.
    fn tenants(&self) -> Result<Vec<String>, StoreError>;
    /// Opens (creating when missing) the stream of one tenant. The tenant actor holds the only
    /// writable handle; readers may open more.
    fn open(&self, tenant: &str) -> Result<Box<dyn EventStream>, StoreError>;
    /// Whether appends need a group commit before they may be acknowledged.
    fn commit(&self) -> Commit;
    /// Calls `done` once every event appended before this call is durable; `events` is how
    /// many of them this caller waits for (for the counters). With [`Commit::OnAppend`] it is
    /// called at once.
    fn when_durable(&self, events: u64, done: DurableCallback);
    /// Flushes everything now, blocking: for shutdown.
    fn flush(&self) -> Result<(), StoreError>;
    /// Counters of the group commit so far.
    fn commit_stats(&self) -> CommitStats;
    /// `Ok` when a write may be stored now; [`StoreError::StorageFull`] while the disk is
    /// below its reserve (appends and snapshots are then refused before they write anything).
    fn has_space(&self) -> Result<(), StoreError>;
    /// Whether a tenant has a stream (without creating one).
    fn has_tenant(&self, tenant: &str) -> Result<bool, StoreError>;
    /// Deletes a tenant's stream and snapshots: destructive, for test isolation.
    fn remove_tenant(&self, tenant: &str) -> Result<(), StoreError>;
    /// Moves every event and snapshot of `from` to `to`, which must have none, and makes the
    /// move durable. For start-up only, before any stream is opened.
    fn rename_tenant(&self, from: &str, to: &str) -> Result<(), StoreError>;
    /// Stores a snapshot of a tenant's state at `seq` (encoded by the codec); older ones
    /// may be dropped. Events are never deleted because of a snapshot.
    fn save_snapshot(&self, tenant: &str, seq: u64, snapshot: &[u8]) -> Result<(), StoreError>;
    /// The newest stored snapshot of a tenant: its seq and bytes.
    fn latest_snapshot(&self, tenant: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError>;
}

/// One tenant's stream of encoded records, keyed by contiguous sequence numbers from 1.
pub trait EventStream: Send + Sync {
    /// The highest sequence number stored (0 when empty).
    fn last_seq(&self) -> u64;
    /// Appends the records of `batch`, whose first seq must be `last_seq() + 1`, all or none;
    /// refuses a seq that is already stored, so a second writer fails loudly instead of
    /// overwriting. An empty batch appends nothing.
    fn append(&mut self, batch: &RecordBatch) -> Result<(), StoreError>;
    /// Removes every record after `seq` (a write whose flush failed, so that nothing of it can
    /// reappear later); `seq` must end a stored value (appends are undone whole).
    fn truncate_after(&mut self, seq: u64) -> Result<(), StoreError>;
    /// Visits records in key order from `from` on, until `visit` returns `false`.
    fn scan(&self, from: u64, visit: &mut Visit<'_>) -> Result<(), StoreError>;
    /// Visits records in reverse key order from `through` (inclusive) down, until `visit`
    /// returns `false`.
    fn scan_back(&self, through: u64, visit: &mut Visit<'_>) -> Result<(), StoreError>;
}

#[cfg(test)]
mod describe_tests {
    use super::*;

    #[test]
    fn a_kept_io_error_reads_in_the_systems_words() {
        let kept = std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "Os { code: 28, kind: StorageFull, message: \"No space left on device\" }",
        );
        assert_eq!(
            describe(&sled::Error::Io(kept)),
            std::io::Error::from_raw_os_error(28).to_string()
        );
        let plain = std::io::Error::other("disk on fire");
        assert_eq!(describe(&sled::Error::Io(plain)), "disk on fire");
        let error = StoreError::from(sled::Error::Unsupported("x".to_owned()));
        assert!(
            std::error::Error::source(&error).is_none(),
            "not repeated as a cause"
        );
    }
}
