//! JSON batching, `POST /beta/$batch`: up to 20 requests in one body, each served by the same
//! code as the same request sent alone ([`super::handlers::serve`]), answered one by one in
//! request order. Writes that depend on nothing are handed to their tenant back to back, so
//! they share group commits; a read, or a request with `dependsOn`, waits for what came before.

use std::borrow::Cow;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use actix_web::body::to_bytes;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::auth::{caller_of, Access, Caller};
use super::connection;
use super::context::{Asked, RequestContext};
use super::error::ApiError;
use super::handlers::{injected_before, read_body_in_time, serve, Body, GraphRequest};
use super::json::write_string;
use super::query::parse_none;
use super::response;
use super::AppState;
use crate::chaos::Operation;
use crate::journal::BatchItem;
use crate::json_text::is_plain;

/// The most requests one batch may hold, as on Graph.
pub const MAX_REQUESTS: usize = 20;

/// Whether a (still percent-encoded) path is `/beta/$batch`.
pub(super) fn is_batch_path(path: &str) -> bool {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let named = |s: Option<&str>, name: &str| s.is_some_and(|s| s.eq_ignore_ascii_case(name));
    named(segments.next(), "beta")
        && segments
            .next()
            .is_some_and(|s| s.eq_ignore_ascii_case("$batch") || s.eq_ignore_ascii_case("%24batch"))
        && segments.next().is_none()
}

/// One request of a batch, checked.
struct Item {
    id: String,
    method: Method,
    /// The path and query under `/beta`, or why the item's URL cannot be served (its own 400).
    target: Result<(String, String), String>,
    /// The URL as sent, kept only for an item refused for it (the journal shows it).
    refused_url: Option<String>,
    headers: HeaderMap,
    /// The body as JSON text (a slice of the batch's body).
    body: Option<Bytes>,
    depends_on: Vec<usize>,
}

/// A batch body as sent: each request's fields kept as JSON, its body as raw text.
#[derive(Deserialize)]
struct RawBatch<'a> {
    #[serde(borrow)]
    requests: Option<&'a RawValue>,
}

/// A batch body read in one pass, when it is well formed; [`RawBatch`] then tells what is wrong
/// with one that is not.
#[derive(Deserialize)]
struct WellFormedBatch<'a> {
    #[serde(borrow)]
    requests: Option<Vec<RawRequest<'a>>>,
}

#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<&'a RawValue>,
    #[serde(borrow)]
    url: Option<&'a RawValue>,
    #[serde(borrow)]
    headers: Option<&'a RawValue>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
    #[serde(rename = "dependsOn")]
    depends_on: Option<Value>,
    /// Microsoft's Python SDK's spelling.
    #[serde(rename = "depends_on")]
    depends_on_sdk: Option<Value>,
}

fn malformed(detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Invalid batch payload: {detail}"))
}

/// The batch's 400 when its body holds no `requests` array of request objects.
fn needs_requests() -> ApiError {
    malformed("the body needs a 'requests' array of request objects.")
}

/// Serves `POST /beta/$batch`.
pub(super) async fn run(
    request: GraphRequest<'_>,
    state: &AppState,
    context: &RequestContext,
) -> Result<HttpResponse, ApiError> {
    if request.method != Method::POST {
        return Err(ApiError::MethodNotAllowed { allow: "POST" });
    }
    // One 401 for the whole batch: nothing in it runs without a valid token.
    let caller = caller_of(request.headers, &state.auth, Access::Token)?;
    context.note_caller(&caller);
    // The envelope meets only rules naming `batch`; its items meet their own.
    let fault = state.faults.decide(
        Some(Operation::Batch),
        Some(caller.tenant.as_str()),
        caller.app.as_deref(),
    );
    context.note_fault(fault.as_ref());
    if let Some((failure, _)) = injected_before(fault, &context.request_id).await {
        return Err(failure.into());
    }
    if let Some(refusal) = context.refusal() {
        return Err(ApiError::bad_request(refusal));
    }
    parse_none(request.query)?;
    let limit = state.max_body_bytes.saturating_mul(MAX_REQUESTS);
    let body = match request.body {
        Body::Stream(payload) => read_body_in_time(request.headers, payload, limit, state)
            .await?
            .freeze(),
        Body::Bytes(_) => return Err(malformed("a $batch cannot be nested.")),
    };
    context.note_body(&state.journal, &body);
    require_json(request.headers)?;
    super::handlers::require_plain_body(request.headers)?;
    let items = parse(&body, request.base, request.headers)?;
    let batch = Batch {
        state,
        base: request.base,
        envelope: context.request_id,
        caller: &caller,
        writes_follow: Cell::new(false),
    };
    let answers = execute(&items, &batch).await;
    // An item that met a transport fault breaks the batch's own connection.
    if let Some(transport) = answers.iter().flatten().find_map(connection::severed_by) {
        return Err(ApiError::Severed(transport));
    }
    // About 550 bytes for a create's answer, so that the common batch is written without regrowing.
    let mut body = Vec::with_capacity(items.len() * 640);
    body.extend_from_slice(b"{\"responses\":[");
    for (at, (item, answer)) in items.iter().zip(answers).enumerate() {
        let answer = answer.ok_or_else(|| ApiError::Internal("a batch item was not run".into()))?;
        if at > 0 {
            body.push(b',');
        }
        write_item(&mut body, &item.id, answer).await?;
    }
    body.extend_from_slice(b"]}");
    Ok(response::json_bytes(StatusCode::OK, body))
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match essence {
        Some(t) if t.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(
            "A $batch request needs the header Content-Type: application/json.".to_owned(),
        )),
    }
}

