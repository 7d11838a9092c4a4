//! The request context: a fresh `request-id` per request, the caller's `client-request-id`
//! echoed (or the request id when absent), stamped on every response, error or not; one
//! debug log line and one metrics count per request. The Graph handler makes and finishes its
//! context itself; the admin scope's middleware does it for the admin routes.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::AppState;
use crate::chaos::{Effect, Failure, Fault, Injected, Latency, Operation};
use crate::journal::{BatchItem, Entry, FaultNote, Journal, PathAndQuery, Throttled};
use crate::metrics::RouteLabel;
use crate::tenant::RequestMeta;

const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");
const RETRY_ATTEMPT: HeaderName = HeaderName::from_static("retry-attempt");
/// (policy) The longest `client-request-id` taken; a longer one is refused with 400, so no
/// client can make the event log keep (or an answer echo) a string of any size.
pub(super) const MAX_CLIENT_REQUEST_ID: usize = 256;

/// The ids of one request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: uuid::Uuid,
    /// The request id as a header value (and as text: a hyphenated UUID is ASCII).
    request_header: HeaderValue,
    /// Exactly as the client sent it, echoed unchanged.
    client_header: Option<HeaderValue>,
    /// The client's id as text, for error bodies and the event log (`None`: it sent none).
    client_request_id: Option<String>,
    /// The route the request took, for metrics (set by the Graph handler).
    route: Cell<Option<RouteLabel>>,
    /// The client sent a `client-request-id` over [`MAX_CLIENT_REQUEST_ID`]; it is neither
    /// echoed nor kept, and the request is refused.
    pub(super) client_request_id_too_long: bool,
    arrived: SystemTime,
    started: Instant,
    /// What the journal records beyond the ids, noted as the request is served.
    notes: RefCell<Notes>,
}

/// A request as the journal records it: method, path, query and headers.
#[derive(Clone, Copy)]
pub(super) struct Asked<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
}

impl<'a> Asked<'a> {
    pub(super) fn of(req: &'a HttpRequest) -> Self {
        Self {
            method: req.method(),
            path: req.path(),
            query: req.query_string(),
            headers: req.headers(),
        }
    }
}

/// What the request journal records of a request beyond its ids and answer.
#[derive(Debug, Clone, Default)]
pub(super) struct Notes {
    pub tenant: Option<Box<str>>,
    pub app: Option<Box<str>>,
    pub operation: Option<Operation>,
    pub body_digest: Option<[u8; 8]>,
    pub throttled: Option<u64>,
    pub fault: Option<FaultNote>,
    pub seq: Option<u64>,
}

