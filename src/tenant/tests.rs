//! Behaviour of the tenant layer through its handles and registry, over test logs whose
//! flushes and failures the tests control: what a pending write hides, how a pass over the
//! mailbox becomes one write, writing behind, failures, back-pressure and resets; and which
//! strings are tenant ids.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::actor::{MAX_BATCH, WRITE_BEHIND_DELAY};
use super::*;
use crate::domain::{Command, CreateUserFlow, UserFlow};
use crate::store::{
    Commit, CommitStats, DurableCallback, EventLog, EventStream, MemoryEventLog, RecordBatch,
    StoreError, Visit,
};

/// A log in memory that records the size of every write. `held`: by group commit, its
/// flushes complete only when the test says so; `on_append`: it stores on append, like
/// relaxed sled, so the actor writes behind.
struct TestLog {
    inner: MemoryEventLog,
    commit: Commit,
    held: Mutex<Vec<DurableCallback>>,
    /// The number of events of each append, in order.
    writes: Arc<Mutex<Vec<u64>>>,
    /// The disk is below its reserve: `has_space` and every append refuse.
    full: Arc<AtomicBool>,
    /// Appends refuse (as the store does when the disk fills between the guard's readings).
    refuse_appends: Arc<AtomicBool>,
}

/// A stream of a [`TestLog`].
struct CountedStream {
    inner: Box<dyn EventStream>,
    writes: Arc<Mutex<Vec<u64>>>,
    full: Arc<AtomicBool>,
    refuse_appends: Arc<AtomicBool>,
}

fn storage_full() -> StoreError {
    StoreError::StorageFull {
        free: 1,
        reserve: 2,
    }
}

