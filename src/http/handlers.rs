//! The Graph routes: one handler takes every request outside `/_emulator`, so that every path,
//! method and extractor failure is answered in the Graph envelope rather than by actix. A
//! request is first made a [`GraphRequest`], so that a `$batch` item takes exactly the same
//! path through [`serve`] as the same request sent alone.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::auth::{identify, Access};
use super::body::parse_create_body;
use super::context::{Asked, RequestContext};
use super::error::ApiError;
use super::query::{parse_count, parse_get, parse_list, parse_none};
use super::response::{self, base_url, COLLECTION_PATH};
use super::route::{self, Target};
use super::{batch, connection, AppState};
use crate::chaos::{Failure, Fault, Injected, Operation};
use crate::domain::{Command, DeleteUserFlow, DomainError, FlowKey};
use crate::metrics::RouteLabel;
use crate::tenant::{Read, ReadOutcome, RequestMeta, TenantId, WriteOutcome};

/// A Graph request, from the wire or from a `$batch`.
pub(super) struct GraphRequest<'a> {
    pub method: Method,
    /// The path, still percent-encoded.
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    /// `scheme://host` as the client reached us.
    pub base: &'a str,
    pub body: Body,
    /// For a `$batch` item, which batch and item it is (for the request journal).
    pub batch: Option<crate::journal::BatchItem>,
    /// For a `$batch` item, set while more of the batch's writes follow this one at once.
    pub writes_follow: Option<&'a Cell<bool>>,
}

/// What the tenant records of a write, and whether it may hold the write for the ones that
/// follow (read as the write is sent, so that a batch's writes share one flush).
fn write_meta(context: &RequestContext, writes_follow: Option<&Cell<bool>>) -> RequestMeta {
    RequestMeta {
        hold: writes_follow.is_some_and(Cell::get),
        ..context.meta()
    }
}

/// A request body: streamed from the connection, or already read (a batch item's).
pub(super) enum Body {
    Stream(web::Payload),
    Bytes(web::Bytes),
}

/// Entry point of every request outside the admin scope: an identity route when the path names
/// one (`authority::route`), else Graph.
pub(super) async fn graph(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    connection::began(&req);
    if let Some((route, segment)) = super::authority::route(req.match_info().as_str()) {
        let segment = segment.to_owned();
        return super::authority::serve(req, payload, state, route, segment).await;
    }
    let base = base_url(&req);
    let request = GraphRequest {
        method: req.method().clone(),
        path: req.uri().path(),
        query: req.query_string(),
        headers: req.headers(),
        base: &base,
        body: Body::Stream(payload),
        batch: None,
        writes_follow: None,
    };
    if !batch::is_batch_path(request.path) {
        let response = serve(request, &state).await;
        return connection::carry_out(&req, response).await;
    }
    let started = Instant::now();
    let context = RequestContext::new(req.headers());
    context.set_route(RouteLabel::Batch);
    context.note(|n| n.operation = Some(Operation::Batch));
    let mut response = batch::run(request, &state, &context)
        .await
        .unwrap_or_else(|error| error.respond(&context));
    context.finish(
        req.method(),
        req.path(),
        Some(&state),
        &mut response,
        started,
    );
    context.record(&state.journal, Asked::of(&req), &response, None);
    connection::carry_out(&req, response).await
}

/// Serves one Graph request with its own context (request ids, metrics, log line): a request
/// from the wire, or a `$batch` item.
pub(super) async fn serve(request: GraphRequest<'_>, state: &AppState) -> HttpResponse {
    let started = Instant::now();
    let context = RequestContext::new(request.headers);
    let method = request.method.clone();
    let (path, query, headers) = (request.path, request.query, request.headers);
    let batch = request.batch.clone();
    let mut response = route_request(request, state, &context)
        .await
        .unwrap_or_else(|error| error.respond(&context));
    context.finish(&method, path, Some(state), &mut response, started);
    let asked = Asked {
        method: &method,
        path,
        query,
        headers,
    };
    context.record(&state.journal, asked, &response, batch);
    response
}