/// Checks the whole batch before anything runs.
fn parse(body: &Bytes, base: &str, outer: &HeaderMap) -> Result<Vec<Item>, ApiError> {
    // JSON is UTF-8 throughout: checked first, since serde reads the fields it ignores
    // without checking them (the two-pass reader refuses such a body, and so must this one).
    let well_formed = std::str::from_utf8(body)
        .ok()
        .and_then(|text| serde_json::from_str::<WellFormedBatch<'_>>(text).ok());
    let requests = match well_formed {
        Some(batch) => batch.requests.ok_or_else(needs_requests)?,
        None => refuse_batch(body)?,
    };
    items_of(&requests, body, base, outer)
}

/// The checked items of the requests read from `body`.
fn items_of(
    requests: &[RawRequest<'_>],
    body: &Bytes,
    base: &str,
    outer: &HeaderMap,
) -> Result<Vec<Item>, ApiError> {
    if requests.is_empty() {
        return Err(malformed("'requests' is empty."));
    }
    if requests.len() > MAX_REQUESTS {
        return Err(malformed(format!(
            "{} requests; a batch holds at most {MAX_REQUESTS}.",
            requests.len()
        )));
    }
    // Ids are compared ignoring case; a batch is small enough to compare them pairwise.
    let mut ids: Vec<String> = Vec::with_capacity(requests.len());
    for (index, request) in requests.iter().enumerate() {
        let id = string_of(request.id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                malformed(format!("requests[{index}] needs a non-empty string 'id'."))
            })?;
        if ids.iter().any(|seen| seen.eq_ignore_ascii_case(&id)) {
            return Err(malformed(format!("the id '{id}' appears more than once.")));
        }
        ids.push(id.into_owned());
    }
    let mut items = Vec::with_capacity(requests.len());
    for (request, id) in requests.iter().zip(ids.iter()) {
        let id = id.clone();
        let method = required_string(request.method, &id, "method")?;
        let upper = if method.bytes().any(|b| b.is_ascii_lowercase()) {
            Cow::Owned(method.to_ascii_uppercase())
        } else {
            method
        };
        let method = Method::from_bytes(upper.as_bytes())
            .map_err(|_| malformed(format!("request '{id}' has an invalid 'method'.")))?;
        let url = required_string(request.url, &id, "url")?;
        let target = resolve(&url, base);
        if matches!(&target, Ok((path, _)) if is_batch_path(path)) {
            return Err(malformed(format!(
                "request '{id}' is a $batch: batches cannot be nested."
            )));
        }
        // Both spellings given: the request waits for every request either names.
        let mut depends_on = dependencies(&id, request.depends_on.as_ref(), &ids)?;
        for also in dependencies(&id, request.depends_on_sdk.as_ref(), &ids)? {
            if !depends_on.contains(&also) {
                depends_on.push(also);
            }
        }
        let headers = item_headers(request.headers, outer)
            .map_err(|e| malformed(format!("request '{id}': {e}")))?;
        let body = request
            .body
            .map(RawValue::get)
            .filter(|b| *b != "null")
            .map(|text| slice_of(body, text.as_bytes()));
        items.push(Item {
            id,
            method,
            refused_url: target.is_err().then(|| url.into_owned()),
            target,
            headers,
            body,
            depends_on,
        });
    }
    if let Some(id) = first_in_cycle(&items) {
        return Err(malformed(format!(
            "the dependsOn of request '{id}' form a cycle."
        )));
    }
    Ok(items)
}

/// Reads a batch body as `POST /beta/$batch` does, without running anything: how many requests
/// it holds, or the message of the `400` that refuses it. The fuzz target and its corpus test
/// call it beside [`read_two_pass`].
pub fn read(body: &[u8]) -> Result<usize, String> {
    count(parse(
        &Bytes::copy_from_slice(body),
        BASE_FOR_READING,
        &HeaderMap::new(),
    ))
}

/// The same as [`read`] with the two-pass reader that words the refusals, used alone: a body
/// both read the same way is one the one-pass reading neither loses nor lets through.
pub fn read_two_pass(body: &[u8]) -> Result<usize, String> {
    let body = Bytes::copy_from_slice(body);
    // Only the reading differs: the checks after it are the same code.
    let items = refuse_batch(&body)
        .and_then(|requests| items_of(&requests, &body, BASE_FOR_READING, &HeaderMap::new()));
    count(items)
}

const BASE_FOR_READING: &str = "http://127.0.0.1:8080";

fn count(items: Result<Vec<Item>, ApiError>) -> Result<usize, String> {
    match items {
        Ok(items) => Ok(items.len()),
        Err(ApiError::BadRequest { message, .. }) => Err(message),
        Err(other) => Err(format!("not a 400: {other:?}")),
    }
}

/// Why a batch body that is not `{"requests": [request objects]}` is refused.
fn refuse_batch(body: &Bytes) -> Result<Vec<RawRequest<'_>>, ApiError> {
    let batch: RawBatch<'_> = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() && e.to_string().starts_with("duplicate field") {
            malformed("the body names 'requests' more than once.")
        } else if e.is_data() {
            needs_requests()
        } else {
            malformed(format!("the body is not JSON ({e})."))
        }
    })?;
    let requests = batch.requests.ok_or_else(needs_requests)?;
    serde_json::from_str(requests.get())
        .map_err(|_| first_bad_request(requests).unwrap_or_else(needs_requests))
}