impl EventStream for CountedStream {
    fn last_seq(&self) -> u64 {
        self.inner.last_seq()
    }
    fn append(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        if self.full.load(Ordering::Acquire) || self.refuse_appends.load(Ordering::Acquire) {
            return Err(storage_full());
        }
        self.inner.append(batch)?;
        self.writes.lock().unwrap().push(batch.len());
        Ok(())
    }
    fn truncate_after(&mut self, seq: u64) -> Result<(), StoreError> {
        self.inner.truncate_after(seq)
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
            full: Arc::default(),
            refuse_appends: Arc::default(),
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

    /// Ends the oldest held flush with `result`.
    fn finish_oldest(&self, result: Result<(), String>) {
        let done = self.held.lock().unwrap().remove(0);
        done(result);
    }

    async fn wait_for_flushes(&self, n: usize) {
        while self.held.lock().unwrap().len() < n {
            actix_web::rt::task::yield_now().await;
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
            full: Arc::clone(&self.full),
            refuse_appends: Arc::clone(&self.refuse_appends),
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
    fn has_space(&self) -> Result<(), StoreError> {
        if self.full.load(Ordering::Acquire) {
            return Err(storage_full());
        }
        Ok(())
    }
    fn has_tenant(&self, tenant: &str) -> Result<bool, StoreError> {
        self.inner.has_tenant(tenant)
    }
    fn remove_tenant(&self, tenant: &str) -> Result<(), StoreError> {
        self.inner.remove_tenant(tenant)
    }
    fn rename_tenant(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.inner.rename_tenant(from, to)
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
        idle_after: None,
    }
}

fn meta() -> RequestMeta {
    RequestMeta {
        request_id: uuid::Uuid::nil(),
        client_request_id: Some("c".into()),
        hold: false,
    }
}

/// Request metadata of a write that more writes follow.
fn held_meta() -> RequestMeta {
    RequestMeta {
        hold: true,
        ..meta()
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

type Running = actix_web::rt::task::JoinHandle<Result<WriteOutcome, TenantError>>;

/// Sends a create of each id in order and waits until each is queued (the actor's arbiter
/// held), so they are handled in this order.
async fn queue_creates(handle: &TenantHandle, ids: &[&str]) -> Vec<Running> {
    queue_writes(handle, ids, meta).await
}

/// [`queue_creates`], each create sent with `meta()`.
async fn queue_writes(
    handle: &TenantHandle,
    ids: &[&str],
    meta: fn() -> RequestMeta,
) -> Vec<Running> {
    let mut creates = Vec::new();
    let before = handle.queued.load(Ordering::Acquire);
    for (queued, &id) in (before + 1..).zip(ids) {
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
    let read = actix_web::rt::spawn(async move { h3.read(Read::Count(None)).await });
    // The read answers from the durable state; the refusal waits for the flush.
    assert!(matches!(read.await.unwrap(), Ok(ReadOutcome::Count(0))));
    settle().await;
    assert!(!first.is_finished() && !duplicate.is_finished());
    log.complete_flush();
    assert!(matches!(
        first.await.unwrap(),
        Ok(WriteOutcome::Created(..))
    ));
    assert!(matches!(
        duplicate.await.unwrap(),
        Err(TenantError::Domain(
            crate::domain::DomainError::AlreadyExists { .. }
        ))
    ));
    assert!(matches!(
        handle.read(Read::Count(None)).await,
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
            Ok(WriteOutcome::Created(flow, _)) => flow.id.as_str().to_owned(),
            Err(TenantError::Domain(_)) => "refused".to_owned(),
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(statuses, ["B2C_1_a", "B2C_1_b", "refused", "B2C_1_c"]);
    assert!(matches!(
        handle.read(Read::Count(None)).await,
        Ok(ReadOutcome::Count(3))
    ));
    registry.shutdown();
}

/// Two reads in turn: the second is handled in a later pass over the mailbox than any message
/// sent before the first, so a write notified by those messages has run by then.
async fn after_a_pass(handle: &TenantHandle) {
    for _ in 0..2 {
        handle.read(Read::Count(None)).await.unwrap();
    }
}

#[actix_web::test]
async fn held_writes_wait_for_their_release_or_a_write_not_held_and_share_one_write() {
    let (log, registry, handle) = held_tenant();
    let tenant = TenantId::parse("t").unwrap();
    let release = hold_the_arbiter(&registry);
    let held = queue_writes(&handle, &["a", "b"], held_meta).await;
    release.send(()).unwrap();
    after_a_pass(&handle).await;
    assert!(log.writes().is_empty(), "held writes are not written");
    registry.release(&tenant);
    log.wait_for_flushes(1).await;
    assert_eq!(log.writes(), [2], "released: one write of both");
    log.complete_flush();
    for create in held {
        assert!(matches!(
            create.await.unwrap(),
            Ok(WriteOutcome::Created(..))
        ));
    }

    // A write that is not held takes the held ones with it.
    let release = hold_the_arbiter(&registry);
    let mut creates = queue_writes(&handle, &["c"], held_meta).await;
    creates.extend(queue_writes(&handle, &["d"], meta).await);
    release.send(()).unwrap();
    log.wait_for_flushes(1).await;
    assert_eq!(log.writes(), [2, 2]);
    log.complete_flush();
    for create in creates {
        assert!(matches!(
            create.await.unwrap(),
            Ok(WriteOutcome::Created(..))
        ));
    }
    // A release with nothing held writes nothing.
    registry.release(&tenant);
    after_a_pass(&handle).await;
    assert_eq!(log.writes(), [2, 2]);
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
        handle.read(Read::Count(None)).await,
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
            matches!(&answer, Err(TenantError::Storage(m))
                if m.contains("append failed") && m.contains("restart the emulator")),
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
        Ok(WriteOutcome::Created(..))
    ));
    assert!(matches!(
        handle.read(Read::Count(None)).await,
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
        assert!(matches!(c.await.unwrap(), Ok(WriteOutcome::Created(..))));
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
        answers.push(matches!(c.await.unwrap(), Ok(WriteOutcome::Created(..))));
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
        assert!(matches!(c.await.unwrap(), Ok(WriteOutcome::Created(..))));
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
        assert!(matches!(c.await.unwrap(), Ok(WriteOutcome::Created(..))));
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
        assert!(matches!(c.await.unwrap(), Ok(WriteOutcome::Created(..))));
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

fn cannot_write<T: std::fmt::Debug>(answer: &Result<T, TenantError>) -> bool {
    matches!(answer, Err(TenantError::CannotWrite(_)))
}

#[actix_web::test]
async fn a_full_disk_refuses_writes_with_cannot_write_still_answers_reads_and_refusals_and_resumes_by_itself(
) {
    let (log, registry, handle) = held_tenant();
    let h = handle.clone();
    let first = actix_web::rt::spawn(async move { h.execute(create("a"), meta()).await });
    log.wait_for_flushes(1).await;
    log.complete_flush();
    assert!(first.await.unwrap().is_ok());
    log.full.store(true, Ordering::Release);
    assert!(cannot_write(&handle.execute(create("b"), meta()).await));
    // A command that stores nothing needs no disk: its own answer.
    assert!(matches!(
        handle.execute(create("a"), meta()).await,
        Err(TenantError::Domain(_))
    ));
    assert!(matches!(
        handle.read(Read::Count(None)).await,
        Ok(ReadOutcome::Count(1))
    ));
    assert!(registry.write_problems().0.is_some(), "readiness names it");
    assert_eq!(stored(&log), 1, "nothing of the refused write was stored");
    log.full.store(false, Ordering::Release);
    assert!(registry.write_problems().0.is_none());
    let h = handle.clone();
    let again = actix_web::rt::spawn(async move { h.execute(create("b"), meta()).await });
    log.wait_for_flushes(1).await;
    log.complete_flush();
    assert!(again.await.unwrap().is_ok());
    assert_eq!(stored(&log), 2);
    registry.shutdown();
}

#[actix_web::test]
async fn a_batch_the_store_refuses_is_answered_cannot_write_and_the_state_goes_on_without_it() {
    let (log, registry, handle) = held_tenant();
    let h = handle.clone();
    let first = actix_web::rt::spawn(async move { h.execute(create("a"), meta()).await });
    log.wait_for_flushes(1).await;
    // `a` was written and waits for its flush; `b` and a second `c` are refused at append.
    log.refuse_appends.store(true, Ordering::Release);
    let release = hold_the_arbiter(&registry);
    let refused = queue_creates(&handle, &["b", "c", "C"]).await;
    release.send(()).unwrap();
    for answer in refused {
        let answer = answer.await.unwrap();
        assert!(cannot_write(&answer), "{answer:?}");
    }
    let problems = registry.write_problems().1;
    assert!(problems.contains_key("t"), "{problems:?}");
    log.refuse_appends.store(false, Ordering::Release);
    log.complete_flush();
    assert!(first.await.unwrap().is_ok());
    // Nothing pending remembers `b`: it is created now, and `a` is still a duplicate.
    let (h1, h2) = (handle.clone(), handle.clone());
    let b = actix_web::rt::spawn(async move { h1.execute(create("b"), meta()).await });
    let a = actix_web::rt::spawn(async move { h2.execute(create("a"), meta()).await });
    log.wait_for_flushes(1).await;
    log.complete_flush();
    assert!(b.await.unwrap().is_ok());
    assert!(matches!(a.await.unwrap(), Err(TenantError::Domain(_))));
    assert_eq!(stored(&log), 2);
    assert!(
        registry.write_problems().1.is_empty(),
        "a stored write clears it"
    );
    registry.shutdown();
}

#[actix_web::test]
async fn a_failed_flush_answers_cannot_write_removes_its_events_and_the_tenant_writes_again() {
    let (log, registry, handle) = held_tenant();
    let (h1, h2) = (handle.clone(), handle.clone());
    let a = actix_web::rt::spawn(async move { h1.execute(create("a"), meta()).await });
    log.wait_for_flushes(1).await;
    let b = actix_web::rt::spawn(async move { h2.execute(create("b"), meta()).await });
    log.wait_for_flushes(2).await;
    assert_eq!(stored(&log), 2);
    // The flush of `a` fails: `b`, decided after it, goes too, and neither stays stored.
    log.finish_oldest(Err("no space left".to_owned()));
    assert!(cannot_write(&a.await.unwrap()));
    assert!(cannot_write(&b.await.unwrap()));
    assert_eq!(stored(&log), 0);
    assert!(matches!(
        handle.read(Read::Count(None)).await,
        Ok(ReadOutcome::Count(0))
    ));
    let h = handle.clone();
    let c = actix_web::rt::spawn(async move { h.execute(create("c"), meta()).await });
    log.wait_for_flushes(2).await;
    // The flush that covered `b` completes late: it covers nothing written since.
    log.finish_oldest(Ok(()));
    settle().await;
    assert!(!c.is_finished(), "answered before its own flush");
    log.finish_oldest(Ok(()));
    assert!(c.await.unwrap().is_ok());
    assert_eq!(stored(&log), 1);
    assert!(matches!(
        handle.read(Read::Count(None)).await,
        Ok(ReadOutcome::Count(1))
    ));
    registry.shutdown();
}

#[actix_web::test]
async fn written_behind_a_batch_the_store_refuses_is_kept_and_written_once_it_can_be() {
    let (log, registry, handle) = tenant_over(Commit::OnAppend);
    log.refuse_appends.store(true, Ordering::Release);
    assert!(handle.execute(create("a"), meta()).await.is_ok());
    actix_web::rt::time::sleep(WRITE_BEHIND_DELAY * 4).await;
    assert_eq!(stored(&log), 0);
    assert!(registry.write_problems().1.contains_key("t"));
    log.refuse_appends.store(false, Ordering::Release);
    for _ in 0..300 {
        if stored(&log) == 1 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(stored(&log), 1, "written on a retry");
    assert!(registry.write_problems().1.is_empty());
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
            actix_web::rt::spawn(async move { h.read(Read::Count(None)).await })
        })
        .collect();
    while handle.queued.load(Ordering::Acquire) < 2 {
        actix_web::rt::task::yield_now().await;
    }
    assert!(matches!(
        handle.read(Read::Count(None)).await,
        Err(TenantError::Busy { .. })
    ));
    release.send(()).unwrap();
    for w in waiting {
        assert!(matches!(w.await.unwrap(), Ok(ReadOutcome::Count(0))));
    }
    assert!(matches!(
        handle.read(Read::Count(None)).await,
        Ok(ReadOutcome::Count(0))
    ));
    assert_eq!(handle.queued.load(Ordering::Acquire), 0);
    registry.shutdown();
}

async fn count(registry: &TenantRegistry, tenant: &TenantId) -> usize {
    match registry.read(tenant, Read::Count(None)).await {
        Ok(ReadOutcome::Count(n)) => n,
        other => panic!("count answered {other:?}"),
    }
}

#[actix_web::test]
async fn a_reset_tenant_gets_a_new_actor_and_registries_do_not_share_tenants() {
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

#[actix_web::test]
async fn before_recovery_is_done_every_tenant_route_says_recovering() {
    let registry = TenantRegistry::new(Arc::new(MemoryEventLog::new()), options(16));
    let tenant = TenantId::parse("t").unwrap();
    assert!(matches!(registry.overview(), Err(TenantError::Recovering)));
    assert!(matches!(
        registry.execute(&tenant, create("a"), meta()).await,
        Err(TenantError::Recovering)
    ));
    assert!(matches!(
        registry.durable_events(&tenant, 1, 10).await,
        Err(TenantError::Recovering)
    ));
    assert!(matches!(
        registry.reset(&tenant).await,
        Err(TenantError::Recovering)
    ));
    registry.recover_all().unwrap();
    assert!(registry.overview().unwrap().is_empty());
    registry.shutdown();
}

#[test]
fn tenant_ids_are_guids_and_similar() {
    assert!(TenantId::parse("72f988bf-86f1-41af-91ab-2d7cd011db47").is_some());
    assert!(TenantId::parse("contoso.onmicrosoft.com").is_some());
    assert!(TenantId::parse("").is_none());
    assert!(TenantId::parse("a/b").is_none());
    assert!(TenantId::parse(&"a".repeat(129)).is_none());
}

#[test]
fn a_guid_names_one_tenant_whatever_its_case_and_other_ids_are_kept_exactly() {
    let lower = TenantId::parse("72f988bf-86f1-41af-91ab-2d7cd011db47").unwrap();
    let upper = TenantId::parse("72F988BF-86F1-41AF-91AB-2D7CD011DB47").unwrap();
    assert_eq!(upper, lower);
    assert_eq!(upper.as_str(), "72f988bf-86f1-41af-91ab-2d7cd011db47");
    assert_eq!(TenantId::parse("Contoso").unwrap().as_str(), "Contoso");
    assert_ne!(TenantId::parse("Contoso"), TenantId::parse("contoso"));
    // 36 characters but not a GUID: kept as it is.
    let almost = "72F988BF-86F1-41AF-91AB_2D7CD011DB47";
    assert_eq!(TenantId::parse(almost).unwrap().as_str(), almost);
}

fn is_parked(registry: &TenantRegistry, tenant: &TenantId) -> Option<TenantSummary> {
    registry
        .overview()
        .unwrap()
        .into_iter()
        .find_map(|(id, view)| match view {
            TenantView::Parked(summary) if id == *tenant => Some(summary),
            _ => None,
        })
}

/// Waits (at most 5 s) until the tenant is parked; where it stood then.
async fn parked(registry: &TenantRegistry, tenant: &TenantId) -> TenantSummary {
    for _ in 0..500 {
        if let Some(summary) = is_parked(registry, tenant) {
            return summary;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("tenant {tenant} was not parked within 5 s");
}

fn parking_after(idle: std::time::Duration) -> RegistryOptions {
    RegistryOptions {
        idle_after: Some(idle),
        ..options(64)
    }
}

#[actix_web::test]
async fn an_idle_tenant_is_parked_and_its_next_request_wakes_it_with_every_flow() {
    let tenant = TenantId::parse("t").unwrap();
    let log = Arc::new(MemoryEventLog::new());
    let registry = TenantRegistry::new(
        Arc::clone(&log) as Arc<dyn EventLog>,
        parking_after(std::time::Duration::from_millis(20)),
    );
    registry.recover_all().unwrap();
    for id in ["a", "b", "c"] {
        registry.execute(&tenant, create(id), meta()).await.unwrap();
    }
    registry
        .execute(
            &tenant,
            Command::Delete(crate::domain::DeleteUserFlow {
                id: "B2C_1_a".into(),
            }),
            meta(),
        )
        .await
        .unwrap();
    let summary = parked(&registry, &tenant).await;
    assert_eq!((summary.applied_seq, summary.flows), (4, 2));
    assert_eq!(registry.wakes(), 0);

    // A read wakes it from the log; a write goes on at the next seq.
    assert_eq!(count(&registry, &tenant).await, 2);
    assert_eq!(registry.wakes(), 1);
    assert!(matches!(
        registry.execute(&tenant, create("b"), meta()).await,
        Err(TenantError::Domain(
            crate::domain::DomainError::AlreadyExists { .. }
        ))
    ));
    registry
        .execute(&tenant, create("d"), meta())
        .await
        .unwrap();

    // Parked again, a write wakes it; a reset of a parked tenant empties it.
    let summary = parked(&registry, &tenant).await;
    assert_eq!((summary.applied_seq, summary.flows), (5, 3));
    registry
        .execute(&tenant, create("e"), meta())
        .await
        .unwrap();
    assert_eq!(count(&registry, &tenant).await, 4);
    assert_eq!(registry.wakes(), 2);
    parked(&registry, &tenant).await;
    assert!(registry.reset(&tenant).await.unwrap());
    assert_eq!(count(&registry, &tenant).await, 0);
    assert!(registry.overview().unwrap().is_empty());
    registry.shutdown();
}

#[actix_web::test]
async fn a_tenant_with_a_write_waiting_for_its_flush_is_not_parked_until_it_is_durable() {
    let log = Arc::new(TestLog::new(Commit::GroupCommit));
    let registry = TenantRegistry::new(
        Arc::clone(&log) as Arc<dyn EventLog>,
        parking_after(std::time::Duration::from_millis(10)),
    );
    registry.recover_all().unwrap();
    let tenant = TenantId::parse("t").unwrap();
    let handle = registry.get_or_start(&tenant).unwrap();
    let write = actix_web::rt::spawn(async move { handle.execute(create("a"), meta()).await });
    while log.held.lock().unwrap().is_empty() {
        actix_web::rt::task::yield_now().await;
    }
    // Many idle checks pass while the write waits; none parks the tenant.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(is_parked(&registry, &tenant).is_none());
    log.complete_flush();
    assert!(matches!(
        write.await.unwrap(),
        Ok(WriteOutcome::Created(..))
    ));
    let summary = parked(&registry, &tenant).await;
    assert_eq!((summary.applied_seq, summary.flows), (1, 1));
    assert_eq!(count(&registry, &tenant).await, 1);
    registry.shutdown();
}