async fn route_request(
    request: GraphRequest<'_>,
    state: &AppState,
    context: &RequestContext,
) -> Result<HttpResponse, ApiError> {
    if let Some(refusal) = context.refusal() {
        return Err(ApiError::bad_request(refusal));
    }
    let caller = identify(request.headers, &state.auth)?;
    context.note_caller(&caller);
    let target = route::parse(request.path);
    let method = request.method.clone();
    let label = match &target {
        Ok(Target::Collection) if method == Method::GET => RouteLabel::List,
        Ok(Target::Collection) if method == Method::POST => RouteLabel::Create,
        Ok(Target::Count) => RouteLabel::Count,
        Ok(Target::Item(_)) if method == Method::GET => RouteLabel::Get,
        Ok(Target::Item(_)) if method == Method::DELETE => RouteLabel::Delete,
        _ => RouteLabel::Other,
    };
    context.set_route(label);
    let operation = match label {
        RouteLabel::Create => Some(Operation::Create),
        RouteLabel::List => Some(Operation::List),
        RouteLabel::Count => Some(Operation::Count),
        RouteLabel::Get => Some(Operation::Get),
        RouteLabel::Delete => Some(Operation::Delete),
        _ => None,
    };
    context.note(|n| n.operation = operation);
    caller.allows(Access::of(&request.method))?;
    // Every authenticated request counts, whatever its answer would be; a throttled one
    // changes nothing.
    if let Err(throttled) = state
        .throttle
        .admit(caller.tenant.as_str(), caller.app.as_deref())
    {
        context.note(|n| n.throttled = Some(throttled.retry_after_secs));
        let refusal = ApiError::Throttled {
            retry_after_secs: throttled.retry_after_secs,
        };
        return Err(unread(request, state, context, refusal).await);
    }
    let fault = state.faults.decide(
        operation,
        Some(caller.tenant.as_str()),
        caller.app.as_deref(),
    );
    context.note_fault(fault.as_ref());
    let rule = fault.as_ref().map(|f| Arc::clone(&f.rule));
    let mut after_commit = None;
    if let Some((failure, later)) = injected_before(fault, &context.request_id).await {
        let injected = ApiError::from(failure);
        if !later {
            return Err(unread(request, state, context, injected).await);
        }
        after_commit = rule.map(|rule| (rule, injected));
    }
    let answer = operate(request, target?, state, &caller.tenant, context).await;
    let Some((rule, injected)) = after_commit else {
        return answer;
    };
    match answer {
        // The write is durable; the client sees the failure.
        Ok(response) if response.status().is_success() => {
            tracing::info!(rule = %rule, request = %context.request_id, "injected a fault after the commit");
            Err(injected)
        }
        // A write that failed on its own keeps its real answer, and the fault was never
        // injected: the rule keeps it for a later request, and the journal shows none.
        answer => {
            state.faults.spare(&rule);
            context.note(|n| n.fault = None);
            answer
        }
    }
}

/// `refusal`, for a request refused before its body was read; when a journal keeps entries,
/// the body is read first (within the limits, as a create's would be) for its digest, so that
/// a retry of it can be told from another request.
async fn unread(
    request: GraphRequest<'_>,
    state: &AppState,
    context: &RequestContext,
    refusal: ApiError,
) -> ApiError {
    if state.journal.enabled() {
        match request.body {
            Body::Bytes(bytes) if !bytes.is_empty() => context.note_body(&state.journal, &bytes),
            Body::Bytes(_) => {}
            Body::Stream(payload) => {
                let read = read_body(request.headers, payload, state.max_body_bytes);
                if let Ok(Ok(bytes)) = actix_web::rt::time::timeout(state.body_timeout, read).await
                {
                    if !bytes.is_empty() {
                        context.note_body(&state.journal, &bytes);
                    }
                }
            }
        }
    }
    refusal
}

