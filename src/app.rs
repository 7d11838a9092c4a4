//! Wiring of one server run: open the log, bind and start serving, recover every tenant in the
//! background (health answers at once, readiness and tenants once recovery is done), and on
//! stop finish in-flight work, stop the actors and flush.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};

use crate::config::{Durability, Settings, Storage};
use crate::http::{self, AdminAccess, AppState, AuthMode, Authenticator, TlsListener};
use crate::identity::tls::TlsMaterial;
use crate::identity::{Apps, IdentityError, Provider, SigningKey, Verifier};
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
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// A built server, listening, recovering tenants in the background.
pub struct Application {
    server: Server,
    address: SocketAddr,
    tls_address: Option<SocketAddr>,
    /// The CA a client of the HTTPS listener trusts, when the emulator made it.
    ca_file: Option<std::path::PathBuf>,
    registry: Arc<TenantRegistry>,
    log: Arc<dyn EventLog>,
    recovery: Option<JoinHandle<()>>,
}

impl Application {
    /// Opens storage, binds, starts serving and starts recovery. Must run inside an actix
    /// `System`.
    pub fn build(settings: &Settings) -> Result<Self, StartError> {
        let apps = Apps::new(settings.apps.clone())?;
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
        let key = Arc::new(signing_key(settings)?);
        let auth = match &settings.auth {
            AuthMode::Lenient => Authenticator::Lenient,
            AuthMode::None { default_tenant } => Authenticator::None(default_tenant.clone()),
            AuthMode::Strict { jwt_secret } => Authenticator::Strict(Verifier::new(
                Arc::clone(&key),
                jwt_secret.as_deref().map(str::as_bytes),
            )?),
        };
        let listener = TcpListener::bind(&settings.listen).map_err(bind_error)?;
        let address = listener.local_addr().map_err(bind_error)?;
        let (tls, ca_file) = tls_listener(settings)?;
        let tls_address = match &tls {
            Some(tls) => Some(tls.listener.local_addr().map_err(bind_error)?),
            None => None,
        };
        let state = AppState {
            registry: Arc::clone(&registry),
            auth,
            identity: Provider { key, apps },
            max_body_bytes: settings.max_body_bytes,
            body_timeout: settings.body_timeout,
            metrics: crate::metrics::Metrics::default(),
            admin: AdminAccess {
                key: settings.admin_key.clone(),
            },
            throttle: crate::chaos::Throttle::new(settings.throttle),
            faults: crate::chaos::Faults::new(settings.faults.clone()),
            journal: crate::journal::Journal::new(settings.journal_bytes),
        };
        let server = http::server(
            listener,
            tls,
            state,
            settings.workers,
            settings.handle_signals,
        )
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
            tls_address,
            ca_file,
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

    /// The HTTPS listener's address, when there is one.
    #[must_use]
    pub fn tls_address(&self) -> Option<SocketAddr> {
        self.tls_address
    }

    /// The CA file a client of the HTTPS listener must trust, when the emulator generated it.
    #[must_use]
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        self.ca_file.as_deref()
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

/// The HTTPS listener, bound, with its certificate (given, kept or made now), and the CA file
/// clients trust when the emulator made it.
fn tls_listener(
    settings: &Settings,
) -> Result<(Option<TlsListener>, Option<std::path::PathBuf>), StartError> {
    let Some(tls) = &settings.tls else {
        return Ok((None, None));
    };
    let material = match &tls.cert_and_key {
        Some((cert, key)) => TlsMaterial::from_files(cert, key)?,
        None => TlsMaterial::load_or_generate(&settings.identity_dir)?,
    };
    if material.generated {
        tracing::info!(
            dir = %settings.identity_dir.display(),
            "generated a local CA and a server certificate for localhost, 127.0.0.1 and ::1"
        );
    }
    let listener = TcpListener::bind(&tls.listen).map_err(|source| StartError::Bind {
        address: tls.listen.clone(),
        source,
    })?;
    let config = Arc::new(material.server_config()?);
    Ok((Some(TlsListener { listener, config }), material.ca_file))
}

/// The key tokens are signed with: given, kept in the data directory (made at its first start),
/// or, in memory, made for this process.
fn signing_key(settings: &Settings) -> Result<SigningKey, IdentityError> {
    if let Some(path) = &settings.signing_key {
        return SigningKey::load(path);
    }
    match settings.storage {
        Storage::Disk { .. } => {
            let path = settings.identity_dir.join("signing-key.pem");
            let (key, generated) = SigningKey::load_or_generate(&path)?;
            if generated {
                tracing::info!(path = %path.display(), kid = key.kid(), "generated the token signing key");
            }
            Ok(key)
        }
        Storage::Memory => Ok(SigningKey::generate()?.0),
    }
}

/// A server on its own thread with its own actix `System`, for tests, benchmarks and programs
/// that embed the emulator. Dropping it stops it gracefully.
pub struct BackgroundServer {
    address: SocketAddr,
    tls_address: Option<SocketAddr>,
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
                            let started = (
                                app.address(),
                                app.tls_address(),
                                app.handle(),
                                Arc::downgrade(&app.registry),
                            );
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
        let (address, tls_address, handle, registry) = receiver.recv().map_err(|_| {
            StartError::Thread(std::io::Error::other(
                "the server thread ended before it started",
            ))
        })??;
        Ok(Self {
            address,
            tls_address,
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

    /// The HTTPS listener's address, when it has one.
    #[must_use]
    pub fn tls_address(&self) -> Option<SocketAddr> {
        self.tls_address
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
