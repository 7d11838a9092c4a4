//! Rebuilding a tenant's state from its stream, with the one `evolve`. Recovery policy: refuse
//! the whole stream on the first gap, duplicate, foreign or undecodable record, naming tenant and
//! seq; the tenant then answers 503 while the others work.

use crate::domain::{evolve, UserFlows};
use crate::store::{decode, CodecError, EventStream, StoreError, StoredEvent};

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

/// Replays `stream` of `tenant` up to and including `until` (all when `None`), calling
/// `on_event` with each applied event.
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
