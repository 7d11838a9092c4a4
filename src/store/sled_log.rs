//! The sled engine. One database per data directory; every tenant's events in one tree,
//! `events`, and every tenant's snapshots in another, `snapshots`, so an empty tenant costs
//! nothing and disk grows with events, not with tenants (docs/adr/0010). A key is the tenant
//! id, a NUL byte, and a seq as big-endian `u64` (key order is tenant order, then numeric
//! order); an event value is one record, or several for consecutive seqs stored under the
//! first one's seq (docs/adr/0007). Only single-key writes are used: sled's first batch or
//! transaction switches the whole process to a global lock.
//!
//! A directory written with one tree per tenant (`events/<tenant>`, `snapshots/<tenant>`) is
//! converted when it is opened: every value copied under its new key, flushed, then the old
//! trees dropped. A conversion cut short by a crash is redone from the start at the next open.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::{visit_back, visit_from, Records};
use super::disk_space::DiskSpace;
use super::group_commit::GroupCommit;
use super::{
    Commit, CommitStats, DurableCallback, EventLog, EventStream, RecordBatch, StoreError, Visit,
};

/// The tree of every tenant's events.
pub const EVENTS_TREE: &str = "events";
/// The tree of every tenant's snapshots.
pub const SNAPSHOTS_TREE: &str = "snapshots";
/// Ends the tenant id in a key. Tenant ids never hold it, and it sorts before every byte a
/// tenant id may hold, so one tenant's keys are one contiguous range.
const SEPARATOR: u8 = 0;
/// The tree name prefixes of the layout with one tree per tenant, converted on open.
const OLD_EVENTS_PREFIX: &str = "events/";
const OLD_SNAPSHOTS_PREFIX: &str = "snapshots/";
/// How often a conversion logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// sled's page cache (its default is 1 GiB). Logs are read once, in order, at recovery, and
/// otherwise only appended to, so a large cache buys little and costs resident memory.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;
/// Snapshots kept per tenant; older ones are dropped when a new one is saved.
const SNAPSHOTS_KEPT: usize = 2;

