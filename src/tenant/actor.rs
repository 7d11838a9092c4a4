//! The tenant actor: decides commands in arrival order and appends their events to the tenant's
//! stream in batches, one write each (docs/adr/0007). In the default mode a batch is the events
//! of one pass over the mailbox (or more, while a `$batch` holds its writes for the ones that
//! follow), and they are applied and answered once the group commit says
//! they are durable; reads see only that state, so no client sees a change a crash could take
//! back. With a log that stores on append (relaxed, in memory), events are applied and answered
//! when decided and written behind, in fuller batches (docs/adr/0008).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::{Actor, AsyncContext, Context, Handler, Message};
use tokio::sync::oneshot;

use super::pending::{Pending, WithPending};
use super::recovery::{save_snapshot_of, snapshot_due};
use super::registry::{Slot, Tenants, WriteFailures};
use super::startup::recover_stream;
use super::{
    answer, Read, ReadOutcome, RequestMeta, TenantError, TenantId, TenantSummary, WriteOutcome,
};
use crate::codec::{encode_into, EventMeta, RequestId};
use crate::domain::{decide, evolve, Command, UserFlowEvent, UserFlows};
use crate::store::{Commit, EventLog, EventStream, RecordBatch, StoreError};

/// A place in a tenant's bounded queue; freed when dropped.
pub(super) struct Permit(pub(super) Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Change the tenant's flows.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Execute {
    pub(super) command: Command,
    pub(super) meta: RequestMeta,
    pub(super) reply: oneshot::Sender<Result<WriteOutcome, TenantError>>,
    pub(super) permit: Permit,
}

/// Ask about the tenant's flows.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Query {
    pub(super) read: Read,
    pub(super) reply: oneshot::Sender<Result<ReadOutcome, TenantError>>,
    pub(super) permit: Permit,
}

/// Write the batch: sent to itself with the first event of a batch, so it runs once the mailbox
/// is drained (actix handles notified messages after the mailbox).
struct WriteBatch;

impl Message for WriteBatch {
    type Result = ();
}

/// Write the events held for the writes that were to follow them (see [`RequestMeta::hold`]).
pub(super) struct Release;

impl Message for Release {
    type Result = ();
}

/// With group commit: how the batch being staged will be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteDue {
    /// Nothing is staged, or it was written at `MAX_BATCH`.
    Unscheduled,
    /// Only held writes were staged: written on [`Release`] or with the next write not held.
    Held,
    /// A [`WriteBatch`] is on its way.
    Notified,
}

/// The most events one write carries; a fuller batch is written at once.
pub(super) const MAX_BATCH: u64 = 128;

/// Written behind (a log that stores on append): the longest an answered event waits before
/// its batch is written. Under load batches fill to `MAX_BATCH` well before.
pub(super) const WRITE_BEHIND_DELAY: Duration = Duration::from_millis(5);

/// Stop the actor (the tenant is being reset): waiting clients get 503.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Stop;

/// How long a tenant written behind waits before it tries again a batch it could not write.
const RETRY_WRITE_AFTER: Duration = Duration::from_secs(1);

/// From the group commit: every event up to `up_to` is durable (or the flush failed).
#[derive(Message)]
#[rtype(result = "()")]
struct Durable {
    up_to: u64,
    /// The actor's epoch when the batch was written: a flush that failed starts a new one, and
    /// an answer from before it covers nothing that is still waiting.
    epoch: u64,
    result: Result<(), String>,
}

#[expect(
    clippy::large_enum_variant,
    reason = "one per tenant actor, built once and never moved on a request's path"
)]
pub(super) enum Health {
    Ready(UserFlows),
    /// The log could not be recovered, or an append went wrong in a way that may have
    /// written something: every request gets 503.
    Broken(String),
}

/// A reply held back until the flush covering `seq` completes: an appended event, or a refusal
/// decided while earlier events were still pending (it may rest on one of them, so it must not
/// be seen before they are durable).
struct Waiting {
    seq: u64,
    decision: Result<UserFlowEvent, TenantError>,
    reply: oneshot::Sender<Result<WriteOutcome, TenantError>>,
}