/// Why a `requests` value that is not an array of request objects is refused: the first item
/// that is not one, with serde's words (without their position in the item); `None` when it is
/// not an array at all.
fn first_bad_request(requests: &RawValue) -> Option<ApiError> {
    let items: Vec<&RawValue> = serde_json::from_str(requests.get()).ok()?;
    items.iter().enumerate().find_map(|(index, item)| {
        let error = serde_json::from_str::<RawRequest<'_>>(item.get()).err()?;
        if !item.get().starts_with('{') {
            return Some(malformed(format!(
                "requests[{index}] is not a JSON object."
            )));
        }
        let detail = error.to_string();
        let detail = detail.split(" at line ").next().unwrap_or(&detail);
        Some(malformed(format!(
            "requests[{index}] is not a request object ({detail})."
        )))
    })
}

/// Request `id`'s field `name`, a string; else the batch's 400 saying what it is instead.
fn required_string<'a>(
    raw: Option<&'a RawValue>,
    id: &str,
    name: &str,
) -> Result<Cow<'a, str>, ApiError> {
    string_of(raw).ok_or_else(|| match raw {
        // A string serde refuses holds an escape of half a UTF-16 pair.
        Some(raw) if raw.get().starts_with('"') => malformed(format!(
            "request '{id}': '{name}' is not valid Unicode (a lone surrogate escape)."
        )),
        _ => malformed(format!("request '{id}' needs a string '{name}'.")),
    })
}

/// A JSON string's text (borrowed unless it holds escapes); `None` for any other value.
fn string_of(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
    let raw = raw?.get();
    // The common string, with nothing to unescape, is its text between the quotes.
    if let Some(text) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        if is_plain(text.as_bytes()) {
            return Some(Cow::Borrowed(text));
        }
    }
    match serde_json::from_str::<&str>(raw) {
        Ok(text) => Some(Cow::Borrowed(text)),
        Err(_) => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
    }
}

/// `part` as a slice of `whole` when it lies inside it (an item's body inside the batch's),
/// else a copy.
fn slice_of(whole: &Bytes, part: &[u8]) -> Bytes {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if end <= whole.len() => whole.slice(start..end),
        _ => Bytes::copy_from_slice(part),
    }
}

/// The requests a request's `dependsOn` names, as indexes into the batch.
fn dependencies(id: &str, given: Option<&Value>, ids: &[String]) -> Result<Vec<usize>, ApiError> {
    match given {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(names)) => names
            .iter()
            .map(|name| {
                let Some(name) = name.as_str() else {
                    return Err(malformed(format!(
                        "request '{id}': 'dependsOn' holds {name}, which is not a string; \
                         request ids are strings."
                    )));
                };
                ids.iter()
                    .position(|seen| seen.eq_ignore_ascii_case(name))
                    .ok_or_else(|| {
                        malformed(format!(
                            "request '{id}' depends on '{name}', which is not a request of this \
                         batch."
                        ))
                    })
            })
            .collect(),
        Some(_) => Err(malformed(format!(
            "request '{id}': 'dependsOn' must be an array of request ids."
        ))),
    }
}

