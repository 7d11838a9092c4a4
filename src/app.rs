//! Wiring of one server run: open the log, bind and start serving, recover every tenant in the
//! background (health answers at once, readiness and tenants once recovery is done), and on
//! stop finish in-flight work, stop the actors and flush.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};

use crate::config::{Durability, Settings, Storage};
use crate::http::{self, AdminAccess, AppState};
use crate::store::{EventLog, MemoryEventLog, SledEventLog, StoreError};
use crate::tenant::{
    canonical_stream_names, Placement, RegistryOptions, StreamNameError, TenantRegistry,
};

/// How long a stopping server waits for its HTTP workers to let go of the storage.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot start the recovery thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    StreamNames(#[from] StreamNameError),
}

/// A built server, listening, recovering tenants in the background.
pub struct Application {
    server: Server,
    address: SocketAddr,
    registry: Arc<TenantRegistry>,
    log: Arc<dyn EventLog>,
    recovery: Option<JoinHandle<()>>,
}

impl Application {
    /// Opens storage, binds, starts serving and starts recovery. Must run inside an actix
    /// `System`.
    pub fn build(settings: &Settings) -> Result<Self, StartError> {
        let log: Arc<dyn EventLog> = match &settings.storage {
            Storage::Disk { dir, durability } => Arc::new(SledEventLog::open_reserving(
                dir,
                *durability == Durability::Flush,
                settings.disk_reserve,
            )?),
            Storage::Memory => Arc::new(MemoryEventLog::new()),
        };
        canonical_stream_names(log.as_ref())?;
        let registry = Arc::new(TenantRegistry::new(
            Arc::clone(&log),
            RegistryOptions {
                placement: Placement::HttpWorkers(settings.workers),
                queue_limit: settings.queue_limit,
                // Snapshots only shorten recovery, and an in-memory log is never recovered.
                snapshot_every: match settings.storage {
                    Storage::Disk { .. } => settings.snapshot_every,
                    Storage::Memory => None,
                },
                idle_after: match settings.storage {
                    Storage::Disk { .. } => settings.tenant_idle,
                    Storage::Memory => None,
                },
            },
        ));
        let bind_error = |source| StartError::Bind {
            address: settings.listen.clone(),
            source,
        };
        let listener = TcpListener::bind(&settings.listen).map_err(bind_error)?;
        let address = listener.local_addr().map_err(bind_error)?;
        let state = AppState {
            registry: Arc::clone(&registry),
            auth: settings.auth.clone(),
            max_body_bytes: settings.max_body_bytes,
            body_timeout: settings.body_timeout,
            metrics: crate::metrics::Metrics::default(),
            admin: AdminAccess {
                key: settings.admin_key.clone(),
            },
        };
        let server = http::server(listener, state, settings.workers, settings.handle_signals)
            .map_err(bind_error)?;
        let recovering = Arc::clone(&registry);
        let recovery = std::thread::Builder::new()
            .name("recovery".into())
            .spawn(move || match recovering.recover_all() {
                Ok(summary) => {
                    if !summary.broken.is_empty() {
                        tracing::error!(tenants = ?summary.broken, "these tenants' logs could not be recovered: they answer 503");
                    }
                    tracing::info!(
                        tenants = summary.tenants,
                        events = summary.events,
                        flows = summary.flows,
                        from_snapshots = summary.from_snapshots,
                        recovery_ms = summary.elapsed.as_millis() as u64,
                        "recovered; ready"
                    );
                }
                Err(e) => tracing::error!(error = %e, "recovery failed; the emulator stays unready"),
            })
            .map_err(StartError::Thread)?;
        Ok(Self {
            server,
            address,
            registry,
            log,
            recovery: Some(recovery),
        })
    }

    /// The address actually bound.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A handle to stop the server gracefully.
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (signal or handle), then drains, stops the actors and flushes.
    /// When it returns, the storage (and the data directory's lock) has been released.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        let served = (&mut self.server).await;
        self.registry.workers_stopped();
        if let Some(recovery) = self.recovery.take() {
            if recovery.join().is_err() {
                tracing::error!("the recovery thread panicked");
            }
        }
        // The HTTP workers drop their copy of the app state, and with it the storage, on their
        // own threads shortly after the server stops.
        let deadline = Instant::now() + RELEASE_TIMEOUT;
        while Arc::strong_count(&self.registry) > 1 && Instant::now() < deadline {
            actix_web::rt::time::sleep(Duration::from_millis(1)).await;
        }
        if Arc::strong_count(&self.registry) > 1 {
            tracing::warn!("HTTP workers still hold the app state; the storage may stay open");
        }
        self.registry.shutdown();
        if let Err(e) = self.log.flush() {
            tracing::error!(error = %e, "final flush failed");
        }
        let stats = self.log.commit_stats();
        if stats.flushes > 0 {
            tracing::info!(
                flushes = stats.flushes,
                events = stats.events,
                events_per_flush = format!("{:.1}", stats.events as f64 / stats.flushes as f64),
                "stopped"
            );
        } else {
            tracing::info!("stopped");
        }
        served
    }
}

/// A server on its own thread with its own actix `System`, for tests, benchmarks and programs
/// that embed the emulator. Dropping it stops it gracefully.
pub struct BackgroundServer {
    address: SocketAddr,
    handle: ServerHandle,
    /// Weak: a stopping server waits until it holds the only reference to its registry.
    registry: Weak<TenantRegistry>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundServer {
    /// Builds and starts a server; returns once it listens (recovery may still be running: see
    /// [`BackgroundServer::wait_ready`]).
    pub fn start(settings: &Settings) -> Result<Self, StartError> {
        let (sender, receiver) = std::sync::mpsc::channel();
        let settings = settings.clone();
        let thread = std::thread::Builder::new()
            .name("emulator".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    match Application::build(&settings) {
                        Ok(app) => {
                            let started =
                                (app.address(), app.handle(), Arc::downgrade(&app.registry));
                            let _ = sender.send(Ok(started));
                            if let Err(e) = app.run_until_stopped().await {
                                tracing::error!(error = %e, "the server stopped with an error");
                            }
                        }
                        Err(e) => {
                            let _ = sender.send(Err(e));
                        }
                    }
                });
            })
            .map_err(StartError::Thread)?;
        let (address, handle, registry) = receiver.recv().map_err(|_| {
            StartError::Thread(std::io::Error::other(
                "the server thread ended before it started",
            ))
        })??;
        Ok(Self {
            address,
            handle,
            registry,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Waits until every tenant is recovered; `false` if that took longer than `timeout`.
    #[must_use]
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.registry.upgrade().is_some_and(|r| r.is_ready()) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Stops gracefully and waits until the storage is released. Must not be called from an
    /// actix thread.
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            actix_web::rt::System::new().block_on(self.handle.stop(true));
            if thread.join().is_err() {
                tracing::error!("the server thread panicked");
            }
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        self.stop();
    }
}