pub(super) struct TenantActor {
    tenant: TenantId,
    log: Arc<dyn EventLog>,
    /// The only writable handle on this tenant's stream (invariant 1).
    stream: Box<dyn EventStream>,
    /// The durable state; reads see only this.
    health: Health,
    /// Decided but not yet written.
    batch: RecordBatch,
    /// The record of the event being staged, encoded here and then copied into `batch` (one
    /// buffer for every event, not one allocation each).
    record: Vec<u8>,
    /// Decided but not durable: `decide` sees the durable state through it.
    pending: Pending,
    /// Replies held back until their event is written and durable, in seq order.
    waiting: VecDeque<Waiting>,
    /// The seq of the last event applied to the durable state.
    applied_seq: u64,
    /// Save a snapshot every this many applied events (`None`: never).
    snapshot_every: Option<u64>,
    /// The seq of the last snapshot saved (or recovered from).
    snapshot_seq: u64,
    /// Events appended by every tenant, for metrics.
    appended: Arc<AtomicU64>,
    /// The log stores on append (relaxed, in memory): events are applied and answered when
    /// decided, and written behind.
    write_behind: bool,
    /// Counts the flushes that failed; see [`Durable::epoch`].
    epoch: u64,
    /// Set when a failed write could not be undone: writes are refused (507) until restart,
    /// reads still answered from the durable state.
    write_failure: Option<String>,
    /// Tenants whose last write failed, and why, for readiness; this tenant is in it while
    /// `failing`.
    write_failures: WriteFailures,
    failing: bool,
    /// Written behind: a timer is due to write the batch.
    timer_armed: bool,
    /// With group commit: whether and how the staged batch is to be written.
    write_due: WriteDue,
    /// When set, the actor parks its tenant once it has been idle this long.
    parking: Option<Parking>,
    /// Held for as long as the actor lives: a stopping registry waits until every one is gone.
    _alive: Arc<()>,
}

/// What an actor starts with.
pub(super) struct ActorStart {
    pub(super) tenant: TenantId,
    pub(super) log: Arc<dyn EventLog>,
    pub(super) stream: Box<dyn EventStream>,
    pub(super) health: Health,
    /// The seq the state stands at.
    pub(super) applied_seq: u64,
    pub(super) snapshot_every: Option<u64>,
    pub(super) appended: Arc<AtomicU64>,
    pub(super) write_failures: WriteFailures,
    pub(super) alive: Arc<()>,
    pub(super) parking: Option<Parking>,
}

/// How an idle actor parks its tenant: it replaces its own slot in the registry's map, so that
/// the next request wakes a new actor from the log.
pub(super) struct Parking {
    pub(super) tenants: Tenants,
    /// The count of the actor's own handle: requests that hold the handle.
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) after: Duration,
    /// A request came since the last idle check.
    pub(super) touched: bool,
}

impl TenantActor {
    pub(super) fn new(start: ActorStart) -> Self {
        let batch = RecordBatch::starting_at(start.stream.last_seq() + 1);
        Self {
            tenant: start.tenant,
            write_behind: start.log.commit() == Commit::OnAppend,
            log: start.log,
            stream: start.stream,
            batch,
            record: Vec::new(),
            health: start.health,
            pending: Pending::default(),
            waiting: VecDeque::new(),
            applied_seq: start.applied_seq,
            snapshot_every: start.snapshot_every,
            snapshot_seq: start.applied_seq,
            appended: start.appended,
            epoch: 0,
            write_failure: None,
            write_failures: start.write_failures,
            failing: false,
            timer_armed: false,
            write_due: WriteDue::Unscheduled,
            parking: start.parking,
            _alive: start.alive,
        }
    }

    /// A write that cannot be stored now (507): names why, and lists the tenant for readiness.
    fn cannot_write(&mut self, reason: &str) -> TenantError {
        self.failing = true;
        if let Ok(mut failures) = self.write_failures.lock() {
            if failures
                .get(self.tenant.as_str())
                .is_none_or(|r| r != reason)
            {
                failures.insert(self.tenant.as_str().to_owned(), reason.to_owned());
            }
        }
        TenantError::CannotWrite(reason.to_owned())
    }

