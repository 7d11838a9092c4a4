//! The arbiters the tenant actors run on: threads of the registry's own, or the HTTP workers'
//! arbiters, which join one by one as the workers start (docs/adr/0009). Picks one by a hash of
//! the tenant, and knows when every actor has gone.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use actix::dev::ArbiterHandle;
use actix::Arbiter;

use super::TenantError;

/// Where the tenant actors run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On this many arbiter threads the registry starts and stops itself (tests, benches, and
    /// programs that use a registry without an HTTP server).
    OwnThreads(usize),
    /// On the arbiters of this many HTTP workers: a request whose tenant lives on its own worker
    /// does not cross threads. Each worker joins as it starts
    /// ([`crate::tenant::TenantRegistry::join_as_worker`]).
    HttpWorkers(usize),
}

/// The arbiters, filled at once ([`Placement::OwnThreads`]) or as the workers join.
pub(super) struct Pool {
    size: usize,
    joined: Mutex<Joined>,
    changed: Condvar,
    /// Threads started by the pool itself: stopped and joined at shutdown.
    owned: Mutex<Vec<Arbiter>>,
    /// One clone per live actor: every actor has gone when only this one is left.
    alive: Arc<()>,
}

struct Joined {
    /// Each with the thread of the worker that joined it (`None`: an owned thread).
    arbiters: Vec<(Option<ThreadId>, ArbiterHandle)>,
    /// No more arbiters will come: the server has stopped.
    closed: bool,
}

impl Pool {
    /// Starts the owned threads, if any. Must run inside an actix `System`.
    pub(super) fn new(placement: Placement) -> Self {
        let (size, owned) = match placement {
            Placement::OwnThreads(threads) => {
                let threads = threads.max(1);
                (threads, (0..threads).map(|_| Arbiter::new()).collect())
            }
            Placement::HttpWorkers(workers) => (workers.max(1), Vec::new()),
        };
        let arbiters = owned.iter().map(|a| (None, a.handle())).collect();
        Self {
            size,
            joined: Mutex::new(Joined {
                arbiters,
                closed: false,
            }),
            changed: Condvar::new(),
            owned: Mutex::new(owned),
            alive: Arc::new(()),
        }
    }

    fn joined(&self) -> Result<MutexGuard<'_, Joined>, TenantError> {
        self.joined.lock().map_err(|_| poisoned())
    }

    /// Adds the calling thread's arbiter. A worker that actix restarts takes the place of one
    /// that has stopped; a thread without an arbiter, or one already in, changes nothing.
    pub(super) fn join_current(&self) {
        let Some(here) = Arbiter::try_current() else {
            return;
        };
        let Ok(mut joined) = self.joined() else {
            return;
        };
        let thread = Some(std::thread::current().id());
        if joined.arbiters.iter().any(|(t, _)| *t == thread) {
            return;
        }
        if joined.arbiters.len() < self.size {
            joined.arbiters.push((thread, here));
        } else if let Some(gone) = joined.arbiters.iter_mut().find(|(_, a)| !a.spawn(async {})) {
            *gone = (thread, here);
        } else {
            return;
        }
        self.changed.notify_all();
    }

    /// Waits (up to `timeout`) until every arbiter has joined; `Ok` at once with own threads.
    pub(super) fn wait_complete(&self, timeout: Duration) -> Result<(), TenantError> {
        let deadline = Instant::now() + timeout;
        let mut joined = self.joined()?;
        while joined.arbiters.len() < self.size {
            if joined.closed {
                return Err(TenantError::ShuttingDown);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TenantError::Internal(format!(
                    "only {} of {} HTTP workers started within {timeout:?}",
                    joined.arbiters.len(),
                    self.size
                )));
            }
            joined = self
                .changed
                .wait_timeout(joined, left)
                .map_err(|_| poisoned())?
                .0;
        }
        Ok(())
    }

    /// The arbiter for the actor of the tenant with hash `hash`, once every arbiter has joined,
    /// and the token the actor keeps for as long as it lives.
    pub(super) fn pick(&self, hash: u64) -> Result<(ArbiterHandle, Arc<()>), TenantError> {
        let joined = self.joined()?;
        if joined.arbiters.len() < self.size {
            return Err(if joined.closed {
                TenantError::ShuttingDown
            } else {
                TenantError::Recovering
            });
        }
        let slot = (hash % joined.arbiters.len() as u64) as usize;
        let arbiter = joined.arbiters[slot].1.clone();
        Ok((arbiter, Arc::clone(&self.alive)))
    }

    /// No more arbiters will join: wakes whoever waits for them.
    pub(super) fn close(&self) {
        if let Ok(mut joined) = self.joined() {
            joined.closed = true;
        }
        self.changed.notify_all();
    }

    /// Stops and joins the owned threads, then waits (up to `timeout`) until every actor has
    /// gone (those on HTTP workers go with their worker's thread); `false` if some are left.
    pub(super) fn stop(&self, timeout: Duration) -> bool {
        self.close();
        let owned = match self.owned.lock() {
            Ok(mut owned) => std::mem::take(&mut *owned),
            Err(_) => Vec::new(),
        };
        for arbiter in owned {
            arbiter.stop();
            if arbiter.join().is_err() {
                tracing::error!("a tenant arbiter thread panicked");
            }
        }
        let deadline = Instant::now() + timeout;
        while Arc::strong_count(&self.alive) > 1 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// The arbiters joined so far.
    #[cfg(test)]
    pub(super) fn arbiters(&self) -> Vec<ArbiterHandle> {
        self.joined()
            .map(|j| j.arbiters.iter().map(|(_, a)| a.clone()).collect())
            .unwrap_or_default()
    }
}

