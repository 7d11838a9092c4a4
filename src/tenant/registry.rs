//! The registry: exactly one actor per tenant (invariant 1), spread over a small pool of
//! arbiters (by default the HTTP workers' own) by a hash of the tenant, each behind a bounded
//! queue. Recovers every tenant in parallel; until that is done it is not ready and tenants
//! answer 503. Resets a tenant.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use tokio::sync::oneshot;

use super::actor::{ActorStart, Execute, Health, Permit, Query, Stop, TenantActor};
use super::pool::{Placement, Pool};
use super::recovery::recover;
use super::{answer, Read, ReadOutcome, RequestMeta, TenantError, TenantId, WriteOutcome};
use crate::codec::to_json;
use crate::domain::{Command, UserFlows};
use crate::store::{CommitStats, EventLog, EventStream, StoreError};

type RecoveredStream = Result<(Box<dyn EventStream>, Health, u64), StoreError>;

/// How long recovery waits for the HTTP workers to join the pool (they start within
/// milliseconds).
const WORKERS_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stopping registry waits for its actors to go (and write what they hold).
const ACTORS_TIMEOUT: Duration = Duration::from_secs(10);

/// Handles a thread keeps at most; past it the thread's copies are dropped and fetched again.
const NEAR_CAPACITY: usize = 256;

/// Gives every registry an id, so a thread's copied handles are never taken for another's.
static REGISTRY_IDS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's copies of the handles it has used, each with the registry it came from and
    /// that registry's generation when copied. A request finds its tenant's actor here without
    /// taking the registry's lock (shared by every worker) and without cloning a handle (an
    /// `Addr` clone allocates twice and touches counters the arbiter also writes).
    static NEAR: RefCell<hashbrown::HashMap<TenantId, NearHandle>> =
        RefCell::new(hashbrown::HashMap::new());
}

/// A handle copied into a thread's [`NEAR`].
struct NearHandle {
    registry: u64,
    generation: u64,
    handle: TenantHandle,
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

/// How the registry is set up.
#[derive(Debug, Clone, Copy)]
pub struct RegistryOptions {
    /// The arbiters the actors are spread over.
    pub placement: Placement,
    /// Requests a tenant may have queued before it answers 503.
    pub queue_limit: usize,
    /// Save a snapshot every this many events (`None`: never).
    pub snapshot_every: Option<u64>,
}

/// The way to one tenant's actor.
#[derive(Clone)]
pub struct TenantHandle {
    tenant: TenantId,
    addr: Addr<TenantActor>,
    /// Commands and reads sent but not yet taken up by the actor.
    queued: Arc<AtomicUsize>,
    queue_limit: usize,
}

impl TenantHandle {
    fn permit(&self) -> Result<Permit, TenantError> {
        let before = self.queued.fetch_add(1, Ordering::AcqRel);
        let permit = Permit(Arc::clone(&self.queued));
        if before >= self.queue_limit {
            return Err(TenantError::Busy {
                tenant: self.tenant.clone(),
            });
        }
        Ok(permit)
    }

    /// Requests waiting to be taken up.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Runs a command; resolves once its event is durable (or it was refused).
    pub async fn execute(
        &self,
        command: Command,
        meta: RequestMeta,
    ) -> Result<WriteOutcome, TenantError> {
        settled(self.send_execute(command, meta)).await
    }

    /// Answers a read from the durable state.
    pub async fn read(&self, read: Read) -> Result<ReadOutcome, TenantError> {
        settled(self.send_read(read)).await
    }

    fn send_execute(&self, command: Command, meta: RequestMeta) -> Sent<WriteOutcome> {
        let permit = self.permit()?;
        let (reply, answer) = oneshot::channel();
        self.addr.do_send(Execute {
            command,
            meta,
            reply,
            permit,
        });
        Ok(answer)
    }

