//! Answers to requests that never reach a handler: a request line or headers that are not valid
//! HTTP (400), headers over the limit (431) or headers that do not arrive in time (408). actix's
//! HTTP/1 dispatcher writes those itself with an empty body; this stream wrapper, between the
//! socket and the dispatcher, rewrites each into the Graph error envelope with a request id, and
//! logs it at INFO (the client is at fault, not the server). It also carries out the transport
//! faults its [`Connection`] was marked with: the marked answer is never written, and the
//! connection ends with a reset or a close. A plain HTTP request on the HTTPS listener gets a
//! `400` envelope in plain HTTP.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::connection::{Connection, Fate};
use super::error::{bad_request_body, protocol_error_body};

/// The first byte of every TLS handshake (a record of content type `handshake`).
pub(crate) const TLS_HANDSHAKE: u8 = 0x16;

/// Answers a plain HTTP request sent to the HTTPS listener (its first byte, not yet read,
/// cannot open a TLS handshake) with a `400` envelope that says so, as curl or a browser then
/// shows it, rather than a TLS alert the client cannot read. Bounded by the caller's timeout.
pub(crate) async fn refuse_plain_http(
    mut stream: tokio::net::TcpStream,
    peer: Option<SocketAddr>,
    https: SocketAddr,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // What has arrived is read first: closing a socket with unread bytes sends a reset, which
    // can reach the client before the answer does.
    let mut scratch = vec![0_u8; 16 * 1024];
    let _ = stream.read(&mut scratch).await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let message = format!(
        "This port speaks HTTPS and the request came as plain HTTP: send it to https://{https}/."
    );
    let Some(body) = bad_request_body(&message, &request_id) else {
        return;
    };
    tracing::info!(%request_id, peer = ?peer, "refused a plain HTTP request on the HTTPS port");
    let head = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\nrequest-id: {request_id}\r\nclient-request-id: {request_id}\r\n\
         date: {}\r\n\r\n",
        body.len(),
        httpdate::fmt_http_date(std::time::SystemTime::now())
    );
    if stream.write_all(head.as_bytes()).await.is_err() || stream.write_all(&body).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    // Until the client closes its end (or the caller's timeout), so the answer is not reset.
    while matches!(stream.read(&mut scratch).await, Ok(n) if n > 0) {}
}

/// The heads the dispatcher writes for its own errors (on a connection's first request followed
/// by `connection: close`, on a later one not), each ending the connection.
const CANNED: [(u16, &[u8]); 3] = [
    (400, b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"),
    (
        408,
        b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n",
    ),
    (
        431,
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n",
    ),
];

/// What every canned head holds: one search of each written buffer for it, and only a buffer
/// that has it is searched for which answer it is. No answer of the application has an empty
/// body with one of those statuses: each carries the Graph envelope.
const CANNED_TAIL: &[u8] = b"\r\ncontent-length: 0\r\n";

/// The header line that follows a canned head on a connection's first request.
const CLOSE_LINE: &[u8] = b"connection: close\r\n";

/// A connection's stream, rewriting the dispatcher's empty error answers on their way out.
pub(crate) struct ProtocolErrors<S> {
    inner: S,
    peer: Option<SocketAddr>,
    /// A rewritten answer not yet written, from `written` on.
    pending: Vec<u8>,
    written: usize,
    connection: Arc<Connection>,
    /// An answer went out since a request's handler last began: the next bytes read start a
    /// new request's head.
    between: bool,
    /// When that head must be complete (its handler begun), else `408` and the connection ends.
    head_deadline: Option<Pin<Box<actix_web::rt::time::Sleep>>>,
}

impl<S> ProtocolErrors<S> {
    pub(crate) fn new(inner: S, peer: Option<SocketAddr>, connection: Arc<Connection>) -> Self {
        Self {
            inner,
            peer,
            pending: Vec::new(),
            written: 0,
            connection,
            between: false,
            head_deadline: None,
        }
    }

    /// The connection's shared state, for its requests' handlers.
    pub(crate) fn connection(&self) -> Arc<Connection> {
        Arc::clone(&self.connection)
    }
}

/// A stream over a TCP socket whose close can be made a reset.
pub(crate) trait Socket {
    fn tcp(&self) -> &tokio::net::TcpStream;
}

impl Socket for tokio::net::TcpStream {
    fn tcp(&self) -> &tokio::net::TcpStream {
        self
    }
}

impl Socket for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    fn tcp(&self) -> &tokio::net::TcpStream {
        self.get_ref().0
    }
}

impl<S: Socket> ProtocolErrors<S> {
    /// The error that ends a connection a handler marked, instead of any further write; for a
    /// reset, the socket first drops what it has not sent and will answer its close with RST.
    fn severed(&self) -> Option<io::Error> {
        match self.connection.fate()? {
            Fate::Close => Some(io::ErrorKind::BrokenPipe.into()),
            Fate::Reset => {
                if let Err(e) = self.inner.tcp().set_zero_linger() {
                    tracing::debug!(error = %e, "could not make the close a reset");
                }
                Some(io::ErrorKind::ConnectionReset.into())
            }
        }
    }
}

