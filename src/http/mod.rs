//! The Graph front end: routes under `/beta`, auth and tenant extraction, the request context
//! (request ids), OData query parsing, JSON bodies and the Graph error envelope. It talks to
//! tenants through the registry and knows nothing of sled.

pub(crate) mod admin;
pub mod auth;
mod authority;
pub mod batch;
pub mod body;
mod connection;
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

pub use auth::{Access, AuthMode, Authenticator, Caller};
pub use context::RequestContext;
pub use error::ApiError;
pub use response::JSON_CONTENT_TYPE;

use crate::metrics::Metrics;
use crate::tenant::TenantRegistry;
pub use admin::{AdminAccess, ADMIN_KEY_HEADER};

/// What every request handler shares.
pub struct AppState {
    pub registry: Arc<TenantRegistry>,
    pub auth: Authenticator,
    /// The local identity provider: signing key and registered apps.
    pub identity: crate::identity::Provider,
    /// Create bodies larger than this get 413 and are never parsed.
    pub max_body_bytes: usize,
    /// A create body not received within this gets 408 and is never parsed.
    pub body_timeout: std::time::Duration,
    pub metrics: Metrics,
    pub admin: AdminAccess,
    /// Throttling buckets and limits (none by default).
    pub throttle: crate::chaos::Throttle,
    /// The fault rules in force (none by default).
    pub faults: crate::chaos::Faults,
    /// The request journal (`/_emulator/requests`).
    pub journal: crate::journal::Journal,
}

/// How long a client may take to send a request's head (then 408; a later request's head is
/// timed by [`protocol::ProtocolErrors`]), and an idle keep-alive
/// connection stays open: actix-web's defaults.
const HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a client may take to complete a TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Marks the apps of the HTTPS listener, so that the URLs they write say `https`.
#[derive(Clone, Copy)]
pub(crate) struct Https;

/// The address an app's listener is bound to: the host of the URLs it writes for a request that
/// names none (HTTP/1.0 without `Host`).
#[derive(Clone, Copy)]
pub(crate) struct ListenerAddr(pub(crate) std::net::SocketAddr);

/// The HTTPS listener: a bound socket and the TLS configuration it serves.
pub struct TlsListener {
    pub listener: TcpListener,
    pub config: Arc<rustls::ServerConfig>,
}

/// The HTTP/1 service both listeners run over their streams, serving `app`.
macro_rules! h1 {
    ($shutdown:expr, $local:expr, $app:expr) => {{
        let shutdown = $shutdown.clone();
        HttpService::build()
            .keep_alive(KEEP_ALIVE)
            .client_request_timeout(HEAD_TIMEOUT)
            .local_addr($local)
            .on_connect_ext(|io: &protocol::ProtocolErrors<_>, data| {
                data.insert(io.connection());
            })
            .graceful_shutdown_signal(move || {
                let shutdown = shutdown.clone();
                async move { shutdown.notified().await }
            })
            .h1(map_config($app.into_factory(), |()| AppConfig::default()))
    }};
}

/// Builds the server on already-bound listeners (port 0 in tests): plain HTTP, and HTTPS when
/// given. Each connection's stream (after the TLS handshake, on HTTPS) goes through
/// [`protocol::ProtocolErrors`], so even the answers actix writes before a handler runs carry
/// the Graph envelope.
pub fn server(
    listener: TcpListener,
    tls: Option<TlsListener>,
    state: AppState,
    workers: usize,
    handle_signals: bool,
) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    let local = listener.local_addr()?;
    let builder = actix_server::Server::build();
    let shutdown = builder.graceful_shutdown_signal();
    let http = {
        let (state, shutdown) = (state.clone(), shutdown.clone());
        move || {
            // Runs on each worker as it starts: the tenant actors live on the workers' arbiters.
            state.registry.join_as_worker();
            let app = App::new()
                .app_data(state.clone())
                .app_data(ListenerAddr(local))
                .service(admin::scope().wrap(from_fn(context::stamp)))
                .default_service(web::to(handlers::graph));
            let signal = shutdown.clone();
            fn_service(move |stream: tokio::net::TcpStream| {
                let connection = connection::Connection::new(signal.clone());
                async move {
                    let peer = stream.peer_addr().ok();
                    Ok::<_, actix_http::error::DispatchError>((
                        protocol::ProtocolErrors::new(stream, peer, connection),
                        peer,
                    ))
                }
            })
            .and_then(h1!(shutdown, local, app))
        }
    };
    let mut builder = builder
        .workers(workers.max(1))
        .shutdown_timeout(10)
        // actix's own handling makes SIGINT a forced stop that drops requests in flight; here
        // SIGINT (Ctrl-C) and SIGTERM both stop gracefully.
        .disable_signals()
        .listen("graph", listener, http)?;
    if let Some(TlsListener { listener, config }) = tls {
        let local = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        builder = builder.listen("graph-tls", listener, move || {
            state.registry.join_as_worker();
            let app = App::new()
                .app_data(state.clone())
                .app_data(Https)
                .app_data(ListenerAddr(local))
                .service(admin::scope().wrap(from_fn(context::stamp)))
                .default_service(web::to(handlers::graph));
            let (acceptor, signal) = (acceptor.clone(), shutdown.clone());
            fn_service(move |stream: tokio::net::TcpStream| {
                let acceptor = acceptor.clone();
                let connection = connection::Connection::new(signal.clone());
                async move {
                    let peer = stream.peer_addr().ok();
                    let mut first = [0_u8; 1];
                    let peeked =
                        actix_web::rt::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first))
                            .await;
                    if matches!(peeked, Ok(Ok(1))) && first[0] != protocol::TLS_HANDSHAKE {
                        let refused = protocol::refuse_plain_http(stream, peer, local);
                        let _ = actix_web::rt::time::timeout(HANDSHAKE_TIMEOUT, refused).await;
                        return Err(actix_http::error::DispatchError::Io(
                            std::io::ErrorKind::InvalidData.into(),
                        ));
                    }
                    let tls =
                        actix_web::rt::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))
                            .and_then(|accepted| accepted)
                            .map_err(|e| {
                                tracing::debug!(error = %e, peer = ?peer, "TLS handshake failed");
                                actix_http::error::DispatchError::Io(e)
                            })?;
                    Ok::<_, actix_http::error::DispatchError>((
                        protocol::ProtocolErrors::new(tls, peer, connection),
                        peer,
                    ))
                }
            })
            .and_then(h1!(shutdown, local, app))
        })?;
    }
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
