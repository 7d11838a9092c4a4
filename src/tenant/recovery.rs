//! Rebuilding a tenant's state from its stream, with the one `evolve`, optionally starting from a
//! snapshot. Recovery policy: refuse the whole stream on the first gap, duplicate, foreign or
//! undecodable record, naming tenant and seq; the tenant then answers 503 while the others work.
//! A snapshot that cannot be used is ignored with a warning (full replay).

use crate::domain::{evolve, UserFlows};
use crate::store::{
    decode, decode_event, decode_snapshot, encode_snapshot, CodecError, EventLog, EventRecord,
    EventStream, StoreError, StoredEvent,
};

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

/// Replays `stream` of `tenant` from the start up to and including `until` (all when `None`),
/// calling `on_event` with each applied event.
pub fn replay(
    stream: &dyn EventStream,
    tenant: &str,
    until: Option<u64>,
    mut on_event: impl FnMut(&StoredEvent),
) -> Result<Recovered, RecoveryError> {
    replay_onto(
        Recovered::default(),
        stream,
        tenant,
        until,
        Some(&mut on_event),
    )
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
    let recovered = replay_onto(start.unwrap_or_default(), stream, tenant, None, None)?;
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

/// Records decoded together in recovery's fast path: large enough that starting the decoding
/// threads costs little, small enough to keep memory flat.
const DECODE_BATCH: usize = 8_192;

/// Folds the stream onto `recovered` from its next seq. With `on_event`, each record is
/// decoded whole and handed over in order. Without (start-up recovery), only what recovery
/// needs is decoded, in parallel batches, and the events are folded in order: the same parser,
/// checks and `evolve`.
fn replay_onto(
    mut recovered: Recovered,
    stream: &dyn EventStream,
    tenant: &str,
    until: Option<u64>,
    mut on_event: Option<&mut dyn FnMut(&StoredEvent)>,
) -> Result<Recovered, RecoveryError> {
    let mut failure: Option<RecoveryError> = None;
    let mut batch: Vec<(u64, Vec<u8>)> = Vec::new();
    let scanned = stream.scan(recovered.last_seq + 1, &mut |seq, bytes| {
        if until.is_some_and(|u| seq > u) {
            return Ok(false);
        }
        let Some(visit) = on_event.as_mut() else {
            batch.push((seq, bytes.to_vec()));
            if batch.len() == DECODE_BATCH {
                if let Err(e) = fold_batch(&mut recovered, tenant, &std::mem::take(&mut batch)) {
                    failure = Some(e);
                    return Ok(false);
                }
            }
            return Ok(true);
        };
        let applied = check_position(tenant, recovered.last_seq + 1, seq).and_then(|()| {
            let stored = decode(bytes).map_err(|e| undecodable(tenant, seq, e))?;
            check_claim(tenant, seq, stored.envelope.seq, &stored.envelope.tenant_id)?;
            evolve(&mut recovered.flows, &stored.event);
            visit(&stored);
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
    if failure.is_none() && !batch.is_empty() {
        failure = fold_batch(&mut recovered, tenant, &batch).err();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    scanned?;
    Ok(recovered)
}

/// Decodes a batch on every core, then checks and folds it in seq order. A fault stops the
/// fold at the first bad record, as a sequential replay would.
fn fold_batch(
    recovered: &mut Recovered,
    tenant: &str,
    batch: &[(u64, Vec<u8>)],
) -> Result<(), RecoveryError> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = batch.len().div_ceil(threads).max(1);
    let decoded: Option<Vec<Vec<Result<EventRecord<'_>, CodecError>>>> =
        std::thread::scope(|scope| {
            let workers: Vec<_> = batch
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(_, bytes)| decode_event(bytes))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().ok()).collect()
        });
    // A decoding thread that died leaves the batch unchecked: fold none of it.
    let records = decoded.ok_or(RecoveryError::Store(StoreError::Poisoned))?;
    for ((seq, _), record) in batch.iter().zip(records.into_iter().flatten()) {
        check_position(tenant, recovered.last_seq + 1, *seq)?;
        let record = record.map_err(|e| undecodable(tenant, *seq, e))?;
        check_claim(tenant, *seq, record.seq, &record.tenant_id)?;
        evolve(&mut recovered.flows, &record.event);
        recovered.last_seq = *seq;
    }
    Ok(())
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
    use crate::domain::{UserFlow, UserFlowEvent, UserFlowId, UserFlowType, UserFlowTypeVersion};
    use crate::store::{encode, EventMeta, MemoryEventLog};

    /// A stream of `n` events (creates, with every third one deleting an earlier flow).
    fn stream_of(n: u64, corrupt: Option<u64>) -> Box<dyn EventStream> {
        let log = MemoryEventLog::new();
        let mut stream = log.open("t").unwrap();
        let meta = EventMeta {
            recorded_at: std::time::SystemTime::UNIX_EPOCH,
            request_id: "r".into(),
            client_request_id: "c".into(),
        };
        for seq in 1..=n {
            let event = if seq % 3 == 0 {
                UserFlowEvent::Deleted {
                    id: UserFlowId::parse(&format!("f{}", seq - 2)).unwrap(),
                }
            } else {
                UserFlowEvent::Created(UserFlow {
                    id: UserFlowId::parse(&format!("f{seq}")).unwrap(),
                    user_flow_type: UserFlowType::SignIn,
                    user_flow_type_version: UserFlowTypeVersion::parse(1.0).unwrap(),
                })
            };
            let mut record = encode("t", seq, &meta, &event).unwrap();
            if corrupt == Some(seq) {
                record.truncate(record.len() / 2);
            }
            stream.append(seq, &record).unwrap();
        }
        stream
    }

    #[test]
    fn batched_recovery_equals_the_sequential_replay_across_batches() {
        let n = DECODE_BATCH as u64 * 2 + 17;
        let stream = stream_of(n, None);
        let mut seen = 0;
        let sequential = replay(stream.as_ref(), "t", None, |_| seen += 1).unwrap();
        let batched = replay_onto(Recovered::default(), stream.as_ref(), "t", None, None).unwrap();
        assert_eq!(seen, n);
        assert_eq!(batched.last_seq, n);
        assert_eq!(batched.flows.snapshot(), sequential.flows.snapshot());
    }

    #[test]
    fn batched_recovery_names_a_bad_record_in_a_later_batch() {
        let bad = DECODE_BATCH as u64 + 5;
        let stream = stream_of(DECODE_BATCH as u64 * 2, Some(bad));
        let error =
            replay_onto(Recovered::default(), stream.as_ref(), "t", None, None).unwrap_err();
        assert!(
            matches!(error, RecoveryError::Undecodable { seq, .. } if seq == bad),
            "{error}"
        );
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
