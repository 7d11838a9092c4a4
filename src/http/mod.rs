//! The Graph front end: routes under `/beta`, auth and tenant extraction, the request context
//! (request ids), OData query parsing, JSON bodies and the Graph error envelope. It talks to
//! tenants through the registry and knows nothing of sled.

pub(crate) mod admin;
pub mod auth;
mod batch;
pub mod body;
mod context;
pub(crate) mod error;
pub mod filter;
mod handlers;
mod json;
mod protocol;
pub mod query;
mod response;
pub(crate) mod route;

use std::net::TcpListener;
use std::sync::Arc;

use actix_http::HttpService;
use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::{AppConfig, Server};
use actix_web::middleware::from_fn;
use actix_web::{web, App};

pub use auth::AuthMode;
pub use context::RequestContext;
pub use error::ApiError;
pub use response::JSON_CONTENT_TYPE;

use crate::metrics::Metrics;
use crate::tenant::TenantRegistry;
pub use admin::AdminAccess;

/// What every request handler shares.
pub struct AppState {
    pub registry: Arc<TenantRegistry>,
    pub auth: AuthMode,
    /// Create bodies larger than this get 413 and are never parsed.
    pub max_body_bytes: usize,
    /// A create body not received within this gets 408 and is never parsed.
    pub body_timeout: std::time::Duration,
    pub metrics: Metrics,
    pub admin: AdminAccess,
}

/// How long a client may take to send a request's head (then 408), and an idle keep-alive
/// connection stays open: actix-web's defaults.
const HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(5);

/// Builds the server on an already-bound listener (port 0 in tests). Each connection's stream
/// goes through [`protocol::ProtocolErrors`], so even the answers actix writes before a handler
/// runs carry the Graph envelope.
pub fn server(
    listener: TcpListener,
    state: AppState,
    workers: usize,
    handle_signals: bool,
) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    let local = listener.local_addr()?;
    let builder = actix_server::Server::build();
    let shutdown = builder.graceful_shutdown_signal();
    let builder = builder
        .workers(workers.max(1))
        .shutdown_timeout(10)
        // actix's own handling makes SIGINT a forced stop that drops requests in flight; here
        // SIGINT (Ctrl-C) and SIGTERM both stop gracefully.
        .disable_signals()
        .listen("graph", listener, move || {
            // Runs on each worker as it starts: the tenant actors live on the workers' arbiters.
            state.registry.join_as_worker();
            let app = App::new()
                .app_data(state.clone())
                .service(admin::scope().wrap(from_fn(context::stamp)))
                .default_service(web::to(handlers::graph));
            let shutdown = shutdown.clone();
            fn_service(|stream: tokio::net::TcpStream| async move {
                let peer = stream.peer_addr().ok();
                Ok::<_, actix_http::error::DispatchError>((
                    protocol::ProtocolErrors::new(stream, peer),
                    peer,
                ))
            })
            .and_then(
                HttpService::build()
                    .keep_alive(KEEP_ALIVE)
                    .client_request_timeout(HEAD_TIMEOUT)
                    .local_addr(local)
                    .graceful_shutdown_signal(move || {
                        let shutdown = shutdown.clone();
                        async move { shutdown.notified().await }
                    })
                    .h1(map_config(app.into_factory(), |()| AppConfig::default())),
            )
        })?;
    let server = builder.run();
    if handle_signals {
        let handle = server.handle();
        actix_web::rt::spawn(async move {
            if let Some(signal) = stop_signal().await {
                tracing::info!(
                    signal,
                    "stopping gracefully: finishing the requests in flight"
                );
                handle.stop(true).await;
            }
        });
    }
    Ok(server)
}

/// Waits for SIGINT or SIGTERM; `None` when they cannot be watched.
#[cfg(unix)]
async fn stop_signal() -> Option<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).ok()?;
    let mut terminate = signal(SignalKind::terminate()).ok()?;
    tokio::select! {
        _ = interrupt.recv() => Some("SIGINT"),
        _ = terminate.recv() => Some("SIGTERM"),
    }
}

/// Waits for Ctrl-C; `None` when it cannot be watched.
#[cfg(not(unix))]
async fn stop_signal() -> Option<&'static str> {
    tokio::signal::ctrl_c().await.ok().map(|()| "Ctrl-C")
}