impl RequestContext {
    pub(super) fn new(headers: &HeaderMap) -> Self {
        let request_id = uuid::Uuid::new_v4();
        let mut buffer = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text: &str = request_id.hyphenated().encode_lower(&mut buffer);
        let sent = headers.get(&CLIENT_REQUEST_ID).filter(|v| !v.is_empty());
        // Characters, not bytes: only a value of more bytes than the limit can be over it.
        let client_request_id_too_long = sent.is_some_and(|v| {
            v.len() > MAX_CLIENT_REQUEST_ID
                && String::from_utf8_lossy(v.as_bytes()).chars().count() > MAX_CLIENT_REQUEST_ID
        });
        let client_header = sent.filter(|_| !client_request_id_too_long).cloned();
        let client_request_id = client_header
            .as_ref()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        Self {
            request_id,
            // A hyphenated UUID is always a valid header value.
            request_header: HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("")),
            client_header,
            client_request_id,
            route: Cell::new(None),
            client_request_id_too_long,
            arrived: SystemTime::now(),
            started: Instant::now(),
            notes: RefCell::new(Notes::default()),
        }
    }

    /// Why the request is refused whatever it asks, if it is: a `client-request-id` over the
    /// limit (it is neither echoed nor recorded).
    pub(super) fn refusal(&self) -> Option<String> {
        self.client_request_id_too_long.then(|| {
            format!(
                "The header 'client-request-id' is longer than {MAX_CLIENT_REQUEST_ID} characters."
            )
        })
    }

    /// Notes something the journal will record of this request.
    pub(super) fn note(&self, change: impl FnOnce(&mut Notes)) {
        change(&mut self.notes.borrow_mut());
    }

    /// Notes the tenant and app a request came from.
    pub(super) fn note_caller(&self, caller: &super::Caller) {
        self.note(|n| {
            n.tenant = Some(caller.tenant.as_str().into());
            n.app = caller.app.as_deref().map(Into::into);
        });
    }

    /// Notes the digest of the request's body, when a journal keeps it.
    pub(super) fn note_body(&self, journal: &Journal, body: &[u8]) {
        if journal.enabled() {
            use sha2::{Digest, Sha256};
            let digest = Sha256::digest(body);
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            self.note(|n| n.body_digest = Some(first));
        }
    }

    /// Notes the fault rule a request met.
    pub(super) fn note_fault(&self, decided: Option<&Injected>) {
        let Some(Injected { rule, fault }) = decided else {
            return;
        };
        let mut effect = Effect::default();
        match fault {
            Fault::Latency(wait) => {
                effect.latency_ms = Some(Latency::Fixed(wait.as_millis() as u64));
            }
            Fault::Fail {
                failure,
                after_commit,
            } => {
                effect.after_commit = *after_commit;
                match failure {
                    Failure::Status {
                        status,
                        retry_after,
                    } => {
                        effect.status = Some(*status);
                        effect.retry_after = *retry_after;
                    }
                    Failure::Transport(transport) => effect.transport = Some(*transport),
                }
            }
        }
        let rule = std::sync::Arc::clone(rule);
        self.note(|n| n.fault = Some(FaultNote { rule, effect }));
    }

    /// Records the request and its answer in `journal` (when it keeps entries).
    pub(super) fn record(
        &self,
        journal: &Journal,
        request: Asked<'_>,
        response: &HttpResponse,
        batch: Option<BatchItem>,
    ) {
        let Asked {
            method,
            path,
            query,
            headers,
        } = request;
        if !journal.enabled() {
            return;
        }
        let notes = self.notes.take();
        let severed = response
            .extensions()
            .contains::<super::connection::Severed>();
        journal.record(&Entry {
            at: self.arrived,
            tenant: notes.tenant.as_deref(),
            app: notes.app.as_deref(),
            operation: notes.operation,
            method: method.as_str(),
            path: PathAndQuery { path, query },
            status: (!severed).then(|| response.status().as_u16()),
            duration: self.started.elapsed(),
            request_id: self.request_id,
            client_request_id: self.client_request_id.as_deref(),
            retry_attempt: header_number(headers, &RETRY_ATTEMPT),
            body_digest: notes.body_digest,
            batch,
            throttled: notes.throttled.map(|retry_after| Throttled { retry_after }),
            fault: notes.fault,
            seq: notes.seq,
            retry_after: header_number(response.headers(), &actix_web::http::header::RETRY_AFTER),
        });
    }

    /// The request id as text.
    #[must_use]
    pub fn request_id_text(&self) -> &str {
        self.request_header.to_str().unwrap_or_default()
    }

    /// The client's request id as text, or the request id when it sent none.
    #[must_use]
    pub fn client_request_id_text(&self) -> &str {
        self.client_request_id
            .as_deref()
            .unwrap_or_else(|| self.request_id_text())
    }

    /// Records which route the request took.
    pub fn set_route(&self, route: RouteLabel) {
        self.route.set(Some(route));
    }

    /// The context the admin scope's middleware stored for this request (shared, not copied).
    #[must_use]
    pub fn of(req: &HttpRequest) -> Rc<Self> {
        req.extensions()
            .get::<Rc<Self>>()
            .cloned()
            .unwrap_or_else(|| Rc::new(Self::new(req.headers())))
    }

    /// What the event log records of this request.
    #[must_use]
    pub fn meta(&self) -> RequestMeta {
        RequestMeta {
            request_id: self.request_id,
            client_request_id: self.client_request_id.clone(),
            hold: false,
        }
    }

    /// Puts the id headers on a response.
    pub(super) fn stamp<B>(&self, response: &mut HttpResponse<B>) {
        let headers = response.headers_mut();
        headers.insert(REQUEST_ID, self.request_header.clone());
        headers.insert(
            CLIENT_REQUEST_ID,
            self.client_header
                .clone()
                .unwrap_or_else(|| self.request_header.clone()),
        );
    }

    /// Stamps the id headers on the response, counts it in the metrics and logs it: every
    /// response, error or not.
    pub(super) fn finish<B>(
        &self,
        method: &Method,
        path: &str,
        state: Option<&AppState>,
        response: &mut HttpResponse<B>,
        started: Instant,
    ) {
        self.stamp(response);
        let elapsed = started.elapsed();
        let route = self.route.get().unwrap_or(RouteLabel::Other);
        // A request whose connection a fault breaks gets no answer: status 0.
        let severed = response
            .extensions()
            .contains::<super::connection::Severed>();
        let status = if severed {
            0
        } else {
            response.status().as_u16()
        };
        if let Some(state) = state {
            state.metrics.record(route, status, elapsed);
        }
        tracing::debug!(
            %method,
            path,
            status,
            micros = elapsed.as_micros() as u64,
            request_id = %self.request_id,
            "request"
        );
    }
}

/// A header's value read as a number.
fn header_number<T: std::str::FromStr>(headers: &HeaderMap, name: &HeaderName) -> Option<T> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Middleware of the admin scope: creates the context, then stamps, counts and logs the
/// response. (The Graph handler does the same itself, without the middleware's layers.)
pub(super) async fn stamp(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    super::connection::began(req.request());
    let context = Rc::new(RequestContext::new(req.headers()));
    req.extensions_mut().insert(Rc::clone(&context));
    context.set_route(RouteLabel::Admin);
    let (req, mut response) = if let Some(refusal) = context.refusal() {
        let (req, _) = req.into_parts();
        let response = ApiError::bad_request(refusal).respond(&context);
        (req, response.map_into_right_body())
    } else {
        let (req, response) = next.call(req).await?.into_parts();
        (req, response.map_into_left_body())
    };
    let state = req.app_data::<web::Data<AppState>>();
    let state = state.map(web::Data::get_ref);
    context.finish(req.method(), req.path(), state, &mut response, started);
    Ok(ServiceResponse::new(req, response))
}
