//! The registry: exactly one actor per tenant (docs/architecture.md, invariant 1), spread
//! over a small pool of arbiters (by default the HTTP workers' own) by a hash of the tenant.
//! It starts a tenant's actor on its first write, routes commands and reads to it, keeps a
//! parked tenant's place while it has no actor and wakes it on its next request, resets a
//! tenant and stops every actor at shutdown. Until start-up recovery ([`super::startup`]) is
//! done it is not ready and tenants answer 503.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use actix::Actor;

use super::actor::{ActorStart, Health, Parking, Release, Stop, TenantActor};
use super::handle::{settled, TenantHandle};
use super::pool::{Placement, Pool};
use super::startup::RecoverySummary;
use super::{
    answer, Read, ReadOutcome, RequestMeta, TenantError, TenantId, TenantSummary, WriteOutcome,
};
use crate::codec::to_json;
use crate::domain::{decide, Command, UserFlows};
use crate::store::{CommitStats, EventLog, EventStream};

/// How long a stopping registry waits for its actors to go (and write what they hold).
const ACTORS_TIMEOUT: Duration = Duration::from_secs(10);

/// Tenants whose last write could not be stored, and why (for readiness); an actor adds
/// itself on a refused write and leaves on its next stored one.
pub(super) type WriteFailures = Arc<Mutex<BTreeMap<String, String>>>;

/// How the registry is set up.
#[derive(Debug, Clone, Copy)]
pub struct RegistryOptions {
    /// The arbiters the actors are spread over.
    pub placement: Placement,
    /// Requests a tenant may have queued before it answers 503.
    pub queue_limit: usize,
    /// Save a snapshot every this many events (`None`: never).
    pub snapshot_every: Option<u64>,
    /// Park a tenant whose actor has had no request for about this long (`None`: never): the
    /// actor and its state are dropped, and the next request rebuilds them from the log.
    pub idle_after: Option<Duration>,
}

pub(super) enum Slot {
    Running(TenantHandle),
    /// The tenant has a log and no actor (it was idle): the next request wakes it. Holds where
    /// it stood, for the admin listing.
    Parked(TenantSummary),
    /// Being reset: requests get 503 until the old stream is gone.
    Resetting,
}

/// Every tenant that has a log or an actor, shared with the actors (which park themselves).
pub(super) type Tenants = Arc<RwLock<HashMap<TenantId, Slot>>>;

/// A tenant as the registry sees it now.
pub enum TenantView {
    /// Has an actor.
    Running(TenantHandle),
    /// Parked: no actor until its next request; where it stood when it was parked.
    Parked(TenantSummary),
}

/// Every tenant's actor.
pub struct TenantRegistry {
    pub(super) log: Arc<dyn EventLog>,
    /// Where the actors run. At shutdown it waits until every actor has gone, so every stream
    /// handle (and the storage lock it holds) is released before the process reopens the
    /// directory.
    pub(super) pool: Pool,
    pub(super) tenants: Tenants,
    pub(super) options: RegistryOptions,
    hasher: std::collections::hash_map::RandomState,
    /// Events appended by all tenants since start, for metrics.
    appended: Arc<AtomicU64>,
    /// Set once every tenant of the log is recovered. Before, no tenant is served: a new actor
    /// on a not yet recovered stream would start from an empty state.
    pub(super) ready: AtomicBool,
    pub(super) recovery: Mutex<Option<RecoverySummary>>,
    write_failures: WriteFailures,
    /// Parked tenants woken since start, for metrics.
    wakes: AtomicU64,
}

impl TenantRegistry {
    /// Starts the arbiters of [`Placement::OwnThreads`]. Must run inside an actix `System`.
    #[must_use]
    pub fn new(log: Arc<dyn EventLog>, options: RegistryOptions) -> Self {
        Self {
            log,
            pool: Pool::new(options.placement),
            tenants: Tenants::default(),
            options: RegistryOptions {
                queue_limit: options.queue_limit.max(1),
                ..options
            },
            hasher: std::collections::hash_map::RandomState::new(),
            appended: Arc::new(AtomicU64::new(0)),
            ready: AtomicBool::new(false),
            recovery: Mutex::new(None),
            write_failures: WriteFailures::default(),
            wakes: AtomicU64::new(0),
        }
    }

