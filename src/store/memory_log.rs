//! The in-memory engine: the same streams in process memory, for `--in-memory` runs and
//! benchmarks. Everything is gone when the process exits.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::{
    Commit, CommitStats, DurableCallback, EventLog, EventStream, RecordBatch, StoreError, Visit,
};

type Records = Arc<Mutex<BTreeMap<u64, Vec<u8>>>>;

/// An [`EventLog`] in memory.
#[derive(Default)]
pub struct MemoryEventLog {
    streams: Mutex<HashMap<String, Records>>,
    /// The newest snapshot of each tenant.
    snapshots: Mutex<HashMap<String, (u64, Vec<u8>)>>,
}

impl MemoryEventLog {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl EventLog for MemoryEventLog {
    fn tenants(&self) -> Result<Vec<String>, StoreError> {
        let streams = self.streams.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(streams.keys().cloned().collect())
    }

    fn open(&self, tenant: &str) -> Result<Box<dyn EventStream>, StoreError> {
        let mut streams = self.streams.lock().map_err(|_| StoreError::Poisoned)?;
        let records = Arc::clone(streams.entry(tenant.to_owned()).or_default());
        let last_seq = records
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0);
        Ok(Box::new(MemoryStream {
            tenant: tenant.to_owned(),
            records,
            last_seq,
        }))
    }

    fn commit(&self) -> Commit {
        Commit::OnAppend
    }

    fn when_durable(&self, _events: u64, done: DurableCallback) {
        done(Ok(()));
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn commit_stats(&self) -> CommitStats {
        CommitStats::default()
    }

    fn has_tenant(&self, tenant: &str) -> Result<bool, StoreError> {
        let streams = self.streams.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(streams.contains_key(tenant))
    }

    fn remove_tenant(&self, tenant: &str) -> Result<(), StoreError> {
        self.streams
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .remove(tenant);
        self.snapshots
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .remove(tenant);
        Ok(())
    }

    fn save_snapshot(&self, tenant: &str, seq: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        self.snapshots
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .insert(tenant.to_owned(), (seq, snapshot.to_vec()));
        Ok(())
    }

    fn latest_snapshot(&self, tenant: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let snapshots = self.snapshots.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(snapshots.get(tenant).cloned())
    }
}

struct MemoryStream {
    tenant: String,
    records: Records,
    last_seq: u64,
}

impl EventStream for MemoryStream {
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
        let mut records = self.records.lock().map_err(|_| StoreError::Poisoned)?;
        if records.range(seq..).next().is_some() {
            return Err(StoreError::AlreadyWritten {
                tenant: self.tenant.clone(),
                seq,
            });
        }
        records.extend(batch.records().map(|(seq, record)| (seq, record.to_vec())));
        self.last_seq = batch.last_seq();
        Ok(())
    }

    fn scan(&self, from: u64, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let records = self.records.lock().map_err(|_| StoreError::Poisoned)?;
        for (seq, record) in records.range(from..) {
            if !visit(*seq, record)? {
                break;
            }
        }
        Ok(())
    }

    fn scan_back(&self, through: u64, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let records = self.records.lock().map_err(|_| StoreError::Poisoned)?;
        for (seq, record) in records.range(..=through).rev() {
            if !visit(*seq, record)? {
                break;
            }
        }
        Ok(())
    }
}
