//! The one place that turns every failure into a Graph status, code and message, in Graph's
//! error envelope. Causes go to the log; bodies carry a safe message.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;

use super::body::{BodyError, Problem};
use super::context::RequestContext;
use crate::domain::DomainError;
use crate::tenant::TenantError;

/// `WWW-Authenticate` of a 401, as Graph sends it.
const WWW_AUTHENTICATE: &str = r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#;
/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECONDS: u32 = 1;
/// (policy) Seconds a client should wait after a 507: a disk is not freed in a second.
const STORAGE_RETRY_AFTER_SECONDS: u32 = 5;

/// Every error a client can see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400 `BadRequest`; `details` names each offending property.
    #[error("{message}")]
    BadRequest {
        message: String,
        details: Vec<Problem>,
    },
    /// 401 `InvalidAuthenticationToken`.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403 `Authorization_RequestDenied`.
    #[error("{0}")]
    Forbidden(String),
    /// 404 `Request_ResourceNotFound`.
    #[error("{0}")]
    NotFound(String),
    /// 405 `methodNotAllowed`, with the methods the path takes.
    #[error("The method is not supported for this URL.")]
    MethodNotAllowed { allow: &'static str },
    /// 409 `nameAlreadyExists`.
    #[error("{0}")]
    Conflict(String),
    /// 413 `RequestEntityTooLarge`.
    #[error("The request body exceeds the limit of {limit} bytes.")]
    PayloadTooLarge { limit: usize },
    /// 408 `RequestTimeout`: the body did not arrive in time.
    #[error("The request body was not received within {seconds} s.")]
    BodyTimeout { seconds: u64 },
    /// 415 `UnsupportedMediaType`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 424 `FailedDependency`: a batch item whose `dependsOn` request failed.
    #[error("{0}")]
    FailedDependency(String),
    /// 429 `TooManyRequests`, with `Retry-After`: throttled, nothing changed.
    #[error("Please retry again later.")]
    Throttled { retry_after_secs: u64 },
    /// A status a fault rule injected (429, 500, 502, 503, 504 or 507), with `Retry-After` when
    /// the rule gives one; nothing changed (or, after commit, the write is stored).
    #[error("{}", injected_message(*status))]
    Injected {
        status: u16,
        retry_after: Option<u32>,
    },
    /// No answer: a fault rule breaks the connection instead (the response is a placeholder
    /// that is never written).
    #[error("the connection is broken by a fault rule ({0:?})")]
    Severed(crate::chaos::Transport),
    /// 503 `serviceNotAvailable`, with `Retry-After`.
    #[error("{0}")]
    Unavailable(String),
    /// 507 `insufficientStorage`, with `Retry-After`: the write could not be stored now.
    #[error("The emulator cannot store this write now ({0}). Nothing was stored; retry later.")]
    InsufficientStorage(String),
    /// 500 `generalException`: a bug. The message is logged, never sent.
    #[error("{0}")]
    Internal(String),
}

/// The message of an injected status: what Graph says for it.
fn injected_message(status: u16) -> &'static str {
    match status {
        429 => "Please retry again later.",
        502 => "The service encountered a bad gateway. Please retry.",
        503 => "The service is temporarily unavailable. Please retry later.",
        504 => "The request timed out. Please retry.",
        507 => "The service has insufficient storage to complete the request. Please retry later.",
        _ => "An internal error occurred. Please retry.",
    }
}

