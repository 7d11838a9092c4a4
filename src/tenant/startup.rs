//! Start-up recovery of every tenant: each stream is rebuilt in parallel ([`super::recover`],
//! the one `evolve`), then, once the HTTP workers have all joined the pool, every tenant's
//! actor is started and the registry is marked ready. A tenant whose log cannot be recovered
//! gets an actor that answers 503 and names why; the others serve.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::actor::Health;
use super::recovery::recover;
use super::registry::{poisoned, Slot, TenantRegistry};
use super::{TenantError, TenantId};
use crate::store::{EventLog, EventStream, StoreError};

type RecoveredStream = Result<(Box<dyn EventStream>, Health, u64), StoreError>;

/// How long recovery waits for the HTTP workers to join the pool (they start within
/// milliseconds).
const WORKERS_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the streams of a data directory cannot be given their tenants' names.
#[derive(Debug, thiserror::Error)]
pub enum StreamNameError {
    #[error(
        "the data directory holds {} streams of tenant {tenant}: {} (written before GUID tenant \
         ids were compared ignoring case); keep one with the log tools, as docs/operations.md \
         shows under 'Two streams of one tenant'",
        streams.len(),
        streams.join(", ")
    )]
    Clash {
        tenant: String,
        streams: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Gives every stream its tenant's name before recovery: a GUID tenant's stream stored in
/// another letter case (written before GUIDs were compared ignoring case) is renamed to the
/// lower-case id; two streams that name one tenant refuse the start, naming both. Returns how
/// many streams were renamed.
pub fn canonical_stream_names(log: &dyn EventLog) -> Result<usize, StreamNameError> {
    let mut by_tenant: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for name in log.tenants()? {
        if let Some(tenant) = TenantId::parse(&name) {
            by_tenant
                .entry(tenant.as_str().to_owned())
                .or_default()
                .push(name);
        }
    }
    let mut renamed = 0;
    for (tenant, streams) in by_tenant {
        match streams.as_slice() {
            [only] if *only == tenant => {}
            [only] => {
                tracing::info!(from = %only, to = %tenant, "renaming a tenant's stream to its lower-case id");
                log.rename_tenant(only, &tenant)?;
                renamed += 1;
            }
            _ => return Err(StreamNameError::Clash { tenant, streams }),
        }
    }
    Ok(renamed)
}

/// What start-up recovery found.
#[derive(Debug, Clone, Default)]
pub struct RecoverySummary {
    pub tenants: usize,
    pub events: u64,
    pub flows: usize,
    /// Tenants that started from a snapshot.
    pub from_snapshots: usize,
    /// Tenants whose log could not be recovered (they answer 503).
    pub broken: Vec<String>,
    pub elapsed: Duration,
}

impl TenantRegistry {
    /// Rebuilds every tenant of the log, in parallel, then (once the pool is complete) starts
    /// their actors and marks the registry ready. May run on any thread; blocks.
    pub fn recover_all(&self) -> Result<RecoverySummary, TenantError> {
        let started = Instant::now();
        let mut names = self.log.tenants()?;
        names.sort();
        tracing::info!(tenants = names.len(), "recovering tenants");
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(String, RecoveredStream, bool)>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..workers.min(names.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(name) = names.get(i) else { break };
                    let (result, from_snapshot) = self.recover_one(name);
                    if let Ok(mut results) = results.lock() {
                        results.push((name.clone(), result, from_snapshot));
                    }
                });
            }
        });
        let results = results.into_inner().map_err(|_| StoreError::Poisoned)?;
        self.pool.wait_complete(WORKERS_TIMEOUT)?;
        let mut summary = RecoverySummary::default();
        for (name, result, from_snapshot) in results {
            let (stream, health, applied_seq) = result?;
            let Some(tenant) = TenantId::parse(&name) else {
                tracing::warn!(tenant = %name, "skipping a stream whose name is not a tenant id");
                continue;
            };
            summary.tenants += 1;
            summary.from_snapshots += usize::from(from_snapshot);
            match &health {
                Health::Ready(flows) => {
                    summary.events += applied_seq;
                    summary.flows += flows.len();
                }
                Health::Broken(_) => summary.broken.push(name.clone()),
            }
            let handle = self.spawn_actor(&tenant, stream, health, applied_seq, false)?;
            self.tenants
                .write()
                .map_err(|_| poisoned())?
                .insert(tenant, Slot::Running(handle));
        }
        summary.broken.sort();
        summary.elapsed = started.elapsed();
        if let Ok(mut recovery) = self.recovery.lock() {
            *recovery = Some(summary.clone());
        }
        self.ready.store(true, Ordering::Release);
        Ok(summary)
    }

    fn recover_one(&self, name: &str) -> (RecoveredStream, bool) {
        match self.log.open(name) {
            Ok(stream) => {
                let (health, seq, from_snapshot) = recover_stream(
                    self.log.as_ref(),
                    stream.as_ref(),
                    name,
                    self.options.snapshot_every,
                );
                (Ok((stream, health, seq)), from_snapshot)
            }
            Err(e) => (Err(e), false),
        }
    }
}

/// Rebuilds a tenant's state from its stream: the state and the seq it stands at, or (seq 0) a
/// broken state naming why the log cannot be recovered; and whether it started from a
/// snapshot. Used at start and when a parked tenant is woken.
pub(super) fn recover_stream(
    log: &dyn EventLog,
    stream: &dyn EventStream,
    name: &str,
    snapshot_every: Option<u64>,
) -> (Health, u64, bool) {
    match recover(log, stream, name, snapshot_every) {
        Ok(r) if r.recovered.last_seq == stream.last_seq() => (
            Health::Ready(r.recovered.flows),
            r.recovered.last_seq,
            r.from_snapshot.is_some(),
        ),
        Ok(r) => {
            let reason = format!(
                "its event log could not be recovered (replay stopped at seq {} of {})",
                r.recovered.last_seq,
                stream.last_seq()
            );
            tracing::error!(tenant = %name, %reason, "tenant log cannot be recovered; it will answer 503");
            (Health::Broken(reason), 0, false)
        }
        Err(e) => {
            tracing::error!(tenant = %name, error = %e, "tenant log cannot be recovered; it will answer 503");
            let reason = format!("its event log could not be recovered ({e})");
            (Health::Broken(reason), 0, false)
        }
    }
}
