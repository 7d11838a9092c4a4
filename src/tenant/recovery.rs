//! Rebuilding a tenant's state from its stream, with the one `evolve`, optionally starting from a
//! snapshot. Recovery policy: refuse the whole stream on the first gap, duplicate, foreign or
//! undecodable record, naming tenant and seq; the tenant then answers 503 while the others work.
//! A snapshot that cannot be used is ignored with a warning (full replay).

use crate::domain::{evolve, UserFlows};
use crate::store::{
    decode, decode_snapshot, encode_snapshot, CodecError, EventLog, EventStream, StoreError,
    StoredEvent,
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
    on_event: impl FnMut(&StoredEvent),
) -> Result<Recovered, RecoveryError> {
    replay_onto(Recovered::default(), stream, tenant, until, on_event)
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
    let recovered = replay_onto(start.unwrap_or_default(), stream, tenant, None, |_| {})?;
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

fn replay_onto(
    mut recovered: Recovered,
    stream: &dyn EventStream,
    tenant: &str,
    until: Option<u64>,
    mut on_event: impl FnMut(&StoredEvent),
) -> Result<Recovered, RecoveryError> {
    let mut failure: Option<RecoveryError> = None;
    let scanned = stream.scan(recovered.last_seq + 1, &mut |seq, bytes| {
        if until.is_some_and(|u| seq > u) {
            return Ok(false);
        }
        match check(tenant, recovered.last_seq + 1, seq, bytes) {
            Ok(stored) => {
                evolve(&mut recovered.flows, &stored.event);
                recovered.last_seq = seq;
                on_event(&stored);
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

fn check(
    tenant: &str,
    expected: u64,
    seq: u64,
    bytes: &[u8],
) -> Result<StoredEvent, RecoveryError> {
    if seq != expected {
        return Err(RecoveryError::Gap {
            tenant: tenant.to_owned(),
            expected,
            found: seq,
        });
    }
    let stored = decode(bytes).map_err(|source| RecoveryError::Undecodable {
        tenant: tenant.to_owned(),
        seq,
        source,
    })?;
    if stored.envelope.seq != seq || stored.envelope.tenant_id != tenant {
        return Err(RecoveryError::Misplaced {
            tenant: tenant.to_owned(),
            key: seq,
            inner: stored.envelope.seq,
            inner_tenant: stored.envelope.tenant_id,
        });
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::snapshot_due;

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