/// Carries out a fault decided before the operation: logs it, waits out a latency and answers
/// `None`, or answers how the request fails and whether only after its commit.
pub(super) async fn injected_before(
    decided: Option<Injected>,
    request: &dyn std::fmt::Display,
) -> Option<(Failure, bool)> {
    let Injected { rule, fault } = decided?;
    // An afterCommit failure is logged once it is carried out.
    if !matches!(
        fault,
        Fault::Fail {
            after_commit: true,
            ..
        }
    ) {
        tracing::info!(rule = %rule, request = %request, fault = ?fault, "injected a fault");
    }
    match fault {
        Fault::Latency(wait) => {
            actix_web::rt::time::sleep(wait).await;
            None
        }
        Fault::Fail {
            failure,
            after_commit,
        } => Some((failure, after_commit)),
    }
}

impl From<Failure> for ApiError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Status {
                status,
                retry_after,
            } => Self::Injected {
                status,
                retry_after,
            },
            Failure::Transport(transport) => Self::Severed(transport),
        }
    }
}

async fn operate(
    request: GraphRequest<'_>,
    target: Target,
    state: &AppState,
    tenant: &TenantId,
    context: &RequestContext,
) -> Result<HttpResponse, ApiError> {
    let method = request.method.clone();
    match target {
        Target::Collection if method == Method::GET => list(&request, state, tenant).await,
        Target::Collection if method == Method::POST => {
            create(request, state, tenant, context).await
        }
        Target::Collection => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
        Target::Count if method == Method::GET => count(&request, state, tenant).await,
        Target::Count => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        Target::Ref => Err(ApiError::bad_request(format!(
            "'{COLLECTION_PATH}/$ref' is not a resource: to create a user flow, POST an \
             identityUserFlow to {COLLECTION_PATH}."
        ))),
        Target::Item(id) if method == Method::GET => get(&request, state, tenant, &id).await,
        Target::Item(id) if method == Method::DELETE => {
            delete(&request, state, tenant, id, context).await
        }
        Target::Item(_) => Err(ApiError::MethodNotAllowed {
            allow: "GET, DELETE",
        }),
    }
}

