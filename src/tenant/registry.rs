//! The registry: exactly one actor per tenant (invariant 1), spread over a small pool of
//! arbiters by a hash of the tenant, each behind a bounded queue. Recovers every tenant in
//! parallel at start.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix::dev::ArbiterHandle;
use actix::{Actor, Addr, Arbiter};
use tokio::sync::oneshot;

use super::actor::{Execute, Health, Permit, Query, TenantActor};
use super::recovery::replay;
use super::{answer, Read, ReadOutcome, RequestMeta, TenantError, TenantId, WriteOutcome};
use crate::domain::{Command, UserFlows};
use crate::store::{EventLog, EventStream, StoreError};

type RecoveredStream = Result<(Box<dyn EventStream>, Health), StoreError>;

/// What start-up recovery found.
#[derive(Debug, Clone, Default)]
pub struct RecoverySummary {
    pub tenants: usize,
    pub events: u64,
    pub flows: usize,
    /// Tenants whose log could not be recovered (they answer 503).
    pub broken: Vec<String>,
    pub elapsed: Duration,
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

    /// Runs a command; resolves once its event is durable (or it was refused).
    pub async fn execute(
        &self,
        command: Command,
        meta: RequestMeta,
    ) -> Result<WriteOutcome, TenantError> {
        let permit = self.permit()?;
        let (reply, answer) = oneshot::channel();
        self.addr.do_send(Execute {
            command,
            meta,
            reply,
            permit,
        });
        answer.await.map_err(|_| TenantError::ShuttingDown)?
    }

    /// Answers a read from the durable state.
    pub async fn read(&self, read: Read) -> Result<ReadOutcome, TenantError> {
        let permit = self.permit()?;
        let (reply, answer) = oneshot::channel();
        self.addr.do_send(Query {
            read,
            reply,
            permit,
        });
        answer.await.map_err(|_| TenantError::ShuttingDown)?
    }
}

/// Every tenant's actor.
pub struct TenantRegistry {
    log: Arc<dyn EventLog>,
    arbiters: Vec<ArbiterHandle>,
    /// Kept to stop and join the arbiter threads at shutdown, so every stream handle (and the
    /// storage lock it holds) is released before the process reopens the directory.
    owned_arbiters: Mutex<Vec<Arbiter>>,
    tenants: RwLock<HashMap<TenantId, TenantHandle>>,
    queue_limit: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl TenantRegistry {
    /// Starts `arbiter_count` arbiters. Must run inside an actix `System`.
    #[must_use]
    pub fn new(log: Arc<dyn EventLog>, arbiter_count: usize, queue_limit: usize) -> Self {
        let owned: Vec<Arbiter> = (0..arbiter_count.max(1)).map(|_| Arbiter::new()).collect();
        let arbiters = owned.iter().map(Arbiter::handle).collect();
        Self {
            log,
            arbiters,
            owned_arbiters: Mutex::new(owned),
            tenants: RwLock::new(HashMap::new()),
            queue_limit: queue_limit.max(1),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Rebuilds every tenant of the log, in parallel, before any request is answered.
    pub fn recover_all(&self) -> Result<RecoverySummary, StoreError> {
        let started = Instant::now();
        let mut names = self.log.tenants()?;
        names.sort();
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(String, RecoveredStream)>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..workers.min(names.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(name) = names.get(i) else { break };
                    let result = self.recover_one(name);
                    if let Ok(mut results) = results.lock() {
                        results.push((name.clone(), result));
                    }
                });
            }
        });
        let results = results.into_inner().map_err(|_| StoreError::Poisoned)?;
        let mut summary = RecoverySummary::default();
        for (name, result) in results {
            let (stream, health) = result?;
            let Some(tenant) = TenantId::parse(&name) else {
                tracing::warn!(tenant = %name, "skipping a stream whose name is not a tenant id");
                continue;
            };
            summary.tenants += 1;
            match &health {
                Health::Ready(flows) => {
                    summary.events += stream.last_seq();
                    summary.flows += flows.len();
                }
                Health::Broken(_) => summary.broken.push(name.clone()),
            }
            let handle = self.spawn_actor(&tenant, stream, health);
            self.tenants
                .write()
                .map_err(|_| StoreError::Poisoned)?
                .insert(tenant, handle);
        }
        summary.broken.sort();
        summary.elapsed = started.elapsed();
        Ok(summary)
    }

    fn recover_one(&self, name: &str) -> RecoveredStream {
        let stream = self.log.open(name)?;
        let health = match replay(stream.as_ref(), name, None, |_| {}) {
            Ok(recovered) if recovered.last_seq == stream.last_seq() => {
                Health::Ready(recovered.flows)
            }
            Ok(recovered) => Health::Broken(format!(
                "replay stopped at seq {} of {}",
                recovered.last_seq,
                stream.last_seq()
            )),
            Err(e) => {
                tracing::error!(tenant = %name, error = %e, "tenant log cannot be recovered; it will answer 503");
                Health::Broken(e.to_string())
            }
        };
        Ok((stream, health))
    }

    fn spawn_actor(
        &self,
        tenant: &TenantId,
        stream: Box<dyn EventStream>,
        health: Health,
    ) -> TenantHandle {
        let slot = self.hasher.hash_one(tenant) % self.arbiters.len() as u64;
        let arbiter = &self.arbiters[slot as usize];
        let actor = TenantActor::new(tenant.clone(), Arc::clone(&self.log), stream, health);
        TenantHandle {
            tenant: tenant.clone(),
            addr: TenantActor::start_in_arbiter(arbiter, move |_| actor),
            queued: Arc::new(AtomicUsize::new(0)),
            queue_limit: self.queue_limit,
        }
    }

    /// The actor of a tenant that has a log, if any.
    pub fn get(&self, tenant: &TenantId) -> Result<Option<TenantHandle>, TenantError> {
        let tenants = self.tenants.read().map_err(|_| poisoned())?;
        Ok(tenants.get(tenant).cloned())
    }

    /// The actor of a tenant, started (with an empty stream) on its first write.
    pub fn get_or_start(&self, tenant: &TenantId) -> Result<TenantHandle, TenantError> {
        if let Some(handle) = self.get(tenant)? {
            return Ok(handle);
        }
        let mut tenants = self.tenants.write().map_err(|_| poisoned())?;
        if let Some(handle) = tenants.get(tenant) {
            return Ok(handle.clone());
        }
        // Opened under the write lock: exactly one actor (one writer) per tenant.
        let stream = self
            .log
            .open(tenant.as_str())
            .map_err(|e| TenantError::Storage(e.to_string()))?;
        let handle = self.spawn_actor(tenant, stream, Health::Ready(UserFlows::default()));
        tenants.insert(tenant.clone(), handle.clone());
        Ok(handle)
    }

    /// Runs a command for a tenant.
    pub async fn execute(
        &self,
        tenant: &TenantId,
        command: Command,
        meta: RequestMeta,
    ) -> Result<WriteOutcome, TenantError> {
        self.get_or_start(tenant)?.execute(command, meta).await
    }

    /// Answers a read; a tenant with no log has no flows, and gets no actor for asking.
    pub async fn read(&self, tenant: &TenantId, read: Read) -> Result<ReadOutcome, TenantError> {
        match self.get(tenant)? {
            Some(handle) => handle.read(read).await,
            None => Ok(answer(&UserFlows::default(), &read)),
        }
    }

    /// Stops every actor and joins the arbiter threads.
    pub fn shutdown(&self) {
        if let Ok(mut tenants) = self.tenants.write() {
            tenants.clear();
        }
        let arbiters = match self.owned_arbiters.lock() {
            Ok(mut owned) => std::mem::take(&mut *owned),
            Err(_) => return,
        };
        for arbiter in arbiters {
            arbiter.stop();
            if arbiter.join().is_err() {
                tracing::error!("a tenant arbiter thread panicked");
            }
        }
    }
}

