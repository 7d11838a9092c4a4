//! The request context: a fresh `request-id` per request, the caller's `client-request-id`
//! echoed (or the request id when absent), stamped on every response, error or not; one
//! debug log line and one metrics count per request.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, HttpRequest};

use super::AppState;
use crate::metrics::RouteLabel;
use crate::tenant::RequestMeta;

const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");

/// The ids of one request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    /// As text, for bodies and the event log.
    pub client_request_id: String,
    /// Exactly as the client sent it, echoed unchanged.
    client_header: Option<HeaderValue>,
}

impl RequestContext {
    fn new(headers: &HeaderMap) -> Self {
        let request_id = uuid::Uuid::new_v4().to_string();
        let client_header = headers
            .get(&CLIENT_REQUEST_ID)
            .filter(|v| !v.is_empty())
            .cloned();
        let client_request_id = client_header.as_ref().map_or_else(
            || request_id.clone(),
            |v| String::from_utf8_lossy(v.as_bytes()).into_owned(),
        );
        Self {
            request_id,
            client_request_id,
            client_header,
        }
    }

    /// The context the middleware stored for this request.
    #[must_use]
    pub fn of(req: &HttpRequest) -> Self {
        req.extensions()
            .get::<Self>()
            .cloned()
            .unwrap_or_else(|| Self::new(req.headers()))
    }

    /// What the event log records of this request.
    #[must_use]
    pub fn meta(&self) -> RequestMeta {
        RequestMeta {
            request_id: self.request_id.clone(),
            client_request_id: self.client_request_id.clone(),
        }
    }

    fn stamp_headers(&self, headers: &mut HeaderMap) {
        if let Ok(id) = HeaderValue::from_str(&self.request_id) {
            headers.insert(REQUEST_ID, id.clone());
            headers.insert(CLIENT_REQUEST_ID, self.client_header.clone().unwrap_or(id));
        }
    }
}

/// Middleware: creates the context, stamps the id headers on the response, logs the request.
pub(super) async fn stamp(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let context = RequestContext::new(req.headers());
    req.extensions_mut().insert(context.clone());
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let mut response = next.call(req).await?;
    context.stamp_headers(response.headers_mut());
    let elapsed = started.elapsed();
    let route = response
        .request()
        .extensions()
        .get::<RouteLabel>()
        .copied()
        .unwrap_or(if path.starts_with("/_emulator") {
            RouteLabel::Admin
        } else {
            RouteLabel::Other
        });
    if let Some(state) = response.request().app_data::<web::Data<AppState>>() {
        state
            .metrics
            .record(route, response.status().as_u16(), elapsed);
    }
    tracing::debug!(
        %method,
        %path,
        status = response.status().as_u16(),
        micros = elapsed.as_micros() as u64,
        request_id = %context.request_id,
        "request"
    );
    Ok(response)
}
