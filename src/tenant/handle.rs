//! The way to one tenant's actor: a bounded count of requests sent but not yet taken up
//! (past the limit a request is refused at once with 503, since actix mailboxes do not push
//! back on senders), and the messages that carry a command or a read with its reply channel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Addr;
use tokio::sync::oneshot;

use super::actor::{Execute, Permit, Query, TenantActor};
use super::{Read, ReadOutcome, RequestMeta, TenantError, TenantId, WriteOutcome};
use crate::domain::Command;

/// The way to one tenant's actor.
#[derive(Clone)]
pub struct TenantHandle {
    pub(super) tenant: TenantId,
    pub(super) addr: Addr<TenantActor>,
    /// Commands and reads sent but not yet taken up by the actor.
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) queue_limit: usize,
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

    pub(super) fn send_execute(&self, command: Command, meta: RequestMeta) -> Sent<WriteOutcome> {
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

    pub(super) fn send_read(&self, read: Read) -> Sent<ReadOutcome> {
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
pub(super) type Sent<T> = Result<oneshot::Receiver<Result<T, TenantError>>, TenantError>;

/// The answer to a sent message.
pub(super) async fn settled<T>(sent: Sent<T>) -> Result<T, TenantError> {
    sent?.await.map_err(|_| TenantError::ShuttingDown)?
}