fn poisoned() -> TenantError {
    TenantError::Internal("the arbiter pool's lock was poisoned".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Has `arbiter` join `pool`, as a worker does when it starts, and waits until it has.
    fn join_on(arbiter: &Arbiter, pool: &Arc<Pool>) {
        let (joined, done) = std::sync::mpsc::channel();
        let pool = Arc::clone(pool);
        assert!(arbiter.spawn(async move {
            pool.join_current();
            let _ = joined.send(());
        }));
        done.recv().unwrap();
    }

    /// Starts an arbiter that joins `pool`.
    fn worker_joining(pool: &Arc<Pool>) -> Arbiter {
        let arbiter = Arbiter::new();
        join_on(&arbiter, pool);
        arbiter
    }

    fn stop_all(arbiters: impl IntoIterator<Item = Arbiter>) {
        for arbiter in arbiters {
            arbiter.stop();
            arbiter.join().unwrap();
        }
    }

    fn alive(pool: &Pool) -> usize {
        pool.arbiters().iter().filter(|a| a.spawn(async {})).count()
    }

    #[actix_web::test]
    async fn actors_are_placed_once_every_worker_has_joined() {
        let pool = Arc::new(Pool::new(Placement::HttpWorkers(2)));
        assert!(matches!(pool.pick(7), Err(TenantError::Recovering)));
        assert!(pool.wait_complete(Duration::from_millis(20)).is_err());
        let first = worker_joining(&pool);
        // A thread without an arbiter, and a worker joining twice, change nothing.
        let p = Arc::clone(&pool);
        std::thread::spawn(move || p.join_current()).join().unwrap();
        join_on(&first, &pool);
        assert_eq!(pool.arbiters().len(), 1);
        assert!(matches!(pool.pick(7), Err(TenantError::Recovering)));

        let waiting = Arc::clone(&pool);
        let waiter = std::thread::spawn(move || waiting.wait_complete(Duration::from_secs(30)));
        let second = worker_joining(&pool);
        assert!(waiter.join().unwrap().is_ok());
        assert_eq!(pool.arbiters().len(), 2);
        let (arbiter, token) = pool.pick(7).unwrap();
        assert!(arbiter.spawn(async {}));
        assert_eq!(
            Arc::strong_count(&token),
            2,
            "the pool and the actor's token"
        );
        drop(token);
        stop_all([first, second]);
    }

    #[actix_web::test]
    async fn a_restarted_worker_takes_the_place_of_the_one_that_stopped() {
        let pool = Arc::new(Pool::new(Placement::HttpWorkers(2)));
        let first = worker_joining(&pool);
        let second = worker_joining(&pool);
        stop_all([first]);
        assert_eq!(alive(&pool), 1);
        let restarted = worker_joining(&pool);
        assert_eq!(pool.arbiters().len(), 2);
        assert_eq!(alive(&pool), 2);
        stop_all([second, restarted]);
    }

    #[actix_web::test]
    async fn waiting_for_workers_ends_when_the_server_has_stopped() {
        let pool = Arc::new(Pool::new(Placement::HttpWorkers(2)));
        let waiting = Arc::clone(&pool);
        let waiter = std::thread::spawn(move || waiting.wait_complete(Duration::from_secs(30)));
        pool.close();
        assert!(matches!(
            waiter.join().unwrap(),
            Err(TenantError::ShuttingDown)
        ));
        assert!(matches!(pool.pick(1), Err(TenantError::ShuttingDown)));
    }

    #[actix_web::test]
    async fn stopping_waits_until_every_actor_has_gone() {
        let pool = Pool::new(Placement::OwnThreads(1));
        let (_, token) = pool.pick(0).unwrap();
        let gone = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(token);
        });
        assert!(pool.stop(Duration::from_secs(30)));
        gone.join().unwrap();
        let pool = Pool::new(Placement::OwnThreads(1));
        let (_, token) = pool.pick(0).unwrap();
        assert!(!pool.stop(Duration::from_millis(20)), "an actor still runs");
        drop(token);
    }
}
