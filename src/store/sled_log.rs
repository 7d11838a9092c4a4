//! The sled engine. One database per data directory; one tree per tenant named
//! `events/<tenant>`, key = the seq of a value's first record as big-endian `u64` (so key order
//! is numeric order), value = one record, or several for consecutive seqs (docs/adr/0007).
//! Only single-key writes are used: sled's first batch or transaction switches the whole
//! process to a global lock.

use std::path::{Path, PathBuf};

use super::batch::{visit_back, visit_from, Records};
use super::group_commit::GroupCommit;
use super::{
    Commit, CommitStats, DurableCallback, EventLog, EventStream, RecordBatch, StoreError, Visit,
};

const EVENTS_TREE_PREFIX: &str = "events/";
/// sled's page cache (its default is 1 GiB). Logs are read once, in order, at recovery, and
/// otherwise only appended to, so a large cache buys little and costs resident memory.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;
const SNAPSHOTS_TREE_PREFIX: &str = "snapshots/";
/// Snapshots kept per tenant; older ones are dropped when a new one is saved.
const SNAPSHOTS_KEPT: usize = 2;

/// The tree name of a tenant's events (for tools and tests that open the directory directly).
#[must_use]
pub fn events_tree_name(tenant: &str) -> String {
    format!("{EVENTS_TREE_PREFIX}{tenant}")
}

/// An [`EventLog`] in a sled database.
pub struct SledEventLog {
    db: sled::Db,
    /// Present in the durable mode: acknowledgements wait for it.
    group_commit: Option<GroupCommit>,
}

impl SledEventLog {
    /// Opens (creating when missing) the log in `dir`. With `durable`, writes are acknowledged
    /// only after a group-commit flush; without, sled flushes every 500 ms in the background and
    /// a crash may lose the last half second of acknowledged writes.
    pub fn open(dir: &Path, durable: bool) -> Result<Self, StoreError> {
        let flush_every_ms = if durable { None } else { Some(500) };
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(flush_every_ms)
            .open()
            .map_err(|e| locked_or(e, dir))?;
        let group_commit = if durable {
            Some(GroupCommit::start(db.clone()).map_err(|e| StoreError::Engine(e.into()))?)
        } else {
            None
        };
        Ok(Self { db, group_commit })
    }

    /// Whether `dir` already holds a sled database (sled writes its `conf` file when it creates
    /// one). Read-only tools check this so that a mistyped path is an error rather than a new,
    /// empty database.
    #[must_use]
    pub fn exists_in(dir: &Path) -> bool {
        dir.join("conf").is_file()
    }
}

fn locked_or(error: sled::Error, dir: &Path) -> StoreError {
    match &error {
        sled::Error::Io(io)
            if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") =>
        {
            StoreError::Locked {
                path: PathBuf::from(dir),
            }
        }
        _ => StoreError::Engine(error),
    }
}

