//! Rebuilding a tenant's state from its stream, with the one `evolve`, optionally starting from a
//! snapshot. Recovery policy: refuse the whole stream on the first gap, duplicate, foreign or
//! undecodable record, naming tenant and seq; the tenant then answers 503 while the others work.
//! A snapshot that cannot be used is ignored with a warning (full replay).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Condvar, Mutex};

use crate::codec::{
    decode, decode_event, decode_snapshot, encode_snapshot, CodecError, StoredEvent,
};
use crate::domain::{evolve, UserFlowEvent, UserFlows};
use crate::store::{EventLog, EventStream, StoreError};

/// A tenant's state as its log leaves it.
#[derive(Debug, Default)]
pub struct Recovered {
    pub flows: UserFlows,
    /// The seq of the last event applied (0 for none).
    pub last_seq: u64,
}

/// Why a stream cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("tenant {tenant}: expected seq {expected}, found seq {found} (a gap in the log)")]
    Gap {
        tenant: String,
        expected: u64,
        found: u64,
    },
    #[error("tenant {tenant}: the record stored at seq {key} says seq {inner} and tenant '{inner_tenant}' (a duplicate or misplaced record)")]
    Misplaced {
        tenant: String,
        key: u64,
        inner: u64,
        inner_tenant: String,
    },
    #[error("tenant {tenant}: the record at seq {seq} cannot be decoded: {source}")]
    Undecodable {
        tenant: String,
        seq: u64,
        source: CodecError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a tenant was recovered at start.
#[derive(Debug)]
pub struct Recovery {
    pub recovered: Recovered,
    /// The seq of the snapshot it started from, if any.
    pub from_snapshot: Option<u64>,
}

/// Start-up recovery: the newest valid snapshot plus the events after it, or a full replay
/// when there is no usable snapshot (a bad one is logged and ignored). With
/// `snapshot_every`, a recovery that had to replay at least that many events saves a new
/// snapshot, so the next start is fast; without it (snapshots off) it always replays all.
pub fn recover(
    log: &dyn EventLog,
    stream: &dyn EventStream,
    tenant: &str,
    snapshot_every: Option<u64>,
) -> Result<Recovery, RecoveryError> {
    let start = match usable_snapshot(log, stream, tenant) {
        Ok(_) if snapshot_every.is_none() => None,
        Ok(start) => start,
        Err(reason) => {
            tracing::warn!(%tenant, %reason, "snapshot unusable; replaying the whole log");
            None
        }
    };
    let from_snapshot = start.as_ref().map(|r| r.last_seq);
    let start_seq = from_snapshot.unwrap_or(0);
    let recovered = fold_parallel(start.unwrap_or_default(), stream, tenant)?;
    if snapshot_due(
        snapshot_every,
        recovered.last_seq - start_seq,
        recovered.flows.len(),
    ) {
        save_snapshot(log, tenant, &recovered);
    }
    Ok(Recovery {
        recovered,
        from_snapshot,
    })
}

/// Whether a snapshot is due after `since` events on a state of `flows` flows. A snapshot costs
/// O(flows), so one is taken only after at least `max(every, flows)` events: the cost per event
/// stays constant however large the state grows, and recovery replays at most that many
/// events after the snapshot, so start-up time follows the state's size, not the log's length.
pub(super) fn snapshot_due(every: Option<u64>, since: u64, flows: usize) -> bool {
    every.is_some_and(|every| since >= every.max(flows as u64))
}

/// Saves a snapshot of `state`; a failure only costs speed at the next start, so it is logged.
pub(super) fn save_snapshot(log: &dyn EventLog, tenant: &str, state: &Recovered) {
    save_snapshot_of(log, tenant, state.last_seq, &state.flows);
}

/// Saves a snapshot of `flows` as they stand after event `seq`.
pub(super) fn save_snapshot_of(log: &dyn EventLog, tenant: &str, seq: u64, flows: &UserFlows) {
    let saved = encode_snapshot(tenant, seq, flows.snapshot())
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            log.save_snapshot(tenant, seq, &bytes)
                .map_err(|e| e.to_string())
        });
    if let Err(error) = saved {
        tracing::warn!(%tenant, seq, %error, "could not save a snapshot");
    }
}

fn usable_snapshot(
    log: &dyn EventLog,
    stream: &dyn EventStream,
    tenant: &str,
) -> Result<Option<Recovered>, String> {
    let Some((seq, bytes)) = log.latest_snapshot(tenant).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    if seq > stream.last_seq() {
        return Err(format!(
            "snapshot at seq {seq} is past the log's last seq {}",
            stream.last_seq()
        ));
    }
    let state = decode_snapshot(tenant, seq, &bytes)?;
    let flows = UserFlows::from_snapshot(state)?;
    Ok(Some(Recovered {
        flows,
        last_seq: seq,
    }))
}