/// The item's headers, with the batch's `Authorization` in place of any the item names, and the
/// batch's `Host` (when it has one) in place of the item's.
fn item_headers(given: Option<&RawValue>, outer: &HeaderMap) -> Result<HeaderMap, String> {
    let mut headers =
        match given.map(RawValue::get) {
            None | Some("null") => HeaderMap::new(),
            Some(text) => match serde_json::from_str::<ItemHeaders>(text) {
                Ok(ItemHeaders(headers)) => headers?,
                Err(_) if !text.starts_with('{') => {
                    return Err("'headers' must be an object.".to_owned())
                }
                // An object serde refuses holds a name with an escape of half a UTF-16 pair.
                Err(_) => return Err(
                    "'headers' holds a name that is not valid Unicode (a lone surrogate escape)."
                        .to_owned(),
                ),
            },
        };
    if let Some(value) = outer.get(header::AUTHORIZATION) {
        headers.append(header::AUTHORIZATION, value.clone());
    }
    if let Some(value) = outer.get(header::HOST) {
        headers.insert(header::HOST, value.clone());
    }
    Ok(headers)
}

/// A request's `headers` object as a header map, read without building a JSON value: the map,
/// or why a header in it is refused. `Authorization` is left out: the batch's own stands for
/// it.
struct ItemHeaders(Result<HeaderMap, String>);

impl<'de> Deserialize<'de> for ItemHeaders {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(HeadersVisitor)
    }
}

struct HeadersVisitor;

impl<'de> serde::de::Visitor<'de> for HeadersVisitor {
    type Value = ItemHeaders;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object of headers")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ItemHeaders, A::Error> {
        let mut headers = HeaderMap::new();
        let mut refused = None;
        while let Some((name, value)) = map.next_entry::<Text<'de>, &'de RawValue>()? {
            // After a refused header the rest is only read through.
            if refused.is_some() {
                continue;
            }
            let name = name.0;
            let Some(value) = string_of(Some(value)) else {
                refused = Some(format!("the header '{name}' must be a string."));
                continue;
            };
            let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
                refused = Some(format!("'{name}' is not a header name."));
                continue;
            };
            let Ok(value) = HeaderValue::from_str(&value) else {
                refused = Some(format!("the header '{name}' has an invalid value."));
                continue;
            };
            if header_name != header::AUTHORIZATION {
                headers.append(header_name, value);
            }
        }
        Ok(ItemHeaders(refused.map_or(Ok(headers), Err)))
    }
}

/// A JSON string, borrowed from the body unless it holds escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// An item's URL as (path, query) under `/beta`: relative to `/beta`, or absolute on the
/// emulator's own `/beta`. Anything else is the item's own 400.
fn resolve(url: &str, base: &str) -> Result<(String, String), String> {
    let outside = || format!("The URL '{url}' is not under this emulator's /beta.");
    let has_scheme = |scheme: &str| {
        url.get(..scheme.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(scheme))
    };
    if url.contains('#') {
        return Err(format!(
            "The URL '{url}' has a fragment ('#'): a request URL cannot carry one."
        ));
    }
    let relative = if has_scheme("http://") || has_scheme("https://") {
        let rest = url
            .get(..base.len())
            .filter(|head| head.eq_ignore_ascii_case(base))
            .map(|_| &url[base.len()..])
            .ok_or_else(outside)?;
        // `/beta/…`, or `/beta` itself (with or without a query): what is under the root.
        let under = rest
            .get(..5)
            .filter(|head| head.eq_ignore_ascii_case("/beta"))
            .map(|_| &rest[5..])
            .filter(|under| under.is_empty() || under.starts_with(['/', '?']))
            .ok_or_else(outside)?;
        under.to_owned()
    } else if url.starts_with('/') {
        url.to_owned()
    } else {
        format!("/{url}")
    };
    let (path, query) = relative.split_once('?').unwrap_or((&relative, ""));
    let decoded = if path.contains('%') {
        percent_encoding::percent_decode_str(path).decode_utf8_lossy()
    } else {
        Cow::Borrowed(path)
    };
    if decoded.split('/').any(|segment| segment == "..") {
        return Err(outside());
    }
    let mut full = String::with_capacity("/beta".len() + path.len());
    full.push_str("/beta");
    full.push_str(path);
    Ok((full, query.to_owned()))
}