impl EventLog for SledEventLog {
    fn tenants(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .db
            .tree_names()
            .iter()
            .filter_map(|name| {
                std::str::from_utf8(name)
                    .ok()
                    .and_then(|n| n.strip_prefix(EVENTS_TREE_PREFIX))
                    .map(str::to_owned)
            })
            .collect())
    }

    fn open(&self, tenant: &str) -> Result<Box<dyn EventStream>, StoreError> {
        let tree = self.db.open_tree(events_tree_name(tenant))?;
        // A malformed last key is not an error here: recovery's scan meets it, names it, and
        // makes only this tenant unavailable.
        let last_seq = match tree.last()? {
            Some((key, value)) => seq_of(tenant, &key).map_or(0, |first| {
                first + Records::of(first, &value).count() as u64 - 1
            }),
            None => 0,
        };
        Ok(Box::new(SledStream {
            tenant: tenant.to_owned(),
            tree,
            last_seq,
        }))
    }

    fn commit(&self) -> Commit {
        if self.group_commit.is_some() {
            Commit::GroupCommit
        } else {
            Commit::OnAppend
        }
    }

    fn when_durable(&self, events: u64, done: DurableCallback) {
        match &self.group_commit {
            Some(group) => group.submit(events, done),
            None => done(Ok(())),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn commit_stats(&self) -> CommitStats {
        self.group_commit
            .as_ref()
            .map(GroupCommit::stats)
            .unwrap_or_default()
    }

    fn has_tenant(&self, tenant: &str) -> Result<bool, StoreError> {
        let name = events_tree_name(tenant);
        Ok(self
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == name.as_bytes()))
    }

    fn remove_tenant(&self, tenant: &str) -> Result<(), StoreError> {
        self.db.drop_tree(events_tree_name(tenant))?;
        self.db.drop_tree(snapshots_tree_name(tenant))?;
        Ok(())
    }

    fn save_snapshot(&self, tenant: &str, seq: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        let tree = self.db.open_tree(snapshots_tree_name(tenant))?;
        tree.insert(seq.to_be_bytes(), snapshot)?;
        while tree.len() > SNAPSHOTS_KEPT {
            if tree.pop_min()?.is_none() {
                break;
            }
        }
        Ok(())
    }

    fn latest_snapshot(&self, tenant: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let name = snapshots_tree_name(tenant);
        if !self
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == name.as_bytes())
        {
            return Ok(None);
        }
        match self.db.open_tree(name)?.last()? {
            Some((key, value)) => Ok(Some((seq_of(tenant, &key)?, value.to_vec()))),
            None => Ok(None),
        }
    }
}

fn snapshots_tree_name(tenant: &str) -> String {
    format!("{SNAPSHOTS_TREE_PREFIX}{tenant}")
}

fn seq_of(tenant: &str, key: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::BadKey {
            tenant: tenant.to_owned(),
            key: key.to_vec(),
        })
}

struct SledStream {
    tenant: String,
    tree: sled::Tree,
    last_seq: u64,
}

impl EventStream for SledStream {
    fn last_seq(&self) -> u64 {
        self.last_seq
    }

    fn append(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let seq = batch.first_seq();
        if seq != self.last_seq + 1 {
            return Err(StoreError::OutOfOrder {
                tenant: self.tenant.clone(),
                expected: self.last_seq + 1,
                got: seq,
            });
        }
        // Insert only when absent: a second writer of this tenant starts its next batch at a
        // seq the first one already stored under, and fails here, loudly.
        let swapped = self.tree.compare_and_swap(
            seq.to_be_bytes(),
            None as Option<&[u8]>,
            Some(batch.stored()),
        )?;
        if swapped.is_err() {
            return Err(StoreError::AlreadyWritten {
                tenant: self.tenant.clone(),
                seq,
            });
        }
        self.last_seq = batch.last_seq();
        Ok(())
    }

    fn scan(&self, from: u64, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        // The record of `from` may be in a batch stored under an earlier seq.
        let start = match self.tree.range(..=from.to_be_bytes()).next_back() {
            Some(entry) => entry?.0,
            None => sled::IVec::from(&from.to_be_bytes()[..]),
        };
        for entry in self.tree.range(start..) {
            let (key, value) = entry?;
            if !visit_from(
                &self.tenant,
                seq_of(&self.tenant, &key)?,
                &value,
                from,
                visit,
            )? {
                break;
            }
        }
        Ok(())
    }

