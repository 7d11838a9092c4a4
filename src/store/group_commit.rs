//! Group commit: one dedicated thread runs sled's blocking `flush()` for every writer at once.
//! Callbacks that arrive while a flush runs wait for the next one, so under load one flush
//! serves many events, across requests and tenants. The flush never runs on an actix thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use super::DurableCallback;

/// Counters of the group commit since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Flushes run.
    pub flushes: u64,
    /// Events made durable by them.
    pub events: u64,
}

#[derive(Default)]
struct Counters {
    flushes: AtomicU64,
    events: AtomicU64,
}

/// A callback and the number of events it waits for.
type Waiter = (u64, DurableCallback);

pub(super) struct GroupCommit {
    /// `None` once shutting down; dropping it ends the thread's receive loop.
    sender: Option<mpsc::Sender<Waiter>>,
    worker: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl GroupCommit {
    pub(super) fn start(db: sled::Db) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel::<Waiter>();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let worker = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || run(&db, &receiver, &thread_counters))?;
        Ok(Self {
            sender: Some(sender),
            worker: Some(worker),
            counters,
        })
    }

    /// Queues `done`, which waits for `events` events, for the next flush. An event appended
    /// before this call is covered by that flush, because the flush starts only after the
    /// callback has been taken off the queue.
    pub(super) fn submit(&self, events: u64, done: DurableCallback) {
        let refused = match &self.sender {
            Some(sender) => sender.send((events, done)).err().map(|e| e.0 .1),
            None => Some(done),
        };
        if let Some(done) = refused {
            done(Err("the group commit has stopped".to_owned()));
        }
    }

    pub(super) fn stats(&self) -> CommitStats {
        CommitStats {
            flushes: self.counters.flushes.load(Ordering::Relaxed),
            events: self.counters.events.load(Ordering::Relaxed),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(worker) = self.worker.take() {
            if worker.join().is_err() {
                tracing::error!("the group-commit thread panicked");
            }
        }
    }
}

fn run(db: &sled::Db, receiver: &mpsc::Receiver<Waiter>, counters: &Counters) {
    while let Ok(first) = receiver.recv() {
        let mut waiters = vec![first];
        waiters.extend(receiver.try_iter());
        let result = db.flush().map(|_| ()).map_err(|e| {
            let reason = super::describe(&e);
            tracing::error!(error = %reason, "flush failed");
            reason
        });
        counters.flushes.fetch_add(1, Ordering::Relaxed);
        counters.events.fetch_add(
            waiters.iter().map(|(events, _)| events).sum(),
            Ordering::Relaxed,
        );
        for (_, done) in waiters {
            done(result.clone());
        }
    }
}