/// The key of a tenant's value at `seq`, in either tree (for tools and tests that open the
/// directory directly).
#[must_use]
pub fn event_key(tenant: &str, seq: u64) -> Vec<u8> {
    let mut key = tenant_prefix(tenant);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Every key of `tenant` starts with this.
fn tenant_prefix(tenant: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(tenant.len() + 9);
    key.extend_from_slice(tenant.as_bytes());
    key.push(SEPARATOR);
    key
}

/// Just past every key of `tenant`.
fn tenant_end(tenant: &str) -> Vec<u8> {
    let mut key = tenant_prefix(tenant);
    if let Some(last) = key.last_mut() {
        *last = SEPARATOR + 1;
    }
    key
}

/// An [`EventLog`] in a sled database.
pub struct SledEventLog {
    db: sled::Db,
    events: sled::Tree,
    snapshots: sled::Tree,
    /// Present in the durable mode: acknowledgements wait for it.
    group_commit: Option<GroupCommit>,
    /// Refuses appends and snapshots while the disk is below its reserve.
    space: Arc<DiskSpace>,
}

impl SledEventLog {
    /// Opens (creating when missing) the log in `dir`, converting a directory of the layout
    /// with one tree per tenant first. With `durable`, writes are acknowledged only after a
    /// group-commit flush; without, sled flushes every 500 ms in the background and a crash may
    /// lose the last half second of acknowledged writes. No free space is reserved: see
    /// [`Self::open_reserving`].
    pub fn open(dir: &Path, durable: bool) -> Result<Self, StoreError> {
        Self::open_reserving(dir, durable, 0)
    }

    /// [`Self::open`], refusing every append and snapshot with [`StoreError::StorageFull`]
    /// while the directory's disk has less than `reserve` bytes free (0: never), so that sled
    /// itself never meets a full disk.
    pub fn open_reserving(dir: &Path, durable: bool, reserve: u64) -> Result<Self, StoreError> {
        let flush_every_ms = if durable { None } else { Some(500) };
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(flush_every_ms)
            .open()
            .map_err(|e| locked_or(e, dir))?;
        let events = db.open_tree(EVENTS_TREE)?;
        let snapshots = db.open_tree(SNAPSHOTS_TREE)?;
        convert_tree_per_tenant(&db, &events, &snapshots)?;
        let group_commit = if durable {
            Some(GroupCommit::start(db.clone()).map_err(|e| StoreError::Engine(e.into()))?)
        } else {
            None
        };
        Ok(Self {
            db,
            events,
            snapshots,
            group_commit,
            space: Arc::new(DiskSpace::new(dir, reserve)),
        })
    }

    /// Whether `dir` already holds a sled database (sled writes its `conf` and `db` files when
    /// it creates one). Read-only tools check this so that a mistyped path, or what is left of
    /// a directory whose `db` is gone, is an error rather than a new, empty database.
    #[must_use]
    pub fn exists_in(dir: &Path) -> bool {
        dir.join("conf").is_file() && dir.join("db").is_file()
    }
}

/// Moves the values of a directory with one tree per tenant into the shared trees: copied
/// under their new keys (a key that was not a seq keeps its bytes after the tenant prefix, so
/// recovery still names it), flushed, then the old trees dropped and the drop flushed.
fn convert_tree_per_tenant(
    db: &sled::Db,
    events: &sled::Tree,
    snapshots: &sled::Tree,
) -> Result<(), StoreError> {
    let mut old = Vec::new();
    for name in db.tree_names() {
        let Ok(text) = std::str::from_utf8(&name) else {
            continue;
        };
        if let Some(tenant) = text.strip_prefix(OLD_EVENTS_PREFIX) {
            old.push((name.clone(), tenant.to_owned(), events));
        } else if let Some(tenant) = text.strip_prefix(OLD_SNAPSHOTS_PREFIX) {
            old.push((name.clone(), tenant.to_owned(), snapshots));
        }
    }
    if old.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    tracing::info!(
        trees = old.len(),
        "converting the data directory from one tree per tenant to shared trees"
    );
    let mut last_report = Instant::now();
    let mut values = 0u64;
    for (done, (name, tenant, target)) in old.iter().enumerate() {
        let prefix = tenant_prefix(tenant);
        for entry in &db.open_tree(name)? {
            let (key, value) = entry?;
            let mut new_key = prefix.clone();
            new_key.extend_from_slice(&key);
            target.insert(new_key, value)?;
            values += 1;
        }
        if last_report.elapsed() >= PROGRESS_EVERY {
            tracing::info!(
                trees_done = done + 1,
                trees = old.len(),
                values,
                "converting"
            );
            last_report = Instant::now();
        }
    }
    db.flush()?;
    for (name, _, _) in &old {
        db.drop_tree(name)?;
    }
    db.flush()?;
    tracing::info!(
        trees = old.len(),
        values,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "converted the data directory"
    );
    Ok(())
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
        _ => StoreError::Open {
            path: PathBuf::from(dir),
            error,
        },
    }
}

/// The last key of `tenant` in `tree`, with its value.
fn last_of(
    tree: &sled::Tree,
    tenant: &str,
) -> Result<Option<(sled::IVec, sled::IVec)>, StoreError> {
    Ok(tree
        .range(tenant_prefix(tenant)..tenant_end(tenant))
        .next_back()
        .transpose()?)
}

impl EventLog for SledEventLog {
    fn tenants(&self) -> Result<Vec<String>, StoreError> {
        // One seek per tenant: from the first key of a tenant to just past its last.
        let mut tenants = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        while let Some(entry) = self.events.range(from.as_slice()..).next() {
            let (key, _) = entry?;
            let Some(end) = key.iter().position(|&b| b == SEPARATOR) else {
                tracing::warn!(key = ?key, "skipping an event key with no tenant");
                from = key.to_vec();
                from.push(0);
                continue;
            };
            let tenant = String::from_utf8_lossy(&key[..end]).into_owned();
            from = key[..=end].to_vec();
            if let Some(last) = from.last_mut() {
                *last = SEPARATOR + 1;
            }
            tenants.push(tenant);
        }
        Ok(tenants)
    }

