//! The in-memory engine: the same streams in process memory, for `--in-memory` runs and
//! benchmarks, each append kept as one value under its first seq, as sled keeps it
//! (docs/adr/0007). Everything is gone when the process exits.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::batch::{visit_back, visit_from};
use super::{
    Commit, CommitStats, DurableCallback, EventLog, EventStream, RecordBatch, StoreError, Visit,
};

/// One append: its records as stored, and the seq of its last.
struct Value {
    last_seq: u64,
    stored: Box<[u8]>,
}

/// A tenant's values by the seq of their first record.
type Records = Arc<Mutex<BTreeMap<u64, Value>>>;

/// Every tenant's values; a tenant has an entry once it has appended something.
type Streams = Arc<Mutex<HashMap<String, Records>>>;

/// An [`EventLog`] in memory.
#[derive(Default)]
pub struct MemoryEventLog {
    streams: Streams,
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
        // Opening creates nothing: the tenant's entry is made by its first append.
        let streams = self.streams.lock().map_err(|_| StoreError::Poisoned)?;
        let records = streams.get(tenant).map(Arc::clone);
        let last_seq = match &records {
            Some(records) => records
                .lock()
                .map_err(|_| StoreError::Poisoned)?
                .values()
                .next_back()
                .map_or(0, |value| value.last_seq),
            None => 0,
        };
        Ok(Box::new(MemoryStream {
            tenant: tenant.to_owned(),
            streams: Arc::clone(&self.streams),
            records: Mutex::new(records),
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

    fn has_space(&self) -> Result<(), StoreError> {
        Ok(())
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

    fn rename_tenant(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let mut streams = self.streams.lock().map_err(|_| StoreError::Poisoned)?;
        if let Some(records) = streams.remove(from) {
            streams.insert(to.to_owned(), records);
        }
        drop(streams);
        let mut snapshots = self.snapshots.lock().map_err(|_| StoreError::Poisoned)?;
        if let Some(snapshot) = snapshots.remove(from) {
            snapshots.insert(to.to_owned(), snapshot);
        }
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
    /// The log's map, where the first append makes this tenant's entry.
    streams: Streams,
    /// This tenant's values, once it has any.
    records: Mutex<Option<Records>>,
    last_seq: u64,
}

impl MemoryStream {
    /// This tenant's values, when it has any.
    fn existing(&self) -> Result<Option<Records>, StoreError> {
        let mut cached = self.records.lock().map_err(|_| StoreError::Poisoned)?;
        if cached.is_none() {
            let streams = self.streams.lock().map_err(|_| StoreError::Poisoned)?;
            *cached = streams.get(&self.tenant).map(Arc::clone);
        }
        Ok(cached.clone())
    }

    /// This tenant's values, its entry in the log's map made first when it has none.
    fn created(&self) -> Result<Records, StoreError> {
        let mut cached = self.records.lock().map_err(|_| StoreError::Poisoned)?;
        if let Some(records) = cached.as_ref() {
            return Ok(Arc::clone(records));
        }
        let mut streams = self.streams.lock().map_err(|_| StoreError::Poisoned)?;
        let records = Arc::clone(streams.entry(self.tenant.clone()).or_default());
        *cached = Some(Arc::clone(&records));
        Ok(records)
    }
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
        let records = self.created()?;
        let mut records = records.lock().map_err(|_| StoreError::Poisoned)?;
        // Another writer of this tenant may have stored `seq` already.
        if records
            .values()
            .next_back()
            .is_some_and(|value| value.last_seq >= seq)
        {
            return Err(StoreError::AlreadyWritten {
                tenant: self.tenant.clone(),
                seq,
            });
        }
        let value = Value {
            last_seq: batch.last_seq(),
            stored: batch.stored().into(),
        };
        records.insert(seq, value);
        self.last_seq = batch.last_seq();
        Ok(())
    }

    fn truncate_after(&mut self, seq: u64) -> Result<(), StoreError> {
        if let Some(records) = self.existing()? {
            let mut records = records.lock().map_err(|_| StoreError::Poisoned)?;
            drop(records.split_off(&(seq + 1)));
            self.last_seq = records.values().next_back().map_or(0, |v| v.last_seq);
        }
        Ok(())
    }

    fn scan(&self, from: u64, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let Some(records) = self.existing()? else {
            return Ok(());
        };
        let records = records.lock().map_err(|_| StoreError::Poisoned)?;
        // The record of `from` may be in a value stored under an earlier seq.
        let start = records
            .range(..=from)
            .next_back()
            .map_or(from, |(&first, _)| first);
        for (&first, value) in records.range(start..) {
            if !visit_from(&self.tenant, first, &value.stored, from, visit)? {
                break;
            }
        }
        Ok(())
    }

    fn scan_back(&self, through: u64, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let Some(records) = self.existing()? else {
            return Ok(());
        };
        let records = records.lock().map_err(|_| StoreError::Poisoned)?;
        for (&first, value) in records.range(..=through).rev() {
            if !visit_back(&self.tenant, first, &value.stored, through, visit)? {
                break;
            }
        }
        Ok(())
    }
}