/// `bytes` with a canned error answer in it replaced by the Graph one; `None` when it has none.
fn rewrite(bytes: &[u8], peer: Option<SocketAddr>) -> Option<Vec<u8>> {
    // Every write is searched: the searcher is built once, not per call.
    static TAIL: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(CANNED_TAIL));
    TAIL.find(bytes)?;
    let (at, status, canned) = CANNED.iter().find_map(|(status, canned)| {
        memchr::memmem::find(bytes, canned).map(|at| (at, *status, *canned))
    })?;
    let mut rest = at + canned.len();
    if bytes[rest..].starts_with(CLOSE_LINE) {
        rest += CLOSE_LINE.len();
    }
    // The dispatcher's other header lines (its `date`) and the blank line end the head; with no
    // other line, the blank line follows at once.
    let end_of_head = if bytes[rest..].starts_with(b"\r\n") {
        rest + 2
    } else {
        rest + memchr::memmem::find(&bytes[rest..], b"\r\n\r\n")? + 4
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = protocol_error_body(status, &request_id)?;
    tracing::info!(status, %request_id, peer = ?peer, "refused a request before parsing it");
    let status_line = &canned[..canned.len() + 2 - CANNED_TAIL.len()];
    let mut out = Vec::with_capacity(bytes.len() + body.len() + 200);
    out.extend_from_slice(&bytes[..at]);
    out.extend_from_slice(status_line);
    out.extend_from_slice(b"content-type: application/json\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(b"connection: close\r\n");
    out.extend_from_slice(format!("request-id: {request_id}\r\n").as_bytes());
    out.extend_from_slice(format!("client-request-id: {request_id}\r\n").as_bytes());
    out.extend_from_slice(&bytes[rest..end_of_head]);
    out.extend_from_slice(&body);
    out.extend_from_slice(&bytes[end_of_head..]);
    Some(out)
}

impl<S: AsyncWrite + Unpin> ProtocolErrors<S> {
    /// Writes what is left of a rewritten answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ProtocolErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // actix times out the head of a connection's first request only; a later head that
        // starts and never ends is answered 408 here, as the first one would be.
        if self.connection.take_began() {
            self.head_deadline = None;
        }
        if let Some(deadline) = self.head_deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                self.head_deadline = None;
                return Poll::Ready(self.time_out(cx));
            }
        }
        // The answer being written ends the connection: what the client sends now is read by
        // no one, so the dispatcher is told the stream ended and closes once it is written.
        if self.connection.ending() {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let read = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        // An end of stream (nothing read into room for something) or an error: a hung request
        // on this connection can stop waiting.
        if read.is_err() || (buf.filled().len() == before && buf.remaining() > 0) {
            self.connection.client_gone();
        } else if self.between && buf.filled().len() > before {
            self.between = false;
            let mut deadline = Box::pin(actix_web::rt::time::sleep(super::HEAD_TIMEOUT));
            // Polled once, so that its expiry wakes this connection.
            let _ = deadline.as_mut().poll(cx);
            self.head_deadline = Some(deadline);
        }
        Poll::Ready(read)
    }
}

impl<S: AsyncWrite + Unpin> ProtocolErrors<S> {
    /// Answers a head that did not arrive in time with the envelope `408` (as far as the socket
    /// takes it at once), then ends the connection with the error the dispatcher drops it for.
    fn time_out(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let canned = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n";
        if self.pending.is_empty() {
            if let Some(answer) = rewrite(canned, self.peer) {
                self.pending = answer;
                let _ = self.drain(cx);
            }
        }
        Err(io::ErrorKind::TimedOut.into())
    }
}

impl<S: AsyncWrite + Socket + Unpin> AsyncWrite for ProtocolErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Some(severed) = this.severed() {
            return Poll::Ready(Err(severed));
        }
        ready!(this.drain(cx))?;
        // An answer going out ends the request it answers (a `100 Continue` does not: its
        // request's body comes next).
        if !buf.is_empty() && !buf.starts_with(b"HTTP/1.1 100 ") {
            this.between = true;
            this.head_deadline = None;
        }
        if let Some(rewritten) = rewrite(buf, this.peer) {
            this.pending = rewritten;
            // The caller's bytes are taken; the answer replacing them drains from here on.
            if let Poll::Ready(Err(e)) = this.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if this.connection.ending() {
            // The dispatcher may be waiting for the rest of a body; woken, it reads the end
            // of the stream above and closes the connection once the answer is out.
            cx.waker().wake_by_ref();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(severed) = self.severed() {
            return Poll::Ready(Err(severed));
        }
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(severed) = self.severed() {
            return Poll::Ready(Err(severed));
        }
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_error_answer_becomes_the_graph_envelope_with_a_request_id() {
        // On a first request, and on a later one of a kept-alive connection.
        for canned in [
            &b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\ndate: Fri, 04 Dec 2026 14:12:31 GMT\r\n\r\n"[..],
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Fri, 04 Dec 2026 14:12:31 GMT\r\n\r\n",
        ] {
            enveloped(canned);
        }
        let out = String::from_utf8(
            rewrite(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n",
                None,
            )
            .unwrap(),
        )
        .unwrap();
        assert!(out.contains("\"code\":\"RequestTimeout\""), "{out}");
        assert_eq!(out.matches("connection: close\r\n").count(), 1, "{out}");
    }

    fn enveloped(canned: &[u8]) {
        let out = String::from_utf8(rewrite(canned, None).unwrap()).unwrap();
        assert_eq!(out.matches("connection: close\r\n").count(), 1, "{out}");
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains("\r\ndate: Fri, 04 Dec 2026 14:12:31 GMT"));
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "RequestHeaderFieldsTooLarge");
        let id = json["error"]["innerError"]["request-id"].as_str().unwrap();
        assert!(head.contains(&format!("request-id: {id}\r\n")));
    }

    #[test]
    fn answers_of_the_application_pass_unchanged() {
        let answer = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 120\r\ncontent-type: application/json\r\n\r\n{}";
        assert!(rewrite(answer, None).is_none());
        assert!(rewrite(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", None).is_none());
    }
}
