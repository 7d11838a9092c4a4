//! The tenant actor: decides commands in arrival order, appends their events to the tenant's
//! stream, and replies once the group commit says they are durable. Reads are answered from the
//! durable state only, so no client sees a change a crash could take back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use actix::{Actor, AsyncContext, Context, Handler, Message};
use tokio::sync::oneshot;

use super::pending::{Pending, WithPending};
use super::recovery::{save_snapshot_of, snapshot_due};
use super::{
    answer, Read, ReadOutcome, RequestMeta, TenantError, TenantId, TenantSummary, WriteOutcome,
};
use crate::domain::{decide, evolve, Command, UserFlowEvent, UserFlows};
use crate::store::{encode, Commit, EventLog, EventMeta, EventStream};

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

/// Stop the actor (the tenant is being reset): waiting clients get 503.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Stop;

/// From the group commit: every event up to `up_to` is durable (or the flush failed).
#[derive(Message)]
#[rtype(result = "()")]
struct Durable {
    up_to: u64,
    result: Result<(), String>,
}

pub(super) enum Health {
    Ready(UserFlows),
    /// The log could not be recovered, or a flush failed: every request gets 503.
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
    /// Decided but not durable: `decide` sees the durable state through it.
    pending: Pending,
    /// Replies held back until their event is durable, in seq order.
    waiting: VecDeque<Waiting>,
    /// The seq of the last event applied to the durable state.
    applied_seq: u64,
    /// Save a snapshot every this many applied events (`None`: never).
    snapshot_every: Option<u64>,
    /// The seq of the last snapshot saved (or recovered from).
    snapshot_seq: u64,
    /// Events appended by every tenant, for metrics.
    appended: Arc<AtomicU64>,
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
}

impl TenantActor {
    pub(super) fn new(start: ActorStart) -> Self {
        Self {
            tenant: start.tenant,
            log: start.log,
            stream: start.stream,
            health: start.health,
            pending: Pending::default(),
            waiting: VecDeque::new(),
            applied_seq: start.applied_seq,
            snapshot_every: start.snapshot_every,
            snapshot_seq: start.applied_seq,
            appended: start.appended,
        }
    }

    fn unavailable(&self, reason: &str) -> TenantError {
        TenantError::Unavailable {
            tenant: self.tenant.clone(),
            reason: reason.to_owned(),
        }
    }

    /// Decides and appends; returns the event and its seq, or the refusal to send back.
    fn decide_and_append(
        &mut self,
        command: &Command,
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
        let seq = self.stream.last_seq() + 1;
        let meta = EventMeta {
            recorded_at: SystemTime::now(),
            request_id: meta.request_id,
            client_request_id: meta.client_request_id,
        };
        let record =
            encode(seq, &meta, &event).map_err(|e| TenantError::Internal(e.to_string()))?;
        self.stream.append(seq, &record).map_err(|e| {
            tracing::error!(tenant = %self.tenant, seq, error = %e, "append failed");
            TenantError::Storage(e.to_string())
        })?;
        self.appended.fetch_add(1, Ordering::Relaxed);
        Ok((seq, event))
    }

    /// Applies durable event `seq` and saves a snapshot when one is due.
    fn apply(&mut self, seq: u64, event: &UserFlowEvent) {
        let Health::Ready(flows) = &mut self.health else {
            return;
        };
        evolve(flows, event);
        self.applied_seq = seq;
        if snapshot_due(self.snapshot_every, seq - self.snapshot_seq, flows.len()) {
            save_snapshot_of(self.log.as_ref(), self.tenant.as_str(), seq, flows);
            self.snapshot_seq = seq;
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

fn outcome(event: UserFlowEvent) -> WriteOutcome {
    match event {
        UserFlowEvent::Created(flow) => WriteOutcome::Created(flow),
        UserFlowEvent::Deleted { id } => WriteOutcome::Deleted(id),
    }
}

impl Actor for TenantActor {
    type Context = Context<Self>;
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
        let decided = self.decide_and_append(&command, meta);
        // Decided: the command leaves the bounded queue, even if it still waits for the disk.
        drop(permit);
        let (seq, event) = match decided {
            Ok(decided) => decided,
            Err(e @ TenantError::Domain(_)) if !self.waiting.is_empty() => {
                let seq = self.stream.last_seq();
                self.waiting.push_back(Waiting {
                    seq,
                    decision: Err(e),
                    reply,
                });
                return;
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        if self.log.commit() == Commit::OnAppend {
            self.apply(seq, &event);
            let _ = reply.send(Ok(outcome(event)));
            return;
        }
        self.pending.record(seq, &event);
        self.waiting.push_back(Waiting {
            seq,
            decision: Ok(event),
            reply,
        });
        let me = ctx.address();
        self.log.when_durable(Box::new(move |result| {
            me.do_send(Durable { up_to: seq, result });
        }));
    }
}

impl Handler<Durable> for TenantActor {
    type Result = ();

    fn handle(&mut self, msg: Durable, _ctx: &mut Self::Context) {
        if let Err(reason) = msg.result {
            // The state in memory may now differ from what survives a crash: stop serving it.
            tracing::error!(tenant = %self.tenant, %reason, "flush failed; tenant unavailable");
            let reason = format!("a flush failed: {reason}");
            for waiting in self.waiting.drain(..) {
                let _ = waiting
                    .reply
                    .send(Err(TenantError::Storage(reason.clone())));
            }
            self.pending.clear();
            self.health = Health::Broken(reason);
            return;
        }
        while self.waiting.front().is_some_and(|w| w.seq <= msg.up_to) {
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
                outcome(event)
            });
            let _ = reply.send(answer);
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
        let result = match (&self.health, &read) {
            (_, Read::Summary) => Ok(ReadOutcome::Summary(self.summary())),
            (Health::Ready(flows), _) => Ok(answer(flows, &read)),
            (Health::Broken(reason), _) => Err(self.unavailable(reason)),
        };
        drop(permit);
        let _ = reply.send(result);
    }
}

impl Handler<Stop> for TenantActor {
    type Result = ();

    fn handle(&mut self, _msg: Stop, ctx: &mut Self::Context) {
        for waiting in self.waiting.drain(..) {
            let _ = waiting.reply.send(Err(TenantError::ShuttingDown));
        }
        self.pending.clear();
        actix::ActorContext::stop(ctx);
    }
}
