//! Wiring of one server run: open the log, recover every tenant, bind, serve, and on stop
//! finish in-flight work, stop the actors and flush.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};

use crate::config::{Durability, Settings, Storage};
use crate::http::{self, AppState};
use crate::store::{EventLog, MemoryEventLog, SledEventLog, StoreError};
use crate::tenant::{RecoverySummary, TenantRegistry};

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
}

/// A built server, listening, not yet running.
pub struct Application {
    server: Server,
    address: SocketAddr,
    registry: Arc<TenantRegistry>,
    log: Arc<dyn EventLog>,
    recovery: RecoverySummary,
}

impl Application {
    /// Opens storage, recovers every tenant and binds. Must run inside an actix `System`.
    pub fn build(settings: &Settings) -> Result<Self, StartError> {
        let log: Arc<dyn EventLog> = match &settings.storage {
            Storage::Disk { dir, durability } => {
                Arc::new(SledEventLog::open(dir, *durability == Durability::Flush)?)
            }
            Storage::Memory => Arc::new(MemoryEventLog::new()),
        };
        let registry = Arc::new(TenantRegistry::new(
            Arc::clone(&log),
            settings.arbiters,
            settings.queue_limit,
        ));
        let recovery = registry.recover_all()?;
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
        };
        let server = http::server(listener, state, settings.workers, settings.handle_signals)
            .map_err(bind_error)?;
        Ok(Self {
            server,
            address,
            registry,
            log,
            recovery,
        })
    }

    /// The address actually bound.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What recovery found.
    #[must_use]
    pub fn recovery(&self) -> &RecoverySummary {
        &self.recovery
    }

    /// A handle to stop the server gracefully.
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (signal or handle), then drains, stops the actors and flushes.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self {
            server,
            registry,
            log,
            ..
        } = self;
        let served = server.await;
        registry.shutdown();
        if let Err(e) = log.flush() {
            tracing::error!(error = %e, "final flush failed");
        }
        let stats = log.commit_stats();
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