/// The id of a request whose dependencies lead back to it, if any.
fn first_in_cycle(items: &[Item]) -> Option<&str> {
    // 0: not seen, 1: on the current path, 2: done.
    fn visit(items: &[Item], at: usize, marks: &mut [u8]) -> bool {
        match marks[at] {
            1 => return true,
            2 => return false,
            _ => {}
        }
        marks[at] = 1;
        let cycle = items[at].depends_on.iter().any(|&d| visit(items, d, marks));
        marks[at] = 2;
        cycle
    }
    let mut marks = vec![0u8; items.len()];
    (0..items.len())
        .find(|&at| visit(items, at, &mut marks))
        .map(|at| items[at].id.as_str())
}

/// The order items run in: request order, each after what it depends on.
fn run_order(items: &[Item]) -> Vec<usize> {
    fn place(items: &[Item], at: usize, placed: &mut [bool], order: &mut Vec<usize>) {
        if placed[at] {
            return;
        }
        placed[at] = true;
        for &d in &items[at].depends_on {
            place(items, d, placed, order);
        }
        order.push(at);
    }
    let mut placed = vec![false; items.len()];
    let mut order = Vec::with_capacity(items.len());
    for at in 0..items.len() {
        place(items, at, &mut placed, &mut order);
    }
    order
}

type Running<'a> = Pin<Box<dyn Future<Output = HttpResponse> + 'a>>;

/// Runs the items; the answers in request order.
/// What every item of one batch shares.
struct Batch<'a> {
    state: &'a AppState,
    base: &'a str,
    /// The envelope's request id.
    envelope: uuid::Uuid,
    caller: &'a Caller,
    /// Set while the batch sends writes without waiting for them: the tenant holds their events
    /// until [`Batch::release`], so that they share one append and one flush.
    writes_follow: Cell<bool>,
}

impl Batch<'_> {
    /// Ends a run of writes: the tenant writes what it holds for them.
    fn release(&self) {
        if self.writes_follow.replace(false) {
            self.state.registry.release(&self.caller.tenant);
        }
    }

    fn item(&self, item: &Item) -> BatchItem {
        BatchItem {
            request_id: self.envelope,
            item_id: item.id.as_str().into(),
        }
    }
}