fn poisoned() -> TenantError {
    TenantError::Internal("the tenant registry lock was poisoned".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CreateUserFlow, UserFlow, UserFlowId, UserFlowType, UserFlowTypeVersion};
    use crate::store::{Commit, CommitStats, DurableCallback, MemoryEventLog};

    /// A log whose flushes complete only when the test says so.
    #[derive(Default)]
    struct HeldLog {
        inner: MemoryEventLog,
        held: Mutex<Vec<DurableCallback>>,
    }

    impl HeldLog {
        fn complete_flush(&self) {
            let held = std::mem::take(&mut *self.held.lock().unwrap());
            for done in held {
                done(Ok(()));
            }
        }
    }

    impl EventLog for HeldLog {
        fn tenants(&self) -> Result<Vec<String>, StoreError> {
            self.inner.tenants()
        }
        fn open(&self, tenant: &str) -> Result<Box<dyn EventStream>, StoreError> {
            self.inner.open(tenant)
        }
        fn commit(&self) -> Commit {
            Commit::GroupCommit
        }
        fn when_durable(&self, done: DurableCallback) {
            self.held.lock().unwrap().push(done);
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
            flow: UserFlow {
                id: UserFlowId::parse(id).unwrap(),
                user_flow_type: UserFlowType::SignIn,
                user_flow_type_version: UserFlowTypeVersion::parse(1.0).unwrap(),
            },
        })
    }

    fn meta() -> RequestMeta {
        RequestMeta {
            request_id: "r".into(),
            client_request_id: "c".into(),
        }
    }

    async fn settle() {
        for _ in 0..50 {
            actix_web::rt::task::yield_now().await;
        }
    }

    #[actix_web::test]
    async fn nothing_decided_against_a_pending_write_is_seen_before_its_flush() {
        let log = Arc::new(HeldLog::default());
        let registry = TenantRegistry::new(Arc::clone(&log) as Arc<dyn EventLog>, 1, 16);
        let handle = registry
            .get_or_start(&TenantId::parse("t").unwrap())
            .unwrap();
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
    async fn a_full_queue_answers_busy_at_once_and_serves_again_when_drained() {
        let registry = TenantRegistry::new(Arc::new(MemoryEventLog::new()), 1, 2);
        let tenant = TenantId::parse("t").unwrap();
        let handle = registry.get_or_start(&tenant).unwrap();
        // Hold the only arbiter thread so that messages wait in the queue.
        let (started, running) = std::sync::mpsc::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        registry.arbiters[0].spawn(async move {
            let _ = started.send(());
            let _ = held.recv();
        });
        running.recv().unwrap();
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
}