    /// A write of this tenant was stored: it no longer fails.
    fn wrote(&mut self) {
        if self.failing {
            self.failing = false;
            if let Ok(mut failures) = self.write_failures.lock() {
                failures.remove(self.tenant.as_str());
            }
        }
    }

    fn unavailable(&self, reason: &str) -> TenantError {
        TenantError::Unavailable {
            tenant: self.tenant.clone(),
            reason: reason.to_owned(),
        }
    }

    /// Decides and adds the event to the batch; returns the event and its seq, or the refusal
    /// to send back.
    fn decide_and_stage(
        &mut self,
        command: Command,
        meta: RequestMeta,
    ) -> Result<(u64, UserFlowEvent), TenantError> {
        let flows = match &self.health {
            Health::Ready(flows) => flows,
            Health::Broken(reason) => return Err(self.unavailable(reason)),
        };
        let view = WithPending {
            flows,
            pending: &self.pending,
        };
        let event = decide(&view, command)?;
        // Only a command that makes an event needs the disk: a refusal is answered whatever
        // its state. The free-space guard refuses before anything is staged.
        if let Some(reason) = &self.write_failure {
            let reason = reason.clone();
            return Err(self.cannot_write(&reason));
        }
        if let Err(e) = self.log.has_space() {
            return Err(TenantError::CannotWrite(e.to_string()));
        }
        let seq = self.batch.next_seq();
        let meta = EventMeta {
            recorded_at: SystemTime::now(),
            request_id: RequestId::Uuid(meta.request_id),
            client_request_id: meta.client_request_id,
        };
        self.record.clear();
        encode_into(&mut self.record, seq, &meta, &event)
            .map_err(|e| TenantError::Internal(e.to_string()))?;
        self.batch.push(&self.record);
        Ok((seq, event))
    }

    /// A staged event's write: once the mailbox is drained, unless it is held for the writes
    /// that follow it.
    fn schedule_write(&mut self, hold: bool, ctx: &mut Context<Self>) {
        match (self.write_due, hold) {
            (WriteDue::Notified, _) | (WriteDue::Held, true) => {}
            (WriteDue::Unscheduled, true) => self.write_due = WriteDue::Held,
            (WriteDue::Unscheduled | WriteDue::Held, false) => {
                self.write_due = WriteDue::Notified;
                ctx.notify(WriteBatch);
            }
        }
    }

    /// Appends the batch with one write and hands it to the group commit.
    fn write_batch(&mut self, ctx: &mut Context<Self>) {
        let Some((up_to, events)) = self.append_batch() else {
            return;
        };
        let me = ctx.address();
        let epoch = self.epoch;
        self.log.when_durable(
            events,
            Box::new(move |result| {
                me.do_send(Durable {
                    up_to,
                    epoch,
                    result,
                });
            }),
        );
    }

    /// Appends the batch with one write: its last seq and its number of events, or `None` when
    /// it was empty or the write failed.
    ///
    /// A write the store refused wrote nothing (appends are all or none). Waiting for the disk,
    /// its events are refused with 507 and the state goes on without them; written behind, they
    /// were answered already, so the batch is kept and tried again. An append that found its
    /// seq taken (a second writer) stops the tenant.
    fn append_batch(&mut self) -> Option<(u64, u64)> {
        if self.batch.is_empty() {
            return None;
        }
        let up_to = self.batch.last_seq();
        match self.stream.append(&self.batch) {
            Ok(()) => {}
            Err(e @ (StoreError::OutOfOrder { .. } | StoreError::AlreadyWritten { .. })) => {
                tracing::error!(tenant = %self.tenant, up_to, error = %e, "append failed");
                self.batch = RecordBatch::starting_at(self.stream.last_seq() + 1);
                // Events were decided against the ones lost: stop serving this state.
                self.fail(format!(
                    "an append failed ({e}): another process may be writing to the data \
                     directory; stop it, then restart the emulator, which re-reads the log"
                ));
                return None;
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(tenant = %self.tenant, up_to, error = %reason, "a batch could not be written");
                if self.write_behind {
                    self.cannot_write(&reason);
                } else {
                    self.refuse_unwritten(&reason);
                }
                return None;
            }
        }
        let events = self.batch.len();
        self.appended.fetch_add(events, Ordering::Relaxed);
        self.batch.restart();
        if self.write_behind {
            self.wrote();
        }
        Some((up_to, events))
    }