impl ApiError {
    /// A 400 without details.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            details: Vec::new(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { .. } => (StatusCode::BAD_REQUEST, "BadRequest"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "Authorization_RequestDenied"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "Request_ResourceNotFound"),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "methodNotAllowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "nameAlreadyExists"),
            Self::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge")
            }
            Self::BodyTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "RequestTimeout"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType")
            }
            Self::FailedDependency(_) => (StatusCode::FAILED_DEPENDENCY, "FailedDependency"),
            Self::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            Self::Injected { status, .. } => {
                let code = match status {
                    429 => "TooManyRequests",
                    502 => "badGateway",
                    503 => "serviceNotAvailable",
                    504 => "gatewayTimeout",
                    507 => "insufficientStorage",
                    _ => "generalException",
                };
                (
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    code,
                )
            }
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "serviceNotAvailable"),
            Self::Severed(_) => (StatusCode::BAD_GATEWAY, "badGateway"),
            Self::InsufficientStorage(_) => {
                (StatusCode::INSUFFICIENT_STORAGE, "insufficientStorage")
            }
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "generalException"),
        }
    }

    /// The Graph error response for this error.
    #[must_use]
    pub fn respond(&self, context: &RequestContext) -> HttpResponse {
        if let Self::Severed(transport) = self {
            return super::connection::severed(*transport);
        }
        let (status, code) = self.status_and_code();
        let message = match self {
            Self::Internal(cause) => {
                tracing::error!(request_id = %context.request_id, %cause, "internal error");
                "An internal error occurred; the emulator's log has the details.".to_owned()
            }
            other => other.to_string(),
        };
        let details = match self {
            Self::BadRequest { details, .. } => details.iter().map(Detail::from).collect(),
            _ => Vec::new(),
        };
        let mut response = HttpResponse::build(status);
        response.content_type("application/json");
        match self {
            Self::Unauthorized(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, WWW_AUTHENTICATE));
            }
            Self::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            Self::Throttled { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, *retry_after_secs));
            }
            Self::Injected {
                retry_after: Some(seconds),
                ..
            } => {
                response.insert_header((header::RETRY_AFTER, *seconds));
            }
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS));
            }
            Self::InsufficientStorage(_) => {
                response.insert_header((header::RETRY_AFTER, STORAGE_RETRY_AFTER_SECONDS));
            }
            // The rest of a body that stopped arriving cannot be told from a next request:
            // the connection ends, however the body was framed.
            Self::BodyTimeout { .. } => {
                response.force_close();
            }
            _ => {}
        }
        let body = envelope(
            code,
            &message,
            details,
            context.request_id_text(),
            context.client_request_id_text(),
        );
        match body {
            Ok(body) => response.body(body),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an error body");
                response.finish()
            }
        }
    }
}

/// The Graph error body of an answer the HTTP layer itself writes for a request it could not
/// parse (400), whose headers were too large (431) or too slow (408); `None` for other statuses.
#[must_use]
pub(crate) fn protocol_error_body(status: u16, request_id: &str) -> Option<Vec<u8>> {
    let (code, message) = match status {
        400 => (
            "BadRequest",
            "The request is not valid HTTP/1.1: a malformed request or header line, or a URI \
             longer than 65,534 bytes.",
        ),
        408 => (
            "RequestTimeout",
            "The request headers were not received in time.",
        ),
        431 => (
            "RequestHeaderFieldsTooLarge",
            "The request headers exceed the server's limit.",
        ),
        _ => return None,
    };
    envelope(code, message, Vec::new(), request_id, request_id).ok()
}

/// The envelope of a `400` written straight to the socket, outside any request (plain HTTP on
/// the HTTPS listener).
pub(crate) fn bad_request_body(message: &str, request_id: &str) -> Option<Vec<u8>> {
    envelope("BadRequest", message, Vec::new(), request_id, request_id).ok()
}

/// Graph's error envelope as JSON bytes, dated now.
fn envelope(
    code: &'static str,
    message: &str,
    details: Vec<Detail<'_>>,
    request_id: &str,
    client_request_id: &str,
) -> serde_json::Result<Vec<u8>> {
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    serde_json::to_vec(&Envelope {
        error: Body {
            code,
            message,
            details,
            inner_error: InnerError {
                date: date.trim_end_matches('Z'),
                request_id,
                client_request_id,
            },
        },
    })
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<Detail<'a>>,
    inner_error: InnerError<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
    target: &'a str,
}

impl<'a> From<&'a Problem> for Detail<'a> {
    fn from(p: &'a Problem) -> Self {
        Self {
            code: p.code,
            message: &p.message,
            target: &p.target,
        }
    }
}

#[derive(Serialize)]
struct InnerError<'a> {
    date: &'a str,
    #[serde(rename = "request-id")]
    request_id: &'a str,
    #[serde(rename = "client-request-id")]
    client_request_id: &'a str,
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Malformed(message) => Self::bad_request(message),
            BodyError::Invalid(details) => Self::BadRequest {
                message: BodyError::Invalid(details.clone()).to_string(),
                details,
            },
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::AlreadyExists { .. } => Self::Conflict(e.to_string()),
            DomainError::NotFound { .. } => Self::NotFound(e.to_string()),
        }
    }
}

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::Domain(d) => d.into(),
            TenantError::Busy { .. }
            | TenantError::Unavailable { .. }
            | TenantError::ShuttingDown
            | TenantError::Recovering
            | TenantError::Storage(_) => Self::Unavailable(e.to_string()),
            TenantError::CannotWrite(reason) => Self::InsufficientStorage(reason),
            TenantError::Internal(cause) => Self::Internal(cause),
        }
    }
}