/// Replays `stream` of `tenant` from the start up to and including `until` (all when `None`)
/// on one thread, decoding each record whole and calling `on_event` with each applied event:
/// the tools' path. Start-up recovery uses `fold_parallel`: the same checks and `evolve`.
pub fn replay(
    stream: &dyn EventStream,
    tenant: &str,
    until: Option<u64>,
    mut on_event: impl FnMut(&StoredEvent),
) -> Result<Recovered, RecoveryError> {
    let mut recovered = Recovered::default();
    let mut failure: Option<RecoveryError> = None;
    let scanned = stream.scan(1, &mut |seq, bytes| {
        if until.is_some_and(|u| seq > u) {
            return Ok(false);
        }
        let applied = check_position(tenant, recovered.last_seq + 1, seq).and_then(|()| {
            let stored = decode(tenant, bytes).map_err(|e| undecodable(tenant, seq, e))?;
            check_claim(tenant, seq, stored.envelope.seq, &stored.envelope.tenant_id)?;
            evolve(&mut recovered.flows, &stored.event);
            on_event(&stored);
            Ok(())
        });
        match applied {
            Ok(()) => {
                recovered.last_seq = seq;
                Ok(true)
            }
            Err(e) => {
                failure = Some(e);
                Ok(false)
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    scanned?;
    Ok(recovered)
}

/// Seqs per unit of parallel recovery work: large enough that handing a chunk over costs
/// little, small enough to keep memory flat (a chunk's events are held until folded).
const CHUNK: u64 = 4_096;
/// Chunks a worker may run ahead of the fold, per worker.
const AHEAD_PER_WORKER: u64 = 2;

/// Start-up recovery's fast path. The stream is cut into ranges of [`CHUNK`] seqs; every core
/// scans and decodes ranges (only what recovery needs of a record) while this thread checks
/// and folds them in seq order with the one `evolve`. The same checks as the tools' path, and
/// the first fault in seq order is the one reported.
fn fold_parallel(
    mut recovered: Recovered,
    stream: &dyn EventStream,
    tenant: &str,
) -> Result<Recovered, RecoveryError> {
    let first = recovered.last_seq + 1;
    let chunks = stream.last_seq().saturating_sub(first) / CHUNK + 1;
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(usize::try_from(chunks).unwrap_or(usize::MAX));
    if workers <= 1 {
        fold_chunk(
            &mut recovered,
            tenant,
            read_chunk(stream, tenant, first, u64::MAX),
        )?;
        return Ok(recovered);
    }
    let range_of = |k: u64| {
        let lo = first + k * CHUNK;
        // The last range is open, so a record past the stream's last seq is still seen.
        (
            lo,
            if k + 1 == chunks {
                u64::MAX
            } else {
                lo + CHUNK - 1
            },
        )
    };
    let ahead = AHEAD_PER_WORKER * workers as u64;
    let next = AtomicU64::new(0);
    // How many chunks are folded, or `None` once the fold has stopped.
    let folded = Mutex::new(Some(0u64));
    let progress = Condvar::new();
    let (sender, receiver) = mpsc::channel::<(u64, Chunk)>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let sender = sender.clone();
            let (next, folded, progress) = (&next, &folded, &progress);
            scope.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= chunks || !wait_for_room(folded, progress, k, ahead) {
                    break;
                }
                let (lo, hi) = range_of(k);
                if sender
                    .send((k, read_chunk(stream, tenant, lo, hi)))
                    .is_err()
                {
                    break;
                }
            });
        }
        drop(sender);
        let outcome = fold_in_order(
            &mut recovered,
            tenant,
            chunks,
            &receiver,
            &folded,
            &progress,
        );
        // Stop the workers whatever happened (they may be waiting for room).
        if let Ok(mut folded) = folded.lock() {
            *folded = None;
        }
        progress.notify_all();
        outcome
    })?;
    Ok(recovered)
}

/// Blocks until chunk `k` is within `ahead` chunks of the fold; `false` once the fold stopped.
fn wait_for_room(folded: &Mutex<Option<u64>>, progress: &Condvar, k: u64, ahead: u64) -> bool {
    let Ok(mut guard) = folded.lock() else {
        return false;
    };
    loop {
        match *guard {
            None => return false,
            Some(done) if k < done + ahead => return true,
            Some(_) => match progress.wait(guard) {
                Ok(g) => guard = g,
                Err(_) => return false,
            },
        }
    }
}