async fn create(
    request: GraphRequest<'_>,
    state: &AppState,
    tenant: &TenantId,
    context: &RequestContext,
) -> Result<HttpResponse, ApiError> {
    parse_none(request.query)?;
    require_json(request.headers)?;
    require_plain_body(request.headers)?;
    let writes_follow = request.writes_follow;
    let body = match request.body {
        Body::Stream(payload) => {
            read_body_in_time(request.headers, payload, state.max_body_bytes, state).await?
        }
        Body::Bytes(bytes) if bytes.len() > state.max_body_bytes => {
            return Err(ApiError::PayloadTooLarge {
                limit: state.max_body_bytes,
            })
        }
        Body::Bytes(bytes) => BytesMut::from(bytes.as_ref()),
    };
    context.note_body(&state.journal, &body);
    let command = parse_create_body(&body)?;
    let outcome = state
        .registry
        .execute(
            tenant,
            Command::Create(command),
            write_meta(context, writes_follow),
        )
        .await?;
    let WriteOutcome::Created(flow, seq) = outcome else {
        return Err(ApiError::Internal("a create did not create".to_owned()));
    };
    context.note(|n| n.seq = Some(seq));
    let base = request.base;
    let mut response = response::entity(StatusCode::CREATED, base, &flow)?;
    let id = flow.id.as_str();
    let mut location = BytesMut::with_capacity(base.len() + COLLECTION_PATH.len() + 1 + id.len());
    for part in [base, COLLECTION_PATH, "/", id] {
        location.extend_from_slice(part.as_bytes());
    }
    let location = header::HeaderValue::from_maybe_shared(location.freeze())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

async fn delete(
    request: &GraphRequest<'_>,
    state: &AppState,
    tenant: &TenantId,
    id: String,
    context: &RequestContext,
) -> Result<HttpResponse, ApiError> {
    parse_none(request.query)?;
    let command = Command::Delete(DeleteUserFlow { id });
    if let WriteOutcome::Deleted(_, seq) = state
        .registry
        .execute(tenant, command, write_meta(context, request.writes_follow))
        .await?
    {
        context.note(|n| n.seq = Some(seq));
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn get(
    request: &GraphRequest<'_>,
    state: &AppState,
    tenant: &TenantId,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let select = parse_get(request.query)?;
    match state
        .registry
        .read(tenant, Read::Get(FlowKey::of(id)))
        .await?
    {
        ReadOutcome::Flow(Some(flow)) => match select {
            None => response::entity(StatusCode::OK, request.base, &flow),
            Some(select) => response::selected_entity(request.base, &flow, &select),
        },
        ReadOutcome::Flow(None) => Err(DomainError::NotFound { id: id.to_owned() }.into()),
        _ => Err(ApiError::Internal(
            "get answered with another kind of outcome".to_owned(),
        )),
    }
}

async fn list(
    request: &GraphRequest<'_>,
    state: &AppState,
    tenant: &TenantId,
) -> Result<HttpResponse, ApiError> {
    let options = parse_list(request.query, tenant.as_str())?;
    let read = Read::List(options.query.clone());
    let ReadOutcome::Page {
        flows,
        next,
        horizon,
        count,
    } = state.registry.read(tenant, read).await?
    else {
        return Err(ApiError::Internal(
            "list answered with another kind of outcome".to_owned(),
        ));
    };
    let base = request.base;
    let next_link =
        next.map(|cursor| options.next_link(&[base, COLLECTION_PATH].concat(), horizon, &cursor));
    response::collection(base, &flows, options.select.as_deref(), count, next_link)
}

async fn count(
    request: &GraphRequest<'_>,
    state: &AppState,
    tenant: &TenantId,
) -> Result<HttpResponse, ApiError> {
    let filter = parse_count(request.query)?;
    match state.registry.read(tenant, Read::Count(filter)).await? {
        ReadOutcome::Count(n) => Ok(HttpResponse::Ok()
            .content_type("text/plain")
            .insert_header(response::ODATA_VERSION)
            .body(n.to_string())),
        _ => Err(ApiError::Internal(
            "count answered with another kind of outcome".to_owned(),
        )),
    }
}

/// Create takes `application/json` only (a `charset` or other parameter is fine).
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers.get(header::CONTENT_TYPE);
    if value.is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"application/json")) {
        return Ok(());
    }
    let content_type = value.and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else if content_type.is_empty() {
        Err(ApiError::UnsupportedMediaType(
            "A create request needs the header Content-Type: application/json.".to_owned(),
        ))
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "The content type '{content_type}' is not supported: send application/json."
        )))
    }
}

/// A body is read as sent: one with a `Content-Encoding` (other than `identity`) is refused
/// with 415 rather than read as garbled JSON.
pub(super) fn require_plain_body(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(encoding) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(());
    };
    if encoding
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"identity")
    {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType(format!(
        "The Content-Encoding '{}' is not supported: send the body uncompressed.",
        String::from_utf8_lossy(encoding.as_bytes())
    )))
}

/// [`read_body`] within the server's body timeout: a body that has not arrived by then is a
/// `408` (whose answer closes the connection).
pub(super) async fn read_body_in_time(
    headers: &HeaderMap,
    payload: web::Payload,
    limit: usize,
    state: &AppState,
) -> Result<BytesMut, ApiError> {
    actix_web::rt::time::timeout(state.body_timeout, read_body(headers, payload, limit))
        .await
        .map_err(|_| ApiError::BodyTimeout {
            seconds: state.body_timeout.as_secs(),
        })?
}

/// Reads the body, refusing it with 413 as soon as it passes the limit.
pub(super) async fn read_body(
    headers: &HeaderMap,
    mut payload: web::Payload,
    limit: usize,
) -> Result<BytesMut, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(256).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(format!("The request body could not be read: {e}."))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