async fn execute(items: &[Item], batch: &Batch<'_>) -> Vec<Option<HttpResponse>> {
    let mut answers: Vec<Option<HttpResponse>> = (0..items.len()).map(|_| None).collect();
    let mut running: Vec<(usize, Running<'_>)> = Vec::new();
    for at in run_order(items) {
        let item = &items[at];
        let is_write = item.method == Method::POST || item.method == Method::DELETE;
        if !is_write || !item.depends_on.is_empty() {
            settle(&mut running, &mut answers, batch).await;
        }
        let failed = item.depends_on.iter().find(|&&d| {
            answers[d]
                .as_ref()
                .is_none_or(|answer| answer.status().as_u16() >= 400)
        });
        if let Some(&failed) = failed {
            let error = ApiError::FailedDependency(format!(
                "The request '{}' depends on '{}', which failed.",
                item.id, items[failed].id
            ));
            answers[at] = Some(refused(item, &error, batch));
            continue;
        }
        batch.writes_follow.set(is_write);
        let mut future: Running<'_> = Box::pin(run_item(item, batch));
        // Polled once now: the request reaches its tenant before the next one is made, so the
        // tenant decides them in request order.
        let answer = match std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await {
            Poll::Ready(answer) => answer,
            Poll::Pending if is_write => {
                running.push((at, future));
                continue;
            }
            Poll::Pending => future.await,
        };
        // A transport fault breaks the batch: nothing after it runs.
        let severed = connection::severed_by(&answer).is_some();
        answers[at] = Some(answer);
        if severed {
            break;
        }
    }
    settle(&mut running, &mut answers, batch).await;
    answers
}

/// Waits for every running item, once the tenant was told to write what it holds for them
/// (every wait of the batch comes after this, so no held write outlives the batch).
async fn settle(
    running: &mut Vec<(usize, Running<'_>)>,
    answers: &mut [Option<HttpResponse>],
    batch: &Batch<'_>,
) {
    batch.release();
    let (indexes, futures): (Vec<usize>, Vec<Running<'_>>) = running.drain(..).unzip();
    for (at, answer) in indexes
        .into_iter()
        .zip(futures_util::future::join_all(futures).await)
    {
        answers[at] = Some(answer);
    }
}

/// The answer of an item refused before it is served: the error with the item's own ids,
/// recorded in the journal as the batch's caller.
fn refused(item: &Item, error: &ApiError, batch: &Batch<'_>) -> HttpResponse {
    let context = RequestContext::new(&item.headers);
    let mut answer = error.respond(&context);
    context.stamp(&mut answer);
    context.note_caller(batch.caller);
    let (path, query) = if let Ok((path, query)) = &item.target {
        (path.as_str(), query.as_str())
    } else {
        let url = item.refused_url.as_deref().unwrap_or_default();
        url.split_once('?').unwrap_or((url, ""))
    };
    let asked = Asked {
        method: &item.method,
        path,
        query,
        headers: &item.headers,
    };
    context.record(&batch.state.journal, asked, &answer, Some(batch.item(item)));
    answer
}

async fn run_item(item: &Item, batch: &Batch<'_>) -> HttpResponse {
    let (path, query) = match &item.target {
        Ok(target) => target,
        Err(reason) => return refused(item, &ApiError::bad_request(reason.clone()), batch),
    };
    if item.body.is_some() && !item.headers.contains_key(header::CONTENT_TYPE) {
        let error = ApiError::UnsupportedMediaType(
            "A batch request with a body needs a Content-Type header.".to_owned(),
        );
        return refused(item, &error, batch);
    }
    let body = item.body.clone().unwrap_or_default();
    serve(
        GraphRequest {
            method: item.method.clone(),
            path,
            query,
            headers: &item.headers,
            base: batch.base,
            body: Body::Bytes(body),
            batch: Some(batch.item(item)),
            writes_follow: Some(&batch.writes_follow),
        },
        batch.state,
    )
    .await
}

/// Headers an item's answer never carries.
fn dropped(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "date"
            | "connection"
            | "transfer-encoding"
            | "content-length"
            | "upgrade"
            | "te"
            | "trailer"
            | "keep-alive"
    )
}

/// Writes one answer as `{"id", "status", "headers", "body"?}`. The body is our own handler's
/// JSON, copied as it is; any other body is base64 in a string.
async fn write_item(out: &mut Vec<u8>, id: &str, answer: HttpResponse) -> Result<(), ApiError> {
    use std::io::Write;
    out.extend_from_slice(b"{\"id\":");
    write_string(out, id);
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        ",\"status\":{},\"headers\":{{",
        answer.status().as_u16()
    );
    let mut first = true;
    for (name, value) in answer.headers() {
        if dropped(name) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        // A header name is a token: nothing in it needs escaping.
        out.push(b'"');
        write_canonical(out, name.as_str());
        out.extend_from_slice(b"\":");
        match std::str::from_utf8(value.as_bytes()) {
            Ok(text) => write_string(out, text),
            Err(_) => write_string(out, &String::from_utf8_lossy(value.as_bytes())),
        }
    }
    out.push(b'}');
    let is_json = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let bytes = to_bytes(answer.into_body())
        .await
        .map_err(|_| ApiError::Internal("a batch item's body could not be read".into()))?;
    if !bytes.is_empty() {
        out.extend_from_slice(b",\"body\":");
        if is_json {
            out.extend_from_slice(&bytes);
        } else {
            write_string(out, &STANDARD.encode(&bytes));
        }
    }
    out.push(b'}');
    Ok(())
}

/// Appends `content-type` as Graph writes it in a batch answer: `Content-Type` (and
/// `OData-Version`, which is not spelled word by word).
fn write_canonical(out: &mut Vec<u8>, name: &str) {
    if name == "odata-version" {
        out.extend_from_slice(b"OData-Version");
        return;
    }
    let start = out.len();
    out.extend_from_slice(name.as_bytes());
    let mut word_start = true;
    for byte in out.get_mut(start..).unwrap_or_default() {
        if word_start {
            byte.make_ascii_uppercase();
        }
        word_start = *byte == b'-';
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = BASE_FOR_READING;

    #[test]
    fn a_json_string_is_borrowed_when_plain_and_unescaped_otherwise() {
        let of = |json: &str| {
            let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
            string_of(Some(&raw))
                .map(|text| (text.clone().into_owned(), matches!(text, Cow::Borrowed(_))))
        };
        assert_eq!(of(r#""POST""#), Some(("POST".into(), true)));
        assert_eq!(of(r#""é ü""#), Some(("é ü".into(), true)));
        assert_eq!(of(r#""""#), Some((String::new(), true)));
        assert_eq!(of(r#""a\"b""#), Some(("a\"b".into(), false)));
        assert_eq!(of(r#""\u00e9\n""#), Some(("é\n".into(), false)));
        assert_eq!(of("1"), None);
        assert_eq!(of("null"), None);
        assert_eq!(of(r#"["a"]"#), None);
        assert_eq!(string_of(None), None);
    }

    #[test]
    fn item_urls_resolve_under_beta_or_are_refused() {
        let ok = |url: &str| resolve(url, BASE).unwrap();
        assert_eq!(
            ok("/identity/userFlows"),
            ("/beta/identity/userFlows".into(), String::new())
        );
        assert_eq!(
            ok("identity/userFlows?$top=1"),
            ("/beta/identity/userFlows".into(), "$top=1".into())
        );
        assert_eq!(
            ok("http://127.0.0.1:8080/beta/identity/userFlows/B2C_1_a"),
            ("/beta/identity/userFlows/B2C_1_a".into(), String::new())
        );
        // A scheme in any letter case, as URLs allow.
        assert_eq!(
            ok("HTTP://127.0.0.1:8080/BETA/identity/userFlows/$count"),
            ("/beta/identity/userFlows/$count".into(), String::new())
        );
        // The root itself: served (and refused) as the relative "" is.
        assert_eq!(
            ok("http://127.0.0.1:8080/beta"),
            ("/beta".into(), String::new())
        );
        assert_eq!(
            ok("http://127.0.0.1:8080/beta?x=1"),
            ("/beta".into(), "x=1".into())
        );
        assert_eq!(ok(""), ("/beta/".into(), String::new()));
        for bad in [
            "http://127.0.0.1:8080/betamax/identity/userFlows",
            "/identity/userFlows/$count#frag",
            "http://127.0.0.1:8080/beta/identity/userFlows/$count?a=1#x",
            "https://graph.microsoft.com/beta/identity/userFlows",
            "http://127.0.0.1:8080/_emulator/tenants",
            "http://127.0.0.1:8080/v1.0/identity/userFlows",
            "/../_emulator/tenants",
            "/identity/%2e%2e/userFlows",
        ] {
            assert!(resolve(bad, BASE).is_err(), "{bad}");
        }
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn item_headers_are_read_from_their_json_with_the_batchs_authorization_and_host() {
        let mut outer = HeaderMap::new();
        outer.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer outer"),
        );
        outer.insert(header::HOST, HeaderValue::from_static("emulator:8080"));
        let given = raw(
            r#"{"Content\u002dType": "application/json", "authorization": "Bearer inner",
                "Host": "elsewhere", "X-A": "1", "x-a": "2"}"#,
        );
        let headers = item_headers(Some(&given), &outer).unwrap();
        assert_eq!(
            headers.get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let authorization: Vec<_> = headers.get_all(header::AUTHORIZATION).collect();
        assert_eq!(authorization, ["Bearer outer"]);
        let host: Vec<_> = headers.get_all(header::HOST).collect();
        assert_eq!(host, ["emulator:8080"]);
        // Header names ignore case: both values are kept, in order.
        let a: Vec<_> = headers.get_all("x-a").collect();
        assert_eq!(a, ["1", "2"]);

        // Without a Host on the batch, the item's own stays.
        let mut bare = HeaderMap::new();
        bare.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer outer"),
        );
        let headers = item_headers(Some(&raw(r#"{"Host": "given"}"#)), &bare).unwrap();
        assert_eq!(headers.get(header::HOST).unwrap(), "given");
        assert_eq!(item_headers(Some(&raw("null")), &bare).unwrap().len(), 1);
        assert_eq!(item_headers(None, &bare).unwrap().len(), 1);

        for (given, refusal) in [
            (r#"["a"]"#, "'headers' must be an object."),
            (r#""a""#, "'headers' must be an object."),
            (
                r#"{"X-A": 1, "bad name": "x"}"#,
                "the header 'X-A' must be a string.",
            ),
            (r#"{"bad name": "x"}"#, "'bad name' is not a header name."),
            (
                r#"{"X-A": "a\nb"}"#,
                "the header 'X-A' has an invalid value.",
            ),
            (r#"{"X-A": "\ud800"}"#, "the header 'X-A' must be a string."),
            (
                r#"{"\ud800": "x"}"#,
                "'headers' holds a name that is not valid Unicode (a lone surrogate escape).",
            ),
        ] {
            assert_eq!(
                item_headers(Some(&raw(given)), &bare).unwrap_err(),
                refusal,
                "{given}"
            );
        }
    }

    /// The message of a batch `parse` refuses.
    fn refusal(body: &str) -> String {
        match parse(&Bytes::from(body.to_owned()), BASE, &HeaderMap::new()) {
            Err(ApiError::BadRequest { message, .. }) => message,
            Err(other) => panic!("{body}: {other:?}"),
            Ok(_) => panic!("{body}: accepted"),
        }
    }

    #[test]
    fn a_well_formed_batch_is_read_in_one_pass_and_a_malformed_one_says_why() {
        let body = r#"{"requests": [
            {"id": "1", "method": "post", "url": "/identity/userFlows",
             "headers": {"Content-Type": "application/json"}, "body": {"id": "B2C_1_a"}},
            {"id": "2", "method": "GET", "url": "/identity/userFlows/B2C_1_a",
             "dependsOn": ["1"], "depends_on": []}]}"#;
        let items = parse(&Bytes::from(body), BASE, &HeaderMap::new()).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].method, Method::POST);
        assert_eq!(items[0].body.as_deref(), Some(&br#"{"id": "B2C_1_a"}"#[..]));
        assert_eq!(items[1].depends_on, [0]);
        for (body, message) in [
            (
                "[]",
                "Invalid batch payload: the body needs a 'requests' array of request objects.",
            ),
            (
                "{}",
                "Invalid batch payload: the body needs a 'requests' array of request objects.",
            ),
            (
                r#"{"requests": [], "requests": []}"#,
                "Invalid batch payload: the body names 'requests' more than once.",
            ),
            (
                r#"{"requests": [1]}"#,
                "Invalid batch payload: requests[0] is not a JSON object.",
            ),
            (
                r#"{"requests": []}"#,
                "Invalid batch payload: 'requests' is empty.",
            ),
            (
                r#"{"requests": [{"id": "A", "method": "GET", "url": "/x"},
                                 {"id": "a", "method": "GET", "url": "/x"}]}"#,
                "Invalid batch payload: the id 'a' appears more than once.",
            ),
            (
                r#"{"requests": [{"id": "1", "method": "GET", "url": "/x", "dependsOn": ["2"]}]}"#,
                "Invalid batch payload: request '1' depends on '2', which is not a request of \
                 this batch.",
            ),
        ] {
            assert_eq!(refusal(body), message, "{body}");
        }
        assert!(refusal("{").starts_with("Invalid batch payload: the body is not JSON ("));
        // Bytes that are not UTF-8 in a field the reading ignores (found by the fuzz target).
        let mut body =
            br#"{"requests": [{"id": "1", "method": "GET", "url": "/x", "other": ""#.to_vec();
        body.extend_from_slice(b"\xfc\"}]}");
        match parse(&Bytes::from(body), BASE, &HeaderMap::new()) {
            Err(ApiError::BadRequest { message, .. }) => assert!(
                message.starts_with("Invalid batch payload: the body is not JSON (invalid unicode"),
                "{message}"
            ),
            _ => panic!("a body that is not UTF-8 was accepted"),
        }
        // Ids match ignoring case in dependsOn too.
        let body = r#"{"requests": [{"id": "One", "method": "GET", "url": "/x"},
            {"id": "2", "method": "GET", "url": "/x", "dependsOn": ["one"]}]}"#;
        assert_eq!(
            parse(&Bytes::from(body), BASE, &HeaderMap::new()).unwrap()[1].depends_on,
            [0]
        );
    }

    #[test]
    fn the_batch_path_in_any_case_and_encoding() {
        assert!(is_batch_path("/beta/$batch"));
        assert!(is_batch_path("/BETA/%24batch/"));
        assert!(is_batch_path("/beta/$Batch"));
        assert!(is_batch_path("/beta/%24BATCH"));
        assert!(!is_batch_path("/beta/$batch/x"));
        assert!(!is_batch_path("/beta/identity/userFlows"));
    }

    #[test]
    fn run_order_puts_dependencies_first_and_cycles_are_found() {
        let item = |id: &str, depends_on: Vec<usize>| Item {
            id: id.into(),
            method: Method::GET,
            target: Err(String::new()),
            refused_url: None,
            headers: HeaderMap::new(),
            body: None,
            depends_on,
        };
        let items = vec![item("a", vec![2]), item("b", vec![]), item("c", vec![1])];
        assert_eq!(run_order(&items), [1, 2, 0]);
        assert_eq!(first_in_cycle(&items), None);
        let cycle = vec![item("a", vec![1]), item("b", vec![0])];
        assert_eq!(first_in_cycle(&cycle), Some("a"));
        assert_eq!(first_in_cycle(&[item("self", vec![0])]), Some("self"));
        for (name, written) in [
            ("client-request-id", "Client-Request-Id"),
            ("location", "Location"),
            ("odata-version", "OData-Version"),
            ("retry-after", "Retry-After"),
            ("x--y-", "X--Y-"),
        ] {
            let mut out = Vec::new();
            write_canonical(&mut out, name);
            assert_eq!(String::from_utf8(out).unwrap(), written);
        }
    }
}