    /// Waiting for the disk: the batch was not written. Its events (and the refusals decided
    /// against them) are answered 507 and forgotten; events appended earlier still wait for
    /// their flush, and what is pending is rebuilt from them.
    fn refuse_unwritten(&mut self, reason: &str) {
        let written = self.stream.last_seq();
        self.batch = RecordBatch::starting_at(written + 1);
        self.cannot_write(reason);
        while self.waiting.back().is_some_and(|w| w.seq > written) {
            if let Some(waiting) = self.waiting.pop_back() {
                let _ = waiting
                    .reply
                    .send(Err(TenantError::CannotWrite(reason.to_owned())));
            }
        }
        self.pending.clear();
        for waiting in &self.waiting {
            if let Ok(event) = &waiting.decision {
                self.pending.record(waiting.seq, event);
            }
        }
    }

    /// A flush failed: nothing appended since the last durable event may be acknowledged.
    /// Every waiting client gets 507, and those events are removed from the stream so that
    /// none of them can surface later; the tenant then writes again from its durable state. If
    /// the store cannot even remove them, writes stay refused until restart (reads go on).
    fn flush_failed(&mut self, reason: &str) {
        self.epoch += 1;
        self.cannot_write(reason);
        for waiting in self.waiting.drain(..) {
            let _ = waiting
                .reply
                .send(Err(TenantError::CannotWrite(reason.to_owned())));
        }
        self.pending.clear();
        match self.stream.truncate_after(self.applied_seq) {
            Ok(()) => self.batch = RecordBatch::starting_at(self.stream.last_seq() + 1),
            Err(e) => {
                tracing::error!(tenant = %self.tenant, error = %e, "the events of a failed flush cannot be removed; writes are refused until restart");
                self.batch = RecordBatch::starting_at(self.stream.last_seq() + 1);
                self.write_failure = Some(format!(
                    "{reason}; its events could not be removed ({e}), restart once the disk is fixed"
                ));
            }
        }
    }

    /// Applies every waiting event up to `up_to` and sends the held-back replies.
    fn settle(&mut self, up_to: u64) {
        while self.waiting.front().is_some_and(|w| w.seq <= up_to) {
            let Some(Waiting {
                seq,
                decision,
                reply,
            }) = self.waiting.pop_front()
            else {
                break;
            };
            let answer = decision.map(|event| {
                self.apply(seq, &event);
                self.pending.settle(seq, &event);
                outcome(seq, event)
            });
            let _ = reply.send(answer);
        }
        self.wrote();
    }

    /// The state in memory may now differ from what survives a crash: every waiting client
    /// gets 503 and so does every later request.
    fn fail(&mut self, reason: String) {
        for waiting in self.waiting.drain(..) {
            let _ = waiting
                .reply
                .send(Err(TenantError::Storage(reason.clone())));
        }
        self.pending.clear();
        self.health = Health::Broken(reason);
    }

    /// Applies durable event `seq` and saves a snapshot when one is due.
    fn apply(&mut self, seq: u64, event: &UserFlowEvent) {
        let Health::Ready(flows) = &mut self.health else {
            return;
        };
        evolve(flows, event);
        self.applied_seq = seq;
        if !snapshot_due(self.snapshot_every, seq - self.snapshot_seq, flows.len()) {
            return;
        }
        // A snapshot never runs ahead of the log.
        if self.write_behind {
            self.append_batch();
            if !self.batch.is_empty() {
                return;
            }
        }
        if let Health::Ready(flows) = &self.health {
            save_snapshot_of(self.log.as_ref(), self.tenant.as_str(), seq, flows);
            self.snapshot_seq = seq;
        }
    }

    /// Written behind: decides and applies at once, for an answer at once. The record joins
    /// the batch, written by [`Self::write_behind_when_due`], before a snapshot or a read of the
    /// log, and when the actor goes.
    fn decide_and_apply(
        &mut self,
        command: Command,
        meta: RequestMeta,
    ) -> Result<WriteOutcome, TenantError> {
        let (seq, event) = self.decide_and_stage(command, meta)?;
        self.apply(seq, &event);
        match &self.health {
            Health::Ready(_) => Ok(outcome(seq, event)),
            // A snapshot's write of the batch failed: this event is lost too.
            Health::Broken(reason) => Err(TenantError::Storage(reason.clone())),
        }
    }

