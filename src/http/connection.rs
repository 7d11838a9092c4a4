//! One client connection as the handlers see it: what a transport fault does to it. A handler
//! that meets a transport fault answers a [`severed`] placeholder; the top-level handler hands
//! it to [`carry_out`], which (for a hang) waits until the client gives up or the server stops,
//! then marks the connection; the connection's stream ([`super::protocol::ProtocolErrors`])
//! then refuses to write the placeholder and the connection ends, with a reset or a plain close.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use actix_http::ConnectionType;
use actix_server::GracefulShutdownSignal;
use actix_web::{HttpRequest, HttpResponse};
use tokio::sync::Notify;

use crate::chaos::Transport;

/// What a connection's stream does with its next write.
const OPEN: u8 = 0;
const CLOSE: u8 = 1;
const RESET: u8 = 2;

/// The state a connection's stream and its handlers share.
pub(crate) struct Connection {
    fate: AtomicU8,
    /// The client closed its end or the stream failed.
    gone: AtomicBool,
    /// A request's handler began since the stream last looked: its head arrived whole.
    began: AtomicBool,
    /// An answer that closes the connection is on its way: the stream reads nothing more (the
    /// rest of a body not read would otherwise hold a chunked connection open).
    ending: AtomicBool,
    wake: Notify,
    shutdown: GracefulShutdownSignal,
}

/// Marks a placeholder answer: the connection it would go out on is to be broken instead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Severed(pub Transport);

/// How a severed connection ends, for the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Close,
    Reset,
}

impl Connection {
    pub(crate) fn new(shutdown: GracefulShutdownSignal) -> Arc<Self> {
        Arc::new(Self {
            fate: AtomicU8::new(OPEN),
            gone: AtomicBool::new(false),
            began: AtomicBool::new(false),
            ending: AtomicBool::new(false),
            wake: Notify::new(),
            shutdown,
        })
    }

    /// How the stream must end the connection instead of writing, once a handler decided it.
    pub(crate) fn fate(&self) -> Option<Fate> {
        match self.fate.load(Ordering::Acquire) {
            CLOSE => Some(Fate::Close),
            RESET => Some(Fate::Reset),
            _ => None,
        }
    }

    /// Whether the answer being written closes the connection: nothing more is to be read.
    pub(crate) fn ending(&self) -> bool {
        self.ending.load(Ordering::Acquire)
    }

    /// Whether a request's handler began since the last call (for the stream's head timeout).
    pub(crate) fn take_began(&self) -> bool {
        self.began.load(Ordering::Relaxed) && self.began.swap(false, Ordering::Relaxed)
    }

    /// Called by the stream when the client's end closes or fails.
    pub(crate) fn client_gone(&self) {
        if !self.gone.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Until the client closes its end or the server starts a graceful stop.
    async fn until_abandoned(&self) {
        if self.gone.load(Ordering::Acquire) {
            return;
        }
        tokio::select! {
            () = self.wake.notified() => tracing::debug!("a hung request ends: the client left"),
            () = self.shutdown.notified() => tracing::debug!("a hung request ends: the server stops"),
        }
    }
}

/// Tells the connection of `req` that a request's handler began: its head arrived whole.
pub(crate) fn began(req: &HttpRequest) {
    if let Some(connection) = req.conn_data::<Arc<Connection>>() {
        connection.began.store(true, Ordering::Relaxed);
    }
}

/// A placeholder answer for a request whose connection `transport` breaks; it is never written.
pub(crate) fn severed(transport: Transport) -> HttpResponse {
    let mut response = HttpResponse::BadGateway().finish();
    response.extensions_mut().insert(Severed(transport));
    response
}

/// Whether `response` is a placeholder of [`severed`], and for which transport fault.
pub(crate) fn severed_by(response: &HttpResponse) -> Option<Transport> {
    response.extensions().get::<Severed>().map(|s| s.0)
}

/// The answer to write for `response` on `req`'s connection: itself, or, for a placeholder,
/// once the fault is carried out (a hang waits first), a response the stream will not write.
pub(crate) async fn carry_out(req: &HttpRequest, response: HttpResponse) -> HttpResponse {
    let Some(transport) = severed_by(&response) else {
        if response.head().connection_type() == ConnectionType::Close {
            if let Some(connection) = req.conn_data::<Arc<Connection>>() {
                connection.ending.store(true, Ordering::Release);
            }
        }
        return response;
    };
    let Some(connection) = req.conn_data::<Arc<Connection>>() else {
        return response;
    };
    let fate = match transport {
        Transport::Reset => RESET,
        Transport::Close => CLOSE,
        Transport::Hang => {
            connection.until_abandoned().await;
            CLOSE
        }
    };
    connection.fate.store(fate, Ordering::Release);
    response
}