/// Receives chunks in any order and folds them in seq order.
fn fold_in_order(
    recovered: &mut Recovered,
    tenant: &str,
    chunks: u64,
    receiver: &mpsc::Receiver<(u64, Chunk)>,
    folded: &Mutex<Option<u64>>,
    progress: &Condvar,
) -> Result<(), RecoveryError> {
    let mut early: BTreeMap<u64, Chunk> = BTreeMap::new();
    let mut want = 0;
    while want < chunks {
        let chunk = match early.remove(&want) {
            Some(chunk) => chunk,
            None => match receiver.recv() {
                Ok((k, chunk)) if k == want => chunk,
                Ok((k, chunk)) => {
                    early.insert(k, chunk);
                    continue;
                }
                // Every worker is gone with chunks missing: one of them died.
                Err(_) => return Err(RecoveryError::Store(StoreError::Poisoned)),
            },
        };
        fold_chunk(recovered, tenant, chunk)?;
        want += 1;
        if let Ok(mut folded) = folded.lock() {
            *folded = Some(want);
        }
        progress.notify_all();
    }
    Ok(())
}

/// One range of a stream, read and decoded: its good records in seq order, then what stopped
/// the read early (a record that cannot be used, or the store's error), if anything.
struct Chunk {
    events: Vec<(u64, UserFlowEvent)>,
    failure: Option<ChunkFault>,
}

enum ChunkFault {
    /// The record at this seq cannot be used, for this reason.
    Record(u64, RecoveryError),
    Store(StoreError),
}

/// Reads and decodes the records with seqs in `lo..=hi`, stopping at the first bad one.
fn read_chunk(stream: &dyn EventStream, tenant: &str, lo: u64, hi: u64) -> Chunk {
    let mut events = Vec::with_capacity(usize::try_from(CHUNK).unwrap_or_default());
    let mut failure = None;
    let scanned = stream.scan(lo, &mut |seq, bytes| {
        if seq > hi {
            return Ok(false);
        }
        let event = decode_event(tenant, bytes)
            .map_err(|e| undecodable(tenant, seq, e))
            .and_then(|record| {
                check_claim(tenant, seq, record.seq, &record.tenant_id)?;
                Ok(record.event)
            });
        match event {
            Ok(event) => {
                events.push((seq, event));
                Ok(true)
            }
            Err(e) => {
                failure = Some(ChunkFault::Record(seq, e));
                Ok(false)
            }
        }
    });
    Chunk {
        events,
        failure: failure.or(scanned.err().map(ChunkFault::Store)),
    }
}

/// Checks and folds one chunk: each seq must follow the last applied one.
fn fold_chunk(recovered: &mut Recovered, tenant: &str, chunk: Chunk) -> Result<(), RecoveryError> {
    for (seq, event) in chunk.events {
        check_position(tenant, recovered.last_seq + 1, seq)?;
        evolve(&mut recovered.flows, &event);
        recovered.last_seq = seq;
    }
    match chunk.failure {
        None => Ok(()),
        Some(ChunkFault::Record(seq, error)) => {
            // A gap before the bad record is the first fault in seq order.
            check_position(tenant, recovered.last_seq + 1, seq)?;
            Err(error)
        }
        Some(ChunkFault::Store(error)) => Err(error.into()),
    }
}

fn check_position(tenant: &str, expected: u64, seq: u64) -> Result<(), RecoveryError> {
    if seq == expected {
        Ok(())
    } else {
        Err(RecoveryError::Gap {
            tenant: tenant.to_owned(),
            expected,
            found: seq,
        })
    }
}

/// The record stored at `key` must say it is that seq of this tenant.
fn check_claim(
    tenant: &str,
    key: u64,
    inner: u64,
    inner_tenant: &str,
) -> Result<(), RecoveryError> {
    if inner == key && inner_tenant == tenant {
        Ok(())
    } else {
        Err(RecoveryError::Misplaced {
            tenant: tenant.to_owned(),
            key,
            inner,
            inner_tenant: inner_tenant.to_owned(),
        })
    }
}