    /// Joins the calling HTTP worker's arbiter to the pool ([`Placement::HttpWorkers`]); call
    /// it on each worker as it starts. Elsewhere it changes nothing.
    pub fn join_as_worker(&self) {
        self.pool.join_current();
    }

    /// The HTTP workers have stopped: no more will join, and recovery stops waiting for them.
    pub fn workers_stopped(&self) {
        self.pool.close();
    }

    pub(super) fn spawn_actor(
        &self,
        tenant: &TenantId,
        stream: Box<dyn EventStream>,
        health: Health,
        applied_seq: u64,
        wake: bool,
    ) -> Result<TenantHandle, TenantError> {
        let (arbiter, alive) = self.pool.pick(self.hasher.hash_one(tenant))?;
        let queued = Arc::new(AtomicUsize::new(0));
        let actor = TenantActor::new(ActorStart {
            tenant: tenant.clone(),
            log: Arc::clone(&self.log),
            stream,
            health,
            applied_seq,
            snapshot_every: self.options.snapshot_every,
            appended: Arc::clone(&self.appended),
            write_failures: Arc::clone(&self.write_failures),
            alive,
            parking: self.options.idle_after.map(|after| Parking {
                tenants: Arc::clone(&self.tenants),
                queued: Arc::clone(&queued),
                after,
                touched: false,
            }),
        });
        // A woken actor rebuilds its state on its own thread, before its first message, so
        // the registry's lock is not held while the log is read.
        let addr = TenantActor::start_in_arbiter(&arbiter, move |_| {
            let mut actor = actor;
            if wake {
                actor.wake_from_log();
            }
            actor
        });
        Ok(TenantHandle {
            tenant: tenant.clone(),
            addr,
            queued,
            queue_limit: self.options.queue_limit,
        })
    }

    /// Whether every tenant is recovered.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// What recovery found, once it is done.
    #[must_use]
    pub fn recovery(&self) -> Option<RecoverySummary> {
        self.recovery.lock().ok().and_then(|r| r.clone())
    }

    /// Events appended by all tenants since start.
    #[must_use]
    pub fn events_appended(&self) -> u64 {
        self.appended.load(Ordering::Relaxed)
    }

    /// What keeps writes from being stored now: the store's reason when it refuses every
    /// write (the disk below its reserve), and each tenant whose last write failed, with why.
    #[must_use]
    pub fn write_problems(&self) -> (Option<String>, BTreeMap<String, String>) {
        let store = self.log.has_space().err().map(|e| e.to_string());
        let tenants = self
            .write_failures
            .lock()
            .map(|failures| failures.clone())
            .unwrap_or_default();
        (store, tenants)
    }

    /// Parked tenants woken by a request since start.
    #[must_use]
    pub fn wakes(&self) -> u64 {
        self.wakes.load(Ordering::Relaxed)
    }

    /// Counters of the log's group commit so far.
    #[must_use]
    pub fn commit_stats(&self) -> CommitStats {
        self.log.commit_stats()
    }

