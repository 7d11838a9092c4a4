//! The snapshot format: a tenant's state at a sequence number, as JSON, with its own schema
//! version. A snapshot is only an accelerator: recovery falls back to a full replay of the
//! events (which are never deleted) when one cannot be read.

use serde::{Deserialize, Serialize};

use crate::domain::FlowsSnapshot;

/// The schema version written with every new snapshot.
pub const SNAPSHOT_SCHEMA_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct SnapshotRecord {
    schema_version: u32,
    tenant_id: String,
    seq: u64,
    state: FlowsSnapshot,
}

/// Encodes the state of `tenant` after event `seq`.
pub fn encode_snapshot(
    tenant: &str,
    seq: u64,
    state: FlowsSnapshot,
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&SnapshotRecord {
        schema_version: SNAPSHOT_SCHEMA_VERSION,
        tenant_id: tenant.to_owned(),
        seq,
        state,
    })
}

/// Decodes a snapshot stored under `seq` for `tenant`, refusing one of another version,
/// tenant or seq.
pub fn decode_snapshot(tenant: &str, seq: u64, bytes: &[u8]) -> Result<FlowsSnapshot, String> {
    let record: SnapshotRecord = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if record.schema_version != SNAPSHOT_SCHEMA_VERSION {
        return Err(format!(
            "snapshot schema version {} (this build reads {SNAPSHOT_SCHEMA_VERSION})",
            record.schema_version
        ));
    }
    if record.tenant_id != tenant || record.seq != seq {
        return Err(format!(
            "the snapshot stored at seq {seq} says tenant '{}' seq {}",
            record.tenant_id, record.seq
        ));
    }
    Ok(record.state)
}