    /// Written behind: writes the batch when full, or `WRITE_BEHIND_DELAY` after its first
    /// record (a timer that finds the batch already written writes the next one, early).
    fn write_behind_when_due(&mut self, ctx: &mut Context<Self>) {
        if self.batch.len() >= MAX_BATCH {
            self.append_batch();
        }
        if !self.batch.is_empty() {
            self.arm_timer(ctx, WRITE_BEHIND_DELAY);
        }
    }

    /// Written behind: writes the batch after `delay`, and again every [`RETRY_WRITE_AFTER`]
    /// while the store refuses it.
    fn arm_timer(&mut self, ctx: &mut Context<Self>, delay: Duration) {
        if self.timer_armed {
            return;
        }
        self.timer_armed = true;
        ctx.run_later(delay, |actor, ctx| {
            actor.timer_armed = false;
            actor.append_batch();
            if !actor.batch.is_empty() {
                actor.arm_timer(ctx, RETRY_WRITE_AFTER);
            }
        });
    }

    /// Parks the tenant when no request came since the last check and nothing is in flight:
    /// its slot becomes [`Slot::Parked`] and the actor stops, freeing the state; the next
    /// request wakes a new actor, which rebuilds the state from the log.
    fn park_if_idle(&mut self, ctx: &mut Context<Self>) {
        let quiet = self.batch.is_empty()
            && self.waiting.is_empty()
            && !self.timer_armed
            && !self.failing
            && self.write_failure.is_none()
            && matches!(self.health, Health::Ready(_));
        let touched = self
            .parking
            .as_mut()
            .is_some_and(|parking| std::mem::take(&mut parking.touched));
        let Some(parking) = self.parking.as_ref().filter(|_| quiet && !touched) else {
            return;
        };
        let Ok(mut tenants) = parking.tenants.write() else {
            return;
        };
        // A request counts itself in `queued` while it holds the map's lock, so under the write
        // lock a zero count means no request holds this actor's handle or waits in its mailbox.
        let mine = matches!(
            tenants.get(&self.tenant),
            Some(Slot::Running(handle)) if Arc::ptr_eq(&handle.queued, &parking.queued)
        );
        if !mine || parking.queued.load(Ordering::Acquire) != 0 {
            return;
        }
        tenants.insert(self.tenant.clone(), Slot::Parked(self.summary()));
        drop(tenants);
        tracing::debug!(tenant = %self.tenant, "parked an idle tenant");
        actix::ActorContext::stop(ctx);
    }

    /// Rebuilds a parked tenant's state from its log (its latest snapshot and the events
    /// after it).
    pub(super) fn wake_from_log(&mut self) {
        let (health, seq, _) = recover_stream(
            self.log.as_ref(),
            self.stream.as_ref(),
            self.tenant.as_str(),
            self.snapshot_every,
        );
        self.health = health;
        self.applied_seq = seq;
        self.snapshot_seq = seq;
        tracing::debug!(tenant = %self.tenant, seq, "woke a parked tenant");
    }

    /// A request came: the tenant is not idle.
    fn touch(&mut self) {
        if let Some(parking) = &mut self.parking {
            parking.touched = true;
        }
    }

    fn summary(&self) -> TenantSummary {
        TenantSummary {
            applied_seq: self.applied_seq,
            flows: match &self.health {
                Health::Ready(flows) => flows.len(),
                Health::Broken(_) => 0,
            },
            broken: match &self.health {
                Health::Ready(_) => None,
                Health::Broken(reason) => Some(reason.clone()),
            },
        }
    }
}

fn outcome(seq: u64, event: UserFlowEvent) -> WriteOutcome {
    match event {
        UserFlowEvent::Created(flow) => WriteOutcome::Created(flow, seq),
        UserFlowEvent::Deleted { id } => WriteOutcome::Deleted(id, seq),
    }
}

impl Actor for TenantActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(after) = self.parking.as_ref().map(|p| p.after) {
            ctx.run_interval(after, Self::park_if_idle);
        }
    }
}