    /// A tenant's durable events from seq `from` on, at most `limit`, as NDJSON envelopes
    /// (the lines an export holds); `None` when the tenant has no log. Only what is durable
    /// (what the tenant's reads see), so nothing a crash could take back. The scan runs on the
    /// blocking pool.
    pub async fn durable_events(
        &self,
        tenant: &TenantId,
        from: u64,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, TenantError> {
        let Some(sent) =
            self.with_handle(tenant, false, |handle| handle.send_read(Read::Summary))?
        else {
            return Ok(None);
        };
        let ReadOutcome::Summary(summary) = settled(sent).await? else {
            return Err(TenantError::Internal(
                "summary answered with another outcome".to_owned(),
            ));
        };
        let log = Arc::clone(&self.log);
        let tenant = tenant.clone();
        let scan = move || -> Result<Vec<u8>, TenantError> {
            let stream = log.open(tenant.as_str())?;
            let mut body = Vec::new();
            let mut count = 0;
            let mut unreadable = None;
            stream.scan(from, &mut |seq, bytes| {
                if seq > summary.applied_seq || count == limit {
                    return Ok(false);
                }
                // Records up to `applied_seq` were all read once by the tenant.
                match to_json(tenant.as_str(), bytes) {
                    Ok(json) => body.extend_from_slice(&json),
                    Err(e) => {
                        unreadable = Some(format!("the record at seq {seq}: {e}"));
                        return Ok(false);
                    }
                }
                body.push(b'\n');
                count += 1;
                Ok(true)
            })?;
            unreadable.map_or(Ok(body), |reason| Err(TenantError::Storage(reason)))
        };
        tokio::task::spawn_blocking(scan)
            .await
            .map_err(|e| TenantError::Internal(e.to_string()))?
            .map(Some)
    }

    /// Every tenant with a log or an actor, sorted: its handle, or where it stood when parked.
    /// `Recovering` until recovery is done: the map is not whole before.
    pub fn overview(&self) -> Result<Vec<(TenantId, TenantView)>, TenantError> {
        if !self.is_ready() {
            return Err(TenantError::Recovering);
        }
        let tenants = self.tenants.read().map_err(|_| poisoned())?;
        let mut views: Vec<(TenantId, TenantView)> = tenants
            .iter()
            .filter_map(|(id, slot)| match slot {
                Slot::Running(handle) => Some((id.clone(), TenantView::Running(handle.clone()))),
                Slot::Parked(summary) => Some((id.clone(), TenantView::Parked(summary.clone()))),
                Slot::Resetting => None,
            })
            .collect();
        views.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(views)
    }

    /// The actor of a tenant, started on its first write (with an empty stream) or woken if
    /// it was parked. A handle held outside the registry does not keep its actor from
    /// parking; requests go through [`Self::execute`] and [`Self::read`].
    pub fn get_or_start(&self, tenant: &TenantId) -> Result<TenantHandle, TenantError> {
        self.with_handle(tenant, true, TenantHandle::clone)?
            .ok_or_else(|| TenantError::Internal("a started tenant has no actor".to_owned()))
    }

    /// Runs a command for a tenant.
    pub async fn execute(
        &self,
        tenant: &TenantId,
        command: Command,
        meta: RequestMeta,
    ) -> Result<WriteOutcome, TenantError> {
        // Only a create starts a tenant: any other command of a tenant with no log is decided
        // against the empty state here, so a refused request leaves no tenant behind.
        let start = matches!(command, Command::Create(_));
        let mut unsent = Some((command, meta));
        let sent = self.with_handle(tenant, start, |handle| {
            unsent
                .take()
                .map(|(command, meta)| handle.send_execute(command, meta))
        })?;
        if let Some(sent) = sent.flatten() {
            return settled(sent).await;
        }
        let (command, _) = unsent.take().ok_or_else(|| {
            TenantError::Internal("a command was neither sent nor kept".to_owned())
        })?;
        match decide(&UserFlows::default(), command) {
            Err(refused) => Err(refused.into()),
            Ok(_) => Err(TenantError::Internal(
                "a command of a tenant with no log was accepted without its actor".to_owned(),
            )),
        }
    }

    /// Writes the events a tenant holds for writes that were to follow them
    /// ([`RequestMeta::hold`]). A tenant that is not running holds none.
    pub fn release(&self, tenant: &TenantId) {
        if let Ok(tenants) = self.tenants.read() {
            if let Some(Slot::Running(handle)) = tenants.get(tenant) {
                handle.addr.do_send(Release);
            }
        }
    }

    /// Answers a read; a tenant with no log has no flows, and gets no actor for asking.
    pub async fn read(&self, tenant: &TenantId, read: Read) -> Result<ReadOutcome, TenantError> {
        match self.with_handle(tenant, false, |handle| handle.send_read(read.clone()))? {
            Some(sent) => settled(sent).await,
            None => Ok(answer(&UserFlows::default(), &read)),
        }
    }

    /// Runs `send` with the tenant's handle under the map's lock (a handle is not cloned per
    /// request, and an actor parks only when no request holds its handle). Wakes a parked
    /// tenant; starts a tenant with no log when `start` is set. `None` when the tenant has no
    /// log and `start` is not set.
    fn with_handle<T>(
        &self,
        tenant: &TenantId,
        start: bool,
        send: impl FnOnce(&TenantHandle) -> T,
    ) -> Result<Option<T>, TenantError> {
        if !self.is_ready() {
            return Err(TenantError::Recovering);
        }
        {
            let tenants = self.tenants.read().map_err(|_| poisoned())?;
            match tenants.get(tenant) {
                Some(Slot::Running(handle)) => return Ok(Some(send(handle))),
                Some(Slot::Resetting) => return Err(resetting(tenant)),
                None if !start => return Ok(None),
                Some(Slot::Parked(_)) | None => {}
            }
        }
        let mut tenants = self.tenants.write().map_err(|_| poisoned())?;
        let wake = match tenants.get(tenant) {
            Some(Slot::Running(handle)) => return Ok(Some(send(handle))),
            Some(Slot::Resetting) => return Err(resetting(tenant)),
            Some(Slot::Parked(_)) => true,
            None if !start => return Ok(None),
            None => false,
        };
        // Opened under the write lock: exactly one actor (one writer) per tenant.
        let stream = self.log.open(tenant.as_str())?;
        let applied = stream.last_seq();
        let handle = self.spawn_actor(
            tenant,
            stream,
            Health::Ready(UserFlows::default()),
            applied,
            wake,
        )?;
        if wake {
            self.wakes.fetch_add(1, Ordering::Relaxed);
        }
        let delivered = send(&handle);
        tenants.insert(tenant.clone(), Slot::Running(handle));
        Ok(Some(delivered))
    }

    /// Deletes a tenant's log, snapshots and state (destructive, for test isolation). Returns
    /// whether the tenant had anything.
    pub async fn reset(&self, tenant: &TenantId) -> Result<bool, TenantError> {
        if !self.is_ready() {
            return Err(TenantError::Recovering);
        }
        let previous = {
            let mut tenants = self.tenants.write().map_err(|_| poisoned())?;
            match tenants.insert(tenant.clone(), Slot::Resetting) {
                Some(Slot::Resetting) => return Err(resetting(tenant)),
                Some(Slot::Running(handle)) => Some(handle),
                Some(Slot::Parked(_)) | None => None,
            }
        };
        if let Some(handle) = &previous {
            // Wait until the actor has stopped: it holds the only writable stream.
            let _ = handle.addr.send(Stop).await;
        }
        let existed = previous.is_some() || self.log.has_tenant(tenant.as_str())?;
        let removed = match self.log.remove_tenant(tenant.as_str()) {
            Ok(()) => self.durable().await,
            Err(e) => Err(e.into()),
        };
        if let Ok(mut tenants) = self.tenants.write() {
            tenants.remove(tenant);
        }
        removed?;
        tracing::info!(%tenant, "tenant reset");
        Ok(existed)
    }

    /// Waits until everything written so far is as durable as the log's mode makes an
    /// acknowledged write: in the default mode, the next group commit's flush.
    async fn durable(&self) -> Result<(), TenantError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.log.when_durable(
            0,
            Box::new(move |result| {
                let _ = sender.send(result);
            }),
        );
        match receiver.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(TenantError::CannotWrite(format!(
                "The reset could not be made durable (a flush failed: {reason}); retry once the \
                 disk is fixed."
            ))),
            Err(_) => Err(TenantError::ShuttingDown),
        }
    }

    /// Stops every actor: joins the registry's own arbiter threads, and waits for the actors
    /// on HTTP workers to go with their workers' threads. Call it once the server has stopped.
    pub fn shutdown(&self) {
        if let Ok(mut tenants) = self.tenants.write() {
            tenants.clear();
        }
        if !self.pool.stop(ACTORS_TIMEOUT) {
            tracing::warn!("some tenant actors are still running; the storage may stay open");
        }
    }
}

pub(super) fn poisoned() -> TenantError {
    TenantError::Internal("the tenant registry lock was poisoned".to_owned())
}

fn resetting(tenant: &TenantId) -> TenantError {
    TenantError::Busy {
        tenant: tenant.clone(),
    }
}
