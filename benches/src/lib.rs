//! Fixtures shared by the criterion benches in `benches/benches/`: valid flows and commands,
//! request metadata, a log filled with N events, a tenant registry inside an actix `System`,
//! and the small criterion settings that suit a 2-core machine. The benches measure the
//! emulator's library code; nothing here reimplements it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::Criterion;
use userflows_emulator::codec::{encode, EventMeta, RequestId};
use userflows_emulator::domain::{
    Command, CreateUserFlow, DeleteUserFlow, UserFlow, UserFlowEvent, UserFlowId, UserFlowType,
    UserFlowTypeVersion,
};
use userflows_emulator::store::{EventLog, RecordBatch, StoreError};
use userflows_emulator::tenant::{
    Placement, RegistryOptions, RequestMeta, TenantId, TenantRegistry,
};

/// The tenant every bench uses.
pub const TENANT: &str = "bench-tenant";

/// Criterion settings for a small machine: 10 samples, 0.5 s warm-up, 2 s measured. Command
/// line options (`--sample-size`, `--measurement-time` …) still override them.
#[must_use]
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// A valid flow with `id` (prefixed when it is not).
pub fn flow(id: &str) -> Result<UserFlow, String> {
    Ok(UserFlow {
        id: UserFlowId::parse(id)?,
        user_flow_type: UserFlowType::SignUpOrSignIn,
        user_flow_type_version: UserFlowTypeVersion::parse(1.0)?,
    })
}

/// `CreateUserFlow` of a valid flow with `id`.
pub fn create(id: &str) -> Result<Command, String> {
    Ok(Command::Create(CreateUserFlow { flow: flow(id)? }))
}

/// `DeleteUserFlow` of `id`.
#[must_use]
pub fn delete(id: &str) -> Command {
    Command::Delete(DeleteUserFlow { id: id.to_owned() })
}

/// A fresh id on every call, across every bench of the process.
#[must_use]
pub fn unique_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("B2C_1_bench{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Request metadata as the HTTP layer would pass it.
#[must_use]
pub fn request_meta() -> RequestMeta {
    RequestMeta {
        request_id: uuid::Uuid::from_u128(1),
        client_request_id: Some("00000000-0000-0000-0000-000000000002".to_owned()),
        hold: false,
    }
}

/// Event metadata as the tenant actor would pass it to the codec.
#[must_use]
pub fn event_meta() -> EventMeta {
    EventMeta {
        recorded_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000),
        request_id: RequestId::Uuid(uuid::Uuid::from_u128(1)),
        client_request_id: Some("00000000-0000-0000-0000-000000000002".to_owned()),
    }
}

/// Appends `n` encoded `UserFlowCreated` events (seq 1..=n) to `tenant`'s stream of `log` and
/// flushes it.
pub fn fill(log: &dyn EventLog, tenant: &str, n: u64) -> Result<(), String> {
    let mut stream = log.open(tenant).map_err(|e| e.to_string())?;
    let meta = event_meta();
    for seq in 1..=n {
        let event = UserFlowEvent::Created(flow(&format!("B2C_1_replay{seq}"))?);
        let record = encode(seq, &meta, &event).map_err(|e| e.to_string())?;
        stream
            .append(&RecordBatch::single(seq, &record))
            .map_err(|e| e.to_string())?;
    }
    log.flush().map_err(|e: StoreError| e.to_string())
}

/// A recovered registry over `log` with one arbiter and no snapshots, and the handle of
/// [`TENANT`]. Must run inside an actix `System`.
pub fn registry(
    log: Arc<dyn EventLog>,
) -> Result<(TenantRegistry, userflows_emulator::tenant::TenantHandle), String> {
    let registry = TenantRegistry::new(
        log,
        RegistryOptions {
            placement: Placement::OwnThreads(1),
            queue_limit: 1024,
            snapshot_every: None,
            idle_after: None,
        },
    );
    registry.recover_all().map_err(|e| e.to_string())?;
    let tenant = TenantId::parse(TENANT).ok_or("bad tenant id")?;
    let handle = registry.get_or_start(&tenant).map_err(|e| e.to_string())?;
    Ok((registry, handle))
}