impl Handler<Execute> for TenantActor {
    type Result = ();

    fn handle(&mut self, msg: Execute, ctx: &mut Self::Context) {
        let Execute {
            command,
            meta,
            reply,
            permit,
        } = msg;
        self.touch();
        if self.write_behind {
            let answer = self.decide_and_apply(command, meta);
            drop(permit);
            let _ = reply.send(answer);
            self.write_behind_when_due(ctx);
            return;
        }
        let hold = meta.hold;
        let decided = self.decide_and_stage(command, meta);
        // Decided: the command leaves the bounded queue, even if it still waits for the disk.
        drop(permit);
        let (seq, decision) = match decided {
            Ok((seq, event)) => {
                self.pending.record(seq, &event);
                self.schedule_write(hold, ctx);
                (seq, Ok(event))
            }
            // A refusal may rest on an event not yet durable: it waits for the same flush.
            Err(e @ TenantError::Domain(_)) if !self.waiting.is_empty() => {
                (self.batch.last_seq(), Err(e))
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        self.waiting.push_back(Waiting {
            seq,
            decision,
            reply,
        });
        if self.batch.len() >= MAX_BATCH {
            self.write_batch(ctx);
        }
    }
}

impl Handler<Durable> for TenantActor {
    type Result = ();

    fn handle(&mut self, msg: Durable, _ctx: &mut Self::Context) {
        if msg.epoch != self.epoch {
            return;
        }
        match msg.result {
            Ok(()) => self.settle(msg.up_to),
            Err(reason) => {
                tracing::error!(tenant = %self.tenant, %reason, "a flush failed; its writes are refused");
                self.flush_failed(&format!("a flush failed: {reason}"));
            }
        }
    }
}

impl Handler<WriteBatch> for TenantActor {
    type Result = ();

    fn handle(&mut self, _msg: WriteBatch, ctx: &mut Self::Context) {
        self.write_due = WriteDue::Unscheduled;
        self.write_batch(ctx);
    }
}

impl Handler<Release> for TenantActor {
    type Result = ();

    fn handle(&mut self, _msg: Release, ctx: &mut Self::Context) {
        if self.write_due == WriteDue::Held {
            self.write_due = WriteDue::Unscheduled;
            self.write_batch(ctx);
        }
    }
}

impl Handler<Query> for TenantActor {
    type Result = ();

    fn handle(&mut self, msg: Query, _ctx: &mut Self::Context) {
        let Query {
            read,
            reply,
            permit,
        } = msg;
        // The admin routes' summaries do not keep a tenant from parking.
        if !matches!(read, Read::Summary) {
            self.touch();
        }
        // The log holds every answered event before anyone reads it.
        if matches!(read, Read::Summary) && self.write_behind {
            self.append_batch();
        }
        let result = match (&self.health, &read) {
            (_, Read::Summary) => Ok(ReadOutcome::Summary(self.summary())),
            (Health::Ready(flows), _) => Ok(answer(flows, &read)),
            (Health::Broken(reason), _) => Err(self.unavailable(reason)),
        };
        drop(permit);
        let _ = reply.send(result);
    }
}

impl Drop for TenantActor {
    /// The server is stopping: writes what was decided but not yet written, and on a log with
    /// group commit makes it durable and answers the clients still waiting (their worker may
    /// outlive this actor's). Blocks on one flush; nothing else runs on this thread any more.
    fn drop(&mut self) {
        self.append_batch();
        if self.waiting.is_empty() {
            return;
        }
        match self.log.flush() {
            Ok(()) => self.settle(u64::MAX),
            Err(e) => self.fail(format!("a flush failed: {e}")),
        }
    }
}

impl Handler<Stop> for TenantActor {
    type Result = ();

    fn handle(&mut self, _msg: Stop, ctx: &mut Self::Context) {
        for waiting in self.waiting.drain(..) {
            let _ = waiting.reply.send(Err(TenantError::ShuttingDown));
        }
        self.pending.clear();
        // The tenant's log is deleted next: nothing more may be written to it.
        self.batch.restart();
        actix::ActorContext::stop(ctx);
    }
}