    fn send_read(&self, read: Read) -> Sent<ReadOutcome> {
        let permit = self.permit()?;
        let (reply, answer) = oneshot::channel();
        self.addr.do_send(Query {
            read,
            reply,
            permit,
        });
        Ok(answer)
    }
}

/// A message handed to an actor: the receiver its answer will come on.
type Sent<T> = Result<oneshot::Receiver<Result<T, TenantError>>, TenantError>;

/// The answer to a sent message.
async fn settled<T>(sent: Sent<T>) -> Result<T, TenantError> {
    sent?.await.map_err(|_| TenantError::ShuttingDown)?
}

enum Slot {
    Running(TenantHandle),
    /// Being reset: requests get 503 until the old stream is gone.
    Resetting,
}

/// Every tenant's actor.
pub struct TenantRegistry {
    log: Arc<dyn EventLog>,
    /// Where the actors run. At shutdown it waits until every actor has gone, so every stream
    /// handle (and the storage lock it holds) is released before the process reopens the
    /// directory.
    pool: Pool,
    tenants: RwLock<HashMap<TenantId, Slot>>,
    /// This registry's id in the threads' [`NEAR`] copies.
    id: u64,
    /// Moves on whenever a running actor leaves `tenants`, so every thread's copies from
    /// before are dropped rather than used.
    generation: AtomicU64,
    options: RegistryOptions,
    hasher: std::collections::hash_map::RandomState,
    /// Events appended by all tenants since start, for metrics.
    appended: Arc<AtomicU64>,
    /// Set once every tenant of the log is recovered. Before, no tenant is served: a new actor
    /// on a not yet recovered stream would start from an empty state.
    ready: AtomicBool,
    recovery: Mutex<Option<RecoverySummary>>,
}

impl TenantRegistry {
    /// Starts the arbiters of [`Placement::OwnThreads`]. Must run inside an actix `System`.
    #[must_use]
    pub fn new(log: Arc<dyn EventLog>, options: RegistryOptions) -> Self {
        Self {
            log,
            pool: Pool::new(options.placement),
            tenants: RwLock::new(HashMap::new()),
            id: REGISTRY_IDS.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            options: RegistryOptions {
                queue_limit: options.queue_limit.max(1),
                ..options
            },
            hasher: std::collections::hash_map::RandomState::new(),
            appended: Arc::new(AtomicU64::new(0)),
            ready: AtomicBool::new(false),
            recovery: Mutex::new(None),
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
            let handle = self.spawn_actor(&tenant, stream, health, applied_seq)?;
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
        let stream = match self.log.open(name) {
            Ok(stream) => stream,
            Err(e) => return (Err(e), false),
        };
        let recovery = recover(
            self.log.as_ref(),
            stream.as_ref(),
            name,
            self.options.snapshot_every,
        );
        match recovery {
            Ok(r) if r.recovered.last_seq == stream.last_seq() => {
                let from_snapshot = r.from_snapshot.is_some();
                let seq = r.recovered.last_seq;
                (
                    Ok((stream, Health::Ready(r.recovered.flows), seq)),
                    from_snapshot,
                )
            }
            Ok(r) => {
                let reason = format!(
                    "tenant {name}: replay stopped at seq {} of {}",
                    r.recovered.last_seq,
                    stream.last_seq()
                );
                tracing::error!(tenant = %name, %reason, "tenant log cannot be recovered; it will answer 503");
                (Ok((stream, Health::Broken(reason), 0)), false)
            }
            Err(e) => {
                tracing::error!(tenant = %name, error = %e, "tenant log cannot be recovered; it will answer 503");
                (Ok((stream, Health::Broken(e.to_string()), 0)), false)
            }
        }
    }

    fn spawn_actor(
        &self,
        tenant: &TenantId,
        stream: Box<dyn EventStream>,
        health: Health,
        applied_seq: u64,
    ) -> Result<TenantHandle, TenantError> {
        let (arbiter, alive) = self.pool.pick(self.hasher.hash_one(tenant))?;
        let actor = TenantActor::new(ActorStart {
            tenant: tenant.clone(),
            log: Arc::clone(&self.log),
            stream,
            health,
            applied_seq,
            snapshot_every: self.options.snapshot_every,
            appended: Arc::clone(&self.appended),
            alive,
        });
        Ok(TenantHandle {
            tenant: tenant.clone(),
            addr: TenantActor::start_in_arbiter(&arbiter, move |_| actor),
            queued: Arc::new(AtomicUsize::new(0)),
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
        let Some(handle) = self.get(tenant)? else {
            return Ok(None);
        };
        let ReadOutcome::Summary(summary) = handle.read(Read::Summary).await? else {
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

    /// Every tenant with an actor, sorted, with its handle.
    pub fn handles(&self) -> Result<Vec<(TenantId, TenantHandle)>, TenantError> {
        let tenants = self.tenants.read().map_err(|_| poisoned())?;
        let mut handles: Vec<(TenantId, TenantHandle)> = tenants
            .iter()
            .filter_map(|(id, slot)| match slot {
                Slot::Running(handle) => Some((id.clone(), handle.clone())),
                Slot::Resetting => None,
            })
            .collect();
        handles.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(handles)
    }

    /// The actor of a tenant that has a log, if any.
    pub fn get(&self, tenant: &TenantId) -> Result<Option<TenantHandle>, TenantError> {
        if !self.is_ready() {
            return Err(TenantError::Recovering);
        }
        let tenants = self.tenants.read().map_err(|_| poisoned())?;
        match tenants.get(tenant) {
            Some(Slot::Running(handle)) => Ok(Some(handle.clone())),
            Some(Slot::Resetting) => Err(resetting(tenant)),
            None => Ok(None),
        }
    }

    /// The actor of a tenant, started (with an empty stream) on its first write.
    pub fn get_or_start(&self, tenant: &TenantId) -> Result<TenantHandle, TenantError> {
        if let Some(handle) = self.get(tenant)? {
            return Ok(handle);
        }
        let mut tenants = self.tenants.write().map_err(|_| poisoned())?;
        match tenants.get(tenant) {
            Some(Slot::Running(handle)) => return Ok(handle.clone()),
            Some(Slot::Resetting) => return Err(resetting(tenant)),
            None => {}
        }
        // Opened under the write lock: exactly one actor (one writer) per tenant.
        let stream = self.log.open(tenant.as_str())?;
        let applied = stream.last_seq();
        let handle =
            self.spawn_actor(tenant, stream, Health::Ready(UserFlows::default()), applied)?;
        tenants.insert(tenant.clone(), Slot::Running(handle.clone()));
        Ok(handle)
    }

    /// Runs a command for a tenant.
    pub async fn execute(
        &self,
        tenant: &TenantId,
        command: Command,
        meta: RequestMeta,
    ) -> Result<WriteOutcome, TenantError> {
        let sent = self.near(tenant, true, |handle| handle.send_execute(command, meta))?;
        let sent =
            sent.ok_or_else(|| TenantError::Internal("a started tenant has no actor".to_owned()))?;
        settled(sent).await
    }

    /// Answers a read; a tenant with no log has no flows, and gets no actor for asking.
    pub async fn read(&self, tenant: &TenantId, read: Read) -> Result<ReadOutcome, TenantError> {
        match self.near(tenant, false, |handle| handle.send_read(read.clone()))? {
            Some(sent) => settled(sent).await,
            None => Ok(answer(&UserFlows::default(), &read)),
        }
    }

    /// Runs `send` with the tenant's handle from this thread's copies, copying it there first
    /// when they have none (or one from before the last change of `tenants`). `None` when the
    /// tenant has no actor and `start` is false.
    fn near<T>(
        &self,
        tenant: &TenantId,
        start: bool,
        send: impl FnOnce(&TenantHandle) -> T,
    ) -> Result<Option<T>, TenantError> {
        // Read before the handle is looked up: a handle replaced after this read is copied
        // with the old generation, so it is never used again.
        let generation = self.generation.load(Ordering::Acquire);
        NEAR.with(|near| {
            let Ok(mut near) = near.try_borrow_mut() else {
                return self.lookup(tenant, start).map(|h| h.map(|h| send(&h)));
            };
            if let Some(copy) = near.get(tenant) {
                if copy.registry == self.id && copy.generation == generation {
                    return Ok(Some(send(&copy.handle)));
                }
            }
            let Some(handle) = self.lookup(tenant, start)? else {
                return Ok(None);
            };
            let answer = send(&handle);
            if near.len() >= NEAR_CAPACITY {
                near.clear();
            }
            let copy = NearHandle {
                registry: self.id,
                generation,
                handle,
            };
            near.insert(tenant.clone(), copy);
            Ok(Some(answer))
        })
    }

    fn lookup(&self, tenant: &TenantId, start: bool) -> Result<Option<TenantHandle>, TenantError> {
        if start {
            self.get_or_start(tenant).map(Some)
        } else {
            self.get(tenant)
        }
    }

    /// Deletes a tenant's log, snapshots and state (destructive, for test isolation). Returns
    /// whether the tenant had anything.
    pub async fn reset(&self, tenant: &TenantId) -> Result<bool, TenantError> {
        if !self.is_ready() {
            return Err(TenantError::Recovering);
        }
        let previous = {
            let mut tenants = self.tenants.write().map_err(|_| poisoned())?;
            self.generation.fetch_add(1, Ordering::AcqRel);
            match tenants.insert(tenant.clone(), Slot::Resetting) {
                Some(Slot::Resetting) => return Err(resetting(tenant)),
                Some(Slot::Running(handle)) => Some(handle),
                None => None,
            }
        };
        if let Some(handle) = &previous {
            // Wait until the actor has stopped: it holds the only writable stream.
            let _ = handle.addr.send(Stop).await;
        }
        let existed = previous.is_some() || self.log.has_tenant(tenant.as_str())?;
        let removed = self.log.remove_tenant(tenant.as_str());
        if let Ok(mut tenants) = self.tenants.write() {
            tenants.remove(tenant);
        }
        removed?;
        tracing::info!(%tenant, "tenant reset");
        Ok(existed)
    }

    /// Stops every actor: joins the registry's own arbiter threads, and waits for the actors
    /// on HTTP workers to go with their workers' threads. Call it once the server has stopped.
    pub fn shutdown(&self) {
        if let Ok(mut tenants) = self.tenants.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            tenants.clear();
        }
        if !self.pool.stop(ACTORS_TIMEOUT) {
            tracing::warn!("some tenant actors are still running; the storage may stay open");
        }
    }
}

fn poisoned() -> TenantError {
    TenantError::Internal("the tenant registry lock was poisoned".to_owned())
}

fn resetting(tenant: &TenantId) -> TenantError {
    TenantError::Busy {
        tenant: tenant.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CreateUserFlow, UserFlow};
    use crate::store::{Commit, CommitStats, DurableCallback, MemoryEventLog, RecordBatch, Visit};
    use crate::tenant::actor::{MAX_BATCH, WRITE_BEHIND_DELAY};

    /// A log in memory that records the size of every write. `held`: by group commit, its
    /// flushes complete only when the test says so; `on_append`: it stores on append, like
    /// relaxed sled, so the actor writes behind.
    struct TestLog {
        inner: MemoryEventLog,
        commit: Commit,
        held: Mutex<Vec<DurableCallback>>,
        /// The number of events of each append, in order.
        writes: Arc<Mutex<Vec<u64>>>,
    }

    /// A stream of a [`TestLog`].
    struct CountedStream {
        inner: Box<dyn EventStream>,
        writes: Arc<Mutex<Vec<u64>>>,
    }

    impl EventStream for CountedStream {
        fn last_seq(&self) -> u64 {
            self.inner.last_seq()
        }
        fn append(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
            self.inner.append(batch)?;
            self.writes.lock().unwrap().push(batch.len());
            Ok(())
        }
        fn scan(&self, from: u64, visit: &mut Visit<'_>) -> Result<(), StoreError> {
            self.inner.scan(from, visit)
        }
        fn scan_back(&self, through: u64, visit: &mut Visit<'_>) -> Result<(), StoreError> {
            self.inner.scan_back(through, visit)
        }
    }

    impl TestLog {
        fn new(commit: Commit) -> Self {
            Self {
                inner: MemoryEventLog::new(),
                commit,
                held: Mutex::default(),
                writes: Arc::default(),
            }
        }

        fn writes(&self) -> Vec<u64> {
            self.writes.lock().unwrap().clone()
        }

        fn complete_flush(&self) {
            let held = std::mem::take(&mut *self.held.lock().unwrap());
            for done in held {
                done(Ok(()));
            }
        }
    }

    impl EventLog for TestLog {
        fn tenants(&self) -> Result<Vec<String>, StoreError> {
            self.inner.tenants()
        }
        fn open(&self, tenant: &str) -> Result<Box<dyn EventStream>, StoreError> {
            Ok(Box::new(CountedStream {
                inner: self.inner.open(tenant)?,
                writes: Arc::clone(&self.writes),
            }))
        }
        fn commit(&self) -> Commit {
            self.commit
        }
        fn when_durable(&self, events: u64, done: DurableCallback) {
            match self.commit {
                Commit::GroupCommit => self.held.lock().unwrap().push(done),
                Commit::OnAppend => self.inner.when_durable(events, done),
            }
        }
        fn flush(&self) -> Result<(), StoreError> {
            Ok(())
        }
        fn commit_stats(&self) -> CommitStats {
            CommitStats::default()
        }
        fn has_tenant(&self, tenant: &str) -> Result<bool, StoreError> {
            self.inner.has_tenant(tenant)
        }
        fn remove_tenant(&self, tenant: &str) -> Result<(), StoreError> {
            self.inner.remove_tenant(tenant)
        }
        fn save_snapshot(&self, tenant: &str, seq: u64, bytes: &[u8]) -> Result<(), StoreError> {
            self.inner.save_snapshot(tenant, seq, bytes)
        }
        fn latest_snapshot(&self, tenant: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
            self.inner.latest_snapshot(tenant)
        }
    }

    fn create(id: &str) -> Command {
        Command::Create(CreateUserFlow {
            flow: UserFlow::sample(id),
        })
    }

    fn options(queue_limit: usize) -> RegistryOptions {
        RegistryOptions {
            placement: Placement::OwnThreads(1),
            queue_limit,
            snapshot_every: None,
        }
    }

    fn meta() -> RequestMeta {
        RequestMeta {
            request_id: uuid::Uuid::nil(),
            client_request_id: Some("c".into()),
        }
    }

    /// Holds the only arbiter thread until the returned sender sends, so that messages wait in
    /// the actor's mailbox.
    fn hold_the_arbiter(registry: &TenantRegistry) -> std::sync::mpsc::Sender<()> {
        let (started, running) = std::sync::mpsc::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        registry.pool.arbiters()[0].spawn(async move {
            let _ = started.send(());
            let _ = held.recv();
        });
        running.recv().unwrap();
        release
    }

    /// A registry over a held [`TestLog`] and the handle of its tenant `t`.
    fn held_tenant() -> (Arc<TestLog>, TenantRegistry, TenantHandle) {
        tenant_over(Commit::GroupCommit)
    }

    /// A registry over a [`TestLog`] committing by `commit` and the handle of its tenant `t`.
    fn tenant_over(commit: Commit) -> (Arc<TestLog>, TenantRegistry, TenantHandle) {
        let log = Arc::new(TestLog::new(commit));
        let registry = TenantRegistry::new(Arc::clone(&log) as Arc<dyn EventLog>, options(256));
        registry.recover_all().unwrap();
        let handle = registry
            .get_or_start(&TenantId::parse("t").unwrap())
            .unwrap();
        (log, registry, handle)
    }

    /// Sends a create of each id in order and waits until each is queued (the actor's arbiter
    /// held), so they are handled in this order.
    async fn queue_creates(
        handle: &TenantHandle,
        ids: &[&str],
    ) -> Vec<actix_web::rt::task::JoinHandle<Result<WriteOutcome, TenantError>>> {
        let mut creates = Vec::new();
        for (queued, &id) in (1..).zip(ids) {
            let h = handle.clone();
            let command = create(id);
            creates.push(actix_web::rt::spawn(async move {
                h.execute(command, meta()).await
            }));
            while handle.queued.load(Ordering::Acquire) < queued {
                actix_web::rt::task::yield_now().await;
            }
        }
        creates
    }

    async fn settle() {
        for _ in 0..50 {
            actix_web::rt::task::yield_now().await;
        }
    }

    #[actix_web::test]
    async fn nothing_decided_against_a_pending_write_is_seen_before_its_flush() {
        let (log, registry, handle) = held_tenant();
        let (h1, h2, h3) = (handle.clone(), handle.clone(), handle.clone());
        let first = actix_web::rt::spawn(async move { h1.execute(create("a"), meta()).await });
        while log.held.lock().unwrap().is_empty() {
            actix_web::rt::task::yield_now().await;
        }
        let duplicate = actix_web::rt::spawn(async move { h2.execute(create("A"), meta()).await });
        let read = actix_web::rt::spawn(async move { h3.read(Read::Count).await });
        // The read answers from the durable state; the refusal waits for the flush.
        assert!(matches!(read.await.unwrap(), Ok(ReadOutcome::Count(0))));
        settle().await;
        assert!(!first.is_finished() && !duplicate.is_finished());
        log.complete_flush();
        assert!(matches!(first.await.unwrap(), Ok(WriteOutcome::Created(_))));
        assert!(matches!(
            duplicate.await.unwrap(),
            Err(TenantError::Domain(
                crate::domain::DomainError::AlreadyExists { .. }
            ))
        ));
        assert!(matches!(
            handle.read(Read::Count).await,
            Ok(ReadOutcome::Count(1))
        ));
        registry.shutdown();
    }

    #[actix_web::test]
    async fn the_creates_queued_in_one_pass_are_one_write_and_answered_after_its_flush() {
        let (log, registry, handle) = held_tenant();
        let release = hold_the_arbiter(&registry);
        let creates = queue_creates(&handle, &["a", "b", "A", "c"]).await;
        release.send(()).unwrap();
        while log.held.lock().unwrap().is_empty() {
            actix_web::rt::task::yield_now().await;
        }
        settle().await;
        assert_eq!(log.held.lock().unwrap().len(), 1, "one write, one flush");
        assert_eq!(log.inner.open("t").unwrap().last_seq(), 3);
        assert!(creates.iter().all(|c| !c.is_finished()));
        log.complete_flush();
        let mut statuses = Vec::new();
        for c in creates {
            statuses.push(match c.await.unwrap() {
                Ok(WriteOutcome::Created(flow)) => flow.id.as_str().to_owned(),
                Err(TenantError::Domain(_)) => "refused".to_owned(),
                other => panic!("{other:?}"),
            });
        }
        assert_eq!(statuses, ["B2C_1_a", "B2C_1_b", "refused", "B2C_1_c"]);
        assert!(matches!(
            handle.read(Read::Count).await,
            Ok(ReadOutcome::Count(3))
        ));
        registry.shutdown();
    }

    fn a_second_writer_takes_seq_1(log: &TestLog) {
        log.inner
            .open("t")
            .unwrap()
            .append(&RecordBatch::single(1, b"x"))
            .unwrap();
    }

    /// Every later write and read of the tenant gets 503.
    async fn assert_unavailable(handle: &TenantHandle) {
        assert!(matches!(
            handle.execute(create("c"), meta()).await,
            Err(TenantError::Unavailable { .. })
        ));
        assert!(matches!(
            handle.read(Read::Count).await,
            Err(TenantError::Unavailable { .. })
        ));
    }

    #[actix_web::test]
    async fn a_failed_append_answers_its_batch_and_every_later_request_with_unavailable() {
        let (log, registry, handle) = held_tenant();
        let release = hold_the_arbiter(&registry);
        let creates = queue_creates(&handle, &["a", "b"]).await;
        // A second writer takes seq 1 first: the actor's write of seqs 1..=2 is refused.
        a_second_writer_takes_seq_1(&log);
        release.send(()).unwrap();
        for c in creates {
            let answer = c.await.unwrap();
            assert!(
                matches!(&answer, Err(TenantError::Storage(m)) if m.contains("append failed")),
                "{answer:?}"
            );
        }
        assert_unavailable(&handle).await;
        assert!(
            log.held.lock().unwrap().is_empty(),
            "nothing waits for a flush"
        );
        assert_eq!(log.inner.open("t").unwrap().last_seq(), 1);
        registry.shutdown();
    }

    /// The last seq stored in tenant `t`'s log.
    fn stored(log: &TestLog) -> u64 {
        log.inner.open("t").unwrap().last_seq()
    }

    #[actix_web::test]
    async fn written_behind_events_are_answered_and_read_at_once_then_written_within_the_delay() {
        let (log, registry, handle) = tenant_over(Commit::OnAppend);
        assert!(matches!(
            handle.execute(create("a"), meta()).await,
            Ok(WriteOutcome::Created(_))
        ));
        assert!(matches!(
            handle.read(Read::Count).await,
            Ok(ReadOutcome::Count(1))
        ));
        let started = std::time::Instant::now();
        while stored(&log) < 1 {
            assert!(
                started.elapsed() < WRITE_BEHIND_DELAY * 200,
                "the answered event was never written"
            );
            actix_web::rt::time::sleep(WRITE_BEHIND_DELAY / 5).await;
        }
        assert_eq!(log.writes(), [1]);
        registry.shutdown();
    }

    #[actix_web::test]
    async fn written_behind_a_full_batch_is_one_write_and_the_rest_follows_on_the_timer() {
        let (log, registry, handle) = tenant_over(Commit::OnAppend);
        let release = hold_the_arbiter(&registry);
        let ids: Vec<String> = (0..=MAX_BATCH).map(|i| format!("f{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let creates = queue_creates(&handle, &ids).await;
        release.send(()).unwrap();
        for c in creates {
            assert!(matches!(c.await.unwrap(), Ok(WriteOutcome::Created(_))));
        }
        let started = std::time::Instant::now();
        while stored(&log) < MAX_BATCH + 1 {
            assert!(
                started.elapsed() < WRITE_BEHIND_DELAY * 200,
                "{:?}",
                log.writes()
            );
            actix_web::rt::time::sleep(WRITE_BEHIND_DELAY / 5).await;
        }
        assert_eq!(log.writes(), [MAX_BATCH, 1]);
        registry.shutdown();
    }

    #[actix_web::test]
    async fn written_behind_a_summary_read_writes_every_answered_event_first() {
        let (log, registry, handle) = tenant_over(Commit::OnAppend);
        let release = hold_the_arbiter(&registry);
        let creates = queue_creates(&handle, &["a", "b", "A"]).await;
        let h = handle.clone();
        let summary = actix_web::rt::spawn(async move { h.read(Read::Summary).await });
        while handle.queued.load(Ordering::Acquire) < 4 {
            actix_web::rt::task::yield_now().await;
        }
        release.send(()).unwrap();
        let Ok(ReadOutcome::Summary(summary)) = summary.await.unwrap() else {
            panic!("no summary");
        };
        // Handled in the same pass as the creates, long before the timer.
        assert_eq!(log.writes(), [2]);
        assert_eq!((summary.applied_seq, stored(&log)), (2, 2));
        let mut answers = Vec::new();
        for c in creates {
            answers.push(matches!(c.await.unwrap(), Ok(WriteOutcome::Created(_))));
        }
        assert_eq!(answers, [true, true, false], "the duplicate is refused");
        registry.shutdown();
    }

    #[actix_web::test]
    async fn written_behind_a_stopping_server_writes_what_it_answered() {
        let (log, registry, handle) = tenant_over(Commit::OnAppend);
        let release = hold_the_arbiter(&registry);
        let creates = queue_creates(&handle, &["a", "b"]).await;
        release.send(()).unwrap();
        for c in creates {
            assert!(matches!(c.await.unwrap(), Ok(WriteOutcome::Created(_))));
        }
        registry.shutdown();
        assert_eq!(stored(&log), 2);
    }

    #[actix_web::test]
    async fn a_stopping_server_makes_the_writes_waiting_for_a_flush_durable_and_answers_them() {
        let (log, registry, handle) = held_tenant();
        let release = hold_the_arbiter(&registry);
        let creates = queue_creates(&handle, &["a", "b"]).await;
        release.send(()).unwrap();
        while log.held.lock().unwrap().is_empty() {
            actix_web::rt::task::yield_now().await;
        }
        // The group commit never completes: the actor flushes as it goes.
        registry.shutdown();
        for c in creates {
            assert!(matches!(c.await.unwrap(), Ok(WriteOutcome::Created(_))));
        }
        assert_eq!(stored(&log), 2);
    }

    #[actix_web::test]
    async fn written_behind_a_failed_write_makes_the_tenant_unavailable() {
        let (log, registry, handle) = tenant_over(Commit::OnAppend);
        let release = hold_the_arbiter(&registry);
        let creates = queue_creates(&handle, &["a", "b"]).await;
        // A second writer takes seq 1 first: the actor's write of seqs 1..=2 is refused.
        a_second_writer_takes_seq_1(&log);
        let h = handle.clone();
        let summary = actix_web::rt::spawn(async move { h.read(Read::Summary).await });
        while handle.queued.load(Ordering::Acquire) < 3 {
            actix_web::rt::task::yield_now().await;
        }
        release.send(()).unwrap();
        for c in creates {
            assert!(matches!(c.await.unwrap(), Ok(WriteOutcome::Created(_))));
        }
        let Ok(ReadOutcome::Summary(summary)) = summary.await.unwrap() else {
            panic!("no summary");
        };
        assert!(
            summary
                .broken
                .is_some_and(|reason| reason.contains("append failed")),
            "the write failed"
        );
        assert_unavailable(&handle).await;
        assert!(log.writes().is_empty());
        assert_eq!(stored(&log), 1);
        registry.shutdown();
    }

    #[actix_web::test]
    async fn a_full_queue_answers_busy_at_once_and_serves_again_when_drained() {
        let registry = TenantRegistry::new(Arc::new(MemoryEventLog::new()), options(2));
        registry.recover_all().unwrap();
        let tenant = TenantId::parse("t").unwrap();
        let handle = registry.get_or_start(&tenant).unwrap();
        let release = hold_the_arbiter(&registry);
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let h = handle.clone();
                actix_web::rt::spawn(async move { h.read(Read::Count).await })
            })
            .collect();
        while handle.queued.load(Ordering::Acquire) < 2 {
            actix_web::rt::task::yield_now().await;
        }
        assert!(matches!(
            handle.read(Read::Count).await,
            Err(TenantError::Busy { .. })
        ));
        release.send(()).unwrap();
        for w in waiting {
            assert!(matches!(w.await.unwrap(), Ok(ReadOutcome::Count(0))));
        }
        assert!(matches!(
            handle.read(Read::Count).await,
            Ok(ReadOutcome::Count(0))
        ));
        assert_eq!(handle.queued.load(Ordering::Acquire), 0);
        registry.shutdown();
    }

    async fn count(registry: &TenantRegistry, tenant: &TenantId) -> usize {
        match registry.read(tenant, Read::Count).await {
            Ok(ReadOutcome::Count(n)) => n,
            other => panic!("count answered {other:?}"),
        }
    }

    #[actix_web::test]
    async fn a_threads_copied_handle_is_not_used_after_a_reset_nor_by_another_registry() {
        let tenant = TenantId::parse("t").unwrap();
        let first = TenantRegistry::new(Arc::new(MemoryEventLog::new()), options(16));
        let second = TenantRegistry::new(Arc::new(MemoryEventLog::new()), options(16));
        first.recover_all().unwrap();
        second.recover_all().unwrap();
        first.execute(&tenant, create("a"), meta()).await.unwrap();
        assert_eq!(count(&first, &tenant).await, 1);

        // Another registry's tenant of the same name is another actor.
        assert_eq!(count(&second, &tenant).await, 0);
        second.execute(&tenant, create("b"), meta()).await.unwrap();
        second.execute(&tenant, create("c"), meta()).await.unwrap();
        assert_eq!(count(&second, &tenant).await, 2);
        assert_eq!(count(&first, &tenant).await, 1);

        // The reset stops the actor this thread copied; the next write must reach a new one.
        assert!(first.reset(&tenant).await.unwrap());
        assert_eq!(count(&first, &tenant).await, 0);
        first.execute(&tenant, create("d"), meta()).await.unwrap();
        assert_eq!(count(&first, &tenant).await, 1);
        first.shutdown();
        second.shutdown();
    }
}