fn undecodable(tenant: &str, seq: u64, source: CodecError) -> RecoveryError {
    RecoveryError::Undecodable {
        tenant: tenant.to_owned(),
        seq,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{encode, EventMeta};
    use crate::domain::{UserFlow, UserFlowEvent, UserFlowId};
    use crate::store::{MemoryEventLog, RecordBatch};

    /// A stream of `n` events (creates, with every third one deleting an earlier flow).
    fn stream_of(n: u64, corrupt: Option<u64>) -> Box<dyn EventStream> {
        let log = MemoryEventLog::new();
        let mut stream = log.open("t").unwrap();
        let meta = EventMeta {
            recorded_at: std::time::SystemTime::UNIX_EPOCH,
            request_id: "r".into(),
            client_request_id: Some("c".into()),
        };
        for seq in 1..=n {
            let event = if seq % 3 == 0 {
                UserFlowEvent::Deleted {
                    id: UserFlowId::parse(&format!("f{}", seq - 2)).unwrap(),
                }
            } else {
                UserFlowEvent::Created(UserFlow::sample(&format!("f{seq}")))
            };
            let mut record = encode(seq, &meta, &event).unwrap();
            if corrupt == Some(seq) {
                record.truncate(record.len() / 2);
            }
            stream.append(&RecordBatch::single(seq, &record)).unwrap();
        }
        stream
    }

    /// A stream over a plain map, so a test can leave gaps.
    struct MapStream(BTreeMap<u64, Vec<u8>>);

    impl EventStream for MapStream {
        fn last_seq(&self) -> u64 {
            self.0.keys().next_back().copied().unwrap_or(0)
        }
        fn append(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
            self.0
                .extend(batch.records().map(|(seq, record)| (seq, record.to_vec())));
            Ok(())
        }
        fn truncate_after(&mut self, seq: u64) -> Result<(), StoreError> {
            drop(self.0.split_off(&(seq + 1)));
            Ok(())
        }
        fn scan(&self, from: u64, visit: &mut crate::store::Visit<'_>) -> Result<(), StoreError> {
            for (seq, record) in self.0.range(from..) {
                if !visit(*seq, record)? {
                    break;
                }
            }
            Ok(())
        }
        fn scan_back(&self, _: u64, _: &mut crate::store::Visit<'_>) -> Result<(), StoreError> {
            unreachable!("recovery reads forwards")
        }
    }

    fn map_of(stream: &dyn EventStream) -> MapStream {
        let mut map = BTreeMap::new();
        stream
            .scan(1, &mut |seq, bytes| {
                Ok(map.insert(seq, bytes.to_vec()).is_none())
            })
            .unwrap();
        MapStream(map)
    }

    fn fast(stream: &dyn EventStream) -> Result<Recovered, RecoveryError> {
        fold_parallel(Recovered::default(), stream, "t")
    }

    #[test]
    fn parallel_recovery_equals_the_sequential_replay_across_chunks() {
        let n = CHUNK * 2 + 17;
        let stream = stream_of(n, None);
        let mut seen = 0;
        let sequential = replay(stream.as_ref(), "t", None, |_| seen += 1).unwrap();
        let parallel = fast(stream.as_ref()).unwrap();
        assert_eq!(seen, n);
        assert_eq!(parallel.last_seq, n);
        assert_eq!(parallel.flows.snapshot(), sequential.flows.snapshot());
        // Starting part-way (as after a snapshot) gives the same end state.
        let part = replay(stream.as_ref(), "t", Some(CHUNK + 3), |_| ()).unwrap();
        let rest = fold_parallel(part, stream.as_ref(), "t").unwrap();
        assert_eq!(rest.last_seq, n);
        assert_eq!(rest.flows.snapshot(), sequential.flows.snapshot());
    }

    #[test]
    fn parallel_recovery_names_the_first_bad_record_in_seq_order() {
        let bad = CHUNK + 5;
        let stream = stream_of(CHUNK * 2, Some(bad));
        let error = fast(stream.as_ref()).unwrap_err();
        assert!(
            matches!(error, RecoveryError::Undecodable { seq, .. } if seq == bad),
            "{error}"
        );
        // A later chunk's fault (a gap) does not hide an earlier one.
        let mut map = map_of(stream.as_ref());
        map.0.remove(&(CHUNK * 2 - 3));
        let error = fast(&map).unwrap_err();
        assert!(
            matches!(error, RecoveryError::Undecodable { seq, .. } if seq == bad),
            "{error}"
        );
    }

    #[test]
    fn parallel_recovery_names_gaps_and_misplaced_records() {
        let n = CHUNK * 2 + 9;
        let mut gap = map_of(stream_of(n, None).as_ref());
        gap.0.remove(&(CHUNK + 1));
        assert!(matches!(
            fast(&gap).unwrap_err(),
            RecoveryError::Gap { expected, found, .. } if expected == CHUNK + 1 && found == CHUNK + 2
        ));
        // A record past the last full chunk, stored under the wrong key.
        let mut moved = map_of(stream_of(n, None).as_ref());
        let record = moved.0.remove(&n).unwrap();
        moved.0.insert(n, record.clone());
        moved.0.insert(n + 1, record);
        assert!(matches!(
            fast(&moved).unwrap_err(),
            RecoveryError::Misplaced { key, inner, .. } if key == n + 1 && inner == n
        ));
    }

    #[test]
    fn snapshots_are_due_after_max_of_interval_and_state_size() {
        assert!(!snapshot_due(None, 1_000_000, 0));
        assert!(!snapshot_due(Some(10), 9, 3));
        assert!(snapshot_due(Some(10), 10, 3));
        assert!(
            !snapshot_due(Some(10), 10, 50),
            "a large state waits longer"
        );
        assert!(snapshot_due(Some(10), 50, 50));
    }
}