    fn open(&self, tenant: &str) -> Result<Box<dyn EventStream>, StoreError> {
        // A malformed last key is not an error here: recovery's scan meets it, names it, and
        // makes only this tenant unavailable.
        let prefix = tenant_prefix(tenant);
        let last_seq = match last_of(&self.events, tenant)? {
            Some((key, value)) => seq_of(tenant, &prefix, &key).map_or(0, |first| {
                first + Records::of(first, &value).count() as u64 - 1
            }),
            None => 0,
        };
        Ok(Box::new(SledStream {
            tenant: tenant.to_owned(),
            tree: self.events.clone(),
            prefix,
            last_seq,
            space: Arc::clone(&self.space),
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

    fn has_space(&self) -> Result<(), StoreError> {
        self.space.check()
    }

    fn has_tenant(&self, tenant: &str) -> Result<bool, StoreError> {
        Ok(last_of(&self.events, tenant)?.is_some())
    }

    fn remove_tenant(&self, tenant: &str) -> Result<(), StoreError> {
        // Newest first: a removal cut short leaves a shorter log that still starts at seq 1,
        // never one with a gap.
        for tree in [&self.events, &self.snapshots] {
            while let Some((key, _)) = last_of(tree, tenant)? {
                tree.remove(key)?;
            }
        }
        Ok(())
    }

    fn rename_tenant(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let old = tenant_prefix(from);
        let new = tenant_prefix(to);
        // Copied, made durable, then removed: a move cut short leaves both copies, and the
        // next start, finding two streams for one tenant, names them instead of guessing.
        for tree in [&self.events, &self.snapshots] {
            for entry in tree.range(old.clone()..tenant_end(from)) {
                let (key, value) = entry?;
                let mut moved = new.clone();
                moved.extend_from_slice(&key[old.len()..]);
                tree.insert(moved, value)?;
            }
        }
        self.db.flush()?;
        self.remove_tenant(from)?;
        self.db.flush()?;
        Ok(())
    }

    fn save_snapshot(&self, tenant: &str, seq: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        self.space.check()?;
        self.snapshots.insert(event_key(tenant, seq), snapshot)?;
        let keys: Vec<sled::IVec> = self
            .snapshots
            .range(tenant_prefix(tenant)..tenant_end(tenant))
            .keys()
            .collect::<Result<_, _>>()?;
        for key in keys.iter().take(keys.len().saturating_sub(SNAPSHOTS_KEPT)) {
            self.snapshots.remove(key)?;
        }
        Ok(())
    }

    fn latest_snapshot(&self, tenant: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        match last_of(&self.snapshots, tenant)? {
            Some((key, value)) => Ok(Some((
                seq_of(tenant, &tenant_prefix(tenant), &key)?,
                value.to_vec(),
            ))),
            None => Ok(None),
        }
    }
}

/// The seq in a key of `tenant` (whose keys start with `prefix`).
fn seq_of(tenant: &str, prefix: &[u8], key: &[u8]) -> Result<u64, StoreError> {
    key.strip_prefix(prefix)
        .and_then(|seq| <[u8; 8]>::try_from(seq).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::BadKey {
            tenant: tenant.to_owned(),
            key: key.to_vec(),
        })
}

struct SledStream {
    tenant: String,
    /// The shared events tree.
    tree: sled::Tree,
    /// `tenant` and the separator: every key of this stream starts with it.
    prefix: Vec<u8>,
    last_seq: u64,
    space: Arc<DiskSpace>,
}

impl SledStream {
    fn key(&self, seq: u64) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + 8);
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }

    fn end(&self) -> Vec<u8> {
        tenant_end(&self.tenant)
    }
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
        self.space.check()?;
        // Insert only when absent: a second writer of this tenant starts its next batch at a
        // seq the first one already stored under, and fails here, loudly.
        let swapped = self.tree.compare_and_swap(
            self.key(seq),
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

    fn truncate_after(&mut self, seq: u64) -> Result<(), StoreError> {
        let keys: Vec<sled::IVec> = self
            .tree
            .range(self.key(seq + 1)..self.end())
            .keys()
            .collect::<Result<_, _>>()?;
        for key in keys.iter().rev() {
            self.tree.remove(key)?;
        }
        self.last_seq = match last_of(&self.tree, &self.tenant)? {
            Some((key, value)) => {
                let first = seq_of(&self.tenant, &self.prefix, &key)?;
                first + Records::of(first, &value).count() as u64 - 1
            }
            None => 0,
        };
        Ok(())
    }

    fn scan(&self, from: u64, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        // The record of `from` may be in a batch stored under an earlier seq.
        let at = self.key(from);
        let start = match self
            .tree
            .range(self.prefix.as_slice()..=at.as_slice())
            .next_back()
        {
            Some(entry) => entry?.0.to_vec(),
            None => at,
        };
        for entry in self.tree.range(start..self.end()) {
            let (key, value) = entry?;
            let seq = seq_of(&self.tenant, &self.prefix, &key)?;
            if !visit_from(&self.tenant, seq, &value, from, visit)? {
                break;
            }
        }
        Ok(())
    }

    fn scan_back(&self, through: u64, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let at = self.key(through);
        for entry in self
            .tree
            .range(self.prefix.as_slice()..=at.as_slice())
            .rev()
        {
            let (key, value) = entry?;
            let seq = seq_of(&self.tenant, &self.prefix, &key)?;
            if !visit_back(&self.tenant, seq, &value, through, visit)? {
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
        assert_eq!(log.events.len(), 4);
        assert_eq!(&*log.events.get(event_key("t", 1)).unwrap().unwrap(), b"r1");

        batches_read_back_one_record_at_a_time_from_any_seq(&crate::store::MemoryEventLog::new());
    }

    /// Truncation removes whole stored values after a seq, in the tenant's range only.
    fn truncation_removes_what_follows_and_nothing_else(log: &dyn EventLog) {
        let mut stream = log.open("t").unwrap();
        let mut other = log.open("u").unwrap();
        for b in [batch(1, 2), batch(3, 3), batch(6, 1)] {
            stream.append(&b).unwrap();
        }
        other.append(&batch(1, 2)).unwrap();
        stream.truncate_after(2).unwrap();
        assert_eq!(stream.last_seq(), 2);
        assert_eq!(seqs_of(|v| stream.scan(1, v)), [1, 2]);
        stream.append(&batch(3, 1)).unwrap();
        assert_eq!(log.open("t").unwrap().last_seq(), 3, "reopened");
        stream.truncate_after(0).unwrap();
        assert_eq!(stream.last_seq(), 0);
        assert_eq!(
            log.open("u").unwrap().last_seq(),
            2,
            "another tenant untouched"
        );
    }

    #[test]
    fn both_engines_truncate_a_stream_after_a_seq() {
        let tmp = tempfile::tempdir().unwrap();
        truncation_removes_what_follows_and_nothing_else(
            &SledEventLog::open(tmp.path(), false).unwrap(),
        );
        truncation_removes_what_follows_and_nothing_else(&crate::store::MemoryEventLog::new());
    }

    #[test]
    fn a_reserve_larger_than_the_disk_refuses_appends_and_snapshots_and_stores_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let log = SledEventLog::open_reserving(tmp.path(), false, u64::MAX - 1).unwrap();
        let mut stream = log.open("t").unwrap();
        assert!(matches!(
            stream.append(&batch(1, 1)),
            Err(StoreError::StorageFull { .. })
        ));
        assert!(matches!(
            log.has_space(),
            Err(StoreError::StorageFull { .. })
        ));
        assert!(log.save_snapshot("t", 1, b"s").is_err());
        assert_eq!(log.events.len(), 0);
        assert_eq!(log.snapshots.len(), 0);
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

        log.events
            .insert(event_key("t", 4), &b"\xFC\x02r4\x09r5"[..])
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

    #[test]
    fn tenants_share_trees_and_one_that_only_opened_or_read_costs_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let log = SledEventLog::open(tmp.path(), false).unwrap();
        // Names that are prefixes of each other, and ones sorting just around the separator.
        for tenant in ["a", "a.b", "a-", "b", "ab"] {
            log.open(tenant).unwrap().append(&batch(1, 2)).unwrap();
        }
        let idle = log.open("never-written").unwrap();
        assert_eq!(seqs_of(|v| idle.scan(1, v)), Vec::<u64>::new());
        assert!(!log.has_tenant("never-written").unwrap());
        assert!(log.latest_snapshot("never-written").unwrap().is_none());
        let mut tenants = log.tenants().unwrap();
        tenants.sort();
        assert_eq!(tenants, ["a", "a-", "a.b", "ab", "b"]);
        assert_eq!(
            log.db.tree_names().len(),
            3,
            "the default tree, events, snapshots"
        );
        let a = log.open("a").unwrap();
        assert_eq!(seqs_of(|v| a.scan(1, v)), [1, 2]);
        assert_eq!(seqs_of(|v| a.scan_back(u64::MAX, v)), [2, 1]);

        for seq in 1..=4 {
            log.save_snapshot("a", seq, format!("s{seq}").as_bytes())
                .unwrap();
        }
        log.save_snapshot("a.b", 9, b"other").unwrap();
        assert_eq!(log.latest_snapshot("a").unwrap(), Some((4, b"s4".to_vec())));
        assert_eq!(log.snapshots.len(), SNAPSHOTS_KEPT + 1);

        log.remove_tenant("a").unwrap();
        assert!(!log.has_tenant("a").unwrap());
        assert!(log.latest_snapshot("a").unwrap().is_none());
        assert_eq!(log.open("a").unwrap().last_seq(), 0);
        assert_eq!(log.open("a.b").unwrap().last_seq(), 2);
        assert_eq!(
            log.latest_snapshot("a.b").unwrap(),
            Some((9, b"other".to_vec()))
        );
    }

    /// sled lets go of a directory's lock a moment after its last handle is dropped.
    fn reopen(dir: &Path) -> SledEventLog {
        for _ in 0..100 {
            match SledEventLog::open(dir, false) {
                Err(StoreError::Locked { .. }) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => return other.unwrap(),
            }
        }
        panic!("{} stayed locked for 5 s", dir.display());
    }

    #[test]
    fn a_directory_with_a_tree_per_tenant_is_converted_when_opened() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let db = sled::open(tmp.path()).unwrap();
            let events = db.open_tree("events/t1").unwrap();
            events.insert(1u64.to_be_bytes(), &b"r1"[..]).unwrap();
            events
                .insert(2u64.to_be_bytes(), batch(2, 2).stored())
                .unwrap();
            db.open_tree("events/t2")
                .unwrap()
                .insert(1u64.to_be_bytes(), &b"r1"[..])
                .unwrap();
            // A key that is not a seq: kept, so recovery still names it.
            db.open_tree("events/t2")
                .unwrap()
                .insert(&b"zz"[..], &b"?"[..])
                .unwrap();
            db.open_tree("snapshots/t1")
                .unwrap()
                .insert(3u64.to_be_bytes(), &b"snap"[..])
                .unwrap();
            db.flush().unwrap();
        }
        let log = reopen(tmp.path());
        let names: Vec<String> = log
            .db
            .tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.contains('/')),
            "old trees dropped: {names:?}"
        );
        let mut tenants = log.tenants().unwrap();
        tenants.sort();
        assert_eq!(tenants, ["t1", "t2"]);
        let t1 = log.open("t1").unwrap();
        assert_eq!(t1.last_seq(), 3);
        assert_eq!(seqs_of(|v| t1.scan(1, v)), [1, 2, 3]);
        assert_eq!(
            log.latest_snapshot("t1").unwrap(),
            Some((3, b"snap".to_vec()))
        );
        let t2 = log.open("t2").unwrap();
        assert!(matches!(
            t2.scan(1, &mut |_, _| Ok(true)),
            Err(StoreError::BadKey { .. })
        ));
        drop((t1, t2, log));

        // Opening again finds nothing left to convert and the same streams.
        let log = reopen(tmp.path());
        assert_eq!(log.open("t1").unwrap().last_seq(), 3);
        assert_eq!(log.events.len(), 4);
    }
}