    fn scan_back(&self, through: u64, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        for entry in self.tree.range(..=through.to_be_bytes()).rev() {
            let (key, value) = entry?;
            if !visit_back(
                &self.tenant,
                seq_of(&self.tenant, &key)?,
                &value,
                through,
                visit,
            )? {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: u64, n: u64) -> RecordBatch {
        let mut batch = RecordBatch::starting_at(first);
        for _ in 0..n {
            let seq = batch.next_seq();
            batch.push(format!("r{seq}").as_bytes());
        }
        batch
    }

    fn seqs_of(scan: impl FnOnce(&mut Visit<'_>) -> Result<(), StoreError>) -> Vec<u64> {
        let mut seen = Vec::new();
        scan(&mut |seq, bytes| {
            assert_eq!(bytes, format!("r{seq}").as_bytes());
            seen.push(seq);
            Ok(true)
        })
        .unwrap();
        seen
    }

    /// Keys 1 (one record), 2 (seqs 2..=5), 6 (6..=7) in tenant `t` of either engine, read
    /// back one record at a time.
    fn batches_read_back_one_record_at_a_time_from_any_seq(log: &dyn EventLog) {
        let mut stream = log.open("t").unwrap();
        for b in [batch(1, 1), batch(2, 4), batch(6, 2)] {
            stream.append(&b).unwrap();
        }
        stream.append(&RecordBatch::starting_at(8)).unwrap();
        assert_eq!(stream.last_seq(), 7);

        assert_eq!(seqs_of(|v| stream.scan(1, v)), (1..=7).collect::<Vec<_>>());
        assert_eq!(seqs_of(|v| stream.scan(4, v)), (4..=7).collect::<Vec<_>>());
        assert_eq!(seqs_of(|v| stream.scan(9, v)), Vec::<u64>::new());
        assert_eq!(seqs_of(|v| stream.scan_back(4, v)), [4, 3, 2, 1]);
        assert_eq!(seqs_of(|v| stream.scan_back(u64::MAX, v)).len(), 7);
        let mut first_two = Vec::new();
        stream
            .scan(3, &mut |seq, _| {
                first_two.push(seq);
                Ok(first_two.len() < 2)
            })
            .unwrap();
        assert_eq!(first_two, [3, 4]);

        // A writer that opened before seq 8 was written starts there too: refused.
        let mut stale = log.open("t").unwrap();
        stream.append(&batch(8, 2)).unwrap();
        assert!(matches!(
            stale.append(&batch(8, 1)),
            Err(StoreError::AlreadyWritten { seq: 8, .. })
        ));
        drop(stream);
        assert_eq!(log.open("t").unwrap().last_seq(), 9, "reopened");
    }

    #[test]
    fn both_engines_keep_each_batch_as_one_value_and_read_it_back_by_record() {
        let tmp = tempfile::tempdir().unwrap();
        let log = SledEventLog::open(tmp.path(), false).unwrap();
        batches_read_back_one_record_at_a_time_from_any_seq(&log);
        let tree = log.db.open_tree(events_tree_name("t")).unwrap();
        assert_eq!(tree.len(), 4);
        assert_eq!(&*tree.get(1u64.to_be_bytes()).unwrap().unwrap(), b"r1");

        batches_read_back_one_record_at_a_time_from_any_seq(&crate::store::MemoryEventLog::new());
    }

    #[test]
    fn a_second_writer_fails_loudly_and_a_damaged_batch_names_its_seq() {
        let tmp = tempfile::tempdir().unwrap();
        let log = SledEventLog::open(tmp.path(), false).unwrap();
        let mut first = log.open("t").unwrap();
        let mut stale = log.open("t").unwrap();
        first.append(&batch(1, 3)).unwrap();
        assert!(matches!(
            stale.append(&batch(1, 2)),
            Err(StoreError::AlreadyWritten { seq: 1, .. })
        ));
        assert!(matches!(
            first.append(&batch(5, 1)),
            Err(StoreError::OutOfOrder {
                expected: 4,
                got: 5,
                ..
            })
        ));

        let tree = log.db.open_tree(events_tree_name("t")).unwrap();
        tree.insert(4u64.to_be_bytes(), &b"\xFC\x02r4\x09r5"[..])
            .unwrap();
        let mut seen = Vec::new();
        let scanned = first.scan(1, &mut |seq, _| {
            seen.push(seq);
            Ok(true)
        });
        assert_eq!(seen, [1, 2, 3, 4]);
        assert!(
            matches!(scanned, Err(StoreError::BadBatch { seq: 5, .. })),
            "{scanned:?}"
        );
    }
}
